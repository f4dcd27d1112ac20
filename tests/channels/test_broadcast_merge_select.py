"""Broadcast subscriptions in ``merge`` and ``select``, with no pump task in between.

The specification is ``fearless._channels._broadcast``'s docstring ("Merge and select") and the
module docstrings of ``_merge`` and ``_select``: a merge or a select parks on a subscription as a
receive does (woken with no item, it reads the ring once it runs), keeps it up while it waits,
lets ``Lagged`` out of the merge's ``receive`` and out of the ``Recv`` branch's ``value``, and a
cancelled merge receive or select took nothing.

Every async test runs on asyncio, uvloop and trio; nothing sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from anyio import CancelScope, ClosedResourceError, EndOfStream, WouldBlock

import fearless
from fearless import (
    Lagged,
    MergeStatistics,
    Recv,
    SubscriptionStatistics,
    broadcast,
    channel,
    merge,
    select,
    select_nowait,
)
from fearless.testing import wait_all_tasks_blocked
from tests.conftest import BACKENDS

pytestmark = pytest.mark.anyio

POLICIES = ["error", "drop", "block"]
ASYNCIO_BACKENDS = [param for param in BACKENDS if param.id != "trio"]


async def _keep_sending(consume: Any, tx: Any, total: int, idle: Any) -> None:
    """Start ``consume`` and let it park, then send ``0 .. total-1`` in a loop; then close ``tx``
    and ``idle`` (the sender of the idle channel ``consume`` also waits on)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await wait_all_tasks_blocked()
        async with tx:
            for i in range(total):
                await tx.send(i)
        idle.close()


# -- merge --------------------------------------------------------------------------------------


async def test_merge_reads_channels_and_subscriptions_as_one_in_per_input_order() -> None:
    """A channel and subscriptions of two broadcasts, each fed by its own producer: the merge
    yields every item of every input once, each input's in order."""
    ch_tx, ch_rx = channel[tuple[str, int]](4)
    b_tx, b_sub = broadcast[tuple[str, int]](4, on_lag="block")
    d_tx, d_sub = broadcast[tuple[str, int]](4, on_lag="error")
    got: list[tuple[str, int]] = []

    async def produce(name: str, tx: Any) -> None:
        async with tx:
            for i in range(200):
                await tx.send((name, i))

    async with anyio.create_task_group() as tg:
        for name, tx in (("c", ch_tx), ("b", b_tx), ("d", d_tx)):
            tg.start_soon(produce, name, tx)
        async with merge(ch_rx, b_sub, d_sub) as merged:
            async for item in merged:
                got.append(item)  # noqa: PERF401 - the point is the loop
    for name in "cbd":
        assert [i for n, i in got if n == name] == list(range(200)), name


@pytest.mark.parametrize("policy", POLICIES)
async def test_a_merge_waiting_on_a_subscription_keeps_it_up_so_nothing_is_lost(
    policy: Any,
) -> None:
    """A merge of an idle channel and a subscription (ring of 16), consumed by a task that does
    nothing but receive from the merge, against a producer sending 2048 items in a loop: the
    merge receives every item under every policy (it keeps the subscription up while parked on
    it, and while it yields inside its receive)."""
    total = 2048
    idle_tx, idle_rx = channel[int](1)
    tx, sub = broadcast[int](16, on_lag=policy)
    got: list[int] = []

    async def consume() -> None:
        async with merge(idle_rx, sub) as merged:
            async for item in merged:
                got.append(item)  # noqa: PERF401 - the point is the loop

    await _keep_sending(consume, tx, total, idle_tx)
    assert got == list(range(total))
    assert tx.statistics().total_missed == 0


async def test_lagged_comes_out_of_the_merge_and_its_next_receive_goes_on() -> None:
    """A subscription that lagged while nobody read the merge: the merge's receive raises its
    ``Lagged`` (exact count), having moved it on; the next receive returns the oldest kept item."""
    tx, sub = broadcast[int](4, on_lag="error")
    other_tx, other_rx = channel[int](4)
    with tx, other_tx, merge(sub, other_rx) as merged:
        for i in range(10):
            tx.send_nowait(i)
        with pytest.raises(Lagged) as info:
            await merged.receive()
        assert info.value.missed == 6
        assert await merged.receive() == 6
        assert merged.receive_nowait() == 7


async def test_receive_many_stops_its_batch_before_a_lagging_subscription() -> None:
    """Once ``receive_many`` has an item, it does not take a ``Lagged`` out of a subscription it
    meets while filling the batch (that would lose either the batch or the report): it returns
    what it has, and the merge's next receive reports the lag."""
    ch_tx, ch_rx = channel[str](4)
    tx, sub = broadcast[str](2, on_lag="error")
    with ch_tx, tx, merge(ch_rx, sub) as merged:
        ch_tx.send_nowait("first")
        for item in "abcde":
            tx.send_nowait(item)  # a, b and c are overwritten unread
        assert await merged.receive_many(10) == ["first"]
        with pytest.raises(Lagged) as info:
            await merged.receive()
        assert info.value.missed == 3
        assert await merged.receive_many(10) == ["d", "e"]


