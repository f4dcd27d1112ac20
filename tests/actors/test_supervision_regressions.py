"""Supervision bugs a review found, each pinned by the scenario that showed it (deterministic
versions: events and a FakeClock instead of the reviewer's real-time sleeps)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from fearless import (
    Actor,
    ActorStartError,
    ActorSystem,
    Backoff,
    ChildSpec,
    RestartChild,
    Supervisor,
    TerminateChild,
    WhichChildren,
)
from fearless.testing import FakeClock

pytestmark = pytest.mark.anyio


class Boom(Actor[Any]):
    """Raises on "boom"; waits on an event it is told; links to an actor named in "link:x"."""

    async def handle(self, message: Any) -> Any:
        if isinstance(message, anyio.Event):
            await message.wait()
        elif message == "boom":
            raise RuntimeError(f"{self.context.name}: boom")
        elif isinstance(message, str) and message.startswith("link:"):
            target = self.context.system.lookup(message[5:])
            assert target is not None
            self.context.link(target)
        return message


def lookup(system: ActorSystem, name: str) -> Any:
    ref = system.lookup(name)
    assert ref is not None, name
    return ref


async def states(sup: Any) -> list[tuple[str | None, str]]:
    return [(info.name, info.state) for info in await sup.ask(WhichChildren())]


async def test_a_stop_by_hand_survives_a_group_restart() -> None:
    async with ActorSystem() as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(Boom, name="a"), ChildSpec(Boom, name="b")],
                strategy="one_for_all",
                max_restarts=5,
            ),
            restart="temporary",
        )
        a, b = lookup(system, "a"), lookup(system, "b")
        gate = anyio.Event()
        a.tell(gate)  # a is busy, so its stop waits behind
        await wait_all_tasks_blocked()
        a.stop()  # by hand: final, whatever the restart type
        b.tell("boom")  # the sibling fails while a's stop is still queued
        await wait_all_tasks_blocked()
        gate.set()
        with anyio.fail_after(5):
            assert (await a.wait_stopped()).reason in ("stopped", "shutdown")
        await wait_all_tasks_blocked()
        assert await states(sup) == [("a", "ended"), ("b", "running")]
        assert [child.restarts for child in system.snapshot().actors[0].children] == [1]


async def test_a_failed_restart_child_keeps_the_spec() -> None:
    fail = [True]

    class Fussy(Actor[Any]):
        async def on_start(self) -> None:
            if fail[0]:
                raise OSError("not now")

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        fail[0] = False
        sup = await system.spawn(lambda: Supervisor([ChildSpec(Fussy, name="w")]), name="sup")
        await sup.ask(TerminateChild("w"))
        fail[0] = True
        with pytest.raises(ActorStartError):
            await sup.ask(RestartChild("w"))
        assert await states(sup) == [("w", "ended")]  # the spec is still there
        fail[0] = False
        await sup.ask(RestartChild("w"))
        assert await states(sup) == [("w", "running")]


async def test_a_kill_by_hand_during_a_backoff_ends_the_child_at_once() -> None:
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(Boom, name="w", backoff=Backoff(30.0, 60.0, jitter=0.0))]
            ),
            name="sup",
        )
        w = lookup(system, "w")
        w.tell("boom")
        await clock.advance(0)
        assert await states(sup) == [("w", "restarting")]
        w.kill()
        await clock.advance(0)
        assert not w.is_alive
        assert system.lookup("w") is None
        assert (await w.wait_stopped()).reason == "killed"
        assert await states(sup) == [("w", "ended")]
        await clock.advance(60)  # the cancelled restart never happens
        assert await states(sup) == [("w", "ended")]


async def test_a_link_failure_between_instances_does_not_poison_the_next() -> None:
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        await system.spawn(
            lambda: Supervisor([ChildSpec(Boom, name="w", backoff=Backoff(1.0, 1.0, jitter=0))]),
            name="sup",
        )
        x = await system.spawn(Boom, name="x", restart="temporary")
        w = lookup(system, "w")
        await w.ask("link:x")
        w.tell("boom")
        await clock.advance(0)  # w waits 1 s for its restart
        x.tell("boom")  # the link fires while w is between instances
        await clock.advance(1.0)
        assert w.is_alive  # restarted, healthy
        w.kill()
        notice = await w.wait_stopped()
        assert (notice.reason, notice.error) == ("killed", None)


async def test_a_temporary_child_that_raised_ends_failed_even_if_its_supervisor_stops_first() -> (
    None
):
    async with ActorSystem() as system:
        sup = await system.spawn(
            lambda: Supervisor([ChildSpec(Boom, name="t", restart="temporary")]),
            restart="temporary",
        )
        x = await system.spawn(Boom, name="x", restart="temporary")
        await x.ask("link:t")
        t = lookup(system, "t")
        t.tell("boom")
        sup.stop()  # queued before t's report can be handled
        notice = await t.wait_stopped()
        assert notice.reason == "failed"
        assert isinstance(notice.error, RuntimeError)
        assert (await x.wait_stopped()).reason == "failed"  # the link fired


async def test_a_superseded_group_retry_does_not_start_a_second_instance() -> None:
    live: dict[str, int] = {}
    release = anyio.Event()
    tries = [0]

    class Child(Actor[Any]):
        async def on_start(self) -> None:
            live[self.context.name] = live.get(self.context.name, 0) + 1

        async def on_restart(self, error: BaseException) -> None:
            if self.context.name == "b":
                tries[0] += 1
                if tries[0] == 1:
                    lookup(self.context.system, "a").tell("boom")  # a fails while b's restart runs
                    await release.wait()
                    raise OSError("b's restart fails once")
            await self.on_start()

        async def on_stop(self) -> None:
            live[self.context.name] -= 1

        async def handle(self, message: Any) -> Any:
            if message == "boom":
                raise RuntimeError(f"{self.context.name}: boom")
            return id(self)

    async with ActorSystem() as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(Child, name=n) for n in "abc"], strategy="rest_for_one", max_restarts=10
            ),
            name="sup",
            restart="temporary",
        )
        lookup(system, "b").tell("boom")
        await wait_all_tasks_blocked()
        release.set()
        await wait_all_tasks_blocked()
        assert live == {"a": 1, "b": 1, "c": 1}  # one live instance each
        b = lookup(system, "b")
        assert len({await b.ask("who") for _ in range(10)}) == 1
        sup.stop()
        await sup.wait_stopped()
        assert live == {"a": 0, "b": 0, "c": 0}  # each stopped once: none leaked


async def test_cancelled_spawns_leave_nothing_behind() -> None:
    class SlowStart(Actor[Any]):
        async def on_start(self) -> None:
            await anyio.sleep_forever()

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        for _ in range(20):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await system.spawn(SlowStart, name="s")
            async with anyio.create_task_group() as tg:

                async def spawn() -> None:
                    await system.spawn(SlowStart, name="s")

                tg.start_soon(spawn)
                await wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
        assert system.lookup("s") is None
        assert system.snapshot().actors == ()
