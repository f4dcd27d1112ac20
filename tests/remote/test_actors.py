"""Remote actors, first part, on a real nats-server: an actor published by one node is reached
from another node (another connection, as another process would) on asyncio, uvloop and trio."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgspec
import pytest

import fearless
import fearless.nats
from fearless.nats import NatsServer, Node

pytestmark = pytest.mark.anyio


class Add(msgspec.Struct, frozen=True):
    amount: int


class Get(msgspec.Struct, fearless.Request[int], frozen=True):
    pass


@dataclasses.dataclass(frozen=True)
class Divide(fearless.Request[float]):
    by: int


CounterMsg = Add | Get | Divide


class Counter(fearless.Actor[CounterMsg]):
    def __init__(self) -> None:
        self.count = 0

    async def handle(self, message: CounterMsg) -> int | float | None:
        match message:
            case Add(amount):
                self.count += amount
                return None
            case Get():
                return self.count
            case Divide(by):
                return self.count / by  # by=0: ZeroDivisionError, answered to the asker


@asynccontextmanager
async def other(server: NatsServer, system: str) -> AsyncIterator[Node]:
    async with fearless.nats.connect(server.url, system=system) as node:
        yield node


async def test_tell_send_and_typed_ask_reach_an_actor_in_another_node(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    async with fearless.ActorSystem() as actors:
        counter = await actors.spawn(Counter, name="counter")
        async with node.publish(counter, "counter", CounterMsg), other(nats_server, system) as far:
            ref = far.actor("counter", CounterMsg)
            for _ in range(10):
                ref.tell(Add(1))  # at-most-once, in order
            await ref.send(Add(5))  # enqueued when it returns
            with anyio.fail_after(10):
                total = await ref.ask(Get())
            assert total == 15
            assert isinstance(total, int)
            assert await ref.ask(Divide(2)) == 7.5
        counter.stop()


async def test_a_handlers_exception_comes_back_as_a_remote_error_and_the_actor_goes_on(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    async with fearless.ActorSystem() as actors:
        counter = await actors.spawn(Counter, name="counter", restart="permanent")
        async with node.publish(counter, "counter", CounterMsg), other(nats_server, system) as far:
            ref = far.actor("counter", CounterMsg)
            with pytest.raises(fearless.nats.RemoteError) as caught:
                await ref.ask(Divide(0))
            assert caught.value.type_name == "ZeroDivisionError"
            assert "division by zero" in caught.value.message
            assert "ZeroDivisionError" in caught.value.remote_traceback
            await ref.send(Add(3))
            assert await ref.ask(Get()) == 3
        counter.stop()


async def test_nobody_serving_the_name_gives_actor_stopped_at_once(node: Node) -> None:
    ref = node.actor("nobody", CounterMsg)
    with anyio.fail_after(5):
        with pytest.raises(fearless.ActorStopped, match="nobody"):
            await ref.ask(Get())
        with pytest.raises(fearless.ActorStopped):
            await ref.send(Add(1))
    ref.tell(Add(1))  # at-most-once: gone, no error


async def test_a_wrong_message_is_refused_at_the_sender(node: Node) -> None:
    ref = node.actor("counter", CounterMsg)
    with pytest.raises(TypeError, match="is not a message 'counter' takes"):
        ref.tell("hello")
    with pytest.raises(ValueError, match="actor name must be"):
        node.actor("a.b", CounterMsg)


async def test_garbage_published_to_an_actor_becomes_a_dead_letter_and_the_actor_goes_on(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    async with fearless.ActorSystem() as actors:
        letters = actors.dead_letters()
        counter = await actors.spawn(Counter, name="counter")
        async with (
            node.publish(counter, "counter", CounterMsg) as publication,
            other(nats_server, system) as far,
        ):
            nc = far.connection
            tell = f"fearless.{system}.actor.counter.tell"
            await far.client_loop.call(nc.publish, f"{tell}.Add", b"not json")
            await far.client_loop.call(nc.publish, f"{tell}.Rm", b'{"amount": 1}')
            with anyio.fail_after(10):
                first, second = await letters.receive(), await letters.receive()
            assert first.reason is fearless.DeadLetterReason.UNDECODABLE
            assert first.recipient == "counter"
            assert "not json" in repr(first.message)
            assert "'Rm' is not a message 'counter' takes" in str(second.error)
            assert publication.undecodable == 2
            ref = far.actor("counter", CounterMsg)
            await ref.send(Add(2))
            assert await ref.ask(Get()) == 2
        letters.close()
        counter.stop()


async def test_a_pool_shares_the_messages_among_its_members(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """Two members publish the same name with pool=True: 200 sends are each handled once, by
    one of them, and both take a share."""
    async with fearless.ActorSystem() as actors, other(nats_server, system) as second_node:
        a = await actors.spawn(Counter, name="a")
        b = await actors.spawn(Counter, name="b")
        async with (
            node.publish(a, "workers", CounterMsg, pool=True),
            second_node.publish(b, "workers", CounterMsg, pool=True),
            other(nats_server, system) as far,
        ):
            ref = far.actor("workers", CounterMsg)
            for _ in range(200):
                await ref.send(Add(1))
            counts = [await a.ask(Get()), await b.ask(Get())]
        assert sum(counts) == 200
        assert min(counts) > 0
        a.stop()
        b.stop()
