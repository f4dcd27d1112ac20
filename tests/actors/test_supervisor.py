"""Supervisor features beyond the numbered cases of ``docs/design/supervision.md``: validation,
restart keeping the mailbox, timers of a failed instance, deciders, pools, requests, ErrorReply.
The numbered cases are in test_supervision_intensity.py and test_supervision_trees.py (1-25),
test_supervision_group_restarts.py (30-32) and test_supervision_backoff.py (35)."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

import fearless
from fearless import (
    Actor,
    ActorStartError,
    ActorSystem,
    Backoff,
    ChildSpec,
    DeadLetter,
    DeadLetterReason,
    DeleteChild,
    ErrorReply,
    Mailbox,
    RestartChild,
    StartChild,
    Supervisor,
    TerminateChild,
    Terminated,
    WhichChildren,
)
from fearless.testing import FakeClock, Probe, wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


def drain(letters: Any) -> list[DeadLetter]:
    out: list[DeadLetter] = []
    while True:
        try:
            out.append(letters.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return out


class Worker(Actor[Any]):
    """Counts its instances; raises on an exception message; waits on an event; echoes."""

    instances = 0

    def __init__(self, log: list[Any] | None = None) -> None:
        Worker.instances += 1
        self.instance = Worker.instances
        self.log = log if log is not None else []

    async def handle(self, message: Any) -> Any:
        if isinstance(message, BaseException):
            raise message
        if isinstance(message, anyio.Event):
            await message.wait()
            return None
        self.log.append((self.instance, message))
        return (self.instance, message)


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "error"),
    [
        ({"factory": 42}, "factory", TypeError),
        ({"name": ""}, "name", ValueError),
        ({"name": 7}, "name", TypeError),
        ({"restart": "sometimes"}, "restart", ValueError),
        ({"shutdown": -1}, "shutdown", ValueError),
        ({"shutdown": math.nan}, "shutdown", ValueError),
        ({"shutdown": "5"}, "shutdown", TypeError),
        ({"mailbox": 10}, "mailbox", TypeError),
        ({"backoff": 0.1}, "backoff", TypeError),
        ({"decider": "restart"}, "decider", TypeError),
    ],
)
def test_a_bad_child_spec_names_the_field_and_the_value(
    kwargs: dict[str, Any], field: str, error: type[Exception]
) -> None:
    """A value of the wrong type is a TypeError, a bad value of the right type a ValueError, as
    everywhere else (``system.spawn`` raises the same for the same argument)."""
    arguments = {"factory": Worker, **kwargs}
    with pytest.raises(error, match=f"ChildSpec.{field}") as caught:
        ChildSpec(**arguments)
    assert repr(kwargs[field]) in str(caught.value)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, 1), "min_backoff"),
        ((1, 0.5), "max_backoff"),
        ((0.1, 1, 2.0), "jitter"),
        ((0.1, 1, 0.1, -3), "reset_after"),
    ],
)
def test_a_bad_backoff_names_the_field_and_the_value(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(ValueError, match=f"Backoff.{field}"):
        Backoff(*args)


def test_a_bad_supervisor_is_refused_when_made() -> None:
    with pytest.raises(ValueError, match="strategy"):
        Supervisor(strategy="all_for_one")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_restarts"):
        Supervisor(max_restarts=-1)
    with pytest.raises(ValueError, match="within"):
        Supervisor(within=0)
    with pytest.raises(ValueError, match="two children are named 'a'"):
        Supervisor([ChildSpec(Worker, name="a"), ChildSpec(Worker, name="a")])
    with pytest.raises(ValueError, match="one_for_one"):
        Supervisor([ChildSpec(Worker, backoff=Backoff(0.1, 1))], strategy="one_for_all")
    with pytest.raises(TypeError, match="ChildSpec"):
        Supervisor([Worker])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="max_restarts"):
        Supervisor(max_restarts=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unnamed"):
        Supervisor.pool(ChildSpec(Worker, name="w"))


# -- restarts --------------------------------------------------------------------------------------


async def test_a_restart_keeps_the_ref_the_name_and_the_queued_messages() -> None:
    log: list[Any] = []
    async with ActorSystem() as system:
        letters = system.dead_letters()
        sup = await system.spawn(
            lambda: Supervisor([ChildSpec(lambda: Worker(log), name="w", mailbox=Mailbox(8))]),
            restart="temporary",
        )
        ref = system.lookup("w")
        assert ref is not None
        gate = anyio.Event()
        ref.tell(gate)
        await wait_all_tasks_blocked()
        boom = ValueError("boom")
        ref.tell(boom)  # queued: the failure comes after "gate"
        for i in range(3):
            ref.tell(i)  # queued behind the failure: for the next instance
        first = log[:]
        gate.set()
        assert await ref.ask("sync") == (Worker.instances, "sync")
        assert system.lookup("w") is ref
        handled = [message for _, message in log[len(first) :]]
        assert handled == [0, 1, 2, "sync"]  # nothing lost across the restart
        instances = {instance for instance, _ in log}
        assert len(instances) == 1  # all handled by the new instance
        [letter] = drain(letters)
        assert letter == DeadLetter(boom, "w", DeadLetterReason.HANDLER_FAILED, boom)
        [child] = system.snapshot().actors[0].children
        assert (child.restarts, child.failures, child.state) == (1, 1, "running")
        assert sup.is_alive
        letters.close()


async def test_the_failed_instances_timers_are_cancelled_and_on_restart_runs() -> None:
    clock = FakeClock()
    events: list[str] = []

    class Ticking(Actor[Any]):
        async def on_start(self) -> None:
            events.append("on_start")
            self.context.send_every(1.0, "tick", key="tick")

        async def on_restart(self, error: BaseException) -> None:
            events.append(f"on_restart {error!r}")  # and no ticker this time

        async def handle(self, message: Any) -> None:
            if isinstance(message, BaseException):
                raise message
            events.append(message)

    async with ActorSystem(clock=clock) as system:
        await system.spawn(lambda: Supervisor([ChildSpec(Ticking, name="t")]), restart="temporary")
        await clock.advance(1.0)
        ref = system.lookup("t")
        assert ref is not None
        ref.tell(KeyError("k"))
        await clock.advance(5.0)
    assert events == ["on_start", "tick", "on_restart KeyError('k')"]


async def test_a_restart_is_not_an_end_for_monitors() -> None:
    class Watcher(Actor[Any]):
        def __init__(self, probe: Any) -> None:
            self.probe = probe

        async def handle(self, message: Any) -> None:
            self.context.monitor(message)

        async def on_terminated(self, notice: Terminated) -> None:
            self.probe.tell((notice.name, notice.reason))

    async with ActorSystem() as system:
        probe = await Probe[Any].spawn(system)
        await system.spawn(lambda: Supervisor([ChildSpec(Worker, name="w")]), restart="temporary")
        worker = system.lookup("w")
        watcher = await system.spawn(lambda: Watcher(probe.ref))
        await watcher.ask(worker)
        assert worker is not None
        worker.tell(ValueError("restart me"))
        await probe.expect_no_message()
        worker.stop()  # by hand: the end
        await probe.expect(("w", "stopped"))


async def test_a_stop_by_hand_is_final_and_self_stop_restarts_a_permanent_child() -> None:
    class Quitter(Actor[Any]):
        async def handle(self, message: Any) -> None:
            self.context.stop()

    async with ActorSystem() as system:
        sup = await system.spawn(
            lambda: Supervisor([ChildSpec(Quitter, name="q"), ChildSpec(Worker, name="w")]),
            restart="temporary",
        )
        q = system.lookup("q")
        assert q is not None
        q.tell("quit")  # ends its run: permanent, so restarted
        await wait_all_tasks_blocked()
        infos = await sup.ask(WhichChildren())
        assert [(i.name, i.state) for i in infos] == [("q", "running"), ("w", "running")]
        q.stop()
        assert (await q.wait_stopped()).reason == "stopped"
        await wait_all_tasks_blocked()
        infos = await sup.ask(WhichChildren())
        assert [(i.name, i.ref, i.state) for i in infos] == [
            ("q", None, "ended"),
            ("w", system.lookup("w"), "running"),
        ]


# -- deciders --------------------------------------------------------------------------------------


DECISIONS: dict[type[BaseException], Any] = {
    KeyError: "resume",
    LookupError: "stop",
    OSError: "escalate",
}


def decide(error: BaseException) -> Any:
    return DECISIONS.get(type(error), "restart")


async def test_a_decider_resumes_keeping_the_instance_and_its_state() -> None:
    async with ActorSystem() as system:
        letters = system.dead_letters()
        await system.spawn(
            lambda: Supervisor([ChildSpec(Worker, name="w", decider=decide)]), restart="temporary"
        )
        ref = system.lookup("w")
        assert ref is not None
        instance, _ = await ref.ask("before")
        with pytest.raises(KeyError):
            await ref.ask(KeyError("resume me"))
        assert await ref.ask("after") == (instance, "after")  # same instance
        [letter] = drain(letters)
        assert letter.reason is DeadLetterReason.HANDLER_FAILED
        [child] = system.snapshot().actors[0].children
        assert child.restarts == 0
        letters.close()


async def test_a_decider_can_stop_the_child_or_escalate() -> None:
    async with ActorSystem() as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(Worker, name="stops", decider=decide), ChildSpec(Worker, name="up")]
            ),
            restart="temporary",
        )
        stops = system.lookup("stops")
        assert stops is not None
        stops.tell(LookupError("stop me"))
        notice = await stops.wait_stopped()
        assert (notice.reason, type(notice.error)) == ("failed", LookupError)
        assert sup.is_alive
        up = system.lookup("up")
        assert up is not None
        await sup.ask(
            StartChild(ChildSpec(Worker, name="escalates", decider=decide, restart="temporary"))
        )
        escalates = system.lookup("escalates")
        assert escalates is not None
        error = OSError("escalate me")
        escalates.tell(error)
        notice = await sup.wait_stopped()
        assert (notice.reason, notice.error) == ("failed", error)
        assert not up.is_alive  # the supervisor stopped its remaining children


# -- requests --------------------------------------------------------------------------------------


async def test_requests_start_terminate_restart_delete_and_list_children() -> None:
    async with ActorSystem() as system:
        sup = await system.spawn(lambda: Supervisor([ChildSpec(Worker, name="a")]), name="sup")
        b = await sup.ask(StartChild(ChildSpec(Worker, name="b")))
        assert system.lookup("b") is b
        infos = await sup.ask(WhichChildren())
        assert [(i.name, i.restart, i.state) for i in infos] == [
            ("a", "permanent", "running"),
            ("b", "permanent", "running"),
        ]
        with pytest.raises(ValueError, match="has a child named 'a'"):
            await sup.ask(StartChild(ChildSpec(Worker, name="a")))
        with pytest.raises(RuntimeError, match="terminate it"):
            await sup.ask(RestartChild("a"))
        with pytest.raises(RuntimeError, match="terminate it first"):
            await sup.ask(DeleteChild("a"))
        with pytest.raises(ValueError, match="no child 'zz'"):
            await sup.ask(TerminateChild("zz"))
        await sup.ask(TerminateChild("a"))
        assert system.lookup("a") is None
        new_a = await sup.ask(RestartChild("a"))
        infos = await sup.ask(WhichChildren())
        assert [(i.name, i.ref) for i in infos] == [("a", new_a), ("b", b)]  # its place kept
        await sup.ask(TerminateChild(b))  # by ref
        await sup.ask(DeleteChild("b"))
        assert [i.name for i in await sup.ask(WhichChildren())] == ["a"]
        assert sup.is_alive  # none of the refused requests hurt it


async def test_a_child_that_fails_to_start_is_not_added() -> None:
    class Broken(Actor[Any]):
        async def on_start(self) -> None:
            raise OSError("nope")

        async def handle(self, message: Any) -> None:
            pass

    async with ActorSystem() as system:
        sup = await system.spawn(lambda: Supervisor(), name="sup")
        with pytest.raises(ActorStartError, match=r"'broken'.*OSError: nope"):
            await sup.ask(StartChild(ChildSpec(Broken, name="broken")))
        assert await sup.ask(WhichChildren()) == ()
        assert system.lookup("broken") is None


async def test_a_pool_starts_identical_children_with_arguments() -> None:
    class Numbered(Actor[Any]):
        def __init__(self, n: int) -> None:
            self.n = n

        async def handle(self, message: Any) -> Any:
            if isinstance(message, BaseException):
                raise message
            return self.n

    async with ActorSystem() as system:
        pool = await system.spawn(lambda: Supervisor.pool(ChildSpec(Numbered)), name="pool")
        refs = [await pool.ask(StartChild(args=(n,))) for n in range(3)]
        assert [await ref.ask("n") for ref in refs] == [0, 1, 2]
        refs[1].tell(ValueError("x"))  # restarted with the same arguments
        assert await refs[1].ask("n") == 1
        with pytest.raises(ValueError, match="its own spec"):
            await pool.ask(StartChild(ChildSpec(Numbered)))
        await pool.ask(TerminateChild(refs[0]))
        infos = await pool.ask(WhichChildren())
        assert [i.ref for i in infos] == refs[1:]  # a pool forgets an ended child


async def test_error_reply_answers_an_ask_with_an_error_without_failing() -> None:
    class Strict(Actor[int]):
        async def handle(self, message: int) -> Any:
            if message < 0:
                return ErrorReply(ValueError(f"negative: {message}"))
            return message

    async with ActorSystem() as system:
        ref = await system.spawn(Strict)
        with pytest.raises(ValueError, match="negative: -1"):
            await ref.ask(-1)
        assert await ref.ask(5) == 5
        assert system.snapshot().actors[0].failures == 0
    with pytest.raises(TypeError, match="exception"):
        ErrorReply("not an exception")  # type: ignore[arg-type]


async def test_a_supervisor_spawned_by_spawn_waits_for_its_children_when_stopping() -> None:
    async with ActorSystem() as system:
        sup = await system.spawn(lambda: Supervisor([ChildSpec(Worker, name="w")]), name="sup")
        assert sup._runtime.shutdown is None  # a supervisor's default: no limit
        w = system.lookup("w")
        assert w is not None
        assert w._runtime.shutdown == 5.0


async def test_a_permanent_childs_normal_end_is_restarted_counted_and_runs_on_start() -> None:
    """Under an explicit Supervisor OTP's restart types rule: a permanent child that stops
    itself is started again (on_start, not on_restart: there is no error), and counted."""
    starts: list[str] = []

    class Quitter(Actor[Any]):
        async def on_start(self) -> None:
            starts.append("on_start")

        async def on_restart(self, error: BaseException) -> None:
            starts.append("on_restart")

        async def handle(self, message: Any) -> Any:
            if message == "quit":
                self.context.stop()
            return message

    async with ActorSystem() as system:
        await system.spawn(lambda: Supervisor([ChildSpec(Quitter, name="q")]), name="sup")
        ref = system.lookup("q")
        assert ref is not None
        await ref.ask("quit")
        assert await ref.ask("again") == "again"
        [sup] = system.snapshot().actors
        [child] = sup.children
        assert (child.restarts, child.failures) == (1, 0)
    assert starts == ["on_start", "on_start"]  # no error to give on_restart: on_start runs


async def test_the_guardians_failure_is_raised_even_when_the_body_leaves_with_its_own() -> None:
    class Crasher(Actor[Any]):
        async def handle(self, message: Any) -> None:
            raise RuntimeError(f"crashed on {message!r}")

    async def body() -> None:
        async with ActorSystem(max_restarts=2, within=5.0, escalate=True) as system:
            ref = await system.spawn(Crasher, name="crasher")
            for i in range(3):
                ref.tell(i)
            await ref.ask("x")  # raises in the body: the handler's error, or ActorStopped

    with pytest.raises(fearless.RestartIntensityExceeded) as caught:
        await body()
    assert caught.value.supervisor == "/"
    assert isinstance(caught.value.__context__, RuntimeError | fearless.ActorStopped)
