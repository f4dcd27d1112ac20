"""The core channel: bounded, unbounded and rendezvous, with cloneable endpoints.

Specification (``docs/channels.md`` is the user guide; ``docs/design/concurrency.md``,
"Channels", gives the reasons):

Capacity
    ``0``: rendezvous, a send completes only when a receiver takes the item. ``N >= 1``: at most N
    items wait in the buffer. ``math.inf``: unbounded. Anything else raises ``ValueError``.

Closing
    Receivers see ``EndOfStream`` once every sender clone is closed and the buffer is drained.
    Senders see ``BrokenResourceError`` (``SendBrokenError``, carrying the unsent items) once every
    receiver clone is closed; the buffer is then discarded. Using an endpoint after closing it
    raises ``ClosedResourceError``; closing an endpoint wakes its own parked operations with
    ``ClosedResourceError`` (a parked send's item is withdrawn, not sent).

Cancellation
    Atomic: a cancelled ``send`` did not enqueue, a cancelled ``receive`` did not dequeue, under
    anyio cancel scopes, trio, and native asyncio cancellation alike. An operation that completed
    before the cancellation could land returns normally and the cancellation is delivered at the
    next cancel point (see ``fearless._backend``).

Scheduling
    Every async operation is a cancel point: it checks the cancel scope first and does nothing if
    the task is cancelled. It yields to the scheduler whenever it has to wait, and otherwise once
    every ``yield_every`` operations on that endpoint (before the operation, so a cancellation
    delivered during the yield finds the operation not yet done). ``yield_every=1`` is trio's rule.

Order
    Items leave in the order they entered. Waiters are served first come, first served: a parked
    receiver is handed the next item directly, and a parked sender's item enters the buffer as
    soon as a slot frees, so a task arriving later never overtakes one already waiting.
"""

from __future__ import annotations

from typing import TypeVar

from ._base import DEFAULT_YIELD_EVERY, check_capacity, check_yield_every
from ._endpoints import ChannelReceiver, Sender
from ._state import ChannelState

__all__ = ["channel"]

T = TypeVar("T")


class channel(tuple[Sender[T], ChannelReceiver[T]]):
    """Create a channel and return its ``(Sender[T], Receiver[T])`` pair.

    ``channel[int](10)`` gives a typed pair. ``capacity`` is ``0`` (rendezvous), a positive int,
    or ``math.inf``; ``yield_every`` is the scheduling budget: an endpoint that never has to wait
    still yields to the scheduler once every ``yield_every`` operations (``docs/channels.md``,
    "Scheduling").
    """

    def __new__(  # type: ignore[misc]
        cls, capacity: float, *, yield_every: int = DEFAULT_YIELD_EVERY
    ) -> tuple[Sender[T], ChannelReceiver[T]]:
        state: ChannelState[T] = ChannelState(
            check_capacity(capacity), check_yield_every(yield_every)
        )
        return Sender._create(state), ChannelReceiver._create(state)
