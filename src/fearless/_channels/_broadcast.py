"""Broadcast: one ring buffer, every subscriber sees every item.

Specification (``docs/broadcast.md`` is the user guide; ``docs/design/concurrency.md``,
"Broadcast shares one ring", gives the reasons):

Creating
    ``broadcast[T](capacity, *, on_lag="error", yield_every=DEFAULT_YIELD_EVERY)`` returns a
    ``(BroadcastSender[T], Subscription[T])`` pair, as ``channel`` and tokio's
    ``broadcast::channel`` do. The first subscription exists from the start, so a producer started
    before its consumers loses nothing; close it if you do not want it (under ``"block"`` an
    unread subscription holds the sender back). More subscriptions come from
    ``sender.subscribe()`` (starting at the next item sent) and ``subscription.clone()`` (starting
    where the original stands), at any time. ``capacity`` is a positive int: a ring has slots, so
    ``0`` and ``math.inf`` mean nothing here. ``on_lag`` is ``"error"``, ``"drop"`` or
    ``"block"``. Anything else raises ``ValueError`` naming the value.

Delivery and order
    Each subscription sees every item sent after it was created, in the order sent (each sender
    clone's items in that sender's order), except the items it loses by lagging (below). Tasks
    sharing one subscription share its position: each item reaches one of them.

The ring
    Items are stored once, whatever the number of subscribers: item number ``s`` (sequence numbers
    count every item ever sent) sits in slot ``s % capacity``, so the ring holds the last
    ``capacity`` items sent. A subscription is just its next sequence number: receiving reads the
    slot and moves the number on, and writes nothing shared (no per-item reader count), which keeps
    a receive about as cheap as the core channel's. The price: an item stays referenced by the ring
    until it is overwritten, ``capacity`` sends later, even after every subscription has read it
    (tokio drops it at the last read, which costs every receive an atomic decrement). When the last
    subscription closes, the ring releases every item at once. An item sent while no subscription
    is open is counted as sent and not stored: no subscription can ever see it (a new subscription
    starts at the next item). Under ``"block"``, the sender finds the slowest subscription by a
    scan of the positions, done only when a cached lower bound says the ring might be full.

Lagging (``on_lag``), when a subscription is ``capacity`` items behind and another item is sent
    ``"error"`` (the default; tokio's behaviour): the send overwrites the oldest item. The lagging
    subscription's next receive raises ``Lagged`` with ``missed``, the exact number of items it
    lost, having already moved it to the oldest item still kept; the receive after that goes on
    from there. ``"drop"``: the same, silently; the items lost are counted in the subscription's
    ``statistics().missed`` (and the broadcast's ``total_missed``). ``"block"``: the send waits
    until the slowest subscription has read the oldest item, or closed (backpressure; nothing is
    ever lost). Only ``"block"`` makes ``send_nowait`` raise ``WouldBlock``.

Closing
    Once every sender clone is closed, each subscription drains the items left for it, then sees
    ``EndOfStream``. Closing a subscription takes it out at once: it stops counting towards
    backpressure, and a sender parked on it is woken. Sending never fails
    because no subscription is open (one may subscribe later; see The ring), so there is no
    ``BrokenResourceError`` here. Using an endpoint after closing it raises
    ``ClosedResourceError`` (``SendClosedError``, carrying the items, for a sender); closing an
    endpoint wakes its own parked operations with that error (a parked send's items are not sent).

Cancellation
    Atomic, under anyio cancel scopes, trio, and native asyncio cancellation alike. A parked
    receive is woken with no item (wake-then-read): it reads the ring only once it runs, so a
    cancelled receive consumed nothing and has nothing to give back. A parked send (``"block"``)
    is woken when the slot it waits for frees and puts its item in only once it runs, so a
    cancelled send sent nothing; a cancelled ``send_many`` sent exactly a prefix of its items.

Waking
    A send wakes the receives parked at that moment, all of them and only them, once per send (and
    once per ``send_many`` batch, or per stretch of it between two waits). Parked senders are
    served first come, first served: the first is woken when the last subscription at the slowest
    position moves on or closes, and a sender arriving later waits behind it even if there is
    room.

Scheduling
    Every async operation is a cancel point, and yields once every ``yield_every`` operations on
    that endpoint and whenever it waits, as the core channel does. An endpoint binds to the event
    loop whose tasks use it (at its first async operation, then at every yield): when that loop
    shuts down, the endpoint is closed (``docs/design/concurrency.md``, "Closing releases
    everyone").

Threads
    A broadcast is shared by tasks of any event loop and by OS threads alike. Threads use
    ``send_blocking`` (which waits only under ``"block"``), ``receive_blocking`` and
    ``iter_blocking``, each with an optional timeout after which it raises ``TimeoutError``
    having sent or taken nothing; on a thread that runs an event loop they raise
    ``EventLoopBlockingError`` at once instead of deadlocking it. ``send_nowait``,
    ``receive_nowait``, ``subscribe``, ``clone``, ``close`` and ``statistics`` are safe from any
    thread. Parked parties are woken through their own event loop; a sender whose loop has shut
    down while it held the turn hands the turn on, and a thread feeding a loop that shut down is
    released as if the endpoints used there had been closed.

Locking (``docs/design/concurrency.md``, "Threads and cells")
    One ``threading.Lock`` per broadcast guards everything its endpoints share: the ring, the
    positions, the counters, the queues of parked parties, the subscription registry. Critical
    sections are synchronous and short, and hold the lock across no ``await``; parties to wake
    are claimed inside them and woken after the lock is released. What could re-enter is kept
    out: items overwritten or released are dropped after the lock is released, and a
    subscription garbage-collected while the lock is held (its finalizer cannot wait for the
    lock: the holder may be this very thread) is queued as an orphan and closed by whoever
    releases the lock next.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal, Self, TypeVar, final

from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import ObjectSendStream

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import Lagged, SendClosedError
from .._parking import CLOSED, READY
from .._parking import EMPTY as _EMPTY
from ._base import (
    DEFAULT_YIELD_EVERY,
    LoopBound,
    Receiver,
    check_yield_every,
    iterate_blocking,
    warn_unclosed,
)

__all__ = [
    "BroadcastSender",
    "BroadcastStatistics",
    "LagPolicy",
    "Subscription",
    "SubscriptionStatistics",
    "broadcast",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

LagPolicy = Literal["error", "drop", "block"]
"""What happens when a subscription falls ``capacity`` items behind (see the module docstring)."""

_POLICIES: Final = ("error", "drop", "block")


def _discard(waiters: list[Any] | deque[Any], entry: object) -> None:
    try:
        waiters.remove(entry)
    except ValueError:
        pass  # already taken off by a wake


def _nothing_to_undo(_: object) -> bool:
    # A parked receive is woken with no item (wake-then-read): if it is cancelled after the wake,
    # it consumed nothing and has nothing to give back.
    return True


@final
@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    """A snapshot of a broadcast, the same from the sender and from every subscription."""

    capacity: int
    """The ring's size: the most items kept for the slowest subscription."""
    on_lag: LagPolicy
    """The lag policy: ``"error"``, ``"drop"`` or ``"block"``."""
    current_buffer_used: int
    """Items kept now: sent, and not yet read (or skipped) by at least one open subscription."""
    open_senders: int
    """Sender clones not yet closed."""
    subscribers: int
    """Subscriptions not yet closed."""
    tasks_waiting_send: int
    """Tasks and threads parked in ``send``/``send_many``/``send_blocking`` (only under
    ``"block"``)."""
    tasks_waiting_receive: int
    """Tasks and threads parked in ``receive``/``receive_many``/``receive_blocking``, over every
    subscription."""
    total_sent: int
    """Items sent since the broadcast was created (each counted once, whatever the subscribers)."""
    total_missed: int
    """Items that lagging subscriptions lost, summed over subscriptions, counted when each found
    out (at its next receive)."""


