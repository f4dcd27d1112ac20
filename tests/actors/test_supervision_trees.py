"""Supervision trees: cases 10-12 and 14-25 of ``docs/design/supervision.md`` (summed up in the
docstring of ``fearless/_actors/_supervision.py``). Every test runs on asyncio, uvloop and trio.

Time runs on ``fearless.testing.FakeClock``: every event is asserted at its exact clock time. Order
is asserted on a log the actors write in ``on_start`` / ``on_stop``; instance identity through an
id each instance gets from a counter when it is built (a restart builds a new one). A wait for
something to happen is ``wait_all_tasks_blocked()`` or ``clock.advance``, never a sleep
(except case 22, whose ask timeout is on the event loop's clock).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup

from fearless import (
    Actor,
    ActorRef,
    ActorStartError,
    ActorStopped,
    ActorSystem,
    Backoff,
    ChildInfo,
    ChildSpec,
    DeadLetter,
    DeadLetterReason,
    DeadlockError,
    LinkedActorFailed,
    Request,
    RestartChild,
    RestartIntensityExceeded,
    StartChild,
    Supervisor,
    TerminateChild,
    Terminated,
    WhichChildren,
)
from fearless.testing import FakeClock, wait_all_tasks_blocked

pytestmark = pytest.mark.anyio

_ids = itertools.count(1)


class Boom(Exception):
    """A child's failure."""


@dataclass(frozen=True)
class Fail:
    """The handler raises ``Boom(why)``."""

    why: str = "boom"


@dataclass(frozen=True)
class Hang:
    """The handler waits for ``event``: the actor does not get to a stop request meanwhile."""

    event: anyio.Event


@dataclass(frozen=True)
class WhoAmI(Request[int]):
    """Answers the id of the instance handling it."""


@dataclass(frozen=True)
class Sleep(Request[str]):
    """Handled in ``seconds`` on the system's clock; answers ``reply``."""

    seconds: float
    reply: str


@dataclass(frozen=True)
class Echo(Request[str]):
    text: str


class Worker(Actor[Any]):
    """Logs ``start NAME`` / ``stop NAME`` (with the clock's time in ``times``); takes
    ``stop_delay`` seconds of clock time in ``on_stop``."""

    def __init__(
        self,
        log: list[str],
        *,
        stop_delay: float | None = None,
        times: list[tuple[str, float]] | None = None,
    ) -> None:
        self.id = next(_ids)
        self.log = log
        self.stop_delay = stop_delay
        self.times = times

    def _note(self, event: str) -> None:
        self.log.append(f"{event} {self.context.name}")
        if self.times is not None:
            self.times.append((f"{event} {self.context.name}", self.context.system.clock.now()))

    async def on_start(self) -> None:
        self._note("start")

    async def on_stop(self) -> None:
        if self.stop_delay is not None:
            clock = self.context.system.clock
            await clock.sleep_until(clock.now() + self.stop_delay)
        self._note("stop")

    async def handle(self, message: Any) -> Any:
        match message:
            case Fail(why):
                raise Boom(why)
            case Hang(event):
                await event.wait()
            case WhoAmI():
                return self.id
            case Sleep(seconds, reply):
                clock = self.context.system.clock
                await clock.sleep_until(clock.now() + seconds)
                return reply
            case Echo(text):
                return text
        return None


def worker(log: list[str], **kwargs: Any) -> Callable[[], Worker]:
    return lambda: Worker(log, **kwargs)


async def children(sup: ActorRef[Any]) -> tuple[ChildInfo, ...]:
    return await sup.ask(WhichChildren())


async def child(sup: ActorRef[Any], name: str) -> ActorRef[Any]:
    for info in await children(sup):
        if info.name == name:
            assert info.ref is not None, info
            return info.ref
    raise AssertionError(f"no child {name!r}")


async def ids(sup: ActorRef[Any]) -> dict[str | None, int]:
    """The instance id of each running child."""
    out: dict[str | None, int] = {}
    for info in await children(sup):
        assert info.ref is not None, info
        out[info.name] = await info.ref.ask(WhoAmI())
    return out


def stopped_at(
    tg: TaskGroup, clock: FakeClock, ref: ActorRef[Any], into: dict[str, tuple[float, Terminated]]
) -> None:
    """Record, in ``into[name]``, the clock's time when ``ref`` stops and its notice."""

    async def wait() -> None:
        notice = await ref.wait_stopped()
        into[ref.name] = (clock.now(), notice)

    tg.start_soon(wait)


def alive(ref: ActorRef[Any]) -> bool:
    """``ref.is_alive``, unnarrowed by mypy across awaits."""
    return ref.is_alive


