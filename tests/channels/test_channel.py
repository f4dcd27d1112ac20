"""The core channel's contract: capacities, order, closing, cancellation, budget, statistics.

The same test names run for every capacity flavor (rendezvous, bounded, unbounded) where the
behaviour is shared, as crossbeam does for its flavors.
"""

from __future__ import annotations

import gc
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio import (
    BrokenResourceError,
    CancelScope,
    ClosedResourceError,
    EndOfStream,
    WouldBlock,
)
from anyio.abc import ObjectReceiveStream, ObjectSendStream

import fearless
from fearless import SendBrokenError, SendClosedError, channel
from fearless.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.anyio

FLAVORS = [pytest.param(0, id="rendezvous"), pytest.param(3, id="bounded"), math.inf]


# -- construction -------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 1, 128, math.inf])
def test_valid_capacities_make_a_pair_of_endpoints(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    with tx, rx:
        assert isinstance(tx, ObjectSendStream)
        assert isinstance(rx, ObjectReceiveStream)
        assert tx.statistics().max_buffer_size == capacity


@pytest.mark.parametrize("bad", [-1, 1.0, 2.5, True, "3", None, math.nan, -math.inf])
def test_a_bad_capacity_raises_value_error_naming_the_value(bad: Any) -> None:
    with pytest.raises(ValueError, match="capacity") as info:
        channel[int](bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [0, -3, 1.5, None])
def test_a_bad_yield_every_raises_value_error_naming_the_value(bad: Any) -> None:
    with pytest.raises(ValueError, match="yield_every") as info:
        channel[int](1, yield_every=bad)
    assert repr(bad) in str(info.value)


def test_endpoints_have_no_public_constructor() -> None:
    with pytest.raises(TypeError, match=r"fearless\.channel"):
        fearless.Sender()
    with pytest.raises(TypeError, match=r"fearless\.channel"):
        fearless.ChannelReceiver()


def test_an_endpoint_never_closed_warns_when_collected() -> None:
    tx, rx = channel[int](1)
    gc.collect()
    with pytest.warns(ResourceWarning, match=r"Unclosed <Sender at [0-9a-f]+>"):
        del tx  # CPython frees it here, by reference count
    with pytest.warns(ResourceWarning, match=r"Unclosed <ChannelReceiver at [0-9a-f]+>"):
        del rx


# -- order and waiting --------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_items_arrive_in_the_order_sent(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    received: list[int] = []

    async def consume() -> None:
        async with rx:
            received.extend([item async for item in rx])

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        async with tx:
            for i in range(200):
                await tx.send(i)
    assert received == list(range(200))


async def test_rendezvous_send_waits_until_a_receiver_takes_the_item() -> None:
    tx, rx = channel[str](0)
    done: list[str] = []

    async def send() -> None:
        await tx.send("x")
        done.append("sent")

    with tx, rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            await wait_all_tasks_blocked()
            assert done == []
            assert tx.statistics().tasks_waiting_send == 1
            assert rx.receive_nowait() == "x"
        assert done == ["sent"]


async def test_rendezvous_send_nowait_needs_a_parked_receiver() -> None:
    tx, rx = channel[str](0)
    with tx, rx:
        with pytest.raises(WouldBlock):
            tx.send_nowait("nobody is waiting")
        async with anyio.create_task_group() as tg:
            got: list[str] = []

            async def receive() -> None:
                got.append(await rx.receive())

            tg.start_soon(receive)
            await wait_all_tasks_blocked()
            tx.send_nowait("handed over")
        assert got == ["handed over"]


async def test_bounded_send_waits_while_full_and_resumes_when_a_slot_frees() -> None:
    tx, rx = channel[int](2)
    with tx, rx:
        tx.send_nowait(1)
        tx.send_nowait(2)
        with pytest.raises(WouldBlock):
            tx.send_nowait(3)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, 3)
            await wait_all_tasks_blocked()
            assert tx.statistics().tasks_waiting_send == 1
            assert rx.receive_nowait() == 1
            # The parked sender's item went in at once, before the sender even ran.
            assert tx.statistics().current_buffer_used == 2
        assert [rx.receive_nowait(), rx.receive_nowait()] == [2, 3]


