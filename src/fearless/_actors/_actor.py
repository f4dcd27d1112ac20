"""``Actor[M]``: the base class users subclass.

An actor is an object whose ``handle`` runs one message at a time in the actor's own task; its
state needs no lock because nothing else ever touches it. The runtime (``_runtime``) creates the
instance from the factory given to ``spawn``, runs its hooks, and binds it to itself. What the
framework offers the instance is on one attribute, ``self.context`` (``_context``), so that every
other attribute name is the user's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeVar

from ._messages import Terminated

if TYPE_CHECKING:
    from ._context import ActorContext
    from ._runtime import ActorRuntime

__all__ = ["DEFAULT", "DEFAULT_SHUTDOWN", "Actor"]

M = TypeVar("M")

DEFAULT_SHUTDOWN: Final = 5.0
"""Seconds a stopping actor gets before it is killed, unless ``spawn`` says otherwise (a
supervisor's default is ``None``: it waits for its children)."""


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""A ``shutdown`` left to the actor's type: ``Actor.default_shutdown`` (5 s for a worker,
``None`` for a supervisor)."""


class Actor(Generic[M]):
    """Subclass it, say which messages it takes (``Actor[Msg]``), and write ``handle``::

        class Counter(fearless.Actor[Increment | Get]):
            def __init__(self) -> None:
                self.count = 0

            async def handle(self, message: Increment | Get) -> int | None:
                match message:
                    case Increment(n):
                        self.count += n
                    case Get():
                        return self.count  # the reply to an ask
                return None

    Messages are handled one at a time, in mailbox order; the next is taken only when ``handle``
    has returned. ``handle``'s return value is the reply to an ``ask`` (ignored for ``tell``).
    If ``handle`` raises, the instance fails: the message goes to dead letters with the
    exception (an asker gets the exception; ``HandlerFailed`` for a ``BaseException`` that is
    not an ``Exception``) and ``on_stop`` runs. Any exception is a failure: an
    ``Exception``, a cancellation that is not the actor's own (on asyncio, awaiting something
    cancelled from elsewhere), another ``BaseException``; ``KeyboardInterrupt`` and
    ``SystemExit`` also stop the whole system, whose block raises them. Then its parent decides:
    an actor started by ``system.spawn`` is restarted with a new instance from its factory,
    keeping its ref, name and mailbox, until it exhausts its own restart budget (then it is
    stopped, and the system goes on, unless the system was made with ``escalate=True``); under
    a ``Supervisor`` its restart type decides; a temporary one, or a plain actor's child
    (``context.spawn``), ends with reason ``"failed"``. A stop (``context.stop()``) is final,
    except for a permanent child of a ``Supervisor``, which is started again.

    Hooks (all optional, all async, all run in the actor's task): ``on_start`` before the first
    message; ``on_stop`` when the instance stops, gracefully or by its own failure (not when
    killed, or failed through a link);
    ``on_restart(error)`` on the new instance after a restart (by default, ``on_start``);
    ``on_terminated(notice)`` when an actor it monitors stops, or a linked actor fails and this one
    traps links (``trap_links = True``).

    From ``on_start`` on (not in ``__init__``), ``self.context`` is the framework's side
    (:class:`fearless.ActorContext`): ``context.ref``, ``context.name``, ``context.system``,
    ``await context.spawn(...)`` for children, timers (``send_after``, ``send_every``), death
    watch (``monitor``, ``link``) and ``context.stop()``, for the actor's own task only. Every
    other attribute name is yours: ``self.name = name`` in ``__init__`` is your field.
    """

    default_shutdown: ClassVar[float | None] = DEFAULT_SHUTDOWN
    """The ``shutdown`` it gets when ``spawn`` does not say (``Supervisor``: ``None``)."""

    trap_links: ClassVar[bool] = False
    """If True, a linked actor's failure arrives as ``on_terminated`` instead of failing this
    one."""

    _fearless_runtime: ActorRuntime | None = None  # set by the runtime before on_start

    @property
    def context(self) -> ActorContext[M]:
        """What the framework gives this actor: its ref, name, system, children, timers, death
        watch and ``stop()`` (see :class:`fearless.ActorContext`). The one attribute name the
        framework takes; available from ``on_start`` on, not in ``__init__``."""
        runtime = self._fearless_runtime
        if runtime is None:
            raise RuntimeError(
                f"{type(self).__name__} is not running yet: self.context is available from "
                "on_start on (not in __init__)"
            )
        return runtime.context

    @context.setter
    def context(self, value: object) -> None:
        raise AttributeError(
            f"'context' is the one attribute fearless.Actor keeps for itself (the ActorContext); "
            f"name {type(self).__name__}'s own attribute differently"
        )

    # -- hooks -------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Runs before the first message. If it raises, the actor never starts (``spawn`` raises
        ``ActorStartError`` with this exception as its cause). Run again by the default
        ``on_restart``, where raising is a failed restart instead (counted toward the restart
        budget, and retried).

        Cancellation: a kill cancels it, and ``spawn`` raises ``ActorStopped``."""

    async def handle(self, message: M) -> Any:
        """Handle one message; the return value is the reply to an ``ask``.

        Ordering: one call at a time, in mailbox order. If it raises, the actor fails (see the
        class docstring); to refuse an ask without failing, return ``ErrorReply(error)``.

        Cancellation: only a kill cancels it (``ref.kill()``, a linked actor's failure, or a
        shutdown timeout that ran out); the message then goes to dead letters as ``KILLED``. A
        ``CancelledError`` that reaches it from something else it awaited is a failure.
        """
        raise NotImplementedError(f"{type(self).__name__} must define async def handle(message)")

    async def on_stop(self) -> None:
        """Runs when the actor stops gracefully or its own code fails, after its children have
        stopped and its timers are cancelled. Not run when it is killed, nor when it fails
        because a linked actor failed: both cancel it now, as an Erlang exit signal does.
        Exceptions it raises are logged, not raised (``KeyboardInterrupt`` and ``SystemExit``
        still stop the system).

        Cancellation: a kill while it runs (or a shutdown timeout that runs out) cancels it."""

    async def on_restart(self, error: BaseException) -> None:
        """Runs on the new instance after a restart caused by ``error``, instead of ``on_start``.
        By default it calls ``on_start``. If it raises, the restart failed: that counts as a
        restart, and the supervisor tries again (or gives up, over its budget).

        Cancellation: a kill cancels it, as it would ``handle``."""
        await self.on_start()

    async def on_terminated(self, notice: Terminated) -> None:
        """An actor this one monitors has stopped, or (with ``trap_links``) a linked one failed.

        Runs in mailbox order, like a message; if it raises, the actor fails. By default it
        does nothing.

        Cancellation: as ``handle``.
        """

    async def _runtime_message(self, message: object) -> None:
        """The runtime's own messages about this actor's children (a ``Supervisor`` handles
        them; no other actor gets any)."""
        raise TypeError(
            f"{type(self).__name__} got a runtime message it cannot handle: {message!r}"
        )