def causes(error: BaseException | None) -> list[BaseException]:
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__
    return chain


# -- strategies and order --------------------------------------------------------------------------


async def test_case_10_rest_for_one_restarts_the_failed_child_and_those_started_after_it() -> None:
    """10. ``rest_for_one``, children [A, B, C, D]; B fails: D is stopped, then C (reverse order);
    then B, C, D start in that order. A keeps running, untouched (the same instance)."""
    log: list[str] = []
    specs = [ChildSpec(worker(log), name=n) for n in "ABCD"]
    async with ActorSystem(clock=FakeClock()) as system:
        sup = await system.spawn(lambda: Supervisor(specs, strategy="rest_for_one"), name="sup")
        assert log == ["start A", "start B", "start C", "start D"]
        refs = {n: await child(sup, n) for n in "ABCD"}
        before = await ids(sup)
        log.clear()

        refs["B"].tell(Fail())
        await wait_all_tasks_blocked()

        # B's own on_stop runs as it fails (the old instance winds down), before the strategy.
        assert log == ["stop B", "stop D", "stop C", "start B", "start C", "start D"]
        after = await ids(sup)
        assert after["A"] == before["A"]  # untouched: the same instance
        for n in "BCD":
            assert after[n] != before[n]  # new instances
        assert {n: await child(sup, n) for n in "ABCD"} == refs  # the same refs
        assert [(i.name, i.state) for i in await children(sup)] == [(n, "running") for n in "ABCD"]


async def test_case_11_one_for_all_stops_the_others_in_reverse_order_and_restarts_all() -> None:
    """11. ``one_for_all``, [A, B, C]; B fails: C then A are stopped (reverse order); then A, B, C
    start in order."""
    log: list[str] = []
    specs = [ChildSpec(worker(log), name=n) for n in "ABC"]
    async with ActorSystem(clock=FakeClock()) as system:
        sup = await system.spawn(lambda: Supervisor(specs, strategy="one_for_all"), name="sup")
        before = await ids(sup)
        log.clear()

        (await child(sup, "B")).tell(Fail())
        await wait_all_tasks_blocked()

        assert log == ["stop B", "stop C", "stop A", "start A", "start B", "start C"]
        after = await ids(sup)
        assert all(after[n] != before[n] for n in "ABC")
        assert [(i.name, i.state) for i in await children(sup)] == [(n, "running") for n in "ABC"]


async def test_case_12_one_for_all_stops_a_temporary_child_without_restarting_it() -> None:
    """12. ``one_for_all`` with a temporary child T in [A, T, B]; A fails: T is stopped and not
    restarted; A and B restart."""
    log: list[str] = []
    specs = [
        ChildSpec(worker(log), name="A"),
        ChildSpec(worker(log), name="T", restart="temporary"),
        ChildSpec(worker(log), name="B"),
    ]
    async with ActorSystem(clock=FakeClock()) as system:
        sup = await system.spawn(lambda: Supervisor(specs, strategy="one_for_all"), name="sup")
        t = await child(sup, "T")
        before = await ids(sup)
        log.clear()

        (await child(sup, "A")).tell(Fail())
        await wait_all_tasks_blocked()

        assert log == ["stop A", "stop B", "stop T", "start A", "start B"]
        notice = await t.wait_stopped()
        assert notice.reason == "stopped"
        assert not alive(t)
        assert system.lookup("T") is None
        assert [(i.name, i.state) for i in await children(sup)] == [
            ("A", "running"),
            ("B", "running"),
        ]
        after = await ids(sup)
        assert after["A"] != before["A"]
        assert after["B"] != before["B"]


# -- failed restarts -------------------------------------------------------------------------------


async def test_case_14_a_child_failing_to_start_stops_those_started_and_fails_the_start() -> None:
    """14. At start-up, C's factory raises in [A, B, C, D]: B then A are stopped, D never starts,
    and starting the supervisor raises an error naming child C and carrying C's exception."""
    log: list[str] = []
    built: list[str] = []
    error = Boom("C cannot start")

    def factory(name: str) -> Callable[[], Worker]:
        def make() -> Worker:
            built.append(name)
            if name == "C":
                raise error
            return Worker(log)

        return make

    specs = [ChildSpec(factory(n), name=n) for n in "ABCD"]
    async with ActorSystem(clock=FakeClock()) as system:
        with pytest.raises(ActorStartError) as caught:
            await system.spawn(lambda: Supervisor(specs), name="sup")
        assert "'C'" in str(caught.value)
        chain = causes(caught.value)
        assert error in chain
        assert any(isinstance(e, ActorStartError) and e.name == "C" for e in chain)
        assert log == ["start A", "start B", "stop B", "stop A"]
        assert built == ["A", "B", "C"]  # D never started (its factory never ran)
        for n in ("sup", "A", "B", "C", "D"):
            assert system.lookup(n) is None  # names released
        assert system.snapshot().actors == ()


