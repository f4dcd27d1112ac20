"""Supervision, all of it: Erlang/OTP's supervisor with Akka's backoff and deciders, and the
system's guardian over top-level actors.

Specification (``docs/design/supervision.md`` is the design, with its numbered cases;
``docs/supervision.md`` the user guide):

Children
    A :class:`ChildSpec` per child: factory, name, restart type, shutdown, mailbox, optional
    backoff and decider; validated when made (a wrong type raises ``TypeError``, a wrong value
    ``ValueError``; both name the field and the value). Children start in the order given, each
    once the previous one's ``on_start`` returned; if one fails to start, those started are
    stopped in reverse order and the supervisor's own start fails with that child's
    ``ActorStartError`` (14). A supervisor stops its children in reverse start order, each by its
    shutdown (15); a dynamic pool stops them all at once (16).
Restart types
    ``permanent`` (default): always restarted, even after a normal exit (9). ``transient``:
    restarted only after an abnormal end (failed or killed), not after a graceful stop (7).
    ``temporary``: never restarted, and its spec is dropped when it ends (8, 12). A child stopped
    through the supervisor (``TerminateChild``, or the supervisor stopping) or by hand
    (``ref.stop()``, ``ref.kill()``) is not restarted or counted (19).
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
    as one restart together (6). A child that has ended (terminated, or not restarted by its
    type) stays down through a sibling's group restart (32; OTP starts it again). A dynamic pool
    (``Supervisor.pool``) is one_for_one over identical children added at run time (OTP's
    ``simple_one_for_one``).
Failed restarts
    A failed restart (the factory or ``on_restart`` raised) counts as a restart and is retried
    through the mailbox, so that a request queued meanwhile is handled first (13). As in OTP,
    ``one_for_all`` retries the whole group (the members started in the failed round are stopped
    again); ``rest_for_one`` retries from the child that failed to start, leaving the children
    before it, already restarted, running. ``TerminateChild`` on a child whose restart is pending
    cancels it, and the pending restart of the children after it in its group: they stay down
    (OTP); those before it in the group are started as planned.
Intensity
    At most ``max_restarts`` restarts within any ``within`` seconds (defaults 3 and 5.0), counted
    per supervisor, shared by all its children (5), on the system's monotonic clock, with no
    rounding; a restart at exactly ``now - within`` still counts (1-4). One more than allowed
    and the supervisor gives up: it stops its remaining children in reverse start order and fails
    with ``RestartIntensityExceeded``, which its own supervisor handles as a child failure (17);
    that is a failure even for a transient supervisor (18, where OTP differs).
The guardian (top-level actors, ``system.spawn``)
    Each top-level actor has a restart budget of its own (the system's ``max_restarts`` within
    ``within``): failures of different actors never add up. Only a failure restarts it: a normal
    stop is final (Akka's rule), and so is a kill by hand. An actor that exhausts its budget is
    stopped (an ERROR log with its name and last error; its queued messages go to dead letters,
    its watchers are told) and the system goes on, unless the system was made with
    ``escalate=True``: then the system fails, and its block raises ``RestartIntensityExceeded``.
Backoff (optional, per child; ``one_for_one``, pools and top-level actors)
    Restart delays ``min_backoff * 2**n`` capped at ``max_backoff``, times ``1 + jitter * r``
    with ``r`` uniform in [0, 1), ``n`` the restarts since the last reset; finite for any ``n``.
    A child that stays up for ``reset_after`` seconds resets ``n`` to 0 (25). While a child
    waits, it is ``"restarting"``: its mailbox stays open, and the supervisor goes on handling its
    messages.
Decider (optional, per child)
    Maps a handler's exception to ``"restart"`` (the restart type decides), ``"resume"`` (keep the
    instance and its state; the message is in dead letters), ``"stop"`` (end it, not counted) or
    ``"escalate"`` (the supervisor fails with that exception).
Requests, by ``ask``
    :class:`StartChild`, :class:`GetOrStartChild`, :class:`TerminateChild`,
    :class:`RestartChild`, :class:`DeleteChild`, :class:`WhichChildren`. Each is validated when
    made, and again (with the spec it carries) when handled; one that cannot be carried out (a
    malformed request, a duplicate name, restarting a running child, a message that is no
    request) raises in the asker, never in the supervisor, and leaves the supervisor and its
    children as they were.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, final

from .._exceptions import ActorNameTaken, ActorStartError, RestartIntensityExceeded
from ._actor import DEFAULT, Actor, _Default
from ._ask import ErrorReply
from ._mailbox import Mailbox, SystemMessage
from ._messages import ExitReason, Request
from ._runtime import log

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._runtime import ActorRuntime

__all__ = [
    "Backoff",
    "Child",
    "ChildInfo",
    "ChildSpec",
    "DeleteChild",
    "Directive",
    "GetOrStartChild",
    "Guardian",
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
_DIRECTIVES: Final = ("restart", "resume", "stop", "escalate")


def _seconds(field_name: str, value: object, *, positive: bool = False, none: bool = False) -> None:
    if value is None and none:
        return
    what = "a number > 0" if positive else "a number >= 0"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field_name} must be {what}{' or None' if none else ''}, got {value!r}")
    if math.isnan(value) or value == math.inf or not (value > 0 if positive else value >= 0):
        raise ValueError(f"{field_name} must be {what}{' or None' if none else ''}, got {value!r}")


def _instance_of(field_name: str, value: object, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{field_name} must be {what}, got {value!r}")


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
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float):
            raise TypeError(f"Backoff.jitter must be a number in [0, 1], got {self.jitter!r}")
        if not (0 <= self.jitter <= 1):
            raise ValueError(f"Backoff.jitter must be a number in [0, 1], got {self.jitter!r}")
        _seconds("Backoff.reset_after", self.reset_after, positive=True, none=True)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before restart number ``attempt`` (0-based) since the last reset: finite and
        at most ``max_backoff * (1 + jitter)`` for any ``attempt``."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        # Past this many doublings every delay is the cap; comparing first means the doubling is
        # only computed for attempts below it (2.0**attempt overflows from 1024 on). In logs,
        # because max_backoff / min_backoff itself can overflow (1e300 / 1e-300); and by
        # ldexp, which scales without the intermediate 2.0**attempt.
        if attempt >= math.log2(self.max_backoff) - math.log2(self.min_backoff):
            base = self.max_backoff
        else:
            try:
                base = min(math.ldexp(self.min_backoff, attempt), self.max_backoff)
            except OverflowError:  # pragma: no cover - rounding at the very top of the floats
                base = self.max_backoff
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
            raise TypeError(
                f"ChildSpec.factory must be a callable returning an Actor, got {self.factory!r}"
            )
        if self.name is not None:
            _instance_of("ChildSpec.name", self.name, str, "a non-empty str or None")
            if not self.name:
                raise ValueError("ChildSpec.name must be a non-empty str or None, got ''")
        if self.restart not in _RESTART_TYPES:
            raise ValueError(
                f"ChildSpec.restart must be one of {', '.join(map(repr, _RESTART_TYPES))}, "
                f"got {self.restart!r}"
            )
        if self.shutdown is not DEFAULT:
            _seconds("ChildSpec.shutdown", self.shutdown, none=True)
        if self.mailbox is not None:
            _instance_of("ChildSpec.mailbox", self.mailbox, Mailbox, "a fearless.Mailbox")
        if self.backoff is not None:
            _instance_of("ChildSpec.backoff", self.backoff, Backoff, "a fearless.Backoff")
        if self.decider is not None and not callable(self.decider):
            raise TypeError(f"ChildSpec.decider must be callable, got {self.decider!r}")


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


def _child_key(request: str, child: object) -> None:
    from ._ref import ActorRef

    if not isinstance(child, str | ActorRef):
        raise TypeError(f"{request}.child must be a child's name or ActorRef, got {child!r}")


@final
@dataclass(frozen=True, slots=True)
class StartChild(Request["ActorRef[Any]"]):
    """Start a child from ``spec`` (appended last); for a pool, from the pool's spec, with
    ``args`` passed to its factory. Raises ``ActorStartError`` if it fails to start (it is not
    added, and it does not count as a restart), ``ActorNameTaken`` for a name in use (use
    :class:`GetOrStartChild` to reuse a running child)."""

    spec: ChildSpec | None = None
    args: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.spec is not None:
            _instance_of("StartChild.spec", self.spec, ChildSpec, "a fearless.ChildSpec or None")
        _instance_of("StartChild.args", self.args, tuple, "a tuple")


@final
@dataclass(frozen=True, slots=True)
class GetOrStartChild(Request["ActorRef[Any]"]):
    """The ref of the child named ``spec.name``: the running one if there is one (or one that
    is between instances), else a child started now from ``spec`` (replacing the spec of an
    ended child of that name, in its place). One request, handled in the supervisor's turn, so
    two callers never both start it. Raises as :class:`StartChild`."""

    spec: ChildSpec

    def __post_init__(self) -> None:
        _instance_of("GetOrStartChild.spec", self.spec, ChildSpec, "a fearless.ChildSpec")
        if self.spec.name is None:
            raise ValueError("GetOrStartChild needs a named ChildSpec: the name is the key")


@final
@dataclass(frozen=True, slots=True)
class TerminateChild(Request[None]):
    """Stop a child by its shutdown, without restarting or counting it (19). Its spec is kept
    (``RestartChild`` starts it again) unless it is temporary or in a pool. A restart pending
    for it is cancelled, and so is that of the children after it in its restart group (they
    stay down until a ``RestartChild``)."""

    child: str | ActorRef[Any]

    def __post_init__(self) -> None:
        _child_key("TerminateChild", self.child)


@final
@dataclass(frozen=True, slots=True)
class RestartChild(Request["ActorRef[Any]"]):
    """Start again a child that was terminated; a ``RuntimeError`` if it is running (19)."""

    child: str

    def __post_init__(self) -> None:
        _instance_of("RestartChild.child", self.child, str, "a child's name")


@final
@dataclass(frozen=True, slots=True)
class DeleteChild(Request[None]):
    """Forget a terminated child's spec; a ``RuntimeError`` if it is running."""

    child: str

    def __post_init__(self) -> None:
        _instance_of("DeleteChild.child", self.child, str, "a child's name")


