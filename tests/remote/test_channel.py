"""Durable channels on a real nats-server: the guarantees of fearless/nats/_channel.py's
docstring, on asyncio, asyncio + uvloop and trio."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest
from anyio import EndOfStream, WouldBlock

import fearless
import fearless.nats
from fearless.nats import Node
from fearless.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


class Job(msgspec.Struct, frozen=True):
    id: int
    text: str = ""


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


async def poll_until(predicate: Callable[[], object]) -> None:
    """Wait for observable state (a statistics counter) that no event announces: not a sleep that
    hopes something happened. Fails after 10 seconds."""
    with anyio.fail_after(10):
        while not predicate():  # noqa: ASYNC110  (nothing to wait on: the state is polled)
            await anyio.sleep(0.005)


async def eventually_stored(node: Node, name: str, count: int) -> None:
    """Wait until the server holds ``count`` messages for the channel (acknowledgements are
    asynchronous: the server removes an item shortly after a receive returns it)."""
    with anyio.fail_after(10):
        while await stored(node, name) != count:  # noqa: ASYNC110  (the server's state)
            await anyio.sleep(0.005)


async def stored(node: Node, name: str) -> int:
    """How many messages the server holds for the channel ``name``."""
    js = node.jetstream
    info = await node.client_loop.call(js.stream_info, f"FEARLESS_CH_{node.system}_{name}")
    return int(info.state.messages)


async def test_items_of_every_supported_type_arrive_in_order(node: Node) -> None:
    """Structs, dataclasses and plain types go through as what they were, in send order."""
    cases: list[tuple[str, Any, list[Any]]] = [
        ("structs", Job, [Job(i, f"job {i}") for i in range(20)]),
        ("points", Point, [Point(i, -i) for i in range(5)]),
        ("ints", int, list(range(10))),
        ("maps", dict[str, list[int]], [{"a": [1, 2]}, {}]),
    ]
    for name, item_type, items in cases:
        tx, rx = await node.open_channel(name, item_type)
        await tx.send_many(items)
        got = [await rx.receive() for _ in items]
        assert got == items
        assert rx.statistics().received == len(items)


async def test_a_wrong_item_is_refused_at_send(node: Node) -> None:
    """A value that is not of the channel's type fails at the sender, with the value named, and
    nothing is stored."""
    tx, _rx = await node.open_channel("jobs", Job)
    with pytest.raises(TypeError, match="'not a job' is not a valid Job"):
        await tx.send("not a job")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="is not a valid Job"):
        await tx.send(Point(1, 2))  # type: ignore[arg-type]
    assert await stored(node, "jobs") == 0


async def test_an_item_over_the_servers_maximum_payload_is_refused(node: Node) -> None:
    tx, _rx = await node.open_channel("big", str)
    with pytest.raises(fearless.nats.PayloadTooLarge, match="bytes; the server accepts at most"):
        await tx.send("x" * node.max_payload)
    assert await stored(node, "big") == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a.b"}, "channel name must be"),
        ({"name": "a b"}, "channel name must be"),
        ({"capacity": 0}, "capacity must be a positive int"),
        ({"capacity": 2.5}, "capacity must be a positive int"),
        ({"ack_wait": 0}, "ack_wait must be a positive number"),
        ({"prefetch": 0}, "prefetch must be a positive int"),
    ],
)
async def test_bad_arguments_name_the_bad_value(
    node: Node, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"name": "jobs", "item_type": Job, **kwargs}
    with pytest.raises(ValueError, match=message):
        await node.open_channel(**args)  # type: ignore[arg-type]


async def test_opening_a_channel_with_another_capacity_is_refused(node: Node) -> None:
    await node.open_channel("jobs", Job, capacity=10)
    await node.open_channel("jobs", Job, capacity=10)  # the same: shared
    with pytest.raises(ValueError, match="exists with capacity 10, not 20"):
        await node.open_channel("jobs", Job, capacity=20)


async def test_a_bad_system_name_is_refused() -> None:
    with pytest.raises(ValueError, match="system name must be"):
        fearless.nats.connect("nats://127.0.0.1:1", system="a.b")


async def test_a_full_channel_refuses_send_nowait_and_makes_send_wait(node: Node) -> None:
    """Backpressure across processes: the server refuses an item while the stream is full;
    send_nowait says WouldBlock, send retries until a receiver made room, then stores it."""
    tx, rx = await node.open_channel("jobs", Job, capacity=3, prefetch=1)
    await tx.send_many([Job(0), Job(1), Job(2)])
    with pytest.raises(WouldBlock):
        await tx.send_nowait(Job(99))
    sent = anyio.Event()

    async def send_fourth() -> None:
        await tx.send(Job(3))
        sent.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(send_fourth)
        refused = tx.statistics().refused_full
        await poll_until(lambda: tx.statistics().refused_full > refused + 1)
        assert not sent.is_set()
        assert await rx.receive() == Job(0)
        with anyio.fail_after(10):
            await sent.wait()
    assert [await rx.receive() for _ in range(3)] == [Job(1), Job(2), Job(3)]
    await eventually_stored(node, "jobs", 0)


async def test_undecodable_payloads_are_reported_and_skipped(node: Node) -> None:
    """A foreign publisher's garbage is never delivered as an item: it is counted, kept for
    inspection and terminated, and the receiver goes on to the next good item."""
    tx, rx = await node.open_channel("jobs", Job)
    js = node.jetstream
    subject = f"fearless.{node.system}.channel.jobs.items"
    await tx.send(Job(1))
    await node.client_loop.call(js.publish, subject, b"\xff not json")
    await node.client_loop.call(js.publish, subject, b'{"id": "one"}')
    await tx.send(Job(2))
    assert [await rx.receive(), await rx.receive()] == [Job(1), Job(2)]
    assert rx.statistics().undecodable == 2
    bad = rx.undecodable
    assert [entry.payload for entry in bad] == [b"\xff not json", b'{"id": "one"}']
    assert "Expected `int`, got `str`" in bad[1].error
    assert all(entry.subject == subject for entry in bad)
    await eventually_stored(node, "jobs", 0)


async def test_the_end_refuses_later_sends_and_ends_every_receiver_after_the_last_item(
    node: Node,
) -> None:
    """end(): later sends raise ChannelEnded; each receiver gets EndOfStream only after every
    item stored before the end was acknowledged, by whichever receiver took it."""
    tx, rx = await node.open_channel("jobs", int, prefetch=4)
    others = [await node.open_receiver("jobs", int, prefetch=4) for _ in range(2)]
    await tx.send_many(range(300))
    await tx.end()
    await tx.end()  # idempotent
    with pytest.raises(fearless.nats.ChannelEnded, match="'jobs' has ended"):
        await tx.send(300)
    got: list[list[int]] = []

    async def drain(receiver: fearless.nats.DurableReceiver[int]) -> None:
        got.append([item async for item in receiver])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for receiver in [rx, *others]:
                tg.start_soon(drain, receiver)
    everything = sorted(item for mine in got for item in mine)
    assert everything == list(range(300))
    with pytest.raises(EndOfStream):
        await rx.receive()


async def test_the_end_waits_for_an_item_another_receiver_has_not_acknowledged(
    node: Node,
) -> None:
    """An item handed out but not acknowledged may still come back: no receiver may see the end
    while it is outstanding, even if the receiver holding it has closed."""
    tx = await node.open_sender("jobs", int)
    other = await node.open_receiver("jobs", int, prefetch=1)
    await tx.send(1)
    held = await other.receive_delivery()
    assert held.item == 1
    await tx.end()
    rx = await node.open_receiver("jobs", int, prefetch=1)
    # other pulls again at once, so it holds the end marker: closing hands it back to rx.
    await other.aclose()
    ended = anyio.Event()

    async def wait_for_end() -> None:
        assert await rx.receive() == 1  # once handed back
        with pytest.raises(EndOfStream):
            await rx.receive()
        ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_end)
        # rx reaches the end marker while item 1 is outstanding: it hands it back and waits.
        await poll_until(lambda: rx.statistics().end_deferred >= 2)
        assert not ended.is_set()
        await held.nak()  # handed back: rx takes it, acknowledges it, then sees the end
    assert ended.is_set()


async def test_a_delivery_handed_back_is_delivered_again_and_marked_redelivered(
    node: Node,
) -> None:
    tx, rx = await node.open_channel("jobs", Job, prefetch=1)
    await tx.send(Job(7))
    first = await rx.receive_delivery()
    assert not first.redelivered
    await first.nak()
    again = await rx.receive_delivery()
    assert (again.item, again.redelivered) == (Job(7), True)
    await again.ack()
    with pytest.raises(RuntimeError, match="already acknowledged"):
        await again.ack()
    assert rx.statistics().redelivered == 1


async def test_a_delivery_used_as_a_context_acks_on_success_and_hands_back_on_failure(
    node: Node,
) -> None:
    """``async with delivery`` acknowledges when the block succeeds and hands the item back
    when it raises: the failed item comes again, marked redelivered, and nothing is left."""
    tx, rx = await node.open_channel("jobs", Job, prefetch=1)
    await tx.send_many([Job(1), Job(2)])
    delivery = await rx.receive_delivery()
    delivery.retry_delay = 0.0

    async def fail(delivery: fearless.nats.Delivery[Job]) -> None:
        async with delivery as job:
            assert job == Job(1)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail(delivery)
    assert delivery.settled
    # Job(2) may have been fetched before Job(1) was handed back: a redelivery comes when it is
    # handed back, not in its first place.
    seen = {}
    for _ in range(2):
        next_one = await rx.receive_delivery()
        seen[next_one.item.id] = next_one.redelivered
        async with next_one:
            pass
    assert seen == {1: True, 2: False}
    await eventually_stored(node, "jobs", 0)


async def test_closing_a_receiver_hands_back_what_it_had_fetched(node: Node) -> None:
    """A receiver that prefetched items and closes gives them back at once (not after
    ack_wait): another receiver gets every one of them."""
    tx, rx = await node.open_channel("jobs", int, prefetch=10, ack_wait=60)
    await tx.send_many(range(10))
    assert await rx.receive() == 0
    await poll_until(lambda: rx.statistics().buffered == 9)  # all ten were fetched
    await rx.aclose()
    other = await node.open_receiver("jobs", int)
    with anyio.fail_after(10):
        assert sorted([await other.receive() for _ in range(9)]) == list(range(1, 10))
    with pytest.raises(anyio.ClosedResourceError):
        await rx.receive()


async def test_a_cancelled_receive_takes_nothing(node: Node) -> None:
    """Receives cancelled at random points, some while a fetch is in flight: every item is
    received exactly once by the receives that completed (nothing is lost to a cancellation;
    an item fetched for a cancelled receive waits for the next one)."""
    tx, rx = await node.open_channel("jobs", int, prefetch=3, ack_wait=60)
    rng = random.Random(1)
    got: list[int] = []
    cancelled = 0

    async def produce() -> None:
        for i in range(200):
            await tx.send(i)
            if rng.random() < 0.1:
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        while len(got) < 200:
            with anyio.move_on_after(rng.choice([0, 0.0005, 0.002, math.inf])) as scope:
                got.append(await rx.receive())
            cancelled += scope.cancelled_caught
    assert sorted(got) == list(range(200))
    assert cancelled > 0


async def test_a_cancelled_send_either_stored_the_item_or_raised(node: Node) -> None:
    """Sends cancelled at random points: the server holds exactly the items whose send returned
    (none of the cancelled ones, and no duplicate)."""
    tx, rx = await node.open_channel("jobs", int, ack_wait=60)
    rng = random.Random(2)
    returned: list[int] = []
    for i in range(150):
        with anyio.move_on_after(rng.choice([0, 0.0001, 0.0005, 0.002])):
            await tx.send(i)
            returned.append(i)
    assert tx.in_doubt == []
    assert 0 < len(returned) < 150
    assert await stored(node, "jobs") == len(returned)
    assert [await rx.receive() for _ in returned] == returned


async def test_a_durable_receiver_is_a_fearless_receiver_that_fan_out_takes(node: Node) -> None:
    """fan_out over a durable channel: every item processed once, by clones of the receiver."""
    tx, rx = await node.open_channel("jobs", int)
    assert isinstance(rx, fearless.Receiver)
    await tx.send_many(range(100))
    await tx.end()

    async def double(item: int) -> int:
        return item * 2

    async with fearless.fan_out(rx, double, workers=3) as results:
        with anyio.fail_after(30):
            got = sorted([result async for result in results])
    assert got == [item * 2 for item in range(100)]


async def test_receive_nowait_hands_over_only_what_was_fetched(node: Node) -> None:
    tx, rx = await node.open_channel("jobs", int, prefetch=5)
    with pytest.raises(WouldBlock):
        rx.receive_nowait()  # nothing fetched (it asks the server nothing)
    await tx.send_many(range(5))
    first = await rx.receive()
    await poll_until(lambda: rx.statistics().buffered == 4)
    assert [first] + [rx.receive_nowait() for _ in range(4)] == list(range(5))
    with pytest.raises(WouldBlock):
        rx.receive_nowait()
    clone = rx.clone()
    await rx.aclose()  # whatever rx had pulled goes back; the clone pulls from its first receive
    await tx.send_many([5, 6, 7])
    with anyio.fail_after(10):
        assert sorted([await clone.receive() for _ in range(3)]) == [5, 6, 7]
    await clone.aclose()


async def test_threads_send_and_receive_on_a_durable_channel(node: Node) -> None:
    """The thread bridge: two threads send 200 items each with send_blocking, two threads
    receive with receive_blocking until the end; every item arrives exactly once, and a blocking
    call on the event loop's thread is refused at once."""
    tx, rx = await node.open_channel("jobs", int)
    got: list[int] = []

    def produce(first: int) -> None:
        for item in range(first, first + 200):
            tx.send_blocking(item)

    def consume(receiver: fearless.nats.DurableReceiver[int]) -> None:
        while True:
            try:
                got.append(receiver.receive_blocking(timeout=30))
            except EndOfStream:
                return

    with pytest.raises(fearless.EventLoopBlockingError):
        rx.receive_blocking(timeout=1)
    with pytest.raises(fearless.EventLoopBlockingError):
        tx.send_blocking(1)
    clone = rx.clone()
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, consume, rx)
        tg.start_soon(anyio.to_thread.run_sync, consume, clone)
        async with anyio.create_task_group() as producers:
            producers.start_soon(anyio.to_thread.run_sync, produce, 0)
            producers.start_soon(anyio.to_thread.run_sync, produce, 200)
        await tx.end()
    assert sorted(got) == list(range(400))
    await clone.aclose()