# -- shutdown --------------------------------------------------------------------------------------


async def test_case_15_children_stop_in_reverse_order_each_by_its_shutdown() -> None:
    """15. Stopping a supervisor with children [A (shutdown 2 s, ignores the stop request), B
    (shutdown 0), C (shutdown None, takes 3 s to stop)] stops them in reverse start order: C first
    (waited for, 3 s), then B (cancelled at once), then A (asked, cancelled after 2 s): about 5 s
    in all."""
    clock = FakeClock()
    log: list[str] = []
    times: list[tuple[str, float]] = []
    specs = [
        ChildSpec(worker(log, times=times), name="A", shutdown=2.0),
        ChildSpec(worker(log, stop_delay=1.0, times=times), name="B", shutdown=0),
        ChildSpec(worker(log, stop_delay=3.0, times=times), name="C", shutdown=None),
    ]
    ended: dict[str, tuple[float, Terminated]] = {}
    never = anyio.Event()
    async with ActorSystem(clock=clock) as system, anyio.create_task_group() as tg:
        sup = await system.spawn(lambda: Supervisor(specs), name="sup")
        refs = {n: await child(sup, n) for n in "ABC"}
        refs["A"].tell(Hang(never))  # A is busy for good: it never reaches the stop request
        for ref in (*refs.values(), sup):
            stopped_at(tg, clock, ref, ended)
        times.clear()

        sup.stop()
        await clock.advance(2.999)
        assert ended == {}  # C still stopping
        await clock.advance(0.001)
        assert set(ended) == {"C", "B"}
        await clock.advance(1.999)
        assert set(ended) == {"C", "B"}  # A gets 2 s
        await clock.advance(0.001)
        await wait_all_tasks_blocked()

        assert times == [("stop C", 3.0)]  # B was cancelled, A killed: no on_stop
        assert ended["C"][0] == 3.0
        assert ended["C"][1].reason == "stopped"
        assert ended["B"][0] == 3.0
        assert ended["B"][1].reason == "shutdown"
        assert ended["A"][0] == pytest.approx(5.0)
        assert ended["A"][1].reason == "shutdown"
        assert ended["sup"][0] == pytest.approx(5.0)
        assert ended["sup"][1].reason == "stopped"
        never.set()


async def test_case_16_a_pool_stops_its_children_concurrently() -> None:
    """16. A dynamic pool of 100 children, shutdown 1 s each, each taking 0.5 s to stop, stops them
    all concurrently: about 0.5 s, not 50 s."""
    clock = FakeClock()
    log: list[str] = []
    times: list[tuple[str, float]] = []
    ended: dict[str, tuple[float, Terminated]] = {}
    spec = ChildSpec(
        lambda: Worker(log, stop_delay=0.5, times=times), shutdown=1.0, restart="temporary"
    )
    async with ActorSystem(clock=clock) as system, anyio.create_task_group() as tg:
        pool = await system.spawn(lambda: Supervisor.pool(spec), name="pool")
        refs = [await pool.ask(StartChild()) for _ in range(100)]
        assert len(await children(pool)) == 100
        for ref in (*refs, pool):
            stopped_at(tg, clock, ref, ended)
        times.clear()

        pool.stop()
        await clock.advance(0.499)
        assert ended == {}
        await clock.advance(0.001)
        await wait_all_tasks_blocked()

        assert len(ended) == 101
        assert {at for at, _ in ended.values()} == {0.5}
        assert {notice.reason for _, notice in ended.values()} == {"stopped"}  # none killed
        assert len(times) == 100
        assert {at for _, at in times} == {0.5}


async def test_case_16_pool_children_get_their_args() -> None:
    """16 (set-up). A pool child is built by ``spec.factory(*args)``."""

    class Named(Actor[Any]):
        def __init__(self, tag: str) -> None:
            self.tag = tag

        async def handle(self, message: Any) -> Any:
            return self.tag

    async with ActorSystem(clock=FakeClock()) as system:
        pool = await system.spawn(lambda: Supervisor.pool(ChildSpec(Named)), name="pool")
        refs = [await pool.ask(StartChild(args=(f"t{i}",))) for i in range(3)]
        assert [await ref.ask("tag?") for ref in refs] == ["t0", "t1", "t2"]


