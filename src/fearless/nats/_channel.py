"""Durable channels: a named channel of a system, kept in a JetStream stream.

Specification (the guide is docs/nats.md; the reasons are in docs/design/nats.md):

- **Where items live.** The channel ``jobs`` of the system ``shop`` is the stream
  ``FEARLESS_CH_shop_jobs`` (work-queue retention: an item is removed once a receiver acknowledged
  it), subjects ``fearless.shop.channel.jobs.items`` and ``...jobs.end``. Its capacity is the
  stream's ``max_msgs`` with the *discard new* policy: the server refuses an item when the stream
  is full, it never drops a stored one.
- **Sending.** ``await send(item)`` returns once the server has stored the item (its
  acknowledgement). While the stream is full, or the server cannot be reached, it retries with a
  backoff (2 ms doubling to 250 ms): backpressure across processes. Every attempt of one send
  carries the same message id, so a retry after a lost acknowledgement is stored once (the
  server's duplicate window is two minutes).
- **Cancelling a send.** A cancelled ``send`` either stored the item or did not, and says which:
  if it returns, the item is stored (the cancellation is delivered at the caller's next cancel
  point); if it raises the cancellation, the item is not stored, unless an earlier attempt of the
  same send got no answer (the server was unreachable): then the item is *in doubt*, kept in
  ``sender.in_doubt``, and ``await sender.resend_in_doubt()`` stores each at most once.
- **Receiving.** Each item goes to one receiver among all the receiving processes (one shared
  durable consumer). ``receive()`` acknowledges the item as it hands it over. ``receive_delivery()``
  hands over a :class:`Delivery` to acknowledge after processing (``ack()``), to hand back
  (``nak(delay)``), or to refuse for good (``term()``). An item handed to a process that dies
  before acknowledging it is delivered again after ``ack_wait``: delivery is at-least-once.
- **Cancelling a receive.** A cancelled ``receive`` took nothing: an item that arrives for it
  afterwards is kept for this receiver's next call (or handed back when it closes).
- **Closing.** Closing a sender or a receiver closes that endpoint only (``ClosedResourceError``
  on its next use); a receiver hands back what it had fetched. A process that closes or crashes
  never ends the channel. The channel ends when a sender calls ``await end()``: the server then
  refuses every later send (``ChannelEnded``), and each receiver raises ``EndOfStream`` once every
  item stored before the end has been acknowledged by someone.
- **A deleted stream.** If the channel's stream is deleted under running endpoints (an
  administrator, ``nats stream rm``), a receiver hands over what it had fetched, then raises
  :class:`ChannelDeleted` from every receive; a send raises it once the server confirms the stream
  is gone (a restarting server also leaves a publish unanswered: that one is retried). The rest
  of the process goes on; opening the channel again makes a new, empty stream.
- **Bad payloads.** A payload that does not decode into the channel's type (a foreign publisher)
  is not delivered: it is logged, counted (``statistics().undecodable``), kept for inspection
  (``receiver.undecodable``) and terminated so that it is not redelivered; the receiver goes on.
  An item larger than the server's maximum payload is refused at ``send`` with
  :class:`PayloadTooLarge`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

import anyio
import anyio.lowlevel
import msgspec
from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import ObjectSendStream

from .. import _backend
from .._channels._base import Receiver
from .._channels._channel import channel as local_channel
from ._codec import Codec, Undecodable
from ._loop import ClientLoop, wait_done

if TYPE_CHECKING:
    from ._node import Node

__all__ = [
    "ChannelEnded",
    "Delivery",
    "DurableReceiver",
    "DurableSender",
    "PayloadTooLarge",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)

logger = logging.getLogger("fearless.nats")

# Passed by a receiver's pull to the receiver when the channel's stream is gone.
DELETED: Any = object()

# JetStream's error codes that fearless acts on.
STREAM_FULL = 10077  # maximum messages exceeded (discard new)
WRONG_LAST_SEQUENCE = 10071  # the end marker exists: the channel has ended
STREAM_NAME_IN_USE = 10058  # a stream of that name with another configuration

# The longest a receiver's fetch waits on the server before asking again.
LONG_POLL = 5.0
# Backoff between the attempts of a send that is refused (full) or unanswered.
FIRST_RETRY = 0.002
LAST_RETRY = 0.25
# How many publishes send_many keeps in flight at once.
PIPELINE = 256
# Room kept for the headers when comparing an item's size with the server's maximum payload.
HEADER_ROOM = 256


class ChannelEnded(anyio.BrokenResourceError):
    """The durable channel has ended (a sender called ``end()``): the server refuses the item."""


class ChannelDeleted(anyio.BrokenResourceError):
    """The durable channel's stream was deleted (by an administrator, or ``nats stream rm``): its
    items are gone, and sends and receives on it fail with this until it is opened again."""


class PayloadTooLarge(ValueError):
    """An item encodes to more bytes than the server accepts in one message."""


class _DurableChannel(Generic[T]):
    """What the endpoints of one durable channel in one process share."""

    def __init__(
        self,
        node: Node,
        name: str,
        item_type: Any,
        capacity: float,
        ack_wait: float,
        prefetch: int,
    ) -> None:
        self.node = node
        self.name = name
        self.codec = Codec[T](item_type)
        self.capacity = capacity
        self.ack_wait = ack_wait
        self.prefetch = prefetch
        system = node.system
        self.stream = f"FEARLESS_CH_{system}_{name}"
        self.items_subject = f"fearless.{system}.channel.{name}.items"
        self.end_subject = f"fearless.{system}.channel.{name}.end"
        self.consumer = "receivers"
        self.endpoints: list[DurableSender[Any] | DurableReceiver[Any]] = []

    async def create(self) -> None:
        await make_work_queue(
            self.node,
            self.stream,
            [f"fearless.{self.node.system}.channel.{self.name}.*"],
            self.capacity,
            f"the channel {self.name!r} of the system {self.node.system!r}",
        )

    async def exists(self) -> bool:
        """Whether the channel's stream exists on the server."""
        from nats.js.errors import NotFoundError

        try:
            await self.node.client_loop.call(self.node.jetstream.stream_info, self.stream)
        except NotFoundError:
            return False
        return True

    def sender(self) -> DurableSender[T]:
        sender = DurableSender[T](self)
        self.endpoints.append(sender)
        return sender

    async def receiver(self) -> DurableReceiver[T]:
        await make_consumer(self.node, self.stream, self.consumer, self.ack_wait)
        receiver = DurableReceiver[T](self)
        await receiver._start()
        self.endpoints.append(receiver)
        return receiver

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.aclose()