async def test_receive_many_takes_what_was_fetched_and_acknowledges_all_of_it(node: Node) -> None:
    tx, rx = await node.open_channel("jobs", int, prefetch=50)
    await tx.send_many(range(100))
    got: list[int] = []
    with anyio.fail_after(10):
        while len(got) < 100:
            batch = await rx.receive_many(30)
            assert 1 <= len(batch) <= 30
            got += batch
    assert got == list(range(100))
    with pytest.raises(ValueError, match="max_items must be a positive int"):
        await rx.receive_many(0)
    await eventually_stored(node, "jobs", 0)


async def test_send_many_pipelines_and_stores_every_item_once_even_through_a_full_stream(
    node: Node,
) -> None:
    """600 items into a channel of capacity 50 while a receiver drains it: windows are refused
    in part and retried with their ids, so every item is stored exactly once (in order when
    nothing was refused; the test only counts)."""
    tx, rx = await node.open_channel("jobs", int, capacity=50)
    got: list[int] = []

    async def drain() -> None:
        while len(got) < 600:
            got.extend(await rx.receive_many(100))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            await tx.send_many(range(600))
    assert sorted(got) == list(range(600))
    assert tx.statistics().sent == 600
    assert tx.statistics().refused_full > 0


async def test_send_many_into_room_keeps_the_order(node: Node) -> None:
    tx, rx = await node.open_channel("jobs", int)
    await tx.send_many(range(1000))
    with anyio.fail_after(30):
        got = [await rx.receive() for _ in range(1000)]
    assert got == list(range(1000))