@final
@dataclass(frozen=True, slots=True)
class WhichChildren(Request[tuple[ChildInfo, ...]]):
    """The children, in start order."""


SupervisorRequest = (
    StartChild | GetOrStartChild | TerminateChild | RestartChild | DeleteChild | WhichChildren
)
_REQUESTS: Final = (
    StartChild,
    GetOrStartChild,
    TerminateChild,
    RestartChild,
    DeleteChild,
    WhichChildren,
)


def _check_again(request: SupervisorRequest) -> None:
    """Run the checks of a request, and of the spec (and backoff) it carries, again: a frozen
    dataclass can be built around its ``__post_init__`` (``object.__new__``, a careless copy),
    and a bad field found later, in the middle of a restart, would fail the supervisor instead
    of the asker."""
    check = getattr(request, "__post_init__", None)
    if check is not None:
        check()
    spec = getattr(request, "spec", None)
    if spec is not None:
        spec.__post_init__()
        if spec.backoff is not None:
            spec.backoff.__post_init__()


# -- a supervised child ---------------------------------------------------------------------------


class ChildExited(SystemMessage):
    """To a supervisor: an instance of one of its children ended, and how (``final``: the
    actor ended with it, stopped or killed by hand: nothing to decide)."""

    __slots__ = ("directive", "error", "final", "incarnation", "reason", "runtime")

    def __init__(
        self,
        runtime: ActorRuntime,
        reason: ExitReason,
        error: BaseException | None,
        directive: str,
        final: bool,
    ) -> None:
        self.runtime = runtime
        self.incarnation = runtime.incarnation
        self.reason = reason
        self.error = error
        self.directive = directive
        self.final = final