@final
@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """A snapshot of one subscription, and of the broadcast behind it."""

    pending: int
    """Items this subscription can still receive now (lost items not counted)."""
    received: int
    """Items this subscription has received."""
    missed: int
    """Items this subscription lost by lagging, and has been told about (``Lagged`` or, under
    ``"drop"``, skipped silently)."""
    broadcast: BroadcastStatistics
    """The broadcast's statistics."""


class _ParkedSend:
    """A party parked in a send under ``"block"``, woken (with the turn) to retry.

    Its waiter never changes: a send that must wait again after using its turn parks a new entry
    in this one's place (the head of the line), so a late ``wake`` of the old waiter can never
    reach the new one.
    """

    __slots__ = ("owner", "waiter", "woken")

    def __init__(self, waiter: _backend.Waiter, owner: object) -> None:
        self.waiter = waiter
        self.owner = owner
        self.woken = False  # claimed with the turn and not yet run: it holds the turn


class _ParkedReceive:
    __slots__ = ("owner", "waiter")

    def __init__(self, waiter: _backend.Waiter, owner: object) -> None:
        self.waiter = waiter
        self.owner = owner


class _State:
    """What the sender clones and subscriptions of one broadcast share.

    Every field (and every subscription's ``_pos``, ``_missed`` and ``_closed``) is read and
    written under ``lock``, by tasks of any event loop and by threads alike. The methods below
    expect the caller to hold it, unless they say otherwise. Parties to wake are claimed under the
    lock and collected in ``woken``; :meth:`unlock` releases the lock and wakes them after.
    """

    __slots__ = (
        "at_min",
        "block",
        "capacity",
        "floor",
        "live",
        "lock",
        "min_pos",
        "on_lag",
        "open_senders",
        "orphans",
        "recv_waiters",
        "send_waiters",
        "slots",
        "subscriptions",
        "tail",
        "threads",
        "total_missed",
        "woken",
        "yield_every",
    )

    def __init__(self, capacity: int, on_lag: LagPolicy, yield_every: int) -> None:
        self.lock = threading.Lock()
        self.threads = False  # a thread has made a blocking call on it (see _loop_shut_down)
        self.capacity = capacity
        self.on_lag = on_lag
        self.block = on_lag == "block"
        self.yield_every = yield_every
        # Item number s lives in slots[s % capacity]. Invariants:
        #   the ring holds items floor .. tail-1 (floor == tail - capacity; negative at first)
        #   every open subscription's position p (its next item) has p <= tail; p < floor means
        #   it lags (the items p .. floor-1 are overwritten); under "block", p >= floor always
        #   min_pos <= p for every open subscription (a lower bound, exact after recount());
        #   while send_waiters is not empty, at_min counts the open subscriptions at min_pos (a
        #   parked sender waits for them to move on); a count too low only costs an early
        #   recount, a count too high would strand the sender. With none at min_pos (none open,
        #   or only collected ones not yet reaped) min_pos trails tail as items go in, so
        #   wake_sender() recounts before it concludes that the ring is full.
        #   live == 0  =>  every slot is None (nobody can ever read them)
        self.slots: list[Any] = [None] * capacity
        self.tail = 0  # the sequence number the next item sent will get
        self.floor = -capacity
        self.live = 0  # open subscriptions
        # The open subscriptions by id, held weakly (an unclosed subscription must still be
        # collectable, and warn): "block" needs the slowest position, statistics every position.
        # Plain weak references without callbacks, so nothing changes the registry behind the
        # lock's back; a subscription leaves it when it closes or, collected, is reaped.
        self.subscriptions: dict[int, weakref.ref[Subscription[Any]]] = {}
        self.min_pos = 0
        self.at_min = 0
        self.open_senders = 1
        self.total_missed = 0
        self.recv_waiters: list[_ParkedReceive] = []
        # FIFO; only the first may be woken (and it keeps its place until it has sent).
        self.send_waiters: deque[_ParkedSend] = deque()
        self.woken: list[Any] = []  # claimed under the lock, to be woken after it
        # Subscriptions collected while some thread held the lock (appended without it:
        # deque.append is atomic); closed by the next unlock().
        self.orphans: deque[Subscription[Any]] = deque()

    # -- the lock ---------------------------------------------------------------------------------

    def unlock(self) -> None:
        """Release the lock, then wake the parties claimed under it and reap orphans."""
        woken = self.woken
        if woken:
            self.woken = []
            self.lock.release()
            self.wake(woken)
        else:  # (not `woken` after the release: it is the live list, others may fill it then)
            self.lock.release()
        if self.orphans:
            self.reap()

    def wake(self, woken: list[Any]) -> None:
        """Without the lock: wake the parties ``unlock`` collected.

        A receiver that can never resume (its event loop has shut down) loses nothing: it was
        handed no item. A sender that can never resume may hold the turn: it leaves the line,
        and the turn goes on.
        """
        for entry in woken:
            if not entry.waiter.wake() and type(entry) is _ParkedSend:
                self.leave(entry)

    def leave(self, entry: _ParkedSend) -> None:
        """Without the lock: ``entry`` gives up its place in line, handing on the turn if it had
        it (it had sent nothing since it got it)."""
        self.lock.acquire()
        try:
            _discard(self.send_waiters, entry)
            self.wake_sender()
        finally:
            self.unlock()

    def reap(self) -> None:
        """Without the lock: close the subscriptions collected while the lock was held.

        Called after every release (by :meth:`unlock`), so an orphan is closed as soon as the
        lock is free: a finalizer appends first and tries the lock after (see
        ``Subscription.__del__``), so whichever release comes after the append sees it.
        """
        while self.orphans:
            released = []
            self.lock.acquire()
            try:
                while self.orphans:
                    orphan = self.orphans.popleft()
                    if not orphan._closed:
                        orphan._closed = True
                        released.append(self.remove_subscriber(orphan))
            finally:
                woken = self.woken
                self.woken = []
                self.lock.release()
            self.wake(woken)
            del released  # the ring's items, dropped without the lock

    # -- sending ----------------------------------------------------------------------------------

    def put(self, item: Any) -> Any:
        """Store ``item`` as the next one; the caller checked the policy. Returns the item it
        overwrote, for the caller to drop after releasing the lock (its finalizer might use this
        broadcast)."""
        tail = self.tail
        slots = self.slots
        index = tail % self.capacity
        old = slots[index]
        slots[index] = item if self.live else None
        self.tail = tail + 1
        self.floor = tail + 1 - self.capacity
        return old

    def full(self) -> bool:
        """Whether the slowest open subscription is ``capacity`` items behind ("block")."""
        if self.tail - self.min_pos < self.capacity:
            return False
        self.recount()
        return self.tail - self.min_pos >= self.capacity

    def recount(self) -> None:
        positions = []
        for ref in self.subscriptions.values():
            subscription = ref()
            if subscription is not None:  # None: collected, its orphan not yet reaped
                positions.append(subscription._pos)
        self.min_pos = least = min(positions, default=self.tail)
        self.at_min = positions.count(least)

    def left_min(self) -> None:
        """A subscription at ``min_pos`` moved on or closed while a sender waits."""
        self.at_min -= 1
        if self.at_min <= 0:
            self.recount()
            self.wake_sender()

    def wake_receivers(self) -> None:
        """Claim every parked receive (they re-read the ring when they run)."""
        waiters = self.recv_waiters
        self.recv_waiters = []
        woken = self.woken
        for entry in waiters:
            if entry.waiter.claim(READY):
                woken.append(entry)

    def wake_sender(self) -> None:
        """If the ring has room, give the turn to the first parked sender (once)."""
        if self.full():  # recounts if it looks full: min_pos trails tail when nobody holds it
            return
        waiters = self.send_waiters
        while waiters:
            entry = waiters[0]
            if entry.woken:
                return
            if entry.waiter.claim(READY):
                entry.woken = True
                self.woken.append(entry)
                return
            waiters.popleft()  # cancelled natively, not yet run: its abort finds it gone

    def take_turn(self, items: list[Any], sent: int, dropped: list[Any]) -> int:
        """A parked send that holds the turn puts what fits; returns how many of ``items`` are
        in now (overwritten items go to ``dropped``)."""
        put = self.put
        while sent < len(items) and not self.full():
            dropped.append(put(items[sent]))
            sent += 1
        return sent

    def end_turn(self, entry: _ParkedSend) -> None:
        """A parked send has put its last item: it leaves the head of the line."""
        first = self.send_waiters.popleft()
        assert first is entry, (first, entry)
        if self.send_waiters:
            self.wake_sender()
        if self.recv_waiters:
            self.wake_receivers()

    def wait_again(self, entry: _ParkedSend, waiter: _backend.Waiter) -> _ParkedSend:
        """A parked send used its turn and the ring is full again: it keeps its place at the
        head of the line, with a new entry, and the items it put are announced."""
        again = _ParkedSend(waiter, entry.owner)
        assert self.send_waiters[0] is entry, (self.send_waiters[0], entry)
        self.send_waiters[0] = again
        if self.recv_waiters:  # the subscriptions must run to free a slot
            self.wake_receivers()
        return again

    def abort_send(self, entry: _ParkedSend) -> object:
        """Without the lock: a parked send gives up (cancelled, timed out). Returns what
        ``revoke`` returned. A claimed entry keeps its place: it holds the turn and its party
        will either use it or, through ``undo``, :meth:`leave`."""
        self.lock.acquire()
        try:
            outcome = entry.waiter.revoke()
            if outcome is _backend.ABORTED:
                _discard(self.send_waiters, entry)
                self.wake_sender()  # it may have been the head, waiting for room
        finally:
            self.unlock()
        return outcome

    def undo_send(self, entry: _ParkedSend, _: object) -> bool:
        """Without the lock: a parked send was claimed (given the turn, or closed) and then
        interrupted before it ran (native asyncio cancellation, ``KeyboardInterrupt`` in a
        thread). It sent nothing since the claim: it leaves the line, handing the turn on, and
        the interruption is raised."""
        self.leave(entry)
        return True

    def abort_receive(self, entry: _ParkedReceive) -> object:
        """Without the lock: a parked receive gives up. Returns what ``revoke`` returned."""
        self.lock.acquire()
        try:
            outcome = entry.waiter.revoke()
            _discard(self.recv_waiters, entry)
        finally:
            self.unlock()
        return outcome

    # -- subscriptions ----------------------------------------------------------------------------

    def add_subscriber(self, subscription: Subscription[Any]) -> None:
        self.live += 1
        self.subscriptions[id(subscription)] = weakref.ref(subscription)
        subscription._closed = False
        if self.send_waiters and subscription._pos == self.min_pos:  # a clone of a slowest one
            self.at_min += 1

    def remove_subscriber(self, subscription: Subscription[Any]) -> list[Any] | None:
        """Take ``subscription`` out; returns the ring's items if it was the last one (the
        caller drops them after releasing the lock)."""
        self.live -= 1
        self.subscriptions.pop(id(subscription), None)
        released = None
        if not self.live:  # release every item: nobody can read them
            released = self.slots[:]
            self.slots[:] = [None] * self.capacity
        if self.send_waiters and subscription._pos == self.min_pos:
            self.left_min()
        return released

    def buffer_used(self) -> int:
        """Items some open subscription can still read."""
        floor, tail = self.floor, self.tail
        used = 0
        for ref in self.subscriptions.values():
            subscription = ref()
            if subscription is not None:
                used = max(used, tail - max(subscription._pos, floor))
        return used

    def claim_own(self, waiters: list[Any] | deque[Any], owner: object) -> None:
        """``owner`` is closing: its parked operations leave ``waiters``, woken with CLOSED."""
        own = [entry for entry in waiters if entry.owner is owner]
        for entry in own:
            waiters.remove(entry)
            if entry.waiter.claim(CLOSED):
                self.woken.append(entry)

    def statistics(self) -> BroadcastStatistics:
        return BroadcastStatistics(
            capacity=self.capacity,
            on_lag=self.on_lag,
            current_buffer_used=self.buffer_used(),
            open_senders=self.open_senders,
            subscribers=self.live,
            tasks_waiting_send=sum(1 for e in self.send_waiters if e.woken or e.waiter.alive()),
            tasks_waiting_receive=sum(1 for e in self.recv_waiters if e.waiter.alive()),
            total_sent=self.tail,
            total_missed=self.total_missed,
        )


