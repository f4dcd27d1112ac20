"""The core channel: bounded, unbounded and rendezvous, with cloneable endpoints.

Specification (``docs/channels.md`` is the user guide; ``docs/design/concurrency.md``,
"Channels", gives the reasons):

Capacity
    ``0``: rendezvous, a send completes only when a receiver takes the item. ``N >= 1``: at most N
    items wait in the buffer. ``math.inf``: unbounded. Anything else raises ``ValueError``.

Closing
    Receivers see ``EndOfStream`` once every sender clone is closed and the buffer is drained.
    Senders see ``BrokenResourceError`` (``SendBrokenError``, carrying the unsent items) once every
    receiver clone is closed; the buffer is then discarded. Using an endpoint after closing it
    raises ``ClosedResourceError``; closing an endpoint wakes its own parked operations with
    ``ClosedResourceError`` (a parked send's item is withdrawn, not sent).

Cancellation
    Atomic: a cancelled ``send`` did not enqueue, a cancelled ``receive`` did not dequeue, under
    anyio cancel scopes, trio, and native asyncio cancellation alike. An operation that completed
    before the cancellation could land returns normally and the cancellation is delivered at the
    next cancel point (see ``fearless._backend``).

Scheduling
    Every async operation is a cancel point: it checks the cancel scope first and does nothing if
    the task is cancelled. It yields to the scheduler whenever it has to wait, and otherwise once
    every ``yield_every`` operations on that endpoint (before the operation, so a cancellation
    delivered during the yield finds the operation not yet done). ``yield_every=1`` is trio's rule.

Order
    Items leave in the order they entered. Waiters are served first come, first served: a parked
    receiver is handed the next item directly, and a parked sender's item enters the buffer as
    soon as a slot frees, so a task arriving later never overtakes one already waiting.
"""

from __future__ import annotations

import math
import threading
import warnings
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar, final

from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import SendBrokenError, SendClosedError

__all__ = [
    "DEFAULT_YIELD_EVERY",
    "ChannelReceiver",
    "ChannelStatistics",
    "Receiver",
    "Sender",
    "channel",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)

DEFAULT_YIELD_EVERY: Final = 32
"""Fast-path operations an endpoint may complete before it yields to the scheduler once.

Chosen by ``benchmarks/`` (see ``docs/channels.md``, "The scheduling budget")."""


