"""Workload 5: the ``yield_every`` sweep, to choose ``fearless.DEFAULT_YIELD_EVERY``.

An endpoint that never has to wait yields to the scheduler once every ``yield_every`` operations.
A larger budget means fewer trips through the event loop (throughput) but a longer time during
which a busy task keeps every other task waiting (latency, fairness). Both sides are measured:

Throughput
    Workload 1 (one producer, one consumer, capacity 128) for every setting, on asyncio and trio.
Latency
    A busy producer sends ``n`` items on an unbounded channel, so it never has to wait and yields
    only when its budget runs out. Beside it, a ticker task loops on ``checkpoint()`` and records
    how long each checkpoint took to come back: the time another task waits to be scheduled. The
    table shows the median and 99th percentile of those waits, and the longest one (the longest
    is at the mercy of the shared machine; read it as an order of magnitude).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import anyio
import anyio.lowlevel

import fearless

from .harness import (
    ASYNCIO,
    TRIO,
    Backend,
    Contender,
    Delivery,
    Series,
    Settings,
    checked,
    exactly_once,
    format_time,
    measure,
)
from .one_to_one import fearless_pair

SETTINGS = (1, 4, 8, 16, 32, 64, 128, 256)
BACKENDS = (ASYNCIO, TRIO)


@dataclass(frozen=True, slots=True)
class ProbeRun:
    """One run of the latency probe."""

    seconds: float
    received: list[int]
    waits: list[float]
    """How long each of the ticker's checkpoints took, in seconds."""


@dataclass(frozen=True, slots=True)
class Waits:
    """What is kept of a probe run: its time and the percentiles of its waits."""

    seconds: float
    p50: float
    p99: float
    longest: float


async def busy_producer(n: int, yield_every: int) -> ProbeRun:
    """Send ``n`` items on an unbounded channel while a ticker measures its scheduling delay."""
    send, receive = fearless.channel[int](math.inf, yield_every=yield_every)
    waits: list[float] = []
    producing = True

    async def produce() -> None:
        nonlocal producing
        with send:
            for i in range(n):
                await send.send(i)
        producing = False

    async def tick() -> None:
        clock = time.perf_counter
        while True:  # at least once, even if the producer is done before the ticker starts
            start = clock()
            await anyio.lowlevel.checkpoint()
            waits.append(clock() - start)
            if not producing:
                return

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        tg.start_soon(produce)
    seconds = time.perf_counter() - start
    with receive:
        received = await receive.receive_many(n)  # everything is buffered by now
    return ProbeRun(seconds, received, waits)


@dataclass(frozen=True, slots=True, eq=False)
class LatencyProbe:
    """:func:`busy_producer` with one ``yield_every`` on one backend."""

    backend: Backend
    yield_every: int

    def run(self, n: int) -> ProbeRun:
        return self.backend.run(lambda: busy_producer(n, self.yield_every))

    def summary(self, n: int) -> Waits:
        """One checked run, reduced to percentiles."""
        probe = self.run(n)
        if not exactly_once(probe.received, n) or not probe.waits:
            raise AssertionError(f"latency probe {self.yield_every} on {self.backend.name} failed")
        waits = sorted(probe.waits)
        return Waits(probe.seconds, _percentile(waits, 0.5), _percentile(waits, 0.99), waits[-1])


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True, slots=True, eq=False)
class Sweep:
    """Throughput and latency for every ``yield_every`` setting."""

    name: str
    title: str
    contenders: tuple[Contender, ...]
    probes: tuple[LatencyProbe, ...]

    def run(self, settings: Settings) -> str:
        throughput = measure([checked(c) for c in self.contenders], settings)
        latency = measure([probe.summary for probe in self.probes], settings)
        return self.report(throughput, latency)

    def report(self, throughput: list[Series[Delivery]], latency: list[Series[Waits]]) -> str:
        per_item = {
            (c.backend.name, c.label): s for c, s in zip(self.contenders, throughput, strict=True)
        }
        waits = {
            (p.backend.name, p.yield_every): s for p, s in zip(self.probes, latency, strict=True)
        }
        names = [backend.name for backend in BACKENDS]
        lines = [
            f"### {self.title}",
            "",
            "Throughput is workload 1, per item; the waits are the latency probe's (see "
            "`benchmarks/yield_every.py`): median / 99th percentile / longest.",
            "",
            "| yield_every | "
            + " | ".join(f"{name} per item" for name in names)
            + " | "
            + " | ".join(f"{name} waits p50 / p99 / max" for name in names)
            + " |",
            "| ---: | " + " | ".join("---:" for _ in range(2 * len(names))) + " |",
        ]
        for k in SETTINGS:
            mark = " (default)" if k == fearless.DEFAULT_YIELD_EVERY else ""
            cells = [format_time(per_item[name, _label(k)].median) for name in names]
            for name in names:
                series = waits[name, k]
                cells.append(
                    " / ".join(
                        format_time(statistics.median(getattr(w, field) for w in series.samples))
                        for field in ("p50", "p99", "longest")
                    )
                )
            lines.append(f"| {k}{mark} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _label(yield_every: int) -> str:
    return f"fearless yield_every={yield_every}"


WORKLOAD = Sweep(
    name="yield-every",
    title="5. yield_every sweep: throughput (workload 1) and another task's wait (latency)",
    contenders=tuple(
        Contender(backend, _label(k), fearless_pair(k)) for backend in BACKENDS for k in SETTINGS
    ),
    probes=tuple(LatencyProbe(backend, k) for backend in BACKENDS for k in SETTINGS),
)
