"""Workload ``actor-scale``: what one idle actor costs when there are tens of thousands of them.

A service with an actor per connection holds tens of thousands of actors that mostly wait. This
workload starts ``N`` idle actors (``N`` = 1,000, 10,000 and 100,000 by default; ``--sizes`` and
``--skip-100k`` choose), and reports three costs **per actor**, each against a hand-written floor
on the same backend, as ``fearless / floor`` (above 1, fearless costs more):

Spawn
    The time to start the ``N`` actors, one after the other from one task, each start awaited,
    divided by ``N``. ``fearless``: ``refs.append(await system.spawn(Idle))`` in a loop inside
    ``async with fearless.ActorSystem() as system`` (the block is entered before the clock
    starts); ``spawn`` returns once the actor's ``on_start`` has run in its own task.
Shutdown
    The time to leave the ``async with ActorSystem()`` block with the ``N`` actors idle, divided
    by ``N``. Leaving the block stops every actor gracefully, one at a time, in reverse start
    order: a stop message at the back of its mailbox, then a wait for the actor's end.
Memory
    ``tracemalloc``'s traced bytes after the ``N`` spawns minus before them (each after a
    ``gc.collect()``, the last spawned tasks given three checkpoints to reach their mailbox's
    wait), divided by ``N``: what the idle actors hold, the caller's list of refs included. It is
    measured in runs of its own: tracing every allocation slows a run down several times, so no
    timed run is traced.

The floors (``floor``: a task draining an ``asyncio.Queue``, or a trio memory channel on trio)
    What an idle actor is at the least: one task draining its own queue, started the same way
    (one after the other from one task, each start awaited) and stopped the same way (a stop
    message, one actor at a time, in reverse start order). On asyncio, inside one
    ``asyncio.TaskGroup``: ``queue = asyncio.Queue(1000)``; ``started = loop.create_future()``;
    ``task = tg.create_task(actor(queue, started))``; ``await started``; keep ``(queue, task)``.
    The task sets ``started``, drops it, and loops on ``message = await queue.get()``, awaiting
    an async ``handle(message)``, until it gets the stop sentinel. That is ``TaskGroup.start`` as
    trio and anyio do it, without anyio's extra layers; ``create_task`` without awaiting the start
    would be cheaper but would not promise what ``spawn`` does (the actor has run). The stop
    (``floor``, the one the targets are against): for each actor, last started first,
    ``queue.put_nowait(STOP)`` then ``await task``; then the task group is left. On trio, inside
    one nursery: ``send, receive = trio.open_memory_channel(1000)``;
    ``await nursery.start(actor, receive)``; keep ``send``; the actor calls
    ``task_status.started()`` and runs ``async for message in receive``; the stop sends it a
    fresh ``trio.Event`` (which it sets before returning) and waits on that event, one actor at a
    time, last started first (a trio task has no handle to await). The queues are bounded at
    1000, as fearless's default mailbox is; a bound costs nothing while the queue is empty. The
    floors do not do what fearless adds: names, supervision, a shutdown timeout per actor, dead
    letters, death watch.

    ``floor, all at once`` (shown for scale, not a target): the same actors, stopped with no
    order and no waiting between them: the sentinel into every queue (on trio: every send channel
    closed, which ends the ``async for`` once the queue is drained) and then the task group left,
    so the event loop runs every task's last step in one pass. The gap between the two floors is
    what stopping one actor at a time costs in itself.

Every run is checked: each actor is alive once spawned and ended gracefully (fearless: every
``wait_stopped()`` reason is ``"stopped"``, so no actor was killed by its shutdown timeout; the
floors: each task ended without error, having seen its stop).

Repeats: every (backend, size) is a block of its own; within it the runs of its contenders are
interleaved round-robin (repeat 1 of each, then repeat 2 ...), after one untimed warm-up run of each
contender at the smallest size (at most 1,000); each figure is the median of its repeats. Sizes from
50,000 actors up run ``min(repeats, 3)`` timed repeats; memory runs ``min(repeats, 3)`` at every
size (its figure barely moves between runs). The cyclic garbage collector stays on: its passes over
the growing heap are part of what holding many actors costs, for the floor as for fearless.

Targets: spawn within 3x the floor per actor, shutdown within 5x, memory at most 1.6x; and the
per-actor cost flat from the smallest size to the largest. The growth, ``per actor at the largest
size / per actor at the smallest``, is printed for fearless and for the floor, and "flat" is judged
against the floor: fearless's growth at most ``FLAT`` (1.5x, about the noise band of this shared
machine) times the floor's. The floor itself is not flat with the garbage collector on. Its spawn,
measured in one sitting on a shared 2-core VM (CPython 3.11.7, PGO off), cost 9.8, 22 and 34 us per
task at 1,000, 10,000 and 100,000 tasks on asyncio (trio: 46, 78 and 98 us) with the collector on,
and 9.4, 11 and 13 us (trio: 30, 31 and 35 us) with ``gc.disable()``. A collection of the oldest
generation walks every live object, and the objects of 1,000 tasks are too few beside the
interpreter's own to set one off often. Growth beyond the floor's is fearless's own (a path that is
not O(1) per actor).
"""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
import anyio.lowlevel
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import fearless

