"""A broadcast subscriber that keeps up loses nothing, under every policy, on every backend.

``fearless._channels._broadcast``'s docstring ("Keeping up", "Lagging", "Counting what was lost")
is the specification: while a party waits in a receive on a subscription, the sends that can wait
never overwrite an item it has not read; the lag policies (chosen per subscription) apply only to
subscriptions that fell behind doing something else; ``send_nowait`` never waits, so it does not
wait for them either; ``statistics().missed`` counts what ``Lagged`` reported, not on top of it.

Every async test runs on asyncio, uvloop and trio. Nothing here sleeps: a test waits for tasks to
park with ``wait_all_tasks_blocked``, and a "slow" subscriber is one that awaits something else
(scheduler turns) between receives.
"""

from __future__ import annotations

import random
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest
from anyio import CancelScope, EndOfStream, WouldBlock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fearless import Lagged, Subscription, broadcast
from fearless.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.anyio

T = TypeVar("T")

POLICIES = ["error", "drop", "block"]
# (capacity, batch): single sends through a small ring, and send_many batches through a large one,
# the two shapes in which a subscriber that did nothing but receive lost most items.
SHAPES = [
    pytest.param(16, 1, id="capacity16-send"),
    pytest.param(256, 64, id="capacity256-batch64"),
]
CONSUMERS = ["async-for", "receive", "receive_many"]


async def _consume(subscription: Subscription[T], how: str, got: list[T]) -> int:
    """Receive until the end of the stream (waiting in a receive whenever scheduled); returns the
    sum of the ``Lagged.missed`` it saw."""
    lagged = 0
    with subscription:
        while True:
            try:
                if how == "async-for":
                    async for item in subscription:
                        got.append(item)  # noqa: PERF401 - the point is the loop
                    return lagged
                if how == "receive":
                    got.append(await subscription.receive())
                else:
                    got.extend(await subscription.receive_many(7))
            except Lagged as lag:
                lagged += lag.missed
            except EndOfStream:
                return lagged


async def _produce(tx: Any, total: int, batch: int) -> None:
    async with tx:
        if batch == 1:
            for i in range(total):
                await tx.send(i)
        else:
            for start in range(0, total, batch):
                await tx.send_many(range(start, min(start + batch, total)))


# -- the guarantee ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", CONSUMERS)
@pytest.mark.parametrize(("capacity", "batch"), SHAPES)
@pytest.mark.parametrize("policy", POLICIES)
async def test_a_subscriber_that_keeps_up_receives_every_item_under_every_policy(
    policy: Any, capacity: int, batch: int, how: str
) -> None:
    """Three subscribers that do nothing but receive, and a producer sending 4096 items in a loop
    (it runs up to ``yield_every`` operations, each possibly a whole batch, before anyone else
    runs): each subscriber receives 100% of the items, in order, and none ever lagged, whatever
    the policy and however the backend orders the tasks a send woke."""
    total = 4096
    tx, first = broadcast[int](capacity, on_lag=policy)
    subscriptions = [first, tx.subscribe(), tx.subscribe()]
    received: list[list[int]] = [[] for _ in subscriptions]
    lagged = [0] * len(subscriptions)

    async def consume(k: int) -> None:
        lagged[k] = await _consume(subscriptions[k], how, received[k])

    async with anyio.create_task_group() as tg:
        for k in range(len(subscriptions)):
            tg.start_soon(consume, k)
        await wait_all_tasks_blocked()
        await _produce(tx, total, batch)
    assert received == [list(range(total))] * len(subscriptions)
    assert lagged == [0] * len(subscriptions)
    assert tx.statistics().total_missed == 0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    capacity=st.integers(1, 40),
    yield_every=st.integers(1, 64),
    batches=st.lists(st.integers(1, 90), min_size=1, max_size=30),
    policies=st.lists(st.sampled_from(POLICIES), min_size=1, max_size=4),
    how=st.sampled_from(CONSUMERS),
)
async def test_keeping_up_holds_for_any_capacity_budget_batch_and_policy_mix(
    capacity: int, yield_every: int, batches: list[int], policies: list[Any], how: str
) -> None:
    """Randomized: any ring size, any scheduling budget, any batch sizes (single sends for 1,
    ``send_many`` otherwise, including batches longer than the ring) and subscriptions each with
    its own policy: every subscriber that keeps up receives every item, in order."""
    tx, first = broadcast[int](capacity, on_lag=policies[0], yield_every=yield_every)
    subscriptions = [first] + [tx.subscribe(on_lag=policy) for policy in policies[1:]]
    received: list[list[int]] = [[] for _ in subscriptions]
    total = sum(batches)

    async def produce() -> None:
        async with tx:
            sent = 0
            for size in batches:
                if size == 1:
                    await tx.send(sent)
                else:
                    await tx.send_many(range(sent, sent + size))
                sent += size

    async def consume(k: int) -> None:
        await _consume(subscriptions[k], how, received[k])

    async with anyio.create_task_group() as tg:
        for k in range(len(subscriptions)):
            tg.start_soon(consume, k)
        await wait_all_tasks_blocked()
        tg.start_soon(produce)
    assert received == [list(range(total))] * len(subscriptions)
    assert tx.statistics().total_missed == 0


