"""Select: exactly one branch commits; ready branches are picked fairly; nothing else is touched."""

from __future__ import annotations

import math
import random
from collections import Counter

import anyio
import pytest
from anyio import ClosedResourceError, EndOfStream, WouldBlock

import fearless
from fearless import Recv, Send, SendBrokenError, channel, select, select_nowait
from fearless.testing import wait_all_tasks_blocked

from .test_channel import counting_turns

pytestmark = pytest.mark.anyio


async def test_a_ready_receive_branch_wins_and_holds_the_item() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](1), channel[str](1)
    with tx1, rx1, tx2, rx2:
        tx2.send_nowait("ready")
        numbers, words = Recv(rx1), Recv(rx2)
        won = await select(numbers, words)
        assert won is words
        text: str = words.value
        assert text == "ready"
        with pytest.raises(RuntimeError, match="did not win"):
            _ = numbers.value


async def test_exactly_one_of_several_ready_branches_commits() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](1), channel[int](1)
    with tx1, rx1, tx2, rx2:
        tx1.send_nowait(1)
        tx2.send_nowait(2)
        a, b = Recv(rx1), Recv(rx2)
        won = await select(a, b)
        other = rx2 if won is a else rx1
        assert other.statistics().current_buffer_used == 1  # untouched
        assert tx1.statistics().total_received + tx2.statistics().total_received == 1


async def test_ready_branches_win_a_fair_share() -> None:
    """Among always-ready branches each wins about a third of 3000 selects (sd ~26 wins)."""
    pairs = [channel[int](math.inf) for _ in range(3)]
    try:
        branches = [Recv(rx) for _, rx in pairs]
        for tx, _ in pairs:
            for i in range(3000):
                tx.send_nowait(i)
        wins: Counter[int] = Counter()
        for _ in range(3000):
            won = select_nowait(*branches)
            wins[branches.index(won)] += 1  # type: ignore[arg-type]
        assert all(800 <= wins[i] <= 1200 for i in range(3)), wins
    finally:
        for tx, rx in pairs:
            tx.close()
            rx.close()


async def test_a_biased_select_picks_the_first_ready_branch() -> None:
    pairs = [channel[int](math.inf) for _ in range(3)]
    try:
        for tx, _ in pairs[1:]:
            tx.send_nowait(7)
            tx.send_nowait(8)
        branches = [Recv(rx) for _, rx in pairs]
        assert await select(*branches, biased=True) is branches[1]
        assert await select(*branches, biased=True) is branches[1]
        assert await select(*branches, biased=True) is branches[2]
    finally:
        for tx, rx in pairs:
            tx.close()
            rx.close()


async def test_a_parked_select_is_won_by_the_first_channel_to_deliver() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](0), channel[int](0)
    with tx1, rx1, tx2, rx2:
        a, b = Recv(rx1), Recv(rx2)
        winners: list[fearless.Receiver[int]] = []

        async def wait() -> None:
            won = await select(a, b)
            winners.append(rx2 if won is b else rx1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await wait_all_tasks_blocked()
            tx2.send_nowait(5)  # handed to the select
            with pytest.raises(WouldBlock):
                tx1.send_nowait(6)  # the select no longer waits on the other channel
        assert winners == [rx2]
        assert b.value == 5
        assert rx1.statistics().tasks_waiting_receive == 0


async def test_a_send_branch_commits_when_a_receiver_takes_its_item() -> None:
    (tx1, rx1), (tx2, rx2) = channel[str](0), channel[str](1)
    with tx1, rx1, tx2, rx2:
        tx2.send_nowait("full")
        give, take = Send(tx1, "offered"), Send(tx2, "waiting for room")
        async with anyio.create_task_group() as tg:
            won: list[object] = []

            async def wait() -> None:
                won.append(await select(give, take))

            tg.start_soon(wait)
            await wait_all_tasks_blocked()
            assert rx1.receive_nowait() == "offered"
        assert won == [give]
        assert give.value is None
        assert rx2.receive_nowait() == "full"  # the other send never went in
        with pytest.raises(WouldBlock):
            rx2.receive_nowait()


async def test_a_receive_branch_on_an_ended_channel_reports_the_end() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](0), channel[int](0)
    with rx1, tx2, rx2:
        tx1.close()
        live, dead = Recv(rx2), Recv(rx1)
        won = await select(live, dead)
        assert won is dead
        assert dead.ended
        with pytest.raises(EndOfStream):
            _ = dead.value


async def test_a_parked_receive_branch_wakes_when_its_channel_ends() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](0), channel[int](0)
    with rx1, tx2, rx2:
        a, b = Recv(rx1), Recv(rx2)
        async with anyio.create_task_group() as tg:
            won: list[object] = []

            async def wait() -> None:
                won.append(await select(a, b))

            tg.start_soon(wait)
            await wait_all_tasks_blocked()
            tx1.close()
        assert won == [a]
        assert a.ended


async def test_a_send_branch_to_a_channel_without_receivers_reports_broken() -> None:
    tx, rx = channel[int](0)
    rx.close()
    with tx:
        branch = Send(tx, 9)
        assert await select(branch) is branch
        with pytest.raises(SendBrokenError) as info:
            _ = branch.value
        assert info.value.item == 9


