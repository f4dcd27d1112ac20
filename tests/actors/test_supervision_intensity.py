"""Supervision: restart intensity, restart types and failed restarts (cases 1-9 and 13 of
``docs/design/supervision.md``), and a top-level actor giving up under ``escalate=True`` (case
28). Every test runs on asyncio, uvloop and trio.

Time is a ``FakeClock``: a failure "at t = 6.5" is a message whose handler raises, told once the
clock reads exactly 6.5; ``clock.advance(0)`` then lets the system settle. What the children did
is a log of ``(hook, child, clock time)``, and a count of the instances each factory built.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from fearless import (
    Actor,
    ActorRef,
    ActorSnapshot,
    ActorSystem,
    Backoff,
    ChildSpec,
    RestartIntensityExceeded,
    Supervisor,
    Terminated,
    WhichChildren,
)
from fearless.testing import FakeClock

pytestmark = pytest.mark.anyio

Event = tuple[str, str, float]  # (hook, child, clock time)


class Boom(Exception):
    """A worker's handler failed (its message says who and when)."""


class FactoryBroken(Exception):
    """A factory failed to build an instance (its message says which call)."""


class World:
    """The workers' shared record: what each did, and when, on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.log: list[Event] = []
        self.instances: Counter[str] = Counter()

    def record(self, hook: str, name: str) -> None:
        self.log.append((hook, name, self.clock.now()))

    def worker(self, name: str) -> Callable[[], Worker]:
        def factory() -> Worker:
            self.instances[name] += 1
            return Worker(self, name)

        return factory

    def events(self, *hooks: str) -> list[Event]:
        return [event for event in self.log if event[0] in hooks]


class Worker(Actor[str]):
    """``"boom"``: the handler raises; ``"end"``: the actor ends its run normally."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.child = name

    async def on_start(self) -> None:
        self.world.record("start", self.child)

    async def on_restart(self, error: BaseException) -> None:
        self.world.record("restart", self.child)

    async def on_stop(self) -> None:
        self.world.record("stop", self.child)

    async def handle(self, message: str) -> str:
        if message == "boom":
            raise Boom(f"{self.child}@{self.world.clock.now()}")
        if message == "end":
            self.context.stop()
        return message


async def at(clock: FakeClock, when: float) -> None:
    """Move the clock to exactly ``when`` (letting everything due on the way run)."""
    await clock.advance(when - clock.now())
    assert clock.now() == when


async def fail(system: ActorSystem, name: str, when: float, message: str = "boom") -> None:
    """At ``when``, make child ``name`` fail (or, with ``"end"``, end normally); let it settle."""
    assert isinstance(system.clock, FakeClock)
    await at(system.clock, when)
    ref = system.lookup(name)
    assert ref is not None, f"{name} is not running at t={when}"
    ref.tell(message)
    await system.clock.advance(0)


async def spawn_supervisor(
    system: ActorSystem, children: list[ChildSpec], **options: Any
) -> ActorRef[Any]:
    """A supervisor ``"sup"`` at the top level, temporary: when it gives up, it is not restarted."""
    return await system.spawn(
        lambda: Supervisor(children, **options), name="sup", restart="temporary"
    )


def snapshot_of(system: ActorSystem, *path: str) -> ActorSnapshot:
    actors = system.snapshot().actors
    for name in path:
        [found] = [actor for actor in actors if actor.name == name]
        actors = found.children
    return found


async def ended(ref: ActorRef[Any]) -> Terminated:
    """The notice of an actor that has stopped already (never waits for it to stop)."""
    assert not ref.is_alive, f"{ref.name} is still running"
    return await ref.wait_stopped()


async def gave_up(sup: ActorRef[Any], max_restarts: int, within: float) -> RestartIntensityExceeded:
    """Check that supervisor ``sup`` has given up, and return its error."""
    notice = await ended(sup)
    assert notice.reason == "failed"
    error = notice.error
    assert isinstance(error, RestartIntensityExceeded)
    assert error.supervisor == "sup"
    assert error.max_restarts == max_restarts
    assert error.within == within
    return error


async def names_of_children(sup: ActorRef[Any]) -> list[tuple[str | None, str]]:
    children = await sup.ask(WhichChildren())
    return [(child.name, child.state) for child in children]


