"""``fearless.testing``: the fake clock, the probe and the harness do what they promise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from fearless import Actor, ActorStopped, ActorSystem, DeadLetterReason, Request
from fearless.testing import FakeClock, Harness, Probe, TimerInfo

pytestmark = pytest.mark.anyio


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
    with pytest.raises(ValueError, match="forward"):
        await clock.advance(-1)


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
        self.stopped = False

    async def on_start(self) -> None:
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
        self.stopped = True


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
        assert harness.dead_letters() == []
    assert harness.actor.stopped  # on_stop ran as the block ended


async def test_the_harness_refuses_children_clearly() -> None:
    class Parent(Actor[Any]):
        async def handle(self, message: Any) -> None:
            await self.context.spawn(Account)

    async with Harness(Parent) as harness:
        with pytest.raises(RuntimeError, match="cannot spawn children"):
            await harness.handle("spawn")


async def test_killing_an_actor_during_on_start_makes_spawn_raise_actor_stopped() -> None:
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
