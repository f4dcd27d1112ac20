"""Actors: spawn, tell, send, ask, lifecycle, stopping, names, dead letters, death watch, timers,
snapshots. Every test runs on asyncio, uvloop and trio.

Time-based behaviour (timers, shutdown timeouts) runs on ``fearless.testing.FakeClock``; a wait for
something to happen is an event or a probe, never a sleep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

import fearless
from fearless import (
    Actor,
    ActorNameTaken,
    ActorStartError,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    DeadLetterReason,
    DeadlockError,
    LinkedActorFailed,
    Mailbox,
    Request,
    Terminated,
)
from fearless.testing import FakeClock, Probe, wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Add:
    n: int


@dataclass(frozen=True)
class Get(Request[int]):
    pass


class Counter(Actor[Add | Get]):
    def __init__(self) -> None:
        self.count = 0

    async def handle(self, message: Add | Get) -> int | None:
        match message:
            case Add(n):
                self.count += n
            case Get():
                return self.count
        return None


class Echo(Actor[Any]):
    """Replies with the message; raises it if it is an exception; waits on an event if told one."""

    async def handle(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        if isinstance(message, anyio.Event):
            await message.wait()
        return message


def drain(letters: fearless.Subscription[DeadLetter]) -> list[DeadLetter]:
    out = []
    while True:
        try:
            out.append(letters.receive_nowait())
        except anyio.WouldBlock:
            return out


# -- tell, send, ask -------------------------------------------------------------------------------


async def test_tell_send_and_ask_are_handled_in_order() -> None:
    async with ActorSystem() as system:
        counter = await system.spawn(Counter)
        for i in range(100):
            counter.tell(Add(i))
        await counter.send(Add(1000))
        total: int = await counter.ask(Get())  # typed through Request[int]
        assert total == sum(range(100)) + 1000


async def test_messages_from_one_sender_arrive_in_the_order_sent() -> None:
    seen: list[int] = []

    class Recorder(Actor[int]):
        async def handle(self, message: int) -> None:
            seen.append(message)

    async with ActorSystem() as system:
        ref = await system.spawn(Recorder)
        for i in range(500):
            if i % 3:
                ref.tell(i)
            else:
                await ref.send(i)
        ref.stop()
        await ref.wait_stopped()
    assert seen == list(range(500))


async def test_ask_returns_the_handlers_value_and_raises_its_exception() -> None:
    async with ActorSystem() as system:
        letters = system.dead_letters()
        echo = await system.spawn(Echo, name="echo", restart="temporary")
        assert await echo.ask("hello") == "hello"
        error = KeyError("nope")
        with pytest.raises(KeyError) as caught:
            await echo.ask(error)
        assert caught.value is error
        notice = await echo.wait_stopped()  # the handler raised: the actor failed
        assert notice.reason == "failed"
        assert notice.error is error
        [letter] = drain(letters)
        assert letter == DeadLetter(error, "echo", DeadLetterReason.HANDLER_FAILED, error)
        letters.close()


async def test_a_late_reply_goes_to_dead_letters_and_never_to_the_next_ask() -> None:
    """docs/design/supervision.md, case 22: the ask times out; the next ask gets its own reply,
    never the stale one, which goes to dead letters."""
    async with ActorSystem() as system:
        letters = system.dead_letters()
        echo = await system.spawn(Echo, name="slow")
        release = anyio.Event()
        with pytest.raises(TimeoutError, match="slow"):
            await echo.ask(release, timeout=0.05)
        release.set()
        assert await echo.ask("second") == "second"
        [letter] = drain(letters)
        assert letter.reason is DeadLetterReason.REPLY_UNDELIVERED
        assert letter.message is release
        assert letter.recipient == "slow"
        letters.close()


async def test_a_handlers_own_timeout_error_is_not_taken_for_the_asks_timeout() -> None:
    """A ``TimeoutError`` raised by the handler reaches the asker as it was raised, not as the
    ask's own timeout (whose message says the reply goes to dead letters)."""
    error = TimeoutError("upstream database timed out")

    class Flaky(Actor[Any]):
        async def handle(self, message: Any) -> None:
            raise error

    async with ActorSystem() as system:
        ref = await system.spawn(Flaky)
        with pytest.raises(TimeoutError) as caught:
            await ref.ask("q", timeout=10)
        assert caught.value is error


