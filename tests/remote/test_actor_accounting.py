"""Randomized: whatever a process tells and sends to a remote actor with a small ``"block"``
mailbox, while the actor is held and released at random, every message is accounted for once:
handled by the actor, a dead letter of the sending system, or refused at the sender with
``MailboxFull``; never lost without a trace, never twice. Runs on asyncio, uvloop and trio
against the session's nats-server."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fearless
import fearless.nats
from fearless.nats import NatsServer

from .test_actors import Add, CounterMsg, Get

pytestmark = pytest.mark.anyio

OPERATIONS = st.lists(
    st.sampled_from(["tell", "tell", "tell", "send", "hold", "release"]), min_size=1, max_size=60
)


class Held(fearless.Actor[CounterMsg]):
    """Records each Add; while the gate is shut, its handler waits for it."""

    def __init__(self, handled: list[int]) -> None:
        self.handled = handled
        self.gate = anyio.Event()
        self.gate.set()

    async def handle(self, message: CounterMsg) -> Any:
        match message:
            case Add(amount):
                await self.gate.wait()
                self.handled.append(amount)
            case Get():
                return len(self.handled)
        return None


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=OPERATIONS, capacity=st.integers(1, 4))
async def test_every_remote_message_is_handled_dead_lettered_or_refused_exactly_once(
    nats_server: NatsServer, operations: list[str], capacity: int
) -> None:
    system = f"acct{id(operations) % 10**8}x{capacity}"
    handled: list[int] = []
    refused: list[int] = []
    dead: list[int] = []
    sent = 0
    actor_instance = Held(handled)
    async with (
        fearless.ActorSystem() as serving,
        fearless.ActorSystem() as sending,
        fearless.nats.connect(nats_server.url, system=system, actor_system=serving) as host,
        fearless.nats.connect(nats_server.url, system=system, actor_system=sending) as far,
    ):
        letters = sending.dead_letters()
        actor = await serving.spawn(
            lambda: actor_instance, name="held", mailbox=fearless.Mailbox(capacity)
        )
        async with host.publish(actor, "held", CounterMsg):
            ref = far.actor("held", CounterMsg)
            async with anyio.create_task_group() as tg:
                for operation in operations:
                    if operation == "hold":
                        if actor_instance.gate.is_set():
                            actor_instance.gate = anyio.Event()
                    elif operation == "release":
                        actor_instance.gate.set()
                    elif operation == "tell":
                        try:
                            ref.tell(Add(sent))
                        except fearless.MailboxFull as exc:
                            refused.append(exc.message.amount)
                        sent += 1
                    else:  # a send waits while the mailbox is full: in a task of its own
                        tg.start_soon(ref.send, Add(sent))
                        sent += 1
                    await anyio.lowlevel.checkpoint()
                actor_instance.gate.set()
            # Until every message is accounted for (a lost one fails here; one counted twice
            # fails the assertion below).
            with anyio.fail_after(20):
                while len(handled) + len(refused) + len(dead) < sent:
                    with anyio.move_on_after(0.05):
                        dead.append((await letters.receive()).message.amount)
        letters.close()
        actor.stop()
    accounted = handled + refused + dead
    assert sorted(accounted) == list(range(sent)), (handled, refused, dead)
