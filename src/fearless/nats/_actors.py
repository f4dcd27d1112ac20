"""Remote actors: an actor published under a name, and refs that reach it from any process of
the system (the guide is docs/remote-actors.md; the reasons are in docs/design/nats.md).

Specification:

- **Addresses.** The actor ``counter`` of the system ``shop`` is reached on the subjects
  ``fearless.shop.actor.counter.<kind>.<class>``: the kind is ``tell``, ``send`` or ``ask``, the
  class the message's class name (so a message needs no headers: nats-py parses headers in
  Python, at a cost per message), and ``fearless.shop.actor.counter.room`` (a sender asking
  whether a full mailbox has room again). The system's name scopes every subject, so two
  systems on one NATS cluster never see each other's actors.
- **Publishing.** ``async with node.publish(ref, "counter", Msg):`` makes the local actor
  ``ref`` reachable as ``counter`` for as long as the block runs, and registers it in the
  system's registry (``fearless.nats._registry``) until the block ends or the actor stops
  (then its watchers get ``Terminated`` with the reason ``"stopped"``; a message sent to it
  meanwhile is answered as for a stopped actor). ``Msg`` is the message type the actor takes:
  a class, or a union of classes (msgspec structs, dataclasses, plain types). ``pool=True``
  publishes it as one member of a pool: every process publishing the same name with
  ``pool=True`` shares the messages (a NATS queue group), each message going to one member. A
  name is published by one process, or by several as a pool: entering ``publish`` while another
  live node publishes the name (alone, or as a pool when this one is not a member) waits until
  that node's entry goes stale (it died: a replacement waits at most ``REPORTED_WITHIN``
  seconds) and raises ``ValueError`` if it does not.
- **Durable mailboxes.** ``durable=True`` keeps the actor's ``tell`` and ``send`` messages in a
  JetStream work queue (``FEARLESS_MB_<system>_<name>``, see ``fearless.nats._mailbox``):
  stored by the server before ``send`` returns, kept while no process serves the name, handed to
  the actor and acknowledged once its handler returns, delivered again if the process dies
  mid-message, handed back with a delay if the handler fails (the actor's supervisor restarts
  it). At-least-once. Asks are never stored: they are request/reply in every case.
- **Finding.** ``node.actor("counter", Msg)`` returns a :class:`RemoteRef`; with
  ``fearless.ActorRef`` it is a ``fearless.Ref[M]``: ``tell``, ``send``, ``ask``,
  ``wait_stopped``, and an actor can ``context.monitor`` it.
- **Delivery** (the table in the guide):

  - ``tell`` publishes and returns: at-most-once (a durable mailbox: stored unless refused). What
    cannot be delivered comes back to the sending process and becomes a dead letter of its actor
    system (``connect(actor_system=...)``): ``NO_RESPONDER`` when no process serves the name,
    ``MAILBOX_FULL`` when the actor's ``"block"`` mailbox (or its durable mailbox's capacity) is
    full. A full mailbox also makes the next ``tell`` to that name in this process raise
    ``MailboxFull`` at once, until the serving process reports room again. The drop policies
    act where the mailbox is: their dead letters are the serving system's.
  - ``send`` waits for the serving process (or the server, for a durable mailbox) to take the
    message: it retries while the mailbox is full (backpressure across processes) and raises
    ``ActorStopped`` when nobody serves the name.
  - ``ask`` is request/reply: the handler's return value decoded into ``R`` for a
    ``Request[R]`` message; a handler's exception (or an ``ErrorReply``) comes back as
    :class:`RemoteError` (its type name, message and the remote traceback as text; never
    unpickled); nobody serving the name gives ``ActorStopped`` at once, not a timeout.

- **Encoding.** A message travels as JSON with its class name in its subject; the serving process
  decodes it into that class, which must be one of the published message type's classes. A
  payload that does not decode (a foreign publisher, an unknown class) becomes a dead letter of
  the serving system with the reason ``UNDECODABLE``, a send or an ask gets a ``RemoteError``
  saying so, and the actor keeps running. Nothing is pickled.
- **Ordering.** The ``tell``, ``send`` and ``ask`` messages of one process to one core
  publication arrive in the order sent (one subscription takes them all); an ask is handed to
  the actor by a task of its own, so a message that arrives just after it may be enqueued
  before it. An ask to a durable name goes ahead of the messages waiting in its mailbox.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import traceback
import types
import typing
from collections import Counter
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import anyio
import msgspec

from .. import _backend
from .._actors._messages import DeadLetter, DeadLetterReason, Request, Terminated
from .._actors._ref import ActorRef
from .._cells._atomic import AtomicCell
from .._exceptions import ActorStopped, MailboxFull
from ._channel import HEADER_ROOM, PayloadTooLarge
from ._loop import barrier, wait_done_all
from ._outbox import Outbox

if TYPE_CHECKING:
    from ._mailbox import DurableMailbox
    from ._node import Node
    from ._registry import Gone

__all__ = ["Publication", "RemoteError", "RemoteRef", "Returns"]

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)
R = TypeVar("R")

logger = logging.getLogger("fearless.nats")

MSG_ID = "Nats-Msg-Id"

# How long an ask without a timeout waits for its reply (seconds).
ASK_LIMIT = 3600.0
# Backoff of a send whose remote mailbox is full, and of a sender's probe of a full mailbox.
FIRST_RETRY = 0.002
LAST_RETRY = 0.25
# How many of its last tells a node remembers, to put a returned one in dead letters.
REMEMBERED = 4096
# A publication yields to its loop once per this many tells and sends (so that an actor on the
# same loop gets turns during a burst, instead of a mailbox that only fills).
YIELD_EVERY = 32
# JetStream's error code for a stream at its max_msgs (discard new): a full durable mailbox.
STREAM_FULL = 10077


class RemoteError(Exception):
    """An ask's handler failed in another process (or refused with ``ErrorReply``), or the
    server refused a message: the exception's type name, message and the remote traceback, as
    text. Never unpickled."""

    def __init__(self, actor: str, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message} (in actor {actor!r}, in another process)")
        self.actor = actor
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback


def subject_of(system: str, name: str, kind: str, type_name: str = "") -> str:
    """The subject of the messages of one kind (tell, send, ask, room) to an actor, with the
    message's class name last (``*`` for all)."""
    subject = f"fearless.{system}.actor.{name}.{kind}"
    return f"{subject}.{type_name}" if type_name else subject


