"""What the actor runtime tells you: dead letters, termination notices, snapshots, and the
``Request[R]`` base class that types an ask's reply."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, final

if TYPE_CHECKING:
    from ._ref import Ref

__all__ = [
    "ActorSnapshot",
    "DeadLetter",
    "DeadLetterReason",
    "ExitReason",
    "Request",
    "SystemSnapshot",
    "Terminated",
]

R_co = TypeVar("R_co", covariant=True)


class Request(Generic[R_co]):
    """Base class of a message that answers with an ``R_co``: ``ask`` on it is typed to return one.

    ::

        @dataclass
        class Balance(fearless.Request[int]):
            account: str

        balance = await bank.ask(Balance("alice"))  # mypy: int

    The handler's return value is the reply; the type checker cannot see that the handler returns
    an ``R_co`` for it, so keep the two in step (a test that asks is the check).
    """

    __slots__ = ()


class DeadLetterReason(enum.Enum):
    """Why a message ended in dead letters."""

    ACTOR_STOPPED = "actor_stopped"
    """It arrived after its actor stopped, or was still queued when it stopped."""
    DROPPED_NEWEST = "dropped_newest"
    """The mailbox was full and its policy is ``"drop_newest"``: this message was dropped."""
    DROPPED_OLDEST = "dropped_oldest"
    """The mailbox was full and its policy is ``"drop_oldest"``: a newer message evicted it."""
    MAILBOX_FULL = "mailbox_full"
    """A timer's message found its actor's ``"block"`` mailbox full (a timer cannot wait); or a
    ``tell`` to a remote actor (``fearless.nats``) found its mailbox full."""
    HANDLER_FAILED = "handler_failed"
    """Its handler raised (``error`` is the exception); the actor failed."""
    KILLED = "killed"
    """Its handler was running when the actor was killed (or failed through a link)."""
    REPLY_UNDELIVERED = "reply_undelivered"
    """A reply to an ask whose caller had stopped waiting (timed out, cancelled)."""
    UNDECODABLE = "undecodable"
    """A message from another process that did not decode into a type the actor takes
    (``fearless.nats``): ``message`` holds its raw payload and the class name it claimed."""
    NO_RESPONDER = "no_responder"
    """A ``tell`` to a remote actor (``fearless.nats``) that no process served when it arrived,
    or whose actor had stopped there."""
    REFUSED = "refused"
    """A ``tell`` to a remote actor's durable mailbox that the server refused for another reason
    than a full mailbox (``error`` says why)."""


@final
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be delivered, or whose handler failed."""

    message: Any
    """The message (for ``REPLY_UNDELIVERED``, the reply)."""
    recipient: str
    """The name of the actor it was for (or, for a reply, the actor that replied)."""
    reason: DeadLetterReason
    """Why it is here."""
    error: BaseException | None = None
    """The exception, for ``HANDLER_FAILED`` and ``KILLED`` (when there was one)."""


ExitReason = Literal["stopped", "shutdown", "killed", "failed", "node_down"]
"""How an actor ended: ``"stopped"`` (gracefully: ``stop()``, or its parent or the system stopping
it in time); ``"shutdown"`` (killed by the runtime while stopping its parent or the system: its
shutdown timeout ran out, its parent was killed, or the system's block ended with an error or was
cancelled); ``"killed"`` (``kill()``); ``"failed"`` (its handler, a hook or its factory raised,
or an actor linked to it failed). Only ``"killed"`` and ``"failed"`` are abnormal: they are what
a link propagates (OTP's ``shutdown`` is not an error either). ``"node_down"`` is only ever the
reason of a remote actor's notice (``fearless.nats``): the process serving it stopped
heartbeating (killed, or cut off); nothing is known of how the actor itself ended."""


@final
@dataclass(frozen=True, slots=True, eq=False)
class Terminated:
    """The notice that an actor has stopped: delivered to its monitors (``on_terminated``) and
    returned by ``wait_stopped``."""

    ref: Ref[Any]
    """The actor that stopped (an ``ActorRef``; for a remote actor, its ``RemoteRef``)."""
    reason: ExitReason
    """How it ended."""
    error: BaseException | None = None
    """The exception, when ``reason`` is ``"failed"``."""

    @property
    def name(self) -> str:
        """The stopped actor's name."""
        return self.ref.name

    @property
    def failed(self) -> bool:
        """True if it ended abnormally (``"failed"`` or ``"killed"``): what a link propagates."""
        return self.reason == "failed" or self.reason == "killed"


ActorState = Literal["starting", "running", "stopping", "restarting", "stopped"]
"""``"restarting"``: its instance ended and its supervisor is about to start a new one (now, or
after a backoff); its mailbox stays open meanwhile."""


@final
@dataclass(frozen=True, slots=True)
class ActorSnapshot:
    """One actor in :meth:`ActorSystem.snapshot`, with its children."""

    name: str
    actor_type: str
    """The class name of its current instance (or of its factory's result, to be)."""
    state: ActorState
    mailbox_depth: int
    mailbox_capacity: float
    overflow: str
    handled: int
    """Messages its handlers completed (across restarts)."""
    failures: int
    restarts: int
    dead_letters: int
    """Messages meant for it that went to dead letters."""
    children: tuple[ActorSnapshot, ...] = field(default=())


@final
@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    """The tree of running actors (top-level actors in start order, each with its children)."""

    name: str
    actors: tuple[ActorSnapshot, ...]
    dead_letters: int
    """Dead letters since the system started."""

    def render(self) -> str:
        """The tree as text, one actor a line (the demo prints it)."""
        lines = [f"{self.name}  (dead letters: {self.dead_letters})"]

        def walk(actors: tuple[ActorSnapshot, ...], prefix: str) -> None:
            for i, actor in enumerate(actors):
                last = i == len(actors) - 1
                capacity = (
                    "inf" if actor.mailbox_capacity == float("inf") else actor.mailbox_capacity
                )
                lines.append(
                    f"{prefix}{'└── ' if last else '├── '}{actor.name} [{actor.actor_type}] "
                    f"{actor.state}, mailbox {actor.mailbox_depth}/{capacity} {actor.overflow}, "
                    f"handled {actor.handled}, failures {actor.failures}, "
                    f"restarts {actor.restarts}, dead letters {actor.dead_letters}"
                )
                walk(actor.children, prefix + ("    " if last else "│   "))

        walk(self.actors, "")
        return "\n".join(lines)