# -- trees -----------------------------------------------------------------------------------------


def tree(log: list[str], mid_restart: str) -> tuple[Callable[[], Supervisor], list[int]]:
    """top (one_for_one, 1 per 5 s) -> mid (2 per 5 s) -> W; and the ids of mid's instances."""
    mids: list[int] = []

    def make_mid() -> Supervisor:
        mids.append(next(_ids))
        return Supervisor([ChildSpec(worker(log), name="W")], max_restarts=2, within=5.0)

    def make_top() -> Supervisor:
        return Supervisor(
            [ChildSpec(make_mid, name="mid", restart=mid_restart)],  # type: ignore[arg-type]
            max_restarts=1,
            within=5.0,
        )

    return make_top, mids


async def fail_w(system: ActorSystem) -> None:
    w = system.lookup("W")
    assert w is not None
    w.tell(Fail())
    await wait_all_tasks_blocked()


async def test_case_17_a_supervisor_that_gives_up_is_restarted_by_its_parent() -> None:
    """17. top (one_for_one, intensity 1 per 5 s) supervises mid (permanent, intensity 2 per 5 s),
    which supervises worker W (permanent). W fails three times within 5 s: mid gives up, top
    restarts mid (one restart), the new mid starts W. If mid gives up a second time within 5 s,
    top gives up."""
    clock = FakeClock()
    log: list[str] = []
    make_top, mids = tree(log, "permanent")
    async with ActorSystem(clock=clock) as system:
        top = await system.spawn(make_top, name="top", restart="temporary")
        mid = await child(top, "mid")
        assert len(mids) == 1
        assert log == ["start W"]
        w1 = await child(mid, "W")

        await fail_w(system)  # t = 0: restarted by mid
        await clock.advance(1.0)
        await fail_w(system)  # t = 1: restarted by mid
        await clock.advance(1.0)
        assert len(mids) == 1
        assert await child(mid, "W") is w1  # restarts keep the ref
        assert log == ["start W", "stop W", "start W", "stop W", "start W"]
        log.clear()

        await fail_w(system)  # t = 2: one too many for mid: it gives up, top restarts it
        assert len(mids) == 2  # a new mid instance
        assert await child(top, "mid") is mid  # the same ref
        assert alive(top)
        assert alive(mid)
        assert log == ["stop W", "start W"]  # the new mid started a new W
        w2 = await child(mid, "W")
        assert w2 is not w1
        assert not alive(w1)
        assert (await w1.wait_stopped()).reason == "failed"
        assert [(i.name, i.state) for i in await children(top)] == [("mid", "running")]

        # The new mid gives up too, at t = 4 (within 5 s of t = 2): top gives up.
        await clock.advance(1.0)
        await fail_w(system)
        await clock.advance(0.5)
        await fail_w(system)
        assert alive(top)
        assert len(mids) == 2
        await clock.advance(0.5)
        await fail_w(system)
        notice = await top.wait_stopped()
        assert clock.now() == 4.0
        assert notice.reason == "failed"
        error = notice.error
        assert isinstance(error, RestartIntensityExceeded)
        assert error.supervisor == "top"
        assert error.max_restarts == 1
        assert isinstance(error.cause, RestartIntensityExceeded)
        assert error.cause.supervisor == "mid"
        assert error.cause.max_restarts == 2
        assert isinstance(error.cause.cause, Boom)
        assert len(mids) == 2  # top did not restart mid again
        assert not alive(mid)
        assert system.lookup("W") is None
        assert (await mid.wait_stopped()).reason == "failed"


async def test_case_18_a_transient_supervisor_that_gives_up_is_restarted() -> None:
    """18. The same tree with mid declared transient: when mid gives up, top restarts it (giving
    up is a failure, not a normal exit)."""
    clock = FakeClock()
    log: list[str] = []
    make_top, mids = tree(log, "transient")
    async with ActorSystem(clock=clock) as system:
        top = await system.spawn(make_top, name="top", restart="temporary")
        mid = await child(top, "mid")
        for _ in range(3):  # t = 0, 1, 2: the third is one too many for mid
            await fail_w(system)
            await clock.advance(1.0)
        assert len(mids) == 2  # restarted, though transient
        assert await child(top, "mid") is mid
        assert alive(mid)
        assert [(i.name, i.restart, i.state) for i in await children(top)] == [
            ("mid", "transient", "running")
        ]
        assert [(i.name, i.state) for i in await children(mid)] == [("W", "running")]
        assert log[-2:] == ["stop W", "start W"]
        # Its graceful end (by the supervisor: TerminateChild) is not restarted.
        await top.ask(TerminateChild("mid"))
        assert (await mid.wait_stopped()).reason == "stopped"
        assert len(mids) == 2