from .harness import ASYNCIO, TRIO, Backend, Settings

__all__ = [
    "DEFAULT_SIZES",
    "QUICK_SIZES",
    "WORKLOAD",
    "ActorScale",
    "Marks",
    "ScaleContender",
    "parse_sizes",
]

DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (100, 1_000)
"""``--quick``: small enough for a smoke run of a few seconds."""
BIG = 50_000
"""From this many actors up, timed runs are at most ``BIG_REPEATS``."""
BIG_REPEATS = 3
MEMORY_REPEATS = 3
CAPACITY = 1000
"""The floors' queue bound: the capacity of fearless's default mailbox."""
CHECKPOINTS = 3
"""Checkpoints before the memory reading, so that the last spawned tasks reach their wait."""
DEADLINE = 60.0
DEADLINE_PER_ACTOR = 0.01
"""A run fails after ``DEADLINE + DEADLINE_PER_ACTOR * N`` seconds rather than hang."""
FLAT = 1.5
"""Per actor at the largest size / at the smallest, at most this: the cost is flat."""

FEARLESS = "fearless"
FLOOR = "floor"
FLOOR_AT_ONCE = "floor, all at once"
FLOOR_ANYIO = "floor, anyio task"

STOP = object()
"""The asyncio floor's stop sentinel."""


def deadline(n: int) -> float:
    return DEADLINE + DEADLINE_PER_ACTOR * n


# -- what a run reports ---------------------------------------------------------------------------


class Marks:
    """The points a contender's body passes, in order: ``start`` (before the first spawn),
    ``spawned`` (after the last), ``stopping`` (just before the stop begins), ``stopped``.

    A timed run stamps the clock at each; a memory run (``traced=True``) reads tracemalloc's
    traced bytes at ``start`` and ``spawned`` instead, after a garbage collection."""

    __slots__ = ("at", "bytes", "traced")

    def __init__(self, *, traced: bool) -> None:
        self.traced = traced
        self.at: list[float] = []
        self.bytes: list[int] = []

    def start(self) -> None:
        if self.traced:
            gc.collect()
            self.bytes.append(tracemalloc.get_traced_memory()[0])
        else:
            self.at.append(time.perf_counter())

    async def spawned(self) -> None:
        """After the last spawn; a memory run lets the last tasks reach their wait first.

        Cancellation: a memory run checkpoints here, so the run's deadline may cancel it (the
        run then fails); a timed run does not await."""
        if self.traced:
            for _ in range(CHECKPOINTS):
                await anyio.lowlevel.checkpoint()
            gc.collect()
            self.bytes.append(tracemalloc.get_traced_memory()[0])
        else:
            self.at.append(time.perf_counter())

    def stopping(self) -> None:
        if not self.traced:
            self.at.append(time.perf_counter())

    def stopped(self) -> None:
        if not self.traced:
            self.at.append(time.perf_counter())