async def test_a_cancelled_ask_leaves_its_message_to_be_handled() -> None:
    handled: list[str] = []

    class Slow(Actor[str]):
        async def handle(self, message: str) -> str:
            handled.append(message)
            return message

    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref = await system.spawn(Slow, mailbox=Mailbox(4))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ref.ask("never")  # cancelled before it enqueued anything
        assert await ref.ask("after") == "after"
        assert handled == ["after"]
        assert drain(letters) == []
        letters.close()


async def test_an_ask_to_a_stopped_actor_raises_at_once() -> None:
    """docs/design/supervision.md, case 23: ``ActorStopped`` at once, never a timeout."""
    async with ActorSystem() as system:
        ref = await system.spawn(Echo)
        ref.stop()
        await ref.wait_stopped()
        with anyio.fail_after(5):
            with pytest.raises(ActorStopped):
                await ref.ask("x", timeout=100)


async def test_asks_still_queued_when_the_actor_stops_raise_actor_stopped() -> None:
    async with ActorSystem() as system:
        letters = system.dead_letters()
        gate = anyio.Event()
        ref = await system.spawn(Echo, name="busy")
        ref.tell(gate)
        results: list[object] = []

        async def ask() -> None:
            try:
                results.append(await ref.ask("queued"))
            except ActorStopped as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await wait_all_tasks_blocked()
            ref.kill()
        assert len(results) == 1
        assert isinstance(results[0], ActorStopped)
        reasons = sorted(letter.reason.value for letter in drain(letters))
        assert reasons == ["actor_stopped", "killed"]
        letters.close()


async def test_an_actor_asking_itself_gets_an_error_at_once() -> None:
    """docs/design/supervision.md, case 24: an actor asking itself from its own handler gets
    ``DeadlockError`` at once instead of waiting for ever."""

    class Narcissus(Actor[str]):
        async def handle(self, message: str) -> str:
            if message == "self":
                try:
                    await self.context.ref.ask("inner", timeout=100)
                except DeadlockError as exc:
                    return f"refused: {exc}"
            return message

    async with ActorSystem() as system:
        ref = await system.spawn(Narcissus, name="narcissus")
        with anyio.fail_after(5):
            answer = await ref.ask("self")
        assert answer.startswith("refused: actor 'narcissus' asked itself")


async def test_an_ask_cycle_through_another_actor_is_refused() -> None:
    class Ping(Actor[Any]):
        peer: fearless.ActorRef[Any] | None = None

        async def handle(self, message: Any) -> Any:
            if isinstance(message, fearless.ActorRef):
                self.peer = message
                return None
            assert self.peer is not None
            if message == "start":
                return await self.peer.ask("bounce", timeout=100)
            try:
                return await self.peer.ask("back", timeout=100)
            except DeadlockError:
                return "cycle refused"

    async with ActorSystem() as system:
        a = await system.spawn(Ping, name="a")
        b = await system.spawn(Ping, name="b")
        await a.ask(b)
        await b.ask(a)
        with anyio.fail_after(5):
            assert await a.ask("start") == "cycle refused"


async def test_an_ask_whose_asker_gave_up_does_not_count_as_a_deadlock() -> None:
    """X asks A, then gives up (cancelled); A, still handling X's ask, then asks X, which is
    idle by now: that is no deadlock, and A gets X's answer (while A's own reply to X's
    abandoned ask goes to dead letters)."""
    release = anyio.Event()
    asking = anyio.CancelScope()

    class X(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            if isinstance(message, fearless.ActorRef):
                with asking:
                    await message.ask("slow")
                return "gave up"
            return f"x answers {message}"

    class A(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            await release.wait()
            x = self.context.system.lookup("x")
            assert x is not None
            return await x.ask("ping")

    async with ActorSystem() as system:
        letters = system.dead_letters()
        x = await system.spawn(X, name="x")
        a = await system.spawn(A, name="a")
        async with anyio.create_task_group() as tg:
            tg.start_soon(x.ask, a)
            await wait_all_tasks_blocked()
            asking.cancel()  # X stops waiting for A's reply
            await wait_all_tasks_blocked()
            release.set()
        await wait_all_tasks_blocked()
        assert a.is_alive
        letter = letters.receive_nowait()  # A's answer to X's abandoned ask
        assert (letter.message, letter.reason) == (
            "x answers ping",
            DeadLetterReason.REPLY_UNDELIVERED,
        )
        letters.close()


async def test_an_ask_from_a_task_the_handler_started_is_not_a_deadlock() -> None:
    class Spawner(Actor[str]):
        async def handle(self, message: str) -> Any:
            if message == "go":
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._ask_other)
            return message

        async def _ask_other(self) -> None:
            other = self.context.system.lookup("other")
            assert other is not None
            assert await other.ask("hi") == "hi"

    async with ActorSystem() as system:
        await system.spawn(Echo, name="other")
        ref = await system.spawn(Spawner)
        assert await ref.ask("go") == "go"


async def test_ask_timeout_must_be_a_non_negative_number() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Echo)
        with pytest.raises(ValueError, match="-1"):
            await ref.ask("x", timeout=-1)


