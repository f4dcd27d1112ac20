"""Top-level actors and the system's guardian, as a service uses them: an actor per client
connection, a one-shot job, a crash loop. Every test runs on asyncio, uvloop and trio, with a
``FakeClock`` where time matters.

What must hold: failures of different top-level actors never add up (each has a restart budget of
its own); one that exhausts its budget is stopped (logged, its queue to dead letters, its watchers
told, its name free) and everything else goes on, unless the system was made with
``escalate=True``; a normal stop of a top-level actor is final; a crash loop cannot take its
neighbours down.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
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
    DeadLetter,
    DeadLetterReason,
    RestartIntensityExceeded,
    Supervisor,
    Terminated,
    WhichChildren,
)
from fearless.testing import FakeClock, Probe

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """A connection's handler failed."""


@dataclass(frozen=True)
class Fail:
    """Makes the handler raise ``Boom(tag)``."""

    tag: str


class Connection(Actor[Any]):
    """One client connection: answers ``(its name, message)``; ``Fail`` makes it raise."""

    async def handle(self, message: Any) -> Any:
        if isinstance(message, Fail):
            raise Boom(message.tag)
        return (self.context.name, message)


class Connections:
    """Spawns connections and counts the instances each factory built."""

    def __init__(self) -> None:
        self.instances: Counter[str] = Counter()

    def factory(self, name: str) -> Callable[[], Connection]:
        def make() -> Connection:
            self.instances[name] += 1
            return Connection()

        return make

    async def spawn(self, system: ActorSystem, name: str, **kwargs: Any) -> ActorRef[Any]:
        return await system.spawn(self.factory(name), name=name, **kwargs)


class Watcher(Actor[Any]):
    """Monitors ``target`` and forwards every ``Terminated`` it gets to ``probe``."""

    def __init__(self, target: ActorRef[Any], probe: ActorRef[Any]) -> None:
        self.target = target
        self.probe = probe

    async def on_start(self) -> None:
        self.context.monitor(self.target)

    async def handle(self, message: Any) -> Any:
        return message

    async def on_terminated(self, notice: Terminated) -> None:
        self.probe.tell(notice)


