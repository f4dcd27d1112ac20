"""Group restarts (``one_for_all`` and ``rest_for_one``): how a failed restart is retried, what
``TerminateChild`` does to a restart that is pending, and a child terminated by hand staying
down through a sibling's group restart (``docs/design/supervision.md``, "Group restarts", cases
30-32).

Time is a ``FakeClock``; ``clock.advance(0)`` lets the system settle. What the children did is a
log of ``(hook, child)``; which instance answers is a number each instance gets when it is built.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from fearless import (
    Actor,
    ActorRef,
    ActorSystem,
    ChildSpec,
    RestartChild,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    TerminateChild,
)
from fearless.testing import FakeClock

from .support import lookup, states

pytestmark = pytest.mark.anyio


class World:
    """What the children did: a log of ``(hook, child)``, the factory calls of each child, and
    the calls (by number, from 1) at which a child's factory is to raise."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.built: Counter[str] = Counter()
        self.broken: dict[str, Callable[[int], bool]] = {}
        self.failed_start = anyio.Event()  # set at each factory failure (then made anew)

    def spec(self, name: str, **options: Any) -> ChildSpec:
        def factory() -> Child:
            self.built[name] += 1
            call = self.built[name]
            if name in self.broken and self.broken[name](call):
                self.log.append(("factory failed", name))
                self.failed_start.set()
                raise OSError(f"{name}'s factory call {call} failed")
            return Child(self, name, call)

        return ChildSpec(factory, name=name, **options)

    def count(self, hook: str, name: str) -> int:
        return self.log.count((hook, name))


class Child(Actor[Any]):
    def __init__(self, world: World, name: str, instance: int) -> None:
        self.world = world
        self.child = name
        self.instance = instance

    async def on_start(self) -> None:
        self.world.log.append(("start", self.child))

    async def on_restart(self, error: BaseException) -> None:
        self.world.log.append(("restart", self.child))

    async def on_stop(self) -> None:
        self.world.log.append(("stop", self.child))

    async def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError(f"{self.child}: boom")
        return self.instance


async def spawn_supervisor(
    system: ActorSystem, world: World, strategy: Strategy, max_restarts: int
) -> ActorRef[Any]:
    """``sup`` over children A, B and C; temporary, so that when it gives up the system (and
    the test) goes on."""
    return await system.spawn(
        lambda: Supervisor(
            [world.spec(name) for name in "ABC"],
            strategy=strategy,
            max_restarts=max_restarts,
            within=5.0,
        ),
        name="sup",
        restart="temporary",
    )


async def gave_up(sup: ActorRef[Any]) -> bool:
    if sup.is_alive:
        return False
    notice = await sup.wait_stopped()
    assert isinstance(notice.error, RestartIntensityExceeded), notice
    return True


# -- a failed restart is retried (case 30) ---------------------------------------------------------


async def test_rest_for_one_retries_a_failed_restart_from_the_child_that_failed_only() -> None:
    """``rest_for_one`` [A, B, C]: B fails; B restarts fine, then C's restart fails once. The
    retry starts from C: A is never touched, B (its new instance) is not stopped again, and C
    comes up on the retry. As in OTP, two restarts are counted (B's, and the retry from C): an
    intensity of 2 holds, and one more failure within the window is one too many."""
    clock = FakeClock()
    world = World()
    world.broken["C"] = lambda call: call == 2
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(system, world, "rest_for_one", max_restarts=2)
        a = await lookup(system, "A").ask("who")
        del world.log[:]

        lookup(system, "B").tell("boom")
        await clock.advance(0)
        assert world.log == [
            ("stop", "B"),  # B's failed instance winds down
            ("stop", "C"),  # the rest after it
            ("restart", "B"),
            ("factory failed", "C"),
            ("restart", "C"),  # the retry: C alone
        ]
        assert world.built == {"A": 1, "B": 2, "C": 3}
        assert await lookup(system, "A").ask("who") == a  # untouched
        assert await lookup(system, "B").ask("who") == 2  # the instance of the first round
        assert await lookup(system, "C").ask("who") == 3
        assert await states(sup) == [("A", "running"), ("B", "running"), ("C", "running")]

        assert not await gave_up(sup)  # two restarts: within the intensity of 2
        lookup(system, "A").tell("boom")  # a third within 5 s
        await clock.advance(0)
        assert await gave_up(sup)