async def test_a_stream_deleted_under_running_endpoints_gives_channel_deleted(node: Node) -> None:
    """An administrator deletes the stream: a receiver waiting in receive wakes with
    ChannelDeleted (and every later receive says so), a send raises it too, and the node goes
    on: a cell still works, and opening the channel again makes a new, empty stream."""
    tx, rx = await node.open_channel("jobs", int)
    await tx.send(1)
    assert await rx.receive() == 1
    js = node.jetstream
    async with anyio.create_task_group() as tg:
        failures: list[BaseException] = []

        async def wait() -> None:
            try:
                await rx.receive()
            except fearless.nats.ChannelDeleted as exc:
                failures.append(exc)

        tg.start_soon(wait)
        await wait_all_tasks_blocked()  # the receive is waiting
        await node.client_loop.call(js.delete_stream, f"FEARLESS_CH_{node.system}_jobs")
    assert len(failures) == 1
    assert "'jobs' was deleted" in str(failures[0])
    with pytest.raises(fearless.nats.ChannelDeleted):
        await rx.receive()
    with anyio.fail_after(30), pytest.raises(fearless.nats.ChannelDeleted):
        await tx.send(2)
    assert await (await node.int_cell("still")).increment() == 1
    tx2, rx2 = await node.open_channel("jobs", int)
    await tx2.send(3)
    assert await rx2.receive() == 3