# -- manual control --------------------------------------------------------------------------------


async def test_case_19_stopping_a_child_by_hand_does_not_restart_or_count_it() -> None:
    """19. Stopping a child by hand stops it by its shutdown spec and does not restart or count
    it. Restarting a child that is running is an error."""
    clock = FakeClock()
    log: list[str] = []
    specs = [
        ChildSpec(worker(log), name="A", shutdown=2.0),
        ChildSpec(worker(log), name="B"),
        ChildSpec(worker(log), name="C"),
    ]
    never = anyio.Event()
    async with ActorSystem(clock=clock) as system, anyio.create_task_group() as tg:
        # max_restarts=0: a single counted restart would make it give up.
        sup = await system.spawn(lambda: Supervisor(specs, max_restarts=0), name="sup")
        a = await child(sup, "A")
        a.tell(Hang(never))  # it ignores the stop request: killed after its 2 s
        done: list[float] = []

        async def terminate() -> None:
            await sup.ask(TerminateChild("A"))
            done.append(clock.now())

        tg.start_soon(terminate)
        await clock.advance(1.999)
        assert done == []
        assert alive(a)
        await clock.advance(0.001)
        assert done == [2.0]
        notice = await a.wait_stopped()
        assert notice.reason == "shutdown"
        assert [(i.name, i.ref, i.state) for i in await children(sup)] == [
            ("A", None, "ended"),
            ("B", await child(sup, "B"), "running"),
            ("C", await child(sup, "C"), "running"),
        ]
        await clock.advance(10.0)
        assert system.lookup("A") is None  # not restarted
        assert alive(sup)  # not counted

        # ref.stop() from outside is a stop by hand too.
        b = await child(sup, "B")
        b.stop()
        assert (await b.wait_stopped()).reason == "stopped"
        await wait_all_tasks_blocked()
        assert [(i.name, i.state) for i in await children(sup)] == [
            ("A", "ended"),
            ("B", "ended"),
            ("C", "running"),
        ]
        assert alive(sup)

        # Restarting a running child: an error in the asker; the supervisor carries on.
        c = await child(sup, "C")
        c_id = await c.ask(WhoAmI())
        with pytest.raises(RuntimeError, match="'C'"):
            await sup.ask(RestartChild("C"))
        assert alive(sup)
        assert await child(sup, "C") is c
        assert await c.ask(WhoAmI()) == c_id
        with pytest.raises(ValueError, match="nope"):
            await sup.ask(RestartChild("nope"))

        # A terminated child restarts on request (not counted either).
        log.clear()
        a2 = await sup.ask(RestartChild("A"))
        assert log == ["start A"]
        assert alive(a2)
        assert a2 is not a
        assert [(i.name, i.state) for i in await children(sup)] == [
            ("A", "running"),
            ("B", "ended"),
            ("C", "running"),
        ]
        assert alive(sup)
        never.set()


async def test_case_19_a_restarted_child_keeps_its_place_in_the_shutdown_order() -> None:
    """19 with 15. A child restarted by ``RestartChild`` keeps its place in the start order
    (``WhichChildren``): the supervisor stops its children in reverse of that order."""
    log: list[str] = []
    specs = [ChildSpec(worker(log), name=n) for n in "AB"]
    async with ActorSystem(clock=FakeClock()) as system:
        sup = await system.spawn(lambda: Supervisor(specs), name="sup")
        await sup.ask(TerminateChild("A"))
        await sup.ask(RestartChild("A"))
        assert [i.name for i in await children(sup)] == ["A", "B"]
        log.clear()
        sup.stop()
        await sup.wait_stopped()
        assert log == ["stop B", "stop A"]


# -- watching --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watch:
    ref: ActorRef[Any]


@dataclass(frozen=True)
class LinkTo:
    ref: ActorRef[Any]


@dataclass(frozen=True)
class Notices(Request[list[Terminated]]):
    pass


class Watcher(Actor[Any]):
    """Monitors or links on request; records the notices it gets."""

    def __init__(self) -> None:
        self.notices: list[Terminated] = []

    async def handle(self, message: Any) -> Any:
        match message:
            case Watch(ref):
                self.context.monitor(ref)
            case LinkTo(ref):
                self.context.link(ref)
            case Notices():
                return list(self.notices)
            case Fail(why):
                raise Boom(why)
        return None

    async def on_terminated(self, notice: Terminated) -> None:
        self.notices.append(notice)


