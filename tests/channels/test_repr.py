"""Endpoints show their state in ``repr``: open or closed, and what is in the channel (the format
is pinned loosely: the words and numbers a reader looks for, not the exact layout)."""

from __future__ import annotations

import math

import anyio
import pytest

import fearless
from fearless.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


async def test_a_channel_endpoint_shows_capacity_buffer_clones_and_parked_parties() -> None:
    tx, rx = fearless.channel[int](4)
    with tx, rx:
        assert repr(tx).startswith("<Sender open ")
        assert repr(rx).startswith("<ChannelReceiver open ")
        tx.send_nowait(1)
        tx.send_nowait(2)
        with tx.clone():
            for text in (repr(tx), repr(rx)):
                assert "capacity=4" in text
                assert "buffered=2" in text
                assert "senders=2" in text
                assert "receivers=1" in text
        assert "senders=1" in repr(tx)


async def test_parked_tasks_are_counted_on_each_side() -> None:
    tx, rx = fearless.channel[int](0)
    with tx, rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rx.receive)
            tg.start_soon(rx.receive)
            await wait_all_tasks_blocked()
            assert "parked_receivers=2" in repr(tx)
            assert "parked_senders=0" in repr(tx)
            tg.cancel_scope.cancel()
        async with anyio.create_task_group() as tg:
            tg.start_soon(tx.send, 1)
            await wait_all_tasks_blocked()
            assert "parked_senders=1" in repr(rx)
            tg.cancel_scope.cancel()


def test_a_closed_endpoint_says_so_and_an_unbounded_one_shows_inf() -> None:
    tx, rx = fearless.channel[int](math.inf)
    tx.close()
    assert repr(tx).startswith("<Sender closed ")
    assert "capacity=inf" in repr(rx)
    assert "senders=0" in repr(rx)
    rx.close()
    assert repr(rx).startswith("<ChannelReceiver closed ")


def test_the_drop_in_streams_show_their_own_class_name() -> None:
    send, receive = fearless.create_memory_object_stream[int](0)
    with send, receive:
        assert repr(send).startswith("<MemoryObjectSendStream open capacity=0 ")
        assert repr(receive).startswith("<MemoryObjectReceiveStream open capacity=0 ")


def test_a_oneshot_shows_whether_a_value_waits_never_the_value() -> None:
    tx, rx = fearless.oneshot[str]()
    assert repr(tx) == "<OneshotSender open value=none receiver=open parked=0>"
    assert repr(rx) == "<OneshotReceiver open value=none sender=open parked=0>"
    tx.send("secret")
    assert "secret" not in repr(tx) + repr(rx)
    assert repr(tx) == "<OneshotSender closed value=waiting receiver=open parked=0>"
    assert repr(rx) == "<OneshotReceiver open value=waiting sender=closed parked=0>"
    assert rx.receive_nowait() == "secret"
    rx.close()
    assert repr(rx) == "<OneshotReceiver closed value=none sender=closed parked=0>"


async def test_a_oneshot_receiver_shows_a_parked_receive() -> None:
    tx, rx = fearless.oneshot[int]()
    with tx, rx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rx.receive)
            await wait_all_tasks_blocked()
            assert repr(rx).endswith("parked=1>")
            tx.send(1)
        assert repr(rx).endswith("parked=0>")


def test_a_merge_shows_its_inputs_and_what_they_hold() -> None:
    (tx1, rx1), (tx2, rx2) = fearless.channel[int](4), fearless.channel[int](4)
    tx1.send_nowait(1)
    tx2.send_nowait(2)
    tx2.send_nowait(3)
    tx2.close()
    with tx1, fearless.merge(rx1, rx2) as merged:
        assert repr(merged) == "<MergedReceiver open inputs=2 open_inputs=2 buffered=3>"
        assert [merged.receive_nowait() for _ in range(3)] == [1, 2, 3]
        assert repr(merged) == "<MergedReceiver open inputs=2 open_inputs=1 buffered=0>"
    assert repr(merged).startswith("<MergedReceiver closed ")
