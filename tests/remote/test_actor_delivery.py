"""Remote actors on a real nats-server: what comes back to the sender (dead letters in its own
system, MailboxFull, backpressure), monitoring a remote actor from an actor, durable mailboxes,
the cluster snapshot, and one ``fearless.Ref[M]`` for local and remote refs. Every test runs on
asyncio, uvloop and trio."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest

import fearless
import fearless.nats
from fearless.nats import NatsServer, Node

from .test_actors import Add, Counter, CounterMsg, Get

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def joined(
    server: NatsServer, system: str, actors: fearless.ActorSystem | None = None
) -> AsyncIterator[Node]:
    async with fearless.nats.connect(server.url, system=system, actor_system=actors) as node:
        yield node


class Gated(fearless.Actor[CounterMsg]):
    """A counter whose handler of ``Add`` waits for the gate: a mailbox fills behind it."""

    def __init__(self, gate: anyio.Event, started: anyio.Event) -> None:
        self.gate = gate
        self.started = started
        self.count = 0

    async def handle(self, message: CounterMsg) -> int | float | None:
        match message:
            case Add(amount):
                self.started.set()
                await self.gate.wait()
                self.count += amount
                return None
            case Get():
                return self.count
        return None


async def until(condition: Any, seconds: float = 10.0) -> None:
    """Wait until ``condition()`` holds (a state another process or thread changes)."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110  (a state of another process or thread)
            await anyio.sleep(0.005)


async def test_a_tell_nobody_serves_becomes_a_dead_letter_of_the_senders_system(
    nats_server: NatsServer, system: str
) -> None:
    """Core NATS tells are at-most-once, but not silent: the server says nobody listened, and
    the message is a NO_RESPONDER dead letter of the sending system, the message itself."""
    async with fearless.ActorSystem() as actors, joined(nats_server, system, actors) as node:
        letters = actors.dead_letters()
        ref = node.actor("nobody", CounterMsg)
        ref.tell(Add(7))
        with anyio.fail_after(10):
            letter = await letters.receive()
        assert letter.reason is fearless.DeadLetterReason.NO_RESPONDER
        assert (letter.recipient, letter.message) == ("nobody", Add(7))
        assert node.returns.dead_letters[fearless.DeadLetterReason.NO_RESPONDER] == 1
        letters.close()


async def test_a_full_remote_mailbox_sends_a_tell_back_then_refuses_tells_until_it_has_room(
    nats_server: NatsServer, system: str
) -> None:
    """An actor with a mailbox of 1 is held in its handler, with one message queued. The next
    tell comes back (MAILBOX_FULL, in the sender's system), then tells raise MailboxFull at once
    (nothing sent), and once the actor goes on, tells are taken again. Nothing is lost without a
    trace: every tell is handled, a dead letter, or a raised MailboxFull."""
    gate, started = anyio.Event(), anyio.Event()
    async with (
        fearless.ActorSystem() as serving,
        fearless.ActorSystem() as sending,
        joined(nats_server, system, serving) as host,
        joined(nats_server, system, sending) as far,
    ):
        actor = await serving.spawn(
            lambda: Gated(gate, started), name="gated", mailbox=fearless.Mailbox(1)
        )
        letters = sending.dead_letters()
        async with host.publish(actor, "gated", CounterMsg):
            ref = far.actor("gated", CounterMsg)
            ref.tell(Add(1))  # handled: the handler waits at the gate
            with anyio.fail_after(10):
                await started.wait()
            ref.tell(Add(10))  # queued: the mailbox is full
            await until(lambda: actor.mailbox_statistics().depth == 1)
            ref.tell(Add(100))  # comes back
            with anyio.fail_after(10):
                letter = await letters.receive()
            assert letter.reason is fearless.DeadLetterReason.MAILBOX_FULL
            assert letter.message == Add(100)
            with pytest.raises(fearless.MailboxFull):
                ref.tell(Add(1000))
            gate.set()
            await until(lambda: "gated" not in far.returns.full)
            ref.tell(Add(5))
            assert await ref.ask(Get()) == 16
        letters.close()
        actor.stop()


