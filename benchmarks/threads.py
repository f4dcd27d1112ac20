"""Workload: OS threads and tasks on one channel, capacity 128 (backpressure on).

Two directions, each a table of its own:

Thread to async
    One OS thread produces ``0 .. n-1``; one task consumes. fearless: ``send_blocking`` in a
    thread started with ``threading.Thread`` (``fearless``) or with ``anyio.to_thread.run_sync``
    (``fearless to_thread``), ``async for`` on the receiver. culsans and janus: ``sync_q.put`` in
    the thread, ``await async_q.get()``. aiologic: ``green_put`` / ``await async_get()``. Two
    baselines of what users do today without a mixed queue: ``anyio from_thread``, one
    ``anyio.from_thread.run_sync(send_nowait, item)`` per item into an anyio memory object stream
    (a round trip to the loop per item, which is its backpressure, so the stream is unbounded),
    and ``call_soon_threadsafe``, one ``loop.call_soon_threadsafe(queue.put_nowait, item)`` per
    item into an unbounded ``asyncio.Queue`` (no backpressure at all: the aim to match).

Async to thread
    One task produces (``await tx.send`` / ``await async_q.put`` / ``await async_put``); one OS
    thread consumes (``rx.iter_blocking()`` / ``sync_q.get()`` / ``green_get()``).

janus and ``call_soon_threadsafe`` are asyncio only (uvloop included); culsans and aiologic run
on trio too. A peer that is not installed is left out with a note (``pip install -e '.[dev]'``
installs them all). The queues' producers end with a sentinel (``asyncio.Queue`` and aiologic's
``Queue`` have no close; culsans and janus do the same, for the same per-item work). Endpoints
and queue faces (``sync_q``, ``async_q``) are looked up once per run, methods once per call.

What is timed: the whole transfer, from starting the thread to joining it, so one thread start
(about 0.1 ms) is spread over the ``n`` items of a run (tens of thousands, or at least 1,000 for
the peers that take tens of microseconds per item and are capped, see ``SLOW``).

Nothing hangs when a contender fails: the async side runs under a deadline (``DEADLINE``); if it
fails, the contender's ``abort`` (close both ends, or shut the queue down) releases the thread;
a thread that fails does the same for the task. Every thread is joined, giving up after
``JOIN_TIMEOUT`` with an error (the threads are daemons, so a stuck one cannot keep the process
alive), and an exception raised in the thread is re-raised by the body.
"""

# ruff: noqa: PERF401, PERF402  Every consumer appends item by item: the same per-item work for
# every contender (a queue consumer cannot be a comprehension).

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial

import anyio
import anyio.from_thread
import anyio.to_thread

import fearless

from .harness import ASYNCIO, TRIO, UVLOOP, Body, Contender, Group, Target, Workload

try:
    import culsans
except ImportError:  # pragma: no cover - the dev extra installs it
    HAVE_CULSANS = False
else:
    HAVE_CULSANS = True
try:
    import janus
except ImportError:  # pragma: no cover
    HAVE_JANUS = False
else:
    HAVE_JANUS = True
try:
    import aiologic
except ImportError:  # pragma: no cover
    HAVE_AIOLOGIC = False
else:
    HAVE_AIOLOGIC = True

CAPACITY = 128
DONE = -1  # the queues' sentinel; items are never negative
DEADLINE = 30.0
"""Seconds the async side of one run may take before it is failed (a full run takes ~0.25 s)."""
JOIN_TIMEOUT = 10.0
"""Seconds to wait for a thread to finish once the async side is done, before giving up."""
SLOW = 2_000
"""The item cap for the contenders that take tens of microseconds per item (a loop round trip
per item, or a thread handoff per item): 2,000 items keep one run of theirs under 0.1 s."""
THREAD_NAME = "fearless-bench-thread"
"""Every thread started here has this name, so that a test can see none is left running."""

__all__ = ["ASYNC_TO_THREAD", "THREAD_NAME", "THREAD_TO_ASYNC", "WORKLOAD", "in_thread"]


@asynccontextmanager
async def in_thread(
    target: Callable[[], object], abort: Callable[[], object]
) -> AsyncIterator[None]:
    """Run ``target`` in a daemon OS thread while the block runs; always join it.

    The block runs under ``DEADLINE``. If the block fails, ``abort`` releases the thread (closes
    the channel or shuts the queue down) before the join; if the thread fails, it calls
    ``abort`` itself, which releases the block. The join gives up after ``JOIN_TIMEOUT`` with a
    ``RuntimeError``, and it does not block the event loop (the thread may need it to finish).
    An exception raised in the thread is re-raised here, unless the block raised one already.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)
            _quietly(abort)

    thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    thread.start()
    try:
        with anyio.fail_after(DEADLINE):
            yield
    except BaseException:
        thread_failed_first = bool(errors)  # then the block's error is a consequence
        _quietly(abort)
        await _join(thread)
        if thread_failed_first:
            raise errors[0]  # noqa: B904  (chained to the block's error all the same)
        raise
    await _join(thread)
    if errors:
        raise errors[0]


async def _join(thread: threading.Thread) -> None:
    """Join ``thread`` from a worker thread (the event loop keeps running: the thread may need
    it to finish), giving up after ``JOIN_TIMEOUT``."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(thread.join, JOIN_TIMEOUT, abandon_on_cancel=True)
    if thread.is_alive():
        raise RuntimeError(f"a benchmark thread did not finish in {JOIN_TIMEOUT:g} s")


