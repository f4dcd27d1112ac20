"""Workload ``anatomy``: where the time of one send and one receive goes.

Two tables, each on two runners: ``asyncio.run`` (a plain asyncio task, which anyio knows nothing
about) and ``anyio.run`` (a task started in an anyio task group, as ``benchmarks/`` runs every
contender; ``enter()`` then walks its anyio cancel scopes).

One task, no task switches (11a)
    One task makes ``n`` calls in a row on an unbounded channel whose ``yield_every`` is out of
    reach, so every call takes the fast path (room to send, an item to receive) and none yields.
    The real ``await tx.send(i)``, ``await rx.receive()`` and ``await rx.__anext__()`` are timed,
    and beside them copies of their fast paths with one more part stripped at each step:

    1. as written in ``Sender.send`` / ``ChannelReceiver.receive`` (``_channels/_endpoints.py``);
    2. without the cancel check (``_backend.enter()``; a constant backend instead);
    3. without the scheduling budget (the decrement and the test that would yield);
    4. without the thread lock (acquire, release and, for the send, its ``try``/``finally``);
    5. without the statistics counters (``total_sent`` and ``peak``; ``total_received``);
    6. without the checks (closed, receivers open, room, parked parties): the bare deque
       ``append`` / ``popleft`` behind two attribute loads;
    7. an empty coroutine: what calling and awaiting any ``async def`` costs.

    A part's cost is the time its stripping saves (step ``k`` minus step ``k + 1``); the time of
    an empty ``for`` loop, timed the same way, is taken off every figure. The parts add up to the
    copy of step 1, which the table prints next to the real method: the copies below must follow
    the fast paths in ``_endpoints.py``, and if they stop doing so the two figures part. Beside
    them, in the same run: ``asyncio.Queue.put`` on an unbounded queue, ``asyncio.Queue.get`` on a
    non-empty one, and the yield an endpoint makes when its budget runs out (``LoopBound._yield``:
    ``bind`` and one checkpoint through the event loop, the task alone on the loop).

The stream it adds up to (11b)
    One producer task sends ``0 .. n-1`` into a channel of capacity 128 (the default budget),
    one consumer task only counts what it receives (``async for``, no list), against the same
    pair of tasks around an ``asyncio.Queue(128)`` (with a sentinel). This is the figure the
    parts predict: ``send + __anext__ + 2 x yield / yield_every`` per item. Workload 1 is the same
    stream with a consumer that appends every item to a list; the counting consumer leaves only
    the channel's own cost. Each run checks the count (and, for the channel, that the last item
    was ``n - 1``), not every item: workload 1 checks exactly-once delivery of the same stream.

Every probe runs on a fresh event loop per repeat; the repeats of all probes are interleaved
round-robin and each figure is the median (``harness.measure``). The one-task probes are
calibrated to a fifth of ``Settings.seconds`` each, the streams to the whole of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import anyio

import fearless
from fearless import _backend
from fearless._backend import enter as _enter
from fearless._channels._endpoints import ChannelReceiver, Sender

from .harness import Series, Settings, format_time, measure

__all__ = ["WORKLOAD", "Anatomy", "Runner"]

OUT_OF_REACH: Final = 2**62
"""The ``yield_every`` of the one-task probes: no run makes that many calls, so none yields."""
STREAM_CAPACITY: Final = 128
DONE: Final = -1  # the asyncio.Queue sentinel; items are never negative
PROBE_SHARE: Final = 0.2
"""A one-task probe runs for this share of ``Settings.seconds``: there are 21 of them a runner."""

_NOT_CANCELLED: Final = _backend._ASYNCIO
"""What ``enter()`` returns in a task that is not cancelled: the stripped copies' backend."""


class OffTheFastPath(AssertionError):
    """A copy met a channel state its fast path does not handle: the probe is set up wrong."""


# -- the copies of Sender.send's fast path, one more part stripped at each step ----------------