# -- lifecycle -------------------------------------------------------------------------------------


async def test_hooks_run_in_order_and_spawn_waits_for_on_start() -> None:
    log: list[str] = []

    class Hooked(Actor[str]):
        async def on_start(self) -> None:
            await anyio.lowlevel.checkpoint()
            log.append(f"start {self.context.name}")

        async def handle(self, message: str) -> None:
            log.append(message)

        async def on_stop(self) -> None:
            log.append("stop")

    async with ActorSystem() as system:
        ref = await system.spawn(Hooked, name="h")
        assert log == ["start h"]
        ref.tell("m")
    assert log == ["start h", "m", "stop"]


async def test_a_failing_on_start_makes_spawn_raise_and_frees_the_name() -> None:
    class Broken(Actor[Any]):
        async def on_start(self) -> None:
            raise OSError("no database")

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        with pytest.raises(ActorStartError, match="'db'") as caught:
            await system.spawn(Broken, name="db")
        assert isinstance(caught.value.__cause__, OSError)
        assert caught.value.name == "db"
        assert system.lookup("db") is None
        await system.spawn(Echo, name="db")  # the name is free again


async def test_killing_an_actor_during_on_start_makes_spawn_raise_actor_stopped() -> None:
    """A kill that lands while ``on_start`` runs: ``spawn`` raises ``ActorStopped``, the name
    is free, and a message told to it meanwhile is a dead letter."""
    started = anyio.Event()

    class SlowStart(Actor[Any]):
        async def on_start(self) -> None:
            started.set()
            await anyio.sleep_forever()

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        letters = system.dead_letters()
        outcome: list[BaseException] = []

        async def spawn() -> None:
            try:
                await system.spawn(SlowStart, name="slow")
            except ActorStopped as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(spawn)
            await started.wait()
            ref = system.lookup("slow")
            assert ref is not None
            ref.tell("early")
            ref.kill()
        assert len(outcome) == 1
        assert system.lookup("slow") is None
        letter = letters.receive_nowait()
        assert (letter.message, letter.reason) == ("early", DeadLetterReason.ACTOR_STOPPED)
        letters.close()


async def test_factory_errors_are_reported_clearly() -> None:
    class SyncHandle(Actor[Any]):
        def handle(self, message: Any) -> None:  # type: ignore[override]
            pass

    async with ActorSystem() as system:
        with pytest.raises(ActorStartError) as caught:
            await system.spawn(lambda: "not an actor")  # type: ignore[arg-type,return-value]
        assert isinstance(caught.value.__cause__, TypeError)
        with pytest.raises(ActorStartError) as caught:
            await system.spawn(SyncHandle)
        assert "async def" in str(caught.value.__cause__)
        with pytest.raises(TypeError, match="callable"):
            await system.spawn("Counter")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Mailbox"):
            await system.spawn(Counter, mailbox=10)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="shutdown"):
            await system.spawn(Counter, shutdown=-1)


async def test_the_actor_context_is_not_available_in_init() -> None:
    class Early(Actor[Any]):
        def __init__(self) -> None:
            self.context.ref  # noqa: B018

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        with pytest.raises(ActorStartError) as caught:
            await system.spawn(Early)
        assert "from on_start on" in str(caught.value.__cause__)


async def test_stop_handles_what_is_queued_first_and_refuses_what_comes_after() -> None:
    handled: list[int] = []

    class Slow(Actor[Any]):
        async def handle(self, message: Any) -> None:
            if isinstance(message, anyio.Event):
                await message.wait()
            else:
                handled.append(message)

    async with ActorSystem() as system:
        letters = system.dead_letters()
        gate = anyio.Event()
        ref = await system.spawn(Slow, name="slow")
        ref.tell(gate)
        ref.tell(1)
        ref.tell(2)
        ref.stop()
        ref.tell(3)  # after the stop message: refused
        gate.set()
        notice = await ref.wait_stopped()
        assert (notice.ref, notice.reason, notice.error) == (ref, "stopped", None)
        assert handled == [1, 2]
        ref.tell(4)  # after the actor stopped
        assert [(d.message, d.reason) for d in drain(letters)] == [
            (3, DeadLetterReason.ACTOR_STOPPED),
            (4, DeadLetterReason.ACTOR_STOPPED),
        ]
        letters.close()


