"""The runtime of one actor: its task, the loop that serves its mailbox, and its lifecycle.

Specification (``docs/actors.md`` is the user guide):

Lifecycle
    ``starting`` (factory, then ``on_start``) -> ``running`` (one message at a time) ->
    ``stopping`` -> ``stopped``. ``spawn`` returns once ``on_start`` has returned; if the factory
    or ``on_start`` fails, ``spawn`` raises ``ActorStartError`` (the cause attached) and the actor
    never ran. A supervised actor whose instance ended waits, ``restarting``, for its supervisor
    to start the next instance (or to end it).
Failures
    An ``Exception``, a cancellation that is not the actor's own (on asyncio, a future cancelled
    from elsewhere), or any other ``BaseException`` raised by the actor's code fails its instance.
    ``KeyboardInterrupt`` and ``SystemExit`` are not the actor's to handle: they fail it and stop
    the whole system, and the ``async with ActorSystem()`` block raises them as they were.
Stopping
    Graceful (``stop()``): a stop message joins the back of the mailbox; messages queued before it
    are handled, and those after it go to dead letters. Then, in the actor's task: its timers are
    cancelled, its children are stopped (reverse start order, each by its shutdown timeout), and
    ``on_stop`` runs. Killed (``kill()``): the actor's task is cancelled now, wherever it is; the
    message being handled, if any, goes to dead letters (``KILLED``); children are killed;
    ``on_stop`` does not run. Failed: the message goes to dead letters with the exception (an
    asker gets the exception), then the actor winds down as for a graceful stop. Whatever the
    route, the mailbox then closes (what is left goes to dead letters, asks get ``ActorStopped``),
    the name is released, and ``Terminated`` goes to every monitor; a failure (or a kill) also
    fails every linked actor.
Scheduling
    The loop takes one message at a time and yields to the scheduler at least once every
    ``yield_every`` messages (a handler that never awaits cannot starve the event loop); a yield
    is also where a kill lands between messages.

The runtime's parts live beside it: asks in ``_ask``, timers in ``_timers``, death watch in
``_watch``, names in ``_registry``, and everything a supervisor decides in ``_supervision`` (the
runtime holds a :class:`~._supervision.Child` link when it is supervised, and asks it). The
methods without a leading underscore are the interface that supervisors, the system and the test
kit use.

Everything here runs on the event loop thread of the actor's system, except what a mailbox and
an ``AtomicCell`` make safe from any thread: enqueueing (``tell``, ``ask_blocking``, ``stop``),
``kill`` (which hops onto the loop) and waiting for the end (``wait_stopped``).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import anyio
from anyio.abc import TaskStatus

from .. import _backend
from .._cells._atomic import AtomicInt
from .._exceptions import ActorStartError, ActorStopped, HandlerFailed, LinkedActorFailed
from .._parking import CLOSED, EMPTY, wake_all
from ._actor import DEFAULT, DEFAULT_SHUTDOWN, Actor, _Default
from ._ask import DROPPED_ASK, RAISED, REPLY, STOPPED, Ask, Chain, current_runtime
from ._clock import LoopClock
from ._mailbox import DROPPED, SYSTEM_TYPES, Evicted, Mailbox, MailboxQueue
from ._mailbox import SystemMessage as SystemMessage
from ._messages import ActorSnapshot, ActorState, DeadLetter, DeadLetterReason, ExitReason
from ._messages import Terminated as Terminated
from ._timers import Timers
from ._watch import DeathWatch, Notice

if TYPE_CHECKING:
    from ._context import ActorContext
    from ._ref import ActorRef
    from ._supervision import Child
    from ._system import ActorSystem

__all__ = ["ActorRuntime", "log"]

log: Final = logging.getLogger("fearless.actors")

A = TypeVar("A", bound=Actor[Any])

Terminating = Literal["final", "restart"]


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


class _Nothing:
    __slots__ = ()


NOTHING: Final = _Nothing()

# What _serve does not hand to handle: these, and every runtime message class (SYSTEM_TYPES). One
# set for every actor: a set per actor would cost ~470 B.
_SPECIAL: Final[frozenset[type]] = frozenset({Ask, type(EMPTY)})
_special: frozenset[type] = _SPECIAL | SYSTEM_TYPES


def _special_types() -> frozenset[type]:
    """Every class ``_serve`` does not hand to ``handle`` (remade if a runtime message class was
    defined since)."""
    global _special
    if len(_special) != len(_SPECIAL) + len(SYSTEM_TYPES):
        _special = _SPECIAL | SYSTEM_TYPES
    return _special


_checked: set[type] = set()  # actor classes whose handle was found to be an async def


def _nothing_to_undo(_: object) -> bool:
    return True  # the actor is woken without a message (it takes one itself): nothing to give back


class ActorRuntime:
    """One actor's runtime, from spawn to its last notice (see the module docstring). It lives
    as long as the actor: a restart replaces the instance, not the runtime, so the ref, the name
    and the mailbox carry over."""

    __slots__ = (
        "_context",
        "_ended_waited",
        "actor_type",
        "chain",
        "child",
        "children",
        "current",
        "dead_letters",
        "ended",
        "exit_error",
        "factory",
        "failures",
        "handled",
        "incarnation",
        "instance",
        "kill_requested",
        "last_end",
        "mailbox",
        "name",
        "parent",
        "ref",
        "registered",
        "restarts",
        "scope",
        "shutdown",
        "shutdown_kill",
        "started",
        "state",
        "system",
        "task_id",
        "terminating",
        "timers",
        "traps_links",
        "watch",
    )

    def __init__(
        self,
        system: ActorSystem,
        parent: ActorRuntime | None,
        factory: Callable[[], Actor[Any]],
        name: str,
        registered: bool,
        mailbox: Mailbox,
        shutdown: float | _Default | None,
    ) -> None:
        from ._ref import ActorRef  # the ref and the runtime refer to each other

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
        self.watch = DeathWatch(self)
        self.children: dict[ActorRuntime, None] | None = None  # in start order; made on first
        self.timers: Timers | None = None  # made on the first timer
        self.traps_links = False
        self._context: ActorContext[Any] | None = None
        if system._thread is None:  # the loop every actor of the system runs on
            system._bind_loop()
        self.scope: anyio.CancelScope | None = None
        self.kill_requested = False
        self.shutdown_kill = False  # the kill came from a parent's or the system's shutdown
        self.exit_error: BaseException | None = None  # why a kill is a failure (a link)
        self.task_id = -1
        self.current: Any = NOTHING  # the message being handled
        # The asks waiting on the message being handled (directly or through a chain of asks),
        # for deadlock detection.
        self.chain: Chain = ()
        self.handled = 0
        self.failures = 0
        self.restarts = 0
        self.dead_letters = 0  # counted by the actor's own task (the mailbox counts its drops)
        # Supervision: the link to its supervisor when it has one (``_supervision.Child``),
        # which decides what follows the end of an instance.
        self.child: Child | None = None
        self.incarnation = 0  # instances started so far
        self.terminating: Terminating | None = None  # how it is being stopped, if it is
        # Instances that have ended; a parent stopping it waits on ``_ended_waited``, made by the
        # first that waits (all on the system's loop: no other thread touches these).
        self.ended = 0
        self._ended_waited: AtomicInt | None = None
        self.last_end: tuple[ExitReason, BaseException | None] = ("stopped", None)
        self.started: anyio.Event | None = None  # made by a get-or-spawn waiting for the start

    def __repr__(self) -> str:
        return f"<actor {self.name!r} {self.state}>"

    def is_running(self) -> bool:
        """Started, and not ending: running, or between instances (its supervisor restarts it)."""
        return self.state in ("running", "restarting")

    @property
    def context(self) -> ActorContext[Any]:
        context = self._context
        if context is None:
            from ._context import ActorContext

            context = self._context = ActorContext._create(self)
        return context

    # -- the task ----------------------------------------------------------------------------------

    async def start_instance(
        self, restarting: BaseException | None, *, restart: bool = False
    ) -> Exception | None:
        """Start a new instance in a new task of the system's task group, and return once its
        ``on_start`` (or ``on_restart``) has returned: ``None``, or the start's error:
        ``ActorStartError``, or ``ActorStopped`` if it was killed while starting (a supervised
        actor then waits, ``"restarting"``, for its supervisor's next decision).
        ``restart``: it replaces one that ended (counted in ``restarts``); ``restarting``: the
        failure that ended it."""
        if restart:
            self.restarts += 1
        error: Exception | None = await self.system._task_group().start(self._run, restarting)
        return error

    async def _run(
        self,
        restarting: BaseException | None = None,
        *,
        task_status: TaskStatus[Exception | None],
    ) -> None:
        """One instance's life, in its own task: build and start it, serve the mailbox, wind it
        down. Then the end: the actor's end (close the mailbox, release the name, notify), or,
        for a supervised actor, whatever its supervisor decides. Never raises an exception of
        the actor's own: failures are reported (dead letters, ``Terminated``, the log, the
        supervisor), not propagated into the system's task group."""
        self.task_id = anyio.get_current_task().id
        current_runtime.set(self)
        self.incarnation += 1
        if self.child is not None:
            self.child.directive = "restart"
        self.exit_error = None  # (a link failure is about the instance it killed)
        self.state = "starting"
        started = False
        start_error: ActorStartError | None = None
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
                    instance = self.adopt(self.factory())
                    if restarting is None:
                        await instance.on_start()
                    else:
                        await instance.on_restart(restarting)
                except BaseException as exc:
                    if not self._is_failure(exc):
                        raise
                    reason, error = "failed", exc
                    start_error = ActorStartError(self.name, exc)
                    start_error.__cause__ = exc
                    final = self.child is None  # the supervisor decides (it sees spawn fail)
                if start_error is None:
                    assert instance is not None
                    self.state = "running"
                    started = True
                    self._set_started()
                    task_status.started(None)
                    error = await self._serve(instance)
                    if error is not None:
                        reason = "failed"
                    final = self._end_is_final(reason)
                    if final:
                        self._close_mailbox(None)  # nothing more is accepted while it winds down
                    await self._wind_down(instance)
            if scope.cancelled_caught and reason == "stopped":
                reason, error = self._kill_reason()
                final = self._end_is_final(reason)
        except BaseException as exc:  # cancelled from outside (the system is going down), or worse
            final = True
            if not isinstance(exc, KeyboardInterrupt | SystemExit):
                if reason == "stopped":
                    reason, error = "shutdown", None
                raise
            # Raised outside a hook's guard (a decider, or a Ctrl-C that trio delivered into the
            # runtime's own code): it stops the whole system, whose block raises it, unwrapped.
            # Not re-raised into the task group, which would wrap it (and asyncio would stop its
            # loop with it).
            self.system._fatal(exc)
            reason, error = "failed", exc
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
            child = self.child
            if final:
                self._finish(reason, error)
                if started and child is not None:
                    child.report(reason, error, final=True)  # the supervisor forgets it
            else:
                if self.timers is not None:
                    self.timers.cancel_all()
                self.last_end = (reason, error)  # the actor's end, if no instance follows
                self._drop_current(error)  # killed in the middle of it (a link, a shutdown)
                self.state = "restarting"
                if self.incarnation > 1:
                    # A restart that failed: the actor lives on, between instances, so a
                    # get-or-spawn waiting for this start has its answer. (A first start that
                    # failed is settled only when its supervisor ends it.)
                    self._set_started()
                if started and child is not None and self.terminating is None:
                    child.report(reason, error)
            self.ended += 1  # (after _finish: a final end is complete when seen)
            if self._ended_waited is not None:
                self._ended_waited.store(self.ended)
            if not started:  # spawn raises only now: the children are gone, the name is free
                task_status.started(start_error or ActorStopped(self.name))

    def _set_started(self) -> None:
        """The start is settled, running or ended: wake a get-or-spawn waiting for it."""
        event = self.started
        if event is not None:
            self.started = None
            event.set()

    def _end_is_final(self, reason: ExitReason) -> bool:
        """Whether this instance's end is the actor's end, or its supervisor decides."""
        if self.child is None:
            return True
        if self.terminating == "restart":  # its supervisor stopped it, to start it again
            return False
        return self.terminating == "final" or reason == "shutdown"

    def _is_failure(self, exc: BaseException) -> bool:
        """In ``except BaseException`` around the actor's code: whether ``exc`` fails the
        instance (``False``: it is the task's own cancellation, to be re-raised).

        ``KeyboardInterrupt`` and ``SystemExit`` fail it too, and stop the whole system."""
        if isinstance(exc, Exception):
            return True
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            self.system._fatal(exc)
            return True
        # A stray cancellation, or another BaseException, is the actor's failure.
        cancelled = anyio.get_cancelled_exc_class()
        return not (isinstance(exc, cancelled) and _backend.is_own_cancellation(exc))

    def _kill_reason(self) -> tuple[ExitReason, BaseException | None]:
        if self.exit_error is not None:
            return "failed", self.exit_error
        return ("shutdown" if self.shutdown_kill else "killed"), None

    def adopt(self, instance: A) -> A:
        """Check what the factory made and bind it to this runtime."""
        if not isinstance(instance, Actor):
            raise TypeError(
                f"the factory of actor {self.name!r} returned {instance!r}, not an Actor"
            )
        cls = type(instance)
        if cls not in _checked or "handle" in getattr(instance, "__dict__", ()):
            if not inspect.iscoroutinefunction(instance.handle):
                raise TypeError(f"{cls.__name__}.handle must be an async def")
            if "handle" not in getattr(instance, "__dict__", ()):
                _checked.add(cls)  # a class's own handle is checked once
        instance._fearless_runtime = self
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
        special = _special_types()
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
                except BaseException as exc:
                    if not self._is_failure(exc):
                        raise
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
                except BaseException as exc:
                    if not self._is_failure(exc):
                        raise
                    self.current = NOTHING
                    self.chain = ()
                    self.dead_letter(item.message, DeadLetterReason.HANDLER_FAILED, exc)
                    item.answer(
                        RAISED, exc if isinstance(exc, Exception) else HandlerFailed(self.name, exc)
                    )
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
            else:
                try:
                    if cls is Notice:
                        await instance.on_terminated(item.notice)
                    else:  # the runtime's own business: a supervisor's children
                        await instance._runtime_message(item)
                except BaseException as exc:
                    if not self._is_failure(exc):
                        raise
                    if cls is Notice:  # the user's handler of a notice: as for a message
                        self.dead_letter(item.notice, DeadLetterReason.HANDLER_FAILED, exc)
                        if self._resumes(exc):
                            continue
                    return exc

    def _resumes(self, error: BaseException) -> bool:
        """Whether the supervisor's decider says ``"resume"`` for ``error`` (keep the instance;
        the message is in dead letters already)."""
        child = self.child
        return child is not None and child.decide(error) == "resume"

    async def _wind_down(self, instance: Actor[Any]) -> None:
        """After a graceful stop or a failure: timers, children (reverse start order), on_stop."""
        self.state = "stopping"
        if self.timers is not None:
            self.timers.cancel_all()
        if self.children:
            children = list(reversed(self.children))
            if getattr(instance, "concurrent_shutdown", False):  # a supervisor's dynamic pool
                async with anyio.create_task_group() as tg:
                    for child in children:
                        tg.start_soon(child.stop_and_wait)
            else:
                for child in children:
                    await child.stop_and_wait()
        try:
            await instance.on_stop()
        except BaseException as exc:
            if not self._is_failure(exc):
                raise
            log.exception("on_stop of actor %r raised", self.name, exc_info=exc)

    def _close_mailbox(self, error: BaseException | None) -> None:
        """Close the mailbox and account for what it held: dead letters, and ``ActorStopped`` for
        asks. Idempotent: the second call finds it empty."""
        items, senders = self.mailbox.close()
        wake_all(senders)
        self._drop_current(error)
        for item in items:
            if not isinstance(item, SystemMessage):
                self._undelivered(item, DeadLetterReason.ACTOR_STOPPED, None)

    def _finish(
        self, reason: ExitReason, error: BaseException | None, *, logged: bool = False
    ) -> None:
        """The end, however it came (its children have stopped): close the mailbox, account for
        every message, release the name, and tell the watchers and the links. Synchronous: it
        runs even under cancellation."""
        self.state = "stopping"
        if self.timers is not None:
            self.timers.cancel_all()
        self._close_mailbox(error)
        self.system._forget(self)
        self.state = "stopped"
        self._set_started()  # (a get-or-spawn waiting for a start that failed: it ended)
        self.watch.publish(Terminated(self.ref, reason, error))
        if reason == "failed" and not logged:
            log.error("actor %r failed", self.name, exc_info=error)

    def finalize(
        self, reason: ExitReason, error: BaseException | None, *, logged: bool = False
    ) -> None:
        """End an actor whose instance has already ended (its supervisor's call; ``logged``: the
        supervisor has logged the failure already)."""
        if self.state != "stopped":
            self._finish(reason, error, logged=logged)

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

    async def _kill_children(self) -> None:
        """Kill the children still running and wait until each has finished."""
        children = list(reversed(self.children or ()))
        for child in children:
            child.terminating = "final"
            if child.state == "restarting":  # between instances: it ends as its last one did
                child.finalize(*child.last_end)
            else:
                child.kill(shutdown=True)
        for child in children:
            await child.wait_stopped()

    # -- stopping and killing ----------------------------------------------------------------------

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
        child = self.child
        if child is None:  # pragma: no cover - only a supervised actor waits between instances
            return
        child.end_between_instances(reason)

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
        system = self.system
        if threading.get_ident() == system._thread:
            self._cancel()
        else:
            try:
                system._schedule(self._cancel)
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

    async def stop_and_wait(self, *, restart: bool = False) -> None:
        """Stop this actor by its shutdown timeout and wait until its instance has ended: a stop
        message, then a kill when the time is up (``0``: a kill at once, with no ``on_stop``).

        ``restart``: its supervisor stops it to start it again (a one_for_all or rest_for_one
        strategy): the stop message goes to the front of its mailbox, whose other messages stay
        for the next instance, and the actor does not end."""
        if self.state == "stopped":
            return
        if self.terminating == "final":  # stopped by hand already: that stands
            restart = False
        self.terminating = "restart" if restart else "final"
        if self.state == "restarting":  # between instances (a supervisor's backoff)
            if not restart:
                self.finalize(*self.last_end)  # it ends as its last instance did
            return
        ended = self.ended

        timeout = self.shutdown
        if isinstance(timeout, _Default):  # never built: no type to ask
            timeout = DEFAULT_SHUTDOWN
        if timeout == 0:
            self.kill(shutdown=True)  # no stop message: it would race the kill, and could win
        else:
            self.request_stop(urgent=restart)
            if timeout is not None:
                clock = self.system.clock
                if type(clock) is LoopClock:  # the loop's own timeout: no task needed
                    with anyio.move_on_after(timeout):
                        await self.instance_ended(ended)
                        return
                    self.kill(shutdown=True)
                else:
                    deadline = clock.now() + timeout
                    async with anyio.create_task_group() as tg:

                        async def kill_when_due() -> None:
                            await clock.sleep_until(deadline)
                            self.kill(shutdown=True)

                        tg.start_soon(kill_when_due)
                        await self.instance_ended(ended)
                        tg.cancel_scope.cancel()
        await self.instance_ended(ended)

    async def instance_ended(self, seen: int) -> None:
        """Wait until more than ``seen`` instances have ended."""
        if self.ended > seen:
            return
        waited = self._ended_waited
        if waited is None:
            waited = self._ended_waited = AtomicInt(self.ended)
        await waited.wait_until(lambda count: count > seen)

    async def wait_stopped(self) -> Terminated:
        return await self.watch.wait()

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
        self.system._publish(DeadLetter(lost, self.name, reason))

    # -- what an instance asks of its runtime (through its ActorContext) ---------------------------

    async def spawn_child(
        self,
        factory: Callable[[], Actor[Any]],
        name: str | None,
        mailbox: Mailbox | None,
        shutdown: float | _Default | None,
    ) -> ActorRef[Any]:
        if self.state in ("stopping", "stopped"):
            raise RuntimeError(f"actor {self.name!r} is stopping: it cannot spawn children")
        runtime = self.system._new_runtime(self, factory, name, mailbox, shutdown)
        error = await runtime.start_instance(None)
        if error is not None:
            raise error
        return runtime.ref

    def add_child(self, child: ActorRuntime) -> None:
        if self.children is None:
            self.children = {}
        self.children[child] = None

    def start_timer(
        self, delay: float, message: Any, key: Hashable | None, repeat: bool, *, system: bool
    ) -> Hashable:
        if self.state in ("stopping", "stopped"):
            raise RuntimeError(f"actor {self.name!r} is stopping: it cannot start timers")
        if self.timers is None:
            self.timers = Timers(self)
        return self.timers.start(delay, message, key, repeat, system)

    def cancel_timer(self, key: Hashable) -> bool:
        return self.timers is not None and self.timers.cancel(key)

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
            children=tuple(child.snapshot() for child in self.children or ()),
        )
