"""Broadcast across processes on a real nats-server: fearless/nats/_broadcast.py's docstring, on
asyncio, asyncio + uvloop and trio. Several nodes stand for several processes."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import msgspec
import pytest

import fearless
import fearless.nats
from fearless.nats import NatsServer, Node

pytestmark = pytest.mark.anyio


class Price(msgspec.Struct, frozen=True):
    symbol: str
    cents: int


async def barrier(node: Node) -> None:  # (the publisher side: its items reached the server)
    """Make sure the server has seen this connection's subscriptions: a request/reply round
    trip to the server after them (a flush alone is not a barrier in nats-py: the PING can leave
    before a SUB still in the pending buffer)."""
    await node.client_loop.call(node.connection.flush)
    await node.client_loop.call(node.jetstream.account_info)


async def test_every_subscribed_node_gets_every_item_in_order(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    async with AsyncExitStack() as stack:
        others = [
            await stack.enter_async_context(fearless.nats.connect(nats_server.url, system=system))
            for _ in range(2)
        ]
        subscriptions = [await n.subscribe("prices", Price, capacity=1000) for n in others]
        for n in others:
            await barrier(n)
        publisher = await node.open_publisher("prices", Price)
        items = [Price("ACME", cents) for cents in range(300)]
        await publisher.send_many(items)
        for subscription in subscriptions:
            with subscription, anyio.fail_after(10):
                got = [await subscription.receive() for _ in items]
            assert got == items


async def test_a_subscription_is_a_local_subscription_merge_and_select_take(node: Node) -> None:
    prices = await node.subscribe("prices", Price)
    ticks = await node.subscribe("ticks", int)
    await barrier(node)
    await (await node.open_publisher("prices", Price)).send(Price("X", 1))
    await (await node.open_publisher("ticks", int)).send(7)
    merged = fearless.merge(prices, ticks)
    with anyio.fail_after(10):
        got = {await merged.receive(), await merged.receive()}
    assert got == {Price("X", 1), 7}
    merged.close()


async def test_a_slow_subscriber_lags_with_the_exact_count(node: Node) -> None:
    """Items arrive whether or not the process reads: past ``capacity`` the local ring
    overwrites, and the subscription learns exactly how many it lost."""
    subscription = await node.subscribe("ticks", int, capacity=10)
    await barrier(node)
    publisher = await node.open_publisher("ticks", int)
    await publisher.send_many(range(25))
    await barrier(node)  # every item reached this process
    with anyio.fail_after(10):
        while subscription.statistics().broadcast.total_sent < 25:  # noqa: ASYNC110  (the pump's count)
            await anyio.sleep(0.005)
    with subscription:
        with pytest.raises(fearless.Lagged) as lagged:
            await subscription.receive()
        assert lagged.value.missed == 15
        assert [await subscription.receive() for _ in range(10)] == list(range(15, 25))


async def test_replay_delivers_the_kept_items_then_the_live_ones(node: Node) -> None:
    """keep=5: a subscriber arriving late gets the last five, then what follows, no gap and no
    repeat; without keep there is nothing to replay and it says so."""
    publisher = await node.open_publisher("events", int, keep=5)
    await publisher.send_many(range(10))
    await barrier(node)
    late = await node.subscribe("events", int, replay="all")
    with late, anyio.fail_after(10):
        assert [await late.receive() for _ in range(5)] == [5, 6, 7, 8, 9]
        await publisher.send_many([10, 11])
        assert [await late.receive() for _ in range(2)] == [10, 11]
    with pytest.raises(ValueError, match="keeps no items to replay"):
        await node.subscribe("other", int, replay="all")


async def test_replay_from_a_sequence_number(node: Node) -> None:
    publisher = await node.open_publisher("events", int, keep=100)
    await publisher.send_many(range(10))
    await barrier(node)
    late = await node.subscribe("events", int, replay=8)  # stream sequences count from 1
    with late, anyio.fail_after(10):
        assert [await late.receive() for _ in range(3)] == [7, 8, 9]


async def test_bad_payloads_and_arguments_are_refused(node: Node) -> None:
    subscription = await node.subscribe("prices", Price)
    await barrier(node)
    subject = f"fearless.{node.system}.broadcast.prices"
    await node.client_loop.call(node.connection.publish, subject, b"{not json")
    publisher = await node.open_publisher("prices", Price)
    await publisher.send(Price("OK", 1))
    with subscription, anyio.fail_after(10):
        assert await subscription.receive() == Price("OK", 1)  # the garbage was skipped
    with pytest.raises(TypeError, match="is not a valid Price"):
        await publisher.send(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='on_lag must be "error" or "drop"'):
        await node.subscribe("prices", Price, on_lag="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="replay must be"):
        await node.subscribe("prices", Price, replay=0)
    with pytest.raises(ValueError, match="keep must be a positive int"):
        await node.open_publisher("prices", Price, keep=0)


async def test_closing_the_node_ends_its_subscriptions(
    nats_server: NatsServer, system: str
) -> None:
    async with fearless.nats.connect(nats_server.url, system=system) as node:
        subscription = await node.subscribe("ticks", int)
    with subscription, anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
        await subscription.receive()


async def test_an_item_published_by_another_node_right_after_subscribe_returns_arrives(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """subscribe returns once the server has the subscription: 50 rounds of subscribe, then an
    immediate publish from another connection, lose nothing (this is the flush trap: a flush
    alone lost about a third of them)."""
    async with fearless.nats.connect(nats_server.url, system=system) as other:
        publisher = await other.open_publisher("ticks", int)
        for round_ in range(50):
            subscription = await node.subscribe("ticks", int)
            with subscription:
                await publisher.send(round_)
                with anyio.fail_after(10):
                    assert await subscription.receive() == round_