def _quietly(abort: Callable[[], object]) -> None:
    """Best effort: an abort that fails (say, on a loop that is gone) must not hide the error."""
    try:
        abort()
    except Exception:
        pass


def _close_both(*endpoints: fearless.Sender[int] | fearless.Receiver[int]) -> None:
    for endpoint in endpoints:
        endpoint.close()


# -- thread to async ------------------------------------------------------------------------------


async def fearless_from_thread(n: int) -> list[int]:
    send, receive = fearless.channel[int](CAPACITY)
    got: list[int] = []

    def produce() -> None:
        with send:
            for i in range(n):
                send.send_blocking(i)

    async with in_thread(produce, partial(_close_both, send, receive)):
        with receive:
            async for item in receive:
                got.append(item)
    return got


async def fearless_from_to_thread(n: int) -> list[int]:
    """As ``fearless_from_thread``, the thread being one of anyio's worker threads."""
    send, receive = fearless.channel[int](CAPACITY)
    got: list[int] = []

    def produce() -> None:
        with send:
            for i in range(n):
                send.send_blocking(i)

    # Closing the receiver (on any failure) releases the thread with SendBrokenError.
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(anyio.to_thread.run_sync, produce, abandon_on_cancel=True))
            with receive:
                async for item in receive:
                    got.append(item)
    return got


async def culsans_from_thread(n: int) -> list[int]:
    queue: culsans.Queue[int] = culsans.Queue(CAPACITY)
    got: list[int] = []

    def produce() -> None:
        sync_q = queue.sync_q
        for i in range(n):
            sync_q.put(i)
        sync_q.put(DONE)

    async with in_thread(produce, partial(queue.shutdown, immediate=True)):
        async_q = queue.async_q
        while (item := await async_q.get()) != DONE:
            got.append(item)
    return got


async def janus_from_thread(n: int) -> list[int]:
    queue: janus.Queue[int] = janus.Queue(CAPACITY)
    got: list[int] = []

    def produce() -> None:
        sync_q = queue.sync_q
        for i in range(n):
            sync_q.put(i)
        sync_q.put(DONE)

    try:
        async with in_thread(produce, queue.close):
            async_q = queue.async_q
            while (item := await async_q.get()) != DONE:
                got.append(item)
    finally:
        await queue.aclose()
    return got


def _drain_aiologic(queue: aiologic.Queue[int]) -> None:
    """aiologic's Queue has no close: empty it (freeing a blocked putter), leave the sentinel."""
    with suppress(aiologic.QueueEmpty):
        while True:
            queue.green_get(blocking=False)
    with suppress(aiologic.QueueFull):
        queue.green_put(DONE, blocking=False)


async def aiologic_from_thread(n: int) -> list[int]:
    queue: aiologic.Queue[int] = aiologic.Queue(CAPACITY)
    got: list[int] = []

    def produce() -> None:
        for i in range(n):
            queue.green_put(i)
        queue.green_put(DONE)

    async with in_thread(produce, partial(_drain_aiologic, queue)):
        while (item := await queue.async_get()) != DONE:
            got.append(item)
    return got


async def anyio_from_thread(n: int) -> list[int]:
    """What users do today: a round trip to the event loop per item."""
    send, receive = anyio.create_memory_object_stream[int](math.inf)
    got: list[int] = []

    def produce() -> None:
        try:
            for i in range(n):
                anyio.from_thread.run_sync(send.send_nowait, i)
        finally:
            anyio.from_thread.run_sync(send.close)

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(anyio.to_thread.run_sync, produce, abandon_on_cancel=True))
            with receive:
                async for item in receive:
                    got.append(item)
    return got


