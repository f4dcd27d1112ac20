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
    scheduling, nothing concurrent (``async with Harness(factory) as harness``). Messages the
    actor sends itself and timers it starts are recorded, to be run when the test says; stand-in
    refs (``harness.stand_in()``) record what the actor sends its collaborators.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, final

import anyio
from anyio import WouldBlock

from ._actors._actor import Actor, _Default
from ._actors._ask import RAISED, REPLY, Ask, ErrorReply
from ._actors._mailbox import EMPTY, Mailbox, SystemMessage
from ._actors._messages import DeadLetter, ExitReason
from ._actors._ref import ActorRef
from ._actors._runtime import ActorRuntime
from ._actors._system import ActorSystem
from ._actors._watch import Notice
from ._backend import wait_all_tasks_blocked
from ._cells._atomic import AtomicInt
from ._channels._broadcast import Subscription

__all__ = ["FakeClock", "Harness", "Probe", "StandIn", "TimerInfo"]

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


class _HarnessRuntime(ActorRuntime):
    """A runtime that never runs a task: its harness drives it. Timers are recorded."""

    __slots__ = ("harness_timers",)

    harness_timers: dict[Hashable, TimerInfo]

    def start_timer(
        self, delay: float, message: Any, key: Hashable | None, repeat: bool, *, system: bool
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


class _Unused(Actor[Any]):
    async def handle(self, message: Any) -> None:  # pragma: no cover - a stand-in never runs
        raise AssertionError("a stand-in's actor never runs")


@final
class StandIn(Generic[T]):
    """A stand-in for another actor, in a :class:`Harness`: give its :attr:`ref` to the actor
    under test. What is told to it is recorded in :attr:`received`; the actor under test may
    ``monitor`` or ``link`` it; :meth:`stop` ends it, so that a monitor's ``on_terminated`` is
    queued in the harness."""

    def __init__(self, runtime: ActorRuntime) -> None:
        self._runtime = runtime

    @property
    def ref(self) -> ActorRef[T]:
        """Its ref (an ``ActorRef``: tell, send and ask work; asks are never answered)."""
        ref: ActorRef[T] = self._runtime.ref
        return ref

    @property
    def received(self) -> list[Any]:
        """What was sent to it so far (asks shown as their messages), oldest first."""
        return _user_messages(self._runtime)

    def stop(self, reason: ExitReason = "stopped", error: BaseException | None = None) -> None:
        """End it, as if it had stopped with ``reason`` (and ``error``): its monitors and links
        are told. Asks waiting on it raise ``ActorStopped``."""
        self._runtime.finalize(reason, error)


def _user_messages(runtime: ActorRuntime) -> list[Any]:
    with runtime.mailbox.lock:
        items = list(runtime.mailbox.items)
    return [
        item.message if isinstance(item, Ask) else item
        for item in items
        if not isinstance(item, SystemMessage)
    ]


@final
class Harness(Generic[A]):
    """One actor, driven step by step from the test (see the module docstring)::

        async with Harness(Counter) as harness:  # builds it and runs on_start
            await harness.handle(Add(2))
            assert await harness.handle(Get()) == 2
        # on_stop has run, and the harness is released

    ``await harness.handle(message)`` runs its handler now and returns the reply, as an ask
    would: the handler's exception propagates, an ``ErrorReply``'s error is raised, and the actor
    keeps its state (no supervision here). ``harness.actor`` is the instance. What the actor
    sends itself (``context.ref.tell``) waits in ``harness.queued`` until
    ``await harness.run_queued()``, which also delivers ``on_terminated`` notices; its timers wait
    in ``harness.timers`` until ``await harness.fire(key)``. ``harness.stand_in()`` makes a ref
    for a collaborator. Spawning children needs a real :class:`ActorSystem`.
    """

    def __init__(self, factory: Callable[[], A], *, name: str = "harness") -> None:
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning an Actor, got {factory!r}")
        self._factory = factory
        self._name = name
        self._system = ActorSystem(name=f"{name} harness")
        self._runtime: _HarnessRuntime | None = None
        self._actor: A | None = None
        self._letters: Subscription[DeadLetter] | None = None
        self._stand_ins = 0

    async def __aenter__(self) -> Harness[A]:
        """Build the actor and run its ``on_start`` in this task. Cancellation: cancels
        ``on_start``; the harness is released."""
        if self._runtime is not None:
            raise RuntimeError("a Harness can be entered only once")
        factory = self._factory
        runtime = _HarnessRuntime(
            self._system, None, factory, self._name, False, Mailbox(math.inf), None
        )
        runtime.harness_timers = {}
        self._runtime = runtime
        self._letters = self._system.dead_letters()
        try:
            actor = runtime.adopt(factory())
            runtime.state = "running"
            await actor.on_start()
        except BaseException:
            self._release()
            raise
        self._actor = actor
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Run ``on_stop`` and release the harness. Cancellation: the harness is released even
        if ``on_stop`` is cancelled."""
        runtime = self._started()
        runtime.state = "stopping"
        try:
            await self.actor.on_stop()
        finally:
            self._release()

    def _release(self) -> None:
        runtime = self._runtime
        if runtime is not None:
            runtime.state = "stopped"
        if self._letters is not None:
            self._letters.close()
        self._system._close()

    def _started(self) -> _HarnessRuntime:
        runtime = self._runtime
        if runtime is None or self._actor is None:
            raise RuntimeError("use the Harness in 'async with Harness(factory) as harness'")
        return runtime

    @property
    def actor(self) -> A:
        """The instance under test."""
        self._started()
        assert self._actor is not None
        return self._actor

    @property
    def ref(self) -> ActorRef[Any]:
        """The actor's ref: what is told through it waits in :attr:`queued`."""
        return self._started().ref

    @property
    def timers(self) -> dict[Hashable, TimerInfo]:
        """The timers the actor has started and not cancelled, by key."""
        return dict(self._started().harness_timers)

    @property
    def queued(self) -> list[Any]:
        """The messages waiting in the actor's mailbox (asks shown as their messages): the
        user's messages only, not the runtime's (a stop, a notice)."""
        return _user_messages(self._started())

    def stand_in(self, name: str | None = None) -> StandIn[Any]:
        """A stand-in for a collaborator (see :class:`StandIn`)."""
        self._started()
        self._stand_ins += 1
        runtime = ActorRuntime(
            self._system,
            None,
            _Unused,
            name or f"stand-in#{self._stand_ins}",
            False,
            Mailbox(math.inf),
            None,
        )
        runtime.state = "running"
        return StandIn(runtime)

    async def handle(self, message: Any) -> Any:
        """Run the handler on ``message`` now, in this task, and return its reply, as an ask
        would (an ``ErrorReply``'s error is raised). Cancellation: cancelling the caller cancels
        the handler, as a kill would."""
        runtime = self._started()
        result = await self.actor.handle(message)
        runtime.handled += 1
        if isinstance(result, ErrorReply):
            raise result.error
        return result

    async def run_queued(self) -> int:
        """Handle what is queued, including what handling it queues, in order, and deliver
        ``on_terminated`` notices; return how many messages and notices it handled.
        Cancellation: as :meth:`handle`; a cancelled message is not put back."""
        runtime = self._started()
        count = 0
        while True:
            item = runtime.mailbox.take()
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
            elif isinstance(item, SystemMessage):
                continue  # a stop, or the runtime's own: nothing for the handler
            else:
                await self.handle(item)
            count += 1

    async def fire(self, key: Hashable) -> Any:
        """Deliver timer ``key``'s message to the handler now (a one-shot timer is then gone).
        Cancellation: as :meth:`handle`."""
        runtime = self._started()
        timer = runtime.harness_timers[key]
        if not timer.repeat:
            del runtime.harness_timers[key]
        return await self.handle(timer.message)

    def dead_letters(self) -> list[DeadLetter]:
        """Dead letters published since the last call."""
        self._started()
        assert self._letters is not None
        letters = []
        while True:
            try:
                letters.append(self._letters.receive_nowait())
            except WouldBlock:
                return letters
