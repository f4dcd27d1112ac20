"""The runtime of one actor: its task, its mailbox loop, its lifecycle and its bookkeeping.

Specification (``docs/actors.md`` is the user guide):

Lifecycle
    ``starting`` (factory, then ``on_start``) -> ``running`` (one message at a time) ->
    ``stopping`` -> ``stopped``. ``spawn`` returns once ``on_start`` has returned; if the factory
    or ``on_start`` raises, ``spawn`` raises ``ActorStartError`` (the cause attached) and the actor
    never ran.
Stopping
    Graceful (``stop()``): a stop message joins the back of the mailbox; messages queued before it
    are handled, and those after it go to dead letters. Then, in the actor's task: its timers are
    cancelled, its children are stopped (reverse start order, each by its shutdown timeout), and
    ``on_stop`` runs. Killed (``kill()``): the actor's task is cancelled now, wherever it is; the
    message being handled, if any, goes to dead letters (``KILLED``); children are killed;
    ``on_stop`` does not run. Failed: a handler (or hook) raised; the message goes to dead letters
    with the exception (an asker gets the exception), then the actor winds down as for a graceful
    stop. Whatever the route, the mailbox then closes (what is left goes to dead letters, asks get
    ``ActorStopped``), the name is released, and ``Terminated`` goes to every monitor; a failure
    (or a kill) also fails every linked actor.
Scheduling
    The loop takes one message at a time and yields to the scheduler at least once every
    ``yield_every`` messages (a handler that never awaits cannot starve the event loop); a yield
    is also where a kill lands between messages.

Everything here runs on the event loop thread of the actor's system, except what a mailbox and
an ``AtomicCell`` make safe from any thread: enqueueing (``tell``, ``ask_blocking``, ``stop``),
``kill`` (which hops onto the loop) and waiting for the stop (``wait_stopped``).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import anyio
from anyio.abc import TaskStatus

from .. import _backend
from .._cells._atomic import AtomicCell, AtomicInt
from .._exceptions import ActorStartError, ActorStopped, LinkedActorFailed, MessageDropped
from ._actor import DEFAULT, Actor, _Default
from ._mailbox import (
    ACCEPTED,
    CLOSED,
    DROPPED,
    EMPTY,
    FULL,
    SYSTEM_TYPES,
    Evicted,
    Mailbox,
    MailboxQueue,
    SystemMessage,
)
from ._messages import (
    ActorSnapshot,
    ActorState,
    DeadLetter,
    DeadLetterReason,
    ExitReason,
    Terminated,
)

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._system import ActorSystem

__all__ = ["Ask", "Cell", "ChildExited", "ErrorReply", "current_cell"]

log: Final = logging.getLogger("fearless.actors")

A = TypeVar("A", bound=Actor[Any])

current_cell: ContextVar[Cell | None] = ContextVar("fearless_current_actor", default=None)


class _Stop(SystemMessage):
    """Stop the instance that takes it. A supervisor's stop for a restart names the instance
    it is for: if that instance ends otherwise first (fails, is killed), the stop stays in the
    kept mailbox and must not stop the next one."""

    __slots__ = ("incarnation",)

    def __init__(self, incarnation: int | None = None) -> None:
        self.incarnation = incarnation

    def __repr__(self) -> str:
        return "<stop>" if self.incarnation is None else f"<stop instance {self.incarnation}>"


STOP: Final = _Stop()


class Notice(SystemMessage):
    """A ``Terminated`` notice on its way to a monitor (or a linked actor that traps links)."""

    __slots__ = ("notice",)

    def __init__(self, notice: Terminated) -> None:
        self.notice = notice


class ChildExited(SystemMessage):
    """To a supervisor: one of its children's instances ended, and how."""

    __slots__ = ("cell", "directive", "error", "final", "incarnation", "reason")

    def __init__(
        self,
        cell: Cell,
        incarnation: int,
        reason: ExitReason,
        error: BaseException | None,
        directive: str,
        final: bool,
    ) -> None:
        self.cell = cell
        self.incarnation = incarnation
        self.reason = reason
        self.error = error
        self.directive = directive
        self.final = final  # the actor has ended (stopped by hand): nothing to decide