class _Pending:
    """A restart scheduled for a group of children (one, or a one_for_all / rest_for_one
    group); a child whose ``pending`` is this object waits for it."""

    __slots__ = ("children",)

    def __init__(self, children: list[Child]) -> None:
        self.children = children


class _RestartDue(SystemMessage):
    """A backoff delay is over, or a failed restart is to be retried: start the children of
    ``pending`` again, in start order."""

    __slots__ = ("error", "pending")

    def __init__(self, pending: _Pending, error: BaseException | None) -> None:
        self.pending = pending
        self.error = error


@dataclass(eq=False, slots=True)
class Child:
    """One child of a supervisor: its spec, the actor running it (``None`` once it has ended),
    and what its supervisor keeps about it. The runtime of a supervised actor holds its
    ``Child`` and reports the end of each instance through it."""

    spec: ChildSpec
    supervisor: ActorRuntime
    runtime: ActorRuntime | None = None
    factory: Callable[[], Actor[Any]] | None = None  # a pool child's: the spec's, with its args
    directive: str = "restart"  # what the decider said of the last failure
    attempt: int = 0  # backoff restarts since the last reset
    started_at: float = 0.0  # the clock's time when its current instance started
    pending: _Pending | None = None  # the restart it waits for (backoff, or a retry), if any
    window: list[float] | None = None  # the guardian's: times of this child's restarts counted

    def decide(self, error: BaseException) -> str:
        """Ask the decider what follows ``error`` (``"restart"`` without one); an invalid answer,
        or a decider that raises, escalates."""
        decider = self.spec.decider
        if decider is None:
            self.directive = "restart"
            return "restart"
        name = self.runtime.name if self.runtime is not None else self.spec.name
        try:
            directive: str = decider(error)
        except Exception:
            log.exception("the decider of actor %r raised; escalating", name)
            directive = "escalate"
        if directive not in _DIRECTIVES:
            log.error("the decider of actor %r returned %r; escalating", name, directive)
            directive = "escalate"
        self.directive = directive
        return directive

    def report(
        self, reason: ExitReason, error: BaseException | None, *, final: bool = False
    ) -> None:
        """Tell the supervisor that this child's instance ended; if the supervisor has stopped,
        this is the actor's end."""
        runtime = self.runtime
        if runtime is None:
            return  # ended already (the supervisor forgot it)
        exited = ChildExited(runtime, reason, error, self.directive, final)
        if not self.supervisor.mailbox.put_system(exited):
            runtime.finalize(reason, error)

    def end_between_instances(self, reason: ExitReason) -> None:
        """Stopped or killed by hand while waiting to be restarted: ask the supervisor to end
        it at once (and cancel the restart), instead of at the end of its backoff."""
        self.report(reason, None, final=True)