class TrappingWatcher(Watcher):
    trap_links = True


async def test_case_20_monitoring_a_stopped_actor_delivers_terminated_at_once() -> None:
    """20. Monitoring an actor that is already stopped delivers a ``Terminated`` notice at once."""
    async with ActorSystem(clock=FakeClock()) as system:
        target = await system.spawn(Watcher, name="target", restart="temporary")
        target.stop()
        await target.wait_stopped()
        watcher = await system.spawn(Watcher, name="watcher")
        await watcher.ask(Watch(target))
        # The notice was queued as the monitor was set up: it comes before the next message.
        notices = await watcher.ask(Notices())
        assert len(notices) == 1
        assert notices[0].ref is target
        assert notices[0].reason == "stopped"


async def test_case_21_a_link_propagates_failures_not_graceful_stops() -> None:
    """21. A link between A and B: A fails, so B fails with a ``LinkedActorFailed`` carrying A's
    exception; A stops normally, so B keeps running. An actor that traps links receives the notice
    as a message instead of failing."""
    async with ActorSystem(clock=FakeClock()) as system:
        # A fails: B fails with it.
        a = await system.spawn(Watcher, name="A", restart="temporary")
        b = await system.spawn(Watcher, name="B", restart="temporary")
        await b.ask(LinkTo(a))
        a.tell(Fail("A's failure"))
        a_notice = await a.wait_stopped()
        b_notice = await b.wait_stopped()
        assert a_notice.reason == "failed"
        assert isinstance(a_notice.error, Boom)
        assert b_notice.reason == "failed"
        assert isinstance(b_notice.error, LinkedActorFailed)
        assert b_notice.error.__cause__ is a_notice.error
        assert b_notice.error.terminated.ref is a

        # A stops normally: B keeps running.
        a = await system.spawn(Watcher, name="A", restart="temporary")
        b = await system.spawn(Watcher, name="B", restart="temporary")
        await b.ask(LinkTo(a))
        a.stop()
        assert (await a.wait_stopped()).reason == "stopped"
        await wait_all_tasks_blocked()
        assert alive(b)
        assert await b.ask(Notices()) == []

        # B traps links: A's failure is a message.
        a = await system.spawn(Watcher, name="A", restart="temporary")
        t = await system.spawn(TrappingWatcher, name="T", restart="temporary")
        await t.ask(LinkTo(a))
        a.tell(Fail("again"))
        a_notice = await a.wait_stopped()
        await wait_all_tasks_blocked()
        assert alive(t)
        notices = await t.ask(Notices())
        assert len(notices) == 1
        assert notices[0].ref is a
        assert notices[0].reason == "failed"
        assert notices[0].error is a_notice.error


async def test_case_21_a_restart_does_not_fire_links() -> None:
    """21 with restarts. A supervised child that fails and is restarted has not ended: its link
    does not fire (Akka's semantics, the module docstring)."""
    log: list[str] = []
    async with ActorSystem(clock=FakeClock()) as system:
        sup = await system.spawn(lambda: Supervisor([ChildSpec(worker(log), name="A")]))
        a = await child(sup, "A")
        b = await system.spawn(Watcher, name="B", restart="temporary")
        await b.ask(LinkTo(a))
        await b.ask(Watch(a))
        a.tell(Fail())
        await wait_all_tasks_blocked()
        assert log == ["start A", "stop A", "start A"]
        assert alive(b)
        assert await b.ask(Notices()) == []


# -- ask -------------------------------------------------------------------------------------------


async def test_case_22_an_ask_that_times_out_never_gets_the_stale_reply() -> None:
    """22. ``ask(msg, timeout=0.1)`` to an actor whose handler takes 1 s raises ``TimeoutError`` at
    about 0.1 s, and the late reply is dropped: the next ask gets its own reply, never the stale
    one."""
    clock = FakeClock()
    log: list[str] = []
    async with ActorSystem(clock=clock) as system:
        letters = system.dead_letters()
        slow = await system.spawn(worker(log), name="slow")
        began = anyio.current_time()
        with pytest.raises(TimeoutError):
            await slow.ask(Sleep(1.0, "late"), timeout=0.1)  # the timeout is the loop's
        waited = anyio.current_time() - began
        assert 0.09 <= waited < 1.0  # (the handler only ends when the fake clock says so)
        assert clock.now() == 0.0

        await clock.advance(1.0)  # the handler returns now: its reply has no taker
        assert await slow.ask(Echo("fresh")) == "fresh"
        assert await slow.ask(Sleep(0.0, "own")) == "own"
        got: list[DeadLetter] = []
        while True:
            try:
                got.append(letters.receive_nowait())
            except anyio.WouldBlock:
                break
        assert got == [DeadLetter("late", "slow", DeadLetterReason.REPLY_UNDELIVERED)]
        letters.close()