async def test_one_for_all_retries_a_failed_restart_of_the_whole_group() -> None:
    """``one_for_all`` [A, B, C]: B fails; A and B restart, then C's restart fails once. The
    retry is the whole group again: the A and B started in the failed round are stopped (B,
    then A) and all three start again, in order. Two restarts are counted, as in OTP."""
    clock = FakeClock()
    world = World()
    world.broken["C"] = lambda call: call == 2
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(system, world, "one_for_all", max_restarts=2)
        del world.log[:]

        lookup(system, "B").tell("boom")
        await clock.advance(0)
        assert world.log == [
            ("stop", "B"),
            ("stop", "C"),
            ("stop", "A"),
            ("restart", "A"),
            ("restart", "B"),
            ("factory failed", "C"),
            ("stop", "B"),  # the round's starts are undone, in reverse order
            ("stop", "A"),
            ("restart", "A"),  # the retry: the whole group
            ("restart", "B"),
            ("restart", "C"),
        ]
        assert world.built == {"A": 3, "B": 3, "C": 3}
        assert [await lookup(system, n).ask("who") for n in "ABC"] == [3, 3, 3]
        assert await states(sup) == [("A", "running"), ("B", "running"), ("C", "running")]

        assert not await gave_up(sup)
        lookup(system, "A").tell("boom")
        await clock.advance(0)
        assert await gave_up(sup)


async def test_every_failed_restart_attempt_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A restart loop is never silent: each failed restart attempt (C's factory raising twice
    under ``rest_for_one``) is an ERROR on ``fearless.actors`` naming the supervisor and the
    actor, with the factory's exception attached, as OTP reports each failed start."""
    clock = FakeClock()
    world = World()
    world.broken["C"] = lambda call: call in (2, 3)
    async with ActorSystem(clock=clock) as system:
        await spawn_supervisor(system, world, "rest_for_one", max_restarts=5)
        with caplog.at_level(logging.ERROR, logger="fearless.actors"):
            lookup(system, "B").tell("boom")
            await clock.advance(0)
        failed = [r for r in caplog.records if "failed to restart" in r.getMessage()]
        prefix = "supervisor 'sup' failed to restart actor 'C': "
        assert [r.getMessage() for r in failed] == [
            prefix + repr(OSError(f"C's factory call {n} failed")) for n in (2, 3)
        ]
        assert all(r.levelno == logging.ERROR for r in failed)
        assert [type(r.exc_info[1]) for r in failed if r.exc_info] == [OSError, OSError]
        assert world.built["C"] == 4


async def test_a_superseded_group_retry_does_not_start_a_second_instance() -> None:
    """``rest_for_one`` [a, b, c]: while b's restart runs, a fails, then b's restart fails. The
    retry that a's failure supersedes must not start anything a second time: one live instance
    of each child at the end, each stopped exactly once when the supervisor stops."""
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
                    lookup(self.context.system, "a").tell("boom")  # a fails while b restarts
                    await release.wait()
                    raise OSError("b's restart fails once")
            await self.on_start()

        async def on_stop(self) -> None:
            live[self.context.name] -= 1

        async def handle(self, message: Any) -> Any:
            if message == "boom":
                raise RuntimeError(f"{self.context.name}: boom")
            return id(self)

    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(Child, name=n) for n in "abc"], strategy="rest_for_one", max_restarts=10
            ),
            name="sup",
            restart="temporary",
        )
        lookup(system, "b").tell("boom")
        await clock.advance(0)  # b's restart waits on release
        release.set()
        await clock.advance(0)
        assert live == {"a": 1, "b": 1, "c": 1}  # one live instance each
        b = lookup(system, "b")
        assert len({await b.ask("who") for _ in range(10)}) == 1
        sup.stop()
        with anyio.fail_after(5):
            await sup.wait_stopped()
        assert live == {"a": 0, "b": 0, "c": 0}  # each stopped once: none leaked


