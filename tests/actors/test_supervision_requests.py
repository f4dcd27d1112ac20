"""A supervisor's requests and the system's get-or-spawn: a malformed request raises in the
asker and touches nothing; ``GetOrStartChild`` and ``system.get_or_spawn`` get or start a named
actor in one race-free call; every refusal names the way out (``docs/design/supervision.md``,
"Requests"; ``docs/supervision.md``, "Requests" and "Getting or starting a named actor").

Time is a ``FakeClock``; ``clock.advance(0)`` lets every task run until it blocks, so "the
caller is waiting" is checked, not hoped for.
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest

from fearless import (
    Actor,
    ActorNameTaken,
    ActorRef,
    ActorStartError,
    ActorSystem,
    Backoff,
    ChildSpec,
    DeleteChild,
    GetOrStartChild,
    RestartChild,
    StartChild,
    Supervisor,
    TerminateChild,
    WhichChildren,
)
from fearless.testing import FakeClock

from .support import lookup

pytestmark = pytest.mark.anyio

_serial = itertools.count(1)


class Worker(Actor[Any]):
    """Answers ``"who"`` with its instance's serial number; raises on ``"boom"``; an optional
    gate holds its ``on_start`` (the actor is starting until the gate opens); an optional
    ``on_stop`` gate holds its wind-down."""

    def __init__(
        self, start_gate: anyio.Event | None = None, stop_gate: anyio.Event | None = None
    ) -> None:
        self.serial = next(_serial)
        self.start_gate = start_gate
        self.stop_gate = stop_gate

    async def on_start(self) -> None:
        if self.start_gate is not None:
            await self.start_gate.wait()

    async def on_stop(self) -> None:
        if self.stop_gate is not None:
            await self.stop_gate.wait()

    async def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        return self.serial


class Factory:
    """A counted factory of ``Worker``s; ``broken`` makes the next calls raise."""

    def __init__(self, **worker_options: Any) -> None:
        self.calls = 0
        self.broken = False
        self.options = worker_options

    def __call__(self) -> Worker:
        self.calls += 1
        if self.broken:
            raise OSError(f"factory call {self.calls} failed")
        return Worker(**self.options)


async def children(sup: ActorRef[Any]) -> list[tuple[str | None, ActorRef[Any] | None, str]]:
    return [(info.name, info.ref, info.state) for info in await sup.ask(WhichChildren())]


def bypassing_checks(cls: type[Any], **fields: Any) -> Any:
    """An instance of a frozen dataclass built around its ``__post_init__`` checks, as a
    careless ``copy``, pickle or ``object.__new__`` can make one."""
    made = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(made, name, value)
    return made


# -- malformed requests ----------------------------------------------------------------------------


async def test_a_malformed_request_raises_in_the_asker_and_leaves_the_supervisor_untouched() -> (
    None
):
    """Each malformed request (a ``StartChild`` of a string, built around its checks;
    ``TerminateChild``, ``RestartChild`` and ``DeleteChild`` of a number; a ``ChildSpec`` built
    around its checks; a message that is no request at all) raises ``TypeError`` or
    ``ValueError`` in the asker, naming the bad value. The supervisor, a permanent child of
    another supervisor, is neither failed nor restarted, and every child it started on request
    is still there: the same refs, answered by the same instances."""
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        await system.spawn(
            lambda: Supervisor([ChildSpec(Supervisor, name="sup", restart="permanent")]),
            name="top",
        )
        sup = lookup(system, "sup")
        d1 = await sup.ask(StartChild(ChildSpec(Worker, name="d1")))
        d2 = await sup.ask(StartChild(ChildSpec(Worker)))  # unnamed
        before = await children(sup)
        serials = [await d1.ask("who"), await d2.ask("who")]

        with pytest.raises(TypeError, match="'text'"):
            StartChild("text")  # type: ignore[arg-type]
        bad_spec = bypassing_checks(
            ChildSpec,
            factory=Worker,
            name="d3",
            restart="sometimes",
            shutdown=5.0,
            mailbox=None,
            backoff="soon",
            decider=None,
        )
        malformed: list[tuple[Any, type[Exception], str]] = [
            (bypassing_checks(StartChild, spec="text", args=()), TypeError, "'text'"),
            (bypassing_checks(StartChild, spec=None, args=[1]), TypeError, r"\[1\]"),
            (bypassing_checks(StartChild, spec=bad_spec, args=()), ValueError, "'sometimes'"),
            (bypassing_checks(GetOrStartChild, spec=bad_spec), ValueError, "'sometimes'"),
            (bypassing_checks(GetOrStartChild, spec="text"), TypeError, "'text'"),
            (bypassing_checks(TerminateChild, child=42), TypeError, "42"),
            (bypassing_checks(RestartChild, child=42), TypeError, "42"),
            (bypassing_checks(DeleteChild, child=42), TypeError, "42"),
            ("hello", TypeError, "'hello'"),
        ]
        for request, error, match in malformed:
            with pytest.raises(error, match=match):
                await sup.ask(request)
        for make in (
            lambda: TerminateChild(42),  # type: ignore[arg-type]
            lambda: RestartChild(42),  # type: ignore[arg-type]
            lambda: DeleteChild(42),  # type: ignore[arg-type]
            lambda: GetOrStartChild("text"),  # type: ignore[arg-type]
        ):
            with pytest.raises(TypeError, match=r"42|'text'"):
                make()

        await clock.advance(10)
        assert await children(sup) == before
        assert [await d1.ask("who"), await d2.ask("who")] == serials
        assert system.lookup("sup") is sup
        assert system.lookup("d3") is None
        (top,) = system.snapshot().actors
        (sup_now,) = top.children
        assert (sup_now.failures, sup_now.restarts) == (0, 0)
        assert [(child.failures, child.restarts) for child in sup_now.children] == [(0, 0)] * 2


async def test_a_request_for_a_missing_or_running_child_raises_in_the_asker() -> None:
    """A request that is well formed but cannot be carried out (terminating a child that does
    not exist, restarting or deleting a running one) raises in the asker, names the child and
    the way out (``WhichChildren``, ``TerminateChild``), and leaves the supervisor running with
    its children as they were."""
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(lambda: Supervisor([ChildSpec(Worker, name="w")]), name="sup")
        before = await children(sup)
        with pytest.raises(ValueError, match=r"'ghost'.*WhichChildren"):
            await sup.ask(TerminateChild("ghost"))
        with pytest.raises(RuntimeError, match=r"'w'.*TerminateChild"):
            await sup.ask(RestartChild("w"))
        with pytest.raises(RuntimeError, match=r"'w'.*TerminateChild"):
            await sup.ask(DeleteChild("w"))
        assert await children(sup) == before


async def test_a_failed_restart_child_keeps_the_spec() -> None:
    """``RestartChild`` of a terminated child whose start fails raises ``ActorStartError`` in
    the asker, and the spec stays (``"ended"``): a later ``RestartChild`` starts it."""
    factory = Factory()
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(lambda: Supervisor([ChildSpec(factory, name="w")]), name="sup")
        await sup.ask(TerminateChild("w"))
        factory.broken = True
        with pytest.raises(ActorStartError):
            await sup.ask(RestartChild("w"))
        assert [(name, state) for name, _, state in await children(sup)] == [("w", "ended")]
        factory.broken = False
        await sup.ask(RestartChild("w"))
        assert [(name, state) for name, _, state in await children(sup)] == [("w", "running")]


# -- GetOrStartChild -------------------------------------------------------------------------------


async def test_get_or_start_child_returns_the_running_child() -> None:
    """``GetOrStartChild(spec)`` for a running child returns its ref, and builds nothing: the
    factory of the spec given is not called, and the same instance answers."""
    first, second = Factory(), Factory()
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(Supervisor, name="sup")
        ref = await sup.ask(StartChild(ChildSpec(first, name="room")))
        serial = await ref.ask("who")
        assert await sup.ask(GetOrStartChild(ChildSpec(second, name="room"))) is ref
        assert (first.calls, second.calls) == (1, 0)
        assert await ref.ask("who") == serial


async def test_get_or_start_child_starts_an_ended_child_again_from_the_spec_given() -> None:
    """For a child that has ended (terminated; its spec kept), ``GetOrStartChild(spec)`` starts
    it again from the spec given (its factory, its restart type), in the ended child's place in
    the start order; for a name the supervisor does not know, it starts a new child, last."""
    old, new = Factory(), Factory()
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(Worker, name="a"), ChildSpec(old, name="room"), ChildSpec(Worker)]
            ),
            name="sup",
        )
        await sup.ask(TerminateChild("room"))
        ref = await sup.ask(GetOrStartChild(ChildSpec(new, name="room", restart="transient")))
        assert (old.calls, new.calls) == (1, 1)
        infos = await sup.ask(WhichChildren())
        assert [(info.name, info.restart, info.state) for info in infos] == [
            ("a", "permanent", "running"),
            ("room", "transient", "running"),
            (infos[2].name, "permanent", "running"),
        ]
        assert infos[1].ref is ref
        assert system.lookup("room") is ref

        fresh = await sup.ask(GetOrStartChild(ChildSpec(Worker, name="fresh")))
        assert [info.name for info in await sup.ask(WhichChildren())][-1] == "fresh"
        assert system.lookup("fresh") is fresh


async def test_get_or_start_child_from_two_askers_at_once_starts_one_child() -> None:
    """Two tasks ask ``GetOrStartChild`` for one name at the same time, while the child's
    ``on_start`` is still running: both get the same ref, and the factory ran once (the
    supervisor handles one request at a time, so the second finds the first's child)."""
    gate = anyio.Event()
    factory = Factory(start_gate=gate)
    refs: list[ActorRef[Any]] = []
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(Supervisor, name="sup")

        async def get_or_start() -> None:
            refs.append(await sup.ask(GetOrStartChild(ChildSpec(factory, name="room"))))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(get_or_start)
                tg.start_soon(get_or_start)
                await clock.advance(0)  # both asked; the first start waits on the gate
                assert (factory.calls, refs) == (1, [])
                gate.set()
        assert factory.calls == 1
        assert len(refs) == 2
        assert refs[0] is refs[1]
        assert [name for name, _, _ in await children(sup)] == ["room"]


async def test_get_or_start_child_on_a_pool_names_start_child_with_args() -> None:
    """A pool's children are unnamed, so ``GetOrStartChild`` to a pool raises ``ValueError`` in
    the asker, naming the request to use instead: ``StartChild(args=...)``."""
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        pool = await system.spawn(lambda: Supervisor.pool(ChildSpec(Worker)), name="pool")
        with pytest.raises(ValueError, match=r"StartChild\(args=\.\.\.\)"):
            await pool.ask(GetOrStartChild(ChildSpec(Worker, name="room")))
        assert await children(pool) == []
        await pool.ask(StartChild(args=()))  # the pool goes on
        assert len(await children(pool)) == 1


async def test_get_or_start_child_needs_a_named_spec() -> None:
    """``GetOrStartChild`` of an unnamed spec is refused when made: the name is the key."""
    with pytest.raises(ValueError, match="named ChildSpec"):
        GetOrStartChild(ChildSpec(Worker))


# -- refusals name the way out ---------------------------------------------------------------------


async def test_start_child_with_a_taken_name_names_get_or_start_child_and_restart_child() -> None:
    """``StartChild`` of a name the supervisor has (running, or ended with its spec kept) raises
    ``ActorNameTaken`` (a ``ValueError``) in the asker, naming the name and the requests that
    do what the caller likely wants: ``GetOrStartChild`` and ``RestartChild``."""
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(lambda: Supervisor([ChildSpec(Worker, name="room")]), name="sup")
        for _ in ("running", "ended"):
            with pytest.raises(ActorNameTaken) as caught:
                await sup.ask(StartChild(ChildSpec(Worker, name="room")))
            assert isinstance(caught.value, ValueError)
            assert caught.value.name == "room"
            message = str(caught.value)
            assert "'room'" in message
            assert "GetOrStartChild" in message
            assert "RestartChild" in message
            await sup.ask(TerminateChild("room"))


async def test_spawn_with_a_running_name_names_get_or_spawn_and_lookup() -> None:
    """``system.spawn`` with the name of a running actor raises ``ActorNameTaken`` (a
    ``ValueError``) naming the name, ``get_or_spawn`` and ``lookup``; the running actor is
    untouched."""
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        ref = await system.spawn(Worker, name="room")
        with pytest.raises(ActorNameTaken) as caught:
            await system.spawn(Worker, name="room")
        assert isinstance(caught.value, ValueError)
        message = str(caught.value)
        assert "'room'" in message
        assert "get_or_spawn" in message
        assert "lookup" in message
        assert system.lookup("room") is ref
        assert ref.is_alive


# -- system.get_or_spawn ---------------------------------------------------------------------------


async def test_get_or_spawn_from_twenty_callers_at_once_starts_one_actor() -> None:
    """Twenty tasks call ``get_or_spawn`` for one name at once, while the actor's ``on_start``
    is held: every caller gets the same ref, and the factory was called once."""
    gate = anyio.Event()
    factory = Factory(start_gate=gate)
    refs: list[ActorRef[Any]] = []
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:

        async def get_or_spawn() -> None:
            refs.append(await system.get_or_spawn(factory, name="room"))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(get_or_spawn)
                await clock.advance(0)
                assert (factory.calls, refs) == (1, [])  # all twenty wait for the one start
                gate.set()
        assert factory.calls == 1
        assert len(refs) == 20
        assert all(ref is refs[0] for ref in refs)
        assert system.lookup("room") is refs[0]


async def test_get_or_spawn_arriving_while_the_actor_starts_waits_for_it() -> None:
    """A caller that arrives while the actor is starting (its ``on_start`` still running) waits
    until the start is over, and gets the same ref."""
    gate = anyio.Event()
    factory = Factory(start_gate=gate)
    got: dict[str, ActorRef[Any]] = {}
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:

        async def call(who: str) -> None:
            got[who] = await system.get_or_spawn(factory, name="room")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "first")
                await clock.advance(0)
                assert factory.calls == 1
                tg.start_soon(call, "second")
                await clock.advance(0)
                assert got == {}  # the second waits for the first's start
                gate.set()
        assert got["first"] is got["second"]
        assert factory.calls == 1