Body = Callable[[int, Marks], Awaitable[None]]
"""Starts ``n`` idle actors and stops them, passing the marks; raises if a check fails."""


def _check(label: str, n: int, alive: int, ended: int) -> None:
    if alive != n or ended != n:
        raise AssertionError(
            f"{label}: of {n} actors, {alive} were alive once spawned and {ended} ended gracefully"
        )


# -- fearless -------------------------------------------------------------------------------------


class Idle(fearless.Actor[int]):
    """An actor that waits for messages it is never sent (and would echo one if asked)."""

    async def handle(self, message: int) -> int:
        return message


async def fearless_idle(n: int, marks: Marks) -> None:
    refs: list[fearless.ActorRef[int]] = []
    with anyio.fail_after(deadline(n)):
        async with fearless.ActorSystem() as system:
            marks.start()
            spawn = system.spawn
            for _ in range(n):
                refs.append(await spawn(Idle))  # noqa: PERF401  as the floors keep theirs
            await marks.spawned()
            alive = sum(ref.is_alive for ref in refs)
            marks.stopping()
        marks.stopped()
        ended = 0
        for ref in refs:
            notice = await ref.wait_stopped()
            ended += notice.reason == "stopped"
    _check(FEARLESS, n, alive, ended)


# -- the asyncio floor ----------------------------------------------------------------------------


async def _handle(message: object) -> None:
    """The floors' handler: an async function, as an actor's ``handle`` is."""


async def _asyncio_actor(queue: asyncio.Queue[object], started: asyncio.Future[None]) -> None:
    started.set_result(None)
    del started  # an idle task does not hold on to its start signal
    while True:
        message = await queue.get()
        if message is STOP:
            return
        await _handle(message)


def asyncio_floor(*, at_once: bool) -> Body:
    """Tasks in one ``asyncio.TaskGroup``, each draining its own ``asyncio.Queue``; stopped one
    at a time in reverse start order (``at_once=False``), or all together."""

    async def body(n: int, marks: Marks) -> None:
        loop = asyncio.get_running_loop()
        actors: list[tuple[asyncio.Queue[object], asyncio.Task[None]]] = []
        async with asyncio.timeout(deadline(n)):
            async with asyncio.TaskGroup() as tg:
                marks.start()
                create_future = loop.create_future
                create_task = tg.create_task
                for _ in range(n):
                    queue: asyncio.Queue[object] = asyncio.Queue(CAPACITY)
                    started: asyncio.Future[None] = create_future()
                    task = create_task(_asyncio_actor(queue, started))
                    await started
                    actors.append((queue, task))
                await marks.spawned()
                alive = sum(not task.done() for _, task in actors)
                marks.stopping()
                if at_once:
                    for queue, _ in actors:
                        queue.put_nowait(STOP)
                else:
                    for queue, task in reversed(actors):
                        queue.put_nowait(STOP)
                        await task
            marks.stopped()
        ended = sum(
            task.done() and not task.cancelled() and task.exception() is None for _, task in actors
        )
        _check(FLOOR_AT_ONCE if at_once else FLOOR, n, alive, ended)

    return body


# -- the trio floor -------------------------------------------------------------------------------


