"""Every public exception fearless raises, in one place.

fearless reuses anyio's exception types wherever they fit, so code written against anyio memory
object streams catches fearless's errors unchanged. Where fearless needs to say more (which items
were not sent), it subclasses the anyio type, so ``except anyio.BrokenResourceError`` still works::

    Exception
    ├── anyio.WouldBlock             a *_nowait call would have had to wait (reused as is)
    │   └── MailboxFull              ``tell`` to a full mailbox whose policy is ``"block"``
    ├── anyio.EndOfStream            every sender is closed and the buffer is drained (reused)
    ├── anyio.ClosedResourceError    you closed this endpoint, then used it
    │   └── SendClosedError          ... and these items were not sent (``.unsent``)
    ├── anyio.BrokenResourceError    the other side went away
    │   ├── SendBrokenError          every receiver is closed; these items were not sent
    │   └── ActorStopped             an ask to an actor that stopped (or stops) before replying
    ├── Lagged                       a broadcast subscription fell behind and lost ``.missed`` items
    ├── MessageDropped               an ask whose message the mailbox's overflow policy dropped
    ├── LinkedActorFailed            why an actor failed: an actor linked to it failed
    ├── ActorStartError              an actor's factory or ``on_start`` raised (the cause)
    ├── HandlerFailed                an ask's handler failed with a BaseException (the cause)
    └── RestartIntensityExceeded     a supervisor gave up: too many restarts too fast
    RuntimeError
    ├── EventLoopBlockingError       a ``*_blocking`` call on a thread that runs an event loop
    ├── AwaitInCriticalSectionError  (debug mode) a task awaited inside ``with guarded.lock()``
    └── DeadlockError                an ask that could only be answered after the asker's reply
    ValueError
    └── ActorNameTaken               ``spawn(name=...)`` with a name a running actor has

Every one of them pickles to an equal copy (same type, ``args``, message and attributes), so it
can cross a process boundary; ``LinkedActorFailed`` leaves its live ``Terminated`` notice behind
(see there). As for any exception, pickling drops the traceback, ``__cause__`` and ``__context__``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import anyio

__all__ = [
    "ActorNameTaken",
    "ActorStartError",
    "ActorStopped",
    "AwaitInCriticalSectionError",
    "DeadlockError",
    "EventLoopBlockingError",
    "HandlerFailed",
    "Lagged",
    "LinkedActorFailed",
    "MailboxFull",
    "MessageDropped",
    "RestartIntensityExceeded",
    "SendBrokenError",
    "SendClosedError",
]


_E = TypeVar("_E", bound=BaseException)


def _rebuild(cls: type[_E], args: tuple[Any, ...]) -> _E:
    """Unpickle a fearless exception: a bare instance with its ``args``; pickle then restores its
    attributes. Pickles name this function, so it keeps its name and place."""
    return cls.__new__(cls, *args)


class _FearlessError(Exception):
    """Base of every exception here: it pickles as its ``args`` (the message) and its attributes.

    Unpickling does not call ``__init__``, whose parameters are not the ``args`` the exception
    carries (``BaseException``'s own pickling assumes they are: it would call
    ``MailboxFull(message_string)``). The copy reuses the message built when the error happened,
    so what only served to build it (an ``ActorStartError``'s cause, say) does not travel, and a
    subclass with another ``__init__`` pickles as well.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args), self.__dict__


class _CarriesUnsent(_FearlessError):
    """Mixin: a failed send hands its items back instead of losing them silently."""

    unsent: tuple[Any, ...]
    """The items that were not enqueued, in the order they were given."""

    @property
    def item(self) -> Any:
        """The first item that was not sent (for ``send``, the item itself); ``None`` if none."""
        return self.unsent[0] if self.unsent else None


class SendClosedError(_CarriesUnsent, anyio.ClosedResourceError):
    """A send on a sender that was closed (by this task or another) before the item went in."""

    def __init__(self, unsent: tuple[Any, ...]) -> None:
        super().__init__(f"this sender is closed; {len(unsent)} item(s) were not sent")
        self.unsent = unsent


class SendBrokenError(_CarriesUnsent, anyio.BrokenResourceError):
    """A send on a channel whose receivers are all closed: nobody could ever receive the item."""

    def __init__(self, unsent: tuple[Any, ...]) -> None:
        super().__init__(f"every receiver is closed; {len(unsent)} item(s) were not sent")
        self.unsent = unsent


class Lagged(_FearlessError, Exception):
    """A broadcast subscription fell more than its capacity behind: ``missed`` items are gone.

    Raised by a subscription's receive under ``on_lag="error"``. The subscription has already
    moved on to the oldest item the broadcast still keeps; receive again to get it.
    """

    missed: int
    """How many items this subscription lost (exact)."""

    def __init__(self, missed: int) -> None:
        super().__init__(f"this subscription fell behind and missed {missed} item(s)")
        self.missed = missed


class EventLoopBlockingError(_FearlessError, RuntimeError):
    """A blocking call was made from a thread that is running an event loop.

    It would block the loop, and with it the very tasks that could unblock the call: a deadlock.
    Use the ``await`` form in async code, or call the blocking form from another thread (for
    example through ``anyio.to_thread.run_sync``).
    """


class AwaitInCriticalSectionError(_FearlessError, RuntimeError):
    """A task was suspended (it awaited) inside a debug-mode ``with guarded.lock()`` block.

    Raised when the block exits, after the lock has been released. The lock was held while the task
    was suspended, which can block every other task that wants it, or deadlock the event loop.
    """


# -- actors -----------------------------------------------------------------------------------


