"""Oneshot: one value, sent without waiting, received once; a dropped sender is seen."""

from __future__ import annotations

import gc

import anyio
import pytest
from anyio import ClosedResourceError, EndOfStream, WouldBlock

from fearless import OneshotReceiver, OneshotSender, SendBrokenError, SendClosedError, oneshot
from fearless.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


async def test_a_value_sent_before_the_receive_is_returned_at_once() -> None:
    tx, rx = oneshot[int]()
    tx.send(42)
    assert await rx.receive() == 42
    with pytest.raises(EndOfStream):
        rx.receive_nowait()  # received once; nothing more will come


async def test_a_parked_receiver_is_woken_by_the_send() -> None:
    tx, rx = oneshot[str]()
    got: list[str] = []

    async def receive() -> None:
        got.append(await rx)  # awaiting the receiver itself works too

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await wait_all_tasks_blocked()
        assert got == []
        tx.send("reply")
    assert got == ["reply"]


async def test_receive_nowait_before_the_send_would_block() -> None:
    tx, rx = oneshot[int]()
    with pytest.raises(WouldBlock):
        rx.receive_nowait()
    tx.send(1)
    assert rx.receive_nowait() == 1


async def test_a_sender_closed_without_sending_ends_the_receiver() -> None:
    tx, rx = oneshot[int]()
    async with anyio.create_task_group() as tg:

        async def receive() -> None:
            with pytest.raises(EndOfStream):
                await rx.receive()

        tg.start_soon(receive)
        await wait_all_tasks_blocked()
        tx.close()


async def test_a_sender_dropped_without_sending_ends_the_receiver() -> None:
    """No reply is an answer too: a crashed replier's sender is collected, and the waiting
    receiver learns it instead of waiting forever."""
    tx, rx = oneshot[int]()
    async with anyio.create_task_group() as tg:

        async def receive() -> None:
            with pytest.raises(EndOfStream):
                await rx.receive()

        tg.start_soon(receive)
        await wait_all_tasks_blocked()
        del tx
        gc.collect()


async def test_sending_twice_hands_the_second_value_back() -> None:
    tx, rx = oneshot[int]()
    tx.send(1)
    with pytest.raises(SendClosedError) as info:
        tx.send(2)
    assert info.value.item == 2
    assert tx.closed
    assert rx.receive_nowait() == 1


async def test_sending_to_a_closed_receiver_hands_the_value_back() -> None:
    tx, rx = oneshot[int]()
    rx.close()
    with pytest.raises(SendBrokenError) as info:
        tx.send(7)
    assert info.value.item == 7
    with pytest.raises(ClosedResourceError):
        await rx.receive()


async def test_closing_the_receiver_wakes_its_parked_receive() -> None:
    tx, rx = oneshot[int]()
    with tx:
        async with anyio.create_task_group() as tg:

            async def receive() -> None:
                with pytest.raises(ClosedResourceError):
                    await rx.receive()

            tg.start_soon(receive)
            await wait_all_tasks_blocked()
            rx.close()


async def test_a_cancelled_receive_leaves_the_value_for_the_next_one() -> None:
    tx, rx = oneshot[int]()
    async with anyio.create_task_group() as tg:
        tg.start_soon(rx.receive)
        await wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    tx.send(5)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await rx.receive()  # a cancel point: takes nothing
    assert scope.cancelled_caught
    assert await rx.receive() == 5


async def test_only_one_task_may_wait() -> None:
    tx, rx = oneshot[int]()
    with tx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rx.receive)
            await wait_all_tasks_blocked()
            with pytest.raises(RuntimeError, match="already waiting"):
                await rx.receive()
            tg.cancel_scope.cancel()


def test_halves_have_no_public_constructor() -> None:
    with pytest.raises(TypeError, match=r"fearless\.oneshot"):
        OneshotSender()
    with pytest.raises(TypeError, match=r"fearless\.oneshot"):
        OneshotReceiver()


async def test_sending_to_a_dropped_receiver_hands_the_value_back() -> None:
    """A receiver collected without closing counts as closed: nothing vanishes silently."""
    tx, rx = oneshot[int]()
    del rx
    gc.collect()
    with pytest.raises(SendBrokenError) as info:
        tx.send(3)
    assert info.value.item == 3