async def test_get_or_spawn_after_the_actor_stopped_starts_a_new_one() -> None:
    """Once the actor of that name has stopped, ``get_or_spawn`` starts a new one (a new ref);
    while it runs, ``get_or_spawn`` returns it without calling the factory."""
    factory = Factory()
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        old = await system.get_or_spawn(factory, name="room")
        assert await system.get_or_spawn(factory, name="room") is old
        assert factory.calls == 1
        old.stop()
        await old.wait_stopped()
        new = await system.get_or_spawn(factory, name="room")
        assert new is not old
        assert new.is_alive
        assert factory.calls == 2


async def test_get_or_spawn_while_the_actor_stops_for_good_waits_and_starts_a_new_one() -> None:
    """A caller that finds the actor stopping for good (``ref.stop()``, its ``on_stop`` still
    running) waits for it to end, then starts a new actor under the name."""
    gate = anyio.Event()
    factory = Factory(stop_gate=gate)
    got: list[ActorRef[Any]] = []
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        old = await system.get_or_spawn(factory, name="room")
        old.stop()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    got.append(await system.get_or_spawn(factory, name="room"))

                await clock.advance(0)  # old is in its on_stop
                tg.start_soon(call)
                await clock.advance(0)
                assert got == []
                gate.set()
        assert got[0] is not old
        assert not old.is_alive
        assert factory.calls == 2


