"""``ActorRef[M]``: the only way to reach an actor.

Specification (``docs/actors.md`` is the user guide):

``tell(message)``
    Never waits, from any task or thread. A full mailbox does what its policy says: ``"block"``
    raises ``MailboxFull`` (nothing enqueued), the drop policies send a message to dead letters.
    To a stopped actor: the message goes to dead letters (``ACTOR_STOPPED``); no error, as in
    Erlang, since a message can always race with the actor's end.
``await send(message)``
    As ``tell``, but under ``"block"`` it waits for room instead of raising (backpressure), first
    come first served. Cancellation: a cancelled ``send`` did not enqueue the message.
``await ask(message, timeout=None)``
    Enqueues the message (waiting for room under ``"block"``) and returns the handler's return
    value. One timeout covers both waits, and raises ``TimeoutError``; a reply that comes later
    goes to dead letters (``REPLY_UNDELIVERED``), never to another ask (each ask has its own
    reply slot). Raises ``ActorStopped`` at once if the actor is stopped, or when it stops before
    handling the message; the handler's exception if it raised; ``MessageDropped`` if the policy
    dropped the message; ``DeadlockError`` at once if the actor asked is the asking actor, or an
    actor waiting on it through a chain of asks. Cancellation: cancelled while waiting for room,
    nothing was enqueued; cancelled after, the message stays queued and is handled, and its reply
    goes to dead letters.
``ask_blocking(message, timeout=None)``
    ``ask`` for OS threads (``EventLoopBlockingError`` at once on an event-loop thread).
``stop()``, ``kill()``, ``await wait_stopped()``
    A graceful stop (handle what is queued, then stop), a kill (cancel now), and waiting for
    either; see ``fearless._actors._runtime``. ``stop`` and ``kill`` never wait, are idempotent, and
    are safe from any thread.
"""

from __future__ import annotations

import time
from threading import get_ident as _get_ident
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, final, overload

import anyio

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import ActorStopped, MailboxFull, MessageDropped
from .._parking import CLOSED, ROOM, Parked
from ._ask import REPLY, Ask, ErrorReply, asking_actor, chain_of, current_runtime, raise_answer
from ._mailbox import ACCEPTED, DROPPED, FULL, MailboxStatistics
from ._messages import DeadLetter, DeadLetterReason, Request, Terminated

if TYPE_CHECKING:
    from ._runtime import ActorRuntime

__all__ = ["ActorRef", "Ref"]

M_contra = TypeVar("M_contra", contravariant=True)
R = TypeVar("R")

# Sends a ref completes without waiting before it yields once (docs/design/concurrency.md, "The
# scheduling budget").
_YIELD_EVERY = 32


def _reply_stands(_: object) -> bool:
    return False  # a reply that arrived as the asker was cancelled is returned, not discarded


def _needs_guard(runtime: ActorRuntime) -> bool:
    """Whether an ask's reply waiter needs its own lock: whoever answers it (the actor's task;
    under ``"drop_oldest"``, any thread whose message evicts it) may race with the asker revoking
    it (timed out, cancelled) only from another thread than the asker's."""
    return runtime.system._thread != _get_ident() or runtime.mailbox.overflow == "drop_oldest"


