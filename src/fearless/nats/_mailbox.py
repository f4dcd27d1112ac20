"""A remote actor's durable mailbox: its tells and sends kept in a JetStream work queue.

Specification (the guide is docs/remote-actors.md):

- **Where messages live.** The durable mailbox of the actor ``counter`` of the system ``shop`` is
  the stream ``FEARLESS_MB_shop_counter`` (work-queue retention), on the subjects of its tells and
  sends (``fearless.shop.actor.counter.tell.*`` / ``.send.*``). The first process that publishes the
  actor with ``durable=True`` creates it; it outlives every process (messages sent while nobody
  serves the name wait in it) until ``node.delete_mailbox(name)``. Its ``capacity`` is the
  stream's ``max_msgs`` with the *discard new* policy: the server refuses a message when it is
  full (a ``send`` waits and retries, a ``tell`` comes back as a ``MAILBOX_FULL`` dead letter).
- **Delivery.** Each publishing process pulls up to ``PREFETCH`` messages at a time from the
  stream's one durable consumer (``mailbox``; a pool's members share it, each message going to
  one of them) and hands each to its local actor as an ask, in stream order. A message is
  acknowledged once the actor's handler for it returned: at-least-once.

  - The process dies mid-message (or before the handler ran): the server delivers the message
    again after ``ack_wait`` seconds to whichever process serves the name then.
  - The handler raises: the actor fails and its supervisor restarts it (the runtime publishes the
    ``HANDLER_FAILED`` dead letter, as for any message); the message is handed back with a delay
    (``RETRY_FIRST`` seconds doubling per failure up to ``RETRY_LAST``) and handled again. After
    ``MAX_FAILURES`` failures in one process it is refused for good (a poison message is not
    retried forever); its dead letters stand.
  - The actor has stopped: the message is handed back at once, and this process stops pulling (a
    replacement, or another member, takes it).
  - A payload that does not decode: a dead letter of this system (``UNDECODABLE``), refused for
    good.
  - The publication ends: the pull stops; messages in the actor's mailbox are handled and
    acknowledged for up to the node's request timeout; any left are delivered again after
    ``ack_wait``.

- **Duplicates.** A message is handled twice only when its acknowledgement did not reach the
  server: its process died between the handler's return and the acknowledgement, or the handler
  ran longer than ``ack_wait``. A ``send`` retried after an unanswered attempt carries the same
  message id and is stored once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._exceptions import ActorStopped
from ._actors import mailbox_stream, subject_of
from ._channel import DELETED, _Pull, make_consumer, make_work_queue

if TYPE_CHECKING:
    from ._actors import Publication
    from ._node import Node

__all__ = ["DurableMailbox", "delete_mailbox", "mailbox_exists"]

logger = logging.getLogger("fearless.nats")

PREFETCH = 16
RETRY_FIRST = 0.1
RETRY_LAST = 5.0
MAX_FAILURES = 5
CONSUMER = "mailbox"


async def mailbox_exists(node: Node, name: str) -> bool:
    """Whether the actor ``name`` has a durable mailbox on the server."""
    return await _on_stream(node, name, "stream_info")


async def delete_mailbox(node: Node, name: str) -> bool:
    """Delete the durable mailbox of ``name`` and the messages in it; False if there was none."""
    return await _on_stream(node, name, "delete_stream")


async def _on_stream(node: Node, name: str, operation: str) -> bool:
    """Apply a JetStream stream operation to the mailbox of ``name``; False if it has none."""
    from nats.js.errors import NotFoundError

    try:
        await node.client_loop.call(
            getattr(node.jetstream, operation), mailbox_stream(node.system, name)
        )
    except NotFoundError:
        return False
    return True


class DurableMailbox:
    """The durable mailbox of one publication (see the module docstring)."""

    def __init__(self, publication: Publication, capacity: float, ack_wait: float) -> None:
        self.publication = publication
        self.node = publication.node
        self.name = publication.name
        self.capacity = capacity
        self.ack_wait = ack_wait
        self.stream = mailbox_stream(self.node.system, self.name)
        self.consumer = CONSUMER
        self.prefetch = PREFETCH
        self._pull: _Pull | None = None
        self._handling: set[Any] = set()
        self._failures: dict[int, int] = {}  # handler failures, by stream sequence
        self.handled = 0
        self.handed_back = 0

    async def open(self) -> None:
        """Create the stream and its consumer, or check the existing stream's capacity."""
        system = self.node.system
        await make_work_queue(
            self.node,
            self.stream,
            [
                subject_of(system, self.name, "tell", "*"),
                subject_of(system, self.name, "send", "*"),
            ],
            self.capacity,
            f"the durable mailbox of {self.name!r} in the system {system!r}",
        )
        await make_consumer(self.node, self.stream, self.consumer, self.ack_wait)

    async def start(self) -> None:
        """Start pulling (on the client's loop)."""
        self._pull = _Pull(self, self)
        await self._pull.start()

    async def stop(self) -> None:
        """Stop pulling; let what the actor holds be handled for up to the request timeout
        (on the client's loop)."""
        from ._loop import wait_done_all

        if self._pull is not None:
            await self._pull.stop()
        if self._handling:
            await wait_done_all(list(self._handling), self.node.request_timeout)

    # -- what the pull hands over (on the client's loop) ---------------------------------------

    def send_nowait(self, msg: Any, /) -> None:
        pull = self._pull
        assert pull is not None
        if msg is DELETED:
            logger.error(
                "fearless.nats: the durable mailbox of %r was deleted under its publication; "
                "no more messages come to it from the stream",
                self.name,
            )
            return
        message = self.publication.decode(msg)
        if message is None:  # a dead letter already
            pull.taken()
            self.node.client_loop.call_soon(msg.term)
            return
        task = self.node.client_loop.loop.create_task(self._handle(message, msg))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    def close(self) -> None:
        """The pull stopped: nothing to close here (what is being handled goes on)."""

    async def _handle(self, message: Any, msg: Any) -> None:
        """Hand one message to the actor; acknowledge it once the handler returned."""
        pull = self._pull
        assert pull is not None
        settle: Any
        try:
            # The ask enqueues before its first await: tasks started in stream order enqueue in
            # stream order.
            await self.publication.ref.ask(message)
        except ActorStopped:
            self.handed_back += 1
            await pull.stop()  # this process takes no more: others (or a replacement) will
            settle = msg.nak()
        except Exception:
            sequence = msg.metadata.sequence.stream
            failures = self._failures[sequence] = self._failures.get(sequence, 0) + 1
            if failures >= MAX_FAILURES:
                logger.warning(
                    "fearless.nats: a message to %r failed its handler %d times: refused for good",
                    self.name,
                    failures,
                )
                del self._failures[sequence]
                settle = msg.term()
            else:
                self.handed_back += 1
                settle = msg.nak(delay=min(RETRY_FIRST * 2 ** (failures - 1), RETRY_LAST))
        else:
            self.handled += 1
            self._failures.pop(msg.metadata.sequence.stream, None)
            settle = msg.ack()
        try:
            await settle
        except Exception as exc:  # not settled: the server delivers it again after ack_wait
            logger.debug("fearless.nats: settling a message to %r failed: %r", self.name, exc)
        finally:
            pull.taken()
