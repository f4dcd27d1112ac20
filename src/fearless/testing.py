"""Test helpers for code built on fearless actors: a fake clock, a probe, and a harness.

``FakeClock``
    A clock for ``ActorSystem(clock=...)`` that moves only when the test says so:
    ``await clock.advance(1.5)`` wakes, in deadline order, every timer (and shutdown timeout) due
    by then, letting the system settle after each, so time-based behaviour runs instantly and
    exactly, on every backend.
``Probe``
    An actor that records what it is sent: pass ``probe.ref`` to the actor under test, then
    ``await probe.expect(message)``, ``await probe.receive()``, ``await probe.expect_no_message()``.
``Harness``
    Runs one actor's handlers directly in the test's task, one call at a time: no actor task, no
    scheduling, nothing concurrent. Messages the actor sends itself and timers it starts are
    recorded, to be run when the test says.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, final

import anyio
from anyio import WouldBlock

from ._actors._actor import Actor, _Default
from ._actors._cell import RAISED, REPLY, Ask, Cell, Notice
from ._actors._mailbox import EMPTY, Mailbox, SystemMessage
from ._actors._messages import DeadLetter
from ._actors._ref import ActorRef
from ._actors._system import ActorSystem
from ._backend import wait_all_tasks_blocked
from ._cells._atomic import AtomicInt

__all__ = ["FakeClock", "Harness", "Probe", "TimerInfo"]

T = TypeVar("T")
A = TypeVar("A", bound=Actor[Any])


@final
class FakeClock:
    """A monotonic clock that stands still until :meth:`advance` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        """Return once the clock reaches ``deadline`` (a checkpoint if it has already).

        Cancellation: a cancel point; a cancelled sleep just ends (its deadline, when the clock
        reaches it, wakes nobody)."""
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (deadline, next(self._order), event))
        await event.wait()

    async def sleep(self, seconds: float) -> None:
        """:meth:`sleep_until` ``now() + seconds``; cancellation as there."""
        await self.sleep_until(self._now + seconds)

    async def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``: first wait until every task is blocked (so each
        sleep that is about to start has started), then stop at each deadline due on the way,
        waking its sleepers and waiting until every task is blocked again (so a timer that
        re-arms within the window fires again, exactly on time).

        Cancellation: a cancel point at each settling; if cancelled, the clock stays where it got
        to (at the last deadline reached), and the sleepers woken so far stay woken."""
        if not seconds >= 0:
            raise ValueError(f"a clock only moves forward, got {seconds!r}")
        await wait_all_tasks_blocked()  # first, let everything due to sleep fall asleep
        target = self._now + seconds
        sleepers = self._sleepers
        while sleepers and sleepers[0][0] <= target:
            deadline = sleepers[0][0]
            self._now = deadline
            while sleepers and sleepers[0][0] == deadline:
                heapq.heappop(sleepers)[2].set()
            await wait_all_tasks_blocked()
        self._now = target
        await wait_all_tasks_blocked()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now})"


class _ProbeActor(Actor[Any]):
    def __init__(self, inbox: list[Any], arrived: AtomicInt, reply: Callable[[Any], Any] | None):
        self._inbox = inbox
        self._arrived = arrived
        self._reply = reply

    async def handle(self, message: Any) -> Any:
        self._inbox.append(message)
        self._arrived.increment()  # wakes a test waiting in receive(), on any loop or thread
        return None if self._reply is None else self._reply(message)


@final
class Probe(Generic[T]):
    """An actor that records every message it gets, for assertions (see the module docstring).

    Made with ``await Probe.spawn(system)``; its mailbox is unbounded. ``reply`` computes the
    answer to an ask (default: ``None``).
    """

    ref: ActorRef[T]
    """Give this to the actor under test."""

    def __init__(self, ref: ActorRef[T], inbox: list[Any], arrived: AtomicInt) -> None:
        self.ref = ref
        self._inbox = inbox
        self._arrived = arrived
        self.received: list[T] = []
        """Every message taken from this probe so far (by receive/expect), in order."""

    @classmethod
    async def spawn(
        cls,
        system: ActorSystem,
        *,
        name: str | None = None,
        reply: Callable[[T], Any] | None = None,
    ) -> Probe[T]:
        """Spawn the probe's actor in ``system``. Cancellation: as ``ActorSystem.spawn``."""
        inbox: list[Any] = []
        arrived = AtomicInt(0)
        ref: ActorRef[Any] = await system.spawn(
            lambda: _ProbeActor(inbox, arrived, reply),
            name=name,
            mailbox=Mailbox(float("inf")),
        )
        return cls(ref, inbox, arrived)

    def _take(self) -> T:
        message: T = self._inbox[len(self.received)]
        self.received.append(message)
        return message

    async def receive(self, *, timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """The next message the probe got, waiting up to ``timeout`` seconds (``TimeoutError``).

        Cancellation: a cancel point; a cancelled receive took nothing (the message stays for the
        next one)."""
        seen = len(self.received)
        with anyio.fail_after(timeout):
            await self._arrived.wait_until(lambda count: count > seen)
        return self._take()

    async def expect(self, expected: T, *, timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """The next message, which must equal ``expected`` (``AssertionError`` otherwise).
        Cancellation: as :meth:`receive`."""
        message = await self.receive(timeout=timeout)
        if message != expected:
            raise AssertionError(f"probe {self.ref.name!r}: expected {expected!r}, got {message!r}")
        return message

    async def expect_no_message(self) -> None:
        """Let every task run until all are blocked, then check that nothing has arrived.

        Deterministic: it does not wait for a length of time. It cannot see into OS threads.
        """
        await wait_all_tasks_blocked()
        if self._arrived.load() > len(self.received):
            message = self._take()
            raise AssertionError(f"probe {self.ref.name!r}: expected no message, got {message!r}")


@final
@dataclass(frozen=True, slots=True)
class TimerInfo:
    """A timer a :class:`Harness` actor started (recorded, not running)."""

    delay: float
    message: Any
    repeat: bool


class _HarnessCell(Cell):
    """A cell that never runs a task: its harness drives it."""

    def start_timer(
        self,
        delay: float,
        message: Any,
        key: Hashable | None,
        repeat: bool,
        *,
        system: bool = False,
    ) -> Hashable:
        if key is None:
            key = object()
        self.harness_timers[key] = TimerInfo(delay, message, repeat)
        return key

    def cancel_timer(self, key: Hashable) -> bool:
        return self.harness_timers.pop(key, None) is not None

    async def spawn_child(
        self,
        factory: Callable[[], Actor[Any]],
        name: str | None,
        mailbox: Mailbox | None,
        shutdown: float | _Default | None,
    ) -> ActorRef[Any]:
        raise RuntimeError(
            "a Harness cannot spawn children (it runs one actor, without a system): test the "
            "parent in an ActorSystem, with a Probe for what the children would receive"
        )

    harness_timers: dict[Hashable, TimerInfo]


@final
class Harness(Generic[A]):
    """One actor, driven step by step from the test (see the module docstring).

    ``harness = await Harness.start(Counter)`` builds the instance and runs ``on_start``;
    ``await harness.handle(message)`` runs its handler now and returns the reply (the handler's
    exception propagates, and the actor keeps its state: no supervision here);
    ``harness.actor`` is the instance. What the actor sends itself (``self.ref.tell``) waits in
    ``harness.queued`` until ``await harness.run_queued()``; its timers wait in
    ``harness.timers`` until ``await harness.fire(key)``. Spawning children needs a real
    :class:`ActorSystem`.
    """

    def __init__(self, cell: _HarnessCell, actor: A) -> None:
        self._cell = cell
        self.actor = actor
        self._letters = cell.system.dead_letters()

    @classmethod
    async def start(cls, factory: Callable[[], A], *, name: str = "harness") -> Harness[A]:
        """Build the actor and run its ``on_start`` in this task. Cancellation: cancels
        ``on_start``; no harness is made."""
        system = ActorSystem(name=f"{name} harness")
        cell = _HarnessCell(system, None, factory, name, False, Mailbox(float("inf")), None)
        cell.harness_timers = {}
        actor = cell.adopt(factory())
        cell.state = "running"
        await actor.on_start()
        return cls(cell, actor)

    @property
    def ref(self) -> ActorRef[Any]:
        """The actor's ref: what is told through it waits in :attr:`queued`."""
        return self._cell.ref

    @property
    def timers(self) -> dict[Hashable, TimerInfo]:
        """The timers the actor has started and not cancelled, by key."""
        return dict(self._cell.harness_timers)

    @property
    def queued(self) -> list[Any]:
        """Messages waiting in the actor's mailbox (asks shown as their messages)."""
        with self._cell.mailbox.lock:
            items = list(self._cell.mailbox.items)
        return [item.message if isinstance(item, Ask) else item for item in items]

    async def handle(self, message: Any) -> Any:
        """Run the handler on ``message`` now, in this task; return its reply. Cancellation:
        cancelling the caller cancels the handler, as a kill would."""
        result = await self.actor.handle(message)
        self._cell.handled += 1
        return result

    async def run_queued(self) -> int:
        """Handle what is queued, including what handling it queues, in order; return how many.
        Cancellation: as :meth:`handle`; a cancelled message is not put back."""
        count = 0
        while True:
            item = self._cell.mailbox.take()
            if item is EMPTY:
                return count
            if isinstance(item, Ask):
                try:
                    result = await self.handle(item.message)
                except Exception as exc:
                    item.answer(RAISED, exc)  # the asker gets it too, as from a real actor
                    raise
                item.answer(REPLY, result)
            elif isinstance(item, Notice):
                await self.actor.on_terminated(item.notice)
            elif not isinstance(item, SystemMessage):
                await self.handle(item)
            count += 1

    async def fire(self, key: Hashable) -> Any:
        """Deliver timer ``key``'s message to the handler now (a one-shot timer is then gone).
        Cancellation: as :meth:`handle`."""
        timer = self._cell.harness_timers[key]
        if not timer.repeat:
            del self._cell.harness_timers[key]
        return await self.handle(timer.message)

    def dead_letters(self) -> list[DeadLetter]:
        """Dead letters published since the last call."""
        letters = []
        while True:
            try:
                letters.append(self._letters.receive_nowait())
            except WouldBlock:
                return letters

    async def stop(self) -> None:
        """Run ``on_stop`` and release the harness (call it at the end of every test).
        Cancellation: the harness is released even if ``on_stop`` is cancelled."""
        self._cell.state = "stopping"
        try:
            await self.actor.on_stop()
        finally:
            self._cell.state = "stopped"
            self._letters.close()
            self._cell.system._close()