async def send_as_written(self: Sender[int], item: int) -> None:
    """``Sender.send`` up to its fast path's ``return``, as written in ``_endpoints.py``."""
    backend = _enter()
    self._budget -= 1
    if self._budget <= 0 or backend.cancel_pending:
        await self._yield(backend)
    state = self._state
    lock = state.lock
    lock.acquire()
    try:
        buffer = state.buffer
        n = len(buffer)
        if (
            n < state.capacity
            and not state.recv_waiters
            and not self._closed
            and state.open_receivers
        ):
            buffer.append(item)
            state.total_sent += 1
            if n >= state.peak:
                state.peak = n + 1
            return
        raise OffTheFastPath
    finally:
        lock.release()


async def send_without_cancel_check(self: Sender[int], item: int) -> None:
    backend = _NOT_CANCELLED
    self._budget -= 1
    if self._budget <= 0 or backend.cancel_pending:
        await self._yield(backend)
    state = self._state
    lock = state.lock
    lock.acquire()
    try:
        buffer = state.buffer
        n = len(buffer)
        if (
            n < state.capacity
            and not state.recv_waiters
            and not self._closed
            and state.open_receivers
        ):
            buffer.append(item)
            state.total_sent += 1
            if n >= state.peak:
                state.peak = n + 1
            return
        raise OffTheFastPath
    finally:
        lock.release()


async def send_without_budget(self: Sender[int], item: int) -> None:
    state = self._state
    lock = state.lock
    lock.acquire()
    try:
        buffer = state.buffer
        n = len(buffer)
        if (
            n < state.capacity
            and not state.recv_waiters
            and not self._closed
            and state.open_receivers
        ):
            buffer.append(item)
            state.total_sent += 1
            if n >= state.peak:
                state.peak = n + 1
            return
        raise OffTheFastPath
    finally:
        lock.release()


async def send_without_lock(self: Sender[int], item: int) -> None:
    state = self._state
    buffer = state.buffer
    n = len(buffer)
    if n < state.capacity and not state.recv_waiters and not self._closed and state.open_receivers:
        buffer.append(item)
        state.total_sent += 1
        if n >= state.peak:
            state.peak = n + 1
        return
    raise OffTheFastPath


async def send_without_counters(self: Sender[int], item: int) -> None:
    state = self._state
    buffer = state.buffer
    if (
        len(buffer) < state.capacity
        and not state.recv_waiters
        and not self._closed
        and state.open_receivers
    ):
        buffer.append(item)
        return
    raise OffTheFastPath


async def send_bare(self: Sender[int], item: int) -> None:
    self._state.buffer.append(item)


async def send_nothing(self: Sender[int], item: int) -> None:
    pass


# -- the copies of ChannelReceiver.receive's (and __anext__'s) fast path ------------------------


async def receive_as_written(self: ChannelReceiver[int]) -> int:
    """``ChannelReceiver.receive`` up to its fast path's ``return``; ``__anext__`` is the same."""
    backend = _enter()
    self._budget -= 1
    if self._budget <= 0 or backend.cancel_pending:
        await self._yield(backend)
    state = self._state
    lock = state.lock
    lock.acquire()
    buffer = state.buffer
    if buffer and not state.send_waiters and not self._closed:
        state.total_received += 1
        item = buffer.popleft()
        lock.release()
        return item
    lock.release()
    raise OffTheFastPath


async def receive_without_cancel_check(self: ChannelReceiver[int]) -> int:
    backend = _NOT_CANCELLED
    self._budget -= 1
    if self._budget <= 0 or backend.cancel_pending:
        await self._yield(backend)
    state = self._state
    lock = state.lock
    lock.acquire()
    buffer = state.buffer
    if buffer and not state.send_waiters and not self._closed:
        state.total_received += 1
        item = buffer.popleft()
        lock.release()
        return item
    lock.release()
    raise OffTheFastPath


async def receive_without_budget(self: ChannelReceiver[int]) -> int:
    state = self._state
    lock = state.lock
    lock.acquire()
    buffer = state.buffer
    if buffer and not state.send_waiters and not self._closed:
        state.total_received += 1
        item = buffer.popleft()
        lock.release()
        return item
    lock.release()
    raise OffTheFastPath


