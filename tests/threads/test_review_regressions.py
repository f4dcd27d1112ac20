"""Races found by reviewing the thread bridge, each pinned by the scenario that exposed it."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import pytest
from anyio import CancelScope, EndOfStream, WouldBlock

import fearless
from fearless import Recv, SendBrokenError, channel, merge, select

from ..conftest import BACKENDS
from .support import Worker, running, wait_for

pytestmark = pytest.mark.anyio


async def test_a_scope_cancelling_while_a_wake_from_a_thread_is_on_its_way_never_kills() -> None:
    """A thread takes a parked sender's item; a cancel scope cancels the sender before the wake
    from the thread arrives. The send stands, and the scope's cancellation is delivered as the
    scope's own: it must never escape as a stray CancelledError that kills the producer."""
    rng = random.Random(1127)
    tx, rx = channel[int](0, yield_every=1)
    n = 3000
    current: list[CancelScope] = []
    sent = 0

    async def produce() -> None:
        nonlocal sent
        with tx:
            i = 0
            while i < n:
                with CancelScope() as scope:
                    current.append(scope)
                    await tx.send(i)
                current.pop()
                if not scope.cancelled_caught:
                    i += 1
                    sent += 1

    async def chaos() -> None:
        while sent < n:
            await anyio.lowlevel.checkpoint()
            if current and rng.random() < 0.5:
                current[-1].cancel()

    with rx, running(lambda: list(rx.iter_blocking())) as consumer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            tg.start_soon(chaos)
        got = await anyio.to_thread.run_sync(consumer.finish)
    assert sent == n
    assert got == list(range(n))


async def test_merge_never_drops_an_input_that_a_thread_filled_and_closed_meanwhile() -> None:
    """Each input gets one item from a thread, which then closes it, while the merge polls: the
    merge may only call an input ended when, under its lock, it is closed and empty."""
    for _ in range(30):
        pairs = [channel[int](4) for _ in range(16)]
        start = threading.Barrier(len(pairs) + 1, timeout=30)

        def produce(i: int, tx: fearless.Sender[int], start: threading.Barrier = start) -> None:
            start.wait()
            with tx:
                tx.send_nowait(i)

        workers = [Worker(partial(produce, i, tx)) for i, (tx, _) in enumerate(pairs)]
        for worker in workers:
            worker.start()
        got: list[int] = []
        with merge(*(rx for _, rx in pairs)) as merged:
            start.wait()
            while True:
                try:
                    got.append(merged.receive_nowait())
                except WouldBlock:
                    continue
                except EndOfStream:
                    break
        for worker in workers:
            worker.finish()
        assert sorted(got) == list(range(len(pairs)))


async def _receive(rx: fearless.ChannelReceiver[int]) -> int:
    return await rx.receive()


async def _merged(rx: fearless.ChannelReceiver[int]) -> int:
    return await merge(rx).receive()


async def _selected(rx: fearless.ChannelReceiver[int]) -> int:
    branch = Recv(rx)
    await select(branch)
    return branch.value


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "consume", [_receive, _merged, _selected], ids=["receive", "merge", "select"]
)
def test_a_loop_that_shut_down_releases_its_feeding_thread_whatever_it_received_with(
    backend: Any, consume: Callable[[fearless.ChannelReceiver[int]], Awaitable[int]]
) -> None:
    name, options = backend
    tx, rx = channel[int](1)

    def produce() -> None:
        with tx:
            for i in range(10):
                tx.send_blocking(i)

    with running(produce) as producer:
        wait_for(lambda: tx.statistics().tasks_waiting_send == 1)
        assert anyio.run(consume, rx, backend=name, backend_options=options) == 0
        with pytest.raises(SendBrokenError):
            producer.finish()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_channel_no_thread_uses_outlives_the_loops_that_used_it(backend: Any) -> None:
    """Without threads, a loop's shutdown closes nothing: a channel made outside (a module-scoped
    fixture, say) serves one event loop after another."""
    name, options = backend
    tx, rx = channel[int](math.inf)

    async def round_trip(i: int) -> int:
        await tx.send(i)
        return await rx.receive()

    with tx, rx:
        for i in range(3):
            assert anyio.run(round_trip, i, backend=name, backend_options=options) == i


def test_cancelling_every_other_task_to_shut_down_does_not_close_a_threads_channel() -> None:
    """A common asyncio shutdown cancels every task but the current one; fearless's watch of the
    loop is not a task, so the channel a thread feeds stays open until the loop really ends."""
    import asyncio

    tx, rx = channel[int](1)

    async def main() -> list[int]:
        with running(lambda: tx.send_blocking(1)) as sender:
            sender.finish()
        worker = asyncio.create_task(asyncio.sleep(3600))
        await asyncio.sleep(0)
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        return [await rx.receive()]

    with tx:
        assert asyncio.run(main()) == [1]
    assert rx._closed  # and once the loop has ended, it is closed for the thread


async def test_a_merge_over_rendezvous_channels_fed_by_threads_never_buffers_an_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When a merge parks, it settles each input as it joins it; another input may have claimed
    the merge meanwhile. Settling must then move nothing: before the fix a parked rendezvous
    sender's item was taken anyway and pushed into the capacity-0 buffer, its send reported
    done though no receiver had it (seen on free-threaded CPython, where the window is real)."""
    from fearless._channels import _channel

    over_capacity = 0
    settle = _channel._State.settle

    def observed(state: Any) -> None:
        nonlocal over_capacity
        settle(state)
        over_capacity += len(state.buffer) > state.capacity

    monkeypatch.setattr(_channel._State, "settle", observed)
    pairs = [channel[tuple[int, int]](0) for _ in range(4)]
    per_thread = 3000

    def produce(me: int, tx: fearless.Sender[tuple[int, int]]) -> None:
        with tx:
            for seq in range(per_thread):
                tx.send_blocking((me, seq))

    workers = [Worker(partial(produce, i, tx)) for i, (tx, _) in enumerate(pairs)]
    for worker in workers:
        worker.start()
    with merge(*(rx for _, rx in pairs)) as merged:
        got = [item async for item in merged]
    for worker in workers:
        worker.finish()
    assert sorted(got) == [(i, q) for i in range(len(pairs)) for q in range(per_thread)]
    assert over_capacity == 0