# -- intensity -------------------------------------------------------------------------------------


async def test_case_01_three_restarts_in_five_seconds_then_the_supervisor_gives_up() -> None:
    """1. `one_for_one`, intensity 3 per 5 s, permanent child A. A fails at t = 0, 1, 2: restarted
    each time. A fails at t = 3: not restarted; the supervisor stops its other children in reverse
    start order and fails with `RestartIntensityExceeded`."""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(world.worker(name), name=name) for name in "ABC"],
            strategy="one_for_one",
            max_restarts=3,
            within=5.0,
        )
        a = system.lookup("A")
        for t in (0.0, 1.0, 2.0):
            await fail(system, "A", t)
            assert system.lookup("A") is a  # the same ref, a new instance
        assert world.instances == {"A": 4, "B": 1, "C": 1}
        assert world.events("restart") == [("restart", "A", t) for t in (0.0, 1.0, 2.0)]
        a_snapshot = snapshot_of(system, "sup", "A")
        assert (a_snapshot.restarts, a_snapshot.failures) == (3, 3)
        assert await names_of_children(sup) == [
            ("A", "running"),
            ("B", "running"),
            ("C", "running"),
        ]
        del world.log[:]

        await fail(system, "A", 3.0)
        error = await gave_up(sup, 3, 5.0)
        assert isinstance(error.cause, Boom)
        assert str(error.cause) == "A@3.0"
        assert world.instances == {"A": 4, "B": 1, "C": 1}  # A was not restarted
        # A's failed instance winds down, then the others in reverse start order: C, then B.
        assert world.log == [("stop", "A", 3.0), ("stop", "C", 3.0), ("stop", "B", 3.0)]
        assert [system.lookup(name) for name in ("sup", "A", "B", "C")] == [None] * 4
        assert system.snapshot().actors == ()


async def test_case_02_the_window_slides_restarts_at_6_and_6_5_are_allowed_6_8_exceeds() -> None:
    """2. Same set-up, failures at t = 0, 1, 2, 6, 6.5, 6.8: t = 6 is restarted (window [1, 6] holds
    3), t = 6.5 is restarted (window [1.5, 6.5] holds 3), t = 6.8 exceeds (window [1.8, 6.8] holds
    4)."""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(world.worker("A"), name="A"), ChildSpec(world.worker("B"), name="B")],
            max_restarts=3,
            within=5.0,
        )
        for t in (0.0, 1.0, 2.0, 6.0, 6.5):
            await fail(system, "A", t)
            assert world.events("restart")[-1] == ("restart", "A", t)
        assert world.instances["A"] == 6
        assert snapshot_of(system, "sup", "A").restarts == 5
        assert await names_of_children(sup) == [("A", "running"), ("B", "running")]

        await fail(system, "A", 6.8)
        error = await gave_up(sup, 3, 5.0)
        assert str(error.cause) == "A@6.8"
        assert world.events("restart") == [("restart", "A", t) for t in (0.0, 1.0, 2.0, 6.0, 6.5)]
        assert world.instances == {"A": 6, "B": 1}
        assert world.log[-2:] == [("stop", "A", 6.8), ("stop", "B", 6.8)]


@pytest.mark.parametrize(
    ("last", "gives_up"),
    [
        pytest.param(5.0, True, id="at-exactly-5"),
        pytest.param(math.nextafter(5.0, math.inf), False, id="just-after-5"),
    ],
)
async def test_case_03_a_restart_at_exactly_now_minus_within_still_counts(
    last: float, gives_up: bool
) -> None:
    """3. Boundary: failures at 0, 1, 2 and at exactly 5: the failure at 0 still counts, so the
    supervisor gives up.

    (And the contrast: no rounding, so one failure the smallest step after 5 finds the one at 0
    out of the window, and is restarted.)"""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(world.worker("A"), name="A"), ChildSpec(world.worker("B"), name="B")],
            max_restarts=3,
            within=5.0,
        )
        for t in (0.0, 1.0, 2.0):
            await fail(system, "A", t)
        await fail(system, "A", last)
        if gives_up:
            error = await gave_up(sup, 3, 5.0)
            assert str(error.cause) == "A@5.0"
            assert world.instances == {"A": 4, "B": 1}
            assert world.log[-2:] == [("stop", "A", 5.0), ("stop", "B", 5.0)]
        else:
            assert world.instances == {"A": 5, "B": 1}
            assert world.events("restart")[-1] == ("restart", "A", last)
            assert await names_of_children(sup) == [("A", "running"), ("B", "running")]