# -- TerminateChild cancels a pending restart (case 31) --------------------------------------------


async def test_terminating_a_child_in_a_restart_loop_leaves_the_rest_after_it_down() -> None:
    """``rest_for_one`` [A, B, C], an intensity that never gives up: B fails and its factory
    keeps raising, so its restart is retried through the mailbox, again and again.
    ``TerminateChild("B")`` ends the loop: B and C stay down (``"ended"``), C is never started
    again, not even after the clock moves on, and A keeps running, untouched (as in OTP)."""
    clock = FakeClock()
    world = World()
    world.broken["B"] = lambda call: call >= 2
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(system, world, "rest_for_one", max_restarts=10**9)
        a = lookup(system, "A")
        a_instance = await a.ask("who")
        c = lookup(system, "C")

        lookup(system, "B").tell("boom")
        for _ in range(3):  # let it loop: three failed restarts of B
            world.failed_start = anyio.Event()
            with anyio.fail_after(5):
                await world.failed_start.wait()
        with anyio.fail_after(5):
            await sup.ask(TerminateChild("B"))
        built = world.built["B"]
        await clock.advance(60)
        assert world.built == {"A": 1, "B": built, "C": 1}  # no restart after the terminate
        assert world.count("start", "C") == 1
        assert world.count("restart", "C") == 0
        assert await states(sup) == [("A", "running"), ("B", "ended"), ("C", "ended")]
        assert not c.is_alive
        assert system.lookup("C") is None
        assert await a.ask("who") == a_instance
        assert world.count("stop", "A") == 0

        await sup.ask(RestartChild("C"))  # still startable by hand: the spec is kept
        assert await states(sup) == [("A", "running"), ("B", "ended"), ("C", "running")]


async def test_terminating_a_later_child_of_a_pending_group_keeps_retrying_the_earlier_one() -> (
    None
):
    """``rest_for_one`` [A, B, C]: B is in a restart loop, and ``TerminateChild("C")`` ends C
    only: the restart of B, which C was waiting on, is not cancelled. B comes up once its
    factory works again; C stays down (terminated by hand), and A is untouched."""
    clock = FakeClock()
    world = World()
    broken = [True]
    world.broken["B"] = lambda call: call >= 2 and broken[0]
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(system, world, "rest_for_one", max_restarts=10**9)
        lookup(system, "B").tell("boom")
        with anyio.fail_after(5):
            await world.failed_start.wait()
        with anyio.fail_after(5):
            await sup.ask(TerminateChild("C"))
        broken[0] = False  # B's next retry succeeds
        await clock.advance(0)
        assert await states(sup) == [("A", "running"), ("B", "running"), ("C", "ended")]
        assert world.count("start", "C") == 1
        assert world.count("restart", "C") == 0
        assert world.count("stop", "A") == 0


