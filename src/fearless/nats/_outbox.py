"""An outbox: publishes without waiting, in order, one drain per burst (a broadcast
Publisher's sends on trio, a RemoteRef's tells).

``put(subject, payload, headers)`` queues a publish and returns; the first put of a burst
schedules one drain on the client's loop, which publishes everything queued, in order, until
the queue is empty. So a burst of tells or broadcast items costs one hop to the client's loop
(on trio, to its thread), not one per item. ``flushed()`` waits until everything queued so far
has been published (a ``send`` or ``ask`` of the same ref waits for it, to stay behind the tells
sent before it); ``room()`` waits while ``limit`` publishes are queued (backpressure, not loss).
At-most-once: if the connection fails, what is queued is dropped (and counted).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

from .._cells._atomic import AtomicInt

logger = logging.getLogger("fearless.nats")

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["Outbox"]


class Outbox:
    def __init__(self, node: Node, limit: int = 4096) -> None:
        self._node = node
        self._limit = limit
        self._queue: deque[tuple[str, bytes, dict[str, str] | None, str]] = deque()
        self._lock = threading.Lock()
        self._draining = False
        self.pending = AtomicInt(0)  # queued and not yet published
        self.dropped = 0

    def put(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        reply: str = "",
    ) -> None:
        loop = self._node.client_loop  # ClosedResourceError once the node is closed: not queued
        with self._lock:
            self._queue.append((subject, payload, headers, reply))
            start, self._draining = not self._draining, True
        self.pending.fetch_add(1)
        if start:
            loop.call_soon(self._drain)

    async def room(self) -> None:
        """Wait while ``limit`` publishes are queued. Cancellation: nothing was queued."""
        if self.pending.load() >= self._limit:
            await self.pending.wait_until(lambda pending: pending < self._limit)

    async def flushed(self) -> None:
        """Wait until everything queued so far is published. Cancellation: nothing changes."""
        if self.pending.load():
            await self.pending.wait_until(lambda pending: pending == 0)

    async def _drain(self) -> None:
        """Publish what is queued, in order, until the queue is empty (on the client's loop)."""
        from nats.errors import BadSubjectError, MaxPayloadError

        refused = (BadSubjectError, MaxPayloadError)
        publish = self._node.connection.publish
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                batch = list(self._queue)
                self._queue.clear()
            try:
                for subject, payload, headers, reply in batch:
                    try:
                        await publish(subject, payload, reply=reply, headers=headers)
                    except refused as exc:  # this one only: the rest of the batch goes on
                        self.dropped += 1
                        logger.warning(
                            "fearless.nats: a publish to %s was refused: %r", subject, exc
                        )
            except BaseException:  # the connection closed: what is queued is lost (at-most-once)
                with self._lock:
                    lost = len(self._queue)
                    self._queue.clear()
                    self._draining = False
                self.dropped += lost + len(batch)
                self.pending.fetch_add(-lost)
                raise
            finally:
                self.pending.fetch_add(-len(batch))