async def make_work_queue(
    node: Node, stream: str, subjects: list[str], capacity: float, what: str
) -> None:
    """Create the work-queue stream ``stream`` holding at most ``capacity`` messages (the server
    refuses new ones when full), or check that the existing one has that capacity."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import BadRequestError

    js = node.jetstream
    config = StreamConfig(
        name=stream,
        subjects=subjects,
        retention=RetentionPolicy.WORK_QUEUE,
        max_msgs=-1 if capacity == math.inf else int(capacity),
        discard=DiscardPolicy.NEW,
        storage=StorageType.FILE,
    )
    try:
        await node.client_loop.call(js.add_stream, config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        info = await node.client_loop.call(js.stream_info, stream)
        existing = info.config.max_msgs
        existing_capacity = math.inf if existing is None or existing < 0 else existing
        if existing_capacity != capacity:
            raise ValueError(
                f"{what} exists with capacity {existing_capacity}, not {capacity}"
            ) from None


async def make_consumer(node: Node, stream: str, consumer: str, ack_wait: float) -> None:
    """Create the shared durable consumer of ``stream`` unless it exists: the first opener's
    settings stand (adding it again with other settings would update it on the server, under
    every other process's feet)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import BadRequestError, NotFoundError

    js = node.jetstream
    loop = node.client_loop
    config = ConsumerConfig(
        durable_name=consumer,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_deliver=-1,
    )
    try:
        await loop.call(js.consumer_info, stream, consumer)
    except NotFoundError:
        try:
            await loop.call(js.add_consumer, stream, config)
        except BadRequestError:  # created by another process in between
            logger.debug("fearless.nats: using the consumer of %s just made", stream)


@dataclasses.dataclass
class SenderStatistics:
    """What one durable sender did: items stored, attempts refused because the stream was full,
    attempts that got no answer, and items in doubt."""

    sent: int = 0
    refused_full: int = 0
    unanswered: int = 0
    in_doubt: int = 0


class DurableSender(ObjectSendStream[T_contra]):
    """The sending side of a durable channel (see the module docstring for the guarantees).

    Made by ``Node.open_channel`` / ``open_sender``; ``clone()`` makes another sender on the same
    channel. Usable from the task that opened it and any other task of the same event loop.
    """

    def __init__(self, channel: _DurableChannel[Any]) -> None:
        self._channel = channel
        self._closed = False
        self._stats = SenderStatistics()
        self.in_doubt: list[tuple[T_contra, str]] = []

    @property
    def name(self) -> str:
        return self._channel.name

    def clone(self) -> DurableSender[T_contra]:
        """Another sender on the same channel (closing one does not close the other)."""
        self._check_open()
        return self._channel.sender()

    def statistics(self) -> SenderStatistics:
        return dataclasses.replace(self._stats, in_doubt=len(self.in_doubt))

    def _check_open(self) -> None:
        if self._closed or self._channel.node.closed:
            raise ClosedResourceError

    def _encode(self, item: T_contra) -> bytes:
        payload = self._channel.codec.encode(item)
        limit = self._channel.node.max_payload - HEADER_ROOM
        if len(payload) > limit:
            raise PayloadTooLarge(
                f"the item encodes to {len(payload)} bytes; the server accepts at most {limit} "
                f"(its max_payload less {HEADER_ROOM} for the headers)"
            )
        return payload

    async def _check_not_deleted(self, exc: Exception) -> None:
        """After a publish nobody answered for lack of a stream: raise ``ChannelDeleted`` if the
        stream is gone (not merely unreachable: a restarting server answers the same way)."""
        import nats.js.errors

        if isinstance(exc, nats.js.errors.NoStreamResponseError):
            channel = self._channel
            if not await channel.exists():
                raise ChannelDeleted(f"the durable channel {channel.name!r} was deleted") from None

    def _headers(self, msg_id: str) -> dict[str, str]:
        return {
            "Nats-Msg-Id": msg_id,
            "Nats-Expected-Last-Subject-Sequence": "0",
            "Nats-Expected-Last-Subject-Sequence-Subject": self._channel.end_subject,
        }

    async def _attempt(self, payload: bytes, msg_id: str) -> bool:
        """One publish; True if stored, False if the stream is full. Raises ``ChannelEnded``,
        or the transport's error when there was no answer."""
        from nats.js.errors import APIError

        channel = self._channel
        js = channel.node.jetstream
        try:
            await channel.node.client_loop.call(
                js.publish,
                channel.items_subject,
                payload,
                headers=self._headers(msg_id),
                settle=True,
            )
        except APIError as exc:
            if exc.err_code == STREAM_FULL:
                self._stats.refused_full += 1
                return False
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise ChannelEnded(f"the durable channel {channel.name!r} has ended") from None
            raise
        self._stats.sent += 1
        return True

    async def send(self, item: T_contra) -> None:
        """Store ``item`` in the channel; wait while it is full or the server is unreachable.

        Raises ``TypeError`` if the item is not of the channel's type, :class:`PayloadTooLarge`,
        :class:`ChannelEnded` after ``end()``, ``ClosedResourceError`` after ``close()``.

        Ordering: the items of one sender are stored in the order of its sends.

        Cancellation: returning means stored; raising the cancellation means not stored, unless an
        earlier attempt of this send went unanswered: the item is then in ``in_doubt`` (see the
        module docstring). A cancelled send waits for the answer to the attempt in flight, at
        most the node's ``request_timeout``.
        """
        self._check_open()
        payload = self._encode(item)
        msg_id = _new_id()
        delay = FIRST_RETRY
        await anyio.lowlevel.checkpoint_if_cancelled()
        unanswered = False
        try:
            while True:
                try:
                    if await self._attempt(payload, msg_id):
                        return
                except (ChannelEnded, ClosedResourceError):
                    raise
                except Exception as exc:
                    if not _transient(exc):
                        raise
                    await self._check_not_deleted(exc)
                    unanswered = True
                    self._stats.unanswered += 1
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, LAST_RETRY)
                self._check_open()
        except anyio.get_cancelled_exc_class():
            if unanswered:
                self.in_doubt.append((item, msg_id))
            raise

    def send_blocking(self, item: T_contra) -> None:
        """:meth:`send` from a thread that runs no event loop: blocks until the item is stored.

        Raises ``EventLoopBlockingError`` at once on an event-loop thread, and what :meth:`send`
        raises. The thread cannot be cancelled; closing the node ends the wait.
        """
        self._check_open()
        self._channel.node.client_loop.call_blocking(self._send_on_client_loop, item)

    async def _send_on_client_loop(self, item: T_contra) -> None:
        """:meth:`send`'s loop, run on the client's loop itself (for a thread's call)."""
        payload = self._encode(item)
        msg_id = _new_id()
        delay = FIRST_RETRY
        js = self._channel.node.jetstream
        while True:
            try:
                await js.publish(
                    self._channel.items_subject, payload, headers=self._headers(msg_id)
                )
                self._stats.sent += 1
                return
            except Exception as exc:
                import nats.js.errors
                from nats.js.errors import APIError

                if isinstance(exc, APIError) and exc.err_code == WRONG_LAST_SEQUENCE:
                    raise ChannelEnded(f"the durable channel {self.name!r} has ended") from None
                full = isinstance(exc, APIError) and exc.err_code == STREAM_FULL
                if not full and not _transient(exc):
                    raise
                if isinstance(exc, nats.js.errors.NoStreamResponseError):
                    info = self._channel.node.jetstream.stream_info(self._channel.stream)
                    try:
                        await info
                    except nats.js.errors.NotFoundError:
                        raise ChannelDeleted(
                            f"the durable channel {self.name!r} was deleted"
                        ) from None
                if full:
                    self._stats.refused_full += 1
                else:
                    self._stats.unanswered += 1
            await anyio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, LAST_RETRY)
            self._check_open()

    async def send_nowait(self, item: T_contra) -> None:
        """One attempt: store ``item`` or raise ``WouldBlock`` if the channel is full.

        Unlike a local channel's, this is a coroutine: asking the server takes a round trip.

        Cancellation: as :meth:`send` (one attempt).
        """
        self._check_open()
        payload = self._encode(item)
        await anyio.lowlevel.checkpoint_if_cancelled()
        if not await self._attempt(payload, _new_id()):
            raise WouldBlock

    async def send_many(self, items: Iterable[T_contra]) -> None:
        """Send every item: pipelined, up to ``PIPELINE`` publishes in flight at once, each with
        its own message id, and return once every one is stored.

        Ordering: the items are stored in order, except that an item the server refused (the
        stream was full) or did not answer is sent again, with its id, after the ones it was
        sent with: a batch that meets a full stream or an outage may be stored out of order.
        Send one at a time (:meth:`send`) where order under backpressure matters.

        Cancellation: the window in flight is settled (its outcomes awaited) before the
        cancellation is raised; the items stored stay stored, an item whose attempt went
        unanswered is put in ``in_doubt``, and the rest are not stored.
        """
        self._check_open()
        pending = [(item, self._encode(item), _new_id()) for item in items]
        await anyio.lowlevel.checkpoint_if_cancelled()
        while pending:
            window, pending = pending[:PIPELINE], pending[PIPELINE:]
            await self._send_window(window)

    async def _send_window(self, window: list[tuple[T_contra, bytes, str]]) -> None:
        """Store every item of ``window`` (retrying what was refused or unanswered)."""
        from nats.js.errors import APIError

        channel = self._channel
        delay = FIRST_RETRY
        unanswered: set[str] = set()
        try:
            while window:
                batch = [(payload, self._headers(msg_id)) for _, payload, msg_id in window]
                results = await channel.node.client_loop.call(
                    publish_pipelined,
                    channel.node.connection,
                    channel.node.client_loop,
                    channel.items_subject,
                    batch,
                    channel.node.request_timeout,
                    settle=True,
                )
                again = []
                for entry, result in zip(window, results, strict=True):
                    if not isinstance(result, BaseException):
                        self._stats.sent += 1
                        unanswered.discard(entry[2])
                    elif isinstance(result, APIError) and result.err_code == WRONG_LAST_SEQUENCE:
                        raise ChannelEnded(f"the durable channel {self.name!r} has ended")
                    elif isinstance(result, APIError) and result.err_code == STREAM_FULL:
                        self._stats.refused_full += 1
                        again.append(entry)
                    elif isinstance(result, Exception) and _transient(result):
                        await self._check_not_deleted(result)
                        self._stats.unanswered += 1
                        unanswered.add(entry[2])
                        again.append(entry)
                    else:
                        raise result
                window = again
                if window:
                    await anyio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, LAST_RETRY)
                    self._check_open()
        except anyio.get_cancelled_exc_class():
            self.in_doubt.extend(
                (item, msg_id) for item, _, msg_id in window if msg_id in unanswered
            )
            raise

    async def resend_in_doubt(self) -> int:
        """Send again every item in ``in_doubt`` with its original message id: the server stores
        each at most once (if it is within the two-minute duplicate window). Returns how many.

        Cancellation: the items not yet resent stay in ``in_doubt``.
        """
        done = 0
        while self.in_doubt:
            item, msg_id = self.in_doubt[0]
            payload = self._encode(item)
            delay = FIRST_RETRY
            while True:
                try:
                    if await self._attempt(payload, msg_id):
                        break
                except Exception as exc:
                    if not _transient(exc):
                        raise
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, LAST_RETRY)
            self.in_doubt.pop(0)
            done += 1
        return done

    async def end(self) -> None:
        """End the channel for every process: later sends are refused (:class:`ChannelEnded`),
        and receivers raise ``EndOfStream`` once every item stored before now is acknowledged.

        Idempotent. Cancellation: the end either happened or not; calling again is safe.
        """
        from nats.js.errors import APIError

        self._check_open()
        channel = self._channel
        headers = {"Nats-Expected-Last-Subject-Sequence": "0"}
        try:
            await channel.node.client_loop.call(
                channel.node.jetstream.publish, channel.end_subject, b"", headers=headers
            )
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:  # already ended
                raise

    def close(self) -> None:
        """Close this sender (not the channel: see :meth:`end`)."""
        self._closed = True

    async def aclose(self) -> None:
        """Close this sender. Cancellation: nothing to wait for."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<fearless.nats.DurableSender {self._channel.stream} {state}>"


class Delivery(Generic[T_co]):
    """An item handed to a receiver, to acknowledge once processed.

    ``ack()`` tells the server the item is done (it will not be delivered again); ``nak(delay)``
    hands it back for redelivery after ``delay`` seconds; ``term()`` refuses it for good. An item
    neither acknowledged nor handed back is delivered again after the channel's ``ack_wait``.
    ``async with delivery:`` acknowledges on a normal exit and hands back (after ``retry_delay``)
    on an exception.
    """

    retry_delay: float = 1.0

    def __init__(self, receiver: DurableReceiver[Any], item: T_co, msg: Any) -> None:
        self.item = item
        self._receiver = receiver
        self._msg = msg
        self.settled = False

    @property
    def redelivered(self) -> bool:
        """Whether this item had been delivered before (to a receiver that did not acknowledge)."""
        return bool(self._msg.metadata.num_delivered > 1)

    async def ack(self) -> None:
        """Acknowledge the item and wait for the server to confirm it (it is then never
        redelivered). Cancellation: the acknowledgement may or may not have reached the server;
        at worst the item is delivered again."""
        self._settle()
        await self._receiver._loop.call(self._msg.ack_sync)

    async def nak(self, delay: float | None = None) -> None:
        """Hand the item back for redelivery, after ``delay`` seconds (default: at once).
        Cancellation: at worst the item is redelivered after ``ack_wait`` instead."""
        self._settle()
        await self._receiver._loop.call(self._msg.nak, delay)

    async def term(self) -> None:
        """Refuse the item for good: it is not delivered again. Cancellation: as :meth:`nak`."""
        self._settle()
        await self._receiver._loop.call(self._msg.term)

    def _settle(self) -> None:
        if self.settled:
            raise RuntimeError("this delivery was already acknowledged, handed back or refused")
        self.settled = True

    async def __aenter__(self) -> T_co:
        return self.item

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self.settled:
            return
        with anyio.CancelScope(shield=True):
            if exc_type is None:
                await self.ack()
            else:
                await self.nak(self.retry_delay)

    def __repr__(self) -> str:
        return f"<Delivery {self.item!r}{' settled' if self.settled else ''}>"


@dataclasses.dataclass
class ReceiverStatistics:
    """What one durable receiver did: items handed over, how many of them were redeliveries,
    payloads that did not decode, items fetched and not yet handed over, and how often it reached
    the end while items stored before it were still outstanding (it then waits for them)."""

    received: int = 0
    redelivered: int = 0
    undecodable: int = 0
    buffered: int = 0
    end_deferred: int = 0


class PullSource(Protocol):
    """What a pull reads from: a stream's durable consumer (a channel, a durable mailbox)."""

    node: Node
    stream: str
    consumer: str
    prefetch: int