async def test_a_send_waits_while_the_remote_mailbox_is_full_and_loses_nothing(
    nats_server: NatsServer, system: str
) -> None:
    """Backpressure across processes: 50 sends to a mailbox of 2 each return once taken, and all
    50 are handled, in order of sending."""

    class Log(fearless.Actor[CounterMsg]):
        def __init__(self) -> None:
            self.seen: list[int] = []

        async def handle(self, message: CounterMsg) -> Any:
            match message:
                case Add(amount):
                    self.seen.append(amount)
                    await anyio.lowlevel.checkpoint()
                case Get():
                    return len(self.seen)
            return None

    log = Log()
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system) as host,
        joined(nats_server, system) as far,
    ):
        actor = await actors.spawn(lambda: log, name="log", mailbox=fearless.Mailbox(2))
        async with host.publish(actor, "log", CounterMsg):
            ref = far.actor("log", CounterMsg)
            for n in range(50):
                await ref.send(Add(n))
            assert await ref.ask(Get()) == 50
        assert log.seen == list(range(50))
        actor.stop()


class Watcher(fearless.Actor[str]):
    """Monitors the remote actor it is given; records the notices it gets."""

    def __init__(self, target: fearless.Ref[Any], notices: list[fearless.Terminated]) -> None:
        self.target = target
        self.notices = notices

    async def on_start(self) -> None:
        self.context.monitor(self.target)

    async def handle(self, message: str) -> None:
        if message == "demonitor":
            self.context.demonitor(self.target)

    async def on_terminated(self, notice: fearless.Terminated) -> None:
        self.notices.append(notice)


async def test_an_actor_monitoring_a_remote_actor_gets_terminated_when_it_is_unpublished(
    nats_server: NatsServer, system: str
) -> None:
    """context.monitor takes a RemoteRef: the notice comes (once) when the publication ends,
    with the reason "stopped" and the remote ref; a demonitored watch tells nothing."""
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system) as host,
        joined(nats_server, system) as far,
    ):
        counter = await actors.spawn(Counter, name="counter")
        notices: list[fearless.Terminated] = []
        quiet: list[fearless.Terminated] = []
        ref = far.actor("counter", CounterMsg)
        async with host.publish(counter, "counter", CounterMsg):
            watcher = await actors.spawn(lambda: Watcher(ref, notices), name="watcher")
            unwatcher = await actors.spawn(lambda: Watcher(ref, quiet), name="unwatcher")
            await unwatcher.ask("demonitor")  # handled: the watch is cancelled
            assert await ref.ask(Get()) == 0
            assert notices == []
        await until(lambda: len(notices) == 1)
        (notice,) = notices
        assert (notice.ref, notice.reason, notice.name) == (ref, "stopped", "counter")
        assert not notice.failed
        # The watcher that demonitored heard nothing; the other hears nothing more.
        assert await ref.wait_stopped() is not None
        assert quiet == []
        assert len(notices) == 1
        for actor in (watcher, unwatcher, counter):
            actor.stop()