@final
class ErrorReply:
    """Return ``ErrorReply(error)`` from ``handle`` to answer an ask by raising ``error`` in the
    asker, without failing the actor (a request the actor refuses, not a crash). For a told
    message it means nothing."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        if not isinstance(error, BaseException):
            raise TypeError(f"ErrorReply takes an exception, got {error!r}")
        self.error = error

    def __repr__(self) -> str:
        return f"ErrorReply({self.error!r})"


# How an ask is answered: the reply waiter is claimed with (kind, payload).
REPLY: Final = "reply"
RAISED: Final = "raised"
STOPPED: Final = "stopped"
DROPPED_ASK: Final = "dropped"


class Ask:
    """An ask on its way: the message, the asker's waiter, and the chain of actors waiting on it
    (for deadlock detection)."""

    __slots__ = ("chain", "message", "waiter")

    def __init__(
        self,
        message: Any,
        waiter: _backend.Waiter,
        chain: tuple[tuple[Cell, _backend.Waiter], ...],
    ) -> None:
        self.message = message
        self.waiter = waiter
        self.chain = chain

    def answer(self, kind: str, payload: object) -> bool:
        """Give the asker its answer; ``False`` if it has stopped waiting (or its loop is gone)."""
        waiter = self.waiter
        return waiter.claim((kind, payload)) and waiter.wake()


_SPECIAL: Final = frozenset({Ask, type(EMPTY)})  # with SYSTEM_TYPES: what _serve does not handle


class _Timer:
    __slots__ = ("cancelled", "scope")

    def __init__(self) -> None:
        self.cancelled = False
        self.scope: anyio.CancelScope | None = None

    def is_cancelled(self) -> bool:
        return self.cancelled

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class _TimerKey:
    """The key of a timer started without one."""

    __slots__ = ()


class _Nothing:
    __slots__ = ()


NOTHING: Final = _Nothing()


def _not_none(value: object) -> bool:
    return value is not None


def _nothing_to_undo(_: object) -> bool:
    return True  # the actor is woken without a message (it takes one itself): nothing to give back


class Cell:
    """One actor's runtime, from spawn to its last notice."""

    def __init__(
        self,
        system: ActorSystem,
        parent: Cell | None,
        factory: Callable[[], Actor[Any]],
        name: str,
        registered: bool,
        mailbox: Mailbox,
        shutdown: float | _Default | None,
    ) -> None:
        from ._ref import ActorRef  # the ref and the cell refer to each other

        self.system = system
        self.parent = parent
        self.factory = factory
        self.name = name
        self.registered = registered
        self.shutdown: float | _Default | None = shutdown  # DEFAULT: by the instance's type
        self.instance: Actor[Any] | None = None  # the current one
        self.mailbox = MailboxQueue(mailbox)
        self.ref: ActorRef[Any] = ActorRef._create(self)
        self.actor_type = getattr(factory, "__name__", type(factory).__name__)
        self.state: ActorState = "starting"
        self.terminated: AtomicCell[Terminated | None] = AtomicCell(None)
        self.children: list[Cell] = []  # in start order
        self.watchers: dict[Cell, None] = {}  # monitors of this actor (ordered sets)
        self.watching: dict[Cell, None] = {}
        self.links: dict[Cell, None] = {}
        self.timers: dict[Hashable, _Timer] = {}
        self.traps_links = False
        # The loop this actor runs on: kill() from another thread hops onto it.
        self.thread = threading.get_ident()
        self.schedule = _backend.current().scheduler()
        self.scope: anyio.CancelScope | None = None
        self.kill_requested = False
        self.shutdown_kill = False  # the kill came from a parent's or the system's shutdown
        self.exit_error: BaseException | None = None  # why a kill is a failure (a link)
        # Guards watchers, links and the publication of the Terminated notice, which actors of
        # other systems (on other threads) may touch while this one finishes.
        self.guard = threading.Lock()
        self.task_id = -1
        self.current: Any = NOTHING  # the message being handled
        # The asks waiting on the message being handled (directly or through a chain of asks):
        # (asking actor, its reply waiter) pairs, for deadlock detection.
        self.chain: tuple[tuple[Cell, _backend.Waiter], ...] = ()
        self.handled = 0
        self.failures = 0
        self.restarts = 0
        self.dead_letters = 0  # counted by the actor's own task (the mailbox counts its drops)
        # Supervision (see fearless._actors._supervisor). A supervised actor's instance can end
        # and be replaced (a restart) while the cell, its mailbox, its name and its ref live on.
        self.supervised = False  # its parent is a Supervisor, which decides what follows an end
        self.decider: Callable[[BaseException], str] | None = None
        self.directive = "restart"  # what the decider said of the last failure
        self.incarnation = 0  # instances started so far
        self.terminating: str | None = None  # "final" / "restart": its supervisor is stopping it
        self.ended = AtomicInt(0)  # instances that have ended (a supervisor waits on it)
        self.last_end: tuple[ExitReason, BaseException | None] = ("stopped", None)

    def __repr__(self) -> str:
        return f"<actor {self.name!r} {self.state}>"

    # -- the task ----------------------------------------------------------------------------------

    async def run(
        self,
        restarting: BaseException | None = None,
        *,
        task_status: TaskStatus[BaseException | None],
    ) -> None:
        """One instance's life, in its own task: build and start it (``on_start``, or
        ``on_restart(restarting)`` when its supervisor restarts it), serve the mailbox, wind it
        down. Then the end: final (close the mailbox, release the name, notify), or, for a
        supervised actor whose supervisor did not ask for the end, a report to the supervisor,
        which starts the next instance or ends it. Never raises an exception of the actor's own:
        failures are reported (dead letters, ``Terminated``, the log, the supervisor), not
        propagated into the system's task group."""
        self.task_id = anyio.get_current_task().id
        current_cell.set(self)
        self.incarnation += 1
        self.directive = "restart"
        self.exit_error = None  # (a link failure is about the instance it killed)
        self.state = "starting"
        started = False
        start_error: BaseException | None = None
        reason: ExitReason = "stopped"
        error: BaseException | None = None
        final = True
        try:
            with anyio.CancelScope() as scope:
                self.scope = scope
                if self.kill_requested:
                    scope.cancel()
                instance: Actor[Any] | None = None
                try:
                    instance = self._build()
                    if restarting is None:
                        await instance.on_start()
                    else:
                        await instance.on_restart(restarting)
                except Exception as exc:
                    reason, error = "failed", exc
                    start_error = ActorStartError(self.name, exc)
                    start_error.__cause__ = exc
                    final = not self.supervised  # the supervisor decides (it sees spawn fail)
                if start_error is None:
                    assert instance is not None
                    self.state = "running"
                    started = True
                    task_status.started(None)
                    error = await self._serve(instance)
                    if error is not None:
                        reason = "failed"
                    final = self._final(reason)
                    if final:
                        self._close_mailbox(None)  # nothing more is accepted while it winds down
                    await self._wind_down(instance)
            if scope.cancelled_caught and reason == "stopped":
                reason, error = self._kill_reason()
                final = self._final(reason)
        except BaseException:  # cancelled from outside (the system is going down), or worse
            if reason == "stopped":
                reason, error = "shutdown", None
            final = True
            raise
        finally:
            self.scope = None
            self.kill_requested = False
            self.exit_error = None
            self.shutdown_kill = False
            if self.children:  # left only if this instance was killed, or failed to start
                with anyio.CancelScope(shield=True):
                    await self._kill_children()
            if reason == "failed":
                self.failures += 1
            if final:
                self._finish(reason, error)
                if started and self.supervised:
                    self._report(reason, error, final=True)  # the supervisor forgets it
            else:
                self._cancel_timers()
                self.last_end = (reason, error)  # the actor's end, if no instance follows
                self._drop_current(error)  # killed in the middle of it (a link, a shutdown)
                self.state = "restarting"
                if started and self.terminating is None:
                    self._report(reason, error)
            self.ended.increment()  # (after _finish: a final end is complete when seen)
            if not started:  # spawn raises only now: the children are gone, the name is free
                task_status.started(start_error or ActorStopped(self.name))

    def _final(self, reason: ExitReason) -> bool:
        """Whether this instance's end is the actor's end, or its supervisor decides."""
        if not self.supervised:
            return True
        if self.terminating == "restart":  # its supervisor stopped it, to start it again
            return False
        return self.terminating == "final" or reason == "shutdown"

    def _report(
        self, reason: ExitReason, error: BaseException | None, *, final: bool = False
    ) -> None:
        """Tell the supervisor this instance ended (``final``: and the actor with it); if the
        supervisor has stopped, this is the actor's end."""
        parent = self.parent
        assert parent is not None
        exited = ChildExited(self, self.incarnation, reason, error, self.directive, final)
        if not parent.mailbox.put_system(exited):
            self.finalize(reason, error)

    async def start_incarnation(
        self, restarting: BaseException | None, *, restart: bool = False
    ) -> BaseException | None:
        """Start a new instance in a new task (its supervisor's call); the start's error, if any
        (the actor then waits, ``"restarting"``, for its supervisor's next decision).
        ``restart``: it replaces one that ended (counted in ``restarts``); ``restarting``: the
        failure that ended it (``on_restart`` gets it; after a normal end, ``on_start`` runs)."""
        if restart:
            self.restarts += 1
        error: BaseException | None = await self.system._task_group().start(self.run, restarting)
        return error

    def finalize(self, reason: ExitReason, error: BaseException | None) -> None:
        """End an actor whose instance has already ended (its supervisor's call)."""
        if self.state != "stopped":
            self._finish(reason, error)

    def _kill_reason(self) -> tuple[ExitReason, BaseException | None]:
        if self.exit_error is not None:
            return "failed", self.exit_error
        return ("shutdown" if self.shutdown_kill else "killed"), None

    async def _kill_children(self) -> None:
        """Kill the children still running and wait until each has finished."""
        children = self.children[::-1]
        for child in children:
            child.terminating = "final"
            if child.state == "restarting":  # between instances: it ends as its last one did
                child.finalize(*child.last_end)
            else:
                child.kill(shutdown=True)
        for child in children:
            await child.wait_stopped()

    def _build(self) -> Actor[Any]:
        return self.adopt(self.factory())

    def adopt(self, instance: A) -> A:
        """Check what the factory made and bind it to this runtime."""
        if not isinstance(instance, Actor):
            raise TypeError(
                f"the factory of actor {self.name!r} returned {instance!r}, not an Actor"
            )
        if not inspect.iscoroutinefunction(instance.handle):
            raise TypeError(f"{type(instance).__name__}.handle must be an async def")
        instance._cell = self
        self.instance = instance
        if self.shutdown is DEFAULT:
            self.shutdown = type(instance).default_shutdown
        self.actor_type = type(instance).__name__
        if not self.registered and self.name.startswith("#"):  # unnamed: name it by its type
            self.name = f"{self.actor_type}{self.name}"
        self.traps_links = type(instance).trap_links
        return instance

    async def _serve(self, instance: Actor[Any]) -> BaseException | None:
        """Handle messages until a stop message (``None``) or a failure (the exception)."""
        backend = _backend.current()
        mailbox = self.mailbox
        take = mailbox.take
        handle = instance.handle
        special = _SPECIAL | SYSTEM_TYPES  # every runtime message class is defined by now
        yield_every = self.system.yield_every
        budget = yield_every
        waiter = backend.new_waiter()  # the one this task parks on, re-armed for each park
        while True:
            budget -= 1
            if budget <= 0:
                budget = yield_every
                await backend.checkpoint()  # a cancel point: nothing has been taken yet
            item = take(waiter)  # parks the waiter if there is nothing to take
            cls = item.__class__
            if cls not in special:  # a told message: the common case first
                self.current = item
                try:
                    await handle(item)
                except Exception as exc:
                    self.current = NOTHING
                    self.dead_letter(item, DeadLetterReason.HANDLER_FAILED, exc)
                    if self._resumes(exc):
                        continue
                    return exc
                self.current = NOTHING
                self.handled += 1
            elif cls is Ask:
                self.current = item
                self.chain = item.chain
                try:
                    result = await handle(item.message)
                except Exception as exc:
                    self.current = NOTHING
                    self.chain = ()
                    self.dead_letter(item.message, DeadLetterReason.HANDLER_FAILED, exc)
                    item.answer(RAISED, exc)
                    if self._resumes(exc):
                        continue
                    return exc
                self.current = NOTHING
                self.chain = ()
                self.handled += 1
                if not item.answer(REPLY, result):
                    self.dead_letter(result, DeadLetterReason.REPLY_UNDELIVERED)
            elif item is EMPTY:  # parked by take(): wait for a message
                await waiter.wait(mailbox.unpark, _nothing_to_undo)
                budget = yield_every
            elif cls is _Stop:
                if item.incarnation is None or item.incarnation == self.incarnation:
                    return None
                # a stop meant for an instance that ended otherwise: not for this one
            elif cls is Notice:
                try:
                    await instance.on_terminated(item.notice)
                except Exception as exc:
                    return exc
            else:  # the runtime's own business: a supervisor's children
                try:
                    await instance._runtime_message(item)
                except Exception as exc:
                    return exc

    def _resumes(self, error: Exception) -> bool:
        """Ask the decider (a supervised child's) what to do about ``error``; True for
        ``"resume"`` (keep the instance, the message is in dead letters already)."""
        decider = self.decider
        if decider is None:
            return False
        try:
            directive = decider(error)
        except Exception:
            log.exception("the decider of actor %r raised; escalating", self.name)
            directive = "escalate"
        if directive not in ("restart", "resume", "stop", "escalate"):
            log.error("the decider of actor %r returned %r; escalating", self.name, directive)
            directive = "escalate"
        self.directive = directive
        return directive == "resume"

    async def _wind_down(self, instance: Actor[Any]) -> None:
        """After a graceful stop or a failure: timers, children (reverse start order), on_stop."""
        self.state = "stopping"
        self._cancel_timers()
        children = self.children[::-1]
        if getattr(instance, "concurrent_shutdown", False):  # a supervisor's dynamic pool
            async with anyio.create_task_group() as tg:
                for child in children:
                    tg.start_soon(self.system._stop_cell, child)
        else:
            for child in children:
                await self.system._stop_cell(child)
        try:
            await instance.on_stop()
        except Exception:
            log.exception("on_stop of actor %r raised", self.name)

    def _close_mailbox(self, error: BaseException | None) -> None:
        """Close the mailbox and account for what it held: dead letters, and ``ActorStopped`` for
        asks. Idempotent: the second call finds it empty."""
        items, senders = self.mailbox.close()
        for waiter in senders:
            waiter.wake()
        self._drop_current(error)
        for item in items:
            if not isinstance(item, SystemMessage):
                self._undelivered(item, DeadLetterReason.ACTOR_STOPPED, None)

    def _finish(self, reason: ExitReason, error: BaseException | None) -> None:
        """The end, however it came (its children have stopped): close the mailbox, account for
        every message, release the name, and tell the watchers and the links. Synchronous: it
        runs even under cancellation."""
        self.state = "stopping"
        self._cancel_timers()
        self._close_mailbox(error)
        self.system._forget(self)
        for watched in list(self.watching):
            with watched.guard:
                watched.watchers.pop(self, None)
        self.watching.clear()
        notice = Terminated(self.ref, reason, error)
        with self.guard:  # against monitor() and link() from actors on other threads
            self.state = "stopped"
            self.terminated.store(notice)
            watchers, self.watchers = self.watchers, {}
            links, self.links = self.links, {}
        for watcher in watchers:
            watcher.mailbox.put_system(Notice(notice))
        for linked in links:
            with linked.guard:
                linked.links.pop(self, None)
            if notice.failed:
                linked.linked_failed(notice)
        if reason == "failed":
            log.error("actor %r failed", self.name, exc_info=error)

    def _drop_current(self, error: BaseException | None) -> None:
        """The instance was killed in the middle of a message: it goes to dead letters."""
        current, self.current = self.current, NOTHING
        if current is not NOTHING:
            self._undelivered(current, DeadLetterReason.KILLED, error)

    def _undelivered(
        self, item: Any, reason: DeadLetterReason, error: BaseException | None
    ) -> None:
        if item.__class__ is Ask:
            item.answer(STOPPED, None)
            item = item.message
        self.dead_letter(item, reason, error)

    # -- requests from outside ---------------------------------------------------------------------

    def request_stop(self, *, urgent: bool = False, by_hand: bool = False) -> None:
        """Graceful stop (safe from any thread): a stop message joins the back of the mailbox,
        or (``urgent``, a supervisor's) its front, so the messages queued stay for a restart.
        ``by_hand`` (``ref.stop()``): the end is final, whatever the supervisor's restart type."""
        if by_hand:
            self.terminating = "final"
            if self.state == "restarting":  # no instance to stop: its supervisor ends it now
                self._end_between_instances("stopped")
                return
        self.mailbox.put_system(_Stop(self.incarnation) if urgent else STOP, front=urgent)

    def _end_between_instances(self, reason: ExitReason) -> None:
        """Stopped or killed by hand while waiting to be restarted: ask the supervisor to end
        it at once (and cancel the restart), instead of at the end of its backoff."""
        parent = self.parent
        if parent is None:  # pragma: no cover - only a supervised actor waits between instances
            return
        exited = ChildExited(self, self.incarnation, reason, None, self.directive, True)
        if not parent.mailbox.put_system(exited):
            self.finalize(reason, None)

    def kill(self, *, shutdown: bool = False, by_hand: bool = False) -> None:
        """Cancel the actor's task now (safe from any thread). ``shutdown``: the runtime kills it
        as part of stopping its parent or the system (reason ``"shutdown"``, not ``"killed"``)."""
        if by_hand:
            self.terminating = "final"  # not restarted (nor is one waiting to be)
            if self.state == "restarting":
                self._end_between_instances("killed")
                return
        if self.state in ("stopped", "restarting"):
            return  # no instance running (a restarting one is its supervisor's to end)
        if shutdown:
            self.shutdown_kill = True
        if threading.get_ident() == self.thread:
            self._cancel()
        else:
            try:
                self.schedule(self._cancel)
            except RuntimeError:  # the loop is gone, and the actor with it
                pass

    def _cancel(self) -> None:
        self.kill_requested = True
        if self.scope is not None:
            self.scope.cancel()

    def linked_failed(self, notice: Terminated) -> None:
        """An actor linked to this one failed (or was killed)."""
        if self.state in ("stopped", "restarting"):
            return  # (between instances: the next one starts afresh, as after any failure)
        if self.traps_links:
            self.mailbox.put_system(Notice(notice))
            return
        if self.exit_error is None:
            failure = LinkedActorFailed(notice)
            failure.__cause__ = notice.error
            self.exit_error = failure
        self.kill()

    async def wait_stopped(self) -> Terminated:
        notice = await self.terminated.wait_until(_not_none)
        assert notice is not None
        return notice

    # -- delivery outcomes -------------------------------------------------------------------------

    def dead_letter(
        self, message: Any, reason: DeadLetterReason, error: BaseException | None = None
    ) -> None:
        """Publish a dead letter for a message meant for this actor (from the actor's task)."""
        self.dead_letters += 1
        self.system._publish(DeadLetter(message, self.name, reason, error))

    def dropped(self, outcome: object, message: Any) -> None:
        """``put`` did not simply enqueue ``message``: send what was lost to dead letters, and
        answer any ask among it. (The mailbox counted the drop; ``FULL`` is the caller's.)"""
        system = self.system
        if outcome is DROPPED:
            lost, reason = message, DeadLetterReason.DROPPED_NEWEST
        elif outcome is CLOSED:
            lost, reason = message, DeadLetterReason.ACTOR_STOPPED
            self.mailbox.note_lost()
        else:
            assert isinstance(outcome, Evicted), outcome
            lost, reason = outcome.message, DeadLetterReason.DROPPED_OLDEST
        if lost.__class__ is Ask:
            if reason is DeadLetterReason.ACTOR_STOPPED:
                lost.answer(STOPPED, None)
            else:
                lost.answer(DROPPED_ASK, "drop_oldest")
            lost = lost.message
        system._publish(DeadLetter(lost, self.name, reason))

    async def spawn_child(
        self,
        factory: Callable[[], Actor[Any]],
        name: str | None,
        mailbox: Mailbox | None,
        shutdown: float | _Default | None,
    ) -> ActorRef[Any]:
        if self.state in ("stopping", "stopped"):
            raise RuntimeError(f"actor {self.name!r} is stopping: it cannot spawn children")
        return await self.system._spawn(self, factory, name, mailbox, shutdown)

    # -- timers ------------------------------------------------------------------------------------

    def start_timer(
        self,
        delay: float,
        message: Any,
        key: Hashable | None,
        repeat: bool,
        *,
        system: bool = False,
    ) -> Hashable:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
            raise ValueError(f"a timer's delay must be a number >= 0, got {delay!r}")
        if repeat and delay <= 0:
            raise ValueError(f"send_every's interval must be > 0, got {delay!r}")
        if self.state in ("stopping", "stopped"):
            raise RuntimeError(f"actor {self.name!r} is stopping: it cannot start timers")
        if key is None:
            key = _TimerKey()
        old = self.timers.pop(key, None)
        if old is not None:
            old.cancel()
        timer = self.timers[key] = _Timer()
        self.system._task_group().start_soon(
            self._run_timer, timer, key, delay, message, repeat, system
        )
        return key

    async def _run_timer(
        self,
        timer: _Timer,
        key: Hashable,
        delay: float,
        message: Any,
        repeat: bool,
        system: bool,
    ) -> None:
        with anyio.CancelScope() as scope:
            timer.scope = scope
            if timer.cancelled:
                return
            clock = self.system.clock
            due = clock.now() + delay
            while True:
                await clock.sleep_until(due)
                if timer.is_cancelled():  # cancelled as the sleep ended: its cancel is late
                    return
                if not repeat and self.timers.get(key) is timer:
                    del self.timers[key]
                if system:  # the runtime's own (a supervisor's backoff): never refused
                    self.mailbox.put_system(message)
                    return
                outcome = self.mailbox.put(message)
                if outcome is FULL:
                    self.dead_letter(message, DeadLetterReason.MAILBOX_FULL)
                elif outcome is not ACCEPTED:
                    self.dropped(outcome, message)
                if not repeat:
                    return
                due += delay

    def cancel_timer(self, key: Hashable) -> bool:
        timer = self.timers.pop(key, None)
        if timer is None:
            return False
        timer.cancel()
        return True

    def _cancel_timers(self) -> None:
        timers, self.timers = self.timers, {}
        for timer in timers.values():
            timer.cancel()

    # -- watches -----------------------------------------------------------------------------------

    def monitor(self, target: Cell) -> None:
        with target.guard:
            notice = target.terminated.load()
            if notice is None:
                target.watchers[self] = None
        if notice is not None:
            self.mailbox.put_system(Notice(notice))
            return
        self.watching[target] = None

    def demonitor(self, target: Cell) -> None:
        with target.guard:
            target.watchers.pop(self, None)
        self.watching.pop(target, None)

    def link(self, target: Cell) -> None:
        if target is self:
            raise ValueError(f"actor {self.name!r} cannot link to itself")
        first, second = sorted((self, target), key=id)  # two guards: a fixed order
        with first.guard, second.guard:
            notice = target.terminated.load()
            if notice is None and self.state != "stopped":
                target.links[self] = None
                self.links[target] = None
        if notice is not None and notice.failed:
            self.linked_failed(notice)

    def unlink(self, target: Cell) -> None:
        first, second = sorted((self, target), key=id)
        with first.guard, second.guard:
            target.links.pop(self, None)
            self.links.pop(target, None)

    # -- introspection -----------------------------------------------------------------------------

    def snapshot(self) -> ActorSnapshot:
        stats = self.mailbox.statistics()
        return ActorSnapshot(
            name=self.name,
            actor_type=self.actor_type,
            state=self.state,
            mailbox_depth=stats.depth,
            mailbox_capacity=stats.capacity,
            overflow=stats.overflow,
            handled=self.handled,
            failures=self.failures,
            restarts=self.restarts,
            dead_letters=self.dead_letters + stats.dropped + self.mailbox.lost,
            children=tuple(child.snapshot() for child in self.children),
        )


def raise_answer(cell: Cell, value: tuple[str, Any], message: Any) -> Any:
    """Turn the answer to an ask of ``message`` into its result or its exception."""
    kind, payload = value
    if kind is REPLY:
        if payload.__class__ is ErrorReply:
            raise payload.error
        return payload
    if kind is RAISED:
        raise payload
    if kind is STOPPED:
        raise ActorStopped(cell.name)
    assert kind is DROPPED_ASK, kind
    raise MessageDropped(cell.name, message, payload)
