"""Supervision trees: Erlang/OTP's supervisor, with Akka's backoff and deciders.

Specification (``../shared/specs/supervision.md`` is the source, ``docs/supervision.md`` the
user guide; the numbers are that spec's cases):

Children
    A :class:`ChildSpec` per child: factory, name, restart type, shutdown, mailbox, optional
    backoff and decider; validated when made (errors name the field and the value). Children
    start in the order given, each once the previous one's ``on_start`` returned; if one fails
    to start, those started are stopped in reverse order and the supervisor's own start fails
    with that child's ``ActorStartError`` (14). A supervisor stops its children in reverse start
    order, each by its shutdown (15); a dynamic pool stops them all at once (16).
Restart types
    ``permanent`` (default): always restarted (9). ``transient``: restarted only after an
    abnormal end (failed or killed), not after a graceful stop (7). ``temporary``: never
    restarted, and its spec is dropped when it ends (8, 12). A child stopped through the
    supervisor (``TerminateChild``, or the supervisor stopping) is not restarted or counted (19).
Restarts
    A restart builds a new instance from the factory (``on_restart(error)`` runs instead of
    ``on_start``). The actor keeps its ref, name and mailbox: what was queued is handled by the
    new instance; the message whose handler raised is in dead letters with the exception; the old
    instance's timers are cancelled, its children stopped and its ``on_stop`` run first. A restart
    is not an end: monitors and links do not fire (Akka's semantics).
Strategies
    ``one_for_one`` (default): restart the child that ended. ``one_for_all``: stop the others in
    reverse start order, then restart all in start order (11); temporary ones are stopped, not
    restarted (12). ``rest_for_one``: stop those started after it in reverse order, then restart
    it and them in start order; the earlier ones are untouched (10). Siblings stopped for a
    restart get the stop message at the front of their mailbox, keep the rest of it, and count
    as one restart together (6). A dynamic pool (``Supervisor.pool``) is one_for_one over
    identical children added at run time (OTP's ``simple_one_for_one``).
Intensity
    At most ``max_restarts`` restarts within any ``within`` seconds (defaults 3 and 5.0), counted
    per supervisor, shared by all its children (5), on the system's monotonic clock, with no
    rounding; a restart at exactly ``now - within`` still counts (1-4). A failed restart (the
    factory or ``on_restart`` raised) counts too, and is retried (13). One more than allowed and
    the supervisor gives up: it stops its remaining children in reverse start order and fails
    with ``RestartIntensityExceeded``, which its own supervisor handles as a child failure (17);
    that is a failure even for a transient supervisor (18, where OTP differs). At the root, the
    ``ActorSystem`` block raises it.
Backoff (optional, per child; ``one_for_one`` and pools only)
    Restart delays ``min_backoff * 2**n`` capped at ``max_backoff``, times ``1 + jitter * r``
    with ``r`` uniform in [0, 1), ``n`` the restarts since the last reset; a child that stays up
    for ``reset_after`` seconds resets ``n`` to 0 (25). While a child waits, it is
    ``"restarting"``: its mailbox stays open, and the supervisor goes on handling its messages.
Decider (optional, per child)
    Maps a handler's exception to ``"restart"`` (the restart type decides), ``"resume"`` (keep the
    instance and its state; the message is in dead letters), ``"stop"`` (end it, not counted) or
    ``"escalate"`` (the supervisor fails with that exception).

Requests, by ``ask``: :class:`StartChild`, :class:`TerminateChild`, :class:`RestartChild`,
:class:`DeleteChild`, :class:`WhichChildren`. A request that cannot be carried out (restarting a
child that is running, a duplicate name) raises in the asker, never in the supervisor.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, final

from .._exceptions import ActorStartError, RestartIntensityExceeded
from ._actor import DEFAULT, Actor, _Default
from ._cell import ChildExited, ErrorReply, log
from ._mailbox import Mailbox, SystemMessage
from ._messages import ExitReason, Request

if TYPE_CHECKING:
    from ._cell import Cell
    from ._ref import ActorRef

__all__ = [
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "DeleteChild",
    "Directive",
    "RestartChild",
    "RestartType",
    "StartChild",
    "Strategy",
    "Supervisor",
    "TerminateChild",
    "WhichChildren",
]

RestartType = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
Directive = Literal["restart", "resume", "stop", "escalate"]

_RESTART_TYPES: Final = ("permanent", "transient", "temporary")
_STRATEGIES: Final = ("one_for_one", "one_for_all", "rest_for_one")


def _seconds(field_name: str, value: object, *, positive: bool = False, none: bool = False) -> None:
    if value is None and none:
        return
    ok = not isinstance(value, bool) and isinstance(value, int | float) and not math.isnan(value)
    if ok and (value > 0 if positive else value >= 0) and value != math.inf:  # type: ignore[operator]
        return
    what = "a number > 0" if positive else "a number >= 0"
    raise ValueError(f"{field_name} must be {what}{' or None' if none else ''}, got {value!r}")


@final
@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays that grow: ``min_backoff * 2**n``, capped at ``max_backoff``, with up to
    ``jitter`` of it added at random; ``n`` goes back to 0 once the child has stayed up for
    ``reset_after`` seconds (default: ``max_backoff``)."""

    min_backoff: float
    max_backoff: float
    jitter: float = 0.2
    """A fraction in [0, 1]: the delay is multiplied by ``1 + jitter * r``, ``r`` in [0, 1)."""
    reset_after: float | None = None

    def __post_init__(self) -> None:
        _seconds("Backoff.min_backoff", self.min_backoff, positive=True)
        _seconds("Backoff.max_backoff", self.max_backoff, positive=True)
        if self.max_backoff < self.min_backoff:
            raise ValueError(
                f"Backoff.max_backoff must be >= min_backoff ({self.min_backoff!r}), "
                f"got {self.max_backoff!r}"
            )
        if (
            isinstance(self.jitter, bool)
            or not isinstance(self.jitter, int | float)
            or not (0 <= self.jitter <= 1)
        ):
            raise ValueError(f"Backoff.jitter must be a number in [0, 1], got {self.jitter!r}")
        _seconds("Backoff.reset_after", self.reset_after, positive=True, none=True)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before restart number ``attempt`` (0-based) since the last reset."""
        base = min(self.min_backoff * 2.0**attempt, self.max_backoff)
        return base * (1.0 + self.jitter * rng.random())

    @property
    def reset_interval(self) -> float:
        return self.max_backoff if self.reset_after is None else self.reset_after


@final
@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child. Validated when made."""

    factory: Callable[..., Actor[Any]]
    """Makes the instance; called again for every restart (with no arguments; in a pool, with
    the ``args`` its ``StartChild`` gave)."""
    name: str | None = None
    """Unique among running actors; ``None``: named after its type and a number."""
    restart: RestartType = "permanent"
    shutdown: float | _Default | None = DEFAULT
    """Seconds to stop gracefully before being killed; ``0``: killed at once; ``None``: no limit.
    Default: 5 s, or ``None`` when the child is itself a supervisor."""
    mailbox: Mailbox | None = None
    """Default: the system's."""
    backoff: Backoff | None = None
    decider: Callable[[BaseException], Directive] | None = None

    def __post_init__(self) -> None:
        if not callable(self.factory):
            raise ValueError(f"ChildSpec.factory must be callable, got {self.factory!r}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ValueError(f"ChildSpec.name must be a non-empty str or None, got {self.name!r}")
        if self.restart not in _RESTART_TYPES:
            raise ValueError(
                f"ChildSpec.restart must be one of {', '.join(map(repr, _RESTART_TYPES))}, "
                f"got {self.restart!r}"
            )
        if self.shutdown is not DEFAULT:
            _seconds("ChildSpec.shutdown", self.shutdown, none=True)
        if self.mailbox is not None and not isinstance(self.mailbox, Mailbox):
            raise ValueError(f"ChildSpec.mailbox must be a fearless.Mailbox, got {self.mailbox!r}")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise ValueError(f"ChildSpec.backoff must be a fearless.Backoff, got {self.backoff!r}")
        if self.decider is not None and not callable(self.decider):
            raise ValueError(f"ChildSpec.decider must be callable, got {self.decider!r}")


# -- requests -------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child, as :class:`WhichChildren` reports it (in start order)."""

    name: str | None
    """Its name (``None`` for an unnamed child that is not running)."""
    ref: ActorRef[Any] | None
    """Its ref; ``None`` once it has ended (its spec is kept: ``RestartChild`` starts it)."""
    restart: RestartType
    state: str
    """``"running"``, ``"restarting"`` (between instances) or ``"ended"``; or the actor's own
    state while it starts or stops."""


@final
@dataclass(frozen=True, slots=True)
class StartChild(Request["ActorRef[Any]"]):
    """Start a child from ``spec`` (appended last); for a pool, from the pool's spec, with
    ``args`` passed to its factory. Raises ``ActorStartError`` if it fails to start (it is not
    added, and it does not count as a restart), ``ActorNameTaken`` for a name in use."""

    spec: ChildSpec | None = None
    args: tuple[Any, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class TerminateChild(Request[None]):
    """Stop a child by its shutdown, without restarting or counting it (19). Its spec is kept
    (``RestartChild`` starts it again) unless it is temporary or in a pool."""

    child: str | ActorRef[Any]


@final
@dataclass(frozen=True, slots=True)
class RestartChild(Request["ActorRef[Any]"]):
    """Start again a child that was terminated; a ``RuntimeError`` if it is running (19)."""

    child: str


@final
@dataclass(frozen=True, slots=True)
class DeleteChild(Request[None]):
    """Forget a terminated child's spec; a ``RuntimeError`` if it is running."""

    child: str


@final
@dataclass(frozen=True, slots=True)
class WhichChildren(Request[tuple[ChildInfo, ...]]):
    """The children, in start order."""


SupervisorRequest = StartChild | TerminateChild | RestartChild | DeleteChild | WhichChildren


# -- the supervisor -------------------------------------------------------------------------------


class _RestartDue(SystemMessage):
    """A backoff delay is over, or a failed restart is to be retried: start these children
    again (one, or a one_for_all / rest_for_one group, in start order)."""

    __slots__ = ("entries", "error", "token")

    def __init__(self, entries: list[_Entry], error: BaseException | None, token: object) -> None:
        self.entries = entries
        self.error = error
        self.token = token


@dataclass(eq=False)
class _Entry:
    """One child spec and the actor running it (``None`` once ended)."""

    spec: ChildSpec
    cell: Cell | None = None
    factory: Callable[[], Actor[Any]] | None = None  # a pool child's (the spec's, with its args)
    attempt: int = 0  # backoff restarts since the last reset
    started_at: float = 0.0  # the clock's time when its current instance started
    pending: object = None  # the token of the restart it waits for (backoff), if any
    key: tuple[str, int] = field(default=("restart", 0))


class Supervisor(Actor[SupervisorRequest]):
    """An actor that starts, watches and restarts its children (see the module docstring).

    ::

        top = await system.spawn(lambda: fearless.Supervisor(
            [fearless.ChildSpec(Worker, name="w1"), fearless.ChildSpec(Cache, restart="transient")],
            strategy="one_for_all", max_restarts=3, within=5.0,
        ), name="top")
    """

    default_shutdown: ClassVar[float | None] = None  # a supervisor waits for its children

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        within: float = 5.0,
    ) -> None:
        specs = list(children)
        for spec in specs:
            if not isinstance(spec, ChildSpec):
                raise ValueError(f"children must be ChildSpec objects, got {spec!r}")
        if strategy not in _STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}, got {strategy!r}"
            )
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, got {max_restarts!r}")
        _seconds("within", within, positive=True)
        names = [spec.name for spec in specs if spec.name is not None]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two children are named {name!r}")
        if strategy != "one_for_one":
            for spec in specs:
                if spec.backoff is not None:
                    raise ValueError(
                        f"backoff works under one_for_one (and pools), not {strategy}: the child "
                        f"{spec.name or spec.factory!r} has one"
                    )
        self._specs = specs
        self._strategy = strategy
        self._pool: ChildSpec | None = None
        self.max_restarts = max_restarts
        self.within = float(within)
        self._entries: list[_Entry] = []
        self._window: deque[float] = deque()  # times of the restarts counted
        self._rng = random.Random()
        self._keys = 0
        self._dynamic = False  # the system's root: any spec, and an ended child is forgotten

    @classmethod
    def pool(cls, spec: ChildSpec, *, max_restarts: int = 3, within: float = 5.0) -> Supervisor:
        """A dynamic pool of identical children, started with ``StartChild(args=...)`` (each
        ``spec.factory(*args)``), restarted one for one, stopped all at once."""
        if not isinstance(spec, ChildSpec):
            raise ValueError(f"a pool's spec must be a ChildSpec, got {spec!r}")
        if spec.name is not None:
            raise ValueError(f"a pool's children are unnamed: its spec has name {spec.name!r}")
        supervisor = cls(max_restarts=max_restarts, within=within)
        supervisor._pool = spec
        return supervisor

    @classmethod
    def _root(cls, max_restarts: int, within: float) -> Supervisor:
        """The system's root supervisor: one_for_one over whatever ``system.spawn`` starts; an
        ended child's spec is not kept (there is no ``RestartChild`` on the root)."""
        supervisor = cls(max_restarts=max_restarts, within=within)
        supervisor._dynamic = True
        return supervisor

    @property
    def concurrent_shutdown(self) -> bool:
        """A pool stops its children all at once (16); the others one by one."""
        return self._pool is not None

    # -- starting ---------------------------------------------------------------------------------

    async def on_start(self) -> None:
        for spec in self._specs:
            try:
                await self._start_new(spec, spec.factory)
            except ActorStartError:
                await self._stop_all()  # in reverse start order (14)
                raise

    async def on_restart(self, error: BaseException) -> None:
        self._entries.clear()
        self._window.clear()
        await self.on_start()

    async def _start_new(self, spec: ChildSpec, factory: Callable[[], Actor[Any]]) -> _Entry:
        cell = self._runtime().system._new_cell(
            self._runtime(), factory, spec.name, spec.mailbox, spec.shutdown
        )
        cell.supervised = True
        cell.decider = spec.decider
        self._keys += 1
        entry = _Entry(spec, cell, factory, key=("restart", self._keys))
        self._entries.append(entry)
        try:
            error = await cell.start_incarnation(None)
        except BaseException:  # cancelled while it started: it is not added
            if entry in self._entries:
                self._entries.remove(entry)
            cell.finalize("shutdown", None)
            raise
        if error is not None:
            self._entries.remove(entry)
            cell.finalize("failed", error.__cause__)
            raise error
        entry.started_at = self._now()
        return entry

    def _now(self) -> float:
        return self._runtime().system.clock.now()

    async def start_child(self, spec: ChildSpec) -> ActorRef[Any]:
        """Start a child from ``spec`` now, in the calling task (``ActorSystem.spawn`` uses it
        on the root supervisor); raises as ``StartChild`` does. Cancellation: as ``spawn`` (a
        child cancelled while it starts is killed, and not added)."""
        message = StartChild(spec)
        ref: ActorRef[Any] = await self._request(message)
        return ref

    # -- requests ---------------------------------------------------------------------------------

    async def handle(self, message: SupervisorRequest) -> Any:
        try:
            return await self._request(message)
        except (ActorStartError, RuntimeError, ValueError) as exc:
            return ErrorReply(exc)  # the asker's mistake: raised there, not here

    async def _request(self, message: SupervisorRequest) -> Any:
        match message:
            case StartChild(spec, args):
                if self._pool is not None:
                    if spec is not None:
                        raise ValueError("a pool starts children from its own spec: no spec")
                    pool = self._pool
                    entry = await self._start_new(pool, lambda: pool.factory(*args))
                else:
                    if spec is None or args:
                        raise ValueError("StartChild needs a ChildSpec (and args only in a pool)")
                    taken = [entry.spec.name for entry in self._entries]
                    if spec.name is not None and spec.name in taken and not self._dynamic:
                        raise ValueError(f"this supervisor has a child named {spec.name!r}")
                    if spec.backoff is not None and self._strategy != "one_for_one":
                        raise ValueError(f"backoff works under one_for_one, not {self._strategy}")
                    entry = await self._start_new(spec, spec.factory)
                assert entry.cell is not None
                return entry.cell.ref
            case TerminateChild(child):
                entry = self._find(child)
                if entry.cell is not None:
                    await self._runtime().system._stop_cell(entry.cell)
                    self._ended(entry, "stopped", None)
                return None
            case RestartChild(child):
                entry = self._find(child)
                if entry.cell is not None:
                    raise RuntimeError(
                        f"child {child!r} is {entry.cell.state}: terminate it before restarting it"
                    )
                assert entry.factory is not None
                index = self._entries.index(entry)
                self._entries.remove(entry)
                try:
                    new = await self._start_new(entry.spec, entry.factory)
                except BaseException:
                    self._entries.insert(index, entry)  # the spec stays (OTP's {error, _})
                    raise
                self._entries.remove(new)
                self._entries.insert(index, new)  # its place in the start order...
                self._order_children()  # ...for stopping (in reverse) and snapshots too
                assert new.cell is not None
                return new.cell.ref
            case DeleteChild(child):
                entry = self._find(child)
                if entry.cell is not None:
                    raise RuntimeError(f"child {child!r} is {entry.cell.state}: terminate it first")
                self._entries.remove(entry)
                return None
            case WhichChildren():
                return tuple(self._info(entry) for entry in self._entries)
        raise ValueError(f"a supervisor does not take {message!r}")

    def _order_children(self) -> None:
        """Put the runtime's list of children (which stopping and snapshots follow) in start
        order, the order of ``_entries``."""
        children = self._runtime().children
        ordered = [entry.cell for entry in self._entries if entry.cell in children]
        children[:] = ordered + [child for child in children if child not in ordered]

    def _find(self, child: object) -> _Entry:
        for entry in self._entries:
            cell = entry.cell
            if child == entry.spec.name or (cell is not None and child is cell.ref):
                return entry
        raise ValueError(f"no child {child!r} under supervisor {self.name!r}")

    @staticmethod
    def _info(entry: _Entry) -> ChildInfo:
        cell = entry.cell
        if cell is None:
            return ChildInfo(entry.spec.name, None, entry.spec.restart, "ended")
        return ChildInfo(cell.name, cell.ref, entry.spec.restart, cell.state)

    # -- children ending ---------------------------------------------------------------------------

    async def _runtime_message(self, message: object) -> None:
        if isinstance(message, ChildExited):
            await self._child_exited(message)
        elif isinstance(message, _RestartDue):
            await self._restart_due(message)
        else:
            await super()._runtime_message(message)

    def _entry_of(self, cell: Cell) -> _Entry | None:
        for entry in self._entries:
            if entry.cell is cell:
                return entry
        return None

    async def _child_exited(self, exited: ChildExited) -> None:
        cell = exited.cell
        entry = self._entry_of(cell)
        if entry is None or cell.incarnation != exited.incarnation:
            return  # stale: that instance was restarted (or ended) by a strategy already
        if exited.final or cell.terminating == "final":  # stopped or killed by hand (19)
            self._ended(entry, exited.reason, exited.error)
            return
        if cell.state != "restarting":
            return  # stale
        failed = exited.reason == "failed"
        if failed and exited.directive == "escalate":
            self._ended(entry, exited.reason, exited.error)
            assert exited.error is not None
            raise exited.error
        if (failed and exited.directive == "stop") or not self._restarts_after(
            entry.spec.restart, exited.reason
        ):
            self._ended(entry, exited.reason, exited.error)
            return
        try:
            self._count(exited.error)
        except RestartIntensityExceeded:
            self._ended(entry, exited.reason, exited.error)
            raise
        log.log(
            logging.ERROR if failed else logging.INFO,
            "supervisor %r restarts actor %r (%s), which ended: %s",
            self.name,
            cell.name,
            self._strategy if self._pool is None else "pool",
            exited.reason,
            exc_info=exited.error if failed else None,
        )
        await self._apply_strategy(entry, exited.error)

    @staticmethod
    def _restarts_after(restart: RestartType, reason: ExitReason) -> bool:
        if restart == "permanent":
            return True
        if restart == "transient":
            return reason in ("failed", "killed")  # an abnormal end
        return False

    def _count(self, error: BaseException | None) -> None:
        """Count one restart now; give up if that is one more than the intensity allows."""
        now = self._now()
        window = self._window
        # Inclusive: a restart at exactly now - within still counts. (Written as a sum, not a
        # difference: 0.2 + 5.0 <= 5.2 holds in floats, while 5.2 - 5.0 is above 0.2.)
        while window and window[0] + self.within < now:
            window.popleft()
        window.append(now)
        if len(window) > self.max_restarts:
            raise RestartIntensityExceeded(self.name, self.max_restarts, self.within, error)

    def _ended(self, entry: _Entry, reason: ExitReason, error: BaseException | None) -> None:
        """A child ends for good: finalize it; drop its spec if temporary or in a pool."""
        if entry.cell is not None:
            entry.cell.finalize(reason, error)
            entry.cell = None
        entry.pending = None
        dropped = entry.spec.restart == "temporary" or self._pool is not None or self._dynamic
        if dropped and entry in self._entries:
            self._entries.remove(entry)

    async def _apply_strategy(self, failed: _Entry, error: BaseException | None) -> None:
        system = self._runtime().system
        if failed.cell is not None:  # its failure is handled: an end while it waits is a shutdown
            failed.cell.last_end = ("shutdown", None)
        if self._strategy == "one_for_one" or self._pool is not None:
            await self._restart(failed, error)
            return
        entries = self._entries[:]
        index = entries.index(failed)
        group = entries if self._strategy == "one_for_all" else entries[index:]
        for entry in reversed(group):  # stop the others, in reverse start order
            if entry is failed or entry.cell is None:
                continue
            if entry.spec.restart == "temporary":
                await system._stop_cell(entry.cell)
                self._ended(entry, "stopped", None)
            else:
                await system._stop_cell(entry.cell, restart=True)
        await self._start_group(group, error)  # then start them again, in start order

    async def _restart(self, entry: _Entry, error: BaseException | None) -> None:
        backoff = entry.spec.backoff
        if backoff is None:
            await self._start_group([entry], error)
            return
        now = self._now()
        if now - entry.started_at >= backoff.reset_interval:  # it stayed up long enough
            entry.attempt = 0
        delay = backoff.delay(entry.attempt, self._rng)
        entry.attempt += 1
        self._schedule([entry], error, delay)

    def _schedule(self, entries: list[_Entry], error: BaseException | None, delay: float) -> None:
        token = object()
        for entry in entries:
            entry.pending = token
        self._runtime().start_timer(
            delay, _RestartDue(entries, error, token), entries[0].key, repeat=False, system=True
        )

    async def _restart_due(self, due: _RestartDue) -> None:
        entries = [e for e in due.entries if e.pending is due.token and e in self._entries]
        for entry in entries:  # (those terminated, or restarted otherwise, meanwhile: not)
            entry.pending = None
        if entries:
            await self._start_group(entries, due.error)

    async def _start_group(self, group: list[_Entry], error: BaseException | None) -> None:
        """Start new instances of children that are between instances, in start order. A
        failed start counts as a restart (13); the instances started in this round are then
        stopped again (reverse order) and the whole group is retried, through the mailbox, so
        that a stop request queued meanwhile is handled first (OTP retries a group as one)."""
        system = self._runtime().system
        started: list[_Entry] = []
        for entry in group:
            entry.pending = None  # a retry scheduled before is superseded by this start
        for entry in group:
            cell = entry.cell
            if cell is None or entry not in self._entries:
                continue
            if cell.state == "stopped" or cell.terminating == "final":  # stopped by hand
                self._ended(entry, "stopped", None)
                continue
            if cell.state != "restarting":  # running already (started by a later decision)
                continue
            cell.terminating = None
            start_error = await cell.start_incarnation(error, restart=True)
            entry.started_at = self._now()  # (a failed start did not stay up either)
            if start_error is None:
                started.append(entry)
                continue
            cause = start_error.__cause__
            try:
                self._count(cause)
            except RestartIntensityExceeded:
                self._ended(entry, "failed", cause)
                raise
            for done in reversed(started):
                if done.cell is not None:
                    await system._stop_cell(done.cell, restart=True)
            retry = [e for e in group if e.cell is not None and e in self._entries]
            if len(retry) == 1 and retry[0].spec.backoff is not None:
                await self._restart(retry[0], cause)
            else:
                self._schedule(retry, cause, 0.0)
            return

    async def _stop_all(self) -> None:
        system = self._runtime().system
        for entry in reversed(self._entries[:]):
            if entry.cell is not None:
                await system._stop_cell(entry.cell)
                self._ended(entry, "stopped", None)

    def __repr__(self) -> str:
        kind = "pool" if self._pool is not None else self._strategy
        return f"<Supervisor {kind} {self.max_restarts}/{self.within}s>"
