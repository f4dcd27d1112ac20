"""``ActorSystem``: where actors live, structured (rule 17 of ``concurrency-rules.md``).

Specification (``docs/actors.md`` is the user guide):

- ``async with ActorSystem() as system:`` owns one task group; every actor, and every timer, is a
  task in it. ``await system.spawn(factory, name=..., mailbox=..., shutdown=...)`` starts an
  actor and returns its ``ActorRef`` once its ``on_start`` has returned.
- Leaving the block normally stops every top-level actor gracefully, one at a time, in reverse
  start order; each stops its own children first. An actor that is not stopped within its
  ``shutdown`` timeout (on the system's clock; default 5 s; ``None`` waits as long as it takes,
  ``0`` kills at once) is killed. Leaving the block with an exception (or cancelled) kills every
  actor instead, and the exception comes out as it was raised (not wrapped in an exception
  group). Either way no task outlives the block, and then spawning raises RuntimeError.
- Names are unique among running actors: ``spawn(name=...)`` with a name in use raises
  ``ActorNameTaken``; the name is released when its actor stops (before its ``Terminated`` notice
  goes out, so a monitor may reuse it). ``lookup(name)`` finds a running actor by name.
- Dead letters: every message that could not be delivered or whose handler failed, with the
  reason, is published on a broadcast; ``system.dead_letters()`` subscribes to it (the ring keeps
  ``dead_letter_capacity`` letters for a slow subscriber, which then gets ``fearless.Lagged``
  saying how many it missed; publishing never waits). Subscriptions end (``EndOfStream``) when
  the system closes; a dead letter after that (a tell through a ref kept past the block) is
  logged as a warning on ``fearless.actors``.
- ``snapshot()``: the tree of running actors, with their state and counters.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, final

import anyio
from anyio.abc import TaskGroup

from .._channels._broadcast import BroadcastSender, Subscription, broadcast
from .._channels._channel import DEFAULT_YIELD_EVERY
from .._exceptions import ActorNameTaken, SendClosedError
from ._actor import DEFAULT, DEFAULT_SHUTDOWN, Actor, _Default
from ._cell import Cell, log
from ._clock import Clock, LoopClock
from ._mailbox import Mailbox
from ._messages import DeadLetter, SystemSnapshot
from ._ref import ActorRef
from ._supervisor import Backoff, ChildSpec, Directive, RestartType, Supervisor

__all__ = ["ActorSystem"]

M = TypeVar("M")


def _only(group: BaseExceptionGroup[Any], error: BaseException, also: BaseException | None) -> bool:
    """Whether ``group`` holds ``error`` and otherwise only ``also`` and cancellations."""
    cancelled = anyio.get_cancelled_exc_class()
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return error in leaves and all(
        leaf is error or leaf is also or isinstance(leaf, cancelled) for leaf in leaves
    )


def _check_shutdown(shutdown: object) -> float | None:
    if shutdown is None:
        return None
    if isinstance(shutdown, bool) or not isinstance(shutdown, int | float) or not shutdown >= 0:
        raise ValueError(f"shutdown must be None or a number of seconds >= 0, got {shutdown!r}")
    return float(shutdown)


@final
class ActorSystem:
    """A home for actors; see the module docstring. Use it as ``async with ActorSystem() as s``."""

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
    ) -> None:
        """``mailbox`` is the default for ``spawn``; ``clock`` keeps time for timers, shutdown
        timeouts, restart intensity and backoff (the event loop's clock by default;
        ``fearless.testing.FakeClock`` in tests); ``yield_every`` is how many messages an actor
        handles before it yields once; ``max_restarts`` and ``within`` are the root supervisor's
        restart intensity."""
        self._root_factory = lambda: Supervisor._root(max_restarts, within)
        if mailbox is not None and not isinstance(mailbox, Mailbox):
            raise TypeError(f"mailbox must be a fearless.Mailbox, got {mailbox!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must have now() and sleep_until(), got {clock!r}")
        if type(yield_every) is not int or yield_every < 1:
            raise ValueError(f"yield_every must be a positive int, got {yield_every!r}")
        self.name = name
        self.default_mailbox = mailbox or Mailbox()
        self.clock: Clock = clock or LoopClock()
        self.yield_every = yield_every
        self._dead_tx: BroadcastSender[DeadLetter]
        self._dead_tx, first = broadcast[DeadLetter](dead_letter_capacity, on_lag="error")
        first.close()
        self._tg: TaskGroup | None = None
        self._state = "new"  # new -> open -> closing -> closed
        self._names: dict[str, Cell] = {}
        self._root: Cell | None = None  # the root supervisor: every top-level actor's parent
        self._root_failure: BaseException | None = None
        self._numbers = itertools.count(1)
        self._late_letters = 0  # dead letters after the system closed (logged, not published)

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name!r} {self._state}>"

    async def __aenter__(self) -> ActorSystem:
        if self._state != "new":
            raise RuntimeError("an ActorSystem can be entered only once")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._state = "open"
        root = self._root = self._new_cell(None, self._root_factory, None, Mailbox(math.inf), None)
        root.name = "/"
        error = await root.start_incarnation(None)
        assert error is None, error
        tg.start_soon(self._watch_root, root)
        return self

    async def _watch_root(self, root: Cell) -> None:
        """The root supervisor failed (it gave up): that ends the block, with its error."""
        notice = await root.wait_stopped()
        if notice.reason == "failed":
            assert notice.error is not None
            self._root_failure = notice.error
            if self._state == "open":
                raise notice.error  # cancels the block's body; __aexit__ raises it

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
            if exc is None:
                try:  # the root stops its children in reverse start order, by their shutdowns
                    assert self._root is not None
                    await self._stop_cell(self._root)
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
                # Actors never raise into the task group (only the root's watch does, when the
                # root supervisor gives up), so a group holding just the exception in flight, or
                # just the root's failure, is anyio wrapping it: raise it as it was, so that
                # `except KeyError` works.
                failure = self._root_failure
                ours = failure is not None and _only(group, failure, exc)
                if not ours and (exc is None or group.exceptions != (exc,)):
                    raise
                handled = False  # the root's failure is raised below, out of this except
            failure = self._root_failure
            if failure is not None and failure is not exc:
                # The root gave up while the body was already leaving with an exception of its
                # own (often a consequence, an ask to an actor that has ended): the root's
                # failure is what the block raises, the body's exception its context.
                if exc is not None and failure.__context__ is None:
                    failure.__context__ = exc
                raise failure
            if exc is not None and exc is not original and not handled:
                raise exc  # the cancellation that interrupted the graceful stop
            return handled
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
        """Start a top-level actor, a child of the system's root supervisor (one_for_one), and
        return its ref once its ``on_start`` has returned.

        ``factory`` makes the instance (a class works; it is called again on each restart).
        ``name``: unique among running actors (``ActorNameTaken`` otherwise); without one, it is
        named after its type and a number (``"Counter#7"``), not registered for ``lookup``.
        ``mailbox``: capacity and overflow policy (default: the system's). ``shutdown``: seconds
        to stop gracefully before being killed (``None``: no limit, ``0``: kill at once; default
        5 s, ``None`` for a supervisor). ``restart``, ``backoff``, ``decider``: as in
        ``ChildSpec`` (``"permanent"``: restarted whenever it ends; ``"temporary"``: never).

        Raises ``ActorStartError`` (the cause attached) if the factory or ``on_start`` raises; the
        actor never ran, its name is free again, and it does not count as a restart.
        Cancellation: if cancelled while the actor is starting, the actor is killed.
        """
        self._check_open()
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning an Actor, got {factory!r}")
        if mailbox is not None and not isinstance(mailbox, Mailbox):
            raise TypeError(f"mailbox must be a fearless.Mailbox, got {mailbox!r}")
        spec = ChildSpec(factory, name, restart, shutdown, mailbox, backoff, decider)
        root = self._root
        assert root is not None
        assert isinstance(root.instance, Supervisor)
        ref: ActorRef[M] = await root.instance.start_child(spec)
        return ref

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"the ActorSystem is {self._state}: it cannot spawn actors")

    def _new_cell(
        self,
        parent: Cell | None,
        factory: Callable[[], Actor[M]],
        name: str | None,
        mailbox: Mailbox | None,
        shutdown: float | _Default | None,
    ) -> Cell:
        """A new actor's runtime, named (registered if named) and in its parent's children."""
        self._check_open()
        if shutdown is not DEFAULT:
            shutdown = _check_shutdown(shutdown)
        if name is not None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"name must be a non-empty str, got {name!r}")
            if name in self._names:
                raise ActorNameTaken(name)
        registered = name is not None
        if name is None:  # "#7", completed by the runtime with the type it builds: "Counter#7"
            name = f"#{next(self._numbers)}"
        cell = Cell(
            self, parent, factory, name, registered, mailbox or self.default_mailbox, shutdown
        )
        if registered:
            self._names[name] = cell
        if parent is not None:
            parent.children.append(cell)
        return cell

    async def _spawn(
        self,
        parent: Cell,
        factory: Callable[[], Actor[M]],
        name: str | None,
        mailbox: Mailbox | None,
        shutdown: float | _Default | None,
    ) -> ActorRef[M]:
        """A child of a plain actor (not supervised: it ends when it fails)."""
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning an Actor, got {factory!r}")
        if mailbox is not None and not isinstance(mailbox, Mailbox):
            raise TypeError(f"mailbox must be a fearless.Mailbox, got {mailbox!r}")
        cell = self._new_cell(parent, factory, name, mailbox, shutdown)
        error = await cell.start_incarnation(None)
        if error is not None:
            raise error
        return cell.ref

    def _forget(self, cell: Cell) -> None:
        """An actor has stopped: release its name and take it out of the tree."""
        if cell.registered and self._names.get(cell.name) is cell:
            del self._names[cell.name]
        if cell.parent is not None:
            try:
                cell.parent.children.remove(cell)
            except ValueError:  # pragma: no cover - forgotten once only
                pass

    async def _stop_cell(self, cell: Cell, *, restart: bool = False) -> None:
        """Stop one actor by its shutdown timeout: ask, then kill when the time is up.

        ``restart``: a supervisor stops it to restart it (a one_for_all or rest_for_one
        strategy): the stop message goes to the front of its mailbox, whose other messages stay
        for the next instance, and the actor does not end."""
        if cell.state == "stopped":
            return
        if cell.terminating == "final":  # stopped by hand already: that stands
            restart = False
        cell.terminating = "restart" if restart else "final"
        if cell.state == "restarting":  # between instances (a supervisor's backoff)
            if not restart:
                cell.finalize(*cell.last_end)  # it ends as its last instance did
            return
        ended = cell.ended.load()
        cell.request_stop(urgent=restart)
        timeout = cell.shutdown
        if isinstance(timeout, _Default):  # never built: no type to ask
            timeout = DEFAULT_SHUTDOWN
        if timeout == 0:
            cell.kill(shutdown=True)
        elif timeout is not None:
            clock = self.clock
            deadline = clock.now() + timeout
            async with anyio.create_task_group() as tg:

                async def kill_when_due() -> None:
                    await clock.sleep_until(deadline)
                    cell.kill(shutdown=True)

                tg.start_soon(kill_when_due)
                await cell.ended.wait_until(lambda count: count > ended)
                tg.cancel_scope.cancel()
        await cell.ended.wait_until(lambda count: count > ended)  # that instance has ended

    def lookup(self, name: str) -> ActorRef[Any] | None:
        """The running actor called ``name``, or ``None``."""
        cell = self._names.get(name)
        return None if cell is None else cell.ref

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
            actors=() if root is None else tuple(cell.snapshot() for cell in root.children),
            dead_letters=self.dead_letter_count,
        )