async def test_kill_cancels_now_and_skips_on_stop() -> None:
    stopped: list[str] = []

    class Stuck(Actor[Any]):
        async def handle(self, message: Any) -> None:
            await anyio.sleep_forever()

        async def on_stop(self) -> None:
            stopped.append("on_stop")

    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref = await system.spawn(Stuck, name="stuck")
        ref.tell("hang")
        ref.tell("queued")
        await wait_all_tasks_blocked()
        ref.kill()
        ref.kill()  # idempotent
        notice = await ref.wait_stopped()
        assert notice.reason == "killed"
        assert notice.error is None
        assert notice.failed
        assert stopped == []
        assert [(d.message, d.reason) for d in drain(letters)] == [
            ("hang", DeadLetterReason.KILLED),
            ("queued", DeadLetterReason.ACTOR_STOPPED),
        ]
        assert not ref.is_alive
        letters.close()


async def test_an_ask_to_an_actor_that_is_winding_down_raises_at_once() -> None:
    """A child's ``on_stop`` asks its parent, which is waiting for that very child to stop: the
    parent will never handle it, so the ask raises ``ActorStopped`` at once instead of hanging."""
    outcome: list[str] = []

    class Child(Actor[Any]):
        async def handle(self, message: Any) -> None:
            pass

        async def on_stop(self) -> None:
            parent = self.context.system.lookup("parent")
            assert parent is not None
            try:
                await parent.ask("are you there?")
            except ActorStopped:
                outcome.append("ActorStopped")

    class Parent(Actor[Any]):
        async def on_start(self) -> None:
            await self.context.spawn(Child, shutdown=None)

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        parent = await system.spawn(Parent, name="parent", shutdown=None)
        parent.stop()
        with anyio.fail_after(10):
            assert (await parent.wait_stopped()).reason == "stopped"
    assert outcome == ["ActorStopped"]


async def test_a_failed_actor_runs_on_stop_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    stopped: list[str] = []

    class Fragile(Actor[str]):
        async def handle(self, message: str) -> None:
            raise RuntimeError(message)

        async def on_stop(self) -> None:
            stopped.append("on_stop")

    async with ActorSystem() as system:
        ref = await system.spawn(Fragile, name="fragile", restart="temporary")
        ref.tell("crash")
        notice = await ref.wait_stopped()
    assert notice.reason == "failed"
    assert isinstance(notice.error, RuntimeError)
    assert stopped == ["on_stop"]
    assert any("fragile" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_leaving_the_system_stops_actors_in_reverse_start_order() -> None:
    order: list[str] = []

    class Named(Actor[Any]):
        async def handle(self, message: Any) -> None:
            pass

        async def on_stop(self) -> None:
            order.append(self.context.name)

    async with ActorSystem() as system:
        for name in "abc":
            await system.spawn(Named, name=name)
    assert order == ["c", "b", "a"]
    with pytest.raises(RuntimeError, match="closed"):
        await system.spawn(Named)


async def test_an_actor_that_ignores_stop_is_killed_after_its_shutdown_timeout() -> None:
    clock = FakeClock()
    stopped: list[str] = []

    class Stubborn(Actor[Any]):
        async def handle(self, message: Any) -> None:
            await anyio.sleep_forever()

        async def on_stop(self) -> None:
            stopped.append("on_stop")

    async with anyio.create_task_group() as tg:
        spawned = anyio.Event()
        refs: list[fearless.ActorRef[Any]] = []

        async def run_system() -> None:
            async with ActorSystem(clock=clock) as system:
                refs.append(await system.spawn(Stubborn, shutdown=2.0))
                refs[0].tell("hang")
                spawned.set()

        tg.start_soon(run_system)
        await spawned.wait()
        await clock.advance(1.9)
        assert refs[0].is_alive  # asked to stop, still in its handler
        await clock.advance(0.1)
        notice = await refs[0].wait_stopped()
        assert notice.reason == "shutdown"  # killed by the system's shutdown: not abnormal
        assert not notice.failed
    assert stopped == []


async def test_an_error_in_the_block_kills_every_actor() -> None:
    class Stuck(Actor[Any]):
        async def handle(self, message: Any) -> None:
            await anyio.sleep_forever()

    refs = []

    async def run() -> None:
        async with ActorSystem() as system:
            for _ in range(3):
                ref = await system.spawn(Stuck, shutdown=None)
                ref.tell("hang")
                refs.append(ref)
            raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):  # as raised, not in an exception group
        await run()
    assert [(await r.wait_stopped()).reason for r in refs] == ["shutdown"] * 3