async def test_case_23_an_ask_to_a_stopped_actor_raises_actor_stopped_at_once() -> None:
    """23. An ask to a stopped actor raises ``ActorStopped`` at once, never a timeout."""
    log: list[str] = []
    async with ActorSystem(clock=FakeClock()) as system:
        ref = await system.spawn(worker(log), name="w", restart="temporary")
        ref.stop()
        await ref.wait_stopped()
        began = anyio.current_time()
        with pytest.raises(ActorStopped):
            await ref.ask(Echo("anyone?"), timeout=30.0)
        with pytest.raises(ActorStopped):
            await ref.ask(Echo("anyone?"))
        assert anyio.current_time() - began < 5.0

        # Stopped while the ask waits in its mailbox: ActorStopped too.
        never = anyio.Event()
        busy = await system.spawn(worker(log), name="busy", restart="temporary", shutdown=0)
        busy.tell(Hang(never))
        result: list[BaseException] = []

        async def ask() -> None:
            try:
                await busy.ask(Echo("queued"))
            except ActorStopped as exc:
                result.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await wait_all_tasks_blocked()
            busy.kill()
        assert len(result) == 1


@dataclass(frozen=True)
class AskSelf(Request[str]):
    pass


@dataclass(frozen=True)
class AskOther(Request[str]):
    other: ActorRef[Any]


class SelfAsker(Actor[Any]):
    async def handle(self, message: Any) -> Any:
        match message:
            case AskSelf():
                try:
                    await self.context.ref.ask(Echo("me"))
                except DeadlockError as exc:
                    return f"deadlock: {exc}"
                return "answered"
            case AskOther(other):
                try:
                    return await other.ask(AskOther(self.context.ref))
                except DeadlockError:
                    return "deadlock"
        return None


async def test_case_24_an_actor_asking_itself_gets_an_error_at_once() -> None:
    """24. An actor that asks itself from inside its own handler gets an error at once instead of
    a deadlock."""
    async with ActorSystem(clock=FakeClock()) as system:
        me = await system.spawn(SelfAsker, name="me")
        reply = await me.ask(AskSelf(), timeout=30.0)
        assert reply.startswith("deadlock: ")
        assert "'me'" in reply
        assert alive(me)
        # Through a chain: me asks other, which asks me back.
        other = await system.spawn(SelfAsker, name="other")
        assert await me.ask(AskOther(other), timeout=30.0) == "deadlock"


# -- backoff ---------------------------------------------------------------------------------------


async def backoff_delays(
    clock: FakeClock, system: ActorSystem, times: list[tuple[str, float]], failures: int
) -> list[float]:
    """Fail child "A" ``failures`` times, 1.5 s apart (more than the longest delay), and measure
    each restart's delay: from the failure to the new instance's on_start, on the clock."""
    delays = []
    for _ in range(failures):
        a = system.lookup("A")
        assert a is not None
        failed_at = clock.now()
        count = len(times)
        a.tell(Fail())
        await wait_all_tasks_blocked()
        assert len(times) == count + 1
        assert times[-1][0] == "stop A"
        await clock.advance(1.5)
        assert len(times) == count + 2
        assert times[-1][0] == "start A"
        delays.append(round(times[-1][1] - failed_at, 9))
    return delays


async def test_case_25_backoff_doubles_up_to_its_cap_and_resets_after_staying_up() -> None:
    """25. Backoff from 0.1 s to 1.0 s: successive restart delays 0.1, 0.2, 0.4, 0.8, 1.0, 1.0
    (before jitter); after the child stays up for the reset interval, the next delay is 0.1
    again."""
    clock = FakeClock()
    times: list[tuple[str, float]] = []
    spec = ChildSpec(
        worker([], times=times),
        name="A",
        backoff=Backoff(0.1, 1.0, jitter=0, reset_after=10.0),
    )
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor([spec], max_restarts=100, within=5.0), name="sup"
        )
        assert await backoff_delays(clock, system, times, 6) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]

        # While it waits, it is "restarting", and the supervisor still answers.
        a = await child(sup, "A")
        a.tell(Fail())
        await wait_all_tasks_blocked()
        assert [(i.name, i.state) for i in await children(sup)] == [("A", "restarting")]
        await clock.advance(1.0)  # the 7th delay: capped
        assert times[-1] == ("start A", clock.now())
        assert await a.ask(WhoAmI()) > 0

        # Up for less than the reset interval: still capped.
        await clock.advance(8.0)
        assert await backoff_delays(clock, system, times, 1) == [1.0]
        # Up for more than the reset interval (10 s): back to 0.1, and doubling again.
        await clock.advance(10.0)  # (it has been up 0.5 s already)
        assert await backoff_delays(clock, system, times, 3) == [0.1, 0.2, 0.4]