async def receive_without_lock(self: ChannelReceiver[int]) -> int:
    state = self._state
    buffer = state.buffer
    if buffer and not state.send_waiters and not self._closed:
        state.total_received += 1
        return buffer.popleft()
    raise OffTheFastPath


async def receive_without_counter(self: ChannelReceiver[int]) -> int:
    state = self._state
    buffer = state.buffer
    if buffer and not state.send_waiters and not self._closed:
        return buffer.popleft()
    raise OffTheFastPath


async def receive_bare(self: ChannelReceiver[int]) -> int:
    return self._state.buffer.popleft()


async def receive_nothing(self: ChannelReceiver[int]) -> int:
    return 0


SendCopy = Callable[[Sender[int], int], Awaitable[None]]
ReceiveCopy = Callable[[ChannelReceiver[int]], Awaitable[int]]

SEND_PARTS: Final[tuple[tuple[str, SendCopy], ...]] = (
    ("the cancel check, `_backend.enter()`", send_as_written),
    ("the scheduling budget (decrement, test)", send_without_cancel_check),
    ("the thread lock (acquire, release, try/finally)", send_without_budget),
    ("the statistics counters (total_sent, peak)", send_without_lock),
    ("the checks (closed, receivers open, room, parked receivers)", send_without_counters),
    ("the deque append and two attribute loads", send_bare),
    ("calling and awaiting a coroutine", send_nothing),
)
"""Each part, with the copy that still has it (and has every part below it)."""
RECEIVE_PARTS: Final[tuple[tuple[str, ReceiveCopy], ...]] = (
    ("the cancel check, `_backend.enter()`", receive_as_written),
    ("the scheduling budget (decrement, test)", receive_without_cancel_check),
    ("the thread lock (acquire, release)", receive_without_budget),
    ("the statistics counter (total_received)", receive_without_lock),
    ("the checks (an item there, parked senders, closed)", receive_without_counter),
    ("the deque popleft and two attribute loads", receive_bare),
    ("calling and awaiting a coroutine", receive_nothing),
)


# -- the one-task probes ---------------------------------------------------------------------------

Probe = Callable[[int], Awaitable[float]]
"""Runs inside a task: ``n`` calls of one kind, timed; returns the seconds they took."""


async def _quiet_channel() -> tuple[Sender[int], ChannelReceiver[int]]:
    """An unbounded channel that never yields, its endpoints' first (yielding, binding)
    operations done."""
    tx, rx = fearless.channel[int](math.inf, yield_every=OUT_OF_REACH)
    await tx.send(DONE)
    await rx.receive()
    return tx, rx


def _check_buffered(rx: ChannelReceiver[int], expected: int) -> None:
    held = rx.statistics().current_buffer_used
    if held != expected:
        raise AssertionError(f"{expected} items should be buffered, found {held}")


def time_sends(copy: SendCopy | None) -> Probe:
    """``n`` times ``await tx.send(i)`` (``copy`` None) or ``await copy(tx, i)``."""

    async def probe(n: int) -> float:
        tx, rx = await _quiet_channel()
        with tx, rx:
            clock = time.perf_counter
            if copy is None:
                start = clock()
                for i in range(n):
                    await tx.send(i)
            else:
                start = clock()
                for i in range(n):
                    await copy(tx, i)
            seconds = clock() - start
            _check_buffered(rx, 0 if copy is send_nothing else n)
        return seconds

    return probe