async def test_one_function_typed_with_ref_takes_a_local_and_a_remote_ref(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """fearless.Ref[M] is what both refs are: the same code tells, sends and asks either."""

    async def add_and_get(ref: fearless.Ref[CounterMsg]) -> int:
        ref.tell(Add(1))
        await ref.send(Add(2))
        return await ref.ask(Get())

    async with fearless.ActorSystem() as actors, joined(nats_server, system) as far:
        counter = await actors.spawn(Counter, name="counter")
        async with node.publish(counter, "counter", CounterMsg):
            remote: fearless.nats.RemoteRef[CounterMsg] = far.actor("counter", CounterMsg)
            assert await add_and_get(counter) == 3
            assert await add_and_get(remote) == 6
        counter.stop()


class Flaky(fearless.Actor[CounterMsg]):
    """Fails the first ``failures`` times it handles ``Add(13)``; counts what it handled."""

    def __init__(self, handled: list[int], failures: list[int]) -> None:
        self.handled = handled
        self.failures = failures

    async def handle(self, message: CounterMsg) -> Any:
        match message:
            case Add(13) if self.failures[0] > 0:
                self.failures[0] -= 1
                raise RuntimeError("flaky")
            case Add(amount):
                self.handled.append(amount)
            case Get():
                return len(self.handled)
        return None


async def test_a_durable_mailbox_keeps_messages_while_nobody_serves_and_retries_a_failure(
    nats_server: NatsServer, system: str
) -> None:
    """Sends to a durable mailbox are stored while no process serves the name; once an actor
    is published they are all handled, once each; a handler that fails twice (its supervisor
    restarts it) gets the message again after a delay, and it is handled once it succeeds."""
    handled: list[int] = []
    failures = [2]
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system, actors) as host,
        joined(nats_server, system) as far,
    ):
        supervisor = await actors.spawn(
            lambda: fearless.Supervisor(
                [fearless.ChildSpec(lambda: Flaky(handled, failures), name="flaky")],
                max_restarts=10,
            ),
            name="sup",
        )
        flaky = actors.lookup("flaky")
        assert flaky is not None
        letters = actors.dead_letters()
        # Created by a first publication, then left: the mailbox outlives it.
        async with host.publish(flaky, "jobs", CounterMsg, durable=True, ack_wait=5):
            pass
        ref = far.actor("jobs", CounterMsg)
        for n in (1, 13, 2):
            await ref.send(Add(n))  # stored: nobody serves the name now
        ref.tell(Add(3))
        async with host.publish(flaky, "jobs", CounterMsg, durable=True, ack_wait=5):
            await until(lambda: len(handled) >= 4)
            assert await flaky.ask(Get()) == 4
        assert sorted(handled) == [1, 2, 3, 13]  # each once
        failed = [await letters.receive() for _ in range(2)]
        assert {letter.reason for letter in failed} == {fearless.DeadLetterReason.HANDLER_FAILED}
        letters.close()
        assert await far.delete_mailbox("jobs") is True
        assert await far.delete_mailbox("jobs") is False
        supervisor.stop()


async def test_a_full_durable_mailbox_makes_sends_wait_and_tells_come_back(
    nats_server: NatsServer, system: str
) -> None:
    """A durable mailbox of capacity 3 with nobody serving: three sends are stored, a fourth
    waits; a tell comes back as MAILBOX_FULL (sender's system) and the next tells raise
    MailboxFull; once an actor drains the mailbox, the waiting send returns and all four sent
    messages are handled."""
    handled: list[int] = []
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system) as host,
        joined(nats_server, system, actors) as far,
    ):
        worker = await actors.spawn(lambda: Flaky(handled, [0]), name="worker")
        letters = actors.dead_letters()
        async with host.publish(worker, "box", CounterMsg, durable=True, capacity=3, ack_wait=2):
            pass
        ref = far.actor("box", CounterMsg)
        for n in range(3):
            await ref.send(Add(n))
        async with anyio.create_task_group() as tg:
            sent = anyio.Event()

            async def fourth() -> None:
                await ref.send(Add(3))
                sent.set()

            tg.start_soon(fourth)
            ref.tell(Add(99))
            with anyio.fail_after(10):
                letter = await letters.receive()
            assert (letter.reason, letter.message) == (
                fearless.DeadLetterReason.MAILBOX_FULL,
                Add(99),
            )
            with pytest.raises(fearless.MailboxFull):
                ref.tell(Add(98))
            assert not sent.is_set()
            async with host.publish(
                worker, "box", CounterMsg, durable=True, capacity=3, ack_wait=2
            ):
                with anyio.fail_after(20):
                    await sent.wait()
                await until(lambda: sorted(handled) == [0, 1, 2, 3])
        letters.close()
        with pytest.raises(ValueError, match="exists with capacity 3, not 5"):
            async with host.publish(worker, "box", CounterMsg, durable=True, capacity=5):
                pass
        with pytest.raises(ValueError, match="has a durable mailbox"):
            async with host.publish(worker, "box", CounterMsg):
                pass
        await host.delete_mailbox("box")
        worker.stop()


