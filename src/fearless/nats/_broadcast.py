"""Broadcast across processes: every subscribing process receives every item, at most once.

Specification (the guide is docs/nats.md):

- **Where items go.** The broadcast ``prices`` of the system ``shop`` is the subject
  ``fearless.shop.broadcast.prices``. A :class:`Publisher` publishes on it with core NATS: no
  acknowledgement, no storage, so an item reaches the processes subscribed at that moment and
  connected (at-most-once: for events and invalidations, not for work).
- **Receiving.** ``node.subscribe(name, item_type)`` returns a local ``fearless.Subscription``:
  the process's items go into a local broadcast ring of ``capacity`` items, so the subscription
  is received from as any local one (``async for``, ``receive_many``, ``merge``, ``select``, the
  thread calls), and a subscriber that falls ``capacity`` items behind lags by its ``on_lag``
  (``"error"``: its next receive raises ``Lagged`` with the exact count; ``"drop"``: silently).
  ``"block"`` is refused: a process cannot hold the network back.
- **Replay.** A broadcast opened with ``keep=N`` (or ``max_age``) is also captured by a
  JetStream stream that keeps its last ``N`` items. ``subscribe(..., replay="all")`` (or a stream
  sequence number, or a ``datetime``) first delivers the kept items from that point, then the live
  ones, in order, with no gap and no repeat between the two (one ordered consumer reads both).
- **Ordering.** The items of one publisher arrive in the order it sent them.
- **Bad payloads** are counted, logged and kept for inspection (``Subscriber.undecodable``), and
  never delivered.
- **Closing** a subscription stops the process's interest once every local subscription of it is
  closed; closing the node closes them all.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import anyio
import anyio.lowlevel
import msgspec

from .._channels._broadcast import BroadcastSender, broadcast
from ._channel import HEADER_ROOM, PayloadTooLarge
from ._codec import Codec, Undecodable
from ._loop import barrier
from ._outbox import Outbox

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["Publisher", "Subscriber"]

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

logger = logging.getLogger("fearless.nats")

Replay = Literal["all"] | int | datetime.datetime | None


def subject_of(system: str, name: str) -> str:
    return f"fearless.{system}.broadcast.{name}"


def stream_of(system: str, name: str) -> str:
    return f"FEARLESS_BC_{system}_{name}"


class Publisher(Generic[T_contra]):
    """Publishes items of one broadcast to every process subscribed now (at-most-once).

    Made by ``await node.open_publisher(name, item_type)``. The items of one publisher are
    published in the order of its sends. On trio, where the client runs in a thread of its own,
    sends are queued for that thread and published in order by one drain per burst, so a send
    does not pay a thread round trip; once about ``BACKLOG`` items wait, a send waits for room
    (backpressure, not loss). Closing the publisher, or its node, waits for the queue.
    """

    BACKLOG = 4096

    def __init__(self, node: Node, name: str, item_type: Any) -> None:
        self._node = node
        self.name = name
        self._codec = Codec[Any](item_type)
        self._subject = subject_of(node.system, name)
        self._closed = False
        self.sent = 0
        self._outbox = Outbox(node, limit=self.BACKLOG)

    async def send(self, item: T_contra) -> None:
        """Publish ``item``: it is written to the connection (not acknowledged by anyone).

        Raises ``TypeError`` for an item not of the broadcast's type, :class:`PayloadTooLarge`,
        ``ClosedResourceError`` after ``close()``.

        Cancellation: a cancelled send may or may not have been written; at-most-once delivery
        allows both (use a durable channel when that matters).
        """
        if self._closed or self._node.closed:
            raise anyio.ClosedResourceError
        payload = self._encode(item)
        loop = self._node.client_loop
        if not loop.private:
            await loop.call(self._node.connection.publish, self._subject, payload)
            self.sent += 1
            return
        await self._enqueue([payload])

    async def send_many(self, items: Iterable[T_contra]) -> None:
        """Publish every item, in order, in one call to the client.

        Cancellation: as :meth:`send`: some of the items may have been written.
        """
        if self._closed or self._node.closed:
            raise anyio.ClosedResourceError
        payloads = [self._encode(item) for item in items]
        loop = self._node.client_loop
        if loop.private:
            await self._enqueue(payloads)
            return
        publish = self._node.connection.publish
        subject = self._subject

        async def publish_all() -> None:
            for payload in payloads:
                await publish(subject, payload)

        await loop.call(publish_all)
        self.sent += len(payloads)

    async def _enqueue(self, payloads: list[bytes]) -> None:
        """Queue payloads for the client's thread; wait while the backlog is full."""
        await self._outbox.room()
        for payload in payloads:
            self._outbox.put(self._subject, payload)
        self.sent += len(payloads)

    def _encode(self, item: T_contra) -> bytes:
        payload = self._codec.encode(item)
        limit = self._node.max_payload - HEADER_ROOM
        if len(payload) > limit:
            raise PayloadTooLarge(
                f"the item encodes to {len(payload)} bytes; the server accepts at most {limit}"
            )
        return payload

    def close(self) -> None:
        """Close this publisher; what it queued is still published (prefer :meth:`aclose`)."""
        self._closed = True

    async def aclose(self) -> None:
        """Close this publisher once what it queued is published.

        Cancellation: the publisher is closed; the wait for the queue stops.
        """
        self._closed = True
        await self._outbox.flushed()

    def __repr__(self) -> str:
        return f"<fearless.nats.Publisher {self._subject} sent={self.sent}>"


