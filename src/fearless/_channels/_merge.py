"""Fan-in: ``merge(*receivers)`` reads several channels as one, with no forwarding tasks.

Specification:

- Items from each input arrive in that input's order; between inputs, in the order they become
  available. When several inputs have items, the merge takes from them in rotation, so a busy
  input cannot starve a quiet one.
- The merge ends (``EndOfStream``) once every input has ended. An input whose receiver is closed
  by someone else counts as ended.
- The merge owns its inputs: closing it closes every input receiver. ``clone()`` makes a second
  merge over clones of the inputs (each item goes to exactly one of the merges).
- Cancellation: a cancelled ``receive`` took nothing from any input. While waiting, the merge
  parks one task on every live input at once; the first input to deliver wins and the others see
  the offer refused, so their item goes to the next receiver or stays buffered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, final

from anyio import ClosedResourceError, EndOfStream, WouldBlock

from .. import _backend
from ._channel import (
    CLOSED,
    EMPTY,
    ENDED,
    ChannelReceiver,
    ChannelStatistics,
    ParkedReceive,
    Receiver,
    _discard,
    _State,
)

__all__ = ["MergeStatistics", "merge"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@final
@dataclass(frozen=True, slots=True)
class MergeStatistics:
    """A snapshot of a merge."""

    inputs: tuple[ChannelStatistics, ...]
    """Each input channel's statistics, in the order the inputs were given."""
    open_inputs: int
    """Inputs that have not ended yet."""


class _Branch(ParkedReceive):
    """The merge's parked task, as seen by input ``index``: wakes it with ``(index, value)``."""

    __slots__ = ("index",)

    def __init__(self, waiter: _backend.Waiter, owner: object, index: int) -> None:
        super().__init__(waiter, owner)
        self.index = index

    def deliver(self, value: object) -> bool:
        return self.waiter.wake((self.index, value))


_DEFAULT_BUDGET: Final = 32


@final
class MergedReceiver(Receiver[T_co]):
    """Several channel receivers read as one. Created only by :func:`merge`."""

    __slots__ = ("_budget", "_closed", "_inputs", "_live", "_next", "_yield_every")

    _inputs: tuple[ChannelReceiver[T_co], ...]
    _live: list[int]  # indexes of inputs that have not ended
    _next: int  # where the next scan starts, for rotation
    _budget: int
    _yield_every: int
    _closed: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("MergedReceiver has no public constructor; use fearless.merge()")

    @classmethod
    def _create(cls, inputs: tuple[ChannelReceiver[T_co], ...]) -> MergedReceiver[T_co]:
        self = object.__new__(cls)
        self._inputs = inputs
        self._live = list(range(len(inputs)))
        self._next = 0
        self._yield_every = min((r._state.yield_every for r in inputs), default=_DEFAULT_BUDGET)
        self._budget = self._yield_every
        self._closed = False
        return self

    def _poll(self) -> Any:
        """Take one item from the live inputs in rotation; ``EMPTY`` if none has one."""
        live = self._live
        n = len(live)
        start = self._next
        for k in range(n):
            pos = (start + k) % n
            receiver = self._inputs[live[pos]]
            state = receiver._state
            item = EMPTY if receiver._closed else state.take()
            if item is not EMPTY:
                self._next = pos + 1
                return item
        # Drop inputs that have ended (nothing buffered, no sender left) or were closed.
        ended = [
            i for i in live if self._inputs[i]._closed or not (self._inputs[i]._state.open_senders)
        ]
        for i in ended:
            live.remove(i)
        return EMPTY

    def receive_nowait(self) -> T_co:
        """The next item from any input, without waiting; ``WouldBlock`` or ``EndOfStream``."""
        if self._closed:
            raise ClosedResourceError
        item = self._poll()
        if item is EMPTY:
            raise WouldBlock if self._live else EndOfStream
        return item  # type: ignore[no-any-return]

    async def receive(self) -> T_co:
        """The next item from whichever input has one first.

        Ordering: per input, the order sent; inputs with items are served in rotation. Closing:
        ``EndOfStream`` once every input has ended; ``ClosedResourceError`` if the merge is
        closed. Cancellation: a cancel point; if cancelled, no input gave up an item.
        """
        backend = _backend.enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            self._budget = self._yield_every
            await backend.checkpoint()
        while True:
            if self._closed:
                raise ClosedResourceError
            item = self._poll()
            if item is not EMPTY:
                return item  # type: ignore[no-any-return]
            if not self._live:
                raise EndOfStream
            index, value = await self._park(backend)
            self._budget = self._yield_every
            if value is ENDED or value is CLOSED:
                if index in self._live:
                    self._live.remove(index)
                continue
            return value  # type: ignore[no-any-return]

    async def _park(self, backend: _backend.Backend) -> tuple[int, Any]:
        waiter = backend.new_waiter()
        parked: list[tuple[_State, _Branch]] = []
        for i in self._live:
            receiver = self._inputs[i]
            branch = _Branch(waiter, receiver, i)
            receiver._state.recv_waiters.append(branch)
            parked.append((receiver._state, branch))
        unpark: Callable[[], None] = lambda: _unpark(parked)  # noqa: E731
        try:
            result: tuple[int, Any] = await waiter.wait(unpark)
        finally:
            unpark()  # the branches that did not win must not linger in idle inputs
        return result

    async def receive_many(self, max_items: int) -> list[T_co]:
        """Wait for at least one item, then take up to ``max_items`` from the inputs in rotation.

        Cancellation: if cancelled, nothing was taken. Closing: as :meth:`receive`.
        """
        if type(max_items) is not int or max_items < 1:
            raise ValueError(f"max_items must be a positive int, got {max_items!r}")
        items = [await self.receive()]
        while len(items) < max_items:
            item = self._poll()
            if item is EMPTY:
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
            inputs=tuple(r.statistics() for r in self._inputs), open_inputs=len(self._live)
        )

    def __del__(self) -> None:
        # The inputs warn for themselves if they were never closed.
        pass


def _unpark(parked: list[tuple[_State, _Branch]]) -> None:
    for state, branch in parked:
        _discard(state.recv_waiters, branch)


def merge(*receivers: Receiver[T]) -> MergedReceiver[T]:
    """Read several channels as one; see the module docstring for the guarantees.

    The merge takes ownership of the receivers: close the merge, not the inputs.
    Raises ``TypeError`` for anything but fearless channel receivers, and ``ValueError`` if the
    same receiver is given twice.
    """
    for receiver in receivers:
        if not isinstance(receiver, ChannelReceiver):
            raise TypeError(f"merge() takes receivers made by fearless.channel(), got {receiver!r}")
    if len({id(r) for r in receivers}) != len(receivers):
        raise ValueError("merge() was given the same receiver twice")
    return MergedReceiver._create(receivers)  # type: ignore[arg-type]