async def test_case_03_the_boundary_is_inclusive_at_decimal_times_too() -> None:
    """3. Boundary: failures at 0, 1, 2 and at exactly 5: the failure at 0 still counts, so the
    supervisor gives up.

    The same, shifted by 0.2 s: failures at 0.2, 1, 2 and 5.2 (the window [0.2, 5.2] holds 4, as
    case 2 reckons windows)."""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system, [ChildSpec(world.worker("A"), name="A")], max_restarts=3, within=5.0
        )
        for t in (0.2, 1.0, 2.0, 5.2):
            await fail(system, "A", t)
        assert world.events("restart") == [("restart", "A", t) for t in (0.2, 1.0, 2.0)]
        error = await gave_up(sup, 3, 5.0)
        assert str(error.cause) == "A@5.2"


async def test_case_04_max_restarts_zero_gives_up_at_the_first_failure() -> None:
    """4. `max_restarts=0`: the first failure of a permanent child makes the supervisor give
    up."""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(world.worker(name), name=name) for name in "ABC"],
            max_restarts=0,
            within=5.0,
        )
        await fail(system, "B", 0.0)
        error = await gave_up(sup, 0, 5.0)
        assert str(error.cause) == "B@0.0"
        assert world.instances == {"A": 1, "B": 1, "C": 1}
        assert world.events("restart") == []
        assert world.events("stop") == [("stop", "B", 0.0), ("stop", "C", 0.0), ("stop", "A", 0.0)]


async def test_case_05_the_count_is_shared_by_all_the_children() -> None:
    """5. The count is shared: A and B each fail twice within 5 s under intensity 3: the fourth
    failure makes the supervisor give up, though neither child failed more than twice."""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(world.worker(name), name=name) for name in "ABC"],
            max_restarts=3,
            within=5.0,
        )
        await fail(system, "A", 0.0)
        await fail(system, "B", 1.0)
        await fail(system, "A", 2.0)
        assert world.events("restart") == [
            ("restart", "A", 0.0),
            ("restart", "B", 1.0),
            ("restart", "A", 2.0),
        ]
        restarts = [snapshot_of(system, "sup", name).restarts for name in "ABC"]
        assert restarts == [2, 1, 0]

        await fail(system, "B", 3.0)  # B's second failure, the supervisor's fourth
        error = await gave_up(sup, 3, 5.0)
        assert str(error.cause) == "B@3.0"
        assert world.instances == {"A": 3, "B": 2, "C": 1}
        assert world.log[-3:] == [("stop", "B", 3.0), ("stop", "C", 3.0), ("stop", "A", 3.0)]


async def test_case_06_one_for_all_restarts_everyone_and_counts_one_restart() -> None:
    """6. `one_for_all` with 5 children, intensity 1: one failure restarts all 5 and counts as one
    restart; a second failure within the window makes the supervisor give up."""
    clock = FakeClock()
    world = World(clock)
    names = "ABCDE"
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(world.worker(name), name=name) for name in names],
            strategy="one_for_all",
            max_restarts=1,
            within=5.0,
        )
        refs = [system.lookup(name) for name in names]
        del world.log[:]

        await fail(system, "C", 0.0)
        assert world.instances == dict.fromkeys(names, 2)
        assert world.log == [
            ("stop", "C", 0.0),  # the failed one winds down
            *[("stop", name, 0.0) for name in "EDBA"],  # the others, in reverse start order
            *[("restart", name, 0.0) for name in names],  # all, in start order
        ]
        assert [system.lookup(name) for name in names] == refs
        assert [snapshot_of(system, "sup", name).restarts for name in names] == [1] * 5
        assert await names_of_children(sup) == [(name, "running") for name in names]
        del world.log[:]

        await fail(system, "E", 4.0)  # within [0, 5]: the second restart with intensity 1
        error = await gave_up(sup, 1, 5.0)
        assert str(error.cause) == "E@4.0"
        assert world.instances == dict.fromkeys(names, 2)
        assert world.log == [("stop", name, 4.0) for name in "EDCBA"]


