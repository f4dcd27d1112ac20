"""Test helpers for code built on fearless actors: a fake clock, a probe, a harness, and a wait.

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
    actor sends itself and timers it starts are recorded, to be run when the test says; stand-ins
    (``harness.stand_in()``) take the place of its collaborators and record what it sends them.
``wait_all_tasks_blocked``
    ``await wait_all_tasks_blocked()`` returns once every other task of the event loop is blocked
    (waiting for a message, an event, a lock, a timer, I/O): whatever the tasks of the test could
    do without outside help, they have done. It is how ``FakeClock`` and
    ``Probe.expect_no_message`` settle, and it is what a test uses instead of a sleep to let the
    actors it started get on with it. On trio it is trio's own; on asyncio and uvloop it looks at
    the loop's tasks directly (anyio's ``wait_all_tasks_blocked`` polls every 0.1 s there, which
    made fake-clock tests some 40 times slower than on trio). It cannot see OS threads: work in
    ``anyio.to_thread``, a ``*_blocking`` call in another thread, or a wake-up that another
    thread has sent and the loop has not run yet does not hold it back; wait for those with an
    event. A task sleeping on a real timer counts as blocked, however soon the timer is due.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar, final, get_args, overload

import anyio
from anyio import EndOfStream, WouldBlock

from ._actors._actor import Actor, _Default
from ._actors._ask import RAISED, REPLY, STOPPED, Ask, ErrorReply, current_runtime
from ._actors._mailbox import Mailbox, SystemMessage
from ._actors._messages import DeadLetter, DeadLetterReason, ExitReason, Request
from ._actors._ref import ActorRef
from ._actors._runtime import NOTHING, STOP, ActorRuntime
from ._actors._system import ActorSystem
from ._actors._watch import Notice
from ._backend import wait_all_tasks_blocked
from ._cells._atomic import AtomicInt
from ._channels._broadcast import Subscription
from ._exceptions import ActorStopped, Lagged
from ._parking import EMPTY

__all__ = ["FakeClock", "Harness", "Probe", "StandIn", "TimerInfo", "wait_all_tasks_blocked"]

T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A", bound=Actor[Any])

_EXIT_REASONS: tuple[str, ...] = get_args(ExitReason)


def _check_time(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


@final
class FakeClock:
    """A monotonic clock that stands still until :meth:`advance` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = _check_time("start", start)
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """The time on this clock, in seconds (``start`` until the first :meth:`advance`)."""
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
        """:meth:`sleep_until` ``now() + seconds``.

        Cancellation: as :meth:`sleep_until`."""
        await self.sleep_until(self._now + seconds)

    async def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``: first wait until every task is blocked (so each
        sleep that is about to start has started), then stop at each deadline due on the way,
        waking its sleepers and waiting until every task is blocked again (so a timer that
        re-arms within the window fires again, exactly on time). See
        :func:`wait_all_tasks_blocked` for what "blocked" can and cannot see.

        Cancellation: a cancel point at each settling; if cancelled, the clock stays where it got
        to (at the last deadline reached), and the sleepers woken so far stay woken."""
        seconds = _check_time("advance", seconds)
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, got advance({seconds!r})")
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
    """An actor that records every message it gets, for assertions (the guide: ``docs/actors.md``,
    "Testing actors").

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
        """Spawn the probe's actor in ``system``.

        Cancellation: as ``ActorSystem.spawn``."""
        if reply is not None and not callable(reply):
            raise TypeError(f"reply must be a callable (message -> answer) or None, got {reply!r}")
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
        """Let every task run until all are blocked (:func:`wait_all_tasks_blocked`), then check
        that nothing has arrived (``AssertionError`` naming the message otherwise).

        Deterministic: it does not wait for a length of time. It cannot see into OS threads.

        Cancellation: a cancel point; a cancelled check took nothing."""
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


def _kill_reason(runtime: ActorRuntime) -> tuple[ExitReason, BaseException | None]:
    error = runtime.exit_error  # set by a link: the actor fails with LinkedActorFailed
    return ("killed", None) if error is None else ("failed", error)