@pytest.mark.parametrize("fast_policy", POLICIES)
@pytest.mark.parametrize("slow_policy", ["error", "drop"])
async def test_a_slow_subscriber_lags_by_its_policy_while_a_fast_one_loses_nothing(
    slow_policy: Any, fast_policy: Any
) -> None:
    """On one broadcast (ring of 4, 300 items), a fast subscriber waiting in receive and a slow
    one that spends five scheduler turns on every item: the fast one receives every item; the
    slow one falls behind and lags by its own policy (``Lagged`` under "error", silently under
    "drop"), and what it received plus what it missed is every item sent, in order."""
    total = 300
    tx, fast = broadcast[int](4, on_lag=fast_policy)
    slow = tx.subscribe(on_lag=slow_policy)
    fast_got: list[int] = []
    slow_got: list[int] = []
    told = [0]

    async def slow_reader() -> None:
        with slow:
            while True:
                try:
                    async for item in slow:
                        slow_got.append(item)
                        for _ in range(5):
                            await anyio.lowlevel.checkpoint()  # busy elsewhere: not keeping up
                    return
                except Lagged as lag:
                    told[0] += lag.missed

    async def fast_reader() -> None:
        await _consume(fast, "async-for", fast_got)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fast_reader)
        tg.start_soon(slow_reader)
        await wait_all_tasks_blocked()
        await _produce(tx, total, 1)
    stats = slow.statistics()
    assert fast_got == list(range(total))
    assert stats.missed > 0
    assert slow_got == sorted(set(slow_got))
    assert len(slow_got) + stats.missed == total
    assert slow_got[-4:] == list(range(total - 4, total))  # it drained what was kept
    assert told[0] == (stats.missed if slow_policy == "error" else 0)
    assert tx.statistics().total_missed == stats.missed


async def test_a_subscriber_that_stops_waiting_stops_holding_the_sender() -> None:
    """A lossy subscription holds the sender back only while a party waits in a receive on it: a
    receive cancelled while parked lets go, and the sender overwrites what it has not read."""
    tx, rx = broadcast[int](2, on_lag="error")
    with tx, rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rx.receive)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        for i in range(5):
            await tx.send(i)  # nobody waits in a receive: none of these waits
        with pytest.raises(Lagged) as info:
            rx.receive_nowait()
        assert info.value.missed == 3
        assert [rx.receive_nowait(), rx.receive_nowait()] == [3, 4]


