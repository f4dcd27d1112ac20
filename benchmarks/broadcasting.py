"""Workload: broadcast, one producer and 8 subscribers, each receiving every item, capacity 128.

fearless runs one ``broadcast(128, on_lag="block")`` (block, so that nothing is dropped and every
contender does the same work); its peers have no broadcast, so the producer sends each item to 8
channels of capacity 128, one per subscriber (anyio memory object streams, ``asyncio.Queue``s
ended by a sentinel, trio memory channels). Each subscriber appends every item it receives to its
own list. The body returns the items of one subscriber after checking that every other subscriber
received the very same list, so the harness's exactly-once check covers all 8.
"""

# ruff: noqa: PERF401  Every consumer appends item by item: the same per-item work for every
# contender (an asyncio.Queue consumer cannot be an async comprehension).

from __future__ import annotations

import asyncio

import anyio
import trio

import fearless

from .harness import ASYNCIO, TRIO, UVLOOP, Contender, Target, Workload

CAPACITY = 128
SUBSCRIBERS = 8
DONE = -1  # the asyncio.Queue sentinel; items are never negative


def _one_of(lists: list[list[int]]) -> list[int]:
    """The first subscriber's items, once every subscriber is seen to have received the same."""
    first = lists[0]
    for other in lists[1:]:
        if other != first:
            raise AssertionError("a subscriber did not receive every item, in order")
    return first


async def fearless_broadcast(n: int) -> list[int]:
    send, first = fearless.broadcast[int](CAPACITY, on_lag="block")
    subscriptions = [first] + [send.subscribe() for _ in range(SUBSCRIBERS - 1)]
    lists: list[list[int]] = [[] for _ in subscriptions]

    async def produce() -> None:
        with send:
            for i in range(n):
                await send.send(i)

    async def consume(subscription: fearless.Subscription[int], got: list[int]) -> None:
        with subscription:
            async for item in subscription:
                got.append(item)

    async with anyio.create_task_group() as tg:
        for subscription, got in zip(subscriptions, lists, strict=True):
            tg.start_soon(consume, subscription, got)
        tg.start_soon(produce)
    return _one_of(lists)


async def anyio_streams(n: int) -> list[int]:
    pairs = [anyio.create_memory_object_stream[int](CAPACITY) for _ in range(SUBSCRIBERS)]
    lists: list[list[int]] = [[] for _ in pairs]

    async def produce() -> None:
        senders = [send for send, _ in pairs]
        for i in range(n):
            for send in senders:
                await send.send(i)
        for send in senders:
            await send.aclose()

    async def consume(receive: anyio.abc.ObjectReceiveStream[int], got: list[int]) -> None:
        async with receive:
            async for item in receive:
                got.append(item)

    async with anyio.create_task_group() as tg:
        for (_, receive), got in zip(pairs, lists, strict=True):
            tg.start_soon(consume, receive, got)
        tg.start_soon(produce)
    return _one_of(lists)


async def asyncio_queues(n: int) -> list[int]:
    queues: list[asyncio.Queue[int]] = [asyncio.Queue(CAPACITY) for _ in range(SUBSCRIBERS)]
    lists: list[list[int]] = [[] for _ in queues]

    async def produce() -> None:
        for i in range(n):
            for queue in queues:
                await queue.put(i)
        for queue in queues:
            await queue.put(DONE)

    async def consume(queue: asyncio.Queue[int], got: list[int]) -> None:
        while (item := await queue.get()) != DONE:
            got.append(item)

    async with asyncio.TaskGroup() as tg:
        for queue, got in zip(queues, lists, strict=True):
            tg.create_task(consume(queue, got))
        tg.create_task(produce())
    return _one_of(lists)


async def trio_channels(n: int) -> list[int]:
    pairs = [trio.open_memory_channel[int](CAPACITY) for _ in range(SUBSCRIBERS)]
    lists: list[list[int]] = [[] for _ in pairs]

    async def produce() -> None:
        senders = [send for send, _ in pairs]
        for i in range(n):
            for send in senders:
                await send.send(i)
        for send in senders:
            await send.aclose()

    async def consume(receive: trio.MemoryReceiveChannel[int], got: list[int]) -> None:
        async with receive:
            async for item in receive:
                got.append(item)

    async with trio.open_nursery() as nursery:
        for (_, receive), got in zip(pairs, lists, strict=True):
            nursery.start_soon(consume, receive, got)
        nursery.start_soon(produce)
    return _one_of(lists)


WORKLOAD = Workload(
    name="broadcast",
    title="Broadcast: one producer, 8 subscribers each receiving every item, capacity 128",
    baseline="fearless",
    contenders=(
        Contender(ASYNCIO, "fearless", fearless_broadcast),
        Contender(ASYNCIO, "anyio", anyio_streams),
        Contender(ASYNCIO, "asyncio.Queue", asyncio_queues),
        Contender(UVLOOP, "fearless", fearless_broadcast),
        Contender(UVLOOP, "anyio", anyio_streams),
        Contender(UVLOOP, "asyncio.Queue", asyncio_queues),
        Contender(TRIO, "fearless", fearless_broadcast),
        Contender(TRIO, "anyio", anyio_streams),
        Contender(TRIO, "trio channel", trio_channels),
    ),
    targets=(
        Target("asyncio", "anyio", 20.0),
        Target("asyncio", "asyncio.Queue", 1.0),
        Target("uvloop", "anyio", 20.0),
        Target("uvloop", "asyncio.Queue", 1.0),
        Target("trio", "anyio", 20.0),
    ),
)