class _HarnessRuntime(ActorRuntime):
    """A runtime that never runs a task: its :class:`Harness` drives it. Timers are recorded. A
    kill cancels the actor's code that is running (the harness runs it in ``scope``), or ends the
    actor at once if none is."""

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

    def kill(self, *, shutdown: bool = False, by_hand: bool = False) -> None:
        super().kill(shutdown=shutdown, by_hand=by_hand)  # cancels the scope, if code is running
        if self.kill_requested and self.scope is None:
            self.end_killed()

    def end_killed(self) -> None:
        """End the actor after a kill: no ``on_stop``; what was queued goes to dead letters."""
        self.harness_timers.clear()
        self.finalize(*_kill_reason(self))


class _Unused(Actor[Any]):
    async def handle(self, message: Any) -> None:  # pragma: no cover - a stand-in never runs
        raise AssertionError("a stand-in's actor never runs")


class _StandInRuntime(ActorRuntime):
    """A stand-in's runtime: never runs; keeps what it was sent; a stop or a kill ends it at
    once (it is idle)."""

    __slots__ = ("kept",)

    kept: list[Any]  # user messages taken out of the mailbox when it ended

    def request_stop(self, *, urgent: bool = False, by_hand: bool = False) -> None:
        self.finalize("stopped", None)

    def kill(self, *, shutdown: bool = False, by_hand: bool = False) -> None:
        self.finalize("shutdown" if shutdown else "killed", None)

    def finalize(
        self, reason: ExitReason, error: BaseException | None, *, logged: bool = False
    ) -> None:
        if self.state != "stopped":
            while (item := self.mailbox.take()) is not EMPTY:
                if isinstance(item, Ask):
                    item.answer(STOPPED, None)  # the asker gets ActorStopped
                    self.kept.append(item.message)
                elif not isinstance(item, SystemMessage):
                    self.kept.append(item)  # received: not a dead letter
        super().finalize(reason, error, logged=logged)


def _user_messages(runtime: ActorRuntime) -> list[Any]:
    with runtime.mailbox.lock:
        items = list(runtime.mailbox.items)
    return [
        item.message if isinstance(item, Ask) else item
        for item in items
        if not isinstance(item, SystemMessage)
    ]


@final
class StandIn(Generic[T]):
    """A stand-in for another actor, in a :class:`Harness` (``harness.stand_in()``): give its
    :attr:`ref` to the actor under test, which may tell, send or ask it, ``monitor`` or ``link``
    it, and stop or kill it.

    What it is sent is recorded in :attr:`received`; asks are never answered (an ask to it waits
    until it ends, then raises ``ActorStopped``). It ends when :meth:`stop` is called, when its
    ref is stopped or killed (at once: it is idle), or when the harness's block ends; then the
    actors monitoring it get their ``Terminated`` notice (in the harness: queued, delivered by
    ``run_queued``) and a failure fails the actors linked to it. Use it from the test's task.
    """

    def __init__(self, runtime: _StandInRuntime) -> None:
        self._runtime = runtime

    def __repr__(self) -> str:
        return f"<StandIn {self._runtime.name!r} {self._runtime.state}>"

    @property
    def ref(self) -> ActorRef[T]:
        """Its ref, an ``ActorRef`` like any other."""
        ref: ActorRef[T] = self._runtime.ref
        return ref

    @property
    def received(self) -> list[T]:
        """What was sent to it so far, oldest first (an ask shown as its message)."""
        runtime = self._runtime
        return [*runtime.kept, *_user_messages(runtime)]

    def stop(self, reason: ExitReason = "stopped", error: BaseException | None = None) -> None:
        """End it now, as if it had ended with ``reason`` (``"stopped"``, ``"shutdown"``,
        ``"killed"`` or ``"failed"``) and ``error``: its monitors are told, and ``"killed"`` or
        ``"failed"`` fails the actors linked to it (with ``LinkedActorFailed``; one that traps
        links gets the notice instead). Asks waiting on it raise ``ActorStopped``. A stand-in
        that has ended already stays as it ended."""
        if reason not in _EXIT_REASONS:
            raise ValueError(f"reason must be one of {', '.join(_EXIT_REASONS)}, got {reason!r}")
        if error is not None and not isinstance(error, BaseException):
            raise TypeError(f"error must be an exception or None, got {error!r}")
        self._runtime.finalize(reason, error)