@final
class ActorRef(Generic[M_contra]):
    """A handle on an actor that takes messages of type ``M_contra``.

    Made only by ``spawn``. Safe to share between tasks, event loops and threads; cheap to keep.
    Contravariant: an ``ActorRef[Animal]`` is an ``ActorRef[Dog]``.
    """

    __slots__ = ("__weakref__", "_budget", "_runtime")

    _runtime: ActorRuntime
    _budget: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("ActorRef has no public constructor; use ActorSystem.spawn()")

    @classmethod
    def _create(cls, runtime: ActorRuntime) -> Self:
        self = object.__new__(cls)
        self._runtime = runtime
        self._budget = _YIELD_EVERY
        return self

    @property
    def name(self) -> str:
        """The actor's name (given to ``spawn``, or made up from its type)."""
        return self._runtime.name

    @property
    def is_alive(self) -> bool:
        """False once the actor has stopped (a hint: it can stop right after you looked)."""
        return self._runtime.watch.notice is None

    def __repr__(self) -> str:
        return f"<ActorRef {self._runtime.name!r} {self._runtime.state}>"

    def mailbox_statistics(self) -> MailboxStatistics:
        """A snapshot of the actor's mailbox."""
        return self._runtime.mailbox.statistics()

    # -- fire and forget ---------------------------------------------------------------------------

    def tell(self, message: M_contra) -> None:
        """Enqueue ``message`` without waiting; safe from any thread.

        On a full mailbox: ``"block"`` raises ``MailboxFull`` (carrying the message; nothing
        enqueued, nothing in dead letters), ``"drop_newest"`` sends this message to dead letters,
        ``"drop_oldest"`` the oldest one. To a stopped actor, the message goes to dead letters.
        """
        cell = self._runtime
        outcome = cell.mailbox.put(message)
        if outcome is not ACCEPTED:
            if outcome is FULL:
                raise MailboxFull(cell.name, message)
            cell.dropped(outcome, message)

    async def send(self, message: M_contra) -> None:
        """Enqueue ``message``, waiting while a ``"block"`` mailbox is full (backpressure).

        Under the drop policies and for a stopped actor it behaves as :meth:`tell` (never waits).
        Ordering: waiting senders get room in the order they started waiting, and a later
        ``tell`` never overtakes them. Cancellation: a cancel point; if cancelled, the message was
        not enqueued. It yields to the scheduler at least once every 32 sends that did not wait.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            self._budget = _YIELD_EVERY
            await backend.checkpoint()
        cell = self._runtime
        outcome = cell.mailbox.put(message)
        if outcome is ACCEPTED:
            return
        if outcome is FULL:
            outcome = await self._wait_room(backend, message)
            if outcome is ACCEPTED:
                return
        cell.dropped(outcome, message)

    async def _wait_room(self, backend: _backend.Backend, message: Any) -> object:
        """Under ``"block"``: park until a slot is reserved for us, then take it."""
        mailbox = self._runtime.mailbox
        entry = Parked(backend.new_waiter())
        outcome = mailbox.put_or_park(message, entry)
        if outcome is FULL:
            outcome = await entry.waiter.wait(
                lambda: mailbox.unpark_sender(entry), mailbox.undo_room
            )
            self._budget = _YIELD_EVERY
            if outcome is ROOM:
                outcome = mailbox.put_reserved(message)
        return outcome

    # -- request and reply -------------------------------------------------------------------------

    @overload
    async def ask(self, message: Request[R], *, timeout: float | None = None) -> R: ...  # noqa: ASYNC109

    @overload
    async def ask(self, message: M_contra, *, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109

    async def ask(self, message: Any, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send ``message`` and wait for the handler's return value.

        ``timeout`` (seconds, ``None``: no limit) covers everything: waiting for room and waiting
        for the reply; then ``TimeoutError``. Typed: a ``Request[R]`` message returns an ``R``.
        Raises ``ActorStopped`` (at once if the actor is stopped), the handler's exception,
        ``MessageDropped`` (a drop policy dropped it), or ``DeadlockError`` (at once: the actor
        asked is the asker, or waits on it through a chain of asks).

        Cancellation (and the timeout): while waiting for room, nothing was enqueued; after, the
        message stays queued and is handled, and its reply goes to dead letters
        (``REPLY_UNDELIVERED``), never to another ask. A reply that arrived just as the
        cancellation did is returned, and the cancellation is delivered at the next cancel
        point. Ordering: as :meth:`send`.
        """
        cell = self._runtime
        asker = None if current_runtime.get() is None else asking_actor(cell)
        if timeout is None:
            return await self._ask(message, asker)
        _backend.check_timeout(timeout)
        with anyio.move_on_after(timeout) as scope:
            return await self._ask(message, asker)
        assert scope.cancelled_caught
        raise TimeoutError(
            f"ask to actor {cell.name!r} timed out after {timeout} s; if the message was "
            "enqueued it will still be handled, and its reply goes to dead letters"
        )

    async def _ask(self, message: Any, asker: ActorRuntime | None) -> Any:
        backend = _enter()
        if backend.cancel_pending:
            await backend.checkpoint()
        cell = self._runtime
        if cell.watch.notice is not None:
            raise ActorStopped(cell.name)
        reply = backend.new_waiter(shared=_needs_guard(cell))
        envelope = Ask(message, reply, chain_of(asker, reply))
        outcome = cell.mailbox.put(envelope)
        if outcome is not ACCEPTED:
            if outcome is FULL:
                outcome = await self._wait_room(backend, envelope)
            if outcome is not ACCEPTED:
                self._not_enqueued(outcome, envelope)
        value = await reply.wait(reply.revoke, _reply_stands)
        if value[0] is REPLY and value[1].__class__ is not ErrorReply:
            return value[1]
        return raise_answer(cell.name, value, message)

    def _not_enqueued(self, outcome: object, envelope: Ask) -> None:
        """An ask's ``put`` did not simply enqueue it. Its own outcome is raised here, not
        answered through its waiter (a trio task must not wake itself before it parks)."""
        cell = self._runtime
        if outcome is CLOSED:
            raise ActorStopped(cell.name)
        if outcome is DROPPED:
            cell.system._publish(
                DeadLetter(envelope.message, cell.name, DeadLetterReason.DROPPED_NEWEST)
            )
            raise MessageDropped(cell.name, envelope.message, "drop_newest")
        cell.dropped(outcome, envelope)  # drop_oldest evicted an older message; ours is queued

    @overload
    def ask_blocking(self, message: Request[R], *, timeout: float | None = None) -> R: ...

    @overload
    def ask_blocking(self, message: M_contra, *, timeout: float | None = None) -> Any: ...

    def ask_blocking(self, message: Any, *, timeout: float | None = None) -> Any:
        """:meth:`ask`, from an OS thread that is not running an event loop.

        Blocks the thread; ``TimeoutError`` after ``timeout`` seconds in all. Raises
        ``EventLoopBlockingError`` at once on an event-loop thread (it would deadlock it).
        """
        wait = _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("ask_blocking")
        deadline = None if wait < 0 else time.monotonic() + wait
        cell = self._runtime
        if cell.watch.notice is not None:
            raise ActorStopped(cell.name)
        mailbox = cell.mailbox
        reply = _backend.ThreadWaiter(shared=True)
        envelope = Ask(message, reply, ())
        outcome = mailbox.put(envelope)
        if outcome is FULL:
            room = _backend.ThreadWaiter()
            entry = Parked(room)
            outcome = mailbox.put_or_park(envelope, entry)
            if outcome is FULL:
                try:
                    outcome = room.wait_blocking(
                        lambda: mailbox.unpark_sender(entry), mailbox.undo_room, _left(deadline)
                    )
                except TimeoutError:
                    raise TimeoutError(
                        f"ask to actor {cell.name!r} timed out after {timeout} s waiting for room "
                        "in its mailbox; the message was not enqueued"
                    ) from None
                if outcome is ROOM:
                    outcome = mailbox.put_reserved(envelope)
        if outcome is not ACCEPTED:
            self._not_enqueued(outcome, envelope)
        try:
            value = reply.wait_blocking(reply.revoke, _reply_stands, _left(deadline))
        except TimeoutError:
            raise TimeoutError(
                f"ask to actor {cell.name!r} timed out after {timeout} s; the message will still "
                "be handled, and its reply goes to dead letters"
            ) from None
        return raise_answer(cell.name, value, message)

    # -- lifecycle ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the actor gracefully: messages already in its mailbox are handled first, later
        ones go to dead letters. Returns at once; safe from any thread; idempotent. Stopped by
        hand, it is not restarted by its supervisor, whatever its restart type."""
        self._runtime.request_stop(by_hand=True)

    def kill(self) -> None:
        """Stop the actor now: its task is cancelled wherever it is, the message it was handling
        (if any) goes to dead letters, ``on_stop`` does not run. Returns at once; safe from any
        thread; idempotent. Killed by hand, it is not restarted by its supervisor."""
        self._runtime.kill(by_hand=True)

    async def wait_stopped(self) -> Terminated:
        """Wait until the actor has stopped, and return how (its ``Terminated`` notice).

        Returns at once if it has stopped already. Works from any event loop. Cancellation: a
        cancel point; cancelling the wait does not affect the actor.
        """
        return await self._runtime.wait_stopped()

    def wait_stopped_blocking(self, timeout: float | None = None) -> Terminated:
        """:meth:`wait_stopped` for OS threads; ``TimeoutError`` after ``timeout`` seconds."""
        return self._runtime.watch.wait_blocking(timeout)


def _left(deadline: float | None) -> float:
    if deadline is None:
        return -1
    return max(0.0, deadline - time.monotonic())


class Ref(Protocol[M_contra]):
    """What every ref to an actor offers, wherever the actor runs: an :class:`ActorRef` (this
    process) and a ``fearless.nats.RemoteRef`` (any process of a system on NATS) are both a
    ``Ref[M]``. Code that only tells, sends, asks and watches takes a ``Ref[M]`` and works with
    either; what is not transparent (latency, at-most-once tells, encoding) is in the remote
    actors guide.

    Each implementation documents its guarantees on its own methods; both keep the ones stated
    here: ``tell`` never waits (a full ``"block"`` mailbox raises ``MailboxFull``), ``send`` waits
    while the mailbox is full, ``ask`` returns the handler's reply (typed by ``Request[R]``) and
    raises ``ActorStopped`` at once when nobody can handle it, ``wait_stopped`` returns the
    ``Terminated`` notice; and an actor can ``monitor`` either (``context.monitor(ref)``).
    """

    @property
    def name(self) -> str:
        """The actor's name."""
        ...

    def tell(self, message: M_contra) -> None:
        """Enqueue ``message`` without waiting."""
        ...

    async def send(self, message: M_contra) -> None:
        """Enqueue ``message``, waiting while the mailbox is full. Cancellation: see the
        implementation (``ActorRef.send``, ``RemoteRef.send``)."""
        ...

    @overload
    async def ask(self, message: Request[R], *, timeout: float | None = None) -> R: ...  # noqa: ASYNC109

    @overload
    async def ask(self, message: M_contra, *, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109

    async def ask(self, message: Any, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send ``message`` and wait for the handler's return value. Cancellation: see the
        implementation (``ActorRef.ask``, ``RemoteRef.ask``)."""
        ...

    async def wait_stopped(self) -> Terminated:
        """Wait until the actor has stopped; return its notice. Cancellation: a cancelled wait
        changes nothing."""
        ...
