"""The channel's state engine: the buffer, the parked parties, and every move between them.

The specification is ``fearless._channels._channel``'s module docstring. Everything here runs under
the channel's lock (except the methods that take it themselves, said so in their docstrings); the
endpoints (``_endpoints.py``) call in, collect the parties claimed on the way, and wake them after
releasing the lock (``fearless._parking``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, final

from .. import _backend
from .._parking import BROKEN, CLOSED, EMPTY, ENDED, SENT, Parked, ParkingLot, Signal

__all__ = ["ChannelState", "ChannelStatistics", "ParkedReceive", "ParkedSend"]

T = TypeVar("T")


@final
@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """A snapshot of a channel, the same whichever endpoint it was taken from.

    The first six fields are anyio's ``MemoryObjectStreamStatistics``.
    """

    current_buffer_used: int
    """Items in the buffer now."""
    max_buffer_size: float
    """The capacity: 0, N, or ``math.inf``."""
    open_send_streams: int
    """Sender clones not yet closed."""
    open_receive_streams: int
    """Receiver clones not yet closed."""
    tasks_waiting_send: int
    """Tasks parked in ``send``/``send_many`` (a parked batch counts once)."""
    tasks_waiting_receive: int
    """Tasks parked in ``receive``/``receive_many``."""
    peak_buffer_used: int
    """The most items the buffer has held at once."""
    total_sent: int
    """Items that have entered the channel (buffered or handed to a receiver)."""
    total_received: int
    """Items that have left the channel to a receiver."""


class ParkedSend(Parked, Generic[T]):
    """A party parked in ``send``/``send_many``/``send_blocking``, holding the items that have not
    gone in yet.

    The channel claims it with ``SENT`` (or a signal) when it is done with it. ``select``
    subclasses it to park one task on several channels at once (with a shared waiter): a channel
    takes the item only if it wins the claim.
    """

    __slots__ = ("items", "mark", "pos")

    def __init__(self, waiter: _backend.Waiter, items: list[T], owner: object) -> None:
        self.waiter = waiter
        self.owner = owner
        self.items = items
        self.pos = 0  # items[:pos] are in the channel; items[pos:] are not
        self.mark = -1  # total_sent just after its last item went into the buffer (withdraw)

    def claimed_item(self) -> Any:
        """A sender is never handed an item."""
        return EMPTY


class ParkedReceive(Parked):
    """A party parked in ``receive``/``receive_blocking``: claimed with one item (or a signal).

    ``merge`` and ``select`` subclass it to park one task on several channels at once: the first
    channel to claim it wins, and the others see ``claim`` return ``False`` and move on.
    """

    __slots__ = ()


class ChannelState(Generic[T]):
    """What every clone of one channel shares.

    Every field is read and written under ``lock``, by tasks of any event loop and by threads
    alike. Parties to wake are claimed under the lock and collected in ``woken``; whoever holds
    the lock takes the list before releasing it and wakes them after (:meth:`wake`), so no lock
    is held while an event loop is woken.
    """

    __slots__ = (
        "buffer",
        "capacity",
        "lock",
        "open_receivers",
        "open_senders",
        "peak",
        "recv_waiters",
        "send_waiters",
        "threads",
        "total_received",
        "total_sent",
        "woken",
        "yield_every",
    )

    def __init__(self, capacity: float, yield_every: int) -> None:
        self.lock = threading.Lock()
        self.threads = False  # a thread has made a blocking call on it (see _loop_shut_down)
        self.capacity = capacity
        self.yield_every = yield_every
        self.buffer: deque[T] = deque()
        # Invariants (between operations, ignoring entries whose party was claimed elsewhere or
        # revoked and has not yet run to remove itself):
        #   recv_waiters non-empty  =>  buffer empty
        #   send_waiters non-empty  =>  len(buffer) >= capacity
        self.recv_waiters: ParkingLot[ParkedReceive] = ParkingLot()
        self.send_waiters: ParkingLot[ParkedSend[T]] = ParkingLot()
        self.woken: list[Any] = []  # claimed under the lock, to be woken after it
        self.open_senders = 1
        self.open_receivers = 1
        self.peak = 0
        self.total_sent = 0
        self.total_received = 0

    def take_woken(self) -> list[Any] | None:
        """Under the lock: the parties claimed since the last call, to wake once it is released."""
        woken = self.woken
        if not woken:
            return None
        self.woken = []
        return woken

    def wake(self, woken: list[Any]) -> None:
        """Without the lock: wake the parties ``take_woken`` returned.

        A party that can never resume (its event loop has shut down) must not take an item to
        its grave: a receiver's item goes back to the channel.
        """
        for entry in woken:
            if not entry.waiter.wake():
                item = entry.claimed_item()
                if item is not EMPTY:
                    self.give_back(item)

    # -- moving items (the caller holds the lock) -----------------------------------------------

    def offer(self, item: T) -> bool:
        """Hand ``item`` to a parked receiver or buffer it; ``False`` if it would have to wait."""
        if self.recv_waiters and self.recv_waiters.claim_first(item, self.woken) is not None:
            self.total_sent += 1
            self.total_received += 1
            return True
        buffer = self.buffer
        if len(buffer) < self.capacity:
            buffer.append(item)
            self.total_sent += 1
            if len(buffer) > self.peak:
                self.peak = len(buffer)
            return True
        return False

    def take(self) -> T | Signal:
        """Take the next item, or return ``EMPTY``."""
        buffer = self.buffer
        item: T | Signal
        if buffer:
            item = buffer.popleft()
            if self.send_waiters:
                self._refill()
        elif self.send_waiters:
            item = self._take_from_parked_sender()  # rendezvous
            if item is EMPTY:
                return EMPTY
        else:
            return EMPTY
        self.total_received += 1
        return item

    def take_many(self, max_items: int, first: T | Signal = EMPTY) -> list[T]:
        """Take up to ``max_items`` items (after ``first``, if one was already handed over)."""
        items: list[T] = [] if type(first) is Signal else [first]
        buffer = self.buffer
        while len(items) < max_items:
            if buffer:
                n = min(len(buffer), max_items - len(items))
                if n == len(buffer) and not self.send_waiters:
                    items.extend(buffer)
                    buffer.clear()
                else:
                    items.extend(buffer.popleft() for _ in range(n))
                self.total_received += n
                if self.send_waiters:
                    self._refill()
                    continue
                break
            item = self.take()  # rendezvous: straight from a parked sender
            if type(item) is Signal:
                break
            items.append(item)
        return items

    def _next_from(self, entry: ParkedSend[T]) -> T | Signal:
        """The parked sender's next item, claiming it if that is its last; ``EMPTY`` if it lost
        the claim (cancelled, timed out, or a select that won elsewhere)."""
        if entry.pos == len(entry.items) - 1:
            if not entry.claim(SENT):
                return EMPTY
            self.woken.append(entry)
        elif not entry.waiter.alive():  # part of a batch: the claim comes with its last item
            return EMPTY
        item = entry.items[entry.pos]
        entry.pos += 1
        self.total_sent += 1
        return item

    def _refill(self) -> None:
        """Slots have freed: move parked senders' items in, first parked first."""
        buffer, waiters = self.buffer, self.send_waiters
        while waiters and len(buffer) < self.capacity:
            entry = waiters[0]
            item = self._next_from(entry)
            if type(item) is Signal:
                waiters.popleft()
                continue
            buffer.append(item)
            if entry.pos == len(entry.items):
                waiters.popleft()
                entry.mark = self.total_sent  # where its last item stands (see withdraw)
        if len(buffer) > self.peak:
            self.peak = len(buffer)

    def _take_from_parked_sender(self) -> T | Signal:
        waiters = self.send_waiters
        while waiters:
            entry = waiters[0]
            item = self._next_from(entry)
            if item is EMPTY:
                waiters.popleft()
                continue
            if entry.pos == len(entry.items):
                waiters.popleft()
            return item
        return EMPTY

    def settle(self) -> None:
        """Under the lock, right after a party that parks on several channels (``merge``,
        ``select``) joined a queue here: match it with what is there already.

        Such a party polls every channel and then parks on each in turn, and another thread can
        send or receive in between, so a channel may hold items, room, or its end while a party
        waits on it. This restores the invariants (and claims the end of stream or the broken
        channel), first parked first, as if the party had parked before the change. A party is
        claimed before anything is taken for it: the joining party may have been claimed by
        another channel meanwhile, and then nothing here must move.
        """
        if self.send_waiters and len(self.buffer) < self.capacity:
            self._refill()
        receivers, senders, buffer = self.recv_waiters, self.send_waiters, self.buffer
        while receivers:
            entry = receivers[0]
            if buffer:
                if entry.claim(buffer[0]):
                    self.woken.append(entry)
                    buffer.popleft()
                    self.total_received += 1
                    if senders:
                        self._refill()
                receivers.popleft()
            elif senders:  # rendezvous: a parked sender meets a parked receiver
                sender = senders[0]
                item = sender.items[sender.pos]
                last = sender.pos == len(sender.items) - 1
                if last:
                    matched = _backend.Waiter.claim_pair(
                        sender.waiter, sender.wrap(SENT), entry.waiter, entry.wrap(item)
                    )
                else:  # part of a batch (a plain send_many): its claim comes with its last item
                    matched = sender.waiter.alive() and entry.claim(item)
                if matched:
                    receivers.popleft()
                    self.woken.append(entry)
                    sender.pos += 1
                    self.total_sent += 1
                    self.total_received += 1
                    if last:
                        senders.popleft()
                        self.woken.append(sender)
                elif not sender.waiter.alive():
                    senders.popleft()
                elif not entry.waiter.alive():
                    receivers.popleft()
                else:
                    break  # one select on both sides: it cannot meet itself
            else:
                if not self.open_senders:
                    receivers.claim_all(ENDED, self.woken)
                break
        if not self.open_receivers and senders:
            senders.claim_all(BROKEN, self.woken)

    # -- taking an operation back (these take the lock themselves) --------------------------------

    def give_back(self, item: T) -> None:
        """A receiver was handed ``item`` but cannot take it after all (cancelled natively before
        it ran, or its event loop is gone): the item goes back.

        It goes to the longest-parked receiver, else to the head of the buffer (it was the oldest
        item in flight), even if that briefly holds one more item than the capacity.
        """
        with self.lock:
            self.total_received -= 1
            if not self.open_receivers:
                return  # every receiver is closed: the buffer was discarded, and this item with it
            if self.recv_waiters.claim_first(item, self.woken) is not None:
                self.total_received += 1
            else:
                self.buffer.appendleft(item)
                if len(self.buffer) > self.peak:
                    self.peak = len(self.buffer)
            woken = self.take_woken()
        if woken:
            self.wake(woken)

    def withdraw(self, entry: ParkedSend[T]) -> bool:
        """A parked sender whose lone item went into the buffer was cancelled before it ran: take
        the item out if no receiver has it yet.

        The item is found by its place, not by its value: ``entry.mark`` is ``total_sent`` right
        after it went in, so the items sent since are the last ``total_sent - mark`` of the buffer
        (a withdrawal lowers ``total_sent`` and shortens the buffer alike), and the item is just
        before them, if it is still there at all. (Searching by identity would take out a later
        copy of the same object, say another sender's ``1``, and reorder that sender's items.)
        If another withdrawal since has moved the count (two senders cancelled after going in
        together), the item may not be found; then the send stands, which is correct too.
        """
        with self.lock:
            buffer = self.buffer
            item = entry.items[0]
            i = len(buffer) - 1 - (self.total_sent - entry.mark)
            if not 0 <= i < len(buffer) or buffer[i] is not item:
                return False  # a receiver has it: the send stands
            del buffer[i]
            self.total_sent -= 1
            if self.send_waiters:
                self._refill()
            woken = self.take_woken()
        if woken:
            self.wake(woken)
        return True

    def unpark(self, lot: ParkingLot[Any], entry: Parked) -> Any:
        """A parked party gives up: ``lot.withdraw(entry)`` under the lock (see there)."""
        with self.lock:
            return lot.withdraw(entry)

    # -- closing (the caller holds the lock) ------------------------------------------------------

    def close_sender(self, sender: object) -> None:
        self.send_waiters.claim_owned(sender, CLOSED, self.woken)
        self.open_senders -= 1
        if self.open_senders == 0:
            self.recv_waiters.claim_all(ENDED, self.woken)

    def close_receiver(self, receiver: object) -> None:
        self.recv_waiters.claim_owned(receiver, CLOSED, self.woken)
        self.open_receivers -= 1
        if self.open_receivers == 0:
            self.buffer.clear()
            self.send_waiters.claim_all(BROKEN, self.woken)

    def statistics(self) -> ChannelStatistics:
        with self.lock:
            return ChannelStatistics(
                current_buffer_used=len(self.buffer),
                max_buffer_size=self.capacity,
                open_send_streams=self.open_senders,
                open_receive_streams=self.open_receivers,
                tasks_waiting_send=self.send_waiters.waiting(),
                tasks_waiting_receive=self.recv_waiters.waiting(),
                peak_buffer_used=self.peak,
                total_sent=self.total_sent,
                total_received=self.total_received,
            )


def gave_back(state: ChannelState[Any], item: Any) -> bool:
    state.give_back(item)
    return True
