"""The thread bridge on the core channel: OS threads and tasks on one channel object.

Threads use ``send_blocking`` / ``receive_blocking`` / ``iter_blocking`` (and the ``*_nowait``
calls); tasks use the async API. Every async test runs on asyncio, uvloop and trio. Threads are
always joined with a deadline, so a deadlock fails the test instead of hanging it.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import pytest
from anyio import CancelScope, ClosedResourceError, EndOfStream, WouldBlock

import fearless
from fearless import (
    EventLoopBlockingError,
    Recv,
    SendBrokenError,
    SendClosedError,
    _backend,
    channel,
    merge,
    select,
)
from fearless.testing import wait_all_tasks_blocked

from ..conftest import BACKENDS
from .support import Worker, running, wait_for

pytestmark = pytest.mark.anyio

FLAVORS = [pytest.param(0, id="rendezvous"), pytest.param(3, id="bounded"), math.inf]


def parked_senders(endpoint: Any) -> int:
    return endpoint.statistics().tasks_waiting_send  # type: ignore[no-any-return]


def parked_receivers(endpoint: Any) -> int:
    return endpoint.statistics().tasks_waiting_receive  # type: ignore[no-any-return]


# -- threads only -------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", FLAVORS)
def test_two_threads_pass_every_item_in_order(capacity: float) -> None:
    tx, rx = channel[int](capacity)

    def produce() -> None:
        with tx:
            for i in range(2000):
                tx.send_blocking(i)

    with rx, running(produce) as producer:
        got = list(rx.iter_blocking())
        producer.finish()
    assert got == list(range(2000))


def test_a_full_channel_blocks_the_sending_thread_until_there_is_room() -> None:
    tx, rx = channel[int](2)
    with tx, rx:
        tx.send_nowait(0)
        tx.send_nowait(1)
        with running(lambda: tx.send_blocking(2)) as sender:
            wait_for(lambda: parked_senders(tx) == 1)
            assert sender.is_alive()  # backpressure: it waits while the channel is full
            assert rx.receive_nowait() == 0
            sender.finish()
        assert [rx.receive_nowait(), rx.receive_nowait()] == [1, 2]


@pytest.mark.parametrize("capacity", FLAVORS)
def test_a_send_that_times_out_sent_nothing(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    with tx, rx:
        if capacity == math.inf:
            pytest.skip("an unbounded channel never blocks a sender")
        for i in range(int(capacity)):
            tx.send_nowait(i)
        before = tx.statistics()
        with pytest.raises(TimeoutError):
            tx.send_blocking(99, timeout=0.01)
        with pytest.raises(TimeoutError):
            tx.send_blocking(99, timeout=0)
        after = tx.statistics()
        assert after.total_sent == before.total_sent
        assert after.current_buffer_used == before.current_buffer_used
        assert after.tasks_waiting_send == 0
        assert [rx.receive_nowait() for _ in range(int(capacity))] == list(range(int(capacity)))
        with pytest.raises(WouldBlock):
            rx.receive_nowait()


@pytest.mark.parametrize("capacity", FLAVORS)
def test_a_receive_that_times_out_took_nothing(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    with tx, rx:
        with pytest.raises(TimeoutError):
            rx.receive_blocking(timeout=0.01)
        with pytest.raises(TimeoutError):
            rx.receive_blocking(timeout=0)
        assert rx.statistics().tasks_waiting_receive == 0
        with pytest.raises(TimeoutError):
            next(rx.iter_blocking(timeout=0.01))
        if capacity:
            tx.send_nowait(7)
            assert rx.receive_blocking(timeout=0) == 7


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, "1", True])
def test_a_bad_timeout_raises_value_error_naming_it(bad: Any) -> None:
    tx, rx = channel[int](1)
    with tx, rx:
        for call in (
            lambda: tx.send_blocking(1, timeout=bad),
            lambda: rx.receive_blocking(timeout=bad),
            lambda: rx.iter_blocking(timeout=bad),
        ):
            with pytest.raises(ValueError, match="timeout") as info:
                call()
            assert repr(bad) in str(info.value)
        assert tx.statistics().total_sent == 0


def test_closing_the_receivers_releases_a_blocked_sending_thread_with_its_item() -> None:
    tx, rx = channel[str](1)
    with tx:
        tx.send_nowait("in the buffer")
        with running(lambda: tx.send_blocking("blocked")) as sender:
            wait_for(lambda: parked_senders(tx) == 1)
            rx.close()
            with pytest.raises(SendBrokenError) as info:
                sender.finish()
        assert info.value.unsent == ("blocked",)


def test_closing_the_senders_releases_a_blocked_receiving_thread() -> None:
    tx, rx = channel[int](1)
    with rx, running(rx.receive_blocking) as receiver:
        wait_for(lambda: parked_receivers(rx) == 1)
        tx.close()
        with pytest.raises(EndOfStream):
            receiver.finish()


def test_closing_its_own_endpoint_releases_a_blocked_thread_with_closed_resource_error() -> None:
    tx, rx = channel[int](0)
    with running(lambda: tx.send_blocking(5)) as sender:
        wait_for(lambda: parked_senders(tx) == 1)
        tx.close()
        with pytest.raises(SendClosedError) as info:
            sender.finish()
    assert info.value.unsent == (5,)
    rx.close()
    tx, rx = channel[int](0)
    with tx, running(rx.receive_blocking) as receiver:
        wait_for(lambda: parked_receivers(rx) == 1)
        rx.close()
        with pytest.raises(ClosedResourceError):
            receiver.finish()


def test_iteration_in_a_thread_ends_at_end_of_stream() -> None:
    tx, rx = channel[int](math.inf)
    with rx:
        with tx:
            for i in range(5):
                tx.send_blocking(i)
        assert list(rx.iter_blocking()) == [0, 1, 2, 3, 4]
        with pytest.raises(EndOfStream):
            rx.receive_blocking()


def test_many_threads_on_each_side_lose_and_duplicate_nothing() -> None:
    tx, rx = channel[tuple[int, int]](4)
    per_sender, senders, receivers = 3000, 4, 4
    got: list[list[tuple[int, int]]] = [[] for _ in range(receivers)]

    def produce(me: int, own: fearless.Sender[tuple[int, int]]) -> None:
        with own:
            for seq in range(per_sender):
                own.send_blocking((me, seq))

    def consume(me: int, own: fearless.ChannelReceiver[tuple[int, int]]) -> None:
        with own:
            got[me].extend(own.iter_blocking())

    with tx, rx:
        clones = [(tx.clone(), rx.clone()) for _ in range(max(senders, receivers))]
    workers = [Worker(partial(produce, i, clones[i][0])) for i in range(senders)]
    workers += [Worker(partial(consume, i, clones[i][1])) for i in range(receivers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.finish()
    everything = [item for items in got for item in items]
    assert sorted(everything) == [(s, q) for s in range(senders) for q in range(per_sender)]
    for items in got:  # each receiver sees each sender's items in order
        for sender in range(senders):
            seqs = [q for s, q in items if s == sender]
            assert seqs == sorted(seqs)


# -- threads and tasks --------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_a_thread_feeds_a_task_with_backpressure(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    peak = 0

    def produce() -> None:
        nonlocal peak
        with tx:
            for i in range(5000):
                tx.send_blocking(i)
                peak = max(peak, tx.statistics().current_buffer_used)

    with rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, produce)
            got = [item async for item in rx]
    assert got == list(range(5000))
    assert peak <= (capacity if capacity != math.inf else 5000)


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_a_task_feeds_a_thread(capacity: float) -> None:
    tx, rx = channel[int](capacity)

    def consume() -> list[int]:
        with rx:
            return list(rx.iter_blocking())

    async def produce() -> None:
        with tx:
            for i in range(5000):
                await tx.send(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        got = await anyio.to_thread.run_sync(consume)
    assert got == list(range(5000))


async def test_blocking_calls_on_an_event_loop_thread_raise_at_once() -> None:
    tx, rx = channel[int](1)
    with tx, rx:
        tx.send_nowait(1)  # full: a real send_blocking here would hang the loop forever
        with pytest.raises(EventLoopBlockingError, match="send_blocking"):
            tx.send_blocking(2)
        assert rx.receive_nowait() == 1  # empty: a real receive_blocking would hang too
        with pytest.raises(EventLoopBlockingError, match="receive_blocking"):
            rx.receive_blocking()
        with pytest.raises(EventLoopBlockingError):
            next(rx.iter_blocking())
        with pytest.raises(EventLoopBlockingError):
            tx.send_blocking(3, timeout=0)  # even one that would not have waited
        stats = tx.statistics()
        assert stats.total_sent == 1
        assert stats.tasks_waiting_send == stats.tasks_waiting_receive == 0
    assert issubclass(EventLoopBlockingError, RuntimeError)


async def test_a_burst_from_a_thread_wakes_the_loop_once_not_per_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wakes = 0
    for cls in (_backend._AsyncioWaiter, _backend._TrioWaiter):
        original = cls.wake

        def counting(self: Any, original: Any = original) -> bool:
            nonlocal wakes
            wakes += 1
            return original(self)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "wake", counting)
    tx, rx = channel[int](math.inf)
    got: list[int] = []

    async def consume() -> None:
        with rx:
            got.extend([item async for item in rx])

    def burst() -> None:
        with tx:
            for i in range(1000):
                tx.send_nowait(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await wait_all_tasks_blocked()  # the consumer is parked on the empty channel
        worker = Worker(burst)
        worker.start()
        worker.finish()  # blocks this loop on purpose: the whole burst lands while no task runs
    assert got == list(range(1000))
    assert wakes == 1  # one parked receiver, one wake; the other 999 items were buffered


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


def _foreign_loop(backend: str, fn: Callable[[], Any]) -> Worker:
    """Run ``fn`` as the main task of a new event loop in a new thread."""

    async def main() -> Any:
        return await fn()

    return Worker(lambda: anyio.run(main, backend=backend))


@pytest.mark.parametrize("foreign", ["asyncio", "trio"])
@pytest.mark.parametrize("capacity", [0, 8])
async def test_two_event_loops_share_one_channel(foreign: str, capacity: int) -> None:
    """Tasks on this loop and on another loop in another thread talk over channels both ways."""
    there, here = channel[int](capacity)
    back_tx, back_rx = channel[int](capacity)

    async def far_side() -> None:
        with here, back_tx:
            async for item in here:
                await back_tx.send(item * 2)

    loop = _foreign_loop(foreign, far_side)
    loop.start()
    with there, back_rx:
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                with there:
                    for i in range(3000):
                        await there.send(i)

            tg.start_soon(produce)
            got = [item async for item in back_rx]
    await anyio.to_thread.run_sync(loop.finish)
    assert got == [i * 2 for i in range(3000)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loop_that_shut_down_counts_as_closed_for_a_thread_feeding_it(backend: Any) -> None:
    name, options = backend
    tx, rx = channel[int](1)

    def produce() -> int:
        sent = 0
        with tx:
            while True:
                tx.send_blocking(sent)  # blocks on the full channel once the loop is gone
                sent += 1

    async def take_one() -> int:
        return await rx.receive()  # and return, leaving rx open (the test still holds it)

    with running(produce) as producer:
        wait_for(lambda: parked_senders(tx) == 1)
        assert anyio.run(take_one, backend=name, backend_options=options) == 0
        with pytest.raises(SendBrokenError):
            producer.finish()
    assert rx._closed  # closed by its loop's shutdown


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loop_that_shut_down_ends_the_stream_for_a_thread_it_fed(backend: Any) -> None:
    name, options = backend
    tx, rx = channel[int](math.inf)

    async def send_one() -> None:
        await tx.send(1)  # and return, leaving tx open

    with rx, running(lambda: list(rx.iter_blocking())) as consumer:
        anyio.run(send_one, backend=name, backend_options=options)
        assert consumer.finish() == [1]


def test_an_item_handed_to_a_task_whose_loop_died_goes_back_to_the_channel() -> None:
    """A receiver parked on a loop that was closed without cancelling its tasks never runs
    again: a thread's item that it was handed goes back to the channel instead of vanishing."""
    import asyncio

    tx, rx = channel[int](math.inf)
    spare = rx.clone()
    loop = asyncio.new_event_loop()
    task = loop.create_task(rx.receive())
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))  # the task parks on the empty channel
    assert parked_receivers(rx) == 1
    loop.close()  # no shutdown: the task is stranded, parked
    with running(lambda: tx.send_nowait(42)) as sender:
        sender.finish()
    assert spare.receive_nowait() == 42
    assert not task.done()
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # stranded on purpose
    tx.close()
    rx.close()
    spare.close()


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
    """A thread blocked on a full channel is released with ``SendBrokenError`` when the loop whose
    task received from it shuts down, whether that task used ``receive``, a merge or a select."""
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