def mailbox_stream(system: str, name: str) -> str:
    """The stream of an actor's durable mailbox."""
    return f"FEARLESS_MB_{system}_{name}"


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
        if origin.__name__ in classes:
            raise TypeError(
                f"two message classes named {origin.__name__!r} in {message_type!r}: a message "
                "travels with its class's name, so the names of an actor's classes must differ"
            )
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
OK = b'{"ok":null}'
FULL = b'{"full":true}'


class Publication:
    """A local actor reachable from other processes while the ``async with`` block runs.

    Messages are handed to the actor from the NATS client's loop (the application's own loop on
    asyncio; the client thread on trio: an actor's mailbox takes messages from any thread, and an
    ask waits on any loop), so a message costs no hop to the application's loop. A tell or send
    is enqueued in arrival order; each ask runs as a task of its own on the client's loop.
    """

    def __init__(
        self,
        node: Node,
        ref: ActorRef[Any],
        name: str,
        message_type: Any,
        *,
        pool: bool,
        durable: bool,
        capacity: float,
        ack_wait: float,
    ) -> None:
        self._node = node
        self.ref = ref
        self.name = name
        self._classes = message_classes(message_type)
        self._decoders = {n: msgspec.json.Decoder(t) for n, t in self._classes.items()}
        self._pool = pool
        self._durable = durable
        self._system = node.system
        self._prefix = f"fearless.{node.system}.actor.{name}."
        self._budget = YIELD_EVERY
        self._subscription: Any = None
        self._tasks: set[Any] = set()
        self._key = ""
        self.undecodable = 0
        self._following: Any = None
        self.mailbox: DurableMailbox | None = None
        if durable:
            from ._mailbox import DurableMailbox

            self.mailbox = DurableMailbox(self, capacity, ack_wait)

    @property
    def node(self) -> Node:
        return self._node

    async def __aenter__(self) -> Self:
        from ._mailbox import mailbox_exists

        await self._node.registry.wait_unclaimed(self.name, self._pool)
        if self.mailbox is not None:
            await self.mailbox.open()
        elif await mailbox_exists(self._node, self.name):
            raise ValueError(
                f"the actor {self.name!r} of the system {self._system!r} has a durable mailbox: "
                "publish it with durable=True (or delete the mailbox: node.delete_mailbox)"
            )
        await self._node.client_loop.call(self._subscribe)
        try:
            self._key = await self._node.registry.register(
                self.name, self._pool, self._durable, list(self._classes), self._stats
            )
            if self.mailbox is not None:
                await self._node.client_loop.call(self.mailbox.start)
            self._node.client_loop.call_soon_sync(self._follow_actor)
        except BaseException:
            await self._leave()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._leave()

    async def _leave(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                if self._key:
                    await self._node.registry.unregister(self._key)
                await self._node.client_loop.call(self._unsubscribe)
            except Exception:
                logger.debug("fearless.nats: unpublishing %s failed", self.name, exc_info=True)

    def _follow_actor(self) -> None:
        """Unregister once the actor stops, so that its watchers hear of it (client's loop)."""
        self._following = self._node.client_loop.loop.create_task(self._unregister_when_stopped())

    async def _unregister_when_stopped(self) -> None:
        await self.ref.wait_stopped()
        try:
            if self.mailbox is not None:
                await self.mailbox.stop()  # the messages it holds go back to the stream
            await self._node.registry.forget_here(self._key)
        except Exception as exc:
            logger.debug("fearless.nats: unregistering the stopped %s failed: %r", self.name, exc)

    def _stats(self) -> dict[str, Any]:
        """The actor's state and mailbox depth, for the registry's heartbeat (a hint)."""
        return {
            "state": self.ref._runtime.state,
            "depth": self.ref.mailbox_statistics().depth,
        }

    async def _subscribe(self) -> None:
        nc = self._node.connection
        queue = "pool" if self._pool else ""
        # A durable mailbox's tells and sends are the stream's: only asks come here.
        subject = self._prefix + ("ask.*" if self._durable else ">")
        self._subscription = await nc.subscribe(subject, queue=queue, cb=self._on_message)
        await barrier(nc)

    async def _unsubscribe(self) -> None:
        """Stop taking messages, then let the asks in progress answer (on the client's loop)."""
        if self._following is not None:
            self._following.cancel()
        if self._subscription is not None:
            await self._subscription.unsubscribe()
        if self.mailbox is not None:
            await self.mailbox.stop()
        if self._tasks:
            await wait_done_all(list(self._tasks), self._node.request_timeout)

    def decode(self, msg: Any) -> Any:
        """The message ``msg`` carries; or, if it does not decode, a dead letter of this system
        (``UNDECODABLE``), an error answer to its sender, and None."""
        kind, _, type_name = msg.subject[len(self._prefix) :].partition(".")
        return self._decode(msg, kind, type_name)

    def _decode(self, msg: Any, kind: str, type_name: str) -> Any:
        """:meth:`decode`, with the subject's kind and class already read."""
        decoder = self._decoders.get(type_name)
        try:
            if kind not in ("tell", "send", "ask"):
                raise msgspec.ValidationError(
                    f"{msg.subject!r} is not a subject of the actor {self.name!r}"
                )
            if decoder is None:
                raise msgspec.ValidationError(
                    f"{type_name!r} is not a message {self.name!r} takes "
                    f"({', '.join(self._classes)})"
                )
            return decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            self.undecodable += 1
            letter = Undelivered(bytes(msg.data), type_name)
            self.ref._runtime.dead_letter(letter, DeadLetterReason.UNDECODABLE, exc)
            if msg.reply and kind != "tell":
                self._spawn(
                    self._publish(msg.reply, _error_payload(exc, f"does not decode: {exc}"))
                )
            return None

    def _spawn(self, coroutine: Any) -> None:
        task = self._node.client_loop.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, subject: str, payload: bytes) -> None:
        try:
            await self._node.connection.publish(subject, payload)
        except Exception:
            logger.debug("fearless.nats: an answer from %s was lost", self.name, exc_info=True)

    async def _on_message(self, msg: Any) -> None:
        """A message for the actor (on the client's loop, one at a time, in arrival order)."""
        kind, _, type_name = msg.subject[len(self._prefix) :].partition(".")
        if kind == "room":
            if msg.reply:
                self._spawn(self._answer_room(msg.reply))
            return
        message = self._decode(msg, kind, type_name)
        if message is None:
            return
        if kind == "ask" and msg.reply:
            self._spawn(self._answer(message, msg.reply))
            return
        ref = self.ref
        if not ref.is_alive:
            if msg.reply:  # the sender's dead letter (tell), or ActorStopped (send)
                await self._publish(msg.reply, _encoder.encode({"stopped": self.name}))
            else:
                ref._runtime.dead_letter(message, DeadLetterReason.ACTOR_STOPPED)
            return
        try:
            ref.tell(message)
        except MailboxFull:
            if msg.reply:  # the sender's dead letter (tell), or a retry (send)
                await self._publish(msg.reply, FULL)
            else:  # a raw publish: nobody to tell; lost here, as a timer's message is
                ref._runtime.dead_letter(message, DeadLetterReason.MAILBOX_FULL)
            return
        if kind == "send" and msg.reply:
            await self._publish(msg.reply, OK)
        self._budget -= 1
        if self._budget <= 0:
            self._budget = YIELD_EVERY
            await self._node.client_loop.sleep(0)

    async def _answer(self, message: Any, reply: str) -> None:
        """Ask the actor and publish the answer (on the client's loop)."""
        try:
            value = await self.ref.ask(message)
            payload = _encoder.encode({"ok": value})
            limit = self._node.max_payload - HEADER_ROOM
            if len(payload) > limit:
                raise PayloadTooLarge(
                    f"the reply encodes to {len(payload)} bytes; the server accepts at most {limit}"
                )
        except ActorStopped as exc:
            payload = _encoder.encode({"stopped": exc.name})
        except Exception as exc:
            payload = _error_payload(exc, str(exc))
        await self._publish(reply, payload)

    async def _answer_room(self, reply: str) -> None:
        """Answer once the actor's mailbox has room (or it stopped), or say it is still full
        after the node's request timeout: a sender's probe (on the client's loop)."""
        ref = self.ref
        loop = self._node.client_loop
        delay = FIRST_RETRY
        waited = 0.0
        while ref.is_alive:
            statistics = ref.mailbox_statistics()
            if statistics.depth < statistics.capacity:
                break
            if waited >= self._node.request_timeout:
                await self._publish(reply, FULL)
                return
            await loop.sleep(delay)
            waited += delay
            delay = min(delay * 2, LAST_RETRY)
        await self._publish(reply, OK)