async def test_one_for_all_terminating_a_child_in_a_restart_loop_leaves_it_and_later_down() -> None:
    """``one_for_all`` [A, B, C]: B fails and its factory keeps raising, so the group's restart
    is retried again and again. ``TerminateChild("B")`` ends the loop: B and C stay down,
    and A, which was only waiting for the group's retry, runs (as in OTP, where A is left
    running from the failed round)."""
    clock = FakeClock()
    world = World()
    world.broken["B"] = lambda call: call >= 2
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(system, world, "one_for_all", max_restarts=10**9)
        lookup(system, "B").tell("boom")
        for _ in range(3):
            world.failed_start = anyio.Event()
            with anyio.fail_after(5):
                await world.failed_start.wait()
        with anyio.fail_after(5):
            await sup.ask(TerminateChild("B"))
        await clock.advance(60)
        built = dict(world.built)
        await clock.advance(60)
        assert world.built == built  # the loop has ended
        assert world.built["C"] == 1  # C never started again
        assert await states(sup) == [("A", "running"), ("B", "ended"), ("C", "ended")]
        assert await lookup(system, "A").ask("who") == world.built["A"]


# -- a child terminated by hand stays down (case 32, a deviation from OTP) -------------------------


async def test_a_terminated_child_stays_down_through_a_siblings_one_for_all_restart() -> None:
    """``one_for_all`` [A, B, C]: ``TerminateChild("B")``, then A fails. C and A are stopped
    and start again (new instances); B, terminated on purpose, stays down (``"ended"``) where
    OTP would start it with the rest. ``RestartChild("B")`` brings it back, in its place."""
    clock = FakeClock()
    world = World()
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(system, world, "one_for_all", max_restarts=3)
        await sup.ask(TerminateChild("B"))
        del world.log[:]

        lookup(system, "A").tell("boom")
        await clock.advance(0)
        assert world.log == [
            ("stop", "A"),
            ("stop", "C"),
            ("restart", "A"),
            ("restart", "C"),
        ]
        assert world.built == {"A": 2, "B": 1, "C": 2}
        assert await states(sup) == [("A", "running"), ("B", "ended"), ("C", "running")]
        assert system.lookup("B") is None

        await sup.ask(RestartChild("B"))
        assert await states(sup) == [("A", "running"), ("B", "running"), ("C", "running")]
        assert world.built == {"A": 2, "B": 2, "C": 2}


async def test_a_terminated_child_stays_down_through_a_siblings_rest_for_one_restart() -> None:
    """``rest_for_one`` [A, B, C]: ``TerminateChild("C")``, then B fails. B starts again; C,
    after it but terminated on purpose, stays down (OTP would start it); A is untouched."""
    clock = FakeClock()
    world = World()
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(system, world, "rest_for_one", max_restarts=3)
        await sup.ask(TerminateChild("C"))
        del world.log[:]

        lookup(system, "B").tell("boom")
        await clock.advance(0)
        assert world.log == [("stop", "B"), ("restart", "B")]
        assert world.built == {"A": 1, "B": 2, "C": 1}
        assert await states(sup) == [("A", "running"), ("B", "running"), ("C", "ended")]


async def test_a_stop_by_hand_survives_a_group_restart() -> None:
    """``one_for_all`` [a, b]: a is stopped by hand (``ref.stop()``) while busy, and b fails
    before a gets to its stop. The stop by hand stands: a ends and is not started again with
    the group; b is restarted once."""

    class Busy(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            if isinstance(message, anyio.Event):
                await message.wait()
            elif message == "boom":
                raise RuntimeError(f"{self.context.name}: boom")
            return message

    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(Busy, name="a"), ChildSpec(Busy, name="b")],
                strategy="one_for_all",
                max_restarts=5,
            ),
            restart="temporary",
        )
        a, b = lookup(system, "a"), lookup(system, "b")
        gate = anyio.Event()
        a.tell(gate)  # a is busy, so its stop waits behind
        await clock.advance(0)
        a.stop()  # by hand: final, whatever the restart type
        b.tell("boom")  # the sibling fails while a's stop is still queued
        await clock.advance(0)
        gate.set()
        with anyio.fail_after(5):
            assert (await a.wait_stopped()).reason in ("stopped", "shutdown")
        await clock.advance(0)
        assert await states(sup) == [("a", "ended"), ("b", "running")]
        assert [child.restarts for child in system.snapshot().actors[0].children] == [1]