# -- a merge over channels that threads feed ----------------------------------------------------


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


async def test_a_merge_over_rendezvous_channels_fed_by_threads_never_buffers_an_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When a merge parks, it settles each input as it joins it; another input may have claimed
    the merge meanwhile. Settling must then move nothing: before the fix a parked rendezvous
    sender's item was taken anyway and pushed into the capacity-0 buffer, its send reported
    done though no receiver had it (seen on free-threaded CPython, where the window is real)."""
    from fearless._channels import _state

    over_capacity = 0
    settle = _state.ChannelState.settle

    def observed(state: Any) -> None:
        nonlocal over_capacity
        settle(state)
        over_capacity += len(state.buffer) > state.capacity

    monkeypatch.setattr(_state.ChannelState, "settle", observed)
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


class _TimesOutAfter:
    """A stand-in for a ThreadWaiter's lock: runs ``meanwhile`` (the other side completing the
    operation), then reports that the wait timed out, so both happen "at once"."""

    def __init__(self, meanwhile: Callable[[], object]) -> None:
        self.meanwhile = meanwhile

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not blocking:
            return False
        self.meanwhile()
        return False

    def release(self) -> None:
        pass


def _parks_with(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object]) -> None:
    original = _backend.ThreadWaiter.__init__

    def init(self: _backend.ThreadWaiter, shared: bool = False) -> None:
        original(self, shared)
        self._parked = _TimesOutAfter(meanwhile)  # type: ignore[assignment]

    monkeypatch.setattr(_backend.ThreadWaiter, "__init__", init)


def test_a_send_completed_just_as_its_timeout_expires_returns_normally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tx, rx = channel[int](0)
    taken: list[int] = []
    _parks_with(monkeypatch, lambda: taken.append(rx.receive_nowait()))
    with tx, rx:
        tx.send_blocking(7, timeout=5)  # the receiver took it as the timeout expired: no error
        assert taken == [7]
        assert tx.statistics().tasks_waiting_send == 0


def test_a_receive_completed_just_as_its_timeout_expires_returns_the_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tx, rx = channel[int](1)
    _parks_with(monkeypatch, lambda: tx.send_nowait(8))
    with tx, rx:
        assert rx.receive_blocking(timeout=5) == 8
        assert rx.statistics().current_buffer_used == 0


def test_a_timeout_that_wins_leaves_nothing_parked(monkeypatch: pytest.MonkeyPatch) -> None:
    tx, rx = channel[int](0)
    _parks_with(monkeypatch, lambda: None)  # nobody comes
    with tx, rx:
        with pytest.raises(TimeoutError):
            tx.send_blocking(9, timeout=5)
        with pytest.raises(TimeoutError):
            rx.receive_blocking(timeout=5)
        stats = tx.statistics()
        assert stats.tasks_waiting_send == stats.tasks_waiting_receive == stats.total_sent == 0