async def test_cancelling_the_block_while_it_stops_actors_still_closes_the_system() -> None:
    """The block is cancelled while it waits for an actor whose ``on_stop`` hangs: the system
    still ends closed, and a dead-letter subscriber sees the end of the stream instead of
    waiting for ever."""

    class Hang(Actor[Any]):
        async def handle(self, message: Any) -> None:
            pass

        async def on_stop(self) -> None:
            await anyio.sleep_forever()

    letters: list[fearless.Subscription[fearless.DeadLetter]] = []
    with anyio.CancelScope() as outer:

        async def cancel_when_stuck() -> None:
            await wait_all_tasks_blocked()
            outer.cancel()

        async with anyio.create_task_group() as tg, ActorSystem() as system:
            letters.append(system.dead_letters())
            await system.spawn(Hang, shutdown=None)
            tg.start_soon(cancel_when_stuck)
    assert outer.cancelled_caught
    assert repr(system) == "<ActorSystem 'actors' closed>"
    with pytest.raises(anyio.EndOfStream):
        letters[0].receive_nowait()
    letters[0].close()


async def test_children_stop_before_their_parent_in_reverse_order() -> None:
    order: list[str] = []

    class Leaf(Actor[Any]):
        async def handle(self, message: Any) -> None:
            pass

        async def on_stop(self) -> None:
            order.append(self.context.name)

    class Parent(Actor[Any]):
        async def on_start(self) -> None:
            for name in ("p/1", "p/2"):
                await self.context.spawn(Leaf, name=name)

        async def handle(self, message: Any) -> None:
            pass

        async def on_stop(self) -> None:
            order.append(self.context.name)

    async with ActorSystem() as system:
        parent = await system.spawn(Parent, name="p")
        tree = system.snapshot()
        assert [a.name for a in tree.actors] == ["p"]
        assert [c.name for c in tree.actors[0].children] == ["p/1", "p/2"]
        parent.stop()
        await parent.wait_stopped()
        assert order == ["p/2", "p/1", "p"]
        assert system.snapshot().actors == ()


async def test_killing_a_parent_kills_its_children() -> None:
    class Leaf(Actor[Any]):
        async def handle(self, message: Any) -> None:
            pass

    class Parent(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            return await self.context.spawn(Leaf, name="leaf")

    async with ActorSystem() as system:
        parent = await system.spawn(Parent)
        leaf = await parent.ask("spawn")
        parent.kill()
        assert (await leaf.wait_stopped()).reason == "shutdown"
        assert (await parent.wait_stopped()).reason == "killed"


async def test_a_killed_parent_reports_terminated_only_after_its_children_are_gone() -> None:
    """When a killed parent's ``wait_stopped`` returns, its children have stopped too and their
    names are free."""

    class Leaf(Actor[Any]):
        async def handle(self, message: Any) -> None:
            pass

    class Parent(Actor[Any]):
        async def on_start(self) -> None:
            await self.context.spawn(Leaf, name="child")

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        parent = await system.spawn(Parent)
        child = system.lookup("child")
        assert child is not None
        parent.kill()
        await parent.wait_stopped()
        assert not child.is_alive
        assert system.lookup("child") is None
        await system.spawn(Leaf, name="child")  # the name is free


async def test_a_parent_that_fails_to_start_takes_its_children_with_it() -> None:
    """Children spawned in an ``on_start`` that then fails are gone before ``spawn`` raises."""

    class Leaf(Actor[Any]):
        async def handle(self, message: Any) -> None:
            pass

    class Doomed(Actor[Any]):
        async def on_start(self) -> None:
            await self.context.spawn(Leaf, name="kid")
            raise OSError("no disk")

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        with pytest.raises(ActorStartError):
            await system.spawn(Doomed, name="doomed")
        assert system.lookup("kid") is None
        assert system.snapshot().actors == ()


async def test_a_stopping_actor_cannot_spawn_children() -> None:
    """``context.spawn`` from ``on_stop`` raises a ``RuntimeError`` naming the actor: a child
    started then would outlive its parent."""
    seen: list[BaseException] = []

    class Late(Actor[Any]):
        async def handle(self, message: Any) -> None:
            pass

        async def on_stop(self) -> None:
            try:
                await self.context.spawn(Late)
            except RuntimeError as exc:
                seen.append(exc)

    async with ActorSystem() as system:
        ref = await system.spawn(Late, name="late")
        ref.stop()
        await ref.wait_stopped()
    assert len(seen) == 1
    assert "'late' is stopping" in str(seen[0])


# -- names -----------------------------------------------------------------------------------------


async def test_names_are_unique_and_released_when_the_actor_stops() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Counter, name="counter")
        assert system.lookup("counter") is ref
        with pytest.raises(ActorNameTaken, match="'counter'"):
            await system.spawn(Counter, name="counter")
        with pytest.raises(ValueError, match="non-empty"):
            await system.spawn(Counter, name="")
        ref.stop()
        await ref.wait_stopped()
        assert system.lookup("counter") is None
        again = await system.spawn(Counter, name="counter")
        assert again is not ref
        assert system.lookup("counter") is again