class PullTarget(Protocol):
    """Where a pull passes messages (a receiver's local channel, a durable mailbox)."""

    def send_nowait(self, item: Any, /) -> None: ...

    def close(self) -> None: ...


class _Pull:
    """Keeps up to ``prefetch`` messages of the shared consumer coming to one receiver (or one
    durable mailbox: ``fearless.nats._mailbox``).

    It runs on the client's loop. It asks the server for ``prefetch - held`` messages at a time
    (a pull request to an inbox of its own, which the server answers with messages as they become
    available, or with a status when the request expires), and passes each message to the
    receiver through a local fearless channel, so a receiver waits for it as for any local item
    (cancellable, and across threads on trio). ``held`` counts what was passed and not yet taken:
    a receiver that stops receiving stops the pulling once it holds ``prefetch`` messages.

    A request can be lost with the connection (a server restart): after a reconnection it is
    asked again at once, and a request that neither filled nor expired by ``LONG_POLL`` plus a
    margin is given up and asked again.
    """

    def __init__(self, channel: PullSource, deliver: PullTarget) -> None:
        self.channel = channel
        self.nc = channel.node.connection
        self.loop = channel.node.client_loop.loop
        self.deliver = deliver
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{channel.stream}.{channel.consumer}"
        self.inbox = ""
        self.subscription: Any = None
        self.held = 0
        self.awaiting = 0
        self.generation = 0
        self.closed = False  # what arrives from now on is handed back
        self.stopped = False

    async def start(self) -> None:
        self.inbox = self.nc.new_inbox()
        self.subscription = await self.nc.subscribe(self.inbox, cb=self.on_message)
        self.channel.node.on_reconnect.append(self.reconnected)
        self.request()

    def reconnected(self) -> None:
        """The open request died with the old connection: ask again now, not after LONG_POLL."""
        self.awaiting = 0
        self.request()

    def request(self) -> None:
        """Ask for more if no request is open and there is room (on the client's loop)."""
        if self.closed or self.awaiting > 0:
            return
        room = self.channel.prefetch - self.held
        if room <= 0:
            return
        self.generation += 1
        self.awaiting = room
        body = json.dumps({"batch": room, "expires": int(LONG_POLL * 1e9)}).encode()
        loop = self.loop
        loop.create_task(_quiet(self.nc.publish(self.subject, body, reply=self.inbox)))
        generation = self.generation
        loop.call_later(LONG_POLL + 1.0, self.lost, generation)

    async def check_consumer(self) -> None:
        """Ask again after a pause, unless the consumer (the stream) is gone: then tell the
        receiver, through the same local channel, and stop (on the client's loop)."""
        from nats.js.errors import NotFoundError

        channel = self.channel
        try:
            await channel.node.jetstream.consumer_info(channel.stream, channel.consumer)
        except NotFoundError:
            if not self.closed:
                self.closed = True
                self.deliver.send_nowait(DELETED)
            return
        except Exception as exc:  # unreachable for now: the reconnection asks again
            logger.debug("fearless.nats: checking the consumer failed: %r", exc)
        self.loop.call_later(FIRST_RETRY * 50, self.request)

    def lost(self, generation: int) -> None:
        if generation == self.generation and self.awaiting > 0:
            self.awaiting = 0
            self.request()

    async def on_message(self, msg: Any) -> None:
        if self.closed:
            if msg.data and msg.reply:  # on its way before the unsubscription: hand it back
                self.loop.create_task(_quiet(msg.nak()))
            return
        headers = msg.headers
        status = headers.get("Status") if headers else None
        if status is not None and not msg.data:
            if status == "100":  # a heartbeat
                return
            # 404 no messages, 408 the request expired: ask again. 409 (the server ended the
            # request: its consumer was deleted, or it was replaced) and 503 (no responder for
            # the consumer: deleted, or JetStream is not up yet): ask again unless it is gone.
            self.awaiting = 0
            if status in ("404", "408"):
                self.request()
            else:
                self.loop.create_task(self.check_consumer())
            return
        self.held += 1
        self.awaiting = max(self.awaiting - 1, 0)
        try:
            self.deliver.send_nowait(msg)
        except (anyio.BrokenResourceError, ClosedResourceError):  # the receiver closed just now
            self.loop.create_task(_quiet(msg.nak()))
            return
        if self.awaiting == 0:
            self.request()

    def taken(self, ack: Any = None) -> None:
        """The receiver took a message, and acknowledges ``ack`` if given (on the client's loop:
        one hop from another thread for both)."""
        self.taken_many(1, [] if ack is None else [ack])

    def taken_many(self, count: int, acks: list[Any]) -> None:
        """The receiver took ``count`` messages and acknowledges ``acks`` (client's loop)."""
        self.held -= count
        self.request()
        for msg in acks:
            self.channel.node.client_loop.call_soon(msg.ack)

    async def stop(self) -> None:
        """Stop pulling: unsubscribe the inbox (the server drops a pull request whose inbox
        has no interest); a message already on its way is handed back."""
        if self.stopped:
            return
        self.stopped = self.closed = True
        self.deliver.close()
        if self.reconnected in self.channel.node.on_reconnect:
            self.channel.node.on_reconnect.remove(self.reconnected)
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            await subscription.unsubscribe()


