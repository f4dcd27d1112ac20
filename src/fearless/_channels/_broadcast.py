"""Broadcast: one ring buffer, every subscriber sees every item.

Specification (``docs/broadcast.md`` is the user guide; ``docs/design/concurrency.md``,
"Broadcast shares one ring", gives the reasons):

Creating
    ``broadcast[T](capacity, *, on_lag="error", yield_every=DEFAULT_YIELD_EVERY)`` returns a
    ``(BroadcastSender[T], Subscription[T])`` pair, as ``channel`` and tokio's
    ``broadcast::channel`` do. The first subscription exists from the start, so a producer started
    before its consumers loses nothing; close it if you do not want it (a ``"block"`` subscription
    nobody reads holds the sender back). More subscriptions come from
    ``sender.subscribe(on_lag=None)`` (starting at the next item sent) and
    ``subscription.clone(on_lag=None)`` (starting where the original stands), at any time.
    ``capacity`` is a positive int: a ring has slots, so ``0`` and ``math.inf`` mean nothing
    here. ``on_lag`` is ``"error"``, ``"drop"`` or ``"block"``. Anything else raises
    ``ValueError`` naming the value.

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
    starts at the next item). A sender finds the slowest subscription that holds it back (below)
    by a scan of their positions, done only when a cached lower bound says the ring might be full.

Keeping up
    A subscription *keeps up* while a party waits in a receive on it: a task parked in
    ``receive``, ``receive_many`` or ``async for`` (or woken from there and not yet run), a task
    yielding inside one of them (its scheduling budget), a thread blocked in ``receive_blocking``
    or ``iter_blocking``, or a ``merge`` or ``select`` parked on it or yielding. The sends that can
    wait (``send``, ``send_many``, ``send_blocking``) never overwrite an item a subscription that
    keeps up has not read: they wait for it, as for a ``"block"`` subscription, until it has read
    the item or stopped waiting. So a subscriber that is waiting in a receive whenever it is
    scheduled never lags, under every policy and on every backend, however the scheduler orders
    the tasks a send woke (the sender cannot run past them: it parks). Between two receives a
    subscriber is not waiting: a sender that runs meanwhile (a task, when the subscriber awaits
    something else; a thread or another event loop, at any time) may overwrite its items, and the
    policy applies. ``send_nowait`` never waits, so it does not wait for subscriptions that keep
    up either (see Lagging).

Lagging (``on_lag``, per subscription: ``subscribe(on_lag=...)``, ``clone(on_lag=...)``; by
default the broadcast's for ``subscribe()`` and the original's for ``clone()``), when a
subscription is ``capacity`` items behind and another item is sent
    ``"error"`` (the default; tokio's behaviour): the send overwrites the oldest item (unless the
    subscription keeps up and the send can wait). The lagging subscription's next receive raises
    ``Lagged`` with ``missed``, the exact number of items it lost, having already moved it to the
    oldest item still kept; the receive after that goes on from there. ``"drop"``: the same,
    silently. ``"block"``: every send waits until the subscription has read the oldest item, or
    closed (backpressure; it never loses anything): ``send_nowait`` raises ``WouldBlock``, having
    sent nothing, when the item would overwrite one a ``"block"`` subscription has not read, or
    when one is open and a send is already waiting (first come, first served). Policies mix: a
    lossless ``"block"`` subscription and a lossy one share a broadcast, and the sender waits
    only for the first (and for a lossy one only while it keeps up).

Counting what was lost
    ``statistics().missed`` of a subscription counts every item it lost and has found out about
    (at a receive), whatever the policy; under ``"error"`` that is exactly the sum of the
    ``Lagged.missed`` it raised, so a consumer adds up one or the other, never both. An item
    overwritten before the subscription read it, and not yet found out about, is counted in
    neither ``missed`` nor ``pending``. ``BroadcastStatistics.total_missed`` is the sum of
    ``missed`` over every subscription the broadcast has had, open or closed.

Merge and select
    A subscription can be an input of ``merge`` and the receiver of a ``select`` ``Recv`` branch,
    with no forwarding task. Such a party parks on the subscription as a receive does (woken with
    no item, it reads the ring once it runs) and keeps it up while parked. ``Lagged`` comes out of
    the merge's ``receive`` (the subscription has moved on, and the merge's next receive goes on
    from there); a ``Recv`` branch whose subscription lagged is ready, wins, and its ``value``
    raises ``Lagged`` (the subscription has moved on: that is what the select committed).

Closing
    Once every sender clone is closed, each subscription drains the items left for it, then sees
    ``EndOfStream``. Closing a subscription takes it out at once: it stops holding the sender back
    (a sender parked on it is woken). Sending never fails
    because no subscription is open (one may subscribe later; see The ring), so there is no
    ``BrokenResourceError`` here. Using an endpoint after closing it raises
    ``ClosedResourceError`` (``SendClosedError``, carrying the items, for a sender); closing an
    endpoint wakes its own parked operations with that error (a parked send's items are not sent).

Cancellation
    Atomic, under anyio cancel scopes, trio, and native asyncio cancellation alike. A parked
    receive is woken with no item (wake-then-read): it reads the ring only once it runs, so a
    cancelled receive consumed nothing and has nothing to give back. A parked send (waiting for a
    ``"block"`` subscription or for one that keeps up) is woken when the slot it waits for frees
    and puts its item in only once it runs, so a cancelled send sent nothing; a cancelled
    ``send_many`` sent exactly a prefix of its items.

Waking
    A send wakes the receives parked at that moment, all of them and only them, once per send (and
    once per ``send_many`` batch, or per stretch of it between two waits). Parked senders are
    served first come, first served: the first is woken when the last subscription holding it
    back at the slowest position moves on, stops keeping up, or closes, and a sender arriving
    later waits behind it even if there is room.

Scheduling
    Every async operation is a cancel point, and yields once every ``yield_every`` operations on
    that endpoint and whenever it waits, as the core channel does. An endpoint binds to the event
    loop whose tasks use it (at its first async operation, then at every yield): when that loop
    shuts down, the endpoint is closed (``docs/design/concurrency.md``, "Closing releases
    everyone").

Threads
    A broadcast is shared by tasks of any event loop and by OS threads alike. Threads use
    ``send_blocking`` (which waits as ``send`` does), ``receive_blocking`` and ``iter_blocking``,
    each with an optional timeout after which it raises ``TimeoutError`` having sent or taken
    nothing; on a thread that runs an event loop they raise ``EventLoopBlockingError`` at once
    instead of deadlocking it. A thread blocked in ``receive_blocking`` keeps its subscription up
    (no lock is held while it waits: it is a parked party like a task); between two calls it does
    not. ``send_nowait``, ``receive_nowait``, ``subscribe``, ``clone``, ``close`` and
    ``statistics`` are safe from any thread. Parked parties are woken through their own event
    loop; a sender whose loop has shut down while it held the turn hands the turn on, a receive
    whose loop has shut down stops keeping its subscription up, and a thread feeding a loop that
    shut down is released as if the endpoints used there had been closed.

Locking (``docs/design/concurrency.md``, "Threads and cells")
    One ``threading.Lock`` per broadcast guards everything its endpoints share: the ring, the
    positions, the counters, the lots of parked parties (``fearless._parking``), the subscription
    registry. Critical sections are synchronous and short, and hold the lock across no ``await``;
    parties to wake are claimed inside them and woken after the lock is released. What could
    re-enter is kept out: items overwritten or released are dropped after the lock is released,
    and a subscription garbage-collected while the lock is held (its finalizer cannot wait for the
    lock: the holder may be this very thread) is queued as an orphan and closed by whoever
    releases the lock next.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Generic, Literal, Self, TypeVar, cast, final

from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import ObjectSendStream

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import Lagged, SendClosedError
from .._parking import CLOSED, EMPTY, ENDED, READY, Parked, ParkingLot, Signal
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
    "BroadcastState",
    "BroadcastStatistics",
    "LagPolicy",
    "Subscription",
    "SubscriptionStatistics",
    "broadcast",
    "holding",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

LagPolicy = Literal["error", "drop", "block"]
"""What happens when a subscription falls ``capacity`` items behind (see the module docstring)."""

_POLICIES: Final[tuple[LagPolicy, ...]] = ("error", "drop", "block")

_NOBODY: Final = 1 << 62
"""``min_pos`` while no subscription holds the sender back: past every sequence number, so the
ring never looks full."""

_UNTAGGED: Final = object()


@final
@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    """A snapshot of a broadcast, the same from the sender and from every subscription."""

    capacity: int
    """The ring's size: the most items kept for the slowest subscription."""
    on_lag: LagPolicy
    """The broadcast's lag policy: ``"error"``, ``"drop"`` or ``"block"``, which the first
    subscription and those made by ``subscribe()`` without ``on_lag`` have."""
    current_buffer_used: int
    """Items kept now: sent, and not yet read (or skipped) by at least one open subscription."""
    open_senders: int
    """Sender clones not yet closed."""
    subscribers: int
    """Subscriptions not yet closed."""
    tasks_waiting_send: int
    """Tasks and threads parked in ``send``/``send_many``/``send_blocking`` (waiting for a
    ``"block"`` subscription, or for one that keeps up)."""
    tasks_waiting_receive: int
    """Tasks and threads parked in ``receive``/``receive_many``/``receive_blocking``, and merges
    and selects parked, over every subscription."""
    total_sent: int
    """Items sent since the broadcast was created (each counted once, whatever the subscribers)."""
    total_missed: int
    """The sum of ``SubscriptionStatistics.missed`` over every subscription the broadcast has
    had, open or closed: items lost by lagging, counted when each subscription found out (at its
    next receive)."""