async def test_a_send_waits_for_a_keeping_up_subscriber_and_then_goes_on() -> None:
    """The send that would overwrite an item a parked (woken, not yet run) subscriber has not
    read parks instead of overwriting it, and completes once the subscriber has read: when the
    subscriber first runs, the third send into a ring of two is waiting."""
    tx, rx = broadcast[int](2, on_lag="drop")
    got: list[int] = []
    waiting_sends: list[int] = []

    async def consume() -> None:
        with rx:
            async for item in rx:
                got.append(item)
                waiting_sends.append(tx.statistics().tasks_waiting_send)

    async def produce() -> None:
        async with tx:
            for i in range(3):
                await tx.send(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await wait_all_tasks_blocked()
        tg.start_soon(produce)
    assert got == [0, 1, 2]
    assert waiting_sends[0] == 1
    assert rx.statistics().missed == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("policy", POLICIES)
async def test_cancelled_waiting_sends_send_nothing_or_a_prefix_and_keeping_up_loses_nothing(
    policy: Any, seed: int
) -> None:
    """A producer whose ``send``/``send_many`` calls a chaos task cancels at random (often while
    they wait for the subscribers that keep up), and two subscribers that never stop receiving:

    - a cancelled ``send`` sent nothing: the producer sends the same item again, and nobody
      receives it twice;
    - a cancelled ``send_many`` sent exactly a prefix of its batch (each batch is told apart);
    - each subscriber receives every item that was sent, once and in order, under every policy
      (it kept up throughout), and ``total_sent`` counts exactly those items.
    """
    rng = random.Random(seed)
    tx, first = broadcast[tuple[int, int]](4, on_lag=policy)
    subscriptions = [first, tx.subscribe()]
    received: list[list[tuple[int, int]]] = [[] for _ in subscriptions]
    scope_box: list[CancelScope | None] = [None]
    cancelled = [0]
    batches: dict[int, int] = {}  # batch id -> its size (single sends have size 1)
    done = [False]

    async def produce() -> None:
        async with tx:
            for batch in range(400):
                size = 1 if rng.random() < 0.5 else rng.randint(2, 9)
                batches[batch] = size
                items = [(batch, j) for j in range(size)]
                while True:
                    with CancelScope() as scope:
                        scope_box[0] = scope
                        if size == 1:
                            await tx.send(items[0])
                        else:
                            await tx.send_many(items)
                    scope_box[0] = None
                    if not scope.cancelled_caught:
                        break
                    cancelled[0] += 1
                    if size > 1:
                        break  # a batch is not retried: what went in is a prefix
        done[0] = True

    async def chaos() -> None:
        while not done[0]:
            await anyio.lowlevel.checkpoint()
            scope = scope_box[0]
            if scope is not None and rng.random() < 0.3:
                scope.cancel()

    async def consume(k: int) -> None:
        await _consume(subscriptions[k], "async-for", received[k])

    async with anyio.create_task_group() as tg:
        for k in range(len(subscriptions)):
            tg.start_soon(consume, k)
        await wait_all_tasks_blocked()
        tg.start_soon(chaos)
        tg.start_soon(produce)
    assert cancelled[0] >= 20  # the run did exercise cancellation
    first_got = received[0]
    assert received[1] == first_got
    assert tx.statistics().total_sent == len(first_got)
    assert tx.statistics().total_missed == 0
    assert len(set(first_got)) == len(first_got)  # no item twice: a cancelled send sent nothing
    seen: dict[int, list[int]] = {}
    for batch, j in first_got:
        seen.setdefault(batch, []).append(j)
    assert [batch for batch, _ in first_got] == sorted(batch for batch, _ in first_got)
    for batch, size in batches.items():
        js = seen.get(batch, [])
        assert js == list(range(len(js))), f"batch {batch}: not a prefix, in order"
        if size == 1:
            assert js == [0], f"single send {batch} was retried until it went in"


# -- per-subscription lag policies --------------------------------------------------------------


async def test_subscribe_and_clone_choose_their_own_policy_or_inherit_one() -> None:
    """``subscribe()`` defaults to the broadcast's policy, ``clone()`` to the original's."""
    tx, first = broadcast[int](4, on_lag="drop")
    with tx, first, tx.subscribe() as plain, tx.subscribe(on_lag="block") as blocking:
        with blocking.clone() as twin, blocking.clone(on_lag="error") as erring:
            policies = [s.statistics().on_lag for s in (first, plain, blocking, twin, erring)]
            assert policies == ["drop", "drop", "block", "block", "error"]
        assert tx.statistics().on_lag == "drop"  # the broadcast's own, for later subscribe()


@pytest.mark.parametrize("bad", ["panic", "Block", "", 0])
async def test_a_bad_per_subscription_policy_raises_value_error_naming_it(bad: Any) -> None:
    tx, rx = broadcast[int](4)
    with tx, rx:
        with pytest.raises(ValueError, match="on_lag") as info:
            tx.subscribe(on_lag=bad)
        assert repr(bad) in str(info.value)
        with pytest.raises(ValueError, match="on_lag") as info:
            rx.clone(on_lag=bad)
        assert repr(bad) in str(info.value)
        assert tx.statistics().subscribers == 1


async def test_a_block_counter_and_a_drop_alerter_share_one_broadcast() -> None:
    """The lossless counter holds the sender back; the lossy alerter does not: with neither read,
    ``send_nowait`` refuses the item that would overwrite one the counter has not read, and as
    the counter reads, the sender goes on while the alerter silently loses the oldest items."""
    tx, alerter = broadcast[int](3, on_lag="drop")
    counter = tx.subscribe(on_lag="block")
    with tx, alerter, counter:
        for i in range(3):
            tx.send_nowait(i)
        with pytest.raises(WouldBlock):
            tx.send_nowait(3)  # the counter has not read 0
        assert counter.receive_nowait() == 0
        tx.send_nowait(3)  # overwrites 0, which the alerter never read: it does not hold us back
        assert [counter.receive_nowait() for _ in range(3)] == [1, 2, 3]
        assert alerter.receive_nowait() == 1  # 0 was lost, silently
        assert alerter.statistics().missed == 1
        assert counter.statistics().missed == 0


async def test_a_block_counter_counts_everything_while_a_lossy_alerter_falls_behind() -> None:
    """In tasks: a "block" counter reads every item; a "drop" alerter that is slow loses items;
    the sender waits for the counter only, and everything sent is counted."""
    total = 500
    tx, counter = broadcast[int](8, on_lag="block")
    alerter = tx.subscribe(on_lag="drop")
    counted: list[int] = []
    alerts: list[int] = []

    async def count() -> None:
        await _consume(counter, "async-for", counted)

    async def alert() -> None:
        with alerter:
            async for item in alerter:
                alerts.append(item)
                for _ in range(10):
                    await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(count)
        tg.start_soon(alert)
        await wait_all_tasks_blocked()
        await _produce(tx, total, 1)
    assert counted == list(range(total))
    assert 0 < len(alerts) < total
    assert alerts == sorted(set(alerts))
    assert len(alerts) + alerter.statistics().missed == total


async def test_a_block_clone_of_a_lagging_subscription_starts_at_the_oldest_kept_item() -> None:
    """A "block" subscription never lags, so cloning one that lags gives a clone that starts at
    the oldest item still kept; a lossy clone inherits the lag and is told of it."""
    tx, rx = broadcast[int](2, on_lag="error")
    with tx, rx:
        for i in range(5):
            tx.send_nowait(i)
        with rx.clone(on_lag="block") as blocking, rx.clone() as lossy:
            assert blocking.receive_nowait() == 3
            with pytest.raises(Lagged) as info:
                lossy.receive_nowait()
            assert info.value.missed == 3
            assert blocking.statistics().missed == 0


async def test_send_nowait_does_not_wait_for_a_keeping_up_subscriber_which_then_lags() -> None:
    """``send_nowait`` cannot wait: a subscriber parked in receive (keeping up) is overrun by
    ten ``send_nowait`` calls into a ring of four, and lags by its policy when it runs."""
    tx, rx = broadcast[int](4, on_lag="error")
    outcome: list[object] = []

    async def receive() -> None:
        try:
            outcome.append(await rx.receive())
        except Lagged as lag:
            outcome.append(lag)

    with tx, rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive)
            await wait_all_tasks_blocked()
            for i in range(10):
                tx.send_nowait(i)  # never WouldBlock without a "block" subscription
        [lag] = outcome
        assert isinstance(lag, Lagged)
        assert lag.missed == 6
        assert rx.receive_nowait() == 6


