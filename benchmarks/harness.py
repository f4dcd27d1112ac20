"""The shared harness: backends, contenders, timing, medians, ratios and the printed tables.

How a number is made
    A contender is one small async function that moves the items ``0 .. n-1`` through the library
    under test and returns the list its consumers received. :func:`deliver` runs it with
    ``anyio.run`` on the contender's backend and times the body only (not the event loop's
    start-up). Every benchmark run is checked: each item must arrive exactly once.

    ``n`` is calibrated per contender, so that one repeat takes about ``Settings.seconds``; the
    calibration runs double as warm-up. A contender that is slow per item (a thread round trip
    per item) may cap its ``n`` with ``Contender.max_items``, so that its runs stay short. A
    contender's figure is its time per item, so contenders with different ``n`` still compare.
    The repeats of all contenders of a workload are interleaved round-robin (repeat 1 of every
    contender, then repeat 2 ...), so that the drift of a shared, noisy machine lands on every
    contender alike, and the figure reported is the median.

Ratios
    Every workload names one fearless contender as its baseline. On each backend, a peer's ratio
    is its median time per item divided by the baseline's: ``anyio/fearless = 4.3x`` means that
    fearless moved an item 4.3 times faster than anyio did.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import anyio
import uvloop

__all__ = [
    "ASYNCIO",
    "TRIO",
    "UVLOOP",
    "Backend",
    "Body",
    "Contender",
    "Delivery",
    "Group",
    "Series",
    "Settings",
    "Target",
    "Workload",
    "checked",
    "deliver",
    "exactly_once",
    "format_time",
    "measure",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class Backend:
    """An event loop to run a contender on, through ``anyio.run``."""

    name: str
    """What the tables call it: ``asyncio``, ``uvloop`` or ``trio``."""
    anyio_backend: str
    options: dict[str, Any] = field(default_factory=dict)

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run ``main`` to completion on a fresh event loop of this backend."""
        return anyio.run(main, backend=self.anyio_backend, backend_options=self.options)


ASYNCIO = Backend("asyncio", "asyncio")
UVLOOP = Backend("uvloop", "asyncio", {"loop_factory": uvloop.new_event_loop})
TRIO = Backend("trio", "trio")

Body = Callable[[int], Awaitable[list[int]]]
"""Moves ``range(n)`` from the producers to the consumers; returns every item received."""


@dataclass(frozen=True, slots=True, eq=False)
class Contender:
    """One library (or one configuration of fearless) on one backend, in one workload."""

    backend: Backend
    label: str
    """Short, and the same on every backend: ``fearless``, ``anyio``, ``asyncio.Queue`` ..."""
    body: Body
    max_items: int | None = None
    """A cap on the calibrated ``n`` (below ``Settings.min_items`` too), for a contender that
    takes tens of microseconds per item, so that one of its runs stays well under a second."""

    @property
    def name(self) -> str:
        return f"{self.backend.name}/{self.label}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One timed run of a contender."""

    seconds: float
    """Wall time of the body: spawning the tasks, moving every item, joining the tasks."""
    received: list[int]


def deliver(contender: Contender, n: int) -> Delivery:
    """Run ``contender`` once with ``n`` items on a fresh event loop; time the body only."""

    # Handed out beside the main task, not as its result: on CPython 3.11, asyncio.Runner's exit
    # formats the repr of its SIGINT handler, which holds the main task, whose repr holds its
    # result, so a returned Delivery would have its whole list of items printed into a string
    # (after the timing, but taking up to a fifth of the wall time of a large run).
    out: list[Delivery] = []

    async def timed() -> None:
        start = time.perf_counter()
        received = await contender.body(n)
        out.append(Delivery(time.perf_counter() - start, received))

    contender.backend.run(timed)
    return out[0]


def exactly_once(received: list[int], n: int) -> bool:
    """Whether ``received`` holds each of ``0 .. n-1`` exactly once (in any order)."""
    return len(received) == n and sorted(received) == list(range(n))


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and how often to measure."""

    repeats: int = 5
    """Timed runs per contender; the median is reported."""
    seconds: float = 0.25
    """Wanted length of one timed run; ``n`` is calibrated per contender to reach it."""
    min_items: int = 1_000
    """The calibration's first (smallest) item count."""
    max_items: int = 2_000_000


