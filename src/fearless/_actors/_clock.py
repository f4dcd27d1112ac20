"""The clock an actor system keeps time by: its timers now, restart intensity and backoff next.

Real time by default (the event loop's clock, so trio's ``MockClock`` drives it too);
``fearless.testing.FakeClock`` in tests, so that time-based behaviour runs instantly and exactly.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import anyio

__all__ = ["Clock", "LoopClock"]


@runtime_checkable
class Clock(Protocol):
    """What an :class:`ActorSystem` needs of a clock."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline``. Cancellation: a cancel point; a cancelled sleep
        just ends."""
        ...


class LoopClock:
    """The running event loop's clock (``anyio.current_time``)."""

    __slots__ = ()

    def now(self) -> float:
        return anyio.current_time()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)

    def __repr__(self) -> str:
        return "LoopClock()"