# -- counting what was lost ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["error", "drop"])
async def test_missed_counts_what_lagged_reported_once_not_on_top_of_it(policy: Any) -> None:
    """``statistics().missed`` is every item lost and found out about: under "error" it equals
    the sum of the ``Lagged.missed`` raised (a consumer that adds the two counts twice); under
    "drop" it counts the same items, silently. Items overwritten and not yet found out about are
    in neither ``missed`` nor ``pending``; ``total_missed`` sums ``missed`` over every
    subscription, closed ones too."""
    tx, rx = broadcast[int](3, on_lag=policy)
    reported = 0
    with tx:
        for round_ in range(4):
            for i in range(7):
                tx.send_nowait(round_ * 7 + i)  # 4 of every 7 are overwritten unread
            before = rx.statistics()
            assert before.missed == 4 * round_  # the 4 just lost are not counted yet,
            assert before.pending == 3  # nor pending
            assert before.received + before.missed + before.pending + 4 == 7 * (round_ + 1)
            try:
                rx.receive_nowait()
            except Lagged as lag:
                reported += lag.missed
            while True:
                try:
                    rx.receive_nowait()
                except WouldBlock:
                    break
        stats = rx.statistics()
        assert stats.missed == 16
        assert stats.received == 12
        assert reported == (16 if policy == "error" else 0)
        assert stats.missed + stats.received == tx.statistics().total_sent
        rx.close()
        assert tx.statistics().total_missed == 16  # a closed subscription still counts