# -- restart types ---------------------------------------------------------------------------------


async def test_case_07_a_transient_child_is_restarted_and_counted_only_when_it_raises() -> None:
    """7. A transient child that returns normally (or is stopped) is not restarted and not
    counted; one that raises is restarted and counted.

    Intensity 2: N (transient) ends normally at 0, H (transient) is stopped by hand at 0.5; R
    (transient) raises at 1 and is restarted (had N and H counted, that would be the third
    restart); A fails at 2 (restarted: the second) and at 3 (the third within 5 s, counting R's:
    the supervisor gives up)."""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [
                ChildSpec(world.worker("A"), name="A"),
                ChildSpec(world.worker("N"), name="N", restart="transient"),
                ChildSpec(world.worker("H"), name="H", restart="transient"),
                ChildSpec(world.worker("R"), name="R", restart="transient"),
            ],
            max_restarts=2,
            within=5.0,
        )
        n, h = system.lookup("N"), system.lookup("H")
        assert n is not None
        assert h is not None

        await fail(system, "N", 0.0, "end")  # returns normally: self.context.stop()
        assert (await ended(n)).reason == "stopped"
        await at(clock, 0.5)
        h.stop()  # stopped by hand
        await clock.advance(0)
        assert (await ended(h)).reason == "stopped"
        assert system.lookup("N") is None
        assert system.lookup("H") is None
        assert await names_of_children(sup) == [
            ("A", "running"),
            ("N", "ended"),
            ("H", "ended"),
            ("R", "running"),
        ]

        await fail(system, "R", 1.0)  # raises: restarted (and counted)
        assert world.events("restart") == [("restart", "R", 1.0)]
        assert snapshot_of(system, "sup", "R").restarts == 1
        await fail(system, "A", 2.0)
        assert world.events("restart")[-1] == ("restart", "A", 2.0)
        assert world.instances == {"A": 2, "N": 1, "H": 1, "R": 2}

        await fail(system, "A", 3.0)
        error = await gave_up(sup, 2, 5.0)
        assert str(error.cause) == "A@3.0"
        assert world.instances == {"A": 2, "N": 1, "H": 1, "R": 2}
        assert world.log[-2:] == [("stop", "A", 3.0), ("stop", "R", 3.0)]


async def test_case_08_a_temporary_child_that_raises_is_dropped_and_not_counted() -> None:
    """8. A temporary child that raises is not restarted, not counted, and disappears from the
    supervisor's list of children.

    Intensity 1: T (temporary) raises at 0; A fails at 1 and is restarted (had T counted, that
    would be the second restart); A fails again at 2: the supervisor gives up."""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [
                ChildSpec(world.worker("A"), name="A"),
                ChildSpec(world.worker("T"), name="T", restart="temporary"),
                ChildSpec(world.worker("B"), name="B"),
            ],
            max_restarts=1,
            within=5.0,
        )
        t = system.lookup("T")
        assert t is not None
        assert await names_of_children(sup) == [
            ("A", "running"),
            ("T", "running"),
            ("B", "running"),
        ]

        await fail(system, "T", 0.0)
        notice = await ended(t)
        assert notice.reason == "failed"
        assert str(notice.error) == "T@0.0"
        assert world.instances["T"] == 1
        assert system.lookup("T") is None
        assert await names_of_children(sup) == [("A", "running"), ("B", "running")]

        await fail(system, "A", 1.0)
        assert world.events("restart") == [("restart", "A", 1.0)]
        assert await names_of_children(sup) == [("A", "running"), ("B", "running")]

        await fail(system, "A", 2.0)
        error = await gave_up(sup, 1, 5.0)
        assert str(error.cause) == "A@2.0"
        assert world.instances == {"A": 2, "T": 1, "B": 1}
        assert world.log[-2:] == [("stop", "A", 2.0), ("stop", "B", 2.0)]