class _Signal:
    """A wake-up value that is not an item."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


SENT: Final = _Signal("sent")  # a parked send's last item went in
ENDED: Final = _Signal("ended")  # every sender closed; the parked receive sees EndOfStream
BROKEN: Final = _Signal("broken")  # every receiver closed; the parked send fails
CLOSED: Final = _Signal("closed")  # the parked operation's own endpoint was closed
EMPTY: Final = _Signal("empty")  # returned by try_receive when it would have to wait


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


class ParkedSend:
    """A party parked in ``send``/``send_many``/``send_blocking``, holding the items that have not
    gone in yet.

    The channel claims its waiter with ``SENT`` (or a signal) when it is done with it, under the
    channel's lock, and wakes it after releasing the lock. ``select`` subclasses it to park one
    task on several channels at once (with a shared waiter): a channel takes the item only if it
    wins the claim.
    """

    __slots__ = ("items", "mark", "owner", "pos", "waiter")

    def __init__(self, waiter: _backend.Waiter, items: list[Any], owner: object) -> None:
        self.waiter = waiter
        self.items = items
        self.pos = 0  # items[:pos] are in the channel; items[pos:] are not
        self.owner = owner
        self.mark = -1  # total_sent just after its last item went into the buffer (withdraw)

    def claim(self, value: object) -> bool:
        return self.waiter.claim(self.wrap(value))

    def wrap(self, value: object) -> object:
        """What the party resumes with, for ``value`` (a select adds which branch won)."""
        return value

    def claimed_item(self) -> Any:
        """The item a claim handed this party (never, for a sender)."""
        return EMPTY


class ParkedReceive:
    """A party parked in ``receive``/``receive_blocking``: claimed with one item (or a signal).

    ``merge`` and ``select`` subclass it to park one task on several channels at once: the first
    channel to claim it wins, and the others see ``claim`` return ``False`` and move on.
    """

    __slots__ = ("owner", "waiter")

    def __init__(self, waiter: _backend.Waiter, owner: object) -> None:
        self.waiter = waiter
        self.owner = owner

    def claim(self, value: object) -> bool:
        return self.waiter.claim(self.wrap(value))

    def wrap(self, value: object) -> object:
        """What the party resumes with, for ``value`` (merge and select add where it came from)."""
        return value

    def claimed_item(self) -> Any:
        """The item the channel handed this party with its claim; ``EMPTY`` for a signal."""
        value = self.waiter.value
        return EMPTY if _is_signal(value) else value


def _is_signal(value: object) -> bool:
    return type(value) is _Signal


def _discard(queue: deque[Any], entry: object) -> None:
    try:
        queue.remove(entry)
    except ValueError:
        pass  # already taken by the other side


class _State:
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
        self.buffer: deque[Any] = deque()
        # Invariants (between operations, ignoring entries whose party was claimed elsewhere or
        # revoked and has not yet run to remove itself):
        #   recv_waiters non-empty  =>  buffer empty
        #   send_waiters non-empty  =>  len(buffer) >= capacity
        self.recv_waiters: deque[ParkedReceive] = deque()
        self.send_waiters: deque[ParkedSend] = deque()
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

    def offer(self, item: Any) -> bool:
        """Hand ``item`` to a parked receiver or buffer it; ``False`` if it would have to wait."""
        waiters = self.recv_waiters
        while waiters:
            entry = waiters.popleft()
            if entry.claim(item):
                self.woken.append(entry)
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

    def take(self) -> Any:
        """Take the next item, or return ``EMPTY``."""
        buffer = self.buffer
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

    def take_many(self, max_items: int, first: Any = EMPTY) -> list[Any]:
        """Take up to ``max_items`` items (after ``first``, if one was already handed over)."""
        items = [] if first is EMPTY else [first]
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
            if item is EMPTY:
                break
            items.append(item)
        return items

    def _next_from(self, entry: ParkedSend) -> Any:
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
            if item is EMPTY:
                waiters.popleft()
                continue
            buffer.append(item)
            if entry.pos == len(entry.items):
                waiters.popleft()
                entry.mark = self.total_sent  # where its last item stands (see withdraw)
        if len(buffer) > self.peak:
            self.peak = len(buffer)

    def _take_from_parked_sender(self) -> Any:
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
                    for waiting in receivers:
                        if waiting.claim(ENDED):
                            self.woken.append(waiting)
                    receivers.clear()
                break
        if not self.open_receivers and senders:
            waiters, self.send_waiters = senders, deque()
            for waiting_sender in waiters:
                if waiting_sender.claim(BROKEN):
                    self.woken.append(waiting_sender)

    # -- taking an operation back (these take the lock themselves) --------------------------------

    def give_back(self, item: Any) -> None:
        """A receiver was handed ``item`` but cannot take it after all (cancelled natively before
        it ran, or its event loop is gone): the item goes back.

        It goes to the longest-parked receiver, else to the head of the buffer (it was the oldest
        item in flight), even if that briefly holds one more item than the capacity.
        """
        with self.lock:
            self.total_received -= 1
            if not self.open_receivers:
                return  # every receiver is closed: the buffer was discarded, and this item with it
            waiters = self.recv_waiters
            while waiters:
                entry = waiters.popleft()
                if entry.claim(item):
                    self.woken.append(entry)
                    self.total_received += 1
                    break
            else:
                self.buffer.appendleft(item)
                if len(self.buffer) > self.peak:
                    self.peak = len(self.buffer)
            woken = self.take_woken()
        if woken:
            self.wake(woken)

    def withdraw(self, entry: ParkedSend) -> bool:
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

    def unpark(self, queue: deque[Any], entry: object) -> Any:
        """A parked party gives up: revoke its waiter and take it out of ``queue``.

        Returns ``ABORTED`` if it was still waiting, else the value it was claimed with.
        """
        with self.lock:
            outcome = entry.waiter.revoke()  # type: ignore[attr-defined]
            _discard(queue, entry)
            return outcome

    # -- closing (the caller holds the lock) ------------------------------------------------------

    def close_sender(self, sender: object) -> None:
        self._claim_own(self.send_waiters, sender)
        self.open_senders -= 1
        if self.open_senders == 0:
            waiters, self.recv_waiters = self.recv_waiters, deque()
            for entry in waiters:
                if entry.claim(ENDED):
                    self.woken.append(entry)

    def close_receiver(self, receiver: object) -> None:
        self._claim_own(self.recv_waiters, receiver)
        self.open_receivers -= 1
        if self.open_receivers == 0:
            self.buffer.clear()
            waiters, self.send_waiters = self.send_waiters, deque()
            for entry in waiters:
                if entry.claim(BROKEN):
                    self.woken.append(entry)

    def _claim_own(self, waiters: deque[Any], owner: object) -> None:
        own = [entry for entry in waiters if entry.owner is owner]
        for entry in own:
            waiters.remove(entry)
            if entry.claim(CLOSED):
                self.woken.append(entry)

    def statistics(self) -> ChannelStatistics:
        with self.lock:
            return ChannelStatistics(
                current_buffer_used=len(self.buffer),
                max_buffer_size=self.capacity,
                open_send_streams=self.open_senders,
                open_receive_streams=self.open_receivers,
                tasks_waiting_send=sum(1 for e in self.send_waiters if e.waiter.alive()),
                tasks_waiting_receive=sum(1 for e in self.recv_waiters if e.waiter.alive()),
                peak_buffer_used=self.peak,
                total_sent=self.total_sent,
                total_received=self.total_received,
            )


class ClosesOnExit:
    """``with endpoint:`` closes the endpoint on the way out, however the block ends."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def warn_unclosed(endpoint: object) -> None:
    """The ``ResourceWarning`` anyio's streams give for an endpoint collected while still open."""
    if not getattr(endpoint, "_closed", True):  # never closed (and fully constructed)
        warnings.warn(
            f"Unclosed <{type(endpoint).__name__} at {id(endpoint):x}>",
            ResourceWarning,
            stacklevel=2,
            source=endpoint,
        )


