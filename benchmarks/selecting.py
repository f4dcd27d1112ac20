"""Workload 6: one consumer selecting over four inputs, each a channel of capacity 128.

fearless waits on the four channels with ``select`` (a ``Recv`` branch per channel). Without
select, the usual workaround is one forwarding task per channel copying into one shared channel
that the consumer reads: measured with anyio's streams (what anyio users write) and with fearless
channels (so the gain from select itself shows apart from the gain from the faster channel).
Producer ``p`` sends ``p, p+4, p+8 ...`` below ``n``.
"""

# ruff: noqa: PERF401  Every consumer appends item by item: the same per-item work everywhere.

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

import fearless
from fearless import Branch, Recv, select

from .harness import ASYNCIO, TRIO, Contender, Target, Workload

CAPACITY = 128
INPUTS = 4


async def _produce(sender: ObjectSendStream[int], first: int, n: int) -> None:
    async with sender:
        for i in range(first, n, INPUTS):
            await sender.send(i)


async def fearless_select(n: int) -> list[int]:
    got: list[int] = []

    async def consume(branches: list[Branch]) -> None:
        live = list(branches)
        while live:
            won = await select(*live)
            assert isinstance(won, Recv)
            if won.ended:
                live.remove(won)
            else:
                got.append(won.value)

    async with anyio.create_task_group() as tg:
        receivers = []
        for first in range(INPUTS):
            send, receive = fearless.channel[int](CAPACITY)
            tg.start_soon(_produce, send, first, n)
            receivers.append(receive)
        branches: list[Branch] = [Recv(r) for r in receivers]
        tg.start_soon(consume, branches)
    for receiver in receivers:
        receiver.close()
    return got


# Both factories' senders have clone(); anyio's abc does not say so, hence Any.
Factory = Callable[[int], tuple[Any, ObjectReceiveStream[int]]]


async def _forwarders(n: int, make: Factory) -> list[int]:
    out_send, out_receive = make(CAPACITY)
    got: list[int] = []

    async def forward(receiver: ObjectReceiveStream[int], out: ObjectSendStream[int]) -> None:
        async with receiver, out:
            async for item in receiver:
                await out.send(item)

    async def consume() -> None:
        async with out_receive:
            async for item in out_receive:
                got.append(item)

    async with anyio.create_task_group() as tg:
        async with out_send:
            for first in range(INPUTS):
                send, receive = make(CAPACITY)
                tg.start_soon(_produce, send, first, n)
                tg.start_soon(forward, receive, out_send.clone())
        tg.start_soon(consume)
    return got


async def anyio_forwarders(n: int) -> list[int]:
    return await _forwarders(n, anyio.create_memory_object_stream[int])


async def fearless_forwarders(n: int) -> list[int]:
    return await _forwarders(n, fearless.channel[int])


WORKLOAD = Workload(
    name="select",
    title="6. Select over 4 inputs (4 producers, one consumer), capacity 128 each",
    baseline="fearless select",
    contenders=(
        Contender(ASYNCIO, "fearless select", fearless_select),
        Contender(ASYNCIO, "fearless forwarders", fearless_forwarders),
        Contender(ASYNCIO, "anyio forwarders", anyio_forwarders),
        Contender(TRIO, "fearless select", fearless_select),
        Contender(TRIO, "fearless forwarders", fearless_forwarders),
        Contender(TRIO, "anyio forwarders", anyio_forwarders),
    ),
    targets=(
        Target("asyncio", "anyio forwarders", 1.0, "select should win"),
        Target("trio", "anyio forwarders", 1.0, "select should win"),
    ),
)
