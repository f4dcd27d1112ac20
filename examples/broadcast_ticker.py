"""A ticker broadcasting to a fast and a deliberately slow subscriber, under each lag policy.

    python examples/broadcast_ticker.py [asyncio|uvloop|trio]

A price ticker publishes 40 ticks through ``fearless.broadcast`` with room for 4. A fast
subscriber (a dashboard) keeps up; a slow one (a report writer) spends five scheduler turns on
every tick, so it falls behind. What happens to it is the broadcast's ``on_lag`` policy:

- ``"error"``: it is told, with ``Lagged(missed)``, how many ticks it lost, and carries on from the
  oldest tick still kept;
- ``"drop"``: it skips ahead silently; ``statistics().missed`` says how many it lost;
- ``"block"``: the ticker waits for it, so it sees every tick, and so does the dashboard, at the
  slow subscriber's pace.

The work is simulated with scheduler turns (``anyio.lowlevel.checkpoint()``), not wall-clock
time, so the outcome does not depend on the machine's speed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

import anyio
import anyio.lowlevel

import fearless

TICKS = 40
CAPACITY = 4
Policy = Literal["error", "drop", "block"]  # what broadcast(on_lag=...) takes
SLOW_TURNS = 5  # scheduler turns the slow subscriber spends on each tick
POLICIES: tuple[Policy, ...] = ("error", "drop", "block")


@dataclass
class Seen:
    """What one run under one policy looked like."""

    policy: str
    fast: list[int] = field(default_factory=list)
    """The ticks the fast subscriber received."""
    slow: list[int] = field(default_factory=list)
    """The ticks the slow subscriber received."""
    lag_errors: list[int] = field(default_factory=list)
    """``Lagged.missed`` of each error the slow subscriber got (``"error"`` only)."""
    slow_missed: int = 0
    """The slow subscriber's ``statistics().missed``: every tick it lost."""

    def line(self) -> str:
        told = f", told by {len(self.lag_errors)} Lagged errors" if self.lag_errors else ""
        which = "every tick, in order" if self.slow == list(range(TICKS)) else str(self.slow)
        return (
            f"on_lag={self.policy!r:8} fast saw {len(self.fast)} ticks; slow saw "
            f"{len(self.slow)} and missed {self.slow_missed}{told}: {which}"
        )


async def run(policy: Policy) -> Seen:
    """Tick ``TICKS`` times to a fast and a slow subscriber under ``policy``."""
    seen = Seen(policy)
    ticker, fast = fearless.broadcast[int](CAPACITY, on_lag=policy)
    slow = ticker.subscribe()

    async def tick() -> None:
        async with ticker:  # closing the ticker ends both subscriptions' streams
            for t in range(TICKS):
                await ticker.send(t)  # under "block", waits for the slow subscriber
                await anyio.lowlevel.checkpoint()  # one tick per scheduler turn

    async def dashboard() -> None:
        with fast:
            async for t in fast:
                seen.fast.append(t)

    async def report_writer() -> None:
        with slow:
            while True:
                try:
                    async for t in slow:
                        seen.slow.append(t)
                        for _ in range(SLOW_TURNS):
                            await anyio.lowlevel.checkpoint()  # slow work
                    break  # the ticker closed and every kept tick was read
                except fearless.Lagged as lag:  # "error" only: carry on from the oldest kept
                    seen.lag_errors.append(lag.missed)
            seen.slow_missed = slow.statistics().missed

    async with anyio.create_task_group() as tg:
        tg.start_soon(dashboard)
        tg.start_soon(report_writer)
        tg.start_soon(tick)
    return seen


async def run_all() -> dict[str, Seen]:
    return {policy: await run(policy) for policy in POLICIES}


def main(argv: list[str] | None = None) -> dict[str, Seen]:
    """Run every policy on the backend named in ``argv`` (default asyncio); print and return
    what each subscriber saw."""
    backend = argv[0] if argv else "asyncio"
    options: dict[str, object] = {}
    if backend == "uvloop":
        import uvloop

        backend, options = "asyncio", {"loop_factory": uvloop.new_event_loop}
    summary = anyio.run(run_all, backend=backend, backend_options=options)
    for seen in summary.values():
        print(seen.line())
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