class LoopBound(ClosesOnExit):
    """What every endpoint of a shared state does for the scheduling budget and for the event
    loop its tasks use (a loop that has shut down counts as closed). The state has ``yield_every``
    and ``threads`` (set once a thread has made a blocking call on it). Weakly referenceable: a
    loop's watch holds the endpoints its tasks used weakly."""

    __slots__ = ("__weakref__", "_budget", "_home")

    _state: Any
    _budget: int  # fast-path operations left before the next yield
    _home: object  # the event loop whose tasks use it (see fearless._backend.bind)

    async def _yield(self, backend: _backend.Backend) -> None:
        """The budget ran out (or the task is cancelled): yield once, a cancel point; and bind
        to the loop (the budget starts at 0, so an endpoint's first async operation binds it)."""
        self._budget = self._state.yield_every
        _backend.bind(self)
        await backend.checkpoint()

    def _loop_shut_down(self) -> None:
        """The event loop whose tasks used this endpoint has shut down: for the threads that use
        its channel, that counts as closed, so close it. A channel no thread has used is left
        alone: tasks of a later loop may go on using it."""
        if self._state.threads:
            self.close()


class _Endpoint(LoopBound):
    """What a sender and a channel receiver share: the channel state, a budget, a closed flag."""

    __slots__ = ("_closed", "_state")
    _factory: str = "fearless.channel"  # named in the no-public-constructor error

    _state: _State
    _closed: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(f"{type(self).__name__} has no public constructor; use {self._factory}()")

    @classmethod
    def _create(cls, state: _State) -> Self:
        self = object.__new__(cls)
        self._state = state
        self._budget = 0  # the first async operation yields, and binds the endpoint to its loop
        self._closed = False
        self._home = None
        return self

    def statistics(self) -> ChannelStatistics:
        """A snapshot of the channel's state and counters."""
        return self._state.statistics()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):  # (at interpreter exit, module globals may be gone)
            warn_unclosed(self)