FULL = Settings(min_items=10_000)  # slow peers reach their steady state after a few thousand items
QUICK = Settings(repeats=3, seconds=0.02)


class Timed(Protocol):
    @property
    def seconds(self) -> float: ...


S = TypeVar("S", bound=Timed)


@dataclass(frozen=True, slots=True)
class Series(Generic[S]):
    """The repeats of one contender (or probe): ``n`` items each."""

    items: int
    samples: tuple[S, ...]

    def per_item(self) -> list[float]:
        return [sample.seconds / self.items for sample in self.samples]

    @property
    def median(self) -> float:
        """Median time per item, in seconds."""
        return statistics.median(self.per_item())

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median, over the repeats: how noisy this figure is."""
        per_item = self.per_item()
        return (max(per_item) - min(per_item)) / statistics.median(per_item)


def calibrate(trial: Callable[[int], Timed], settings: Settings) -> int:
    """The item count for which one ``trial`` takes about ``settings.seconds`` (and warm up)."""
    n = settings.min_items
    while True:
        seconds = trial(n).seconds
        if seconds >= settings.seconds / 8 or n >= settings.max_items:
            break
        n *= 4
    wanted = n * settings.seconds / max(seconds, 1e-9)
    wanted = float(f"{wanted:.2g}")  # two significant digits, so the table reads easily
    return int(min(max(wanted, settings.min_items), settings.max_items))


def capped(settings: Settings, max_items: int | None) -> Settings:
    """``settings`` with ``n`` held to at most ``max_items`` (``None``: as they are)."""
    if max_items is None:
        return settings
    return dataclasses.replace(
        settings,
        min_items=min(settings.min_items, max_items),
        max_items=min(settings.max_items, max_items),
    )


def measure(
    trials: Sequence[Callable[[int], S]],
    settings: Settings,
    max_items: Sequence[int | None] = (),
) -> list[Series[S]]:
    """Calibrate every trial, then run the repeats round-robin across the trials.

    ``max_items``, if given, has one cap (or ``None``) per trial.
    """
    caps = list(max_items) or [None] * len(trials)
    sizes = [
        calibrate(trial, capped(settings, cap)) for trial, cap in zip(trials, caps, strict=True)
    ]
    samples: list[list[S]] = [[] for _ in trials]
    for _ in range(settings.repeats):
        for trial, n, out in zip(trials, sizes, samples, strict=True):
            gc.collect()  # the previous run's garbage is not this run's cost
            out.append(trial(n))
    return [Series(n, tuple(s)) for n, s in zip(sizes, samples, strict=True)]


def checked(contender: Contender) -> Callable[[int], Delivery]:
    """``deliver``, failing loudly if an item was lost or duplicated, keeping only the time."""

    def trial(n: int) -> Delivery:
        delivery = deliver(contender, n)
        if not exactly_once(delivery.received, n):
            raise AssertionError(f"{contender.name} did not deliver each of {n} items once")
        return Delivery(delivery.seconds, [])  # drop the items: repeats add up to a lot

    return trial


# -- workloads and tables -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A performance goal: ``peer/fearless >= at_least`` on ``backend``."""

    backend: str
    peer: str
    at_least: float
    wording: str = ""
    """How the goal is worded, when not ``>= Nx`` (e.g. "aim to match")."""