async def test_garbage_in_a_durable_mailbox_is_a_dead_letter_and_the_rest_is_handled(
    nats_server: NatsServer, system: str
) -> None:
    """A foreign payload stored in the mailbox's stream is an UNDECODABLE dead letter of the
    serving system, refused for good (not redelivered), and the messages around it are
    handled."""
    handled: list[int] = []
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system) as host,
        joined(nats_server, system) as far,
    ):
        worker = await actors.spawn(lambda: Flaky(handled, [0]), name="worker")
        letters = actors.dead_letters()
        async with host.publish(worker, "box", CounterMsg, durable=True, ack_wait=2):
            pass
        ref = far.actor("box", CounterMsg)
        await ref.send(Add(1))
        subject = f"fearless.{system}.actor.box.tell.Add"
        js = far.jetstream
        await far.client_loop.call(js.publish, subject, b"{]")
        await ref.send(Add(2))
        async with host.publish(worker, "box", CounterMsg, durable=True, ack_wait=2) as publication:
            await until(lambda: sorted(handled) == [1, 2])
            with anyio.fail_after(10):
                letter = await letters.receive()
            assert letter.reason is fearless.DeadLetterReason.UNDECODABLE
            assert publication.undecodable == 1
        letters.close()
        await host.delete_mailbox("box")
        worker.stop()


async def test_the_cluster_snapshot_lists_every_publication_with_its_state(
    nats_server: NatsServer, system: str
) -> None:
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system) as host,
        joined(nats_server, system) as far,
    ):
        a = await actors.spawn(Counter, name="a")
        b = await actors.spawn(Counter, name="b")
        async with (
            host.publish(a, "single", CounterMsg),
            host.publish(b, "pooled", CounterMsg, pool=True),
        ):
            snapshot = await far.cluster_snapshot()
            assert snapshot.system == system
            assert [(x.name, x.pool, x.alive) for x in snapshot.actors] == [
                ("pooled", True, True),
                ("single", False, True),
            ]
            assert snapshot.nodes == (host.id,)
            assert snapshot.serving("single")[0].message_types == ("Add", "Get", "Divide")
            assert "pool member" in str(snapshot)
        assert (await far.cluster_snapshot()).actors == ()
        a.stop()
        b.stop()


async def test_bad_arguments_to_publish_are_refused_with_the_value(node: Node) -> None:
    async with fearless.ActorSystem() as actors:
        counter = await actors.spawn(Counter, name="counter")
        with pytest.raises(ValueError, match="capacity must be a positive int"):
            node.publish(counter, "c", CounterMsg, durable=True, capacity=0)
        with pytest.raises(ValueError, match="ack_wait must be a number of seconds above 0"):
            node.publish(counter, "c", CounterMsg, durable=True, ack_wait=-1)
        with pytest.raises(ValueError, match="capacity is a durable mailbox's"):
            node.publish(counter, "c", CounterMsg, capacity=3)
        with pytest.raises(TypeError, match="publish takes a local ActorRef"):
            node.publish(node.actor("x", CounterMsg), "c", CounterMsg)  # type: ignore[arg-type]
        counter.stop()


def test_messages_are_never_pickled() -> None:
    """The wire format is JSON: a message encodes to what msgspec makes of it, nothing else."""
    assert msgspec.json.encode(Add(1)) == b'{"amount":1}'