def _deadline(wait: float) -> float | None:
    """When a ``*_blocking`` call given ``wait`` seconds (-1: forever) must give up."""
    return None if wait < 0 else time.monotonic() + wait


def _left(deadline: float | None) -> float:
    """Seconds left until ``deadline`` (-1: forever), for ``wait_blocking``."""
    return -1 if deadline is None else max(deadline - time.monotonic(), 0.0)


@final
class BroadcastSender(LoopBound, ObjectSendStream[T]):
    """The sending side of a broadcast. Created only by :func:`broadcast` (or ``clone()``).

    ``subscribe()`` makes a new subscription; ``clone()`` another independently closable sender.
    Invariant in ``T``: it both sends ``T`` and hands out subscriptions that receive ``T``. Safe to
    share between tasks, event loops and threads. Every async method is a cancel point and is
    atomic under cancellation.
    """

    __slots__ = ("_closed", "_state")

    _state: _State
    _closed: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("BroadcastSender has no public constructor; use fearless.broadcast()")

    @classmethod
    def _create(cls, state: _State) -> Self:
        self = object.__new__(cls)
        self._state = state
        self._budget = 0  # the first async operation yields, and binds the sender to its loop
        self._closed = False
        self._home = None
        return self

    def send_nowait(self, item: T) -> None:
        """Send ``item`` to every open subscription without waiting.

        Under ``"error"`` and ``"drop"`` this never waits: if the slowest subscription is
        ``capacity`` items behind, the oldest item is overwritten (that subscription lags). Under
        ``"block"`` it raises ``WouldBlock`` (nothing sent) if the slowest subscription is
        ``capacity`` items behind or another send is already waiting. Raises ``SendClosedError``
        (carrying the item) if this sender is closed.

        Safe from any thread; subscriptions parked on an event loop are woken through that loop.
        """
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise SendClosedError((item,))
            if state.block and (state.send_waiters or state.full()):
                raise WouldBlock
            old = state.put(item)
            if state.recv_waiters:
                state.wake_receivers()
        finally:
            state.unlock()
        del old  # the item overwritten, dropped without the lock

    async def send(self, item: T) -> None:
        """Send ``item`` to every open subscription.

        Waits only under ``"block"``, while the slowest subscription is ``capacity`` items behind
        (or other sends wait before it: parked sends, of tasks and threads alike, go first come,
        first served). Sending while no subscription is open succeeds, and nobody will see the
        item. Raises ``SendClosedError`` (carrying the item) if this sender is, or while waiting
        gets, closed.

        Cancellation: a cancel point. If cancelled, the item was not sent: no subscription will
        see it.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        # The fast path: room, and nobody to wake. It claims nobody, so it needs no unlock(),
        # only the orphan check that must follow every release (a collection can still run
        # inside it: CPython runs a pending one at the next call, lock.acquire() included).
        old = None  # the item overwritten, dropped without the lock (when this frame ends)
        lock.acquire()
        try:
            tail = state.tail
            if (
                not state.recv_waiters
                and (
                    not state.block
                    or (not state.send_waiters and tail - state.min_pos < state.capacity)
                )
                and not self._closed
            ):
                slots = state.slots  # put(), inlined
                index = tail % state.capacity
                old = slots[index]
                slots[index] = item if state.live else None
                state.tail = tail + 1
                state.floor = tail + 1 - state.capacity
                return
        finally:
            lock.release()
            if state.orphans:
                state.reap()
        entry = None
        lock.acquire()
        try:
            if self._closed:
                raise SendClosedError((item,))
            if state.block and (state.send_waiters or state.full()):
                entry = self._enqueue(backend.new_waiter())
            else:
                old = state.put(item)
                if state.recv_waiters:
                    state.wake_receivers()
        finally:
            state.unlock()
        del old
        if entry is not None:
            await self._send_parked(backend, entry, [item])

    async def send_many(self, items: Iterable[T]) -> None:
        """Send every item in ``items``, in order; one scheduling decision for the batch.

        Receives parked on the broadcast are woken once for the batch (under ``"block"``, once per
        stretch sent between two waits). Under ``"error"``/``"drop"`` a batch longer than the
        capacity overwrites its own first items for any subscription that has not read them yet.
        Other senders' items may interleave only where this batch had to wait. Closing: as
        :meth:`send`; the error's ``unsent`` holds the items not sent.

        Cancellation: if cancelled while waiting (``"block"`` only), the items already sent are
        exactly a prefix of ``items`` and stay sent; the rest were not sent. Cancelled at the
        start, nothing was sent.
        """
        batch = list(items)
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        entry = None
        state.lock.acquire()
        try:
            if self._closed:
                raise SendClosedError(tuple(batch))
            put = state.put
            if not state.block:
                dropped = [put(item) for item in batch]
            else:
                dropped = []
                for k, item in enumerate(batch):
                    if state.send_waiters or state.full():
                        entry = self._enqueue(backend.new_waiter())
                        batch = batch[k:]
                        break
                    dropped.append(put(item))
            if state.recv_waiters:
                state.wake_receivers()
        finally:
            state.unlock()
        del dropped  # the items overwritten, dropped without the lock
        if entry is not None:
            await self._send_parked(backend, entry, batch)

    def _enqueue(self, waiter: _backend.Waiter) -> _ParkedSend:
        """Under the lock: join the line of parked sends ("block": the ring is full, or others
        wait). The items put so far are announced, so that the subscriptions run and free room."""
        state = self._state
        entry = _ParkedSend(waiter, self)
        state.send_waiters.append(entry)
        if state.recv_waiters:
            state.wake_receivers()
        return entry

    async def _send_parked(
        self, backend: _backend.Backend, entry: _ParkedSend, items: list[Any]
    ) -> None:
        """Under ``"block"``, parked: wait for the turn and a free slot, send what fits, repeat
        until every item is sent (wake-then-send: an item goes in only once its sender runs)."""
        state = self._state
        sent = 0  # items[:sent] are in the ring
        while True:
            result = await entry.waiter.wait(
                partial(state.abort_send, entry), partial(state.undo_send, entry)
            )
            self._budget = state.yield_every
            dropped: list[Any] = []
            state.lock.acquire()
            try:
                if result is CLOSED or self._closed:
                    _discard(state.send_waiters, entry)
                    state.wake_sender()  # hand the turn on if it had reached us
                    raise SendClosedError(tuple(items[sent:]))
                # Woken: this entry is first in line and the ring has room.
                sent = state.take_turn(items, sent, dropped)
                if sent == len(items):
                    state.end_turn(entry)
                    return
                entry = state.wait_again(entry, backend.new_waiter())
            finally:
                state.unlock()
                del dropped  # the items overwritten, dropped without the lock

    def send_blocking(self, item: T, timeout: float | None = None) -> None:
        """Send ``item`` from a thread; under ``"block"``, block while the slowest subscription
        is ``capacity`` items behind (backpressure).

        Under ``"error"`` and ``"drop"`` it never blocks: it is :meth:`send_nowait`. Under
        ``"block"`` it waits its turn behind the sends already parked (tasks and threads alike,
        first come, first served), then sends.

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once (whatever the policy) instead of deadlocking it.
        Subscriptions parked on an event loop are woken through that loop.

        Timeout: after ``timeout`` seconds (``None``: no limit) it raises ``TimeoutError``, and
        the item was not sent (``0``: send only if there is room now); a wait interrupted by an
        exception (``KeyboardInterrupt``) did not send either, and hands its turn on.

        Closing: raises ``SendClosedError`` (carrying the item) if this sender is, or while
        blocked gets, closed. Closing the subscriptions releases it: a closed subscription no
        longer holds the sender back, and with none open every send goes through (and nobody
        sees it). A thread feeding subscriptions used on an event loop is released when that
        loop shuts down, since that closes them.
        """
        wait = _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("send_blocking")
        state = self._state
        state.threads = True
        waiter = None
        state.lock.acquire()
        try:
            if self._closed:
                raise SendClosedError((item,))
            if state.block and (state.send_waiters or state.full()):
                if wait == 0:
                    raise TimeoutError("the broadcast is full; the item was not sent")
                waiter = _backend.ThreadWaiter()
                entry = self._enqueue(waiter)
            else:
                old = state.put(item)
                if state.recv_waiters:
                    state.wake_receivers()
        finally:
            state.unlock()
        if waiter is None:
            del old  # the item overwritten, dropped without the lock
            return
        deadline = _deadline(wait)
        items = [item]
        while True:
            result = waiter.wait_blocking(
                partial(state.abort_send, entry), partial(state.undo_send, entry), _left(deadline)
            )
            dropped: list[Any] = []
            state.lock.acquire()
            try:
                if result is CLOSED or self._closed:
                    _discard(state.send_waiters, entry)
                    state.wake_sender()
                    raise SendClosedError((item,))
                if state.take_turn(items, 0, dropped):
                    state.end_turn(entry)
                    return
                if _left(deadline) == 0:  # woken with no room after all, and out of time
                    _discard(state.send_waiters, entry)
                    state.wake_sender()
                    raise TimeoutError(f"timed out after {timeout} s; the item was not sent")
                waiter = _backend.ThreadWaiter()
                entry = state.wait_again(entry, waiter)
            finally:
                state.unlock()
                del dropped

    def subscribe(self) -> Subscription[T]:
        """A new subscription that sees every item sent from now on. Safe from any thread.

        Raises ``ClosedResourceError`` if this sender is closed.
        """
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            return Subscription._create(state, state.tail)
        finally:
            state.unlock()

    def clone(self) -> Self:
        """Another sender on the same broadcast; it ends when every sender clone is closed."""
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            state.open_senders += 1
        finally:
            state.unlock()
        return type(self)._create(state)

    def close(self) -> None:
        """Close this sender (idempotent; safe from any thread). Its own parked sends fail with
        ``SendClosedError`` (tasks and threads alike).

        When the last sender clone closes, subscriptions drain what is left, then see
        ``EndOfStream`` (parked receives, in tasks and threads, are woken to see it).
        """
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                return
            self._closed = True
            state.claim_own(state.send_waiters, self)
            if state.send_waiters:
                state.wake_sender()
            state.open_senders -= 1
            if not state.open_senders:
                state.wake_receivers()
        finally:
            state.unlock()

    async def aclose(self) -> None:
        """Close, then a cancel point. The sender is closed even if the call is cancelled."""
        self.close()
        await _backend.current().checkpoint()

    def statistics(self) -> BroadcastStatistics:
        """A snapshot of the broadcast: subscribers, buffer use, lag counts, waiting parties."""
        state = self._state
        state.lock.acquire()
        try:
            return state.statistics()
        finally:
            state.unlock()

    def __del__(self) -> None:
        warn_unclosed(self)


@final
class Subscription(LoopBound, Receiver[T_co]):
    """One subscriber to a broadcast. Created only by ``subscribe()`` or ``clone()``.

    Iterate with ``async for`` (in a task) or ``for item in subscription.iter_blocking()`` (in a
    thread); iteration ends at end of stream (and lets ``Lagged`` out: catch it and iterate again
    to resume). Safe to share between tasks, event loops and threads (they then share its
    position: each item reaches one of them). Every async method is a cancel point and is atomic
    under cancellation.
    """

    __slots__ = (
        "_capacity",
        "_closed",
        "_missed",
        "_pos",
        "_slots",
        "_start",
        "_state",
    )

    _state: _State
    _pos: int  # the sequence number of the next item to read (under the state's lock)
    _start: int  # where this subscription began (received = pos - start - missed)
    _missed: int
    _closed: bool
    # The state's ring, cached here: one attribute load less per item on the hot path.
    _slots: list[Any]
    _capacity: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("Subscription has no public constructor; use BroadcastSender.subscribe()")

    @classmethod
    def _create(cls, state: _State, position: int) -> Self:
        """Under the lock: a new subscription at ``position``, registered."""
        self = object.__new__(cls)
        self._state = state
        self._slots, self._capacity = state.slots, state.capacity
        self._pos = self._start = position
        self._missed = 0
        self._budget = 0  # the first async operation yields, and binds it to its loop
        self._home = None
        self._closed = True  # until registered: a half-built subscription holds nothing
        state.add_subscriber(self)
        return self

    # -- reading the ring (synchronous, under the lock) -------------------------------------------

    def _catch_up(self) -> None:
        """If the ring has moved past this subscription's position, jump to the oldest kept item
        and count the loss; under ``"error"`` raise ``Lagged`` after the jump."""
        state = self._state
        missed = state.floor - self._pos
        if missed > 0:
            self._pos = state.floor
            self._missed += missed
            state.total_missed += missed
            if state.on_lag == "error":
                raise Lagged(missed)

    def _take(self) -> Any:
        """The next item, or ``_EMPTY``; may raise ``Lagged``."""
        state = self._state
        pos = self._pos
        if pos < state.floor:
            self._catch_up()
            pos = self._pos
        if pos == state.tail:
            return _EMPTY
        item = self._slots[pos % self._capacity]
        self._pos = pos + 1
        if state.send_waiters and pos == state.min_pos:
            state.left_min()
        return item

    def _take_more(self, items: list[Any], max_items: int) -> list[Any]:
        """After a first item: what else is there, up to ``max_items`` in all."""
        take = self._take
        while len(items) < max_items:
            item = take()
            if item is _EMPTY:
                break
            items.append(item)
        return items

    def _enqueue(self, waiter: _backend.Waiter) -> _ParkedReceive:
        """Under the lock, with nothing to read: park (or ``EndOfStream``, if nothing can come)."""
        state = self._state
        if not state.open_senders:
            raise EndOfStream
        entry = _ParkedReceive(waiter, self)
        state.recv_waiters.append(entry)
        return entry

    def receive_nowait(self) -> T_co:
        """The next item, without waiting.

        Raises ``WouldBlock`` if there is none yet, ``EndOfStream`` if there never will be (every
        sender closed and this subscription drained), ``Lagged`` if it fell behind (see
        :meth:`receive`), ``ClosedResourceError`` if this subscription is closed. Safe from any
        thread.
        """
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            item = self._take()
            if item is _EMPTY:
                raise WouldBlock if state.open_senders else EndOfStream
        finally:
            state.unlock()
        return item  # type: ignore[no-any-return]

    async def receive(self) -> T_co:
        """The next item for this subscription, waiting until one is sent.

        Ordering: items arrive in the order sent. Lagging: under ``"error"``, if the subscription
        fell more than ``capacity`` items behind, raises ``Lagged(missed)`` and moves on to the
        oldest item still kept, which the next receive returns; under ``"drop"`` it skips to it
        silently. Closing: ``EndOfStream`` once every sender is closed and the items left are
        drained, ``ClosedResourceError`` if this subscription is (or gets) closed.

        Cancellation: a cancel point. If cancelled, nothing was consumed: the item stays for this
        subscription's next receive.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        # The fast path (see BroadcastSender.send): an item is there and no sender waits.
        lock.acquire()
        try:
            pos = self._pos
            if state.floor <= pos < state.tail and not state.send_waiters and not self._closed:
                self._pos = pos + 1  # _take(), inlined
                return self._slots[pos % self._capacity]  # type: ignore[no-any-return]
        finally:
            lock.release()
            if state.orphans:
                state.reap()
        return await self._receive(backend)  # type: ignore[no-any-return]

    async def __anext__(self) -> T_co:
        # receive(), inlined: iteration is the commonest way to consume a subscription.
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            pos = self._pos
            if state.floor <= pos < state.tail and not state.send_waiters and not self._closed:
                self._pos = pos + 1
                return self._slots[pos % self._capacity]  # type: ignore[no-any-return]
        finally:
            lock.release()
            if state.orphans:
                state.reap()
        try:
            return await self._receive(backend)  # type: ignore[no-any-return]
        except EndOfStream:
            raise StopAsyncIteration from None

    async def _receive(self, backend: _backend.Backend) -> Any:
        """``receive`` past its fast path: lagging, a sender to wake, or nothing to read yet."""
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            item = self._take()
            if item is _EMPTY:
                entry = self._enqueue(backend.new_waiter())
        finally:
            state.unlock()
        if item is _EMPTY:
            item = await self._wait(backend, entry, 0)
        return item

    async def receive_many(self, max_items: int) -> list[T_co]:
        """Wait for at least one item, then return up to ``max_items`` of them, in order.

        One scheduling decision for the batch: after the (at most one) wait it takes what is there
        without yielding, in one step (no other party sharing this subscription takes items from
        the middle of the batch). Lagging and closing: as :meth:`receive` (``Lagged`` is raised
        before anything is taken; ``EndOfStream`` only when not even one item is left).

        Cancellation: if cancelled, nothing was consumed.
        """
        if type(max_items) is not int or max_items < 1:
            raise ValueError(f"max_items must be a positive int, got {max_items!r}")
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            first = self._take()
            if first is _EMPTY:
                entry = self._enqueue(backend.new_waiter())
            else:
                items = self._take_more([first], max_items)
        finally:
            state.unlock()
        if first is _EMPTY:
            items = await self._wait(backend, entry, max_items)
        return items

    async def _wait(self, backend: _backend.Backend, entry: _ParkedReceive, max_items: int) -> Any:
        """Parked: wait until woken, then read the ring (wake-then-read); park again if another
        party sharing this subscription got there first. Returns one item, or a list of up to
        ``max_items`` if that is not 0."""
        state = self._state
        while True:
            result = await entry.waiter.wait(partial(state.abort_receive, entry), _nothing_to_undo)
            self._budget = state.yield_every
            state.lock.acquire()
            try:
                if result is CLOSED or self._closed:
                    raise ClosedResourceError
                item = self._take()
                if item is not _EMPTY:
                    return self._take_more([item], max_items) if max_items else item
                entry = self._enqueue(backend.new_waiter())
            finally:
                state.unlock()

    def receive_blocking(self, timeout: float | None = None) -> T_co:
        """The next item for this subscription, blocking this thread until one is sent.

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once instead of deadlocking it. Under ``"block"``, a sender
        parked on an event loop is woken through that loop when this read frees its slot.

        Timeout: after ``timeout`` seconds (``None``: no limit) it raises ``TimeoutError``, and
        nothing was taken (``0``: take only what is there now); nor was anything taken by a wait
        interrupted by an exception (``KeyboardInterrupt``). Ordering, lagging and closing: as
        for :meth:`receive` (``Lagged`` under ``"error"``; ``EndOfStream`` as soon as every sender
        is closed and the items left are drained, including when the event loop whose tasks held
        the senders shuts down; ``ClosedResourceError`` if this subscription is, or while blocked
        gets, closed).
        """
        wait = _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("receive_blocking")
        state = self._state
        state.threads = True
        deadline = _deadline(wait)
        while True:
            state.lock.acquire()
            try:
                if self._closed:
                    raise ClosedResourceError
                item = self._take()
                if item is _EMPTY:
                    if state.open_senders and _left(deadline) == 0:
                        raise TimeoutError("nothing was sent in time; nothing was taken")
                    waiter = _backend.ThreadWaiter()
                    entry = self._enqueue(waiter)
            finally:
                state.unlock()
            if item is not _EMPTY:
                return item  # type: ignore[no-any-return]
            result = waiter.wait_blocking(
                partial(state.abort_receive, entry), _nothing_to_undo, _left(deadline)
            )
            if result is CLOSED:
                raise ClosedResourceError

    def iter_blocking(self, timeout: float | None = None) -> Iterator[T_co]:
        """Iterate in a thread: ``receive_blocking(timeout)`` until the end of the stream.

        Raises ``EventLoopBlockingError`` (on the first ``next``) on an event-loop thread, and
        ``TimeoutError`` if an item takes longer than ``timeout`` to arrive. ``Lagged`` (under
        ``"error"``) ends the iteration by propagating: the subscription has moved on to the
        oldest kept item, so call ``iter_blocking()`` again to resume from there.
        """
        _backend.check_timeout(timeout)
        return iterate_blocking(self.receive_blocking, timeout)

    def clone(self) -> Self:
        """A new subscription at this one's position: it sees the same items from here on
        (each subscription sees every item; clones do not share them out). Safe from any
        thread."""
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            return type(self)._create(state, self._pos)
        finally:
            state.unlock()

    def close(self) -> None:
        """Close this subscription (idempotent; safe from any thread). Its own parked receives
        (tasks and threads alike) fail with ``ClosedResourceError``. It stops holding items (and,
        under ``"block"``, the sender) at once."""
        state = self._state
        released = None
        state.lock.acquire()
        try:
            if self._closed:
                return
            self._closed = True
            state.claim_own(state.recv_waiters, self)
            released = state.remove_subscriber(self)
        finally:
            state.unlock()
            del released  # the ring's items, dropped without the lock

    def statistics(self) -> SubscriptionStatistics:
        """A snapshot of this subscription (pending, received, missed) and of the broadcast."""
        state = self._state
        state.lock.acquire()
        try:
            pending = 0 if self._closed else state.tail - max(self._pos, state.floor)
            return SubscriptionStatistics(
                pending=pending,
                received=self._pos - self._start - self._missed,
                missed=self._missed,
                broadcast=state.statistics(),
            )
        finally:
            state.unlock()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        try:
            warn_unclosed(self)
        finally:
            # A collected subscription can never read again: release its share of the ring, or a
            # sender waiting for it under "block" would wait for ever. The lock may be held by
            # this very thread (a collection can run at any allocation, or an item dropped under
            # the lock may hold the last reference), so never wait for it here: queue the
            # subscription as an orphan first, then reap only if the lock is free. If it is not,
            # whoever holds it reaps when releasing it (unlock() checks after every release).
            state = self._state
            state.orphans.append(self)
            if state.lock.acquire(blocking=False):
                state.lock.release()
                state.reap()