async def test_parked_receivers_are_served_in_the_order_they_parked() -> None:
    tx, rx = channel[int](0)
    got: list[tuple[int, int]] = []

    async def receive(who: int) -> None:
        got.append((who, await rx.receive()))

    with tx, rx:
        async with anyio.create_task_group() as tg:
            for who in range(4):
                tg.start_soon(receive, who)
                await wait_all_tasks_blocked()  # park them in a known order
            for i in range(4):
                tx.send_nowait(i * 10)
    assert sorted(got) == [(0, 0), (1, 10), (2, 20), (3, 30)]  # who got what, not who ran first


@pytest.mark.parametrize("capacity", [0, 1])
async def test_parked_senders_go_in_the_order_they_parked(capacity: int) -> None:
    tx, rx = channel[int](capacity)
    with tx, rx:
        if capacity:
            tx.send_nowait(-1)
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(tx.send, i)
                await wait_all_tasks_blocked()
            received = [rx.receive_nowait() for _ in range(4 + capacity)]
    assert received == [-1, 0, 1, 2, 3][1 - capacity :]


async def test_a_newcomer_never_overtakes_a_parked_sender() -> None:
    tx, rx = channel[str](1)
    with tx, rx:
        tx.send_nowait("first")
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, "parked")
            await wait_all_tasks_blocked()
            assert rx.receive_nowait() == "first"
            # The freed slot went to the parked sender, so the newcomer must wait.
            with pytest.raises(WouldBlock):
                tx.send_nowait("newcomer")
        assert rx.receive_nowait() == "parked"