@pytest.mark.parametrize("durable", [False, True], ids=["core", "durable"])
async def test_cancelled_sends_are_handled_at_most_once_and_returned_sends_always(
    nats_server: NatsServer, system: str, durable: bool
) -> None:
    """150 sends, each cancelled after a random delay (or not at all): every send that returned
    was handled, a cancelled one at most once (its request may have been in flight), nothing
    was handled twice, and nothing was handled that was not sent."""
    seed = random.randrange(2**32)
    chooser = random.Random(seed)
    handled: list[int] = []
    returned: set[int] = set()
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system) as host,
        joined(nats_server, system) as far,
    ):
        worker = await actors.spawn(lambda: Flaky(handled, [0]), name="worker")
        options: dict[str, Any] = {"durable": True, "ack_wait": 5} if durable else {}
        async with host.publish(worker, "w", CounterMsg, **options):
            ref = far.actor("w", CounterMsg)
            for n in range(150):
                delay = chooser.choice([None, 0.0, 0.0001, 0.0005, 0.001, 0.003])
                with anyio.move_on_after(delay if delay is not None else math.inf):
                    await ref.send(Add(n))
                    returned.add(n)
            if durable:
                stream = f"FEARLESS_MB_{system}_w"
                js = host.jetstream

                async def drained() -> bool:
                    info = await host.client_loop.call(js.consumer_info, stream, "mailbox")
                    return bool(info.num_pending == 0 and info.num_ack_pending == 0)

                with anyio.fail_after(20):
                    while not await drained():  # noqa: ASYNC110  (the server's state)
                        await anyio.sleep(0.01)
            else:
                await ref.ask(Get())  # behind every send on the same subscription: all handled
        await host.delete_mailbox("w")
        worker.stop()
    assert 0 < len(returned) < 150, f"seed {seed}: the test cancelled nothing, or everything"
    assert returned <= set(handled), f"seed {seed}"
    assert len(handled) == len(set(handled)), f"seed {seed}: duplicates"
    assert set(handled) <= set(range(150)), f"seed {seed}"


async def test_an_actor_that_stops_while_published_is_reported_stopped_to_its_watchers(
    nats_server: NatsServer, system: str
) -> None:
    """The publication follows its actor: once the actor stops, the registry forgets it (a
    remote wait_stopped returns "stopped", lookup fails), and a send says ActorStopped."""
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system) as host,
        joined(nats_server, system) as far,
    ):
        counter = await actors.spawn(Counter, name="counter")
        async with host.publish(counter, "counter", CounterMsg):
            ref = await far.lookup("counter", CounterMsg)
            counter.stop()
            with anyio.fail_after(10):
                notice = await ref.wait_stopped()
            assert (notice.reason, notice.ref) == ("stopped", ref)
            with pytest.raises(LookupError, match="nobody publishes it"):
                await far.lookup("counter", CounterMsg)
            with pytest.raises(fearless.ActorStopped):
                await ref.send(Add(1))


class Refuser(fearless.Actor[CounterMsg]):
    """Refuses a Get with ErrorReply (the actor does not fail); holds Add at the gate."""

    def __init__(self, gate: anyio.Event, started: anyio.Event) -> None:
        self.gate = gate
        self.started = started

    async def handle(self, message: CounterMsg) -> Any:
        match message:
            case Get():
                return fearless.ErrorReply(PermissionError("counts are private"))
            case Add():
                self.started.set()
                await self.gate.wait()
        return None


