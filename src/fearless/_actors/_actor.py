"""``Actor[M]``: the base class users subclass.

An actor is an object whose ``handle`` runs one message at a time in the actor's own task; its
state needs no lock because nothing else ever touches it. The runtime (``_cell``) creates the
instance from the factory given to ``spawn``, runs its hooks, and binds it to its runtime, which
the methods below reach through ``self._cell``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeVar

from ._mailbox import Mailbox
from ._messages import Terminated

if TYPE_CHECKING:
    from ._cell import Cell
    from ._ref import ActorRef
    from ._system import ActorSystem

__all__ = ["DEFAULT", "DEFAULT_SHUTDOWN", "Actor"]

M = TypeVar("M")
N = TypeVar("N")

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
    exception (an asker gets the exception) and ``on_stop`` runs. Then its supervisor decides:
    an actor started by ``system.spawn`` (permanent by default) or under a ``Supervisor`` is
    restarted with a new instance from its factory, keeping its ref, name and mailbox; a
    temporary one, or a plain actor's child (``self.spawn``), ends with reason ``"failed"``.

    Hooks (all optional, all async, all run in the actor's task): ``on_start`` before the first
    message; ``on_stop`` when the instance stops, gracefully or by its own failure (not when
    killed, or failed through a link);
    ``on_restart(error)`` on the new instance after a restart (by default, ``on_start``);
    ``on_terminated(notice)`` when an actor it monitors stops, or a linked actor fails and this one
    traps links (``trap_links = True``).

    From ``on_start`` on (not in ``__init__``): ``self.ref``, ``self.name``, ``self.system``,
    ``await self.spawn(...)`` for children, timers (``send_after``, ``send_every``), death watch
    (``monitor``, ``link``) and ``self.stop()``. These are for the actor's own task only.
    """

    default_shutdown: ClassVar[float | None] = DEFAULT_SHUTDOWN
    """The ``shutdown`` it gets when ``spawn`` does not say (``Supervisor``: ``None``)."""

    trap_links: ClassVar[bool] = False
    """If True, a linked actor's failure arrives as ``on_terminated`` instead of failing this
    one."""

    _cell: Cell | None = None  # set by the runtime before on_start

    def _runtime(self) -> Cell:
        cell = self._cell
        if cell is None:
            raise RuntimeError(
                f"{type(self).__name__} is not running yet: ref, system, spawn, timers and "
                "watches are available from on_start on (not in __init__)"
            )
        return cell

    # -- what the actor can see -------------------------------------------------------------------

    @property
    def ref(self) -> ActorRef[M]:
        """This actor's own reference (to pass to others so that they can reply)."""
        return self._runtime().ref

    @property
    def name(self) -> str:
        """This actor's name."""
        return self._runtime().name

    @property
    def system(self) -> ActorSystem:
        """The system it runs in."""
        return self._runtime().system

    # -- hooks -------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Runs before the first message. If it raises, the actor never starts (``spawn`` raises
        ``ActorStartError`` with this exception as its cause). Cancellation: a kill cancels it, and
        ``spawn`` raises ``ActorStopped``."""

    async def handle(self, message: M) -> Any:
        """Handle one message; the return value is the reply to an ``ask``.

        Ordering: one call at a time, in mailbox order. Cancellation: only a kill (or a linked
        actor's failure) cancels it; the message then goes to dead letters as ``KILLED``.
        """
        raise NotImplementedError(f"{type(self).__name__} must define async def handle(message)")

    async def on_stop(self) -> None:
        """Runs when the actor stops gracefully or its own code fails, after its children have
        stopped and its timers are cancelled. Not run when it is killed, nor when it fails
        because a linked actor failed: both cancel it now, as an Erlang exit signal does. A kill
        while it runs cancels it. Exceptions it raises are logged, not raised."""

    async def on_restart(self, error: BaseException) -> None:
        """Runs on the new instance after a restart caused by ``error``, instead of ``on_start``.
        By default it calls ``on_start``. Cancellation: as ``on_start``."""
        await self.on_start()

    async def on_terminated(self, notice: Terminated) -> None:
        """An actor this one monitors has stopped, or (with ``trap_links``) a linked one failed.

        Runs in mailbox order, like a message; if it raises, the actor fails. Cancellation: as
        ``handle``. By default it does nothing.
        """

    async def _runtime_message(self, message: object) -> None:
        """The runtime's own messages about this actor's children (a ``Supervisor`` handles
        them; no other actor gets any)."""
        raise TypeError(
            f"{type(self).__name__} got a runtime message it cannot handle: {message!r}"
        )

    # -- children, timers, watches -----------------------------------------------------------------

    async def spawn(
        self,
        factory: Callable[[], Actor[N]],
        *,
        name: str | None = None,
        mailbox: Mailbox | None = None,
        shutdown: float | _Default | None = DEFAULT,
    ) -> ActorRef[N]:
        """Start a child actor: it is stopped (before this actor's ``on_stop``) when this one
        stops, and appears under it in snapshots. Arguments, errors and cancellation as
        :meth:`ActorSystem.spawn`."""
        return await self._runtime().spawn_child(factory, name, mailbox, shutdown)

    def send_after(self, delay: float, message: M, *, key: Hashable | None = None) -> Hashable:
        """Tell this actor ``message`` after ``delay`` seconds (on the system's clock).

        Returns the timer's key (``key``, or a new one); starting a timer with the key of a
        running one replaces it. Timers are cancelled when the actor stops or restarts. A timer
        that finds the mailbox full under ``"block"`` sends its message to dead letters
        (``MAILBOX_FULL``): a timer never waits.
        """
        return self._runtime().start_timer(delay, message, key, repeat=False)

    def send_every(self, interval: float, message: M, *, key: Hashable | None = None) -> Hashable:
        """Tell this actor ``message`` every ``interval`` seconds, the first after one interval.

        Each delivery is scheduled ``interval`` after the previous one was due (a fixed rate, no
        drift). Otherwise as :meth:`send_after`.
        """
        return self._runtime().start_timer(interval, message, key, repeat=True)

    def cancel_timer(self, key: Hashable) -> bool:
        """Cancel the timer with ``key``; ``False`` if there was none. A message the timer
        already delivered stays delivered."""
        return self._runtime().cancel_timer(key)

    def monitor(self, ref: ActorRef[Any]) -> None:
        """Get ``on_terminated(notice)`` when ``ref`` stops (at once if it has stopped already)."""
        self._runtime().monitor(ref._cell)

    def demonitor(self, ref: ActorRef[Any]) -> None:
        """Stop monitoring ``ref`` (a notice already queued is still delivered)."""
        self._runtime().demonitor(ref._cell)

    def link(self, ref: ActorRef[Any]) -> None:
        """Link this actor and ``ref``: if either fails (or is killed), the other fails too, with
        ``LinkedActorFailed`` (or, if it traps links, gets ``on_terminated``). A graceful stop
        does not propagate. Linking to an actor that has already failed fails this one at once."""
        self._runtime().link(ref._cell)

    def unlink(self, ref: ActorRef[Any]) -> None:
        """Remove the link with ``ref`` (both directions)."""
        self._runtime().unlink(ref._cell)

    def stop(self) -> None:
        """End this actor's run gracefully: messages already queued are handled first, as for
        ``ref.stop()``. Unlike ``ref.stop()`` (a stop by hand), it is the actor ending on its own:
        a supervisor restarts a permanent child that does this (OTP's normal exit)."""
        self._runtime().request_stop()