# -- closing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_receivers_drain_the_buffer_then_see_end_of_stream(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    with rx:
        if capacity:
            tx.send_nowait(1)
        tx.close()
        if capacity:
            assert await rx.receive() == 1
        with pytest.raises(EndOfStream):
            await rx.receive()
        with pytest.raises(EndOfStream):
            rx.receive_nowait()


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_the_channel_ends_only_when_every_sender_clone_is_closed(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    tx2 = tx.clone()
    with rx:
        tx.close()
        with pytest.raises(WouldBlock):
            rx.receive_nowait()
        tx2.close()
        with pytest.raises(EndOfStream):
            rx.receive_nowait()


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_send_after_every_receiver_closed_hands_the_item_back(capacity: float) -> None:
    tx, rx = channel[str](capacity)
    with tx:
        rx.close()
        with pytest.raises(SendBrokenError) as info:
            await tx.send("lost?")
        assert isinstance(info.value, BrokenResourceError)
        assert info.value.item == "lost?"
        with pytest.raises(SendBrokenError):
            tx.send_nowait("again")


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_using_a_closed_endpoint_raises_closed_resource_error(capacity: float) -> None:
    tx, rx = channel[str](capacity)
    tx2, rx2 = tx.clone(), rx.clone()
    with tx2, rx2:
        tx.close()
        rx.close()
        with pytest.raises(SendClosedError) as info:
            await tx.send("x")
        assert isinstance(info.value, ClosedResourceError)
        assert info.value.unsent == ("x",)
        with pytest.raises(ClosedResourceError):
            await rx.receive()
        with pytest.raises(ClosedResourceError):
            rx.receive_nowait()
        with pytest.raises(ClosedResourceError):
            tx.clone()
        with pytest.raises(ClosedResourceError):
            rx.clone()
        tx.close()  # idempotent
        rx.close()


async def test_closing_the_last_receiver_fails_parked_senders_with_their_items() -> None:
    tx, rx = channel[int](0)
    failures: list[tuple[Any, ...]] = []

    async def send(i: int) -> None:
        try:
            await tx.send(i)
        except SendBrokenError as exc:
            failures.append(exc.unsent)

    with tx:
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(send, i)
            await wait_all_tasks_blocked()
            await rx.aclose()
    assert sorted(failures) == [(0,), (1,), (2,)]


async def test_closing_a_sender_fails_its_own_parked_send_and_withdraws_the_item() -> None:
    tx, rx = channel[str](0)
    other = tx.clone()
    with rx, other:
        async with anyio.create_task_group() as tg:
            outcome: list[object] = []

            async def send() -> None:
                try:
                    await tx.send("withdrawn")
                except SendClosedError as exc:
                    outcome.append(exc.unsent)

            tg.start_soon(send)
            await wait_all_tasks_blocked()
            tx.close()
        assert outcome == [("withdrawn",)]
        with pytest.raises(WouldBlock):
            rx.receive_nowait()


async def test_closing_the_last_sender_wakes_every_parked_receiver_with_end_of_stream() -> None:
    tx, rx = channel[int](5)
    ended: list[int] = []

    async def receive(who: int) -> None:
        with pytest.raises(EndOfStream):
            await rx.receive()
        ended.append(who)

    with rx:
        async with anyio.create_task_group() as tg:
            for who in range(3):
                tg.start_soon(receive, who)
            await wait_all_tasks_blocked()
            await tx.aclose()
    assert sorted(ended) == [0, 1, 2]


async def test_aclose_closes_even_when_cancelled() -> None:
    tx, rx = channel[int](1)
    with CancelScope() as scope:
        scope.cancel()
        await tx.aclose()
    with CancelScope() as scope:
        scope.cancel()
        await rx.aclose()
    assert tx.statistics().open_send_streams == 0
    assert rx.statistics().open_receive_streams == 0


# -- cancellation -------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_an_operation_in_a_cancelled_scope_does_nothing(capacity: float) -> None:
    """Every operation is a cancel point, even on the fast path with budget left."""
    tx, rx = channel[int](capacity)
    with tx, rx:
        async with anyio.create_task_group() as tg:
            if capacity == 0:
                tg.start_soon(rx.receive)  # give the send a taker so it could complete
                await wait_all_tasks_blocked()
            with CancelScope() as scope:
                scope.cancel()
                await tx.send(1)
            assert scope.cancelled_caught
            assert tx.statistics().total_sent == 0
            tx.send_nowait(2) if capacity else await tx.send(2)
            if capacity:
                with CancelScope() as scope:
                    scope.cancel()
                    await rx.receive()
                assert scope.cancelled_caught
                assert rx.receive_nowait() == 2


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_a_cancelled_parked_receive_takes_nothing(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    with tx, rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rx.receive)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        if capacity:
            tx.send_nowait(7)
            assert rx.receive_nowait() == 7
        else:
            with pytest.raises(WouldBlock):
                tx.send_nowait(7)
        assert rx.statistics().tasks_waiting_receive == 0


@pytest.mark.parametrize("capacity", [0, 1])
async def test_a_cancelled_parked_send_sends_nothing(capacity: int) -> None:
    tx, rx = channel[int](capacity)
    with tx, rx:
        if capacity:
            tx.send_nowait(1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, 99)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        received = [rx.receive_nowait() for _ in range(capacity)]
        with pytest.raises(WouldBlock):
            rx.receive_nowait()
        assert received == [1][:capacity]
        assert tx.statistics().total_sent == capacity


# -- batches ------------------------------------------------------------------------------------


async def test_receive_many_waits_for_one_then_takes_what_is_there() -> None:
    tx, rx = channel[int](10)
    with tx, rx:
        for i in range(7):
            tx.send_nowait(i)
        assert await rx.receive_many(5) == [0, 1, 2, 3, 4]
        assert await rx.receive_many(5) == [5, 6]
        async with anyio.create_task_group() as tg:
            got: list[list[int]] = []

            async def receive() -> None:
                got.append(await rx.receive_many(5))

            tg.start_soon(receive)
            await wait_all_tasks_blocked()
            tx.send_nowait(7)
        assert got == [[7]]


async def test_receive_many_pulls_parked_senders_items_in_order() -> None:
    tx, rx = channel[int](2)
    with tx, rx:
        tx.send_nowait(0)
        tx.send_nowait(1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send_many, [2, 3, 4])
            await wait_all_tasks_blocked()
            # Each freed slot pulls the parked batch's next item in, so one call gets them all.
            assert await rx.receive_many(10) == [0, 1, 2, 3, 4]
        with pytest.raises(WouldBlock):
            rx.receive_nowait()


@pytest.mark.parametrize("bad", [0, -1, 1.5, None])
async def test_receive_many_rejects_a_bad_max_items(bad: Any) -> None:
    tx, rx = channel[int](1)
    with tx, rx, pytest.raises(ValueError, match="max_items"):
        await rx.receive_many(bad)


async def test_a_cancelled_receive_many_takes_nothing() -> None:
    tx, rx = channel[int](4)
    with tx, rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rx.receive_many, 4)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        tx.send_nowait(1)
        assert rx.receive_nowait() == 1