async def test_get_or_spawn_while_the_actor_restarts_after_a_failure_returns_it() -> None:
    """A caller that arrives while a top-level actor winds down after a failure (its
    ``on_stop`` still running, to be restarted next) gets that actor's ref once it is running
    again: a restart is not an end, so no second actor is started and the caller does not wait
    for an end that never comes."""
    gate = anyio.Event()
    factory = Factory(stop_gate=gate)
    got: list[ActorRef[Any]] = []
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        ref = await system.get_or_spawn(factory, name="room")
        ref.tell("boom")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    got.append(await system.get_or_spawn(factory, name="room"))

                await clock.advance(0)  # the failed instance is in its on_stop
                tg.start_soon(call)
                await clock.advance(0)
                gate.set()
        assert got == [ref]
        await clock.advance(0)  # (the caller may have got it between instances)
        assert factory.calls == 2  # the restart, and nothing else
        assert await ref.ask("who") == await got[0].ask("who")


async def test_get_or_spawn_while_the_actor_waits_out_a_backoff_returns_it() -> None:
    """A caller that finds the actor between instances (waiting out its backoff) gets its ref
    at once: its mailbox stays open, and what the caller sends is handled once it restarts."""
    factory = Factory()
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        ref = await system.get_or_spawn(
            factory, name="room", backoff=Backoff(10.0, 10.0, jitter=0.0)
        )
        ref.tell("boom")
        await clock.advance(0)
        with anyio.fail_after(5):
            assert await system.get_or_spawn(factory, name="room") is ref
        assert factory.calls == 1
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(clock.advance, 10.0)
                assert await ref.ask("who") > 0  # queued, answered by the restarted instance
        assert factory.calls == 2