async def test_unnamed_actors_are_named_after_their_type_and_not_registered() -> None:
    async with ActorSystem() as system:
        a = await system.spawn(Counter)
        b = await system.spawn(Counter)
        assert a.name.startswith("Counter#")
        assert b.name.startswith("Counter#")
        assert a.name != b.name
        assert system.lookup(a.name) is None


# -- death watch -----------------------------------------------------------------------------------


class Watcher(Actor[Any]):
    def __init__(self, probe: fearless.ActorRef[Any]) -> None:
        self.probe = probe

    async def handle(self, message: Any) -> None:
        kind, ref = message
        getattr(self.context, kind)(ref)

    async def on_terminated(self, notice: Terminated) -> None:
        self.probe.tell((notice.name, notice.reason, type(notice.error).__name__))


async def test_monitor_delivers_terminated_with_the_reason() -> None:
    async with ActorSystem() as system:
        probe = await Probe[Any].spawn(system)
        watcher = await system.spawn(lambda: Watcher(probe.ref))
        for reason in ("stopped", "killed", "failed"):
            target = await system.spawn(Echo, name=reason, restart="temporary")
            await watcher.ask(("monitor", target))
            if reason == "stopped":
                target.stop()
            elif reason == "killed":
                target.kill()
            else:
                target.tell(ValueError("x"))
            expected_error = "ValueError" if reason == "failed" else "NoneType"
            await probe.expect((reason, reason, expected_error))


async def test_monitoring_a_stopped_actor_delivers_the_notice_at_once() -> None:
    """docs/design/supervision.md, case 20: monitoring an actor that has already stopped
    delivers its ``Terminated`` notice at once."""
    async with ActorSystem() as system:
        probe = await Probe[Any].spawn(system)
        watcher = await system.spawn(lambda: Watcher(probe.ref))
        target = await system.spawn(Echo, name="gone")
        target.stop()
        await target.wait_stopped()
        await watcher.ask(("monitor", target))
        await probe.expect(("gone", "stopped", "NoneType"))


async def test_demonitor_stops_the_notices() -> None:
    async with ActorSystem() as system:
        probe = await Probe[Any].spawn(system)
        watcher = await system.spawn(lambda: Watcher(probe.ref))
        target = await system.spawn(Echo)
        await watcher.ask(("monitor", target))
        await watcher.ask(("demonitor", target))
        target.stop()
        await target.wait_stopped()
        await probe.expect_no_message()


async def test_a_link_propagates_failure_but_not_a_graceful_stop() -> None:
    """docs/design/supervision.md, case 21: a failure of A fails B, linked to it; a graceful
    stop does not."""
    async with ActorSystem() as system:
        probe = await Probe[Any].spawn(system)
        a = await system.spawn(Echo, name="a")
        b = await system.spawn(lambda: Watcher(probe.ref), name="b", restart="temporary")
        await b.ask(("link", a))
        a.stop()
        await a.wait_stopped()
        await probe.expect_no_message()
        assert b.is_alive

        a2 = await system.spawn(Echo, name="a2", restart="temporary")
        await b.ask(("link", a2))
        boom = ValueError("boom")
        a2.tell(boom)
        notice = await b.wait_stopped()
        assert notice.reason == "failed"
        assert isinstance(notice.error, LinkedActorFailed)
        assert notice.error.__cause__ is boom
        assert notice.error.terminated.name == "a2"


