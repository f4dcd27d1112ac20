"""The thread bridge on broadcast: OS threads and tasks on one broadcast.

Threads use ``send_blocking`` / ``receive_blocking`` / ``iter_blocking`` (and the ``*_nowait``
calls); tasks use the async API. Every async test runs on asyncio, uvloop and trio. Threads are
always joined with a deadline, so a deadlock fails the test instead of hanging it; a test waits
for another thread to park by polling ``statistics()`` (a wait with a deadline, never the
assertion itself).
"""

from __future__ import annotations

import math
import random
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import anyio
import pytest
from anyio import ClosedResourceError, EndOfStream, WouldBlock

from fearless import (
    BroadcastSender,
    EventLoopBlockingError,
    Lagged,
    SendClosedError,
    Subscription,
    SubscriptionStatistics,
    _backend,
    broadcast,
)
from fearless.testing import wait_all_tasks_blocked

from ..conftest import BACKENDS
from .support import Worker, running, until, wait_for

pytestmark = pytest.mark.anyio


def parked_senders(endpoint: BroadcastSender[Any] | Subscription[Any]) -> int:
    stats = endpoint.statistics()
    if isinstance(stats, SubscriptionStatistics):
        return stats.broadcast.tasks_waiting_send
    return stats.tasks_waiting_send


def parked_receivers(sender: BroadcastSender[Any]) -> int:
    return sender.statistics().tasks_waiting_receive


# -- threads and tasks, both directions ----------------------------------------------------------


async def test_a_thread_feeds_every_async_subscription_every_item_in_order_with_backpressure() -> (
    None
):
    """A sending thread and four subscriptions in tasks, under "block" with a ring of 4: the
    thread is held back at exactly ``capacity`` items while nobody reads (backpressure engages),
    never gets more than ``capacity`` ahead of the slowest subscription, and every subscription
    receives every item, in order."""
    capacity, total = 4, 3000
    tx, first = broadcast[int](capacity, on_lag="block")
    subscriptions = [first] + [tx.subscribe() for _ in range(3)]
    received: list[list[int]] = [[] for _ in subscriptions]
    start = anyio.Event()
    ahead = 0

    def produce() -> None:
        nonlocal ahead
        with tx:
            for i in range(total):
                tx.send_blocking(i)
                ahead = max(ahead, tx.statistics().current_buffer_used)

    async def consume(subscription: Subscription[int], got: list[int]) -> None:
        with subscription:
            await start.wait()
            async for item in subscription:
                got.append(item)  # noqa: PERF401 - the point is the loop

    producer = Worker(produce)
    async with anyio.create_task_group() as tg:
        for subscription, got in zip(subscriptions, received, strict=True):
            tg.start_soon(consume, subscription, got)
        producer.start()
        await until(lambda: parked_senders(tx) == 1)
        stats = tx.statistics()
        assert (stats.total_sent, stats.current_buffer_used) == (capacity, capacity)
        assert producer.is_alive()  # blocked on item number `capacity`
        start.set()
    await anyio.to_thread.run_sync(producer.finish)
    assert received == [list(range(total))] * 4
    assert ahead <= capacity
    stats = tx.statistics()
    assert (stats.total_sent, stats.total_missed, stats.subscribers) == (total, 0, 0)


