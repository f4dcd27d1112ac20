"""Fan-in: ``merge`` reads several channels as one, without losing or duplicating an item."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest
from anyio import CancelScope, ClosedResourceError, EndOfStream, WouldBlock

import fearless
from fearless import channel, merge
from fearless.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


async def test_merge_yields_every_item_of_every_input_in_per_input_order() -> None:
    pairs = [channel[tuple[int, int]](4) for _ in range(5)]
    received: list[tuple[int, int]] = []

    async def produce(n: int, tx: fearless.Sender[tuple[int, int]]) -> None:
        async with tx:
            for i in range(100):
                await tx.send((n, i))

    async with anyio.create_task_group() as tg:
        for n, (tx, _) in enumerate(pairs):
            tg.start_soon(produce, n, tx)
        async with merge(*(rx for _, rx in pairs)) as merged:
            received.extend([item async for item in merged])

    assert Counter(received) == Counter((n, i) for n in range(5) for i in range(100))
    for n in range(5):
        assert [i for m, i in received if m == n] == list(range(100))


async def test_merge_ends_only_when_every_input_has_ended() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](1), channel[int](1)
    with merge(rx1, rx2) as merged, tx2:
        tx1.close()
        with pytest.raises(WouldBlock):
            merged.receive_nowait()
        tx2.send_nowait(5)
        tx2.close()
        assert await merged.receive() == 5
        with pytest.raises(EndOfStream):
            await merged.receive()


async def test_a_parked_merge_wakes_for_whichever_input_sends_first() -> None:
    (tx1, rx1), (tx2, rx2) = channel[str](0), channel[str](0)
    got: list[str] = []

    async def consume(merged: fearless.Receiver[str]) -> None:
        got.append(await merged.receive())

    with tx1, tx2, merge(rx1, rx2) as merged:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, merged)
            await wait_all_tasks_blocked()
            tx2.send_nowait("second input")
            # The merge took one item; the other input's offer is refused, not swallowed.
            with pytest.raises(WouldBlock):
                tx1.send_nowait("nobody waits here now")
        assert got == ["second input"]
        assert rx1.statistics().tasks_waiting_receive == 0
        assert rx2.statistics().tasks_waiting_receive == 0


async def test_a_parked_merge_wakes_with_end_of_stream_when_the_last_input_ends() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](0), channel[int](0)
    with merge(rx1, rx2) as merged:
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                with pytest.raises(EndOfStream):
                    await merged.receive()

            tg.start_soon(consume)
            await wait_all_tasks_blocked()
            tx1.close()
            await wait_all_tasks_blocked()
            tx2.close()


async def test_a_cancelled_merge_receive_takes_nothing_from_any_input() -> None:
    pairs = [channel[int](2) for _ in range(3)]
    with merge(*(rx for _, rx in pairs)) as merged:
        async with anyio.create_task_group() as tg:
            tg.start_soon(merged.receive)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        for i, (tx, rx) in enumerate(pairs):
            assert rx.statistics().tasks_waiting_receive == 0
            tx.send_nowait(i)  # buffered, not handed to the cancelled merge
            assert rx.statistics().current_buffer_used == 1
        assert sorted([merged.receive_nowait() for _ in range(3)]) == [0, 1, 2]
        for tx, _ in pairs:
            tx.close()


async def test_merge_in_a_cancelled_scope_does_nothing() -> None:
    tx, rx = channel[int](1)
    with tx, merge(rx) as merged:
        tx.send_nowait(1)
        with CancelScope() as scope:
            scope.cancel()
            await merged.receive()
        assert scope.cancelled_caught
        assert merged.receive_nowait() == 1


async def test_merge_rotates_between_busy_inputs() -> None:
    """A busy input cannot starve another one that also has items."""
    (tx1, rx1), (tx2, rx2) = channel[str](10), channel[str](10)
    with tx1, tx2, merge(rx1, rx2) as merged:
        for _ in range(5):
            tx1.send_nowait("a")
            tx2.send_nowait("b")
        taken = [merged.receive_nowait() for _ in range(4)]
        assert sorted(taken) == ["a", "a", "b", "b"]


async def test_receive_many_takes_from_several_inputs() -> None:
    pairs = [channel[int](5) for _ in range(3)]
    with merge(*(rx for _, rx in pairs)) as merged:
        for n, (tx, _) in enumerate(pairs):
            tx.send_nowait(n)
            tx.close()
        assert sorted(await merged.receive_many(10)) == [0, 1, 2]
        with pytest.raises(EndOfStream):
            await merged.receive_many(10)


async def test_closing_the_merge_closes_its_inputs() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](1), channel[int](1)
    with tx1, tx2:
        merged = merge(rx1, rx2)
        await merged.aclose()
        assert tx1.statistics().open_receive_streams == 0
        assert tx2.statistics().open_receive_streams == 0
        with pytest.raises(ClosedResourceError):
            await merged.receive()


async def test_a_merge_clone_shares_the_items_exactly_once() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](10), channel[int](10)
    with tx1, tx2, merge(rx1, rx2) as first, first.clone() as second:
        for i in range(5):
            tx1.send_nowait(i)
            tx2.send_nowait(10 + i)
        taken = [first.receive_nowait() for _ in range(5)]
        taken += [second.receive_nowait() for _ in range(5)]
        assert sorted(taken) == [*range(5), *range(10, 15)]


def test_merge_rejects_foreign_receivers_and_duplicates() -> None:
    tx, rx = channel[int](1)
    with tx, rx:
        with pytest.raises(TypeError, match=r"fearless\.channel"):
            merge(rx, object())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="twice"):
            merge(rx, rx)


async def test_merge_statistics_report_each_input() -> None:
    (tx1, rx1), (tx2, rx2) = channel[int](3), channel[int](3)
    with tx2, merge(rx1, rx2) as merged:
        tx1.send_nowait(1)
        tx1.close()
        stats = merged.statistics()
        assert [s.current_buffer_used for s in stats.inputs] == [1, 0]
        assert merged.statistics().open_inputs == 2  # the first input still holds an item
        merged.receive_nowait()
        assert merged.statistics().open_inputs == 1  # at once, not only after a failed poll


async def test_a_busy_merge_yields_once_per_yield_every_per_live_input() -> None:
    """The merge's budget is its inputs' yield_every times the number of live inputs."""
    import math

    from .test_channel import counting_turns

    (tx1, rx1), (tx2, rx2) = channel[int](math.inf, yield_every=4), channel[int](math.inf)
    with tx1, tx2, merge(rx1, rx2) as merged:
        for i in range(40):
            tx1.send_nowait(i)
            tx2.send_nowait(i)
        async with counting_turns() as turns:
            before = turns()
            for _ in range(80):
                await merged.receive()
            assert turns() - before >= 80 // (4 * 2) - 1