def check_broadcast_capacity(capacity: object) -> int:
    """``capacity`` as a ring size, or ``ValueError`` naming the bad value."""
    if type(capacity) is not int or capacity < 1:  # 0, inf, 1.0 and True are not ring sizes
        raise ValueError(
            f"broadcast capacity must be a positive int (a ring has slots: 0 and math.inf are "
            f"not meaningful), got {capacity!r}"
        )
    return capacity


def check_on_lag(on_lag: object) -> LagPolicy:
    if on_lag not in _POLICIES:
        raise ValueError(f"on_lag must be 'error', 'drop' or 'block', got {on_lag!r}")
    return on_lag  # type: ignore[return-value,unused-ignore]


class broadcast(tuple[BroadcastSender[T], Subscription[T]]):
    """Create a broadcast and return its ``(BroadcastSender[T], Subscription[T])`` pair.

    ``broadcast[int](16)`` gives a typed pair. ``capacity`` is a positive int (the ring's size);
    ``on_lag`` is ``"error"`` (default), ``"drop"`` or ``"block"``; ``yield_every`` is the
    scheduling budget. See the module docstring of ``fearless._channels._broadcast``.
    """

    def __new__(  # type: ignore[misc]
        cls,
        capacity: int,
        *,
        on_lag: LagPolicy = "error",
        yield_every: int = DEFAULT_YIELD_EVERY,
    ) -> tuple[BroadcastSender[T], Subscription[T]]:
        state = _State(
            check_broadcast_capacity(capacity), check_on_lag(on_lag), check_yield_every(yield_every)
        )
        sender: BroadcastSender[T] = BroadcastSender._create(state)
        return sender, sender.subscribe()
