"""Fan-in: ``merge(*receivers)`` reads several channels as one, with no forwarding tasks.

Specification (inputs are channel receivers and broadcast subscriptions, in any mix):

- Items from each input arrive in that input's order; between inputs, in the order they become
  available. When several inputs have items, the merge takes from them in rotation, so a busy
  input cannot starve a quiet one.
- The merge ends (``EndOfStream``) once every input has ended. An input whose receiver is closed
  by someone else counts as ended.
- The merge owns its inputs: closing it closes every input receiver. ``clone()`` makes a second
  merge over clones of the inputs: a channel's items each go to exactly one of the merges, and a
  subscription's clone, as ever, sees every item again.
- A subscription input: the merge's ``receive`` raises its ``Lagged`` (``on_lag="error"``) having
  moved it on, and the next ``receive`` goes on from there; ``receive_many`` stops its batch
  before a lagging subscription, whose next receive reports it. While the merge waits (parked, or
  yielding in ``receive``), its subscriptions keep up: a waiting send does not overwrite what they
  have not read (``fearless._channels._broadcast``, "Keeping up").
- Scheduling: every ``receive`` is a cancel point; the merge yields once every ``yield_every``
  operations *per live input* (the smallest ``yield_every`` of its inputs, times their number),
  the same share each input would get from a consumer of its own.
- Cancellation: a cancelled ``receive`` took nothing from any input. While waiting, the merge
  parks one task on every live input at once; the first input to deliver wins and the others see
  the offer refused, so their item goes to the next receiver or stays buffered. A subscription
  wakes it with no item (it reads the ring once it runs), so there is nothing to give back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast, final

from anyio import ClosedResourceError, EndOfStream, WouldBlock

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import Lagged
from .._parking import (
    CLOSED,
    EMPTY,
    READY,
    Parked,
    ParkingLot,
    Signal,
    Site,
    is_signal,
    park_many,
)
from ._base import DEFAULT_YIELD_EVERY, Receiver
from ._broadcast import Subscription, holding
from ._endpoints import ChannelReceiver
from ._state import ParkedReceive

__all__ = ["MergeStatistics", "merge"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@final
@dataclass(frozen=True, slots=True)
class MergeStatistics:
    """A snapshot of a merge."""

    inputs: tuple[Any, ...]
    """Each input's statistics, in the order the inputs were given: a ``ChannelStatistics`` for a
    channel receiver, a ``SubscriptionStatistics`` for a broadcast subscription. (Typed ``Any``
    so that code reading a channel-only merge's ``current_buffer_used`` keeps type-checking.)"""
    open_inputs: int
    """Inputs that have not ended yet."""


class _Branch(ParkedReceive):
    """The merge's parked task, as one input sees it: claimed with ``(input, value)``."""

    __slots__ = ()

    def wrap(self, value: object) -> object:
        return (self.owner, value)

    def claimed_item(self) -> Any:
        value = self.waiter.value[1]
        return EMPTY if is_signal(value) else value


@final
class MergedReceiver(Receiver[T_co]):
    """Several channel receivers and subscriptions read as one. Created only by :func:`merge`."""

    __slots__ = ("_budget", "_closed", "_inputs", "_live", "_next", "_per_input", "_yield_every")

    _inputs: tuple[ChannelReceiver[T_co] | Subscription[T_co], ...]
    _live: list[ChannelReceiver[T_co] | Subscription[T_co]]  # inputs not ended, in given order
    _next: int  # where the next scan of _live starts, for rotation
    _budget: int
    # The budget: yield_every per live input. A merge does the work of one consumer per input;
    # sharing one consumer's budget among N inputs would let each producer move only 1/N as
    # many items per scheduling round, and park N times as often.
    _per_input: int
    _yield_every: int
    _closed: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("MergedReceiver has no public constructor; use fearless.merge()")

    @classmethod
    def _create(
        cls, inputs: tuple[ChannelReceiver[T_co] | Subscription[T_co], ...]
    ) -> MergedReceiver[T_co]:
        self = object.__new__(cls)
        self._inputs = inputs
        self._live = list(inputs)
        self._next = 0
        self._per_input = min((r._state.yield_every for r in inputs), default=DEFAULT_YIELD_EVERY)
        self._yield_every = self._per_input * max(1, len(inputs))
        self._budget = 0  # the first receive yields, and binds the inputs to its loop
        self._closed = False
        return self

    def _poll(self, report_lag: bool = True) -> T_co | Signal:
        """Take one item from the live inputs in rotation; ``EMPTY`` if none has one. A lagging
        subscription raises ``Lagged`` (or, unless ``report_lag``, is passed over)."""
        live = self._live
        n = len(live)
        i = self._next
        for _ in range(n):
            if i >= n:
                i = 0
            receiver = live[i]
            i += 1
            if type(receiver) is Subscription:
                if not receiver._readable():
                    continue  # a peek without the lock, as below
                try:
                    item = receiver._take_now(report_lag)
                except Lagged:
                    self._next = i  # the rotation goes on past it
                    raise
                if type(item) is Signal:
                    continue  # nothing after all (closed, or taken by a task sharing it)
                self._next = i
                return item
            state = receiver._state
            if not state.buffer and not state.send_waiters:
                continue  # a peek without the lock: an item arriving now is found when parking
            with state.lock:
                taken = EMPTY if receiver._closed else state.take()
                woken = state.take_woken()
            if woken:
                state.wake(woken)
            if type(taken) is not Signal:
                self._next = i
                return taken
        # Nothing anywhere: drop the inputs that have ended (no sender left) or were closed.
        self._live = [r for r in live if not _ended(r)]
        self._yield_every = self._per_input * max(1, len(self._live))
        return EMPTY

    async def _yield(self, backend: _backend.Backend) -> None:
        """The budget ran out (or the task is cancelled): yield once, a cancel point. Binds the
        inputs to this event loop, as their own operations would (fearless._backend.bind)."""
        self._budget = self._yield_every
        for receiver in self._live:
            _backend.bind(receiver)
        with holding(self._live):  # its subscriptions keep up while it yields inside a receive
            await backend.checkpoint()

    def receive_nowait(self) -> T_co:
        """The next item from any input, without waiting; ``WouldBlock`` or ``EndOfStream``.

        Safe from any thread (the merge's own bookkeeping is not: use one merge from one task or
        thread at a time, or clone it)."""
        if self._closed:
            raise ClosedResourceError
        item = self._poll()
        if type(item) is Signal:
            raise WouldBlock if self._live else EndOfStream
        return item

    async def receive(self) -> T_co:
        """The next item from whichever input has one first.

        Ordering: per input, the order sent; inputs with items are served in rotation. Closing:
        ``EndOfStream`` once every input has ended; ``ClosedResourceError`` if the merge is
        closed. Cancellation: a cancel point; if cancelled, no input gave up an item.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        if not self._closed:
            item = self._poll()
            if type(item) is not Signal:
                return item
        return await self._wait(backend)

    async def __anext__(self) -> T_co:
        # receive(), inlined: iteration is the commonest way to consume a merge.
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        if not self._closed:
            item = self._poll()
            if type(item) is not Signal:
                return item
        try:
            return await self._wait(backend)
        except EndOfStream:
            raise StopAsyncIteration from None

    async def _wait(self, backend: _backend.Backend) -> T_co:
        """The slow path of receive: park on every live input until one delivers."""
        while True:
            if self._closed:
                raise ClosedResourceError
            item = self._poll()
            if type(item) is not Signal:
                return item
            if not self._live:
                raise EndOfStream
            receiver, value = await self._park(backend)
            self._budget = self._yield_every
            if value is READY:
                continue  # a subscription has something: read it now (wake-then-read)
            if type(value) is not Signal:
                return cast(T_co, value)
            if receiver in self._live:  # that input ended, or its receiver was closed
                self._live.remove(receiver)

    async def _park(
        self, backend: _backend.Backend
    ) -> tuple[ChannelReceiver[T_co] | Subscription[T_co], Any]:
        """Park on every live input at once (``fearless._parking.park_many``) until one delivers
        an item or its end (a subscription: ``READY``, something to read); returns
        ``(input, value)``."""
        waiter = backend.new_waiter(shared=True)
        parked: list[Any] = []  # where it parked on subscriptions: released once it runs
        try:
            result: tuple[ChannelReceiver[T_co] | Subscription[T_co], Any] = await park_many(
                waiter, (_site(r, waiter, parked) for r in self._live), _give_back
            )
        finally:
            for entry in parked:
                entry.release()
        return result

    async def receive_many(self, max_items: int) -> list[T_co]:
        """Wait for at least one item, then take up to ``max_items`` from the inputs in rotation.

        Cancellation: if cancelled, nothing was taken. Closing: as :meth:`receive`.
        """
        if type(max_items) is not int or max_items < 1:
            raise ValueError(f"max_items must be a positive int, got {max_items!r}")
        items = [await self.receive()]
        while len(items) < max_items:
            item = self._poll(report_lag=False)
            if type(item) is Signal:
                break
            items.append(item)
        return items

    def clone(self) -> MergedReceiver[T_co]:
        """A second merge over clones of the inputs; each item goes to exactly one merge."""
        if self._closed:
            raise ClosedResourceError
        return MergedReceiver._create(tuple(r.clone() for r in self._inputs))

    def close(self) -> None:
        """Close the merge and every input receiver (idempotent)."""
        if not self._closed:
            self._closed = True
            for receiver in self._inputs:
                receiver.close()

    def statistics(self) -> MergeStatistics:
        """Each input's statistics and how many inputs are still open."""
        return MergeStatistics(
            inputs=tuple(r.statistics() for r in self._inputs),
            open_inputs=sum(1 for r in self._inputs if not _ended(r)),
        )

    def __repr__(self) -> str:
        # Read without the inputs' locks (a repr may be asked for while one is held): a moment's
        # snapshot. "open" counts the inputs as statistics() does (not closed, and a sender or an
        # item left); "buffered" is what they hold for the merge (a subscription: its pending).
        inputs = self._inputs
        held = [_held(r) for r in inputs]
        still = sum(
            1 for r, n in zip(inputs, held, strict=True) if not r._closed and (n or _fed(r))
        )
        return (
            f"<MergedReceiver {'closed' if self._closed else 'open'} inputs={len(inputs)}"
            f" open_inputs={still} buffered={sum(held)}>"
        )

    def __del__(self) -> None:
        # The inputs warn for themselves if they were never closed.
        pass


def _give_back(result: tuple[ChannelReceiver[Any], Any]) -> bool:
    """The merge was handed an item and then cancelled: the item goes back to its input."""
    receiver, value = result
    if not is_signal(value):
        receiver._state.give_back(value)
    return True


def _held(receiver: ChannelReceiver[Any] | Subscription[Any]) -> int:
    """What an input holds for the merge now, read without its lock (for the repr)."""
    if type(receiver) is Subscription:
        state = receiver._state
        return 0 if receiver._closed else state.tail - max(receiver._pos, state.floor)
    return len(receiver._state.buffer)


def _fed(receiver: ChannelReceiver[Any] | Subscription[Any]) -> bool:
    """Whether an input's senders are still open, read without its lock (for the repr)."""
    return bool(receiver._state.open_senders)


def _ended(receiver: ChannelReceiver[Any] | Subscription[Any]) -> bool:
    """Whether an input can never give an item again: closed, or every sender closed and nothing
    left. Decided under its lock: a thread may send and close between a peek and this."""
    if type(receiver) is Subscription:
        return receiver._ended()
    state = receiver._state
    with state.lock:
        return receiver._closed or not (state.open_senders or state.buffer or state.send_waiters)


def _site(
    receiver: ChannelReceiver[Any] | Subscription[Any], waiter: _backend.Waiter, parked: list[Any]
) -> tuple[Site, Callable[[], tuple[ParkingLot[Any], Parked]]]:
    """Where and how the merge's task parks on ``receiver``, for ``park_many``."""
    if type(receiver) is Subscription:
        return receiver._state, partial(receiver._park_at, waiter, receiver, parked)
    return receiver._state, partial(_join, receiver, _Branch(waiter, receiver))


def _join(
    receiver: ChannelReceiver[Any], branch: _Branch
) -> tuple[ParkingLot[ParkedReceive], _Branch]:
    """Under the input's lock: queue the merge's branch there, and settle it with what the input
    holds already (``ChannelState.settle``); a closed input claims it at once."""
    state = receiver._state
    if receiver._closed:
        if branch.claim(CLOSED):
            state.woken.append(branch)
    else:
        state.recv_waiters.append(branch)
        state.settle()  # it may have had an item (or ended) since _poll looked
    return state.recv_waiters, branch


def merge(*receivers: ChannelReceiver[T] | Subscription[T]) -> MergedReceiver[T]:
    """Read several channels and broadcast subscriptions as one; the guide, ``docs/channels.md``
    ("Fan-in"), has the guarantees.

    The merge takes ownership of the receivers: close the merge, not the inputs.
    Raises ``TypeError`` for anything but fearless channel receivers and broadcast subscriptions,
    and ``ValueError`` if the same receiver is given twice.
    """
    for receiver in receivers:
        if not isinstance(receiver, ChannelReceiver | Subscription):
            raise TypeError(
                "merge() takes receivers made by fearless.channel() and broadcast "
                f"subscriptions, got {receiver!r}"
            )
    if len({id(r) for r in receivers}) != len(receivers):
        raise ValueError("merge() was given the same receiver twice")
    return MergedReceiver._create(receivers)