async def test_a_branch_on_a_closed_endpoint_reports_closed() -> None:
    tx, rx = channel[int](1)
    with tx:
        rx.close()
        branch = Recv(rx)
        assert select_nowait(branch) is branch
        with pytest.raises(ClosedResourceError):
            _ = branch.value


async def test_select_nowait_with_nothing_ready_does_nothing() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](0), channel[int](0)
    with tx1, rx1, tx2, rx2, pytest.raises(WouldBlock):
        select_nowait(Recv(rx1), Send(tx2, 1))
    assert tx2.statistics().total_sent == 0


async def test_a_cancelled_select_commits_nothing() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](1), channel[int](0)
    with tx1, rx1, tx2, rx2:
        async with anyio.create_task_group() as tg:
            tg.start_soon(select, Recv(rx1), Send(tx2, 5))
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert rx1.statistics().tasks_waiting_receive == 0
        assert tx2.statistics().tasks_waiting_send == 0
        tx1.send_nowait(1)  # buffered, not handed to the cancelled select
        assert rx1.statistics().current_buffer_used == 1
        with pytest.raises(WouldBlock):
            rx2.receive_nowait()  # the select's item was never offered


async def test_a_timeout_is_a_cancel_scope() -> None:
    tx, rx = channel[int](0)
    with tx, rx:
        with anyio.move_on_after(0.01) as scope:
            await select(Recv(rx))
        assert scope.cancelled_caught


async def test_a_select_in_a_cancelled_scope_does_nothing_even_if_ready() -> None:
    tx, rx = channel[int](1)
    with tx, rx:
        tx.send_nowait(1)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await select(Recv(rx))
        assert scope.cancelled_caught
        assert rx.receive_nowait() == 1


def test_bad_branches_are_refused() -> None:
    tx, rx = channel[int](1)
    with tx, rx:
        branch = Recv(rx)
        with pytest.raises(ValueError, match="twice"):
            select_nowait(branch, branch)
        with pytest.raises(ValueError, match="at least one"):
            select_nowait()
        with pytest.raises(TypeError, match="Recv and Send"):
            select_nowait(rx)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="channel receiver"):
            Recv(object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="channel sender"):
            Send(object(), 1)  # type: ignore[arg-type]


async def test_a_busy_select_loop_still_yields() -> None:
    """A select that always finds a ready branch spends its endpoints' budgets and yields."""
    tx, rx = channel[int](math.inf, yield_every=4)
    with tx, rx:
        for i in range(40):
            tx.send_nowait(i)
        branch = Recv(rx)
        async with counting_turns() as turns:
            before = turns()
            for _ in range(40):
                await select(branch)
            assert turns() - before >= 9


@pytest.mark.parametrize("seed", [1, 2])
async def test_many_tasks_selecting_over_shared_channels_deliver_each_item_once(
    seed: int,
) -> None:
    """8 consumers select over 3 shared input channels (and randomly get cancelled) while 3
    producers select between sending to a shared output and a side channel: every item is
    received exactly once."""
    rng = random.Random(seed)
    inputs = [channel[tuple[int, int]](rng.choice([0, 1, 4])) for _ in range(3)]
    received: list[tuple[int, int]] = []
    per_producer = 300

    async def produce(n: int, tx: fearless.Sender[tuple[int, int]]) -> None:
        async with tx:
            for i in range(per_producer):
                await tx.send((n, i))

    async def consume(branches: list[Recv[tuple[int, int]]]) -> None:
        try:
            while True:
                with anyio.move_on_after(rng.choice([None, 0, 1e-5])):
                    won = await select(*branches)
                    if isinstance(won, Recv):
                        if won.ended:
                            branches.remove(won)
                            won.receiver.close()
                            if not branches:
                                return
                            continue
                        received.append(won.value)
                if rng.random() < 0.2:
                    await anyio.lowlevel.checkpoint()
        finally:
            for branch in branches:
                branch.receiver.close()

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(consume, [Recv(rx.clone()) for _, rx in inputs])
        for n, (tx, rx) in enumerate(inputs):
            rx.close()  # the consumers hold clones
            tg.start_soon(produce, n, tx)
    assert Counter(received) == Counter((n, i) for n in range(3) for i in range(per_producer))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_select_cancelled_natively_after_winning_gives_the_item_back() -> None:
    import asyncio

    (tx1, rx1), (tx2, rx2) = channel[int](0), channel[int](0)
    with tx1, rx1, tx2, rx2:
        task = asyncio.create_task(select(Recv(rx1), Recv(rx2)))
        await wait_all_tasks_blocked()
        tx1.send_nowait(3)  # the select wins ...
        task.cancel()  # ... and is cancelled before it runs
        await asyncio.wait([task])
        assert task.cancelled()
        assert rx1.receive_nowait() == 3  # given back, not lost


async def test_a_branch_waiting_in_one_select_cannot_join_another() -> None:
    """A branch belongs to one task: sharing one between two selects would mix their outcomes."""
    tx, rx = channel[int](0)
    with tx, rx:
        shared = Recv(rx)
        async with anyio.create_task_group() as tg:
            tg.start_soon(select, shared)
            await wait_all_tasks_blocked()
            with pytest.raises(RuntimeError, match="already in a select"):
                await select(shared)
            tx.send_nowait(1)
        assert shared.value == 1