async def test_case_09_a_permanent_child_that_ends_normally_is_restarted_and_counted() -> None:
    """9. A permanent child whose run returns normally is restarted and counted.

    Intensity 2: A ends normally (``self.context.stop()``) at 0 and 1, restarted each time; its
    third normal end, at 2, is one restart too many."""
    clock = FakeClock()
    world = World(clock)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(world.worker("A"), name="A"), ChildSpec(world.worker("B"), name="B")],
            max_restarts=2,
            within=5.0,
        )
        a = system.lookup("A")
        del world.log[:]
        for t in (0.0, 1.0):
            await fail(system, "A", t, "end")
            assert system.lookup("A") is a
            # A normal end has no error to pass to on_restart: the new instance gets on_start.
            assert world.log[-2:] == [("stop", "A", t), ("start", "A", t)]
        assert world.instances == {"A": 3, "B": 1}
        assert snapshot_of(system, "sup", "A").restarts == 2
        assert await names_of_children(sup) == [("A", "running"), ("B", "running")]

        await fail(system, "A", 2.0, "end")
        error = await gave_up(sup, 2, 5.0)
        assert error.cause is None  # nothing failed: it ended normally once too often
        assert world.instances == {"A": 3, "B": 1}
        assert world.log[-2:] == [("stop", "A", 2.0), ("stop", "B", 2.0)]


# -- failed restarts -------------------------------------------------------------------------------


class Breakable:
    """A factory of workers for child ``name`` that raises on the calls listed in ``broken``
    (1-based; ``None``: every call from ``from_call`` on)."""

    def __init__(
        self,
        world: World,
        name: str,
        broken: set[int] | None = None,
        from_call: int = 2,
        on_call: Callable[[int], None] | None = None,
    ) -> None:
        self.build = world.worker(name)
        self.broken = broken
        self.from_call = from_call
        self.on_call = on_call
        self.calls = 0

    def __call__(self) -> Worker:
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self.calls)
        if (self.calls in self.broken) if self.broken is not None else self.calls >= self.from_call:
            raise FactoryBroken(f"call {self.calls}")
        return self.build()


async def test_case_13_failed_restart_attempts_count_and_the_fourth_is_refused() -> None:
    """13. Intensity 3 per 5 s. A fails once; from then on its factory raises. Restart attempts
    1, 2 and 3 each count and fail; instead of a fourth the supervisor gives up."""
    clock = FakeClock()
    world = World(clock)
    factory = Breakable(world, "A")  # every call after the first raises
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(factory, name="A"), ChildSpec(world.worker("B"), name="B")],
            max_restarts=3,
            within=5.0,
        )
        a = system.lookup("A")
        assert a is not None
        del world.log[:]

        await fail(system, "A", 0.0)
        error = await gave_up(sup, 3, 5.0)
        assert factory.calls == 4  # the first instance, then restart attempts 1, 2 and 3
        assert isinstance(error.cause, FactoryBroken)
        assert str(error.cause) == "call 4"  # attempt 3's failure was one too many
        assert world.instances == {"A": 1, "B": 1}
        assert world.log == [("stop", "A", 0.0), ("stop", "B", 0.0)]
        a_notice = await ended(a)
        assert a_notice.reason == "failed"
        assert a_notice.error is error.cause


async def test_case_13_variation_a_factory_that_recovers_uses_up_the_window() -> None:
    """13. (Variation) the factory fails twice then succeeds: three restarts counted, the
    supervisor survives; one more failure of any child within the window makes it give up."""
    clock = FakeClock()
    world = World(clock)
    factory = Breakable(world, "A", broken={2, 3})  # restart attempts 1 and 2 fail, 3 works
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(factory, name="A"), ChildSpec(world.worker("B"), name="B")],
            max_restarts=3,
            within=5.0,
        )
        del world.log[:]

        await fail(system, "A", 0.0)
        assert factory.calls == 4
        assert world.instances == {"A": 2, "B": 1}
        assert world.log == [("stop", "A", 0.0), ("restart", "A", 0.0)]
        assert await names_of_children(sup) == [("A", "running"), ("B", "running")]

        await fail(system, "B", 4.5)  # B never failed before, but the window [-0.5, 4.5] is full
        error = await gave_up(sup, 3, 5.0)
        assert str(error.cause) == "B@4.5"
        assert world.instances == {"A": 2, "B": 1}
        assert world.log[-2:] == [("stop", "B", 4.5), ("stop", "A", 4.5)]


