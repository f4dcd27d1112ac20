"""Broadcast: one ring buffer, every subscriber sees every item (``concurrency-rules.md`` rule 7).

Specification (``docs/broadcast.md`` is the user guide):

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
    that endpoint and whenever it waits, as the core channel does.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, Self, TypeVar, final

from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import ObjectSendStream

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import Lagged, SendClosedError
from ._channel import (
    DEFAULT_YIELD_EVERY,
    ClosesOnExit,
    Receiver,
    _Signal,
    check_yield_every,
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

READY: Final = _Signal("ready")  # something changed: re-read the ring (or retry the send)
CLOSED: Final = _Signal("closed")  # the parked operation's own endpoint was closed
_EMPTY: Final = _Signal("empty")


def _revoke(entry: _ParkedReceive, waiters: list[Any]) -> object:
    outcome = entry.waiter.revoke()
    _discard(waiters, entry)
    return outcome


def _discard(waiters: list[Any] | deque[Any], entry: object) -> None:
    try:
        waiters.remove(entry)
    except ValueError:
        pass  # already taken off by a wake


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
    """Tasks parked in ``send``/``send_many`` (only under ``"block"``)."""
    tasks_waiting_receive: int
    """Tasks parked in ``receive``/``receive_many``, over every subscription."""
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
    """A task parked in ``send``/``send_many`` under ``"block"``, woken to retry."""

    __slots__ = ("owner", "waiter", "woken")

    def __init__(self, waiter: _backend.Waiter, owner: object) -> None:
        self.waiter = waiter
        self.owner = owner
        self.woken = False  # woken and not yet run: it holds the turn


class _ParkedReceive:
    __slots__ = ("owner", "waiter")

    def __init__(self, waiter: _backend.Waiter, owner: object) -> None:
        self.waiter = waiter
        self.owner = owner


class _State:
    """What the sender clones and subscriptions of one broadcast share."""

    __slots__ = (
        "at_min",
        "block",
        "capacity",
        "floor",
        "live",
        "min_pos",
        "on_lag",
        "open_senders",
        "recv_waiters",
        "send_waiters",
        "slots",
        "subscriptions",
        "tail",
        "total_missed",
        "yield_every",
    )

    def __init__(self, capacity: int, on_lag: LagPolicy, yield_every: int) -> None:
        self.capacity = capacity
        self.on_lag = on_lag
        self.block = on_lag == "block"
        self.yield_every = yield_every
        # Item number s lives in slots[s % capacity]. Invariants:
        #   the ring holds items floor .. tail-1 (floor == tail - capacity; negative at first)
        #   every open subscription's position p (its next item) has p <= tail; p < floor means
        #   it lags (the items p .. floor-1 are overwritten); under "block", p >= floor always
        #   min_pos <= p for every open subscription (a lower bound, exact after recount());
        #   while send_waiters is not empty, min_pos is exact and at_min counts the open
        #   subscriptions at min_pos (a parked sender waits for it to move)
        #   live == 0  =>  every slot is None (nobody can ever read them)
        self.slots: list[Any] = [None] * capacity
        self.tail = 0  # the sequence number the next item sent will get
        self.floor = -capacity
        self.live = 0  # open subscriptions
        # The same, held weakly (an unclosed subscription must still be collectable and warn):
        # "block" needs the slowest position, statistics need every position.
        self.subscriptions: weakref.WeakSet[Subscription[Any]] = weakref.WeakSet()
        self.min_pos = 0
        self.at_min = 0
        self.open_senders = 1
        self.total_missed = 0
        self.recv_waiters: list[_ParkedReceive] = []
        # FIFO; only the first may be woken (and it keeps its place until it has sent).
        self.send_waiters: deque[_ParkedSend] = deque()

    # -- sending --------------------------------------------------------------------------------

    def put(self, item: Any) -> None:
        """Store ``item`` as the next one, overwriting the oldest; the caller checked the policy."""
        tail = self.tail
        self.slots[tail % self.capacity] = item if self.live else None
        self.tail = tail + 1
        self.floor = tail + 1 - self.capacity

    def full(self) -> bool:
        """Whether the slowest open subscription is ``capacity`` items behind ("block")."""
        if self.tail - self.min_pos < self.capacity:
            return False
        self.recount()
        return self.tail - self.min_pos >= self.capacity

    def recount(self) -> None:
        positions = [subscription._pos for subscription in self.subscriptions]
        self.min_pos = least = min(positions, default=self.tail)
        self.at_min = positions.count(least)

    def left_min(self) -> None:
        """A subscription at ``min_pos`` moved on or closed while a sender waits."""
        self.at_min -= 1
        if self.at_min <= 0:
            self.recount()
            self.wake_sender()

    def wake_receivers(self) -> None:
        waiters = self.recv_waiters
        self.recv_waiters = []
        for entry in waiters:
            if entry.waiter.claim(READY):
                entry.waiter.wake()

    def wake_sender(self) -> None:
        """If the ring has room, give the turn to the first parked sender (once)."""
        if self.tail - self.min_pos >= self.capacity:  # exact while senders wait
            return
        waiters = self.send_waiters
        while waiters:
            entry = waiters[0]
            if entry.woken:
                return
            if entry.waiter.claim(READY):
                entry.waiter.wake()
                entry.woken = True
                return
            waiters.popleft()  # cancelled natively, not yet run: its abort finds it gone

    # -- subscriptions --------------------------------------------------------------------------

    def add_subscriber(self, subscription: Subscription[Any]) -> None:
        self.live += 1
        self.subscriptions.add(subscription)
        if self.send_waiters and subscription._pos == self.min_pos:  # a clone of a slowest one
            self.at_min += 1

    def remove_subscriber(self, subscription: Subscription[Any]) -> None:
        self.live -= 1
        self.subscriptions.discard(subscription)
        if not self.live:
            self.slots[:] = [None] * self.capacity  # release every item: nobody can read them
        if self.send_waiters and subscription._pos == self.min_pos:
            self.left_min()

    def buffer_used(self) -> int:
        """Items some open subscription can still read."""
        floor, tail = self.floor, self.tail
        return max((tail - max(s._pos, floor) for s in self.subscriptions), default=0)

    @staticmethod
    def wake_own(waiters: Iterable[Any], owner: object) -> list[Any]:
        own = [entry for entry in waiters if entry.owner is owner]
        for entry in own:
            if entry.waiter.claim(CLOSED):
                entry.waiter.wake()
        return own


@final
class BroadcastSender(ClosesOnExit, ObjectSendStream[T]):
    """The sending side of a broadcast. Created only by :func:`broadcast` (or ``clone()``).

    ``subscribe()`` makes a new subscription; ``clone()`` another independently closable sender.
    Invariant in ``T``: it both sends ``T`` and hands out subscriptions that receive ``T``. Every
    async method is a cancel point and is atomic under cancellation.
    """

    __slots__ = ("_budget", "_closed", "_state")

    _state: _State
    _budget: int
    _closed: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("BroadcastSender has no public constructor; use fearless.broadcast()")

    @classmethod
    def _create(cls, state: _State) -> Self:
        self = object.__new__(cls)
        self._state = state
        self._budget = state.yield_every
        self._closed = False
        return self

    def send_nowait(self, item: T) -> None:
        """Send ``item`` to every open subscription without waiting.

        Under ``"error"`` and ``"drop"`` this never waits: if the slowest subscription is
        ``capacity`` items behind, the oldest item is overwritten (that subscription lags). Under
        ``"block"`` it raises ``WouldBlock`` (nothing sent) if the slowest subscription is
        ``capacity`` items behind or another send is already waiting. Raises ``SendClosedError``
        (carrying the item) if this sender is closed.
        """
        if self._closed:
            raise SendClosedError((item,))
        state = self._state
        if state.block and (state.send_waiters or state.full()):
            raise WouldBlock
        state.put(item)
        if state.recv_waiters:
            state.wake_receivers()

    async def send(self, item: T) -> None:
        """Send ``item`` to every open subscription.

        Waits only under ``"block"``, while the slowest subscription is ``capacity`` items behind
        (or other sends wait before it: parked sends go first come, first served). Sending while
        no subscription is open succeeds, and nobody will see the item. Raises ``SendClosedError``
        (carrying the item) if this sender is, or while waiting gets, closed.

        Cancellation: a cancel point. If cancelled, the item was not sent: no subscription will
        see it.
        """
        backend = _enter()
        self._budget -= 1
        state = self._state
        if self._budget <= 0 or backend.cancel_pending:
            self._budget = state.yield_every
            await backend.checkpoint()
        if self._closed:
            raise SendClosedError((item,))
        tail = state.tail
        if not state.block or not (
            state.send_waiters or (tail - state.min_pos >= state.capacity and state.full())
        ):
            state.slots[tail % state.capacity] = item if state.live else None  # put(), inlined
            state.tail = tail + 1
            state.floor = tail + 1 - state.capacity
            if state.recv_waiters:
                state.wake_receivers()
            return
        await self._park(backend, [item])

    async def send_many(self, items: Iterable[T]) -> None:
        """Send every item in ``items``, in order; one scheduling decision for the batch.

        Receives parked on the broadcast are woken once for the batch (under ``"block"``, once per
        stretch sent between two waits). Under ``"error"``/``"drop"`` a batch longer than the
        capacity overwrites its own first items for any subscription that has not read them yet.
        Closing: as :meth:`send`; the error's ``unsent`` holds the items not sent.

        Cancellation: if cancelled while waiting (``"block"`` only), the items already sent are
        exactly a prefix of ``items`` and stay sent; the rest were not sent. Cancelled at the
        start, nothing was sent.
        """
        batch = list(items)
        backend = _enter()
        self._budget -= 1
        state = self._state
        if self._budget <= 0 or backend.cancel_pending:
            self._budget = state.yield_every
            await backend.checkpoint()
        if self._closed:
            raise SendClosedError(tuple(batch))
        put = state.put
        if not state.block:
            for item in batch:
                put(item)
        else:
            for k, item in enumerate(batch):
                if state.send_waiters or state.full():
                    await self._park(backend, batch[k:])
                    return
                put(item)
        if state.recv_waiters:
            state.wake_receivers()

    async def _park(self, backend: _backend.Backend, items: list[Any]) -> None:
        """Under ``"block"``: wait for the turn and a free slot, send, repeat until all are sent."""
        state = self._state
        queue = state.send_waiters
        entry = _ParkedSend(backend.new_waiter(), self)
        queue.append(entry)
        sent = 0  # items[:sent] are in the ring

        def leave() -> None:
            _discard(queue, entry)
            state.wake_sender()  # hand the turn on if it had reached us

        def abort() -> object:
            outcome = entry.waiter.revoke()
            leave()
            return outcome

        def undo(_: object) -> bool:
            return True  # woken, then cancelled natively before it ran: it took nothing

        while True:
            if state.recv_waiters:  # the subscriptions must run to free a slot
                state.wake_receivers()
            result = await entry.waiter.wait(abort, undo)
            self._budget = state.yield_every
            if result is CLOSED or self._closed:
                leave()
                raise SendClosedError(tuple(items[sent:]))
            # Woken: this entry is first in line and the ring has room.
            while sent < len(items) and not state.full():
                state.put(items[sent])
                sent += 1
            if sent == len(items):
                first = queue.popleft()
                assert first is entry, (first, entry)
                if queue:
                    state.wake_sender()
                if state.recv_waiters:
                    state.wake_receivers()
                return
            entry.waiter = backend.new_waiter()  # keep the place in line, wait again
            entry.woken = False

    def subscribe(self) -> Subscription[T]:
        """A new subscription that sees every item sent from now on.

        Raises ``ClosedResourceError`` if this sender is closed.
        """
        if self._closed:
            raise ClosedResourceError
        return Subscription._create(self._state, self._state.tail)

    def clone(self) -> Self:
        """Another sender on the same broadcast; it ends when every sender clone is closed."""
        if self._closed:
            raise ClosedResourceError
        self._state.open_senders += 1
        return type(self)._create(self._state)

    def close(self) -> None:
        """Close this sender (idempotent). Its own parked sends fail with ``SendClosedError``.

        When the last sender clone closes, subscriptions drain what is left, then see
        ``EndOfStream``.
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        for entry in state.wake_own(state.send_waiters, self):
            _discard(state.send_waiters, entry)
        if state.send_waiters:
            state.wake_sender()
        state.open_senders -= 1
        if not state.open_senders:
            state.wake_receivers()

    async def aclose(self) -> None:
        """Close, then a cancel point. The sender is closed even if the call is cancelled."""
        self.close()
        await _backend.current().checkpoint()

    def statistics(self) -> BroadcastStatistics:
        """A snapshot of the broadcast: subscribers, buffer use, lag counts, waiting tasks."""
        return _statistics(self._state)

    def __del__(self) -> None:
        warn_unclosed(self)


