"""``iterate_in_thread``: a blocking iterable produced in a thread, consumed by a task."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio import CancelScope

import fearless
from fearless import iterate_in_thread

from .support import wait_for

pytestmark = pytest.mark.anyio


class Source:
    """A blocking generator that records what happened to it, and in which thread."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.produced = 0
        self.closed_in: str | None = None
        self.thread: threading.Thread | None = None

    def __call__(self) -> Iterator[int]:
        self.thread = threading.current_thread()
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise KeyError(i)
                self.produced += 1
                yield i
        finally:
            self.closed_in = threading.current_thread().name


async def test_items_arrive_in_order_and_the_stream_ends_with_the_iterable() -> None:
    source = Source(1000)
    async with iterate_in_thread(source, capacity=8) as items:
        got = [item async for item in items]
    assert got == list(range(1000))
    assert source.thread is not None
    assert not source.thread.is_alive()
    assert source.thread is not threading.current_thread()


async def test_arguments_are_passed_through() -> None:
    async with iterate_in_thread(range, 2, 10, 3, capacity=1) as items:
        assert [item async for item in items] == [2, 5, 8]


async def test_the_thread_waits_while_the_channel_is_full() -> None:
    source = Source(1000)
    async with iterate_in_thread(source, capacity=2) as items:
        await anyio.to_thread.run_sync(wait_for, lambda: items.statistics().tasks_waiting_send > 0)
        assert source.produced == 3  # two in the channel, one in the blocked send
        assert await items.receive() == 0
    assert source.produced < 10


async def test_leaving_early_stops_the_thread_and_closes_the_generator_there() -> None:
    source = Source(10**9)
    async with iterate_in_thread(source, capacity=4) as items:
        async for item in items:
            if item == 10:
                break
    assert source.thread is not None
    assert not source.thread.is_alive()
    assert source.closed_in == source.thread.name  # the generator's finally ran in its thread


async def test_cancellation_stops_the_thread_before_the_block_is_left() -> None:
    source = Source(10**9)
    with CancelScope() as scope:
        async with iterate_in_thread(source, capacity=4) as items:
            async for item in items:
                if item == 100:
                    scope.cancel()
    assert scope.cancelled_caught
    assert source.thread is not None
    assert not source.thread.is_alive()
    assert source.closed_in is not None


async def test_an_error_in_the_thread_is_raised_from_the_block_after_the_items_before_it() -> None:
    source = Source(100, fail_at=50)
    got: list[int] = []
    with pytest.raises(KeyError) as info:
        async with iterate_in_thread(source, capacity=4) as items:
            got.extend([item async for item in items])  # ends at the error: end of stream
    assert info.value.args == (50,)
    assert got == list(range(50))


async def test_when_both_fail_the_block_error_carries_a_note_about_the_thread() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise KeyError("thread")

    async def consume() -> None:
        async with iterate_in_thread(broken, capacity=1) as items:
            await items.receive()
            with pytest.raises(anyio.EndOfStream):
                await items.receive()
            raise ValueError("block")

    with pytest.raises(ValueError, match="block") as info:
        await consume()
    assert any("KeyError('thread')" in note for note in info.value.__notes__)


async def test_a_function_that_fails_before_yielding_ends_the_stream_at_once() -> None:
    def fails() -> Iterator[int]:
        raise OSError("no such file")

    with pytest.raises(OSError, match="no such file"):
        async with iterate_in_thread(fails) as items:
            assert [item async for item in items] == []


@pytest.mark.parametrize("bad", [math.inf, -1, 1.5, "2"])
async def test_a_bad_or_unbounded_capacity_raises_value_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="capacity"):
        async with iterate_in_thread(Source(1), capacity=bad):
            pass


async def test_the_receiver_is_a_fearless_channel_receiver() -> None:
    async with iterate_in_thread(Source(3), capacity=1) as items:
        assert isinstance(items, fearless.ChannelReceiver)
        assert await items.receive_many(10) in ([0], [0, 1])


def test_a_native_asyncio_cancellation_does_not_leave_the_thread_running() -> None:
    """``task.cancel()`` gets through anyio's shield; the block's exit still waits for the
    thread (here held in its generator's ``finally``) before the cancellation propagates."""
    import asyncio

    release = threading.Event()
    running = threading.Event()
    started = threading.Event()
    threads: list[threading.Thread] = []

    def source() -> Iterator[int]:
        threads.append(threading.current_thread())
        running.set()
        try:
            yield from range(10**9)
        finally:
            started.set()
            release.wait(30)  # the thread cannot end until the test says so

    async def consume() -> None:
        async with iterate_in_thread(source, capacity=1) as items:
            async for _ in items:
                await asyncio.sleep(0)

    async def main() -> None:
        task = asyncio.create_task(consume())
        await asyncio.to_thread(running.wait, 30)
        task.cancel()  # the block exits; its exit waits for the thread, shielded
        await asyncio.to_thread(started.wait, 30)  # the thread is in its finally now
        task.cancel()  # a second, native cancellation lands during that wait
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done()  # still waiting for the thread
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not threads[0].is_alive()

    asyncio.run(main())