def time_receives(copy: ReceiveCopy | None, *, anext: bool = False) -> Probe:
    """``n`` times ``await rx.receive()`` (``copy`` None; ``await rx.__anext__()`` if ``anext``)
    or ``await copy(rx)``, with ``n`` items buffered first."""

    async def probe(n: int) -> float:
        tx, rx = await _quiet_channel()
        with tx, rx:
            for i in range(n):
                tx.send_nowait(i)
            clock = time.perf_counter
            if copy is None and anext:
                start = clock()
                for _ in range(n):
                    await rx.__anext__()
            elif copy is None:
                start = clock()
                for _ in range(n):
                    await rx.receive()
            else:
                start = clock()
                for _ in range(n):
                    await copy(rx)
            seconds = clock() - start
            _check_buffered(rx, n if copy is receive_nothing else 0)
        return seconds

    return probe


async def time_queue_puts(n: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    clock = time.perf_counter
    start = clock()
    for i in range(n):
        await queue.put(i)
    seconds = clock() - start
    assert queue.qsize() == n
    return seconds


async def time_queue_gets(n: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    clock = time.perf_counter
    start = clock()
    for _ in range(n):
        await queue.get()
    seconds = clock() - start
    assert queue.empty()
    return seconds


async def time_yields(n: int) -> float:
    """``n`` times the yield an endpoint makes when its budget runs out."""
    tx, rx = await _quiet_channel()
    with tx, rx:
        backend = _enter()
        clock = time.perf_counter
        start = clock()
        for _ in range(n):
            await tx._yield(backend)
        return clock() - start


async def time_empty_loop(n: int) -> float:
    clock = time.perf_counter
    start = clock()
    for _ in range(n):
        pass
    return clock() - start


SEND = "await tx.send(x)"
RECEIVE = "await rx.receive()"
ANEXT = "await rx.__anext__()"
PUT = "await queue.put(x)"
GET = "await queue.get()"
YIELD = "yield"
EMPTY = "empty loop"

PROBES: Final[dict[str, Probe]] = {
    SEND: time_sends(None),
    **{f"send: {label}": time_sends(copy) for label, copy in SEND_PARTS},
    RECEIVE: time_receives(None),
    ANEXT: time_receives(None, anext=True),
    **{f"receive: {label}": time_receives(copy) for label, copy in RECEIVE_PARTS},
    PUT: time_queue_puts,
    GET: time_queue_gets,
    YIELD: time_yields,
    EMPTY: time_empty_loop,
}


# -- the streams -----------------------------------------------------------------------------------

TaskFunction = Callable[[], Coroutine[Any, Any, None]]
Spawn = Callable[[TaskFunction, TaskFunction], Awaitable[None]]
"""Runs two task functions as two tasks of the running loop, until both have returned."""


def fearless_stream(spawn: Spawn, n: int) -> Callable[[], Awaitable[float]]:
    async def body() -> float:
        tx, rx = fearless.channel[int](STREAM_CAPACITY)
        counted: list[int] = []

        async def produce() -> None:
            with tx:
                for i in range(n):
                    await tx.send(i)

        async def consume() -> None:
            count = 0
            item = DONE
            with rx:
                async for item in rx:  # noqa: B007  (the last item is checked after the loop)
                    count += 1
            counted[:] = [count, item]

        start = time.perf_counter()
        await spawn(consume, produce)
        seconds = time.perf_counter() - start
        if counted != [n, n - 1]:
            raise AssertionError(f"fearless: counted {counted} (items, last), wanted {[n, n - 1]}")
        return seconds

    return body


def queue_stream(spawn: Spawn, n: int) -> Callable[[], Awaitable[float]]:
    async def body() -> float:
        queue: asyncio.Queue[int] = asyncio.Queue(STREAM_CAPACITY)
        counted: list[int] = []

        async def produce() -> None:
            for i in range(n):
                await queue.put(i)
            await queue.put(DONE)

        async def consume() -> None:
            count = 0
            while (await queue.get()) != DONE:
                count += 1
            counted.append(count)

        start = time.perf_counter()
        await spawn(consume, produce)
        seconds = time.perf_counter() - start
        if counted != [n] or not queue.empty():
            raise AssertionError(f"asyncio.Queue: counted {counted}, wanted [{n}]")
        return seconds

    return body


STREAMS: Final = {"fearless": fearless_stream, "asyncio.Queue": queue_stream}
STREAM_BASELINE: Final = "fearless"


# -- runners, workload, table ------------------------------------------------------------------


async def _asyncio_pair(first: TaskFunction, second: TaskFunction) -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(first())
        tg.create_task(second())


async def _anyio_pair(first: TaskFunction, second: TaskFunction) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        tg.start_soon(second)


@dataclass(frozen=True, slots=True, eq=False)
class Runner:
    """How the measuring task is started: by ``asyncio.run``, or in an anyio task group under
    ``anyio.run`` (asyncio backend); and how it starts a pair of tasks."""

    name: str
    in_anyio: bool

    @property
    def spawn(self) -> Spawn:
        return _anyio_pair if self.in_anyio else _asyncio_pair

    def run(self, main: Callable[[], Awaitable[float]]) -> float:
        """Run ``main`` in a task of a fresh event loop; return what it returned."""
        out: list[float] = []

        async def task() -> None:
            out.append(await main())

        if self.in_anyio:

            async def root() -> None:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(task)

            anyio.run(root)
        else:
            asyncio.run(task())
        return out[0]


ASYNCIO_RUN = Runner("asyncio.run", in_anyio=False)
ANYIO_RUN = Runner("anyio.run", in_anyio=True)


@dataclass(frozen=True, slots=True)
class Lap:
    """One timed run of a probe or a stream."""

    seconds: float


def _ns(seconds: float) -> str:
    return f"{seconds * 1e9:,.0f} ns"


@dataclass(frozen=True, slots=True, eq=False)
class Anatomy:
    """The one-task anatomy of a send and a receive, and the stream it adds up to."""

    name: str
    runners: tuple[Runner, ...]

    def run(self, settings: Settings) -> str:
        probe_settings = dataclasses.replace(settings, seconds=settings.seconds * PROBE_SHARE)
        probes = [(runner, key) for runner in self.runners for key in PROBES]
        probed = measure(
            [self._probe_trial(runner, PROBES[key]) for runner, key in probes], probe_settings
        )
        streams = [(runner, label) for runner in self.runners for label in STREAMS]
        streamed = measure(
            [self._stream_trial(runner, label) for runner, label in streams], settings
        )
        return self.report(
            dict(zip(((r.name, k) for r, k in probes), probed, strict=True)),
            dict(zip(((r.name, lb) for r, lb in streams), streamed, strict=True)),
            settings,
        )

    @staticmethod
    def _probe_trial(runner: Runner, probe: Probe) -> Callable[[int], Lap]:
        return lambda n: Lap(runner.run(lambda: probe(n)))

    @staticmethod
    def _stream_trial(runner: Runner, label: str) -> Callable[[int], Lap]:
        return lambda n: Lap(runner.run(STREAMS[label](runner.spawn, n)))

    def report(
        self,
        probed: dict[tuple[str, str], Series[Lap]],
        streamed: dict[tuple[str, str], Series[Lap]],
        settings: Settings,
    ) -> str:
        names = [runner.name for runner in self.runners]

        def per_call(runner: str, key: str) -> float:
            """Median seconds per call, the empty loop taken off."""
            return probed[runner, key].median - probed[runner, EMPTY].median

        def saves(runner: str, key: str, below: str) -> float:
            """What stripping one part saved: the copy with it minus the copy without it."""
            return probed[runner, key].median - probed[runner, below].median

        def measured(label: str, key: str) -> str:
            cells = "".join(
                f" {_ns(per_call(r, key))} | {probed[r, key].spread:.0%} |" for r in names
            )
            return f"| {label} |{cells}"

        def derived(label: str, value: Callable[[str], float]) -> str:
            return f"| {label} |" + "".join(f" {_ns(value(r))} | |" for r in names)

        def parts(side: str, labelled: tuple[tuple[str, object], ...]) -> list[str]:
            """The sum (the copy as written), then each part: its copy minus the next one."""
            keys = [f"{side}: {label}" for label, _ in labelled] + [EMPTY]
            rows = [
                derived(
                    "sum of the parts below (a copy of the fast path)",
                    partial(per_call, key=keys[0]),
                )
            ]
            for (label, _), key, below in zip(labelled, keys[:-1], keys[1:], strict=True):
                rows.append(derived(f"- {label}", partial(saves, key=key, below=below)))
            return rows

        header = "| call, or part of one |" + "".join(f" {r} | spread |" for r in names)
        lines = [
            "### 11a. Anatomy: one send and one receive inside one task "
            "(unbounded channel, no yields)",
            "",
            "Time per call, the empty loop around it taken off. A part's figure is what stripping "
            "it saves from a copy of the fast path; the parts add up to that copy, printed under "
            "the real method (if the two part, the copies in `benchmarks/anatomy.py` no longer "
            "follow `_endpoints.py`).",
            "",
            header,
            "| --- |" + " ---: | ---: |" * len(names),
            measured(f"`{SEND}`", SEND),
            *parts("send", SEND_PARTS),
            measured(f"`{RECEIVE}`", RECEIVE),
            measured(f"`{ANEXT}` (what `async for` calls)", ANEXT),
            *parts("receive", RECEIVE_PARTS),
            measured(f"`{PUT}`, asyncio.Queue, unbounded", PUT),
            measured(f"`{GET}`, asyncio.Queue, not empty", GET),
            measured("an endpoint's yield when its budget runs out (bind + one checkpoint)", YIELD),
            derived(
                f"the same, per operation at yield_every = {fearless.DEFAULT_YIELD_EVERY}",
                lambda r: per_call(r, YIELD) / fearless.DEFAULT_YIELD_EVERY,
            ),
            "",
        ]
        for r in names:
            send_gap = per_call(r, SEND) - per_call(r, f"send: {SEND_PARTS[0][0]}")
            receive_gap = per_call(r, RECEIVE) - per_call(r, f"receive: {RECEIVE_PARTS[0][0]}")
            lines.append(
                f"- {r}: the real method minus the sum of its parts: send {send_gap * 1e9:+,.0f} "
                f"ns, receive {receive_gap * 1e9:+,.0f} ns"
            )
        lines.append("")
        title = (
            f"### 11b. Anatomy: the stream it adds up to, one producer, one consumer that only "
            f"counts, capacity {STREAM_CAPACITY}"
        )
        lines += [
            title,
            "",
            "| runner | contender | items/run | per item (median) | spread | ratio |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for r in names:
            base = streamed[r, STREAM_BASELINE]
            for label in STREAMS:
                series = streamed[r, label]
                ratio = (
                    "baseline"
                    if label == STREAM_BASELINE
                    else f"{label}/{STREAM_BASELINE} = {series.median / base.median:.2f}x"
                )
                lines.append(
                    f"| {r} | {label} | {series.items:,} | {format_time(series.median)} "
                    f"| {series.spread:.0%} | {ratio} |"
                )
        lines.append("")
        every = fearless.DEFAULT_YIELD_EVERY
        for r in names:
            predicted = per_call(r, SEND) + per_call(r, ANEXT) + 2 * per_call(r, YIELD) / every
            floor = per_call(r, PUT) + per_call(r, GET)
            lines.append(
                f"- {r}: the parts predict fearless at send + __anext__ + 2 x yield / {every} = "
                f"{format_time(predicted)} per item (measured "
                f"{format_time(streamed[r, STREAM_BASELINE].median)}); asyncio.Queue's put + get "
                f"= {format_time(floor)}, plus a task switch each time its buffer fills or "
                f"empties (measured {format_time(streamed[r, 'asyncio.Queue'].median)})"
            )
        lines.append(
            f"- {settings.repeats} interleaved repeats; one-task probes of about "
            f"{settings.seconds * PROBE_SHARE:g} s each, streams of about {settings.seconds:g} s"
        )
        return "\n".join(lines) + "\n"


WORKLOAD = Anatomy(name="anatomy", runners=(ASYNCIO_RUN, ANYIO_RUN))