async def _trio_actor(
    receive: trio.MemoryReceiveChannel[object],
    stopped: list[int],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    async for message in receive:
        if type(message) is trio.Event:
            stopped[0] += 1
            message.set()
            return
        await _handle(message)
    stopped[0] += 1  # the channel was closed: stopped all at once


def trio_floor(*, at_once: bool) -> Body:
    """Tasks in one nursery, each draining its own trio memory channel; stopped one at a time in
    reverse start order with a stop event sent to each (``at_once=False``), or by closing every
    send channel."""

    async def body(n: int, marks: Marks) -> None:
        actors: list[trio.MemorySendChannel[object]] = []
        stopped = [0]
        with trio.fail_after(deadline(n)):
            async with trio.open_nursery() as nursery:
                marks.start()
                start = nursery.start
                for _ in range(n):
                    send, receive = trio.open_memory_channel[object](CAPACITY)
                    await start(_trio_actor, receive, stopped)
                    actors.append(send)
                await marks.spawned()
                alive = len(nursery.child_tasks)
                marks.stopping()
                if at_once:
                    for send in actors:
                        send.close()
                else:
                    for send in reversed(actors):
                        done = trio.Event()
                        send.send_nowait(done)
                        await done.wait()
            marks.stopped()
        _check(FLOOR_AT_ONCE if at_once else FLOOR, n, alive, stopped[0])

    return body


# -- the anyio floor (either backend) ------------------------------------------------------------


async def _anyio_actor(
    receive: anyio.abc.ObjectReceiveStream[object],
    stopped: list[int],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    async for message in receive:
        if isinstance(message, anyio.Event):
            stopped[0] += 1
            message.set()
            return
        await _handle(message)


async def anyio_floor(n: int, marks: Marks) -> None:
    """Tasks started with anyio's ``TaskGroup.start`` (as fearless starts an actor), each
    draining its own anyio memory object stream; stopped one at a time in reverse start order
    with a stop event sent to each. What an anyio-native library pays for a task and a queue
    before it adds anything of its own."""
    actors: list[MemoryObjectSendStream[object]] = []
    receivers: list[MemoryObjectReceiveStream[object]] = []
    stopped = [0]
    with anyio.fail_after(deadline(n)):
        async with anyio.create_task_group() as tg:
            marks.start()
            start = tg.start
            for _ in range(n):
                send, receive = anyio.create_memory_object_stream[object](CAPACITY)
                await start(_anyio_actor, receive, stopped)
                actors.append(send)
                receivers.append(receive)
            await marks.spawned()
            alive = n - stopped[0]
            marks.stopping()
            for send in reversed(actors):
                done = anyio.Event()
                send.send_nowait(done)
                await done.wait()
        marks.stopped()
    for send in actors:
        send.close()
    for receive in receivers:
        receive.close()
    _check(FLOOR_ANYIO, n, alive, stopped[0])


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """One timed run, in seconds for all ``n`` actors."""

    spawn: float
    shutdown: float


@dataclass(frozen=True, slots=True, eq=False)
class ScaleContender:
    backend: Backend
    label: str
    body: Body

    def _run(self, n: int, marks: Marks) -> None:
        self.backend.run(lambda: self.body(n, marks))

    def timed(self, n: int) -> Timing:
        """Start and stop ``n`` actors; the spawn and shutdown times."""
        marks = Marks(traced=False)
        self._run(n, marks)
        start, spawned, stopping, stopped = marks.at
        return Timing(spawned - start, stopped - stopping)

    def footprint(self, n: int) -> int:
        """Start and stop ``n`` actors under tracemalloc; the bytes the idle actors held."""
        marks = Marks(traced=True)
        tracemalloc.start()
        try:
            self._run(n, marks)
        finally:
            tracemalloc.stop()
        before, after = marks.bytes
        return after - before


@dataclass(frozen=True, slots=True)
class Figures:
    """The medians, per actor, of one contender at one size."""

    runs: int
    spawn: float
    spawn_spread: float
    shutdown: float
    shutdown_spread: float
    memory: float
    """Bytes per actor."""


Results = dict[tuple[str, str, int], Figures]
"""By ``(backend name, contender label, actors)``."""


def _median_spread(values: list[float]) -> tuple[float, float]:
    middle = statistics.median(values)
    return middle, (max(values) - min(values)) / middle if middle else 0.0


def repeats_at(settings: Settings, n: int) -> int:
    return min(settings.repeats, BIG_REPEATS) if n >= BIG else settings.repeats


def measure_size(contenders: Sequence[ScaleContender], n: int, settings: Settings) -> list[Figures]:
    """Every contender at ``n`` actors: timed runs, then memory runs, each round-robin."""
    timings: list[list[Timing]] = [[] for _ in contenders]
    memory: list[list[int]] = [[] for _ in contenders]
    for _ in range(repeats_at(settings, n)):
        for contender, out in zip(contenders, timings, strict=True):
            gc.collect()  # the previous run's garbage is not this run's cost
            out.append(contender.timed(n))
    for _ in range(min(settings.repeats, MEMORY_REPEATS)):
        for contender, held in zip(contenders, memory, strict=True):
            gc.collect()
            held.append(contender.footprint(n))
    figures = []
    for runs, held in zip(timings, memory, strict=True):
        spawn, spawn_spread = _median_spread([t.spawn / n for t in runs])
        shutdown, shutdown_spread = _median_spread([t.shutdown / n for t in runs])
        figures.append(
            Figures(
                len(runs),
                spawn,
                spawn_spread,
                shutdown,
                shutdown_spread,
                statistics.median(held) / n,
            )
        )
    return figures


# -- the workload ---------------------------------------------------------------------------------


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"1000,10_000"`` -> ``(1000, 10000)``: sorted, without duplicates, each at least 1."""
    sizes: set[int] = set()
    for part in text.split(","):
        try:
            size = int(part.strip())
        except ValueError:
            raise ValueError(f"an actor count must be an integer, got {part.strip()!r}") from None
        if size < 1:
            raise ValueError(f"an actor count must be at least 1, got {size}")
        sizes.add(size)
    return tuple(sorted(sizes))


def format_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:.2f} us" if us < 10 else f"{us:.1f} us" if us < 1000 else f"{us / 1000:.2f} ms"


@dataclass(frozen=True, slots=True)
class Goal:
    what: str
    at_most: float


GOALS = (Goal("spawn", 3.0), Goal("shutdown", 5.0), Goal("memory", 1.6))


@dataclass(frozen=True, slots=True, eq=False)
class ActorScale:
    name: str
    title: str
    contenders: tuple[ScaleContender, ...]
    sizes: tuple[int, ...] = DEFAULT_SIZES
    notes: tuple[str, ...] = field(default=())

    def backends(self) -> list[Backend]:
        seen: list[Backend] = []
        for contender in self.contenders:
            if contender.backend not in seen:
                seen.append(contender.backend)
        return seen

    def run(self, settings: Settings) -> str:
        """Measure every contender at every size, backend by backend; return the report."""
        results: Results = {}
        for backend in self.backends():
            contenders = [c for c in self.contenders if c.backend is backend]
            for contender in contenders:  # warm-up: imports, first-time allocations
                contender.timed(min(self.sizes[0], 1_000))
            for n in self.sizes:
                for contender, figures in zip(
                    contenders, measure_size(contenders, n, settings), strict=True
                ):
                    results[backend.name, contender.label, n] = figures
        return self.report(results)

    def report(self, results: Results) -> str:
        notes = "".join(f"Note: {note}\n" for note in self.notes)
        lines = [
            f"### {self.title}",
            "",
            "Per actor, medians (spread: (slowest - fastest) / median over the timed runs); "
            "memory is tracemalloc's bytes held per idle actor.",
            "",
            "| backend | actors | contender | timed runs | spawn | spread "
            "| shutdown | spread | memory |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for (name, label, n), f in results.items():
            lines.append(
                f"| {name} | {n:,} | {label} | {f.runs} | {format_us(f.spawn)} "
                f"| {f.spawn_spread:.0%} | {format_us(f.shutdown)} | {f.shutdown_spread:.0%} "
                f"| {f.memory:,.0f} B |"
            )
        ratios, verdicts = self.ratios(results)
        lines += ratios
        if len(self.sizes) > 1:
            growth, flat = self.growth(results)
            lines += growth
            verdicts += flat
        lines += ["", "Targets:", "", *verdicts]
        return (notes and notes + "\n") + "\n".join(lines) + "\n"

    def ratios(self, results: Results) -> tuple[list[str], list[str]]:
        """The table of fearless / floor at every size, and the verdicts on the targets."""
        lines = [
            "",
            "fearless / floor, per actor (targets: spawn <= 3x, shutdown <= 5x, memory <= 1.6x):",
            "",
            "| backend | actors | spawn | shutdown | memory | shutdown against the floor, "
            "all at once | against the anyio-task floor: spawn, shutdown, memory |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        verdicts: list[str] = []
        for backend in self.backends():
            for n in self.sizes:
                ours = results[backend.name, FEARLESS, n]
                floor = results[backend.name, FLOOR, n]
                at_once = results[backend.name, FLOOR_AT_ONCE, n]
                cells = []
                for goal in GOALS:
                    ratio = _value(ours, goal.what) / _value(floor, goal.what)
                    met = ratio <= goal.at_most
                    cells.append(f"{ratio:.2f}x{'' if met else ' (NOT met)'}")
                    verdicts.append(
                        f"- {backend.name}, {n:,} actors: {goal.what} fearless/floor "
                        f"<= {goal.at_most:g}x: measured {ratio:.2f}x, "
                        f"{'met' if met else 'NOT met'}"
                    )
                cells.append(f"{ours.shutdown / at_once.shutdown:.2f}x")
                anyio_task = results[backend.name, FLOOR_ANYIO, n]
                cells.append(
                    ", ".join(
                        f"{_value(ours, goal.what) / _value(anyio_task, goal.what):.2f}x"
                        for goal in GOALS
                    )
                )
                lines.append(f"| {backend.name} | {n:,} | " + " | ".join(cells) + " |")
        return lines, verdicts

    def growth(self, results: Results) -> tuple[list[str], list[str]]:
        """The table of per-actor cost at the largest size / at the smallest, for fearless and
        the floor, and the verdicts on flatness (fearless's growth against the floor's)."""
        small, large = self.sizes[0], self.sizes[-1]
        lines = [
            "",
            f"Growth: per actor at {large:,} / per actor at {small:,}; flat: fearless's "
            f"growth at most {FLAT:g}x the floor's:",
            "",
            "| backend | contender | spawn | shutdown | memory |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        verdicts: list[str] = []
        for backend in self.backends():
            grew = {
                label: [
                    _value(results[backend.name, label, large], goal.what)
                    / _value(results[backend.name, label, small], goal.what)
                    for goal in GOALS
                ]
                for label in (FEARLESS, FLOOR)
            }
            relative = [a / b for a, b in zip(grew[FEARLESS], grew[FLOOR], strict=True)]
            for label, row in (*grew.items(), ("fearless / floor", relative)):
                cells = " | ".join(f"{value:.2f}x" for value in row)
                lines.append(f"| {backend.name} | {label} | {cells} |")
            for goal, ours, theirs, ratio in zip(
                GOALS, grew[FEARLESS], grew[FLOOR], relative, strict=True
            ):
                verdicts.append(
                    f"- {backend.name}: fearless {goal.what} per actor flat from {small:,} "
                    f"to {large:,}: grew {ours:.2f}x, the floor {theirs:.2f}x; "
                    f"fearless/floor {ratio:.2f}x (<= {FLAT:g}x), "
                    f"{'met' if ratio <= FLAT else 'NOT met'}"
                )
        return lines, verdicts


def _value(figures: Figures, what: str) -> float:
    value: float = getattr(figures, what)
    return value if value > 0 else math.nan


def contenders_for(backends: Sequence[Backend]) -> tuple[ScaleContender, ...]:
    out: list[ScaleContender] = []
    for backend in backends:
        if backend is TRIO:
            floor, at_once = trio_floor(at_once=False), trio_floor(at_once=True)
        else:
            floor, at_once = asyncio_floor(at_once=False), asyncio_floor(at_once=True)
        out += [
            ScaleContender(backend, FEARLESS, fearless_idle),
            ScaleContender(backend, FLOOR, floor),
            ScaleContender(backend, FLOOR_AT_ONCE, at_once),
            ScaleContender(backend, FLOOR_ANYIO, anyio_floor),
        ]
    return tuple(out)


WORKLOAD = ActorScale(
    name="actor-scale",
    title="10. Actors at scale: N idle actors, spawned, held and stopped",
    contenders=contenders_for((ASYNCIO, TRIO)),
)