@dataclasses.dataclass(frozen=True)
class Undelivered:
    """What a dead letter holds for a remote message that could not be decoded (in the serving
    system), or that came back and was no longer remembered (in the sending one)."""

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


class Returns:
    """One node's return address for its tells, and what it knows of full mailboxes.

    Every tell is published with a reply subject ``<inbox>.<name>.<n>``. Nothing comes back for
    a tell that was delivered to a core mailbox; the server answers one that no process was
    subscribed for (no responders); the serving process answers one it could not enqueue (full,
    stopped); a durable mailbox's stream answers each (stored, or refused). What comes back
    undelivered becomes a dead letter of ``node.actor_system`` (the message itself if it is
    among the last ``REMEMBERED`` tells, else an :class:`Undelivered` placeholder), or is
    logged and counted in ``dead_letters`` when the node has no actor system.

    A full mailbox marks its name: tells to it raise ``MailboxFull`` at once while a probe asks
    the serving process (``room``) or the mailbox's stream whether there is room again.
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self.prefix = ""
        self._subscription: Any = None
        self._sent: dict[int, Any] = {}
        self._count = itertools.count(1)
        self.full: dict[str, bool] = {}
        self._probes: set[Any] = set()
        self.dead_letters: Counter[DeadLetterReason] = Counter()
        # The node's tells, to every name, in the order told (one outbox: a send or an ask
        # waits until the tells before it are published, whichever ref told them).
        self.outbox = Outbox(node)

    async def start(self) -> None:
        """Subscribe to the node's return address (on the client's loop)."""
        nc = self._node.connection
        self.prefix = nc.new_inbox()
        self._subscription = await nc.subscribe(f"{self.prefix}.>", cb=self._on_return)

    def address(self, name: str, message: Any) -> str:
        """The reply subject of one tell, remembering the message."""
        n = next(self._count)
        sent = self._sent
        sent[n] = message
        sent.pop(n - REMEMBERED, None)
        return f"{self.prefix}.{name}.{n}"

    async def _on_return(self, msg: Any) -> None:
        """A tell came back: stored, or undelivered (on the client's loop)."""
        _, name, number = msg.subject.rsplit(".", 2)
        headers = msg.headers or {}
        error: BaseException | None = None
        if headers.get("Status") == "503":  # no process subscribed: nobody serves the name
            reason = DeadLetterReason.NO_RESPONDER
        else:
            try:
                answer = json.loads(msg.data)
            except ValueError:
                answer = None
            if not isinstance(answer, dict) or not number.isdigit():  # not fearless's answer
                logger.warning("fearless.nats: a foreign message to %s: %r", msg.subject, msg.data)
                return
            if "stream" in answer and "error" not in answer:  # stored in a durable mailbox
                self._sent.pop(int(number), None)
                return
            if "full" in answer:
                reason = DeadLetterReason.MAILBOX_FULL
                self.mark_full(name, durable=False)
            elif "stopped" in answer:
                reason = DeadLetterReason.NO_RESPONDER
            else:
                failure = answer.get("error", {})
                if failure.get("err_code") == STREAM_FULL:
                    reason = DeadLetterReason.MAILBOX_FULL
                    self.mark_full(name, durable=True)
                else:
                    reason = DeadLetterReason.REFUSED
                    error = _refusal(name, failure)
        message = self._sent.pop(int(number), None) if number.isdigit() else None
        if message is None:
            message = Undelivered(b"", f"one of the tells to {name!r} (no longer remembered)")
        self.dead_letter(message, name, reason, error)

    def dead_letter(
        self, message: Any, name: str, reason: DeadLetterReason, error: BaseException | None
    ) -> None:
        self.dead_letters[reason] += 1
        system = self._node.actor_system
        if system is None:
            logger.warning(
                "fearless.nats: a tell to %r was not delivered (%s): %r",
                name,
                reason.value,
                message,
            )
            return
        system._publish(DeadLetter(message, name, reason, error))

    def mark_full(self, name: str, *, durable: bool) -> None:
        """Tells to ``name`` raise ``MailboxFull`` until a probe sees room (client's loop)."""
        if name in self.full:
            return
        self.full[name] = True
        probe = self._node.client_loop.loop.create_task(self._probe(name, durable))
        self._probes.add(probe)
        probe.add_done_callback(self._probes.discard)

    def stop(self) -> None:
        """Stop probing full mailboxes (the node is closing)."""
        probes = list(self._probes)
        if probes:
            self._node.client_loop.call_soon_sync(lambda: [probe.cancel() for probe in probes])

    async def _probe(self, name: str, durable: bool) -> None:
        """Wait until the mailbox of ``name`` has room, then unmark it (client's loop)."""
        import nats.errors

        node = self._node
        delay = FIRST_RETRY
        try:
            while not node.closed:
                if durable:
                    stream = mailbox_stream(node.system, name)
                    info = await node.jetstream.stream_info(stream)
                    limit = info.config.max_msgs
                    if limit is None or limit < 0 or info.state.messages < limit:
                        return
                    await node.client_loop.sleep(delay)
                    delay = min(delay * 2, LAST_RETRY)
                    continue
                subject = subject_of(node.system, name, "room")
                try:
                    reply = await node.connection.request(
                        subject, b"", timeout=node.request_timeout + 1.0
                    )
                except nats.errors.NoRespondersError:
                    return  # nobody serves it: tells come back as NO_RESPONDER
                except nats.errors.TimeoutError:
                    continue
                if reply.data != FULL:
                    return
        except Exception as exc:
            logger.debug("fearless.nats: probing the mailbox of %r failed: %r", name, exc)
        finally:
            self.full.pop(name, None)


def _refusal(name: str, failure: dict[str, Any]) -> RemoteError:
    """A server's refusal of a message (a JetStream error), as a RemoteError."""
    if "type" in failure:  # a serving process's answer
        return RemoteError(
            name, failure["type"], failure.get("message", ""), failure.get("traceback", "")
        )
    description = failure.get("description", "refused")
    return RemoteError(name, f"JetStream error {failure.get('err_code', '?')}", description, "")


class RemoteRef(Generic[M_contra]):
    """A ref to an actor published in some process of the system (see the module docstring).

    Made by ``node.actor(name, message_type)`` or ``node.lookup``. A ``fearless.Ref[M]``, as a
    local ``ActorRef`` is: ``tell``, ``send``, ``ask``, ``wait_stopped``, and an actor can
    ``context.monitor`` it. Two refs of one node to one name are equal. Use it from the tasks of
    the event loop that opened its node.
    """

    def __init__(self, node: Node, name: str, message_type: Any) -> None:
        self._node = node
        self.name = name
        self._classes = message_classes(message_type)
        self._prefix = f"fearless.{node.system}.actor.{name}."
        self._subjects: dict[tuple[str, type], str] = {}
        self._limit: int | None = None  # the largest payload the server takes, less headers
        self._returns = node.returns
        self._outbox = node.returns.outbox

    def __repr__(self) -> str:
        return f"<fearless.nats.RemoteRef {self.name!r} of {self._node.system!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RemoteRef):
            return NotImplemented
        return self._node is other._node and self.name == other.name

    def __hash__(self) -> int:
        return hash((id(self._node), self.name))

    # -- watching ------------------------------------------------------------------------------

    async def wait_stopped(self) -> Terminated:
        """Wait until no process serves this name any more; return the notice, whose reason is
        ``"stopped"`` when the last publication ended, or ``"node_down"`` when the last one's
        node stopped heartbeating (reported within ``REPORTED_WITHIN`` seconds, 4.5 s by
        default, of its last heartbeat).

        Cancellation: a cancelled wait changed nothing.
        """
        reason: AtomicCell[Gone | None] = AtomicCell(None)
        cancel = self._node.registry.watch(self.name, reason.store)
        try:
            gone = await reason.wait_until(lambda value: value is not None)
        finally:
            cancel()
        assert gone is not None
        return Terminated(self, gone)

    def _start_watch(
        self, deliver: typing.Callable[[Terminated], None]
    ) -> typing.Callable[[], None]:
        """For ``context.monitor(remote_ref)``: call ``deliver`` with the notice once no process
        serves this name; return what cancels the watch."""
        return self._node.registry.watch(self.name, lambda gone: deliver(Terminated(self, gone)))

    # -- messages ------------------------------------------------------------------------------

    def _encode(self, message: Any, kind: str) -> tuple[str, bytes]:
        """The subject (its kind and the message's class) and the payload of ``message``."""
        subject = self._subjects.get((kind, type(message)))
        if subject is None:
            type_name = type(message).__name__
            if type_name not in self._classes:
                raise TypeError(
                    f"{message!r} is not a message {self.name!r} takes ({', '.join(self._classes)})"
                )
            subject = self._subjects[kind, type(message)] = f"{self._prefix}{kind}.{type_name}"
        try:
            payload = _encoder.encode(message)
        except TypeError as exc:
            raise TypeError(f"{message!r} cannot be encoded: {exc}") from None
        limit = self._limit
        if limit is None:  # the server's, known once the node is connected
            limit = self._limit = self._node.max_payload - HEADER_ROOM
        if len(payload) > limit:
            raise PayloadTooLarge(
                f"a {type(message).__name__} to {self.name!r} encodes to {len(payload)} bytes; "
                f"the server accepts at most {limit} (its max_payload less {HEADER_ROOM})"
            )
        return subject, payload

    def tell(self, message: M_contra) -> None:
        """Publish ``message`` to the actor and return at once.

        At-most-once (a durable mailbox stores it unless it refuses it). A tell that cannot be
        delivered comes back and becomes a dead letter of the node's ``actor_system``
        (``NO_RESPONDER``: nobody serves the name; ``MAILBOX_FULL``: its mailbox was full); one
        lost with a connection is gone. After a full mailbox sent one back, tells to that name
        raise ``MailboxFull`` (nothing sent) until the serving process reports room. Ordering:
        the tells and sends of one node to one name arrive in the order sent.
        """
        if self.name in self._returns.full:
            raise MailboxFull(self.name, message)
        subject, payload = self._encode(message, "tell")
        reply = self._returns.address(self.name, message)
        self._outbox.put(subject, payload, None, reply)

    async def send(self, message: M_contra) -> None:
        """Have the actor's mailbox take ``message``; wait while it is full.

        Returns once the serving process enqueued it (a durable mailbox: once the server stored
        it). While the mailbox is full it asks again with a backoff (2 ms doubling to 0.25 s):
        backpressure across processes. Raises ``ActorStopped`` at once if nobody serves the name
        (a durable mailbox takes messages while nobody serves it), :class:`RemoteError` if the
        serving process or the server refused the message.

        Cancellation: if the request was in flight, the message may have been enqueued (a
        durable mailbox's retries carry one message id, so a retry stores it once).
        """
        subject, payload = self._encode(message, "send")
        headers = {MSG_ID: f"{self._returns.prefix}.{next(_send_ids)}"}  # a durable mailbox's
        delay = FIRST_RETRY
        while True:
            answer = await self._request(subject, payload, headers, self._node.request_timeout)
            if "full" not in answer:
                self._returns.full.pop(self.name, None)
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
        :class:`RemoteError` for the handler's exception, ``TimeoutError`` after ``timeout``
        seconds (``None``: an hour). Never stored in a durable mailbox: an ask whose process
        dies is answered by nobody (``TimeoutError``).

        Cancellation: the message may have been delivered; its reply is then dropped.
        """
        _backend.check_timeout(timeout)
        subject, payload = self._encode(message, "ask")
        seconds = ASK_LIMIT if timeout is None else timeout
        answer = await self._request(subject, payload, None, seconds)
        expected = reply_type(message)
        try:
            return msgspec.convert(answer["ok"], expected, strict=False)
        except msgspec.ValidationError as exc:
            raise RemoteError(
                self.name,
                "ValidationError",
                f"the reply does not decode into {getattr(expected, '__name__', expected)}: {exc}",
                "",
            ) from None

    async def _request(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, seconds: float
    ) -> dict[str, Any]:
        """A request; the answer (``ok``, ``full``, or a stored message's ``stream``)."""
        import nats.errors

        self._node.client_loop  # noqa: B018  (ClosedResourceError once the node is closed)
        with anyio.move_on_after(seconds):
            await self._outbox.flushed()  # behind the tells sent before
        nc = self._node.connection
        try:
            msg = await self._node.client_loop.call(
                nc.request, subject, payload, timeout=seconds, headers=headers
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
        failure = answer.get("error")
        if failure is not None:
            if failure.get("err_code") == STREAM_FULL:
                return {"full": True}
            raise _refusal(self.name, failure)
        return answer


_send_ids = itertools.count(1)
