"""Remote actors, first part: an actor published under a name, and refs that reach it from any
process of the system.

Specification (so far; the registry, liveness, ``monitor`` and durable mailboxes are not built):

- **Publishing.** ``async with node.publish(ref, "counter", Msg):`` makes the local actor ``ref``
  reachable as ``counter`` on the subject ``fearless.<system>.actor.counter`` for as long as the
  block runs. ``Msg`` is the message type the actor takes: a class, or a union of classes
  (msgspec structs, dataclasses, plain types). ``pool=True`` publishes it as one member of a
  pool: every process publishing the same name with ``pool=True`` shares the messages (a NATS
  queue group), each message going to one member.
- **Finding.** ``node.actor("counter", Msg)`` returns a :class:`RemoteRef` with the interface of a
  local ``ActorRef``: ``tell``, ``send``, ``ask``.
- **Delivery.** ``tell`` publishes and returns (at-most-once: a message to a name nobody serves,
  or lost with a connection, is gone). ``send`` asks the serving process to enqueue the message
  and waits for its answer: it retries while the remote mailbox is full (backpressure across
  processes) and raises ``ActorStopped`` when nobody serves the name. ``ask`` is request/reply:
  the handler's return value decoded into ``R`` for a ``Request[R]`` message; a handler's
  exception (or an ``ErrorReply``) comes back as :class:`RemoteError` (its type name, message and
  the remote traceback as text; never unpickled); nobody serving the name gives
  ``ActorStopped`` at once, not a timeout.
- **Encoding.** A message travels as JSON with its class name in a header; the serving process
  decodes it into that class, which must be one of the published message type's classes. A
  payload that does not decode (a foreign publisher, an unknown class) becomes a dead letter of
  the serving system with the reason ``UNDECODABLE``, an ask gets a ``RemoteError`` saying so,
  and the actor keeps running.
- **Ordering.** The ``tell`` and ``send`` messages of one ref arrive in the order sent. An ask is
  enqueued by a task of its own, so it may overtake a ``tell`` sent just before it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import traceback
import types
import typing
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import anyio
import msgspec

from .._actors._messages import DeadLetterReason, Request
from .._actors._ref import ActorRef
from .._exceptions import ActorStopped, MailboxFull
from ._loop import barrier, wait_done_all
from ._outbox import Outbox
from ._registry import RemoteTerminated

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["Publication", "RemoteError", "RemoteRef"]

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)
R = TypeVar("R")

logger = logging.getLogger("fearless.nats")

KIND = "Fearless-Kind"
TYPE = "Fearless-Type"

# How long an ask without a timeout waits for its reply, and send for an answer (seconds).
ASK_LIMIT = 3600.0
# Backoff of a send whose remote mailbox is full.
FIRST_RETRY = 0.002
LAST_RETRY = 0.25


class RemoteError(Exception):
    """An ask's handler failed in another process (or refused with ``ErrorReply``): the
    exception's type name, message and the remote traceback, as text. Never unpickled."""

    def __init__(self, actor: str, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message} (in actor {actor!r}, in another process)")
        self.actor = actor
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback


def subject_of(system: str, name: str) -> str:
    return f"fearless.{system}.actor.{name}"


def message_classes(message_type: Any) -> dict[str, Any]:
    """The classes a published actor takes, by name (a class, or a union of classes)."""
    if isinstance(message_type, types.UnionType) or typing.get_origin(message_type) is typing.Union:
        members = typing.get_args(message_type)
    else:
        members = (message_type,)
    classes = {}
    for member in members:
        origin = typing.get_origin(member) or member
        if not isinstance(origin, type):
            raise TypeError(f"a message type must be a class or a union of classes: {member!r}")
        classes[origin.__name__] = member
    return classes


def reply_type(message: Any) -> Any:
    """``R`` for a ``Request[R]`` message (from its class's bases), else ``Any``."""
    for klass in type(message).__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is Request:
                (argument,) = typing.get_args(base)
                return argument
    return Any


_encoder = msgspec.json.Encoder()


