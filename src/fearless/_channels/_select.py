"""Select: wait on several channel operations at once and commit exactly one.

Specification (``docs/select.md`` is the user guide; ``docs/design/concurrency.md``, "Select
commits exactly one", gives the reasons):

Branches
    ``Recv(receiver)`` receives from a channel or a broadcast subscription; ``Send(sender, item)``
    sends ``item`` to a channel.
    Branch objects are reusable: build them once, select on them in a loop. After a select, the
    winning branch holds the outcome: ``recv.value`` is the item received (typed as the
    receiver's item type); ``send.value`` is ``None``.

Exactly one
    ``await select(*branches)`` commits exactly one branch and returns it: an item is taken from,
    or put into, that branch's channel and no other. The other branches' channels are left as if
    the select had never looked at them.

Which one
    If several branches are ready, one is picked uniformly at random, so none starves.
    ``biased=True`` picks the first ready branch in the order given instead. If none is ready,
    the select waits on all of them and the first channel to deliver (or to accept the item) wins.

Ends and failures are outcomes too
    A ``Recv`` on a channel that has ended (every sender closed, buffer drained) is ready: it wins,
    and its ``value`` raises ``EndOfStream``; check ``recv.ended`` first. A ``Send`` on a channel
    whose receivers are all closed is ready too: its ``value`` raises ``SendBrokenError`` (the item
    was not sent). A branch on an endpoint that is (or gets) closed raises ``ClosedResourceError``
    (``SendClosedError`` for a send) the same way. So a select never hangs on a dead channel. A
    ``Recv`` on a subscription that lagged (``on_lag="error"``) is ready too: it wins, having moved
    the subscription on to the oldest item kept, and its ``value`` raises ``Lagged``.

Non-blocking and timeouts
    ``select_nowait(*branches)`` commits a ready branch or raises ``WouldBlock`` having done
    nothing. Timeouts are anyio's cancel scopes: ``with anyio.move_on_after(1): await select(...)``.

Cancellation
    ``select`` is a cancel point. A cancelled select committed nothing, under anyio scopes, trio,
    and native asyncio cancellation. (On asyncio a task can be cancelled after a channel completed
    its branch but before it ran: the branch is then taken back, as for a plain ``receive`` or
    ``send``; only a send whose item a receiver already holds stands, and the select returns it
    with the cancellation delivered next.)

Subscriptions
    A subscription wakes a parked select with no item; the select reads the ring once it runs
    (as the subscription's own receive does), and if a task sharing the subscription took the
    item first, it waits again, having committed nothing. While parked (or yielding), a select
    keeps its subscriptions up (``fearless._channels._broadcast``, "Keeping up").

Scope
    ``Recv`` works on fearless channel receivers (``channel`` and ``create_memory_object_stream``)
    and broadcast subscriptions, ``Send`` on channel senders; not on merges.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial
from typing import Any, Final, Generic, TypeVar, cast

from anyio import ClosedResourceError, EndOfStream, WouldBlock

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import Lagged, SendBrokenError, SendClosedError
from .._parking import (
    BROKEN,
    CLOSED,
    EMPTY,
    ENDED,
    READY,
    SENT,
    Parked,
    ParkingLot,
    is_signal,
    park_many,
)
from ._broadcast import Subscription, holding
from ._endpoints import ChannelReceiver, Sender
from ._state import ParkedReceive, ParkedSend

__all__ = ["Branch", "Recv", "Send", "select", "select_nowait"]

T = TypeVar("T")

_random: Final = random.Random().random
_UNSET: Final = object()


class Branch:
    """One operation a select may commit: :class:`Recv` or :class:`Send`."""

    __slots__ = ("_busy", "_endpoint", "_error", "_outcome")

    _busy: bool  # parked in a select right now (a branch belongs to one task at a time)

    _endpoint: Any  # the channel endpoint this branch operates on
    _error: BaseException | None  # set if the branch won with an end or a failure
    _outcome: Any  # the item received (Recv) or None (Send) once the branch won; else _UNSET

    def _ready(self) -> bool:
        """A cheap peek: could ``_poll`` commit now? (May say yes wrongly, never no wrongly.)"""
        raise NotImplementedError

    def _poll(self) -> bool:
        """Try the operation without waiting; True if it committed (or the branch failed)."""
        raise NotImplementedError

    def _park(self, waiter: _backend.Waiter, index: int) -> tuple[ParkingLot[Any], Parked]:
        """Under the channel's lock: queue the operation, then settle (``ChannelState.settle``);
        returns the lot it joined and its entry there."""
        raise NotImplementedError

    def _settle(self, value: object) -> None:
        """Record the outcome the winning channel delivered."""
        raise NotImplementedError

    def _undo(self, value: object) -> bool:
        """Take the committed operation back (native asyncio cancellation); False if it stands."""
        raise NotImplementedError

    def _unpark(self) -> None:
        """The select's task runs again after parking: let go of what parking holds (nothing,
        but for a subscription, which it kept up)."""


class Recv(Branch, Generic[T]):
    """Receive one item from ``receiver`` (a channel receiver or a broadcast subscription); after
    it wins, ``value`` is the item."""

    __slots__ = ("receiver",)

    receiver: ChannelReceiver[T] | Subscription[T]

    def __new__(cls, receiver: ChannelReceiver[T] | Subscription[T]) -> Recv[T]:
        if isinstance(receiver, Subscription):  # the same branch, reading a ring instead
            return object.__new__(_RecvSubscription)
        return object.__new__(cls)

    def __init__(self, receiver: ChannelReceiver[T] | Subscription[T]) -> None:
        if not isinstance(receiver, ChannelReceiver | Subscription):
            raise TypeError(
                f"Recv takes a fearless channel receiver or a broadcast subscription, got "
                f"{receiver!r}"
            )
        self.receiver = self._endpoint = receiver
        self._outcome = _UNSET
        self._error = None
        self._busy = False

    @property
    def value(self) -> T:
        """The item received. Raises the branch's ``EndOfStream`` / ``ClosedResourceError`` (or,
        on a subscription, ``Lagged``)."""
        if self._error is not None:
            raise self._error
        if self._outcome is _UNSET:
            raise RuntimeError("this Recv branch did not win the last select")
        return self._outcome  # type: ignore[no-any-return]

    @property
    def ended(self) -> bool:
        """True if the branch won because its channel has ended (``value`` raises EndOfStream)."""
        return isinstance(self._error, EndOfStream)

    def _ready(self) -> bool:
        receiver: ChannelReceiver[T] = self._endpoint
        state = receiver._state
        return bool(
            receiver._closed or state.buffer or state.send_waiters or not state.open_senders
        )

    def _poll(self) -> bool:
        receiver: ChannelReceiver[T] = self._endpoint
        state = receiver._state
        with state.lock:
            if receiver._closed:
                self._error = ClosedResourceError()
                return True
            item = state.take()
            woken = state.take_woken()
            if item is EMPTY and state.open_senders:
                return False
        if woken:
            state.wake(woken)
        if item is EMPTY:
            self._error = EndOfStream()
        else:
            self._outcome = item
        return True

    def _park(self, waiter: _backend.Waiter, index: int) -> tuple[ParkingLot[Any], Parked]:
        receiver: ChannelReceiver[T] = self._endpoint
        entry = _RecvEntry(waiter, receiver, index)
        state = receiver._state
        if receiver._closed:
            if entry.claim(CLOSED):
                state.woken.append(entry)
        else:
            state.recv_waiters.append(entry)
            state.settle()
        return state.recv_waiters, entry

    def _settle(self, value: object) -> None:
        if value is ENDED:
            self._error = EndOfStream()
        elif value is CLOSED:
            self._error = ClosedResourceError()
        else:
            self._outcome = value

    def _undo(self, value: object) -> bool:
        if not is_signal(value):
            receiver: ChannelReceiver[T] = self._endpoint
            receiver._state.give_back(cast(T, value))
        return True


class _RecvSubscription(Recv[T]):
    """``Recv`` on a broadcast subscription: woken with ``READY``, it reads the ring once its task
    runs (``select`` then calls ``_poll``)."""

    __slots__ = ("_parked",)

    _parked: list[Any]  # where the select's task parked on the subscription (one entry, or none)

    def __init__(self, receiver: ChannelReceiver[T] | Subscription[T]) -> None:
        super().__init__(receiver)
        self._parked = []

    def _ready(self) -> bool:
        subscription: Subscription[T] = self._endpoint
        return (
            subscription._closed or subscription._readable() or not subscription._state.open_senders
        )

    def _poll(self) -> bool:
        subscription: Subscription[T] = self._endpoint
        try:
            item = subscription._take_now()
        except Lagged as lagged:
            self._error = lagged
            return True
        if item is EMPTY:
            return False
        self._settle(item)
        return True

    def _park(self, waiter: _backend.Waiter, index: int) -> tuple[ParkingLot[Any], Parked]:
        subscription: Subscription[T] = self._endpoint
        return subscription._park_at(waiter, index, self._parked)

    def _undo(self, value: object) -> bool:
        return True  # woken with no item (or its end): nothing was taken

    def _unpark(self) -> None:
        if self._parked:
            for entry in self._parked:
                entry.release()
            self._parked.clear()


class Send(Branch, Generic[T]):
    """Send ``item`` to ``sender``; ``value`` is ``None`` once it wins (or raises its error)."""

    __slots__ = ("_entry", "item", "sender")

    def __init__(self, sender: Sender[T], item: T) -> None:
        if not isinstance(sender, Sender):
            raise TypeError(f"Send takes a fearless channel sender, got {sender!r}")
        self.sender = self._endpoint = sender
        self.item = item
        self._outcome = _UNSET
        self._error = None
        self._busy = False

    @property
    def value(self) -> None:
        """``None`` if the item was sent; raises ``SendBrokenError`` / ``SendClosedError``."""
        if self._error is not None:
            raise self._error
        if self._outcome is _UNSET:
            raise RuntimeError("this Send branch did not win the last select")

    def _ready(self) -> bool:
        sender = self.sender
        state = sender._state
        return bool(
            sender._closed
            or not state.open_receivers
            or state.recv_waiters
            or len(state.buffer) < state.capacity
        )

    def _poll(self) -> bool:
        sender = self.sender
        state = sender._state
        with state.lock:
            if sender._closed:
                self._error = SendClosedError((self.item,))
                return True
            if not state.open_receivers:
                self._error = SendBrokenError((self.item,))
                return True
            if not state.offer(self.item):
                return False
            woken = state.take_woken()
        if woken:
            state.wake(woken)
        self._outcome = None
        return True

    def _park(self, waiter: _backend.Waiter, index: int) -> tuple[ParkingLot[Any], Parked]:
        entry = self._entry = _SendEntry(waiter, [self.item], self.sender, index)
        state = self.sender._state
        if self.sender._closed:
            if entry.claim(CLOSED):
                state.woken.append(entry)
        else:
            state.send_waiters.append(entry)
            state.settle()
        return state.send_waiters, entry

    def _settle(self, value: object) -> None:
        if value is SENT:
            self._outcome = None
        elif value is BROKEN:
            self._error = SendBrokenError((self.item,))
        else:
            assert value is CLOSED, value
            self._error = SendClosedError((self.item,))

    def _undo(self, value: object) -> bool:
        return value is not SENT or self.sender._state.withdraw(self._entry)


class _RecvEntry(ParkedReceive):
    """A select's parked task as one channel's receivers see it."""

    __slots__ = ("index",)

    def __init__(self, waiter: _backend.Waiter, owner: object, index: int) -> None:
        super().__init__(waiter, owner)
        self.index = index

    def wrap(self, value: object) -> object:
        return (self.index, value)

    def claimed_item(self) -> Any:
        value = self.waiter.value[1]
        return EMPTY if is_signal(value) else value


class _SendEntry(ParkedSend[Any]):
    """A select's parked task as one channel's senders see it."""

    __slots__ = ("index",)

    def __init__(
        self, waiter: _backend.Waiter, items: list[Any], owner: object, index: int
    ) -> None:
        super().__init__(waiter, items, owner)
        self.index = index

    def wrap(self, value: object) -> object:
        return (self.index, value)


def _checked(branches: Sequence[Branch]) -> Sequence[Branch]:
    if not branches:
        raise ValueError("select() needs at least one branch")
    if len(set(map(id, branches))) != len(branches):
        raise ValueError("select() was given the same branch object twice")
    return branches


def _not_a_branch(branches: Sequence[object]) -> TypeError:
    bad = next(b for b in branches if not isinstance(b, Branch))
    return TypeError(f"select() takes Recv and Send branches, got {bad!r}")


def _try(branches: Sequence[Branch], biased: bool) -> Branch | None:
    """Commit a ready branch, picked at random (or the first, if biased); None if none is ready."""
    for branch in branches:
        if branch._busy:
            raise RuntimeError(f"{branch!r} is already in a select that is waiting")
        branch._outcome = _UNSET
        branch._error = None
    if not biased:
        # Reservoir sampling: one pass, each ready branch ends up chosen with probability 1/k.
        chosen: Branch | None = None
        ready = 0
        for branch in branches:
            if branch._ready():
                ready += 1
                if ready == 1 or _random() * ready < 1:
                    chosen = branch
        if chosen is not None and chosen._poll():
            return chosen
        # _ready() is a cheap peek; if it was wrong (a waiter it counted was cancelled), fall
        # through to trying every branch in order.
    for branch in branches:
        if branch._poll():
            return branch
    return None


def select_nowait(*branches: Branch, biased: bool = False) -> Branch:
    """Commit one ready branch and return it, or raise ``WouldBlock`` having done nothing."""
    try:
        winner = _try(_checked(branches), biased)
    except AttributeError:
        raise _not_a_branch(branches) from None
    if winner is None:
        raise WouldBlock
    return winner


async def select(*branches: Branch, biased: bool = False) -> Branch:
    """Wait until one branch can commit, commit exactly that one, and return it.

    Ordering: among ready branches, one at random (the first, if ``biased``); otherwise the first
    channel to deliver. Closing: ends and failures are outcomes of the branch (see the module
    docstring), never a hang. Cancellation: a cancel point; a cancelled select committed nothing.
    """
    _checked(branches)
    backend = _enter()
    # The scheduling budget: a select spends one operation of every endpoint it looks at, and
    # yields (before committing anything) when one of them has run out, or the task is cancelled.
    must_yield = backend.cancel_pending
    try:
        for branch in branches:
            endpoint = branch._endpoint
            endpoint._budget -= 1
            if endpoint._budget <= 0:
                endpoint._budget = endpoint._state.yield_every
                must_yield = True
    except AttributeError:
        raise _not_a_branch(branches) from None
    if must_yield:
        for branch in branches:  # as the endpoints' own operations would (fearless._backend.bind)
            _backend.bind(branch._endpoint)
        with holding(branch._endpoint for branch in branches):  # its subscriptions keep up
            await backend.checkpoint()

    def undo(result: tuple[int, object]) -> bool:
        index, value = result
        return branches[index]._undo(value)

    while True:
        winner = _try(branches, biased)
        if winner is not None:
            return winner
        waiter = backend.new_waiter(shared=True)
        joins = (
            (branch._endpoint._state, partial(branch._park, waiter, i))
            for i, branch in enumerate(branches)
        )
        for branch in branches:
            branch._busy = True
        try:
            result: tuple[int, object] = await park_many(waiter, joins, undo)
        finally:
            for branch in branches:
                branch._busy = False
                branch._unpark()
        index, value = result
        winner = branches[index]
        if value is not READY:
            winner._settle(value)
            return winner
        if winner._poll():  # a subscription woke it: read the ring now (wake-then-read)
            return winner
        # A task sharing that subscription took the item first: nothing was committed; again.
