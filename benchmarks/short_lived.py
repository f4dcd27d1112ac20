"""Workload 10: short-lived streams, one per item: create a stream of capacity 1, send the item,
receive it, close both ends.

What a server that makes a stream per request pays for the stream itself (the MCP SDK does this
with ``anyio.create_memory_object_stream``). Each stream's first operations also bind its
endpoints to the event loop (``fearless._backend.bind``), which a long-lived stream pays once.
``drop-in`` is ``fearless.create_memory_object_stream`` at its default (a yield on every
operation, as anyio's); ``fearless`` is ``fearless.channel`` with its scheduling budget.
"""

from __future__ import annotations

import anyio
import trio

import fearless

from .harness import ASYNCIO, TRIO, UVLOOP, Contender, Workload


async def fearless_streams(n: int) -> list[int]:
    got: list[int] = []
    for i in range(n):
        send, receive = fearless.channel[int](1)
        with send, receive:
            await send.send(i)
            got.append(await receive.receive())
    return got


async def dropin_streams(n: int) -> list[int]:
    got: list[int] = []
    for i in range(n):
        send, receive = fearless.create_memory_object_stream[int](1)
        with send, receive:
            await send.send(i)
            got.append(await receive.receive())
    return got


async def anyio_streams(n: int) -> list[int]:
    got: list[int] = []
    for i in range(n):
        send, receive = anyio.create_memory_object_stream[int](1)
        with send, receive:
            await send.send(i)
            got.append(await receive.receive())
    return got


async def trio_streams(n: int) -> list[int]:
    got: list[int] = []
    for i in range(n):
        send, receive = trio.open_memory_channel[int](1)
        with send, receive:
            await send.send(i)
            got.append(await receive.receive())
    return got


WORKLOAD = Workload(
    name="short-lived",
    title="10. Short-lived streams: per item, create (capacity 1), send, receive, close",
    baseline="fearless",
    contenders=(
        Contender(ASYNCIO, "fearless", fearless_streams),
        Contender(ASYNCIO, "drop-in", dropin_streams),
        Contender(ASYNCIO, "anyio", anyio_streams),
        Contender(UVLOOP, "fearless", fearless_streams),
        Contender(UVLOOP, "drop-in", dropin_streams),
        Contender(UVLOOP, "anyio", anyio_streams),
        Contender(TRIO, "fearless", fearless_streams),
        Contender(TRIO, "drop-in", dropin_streams),
        Contender(TRIO, "anyio", anyio_streams),
        Contender(TRIO, "trio channel", trio_streams),
    ),
)
