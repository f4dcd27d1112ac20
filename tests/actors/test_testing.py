"""``fearless.testing``: the fake clock, the probe, the harness and its stand-ins, and the wait
for every task to block, do what they promise."""

from __future__ import annotations

import ast
import gc
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

import fearless
import fearless.testing
from fearless import (
    Actor,
    ActorStopped,
    ActorSystem,
    DeadLetterReason,
    DeadlockError,
    ErrorReply,
    LinkedActorFailed,
    Request,
    Terminated,
)
from fearless.testing import FakeClock, Harness, Probe, StandIn, TimerInfo, wait_all_tasks_blocked

pytestmark = pytest.mark.anyio

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "actors.md"


# -- the fake clock ------------------------------------------------------------------------------


async def test_the_fake_clock_wakes_sleepers_in_deadline_order_and_exactly_on_time() -> None:
    clock = FakeClock(start=10.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append((name, clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "late", 13.0)
        tg.start_soon(sleeper, "early", 11.5)
        tg.start_soon(sleeper, "past", 9.0)  # already due: returns at once
        await clock.advance(1.0)
        assert woke == [("past", 10.0)]
        await clock.advance(5.0)
    assert woke == [("past", 10.0), ("early", 11.5), ("late", 13.0)]
    assert clock.now() == 16.0


async def test_the_fake_clock_lets_a_re_arming_timer_fire_every_time_in_one_advance() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    async def ticker() -> None:
        due = 0.0
        while True:
            due += 0.25
            await clock.sleep_until(due)
            ticks.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await clock.advance(1.0)
        tg.cancel_scope.cancel()
    assert ticks == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(
    ("seconds", "error"),
    [(-1, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("1", TypeError)],
)
async def test_the_fake_clock_refuses_to_move_by_a_bad_amount_naming_it(
    seconds: Any, error: type[Exception]
) -> None:
    clock = FakeClock()
    with pytest.raises(error, match=re.escape(repr(seconds))):
        await clock.advance(seconds)
    assert clock.now() == 0.0


@pytest.mark.parametrize(("start", "error"), [(math.inf, ValueError), ("0", TypeError)])
def test_the_fake_clock_refuses_a_bad_start_naming_it(start: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=re.escape(repr(start))):
        FakeClock(start)


# -- waiting until every task is blocked ---------------------------------------------------------


def test_wait_all_tasks_blocked_is_public_and_documented() -> None:
    assert "wait_all_tasks_blocked" in fearless.testing.__all__
    doc = fearless.testing.__doc__
    assert doc is not None
    assert "wait_all_tasks_blocked" in doc
    assert "cannot see OS threads" in doc


async def test_wait_all_tasks_blocked_lets_actors_handle_what_they_were_told() -> None:
    """A tell is handled in the actor's own task: once every task is blocked, the whole relay of
    tells between the actors has run, with no sleep and no ask to wait on."""
    log: list[str] = []

    class Relay(Actor[int]):
        def __init__(self, next_ref: fearless.ActorRef[int] | None) -> None:
            self.next_ref = next_ref

        async def handle(self, message: int) -> None:
            log.append(f"{self.context.name}:{message}")
            if self.next_ref is not None:
                self.next_ref.tell(message + 1)

    async with ActorSystem() as system:
        c = await system.spawn(lambda: Relay(None), name="c")
        b = await system.spawn(lambda: Relay(c), name="b")
        a = await system.spawn(lambda: Relay(b), name="a")
        a.tell(0)
        await wait_all_tasks_blocked()
        assert log == ["a:0", "b:1", "c:2"]


# -- the probe -----------------------------------------------------------------------------------


async def test_a_probe_records_messages_and_fails_clearly() -> None:
    async with ActorSystem() as system:
        probe = await Probe[str].spawn(system, name="probe", reply=str.upper)
        assert await probe.ref.ask("hi") == "HI"
        probe.ref.tell("there")
        assert await probe.receive() == "hi"
        await probe.expect("there")
        assert probe.received == ["hi", "there"]
        await probe.expect_no_message()
        probe.ref.tell("surprise")
        with pytest.raises(AssertionError, match="expected no message, got 'surprise'"):
            await probe.expect_no_message()
        probe.ref.tell("x")
        with pytest.raises(AssertionError, match="expected 'y', got 'x'"):
            await probe.expect("y")
        with pytest.raises(TimeoutError):
            await probe.receive(timeout=0.01)
        with pytest.raises(TypeError, match="'upper'"):
            await Probe[str].spawn(system, reply="upper")  # type: ignore[arg-type]


# -- the harness ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deposit:
    amount: int


@dataclass(frozen=True)
class Balance(Request[int]):
    pass


@dataclass(frozen=True)
class Remind:
    text: str


class Account(Actor[Deposit | Balance | Remind]):
    def __init__(self) -> None:
        self.balance = 0
        self.reminders: list[str] = []
        self.hooks: list[str] = []

    async def on_start(self) -> None:
        self.hooks.append("on_start")
        self.context.send_every(30.0, Remind("statement"), key="statement")

    async def handle(self, message: Deposit | Balance | Remind) -> int | None:
        match message:
            case Deposit(amount) if amount <= 0:
                raise ValueError(f"bad amount {amount}")
            case Deposit(amount):
                self.balance += amount
                if self.balance >= 100:
                    self.context.ref.tell(Remind("rich"))
                    self.context.send_after(1.0, Remind("tax"), key="tax")
            case Balance():
                return self.balance
            case Remind(text):
                self.reminders.append(text)
        return None

    async def on_stop(self) -> None:
        self.hooks.append("on_stop")


async def test_the_harness_runs_handlers_in_the_test_task() -> None:
    async with Harness(Account) as harness:
        assert harness.timers == {"statement": TimerInfo(30.0, Remind("statement"), True)}
        await harness.handle(Deposit(60))
        assert await harness.handle(Balance()) == 60
        with pytest.raises(ValueError, match="bad amount"):
            await harness.handle(Deposit(-5))
        assert harness.actor.balance == 60  # state kept: no supervision in the harness
        await harness.handle(Deposit(50))
        assert harness.queued == [Remind("rich")]
        assert set(harness.timers) == {"statement", "tax"}
        assert await harness.run_queued() == 1
        assert harness.actor.reminders == ["rich"]
        await harness.fire("tax")
        await harness.fire("statement")
        assert harness.actor.reminders == ["rich", "tax", "statement"]
        assert set(harness.timers) == {"statement"}  # one-shot timers are gone once fired
        with pytest.raises(KeyError, match="'tax'"):
            await harness.fire("tax")
        assert harness.dead_letters() == []


async def test_a_harness_runs_on_start_on_entry_and_on_stop_at_exit() -> None:
    harness = Harness(Account)
    async with harness as entered:
        assert entered is harness
        assert harness.actor.hooks == ["on_start"]
        assert harness.ref.is_alive
    assert harness.actor.hooks == ["on_start", "on_stop"]
    assert (await harness.ref.wait_stopped()).reason == "stopped"
    assert harness.timers == {}  # timers end with the actor


async def test_a_harness_whose_block_raises_ends_the_actor_without_on_stop() -> None:
    """As when an ``ActorSystem`` block raises: the actor ends at once, its on_stop does not run
    (it would bury the test's own failure), and the error leaves the block as it was raised."""
    harness = Harness(Account)

    async def fail_in_the_block() -> None:
        async with harness:
            harness.ref.tell(Deposit(1))
            raise AssertionError("the test's own failure")

    with pytest.raises(AssertionError, match="the test's own"):
        await fail_in_the_block()
    assert harness.actor.hooks == ["on_start"]
    assert (await harness.ref.wait_stopped()).reason == "shutdown"
    [letter] = harness.dead_letters()  # what was queued went to dead letters
    assert (letter.message, letter.reason) == (Deposit(1), DeadLetterReason.ACTOR_STOPPED)


async def test_a_harness_used_without_async_with_says_how_to_use_it() -> None:
    harness = Harness(Account)
    with pytest.raises(RuntimeError, match=re.escape("async with Harness(factory) as harness")):
        _ = harness.actor
    with pytest.raises(RuntimeError, match=re.escape("async with Harness(factory) as harness")):
        await harness.handle(Deposit(1))
    with pytest.raises(RuntimeError, match=re.escape("async with Harness(factory) as harness")):
        harness.stand_in()
    async with harness:
        pass
    with pytest.raises(RuntimeError, match="block of Harness 'harness' has ended"):
        await harness.handle(Deposit(1))
    with pytest.raises(RuntimeError, match="entered only once"):
        async with harness:
            pass


async def test_a_harness_that_is_never_entered_leaves_nothing_to_close() -> None:
    """Under ``filterwarnings = error``: a harness made and dropped leaves no unclosed channel
    behind (nothing is opened before ``async with``)."""
    Harness(Account)
    gc.collect()


def test_a_harness_refuses_a_bad_factory_or_name_naming_it() -> None:
    with pytest.raises(TypeError, match="got 3"):
        Harness(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got ''"):
        Harness(Account, name="")


async def test_a_failing_on_start_leaves_the_block_with_its_error_and_releases_the_harness() -> (
    None
):
    class Broken(Actor[Any]):
        async def on_start(self) -> None:
            raise OSError("no disk")

        async def handle(self, message: Any) -> None:
            pass

    harness = Harness(Broken)
    with pytest.raises(OSError, match="no disk"):
        async with harness:
            pytest.fail("the block must not run")
    notice = await harness.ref.wait_stopped()
    assert notice.reason == "failed"
    assert isinstance(notice.error, OSError)


class Refuser(Actor[Any]):
    async def handle(self, message: Any) -> Any:
        if message == "refuse":
            return ErrorReply(PermissionError("refused"))
        return "ok"


async def test_handle_raises_an_error_reply_as_an_ask_would_and_the_actor_goes_on() -> None:
    """The same ``ErrorReply`` from the same actor: a real ask raises its error, so
    ``harness.handle`` does too; the actor is not failed and answers the next message."""
    async with ActorSystem() as system:
        ref = await system.spawn(Refuser)
        with pytest.raises(PermissionError, match="refused"):
            await ref.ask("refuse")
        assert await ref.ask("again") == "ok"
    async with Harness(Refuser) as harness:
        with pytest.raises(PermissionError, match="refused"):
            await harness.handle("refuse")
        assert await harness.handle("again") == "ok"


async def test_run_queued_answers_an_ask_with_an_error_reply_and_ignores_it_for_a_tell() -> None:
    """Through ``run_queued``, as in the actor's loop: the asker raises the ``ErrorReply``'s
    error, a told message's ``ErrorReply`` means nothing, and ``run_queued`` itself raises
    nothing."""
    async with Harness(Refuser) as harness:
        caught: list[BaseException] = []

        async def ask() -> None:
            try:
                await harness.ref.ask("refuse")
            except PermissionError as exc:
                caught.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await wait_all_tasks_blocked()
            harness.ref.tell("refuse")
            assert await harness.run_queued() == 2
        assert [str(exc) for exc in caught] == ["refused"]


async def test_a_harness_answers_a_failing_ask_instead_of_leaving_it_hanging() -> None:
    """An ask queued in the harness whose handler raises: ``run_queued`` raises the error, and
    the asker gets it too, instead of waiting for ever."""

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


async def test_a_cancelled_run_queued_tells_the_asker_the_actor_did_not_answer() -> None:
    """Cancelling ``run_queued`` in the middle of an ask's handler: that ask is not put back,
    so its asker must get ``ActorStopped`` rather than wait for ever."""

    class Slow(Actor[Any]):
        async def handle(self, message: Any) -> None:
            await anyio.sleep_forever()

    async with Harness(Slow) as harness:
        caught: list[BaseException] = []

        async def ask() -> None:
            try:
                await harness.ref.ask("slow")
            except ActorStopped as exc:
                caught.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await wait_all_tasks_blocked()
            with anyio.CancelScope() as scope:
                tg.start_soon(_cancel_when_blocked, scope)
                await harness.run_queued()
        assert scope.cancelled_caught
        assert len(caught) == 1


async def _cancel_when_blocked(scope: anyio.CancelScope) -> None:
    await wait_all_tasks_blocked()
    scope.cancel()


class Watcher(Actor[Any]):
    """Monitors or links what it is given; records its notices."""

    def __init__(self) -> None:
        self.notices: list[Terminated] = []
        self.stopped = False

    async def handle(self, message: Any) -> None:
        match message:
            case ("monitor", ref):
                self.context.monitor(ref)
            case ("link", ref):
                self.context.link(ref)
            case ("ask", ref):
                await ref.ask("question")
            case "stop yourself":
                self.context.stop()
            case "die":
                self.context.ref.kill()
                await anyio.sleep_forever()

    async def on_terminated(self, notice: Terminated) -> None:
        self.notices.append(notice)

    async def on_stop(self) -> None:
        self.stopped = True


class TrappingWatcher(Watcher):
    trap_links = True


async def test_queued_shows_the_users_messages_only_not_a_stop_or_a_notice() -> None:
    async with Harness(Watcher) as harness:
        friend = harness.stand_in("friend")
        await harness.handle(("monitor", friend.ref))
        harness.ref.tell("first")
        friend.stop()  # a notice joins the mailbox
        harness.ref.tell("second")
        harness.ref.stop()  # and so does a stop
        harness.ref.tell("after the stop")
        assert harness.queued == ["first", "second", "after the stop"]


async def test_run_queued_ends_the_actor_at_a_stop_as_its_loop_would() -> None:
    """What was queued before the stop is delivered (the notice to ``on_terminated``), then
    ``on_stop`` runs and the actor ends; what came after the stop goes to dead letters."""
    async with Harness(Watcher) as harness:
        friend = harness.stand_in("friend")
        await harness.handle(("monitor", friend.ref))
        harness.ref.tell("first")
        friend.stop()
        await harness.handle("stop yourself")  # context.stop(): a stop joins the mailbox
        harness.ref.tell("after the stop")
        assert await harness.run_queued() == 2  # "first", and the notice
        assert [notice.ref for notice in harness.actor.notices] == [friend.ref]
        assert harness.actor.stopped
        assert (await harness.ref.wait_stopped()).reason == "stopped"
        [letter] = harness.dead_letters()
        assert (letter.message, letter.reason) == ("after the stop", DeadLetterReason.ACTOR_STOPPED)
        with pytest.raises(ActorStopped):
            await harness.handle("first")
        assert await harness.run_queued() == 0


async def test_a_stand_in_records_what_it_is_told_sent_and_asked() -> None:
    async with Harness(Watcher) as harness:
        friend: StandIn[str] = harness.stand_in()
        assert friend.ref.name == "stand-in#1"
        friend.ref.tell("told")
        await friend.ref.send("sent")
        caught: list[BaseException] = []

        async def ask() -> None:
            try:
                await harness.handle(("ask", friend.ref))
            except ActorStopped as exc:
                caught.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await wait_all_tasks_blocked()
            assert friend.received == ["told", "sent", "question"]
            friend.stop()  # the ask is never answered: it ends with the stand-in
        assert [exc.name for exc in caught] == ["stand-in#1"]  # type: ignore[attr-defined]
        assert friend.received == ["told", "sent", "question"]  # kept, not dead letters
        assert harness.dead_letters() == []
        friend.ref.tell("too late")  # to an ended actor: a dead letter, as always
        assert [letter.message for letter in harness.dead_letters()] == ["too late"]


async def test_a_monitored_stand_in_that_stops_delivers_terminated_to_on_terminated() -> None:
    async with Harness(Watcher) as harness:
        friend = harness.stand_in("friend")
        await harness.handle(("monitor", friend.ref))
        error = OSError("crashed")
        friend.stop("failed", error)
        assert harness.actor.notices == []  # queued, not delivered yet
        assert await harness.run_queued() == 1
        [notice] = harness.actor.notices
        assert (notice.ref, notice.reason, notice.error) == (friend.ref, "failed", error)


async def test_monitoring_a_stand_in_that_has_ended_delivers_the_notice_at_once() -> None:
    async with Harness(Watcher) as harness:
        friend = harness.stand_in("friend")
        friend.stop("killed")
        await harness.handle(("monitor", friend.ref))
        assert await harness.run_queued() == 1
        assert [notice.reason for notice in harness.actor.notices] == ["killed"]


async def test_the_actor_under_test_can_stop_or_kill_a_stand_in() -> None:
    """A stand-in is idle: its ref's ``stop()`` or ``kill()`` ends it at once, and whoever
    monitors it is told how."""
    async with Harness(Watcher) as harness:
        stopped, killed = harness.stand_in("stopped"), harness.stand_in("killed")
        await harness.handle(("monitor", stopped.ref))
        await harness.handle(("monitor", killed.ref))
        stopped.ref.stop()
        killed.ref.kill()
        assert not stopped.ref.is_alive
        assert not killed.ref.is_alive
        await harness.run_queued()
        assert [(n.name, n.reason) for n in harness.actor.notices] == [
            ("stopped", "stopped"),
            ("killed", "killed"),
        ]


async def test_a_linked_stand_in_that_fails_fails_the_actor_under_test() -> None:
    """As a link between real actors: the actor ends at once, failed with
    ``LinkedActorFailed`` (the stand-in's error as its cause), without ``on_stop``; the harness
    then refuses to run its handler."""
    async with Harness(Watcher) as harness:
        friend = harness.stand_in("friend")
        await harness.handle(("link", friend.ref))
        harness.ref.tell("never handled")
        error = OSError("crashed")
        friend.stop("failed", error)
        notice = await harness.ref.wait_stopped()
        assert notice.reason == "failed"
        assert isinstance(notice.error, LinkedActorFailed)
        assert notice.error.__cause__ is error
        with pytest.raises(ActorStopped):
            await harness.handle("anything")
        [letter] = harness.dead_letters()
        assert (letter.message, letter.reason) == ("never handled", DeadLetterReason.ACTOR_STOPPED)
    assert not harness.actor.stopped  # a failure by a link is a kill: no on_stop


async def test_a_linked_stand_in_that_stops_gracefully_leaves_the_actor_running() -> None:
    async with Harness(Watcher) as harness:
        friend = harness.stand_in("friend")
        await harness.handle(("link", friend.ref))
        friend.stop()
        assert harness.ref.is_alive
        assert await harness.run_queued() == 0  # no notice: it did not monitor
    assert harness.actor.stopped


async def test_an_actor_that_traps_links_gets_a_failing_stand_ins_notice() -> None:
    async with Harness(TrappingWatcher) as harness:
        friend = harness.stand_in("friend")
        await harness.handle(("link", friend.ref))
        friend.stop("killed")
        assert harness.ref.is_alive
        assert await harness.run_queued() == 1
        assert [notice.reason for notice in harness.actor.notices] == ["killed"]


async def test_stopping_a_stand_in_refuses_a_bad_reason_naming_it() -> None:
    async with Harness(Watcher) as harness:
        friend = harness.stand_in()
        with pytest.raises(ValueError, match="'crashed'"):
            friend.stop("crashed")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="'boom'"):
            friend.stop("failed", "boom")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="got ''"):
            harness.stand_in("")
        assert friend.ref.is_alive


async def test_an_actor_that_kills_itself_in_a_handler_ends_there() -> None:
    """The kill cancels the handler where it is, as in the actor's own task: ``handle`` raises
    ``ActorStopped`` (what an asker would get), the message is a ``KILLED`` dead letter, and
    ``on_stop`` does not run."""
    async with Harness(Watcher) as harness:
        with pytest.raises(ActorStopped):
            await harness.handle("die")
        assert (await harness.ref.wait_stopped()).reason == "killed"
        [letter] = harness.dead_letters()
        assert (letter.message, letter.reason) == ("die", DeadLetterReason.KILLED)
    assert not harness.actor.stopped


async def test_an_actor_asking_itself_in_a_harness_gets_deadlock_error_at_once() -> None:
    """As in its own task: the reply could never come (nobody would run the queue while the
    handler waits), so the ask raises ``DeadlockError`` instead of hanging the test."""

    class Narcissus(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            if message == "self":
                return await self.context.ref.ask("inner")
            return message

    async with Harness(Narcissus, name="narcissus") as harness:
        with anyio.fail_after(5), pytest.raises(DeadlockError, match="'narcissus' asked itself"):
            await harness.handle("self")
        assert await harness.handle("again") == "again"


async def test_the_harness_refuses_children_clearly() -> None:
    class Parent(Actor[Any]):
        async def handle(self, message: Any) -> None:
            await self.context.spawn(Account)

    async with Harness(Parent) as harness:
        with pytest.raises(RuntimeError, match="cannot spawn children"):
            await harness.handle("spawn")


# -- the guide's examples ------------------------------------------------------------------------


def _guide_testing_examples() -> tuple[str, list[str]]:
    """The guide's first example (it defines ``Counter``, ``Add`` and ``Get``), and the code
    blocks of its "Testing actors" section."""
    text = GUIDE.read_text()
    first = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    definitions = first.rsplit("\nanyio.run(", 1)[0]
    section = text.split("## Testing actors", 1)[1].split("\n## ", 1)[0]
    return definitions, re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.filterwarnings("error")
async def test_the_testing_examples_of_the_actors_guide_pass_without_a_warning() -> None:
    """Every test function in the guide's "Testing actors" section passes, on every backend,
    with warnings as errors: no unclosed channel is left behind (collected at the end)."""
    definitions, blocks = _guide_testing_examples()
    namespace: dict[str, Any] = {}
    exec(compile(definitions, str(GUIDE), "exec"), namespace)
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) >= 3  # the clock, the harness, the stand-in
    for test in tests:
        await test()
    gc.collect()