async def test_an_error_reply_is_a_remote_error_and_drop_policies_drop_where_the_mailbox_is(
    nats_server: NatsServer, system: str
) -> None:
    """ErrorReply answers a remote ask with a RemoteError naming the exception's type, and the
    actor goes on. A "drop_newest" mailbox drops in the serving process (its dead letters), and
    nothing comes back to the sender: the drop policy is the mailbox's, as locally."""
    gate, started = anyio.Event(), anyio.Event()
    async with (
        fearless.ActorSystem() as serving,
        fearless.ActorSystem() as sending,
        joined(nats_server, system, serving) as host,
        joined(nats_server, system, sending) as far,
    ):
        mailbox = fearless.Mailbox(1, overflow="drop_newest")
        actor = await serving.spawn(lambda: Refuser(gate, started), name="r", mailbox=mailbox)
        served, sent = serving.dead_letters(), sending.dead_letters()
        async with host.publish(actor, "r", CounterMsg):
            ref = far.actor("r", CounterMsg)
            with pytest.raises(fearless.nats.RemoteError) as raised:
                await ref.ask(Get())
            assert raised.value.type_name == "PermissionError"
            assert "counts are private" in str(raised.value)
            ref.tell(Add(1))  # handled: held at the gate
            with anyio.fail_after(10):
                await started.wait()
            ref.tell(Add(2))  # queued
            ref.tell(Add(3))  # dropped (newest), in the serving system
            with anyio.fail_after(10):
                letter = await served.receive()
            assert (letter.reason, letter.message) == (
                fearless.DeadLetterReason.DROPPED_NEWEST,
                Add(3),
            )
            gate.set()
            with pytest.raises(fearless.nats.RemoteError):
                await ref.ask(Get())  # behind the tells: they were all taken or dropped
        with pytest.raises(anyio.WouldBlock):
            sent.receive_nowait()  # nothing came back to the sender
        served.close()
        sent.close()
        actor.stop()