@final
class Harness(Generic[A]):
    """One actor, driven step by step from the test (the guide: ``docs/actors.md``, "Testing
    actors")::

        async with Harness(Counter) as harness:  # builds it and runs on_start
            await harness.handle(Add(2))
            assert await harness.handle(Get()) == 2
        # on_stop has run, and the harness is released

    ``await harness.handle(message)`` runs its handler now and returns the reply, as an ask
    would: the handler's exception propagates, an ``ErrorReply``'s error is raised, and the actor
    keeps its state (no supervision here). ``harness.actor`` is the instance. What is told to
    ``harness.ref`` (what the actor sends itself, a notice, a stop) waits until
    ``await harness.run_queued()``; ``harness.queued`` shows the messages among it. Its timers wait
    in ``harness.timers`` until ``await harness.fire(key)``. ``harness.stand_in()`` makes a
    stand-in for a collaborator. Spawning children needs a real :class:`ActorSystem`. An ask
    from the handler to the actor itself raises ``DeadlockError``, as in the actor's own task.

    The actor ends as a real one would: at a stop (``context.stop()``, ``harness.ref.stop()``)
    that ``run_queued`` reaches, after ``on_stop``; at once, without ``on_stop``, when killed
    (``ref.kill()``, or a linked actor failing); else when the block ends (``on_stop`` runs then
    if the block raised nothing). Once it has ended, ``handle`` and ``fire`` raise
    ``ActorStopped``, what was queued is in dead letters, and ``await harness.ref.wait_stopped()``
    says how it ended. The instance, ``queued``, ``timers`` and ``dead_letters()`` can still be
    read after the block.
    """

    def __init__(self, factory: Callable[[], A], *, name: str = "harness") -> None:
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning an Actor, got {factory!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        self._factory = factory
        self._name = name
        self._system: ActorSystem | None = None  # made on entry (it holds a channel to close)
        self._runtime: _HarnessRuntime | None = None
        self._actor: A | None = None
        self._letters: Subscription[DeadLetter] | None = None
        self._released_letters: list[DeadLetter] = []
        self._stand_ins: list[_StandInRuntime] = []
        self._released = False

    def __repr__(self) -> str:
        runtime = self._runtime
        state = "not entered" if runtime is None else runtime.state
        return f"<Harness {self._name!r} {state}>"

    async def __aenter__(self) -> Harness[A]:
        """Build the actor and run its ``on_start`` in this task (a failure propagates, and the
        harness is released).

        Cancellation: cancels ``on_start``; the harness is released."""
        if self._runtime is not None:
            raise RuntimeError("a Harness can be entered only once: make a new one for each test")
        system = self._system = ActorSystem(name=f"{self._name} harness")
        self._letters = system.dead_letters()
        factory = self._factory
        runtime = _HarnessRuntime(system, None, factory, self._name, False, Mailbox(math.inf), None)
        runtime.harness_timers = {}
        self._runtime = runtime
        try:
            self._actor = runtime.adopt(factory())
            runtime.state = "running"
            if await self._run(self._actor.on_start, NOTHING) is NOTHING:
                raise ActorStopped(runtime.name)  # killed while starting, as spawn says
        except BaseException as exc:
            if isinstance(exc, Exception):
                runtime.finalize("failed", exc)  # (a no-op if a kill ended it)
            else:
                runtime.finalize("shutdown", None)
            self._release()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        """Run ``on_stop`` if the actor is still running and the block raised nothing, end the
        actor (what is still queued goes to dead letters, and waiting asks raise
        ``ActorStopped``), end the stand-ins, and release the harness.

        Cancellation: cancels ``on_stop``; the actor ends and the harness is released anyway."""
        runtime = self._started()
        try:
            if runtime.kill_requested and runtime.scope is None:
                runtime.end_killed()  # killed from another thread
            if runtime.state != "stopped" and exc_type is None:
                await self._wind_down(runtime)
        finally:
            runtime.finalize("shutdown", None)  # (if it is still running: the block raised)
            self._release()

    def _release(self) -> None:
        self._released = True
        for stand_in in self._stand_ins:
            stand_in.finalize("shutdown", None)
        letters = self._letters
        if letters is not None:
            self._released_letters = self._drain(letters)
            letters.close()
        if self._system is not None:
            self._system._close()

    def _started(self) -> _HarnessRuntime:
        runtime = self._runtime
        if runtime is None or self._actor is None:
            raise RuntimeError(
                "this Harness has not started: use it as 'async with Harness(factory) as harness'"
            )
        return runtime

    def _live(self) -> _HarnessRuntime:
        """The runtime, for running the actor's code: inside the block only."""
        runtime = self._started()
        if self._released:
            raise RuntimeError(
                f"the block of Harness {self._name!r} has ended: it runs no more of the actor's "
                "code (its instance, queued, timers and dead_letters() can still be read)"
            )
        if runtime.kill_requested and runtime.scope is None:
            runtime.end_killed()  # killed from another thread
        return runtime

    async def _run(self, call: Callable[[], Awaitable[Any]], current: Any) -> Any:
        """Run the actor's code where a kill lands, as the actor's task would. Returns the
        result, or ``NOTHING`` if the actor was killed (it has ended: ``current``, the message
        being handled, is in dead letters, and an ask being answered got ``ActorStopped``)."""
        runtime = self._started()
        runtime.current = current
        runtime.task_id = anyio.get_current_task().id  # its asks are checked for deadlocks
        token = current_runtime.set(runtime)
        try:
            with anyio.CancelScope() as scope:
                runtime.scope = scope
                result = await call()
        finally:
            current_runtime.reset(token)
            runtime.scope = None
            if not runtime.kill_requested:
                runtime.current = NOTHING
        if runtime.kill_requested:
            runtime.end_killed()
            return NOTHING
        return result

    async def _wind_down(self, runtime: _HarnessRuntime) -> None:
        """A graceful stop: ``on_stop``, then the end (``"stopped"``)."""
        runtime.state = "stopping"
        runtime.harness_timers.clear()
        try:
            await self._run(self.actor.on_stop, NOTHING)
        finally:
            runtime.finalize("stopped", None)  # (unless a kill ended it already)

    @staticmethod
    def _drain(letters: Subscription[DeadLetter]) -> list[DeadLetter]:
        drained = []
        while True:
            try:
                drained.append(letters.receive_nowait())
            except Lagged:
                continue  # (more letters than the system keeps: the oldest are gone)
            except (WouldBlock, EndOfStream):
                return drained

    @property
    def actor(self) -> A:
        """The instance under test."""
        self._started()
        assert self._actor is not None
        return self._actor

    @property
    def ref(self) -> ActorRef[Any]:
        """The actor's ref: what is told through it waits for :meth:`run_queued`."""
        return self._started().ref

    @property
    def timers(self) -> dict[Hashable, TimerInfo]:
        """The timers the actor has started and not cancelled, by key (none once it has
        ended)."""
        return dict(self._started().harness_timers)

    @property
    def queued(self) -> list[Any]:
        """The messages waiting in the actor's mailbox, oldest first (an ask shown as its
        message): the user's messages only, not the runtime's (a stop, a notice)."""
        return _user_messages(self._started())

    def stand_in(self, name: str | None = None) -> StandIn[Any]:
        """A new stand-in for a collaborator, called ``name`` (default ``"stand-in#N"``): see
        :class:`StandIn`."""
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty str or None, got {name!r}")
        self._live()
        system = self._system
        assert system is not None
        name = name or f"stand-in#{len(self._stand_ins) + 1}"
        runtime = _StandInRuntime(system, None, _Unused, name, False, Mailbox(math.inf), None)
        runtime.kept = []
        runtime.state = "running"
        self._stand_ins.append(runtime)
        return StandIn(runtime)

    @overload
    async def handle(self, message: Request[R]) -> R: ...

    @overload
    async def handle(self, message: Any) -> Any: ...

    async def handle(self, message: Any) -> Any:
        """Run the handler on ``message`` now, in this task, and return its reply, as an ask
        would: the handler's exception propagates, an ``ErrorReply``'s error is raised, and
        ``ActorStopped`` is raised if the actor has ended (or is killed while handling it).

        Cancellation: cancelling the caller cancels the handler where it is (the actor stays as
        the handler left it)."""
        runtime = self._live()
        if runtime.state == "stopped":
            raise ActorStopped(runtime.name)
        result = await self._run(partial(self.actor.handle, message), message)
        if result is NOTHING:
            raise ActorStopped(runtime.name)
        runtime.handled += 1
        if result.__class__ is ErrorReply:
            raise result.error
        return result

    async def run_queued(self) -> int:
        """Deliver what is queued, in order, as the actor's loop would, including what handling
        it queues: messages to the handler (an ask is answered; an ``ErrorReply`` raises in its
        asker), ``Terminated`` notices to ``on_terminated``. A stop ends the actor there:
        ``on_stop`` runs, and what was queued after it goes to dead letters. Returns how many
        messages and notices it delivered (``0`` once the actor has ended).

        A handler's exception propagates (an asker gets it too), and what is still queued stays
        queued. Cancellation: cancels the handler running; that message is not put back (an
        asker waiting for it gets ``ActorStopped``), and what is still queued stays queued."""
        runtime = self._live()
        count = 0
        while runtime.state != "stopped":
            item = runtime.mailbox.take()
            if item is EMPTY:
                break
            if isinstance(item, Ask):
                try:
                    result = await self._run(partial(self.actor.handle, item.message), item)
                except BaseException as exc:
                    if isinstance(exc, Exception):
                        item.answer(RAISED, exc)  # the asker gets it too, as from a real actor
                    else:
                        item.answer(STOPPED, None)
                    raise
                if result is NOTHING:
                    break  # killed: its asker got ActorStopped
                runtime.handled += 1
                if not item.answer(REPLY, result):
                    runtime.dead_letter(result, DeadLetterReason.REPLY_UNDELIVERED)
            elif isinstance(item, Notice):
                if (
                    await self._run(partial(self.actor.on_terminated, item.notice), NOTHING)
                    is NOTHING
                ):
                    break
            elif item.__class__ is STOP.__class__:  # a stop: the actor ends here
                await self._wind_down(runtime)
                break
            elif isinstance(item, SystemMessage):  # pragma: no cover - a supervisor's own
                continue
            else:
                if await self._run(partial(self.actor.handle, item), item) is NOTHING:
                    break
                runtime.handled += 1
            count += 1
        return count

    async def fire(self, key: Hashable) -> Any:
        """Deliver timer ``key``'s message to the handler now, as :meth:`handle` does (a one-shot
        timer is then gone). ``KeyError`` naming the key if the actor has no such timer.

        Cancellation: as :meth:`handle`."""
        runtime = self._live()
        timer = runtime.harness_timers.get(key)
        if timer is None:
            raise KeyError(
                f"actor {runtime.name!r} has no timer {key!r} (its timers: "
                f"{list(runtime.harness_timers)!r})"
            )
        if not timer.repeat:
            del runtime.harness_timers[key]
        return await self.handle(timer.message)

    def dead_letters(self) -> list[DeadLetter]:
        """The dead letters published since the last call (after the block: those published
        until it ended, once)."""
        self._started()
        if self._released:
            letters, self._released_letters = self._released_letters, []
            return letters
        assert self._letters is not None
        return self._drain(self._letters)
