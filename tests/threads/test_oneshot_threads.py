"""The thread bridge on oneshot: a value crosses between a thread and a task, either way.

Every async test runs on asyncio, uvloop and trio. Threads are always joined with a deadline,
so a deadlock fails the test instead of hanging it; a test waits for a thread to park by polling
the receiver's state (a wait with a deadline, never the assertion itself).
"""

from __future__ import annotations

import gc
import math
import sys
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import anyio
import pytest
from anyio import ClosedResourceError, EndOfStream, WouldBlock

from fearless import (
    EventLoopBlockingError,
    OneshotReceiver,
    SendBrokenError,
    SendClosedError,
    oneshot,
)
from fearless.testing import wait_all_tasks_blocked

from .support import DEADLINE, Worker, running, until, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads far more often than every 5 ms (with a GIL), so that the races below are
    interleaved at every point."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def parked(rx: OneshotReceiver[Any]) -> bool:
    """Whether a receive (task or thread) is parked on ``rx``."""
    return bool(rx._state.waiters)


# -- a thread sends, a task receives ------------------------------------------------------------


async def test_a_value_sent_from_a_thread_wakes_a_parked_task() -> None:
    tx, rx = oneshot[int]()
    got: list[int] = []

    async def receive() -> None:
        got.append(await rx)

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await wait_all_tasks_blocked()
        assert parked(rx)
        await anyio.to_thread.run_sync(tx.send, 42)  # wakes the task through its loop
    assert got == [42]
    assert tx.closed


async def test_a_sender_closed_in_a_thread_ends_a_parked_task() -> None:
    tx, rx = oneshot[int]()
    async with anyio.create_task_group() as tg:

        async def receive() -> None:
            with pytest.raises(EndOfStream):
                await rx.receive()

        tg.start_soon(receive)
        await wait_all_tasks_blocked()
        await anyio.to_thread.run_sync(tx.close)


@pytest.mark.usefixtures("fast_switching")
async def test_many_values_sent_from_a_thread_each_reach_their_task() -> None:
    """A thread sends into 500 oneshots in turn while a task awaits each: the send and the park
    race every time (sometimes the value is there first, sometimes the task is parked first),
    and no wake-up is ever lost."""
    pairs = [oneshot[int]() for _ in range(500)]

    def send_all() -> None:
        for i, (tx, _) in enumerate(pairs):
            tx.send(i)

    worker = Worker(send_all)
    worker.start()
    got = [await rx for _, rx in pairs]
    await anyio.to_thread.run_sync(worker.finish)
    assert got == list(range(500))


@pytest.mark.usefixtures("fast_switching")
def test_many_values_cross_between_two_threads() -> None:
    """The same race between two threads: ``receive_blocking`` against ``send``, 500 times."""
    pairs = [oneshot[int]() for _ in range(500)]

    def send_all() -> None:
        for i, (tx, _) in enumerate(pairs):
            tx.send(i)

    with running(send_all) as sender:
        got = [rx.receive_blocking(timeout=DEADLINE) for _, rx in pairs]
        sender.finish()
    assert got == list(range(500))


# -- a task sends, a thread receives --------------------------------------------------------------


async def test_receive_blocking_in_a_thread_gets_a_value_sent_by_a_task() -> None:
    tx, rx = oneshot[str]()
    receiver = Worker(rx.receive_blocking)
    receiver.start()
    await until(lambda: parked(rx))
    tx.send("reply")
    assert await anyio.to_thread.run_sync(receiver.finish) == "reply"
    with pytest.raises(EndOfStream):
        rx.receive_nowait()  # received once


def test_a_value_sent_before_receive_blocking_is_returned_at_once() -> None:
    tx, rx = oneshot[int]()
    tx.send(3)
    assert rx.receive_blocking(timeout=0) == 3
    with pytest.raises(EndOfStream):
        rx.receive_blocking(timeout=0)


def test_a_sender_closed_without_sending_ends_a_blocked_thread() -> None:
    tx, rx = oneshot[int]()
    with running(rx.receive_blocking) as receiver:
        wait_for(lambda: parked(rx))
        tx.close()
        with pytest.raises(EndOfStream):
            receiver.finish()