async def test_a_foreign_message_to_a_nodes_return_address_is_ignored(
    nats_server: NatsServer, system: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage published to the address tells come back on is logged and changes nothing: a
    tell sent afterwards to nobody still comes back as a dead letter."""
    async with fearless.ActorSystem() as actors, joined(nats_server, system, actors) as node:
        letters = actors.dead_letters()
        nc = node.connection
        for garbage in (b"not json", b"42"):
            await node.client_loop.call(nc.publish, f"{node.returns.prefix}.x.1", garbage)
        node.actor("nobody", CounterMsg).tell(Add(1))
        with anyio.fail_after(10):
            letter = await letters.receive()
        assert (letter.reason, letter.message) == (fearless.DeadLetterReason.NO_RESPONDER, Add(1))
        letters.close()
    assert sum("a foreign message" in record.getMessage() for record in caplog.records) == 2


class Upper(fearless.Actor[str]):
    """Takes plain strings: answers an ask with the string in upper case."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def handle(self, message: str) -> str:
        self.seen.append(message)
        return message.upper()


async def test_an_actor_of_a_plain_type_takes_plain_values(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """Plain types are message types too: a str actor gets strs (decoded as str), answers an
    ask, and refuses another type at the sender."""
    seen: list[str] = []
    async with fearless.ActorSystem() as actors, joined(nats_server, system) as far:
        upper = await actors.spawn(lambda: Upper(seen), name="upper")
        async with node.publish(upper, "upper", str):
            ref = far.actor("upper", str)
            ref.tell("a")
            await ref.send("b")
            assert await ref.ask("c") == "C"
            with pytest.raises(TypeError, match="is not a message 'upper' takes"):
                ref.tell(1)  # type: ignore[arg-type]
        assert seen == ["a", "b", "c"]
        upper.stop()


class Blob(msgspec.Struct, fearless.Request[str], frozen=True):
    """A message (and, asked, a reply) of any size."""

    size: int
    data: str = ""


class Blobs(fearless.Actor[Blob]):
    async def handle(self, message: Blob) -> str:
        return "x" * message.size


async def test_too_large_messages_and_replies_are_refused_with_payload_too_large(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """A message larger than the server takes raises PayloadTooLarge at the sender (tell, send,
    ask) and the tells around it are delivered; a reply too large comes back as a RemoteError
    naming PayloadTooLarge, at once, not as a timeout."""
    big = "x" * (node.max_payload + 1)
    async with fearless.ActorSystem() as actors, joined(nats_server, system) as far:
        blobs = await actors.spawn(Blobs, name="blobs")
        counter = await actors.spawn(Counter, name="counter")
        async with node.publish(blobs, "blobs", Blob), node.publish(counter, "c", CounterMsg):
            ref, other = far.actor("blobs", Blob), far.actor("c", CounterMsg)
            other.tell(Add(1))
            with pytest.raises(fearless.nats.PayloadTooLarge, match="encodes to"):
                ref.tell(Blob(0, big))
            other.tell(Add(2))
            with pytest.raises(fearless.nats.PayloadTooLarge):
                await ref.send(Blob(0, big))
            with pytest.raises(fearless.nats.PayloadTooLarge):
                await ref.ask(Blob(0, big))
            assert await other.ask(Get()) == 3
            with anyio.fail_after(5), pytest.raises(fearless.nats.RemoteError) as raised:
                await ref.ask(Blob(node.max_payload))
            assert raised.value.type_name == "PayloadTooLarge"
            assert await ref.ask(Blob(3)) == "xxx"
        blobs.stop()
        counter.stop()


async def test_a_ref_of_a_closed_node_raises_closed_at_once(
    nats_server: NatsServer, system: str
) -> None:
    """After its node closed, a ref's tell, send and ask raise ClosedResourceError at once, in
    any order (a tell never leaves a send or an ask waiting for it)."""
    async with joined(nats_server, system) as far:
        ref = far.actor("c", CounterMsg)
    with pytest.raises(anyio.ClosedResourceError):
        ref.tell(Add(1))
    with anyio.fail_after(5):
        with pytest.raises(anyio.ClosedResourceError):
            await ref.send(Add(1))
        with pytest.raises(anyio.ClosedResourceError):
            await ref.ask(Get(), timeout=2)


class Liar(fearless.Actor[Get]):
    async def handle(self, message: Get) -> str:
        return "not an int"


async def test_bad_names_types_and_arguments_are_refused_with_the_value(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """Each misuse raises a named exception naming the value, before anything is made; a reply
    of the wrong type is a RemoteError naming the type it should have been."""

    class Ping(msgspec.Struct):
        n: int

    other_ping = type("Ping", (msgspec.Struct,), {"__annotations__": {"text": str}})
    with pytest.raises(ValueError, match="at most 128 characters"):
        node.actor("x" * 129, CounterMsg)
    with pytest.raises(TypeError, match="two message classes named 'Ping'"):
        node.actor("p", Ping | other_ping)
    async with fearless.ActorSystem() as actors, joined(nats_server, system) as far:
        counter = await actors.spawn(Counter, name="counter")
        for bad in (math.inf, 1e10, True, 0):
            with pytest.raises(ValueError, match="ack_wait must be"):
                node.publish(counter, "c", CounterMsg, durable=True, ack_wait=bad)
        with pytest.raises(TypeError, match="durable must be True or False"):
            node.publish(counter, "c", CounterMsg, durable="no")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="capacity must be"):
            node.publish(counter, "c", CounterMsg, durable=True, capacity=True)
        async with node.publish(counter, "c", CounterMsg):
            with anyio.fail_after(2), pytest.raises(ValueError, match="published alone by"):
                async with node.publish(counter, "c", CounterMsg):
                    pass  # this node's own: refused at once
            with pytest.raises(ValueError, match="timeout must be None or a non-negative"):
                await far.actor("c", CounterMsg).ask(Get(), timeout=-1)
        liar = await actors.spawn(Liar, name="liar")
        async with node.publish(liar, "liar", Get):
            with pytest.raises(fearless.nats.RemoteError, match="does not decode into int"):
                await far.actor("liar", Get).ask(Get())
        counter.stop()
        liar.stop()