@final
@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """A snapshot of one subscription, and of the broadcast behind it.

    Every item sent from the subscription's starting point on (the next item sent when it was
    made; its original's position, for a clone) is in exactly one of: ``received``, ``missed``,
    ``pending``, or lost and not yet found out about (overwritten before it read it: its next
    receive finds out, and counts it in ``missed``).
    """

    pending: int
    """Items this subscription can still receive now (lost items not counted)."""
    received: int
    """Items this subscription has received."""
    missed: int
    """Every item this subscription lost by lagging and has found out about (at a receive),
    whatever its policy. Under ``"error"`` the ``Lagged`` errors it raised reported exactly these:
    the sum of their ``missed`` equals this, so count one or the other, not both."""
    on_lag: LagPolicy
    """This subscription's lag policy."""
    broadcast: BroadcastStatistics
    """The broadcast's statistics."""


class _ParkedSend(Parked):
    """A party parked in a send, waiting for room, woken (with the turn) to retry.

    Its waiter never changes: a send that must wait again after using its turn parks a new entry
    in this one's place (the head of the line), so a late ``wake`` of the old waiter can never
    reach the new one.
    """

    __slots__ = ("woken",)

    def __init__(self, waiter: _backend.Waiter, owner: object) -> None:
        super().__init__(waiter, owner)
        self.woken = False  # claimed with the turn and not yet run: it holds the turn


class _ParkedReceive(Parked):
    """A party parked in a receive on one subscription (``owner``): a task, a thread, or a
    merge or select parked through ``fearless._parking.park_many`` (``tag`` then says which input
    or branch). Claimed with ``READY``, ``ENDED`` or ``CLOSED``, never with an item: it reads the
    ring once it runs (wake-then-read).

    While ``engaged``, it keeps its subscription up (:meth:`BroadcastState.hold`): from parking
    until its party runs again, the sends that can wait do not overwrite what it has not read.
    """

    __slots__ = ("engaged", "tag")

    owner: Subscription[Any]

    def __init__(
        self, waiter: _backend.Waiter, owner: Subscription[Any], tag: object = _UNTAGGED
    ) -> None:
        super().__init__(waiter, owner)
        self.tag = tag
        self.engaged = False

    def wrap(self, value: object) -> object:
        return value if self.tag is _UNTAGGED else (self.tag, value)

    def release(self) -> None:
        """Without the lock: its party runs again (a merge or select back from ``park_many``):
        it no longer keeps the subscription up."""
        if self.engaged:  # only this party's own run, or a failed wake, ever clears it
            state = self.owner._state
            state.locked(state.disengage, self)