def test_a_sender_dropped_without_sending_ends_a_blocked_thread() -> None:
    tx, rx = oneshot[int]()
    with running(rx.receive_blocking) as receiver:
        wait_for(lambda: parked(rx))
        del tx
        gc.collect()
        with pytest.raises(EndOfStream):
            receiver.finish()


def test_closing_the_receiver_releases_its_blocked_thread() -> None:
    tx, rx = oneshot[int]()
    with running(rx.receive_blocking) as receiver:
        wait_for(lambda: parked(rx))
        rx.close()
        with pytest.raises(ClosedResourceError):
            receiver.finish()
    with pytest.raises(SendBrokenError) as info:
        tx.send(1)
    assert info.value.item == 1


async def test_only_one_party_may_wait_be_it_a_thread_or_a_task() -> None:
    tx, rx = oneshot[int]()
    receiver = Worker(rx.receive_blocking)
    receiver.start()
    await until(lambda: parked(rx))
    with pytest.raises(RuntimeError, match="already waiting"):
        await rx.receive()
    tx.send(9)
    assert await anyio.to_thread.run_sync(receiver.finish) == 9


# -- timeouts ---------------------------------------------------------------------------------


def test_a_receive_blocking_that_times_out_took_nothing() -> None:
    """A timed-out wait leaves no trace: the value sent afterwards is there for the next call,
    and another party may wait again."""
    tx, rx = oneshot[int]()
    with pytest.raises(TimeoutError):
        rx.receive_blocking(timeout=0.01)
    with pytest.raises(TimeoutError):
        rx.receive_blocking(timeout=0)
    assert not parked(rx)
    with pytest.raises(WouldBlock):
        rx.receive_nowait()
    with running(lambda: rx.receive_blocking(timeout=DEADLINE)) as receiver:
        wait_for(lambda: parked(rx))
        tx.send(5)
        assert receiver.finish() == 5


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, "1", True])
def test_a_bad_timeout_raises_value_error_naming_it(bad: Any) -> None:
    tx, rx = oneshot[int]()
    with tx, rx:
        with pytest.raises(ValueError, match="timeout") as info:
            rx.receive_blocking(timeout=bad)
        assert repr(bad) in str(info.value)


async def test_receive_blocking_on_an_event_loop_thread_raises_at_once() -> None:
    tx, rx = oneshot[int]()
    with pytest.raises(EventLoopBlockingError, match="receive_blocking"):
        rx.receive_blocking()  # nothing sent: a real wait here would hang the loop
    tx.send(1)
    with pytest.raises(EventLoopBlockingError, match="receive_blocking"):
        rx.receive_blocking(timeout=0)  # even one that would not have waited
    assert rx.receive_nowait() == 1  # and it took nothing


def test_sending_twice_from_threads_delivers_the_first_and_hands_the_second_back() -> None:
    tx, rx = oneshot[int]()
    results: list[BaseException | None] = [None, None]
    barrier = threading.Barrier(2)

    def send(i: int) -> None:
        barrier.wait()
        try:
            tx.send(i)
        except SendClosedError as exc:
            results[i] = exc

    threads = [Worker(partial(send, i)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.finish()
    value = rx.receive_blocking(timeout=0)
    failed = [r for r in results if r is not None]
    assert len(failed) == 1  # exactly one send won
    assert isinstance(failed[0], SendClosedError)
    assert {value, failed[0].item} == {0, 1}


# -- collection while the lock is held ------------------------------------------------------------


def test_a_sender_collected_on_a_thread_holding_the_lock_does_not_deadlock_it() -> None:
    """The oneshot's lock is re-entrant because a finalizer may run on a thread that holds it:
    here a dropped sender is closed on this thread in the middle of (what stands for) an
    operation, and the thread blocked in ``receive_blocking`` is released with EndOfStream.
    With a plain lock this thread would deadlock against itself."""
    tx, rx = oneshot[int]()
    with running(rx.receive_blocking) as receiver:
        wait_for(lambda: parked(rx))
        with rx._state.lock:
            del tx  # collected here, by reference count: its __del__ closes the state
            assert rx._state.closed_sender
        with pytest.raises(EndOfStream):
            receiver.finish()
