"""Workload ``cells``: counters hammered by OS threads, and the wake-up latency of ``wait_until``.

Two tables:

Counters
    ``THREADS`` OS threads increment one counter, ``n / THREADS`` times each. The threads wait on
    one ``threading.Barrier`` (with the main thread); the time runs from the barrier to the last
    join. Contenders: ``lock``, a ``threading.Lock`` around an int (``with lock: box[0] += 1``
    inline in the loop, the baseline); ``fearless AtomicInt`` (``counter.increment()``);
    ``fearless ShardedCounter`` (``counter.increment()``); and the ``atomics`` package
    (``atomics.atomic(width=8, atype=atomics.INT)``, ``.inc()``), if installed. Every run checks
    that the final count is exact. The ratio is a throughput against the lock's:
    ``lock/fearless AtomicInt = 0.8x`` means the AtomicInt did 0.8 times as many increments per
    second as the lock did.

Wake-up latency
    Round after round, an OS thread wakes an async task parked on a value, and the task wakes
    the thread back. ``AtomicInt.wait_until``: the thread stamps the time, ``ping.store(i)``, and
    blocks in ``pong.wait_until_blocking(v == i)``; the task, parked in
    ``await ping.wait_until(v == i)``, stamps its wake-up and does ``pong.store(i)``. The thread
    bridge, measured the same way in the same run: ``send_blocking(i)`` on one fearless channel
    into a task parked in ``await receive()``, which answers with ``await send(i)`` on a second
    channel, received by the thread with ``receive_blocking()`` (capacity 1 both ways). Reported
    per backend: the median one-way latency (the thread's stamp before the store or send to the
    task's stamp after it resumed; ``time.perf_counter`` is one clock for every thread) and the
    median round trip / 2 (as the thread sees it), each the median over the repeats.

Nothing hangs: the task runs under ``threads.DEADLINE``; a failure on either side stores
``ABORT`` into both cells (or closes both channels), which releases the other side; every thread
is joined with a timeout, and an error raised in a thread is re-raised.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import fearless

from .harness import ASYNCIO, TRIO, UVLOOP, Backend, Series, Settings, format_time, measure
from .threads import JOIN_TIMEOUT, THREAD_NAME, in_thread

try:
    import atomics  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - the bench extra installs it
    HAVE_ATOMICS = False
else:
    HAVE_ATOMICS = True

__all__ = ["WORKLOAD", "Cells", "CounterContender", "LatencyContender"]

THREADS = 4
ROUNDS_CAP = 2_000
"""The round cap of the latency runs: a round takes tens of microseconds."""
ABORT = -1
"""Stored into both cells of a latency run when one side fails; rounds are never negative."""
LOCK = "lock"

Worker = Callable[[], None]
Setup = Callable[[int], tuple[Worker, Callable[[], int]]]
"""Given the increments per thread: the loop each thread runs, and how to read the total."""


# -- counters -------------------------------------------------------------------------------------


def lock_counter(per_thread: int) -> tuple[Worker, Callable[[], int]]:
    lock = threading.Lock()
    box = [0]

    def work() -> None:
        for _ in range(per_thread):
            with lock:
                box[0] += 1

    return work, lambda: box[0]


def atomic_int_counter(per_thread: int) -> tuple[Worker, Callable[[], int]]:
    counter = fearless.AtomicInt(0)

    def work() -> None:
        for _ in range(per_thread):
            counter.increment()

    return work, counter.load


def sharded_counter(per_thread: int) -> tuple[Worker, Callable[[], int]]:
    counter = fearless.ShardedCounter()

    def work() -> None:
        for _ in range(per_thread):
            counter.increment()

    return work, counter.value


def atomics_counter(per_thread: int) -> tuple[Worker, Callable[[], int]]:
    counter = atomics.atomic(width=8, atype=atomics.INT)

    def work() -> None:
        for _ in range(per_thread):
            counter.inc()

    return work, counter.load


@dataclass(frozen=True, slots=True)
class Counted:
    """One timed counter run."""

    seconds: float
    """From the barrier to the last join, scaled to the ``n`` asked for (see ``run``)."""


@dataclass(frozen=True, slots=True, eq=False)
class CounterContender:
    label: str
    setup: Setup

    def run(self, n: int) -> Counted:
        """``THREADS`` threads increment ``n // THREADS`` times each; check the total."""
        per_thread = max(1, n // THREADS)
        work, total = self.setup(per_thread)
        barrier = threading.Barrier(THREADS + 1)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                barrier.wait(JOIN_TIMEOUT)
                work()
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        threads = [
            threading.Thread(target=run, name=THREAD_NAME, daemon=True) for _ in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        try:
            barrier.wait(JOIN_TIMEOUT)
            start = time.perf_counter()
        finally:
            for thread in threads:
                thread.join(JOIN_TIMEOUT)
        seconds = time.perf_counter() - start
        if any(thread.is_alive() for thread in threads):
            raise RuntimeError(f"a benchmark thread did not finish in {JOIN_TIMEOUT:g} s")
        if errors:
            raise errors[0]
        done = per_thread * THREADS
        if total() != done:
            raise AssertionError(f"{self.label} counted {total()} increments, not {done}")
        return Counted(seconds * n / done)  # per item: per increment actually made


# -- wake-up latency ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rounds:
    """One latency run: its time and the medians of its rounds."""

    seconds: float
    one_way: float
    """Median, thread's stamp before the store/send to the task's stamp after it resumed."""
    half_trip: float
    """Median round trip / 2, as the thread sees it."""


def _answered(i: int, value: int) -> bool:
    return value in (i, ABORT)


def _check_abort(value: int) -> None:
    if value == ABORT:
        raise RuntimeError("the other side of the latency run failed")


def _abort_cells(*cells: fearless.AtomicInt) -> None:
    for cell in cells:
        cell.store(ABORT)


async def cell_rounds(rounds: int) -> Rounds:
    """``AtomicInt.wait_until`` in the task, ``store`` / ``wait_until_blocking`` in the thread."""
    ping, pong = fearless.AtomicInt(0), fearless.AtomicInt(0)
    sent_at = [0.0] * (rounds + 1)
    one_way: list[float] = []
    trips: list[float] = []
    clock = time.perf_counter

    def thread() -> None:
        for i in range(1, rounds + 1):
            start = clock()
            sent_at[i] = start
            ping.store(i)
            _check_abort(pong.wait_until_blocking(partial(_answered, i)))
            trips.append(clock() - start)

    began = clock()
    async with in_thread(thread, partial(_abort_cells, ping, pong)):
        for i in range(1, rounds + 1):
            _check_abort(await ping.wait_until(partial(_answered, i)))
            one_way.append(clock() - sent_at[i])
            pong.store(i)
    return _rounds(clock() - began, one_way, trips, rounds)


def _close_all(*endpoints: fearless.Sender[int] | fearless.Receiver[int]) -> None:
    for endpoint in endpoints:
        endpoint.close()


async def channel_rounds(rounds: int) -> Rounds:
    """The thread bridge: ``send_blocking`` into a task parked in ``receive``, and back."""
    to_task, from_thread = fearless.channel[int](1)
    to_thread, from_task = fearless.channel[int](1)
    sent_at = [0.0] * (rounds + 1)
    one_way: list[float] = []
    trips: list[float] = []
    clock = time.perf_counter

    def thread() -> None:
        for i in range(1, rounds + 1):
            start = clock()
            sent_at[i] = start
            to_task.send_blocking(i)
            if from_task.receive_blocking() != i:
                raise AssertionError(f"round {i} came back wrong")
            trips.append(clock() - start)

    began = clock()
    endpoints = (to_task, from_thread, to_thread, from_task)
    async with in_thread(thread, partial(_close_all, *endpoints)):
        for i in range(1, rounds + 1):
            if await from_thread.receive() != i:
                raise AssertionError(f"round {i} arrived wrong")
            one_way.append(clock() - sent_at[i])
            await to_thread.send(i)
    _close_all(*endpoints)
    return _rounds(clock() - began, one_way, trips, rounds)


def _rounds(seconds: float, one_way: list[float], trips: list[float], rounds: int) -> Rounds:
    if len(one_way) != rounds or len(trips) != rounds:
        raise AssertionError(f"{len(one_way)} / {len(trips)} of {rounds} rounds were made")
    return Rounds(seconds, statistics.median(one_way), statistics.median(trips) / 2)


@dataclass(frozen=True, slots=True, eq=False)
class LatencyContender:
    backend: Backend
    label: str
    body: Callable[[int], Awaitable[Rounds]]

    def run(self, rounds: int) -> Rounds:
        out: list[Rounds] = []

        async def main() -> None:
            out.append(await self.body(rounds))

        self.backend.run(main)
        return out[0]


# -- the workload ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """``faster`` does at least ``at_least`` times the increments per second of ``slower``."""

    faster: str
    slower: str
    at_least: float
    wording: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Cells:
    name: str
    counters: tuple[CounterContender, ...]
    latency: tuple[LatencyContender, ...]
    targets: tuple[Target, ...]
    notes: tuple[str, ...] = ()

    def run(self, settings: Settings) -> str:
        counted = measure([c.run for c in self.counters], settings)
        rounds = measure([c.run for c in self.latency], settings, [ROUNDS_CAP] * len(self.latency))
        notes = "".join(f"Note: {note}\n" for note in self.notes)
        return (
            (notes and notes + "\n")
            + self.counter_report(dict(zip((c.label for c in self.counters), counted, strict=True)))
            + "\n"
            + self.latency_report(list(zip(self.latency, rounds, strict=True)))
        )

    def counter_report(self, results: dict[str, Series[Counted]]) -> str:
        base = results[LOCK].median
        lines = [
            f"### 8a. Cells: {THREADS} OS threads incrementing one counter",
            "",
            "| contender | increments/run | per increment (median) | spread | throughput |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for label, series in results.items():
            ratio = "baseline" if label == LOCK else f"{LOCK}/{label} = {base / series.median:.2f}x"
            lines.append(
                f"| {label} | {series.items:,} | {format_time(series.median)} "
                f"| {series.spread:.0%} | {ratio} |"
            )
        if self.targets:
            lines += ["", "Targets (throughput, increments per second):", ""]
        for target in self.targets:
            got = results[target.slower].median / results[target.faster].median
            goal = f">= {target.at_least:g}x" + (f" ({target.wording})" if target.wording else "")
            verdict = "met" if got >= target.at_least else "NOT met"
            lines.append(
                f"- {target.faster} against {target.slower} {goal}: measured {got:.2f}x, {verdict}"
            )
        return "\n".join(lines) + "\n"

    def latency_report(self, results: list[tuple[LatencyContender, Series[Rounds]]]) -> str:
        lines = [
            "### 8b. Cells: wake-up latency, an OS thread waking a parked task (and back)",
            "",
            "| backend | bridge | rounds/run | one-way thread to task (median) "
            "| round trip / 2 (median) | spread (one-way) |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for contender, series in results:
            one_way = [sample.one_way for sample in series.samples]
            half = statistics.median(sample.half_trip for sample in series.samples)
            middle = statistics.median(one_way)
            lines.append(
                f"| {contender.backend.name} | {contender.label} | {series.items:,} "
                f"| {format_time(middle)} | {format_time(half)} "
                f"| {(max(one_way) - min(one_way)) / middle:.0%} |"
            )
        return "\n".join(lines) + "\n"


ATOMIC_INT = "fearless AtomicInt"
SHARDED = "fearless ShardedCounter"
ATOMICS = "atomics"

WORKLOAD = Cells(
    name="cells",
    counters=(
        CounterContender(LOCK, lock_counter),
        CounterContender(ATOMIC_INT, atomic_int_counter),
        CounterContender(SHARDED, sharded_counter),
        *((CounterContender(ATOMICS, atomics_counter),) if HAVE_ATOMICS else ()),
    ),
    latency=tuple(
        LatencyContender(backend, label, body)
        for backend in (ASYNCIO, UVLOOP, TRIO)
        for label, body in (
            ("AtomicInt.wait_until", cell_rounds),
            ("channel (thread bridge)", channel_rounds),
        )
    ),
    targets=(
        Target(ATOMIC_INT, LOCK, 0.7),
        Target(SHARDED, LOCK, 2.0),
        *(
            (
                Target(ATOMIC_INT, ATOMICS, 2.0, "far ahead"),
                Target(SHARDED, ATOMICS, 2.0, "far ahead"),
            )
            if HAVE_ATOMICS
            else ()
        ),
    ),
    notes=()
    if HAVE_ATOMICS
    else ("atomics is not installed, so it was left out (pip install -e '.[dev]')",),
)