@pytest.mark.parametrize("policy", ["block", "drop", "error"])
async def test_a_task_feeds_thread_subscriptions_through_iter_blocking(policy: Any) -> None:
    """Three threads iterate their own subscriptions while a task sends (one by one, then in
    batches): each thread gets every item, in order, and its iteration ends at end of stream.
    Under "drop" and "error" the ring is large enough that nobody lags."""
    total = 2000
    capacity = 4 if policy == "block" else total
    tx, first = broadcast[int](capacity, on_lag=policy)
    subscriptions = [first] + [tx.subscribe() for _ in range(2)]

    def consume(subscription: Subscription[int]) -> list[int]:
        with subscription:
            return list(subscription.iter_blocking())

    workers = [Worker(partial(consume, s)) for s in subscriptions]
    for worker in workers:
        worker.start()
    async with tx:
        for i in range(total // 2):
            await tx.send(i)
        for i in range(total // 2, total, 7):
            await tx.send_many(range(i, min(i + 7, total)))
    for worker in workers:
        assert await anyio.to_thread.run_sync(worker.finish) == list(range(total))


async def test_a_thread_and_a_task_sharing_one_subscription_each_item_reaches_one_of_them() -> None:
    """Parties sharing a subscription share its position: between a thread and a task, every
    item is received exactly once, each of them in order."""
    total = 3000
    tx, shared = broadcast[int](8, on_lag="block")
    by_task: list[int] = []

    async def consume() -> None:
        async for item in shared:
            by_task.append(item)  # noqa: PERF401 - the point is the loop

    thread = Worker(lambda: list(shared.iter_blocking()))
    thread.start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        async with tx:
            for i in range(total):
                await tx.send(i)
    by_thread = await anyio.to_thread.run_sync(thread.finish)
    shared.close()
    assert sorted(by_task + by_thread) == list(range(total))
    assert by_task == sorted(by_task)
    assert by_thread == sorted(by_thread)


async def test_a_burst_from_a_thread_wakes_each_parked_subscription_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Wake only those parked, once. Three tasks are parked on empty subscriptions; a
    thread sends 100 items while no task runs: three wakes in all, not one per item."""
    wakes = 0
    for cls in (_backend._AsyncioWaiter, _backend._TrioWaiter):
        original = cls.wake

        def counting(self: Any, original: Any = original) -> bool:
            nonlocal wakes
            wakes += 1
            return original(self)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "wake", counting)
    tx, first = broadcast[int](128, on_lag="drop")
    subscriptions = [first, tx.subscribe(), tx.subscribe()]
    received: list[list[int]] = [[] for _ in subscriptions]

    async def consume(subscription: Subscription[int], got: list[int]) -> None:
        with subscription:
            got.extend([item async for item in subscription])

    def burst() -> None:
        with tx:
            for i in range(100):
                tx.send_nowait(i)

    async with anyio.create_task_group() as tg:
        for subscription, got in zip(subscriptions, received, strict=True):
            tg.start_soon(consume, subscription, got)
        await wait_all_tasks_blocked()
        assert parked_receivers(tx) == 3
        worker = Worker(burst)
        worker.start()
        worker.finish()  # blocks this loop on purpose: the whole burst lands while no task runs
    assert received == [list(range(100))] * 3
    assert wakes == 3


# -- lag policies from a thread ---------------------------------------------------------------


@pytest.mark.parametrize("policy", ["error", "drop"])
def test_under_error_and_drop_a_sending_thread_never_blocks_and_laggers_lose_the_oldest(
    policy: Any,
) -> None:
    """Ten items into a ring of four with nobody reading: ``send_blocking`` returns at once each
    time. A thread reading afterwards gets ``Lagged(6)`` under "error" (then the four kept
    items), or just the four kept items under "drop"; either way the loss is counted."""
    tx, rx = broadcast[int](4, on_lag=policy)
    with tx, rx:

        def send_ten() -> None:
            for i in range(10):
                tx.send_blocking(i)

        with running(send_ten) as sender:
            sender.finish()

        def read() -> tuple[int | None, list[int]]:
            missed = None
            try:
                rx.receive_blocking(timeout=0)
            except Lagged as lagged:
                missed = lagged.missed
            else:
                raise AssertionError("the first receive should have reported the loss")
            return missed, [rx.receive_blocking(timeout=0) for _ in range(4)]

        def read_quietly() -> tuple[int | None, list[int]]:
            return None, [rx.receive_blocking(timeout=0) for _ in range(4)]

        with running(read if policy == "error" else read_quietly) as reader:
            missed, got = reader.finish()
        assert got == [6, 7, 8, 9]
        assert missed == (6 if policy == "error" else None)
        stats = rx.statistics()
        assert (stats.missed, stats.received, stats.pending) == (6, 4, 0)
        assert stats.broadcast.total_missed == 6


@pytest.mark.parametrize("policy", ["error", "drop"])
async def test_a_thread_blocked_in_receive_blocking_keeps_its_subscription_up(policy: Any) -> None:
    """A thread blocked in ``receive_blocking`` (lossy policy, ring of 2) while a task sends ten
    items in a loop: the sends that would overwrite item 0 before the thread has read it wait
    for it, so the thread gets item 0 (not ``Lagged``) however the threads are scheduled. Once
    its receive has returned, the thread waits in none, so the task goes on without it and the
    subscription lags by its policy."""
    tx, rx = broadcast[int](2, on_lag=policy)
    with rx:
        reader = Worker(rx.receive_blocking)
        reader.start()
        await until(lambda: parked_receivers(tx) == 1)
        async with tx:
            for i in range(10):
                await tx.send(i)
        assert await anyio.to_thread.run_sync(reader.finish) == 0
        if policy == "error":
            with pytest.raises(Lagged) as info:
                rx.receive_nowait()
            assert info.value.missed == 7
        assert [rx.receive_nowait(), rx.receive_nowait()] == [8, 9]
        assert rx.statistics().missed == 7


@pytest.mark.parametrize("policy", ["error", "drop"])
async def test_send_blocking_waits_for_a_task_that_keeps_up(policy: Any) -> None:
    """A task parked in ``receive`` (lossy policy, ring of 2) and a thread sending ten items with
    ``send_blocking``: the thread's third send waits until the task has read item 0, so the
    task receives item 0, not ``Lagged``, however the threads are scheduled."""
    tx, rx = broadcast[int](2, on_lag=policy)
    got: list[int] = []

    async def receive_one() -> None:
        got.append(await rx.receive())

    def produce() -> None:
        with tx:
            for i in range(10):
                tx.send_blocking(i)

    with rx:
        producer = Worker(produce)
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_one)
            await wait_all_tasks_blocked()
            producer.start()
        await anyio.to_thread.run_sync(producer.finish)
    assert got == [0]


def test_lagged_ends_iter_blocking_and_iterating_again_resumes_at_the_oldest_kept_item() -> None:
    tx, rx = broadcast[int](2, on_lag="error")
    with rx:
        with tx:
            for i in range(5):
                tx.send_blocking(i)
        with pytest.raises(Lagged) as info:
            list(rx.iter_blocking())
        assert info.value.missed == 3
        assert list(rx.iter_blocking()) == [3, 4]


def test_under_block_a_thread_cannot_overtake_the_slowest_subscription() -> None:
    """``send_nowait`` from a thread raises ``WouldBlock`` when the ring is full for the slowest
    subscription, and ``send_blocking(timeout=0)`` raises ``TimeoutError``; neither sends."""
    tx, slow = broadcast[int](2, on_lag="block")
    with tx, slow, tx.subscribe() as fast:

        def sends() -> tuple[type[BaseException], type[BaseException]]:
            tx.send_blocking(0)
            tx.send_blocking(1)
            assert [fast.receive_blocking(), fast.receive_blocking()] == [0, 1]
            errors: list[type[BaseException]] = []
            attempts: list[Callable[[], None]] = [
                partial(tx.send_nowait, 2),
                partial(tx.send_blocking, 2, timeout=0),
            ]
            for attempt in attempts:
                try:
                    attempt()
                except (WouldBlock, TimeoutError) as exc:
                    errors.append(type(exc))
            return errors[0], errors[1]

        with running(sends) as thread:
            assert thread.finish() == (WouldBlock, TimeoutError)
        assert tx.statistics().total_sent == 2
        assert slow.receive_nowait() == 0
        tx.send_blocking(2, timeout=0)  # room now
        assert [slow.receive_nowait(), slow.receive_nowait()] == [1, 2]


# -- timeouts ---------------------------------------------------------------------------------


def test_a_send_blocking_that_times_out_sent_nothing() -> None:
    tx, rx = broadcast[int](2, on_lag="block")
    with tx, rx:
        tx.send_nowait(0)
        tx.send_nowait(1)
        before = tx.statistics()
        with pytest.raises(TimeoutError):
            tx.send_blocking(2, timeout=0.01)
        with pytest.raises(TimeoutError):
            tx.send_blocking(2, timeout=0)
        after = tx.statistics()
        assert after == before
        assert (after.total_sent, after.current_buffer_used, after.tasks_waiting_send) == (2, 2, 0)
        assert [rx.receive_nowait(), rx.receive_nowait()] == [0, 1]
        with pytest.raises(WouldBlock):
            rx.receive_nowait()


def test_a_timed_out_send_leaves_the_line_without_disturbing_the_others() -> None:
    """Thread A waits without a limit, thread B behind it with one. B gives up; A's item goes in
    as soon as there is room, and B's never does."""
    tx, rx = broadcast[str](1, on_lag="block")
    with tx, rx:
        tx.send_nowait("first")
        with running(lambda: tx.send_blocking("a")) as a:
            wait_for(lambda: parked_senders(tx) == 1)
            with (
                running(lambda: tx.send_blocking("b", timeout=0.05)) as b,
                pytest.raises(TimeoutError),
            ):
                b.finish()
            assert parked_senders(tx) == 1
            assert rx.receive_blocking() == "first"
            a.finish()
        assert rx.receive_blocking(timeout=0) == "a"
        with pytest.raises(TimeoutError):
            rx.receive_blocking(timeout=0)
        assert tx.statistics().total_sent == 2


def test_a_receive_blocking_that_times_out_took_nothing() -> None:
    tx, rx = broadcast[int](4)
    with tx, rx:
        with pytest.raises(TimeoutError):
            rx.receive_blocking(timeout=0.01)
        with pytest.raises(TimeoutError):
            rx.receive_blocking(timeout=0)
        with pytest.raises(TimeoutError):
            next(rx.iter_blocking(timeout=0.01))
        stats = rx.statistics()
        assert (stats.received, stats.pending, stats.broadcast.tasks_waiting_receive) == (0, 0, 0)
        tx.send_nowait(7)
        assert rx.statistics().pending == 1
        assert rx.receive_blocking(timeout=0) == 7
        assert rx.statistics().received == 1


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, "1", True])
def test_a_bad_timeout_raises_value_error_naming_it(bad: Any) -> None:
    tx, rx = broadcast[int](1, on_lag="block")
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