class DurableReceiver(Receiver[T_co]):
    """The receiving side of a durable channel (see the module docstring for the guarantees).

    Made by ``Node.open_channel`` / ``open_receiver``; ``clone()`` makes another receiver of the
    same channel (each item goes to one of them). A ``fearless.Receiver``: ``async for item in
    receiver`` receives until the channel ends, and ``fearless.fan_out`` takes it. Usable from
    the tasks of the event loop that opened it; each receiver pulls up to ``prefetch`` items for
    itself, so give each concurrent consumer its own clone.
    """

    def __init__(self, channel: _DurableChannel[Any]) -> None:
        self._channel = channel
        self._loop = channel.node.client_loop
        self._tx, self._rx = local_channel[Any](math.inf)
        self._pull = _Pull(channel, self._tx)
        self._started = False
        self._closed = False
        self._ended = False
        self._gone = False  # the stream was deleted
        self._stats = ReceiverStatistics()

    async def _start(self) -> None:
        if not self._started:
            self._started = True
            await self._loop.call(self._pull.start)

    def clone(self) -> DurableReceiver[T_co]:
        """Another receiver of the same channel, with its own prefetch; it starts pulling at its
        first receive."""
        if self._closed:
            raise ClosedResourceError
        receiver = DurableReceiver[T_co](self._channel)
        self._channel.endpoints.append(receiver)
        return receiver

    def receive_nowait(self) -> T_co:
        """An item this receiver already fetched, acknowledged as it is handed over; else
        ``WouldBlock`` (it asks the server nothing: use :meth:`receive` to wait).

        Raises ``EndOfStream`` once the channel has ended for this receiver.
        """
        self._check_usable()
        while True:
            msg = self._rx.receive_nowait()  # WouldBlock when nothing is fetched
            if msg is DELETED:
                self._deleted()
            self._loop.call_soon_sync(self._pull.taken)
            if msg.subject == self._channel.end_subject:
                self._loop.call_soon(msg.nak)  # the end needs the server's view: receive() asks
                raise WouldBlock
            delivery = self._decoded(msg)
            if delivery is not None:
                delivery.settled = True
                self._loop.call_soon(delivery._msg.ack)
                return delivery.item

    @property
    def name(self) -> str:
        return self._channel.name

    @property
    def undecodable(self) -> list[Undecodable]:
        """The last payloads of this channel (up to 100) that did not decode, oldest first."""
        return list(self._channel.codec.undecodable)

    def statistics(self) -> ReceiverStatistics:
        return dataclasses.replace(
            self._stats,
            undecodable=self._channel.codec.undecodable_count,
            buffered=self._rx.statistics().current_buffer_used,
        )

    async def receive(self) -> T_co:
        """The next item, acknowledged as it is handed over; wait for one.

        Raises ``EndOfStream`` once the channel has ended and every item stored before the end
        is acknowledged; ``ClosedResourceError`` after ``close()``.

        Ordering: items come in the order they were stored, except redeliveries, which come when
        they are handed back.

        Cancellation: a cancelled receive took nothing; an item that arrives for it afterwards
        is kept for the next receive (or handed back when the receiver closes).
        """
        return (await self._next(ack=True)).item

    async def receive_delivery(self) -> Delivery[T_co]:
        """The next item as a :class:`Delivery` to acknowledge after processing it.

        Raises and orders as :meth:`receive`. Cancellation: as :meth:`receive`.
        """
        return await self._next(ack=False)

    async def _next(self, ack: bool) -> Delivery[T_co]:
        await self._start()
        while True:
            self._check_usable()
            try:
                msg = await self._rx.receive()
            except (EndOfStream, ClosedResourceError):
                raise ClosedResourceError from None
            if msg is DELETED:
                self._deleted()
            acknowledged = None
            try:
                delivery = await self._take(msg)
                if delivery is not None and ack:
                    delivery.settled = True
                    acknowledged = msg
            finally:
                self._loop.call_soon_sync(partial(self._pull.taken, acknowledged))
            if delivery is not None:
                return delivery

    async def receive_many(self, max_items: int) -> list[T_co]:
        """Up to ``max_items`` items (at least one), each acknowledged as :meth:`receive` does.

        Waits only for the first. Cancellation: as :meth:`receive`.
        """
        if not isinstance(max_items, int) or max_items < 1:
            raise ValueError(f"max_items must be a positive int, not {max_items!r}")
        items = [await self.receive()]
        taken = 0
        acks: list[Any] = []
        while len(items) < max_items and not self._ended:
            try:
                msg = self._rx.receive_nowait()
            except (WouldBlock, EndOfStream, ClosedResourceError):
                break
            if msg is DELETED:  # the next receive raises ChannelDeleted
                self._gone = True
                break
            taken += 1
            if msg.subject == self._channel.end_subject:
                self._loop.call_soon(msg.nak)  # the next receive() checks the end
                break
            delivery = self._decoded(msg)
            if delivery is not None:
                delivery.settled = True
                acks.append(msg)
                items.append(delivery.item)
        if taken:  # one hop for the whole batch
            self._loop.call_soon_sync(partial(self._pull.taken_many, taken, acks))
        return items

    def receive_blocking(self, timeout: float | None = None) -> T_co:
        """:meth:`receive` from a thread that runs no event loop: blocks until an item comes (at
        most ``timeout`` seconds: ``TimeoutError``).

        Raises ``EventLoopBlockingError`` at once on an event-loop thread, and what
        :meth:`receive` raises. An item fetched for a wait that timed out stays for the next call.
        """
        _backend.check_blocking_allowed("receive_blocking")
        if not self._started:
            self._loop.call_blocking(self._pull.start)
            self._started = True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check_usable()
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                msg = self._rx.receive_blocking(left)
            except (EndOfStream, ClosedResourceError):
                raise ClosedResourceError from None
            if msg is DELETED:
                self._deleted()
            self._loop.call_soon_sync(self._pull.taken)
            if msg.subject == self._channel.end_subject:
                if self._loop.call_blocking(self._all_done_here):
                    self._ended = True
                    self._loop.call_soon(self._stop_pulling(also=msg))
                    raise EndOfStream
                self._stats.end_deferred += 1
                self._loop.call_soon(msg.nak, 0.05)
                continue
            delivery = self._decoded(msg)
            if delivery is not None:
                delivery.settled = True
                self._loop.call_soon(delivery._msg.ack)
                return delivery.item

    async def _all_done_here(self) -> bool:
        """:meth:`_all_done` on the client's loop."""
        if self._rx.statistics().current_buffer_used:
            return False
        channel = self._channel
        info = await channel.node.jetstream.consumer_info(channel.stream, channel.consumer)
        return bool(info.num_pending == 0 and info.num_ack_pending <= 1)

    async def _take(self, msg: Any) -> Delivery[T_co] | None:
        """The delivery of a message; None for one that is not an item."""
        channel = self._channel
        if msg.subject == channel.end_subject:
            try:
                done = await self._all_done()
            except BaseException:
                self._loop.call_soon(msg.nak)
                raise
            if done:  # this receiver is done: the marker goes on to the others
                self._ended = True
                self._loop.call_soon(self._stop_pulling(also=msg))
                raise EndOfStream
            self._stats.end_deferred += 1
            self._loop.call_soon(msg.nak, 0.05)
            return None
        return self._decoded(msg)

    def _check_usable(self) -> None:
        """Raise what a receive must raise before anything: closed, deleted, or at its end."""
        if self._closed or self._channel.node.closed:
            raise ClosedResourceError
        if self._gone:
            self._deleted()
        if self._ended:
            raise EndOfStream

    def _deleted(self) -> NoReturn:
        """The channel's stream is gone: this receive, and every later one, says so."""
        self._gone = True
        raise ChannelDeleted(f"the durable channel {self._channel.name!r} was deleted")

    def _decoded(self, msg: Any) -> Delivery[T_co] | None:
        """The delivery of an item's message; None (reported, refused for good) if it does not
        decode."""
        channel = self._channel
        try:
            item = channel.codec.decode(msg.data)
        except msgspec.DecodeError as exc:
            channel.codec.report(msg.subject, msg.data, exc, _sequence(msg))
            self._loop.call_soon(msg.term)
            return None
        self._stats.received += 1
        if msg.metadata.num_delivered > 1:
            self._stats.redelivered += 1
        return Delivery(self, item, msg)

    async def _all_done(self) -> bool:
        """Whether nothing but the end marker is pending or unacknowledged on the consumer."""
        if self._rx.statistics().current_buffer_used:
            return False
        channel = self._channel
        js = channel.node.jetstream
        info = await self._loop.call(js.consumer_info, channel.stream, channel.consumer)
        return bool(info.num_pending == 0 and info.num_ack_pending <= 1)

    def _stop_pulling(self, also: Any = None) -> Callable[[], Coroutine[Any, Any, None]]:
        """What stops the pulling, then hands back what was fetched and not handed over (and
        ``also``), in that order, so that nothing handed back comes to this receiver again: a
        coroutine function for the client's loop (aclose waits for it, close does not)."""
        self._pull.closed = True  # from now on, what arrives is handed back
        held = []
        while True:
            try:
                held.append(self._rx.receive_nowait())
            except (WouldBlock, EndOfStream, ClosedResourceError):
                break
        self._rx.close()
        if also is not None:
            held.append(also)
        pull = self._pull

        async def stop_then_hand_back() -> None:
            try:
                await pull.stop()
            finally:
                for msg in held:
                    await _quiet(msg.nak())

        return stop_then_hand_back

    def close(self) -> None:
        """Close this receiver; what it had fetched and not handed over goes back to the server
        (prefer :meth:`aclose`, which waits for that)."""
        if self._closed:
            return
        self._closed = True
        if not self._ended and self._started:
            self._loop.call_soon(self._stop_pulling())
        elif not self._started:
            self._rx.close()
            self._tx.close()

    async def aclose(self) -> None:
        """Close this receiver and hand back what it had fetched.

        Cancellation: shielded; the receiver is closed when this returns.
        """
        if self._closed:
            return
        if not self._started:
            self.close()
            return
        self._closed = True
        if self._ended:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self._loop.call(self._stop_pulling())
            except Exception:
                logger.debug("fearless.nats: closing a receiver failed", exc_info=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "ended" if self._ended else "open"
        return f"<fearless.nats.DurableReceiver {self._channel.stream} {state}>"


async def _quiet(coroutine: Any) -> None:
    try:
        await coroutine
    except Exception as exc:  # a pull request lost with the connection: lost() asks again
        logger.debug("fearless.nats: a pull request failed: %r", exc)


async def publish_pipelined(
    nc: Any,
    client_loop: ClientLoop,
    subject: str,
    batch: list[tuple[bytes, dict[str, str]]],
    seconds: float,
) -> list[Any]:
    """Publish every payload of ``batch`` to the stream at once and return, in order, each one's
    acknowledgement or the error it got (``nats.errors.TimeoutError`` if none came in
    ``seconds``). On the client's loop.

    One reply subscription for the batch and plain publishes with a reply subject each: no task
    and no future per item. (nats-py's ``publish_async`` cannot be used: in 2.16 it raises the
    server's error inside its reply handler instead of setting it on the future, so a refused
    publish looks unanswered.)
    """
    import nats.errors

    results: list[Any] = [None] * len(batch)
    remaining = len(batch)
    done = client_loop.loop.create_future()

    async def on_reply(msg: Any) -> None:
        nonlocal remaining
        index = int(msg.subject.rsplit(".", 1)[1])
        if results[index] is not None:
            return
        results[index] = _publish_outcome(msg)
        remaining -= 1
        if remaining == 0 and not done.done():
            done.set_result(None)

    inbox = nc.new_inbox()
    subscription = await nc.subscribe(f"{inbox}.*", cb=on_reply)
    try:
        for index, (payload, headers) in enumerate(batch):
            await nc.publish(subject, payload, reply=f"{inbox}.{index}", headers=headers)
        await wait_done(done, seconds)
    finally:
        await subscription.unsubscribe()
    for index, result in enumerate(results):
        if result is None:
            results[index] = nats.errors.TimeoutError()
    return results


def _publish_outcome(msg: Any) -> Any:
    """A stored publish's acknowledgement, or the error the server answered with."""
    import nats.js.errors
    from nats.js.api import PubAck

    if msg.headers and msg.headers.get("Status") == "503":  # no stream takes the subject
        return nats.js.errors.NoStreamResponseError()
    response = json.loads(msg.data)
    if "error" in response:
        try:
            nats.js.errors.APIError.from_error(response["error"])  # (it raises the error)
        except nats.js.errors.APIError as error:
            return error
    return PubAck.from_response(response)


def _new_id() -> str:
    """A message id for the server's duplicate detection: 96 random bits."""
    return os.urandom(12).hex()


def _sequence(msg: Any) -> int | None:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:
        return None


def _transient(exc: Exception) -> bool:
    """Whether an error means *no answer* (retry) rather than a refusal."""
    import nats.errors
    import nats.js.errors

    return isinstance(
        exc,
        nats.errors.TimeoutError
        | nats.errors.NoRespondersError
        | nats.errors.ConnectionClosedError
        | nats.errors.ConnectionReconnectingError
        | nats.errors.OutboundBufferLimitError
        | nats.errors.StaleConnectionError
        | nats.js.errors.NoStreamResponseError
        | nats.js.errors.ServiceUnavailableError,
    ) and not (isinstance(exc, nats.js.errors.APIError) and exc.err_code == STREAM_FULL)