class Sender(_Endpoint, ObjectSendStream[T_contra]):
    """The sending end of a channel. Created only by :func:`channel` (or ``clone()``).

    Safe to share between tasks, event loops and threads; ``clone()`` makes another independently
    closable sender. Every async method is a cancel point and is atomic under cancellation.
    """

    __slots__ = ()

    def _fail(self, items: tuple[Any, ...]) -> None:
        if self._closed:
            raise SendClosedError(items)
        raise SendBrokenError(items)

    def send_nowait(self, item: T_contra) -> None:
        """Send ``item`` without waiting, or raise ``WouldBlock`` (nothing sent).

        Hands the item to the longest-waiting receiver, else buffers it. Raises
        ``SendClosedError`` (a ``ClosedResourceError``) if this sender is closed and
        ``SendBrokenError`` (a ``BrokenResourceError``) if every receiver is; both carry the item.
        Safe from any thread; a receiver parked on an event loop is woken through that loop.
        """
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            if self._closed or not state.open_receivers:
                self._fail((item,))
            if not state.offer(item):
                raise WouldBlock
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)

    async def send(self, item: T_contra) -> None:
        """Send ``item``, waiting while the channel is full (or, at capacity 0, for a receiver).

        Ordering: items from one sender arrive in the order sent; parked senders go in the order
        they parked. Closing: raises ``SendBrokenError`` if every receiver closes (before or while
        waiting) and ``SendClosedError`` if this sender is closed; the error carries the item.

        Cancellation: a cancel point. If cancelled, the item was not sent (it is not in the
        channel and no receiver has it). If the item was taken just as the cancellation arrived,
        the send returns normally and the cancellation is delivered at the next cancel point.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            if self._closed or not state.open_receivers:
                self._fail((item,))
            buffer = state.buffer
            n = len(buffer)
            if n < state.capacity and not state.recv_waiters:  # offer(), inlined
                buffer.append(item)
                state.total_sent += 1
                if n >= state.peak:
                    state.peak = n + 1
                return
            entry = None
            if not state.offer(item):
                entry = ParkedSend(backend.new_waiter(), [item], self)
                state.send_waiters.append(entry)
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if entry is not None:
            await self._wait_sent(entry)

    async def send_many(self, items: Iterable[T_contra]) -> None:
        """Send every item in ``items``, in order, waiting for space as often as needed.

        The batch costs one scheduling decision (one cancel check, at most one yield), not one
        per item. Items go in one by one as space allows; receivers may see the first items
        before the last ones are sent, and items of other senders may interleave only where this
        batch had to wait.

        Cancellation: if cancelled while waiting, the items already sent stay sent, and they are
        exactly a prefix of ``items``; the rest were not sent. If nothing is waited for, the
        batch is sent whole or (cancelled at the start) not at all. Closing: as for
        :meth:`send`; the error's ``unsent`` holds the items not sent.
        """
        batch = list(items)
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        entry = None
        lock.acquire()
        try:
            if self._closed or not state.open_receivers:
                self._fail(tuple(batch))
            for i, item in enumerate(batch):
                if not state.offer(item):
                    entry = ParkedSend(backend.new_waiter(), batch[i:], self)
                    state.send_waiters.append(entry)
                    break
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if entry is not None:
            await self._wait_sent(entry)

    async def _wait_sent(self, entry: ParkedSend) -> None:
        state = self._state
        items = entry.items
        result = await entry.waiter.wait(
            lambda: state.unpark(state.send_waiters, entry),
            # Cancelled after going in: a lone item is withdrawn if still buffered; a batch has
            # delivered a prefix of its items (all of them), which send_many allows.
            lambda result: result is not SENT or len(items) > 1 or state.withdraw(entry),
        )
        self._budget = state.yield_every
        self._check_sent(result, entry)

    @staticmethod
    def _check_sent(result: object, entry: ParkedSend) -> None:
        if result is SENT:
            return
        unsent = tuple(entry.items[entry.pos :])
        if result is BROKEN:
            raise SendBrokenError(unsent)
        assert result is CLOSED, result
        raise SendClosedError(unsent)

    def send_blocking(self, item: T_contra, timeout: float | None = None) -> None:
        """Send ``item`` from a thread, blocking while the channel is full (backpressure).

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once instead of deadlocking it. A receiver parked on an
        event loop is woken through that loop.

        Timeout: after ``timeout`` seconds (``None``: no limit) it raises ``TimeoutError``, and
        the item was not sent. Ordering and closing: as for :meth:`send` (a blocked thread is
        released with ``SendBrokenError`` as soon as every receiver is closed, or when the event
        loop whose tasks held them shuts down).
        """
        wait = -1.0 if timeout is None else _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("send_blocking")
        state = self._state
        state.threads = True
        lock = state.lock
        waiter = None
        lock.acquire()
        try:
            if self._closed or not state.open_receivers:
                self._fail((item,))
            buffer = state.buffer
            n = len(buffer)
            if n < state.capacity and not state.recv_waiters:  # offer(), inlined
                buffer.append(item)
                state.total_sent += 1
                if n >= state.peak:
                    state.peak = n + 1
                return
            if not state.offer(item):
                if wait == 0:
                    raise TimeoutError("the send would have to wait; the item was not sent")
                waiter = _backend.ThreadWaiter()
                entry = ParkedSend(waiter, [item], self)
                state.send_waiters.append(entry)
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if waiter is None:
            return
        result = waiter.wait_blocking(
            lambda: state.unpark(state.send_waiters, entry),
            lambda result: result is not SENT or state.withdraw(entry),
            wait,
        )
        self._check_sent(result, entry)

    def clone(self) -> Self:
        """Another sender on the same channel; the channel ends when every clone is closed."""
        state = self._state
        with state.lock:
            if self._closed:
                raise ClosedResourceError
            state.open_senders += 1
        return type(self)._create(state)

    def close(self) -> None:
        """Close this sender (idempotent). Its own parked sends fail with ``SendClosedError``.

        When the last sender clone closes, receivers drain the buffer and then see EndOfStream.
        """
        state = self._state
        with state.lock:
            if self._closed:
                return
            self._closed = True
            state.close_sender(self)
            woken = state.take_woken()
        if woken:
            state.wake(woken)

    async def aclose(self) -> None:
        """Close, then a cancel point. The sender is closed even if the call is cancelled."""
        self.close()
        await _backend.current().checkpoint()


class Receiver(ClosesOnExit, ObjectReceiveStream[T_co]):
    """Anything fearless lets you receive from: a channel's receiving end, or a ``merge``.

    Use it in annotations; only factories create receivers. ``async for item in receiver`` ends at
    end of stream. ``with receiver:`` and ``async with receiver:`` close it on exit.
    """

    __slots__ = ()

    @abstractmethod
    def receive_nowait(self) -> T_co:
        """The next item without waiting, or ``WouldBlock`` / ``EndOfStream``."""

    @abstractmethod
    async def receive(self) -> T_co:
        """The next item, waiting for one. A cancel point; a cancelled receive took nothing."""

    @abstractmethod
    async def receive_many(self, max_items: int) -> list[T_co]:
        """At least one and at most ``max_items`` items, in order; one scheduling decision.

        A cancel point; a cancelled ``receive_many`` took nothing.
        """

    @abstractmethod
    def clone(self) -> Receiver[T_co]:
        """Another receiver of the same items (each item goes to exactly one receiver)."""

    @abstractmethod
    def close(self) -> None:
        """Close this receiver; idempotent."""

    @abstractmethod
    def statistics(self) -> object:
        """A frozen snapshot of the state behind this receiver."""

    async def aclose(self) -> None:
        """Close, then a cancel point. The receiver is closed even if the call is cancelled."""
        self.close()
        await _backend.current().checkpoint()

    def __aiter__(self) -> Receiver[T_co]:
        return self

    async def __anext__(self) -> T_co:
        try:
            return await self.receive()
        except EndOfStream:
            raise StopAsyncIteration from None


def _item_or_raise(item: Any) -> Any:
    if item is ENDED:
        raise EndOfStream
    if item is CLOSED:
        raise ClosedResourceError
    return item


class ChannelReceiver(_Endpoint, Receiver[T_co]):
    """The receiving end of a channel. Created only by :func:`channel` (or ``clone()``).

    Iterate with ``async for`` (in a task) or ``for item in receiver.iter_blocking()`` (in a
    thread); iteration ends at end of stream. Safe to share between tasks, event loops and
    threads. Every async method is a cancel point and is atomic under cancellation.
    """

    __slots__ = ()

    def receive_nowait(self) -> T_co:
        """The next item, without waiting.

        Raises ``WouldBlock`` if there is none yet, ``EndOfStream`` if there never will be
        (every sender closed and the buffer drained), ``ClosedResourceError`` if this receiver
        is closed. At capacity 0 it takes the item of the longest-parked sender. Safe from any
        thread.
        """
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            item = state.take()
            if item is EMPTY:
                raise WouldBlock if state.open_senders else EndOfStream
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        return item  # type: ignore[no-any-return]

    async def receive(self) -> T_co:
        """The next item, waiting until one arrives.

        Ordering: items arrive in the order they were sent; parked receivers are served in the
        order they parked. Closing: raises ``EndOfStream`` once every sender is closed and the
        buffer is drained, ``ClosedResourceError`` if this receiver is (or gets) closed.

        Cancellation: a cancel point. If cancelled, no item was taken; it stays in the channel for
        the next receiver. If an item was handed over just as the cancellation arrived, the item is
        returned and the cancellation is delivered at the next cancel point.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            buffer = state.buffer
            if buffer and not state.send_waiters:  # take(), inlined
                state.total_received += 1
                return buffer.popleft()  # type: ignore[no-any-return]
            item = state.take()
            if item is EMPTY:
                entry = self._park(backend.new_waiter())
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if item is EMPTY:
            item = await self._wait_item(entry)
        return item  # type: ignore[no-any-return]

    async def __anext__(self) -> T_co:
        # receive(), inlined: iteration is the commonest way to consume a channel.
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            buffer = state.buffer
            if buffer and not state.send_waiters:
                state.total_received += 1
                return buffer.popleft()  # type: ignore[no-any-return]
            item = state.take()
            if item is EMPTY:
                if not state.open_senders:
                    raise StopAsyncIteration
                entry = self._park(backend.new_waiter())
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if item is EMPTY:
            try:
                item = await self._wait_item(entry)
            except EndOfStream:
                raise StopAsyncIteration from None
        return item  # type: ignore[no-any-return]

    async def receive_many(self, max_items: int) -> list[T_co]:
        """Wait for at least one item, then return up to ``max_items`` of them, in order.

        The batch costs one scheduling decision, not one per item: after the (at most one) wait,
        it takes whatever is buffered, up to ``max_items``, without yielding.

        Closing: as :meth:`receive`; ``EndOfStream`` only when not even one item is left.
        Cancellation: if cancelled, nothing was taken. If the first item was handed over just as
        the cancellation arrived, the batch is returned and the cancellation delivered at the
        next cancel point.
        """
        if type(max_items) is not int or max_items < 1:
            raise ValueError(f"max_items must be a positive int, got {max_items!r}")
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            first = state.take()
            if first is EMPTY:
                entry = self._park(backend.new_waiter())
                items = None
            else:
                items = state.take_many(max_items, first)
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if items is not None:
            return items
        first = await self._wait_item(entry)
        with lock:
            items = state.take_many(max_items, first)
            woken = state.take_woken()
        if woken:
            state.wake(woken)
        return items

    def _park(self, waiter: _backend.Waiter) -> ParkedReceive:
        """Under the lock: queue a receive, or raise ``EndOfStream`` if none can ever come."""
        state = self._state
        if not state.open_senders:
            raise EndOfStream
        entry = ParkedReceive(waiter, self)
        state.recv_waiters.append(entry)
        return entry

    async def _wait_item(self, entry: ParkedReceive) -> Any:
        state = self._state
        item = await entry.waiter.wait(
            lambda: state.unpark(state.recv_waiters, entry),
            lambda handed: _is_signal(handed) or _gave_back(state, handed),
        )
        self._budget = state.yield_every
        return _item_or_raise(item)

    def receive_blocking(self, timeout: float | None = None) -> T_co:
        """The next item, blocking this thread until one arrives.

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once instead of deadlocking it. A sender parked on an event
        loop is woken through that loop when its item goes in.

        Timeout: after ``timeout`` seconds (``None``: no limit) it raises ``TimeoutError``, and
        nothing was taken. Ordering and closing: as for :meth:`receive` (a blocked thread sees
        ``EndOfStream`` as soon as every sender is closed, or when the event loop whose tasks
        held them shuts down).
        """
        wait = -1.0 if timeout is None else _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("receive_blocking")
        state = self._state
        state.threads = True
        lock = state.lock
        lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            buffer = state.buffer
            if buffer and not state.send_waiters:  # take(), inlined
                state.total_received += 1
                return buffer.popleft()  # type: ignore[no-any-return]
            item = state.take()
            if item is EMPTY:
                if wait == 0 and state.open_senders:
                    raise TimeoutError("the channel is empty; nothing was taken")
                waiter = _backend.ThreadWaiter()
                entry = self._park(waiter)
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if item is not EMPTY:
            return item  # type: ignore[no-any-return]
        item = waiter.wait_blocking(
            lambda: state.unpark(state.recv_waiters, entry),
            lambda handed: _is_signal(handed) or _gave_back(state, handed),
            wait,
        )
        return _item_or_raise(item)  # type: ignore[no-any-return]

    def iter_blocking(self, timeout: float | None = None) -> Iterator[T_co]:
        """Iterate in a thread: ``receive_blocking(timeout)`` until the end of the stream.

        Raises ``EventLoopBlockingError`` (on the first ``next``) on an event-loop thread, and
        ``TimeoutError`` if an item takes longer than ``timeout`` to arrive.
        """
        _backend.check_timeout(timeout)
        return iterate_blocking(self.receive_blocking, timeout)

    def clone(self) -> Self:
        """Another receiver on the same channel; each item goes to exactly one receiver."""
        state = self._state
        with state.lock:
            if self._closed:
                raise ClosedResourceError
            state.open_receivers += 1
        return type(self)._create(state)

    def close(self) -> None:
        """Close this receiver (idempotent). Its own parked receives fail with ClosedResourceError.

        When the last receiver clone closes, buffered items are discarded and senders (parked or
        future) get ``SendBrokenError``.
        """
        state = self._state
        with state.lock:
            if self._closed:
                return
            self._closed = True
            state.close_receiver(self)
            woken = state.take_woken()
        if woken:
            state.wake(woken)


