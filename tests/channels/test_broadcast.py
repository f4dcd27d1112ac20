"""The broadcast's contract (``fearless._channels._broadcast``'s docstring is the specification):
delivery and order, the three lag policies, closing, cancellation, the shared ring, statistics.

Every async test runs on asyncio, uvloop and trio. Tests that wait for a task to park use
``wait_all_tasks_blocked``, never a sleep.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
from anyio import (
    CancelScope,
    ClosedResourceError,
    EndOfStream,
    WouldBlock,
)
from anyio.abc import ObjectReceiveStream, ObjectSendStream

import fearless
from fearless import (
    BroadcastSender,
    BroadcastStatistics,
    Lagged,
    SendClosedError,
    Subscription,
    SubscriptionStatistics,
    broadcast,
)
from fearless.testing import wait_all_tasks_blocked
from tests.conftest import BACKENDS

pytestmark = pytest.mark.anyio

POLICIES = ["error", "drop", "block"]
ASYNCIO_BACKENDS = [param for param in BACKENDS if param.id != "trio"]


def _drain(subscription: Subscription[Any]) -> list[Any]:
    """Every item ready for ``subscription`` now, without waiting."""
    items = []
    while True:
        try:
            items.append(subscription.receive_nowait())
        except (WouldBlock, EndOfStream):
            return items


# -- construction -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
def test_broadcast_returns_a_sender_and_a_first_subscription(policy: Any) -> None:
    """The factory gives a typed pair, as ``channel`` does; both are anyio streams."""
    tx, rx = broadcast[int](4, on_lag=policy)
    with tx, rx:
        assert isinstance(tx, BroadcastSender)
        assert isinstance(tx, ObjectSendStream)
        assert isinstance(rx, Subscription)
        assert isinstance(rx, fearless.Receiver)
        assert isinstance(rx, ObjectReceiveStream)
        stats = tx.statistics()
        assert (stats.capacity, stats.on_lag, stats.subscribers) == (4, policy, 1)


def test_the_default_lag_policy_is_error() -> None:
    """tokio's behaviour is the default: lagging is reported, never silent or blocking."""
    tx, rx = broadcast[int](1)
    with tx, rx:
        assert tx.statistics().on_lag == "error"


