"""``ActorContext``: what the framework gives a running actor, as one object.

An actor reaches it as ``self.context`` (Akka's ``ActorContext`` is the model): its own ref and
name, its system, children, timers, death watch and stopping. Keeping all of it on one attribute
leaves every other attribute name to the actor's author: ``self.name = ...`` in ``__init__`` is
the user's own field, never the framework's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, final

from ._actor import DEFAULT, Actor, _Default
from ._mailbox import Mailbox

if TYPE_CHECKING:
    from ._ref import ActorRef, Ref
    from ._runtime import ActorRuntime
    from ._system import ActorSystem
    from ._watch import DeathWatch

__all__ = ["ActorContext"]

M = TypeVar("M")
N = TypeVar("N")


def _remote_watch(ref: object) -> Any:
    """A remote ref's way to start watching it (``fearless.nats``), or None for other refs."""
    from ._ref import ActorRef

    if isinstance(ref, ActorRef):
        return None
    return getattr(ref, "_start_watch", None)


def _watch_of(ref: object, what: str) -> DeathWatch:
    from ._ref import ActorRef

    if not isinstance(ref, ActorRef):
        raise TypeError(f"{what} takes an ActorRef, got {ref!r}")
    return ref._runtime.watch


@final
class ActorContext(Generic[M]):
    """The running actor's view of the framework (``self.context`` inside an actor).

    Available from ``on_start`` on (not in ``__init__``), and for the actor's own task: its
    methods are not safe to call from other tasks or threads (give those ``context.ref``).
    """

    __slots__ = ("_runtime",)

    _runtime: ActorRuntime

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("ActorContext has no public constructor: use self.context in an Actor")

    @classmethod
    def _create(cls, runtime: ActorRuntime) -> Self:
        self = object.__new__(cls)
        self._runtime = runtime
        return self

    def __repr__(self) -> str:
        return f"<ActorContext of {self._runtime.name!r}>"

    # -- who and where -----------------------------------------------------------------------------

    @property
    def ref(self) -> ActorRef[M]:
        """This actor's own reference (to pass to others so that they can reply)."""
        return self._runtime.ref

    @property
    def name(self) -> str:
        """This actor's name (given to ``spawn``, or made up from its type: ``"Counter#7"``)."""
        return self._runtime.name

    @property
    def system(self) -> ActorSystem:
        """The system it runs in."""
        return self._runtime.system

    # -- children ----------------------------------------------------------------------------------

    async def spawn(
        self,
        factory: Callable[[], Actor[N]],
        *,
        name: str | None = None,
        mailbox: Mailbox | None = None,
        shutdown: float | _Default | None = DEFAULT,
    ) -> ActorRef[N]:
        """Start a child actor and return its ref once its ``on_start`` has returned. The child
        is stopped (before this actor's ``on_stop``) when this one stops, appears under it in
        snapshots, and is not supervised: if it fails, it ends with reason ``"failed"`` (monitor
        it to know; use a ``Supervisor`` for children that are restarted). A stop of the child is
        final. ``name``, ``mailbox`` and ``shutdown``, and the errors, as
        :meth:`ActorSystem.spawn`; an actor that is stopping cannot spawn (``RuntimeError``).

        Cancellation: if cancelled while the child starts, the child is killed."""
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning an Actor, got {factory!r}")
        if mailbox is not None and not isinstance(mailbox, Mailbox):
            raise TypeError(f"mailbox must be a fearless.Mailbox, got {mailbox!r}")
        return await self._runtime.spawn_child(factory, name, mailbox, shutdown)

    # -- timers ------------------------------------------------------------------------------------

    def send_after(self, delay: float, message: M, *, key: Hashable | None = None) -> Hashable:
        """Tell this actor ``message`` after ``delay`` seconds (on the system's clock).

        Returns the timer's key (``key``, or a new one); starting a timer with the key of a
        running one replaces it. ``delay`` must be a number ``>= 0`` (``ValueError`` otherwise).
        Timers are cancelled when the actor stops or restarts. A timer that finds the mailbox
        full under ``"block"`` sends its message to dead letters (``MAILBOX_FULL``): a timer
        never waits.
        """
        return self._runtime.start_timer(delay, message, key, repeat=False, system=False)

    def send_every(self, interval: float, message: M, *, key: Hashable | None = None) -> Hashable:
        """Tell this actor ``message`` every ``interval`` seconds, the first after one interval.

        Each delivery is scheduled ``interval`` after the previous one was due (a fixed rate, no
        drift); ``interval`` must be ``> 0``. Otherwise as :meth:`send_after`.
        """
        return self._runtime.start_timer(interval, message, key, repeat=True, system=False)

    def cancel_timer(self, key: Hashable) -> bool:
        """Cancel the timer with ``key``; ``False`` if there was none. A message the timer
        already delivered stays delivered."""
        return self._runtime.cancel_timer(key)

    # -- death watch -------------------------------------------------------------------------------

    def monitor(self, ref: Ref[Any]) -> None:
        """Get ``on_terminated(notice)`` when ``ref`` stops, however it stops (at once if it has
        stopped already). A restart is not a stop: it sends no notice. ``ref`` may be a remote
        actor's ref (``fearless.nats.RemoteRef``): the notice then comes when no process serves
        it any more, with the reason ``"stopped"`` or ``"node_down"``, within the bound that
        ``RemoteRef.wait_stopped`` documents."""
        remote = _remote_watch(ref)
        if remote is not None:
            self._runtime.watch.monitor_remote(ref, remote)
            return
        self._runtime.watch.monitor(_watch_of(ref, "monitor"))

    def demonitor(self, ref: Ref[Any]) -> None:
        """Stop monitoring ``ref`` (a notice already queued is still delivered)."""
        if _remote_watch(ref) is not None:
            self._runtime.watch.demonitor_remote(ref)
            return
        self._runtime.watch.demonitor(_watch_of(ref, "demonitor"))

    def link(self, ref: ActorRef[Any]) -> None:
        """Link this actor and ``ref``: if either fails (or is killed), the other fails too, with
        ``LinkedActorFailed`` (or, if it traps links, gets ``on_terminated``). A graceful stop
        does not propagate, nor does a restart. Linking to an actor that has already failed fails
        this one at once; linking to itself is a ``ValueError``."""
        self._runtime.watch.link(_watch_of(ref, "link"))

    def unlink(self, ref: ActorRef[Any]) -> None:
        """Remove the link with ``ref`` (both directions)."""
        self._runtime.watch.unlink(_watch_of(ref, "unlink"))

    # -- stopping ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """End this actor gracefully, as ``ref.stop()`` does: it returns at once, and the actor
        stops once the messages queued before the stop are handled. For an actor started with
        ``system.spawn`` (or ``context.spawn``) this is final: only failures restart a top-level
        actor. Under an explicit ``Supervisor`` it is a normal exit, and the child's restart type
        decides: a permanent child is started again (OTP's rule)."""
        self._runtime.request_stop()