class Publication:
    """A local actor reachable from other processes while the ``async with`` block runs.

    Messages are handed to the actor from the NATS client's loop (the application's own loop on
    asyncio; the client thread on trio: an actor's mailbox takes messages from any thread, and an
    ask waits on any loop), so a message costs no hop to the application's loop. A tell or send
    is enqueued in arrival order; each ask runs as a task of its own on the client's loop.
    """

    def __init__(
        self, node: Node, ref: ActorRef[Any], name: str, message_type: Any, pool: bool
    ) -> None:
        self._node = node
        self.ref = ref
        self.name = name
        self._classes = message_classes(message_type)
        self._decoders = {n: msgspec.json.Decoder(t) for n, t in self._classes.items()}
        self._pool = pool
        self._subject = subject_of(node.system, name)
        self._subscription: Any = None
        self._asks: set[Any] = set()
        self._key = ""
        self.undecodable = 0

    async def __aenter__(self) -> Self:
        await self._node.client_loop.call(self._subscribe)
        try:
            self._key = await self._node.registry.register(
                self.name, self._pool, list(self._classes)
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._node.client_loop.call(self._unsubscribe)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self._node.registry.unregister(self._key)
                await self._node.client_loop.call(self._unsubscribe)
            except Exception:
                logger.debug("fearless.nats: unpublishing %s failed", self.name, exc_info=True)

    async def _subscribe(self) -> None:
        nc = self._node.connection
        queue = "pool" if self._pool else ""
        self._subscription = await nc.subscribe(self._subject, queue=queue, cb=self._on_message)
        await barrier(nc)

    async def _unsubscribe(self) -> None:
        """Stop taking messages, then let the asks in progress answer (on the client's loop)."""
        if self._subscription is not None:
            await self._subscription.unsubscribe()
        if self._asks:
            await wait_done_all(list(self._asks), self._node.request_timeout)

    async def _on_message(self, msg: Any) -> None:
        """A message for the actor (on the client's loop, one at a time, in arrival order)."""
        headers = msg.headers or {}
        kind = headers.get(KIND, "tell")
        type_name = headers.get(TYPE, "")
        decoder = self._decoders.get(type_name)
        nc = self._node.connection
        try:
            if decoder is None:
                raise msgspec.ValidationError(
                    f"{type_name!r} is not a message {self.name!r} takes "
                    f"({', '.join(self._classes)})"
                )
            message = decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            self.undecodable += 1
            letter = _Undecodable(bytes(msg.data), type_name)
            self.ref._runtime.dead_letter(letter, DeadLetterReason.UNDECODABLE, exc)
            if msg.reply:
                await nc.publish(
                    msg.reply, _error_payload(exc, f"the message does not decode: {exc}")
                )
            return
        if kind == "ask" and msg.reply:
            task = self._node.client_loop.loop.create_task(self._answer(message, msg.reply))
            self._asks.add(task)
            task.add_done_callback(self._asks.discard)
            return
        try:
            self.ref.tell(message)
            answer = b'{"ok":null}'
        except MailboxFull:
            answer = b'{"full":true}'
            if not (kind == "send" and msg.reply):  # a tell cannot wait: it is lost, as a timer's
                self.ref._runtime.dead_letter(message, DeadLetterReason.MAILBOX_FULL)
        if kind == "send" and msg.reply:
            await nc.publish(msg.reply, answer)

    async def _answer(self, message: Any, reply: str) -> None:
        """Ask the actor and publish the answer (on the client's loop)."""
        try:
            value = await self.ref.ask(message)
            payload = _encoder.encode({"ok": value})
        except ActorStopped as exc:
            payload = _encoder.encode({"stopped": exc.name})
        except Exception as exc:
            payload = _error_payload(exc, str(exc))
        try:
            await self._node.connection.publish(reply, payload)
        except Exception:
            logger.debug("fearless.nats: a reply from %s was lost", self.name, exc_info=True)


@dataclasses.dataclass(frozen=True)
class _Undecodable:
    """What a dead letter holds for a payload that did not decode."""

    payload: bytes
    type_name: str


def _error_payload(error: BaseException, message: str) -> bytes:
    """An ask's failure, as text: never the exception object (nothing is pickled)."""
    return _encoder.encode(
        {
            "error": {
                "type": type(error).__name__,
                "message": message,
                "traceback": "".join(traceback.format_exception(error)),
            }
        }
    )


class RemoteRef(Generic[M_contra]):
    """A ref to an actor published in some process of the system (see the module docstring).

    Made by ``node.actor(name, message_type)``; the same interface as a local ``ActorRef``:
    ``tell``, ``send``, ``ask``.
    """

    def __init__(self, node: Node, name: str, message_type: Any) -> None:
        self._node = node
        self.name = name
        self._classes = message_classes(message_type)
        self._subject = subject_of(node.system, name)
        self._outbox = Outbox(node)

    def __repr__(self) -> str:
        return f"<fearless.nats.RemoteRef {self.name!r} of {self._node.system!r}>"

    async def wait_stopped(self) -> RemoteTerminated:
        """Wait until no process serves this name any more: ``"stopped"`` when the last
        publication ended, ``"node_down"`` when the last one's node stopped heartbeating
        (reported within ``DOWN_AFTER + HEARTBEAT + POLL`` seconds, 4.5 s by default).

        Cancellation: a cancelled wait changed nothing.
        """
        return await self._node.registry.wait_gone(self.name)

    def _encode(self, message: Any) -> tuple[bytes, dict[str, str]]:
        type_name = type(message).__name__
        if type_name not in self._classes:
            raise TypeError(
                f"{message!r} is not a message {self.name!r} takes ({', '.join(self._classes)})"
            )
        try:
            payload = _encoder.encode(message)
        except TypeError as exc:
            raise TypeError(f"{message!r} cannot be encoded: {exc}") from None
        return payload, {TYPE: type_name}

    def tell(self, message: M_contra) -> None:
        """Publish ``message`` to the actor and return at once (at-most-once: if nobody serves
        the name, or the connection drops it, it is gone). Safe from the tasks of the node's
        loop."""
        payload, headers = self._encode(message)
        headers[KIND] = "tell"
        self._outbox.put(self._subject, payload, headers)

    async def send(self, message: M_contra) -> None:
        """Enqueue ``message`` in the remote actor's mailbox; wait while it is full.

        Raises ``ActorStopped`` at once if nobody serves the name.

        Cancellation: the message may or may not have been enqueued if the request was in
        flight (the answer is awaited, at most the node's ``request_timeout``).
        """
        payload, headers = self._encode(message)
        headers[KIND] = "send"
        delay = FIRST_RETRY
        while True:
            answer = await self._request(payload, headers, self._node.request_timeout)
            if "full" not in answer:
                return
            await anyio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY)

    @typing.overload
    async def ask(self, message: Request[R], *, timeout: float | None = None) -> R: ...  # noqa: ASYNC109

    @typing.overload
    async def ask(self, message: M_contra, *, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109

    async def ask(self, message: Any, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send ``message`` and wait for the handler's return value (decoded into ``R`` for a
        ``Request[R]``). Raises ``ActorStopped`` at once if nobody serves the name,
        :class:`RemoteError` for the handler's exception, ``TimeoutError`` after ``timeout``.

        Cancellation: the message may have been delivered; its reply is then dropped.
        """
        payload, headers = self._encode(message)
        headers[KIND] = "ask"
        answer = await self._request(payload, headers, ASK_LIMIT if timeout is None else timeout)
        return msgspec.convert(answer["ok"], reply_type(message), strict=False)

    async def _request(
        self, payload: bytes, headers: dict[str, str], seconds: float
    ) -> dict[str, Any]:
        import nats.errors

        await self._outbox.flushed()  # behind the tells sent before
        nc = self._node.connection
        try:
            msg = await self._node.client_loop.call(
                nc.request, self._subject, payload, timeout=seconds, headers=headers
            )
        except nats.errors.NoRespondersError:
            raise ActorStopped(self.name) from None
        except nats.errors.TimeoutError:
            raise TimeoutError(
                f"no answer from actor {self.name!r} in {seconds} s; the message may have been "
                "delivered"
            ) from None
        answer: dict[str, Any] = json.loads(msg.data)
        if "stopped" in answer:
            raise ActorStopped(self.name)
        if "error" in answer:
            error = answer["error"]
            raise RemoteError(self.name, error["type"], error["message"], error["traceback"])
        return answer
