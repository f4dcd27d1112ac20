"""Workload 1: one producer, one consumer, a channel of capacity 128.

The producer sends ``0 .. n-1`` and closes; the consumer appends each item to a list until the
end of the stream. ``asyncio.Queue`` has no close, so its producer ends with a sentinel.
``drop-in`` is ``fearless.create_memory_object_stream`` at its default, anyio's schedule (a yield
on every operation), to compare with ``anyio``; ``fearless`` is ``fearless.channel`` with its
scheduling budget.
"""

# ruff: noqa: PERF401  Every consumer appends item by item: the same per-item work for every
# contender (an asyncio.Queue consumer cannot be an async comprehension).

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import trio

import fearless

from .harness import ASYNCIO, TRIO, UVLOOP, Body, Contender, Target, Workload

CAPACITY = 128
DONE = -1  # the asyncio.Queue sentinel; items are never negative


def stream_pair(factory: Callable[[int], tuple[Any, Any]]) -> Body:
    """A producer and a consumer on the pair ``factory(CAPACITY)`` returns: fearless's channel,
    the anyio drop-in and anyio's memory stream run the very same body."""

    async def body(n: int) -> list[int]:
        send, receive = factory(CAPACITY)
        got: list[int] = []

        async def produce() -> None:
            with send:
                for i in range(n):
                    await send.send(i)

        async def consume() -> None:
            with receive:
                async for item in receive:
                    got.append(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            tg.start_soon(consume)
        return got

    return body


def fearless_pair(yield_every: int = fearless.DEFAULT_YIELD_EVERY) -> Body:
    """The fearless contender, with the scheduling budget ``yield_every``."""
    return stream_pair(lambda capacity: fearless.channel[int](capacity, yield_every=yield_every))


# The anyio drop-in at its default, anyio's schedule (a yield on every operation): the figure to
# set beside anyio's, since code that swaps the import gets this.
dropin_pair = stream_pair(fearless.create_memory_object_stream[int])
anyio_pair = stream_pair(anyio.create_memory_object_stream[int])


async def asyncio_queue_pair(n: int) -> list[int]:
    queue: asyncio.Queue[int] = asyncio.Queue(CAPACITY)
    got: list[int] = []

    async def produce() -> None:
        for i in range(n):
            await queue.put(i)
        await queue.put(DONE)

    async def consume() -> None:
        while (item := await queue.get()) != DONE:
            got.append(item)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(produce())
        tg.create_task(consume())
    return got


async def trio_pair(n: int) -> list[int]:
    send, receive = trio.open_memory_channel[int](CAPACITY)
    got: list[int] = []

    async def produce() -> None:
        with send:
            for i in range(n):
                await send.send(i)

    async def consume() -> None:
        with receive:
            async for item in receive:
                got.append(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        nursery.start_soon(consume)
    return got


WORKLOAD = Workload(
    name="one-to-one",
    title="1. One producer, one consumer, capacity 128",
    baseline="fearless",
    contenders=(
        Contender(ASYNCIO, "fearless", fearless_pair()),
        Contender(ASYNCIO, "drop-in", dropin_pair),
        Contender(ASYNCIO, "anyio", anyio_pair),
        Contender(ASYNCIO, "asyncio.Queue", asyncio_queue_pair),
        Contender(UVLOOP, "fearless", fearless_pair()),
        Contender(UVLOOP, "drop-in", dropin_pair),
        Contender(UVLOOP, "anyio", anyio_pair),
        Contender(UVLOOP, "asyncio.Queue", asyncio_queue_pair),
        Contender(TRIO, "fearless", fearless_pair()),
        Contender(TRIO, "drop-in", dropin_pair),
        Contender(TRIO, "anyio", anyio_pair),
        Contender(TRIO, "trio channel", trio_pair),
    ),
    targets=(
        Target("asyncio", "anyio", 4.0),
        Target("trio", "trio channel", 4.0),
        Target("asyncio", "asyncio.Queue", 1.0, "aim to match"),
        Target("uvloop", "asyncio.Queue", 1.0, "aim to match"),
    ),
)