async def call_soon_threadsafe(n: int) -> list[int]:
    """The asyncio idiom: no backpressure, one loop wake-up (a self-pipe write) per item."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    got: list[int] = []

    def produce() -> None:
        for i in range(n):
            loop.call_soon_threadsafe(queue.put_nowait, i)
        loop.call_soon_threadsafe(queue.put_nowait, DONE)

    async with in_thread(produce, partial(loop.call_soon_threadsafe, queue.put_nowait, DONE)):
        while (item := await queue.get()) != DONE:
            got.append(item)
    return got


# -- async to thread ------------------------------------------------------------------------------


async def fearless_to_thread(n: int) -> list[int]:
    send, receive = fearless.channel[int](CAPACITY)
    got: list[int] = []

    def consume() -> None:
        with receive:
            for item in receive.iter_blocking():
                got.append(item)

    async with in_thread(consume, partial(_close_both, send, receive)):
        with send:
            for i in range(n):
                await send.send(i)
    return got


async def culsans_to_thread(n: int) -> list[int]:
    queue: culsans.Queue[int] = culsans.Queue(CAPACITY)
    got: list[int] = []

    def consume() -> None:
        sync_q = queue.sync_q
        while (item := sync_q.get()) != DONE:
            got.append(item)

    async with in_thread(consume, partial(queue.shutdown, immediate=True)):
        async_q = queue.async_q
        for i in range(n):
            await async_q.put(i)
        await async_q.put(DONE)
    return got


async def janus_to_thread(n: int) -> list[int]:
    queue: janus.Queue[int] = janus.Queue(CAPACITY)
    got: list[int] = []

    def consume() -> None:
        sync_q = queue.sync_q
        while (item := sync_q.get()) != DONE:
            got.append(item)

    try:
        async with in_thread(consume, queue.close):
            async_q = queue.async_q
            for i in range(n):
                await async_q.put(i)
            await async_q.put(DONE)
    finally:
        await queue.aclose()
    return got


async def aiologic_to_thread(n: int) -> list[int]:
    queue: aiologic.Queue[int] = aiologic.Queue(CAPACITY)
    got: list[int] = []

    def consume() -> None:
        while (item := queue.green_get()) != DONE:
            got.append(item)

    # If the task fails, a sentinel ends the thread (after the items already queued).
    async with in_thread(consume, partial(queue.green_put, DONE, blocking=False)):
        for i in range(n):
            await queue.async_put(i)
        await queue.async_put(DONE)
    return got


# -- the contenders -------------------------------------------------------------------------------

BACKENDS = (ASYNCIO, UVLOOP, TRIO)
ASYNCIO_ONLY = frozenset({"asyncio", "uvloop"})


def _contenders(entries: list[tuple[str, bool, Body, bool, int | None]]) -> tuple[Contender, ...]:
    """``(label, installed, body, asyncio_only, max_items)`` for every backend, in order."""
    return tuple(
        Contender(backend, label, body, max_items)
        for backend in BACKENDS
        for label, installed, body, asyncio_only, max_items in entries
        if installed and (backend.name in ASYNCIO_ONLY or not asyncio_only)
    )


def _targets(contenders: tuple[Contender, ...], wanted: list[Target]) -> tuple[Target, ...]:
    """The targets whose peer is among the contenders (it may not be installed)."""
    present = {(c.backend.name, c.label) for c in contenders}
    return tuple(t for t in wanted if (t.backend, t.peer) in present)


FROM_THREAD = _contenders(
    [
        ("fearless", True, fearless_from_thread, False, None),
        ("fearless to_thread", True, fearless_from_to_thread, False, None),
        ("culsans", HAVE_CULSANS, culsans_from_thread, False, None),
        ("janus", HAVE_JANUS, janus_from_thread, True, None),
        ("aiologic", HAVE_AIOLOGIC, aiologic_from_thread, False, SLOW),
        ("anyio from_thread", True, anyio_from_thread, False, SLOW),
        ("call_soon_threadsafe", True, call_soon_threadsafe, True, None),
    ]
)
TO_THREAD = _contenders(
    [
        ("fearless", True, fearless_to_thread, False, None),
        ("culsans", HAVE_CULSANS, culsans_to_thread, False, None),
        ("janus", HAVE_JANUS, janus_to_thread, True, None),
        ("aiologic", HAVE_AIOLOGIC, aiologic_to_thread, False, SLOW),
    ]
)

THREAD_TO_ASYNC = Workload(
    name="thread-to-async",
    title="7a. Threads: one OS thread producing, one task consuming, capacity 128",
    baseline="fearless",
    contenders=FROM_THREAD,
    targets=_targets(
        FROM_THREAD,
        [
            Target("asyncio", "culsans", 2.0),
            Target("trio", "culsans", 3.0),
            Target("asyncio", "anyio from_thread", 10.0),
            Target("uvloop", "anyio from_thread", 10.0),
            Target("trio", "anyio from_thread", 10.0),
            Target("asyncio", "call_soon_threadsafe", 1.0, "aim to match"),
            Target("uvloop", "call_soon_threadsafe", 1.0, "aim to match"),
        ],
    ),
)
ASYNC_TO_THREAD = Workload(
    name="async-to-thread",
    title="7b. Threads: one task producing, one OS thread consuming, capacity 128",
    baseline="fearless",
    contenders=TO_THREAD,
    targets=_targets(
        TO_THREAD,
        [
            Target("asyncio", "culsans", 2.0),
            Target("uvloop", "culsans", 2.0),
            Target("trio", "culsans", 2.0),
        ],
    ),
)


def _missing() -> tuple[str, ...]:
    installed = {
        "culsans": HAVE_CULSANS,
        "janus": HAVE_JANUS,
        "aiologic": HAVE_AIOLOGIC,
    }
    return tuple(
        f"{name} is not installed, so it was left out (pip install -e '.[dev]')"
        for name, have in installed.items()
        if not have
    )


WORKLOAD = Group(
    name="threads",
    workloads=(THREAD_TO_ASYNC, ASYNC_TO_THREAD),
    notes=_missing(),
)
