"""Workload 2: four producers and four consumers on one channel of capacity 128, through clones.

Producer ``p`` sends ``p, p+4, p+8 ...`` below ``n`` on its own sender clone; each consumer reads
its own receiver clone and appends to one shared list. The stream ends when the last sender clone
closes. ``asyncio.Queue`` has neither clones nor close: the last producer to finish puts one
sentinel per consumer.
"""

# ruff: noqa: PERF401  Every consumer appends item by item: the same per-item work for every
# contender (an asyncio.Queue consumer cannot be an async comprehension).

from __future__ import annotations

import asyncio

import anyio
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import fearless

from .harness import ASYNCIO, TRIO, Contender, Target, Workload

CAPACITY = 128
WORKERS = 4  # producers, and consumers
DONE = -1


async def fearless_clones(n: int) -> list[int]:
    send, receive = fearless.channel[int](CAPACITY)
    got: list[int] = []

    async def produce(sender: fearless.Sender[int], first: int) -> None:
        with sender:
            for i in range(first, n, WORKERS):
                await sender.send(i)

    async def consume(receiver: fearless.Receiver[int]) -> None:
        with receiver:
            async for item in receiver:
                got.append(item)

    async with anyio.create_task_group() as tg:
        with send, receive:
            for first in range(WORKERS):
                tg.start_soon(produce, send.clone(), first)
                tg.start_soon(consume, receive.clone())
    return got


async def anyio_clones(n: int) -> list[int]:
    send, receive = anyio.create_memory_object_stream[int](CAPACITY)
    got: list[int] = []

    async def produce(sender: MemoryObjectSendStream[int], first: int) -> None:
        with sender:
            for i in range(first, n, WORKERS):
                await sender.send(i)

    async def consume(receiver: MemoryObjectReceiveStream[int]) -> None:
        with receiver:
            async for item in receiver:
                got.append(item)

    async with anyio.create_task_group() as tg:
        with send, receive:
            for first in range(WORKERS):
                tg.start_soon(produce, send.clone(), first)
                tg.start_soon(consume, receive.clone())
    return got


async def asyncio_queue_shared(n: int) -> list[int]:
    queue: asyncio.Queue[int] = asyncio.Queue(CAPACITY)
    got: list[int] = []
    producing = WORKERS

    async def produce(first: int) -> None:
        nonlocal producing
        for i in range(first, n, WORKERS):
            await queue.put(i)
        producing -= 1
        if producing == 0:  # the last producer out ends the stream for every consumer
            for _ in range(WORKERS):
                await queue.put(DONE)

    async def consume() -> None:
        while (item := await queue.get()) != DONE:
            got.append(item)

    async with asyncio.TaskGroup() as tg:
        for first in range(WORKERS):
            tg.create_task(produce(first))
            tg.create_task(consume())
    return got


async def trio_clones(n: int) -> list[int]:
    send, receive = trio.open_memory_channel[int](CAPACITY)
    got: list[int] = []

    async def produce(sender: trio.MemorySendChannel[int], first: int) -> None:
        with sender:
            for i in range(first, n, WORKERS):
                await sender.send(i)

    async def consume(receiver: trio.MemoryReceiveChannel[int]) -> None:
        with receiver:
            async for item in receiver:
                got.append(item)

    async with trio.open_nursery() as nursery:
        with send, receive:
            for first in range(WORKERS):
                nursery.start_soon(produce, send.clone(), first)
                nursery.start_soon(consume, receive.clone())
    return got


WORKLOAD = Workload(
    name="four-to-four",
    title="2. Four producers, four consumers (clones), capacity 128",
    baseline="fearless",
    contenders=(
        Contender(ASYNCIO, "fearless", fearless_clones),
        Contender(ASYNCIO, "anyio", anyio_clones),
        Contender(ASYNCIO, "asyncio.Queue", asyncio_queue_shared),
        Contender(TRIO, "fearless", fearless_clones),
        Contender(TRIO, "anyio", anyio_clones),
        Contender(TRIO, "trio channel", trio_clones),
    ),
    targets=(
        Target("asyncio", "anyio", 3.0),
        Target("trio", "anyio", 3.0),
    ),
)