@dataclass(frozen=True, slots=True, eq=False)
class Workload:
    """A set of contenders doing the same work, compared with one fearless baseline."""

    name: str
    """The ``--only`` name."""
    title: str
    baseline: str
    """The label of the fearless contender that every ratio is taken against."""
    contenders: tuple[Contender, ...]
    targets: tuple[Target, ...] = ()

    def run(self, settings: Settings, record: list[dict[str, Any]] | None = None) -> str:
        """Measure every contender and return the table, ratios and targets as markdown; append
        the same figures, as plain data (:meth:`table`), to ``record`` if given."""
        results = dict(
            zip(
                self.contenders,
                measure(
                    [checked(c) for c in self.contenders],
                    settings,
                    [c.max_items for c in self.contenders],
                ),
                strict=True,
            )
        )
        if record is not None:
            record.append(self.table(results))
        return self.report(results)

    def table(self, results: dict[Contender, Series[Delivery]]) -> dict[str, Any]:
        """The figures as JSON-ready data: what ``benchmarks/results/*.json`` holds per workload
        and what ``--plot`` draws (``benchmarks/plot.py``). Times are seconds per item; a row's
        ``ratio`` is its median over the baseline's on the same backend (``None`` for the
        baseline)."""
        baselines = {
            c.backend.name: series.median
            for c, series in results.items()
            if c.label == self.baseline
        }
        ratios = {
            (c.backend.name, c.label): series.median / baselines[c.backend.name]
            for c, series in results.items()
            if c.label != self.baseline
        }
        rows = [
            {
                "backend": c.backend.name,
                "contender": c.label,
                "items": series.items,
                "median": series.median,
                "spread": series.spread,
                "ratio": ratios.get((c.backend.name, c.label)),
            }
            for c, series in results.items()
        ]
        targets = [
            {
                "backend": t.backend,
                "peer": t.peer,
                "at_least": t.at_least,
                "wording": t.wording,
                "measured": ratios[t.backend, t.peer],
                "met": ratios[t.backend, t.peer] >= t.at_least,
            }
            for t in self.targets
        ]
        return {
            "name": self.name,
            "kind": "ratios",
            "title": self.title,
            "baseline": self.baseline,
            "rows": rows,
            "targets": targets,
        }

    def report(self, results: dict[Contender, Series[Delivery]]) -> str:
        baselines = {
            c.backend.name: series for c, series in results.items() if c.label == self.baseline
        }
        lines = [
            f"### {self.title}",
            "",
            "| backend | contender | items/run | per item (median) | spread | ratio |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        ratios: dict[tuple[str, str], float] = {}
        for contender, series in results.items():
            base = baselines[contender.backend.name]
            if contender.label == self.baseline:
                ratio = "baseline"
            else:
                ratios[contender.backend.name, contender.label] = series.median / base.median
                ratio = f"{contender.label}/{self.baseline} = {series.median / base.median:.2f}x"
            lines.append(
                f"| {contender.backend.name} | {contender.label} | {series.items:,} "
                f"| {format_time(series.median)} | {series.spread:.0%} | {ratio} |"
            )
        if self.targets:
            lines += ["", "Targets:", ""]
        for target in self.targets:
            got = ratios[target.backend, target.peer]
            goal = f">= {target.at_least:g}x" + (f" ({target.wording})" if target.wording else "")
            verdict = "met" if got >= target.at_least else "NOT met"
            lines.append(
                f"- {target.backend}: {target.peer}/{self.baseline} {goal}: "
                f"measured {got:.2f}x, {verdict}"
            )
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """Several workloads run, one after the other, under one ``--only`` name."""

    name: str
    workloads: tuple[Workload, ...]
    notes: tuple[str, ...] = ()
    """Printed before the tables: e.g. which peers are not installed and were skipped."""

    @property
    def contenders(self) -> tuple[Contender, ...]:
        return tuple(c for workload in self.workloads for c in workload.contenders)

    def run(self, settings: Settings, record: list[dict[str, Any]] | None = None) -> str:
        notes = "".join(f"Note: {note}\n" for note in self.notes)
        return (notes and notes + "\n") + "\n".join(w.run(settings, record) for w in self.workloads)


def format_time(seconds: float) -> str:
    """``0.61 us`` / ``12.3 us`` / ``1.50 ms``: per-item times read best in microseconds."""
    us = seconds * 1e6
    if us < 10:
        return f"{us:.2f} us"
    if us < 1000:
        return f"{us:.1f} us"
    return f"{us / 1000:.2f} ms"