class BroadcastState(Generic[T]):
    """What the sender clones and subscriptions of one broadcast share: the engine.

    Every field (and every subscription's ``_pos``, ``_missed``, ``_engaged`` and ``_closed``) is
    read and written under ``lock``, by tasks of any event loop and by threads alike. The methods
    below expect the caller to hold it, unless they say otherwise. Parties to wake are claimed
    under the lock and collected in ``woken``; :meth:`unlock` releases the lock and wakes them
    after. It is a :class:`fearless._parking.Site`: merges and selects park here too.
    """

    __slots__ = (
        "at_min",
        "blocking",
        "capacity",
        "floor",
        "holders",
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
        self.on_lag = on_lag  # the default policy of new subscriptions
        self.yield_every = yield_every
        # Item number s lives in slots[s % capacity]. Invariants:
        #   the ring holds items floor .. tail-1 (floor == tail - capacity; negative at first)
        #   every open subscription's position p (its next item) has p <= tail; p < floor means
        #   it lags (the items p .. floor-1 are overwritten); a "block" subscription has
        #   p >= floor always
        #   the holders are the open subscriptions that hold the sender back: the "block" ones,
        #   and the others while they keep up (see hold); min_pos <= p for every holder (a lower
        #   bound, exact after recount(); _NOBODY when there is none)
        #   while send_waiters is not empty, at_min counts the holders at min_pos (a parked sender
        #   waits for them to move on); a count too low only costs an early recount, a count too
        #   high would strand the sender. It is made exact by the recount that comes before a
        #   send parks (room() returns no room only after one) and kept so while any waits.
        #   live == 0  =>  every slot is None (nobody can ever read them)
        # A slot that holds None rather than a T is never read: the ring is typed as holding T.
        self.slots: list[T] = cast("list[T]", [None] * capacity)
        self.tail = 0  # the sequence number the next item sent will get
        self.floor = -capacity
        self.live = 0  # open subscriptions
        # The open subscriptions by id, held weakly (an unclosed subscription must still be
        # collectable, and warn): senders need the holders' positions, statistics every position.
        # Plain weak references without callbacks, so nothing changes the registry behind the
        # lock's back; a subscription leaves it when it closes or, collected, is reaped.
        self.subscriptions: dict[int, weakref.ref[Subscription[T]]] = {}
        self.holders: dict[int, weakref.ref[Subscription[T]]] = {}  # the same references
        self.blocking = 0  # open "block" subscriptions
        self.min_pos = _NOBODY
        self.at_min = 0
        self.open_senders = 1
        self.total_missed = 0
        self.recv_waiters: ParkingLot[_ParkedReceive] = ParkingLot()
        # First come, first served; only the first may be woken (and it keeps its place until it
        # has sent).
        self.send_waiters: ParkingLot[_ParkedSend] = ParkingLot()
        self.woken: list[Any] = []  # claimed under the lock, to be woken after it
        # Subscriptions collected while some thread held the lock (appended without it:
        # deque.append is atomic); closed by the next unlock().
        self.orphans: deque[Subscription[T]] = deque()

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

    def take_woken(self) -> list[Any] | None:
        """Under the lock: the parties claimed since the last call (``park_many``'s ``Site``)."""
        woken, self.woken = self.woken, []
        return woken or None

    def locked(self, action: Callable[[Any], object], argument: Any) -> None:
        """Without the lock: ``action(argument)`` under it, then wake whom that claimed."""
        self.lock.acquire()
        try:
            action(argument)
        finally:
            self.unlock()

    def wake(self, woken: list[Any]) -> None:
        """Without the lock: wake the parties claimed under it.

        A party that can never resume (its event loop has shut down) loses nothing, since none
        is handed an item: a receive stops keeping its subscription up, and a sender that held
        the turn leaves the line, handing the turn on.
        """
        for entry in woken:
            if not entry.waiter.wake():
                self.abandon(entry)

    def abandon(self, entry: Parked) -> None:
        """Without the lock: ``entry``'s party will never run again: a sender gives up its place
        (and the turn, if it had it), a receive stops keeping its subscription up."""
        if type(entry) is _ParkedSend:
            self.locked(self.give_up, entry)
        else:
            self.locked(self.disengage, entry)

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

    # -- who holds the sender back ----------------------------------------------------------------

    def hold(self, subscription: Subscription[Any]) -> None:
        """A party starts waiting in a receive on ``subscription`` (it parks, or yields inside the
        receive): until it stops, the subscription keeps up, and the sends that can wait do not
        overwrite an item it has not read. Claims nobody (more holders only hold senders back)."""
        subscription._engaged += 1
        if subscription._engaged == 1 and not subscription._block and not subscription._closed:
            self.add_holder(subscription)

    def unhold(self, subscription: Subscription[Any]) -> None:
        """A party that waited in a receive on ``subscription`` runs again (or gave up)."""
        subscription._engaged -= 1
        if not subscription._engaged and not subscription._block and not subscription._closed:
            self.remove_holder(subscription)

    def engage(self, entry: _ParkedReceive) -> None:
        """``entry`` has just parked: its party holds its subscription up (:meth:`hold`)."""
        entry.engaged = True
        self.hold(entry.owner)

    def disengage(self, entry: _ParkedReceive) -> None:
        """``entry``'s party runs again, gave up, or can never run: :meth:`unhold`, once."""
        if entry.engaged:
            entry.engaged = False
            self.unhold(entry.owner)

    def add_holder(self, subscription: Subscription[Any]) -> None:
        key = id(subscription)
        self.holders[key] = self.subscriptions[key]
        pos = subscription._pos
        if pos < self.min_pos:
            self.min_pos = pos
            self.at_min = 1
        elif pos == self.min_pos:
            self.at_min += 1

    def remove_holder(self, subscription: Subscription[Any]) -> None:
        del self.holders[id(subscription)]
        if not self.holders:
            self.min_pos = _NOBODY
            self.at_min = 0
            if self.send_waiters:
                self.wake_sender()
        elif self.send_waiters and subscription._pos == self.min_pos:
            self.left_min()

    def left_min(self) -> None:
        """A holder at ``min_pos`` moved on or stopped holding while a sender waits."""
        self.at_min -= 1
        if self.at_min <= 0:
            self.recount()
            self.wake_sender()

    def recount(self) -> None:
        positions = []
        for ref in self.holders.values():
            subscription = ref()
            if subscription is not None:  # None: collected, its orphan not yet reaped
                positions.append(subscription._pos)
        self.min_pos = least = min(positions, default=_NOBODY)
        self.at_min = positions.count(least)

    def room(self) -> int:
        """How many items can go in now without overwriting one a holder has not read (0 or
        less: none). Recounts only when the cached lower bound says there is no room."""
        room = self.capacity - self.tail + self.min_pos
        if room <= 0:
            self.recount()
            room = self.capacity - self.tail + self.min_pos
        return room

    def overruns_block(self) -> bool:
        """Whether the next item would overwrite one a ``"block"`` subscription has not read."""
        if not self.blocking or self.tail - self.min_pos < self.capacity:
            return False
        oldest = self.tail - self.capacity  # the item the next one overwrites
        for ref in self.holders.values():
            subscription = ref()
            if subscription is not None and subscription._block and subscription._pos <= oldest:
                return True
        return False

    # -- sending ----------------------------------------------------------------------------------

    def put(self, item: T) -> T:
        """Store ``item`` as the next one; the caller checked for room. Returns the item it
        overwrote, for the caller to drop after releasing the lock (its finalizer might use this
        broadcast)."""
        tail = self.tail
        slots = self.slots
        index = tail % self.capacity
        old = slots[index]
        slots[index] = item if self.live else cast("T", None)
        self.tail = tail + 1
        self.floor = tail + 1 - self.capacity
        return old

    def fill(self, items: list[T], sent: int, dropped: list[T]) -> int:
        """Put ``items[sent:]`` in while there is room; returns how many of ``items`` are in now
        (overwritten items go to ``dropped``, to be dropped without the lock)."""
        put = self.put
        while sent < len(items):
            # room() recounts once the cached bound says no room: a send parks only after a
            # recount (which makes at_min exact for the parked sender, see __init__).
            n = min(len(items) - sent, self.room())
            if n <= 0:
                break
            dropped.extend([put(item) for item in items[sent : sent + n]])
            sent += n
        return sent

    def wake_receivers(self) -> None:
        """Claim every parked receive (they read the ring when they run)."""
        self.recv_waiters.claim_all(READY, self.woken)

    def wake_sender(self) -> None:
        """If the ring has room, give the turn to the first parked sender (once)."""
        if self.room() <= 0:  # recounts if it looks full: min_pos may trail the holders
            return
        waiters = self.send_waiters
        while waiters:
            entry = waiters[0]
            if entry.woken:
                return
            if entry.claim(READY):
                entry.woken = True
                self.woken.append(entry)
                return
            waiters.popleft()  # cancelled natively, not yet run: its abort finds it gone

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

    def give_up(self, entry: _ParkedSend) -> None:
        """A parked send leaves the line having sent nothing since its turn came (closed, timed
        out, interrupted), handing the turn on if it had it."""
        self.send_waiters.discard(entry)
        if self.send_waiters:
            self.wake_sender()

    def abort_send(self, entry: _ParkedSend) -> object:
        """Without the lock: a parked send gives up (cancelled, timed out). Returns what
        ``revoke`` returned. A claimed entry keeps its place: it holds the turn and its party
        will either use it or, through ``undo``, :meth:`give_up`."""
        self.lock.acquire()
        try:
            outcome = entry.waiter.revoke()
            if outcome is _backend.ABORTED:
                self.give_up(entry)  # it may have been the head, waiting for room
        finally:
            self.unlock()
        return outcome

    def undo_send(self, entry: _ParkedSend, _: object) -> bool:
        """Without the lock: a parked send was claimed (given the turn, or closed) and then
        interrupted before it ran (native asyncio cancellation, ``KeyboardInterrupt`` in a
        thread). It sent nothing since the claim: it leaves the line, handing the turn on, and
        the interruption is raised."""
        self.locked(self.give_up, entry)
        return True

    # -- receiving --------------------------------------------------------------------------------

    def take(self, subscription: Subscription[T]) -> T | Signal:
        """The subscription's next item, or ``EMPTY``; may raise ``Lagged``."""
        pos = subscription._pos
        if pos < self.floor:
            self.catch_up(subscription)
            pos = subscription._pos
        if pos == self.tail:
            return EMPTY
        item = self.slots[pos % self.capacity]
        subscription._pos = pos + 1
        if pos == self.min_pos and self.send_waiters and subscription._holds():
            self.left_min()
        return item

    def take_more(self, subscription: Subscription[T], items: list[T], max_items: int) -> list[T]:
        """After a first item: what else is there, up to ``max_items`` in all (a subscription
        that has read one item cannot lag before the lock is released)."""
        while len(items) < max_items:
            item = self.take(subscription)
            if type(item) is Signal:
                break
            items.append(item)
        return items

    def catch_up(self, subscription: Subscription[T]) -> None:
        """The ring has moved past the subscription's position: jump to the oldest kept item and
        count the loss; under ``"error"`` raise ``Lagged`` after the jump."""
        pos = subscription._pos
        missed = self.floor - pos
        subscription._pos = self.floor
        subscription._missed += missed
        self.total_missed += missed
        if pos == self.min_pos and self.send_waiters and subscription._holds():
            self.left_min()
        if subscription._policy == "error":
            raise Lagged(missed)

    def park(self, subscription: Subscription[T], waiter: _backend.Waiter) -> _ParkedReceive:
        """With nothing to read: park a receive (or raise ``EndOfStream``, if nothing can come)."""
        if not self.open_senders:
            raise EndOfStream
        entry = _ParkedReceive(waiter, subscription)
        self.recv_waiters.append(entry)
        self.engage(entry)
        return entry

    def abort_receive(self, entry: _ParkedReceive) -> object:
        """Without the lock: a parked receive gives up (cancelled, timed out). Returns what
        ``revoke`` returned. A claimed receive keeps its subscription up: it runs next (on trio,
        or on a timeout that lost to the claim), or ``undo_receive`` lets go."""
        self.lock.acquire()
        try:
            outcome = entry.waiter.revoke()
            if outcome is _backend.ABORTED:
                self.recv_waiters.discard(entry)
                self.disengage(entry)
        finally:
            self.unlock()
        return outcome

    def undo_receive(self, entry: _ParkedReceive, _: object) -> bool:
        """Without the lock: a parked receive was woken and then interrupted before it ran. It
        took nothing (wake-then-read), so there is nothing to give back; it stops holding."""
        self.locked(self.disengage, entry)
        return True

    # -- subscriptions ----------------------------------------------------------------------------

    def add_subscriber(self, subscription: Subscription[T]) -> None:
        key = id(subscription)
        self.live += 1
        self.subscriptions[key] = weakref.ref(subscription)
        subscription._closed = False
        if subscription._block:
            self.blocking += 1
            self.add_holder(subscription)

    def remove_subscriber(self, subscription: Subscription[T]) -> list[T] | None:
        """Take ``subscription`` out (it is marked closed); returns the ring's items if it was the
        last one (the caller drops them after releasing the lock)."""
        key = id(subscription)
        self.live -= 1
        self.subscriptions.pop(key, None)
        if subscription._block:
            self.blocking -= 1
        if key in self.holders:
            self.remove_holder(subscription)
        released = None
        if not self.live:  # release every item: nobody can read them
            released = self.slots[:]
            self.slots[:] = cast("list[T]", [None] * self.capacity)
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

    def statistics(self) -> BroadcastStatistics:
        return BroadcastStatistics(
            capacity=self.capacity,
            on_lag=self.on_lag,
            current_buffer_used=self.buffer_used(),
            open_senders=self.open_senders,
            subscribers=self.live,
            tasks_waiting_send=sum(1 for e in self.send_waiters if e.woken or e.waiter.alive()),
            tasks_waiting_receive=self.recv_waiters.waiting(),
            total_sent=self.tail,
            total_missed=self.total_missed,
        )


def _deadline(wait: float) -> float | None:
    """When a ``*_blocking`` call given ``wait`` seconds (-1: forever) must give up."""
    return None if wait < 0 else time.monotonic() + wait


def _left(deadline: float | None) -> float:
    """Seconds left until ``deadline`` (-1: forever), for ``wait_blocking``."""
    return -1 if deadline is None else max(deadline - time.monotonic(), 0.0)


def _policy_name(policy: LagPolicy) -> str:
    return f"on_lag={policy!r}"


@final
class BroadcastSender(LoopBound, ObjectSendStream[T]):
    """The sending side of a broadcast. Created only by :func:`broadcast` (or ``clone()``).

    ``subscribe()`` makes a new subscription; ``clone()`` another independently closable sender.
    Invariant in ``T``: it both sends ``T`` and hands out subscriptions that receive ``T``. Safe to
    share between tasks, event loops and threads. Every async method is a cancel point and is
    atomic under cancellation.
    """

    __slots__ = ("_closed", "_state")

    _state: BroadcastState[T]
    _closed: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("BroadcastSender has no public constructor; use fearless.broadcast()")

    @classmethod
    def _create(cls, state: BroadcastState[Any]) -> Self:
        self = object.__new__(cls)
        self._state = state
        self._budget = 0  # the first async operation yields, and binds the sender to its loop
        self._closed = False
        self._home = None
        return self

    def __repr__(self) -> str:
        state = self._state  # read without the lock: a snapshot for people, maybe a torn one
        waiting = state.send_waiters.waiting()
        return (
            f"<BroadcastSender capacity={state.capacity} {_policy_name(state.on_lag)} "
            f"{'closed' if self._closed else 'open'}: sent {state.tail}, "
            f"{state.live} subscriber(s)"
            + (f", {waiting} send(s) waiting" if waiting else "")
            + ">"
        )

    def send_nowait(self, item: T) -> None:
        """Send ``item`` to every open subscription without waiting.

        It never waits, so it does not wait for subscriptions that keep up either: if it
        overwrites an item one of them has not read, that subscription lags (by its policy), as
        one that fell behind does. Only ``"block"`` subscriptions make it raise ``WouldBlock``
        (nothing sent): when the item would overwrite one a ``"block"`` subscription has not read,
        or when one is open and another send is already waiting. Raises ``SendClosedError``
        (carrying the item) if this sender is closed.

        Safe from any thread; subscriptions parked on an event loop are woken through that loop.
        """
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise SendClosedError((item,))
            if state.blocking and (state.send_waiters or state.overruns_block()):
                raise WouldBlock
            old = state.put(item)
            if state.recv_waiters:
                state.wake_receivers()
        finally:
            state.unlock()
        del old  # the item overwritten, dropped without the lock

    async def send(self, item: T) -> None:
        """Send ``item`` to every open subscription.

        Waits while it would overwrite an item that a ``"block"`` subscription, or one that keeps
        up (a party is waiting in a receive on it), has not read, or while other sends wait before
        it (parked sends, of tasks and threads alike, go first come, first served). Sending while
        no subscription is open succeeds, and nobody will see the item. Raises
        ``SendClosedError`` (carrying the item) if this sender is, or while waiting gets, closed.

        Cancellation: a cancel point. If cancelled, the item was not sent: no subscription will
        see it.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        entry = None
        old = None  # the item overwritten, dropped without the lock
        lock.acquire()
        try:
            if self._closed:
                raise SendClosedError((item,))
            tail = state.tail
            if state.send_waiters or (tail - state.min_pos >= state.capacity and state.room() <= 0):
                entry = self._enqueue(backend.new_waiter())
            else:
                slots = state.slots  # put(), inlined
                index = tail % state.capacity
                old = slots[index]
                slots[index] = item if state.live else cast("T", None)
                state.tail = tail + 1
                state.floor = tail + 1 - state.capacity
                if state.recv_waiters:
                    state.wake_receivers()
        finally:
            if state.woken:
                state.unlock()
            else:  # unlock(), inlined for the common case: nobody to wake
                lock.release()
                if state.orphans:
                    state.reap()
        del old
        if entry is not None:
            await self._send_parked(backend, entry, [item], 0)

    async def send_many(self, items: Iterable[T]) -> None:
        """Send every item in ``items``, in order; one scheduling decision for the batch.

        Receives parked on the broadcast are woken once for the batch (once per stretch sent
        between two waits). It waits as :meth:`send` does, as often as needed; for a lossy
        subscription that neither keeps up nor is read, a batch longer than the capacity
        overwrites its own first items. Other senders' items may interleave only where this batch
        had to wait. Closing: as :meth:`send`; the error's ``unsent`` holds the items not sent.

        Cancellation: if cancelled while waiting, the items already sent are exactly a prefix of
        ``items`` and stay sent; the rest were not sent. Cancelled at the start, nothing was sent.
        """
        batch = list(items)
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        entry = None
        dropped: list[T] = []
        state.lock.acquire()
        try:
            if self._closed:
                raise SendClosedError(tuple(batch))
            sent = 0 if state.send_waiters else state.fill(batch, 0, dropped)
            if sent < len(batch):
                entry = self._enqueue(backend.new_waiter())
            elif state.recv_waiters:
                state.wake_receivers()
        finally:
            state.unlock()
        del dropped  # the items overwritten, dropped without the lock
        if entry is not None:
            await self._send_parked(backend, entry, batch, sent)

    def _enqueue(self, waiter: _backend.Waiter) -> _ParkedSend:
        """Under the lock: join the line of parked sends (no room, or others wait). The items put
        so far are announced, so that the subscriptions run and free room."""
        state = self._state
        entry = _ParkedSend(waiter, self)
        state.send_waiters.append(entry)
        if state.recv_waiters:
            state.wake_receivers()
        return entry

    async def _send_parked(
        self, backend: _backend.Backend, entry: _ParkedSend, items: list[T], sent: int
    ) -> None:
        """Parked with ``items[sent:]`` still to send: wait for the turn and room, send what fits,
        repeat until every item is sent (wake-then-send: an item goes in only once its sender
        runs)."""
        state = self._state
        while True:
            await entry.waiter.wait(
                partial(state.abort_send, entry), partial(state.undo_send, entry)
            )
            self._budget = state.yield_every
            dropped: list[T] = []
            state.lock.acquire()
            try:
                sent = self._use_turn(entry, items, sent, dropped)
                if sent == len(items):
                    return
                entry = state.wait_again(entry, backend.new_waiter())
            finally:
                state.unlock()
                del dropped  # the items overwritten, dropped without the lock

    def _use_turn(self, entry: _ParkedSend, items: list[T], sent: int, dropped: list[T]) -> int:
        """Under the lock: a parked send was woken (it is first in line and there was room) and
        runs: it puts what fits and returns how many of ``items`` are in; with all of them in, it
        has left the line. A closed sender sends nothing and hands the turn on."""
        state = self._state
        if self._closed:
            state.give_up(entry)
            raise SendClosedError(tuple(items[sent:]))
        sent = state.fill(items, sent, dropped)
        if sent == len(items):
            state.end_turn(entry)
        return sent

    def send_blocking(self, item: T, timeout: float | None = None) -> None:
        """Send ``item`` from a thread, blocking while :meth:`send` would wait: for a ``"block"``
        subscription, or one that keeps up, that has not read the item it would overwrite, or
        behind the sends already parked (tasks and threads alike, first come, first served).

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once (whatever the policy) instead of deadlocking it.
        Subscriptions parked on an event loop are woken through that loop.

        Timeout: after ``timeout`` seconds (``None``: no limit) it raises ``TimeoutError``, and
        the item was not sent (``0``: send only if it would not wait); a wait interrupted by an
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
        items = [item]
        dropped: list[T] = []
        state.lock.acquire()
        try:
            if self._closed:
                raise SendClosedError((item,))
            if not state.send_waiters and state.fill(items, 0, dropped):
                if state.recv_waiters:
                    state.wake_receivers()
                return
            if wait == 0:
                raise TimeoutError("the send would have to wait; the item was not sent")
            waiter = _backend.ThreadWaiter()
            entry = self._enqueue(waiter)
        finally:
            state.unlock()
            del dropped  # the item overwritten, dropped without the lock
        deadline = _deadline(wait)
        while True:
            waiter.wait_blocking(
                partial(state.abort_send, entry), partial(state.undo_send, entry), _left(deadline)
            )
            dropped = []
            state.lock.acquire()
            try:
                if self._use_turn(entry, items, 0, dropped):
                    return
                if _left(deadline) == 0:  # woken with no room after all, and out of time
                    state.give_up(entry)
                    raise TimeoutError(f"timed out after {timeout} s; the item was not sent")
                waiter = _backend.ThreadWaiter()
                entry = state.wait_again(entry, waiter)
            finally:
                state.unlock()
                del dropped

    def subscribe(self, *, on_lag: LagPolicy | None = None) -> Subscription[T]:
        """A new subscription that sees every item sent from now on. Safe from any thread.

        ``on_lag`` is its lag policy (``None``: the broadcast's); a bad one raises ``ValueError``
        naming it. Raises ``ClosedResourceError`` if this sender is closed.
        """
        state = self._state
        policy = state.on_lag if on_lag is None else check_on_lag(on_lag)
        state.lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            return Subscription._create(state, state.tail, policy)
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
            state.send_waiters.claim_owned(self, CLOSED, state.woken)
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
    position: each item reaches one of them). It can be an input of ``fearless.merge`` and the
    receiver of a ``select`` ``Recv`` branch. Every async method is a cancel point and is atomic
    under cancellation.
    """

    __slots__ = (
        "_block",
        "_capacity",
        "_closed",
        "_engaged",
        "_missed",
        "_policy",
        "_pos",
        "_slots",
        "_start",
        "_state",
    )

    _state: BroadcastState[T_co]
    _pos: int  # the sequence number of the next item to read (under the state's lock)
    _start: int  # where this subscription began (received = pos - start - missed)
    _missed: int
    _policy: LagPolicy
    _block: bool  # _policy == "block"
    _engaged: int  # parties waiting in a receive on it now (see BroadcastState.hold)
    _closed: bool
    # The state's ring, cached here: one attribute load less per item on the hot path.
    _slots: list[T_co]
    _capacity: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("Subscription has no public constructor; use BroadcastSender.subscribe()")

    @classmethod
    def _create(cls, state: BroadcastState[Any], position: int, policy: LagPolicy) -> Self:
        """Under the lock: a new subscription at ``position``, registered. A ``"block"`` one
        never lags, so it starts at the oldest item kept at the latest (a clone of one that
        lags)."""
        self = object.__new__(cls)
        self._state = state
        self._slots, self._capacity = state.slots, state.capacity
        self._policy = policy
        self._block = policy == "block"
        if self._block:
            position = max(position, state.floor)
        self._pos = self._start = position
        self._missed = 0
        self._engaged = 0
        self._budget = 0  # the first async operation yields, and binds it to its loop
        self._home = None
        self._closed = True  # until registered: a half-built subscription holds nothing
        state.add_subscriber(self)
        return self

    def __repr__(self) -> str:
        state = self._state  # read without the lock: a snapshot for people, maybe a torn one
        head = f"<Subscription {_policy_name(self._policy)}"
        counts = f"received {self._pos - self._start - self._missed}, missed {self._missed}"
        if self._closed:
            return f"{head} closed: {counts}>"
        pos, floor, tail = self._pos, state.floor, state.tail
        where = f"next #{pos} of {tail} sent, "
        if pos < floor:
            where += f"lagging ({floor - pos} lost, not yet reported), {tail - floor} pending"
        else:
            where += f"{tail - pos} pending"
        waiting = ", waiting in a receive" if self._engaged else ""
        return f"{head} open: {where}; {counts}{waiting}>"

    def _holds(self) -> bool:
        """Under the lock, on an open subscription: whether it holds the sender back now."""
        return self._block or self._engaged > 0

    # -- waiting in a receive keeps the subscription up --------------------------------------------

    def _hold(self) -> None:
        """A party of this subscription's is about to yield inside a receive (its budget)."""
        self._state.locked(self._state.hold, self)

    def _unhold(self) -> None:
        self._state.locked(self._state.unhold, self)

    async def _yield(self, backend: _backend.Backend) -> None:
        """The budget ran out inside a receive: yield once, keeping the subscription up meanwhile
        (a "block" subscription holds the sender back anyway)."""
        self._budget = self._state.yield_every  # LoopBound._yield, inlined: one frame less
        _backend.bind(self)
        if self._block:
            await backend.checkpoint()
            return
        self._hold()
        try:
            await backend.checkpoint()
        finally:
            self._unhold()

    # -- receiving --------------------------------------------------------------------------------

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
            item = state.take(self)
            if type(item) is Signal:
                raise WouldBlock if state.open_senders else EndOfStream
        finally:
            state.unlock()
        return item

    async def receive(self) -> T_co:
        """The next item for this subscription, waiting until one is sent.

        Ordering: items arrive in the order sent. Keeping up: while it waits here, the sends that
        can wait do not overwrite an item it has not read. Lagging (having fallen behind while not
        waiting here): under ``"error"``, if the subscription fell more than ``capacity`` items
        behind, raises ``Lagged(missed)`` and moves on to the oldest item still kept, which the
        next receive returns; under ``"drop"`` it skips to it silently. Closing: ``EndOfStream``
        once every sender is closed and the items left are drained, ``ClosedResourceError`` if
        this subscription is (or gets) closed.

        Cancellation: a cancel point. If cancelled, nothing was consumed: the item stays for this
        subscription's next receive.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        # The fast path: an item is there, and no parked sender waits for this position to move.
        lock.acquire()
        try:
            pos = self._pos
            if (
                state.floor <= pos < state.tail
                and (pos != state.min_pos or not state.send_waiters)
                and not self._closed
            ):
                self._pos = pos + 1  # take(), inlined
                return self._slots[pos % self._capacity]
        finally:
            lock.release()
            if state.orphans:
                state.reap()
        return await self._receive(backend)

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
            if (
                state.floor <= pos < state.tail
                and (pos != state.min_pos or not state.send_waiters)
                and not self._closed
            ):
                self._pos = pos + 1
                return self._slots[pos % self._capacity]
        finally:
            lock.release()
            if state.orphans:
                state.reap()
        try:
            return await self._receive(backend)
        except EndOfStream:
            raise StopAsyncIteration from None

    async def _receive(self, backend: _backend.Backend) -> T_co:
        """``receive`` past its fast path: lagging, a sender to wake, or nothing to read yet."""
        return (await self._receive_many(backend, 1))[0]

    async def receive_many(self, max_items: int) -> list[T_co]:
        """Wait for at least one item, then return up to ``max_items`` of them, in order.

        One scheduling decision for the batch: after the (at most one) wait it takes what is there
        without yielding, in one step (no other party sharing this subscription takes items from
        the middle of the batch). Keeping up, lagging and closing: as :meth:`receive` (``Lagged``
        is raised before anything is taken; ``EndOfStream`` only when not even one item is left).

        Cancellation: if cancelled, nothing was consumed.
        """
        if type(max_items) is not int or max_items < 1:
            raise ValueError(f"max_items must be a positive int, got {max_items!r}")
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        return await self._receive_many(backend, max_items)

    async def _receive_many(self, backend: _backend.Backend, max_items: int) -> list[T_co]:
        """Take what is there, or park and wait until woken, then read the ring (wake-then-read),
        parking again if another party sharing this subscription got there first. Returns one to
        ``max_items`` items."""
        state = self._state
        entry = None
        while True:
            state.lock.acquire()
            try:
                if entry is not None:
                    state.disengage(entry)  # it runs: no longer waiting
                if self._closed:
                    raise ClosedResourceError
                item = state.take(self)
                if type(item) is not Signal:
                    return state.take_more(self, [item], max_items)
                entry = state.park(self, backend.new_waiter())
            finally:
                state.unlock()
            await entry.waiter.wait(
                partial(state.abort_receive, entry), partial(state.undo_receive, entry)
            )
            self._budget = state.yield_every

    def receive_blocking(self, timeout: float | None = None) -> T_co:
        """The next item for this subscription, blocking this thread until one is sent.

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once instead of deadlocking it. A sender parked on an event
        loop is woken through that loop when this read frees its slot. While blocked here, the
        thread keeps the subscription up (as a task parked in :meth:`receive` does); between two
        calls it does not.

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
        entry = None
        while True:
            state.lock.acquire()
            try:
                if entry is not None:
                    state.disengage(entry)  # it runs: no longer waiting
                if self._closed:
                    raise ClosedResourceError
                item = state.take(self)
                if type(item) is not Signal:
                    return item
                if state.open_senders and _left(deadline) == 0:
                    raise TimeoutError("nothing was sent in time; nothing was taken")
                waiter = _backend.ThreadWaiter()
                entry = state.park(self, waiter)
            finally:
                state.unlock()
            waiter.wait_blocking(
                partial(state.abort_receive, entry),
                partial(state.undo_receive, entry),
                _left(deadline),
            )

    def iter_blocking(self, timeout: float | None = None) -> Iterator[T_co]:
        """Iterate in a thread: ``receive_blocking(timeout)`` until the end of the stream.

        Raises ``EventLoopBlockingError`` (on the first ``next``) on an event-loop thread, and
        ``TimeoutError`` if an item takes longer than ``timeout`` to arrive. ``Lagged`` (under
        ``"error"``) ends the iteration by propagating: the subscription has moved on to the
        oldest kept item, so call ``iter_blocking()`` again to resume from there.
        """
        _backend.check_timeout(timeout)
        return iterate_blocking(self.receive_blocking, timeout)

    # -- for merge and select (fearless._channels._merge, _select) --------------------------------

    def _readable(self) -> bool:
        """Without the lock, a hint: whether there is an item to read (or a lag to report)."""
        return self._pos < self._state.tail

    def _take_now(self, report_lag: bool = True) -> T_co | Signal:
        """The next item without waiting; ``EMPTY`` if there is none yet, ``ENDED`` if there
        never will be, ``CLOSED`` if this subscription is closed. Raises ``Lagged`` having moved
        on, unless ``report_lag`` is false: a lagging subscription then gives ``EMPTY`` and leaves
        the report to its next receive (a merge filling a batch)."""
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                return CLOSED
            if not report_lag and self._pos < state.floor:
                return EMPTY
            item = state.take(self)
            if item is EMPTY and not state.open_senders:
                return ENDED
            return item
        finally:
            state.unlock()

    def _park_at(
        self, waiter: _backend.Waiter, tag: object, parked: list[_ParkedReceive]
    ) -> tuple[ParkingLot[_ParkedReceive], _ParkedReceive]:
        """Under the lock, a join for ``park_many`` (merge, select): park ``waiter``'s party here,
        claimed with ``(tag, value)``, or claim it at once if this subscription has something
        (``READY``: read it), has ended (``ENDED``) or is closed (``CLOSED``). A party that parks
        keeps the subscription up, and is added to ``parked``: call ``release()`` on each once
        ``park_many`` has returned."""
        state = self._state
        entry = _ParkedReceive(waiter, self, tag)
        if self._closed:
            value: Signal | None = CLOSED
        elif self._pos < state.tail:
            value = READY
        elif not state.open_senders:
            value = ENDED
        else:
            state.recv_waiters.append(entry)
            state.engage(entry)
            parked.append(entry)
            return state.recv_waiters, entry
        if entry.claim(value):
            state.woken.append(entry)
        return state.recv_waiters, entry

    def _ended(self) -> bool:
        """Whether this subscription can never give an item again: closed, or every sender closed
        and nothing left for it. Takes the lock: a thread may send and close in between."""
        state = self._state
        state.lock.acquire()
        try:
            return self._closed or not (state.open_senders or self._pos < state.tail)
        finally:
            state.unlock()

    # -- the rest ---------------------------------------------------------------------------------

    def clone(self, *, on_lag: LagPolicy | None = None) -> Self:
        """A new subscription at this one's position: it sees the same items from here on
        (each subscription sees every item; clones do not share them out). ``on_lag`` is its lag
        policy (``None``: this one's); a ``"block"`` clone of a subscription that lags starts at
        the oldest item kept. Safe from any thread."""
        policy = self._policy if on_lag is None else check_on_lag(on_lag)
        state = self._state
        state.lock.acquire()
        try:
            if self._closed:
                raise ClosedResourceError
            return type(self)._create(state, self._pos, policy)
        finally:
            state.unlock()

    def close(self) -> None:
        """Close this subscription (idempotent; safe from any thread). Its own parked receives
        (tasks and threads alike) fail with ``ClosedResourceError``. It stops holding items (and
        the sender) at once."""
        state = self._state
        released = None
        state.lock.acquire()
        try:
            if self._closed:
                return
            self._closed = True
            state.recv_waiters.claim_owned(self, CLOSED, state.woken)
            released = state.remove_subscriber(self)
        finally:
            state.unlock()
            del released  # the ring's items, dropped without the lock

    def statistics(self) -> SubscriptionStatistics:
        """A snapshot of this subscription (pending, received, missed, policy) and of the
        broadcast. ``missed`` includes what ``Lagged`` errors reported (see
        :class:`SubscriptionStatistics`)."""
        state = self._state
        state.lock.acquire()
        try:
            pending = 0 if self._closed else state.tail - max(self._pos, state.floor)
            return SubscriptionStatistics(
                pending=pending,
                received=self._pos - self._start - self._missed,
                missed=self._missed,
                on_lag=self._policy,
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


class holding:
    """``with holding(endpoints):`` around a merge's or a select's yield: the subscriptions among
    ``endpoints`` keep up meanwhile, as a subscription's own receive does while it yields."""

    __slots__ = ("_subscriptions",)

    def __init__(self, endpoints: Iterable[object]) -> None:
        self._subscriptions = [e for e in endpoints if type(e) is Subscription]

    def __enter__(self) -> None:
        for subscription in self._subscriptions:
            subscription._hold()

    def __exit__(self, *exc_info: object) -> None:
        for subscription in self._subscriptions:
            subscription._unhold()


def check_broadcast_capacity(capacity: object) -> int:
    """``capacity`` as a ring size, or ``ValueError`` naming the bad value."""
    if type(capacity) is not int or capacity < 1:  # 0, inf, 1.0 and True are not ring sizes
        raise ValueError(
            f"broadcast capacity must be a positive int (a ring has slots: 0 and math.inf are "
            f"not meaningful), got {capacity!r}"
        )
    return capacity


def check_on_lag(on_lag: object) -> LagPolicy:
    """``on_lag`` as a lag policy, or ``ValueError`` naming the bad value."""
    for policy in _POLICIES:
        if on_lag == policy:
            return policy
    raise ValueError(f"on_lag must be 'error', 'drop' or 'block', got {on_lag!r}")


class broadcast(tuple[BroadcastSender[T], Subscription[T]]):
    """Create a broadcast and return its ``(BroadcastSender[T], Subscription[T])`` pair.

    ``broadcast[int](16)`` gives a typed pair. ``capacity`` is a positive int (the ring's size);
    ``on_lag`` is ``"error"`` (default), ``"drop"`` or ``"block"`` (the policy of the first
    subscription, and of later ones that do not choose their own); ``yield_every`` is the
    scheduling budget. The guide is ``docs/broadcast.md``.
    """

    def __new__(  # type: ignore[misc]
        cls,
        capacity: int,
        *,
        on_lag: LagPolicy = "error",
        yield_every: int = DEFAULT_YIELD_EVERY,
    ) -> tuple[BroadcastSender[T], Subscription[T]]:
        state: BroadcastState[T] = BroadcastState(
            check_broadcast_capacity(capacity), check_on_lag(on_lag), check_yield_every(yield_every)
        )
        sender: BroadcastSender[T] = BroadcastSender._create(state)
        return sender, sender.subscribe()