class MailboxFull(_FearlessError, anyio.WouldBlock):
    """``tell`` found the actor's mailbox full, and its overflow policy is ``"block"``.

    Nothing was enqueued and nothing went to dead letters: the caller has the message back
    (``.message``) and decides. ``await ref.send(message)`` waits for room instead.
    """

    message: Any
    """The message that was not enqueued."""

    def __init__(self, name: str, message: Any) -> None:
        super().__init__(f"the mailbox of actor {name!r} is full; the message was not enqueued")
        self.message = message


class ActorStopped(_FearlessError, anyio.BrokenResourceError):
    """An ask to an actor that had stopped, or that stopped before it handled the message.

    Raised at once when the actor is already stopped (never a timeout). The message went to
    dead letters if it had been enqueued.
    """

    name: str
    """The stopped actor's name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"actor {name!r} is stopped; the message was not handled")
        self.name = name


class MessageDropped(_FearlessError, Exception):
    """An ask's message was dropped by the mailbox's overflow policy (``"drop_newest"`` at once,
    ``"drop_oldest"`` when a newer message evicted it). The message is in dead letters."""

    message: Any
    """The dropped message."""

    def __init__(self, name: str, message: Any, policy: str) -> None:
        super().__init__(f"the mailbox of actor {name!r} dropped the message ({policy})")
        self.message = message


class DeadlockError(_FearlessError, RuntimeError):
    """An ask that could never be answered: the target is the asking actor itself, or an actor
    that is waiting (through a chain of asks) for the asking actor's own reply.

    Raised at once, before anything is enqueued, instead of hanging until a timeout.
    """


class LinkedActorFailed(_FearlessError, Exception):
    """The reason an actor failed: an actor it was linked to failed (``.terminated`` says which,
    and why; the original exception is also the ``__cause__``).

    Pickled, it carries the linked actor's ``name``, ``reason`` and ``error``, but not the
    ``Terminated`` notice: that holds an ``ActorRef``, a handle on an actor in this process, which
    means nothing in another one. The unpickled copy's ``terminated`` is ``None``. (``error`` goes
    as it is, so it must pickle too.)
    """

    terminated: Any
    """The linked actor's ``Terminated`` notice; ``None`` in a copy that was unpickled."""
    name: str
    """The linked actor's name."""
    reason: str
    """How the linked actor ended: ``"failed"`` or ``"killed"``."""
    error: BaseException | None
    """The linked actor's exception, when ``reason`` is ``"failed"``."""

    def __init__(self, terminated: Any) -> None:
        super().__init__(f"linked actor {terminated.name!r} {terminated.reason}")
        self.terminated = terminated
        self.name = terminated.name
        self.reason = terminated.reason
        self.error = terminated.error

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args), {**self.__dict__, "terminated": None}


class ActorStartError(_FearlessError, Exception):
    """An actor could not start: its factory or its ``on_start`` raised (the ``__cause__``)."""

    name: str
    """The actor that failed to start."""

    def __init__(self, name: str, cause: BaseException | None = None) -> None:
        why = "" if cause is None else f": {type(cause).__name__}: {cause}"
        super().__init__(f"actor {name!r} failed to start{why}")
        self.name = name


class HandlerFailed(_FearlessError, Exception):
    """What an asker gets when the handler failed with a ``BaseException`` that is not an
    ``Exception``: a cancellation that was not the actor's own (on asyncio, the handler awaited
    a future cancelled elsewhere), or another ``BaseException`` subclass. Raising that exception
    itself in the asker would be mistaken for the asker's own cancellation (a task group drops
    it) or escape its ``except Exception``; it is the ``__cause__`` instead. An ``Exception``
    from the handler reaches the asker as it was raised."""

    name: str
    """The actor whose handler failed."""

    def __init__(self, name: str, cause: BaseException | None = None) -> None:
        why = "" if cause is None else f" with {type(cause).__name__}: {cause}"
        super().__init__(f"the handler of actor {name!r} failed{why}")
        self.name = name
        self.__cause__ = cause


class RestartIntensityExceeded(_FearlessError, Exception):
    """A supervisor gave up: its children needed more than ``max_restarts`` restarts within
    ``within`` seconds. It has stopped its remaining children, and fails with this; its own
    supervisor handles that as a child failure (escalation). At the top, an actor that exhausts
    its own budget is stopped and the system goes on, unless it was made with
    ``ActorSystem(escalate=True)``: then the block raises this."""

    supervisor: str
    """The supervisor that gave up."""
    max_restarts: int
    within: float
    cause: BaseException | None
    """The last failure, the one too many (also the ``__cause__``)."""

    def __init__(
        self, supervisor: str, max_restarts: int, within: float, cause: BaseException | None
    ) -> None:
        why = "" if cause is None else f" (last: {type(cause).__name__}: {cause})"
        super().__init__(
            f"supervisor {supervisor!r} gave up: more than {max_restarts} restart(s) within "
            f"{within} s{why}"
        )
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.within = within
        self.cause = cause
        self.__cause__ = cause

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        super().__setstate__(state)
        self.__cause__ = self.cause  # the constructor's promise holds in an unpickled copy too


class ActorNameTaken(_FearlessError, ValueError):
    """``spawn(name=...)`` with a name that a running actor already has (names are unique per
    system, and released when their actor stops)."""

    name: str
    """The name that is taken."""

    def __init__(self, name: str, detail: str | None = None) -> None:
        super().__init__(
            detail
            or f"an actor named {name!r} is already running: use system.lookup(name) to reach "
            "it, system.get_or_spawn(...) to reuse it or start it in one call, or stop it first"
        )
        self.name = name