def test_shutdown_is_not_an_abnormal_end() -> None:
    """Only ``"failed"`` and ``"killed"`` are abnormal (what a link propagates); a
    ``"shutdown"``, like a graceful stop, is not."""
    assert [
        Terminated(None, reason).failed  # type: ignore[arg-type]
        for reason in ("stopped", "shutdown", "killed", "failed")
    ] == [False, False, True, True]


async def test_an_actor_that_traps_links_gets_the_notice_instead() -> None:
    class Trapper(Watcher):
        trap_links = True

    async with ActorSystem() as system:
        probe = await Probe[Any].spawn(system)
        trapper = await system.spawn(lambda: Trapper(probe.ref))
        a = await system.spawn(Echo, name="doomed")
        await trapper.ask(("link", a))
        a.kill()
        await probe.expect(("doomed", "killed", "NoneType"))
        assert trapper.is_alive


async def test_linking_to_an_actor_that_already_failed_fails_at_once() -> None:
    async with ActorSystem() as system:
        probe = await Probe[Any].spawn(system)
        a = await system.spawn(Echo, restart="temporary")
        a.tell(ValueError("early"))
        await a.wait_stopped()
        b = await system.spawn(lambda: Watcher(probe.ref), restart="temporary")
        b.tell(("link", a))
        assert isinstance((await b.wait_stopped()).error, LinkedActorFailed)


async def test_a_link_fails_the_partner_even_mid_handler() -> None:
    class Stuck(Actor[Any]):
        async def handle(self, message: Any) -> None:
            if message == "hang":
                await anyio.sleep_forever()
            self.context.link(message)

    async with ActorSystem() as system:
        letters = system.dead_letters()
        a = await system.spawn(Echo)
        b = await system.spawn(Stuck, name="stuck", restart="temporary")
        await b.ask(a)
        b.tell("hang")
        await wait_all_tasks_blocked()
        a.kill()
        notice = await b.wait_stopped()
        assert isinstance(notice.error, LinkedActorFailed)
        assert [(d.message, d.reason) for d in drain(letters)] == [
            ("hang", DeadLetterReason.KILLED)
        ]
        letters.close()


async def test_linking_an_actor_to_itself_is_refused() -> None:
    class Selfish(Actor[Any]):
        async def handle(self, message: Any) -> str:
            try:
                self.context.link(self.context.ref)
            except ValueError as exc:
                return str(exc)
            return "linked"

    async with ActorSystem() as system:
        ref = await system.spawn(Selfish)
        assert "cannot link to itself" in await ref.ask("x")


# -- timers ----------------------------------------------------------------------------------------


class Timed(Actor[Any]):
    def __init__(self, probe: fearless.ActorRef[Any]) -> None:
        self.probe = probe

    async def handle(self, message: Any) -> Any:
        if isinstance(message, anyio.Event):
            await message.wait()
            return None
        match message:
            case ("after", delay, payload, key):
                return self.context.send_after(delay, payload, key=key)
            case ("every", interval, payload, key):
                return self.context.send_every(interval, payload, key=key)
            case ("cancel", key):
                return self.context.cancel_timer(key)
            case _:
                self.probe.tell((self.context.system.clock.now(), message))
                return None


async def test_send_after_delivers_once_at_its_time() -> None:
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        probe = await Probe[Any].spawn(system)
        ref = await system.spawn(lambda: Timed(probe.ref))
        await ref.ask(("after", 1.5, "ding", None))
        await clock.advance(1.4)
        await probe.expect_no_message()
        await clock.advance(0.1)
        await probe.expect((1.5, "ding"))
        await clock.advance(10)
        await probe.expect_no_message()


async def test_send_every_is_a_fixed_rate_and_a_key_replaces_its_timer() -> None:
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        probe = await Probe[Any].spawn(system)
        ref = await system.spawn(lambda: Timed(probe.ref))
        assert await ref.ask(("every", 1.0, "tick", "t")) == "t"
        await clock.advance(3.0)
        for at in (1.0, 2.0, 3.0):
            await probe.expect((at, "tick"))
        await ref.ask(("every", 0.5, "tock", "t"))  # same key: replaces the ticker
        await clock.advance(1.0)
        await probe.expect((3.5, "tock"))
        await probe.expect((4.0, "tock"))
        assert await ref.ask(("cancel", "t")) is True
        assert await ref.ask(("cancel", "t")) is False
        await clock.advance(5)
        await probe.expect_no_message()