# -- the event loop's own thread ----------------------------------------------------------------


@pytest.mark.parametrize("policy", ["block", "drop"])
async def test_blocking_calls_on_an_event_loop_thread_raise_at_once(policy: Any) -> None:
    """Called from a task, a blocking call raises ``EventLoopBlockingError`` instead of blocking
    the loop, whatever the policy (even a send that would not have waited), and does nothing."""
    tx, rx = broadcast[int](1, on_lag=policy)
    with tx, rx:
        tx.send_nowait(1)  # full under "block": a real send_blocking here would hang the loop
        with pytest.raises(EventLoopBlockingError, match="send_blocking"):
            tx.send_blocking(2)
        with pytest.raises(EventLoopBlockingError, match="send_blocking"):
            tx.send_blocking(2, timeout=0)
        assert rx.receive_nowait() == 1  # empty: a real receive_blocking would hang too
        with pytest.raises(EventLoopBlockingError, match="receive_blocking"):
            rx.receive_blocking()
        with pytest.raises(EventLoopBlockingError, match="receive_blocking"):
            rx.receive_blocking(timeout=0)
        with pytest.raises(EventLoopBlockingError):
            next(rx.iter_blocking())
        stats = tx.statistics()
        assert stats.total_sent == 1
        assert stats.tasks_waiting_send == stats.tasks_waiting_receive == 0