def iterate_blocking(
    receive_blocking: Callable[[float | None], T], timeout: float | None
) -> Iterator[T]:
    """``receive_blocking(timeout)`` until the end of the stream: a thread's ``for`` loop."""
    while True:
        try:
            item = receive_blocking(timeout)
        except EndOfStream:
            return
        yield item


def _gave_back(state: _State, item: object) -> bool:
    state.give_back(item)
    return True


def check_capacity(capacity: object, name: str = "capacity") -> float:
    """``capacity`` as a channel capacity, or ``ValueError`` naming the bad value."""
    if capacity == math.inf:
        return math.inf
    if not isinstance(capacity, int) or isinstance(capacity, bool):  # 1.0 and True are not
        raise ValueError(f"{name} must be a non-negative int or math.inf, got {capacity!r}")
    if capacity < 0:
        raise ValueError(f"{name} cannot be negative, got {capacity!r}")
    return capacity


def check_yield_every(yield_every: object) -> int:
    if type(yield_every) is not int or yield_every < 1:
        raise ValueError(f"yield_every must be a positive int, got {yield_every!r}")
    return yield_every


class channel(tuple[Sender[T], ChannelReceiver[T]]):
    """Create a channel and return its ``(Sender[T], Receiver[T])`` pair.

    ``channel[int](10)`` gives a typed pair. ``capacity`` is ``0`` (rendezvous), a positive int,
    or ``math.inf``; ``yield_every`` is the scheduling budget (see the module docstring).
    """

    def __new__(  # type: ignore[misc]
        cls, capacity: float, *, yield_every: int = DEFAULT_YIELD_EVERY
    ) -> tuple[Sender[T], ChannelReceiver[T]]:
        state = _State(check_capacity(capacity), check_yield_every(yield_every))
        return Sender._create(state), ChannelReceiver._create(state)