async def test_timers_are_cancelled_when_the_actor_stops() -> None:
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        letters = system.dead_letters()
        probe = await Probe[Any].spawn(system)
        ref = await system.spawn(lambda: Timed(probe.ref))
        await ref.ask(("every", 1.0, "tick", None))
        await ref.ask(("after", 2.0, "once", None))
        ref.stop()
        await ref.wait_stopped()
        await clock.advance(5)
        await probe.expect_no_message()
        assert drain(letters) == []  # cancelled, not delivered to a stopped actor
        letters.close()


async def test_timer_arguments_are_validated() -> None:
    async with ActorSystem() as system:
        probe = await Probe[Any].spawn(system)
        ref = await system.spawn(lambda: Timed(probe.ref))
        with pytest.raises(ValueError, match="delay"):
            await ref.ask(("after", -1, "x", None))
        ref = await system.spawn(lambda: Timed(probe.ref))
        with pytest.raises(ValueError, match="interval"):
            await ref.ask(("every", 0, "x", None))


async def test_a_timer_that_finds_a_full_block_mailbox_goes_to_dead_letters() -> None:
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        letters = system.dead_letters()
        probe = await Probe[Any].spawn(system)
        ref = await system.spawn(lambda: Timed(probe.ref), mailbox=Mailbox(1), name="full")
        await ref.ask(("after", 1.0, "late", None))
        gate = anyio.Event()
        ref.tell(gate)  # the actor waits on it: busy
        await wait_all_tasks_blocked()
        ref.tell("filler")  # the one slot
        with pytest.raises(fearless.MailboxFull):
            ref.tell("overflow")
        await clock.advance(1.0)
        [letter] = drain(letters)
        assert (letter.message, letter.reason, letter.recipient) == (
            "late",
            DeadLetterReason.MAILBOX_FULL,
            "full",
        )
        assert system.snapshot().actors[1].dead_letters == 1
        gate.set()
        letters.close()


# -- snapshots -------------------------------------------------------------------------------------


async def test_snapshot_reports_state_depth_and_counters() -> None:
    async with ActorSystem(name="bank") as system:
        gate = anyio.Event()
        ref = await system.spawn(Echo, name="teller", mailbox=Mailbox(8, overflow="drop_newest"))
        await ref.ask("warm up")
        ref.tell(gate)
        await wait_all_tasks_blocked()
        for i in range(10):
            ref.tell(i)
        snap = system.snapshot()
        [teller] = snap.actors
        assert (teller.name, teller.actor_type, teller.state) == ("teller", "Echo", "running")
        assert (teller.mailbox_depth, teller.mailbox_capacity, teller.overflow) == (
            8,
            8,
            "drop_newest",
        )
        assert teller.handled == 1
        assert teller.dead_letters == 2
        assert snap.dead_letters == 2
        text = snap.render()
        assert text.splitlines()[0] == "bank  (dead letters: 2)"
        assert "teller [Echo] running, mailbox 8/8 drop_newest, handled 1" in text
        stats = ref.mailbox_statistics()
        assert stats.depth == 8
        assert stats.dropped == 2
        assert stats.peak_depth == 8
        gate.set()


async def test_the_system_can_be_entered_once_and_validates_its_arguments() -> None:
    system = ActorSystem()
    async with system:
        pass
    with pytest.raises(RuntimeError, match="once"):
        async with system:
            pass
    with pytest.raises(ValueError, match="yield_every"):
        ActorSystem(yield_every=0)
    with pytest.raises(TypeError, match="clock"):
        ActorSystem(clock=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity"):
        ActorSystem(dead_letter_capacity=0)


async def test_a_busy_actor_does_not_starve_the_event_loop() -> None:
    ticks = 0

    class Busy(Actor[int]):
        async def handle(self, message: int) -> None:
            pass  # never awaits

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with ActorSystem(yield_every=16) as system:
        ref = await system.spawn(Busy, mailbox=Mailbox(math.inf))
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            for i in range(3200):
                ref.tell(i)
            await ref.ask(0)
            tg.cancel_scope.cancel()
    assert ticks >= 3200 // 16 // 2  # the ticker ran at least about once per 16 messages