async def test_get_or_spawn_whose_start_fails_raises_and_a_later_call_starts_it() -> None:
    """When the start fails, ``get_or_spawn`` raises ``ActorStartError`` (the factory's error as
    its cause) and the name is free: a later call, once the factory works, starts the actor."""
    factory = Factory()
    factory.broken = True
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        with pytest.raises(ActorStartError) as caught:
            await system.get_or_spawn(factory, name="room")
        assert isinstance(caught.value.__cause__, OSError)
        assert system.lookup("room") is None
        factory.broken = False
        ref = await system.get_or_spawn(factory, name="room")
        assert ref.is_alive
        assert system.lookup("room") is ref


async def test_get_or_spawn_refuses_a_missing_name() -> None:
    """``get_or_spawn`` without a usable name raises ``TypeError`` naming the value."""
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        for name in (None, "", 7):
            with pytest.raises(TypeError, match=repr(name)):
                await system.get_or_spawn(Worker, name=name)  # type: ignore[arg-type]


async def test_get_or_spawn_while_a_restart_fails_returns_the_actor_without_its_backoff() -> None:
    """A caller that arrives while a top-level actor is restarting (its ``on_restart`` still
    running), when that restart then fails and the next attempt waits out a 30 s backoff, gets
    the actor's ref as soon as the failed attempt is over: the actor is between instances, the
    same actor, and the caller does not wait out the backoff."""
    gate = anyio.Event()
    attempts = [0]

    class Fragile(Worker):
        async def on_restart(self, error: BaseException) -> None:
            attempts[0] += 1
            if attempts[0] == 1:
                await gate.wait()
                raise OSError("the first restart fails")

    got: list[ActorRef[Any]] = []
    clock = FakeClock()
    async with ActorSystem(clock=clock, max_restarts=10) as system:
        ref = await system.spawn(
            Fragile, name="room", backoff=Backoff(0.5, 30.0, jitter=0.0, reset_after=60.0)
        )
        ref.tell("boom")
        await clock.advance(0.5)  # the first restart is due, and hangs in on_restart
        assert attempts == [1]
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    got.append(await system.get_or_spawn(Fragile, name="room"))

                tg.start_soon(call)
                await clock.advance(0)
                assert got == []  # it waits for the start in progress
                gate.set()
        assert got == [ref]
        assert clock.now() == 0.5  # not after the next delay
        await clock.advance(1.0)  # the second restart, 1 s after the failed one, succeeds
        assert attempts == [2]
        assert await ref.ask("who") > 0