# -- closing releases blocked threads ------------------------------------------------------------


def test_closing_every_subscription_releases_a_thread_blocked_in_send_blocking() -> None:
    """Under "block" a closed subscription stops holding the sender back; with none left open
    the blocked send goes through (sending never fails for want of subscribers: one may
    subscribe later) and is counted, stored nowhere."""
    tx, rx = broadcast[int](1, on_lag="block")
    with tx:
        tx.send_nowait(0)
        with running(lambda: tx.send_blocking(1)) as sender:
            wait_for(lambda: parked_senders(tx) == 1)
            rx.close()
            sender.finish()
        stats = tx.statistics()
        assert (stats.total_sent, stats.subscribers, stats.current_buffer_used) == (2, 0, 0)
        assert stats.tasks_waiting_send == 0


async def test_closing_every_subscription_releases_every_parked_sender_threads_and_tasks() -> None:
    """Two threads and a task wait in line under "block"; closing the only subscription lets
    all three through, one after another (with no subscription open the ring is never full)."""
    tx, rx = broadcast[int](1, on_lag="block")
    with tx:
        tx.send_nowait(0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, 1)
            await wait_all_tasks_blocked()
            threads = [Worker(partial(tx.send_blocking, i)) for i in (2, 3)]
            for thread in threads:
                thread.start()
            await until(lambda: parked_senders(tx) == 3)
            rx.close()
        for thread in threads:
            await anyio.to_thread.run_sync(thread.finish)
        stats = tx.statistics()
        assert (stats.total_sent, stats.subscribers, stats.tasks_waiting_send) == (4, 0, 0)


