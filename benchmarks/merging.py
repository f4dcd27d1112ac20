"""Workload 4: fan-in of eight inputs, each a channel of capacity 128 with its own producer.

fearless reads the eight channels as one with ``fearless.merge``. anyio has no merge; the
idiomatic way is one forwarding task per input, copying into one output stream (capacity 128)
that the consumer reads. Producer ``p`` sends ``p, p+8, p+16 ...`` below ``n``.
"""

# ruff: noqa: PERF401  Every consumer appends item by item: the same per-item work for every
# contender (an asyncio.Queue consumer cannot be an async comprehension).

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import fearless

from .harness import ASYNCIO, TRIO, Contender, Target, Workload

CAPACITY = 128
INPUTS = 8


async def fearless_merge(n: int) -> list[int]:
    got: list[int] = []

    async def produce(sender: fearless.Sender[int], first: int) -> None:
        with sender:
            for i in range(first, n, INPUTS):
                await sender.send(i)

    async def consume(merged: fearless.Receiver[int]) -> None:
        with merged:
            async for item in merged:
                got.append(item)

    async with anyio.create_task_group() as tg:
        receivers = []
        for first in range(INPUTS):
            send, receive = fearless.channel[int](CAPACITY)
            tg.start_soon(produce, send, first)
            receivers.append(receive)
        tg.start_soon(consume, fearless.merge(*receivers))
    return got


async def anyio_forwarders(n: int) -> list[int]:
    out_send, out_receive = anyio.create_memory_object_stream[int](CAPACITY)
    got: list[int] = []

    async def produce(sender: MemoryObjectSendStream[int], first: int) -> None:
        with sender:
            for i in range(first, n, INPUTS):
                await sender.send(i)

    async def forward(
        receiver: MemoryObjectReceiveStream[int], out: MemoryObjectSendStream[int]
    ) -> None:
        with receiver, out:
            async for item in receiver:
                await out.send(item)

    async def consume() -> None:
        with out_receive:
            async for item in out_receive:
                got.append(item)

    async with anyio.create_task_group() as tg:
        with out_send:
            for first in range(INPUTS):
                send, receive = anyio.create_memory_object_stream[int](CAPACITY)
                tg.start_soon(produce, send, first)
                tg.start_soon(forward, receive, out_send.clone())
        tg.start_soon(consume)
    return got


WORKLOAD = Workload(
    name="merge",
    title="4. Merge of 8 inputs (8 producers, one consumer), capacity 128 each",
    baseline="fearless merge",
    contenders=(
        Contender(ASYNCIO, "fearless merge", fearless_merge),
        Contender(ASYNCIO, "anyio forwarders", anyio_forwarders),
        Contender(TRIO, "fearless merge", fearless_merge),
        Contender(TRIO, "anyio forwarders", anyio_forwarders),
    ),
    targets=(
        Target("asyncio", "anyio forwarders", 10.0),
        Target("trio", "anyio forwarders", 10.0),
    ),
)