@dataclasses.dataclass
class SubscriberStatistics:
    """What one process's subscription to a broadcast received: items passed on to the local
    subscriptions, and payloads that did not decode."""

    received: int = 0
    undecodable: int = 0


class Subscriber(Generic[T]):
    """One process's interest in a broadcast: the NATS subscription feeding a local ring."""

    def __init__(self, node: Node, name: str, item_type: Any, capacity: int, on_lag: str) -> None:
        self._node = node
        self.name = name
        self._codec = Codec[T](item_type)
        self._sender: BroadcastSender[T]
        self._sender, self.subscription = broadcast[T](capacity, on_lag=on_lag)  # type: ignore[arg-type]
        self._nats_subscription: Any = None
        self._stats = SubscriberStatistics()

    @property
    def undecodable(self) -> list[Undecodable]:
        return list(self._codec.undecodable)

    def statistics(self) -> SubscriberStatistics:
        return dataclasses.replace(self._stats, undecodable=self._codec.undecodable_count)

    async def start(self, replay: Replay) -> None:
        """Subscribe (on the client's loop)."""
        node = self._node
        subject = subject_of(node.system, self.name)
        if replay is None:
            self._nats_subscription = await node.connection.subscribe(subject, cb=self._on_message)
            await barrier(node.connection)  # an item published after subscribe() reaches it
            return
        from nats.js.api import ConsumerConfig, DeliverPolicy

        config = ConsumerConfig()
        if replay == "all":
            config.deliver_policy = DeliverPolicy.ALL
        elif isinstance(replay, datetime.datetime):
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = replay.astimezone(datetime.UTC)
        else:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = replay
        self._nats_subscription = await node.jetstream.subscribe(
            subject,
            stream=stream_of(node.system, self.name),
            ordered_consumer=True,
            config=config,
            cb=self._on_message,
        )

    async def _on_message(self, msg: Any) -> None:
        try:
            item = self._codec.decode(msg.data)
        except msgspec.DecodeError as exc:
            self._codec.report(msg.subject, msg.data, exc, None)
            return
        if not self._sender._state.live:  # every local subscription closed
            await self.stop()
            return
        self._sender.send_nowait(item)
        self._stats.received += 1

    def discard(self) -> None:
        """Close the local ring of a subscriber that never started."""
        self._sender.close()
        self.subscription.close()

    async def stop(self) -> None:
        """Unsubscribe (on the client's loop); the local subscriptions then end."""
        subscription, self._nats_subscription = self._nats_subscription, None
        self._sender.close()
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception:
                logger.debug(
                    "fearless.nats: unsubscribing from %s failed", self.name, exc_info=True
                )


def check_replay(replay: object) -> Replay:
    if replay is None or replay == "all" or isinstance(replay, datetime.datetime):
        return replay
    if isinstance(replay, int) and not isinstance(replay, bool) and replay >= 1:
        return replay
    raise ValueError(
        f'replay must be None, "all", a stream sequence number (>= 1) or a datetime, not {replay!r}'
    )