@pytest.mark.parametrize("bad", [0, -1, math.inf, 1.0, 2.5, True, "3", None, math.nan])
def test_a_bad_capacity_raises_value_error_naming_the_value(bad: Any) -> None:
    """A ring has slots: 0 and infinity are refused along with non-ints, naming the value."""
    with pytest.raises(ValueError, match="capacity") as info:
        broadcast[int](bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", ["panic", "Error", "", None, 1])
def test_a_bad_lag_policy_raises_value_error_naming_the_value(bad: Any) -> None:
    with pytest.raises(ValueError, match="on_lag") as info:
        broadcast[int](4, on_lag=bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [0, -3, 1.5, None])
def test_a_bad_yield_every_raises_value_error_naming_the_value(bad: Any) -> None:
    with pytest.raises(ValueError, match="yield_every") as info:
        broadcast[int](4, yield_every=bad)
    assert repr(bad) in str(info.value)


async def test_a_bad_max_items_raises_value_error_naming_the_value() -> None:
    tx, rx = broadcast[int](4)
    with tx, rx:
        with pytest.raises(ValueError, match="max_items") as info:
            await rx.receive_many(0)
        assert "0" in str(info.value)


def test_endpoints_have_no_public_constructor() -> None:
    with pytest.raises(TypeError, match=r"fearless\.broadcast"):
        BroadcastSender()
    with pytest.raises(TypeError, match=r"subscribe"):
        Subscription()


def test_an_endpoint_never_closed_warns_when_collected() -> None:
    """As for channels and anyio streams: a forgotten endpoint says so."""
    tx, rx = broadcast[int](1)
    gc.collect()
    with pytest.warns(ResourceWarning, match=r"Unclosed <BroadcastSender at [0-9a-f]+>"):
        del tx
    with pytest.warns(ResourceWarning, match=r"Unclosed <Subscription at [0-9a-f]+>"):
        del rx


# -- delivery and order -------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
async def test_every_subscriber_sees_every_item_in_order(policy: Any) -> None:
    """Four subscribers in their own tasks, a producer sending 300 items through a ring of 8:
    under "block" nothing can be lost, and the consumers keep up under the other policies too
    (a parked subscriber is woken by the next send)."""
    tx, first = broadcast[int](8, on_lag=policy)
    subscriptions = [first] + [tx.subscribe() for _ in range(3)]
    received: list[list[int]] = [[] for _ in subscriptions]

    async def consume(subscription: Subscription[int], got: list[int]) -> None:
        with subscription:
            async for item in subscription:
                got.append(item)  # noqa: PERF401 - the point is the loop

    async with anyio.create_task_group() as tg:
        for subscription, got in zip(subscriptions, received, strict=True):
            tg.start_soon(consume, subscription, got)
        await wait_all_tasks_blocked()
        async with tx:
            for i in range(300):
                await tx.send(i)
                if policy != "block" and i % 4 == 3:
                    await wait_all_tasks_blocked()  # let them keep up: lagging is tested below
    assert received == [list(range(300))] * 4


async def test_a_late_subscriber_sees_only_items_sent_after_it_subscribed() -> None:
    tx, early = broadcast[str](8)
    with tx, early:
        await tx.send("a")
        with tx.subscribe() as late:
            await tx.send("b")
            tx.close()
            assert _drain(early) == ["a", "b"]
            assert _drain(late) == ["b"]


async def test_a_clone_starts_at_the_position_of_its_original() -> None:
    """Clones of a subscription do not share items out: each sees every item from there on."""
    tx, rx = broadcast[int](8)
    with tx, rx:
        await tx.send_many([1, 2, 3])
        assert await rx.receive() == 1
        with rx.clone() as twin:
            await tx.send(4)
            assert _drain(rx) == [2, 3, 4]
            assert _drain(twin) == [2, 3, 4]


async def test_sending_with_no_subscription_open_succeeds_and_stores_nothing() -> None:
    """Nobody could ever receive such an item: it is counted as sent, and a later subscription
    starts after it."""
    tx, rx = broadcast[int](4, on_lag="block")
    rx.close()
    with tx:
        for i in range(10):  # more than the capacity, and "block" does not wait
            await tx.send(i)
        stats = tx.statistics()
        assert (stats.total_sent, stats.current_buffer_used, stats.subscribers) == (10, 0, 0)
        with tx.subscribe() as later:
            await tx.send(10)
            assert _drain(later) == [10]


async def test_the_same_object_reaches_every_subscriber_and_is_stored_once() -> None:
    """One ring for all: an item is stored once (every subscriber gets the very same object) and
    the buffer never holds more than the capacity, whatever the number of subscribers."""
    tx, first = broadcast[object](4, on_lag="drop")
    subscriptions = [first] + [tx.subscribe() for _ in range(4)]
    with tx:
        items = [object() for _ in range(10)]
        for item in items:
            await tx.send(item)
            assert tx.statistics().current_buffer_used <= 4
        assert tx.statistics().current_buffer_used == 4
        for subscription in subscriptions:
            got = _drain(subscription)
            assert all(a is b for a, b in zip(got, items[-4:], strict=True))
            subscription.close()
        assert tx.statistics().current_buffer_used == 0


async def test_items_from_each_sender_clone_stay_in_that_senders_order() -> None:
    tx, rx = broadcast[tuple[str, int]](64)
    with rx:
        async with anyio.create_task_group() as tg:
            for name in ("a", "b"):

                async def produce(sender: BroadcastSender[tuple[str, int]], name: str) -> None:
                    with sender:
                        for i in range(20):
                            await sender.send((name, i))

                tg.start_soon(produce, tx.clone(), name)
            tx.close()
        got = _drain(rx)
    assert [i for name, i in got if name == "a"] == list(range(20))
    assert [i for name, i in got if name == "b"] == list(range(20))


async def test_receive_many_returns_what_is_there_up_to_max_items() -> None:
    tx, rx = broadcast[int](8)
    with tx, rx:
        await tx.send_many(range(5))
        assert await rx.receive_many(3) == [0, 1, 2]
        assert await rx.receive_many(10) == [3, 4]

        async def later() -> None:
            await wait_all_tasks_blocked()
            await tx.send_many([5, 6])

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            assert await rx.receive_many(10) == [5, 6]  # woken once for the batch


# -- lagging ------------------------------------------------------------------------------------


async def test_error_policy_raises_lagged_with_the_exact_count_then_resumes_at_oldest() -> None:
    """tokio's rule: 10 items through a ring of 4 to a subscriber that read none: it missed 6,
    is told so once, and then reads the 4 items still kept."""
    tx, rx = broadcast[int](4, on_lag="error")
    with tx, rx:
        for i in range(10):
            tx.send_nowait(i)  # never blocks under "error"
        with pytest.raises(Lagged) as info:
            await rx.receive()
        assert info.value.missed == 6
        assert "6" in str(info.value)
        assert [await rx.receive() for _ in range(4)] == [6, 7, 8, 9]
        stats = rx.statistics()
        assert (stats.missed, stats.received, stats.pending) == (6, 4, 0)
        assert stats.broadcast.total_missed == 6


async def test_error_policy_reports_lagging_from_every_receive_method() -> None:
    """``receive_nowait``, ``receive_many`` and ``async for`` raise ``Lagged`` before taking
    anything, with the exact count; a subscriber that kept up is not affected."""
    tx, lagging = broadcast[int](2, on_lag="error")
    with tx, lagging:
        with tx.subscribe() as keeping_up:
            for i in range(3):
                await tx.send(i)
                assert await keeping_up.receive() == i
            assert keeping_up.statistics().missed == 0
        with pytest.raises(Lagged) as info:
            lagging.receive_nowait()  # 0 was overwritten by 2
        assert info.value.missed == 1
        for i in range(3, 6):
            await tx.send(i)
        with pytest.raises(Lagged) as info:
            await lagging.receive_many(10)  # 1, 2 and 3 are gone
        assert info.value.missed == 3
        assert await lagging.receive_many(10) == [4, 5]
        await tx.send_many([6, 7, 8])
        with pytest.raises(Lagged) as info:
            async for _ in lagging:
                pass
        assert info.value.missed == 1
        assert lagging.receive_nowait() == 7
        assert lagging.statistics().missed == 5


async def test_drop_policy_skips_silently_and_counts_the_loss_in_statistics() -> None:
    tx, rx = broadcast[int](3, on_lag="drop")
    with tx, rx:
        await tx.send_many(range(10))
        assert rx.statistics().pending == 3
        assert await rx.receive() == 7  # no error: straight to the oldest kept item
        assert _drain(rx) == [8, 9]
        stats = rx.statistics()
        assert (stats.missed, stats.received) == (7, 3)
        assert tx.statistics().total_missed == 7


async def test_block_policy_makes_the_sender_wait_for_the_slowest_subscriber() -> None:
    """The fast subscriber reads everything at once; the sender still waits once the slow one is
    ``capacity`` items behind, and goes on as soon as the slow one reads."""
    tx, slow = broadcast[int](2, on_lag="block")
    sent: list[int] = []

    async def produce() -> None:
        for i in range(4):
            await tx.send(i)
            sent.append(i)

    with tx, slow, tx.subscribe() as fast:
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            await wait_all_tasks_blocked()
            assert sent == [0, 1]
            assert _drain(fast) == [0, 1]
            await wait_all_tasks_blocked()
            assert sent == [0, 1]  # the fast subscriber's progress does not help
            stats = tx.statistics()
            assert (stats.tasks_waiting_send, stats.current_buffer_used) == (1, 2)
            with pytest.raises(WouldBlock):
                tx.send_nowait(99)
            assert await slow.receive() == 0
            await wait_all_tasks_blocked()
            assert sent == [0, 1, 2]
            assert _drain(slow) == [1, 2]
        assert sent == [0, 1, 2, 3]
        assert _drain(fast) == [2, 3]
        assert _drain(slow) == [3]
        assert slow.statistics().missed == 0


async def test_block_policy_closing_the_slow_subscriber_releases_the_sender() -> None:
    tx, slow = broadcast[int](1, on_lag="block")
    with tx, tx.subscribe() as fast:
        await tx.send(0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, 1)
            await wait_all_tasks_blocked()
            assert tx.statistics().tasks_waiting_send == 1
            assert await fast.receive() == 0
            await wait_all_tasks_blocked()
            assert tx.statistics().tasks_waiting_send == 1  # the slow one still holds item 0
            slow.close()
        assert _drain(fast) == [1]
        assert tx.statistics().subscribers == 1


async def test_block_policy_parked_senders_go_first_come_first_served() -> None:
    """A sender arriving while another waits queues behind it, even once there is room."""
    tx, rx = broadcast[str](1, on_lag="block")
    with tx, rx:
        await tx.send("first")
        async with anyio.create_task_group() as tg:
            for name in ("a", "b", "c"):
                tg.start_soon(tx.send, name)
                await wait_all_tasks_blocked()
            assert tx.statistics().tasks_waiting_send == 3
            assert await rx.receive() == "first"
            with pytest.raises(WouldBlock):
                tx.send_nowait("newcomer")  # room now, but "a" is first in line
            got = [await rx.receive() for _ in range(3)]
        assert got == ["a", "b", "c"]


async def test_block_policy_send_many_waits_as_often_as_needed() -> None:
    tx, rx = broadcast[int](2, on_lag="block")
    got: list[int] = []

    async def consume() -> None:
        with rx:
            async for item in rx:
                got.append(item)  # noqa: PERF401

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        with tx:
            await tx.send_many(range(50))
    assert got == list(range(50))


# -- closing ------------------------------------------------------------------------------------


async def test_subscribers_drain_what_is_left_then_see_end_of_stream() -> None:
    tx, rx = broadcast[int](4)
    with rx:
        async with tx:
            await tx.send_many([1, 2])
        assert [item async for item in rx] == [1, 2]
        with pytest.raises(EndOfStream):
            await rx.receive()
        with pytest.raises(EndOfStream):
            rx.receive_nowait()


async def test_the_stream_ends_only_when_every_sender_clone_is_closed() -> None:
    tx, rx = broadcast[int](4)
    with rx:
        tx2 = tx.clone()
        tx.close()
        with pytest.raises(WouldBlock):
            rx.receive_nowait()
        await tx2.send(1)
        tx2.close()
        assert _drain(rx) == [1]
        with pytest.raises(EndOfStream):
            rx.receive_nowait()


async def test_closing_the_last_sender_wakes_every_parked_subscriber_with_end_of_stream() -> None:
    tx, first = broadcast[int](4)
    subscriptions = [first, tx.subscribe(), tx.subscribe()]
    ended: list[int] = []

    async def receive(who: int) -> None:
        with subscriptions[who], pytest.raises(EndOfStream):
            await subscriptions[who].receive()
        ended.append(who)

    async with anyio.create_task_group() as tg:
        for who in range(3):
            tg.start_soon(receive, who)
        await wait_all_tasks_blocked()
        assert tx.statistics().tasks_waiting_receive == 3
        await tx.aclose()
    assert sorted(ended) == [0, 1, 2]


async def test_sending_after_close_raises_send_closed_error_carrying_the_items() -> None:
    tx, rx = broadcast[int](4)
    with rx:
        tx.close()
        with pytest.raises(SendClosedError) as info:
            await tx.send(1)
        assert info.value.unsent == (1,)
        with pytest.raises(SendClosedError) as info:
            tx.send_nowait(2)
        assert info.value.unsent == (2,)
        with pytest.raises(SendClosedError) as info:
            await tx.send_many([3, 4])
        assert info.value.unsent == (3, 4)
        with pytest.raises(ClosedResourceError):
            tx.subscribe()
        with pytest.raises(ClosedResourceError):
            tx.clone()


async def test_using_a_closed_subscription_raises_closed_resource_error() -> None:
    tx, rx = broadcast[int](4)
    with tx:
        await tx.send(1)
        rx.close()
        rx.close()  # idempotent
        with pytest.raises(ClosedResourceError):
            await rx.receive()
        with pytest.raises(ClosedResourceError):
            rx.receive_nowait()
        with pytest.raises(ClosedResourceError):
            await rx.receive_many(2)
        with pytest.raises(ClosedResourceError):
            rx.clone()
        assert rx.statistics().pending == 0


async def test_closing_an_endpoint_wakes_its_own_parked_operations() -> None:
    """A parked receive of a closed subscription and a parked send of a closed sender fail with
    ``ClosedResourceError``; the send's item was not sent."""
    tx, rx = broadcast[int](1, on_lag="block")
    with rx, tx.subscribe() as other:
        await tx.send(0)
        failures: list[BaseException] = []

        async def send() -> None:
            try:
                await tx.send(1)
            except SendClosedError as error:
                failures.append(error)

        async def receive() -> None:
            try:
                await other.receive()
                await other.receive()
            except ClosedResourceError as error:
                failures.append(error)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            tg.start_soon(receive)
            await wait_all_tasks_blocked()
            other.close()
            tx.close()
        assert len(failures) == 2
        assert {type(f) for f in failures} == {ClosedResourceError, SendClosedError}
        assert [f.unsent for f in failures if isinstance(f, SendClosedError)] == [(1,)]
        assert _drain(rx) == [0]


async def test_closing_every_subscription_while_the_sender_waits_releases_it() -> None:
    tx, rx = broadcast[int](1, on_lag="block")
    with tx:
        await tx.send(0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, 1)
            await wait_all_tasks_blocked()
            rx.close()
        stats = tx.statistics()
        assert (stats.total_sent, stats.subscribers, stats.current_buffer_used) == (2, 0, 0)


async def test_aclose_closes_even_when_cancelled() -> None:
    tx, rx = broadcast[int](1)
    with CancelScope() as scope:
        scope.cancel()
        await tx.aclose()
    with CancelScope() as scope:
        scope.cancel()
        await rx.aclose()
    stats = tx.statistics()
    assert (stats.open_senders, stats.subscribers) == (0, 0)


# -- cancellation -------------------------------------------------------------------------------


async def test_a_cancelled_receive_consumes_nothing() -> None:
    tx, rx = broadcast[int](4)
    with tx, rx:
        with CancelScope() as scope:
            scope.cancel()
            await tx.send(0)  # a cancel point: nothing sent
        assert tx.statistics().total_sent == 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(rx.receive)  # parks
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert rx.statistics().broadcast.tasks_waiting_receive == 0
        await tx.send(1)
        with CancelScope() as scope:
            scope.cancel()
            await rx.receive()  # cancelled before it took the item
        assert await rx.receive() == 1


async def test_a_cancelled_blocked_send_sent_nothing() -> None:
    tx, rx = broadcast[int](1, on_lag="block")
    with tx, rx:
        await tx.send(0)
        with anyio.move_on_after(0):
            await tx.send(1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, 2)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert tx.statistics().tasks_waiting_send == 0
        assert tx.statistics().total_sent == 1
        assert _drain(rx) == [0]
        await tx.send(3)
        assert _drain(rx) == [3]


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
async def test_a_receive_woken_then_cancelled_natively_consumes_nothing() -> None:
    """asyncio's ``task.cancel()`` landing after a send woke the parked receive, before it ran:
    the receive raises ``CancelledError`` and the item is still there (wake-then-read)."""
    tx, rx = broadcast[int](4)
    with tx, rx:
        task = asyncio.get_running_loop().create_task(rx.receive())
        await wait_all_tasks_blocked()
        await tx.send(7)  # wakes the parked receive
        task.cancel()  # before it runs
        with pytest.raises(asyncio.CancelledError):
            await task
        assert rx.receive_nowait() == 7


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
async def test_a_send_woken_then_cancelled_natively_sent_nothing_and_hands_on_its_turn() -> None:
    """Under "block", the first parked send is woken when room frees, and cancelled by
    ``task.cancel()`` before it runs: it sent nothing and the next parked send goes instead."""
    tx, rx = broadcast[str](1, on_lag="block")
    with tx, rx:
        await tx.send("first")
        loop = asyncio.get_running_loop()
        cancelled = loop.create_task(tx.send("cancelled"))
        await wait_all_tasks_blocked()
        following = loop.create_task(tx.send("following"))
        await wait_all_tasks_blocked()
        assert rx.receive_nowait() == "first"  # wakes the first parked send
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await following
        assert _drain(rx) == ["following"]


def _stress_rng_action(rng: random.Random, scope: CancelScope) -> None:
    if rng.random() < 0.15:
        scope.cancel()  # pre-cancelled: the operation must do nothing at all


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("policy", POLICIES)
async def test_randomly_cancelled_operations_deliver_each_item_once_per_subscriber(
    policy: Any, seed: int
) -> None:
    """A producer sends 0..999 (retrying an item until its send is not cancelled) to three
    subscriptions that use ``receive`` and ``receive_many``; every operation runs in a cancel
    scope that is pre-cancelled at random or cancelled by a chaos task while parked. Then:

    - a send that was cancelled sent nothing (the producer's retry would otherwise show as a
      duplicate) and a send that returned was sent once;
    - each subscriber received every sent item at most once, in order; under "block" exactly
      once; under "error"/"drop", the items it missed plus those it received are exactly the
      items sent (nothing vanishes unaccounted for).
    """
    rng = random.Random(seed)
    total = 1000
    tx, first = broadcast[int](4, on_lag=policy)
    subscriptions = [first, tx.subscribe(), tx.subscribe()]
    received: list[list[int]] = [[] for _ in subscriptions]
    lagged = [0] * len(subscriptions)
    scopes: dict[int, CancelScope] = {}
    cancelled = [0]
    running = [len(subscriptions) + 1]

    async def attempt(key: int, op: Any) -> Any:
        with CancelScope() as scope:
            scopes[key] = scope
            _stress_rng_action(rng, scope)
            try:
                return await op()
            finally:
                del scopes[key]
        cancelled[0] += 1
        return None

    async def produce() -> None:
        with tx:
            for i in range(total):
                while True:
                    single = rng.random() < 0.7
                    with CancelScope() as scope:
                        scopes[-1] = scope
                        _stress_rng_action(rng, scope)
                        try:
                            if single:
                                await tx.send(i)
                            else:
                                await tx.send_many([i])
                        finally:
                            del scopes[-1]
                    if not scope.cancelled_caught:
                        break
                    cancelled[0] += 1
        running[0] -= 1

    async def consume(k: int) -> None:
        subscription = subscriptions[k]
        with subscription:
            while True:
                batch = rng.random() < 0.4
                try:
                    if batch:
                        got = await attempt(k, lambda: subscription.receive_many(3))
                        if got is not None:
                            received[k].extend(got)
                    else:
                        got = await attempt(k, subscription.receive)
                        if got is not None:
                            received[k].append(got)
                except Lagged as error:
                    lagged[k] += error.missed
                except EndOfStream:
                    break
            missed = subscription.statistics().missed
        assert missed == lagged[k] or policy != "error"
        lagged[k] = missed
        running[0] -= 1

    async def chaos() -> None:
        while running[0]:
            await anyio.lowlevel.checkpoint()
            if scopes and rng.random() < 0.3:
                rng.choice(list(scopes.values())).cancel()

    async with anyio.create_task_group() as tg:
        for k in range(len(subscriptions)):
            tg.start_soon(consume, k)
        tg.start_soon(chaos)
        tg.start_soon(produce)

    assert tx.statistics().total_sent == total
    assert cancelled[0] >= 50  # the run did exercise cancellation
    for k, got in enumerate(received):
        assert got == sorted(set(got)), f"subscriber {k}: duplicated or out of order"
        assert set(got) <= set(range(total))
        assert len(got) + lagged[k] == total, f"subscriber {k}: items vanished"
        if policy == "block":
            assert got == list(range(total))


# -- statistics ---------------------------------------------------------------------------------


async def test_statistics_describe_the_broadcast_from_either_side() -> None:
    tx, rx = broadcast[int](4, on_lag="drop")
    with tx, rx:
        await tx.send_many([1, 2])
        with tx.subscribe() as late:
            await tx.send(3)
            assert await rx.receive() == 1
            stats = tx.statistics()
            assert isinstance(stats, BroadcastStatistics)
            assert stats == BroadcastStatistics(
                capacity=4,
                on_lag="drop",
                current_buffer_used=2,  # rx still needs 2 and 3
                open_senders=1,
                subscribers=2,
                tasks_waiting_send=0,
                tasks_waiting_receive=0,
                total_sent=3,
                total_missed=0,
            )
            mine = rx.statistics()
            assert isinstance(mine, SubscriptionStatistics)
            assert (mine.pending, mine.received, mine.missed) == (2, 1, 0)
            assert mine.broadcast == stats
            assert late.statistics().pending == 1
        with pytest.raises(AttributeError):
            stats.total_sent = 0  # type: ignore[misc]  # frozen


if TYPE_CHECKING:

    async def broadcast_is_typed() -> None:
        """Checked by mypy, never run: ``broadcast[int](n)`` types both sides."""
        tx, rx = broadcast[int](8)
        await tx.send(1)
        got: int = await rx.receive()
        batch: list[int] = await rx.receive_many(4)
        wider: fearless.Receiver[float] = rx  # subscriptions are covariant
        more: Subscription[int] = tx.subscribe()
        twin: Subscription[int] = more.clone()
        as_anyio: ObjectSendStream[int] = tx
        del got, batch, wider, twin, as_anyio


async def test_block_policy_a_collected_slow_subscription_releases_the_sender() -> None:
    """A subscription garbage-collected while a sender waits for it can never read again: the
    sender is released, as if it had been closed (and the ResourceWarning says it was not)."""
    tx, rx = fearless.broadcast[int](2, on_lag="block")
    fast = tx.subscribe()
    with tx, fast:
        tx.send_nowait(0)
        tx.send_nowait(1)
        assert [fast.receive_nowait(), fast.receive_nowait()] == [0, 1]
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, 2)
            await wait_all_tasks_blocked()
            assert tx.statistics().tasks_waiting_send == 1
            with pytest.warns(ResourceWarning, match="Unclosed <Subscription"):
                del rx  # CPython collects it here, by reference count
        assert fast.receive_nowait() == 2
        assert tx.statistics().subscribers == 1


