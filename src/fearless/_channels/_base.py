"""What every endpoint shares: closing, the event loop it is bound to, the scheduling budget,
the abstract :class:`Receiver`, and the argument checks of the factories.

Channels, broadcasts, merges and oneshots build their endpoints on these; nothing here knows how a
particular state moves items.
"""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, Self, TypeVar

from anyio import EndOfStream
from anyio.abc import ObjectReceiveStream

from .. import _backend

__all__ = [
    "DEFAULT_YIELD_EVERY",
    "ClosesOnExit",
    "LoopBound",
    "Receiver",
    "check_capacity",
    "check_yield_every",
    "iterate_blocking",
    "warn_unclosed",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

DEFAULT_YIELD_EVERY: Final = 32
"""Fast-path operations an endpoint may complete before it yields to the scheduler once.

Chosen by ``benchmarks/`` (see ``docs/channels.md``, "The scheduling budget")."""


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
    _home: Any  # the event loop whose tasks use it, or None (see fearless._backend.bind)

    def _yield(self, backend: _backend.Backend) -> Awaitable[None]:
        """The budget ran out (or the task is cancelled): what to await to yield once, a cancel
        point, having bound the endpoint to the loop (the budget starts at 0, so an endpoint's
        first async operation binds it). Not a coroutine: at ``yield_every=1`` (anyio's schedule)
        this runs on every operation, and a frame less is measurably faster."""
        self._budget = self._state.yield_every
        return backend.pause(self)

    def _loop_shut_down(self) -> None:
        """The event loop whose tasks used this endpoint has shut down: for the threads that use
        its channel, that counts as closed, so close it. A channel no thread has used is left
        alone: tasks of a later loop may go on using it."""
        if self._state.threads:
            self.close()


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