async def test_case_25_jitter_adds_up_to_its_fraction_of_each_delay() -> None:
    """25 with jitter. ``jitter=0.5``: each delay is its base times ``1 + 0.5 * r``, ``r`` in
    [0, 1): within [base, 1.5 * base)."""
    clock = FakeClock()
    times: list[tuple[str, float]] = []
    spec = ChildSpec(
        worker([], times=times),
        name="A",
        backoff=Backoff(0.1, 1.0, jitter=0.5, reset_after=10.0),
    )
    async with ActorSystem(clock=clock) as system:
        await system.spawn(lambda: Supervisor([spec], max_restarts=100, within=5.0), name="sup")
        delays = await backoff_delays(clock, system, times, 6)
    for delay, base in zip(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0], strict=True):
        assert base <= delay < 1.5 * base + 1e-9, (delay, base)


async def test_case_16_pool_children_that_overrun_their_shutdown_are_killed_together() -> None:
    """16 with overrun. 100 pool children taking 2 s to stop, shutdown 1 s each: all are killed
    together at 1 s."""
    clock = FakeClock()
    times: list[tuple[str, float]] = []
    ended: dict[str, tuple[float, Terminated]] = {}
    spec = ChildSpec(lambda: Worker([], stop_delay=2.0, times=times), shutdown=1.0)
    async with ActorSystem(clock=clock) as system, anyio.create_task_group() as tg:
        pool = await system.spawn(lambda: Supervisor.pool(spec), name="pool")
        refs = [await pool.ask(StartChild()) for _ in range(100)]
        for ref in (*refs, pool):
            stopped_at(tg, clock, ref, ended)
        times.clear()
        pool.stop()
        await clock.advance(0.999)
        assert ended == {}
        await clock.advance(0.001)
        await wait_all_tasks_blocked()
        assert len(ended) == 101
        assert {at for at, _ in ended.values()} == {1.0}
        assert {ended[ref.name][1].reason for ref in refs} == {"shutdown"}
        assert ended["pool"][1].reason == "stopped"
        assert times == []  # every on_stop was cut short


async def test_case_14_on_start_raising_is_a_failed_start_too() -> None:
    """14 with ``on_start``. C's ``on_start`` raises: as for its factory; C's name is free."""
    log: list[str] = []
    error = Boom("C's on_start")

    class Bad(Worker):
        async def on_start(self) -> None:
            await super().on_start()
            raise error

    specs = [ChildSpec(worker(log), name=n) for n in "AB"]
    specs += [ChildSpec(lambda: Bad(log), name="C"), ChildSpec(worker(log), name="D")]
    async with ActorSystem(clock=FakeClock()) as system:
        with pytest.raises(ActorStartError, match="'C'") as caught:
            await system.spawn(lambda: Supervisor(specs), name="sup")
        assert error in causes(caught.value)
        assert log == ["start A", "start B", "start C", "stop B", "stop A"]
        assert system.lookup("C") is None
        assert system.snapshot().actors == ()


async def test_case_19_terminating_a_child_waiting_for_its_backoff_cancels_the_restart() -> None:
    """19 with backoff. A child terminated while it waits for its backoff restart stays ended:
    the restart is cancelled, and RestartChild starts it again."""
    clock = FakeClock()
    log: list[str] = []
    spec = ChildSpec(worker(log), name="A", backoff=Backoff(1.0, 1.0, jitter=0))
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(lambda: Supervisor([spec], max_restarts=1), name="sup")
        a = await child(sup, "A")
        a.tell(Fail())
        await wait_all_tasks_blocked()
        assert [(i.name, i.state) for i in await children(sup)] == [("A", "restarting")]
        await sup.ask(TerminateChild("A"))
        assert (await a.wait_stopped()).reason == "shutdown"
        await clock.advance(5.0)
        assert log == ["start A", "stop A"]  # the restart due at t = 1 did not happen
        assert [(i.name, i.ref, i.state) for i in await children(sup)] == [("A", None, "ended")]
        a2 = await sup.ask(RestartChild("A"))
        assert log == ["start A", "stop A", "start A"]
        assert alive(a2)
        assert alive(sup)