def drain(letters: Any) -> list[DeadLetter]:
    out: list[DeadLetter] = []
    while True:
        try:
            out.append(letters.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return out


def by_name(snapshot: tuple[ActorSnapshot, ...]) -> dict[str, ActorSnapshot]:
    return {actor.name: actor for actor in snapshot}


async def all_answer(refs: list[ActorRef[Any]]) -> None:
    for ref in refs:
        assert await ref.ask("ping") == (ref.name, "ping")


# -- scenario 1: unrelated failures do not add up --------------------------------------------------


async def test_four_different_connections_failing_within_a_second_are_each_restarted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten top-level actors, one per client connection; four different ones fail once each
    within one second (the system's budget is 3 restarts within 5 s). Budgets are per actor, so
    nothing adds up: each of the four is restarted once (a new instance, same ref and name) and
    the other six are untouched, nothing is stopped or logged as given up, every connection still
    answers, and the ``async with`` block does not raise."""
    clock = FakeClock()
    conns = Connections()
    names = [f"conn-{i}" for i in range(10)]
    failing = ["conn-1", "conn-4", "conn-6", "conn-9"]
    caplog.set_level(logging.INFO, logger="fearless.actors")
    async with ActorSystem(clock=clock) as system:
        letters = system.dead_letters()
        refs = [await conns.spawn(system, name) for name in names]
        for i, name in enumerate(failing):
            ref = system.lookup(name)
            assert ref is not None
            ref.tell(Fail(name))
            assert await ref.ask("after") == (name, "after")  # the new instance answers
            await clock.advance(0.3)  # failures at 0.0, 0.3, 0.6 and 0.9
            assert clock.now() == pytest.approx(0.3 * (i + 1))

        await all_answer(refs)
        assert [system.lookup(name) for name in names] == refs
        actors = by_name(system.snapshot().actors)
        for name in names:
            expected = (1, 1) if name in failing else (0, 0)
            assert (actors[name].restarts, actors[name].failures) == expected, name
            assert actors[name].state == "running"
        assert conns.instances == {name: 2 if name in failing else 1 for name in names}
        failed = drain(letters)
        assert [(d.recipient, d.reason, str(d.error)) for d in failed] == [
            (name, DeadLetterReason.HANDLER_FAILED, name) for name in failing
        ]
        letters.close()
    assert not any("stopped for good" in r.getMessage() for r in caplog.records)


async def test_a_connection_that_exhausts_its_own_budget_is_stopped_and_the_rest_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A top-level actor that fails more than ``max_restarts`` times within ``within`` seconds is
    stopped, and only it: an ERROR log names it and its last error; the messages still queued in
    its mailbox go to dead letters (counted: the 4 that failed as ``HANDLER_FAILED``, the 5 behind
    them as ``ACTOR_STOPPED``); an actor monitoring it gets ``Terminated`` with reason
    ``"failed"`` and the last error; its name is free again (``lookup`` is ``None``, and ``spawn``
    may reuse it). The system and the nine other connections go on answering asks, and the block
    does not raise."""
    clock = FakeClock()
    conns = Connections()
    caplog.set_level(logging.ERROR, logger="fearless.actors")
    async with ActorSystem(clock=clock, max_restarts=3, within=5.0) as system:
        letters = system.dead_letters()
        others = [await conns.spawn(system, f"conn-{i}") for i in range(9)]
        doomed = await conns.spawn(system, "doomed")
        probe = await Probe[Terminated].spawn(system)
        await system.spawn(lambda: Watcher(doomed, probe.ref), name="watcher")

        for i in range(4):  # all queued before it runs: the fourth failure is over budget
            doomed.tell(Fail(f"failure {i}"))
        for i in range(5):
            doomed.tell(f"queued {i}")
        notice = await doomed.wait_stopped()
        assert notice.reason == "failed"
        assert isinstance(notice.error, Boom)
        assert str(notice.error) == "failure 3"

        told = await probe.receive()
        assert (told.ref, told.reason, told.error) == (doomed, "failed", notice.error)
        await probe.expect_no_message()
        assert conns.instances["doomed"] == 4  # the first instance and 3 restarts

        letters_now = [d for d in drain(letters) if d.recipient == "doomed"]
        failed = [d for d in letters_now if d.reason is DeadLetterReason.HANDLER_FAILED]
        stopped = [d for d in letters_now if d.reason is DeadLetterReason.ACTOR_STOPPED]
        assert [d.message for d in failed] == [Fail(f"failure {i}") for i in range(4)]
        assert [d.message for d in stopped] == [f"queued {i}" for i in range(5)]
        assert len(letters_now) == 9

        [record] = [r for r in caplog.records if "stopped for good" in r.getMessage()]
        assert record.levelno == logging.ERROR
        assert "'doomed'" in record.getMessage()
        assert "failure 3" in record.getMessage()

        assert system.lookup("doomed") is None
        assert "doomed" not in by_name(system.snapshot().actors)
        await all_answer(others)
        again = await conns.spawn(system, "doomed")  # the name is free
        assert await again.ask("hello") == ("doomed", "hello")
        letters.close()


async def test_with_escalate_a_connection_exhausting_its_budget_fails_the_block() -> None:
    """``ActorSystem(escalate=True)`` is the opt-in: the same connection exhausting its budget
    fails the whole system. The body (waiting forever) is cancelled, and the block raises
    ``RestartIntensityExceeded`` naming the guardian, with the connection's last error."""
    clock = FakeClock()
    conns = Connections()
    body_cancelled = False

    async def serve() -> None:
        nonlocal body_cancelled
        async with ActorSystem(clock=clock, max_restarts=3, within=5.0, escalate=True) as system:
            for i in range(9):
                await conns.spawn(system, f"conn-{i}")
            doomed = await conns.spawn(system, "doomed")
            for i in range(4):
                doomed.tell(Fail(f"failure {i}"))
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                body_cancelled = True
                raise

    with pytest.raises(RestartIntensityExceeded) as caught:
        await serve()
    assert body_cancelled
    assert caught.value.supervisor == "/"
    assert (caught.value.max_restarts, caught.value.within) == (3, 5.0)
    assert isinstance(caught.value.cause, Boom)
    assert str(caught.value.cause) == "failure 3"


# -- scenario 2: a normal stop of a top-level actor is final ---------------------------------------


async def test_a_one_shot_job_that_stops_itself_in_on_start_runs_exactly_once() -> None:
    """A job actor does its work in ``on_start`` and calls ``self.context.stop()``. A normal
    stop of a top-level actor is final (Akka's rule): the job runs once, ends with reason
    ``"stopped"``, is not restarted however long the system runs on, and the system does not
    die (another actor still answers; the block does not raise).

    ``spawn`` returns the job's ref even when the job has ended, and the guardian has forgotten
    it, before the spawning task resumes (twenty jobs, so that trio's randomised scheduling
    runs that order too; it used to fail ``spawn`` with an ``AssertionError``)."""
    clock = FakeClock()
    runs: list[tuple[str, float]] = []

    class Job(Actor[Any]):
        async def on_start(self) -> None:
            runs.append((self.context.name, clock.now()))
            self.context.stop()

        async def handle(self, message: Any) -> Any:
            return message

    names = [f"job-{i}" for i in range(20)]
    async with ActorSystem(clock=clock) as system:
        other = await system.spawn(Connection, name="other")
        jobs = [await system.spawn(Job, name=name) for name in names]
        assert [job.name for job in jobs] == names
        for job in jobs:
            notice = await job.wait_stopped()
            assert (notice.reason, notice.error) == ("stopped", None)
        await clock.advance(60.0)
        assert runs == [(name, 0.0) for name in names]
        assert all(system.lookup(name) is None for name in names)
        assert await other.ask("still here") == ("other", "still here")
    assert runs == [(name, 0.0) for name in names]


async def test_a_job_that_stops_itself_after_its_message_is_not_restarted() -> None:
    """The same for a job that stops itself in ``handle``: the message is handled once, what is
    queued behind the stop goes to dead letters, and no new instance is built."""
    clock = FakeClock()
    built: list[int] = []
    handled: list[Any] = []

    class Job(Actor[Any]):
        def __init__(self) -> None:
            built.append(1)

        async def handle(self, message: Any) -> Any:
            handled.append(message)
            self.context.stop()
            return "done"

    async with ActorSystem(clock=clock) as system:
        letters = system.dead_letters()
        job = await system.spawn(Job, name="job")
        assert await job.ask("work") == "done"
        job.tell("late")  # after the stop message: refused
        assert (await job.wait_stopped()).reason == "stopped"
        await clock.advance(60.0)
        assert (len(built), handled) == (1, ["work"])
        [letter] = drain(letters)
        assert (letter.message, letter.reason) == ("late", DeadLetterReason.ACTOR_STOPPED)
        letters.close()


async def test_under_an_explicit_supervisor_a_transient_job_runs_once() -> None:
    """Under an explicit ``Supervisor`` OTP's restart types rule: the same one-shot job as a
    ``"transient"`` child runs once (a normal exit is not restarted), and the supervisor lists
    it as ended. (A ``"permanent"`` child is restarted after a normal exit:
    ``test_supervisor.py``.)"""
    clock = FakeClock()
    runs: list[float] = []

    class Job(Actor[Any]):
        async def on_start(self) -> None:
            runs.append(clock.now())
            self.context.stop()

        async def handle(self, message: Any) -> Any:
            return message

    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor([ChildSpec(Job, name="job", restart="transient")]), name="sup"
        )
        await clock.advance(60.0)
        assert runs == [0.0]
        [info] = await sup.ask(WhichChildren())
        assert (info.name, info.ref, info.state) == ("job", None, "ended")


async def test_ref_stop_of_a_top_level_actor_is_final() -> None:
    """``ref.stop()`` from outside: the actor stops gracefully (``on_stop`` runs once), is not
    restarted (the factory built one instance), and its name is free; the system goes on."""
    clock = FakeClock()
    conns = Connections()
    async with ActorSystem(clock=clock) as system:
        other = await conns.spawn(system, "other")
        ref = await conns.spawn(system, "conn")
        ref.stop()
        notice = await ref.wait_stopped()
        assert (notice.reason, notice.error) == ("stopped", None)
        await clock.advance(60.0)
        assert conns.instances["conn"] == 1
        assert system.lookup("conn") is None
        assert await other.ask("x") == ("other", "x")
        assert await (await conns.spawn(system, "conn")).ask("y") == ("conn", "y")


# -- scenario 3: a crash loop does not take its neighbours down ------------------------------------


async def test_a_crash_looping_actor_is_stopped_while_its_neighbours_keep_answering() -> None:
    """One top-level actor fails on every message, told in a loop (one a tenth of a second),
    while three others are asked on every round. The others always answer; the crasher is
    restarted until it exhausts its own budget (3 restarts within 5 s), then stopped for good
    (reason ``"failed"``), and later messages go to dead letters; the block does not raise."""
    clock = FakeClock()
    conns = Connections()

    class Crasher(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            raise Boom(f"crashed on {message!r}")

    async with ActorSystem(clock=clock, max_restarts=3, within=5.0) as system:
        letters = system.dead_letters()
        others = [await conns.spawn(system, f"conn-{i}") for i in range(3)]
        crasher = await system.spawn(Crasher, name="crasher")
        for i in range(20):
            crasher.tell(i)
            await all_answer(others)
            await clock.advance(0.1)
        notice = await crasher.wait_stopped()
        assert notice.reason == "failed"
        assert str(notice.error) == "crashed on 3"
        assert system.lookup("crasher") is None
        await all_answer(others)
        reasons = Counter(d.reason for d in drain(letters) if d.recipient == "crasher")
        assert reasons == {
            DeadLetterReason.HANDLER_FAILED: 4,
            DeadLetterReason.ACTOR_STOPPED: 16,
        }
        letters.close()


async def test_a_crash_looping_actor_with_a_backoff_keeps_backing_off_and_never_blocks_others() -> (
    None
):
    """The same crash loop, spawned with ``backoff=Backoff(2 s, 2 s)``: restarts come 2 s apart,
    never more than 3 within 5 s, so it is never over its budget; between restarts it is
    ``"restarting"`` with its mailbox open (messages wait for the next instance). Over a minute
    of its failing the others answer on every round, it is never stopped, and the block does not
    raise."""
    clock = FakeClock()
    conns = Connections()
    built: list[float] = []

    class Crasher(Actor[Any]):
        def __init__(self) -> None:
            built.append(clock.now())

        async def handle(self, message: Any) -> Any:
            raise Boom(f"crashed on {message!r}")

    backoff = Backoff(min_backoff=2.0, max_backoff=2.0, jitter=0.0)
    async with ActorSystem(clock=clock, max_restarts=3, within=5.0) as system:
        others = [await conns.spawn(system, f"conn-{i}") for i in range(3)]
        crasher = await system.spawn(Crasher, name="crasher", backoff=backoff)
        states: set[str] = set()
        for i in range(60):
            crasher.tell(i)
            await all_answer(others)
            await clock.advance(1.0)
            states.add(by_name(system.snapshot().actors)["crasher"].state)
        assert crasher.is_alive
        assert system.lookup("crasher") == crasher
        assert "restarting" in states
        assert built == [2.0 * n for n in range(len(built))]  # every 2 s, from 0
        assert len(built) == 31  # up to and including t = 60
        actor = by_name(system.snapshot().actors)["crasher"]
        assert actor.restarts == 30