@final
class Subscription(Receiver[T_co]):
    """One subscriber to a broadcast. Created only by ``subscribe()`` or ``clone()``.

    Iterate with ``async for``; iteration ends at end of stream (and lets ``Lagged`` out: catch it
    and iterate again to resume). Every async method is a cancel point and is atomic under
    cancellation.
    """

    __slots__ = (
        "_budget",
        "_capacity",
        "_closed",
        "_missed",
        "_pos",
        "_slots",
        "_start",
        "_state",
    )

    _state: _State
    _pos: int  # the sequence number of the next item to read
    _start: int  # where this subscription began (received = pos - start - missed)
    _missed: int
    _budget: int
    _closed: bool
    # The state's ring, cached here: one attribute load less per item on the hot path.
    _slots: list[Any]
    _capacity: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("Subscription has no public constructor; use BroadcastSender.subscribe()")

    @classmethod
    def _create(cls, state: _State, position: int) -> Self:
        self = object.__new__(cls)
        self._state = state
        self._slots, self._capacity = state.slots, state.capacity
        self._pos = self._start = position
        self._missed = 0
        self._budget = state.yield_every
        self._closed = False
        state.add_subscriber(self)
        return self

    # -- reading the ring (synchronous) -----------------------------------------------------------

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

    def receive_nowait(self) -> T_co:
        """The next item, without waiting.

        Raises ``WouldBlock`` if there is none yet, ``EndOfStream`` if there never will be (every
        sender closed and this subscription drained), ``Lagged`` if it fell behind (see
        :meth:`receive`), ``ClosedResourceError`` if this subscription is closed.
        """
        if self._closed:
            raise ClosedResourceError
        item = self._take()
        if item is _EMPTY:
            raise WouldBlock if self._state.open_senders else EndOfStream
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
        state = self._state
        if self._budget <= 0 or backend.cancel_pending:
            self._budget = state.yield_every
            await backend.checkpoint()
        if self._closed:
            raise ClosedResourceError
        pos = self._pos
        if state.floor <= pos < state.tail:  # _take(), inlined
            item = self._slots[pos % self._capacity]
            self._pos = pos + 1
            if state.send_waiters and pos == state.min_pos:
                state.left_min()
            return item  # type: ignore[no-any-return]
        return await self._wait(backend)  # type: ignore[no-any-return]

    async def __anext__(self) -> T_co:
        # receive(), inlined: iteration is the commonest way to consume a subscription.
        backend = _enter()
        self._budget -= 1
        state = self._state
        if self._budget <= 0 or backend.cancel_pending:
            self._budget = state.yield_every
            await backend.checkpoint()
        if self._closed:
            raise ClosedResourceError
        pos = self._pos
        if state.floor <= pos < state.tail:
            item = self._slots[pos % self._capacity]
            self._pos = pos + 1
            if state.send_waiters and pos == state.min_pos:
                state.left_min()
            return item  # type: ignore[no-any-return]
        try:
            return await self._wait(backend)  # type: ignore[no-any-return]
        except EndOfStream:
            raise StopAsyncIteration from None

    async def receive_many(self, max_items: int) -> list[T_co]:
        """Wait for at least one item, then return up to ``max_items`` of them, in order.

        One scheduling decision for the batch: after the (at most one) wait it takes what is there
        without yielding. Lagging and closing: as :meth:`receive` (``Lagged`` is raised before
        anything is taken; ``EndOfStream`` only when not even one item is left).

        Cancellation: if cancelled, nothing was consumed.
        """
        if type(max_items) is not int or max_items < 1:
            raise ValueError(f"max_items must be a positive int, got {max_items!r}")
        backend = _enter()
        self._budget -= 1
        state = self._state
        if self._budget <= 0 or backend.cancel_pending:
            self._budget = state.yield_every
            await backend.checkpoint()
        if self._closed:
            raise ClosedResourceError
        first = self._take()
        if first is _EMPTY:
            first = await self._wait(backend)
        items = [first]
        take = self._take
        while len(items) < max_items:
            item = take()
            if item is _EMPTY:
                break
            items.append(item)
        return items

    async def _wait(self, backend: _backend.Backend) -> Any:
        """Park until an item is there for this subscription, then take it (wake-then-read)."""
        state = self._state
        while True:
            item = self._take()
            if item is not _EMPTY:
                return item
            if not state.open_senders:
                raise EndOfStream
            await self._park(backend)

    async def _park(self, backend: _backend.Backend) -> None:
        state = self._state
        entry = _ParkedReceive(backend.new_waiter(), self)
        state.recv_waiters.append(entry)
        result = await entry.waiter.wait(
            lambda: _revoke(entry, state.recv_waiters),
            lambda _: True,  # woken with no item: nothing was consumed, nothing to give back
        )
        self._budget = state.yield_every
        if result is CLOSED or self._closed:
            raise ClosedResourceError

    def clone(self) -> Self:
        """A new subscription at this one's position: it sees the same items from here on
        (each subscription sees every item; clones do not share them out)."""
        if self._closed:
            raise ClosedResourceError
        return type(self)._create(self._state, self._pos)

    def close(self) -> None:
        """Close this subscription (idempotent). Its own parked receives fail with
        ``ClosedResourceError``. It stops holding items (and, under ``"block"``, the sender) at
        once."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        for entry in state.wake_own(state.recv_waiters, self):
            _discard(state.recv_waiters, entry)
        state.remove_subscriber(self)

    def statistics(self) -> SubscriptionStatistics:
        """A snapshot of this subscription (pending, received, missed) and of the broadcast."""
        state = self._state
        pending = 0 if self._closed else state.tail - max(self._pos, state.floor)
        return SubscriptionStatistics(
            pending=pending,
            received=self._pos - self._start - self._missed,
            missed=self._missed,
            broadcast=_statistics(state),
        )

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warn_unclosed(self)
            # A collected subscription can never read again: release its share of the ring, or
            # a sender waiting for it under "block" would wait for ever.
            self._closed = True
            self._state.remove_subscriber(self)


def _statistics(state: _State) -> BroadcastStatistics:
    return BroadcastStatistics(
        capacity=state.capacity,
        on_lag=state.on_lag,
        current_buffer_used=state.buffer_used(),
        open_senders=state.open_senders,
        subscribers=state.live,
        tasks_waiting_send=sum(1 for e in state.send_waiters if e.woken or e.waiter.alive()),
        tasks_waiting_receive=sum(1 for e in state.recv_waiters if e.waiter.alive()),
        total_sent=state.tail,
        total_missed=state.total_missed,
    )


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
