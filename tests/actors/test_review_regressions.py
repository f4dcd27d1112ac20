"""Bugs a review of the actor runtime found, each pinned by the scenario that showed it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

import fearless
from fearless import (
    Actor,
    ActorStartError,
    ActorStopped,
    ActorSystem,
    DeadLetterReason,
    Mailbox,
    MessageDropped,
    Terminated,
)
from fearless.testing import Harness

pytestmark = pytest.mark.anyio


async def test_an_ask_whose_asker_gave_up_does_not_count_as_a_deadlock() -> None:
    # X asks A, then gives up (cancelled); A, still handling X's ask, then asks X, which is
    # idle by now: that is no deadlock, and A must get X's answer.
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


async def test_a_killed_parent_reports_terminated_only_after_its_children_are_gone() -> None:
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
        assert system.lookup("kid") is None  # gone before spawn raised
        assert system.snapshot().actors == ()


async def test_a_stopping_actor_cannot_spawn_children() -> None:
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


async def test_an_ask_to_an_actor_that_is_winding_down_raises_at_once() -> None:
    # A child's on_stop asks its parent, which is waiting for that very child to stop: the
    # parent will never handle it, so the ask must fail at once instead of hanging.
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


async def test_a_handlers_own_timeout_error_is_not_taken_for_the_asks_timeout() -> None:
    error = TimeoutError("upstream database timed out")

    class Flaky(Actor[Any]):
        async def handle(self, message: Any) -> None:
            raise error

    async with ActorSystem() as system:
        ref = await system.spawn(Flaky)
        with pytest.raises(TimeoutError) as caught:
            await ref.ask("q", timeout=10)
        assert caught.value is error


async def test_cancelling_the_block_while_it_stops_actors_still_closes_the_system() -> None:
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
        letters[0].receive_nowait()  # subscribers see the end, instead of waiting for ever
    letters[0].close()


@pytest.mark.parametrize("overflow", ["drop_newest", "drop_oldest"])
async def test_message_dropped_names_the_policy_the_same_way_on_both_paths(overflow: Any) -> None:
    class Stuck(Actor[Any]):
        async def handle(self, message: Any) -> None:
            if isinstance(message, anyio.Event):
                await message.wait()

    async with ActorSystem() as system:
        gate = anyio.Event()
        ref = await system.spawn(Stuck, mailbox=Mailbox(1, overflow=overflow))
        ref.tell(gate)
        await wait_all_tasks_blocked()
        errors: list[MessageDropped] = []

        async def ask(message: str) -> None:
            try:
                await ref.ask(message)
            except MessageDropped as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "first")
            await wait_all_tasks_blocked()
            tg.start_soon(ask, "second")
            await wait_all_tasks_blocked()
            gate.set()
        [error] = errors
        assert f"({overflow})" in str(error)
        assert error.message == ("second" if overflow == "drop_newest" else "first")


async def test_a_harness_answers_a_failing_ask_instead_of_leaving_it_hanging() -> None:
    class Fails(Actor[Any]):
        async def handle(self, message: Any) -> None:
            raise KeyError(message)

    async with Harness(Fails) as harness:
        caught: list[BaseException] = []

        async def ask() -> None:
            try:
                await harness.ref.ask("k")
            except KeyError as exc:
                caught.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await wait_all_tasks_blocked()
            with pytest.raises(KeyError):
                await harness.run_queued()
        assert len(caught) == 1


def test_shutdown_is_not_an_abnormal_end() -> None:
    assert [
        Terminated(None, reason).failed  # type: ignore[arg-type]
        for reason in ("stopped", "shutdown", "killed", "failed")
    ] == [False, False, True, True]