def test_closing_the_slowest_subscription_releases_a_blocked_thread_to_the_others() -> None:
    tx, slow = broadcast[int](1, on_lag="block")
    with tx, tx.subscribe() as fast:
        tx.send_nowait(0)
        assert fast.receive_nowait() == 0
        with running(lambda: tx.send_blocking(1)) as sender:
            wait_for(lambda: parked_senders(tx) == 1)
            slow.close()
            sender.finish()
        assert fast.receive_blocking(timeout=0) == 1
        assert tx.statistics().subscribers == 1


def test_closing_the_sender_releases_a_thread_blocked_in_receive_blocking() -> None:
    tx, rx = broadcast[int](4)
    with rx:
        with running(rx.receive_blocking) as receiver:
            wait_for(lambda: parked_receivers(tx) == 1)
            tx.close()
            with pytest.raises(EndOfStream):
                receiver.finish()
        with running(lambda: list(rx.iter_blocking())) as iterator:
            assert iterator.finish() == []


def test_the_stream_ends_for_a_thread_only_when_every_sender_clone_is_closed() -> None:
    tx, rx = broadcast[int](4)
    other = tx.clone()
    with rx, running(lambda: list(rx.iter_blocking())) as receiver:
        tx.send_blocking(1)
        tx.close()
        other.send_blocking(2)
        wait_for(lambda: parked_receivers(other) == 1)  # drained, still waiting for `other`
        other.close()
        assert receiver.finish() == [1, 2]