async def test_case_13_while_retrying_the_supervisor_still_answers_a_stop_request() -> None:
    """13. (...) While retrying, the supervisor still answers a stop request.

    The failed restarts are retried through the supervisor's mailbox: a stop request that arrives
    during restart attempt 2 is handled before attempt 3, which never happens."""
    clock = FakeClock()
    world = World(clock)
    refs: dict[str, ActorRef[Any]] = {}

    def on_call(call: int) -> None:
        if call == 3:  # restart attempt 2: the supervisor is asked to stop, by hand
            refs["sup"].stop()

    factory = Breakable(world, "A", on_call=on_call)
    async with ActorSystem(clock=clock) as system:
        refs["sup"] = sup = await spawn_supervisor(
            system,
            [ChildSpec(factory, name="A"), ChildSpec(world.worker("B"), name="B")],
            max_restarts=100,
            within=5.0,
        )
        del world.log[:]

        await fail(system, "A", 0.0)
        notice = await ended(sup)
        assert (notice.reason, notice.error) == ("stopped", None)
        await clock.advance(10)
        assert factory.calls == 3  # the first instance, attempts 1 and 2; no third
        assert world.log == [("stop", "A", 0.0), ("stop", "B", 0.0)]
        assert system.lookup("A") is None
        assert system.snapshot().actors == ()


async def test_case_13_while_a_backoff_delays_the_retries_the_supervisor_answers() -> None:
    """13. (...) While retrying, the supervisor still answers a stop request.

    With a backoff of 1 s between attempts: between two attempts the supervisor answers
    ``WhichChildren`` (A is ``"restarting"``), and a stop request ends the retries."""
    clock = FakeClock()
    world = World(clock)
    factory = Breakable(world, "A")
    backoff = Backoff(min_backoff=1.0, max_backoff=1.0, jitter=0.0)
    async with ActorSystem(clock=clock) as system:
        sup = await spawn_supervisor(
            system,
            [ChildSpec(factory, name="A", backoff=backoff), ChildSpec(world.worker("B"), name="B")],
            max_restarts=100,
            within=5.0,
        )
        await fail(system, "A", 0.0)
        assert factory.calls == 1  # the first restart attempt is due at 1
        assert await names_of_children(sup) == [("A", "restarting"), ("B", "running")]
        await at(clock, 1.0)
        assert factory.calls == 2  # attempt 1 failed; attempt 2 is due at 2
        await at(clock, 1.5)
        assert await names_of_children(sup) == [("A", "restarting"), ("B", "running")]

        sup.stop()
        await clock.advance(0)
        notice = await ended(sup)
        assert (notice.reason, notice.error) == ("stopped", None)
        await clock.advance(10)
        assert factory.calls == 2
        assert world.log[-1] == ("stop", "B", 1.5)


# -- the top level ---------------------------------------------------------------------------------


async def test_with_escalate_a_top_level_actor_giving_up_ends_the_actor_system_block() -> None:
    """``ActorSystem(escalate=True)``: a top-level actor that exhausts its restart budget fails
    the whole system (opt-in). The block's body (waiting forever) is cancelled, the guardian stops
    its other children in reverse start order, and the block raises
    ``RestartIntensityExceeded``."""
    clock = FakeClock()
    world = World(clock)
    body_cancelled = False

    async def run() -> None:
        nonlocal body_cancelled
        async with ActorSystem(clock=clock, max_restarts=1, within=5.0, escalate=True) as system:
            for name in "ABC":
                await system.spawn(world.worker(name), name=name)
            await fail(system, "A", 0.0)
            assert world.events("restart") == [("restart", "A", 0.0)]
            await at(clock, 1.0)
            a = system.lookup("A")
            assert a is not None
            a.tell("boom")  # A's second restart within 5 s, with intensity 1
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                body_cancelled = True
                raise

    with pytest.raises(RestartIntensityExceeded) as caught:
        await run()
    assert body_cancelled
    error = caught.value
    assert error.supervisor == "/"
    assert (error.max_restarts, error.within) == (1, 5.0)
    assert str(error.cause) == "A@1.0"
    assert world.instances == {"A": 2, "B": 1, "C": 1}
    assert world.log[-3:] == [("stop", "A", 1.0), ("stop", "C", 1.0), ("stop", "B", 1.0)]
