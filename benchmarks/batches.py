"""Workload 3: workload 1's producer, with a consumer that takes batches (``receive_many(128)``).

The producer still sends one item at a time; the consumer still appends each item to a list, one
by one, so the only difference from workload 1 is how the consumer waits for items. The peers are
the plain one-item-at-a-time consumers of ``asyncio.Queue`` (``get()``) and trio's channel.
"""

from __future__ import annotations

import anyio
from anyio import EndOfStream

import fearless

from .harness import ASYNCIO, TRIO, UVLOOP, Contender, Target, Workload
from .one_to_one import asyncio_queue_pair, trio_pair

CAPACITY = 128
BATCH = 128


async def fearless_batches(n: int) -> list[int]:
    send, receive = fearless.channel[int](CAPACITY)
    got: list[int] = []

    async def produce() -> None:
        with send:
            for i in range(n):
                await send.send(i)

    async def consume() -> None:
        with receive:
            while True:
                try:
                    batch = await receive.receive_many(BATCH)
                except EndOfStream:
                    return
                for item in batch:
                    got.append(item)  # noqa: PERF402  (per-item work, as the other consumers do)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        tg.start_soon(consume)
    return got


WORKLOAD = Workload(
    name="receive-many",
    title="3. One producer, one consumer taking batches with receive_many(128), capacity 128",
    baseline="fearless receive_many",
    contenders=(
        Contender(ASYNCIO, "fearless receive_many", fearless_batches),
        Contender(ASYNCIO, "asyncio.Queue", asyncio_queue_pair),
        Contender(UVLOOP, "fearless receive_many", fearless_batches),
        Contender(UVLOOP, "asyncio.Queue", asyncio_queue_pair),
        Contender(TRIO, "fearless receive_many", fearless_batches),
        Contender(TRIO, "trio channel", trio_pair),
    ),
    targets=(
        Target("asyncio", "asyncio.Queue", 1.0, "at least as fast"),
        Target("uvloop", "asyncio.Queue", 1.0, "at least as fast"),
    ),
)