async def test_a_merge_ends_once_its_subscriptions_and_channels_have_ended() -> None:
    ch_tx, ch_rx = channel[int](1)
    tx, sub = broadcast[int](4)
    with merge(ch_rx, sub) as merged:
        tx.send_nowait(1)
        tx.close()
        ch_tx.close()
        assert await merged.receive() == 1
        with pytest.raises(EndOfStream):
            await merged.receive()
        assert merged.statistics().open_inputs == 0


async def test_a_parked_merge_is_woken_by_a_subscription_and_ended_by_its_sender() -> None:
    ch_tx, ch_rx = channel[int](1)
    tx, sub = broadcast[int](4)
    got: list[object] = []

    async def consume() -> None:
        with merge(ch_rx, sub) as merged:
            async for item in merged:
                got.append(item)  # noqa: PERF401 - seen as each arrives

    with ch_tx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await wait_all_tasks_blocked()
            assert tx.statistics().tasks_waiting_receive == 1
            await tx.send(7)
            await wait_all_tasks_blocked()
            assert got == [7]
            tx.close()  # the subscription ends; the merge waits on the channel
            await wait_all_tasks_blocked()
            ch_tx.close()
    assert got == [7]


async def test_a_cancelled_merge_receive_took_nothing_from_a_subscription() -> None:
    ch_tx, ch_rx = channel[int](1)
    tx, sub = broadcast[int](4, on_lag="drop")
    with ch_tx, tx, merge(ch_rx, sub) as merged:
        async with anyio.create_task_group() as tg:
            tg.start_soon(merged.receive)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert tx.statistics().tasks_waiting_receive == 0
        await tx.send(1)
        with CancelScope() as scope:
            scope.cancel()
            await merged.receive()
        assert await merged.receive() == 1


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
async def test_a_merge_woken_by_a_subscription_then_cancelled_natively_took_nothing() -> None:
    """``task.cancel()`` after the subscription woke the merge, before it ran: the receive raises
    ``CancelledError`` and the item is still there (it is read only once the merge runs)."""
    ch_tx, ch_rx = channel[int](1)
    tx, sub = broadcast[int](4)
    with ch_tx, tx, merge(ch_rx, sub) as merged:
        task = asyncio.get_running_loop().create_task(merged.receive())
        await wait_all_tasks_blocked()
        await tx.send(5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert merged.receive_nowait() == 5


async def test_a_merges_clone_gets_a_clone_of_the_subscription_which_sees_every_item() -> None:
    """Cloning a merge clones its inputs: a channel's items go to one merge or the other, but a
    subscription's clone is a subscriber of its own and sees every item again."""
    tx, sub = broadcast[int](4)
    with tx, merge(sub) as merged, merged.clone() as twin:
        tx.send_nowait(1)
        assert merged.receive_nowait() == 1
        assert twin.receive_nowait() == 1


async def test_merge_statistics_describe_subscription_inputs() -> None:
    ch_tx, ch_rx = channel[int](1)
    tx, sub = broadcast[int](4, on_lag="drop")
    with ch_tx, tx, merge(ch_rx, sub) as merged:
        tx.send_nowait(1)
        stats = merged.statistics()
        assert isinstance(stats, MergeStatistics)
        assert stats.open_inputs == 2
        assert isinstance(stats.inputs[1], SubscriptionStatistics)
        assert (stats.inputs[1].pending, stats.inputs[1].on_lag) == (1, "drop")


def test_merge_refuses_what_is_neither_a_channel_receiver_nor_a_subscription() -> None:
    with pytest.raises(TypeError, match="subscriptions") as info:
        merge("not a receiver")  # type: ignore[arg-type]
    assert "'not a receiver'" in str(info.value)


# -- select -------------------------------------------------------------------------------------


async def test_select_receives_from_a_subscription_that_has_an_item() -> None:
    tx, sub = broadcast[int](4)
    ch_tx, ch_rx = channel[int](1)
    with tx, sub, ch_tx, ch_rx:
        recv_sub, recv_ch = Recv(sub), Recv(ch_rx)
        with pytest.raises(WouldBlock):
            select_nowait(recv_sub, recv_ch)
        tx.send_nowait(3)
        assert await select(recv_ch, recv_sub) is recv_sub
        assert recv_sub.value == 3
        assert isinstance(recv_sub, Recv)
        assert recv_sub.receiver is sub


async def test_a_parked_select_is_woken_by_a_subscription_and_commits_only_that() -> None:
    """A select parked on a channel and a subscription, woken by a send to the broadcast: it
    returns the subscription's branch with the item, and the channel is left untouched."""
    tx, sub = broadcast[int](4)
    ch_tx, ch_rx = channel[int](0)
    recv_sub, recv_ch = Recv(sub), Recv(ch_rx)
    won: list[Any] = []

    async def choose() -> None:
        won.append(await select(recv_ch, recv_sub))

    with tx, sub, ch_tx, ch_rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(choose)
            await wait_all_tasks_blocked()
            await tx.send(9)
        assert won == [recv_sub]
        assert recv_sub.value == 9
        assert ch_rx.statistics().tasks_waiting_receive == 0
        assert sub.statistics().pending == 0


async def test_a_lagging_subscription_wins_the_select_and_its_value_raises_lagged() -> None:
    tx, sub = broadcast[int](2, on_lag="error")
    ch_tx, ch_rx = channel[int](1)
    with tx, sub, ch_tx, ch_rx:
        for i in range(5):
            tx.send_nowait(i)
        recv_sub = Recv(sub)
        assert await select(recv_sub, Recv(ch_rx)) is recv_sub
        with pytest.raises(Lagged) as info:
            _ = recv_sub.value
        assert info.value.missed == 3
        assert await select(recv_sub) is recv_sub
        assert recv_sub.value == 3  # it had moved on: the oldest kept item


async def test_a_subscription_branch_reports_its_end_and_its_closing() -> None:
    tx, sub = broadcast[int](2)
    with sub:
        tx.close()
        branch = Recv(sub)
        assert select_nowait(branch) is branch
        assert branch.ended
        with pytest.raises(EndOfStream):
            _ = branch.value
    branch = Recv(sub)
    assert select_nowait(branch) is branch
    with pytest.raises(ClosedResourceError):
        _ = branch.value


async def test_a_cancelled_select_on_a_subscription_committed_nothing() -> None:
    tx, sub = broadcast[int](4, on_lag="drop")
    ch_tx, ch_rx = channel[int](0)
    with tx, sub, ch_tx, ch_rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(select, Recv(sub), Recv(ch_rx))
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert tx.statistics().tasks_waiting_receive == 0
        await tx.send(4)
        assert sub.receive_nowait() == 4


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
async def test_a_select_woken_by_a_subscription_then_cancelled_natively_took_nothing() -> None:
    tx, sub = broadcast[int](4)
    ch_tx, ch_rx = channel[int](0)
    with tx, sub, ch_tx, ch_rx:
        task = asyncio.get_running_loop().create_task(select(Recv(sub), Recv(ch_rx)))
        await wait_all_tasks_blocked()
        await tx.send(8)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sub.receive_nowait() == 8


@pytest.mark.parametrize("policy", POLICIES)
async def test_a_select_loop_on_a_subscription_keeps_it_up_so_nothing_is_lost(
    policy: Any,
) -> None:
    """A task looping on ``select(Recv(subscription), Recv(idle channel))`` against a producer
    sending 2048 items through a ring of 16: it receives every item under every policy."""
    total = 2048
    tx, sub = broadcast[int](16, on_lag=policy)
    idle_tx, idle_rx = channel[int](0)
    recv_sub, recv_idle = Recv(sub), Recv(idle_rx)
    got: list[int] = []

    async def consume() -> None:
        while True:
            if await select(recv_sub, recv_idle) is recv_idle:
                continue  # the idle channel ended (after the broadcast's sender closed)
            if recv_sub.ended:
                return
            got.append(recv_sub.value)

    with sub, idle_rx:
        await _keep_sending(consume, tx, total, idle_tx)
    assert got == list(range(total))


async def test_tasks_sharing_a_subscription_through_selects_each_get_an_item_once() -> None:
    """Two tasks select on one subscription (sharing its position): a select woken for an item
    another task took first waits again, having committed nothing, so every item is received
    exactly once, by one of them."""
    total = 500
    tx, sub = broadcast[int](8, on_lag="block")
    got: list[list[int]] = [[], []]

    async def consume(k: int) -> None:
        branch = Recv(sub)
        while True:
            await select(branch)
            if branch.ended:
                return
            got[k].append(branch.value)

    with sub:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, 0)
            tg.start_soon(consume, 1)
            await wait_all_tasks_blocked()
            async with tx:
                for i in range(total):
                    await tx.send(i)
    assert sorted(got[0] + got[1]) == list(range(total))
    assert got[0] == sorted(got[0])
    assert got[1] == sorted(got[1])


def test_recv_refuses_what_is_neither_a_channel_receiver_nor_a_subscription() -> None:
    with pytest.raises(TypeError, match="subscription") as info:
        Recv(42)  # type: ignore[arg-type]
    assert "42" in str(info.value)


def test_a_recv_branch_on_a_subscription_is_typed_by_its_item_type() -> None:
    tx, sub = broadcast[int](2)
    with tx, sub:
        branch: Recv[int] = Recv(sub)
        selected: fearless.Branch = branch
        assert selected is branch
