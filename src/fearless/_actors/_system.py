"""``ActorSystem``: where actors live, structured (``docs/design/concurrency.md``, "Actors are
structured").

Specification (``docs/actors.md`` is the user guide):

- ``async with ActorSystem() as system:`` owns one task group; every actor, and every timer, is a
  task in it. ``await system.spawn(factory, name=..., mailbox=..., shutdown=...)`` starts an
  actor and returns its ``ActorRef`` once its ``on_start`` has returned.
- Top-level actors are children of the system's guardian (``_supervision.Guardian``): a failure
  restarts one, within a restart budget of its own (``max_restarts`` within ``within``;
  failures of different actors never add up); a normal stop (``ref.stop()``,
  ``context.stop()``) is final; one that exhausts its budget (a crash loop) is stopped, as if
  it had failed for good: an ERROR log with its name and last error, its queued messages to dead
  letters, ``Terminated`` (reason ``"failed"``) to its watchers, its name free; the system and
  every other actor go on. With ``backoff``, restarts are spaced out, and a crash loop whose
  restarts stay within the budget keeps backing off instead. ``escalate=True`` makes a budget
  exhausted the system's failure (the block raises ``RestartIntensityExceeded``).
- What an actor's code raises (the factory, a hook, ``handle``): an ``Exception``, a
  cancellation that is not the actor's own (on asyncio, awaiting a future that someone else
  cancelled) or another ``BaseException`` fails that actor only. ``KeyboardInterrupt`` or
  ``SystemExit`` raised there (or in a decider) stops the whole system (every actor is killed,
  the body cancelled) and the block raises it as it was, not in an exception group, on every
  backend. The actor's own cancellation (a kill, the system shutting down) is not a failure.
- Leaving the block normally stops every top-level actor gracefully, one at a time, in reverse
  start order; each stops its own children first. An actor that is not stopped within its
  ``shutdown`` timeout (on the system's clock; default 5 s; ``None`` waits as long as it takes,
  ``0`` kills at once) is killed. Leaving the block with an exception (or cancelled) kills every
  actor instead, and the exception comes out as it was raised (not wrapped in an exception
  group; an exception group the body raised comes out as that group). Either way no task
  outlives the block, and then spawning raises RuntimeError.
- Names are unique among running actors: ``spawn(name=...)`` with a name in use raises
  ``ActorNameTaken``; the name is released when its actor stops (before its ``Terminated`` notice
  goes out, so a monitor may reuse it). ``lookup(name)`` finds a running actor by name;
  ``get_or_spawn`` finds it or starts it, in one call.
- Dead letters: every message that could not be delivered or whose handler failed, with the
  reason, is published on a broadcast; ``system.dead_letters()`` subscribes to it (the ring keeps
  ``dead_letter_capacity`` letters for a slow subscriber, which then gets ``fearless.Lagged``
  saying how many it missed; publishing never waits). Subscriptions end (``EndOfStream``) when
  the system closes; a dead letter after that (a tell through a ref kept past the block) is
  logged as a warning on ``fearless.actors``.
- ``snapshot()``: the tree of running actors, with their state and counters.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, final

import anyio
from anyio.abc import TaskGroup

from .. import _backend
from .._channels._base import DEFAULT_YIELD_EVERY
from .._channels._broadcast import BroadcastSender, Subscription, broadcast
from .._exceptions import ActorNameTaken, SendClosedError
from ._actor import DEFAULT, Actor, _Default
from ._clock import Clock, LoopClock
from ._mailbox import Mailbox
from ._messages import DeadLetter, SystemSnapshot
from ._ref import ActorRef
from ._registry import Registry
from ._runtime import ActorRuntime, log
from ._supervision import Backoff, ChildSpec, Directive, Guardian, RestartType

__all__ = ["ActorSystem"]

M = TypeVar("M")


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return leaves


def _only(group: BaseExceptionGroup[Any], error: BaseException, also: BaseException | None) -> bool:
    """Whether ``group`` holds ``error`` (or, for a group, its leaves) and otherwise only
    ``also`` and cancellations: anyio wrapping what was raised, nothing more."""
    cancelled = anyio.get_cancelled_exc_class()
    leaves = _leaves(group)
    wanted = _leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    return all(any(leaf is w for leaf in leaves) for w in wanted) and all(
        any(leaf is w for w in wanted) or leaf is also or isinstance(leaf, cancelled)
        for leaf in leaves
    )


def _no_loop(callback: Callable[[], object]) -> object:  # pragma: no cover - bound first
    raise RuntimeError("the ActorSystem has no event loop yet")


def _check_shutdown(shutdown: object) -> float | None:
    if shutdown is None:
        return None
    if isinstance(shutdown, bool) or not isinstance(shutdown, int | float):
        raise TypeError(f"shutdown must be None or a number of seconds >= 0, got {shutdown!r}")
    if not shutdown >= 0:
        raise ValueError(f"shutdown must be None or a number of seconds >= 0, got {shutdown!r}")
    return float(shutdown)


@final
class ActorSystem:
    """A home for actors: ``async with ActorSystem() as system:`` (the specification is the
    docstring of its module, ``fearless._actors._system``).

    What ends what: an actor's failure (anything its code raises but ``KeyboardInterrupt`` and
    ``SystemExit``, a stray ``CancelledError`` included) restarts a top-level actor within a
    restart budget of its own; one over its budget is stopped (logged at ERROR) and everything
    else goes on, unless ``escalate=True`` (then the block raises ``RestartIntensityExceeded``).
    A normal stop is final. ``KeyboardInterrupt`` or ``SystemExit`` raised in any actor kills
    every actor and leaves the block as it was raised. An exception of the body kills every
    actor and leaves the block as it was raised (an exception group as that same group).
    """

    def __init__(
        self,
        *,
        name: str = "actors",
        mailbox: Mailbox | None = None,
        clock: Clock | None = None,
        dead_letter_capacity: int = 1024,
        yield_every: int = DEFAULT_YIELD_EVERY,
        max_restarts: int = 3,
        within: float = 5.0,
        escalate: bool = False,
    ) -> None:
        """``mailbox`` is the default for ``spawn``; ``clock`` keeps time for timers, shutdown
        timeouts, restart intensity and backoff (the event loop's clock by default;
        ``fearless.testing.FakeClock`` in tests); ``yield_every`` is how many messages an actor
        handles before it yields once.

        ``max_restarts`` and ``within``: the restart budget of each top-level actor, its own
        (failures of different actors never add up): a top-level actor that fails more than
        ``max_restarts`` times within ``within`` seconds is stopped, logged at ERROR, and the
        system goes on. (OTP shares one budget among a supervisor's children and ends the
        application when it runs out; Akka's user guardian restarts without limit. A budget per
        actor keeps one crash loop, or a few unrelated failures, from ending a service.)
        ``escalate=True``: it fails the whole system instead (the block raises
        ``RestartIntensityExceeded``), as an OTP application whose top supervisor gives up.
        """
        if mailbox is not None and not isinstance(mailbox, Mailbox):
            raise TypeError(f"mailbox must be a fearless.Mailbox, got {mailbox!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must have now() and sleep_until(), got {clock!r}")
        if type(yield_every) is not int:
            raise TypeError(f"yield_every must be a positive int, got {yield_every!r}")
        if yield_every < 1:
            raise ValueError(f"yield_every must be a positive int, got {yield_every!r}")
        if not isinstance(escalate, bool):
            raise TypeError(f"escalate must be a bool, got {escalate!r}")
        guardian = Guardian(max_restarts, within, escalate=escalate)  # (checks the budget)
        self._guardian = guardian
        self.name = name
        self.default_mailbox = mailbox or Mailbox()
        self.clock: Clock = clock or LoopClock()
        self.yield_every = yield_every
        self._dead_tx: BroadcastSender[DeadLetter]
        self._dead_tx, first = broadcast[DeadLetter](dead_letter_capacity, on_lag="error")
        first.close()
        self._tg: TaskGroup | None = None
        self._state = "new"  # new -> open -> closing -> closed
        self._registry = Registry()
        self._root: ActorRuntime | None = None  # the guardian's: every top-level actor's parent
        self._root_failure: BaseException | None = None
        self._fatal_error: BaseException | None = None  # KeyboardInterrupt / SystemExit
        self._late_letters = 0  # dead letters after the system closed (logged, not published)
        # The event loop its actors run on, and how to run a callback there from another thread
        # (a kill from a thread hops onto it); set when the first actor is made.
        self._thread: int | None = None
        self._schedule: Callable[[Callable[[], object]], object] = _no_loop

    def _bind_loop(self) -> None:
        self._thread = threading.get_ident()
        self._schedule = _backend.current().scheduler()

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name!r} {self._state}>"

    async def __aenter__(self) -> ActorSystem:
        if self._state != "new":
            raise RuntimeError("an ActorSystem can be entered only once")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._state = "open"
        guardian = self._guardian
        root = self._root = self._new_runtime(None, lambda: guardian, None, Mailbox(math.inf), None)
        root.name = "/"
        error = await root.start_instance(None)
        assert error is None, error
        tg.start_soon(self._watch_root, root)
        return self

    async def _watch_root(self, root: ActorRuntime) -> None:
        """The guardian failed (``escalate=True`` and an actor gave up): that ends the block,
        with its error."""
        notice = await root.wait_stopped()
        if notice.reason == "failed" and self._fatal_error is None:
            assert notice.error is not None
            self._root_failure = notice.error
            if self._state == "open":
                raise notice.error  # cancels the block's body; __aexit__ raises it

    def _fatal(self, error: BaseException) -> None:
        """An actor raised ``KeyboardInterrupt`` or ``SystemExit``: stop everything; the block
        raises it."""
        if self._fatal_error is None:
            self._fatal_error = error
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        self._state = "closing"
        original = exc
        try:
            if exc is None and self._fatal_error is None:
                try:  # the guardian stops its children in reverse start order, by shutdowns
                    assert self._root is not None
                    await self._root.stop_and_wait()
                except BaseException as stopping:  # cancelled while stopping them: kill the rest
                    exc = stopping
            tg.cancel_scope.cancel()  # kills what is left: timers, or every actor on an error
            try:
                handled = await tg.__aexit__(
                    None if exc is None else type(exc),
                    exc,
                    None if exc is None else exc.__traceback__,
                )
            except BaseExceptionGroup as group:
                # Actors never raise into the task group (only the guardian's watch does, when
                # it fails), so a group holding just the exception in flight, or just the
                # guardian's failure, is anyio wrapping it: raise it as it was, so that
                # `except KeyError` works.
                failure = self._root_failure or self._fatal_error
                ours = failure is not None and _only(group, failure, exc)
                if not ours and (exc is None or not _only(group, exc, None)):
                    raise
                handled = False  # what is raised is decided below, out of this except
            fatal = self._fatal_error
            if fatal is not None and fatal is not exc:
                if exc is not None and fatal.__context__ is None:
                    fatal.__context__ = exc
                raise fatal
            failure = self._root_failure
            if failure is not None and failure is not exc:
                # The guardian gave up while the body was already leaving with an exception of
                # its own (often a consequence, an ask to an actor that has ended): the
                # guardian's failure is what the block raises, the body's exception its context.
                if exc is not None and failure.__context__ is None:
                    failure.__context__ = exc
                raise failure
            if exc is not None and exc is not original and not handled:
                raise exc  # the cancellation that interrupted the graceful stop
            return handled  # False: the body's own exception goes on, as it was raised
        finally:
            self._close()

    def _close(self) -> None:
        self._state = "closed"
        self._dead_tx.close()  # subscriptions see the end of the stream

    def _task_group(self) -> TaskGroup:
        if self._tg is None or self._state == "closed":
            raise RuntimeError("the ActorSystem is not running (use it in 'async with')")
        return self._tg

    # -- actors ------------------------------------------------------------------------------------

    async def spawn(
        self,
        factory: Callable[[], Actor[M]],
        *,
        name: str | None = None,
        mailbox: Mailbox | None = None,
        shutdown: float | _Default | None = DEFAULT,
        restart: RestartType = "permanent",
        backoff: Backoff | None = None,
        decider: Callable[[BaseException], Directive] | None = None,
    ) -> ActorRef[M]:
        """Start a top-level actor and return its ref once its ``on_start`` has returned.

        ``factory`` makes the instance (a class works; it is called again on each restart).
        ``name``: unique among running actors (``ActorNameTaken`` otherwise); without one, it is
        named after its type and a number (``"Counter#7"``), not registered for ``lookup``.
        ``mailbox``: capacity and overflow policy (default: the system's). ``shutdown``: seconds
        to stop gracefully before being killed (``None``: no limit, ``0``: kill at once; default
        5 s, ``None`` for a supervisor).

        Supervision: the system's guardian restarts it when it fails (``"permanent"`` or
        ``"transient"``, the default being ``"permanent"``) within its own restart budget (the
        system's ``max_restarts`` within ``within``), with ``backoff`` between restarts if
        given, and ``decider`` choosing per exception (as in ``ChildSpec``); ``"temporary"``:
        never restarted. A normal stop (``ref.stop()``, ``context.stop()``) and a kill by hand
        are final. One more failure than its budget allows and it is stopped for good (see the
        class docstring); the system goes on, unless made with ``escalate=True``. A decider's
        ``"escalate"`` (or a decider that raises) fails the whole system: the block raises
        that failure.

        Raises ``ActorStartError`` (the cause attached) if the factory or ``on_start`` raises; the
        actor never ran, its name is free again, and it does not count as a restart.
        Cancellation: if cancelled while the actor is starting, the actor is killed.
        """
        self._check_open()
        spec = ChildSpec(factory, name, restart, shutdown, mailbox, backoff, decider)
        ref: ActorRef[M] = await self._guardian.start_child(spec)
        return ref

    async def get_or_spawn(
        self,
        factory: Callable[[], Actor[M]],
        *,
        name: str,
        mailbox: Mailbox | None = None,
        shutdown: float | _Default | None = DEFAULT,
        restart: RestartType = "permanent",
        backoff: Backoff | None = None,
        decider: Callable[[BaseException], Directive] | None = None,
    ) -> ActorRef[M]:
        """The running actor called ``name``, or, if there is none, one spawned now from
        ``factory`` (arguments as :meth:`spawn`). Race-free: callers that ask for one name at
        the same time all get the same actor, started once; a caller that finds it starting
        waits for its ``on_start``. The type of the ref is the caller's word (an actor of that
        name started by other code may take other messages).

        Raises ``ActorStartError`` if it starts it and the start fails. Cancellation: a cancel
        point; cancelled while it starts the actor, the actor is killed (as :meth:`spawn`);
        cancelled while it waits for another caller's start, that start goes on.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"get_or_spawn needs a name (a non-empty str), got {name!r}")
        while True:
            self._check_open()
            runtime = self._registry.lookup(name)
            if runtime is None:
                try:
                    return await self.spawn(
                        factory,
                        name=name,
                        mailbox=mailbox,
                        shutdown=shutdown,
                        restart=restart,
                        backoff=backoff,
                        decider=decider,
                    )
                except ActorNameTaken:  # pragma: no cover - registered between the two calls
                    continue
            if runtime.state == "starting":
                if runtime.started is None:
                    runtime.started = anyio.Event()
                await runtime.started.wait()
            elif not runtime.is_running():
                # Winding down: for good (its name is free once it has ended), or to be
                # restarted (a restart is no end: then it is the actor asked for).
                await runtime.instance_ended(runtime.ended)
            if runtime.is_running():
                ref: ActorRef[M] = runtime.ref
                return ref

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"the ActorSystem is {self._state}: it cannot spawn actors")

    def _new_runtime(
        self,
        parent: ActorRuntime | None,
        factory: Callable[[], Actor[M]],
        name: str | None,
        mailbox: Mailbox | None,
        shutdown: float | _Default | None,
    ) -> ActorRuntime:
        """A new actor's runtime, named (registered if named) and in its parent's children."""
        self._check_open()
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning an Actor, got {factory!r}")
        if mailbox is not None and not isinstance(mailbox, Mailbox):
            raise TypeError(f"mailbox must be a fearless.Mailbox, got {mailbox!r}")
        if shutdown is not DEFAULT:
            shutdown = _check_shutdown(shutdown)
        name, registered = self._registry.new_name(name)
        runtime = ActorRuntime(
            self, parent, factory, name, registered, mailbox or self.default_mailbox, shutdown
        )
        self._registry.add(runtime)
        if parent is not None:
            parent.add_child(runtime)
        return runtime

    def _forget(self, runtime: ActorRuntime) -> None:
        """An actor has stopped: release its name and take it out of the tree."""
        self._registry.remove(runtime)
        parent = runtime.parent
        if parent is not None and parent.children is not None:
            parent.children.pop(runtime, None)

    def lookup(self, name: str) -> ActorRef[Any] | None:
        """The running actor called ``name``, or ``None``."""
        runtime = self._registry.lookup(name)
        return None if runtime is None else runtime.ref

    # -- dead letters and introspection ------------------------------------------------------------

    def _publish(self, letter: DeadLetter) -> None:
        try:
            self._dead_tx.send_nowait(letter)
        except SendClosedError:  # the system has closed: nobody can subscribe any more
            self._late_letters += 1
            log.warning("dead letter after %r closed: %r", self.name, letter)

    def dead_letters(self) -> Subscription[DeadLetter]:
        """Subscribe to dead letters from now on (close the subscription when done: ``with``).

        A subscription that falls more than ``dead_letter_capacity`` letters behind gets
        ``fearless.Lagged`` (how many it missed), then resumes; publishing never waits.
        """
        return self._dead_tx.subscribe()

    @property
    def dead_letter_count(self) -> int:
        """Dead letters published since the system was made."""
        return self._dead_tx.statistics().total_sent + self._late_letters

    def snapshot(self) -> SystemSnapshot:
        """The tree of running actors: state, mailbox depth, handled, failures, restarts and dead
        letters of each (read on the system's event loop thread)."""
        root = self._root
        return SystemSnapshot(
            name=self.name,
            actors=() if root is None else tuple(child.snapshot() for child in root.children or ()),
            dead_letters=self.dead_letter_count,
        )