def test_closing_its_own_endpoint_releases_a_blocked_thread() -> None:
    tx, rx = broadcast[int](1, on_lag="block")
    with rx:
        tx.send_nowait(0)
        with running(lambda: tx.send_blocking(5)) as sender:
            wait_for(lambda: parked_senders(rx) == 1)
            tx.close()
            with pytest.raises(SendClosedError) as info:
                sender.finish()
        assert info.value.unsent == (5,)
        assert rx.statistics().broadcast.total_sent == 1
    tx, rx = broadcast[int](1)
    with tx, running(rx.receive_blocking) as receiver:
        wait_for(lambda: parked_receivers(tx) == 1)
        rx.close()
        with pytest.raises(ClosedResourceError):
            receiver.finish()
        assert parked_receivers(tx) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loop_that_shut_down_ends_the_stream_for_a_thread_it_fed(backend: Any) -> None:
    """A sender used by tasks of a loop that has shut down counts as closed."""
    name, options = backend
    tx, rx = broadcast[int](4)

    async def send_one() -> None:
        await tx.send(1)  # and return, leaving tx open

    with rx, running(lambda: list(rx.iter_blocking())) as consumer:
        anyio.run(send_one, backend=name, backend_options=options)
        assert consumer.finish() == [1]
    assert tx._closed


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loop_that_shut_down_releases_a_thread_its_subscription_held_back(backend: Any) -> None:
    """A subscription read by tasks of a loop that has shut down counts as closed, so
    under "block" it no longer holds back a thread sending to it."""
    name, options = backend
    tx, rx = broadcast[int](1, on_lag="block")

    def produce() -> int:
        with tx:
            for i in range(3):
                tx.send_blocking(i)  # blocks on item 2 while the loop is still there
        return tx.statistics().total_sent

    async def take_one() -> int:
        return await rx.receive()  # and return, leaving rx open (the test still holds it)

    with running(produce) as producer:
        wait_for(lambda: parked_senders(tx) == 1)
        assert anyio.run(take_one, backend=name, backend_options=options) == 0
        assert producer.finish() == 3
    assert rx._closed


# -- collection while the lock is held ------------------------------------------------------------


def test_a_subscription_collected_while_the_lock_is_held_is_closed_when_it_is_released() -> None:
    """A finalizer cannot take the broadcast's lock (this very thread may hold it): the
    collected subscription is queued, and closed by whoever releases the lock next, which
    releases a thread that was held back by it."""
    tx, slow = broadcast[int](1, on_lag="block")
    state = tx._state
    with tx:
        tx.send_nowait(0)
        with running(lambda: tx.send_blocking(1)) as sender:
            wait_for(lambda: parked_senders(tx) == 1)
            state.lock.acquire()  # as if this thread were inside an operation
            try:
                with pytest.warns(ResourceWarning, match="Unclosed <Subscription"):
                    del slow  # collected here, by reference count, under the lock
                assert len(state.orphans) == 1
            finally:
                state.unlock()
            sender.finish()
        stats = tx.statistics()
        assert (stats.subscribers, stats.total_sent, stats.tasks_waiting_send) == (0, 2, 0)
        assert not state.orphans


# -- stress ---------------------------------------------------------------------------------------

STRESS_PER_SENDER = 5000
STRESS_SEED = 20261127
STRESS_SWITCH_INTERVAL = 1e-5  # seconds (CPython's default is 5e-3)
Item = tuple[int, int]  # (sender, sequence number)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads far more often than every 5 ms (with a GIL), so that critical sections and
    the gaps between them get interleaved with other threads at every point."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(STRESS_SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("fast_switching")