async def test_the_endpoints_repr_shows_their_state() -> None:
    """``repr`` says whether an endpoint is open, the policy, and for a subscription where it
    stands: pending items, an unreported lag, what it received and missed, whether a party is
    waiting in a receive on it; for the sender, what was sent and who waits."""
    tx, rx = broadcast[int](4, on_lag="drop")
    blocking = tx.subscribe(on_lag="block")
    assert repr(tx) == "<BroadcastSender capacity=4 on_lag='drop' open: sent 0, 2 subscriber(s)>"
    for i in range(4):
        tx.send_nowait(i)
    async with anyio.create_task_group() as tg:
        tg.start_soon(tx.send, 4)
        await wait_all_tasks_blocked()
        assert repr(tx) == (
            "<BroadcastSender capacity=4 on_lag='drop' open: sent 4, 2 subscriber(s), "
            "1 send(s) waiting>"
        )
        assert blocking.receive_nowait() == 0
    assert repr(rx) == (
        "<Subscription on_lag='drop' open: next #0 of 5 sent, lagging (1 lost, not yet "
        "reported), 4 pending; received 0, missed 0>"
    )
    assert rx.receive_nowait() == 1
    assert repr(rx) == (
        "<Subscription on_lag='drop' open: next #2 of 5 sent, 3 pending; received 1, missed 1>"
    )
    _drain(blocking)
    async with anyio.create_task_group() as tg:
        tg.start_soon(blocking.receive)
        await wait_all_tasks_blocked()
        assert repr(blocking) == (
            "<Subscription on_lag='block' open: next #5 of 5 sent, 0 pending; received 5, "
            "missed 0, waiting in a receive>"
        )
        tg.cancel_scope.cancel()
    blocking.close()
    assert repr(blocking) == "<Subscription on_lag='block' closed: received 5, missed 0>"
    rx.close()
    tx.close()
    assert repr(tx) == "<BroadcastSender capacity=4 on_lag='drop' closed: sent 5, 0 subscriber(s)>"
