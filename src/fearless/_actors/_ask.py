"""Asks and their replies: the envelope an ask travels in, how it is answered, how the asker
turns the answer into a result or an exception, and deadlock detection.

Every ask has its own reply waiter (a slot that is claimed once): the actor answers it, and an
asker that stopped waiting (timed out, cancelled) has revoked it, so a late reply can never reach
another ask; it goes to dead letters instead (``REPLY_UNDELIVERED``).

Deadlocks: an ask made from an actor's own task carries the chain of asks already waiting on
that actor (``Ask.chain``). Asking the asking actor itself, or any actor in that chain that is
still waiting, could never be answered, and raises ``DeadlockError`` at once.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, final

import anyio

from .._backend import Waiter
from .._exceptions import ActorStopped, DeadlockError, MessageDropped

if TYPE_CHECKING:
    from ._runtime import ActorRuntime

__all__ = [
    "DROPPED_ASK",
    "RAISED",
    "REPLY",
    "STOPPED",
    "Ask",
    "Chain",
    "ErrorReply",
    "asking_actor",
    "chain_of",
    "current_runtime",
    "raise_answer",
]

current_runtime: ContextVar[ActorRuntime | None] = ContextVar(
    "fearless_current_actor", default=None
)
"""The actor whose task this is (set by the runtime as the task starts)."""

Chain = tuple[tuple["ActorRuntime", Waiter], ...]
"""Asks waiting on an actor's current message: (asking actor, its reply waiter) pairs."""


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


# How an ask is answered: its reply waiter is claimed with (kind, payload).
REPLY: Final = "reply"  # payload: the handler's return value
RAISED: Final = "raised"  # payload: the handler's exception
STOPPED: Final = "stopped"  # the actor stopped before handling it
DROPPED_ASK: Final = "dropped"  # payload: the overflow policy that dropped it


class Ask:
    """An ask on its way: the message, the asker's reply waiter, and the chain of asks waiting
    on it (for deadlock detection)."""

    __slots__ = ("chain", "message", "waiter")

    def __init__(self, message: Any, waiter: Waiter, chain: Chain) -> None:
        self.message = message
        self.waiter = waiter
        self.chain = chain

    def answer(self, kind: str, payload: object) -> bool:
        """Give the asker its answer; ``False`` if it has stopped waiting (or its loop is gone)."""
        waiter = self.waiter
        return waiter.claim((kind, payload)) and waiter.wake()


def raise_answer(name: str, value: tuple[str, Any], message: Any) -> Any:
    """Turn the answer to an ask of ``message`` (to the actor ``name``) into its result or its
    exception."""
    kind, payload = value
    if kind is REPLY:
        if payload.__class__ is ErrorReply:
            raise payload.error
        return payload
    if kind is RAISED:
        raise payload
    if kind is STOPPED:
        raise ActorStopped(name)
    assert kind is DROPPED_ASK, kind
    raise MessageDropped(name, message, payload)


def asking_actor(target: ActorRuntime) -> ActorRuntime | None:
    """The actor whose handler is asking ``target`` (``None`` for any other task), after checking
    that the reply could come: ``DeadlockError`` if ``target`` is that actor, or an actor still
    waiting (through a chain of asks) for that actor's current message to be handled."""
    asker = current_runtime.get()
    if asker is None or asker.task_id != anyio.get_current_task().id:
        return None  # not asked from an actor's own task
    if target is asker:
        raise DeadlockError(
            f"actor {asker.name!r} asked itself: the reply could never come. Use tell, or call "
            "the code directly"
        )
    for waiting, reply in asker.chain:
        if waiting is target and reply.alive():  # alive: it has not timed out or given up
            raise DeadlockError(
                f"actor {asker.name!r} asked {target.name!r}, which is waiting on its reply: "
                "the reply could never come. Use tell and have the answer sent back as a "
                "message instead"
            )
    return asker


def chain_of(asker: ActorRuntime | None, reply: Waiter) -> Chain:
    """The asks that will be waiting on the asked actor's handler: the asker's own, and those
    already waiting on the asker."""
    return () if asker is None else (*asker.chain, (asker, reply))