async def test_stress_threads_and_tasks_on_one_blocking_broadcast_every_subscriber_gets_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four threads and four tasks on one broadcast under "block" with a ring of 8: two sending
    threads and two sending tasks (20,000 items in all), two subscriber threads and two
    subscriber tasks. Thread calls use random timeouts and task calls random deadlines, so
    parked parties on both sides keep giving up at every point of their park; a send that timed
    out or was cancelled sent nothing and is retried, a receive that did took nothing. The
    subscriber threads also churn: every few items they clone their subscription, read from the
    clone, take statistics and close it (a clone starts at the original's position, so under
    "block" it may be the slowest for a moment and hold the senders back). Every subscriber
    must receive exactly every item, each sender's in that sender's order, no party may be left
    parked, and no party may ever be woken twice for one claim (a second wake of a trio task is
    fatal to the run)."""
    woken: set[_backend.Waiter] = set()
    woken_twice: list[_backend.Waiter] = []
    woken_lock = threading.Lock()
    for cls in (_backend.ThreadWaiter, _backend._AsyncioWaiter, _backend._TrioWaiter):

        def once(self: Any, original: Any = cls.wake) -> bool:
            with woken_lock:
                if self in woken:
                    woken_twice.append(self)
                woken.add(self)
            return original(self)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "wake", once)
    tx, first = broadcast[Item](8, on_lag="block")
    subscriptions = [first] + [tx.subscribe() for _ in range(3)]
    senders = [tx.clone() for _ in range(4)]
    tx.close()
    received: list[list[Item]] = [[] for _ in subscriptions]
    gave_up = [0] * 8  # timeouts and cancellations, one counter per party

    def thread_sender(me: int) -> None:
        rng = random.Random(STRESS_SEED + me)
        with senders[me]:
            for seq in range(STRESS_PER_SENDER):
                while True:
                    try:
                        senders[me].send_blocking((me, seq), rng.choice((None, None, 0, 1e-4)))
                        break
                    except TimeoutError:
                        gave_up[me] += 1

    async def task_sender(me: int) -> None:
        rng = random.Random(STRESS_SEED + me)
        with senders[me]:
            seq = 0
            while seq < STRESS_PER_SENDER:
                if rng.random() < 0.2:  # a batch, never cancelled (a cancelled one sent a prefix)
                    batch = [(me, s) for s in range(seq, min(seq + 5, STRESS_PER_SENDER))]
                    await senders[me].send_many(batch)
                    seq += len(batch)
                    continue
                with anyio.move_on_after(rng.choice((math.inf, math.inf, 0, 1e-4))):
                    await senders[me].send((me, seq))
                    seq += 1
                    continue
                gave_up[me] += 1  # cancelled: nothing was sent, send it again

    def thread_subscriber(k: int) -> None:
        rng = random.Random(STRESS_SEED + 4 + k)
        with subscriptions[k]:
            while True:
                try:
                    item = subscriptions[k].receive_blocking(rng.choice((None, 0, 1e-4)))
                except TimeoutError:
                    gave_up[4 + k] += 1
                    continue
                except EndOfStream:
                    return
                received[k].append(item)
                if len(received[k]) % 4 == 0:
                    with subscriptions[k].clone() as twin:
                        try:
                            assert twin.receive_nowait() != item  # the next one, if any
                        except (WouldBlock, EndOfStream):
                            pass
                        twin.statistics()

    async def task_subscriber(k: int) -> None:
        rng = random.Random(STRESS_SEED + 4 + k)
        with subscriptions[k]:
            while True:
                with anyio.move_on_after(rng.choice((math.inf, math.inf, 0, 1e-4))):
                    try:
                        received[k].extend(await subscriptions[k].receive_many(rng.choice((1, 16))))
                    except EndOfStream:
                        return
                    continue
                gave_up[4 + k] += 1  # cancelled: nothing was taken

    threads = [
        Worker(lambda: thread_sender(0)),
        Worker(lambda: thread_sender(1)),
        Worker(lambda: thread_subscriber(2)),
        Worker(lambda: thread_subscriber(3)),
    ]
    for thread in threads:
        thread.start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(task_sender, 2)
        tg.start_soon(task_sender, 3)
        tg.start_soon(task_subscriber, 0)
        tg.start_soon(task_subscriber, 1)
    for thread in threads:
        await anyio.to_thread.run_sync(thread.finish)
    expected = {me: list(range(STRESS_PER_SENDER)) for me in range(4)}
    for k, got in enumerate(received):
        by_sender: dict[int, list[int]] = {me: [] for me in range(4)}
        for me, seq in got:
            by_sender[me].append(seq)
        assert by_sender == expected, f"subscriber {k} lost, duplicated or reordered items"
    assert not woken_twice
    stats = first.statistics().broadcast
    assert (stats.total_sent, stats.total_missed) == (4 * STRESS_PER_SENDER, 0)
    assert stats.tasks_waiting_send == stats.tasks_waiting_receive == 0
    # Every task gave up and retried at some point (a deadline of 0 always cancels); whether a
    # thread's zero timeout finds its way blocked depends on timing, so its count is not checked.
    assert all(gave_up[2:6]), gave_up