@pytest.mark.parametrize("capacity", FLAVORS)
async def test_send_many_sends_every_item_in_order(capacity: float) -> None:
    tx, rx = channel[int](capacity)
    received: list[int] = []

    async def consume() -> None:
        async with rx:
            while True:
                try:
                    received.extend(await rx.receive_many(4))
                except EndOfStream:
                    return

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        async with tx:
            await tx.send_many(range(50))
            await tx.send_many([])
            await tx.send_many(range(50, 60))
    assert received == list(range(60))


async def test_a_cancelled_send_many_delivered_exactly_a_prefix() -> None:
    tx, rx = channel[int](3)
    with tx, rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send_many, list(range(10)))
            await wait_all_tasks_blocked()
            assert rx.receive_nowait() == 0  # frees a slot: item 3 goes in
            tg.cancel_scope.cancel()
        rest = [rx.receive_nowait() for _ in range(3)]
        with pytest.raises(WouldBlock):
            rx.receive_nowait()
    assert rest == [1, 2, 3]


async def test_an_empty_batch_to_a_closed_sender_reports_no_item() -> None:
    tx, rx = channel[int](1)
    with rx:
        tx.close()
        with pytest.raises(SendClosedError) as info:
            await tx.send_many([])
        assert info.value.unsent == ()
        assert info.value.item is None


def test_the_anyio_named_classes_point_at_their_own_factory() -> None:
    with pytest.raises(TypeError, match=r"fearless\.create_memory_object_stream"):
        fearless.MemoryObjectSendStream()


async def test_send_many_to_a_broken_channel_hands_back_what_was_not_sent() -> None:
    tx, rx = channel[int](2)
    with tx:
        async with anyio.create_task_group() as tg:
            unsent: list[tuple[Any, ...]] = []

            async def send() -> None:
                try:
                    await tx.send_many(range(5))
                except SendBrokenError as exc:
                    unsent.append(exc.unsent)

            tg.start_soon(send)
            await wait_all_tasks_blocked()
            rx.close()
    assert unsent == [(2, 3, 4)]


# -- the scheduling budget ----------------------------------------------------------------------


@asynccontextmanager
async def counting_turns() -> AsyncIterator[Callable[[], int]]:
    """Run a task that never blocks and counts its turns; yield a reader of the count."""
    turns = 0
    done = False

    async def ticker() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.lowlevel.checkpoint()  # let it start (it never blocks, so no wait_all_...)
        yield lambda: turns
        done = True


@pytest.mark.parametrize("yield_every", [1, 4, 32])
async def test_a_busy_sender_yields_at_least_every_yield_every_operations(
    yield_every: int,
) -> None:
    """A sender that never has to wait still lets other tasks run (the scheduling budget)."""
    tx, rx = channel[int](math.inf, yield_every=yield_every)
    with tx, rx:
        async with counting_turns() as turns:
            before = turns()
            operations = 10 * yield_every
            for i in range(operations):
                await tx.send(i)
            # Each yield of the sender lets the ticker run at least once.
            assert turns() - before >= operations // yield_every - 1


async def test_a_busy_receiver_yields_too() -> None:
    """The budget applies to receiving as well: 20 receives with yield_every=2 yield 10 times."""
    tx, rx = channel[int](math.inf, yield_every=2)
    with tx, rx:
        for i in range(20):
            tx.send_nowait(i)
        async with counting_turns() as turns:
            before = turns()
            for _ in range(20):
                await rx.receive()
            assert turns() - before >= 9


# -- statistics ---------------------------------------------------------------------------------


async def test_statistics_count_peak_and_totals() -> None:
    tx, rx = channel[int](4)
    rx2 = rx.clone()
    with tx, rx, rx2:
        for i in range(3):
            tx.send_nowait(i)
        rx.receive_nowait()
        tx.send_nowait(3)
        stats = rx2.statistics()
        assert stats == tx.statistics()
        assert stats.current_buffer_used == 3
        assert stats.peak_buffer_used == 3
        assert stats.total_sent == 4
        assert stats.total_received == 1
        assert stats.open_send_streams == 1
        assert stats.open_receive_streams == 2
        assert stats.max_buffer_size == 4
        with pytest.raises(AttributeError):
            stats.total_sent = 0  # type: ignore[misc]