# -- the supervisor -------------------------------------------------------------------------------


def _runtime_of(actor: Actor[Any]) -> ActorRuntime:
    runtime = actor._fearless_runtime
    assert runtime is not None, "a supervisor's methods run in its own task"
    return runtime


class Supervisor(Actor[SupervisorRequest]):
    """An actor that starts, watches and restarts its children (the guide: ``docs/supervision.md``).

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
            _instance_of("children", spec, ChildSpec, "fearless.ChildSpec objects")
        if strategy not in _STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}, got {strategy!r}"
            )
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int):
            raise TypeError(f"max_restarts must be an int >= 0, got {max_restarts!r}")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, got {max_restarts!r}")
        _seconds("within", within, positive=True)
        names: set[str] = set()
        for spec in specs:
            if spec.name is not None:
                if spec.name in names:
                    raise ValueError(f"two children are named {spec.name!r}")
                names.add(spec.name)
            if spec.backoff is not None and strategy != "one_for_one":
                raise ValueError(
                    f"backoff works under one_for_one (and pools), not {strategy}: the child "
                    f"{spec.name or spec.factory!r} has one"
                )
        self._specs = specs
        self._strategy = strategy
        self._pool: ChildSpec | None = None
        self.max_restarts = max_restarts
        self.within = float(within)
        self._children: dict[Child, None] = {}  # in start order (an ordered set)
        self._by_name: dict[str, Child] = {}  # the named ones
        self._window: list[float] = []  # times of the restarts counted, oldest first
        self._rng = random.Random()

    @classmethod
    def pool(cls, spec: ChildSpec, *, max_restarts: int = 3, within: float = 5.0) -> Supervisor:
        """A dynamic pool of identical children, started with ``StartChild(args=...)`` (each
        ``spec.factory(*args)``), restarted one for one, stopped all at once."""
        _instance_of("a pool's spec", spec, ChildSpec, "a fearless.ChildSpec")
        if spec.name is not None:
            raise ValueError(f"a pool's children are unnamed: its spec has name {spec.name!r}")
        supervisor = cls(max_restarts=max_restarts, within=within)
        supervisor._pool = spec
        return supervisor

    @property
    def concurrent_shutdown(self) -> bool:
        """A pool stops its children all at once (16); the others one by one."""
        return self._pool is not None

    @property
    def _name(self) -> str:
        return _runtime_of(self).name

    def __repr__(self) -> str:
        kind = "pool" if self._pool is not None else self._strategy
        return f"<Supervisor {kind} {self.max_restarts}/{self.within}s>"

    # -- starting ---------------------------------------------------------------------------------

    async def on_start(self) -> None:
        for spec in self._specs:
            try:
                await self._start_new(spec, spec.factory)
            except ActorStartError:
                await self._stop_all()  # in reverse start order (14)
                raise

    async def on_restart(self, error: BaseException) -> None:
        self._children.clear()
        self._by_name.clear()
        self._window.clear()
        await self.on_start()

    def _add(self, child: Child) -> None:
        self._children[child] = None
        if child.spec.name is not None:
            self._by_name[child.spec.name] = child

    def _remove(self, child: Child) -> None:
        self._children.pop(child, None)
        name = child.spec.name
        if name is not None and self._by_name.get(name) is child:
            del self._by_name[name]

    async def _start_new(self, spec: ChildSpec, factory: Callable[[], Actor[Any]]) -> ActorRuntime:
        """Start a new child and return its runtime (whose ``child`` is its ``Child``). Started
        from another task (the guardian's ``start_child``), it may have ended, and been
        forgotten, by the time this returns: an actor that stops itself in ``on_start``."""
        supervisor = _runtime_of(self)
        runtime = supervisor.system._new_runtime(
            supervisor, factory, spec.name, spec.mailbox, spec.shutdown
        )
        child = Child(spec, supervisor, runtime, factory)
        runtime.child = child
        self._add(child)
        try:
            error = await runtime.start_instance(None)
        except BaseException:  # cancelled while it started: it is not added
            self._remove(child)
            runtime.finalize("shutdown", None)
            raise
        if error is not None:
            self._remove(child)
            runtime.finalize("failed", error.__cause__)
            raise error
        child.started_at = self._now()
        return runtime

    def _now(self) -> float:
        return _runtime_of(self).system.clock.now()

    # -- requests ---------------------------------------------------------------------------------

    async def handle(self, message: object) -> Any:
        if not isinstance(message, _REQUESTS):
            return ErrorReply(
                TypeError(
                    f"supervisor {self._name!r} takes StartChild, GetOrStartChild, "
                    f"TerminateChild, RestartChild, DeleteChild or WhichChildren, "
                    f"not {message!r}"
                )
            )
        try:
            _check_again(message)
            return await self._request(message)
        except (ActorStartError, RuntimeError, TypeError, ValueError) as exc:
            return ErrorReply(exc)  # the asker's mistake, or its child's: raised there, not here

    async def _request(self, message: SupervisorRequest) -> Any:
        match message:
            case StartChild(spec, args):
                return await self._start_child(spec, args)
            case GetOrStartChild(spec):
                return await self._get_or_start(spec)
            case TerminateChild(child):
                await self._terminate(self._find(child))
                return None
            case RestartChild(child):
                return await self._restart_ended(self._find(child))
            case DeleteChild(child):
                found = self._find(child)
                if found.runtime is not None:
                    raise RuntimeError(
                        f"child {child!r} is {found.runtime.state}: terminate it first "
                        "(TerminateChild), then delete it"
                    )
                self._remove(found)
                return None
            case WhichChildren():
                return tuple(self._info(child) for child in self._children)
        raise AssertionError(message)  # pragma: no cover - handle() checked the type

    async def start_child(self, spec: ChildSpec) -> ActorRef[Any]:
        """Start a child from ``spec`` now, in the calling task (the system's guardian uses it
        for ``system.spawn``); raises as ``StartChild`` does. Cancellation: as ``spawn`` (a
        child cancelled while it starts is killed, and not added)."""
        return await self._start_child(spec, ())

    async def _start_child(self, spec: ChildSpec | None, args: tuple[Any, ...]) -> ActorRef[Any]:
        if self._pool is not None:
            if spec is not None:
                raise ValueError(
                    "a pool starts children from its own spec: send StartChild(args=...) with "
                    "no spec"
                )
            pool = self._pool
            runtime = await self._start_new(pool, lambda: pool.factory(*args))
        else:
            if spec is None or args:
                raise ValueError(
                    "StartChild needs a ChildSpec here (StartChild(spec)); args are for pools "
                    "(Supervisor.pool)"
                )
            self._check_new(spec)
            runtime = await self._start_new(spec, spec.factory)
        return runtime.ref  # (the actor may have ended already: its ref says so)

    def _check_new(self, spec: ChildSpec) -> None:
        name = spec.name
        if name is not None and name in self._by_name:
            found = self._by_name[name]
            state = "ended" if found.runtime is None else found.runtime.state
            raise ActorNameTaken(
                name,
                f"supervisor {self._name!r} has a child named {name!r} ({state}): use "
                "GetOrStartChild to reuse it or start it again, RestartChild to restart it "
                "after it ended, or TerminateChild and DeleteChild before starting a new spec",
            )
        if spec.backoff is not None and self._strategy != "one_for_one":
            raise ValueError(f"backoff works under one_for_one, not {self._strategy}")

    async def _get_or_start(self, spec: ChildSpec) -> ActorRef[Any]:
        if self._pool is not None:
            raise ValueError(
                "a pool's children are unnamed: GetOrStartChild is for named children; send "
                "StartChild(args=...) to a pool"
            )
        assert spec.name is not None
        found = self._by_name.get(spec.name)
        if found is None:
            return await self._start_child(spec, ())
        if found.runtime is not None:  # running, or between instances: the same actor
            return found.runtime.ref
        if spec.backoff is not None and self._strategy != "one_for_one":
            raise ValueError(f"backoff works under one_for_one, not {self._strategy}")
        found.spec = spec
        found.factory = spec.factory
        return await self._restart_ended(found)

    async def _terminate(self, child: Child) -> None:
        pending = child.pending
        if child.runtime is not None:
            await child.runtime.stop_and_wait()
            self._ended(child, "stopped", None)
        if pending is not None:
            # The children after it in the pending group were down only to start after it: they
            # stay down (OTP). Those before it do not wait on it: their restart goes ahead.
            members = pending.children
            for other in members[members.index(child) + 1 :]:
                if other.pending is pending and other.runtime is not None:
                    self._ended(other, *other.runtime.last_end)

    async def _restart_ended(self, child: Child) -> ActorRef[Any]:
        """Start again a child that has ended, in its place in the start order."""
        if child.runtime is not None:
            raise RuntimeError(
                f"child {child.spec.name!r} is {child.runtime.state}: terminate it "
                "(TerminateChild) before restarting it"
            )
        assert child.factory is not None
        order = list(self._children)
        index = order.index(child)
        self._remove(child)
        try:
            runtime = await self._start_new(child.spec, child.factory)
        except BaseException:
            self._add(child)  # the spec stays (OTP's {error, _})
            self._reorder([*order[:index], child, *order[index + 1 :]])
            raise
        new = runtime.child
        assert new is not None
        self._reorder([*order[:index], new, *order[index + 1 :]])  # its place in start order
        return runtime.ref

    def _reorder(self, order: list[Child]) -> None:
        """Put the children (and the runtime's list, which stopping and snapshots follow) in
        ``order``: a manual restart, the one operation that starts a child in the middle."""
        self._children = dict.fromkeys(child for child in order if child in self._children)
        runtime = _runtime_of(self)
        if runtime.children:
            ours = [c.runtime for c in self._children if c.runtime in runtime.children]
            rest = [r for r in runtime.children if r.child is None or r.child not in self._children]
            runtime.children = dict.fromkeys([*(r for r in ours if r is not None), *rest])

    def _find(self, key: object) -> Child:
        if isinstance(key, str):
            found = self._by_name.get(key)
        else:
            runtime = key._runtime  # type: ignore[attr-defined]
            found = runtime.child
            if found is not None and (found not in self._children or found.runtime is not runtime):
                found = None
        if found is None:
            raise ValueError(
                f"no child {key!r} under supervisor {self._name!r} (WhichChildren lists them)"
            )
        return found

    @staticmethod
    def _info(child: Child) -> ChildInfo:
        runtime = child.runtime
        if runtime is None:
            return ChildInfo(child.spec.name, None, child.spec.restart, "ended")
        return ChildInfo(runtime.name, runtime.ref, child.spec.restart, runtime.state)

    # -- children ending ---------------------------------------------------------------------------

    async def _runtime_message(self, message: object) -> None:
        if isinstance(message, ChildExited):
            await self._child_exited(message)
        elif isinstance(message, _RestartDue):
            await self._restart_due(message)
        else:
            await super()._runtime_message(message)

    async def _child_exited(self, exited: ChildExited) -> None:
        runtime = exited.runtime
        child = runtime.child
        if (
            child is None
            or child.runtime is not runtime
            or child not in self._children
            or runtime.incarnation != exited.incarnation
        ):
            return  # stale: that instance was restarted (or ended) by a strategy already
        if exited.final or runtime.terminating == "final":  # stopped or killed by hand (19)
            self._ended(child, exited.reason, exited.error)
            return
        if runtime.state != "restarting":
            return  # stale
        failed = exited.reason == "failed"
        if failed and exited.directive == "escalate":
            self._ended(child, exited.reason, exited.error)
            assert exited.error is not None
            raise exited.error
        if (failed and exited.directive == "stop") or not self._restarts_after(
            child.spec.restart, exited.reason
        ):
            self._ended(child, exited.reason, exited.error)
            return
        if not self._count(child, exited.reason, exited.error):
            return
        log.log(
            logging.ERROR if failed else logging.INFO,
            "supervisor %r restarts actor %r (%s), which ended: %s",
            self._name,
            runtime.name,
            self._strategy if self._pool is None else "pool",
            exited.reason,
            exc_info=exited.error if failed else None,
        )
        await self._apply_strategy(child, exited.error)

    def _restarts_after(self, restart: RestartType, reason: ExitReason) -> bool:
        if restart == "permanent":
            return True
        if restart == "transient":
            return reason in ("failed", "killed")  # an abnormal end
        return False

    def _count(self, child: Child, reason: ExitReason, error: BaseException | None) -> bool:
        """Count one restart (of ``child``, which ended with ``reason``) now; ``True`` if it may
        go ahead. One more than the intensity allows and the supervisor gives up: the child ends,
        and the supervisor fails with ``RestartIntensityExceeded``."""
        if _over_intensity(self._window, self._now(), self.max_restarts, self.within):
            self._ended(child, reason, error)
            raise RestartIntensityExceeded(self._name, self.max_restarts, self.within, error)
        return True

    def _ended(
        self,
        child: Child,
        reason: ExitReason,
        error: BaseException | None,
        *,
        logged: bool = False,
    ) -> None:
        """A child ends for good: finalize it; drop its spec if temporary or in a pool."""
        if child.runtime is not None:
            child.runtime.finalize(reason, error, logged=logged)
            child.runtime = None
        child.pending = None
        if child.spec.restart == "temporary" or self._pool is not None:
            self._remove(child)

    async def _apply_strategy(self, failed: Child, error: BaseException | None) -> None:
        if failed.runtime is not None:  # its failure is handled: an end while it waits is a
            failed.runtime.last_end = ("shutdown", None)  # shutdown
        if self._strategy == "one_for_one" or self._pool is not None:
            await self._restart(failed, error)
            return
        children = list(self._children)
        index = children.index(failed)
        group = children if self._strategy == "one_for_all" else children[index:]
        for child in reversed(group):  # stop the others, in reverse start order
            if child is failed or child.runtime is None:
                continue
            if child.spec.restart == "temporary":
                await child.runtime.stop_and_wait()
                self._ended(child, "stopped", None)
            else:
                await child.runtime.stop_and_wait(restart=True)
        await self._start_group(group, error)  # then start them again, in start order

    async def _restart(self, child: Child, error: BaseException | None) -> None:
        backoff = child.spec.backoff
        if backoff is None:
            await self._start_group([child], error)
            return
        if self._now() - child.started_at >= backoff.reset_interval:  # it stayed up long enough
            child.attempt = 0
        delay = backoff.delay(child.attempt, self._rng)
        child.attempt += 1
        self._schedule([child], error, delay)

    def _schedule(self, children: list[Child], error: BaseException | None, delay: float) -> None:
        pending = _Pending(children)
        for child in children:
            child.pending = pending
        _runtime_of(self).start_timer(
            delay, _RestartDue(pending, error), children[0], repeat=False, system=True
        )

    async def _restart_due(self, due: _RestartDue) -> None:
        pending = due.pending
        group = [c for c in pending.children if c.pending is pending and c in self._children]
        for child in group:  # (those terminated, or restarted otherwise, meanwhile: not)
            child.pending = None
        if group:
            await self._start_group(group, due.error)

    async def _start_group(self, group: list[Child], error: BaseException | None) -> None:
        """Start new instances of children that are between instances, in start order. A
        failed start counts as a restart (13) and is retried through the mailbox, so that a
        request queued meanwhile is handled first: ``one_for_all`` stops the instances started
        in this round and retries the whole group; the others retry from the child that failed
        (OTP's rules)."""
        started: list[Child] = []
        for child in group:
            child.pending = None  # a retry scheduled before is superseded by this start
        for position, child in enumerate(group):
            runtime = child.runtime
            if runtime is None or child not in self._children:
                continue
            if runtime.state == "stopped" or runtime.terminating == "final":  # stopped by hand
                self._ended(child, "stopped", None)
                continue
            if runtime.state != "restarting":  # running already (started by a later decision)
                continue
            runtime.terminating = None
            start_error = await runtime.start_instance(error, restart=True)
            child.started_at = self._now()  # (a failed start did not stay up either)
            if start_error is None:
                started.append(child)
                continue
            cause = start_error.__cause__
            log.error(
                "supervisor %r failed to restart actor %r: %r",
                self._name,
                runtime.name,
                cause,
                exc_info=cause,
            )
            if not self._count(child, "failed", cause):
                continue  # (the guardian stopped it for good: the others go on)
            if self._strategy == "one_for_all" and self._pool is None:
                for done in reversed(started):
                    if done.runtime is not None:
                        await done.runtime.stop_and_wait(restart=True)
                rest = group
            else:
                rest = group[position:]
            retry = [c for c in rest if c.runtime is not None and c in self._children]
            if len(retry) == 1 and retry[0].spec.backoff is not None:
                await self._restart(retry[0], cause)
            else:
                self._schedule(retry, cause, 0.0)
            return

    async def _stop_all(self) -> None:
        for child in reversed(list(self._children)):
            if child.runtime is not None:
                await child.runtime.stop_and_wait()
                self._ended(child, "stopped", None)


def _over_intensity(window: list[float], now: float, max_restarts: int, within: float) -> bool:
    """Record a restart at ``now`` in ``window`` (oldest first); whether that makes more than
    ``max_restarts`` within ``within`` seconds. Inclusive: a restart at exactly ``now - within``
    still counts. (Written as a sum, not a difference: 0.2 + 5.0 <= 5.2 holds in floats, while
    5.2 - 5.0 is above 0.2.)"""
    expired = 0
    while expired < len(window) and window[expired] + within < now:
        expired += 1
    del window[:expired]
    window.append(now)
    return len(window) > max_restarts


class Guardian(Supervisor):
    """The system's guardian: the parent of every top-level actor (``system.spawn``).

    One for one, with a restart budget per child (see the module docstring): a normal stop is
    final, a failure restarts, and a child that fails too often is stopped while everything else
    goes on, unless ``escalate`` makes that the system's failure. An ended child is forgotten
    (there is no ``RestartChild`` at the top: ``system.spawn`` again)."""

    def __init__(self, max_restarts: int, within: float, *, escalate: bool) -> None:
        super().__init__(max_restarts=max_restarts, within=within)
        self._escalate = escalate

    def _restarts_after(self, restart: RestartType, reason: ExitReason) -> bool:
        return restart != "temporary" and reason == "failed"

    def _check_new(self, spec: ChildSpec) -> None:
        """Names are the registry's business at the top (an ended child may not be forgotten
        yet when its name is spawned again)."""

    def _count(self, child: Child, reason: ExitReason, error: BaseException | None) -> bool:
        if child.window is None:
            child.window = []
        if not _over_intensity(child.window, self._now(), self.max_restarts, self.within):
            return True
        runtime = child.runtime
        name = runtime.name if runtime is not None else child.spec.name
        if self._escalate:
            self._ended(child, reason, error)
            raise RestartIntensityExceeded(self._name, self.max_restarts, self.within, error)
        log.error(
            "actor %r failed more than %d time(s) within %s s: stopped for good (the system "
            "goes on); last error: %r",
            name,
            self.max_restarts,
            self.within,
            error,
            exc_info=error,
        )
        self._ended(child, reason, error, logged=True)
        return False

    def _ended(
        self,
        child: Child,
        reason: ExitReason,
        error: BaseException | None,
        *,
        logged: bool = False,
    ) -> None:
        super()._ended(child, reason, error, logged=logged)
        self._remove(child)

    def __repr__(self) -> str:
        return f"<Guardian {self.max_restarts}/{self.within}s per actor>"
