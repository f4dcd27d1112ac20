"""``create_memory_object_stream``: fearless channels behind anyio's exact signature.

Swap ``from anyio import create_memory_object_stream`` for
``from fearless import create_memory_object_stream`` and nothing else changes: the same classes
(fearless's streams are subclasses of anyio's ``MemoryObjectSendStream`` and
``MemoryObjectReceiveStream``, so annotations with anyio's classes and ``isinstance`` checks
hold), the same exceptions and close semantics, the same statistics (anyio's named tuple, with
fearless's three counters as extra attributes), the same ``ResourceWarning`` for an endpoint that
was never closed. What changes is speed, and cancellation: a receiver cancelled natively on
asyncio after it was handed an item does not lose the item (anyio 4.16 does).

Subclassing anyio's concrete classes is for types and ``isinstance`` only: fearless's streams
keep their own state under anyio's private name ``_state``, and override every method anyio's
classes define (a test checks that no anyio method is left reachable, so a method a later anyio
adds is noticed). Code that reaches into anyio's private state, or builds streams with anyio's
constructors, does not carry over; nor do the ``dataclasses`` functions, which see anyio's fields.

``aclose()`` is what anyio's is: ``close()`` and nothing else (no checkpoint), so cleanup code
that awaits ``aclose()`` on several streams in a row inside a cancelled scope closes every one of
them and raises nothing.

Scheduling is anyio's: every operation yields to the event loop once (``yield_every=1``), as
anyio's streams do. Code written for anyio may depend on that schedule without knowing it (the MCP
SDK's SSE transport does: with fewer yields, a stream can end before the task that answers on it
has run), so a drop-in must not change it. ``yield_every=N``, a keyword only fearless accepts,
opts in to the scheduling budget of ``fearless.channel`` (a yield once every N operations on an
endpoint, each operation still a cancel point).

Two differences stay, because a cancelled operation in fearless never half-happens: a receiver
cancelled natively on asyncio after it was handed an item keeps it (anyio 4.16 loses it), and on
a rendezvous (``max_buffer_size=0``) a sender cancelled while parked is refused atomically (anyio
can deliver its item to a receiver and still report the cancellation to the sender).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, TypeVar

import anyio.streams.memory as _anyio_memory

from ._base import check_capacity
from ._base import check_yield_every as _check_yield_every
from ._endpoints import ChannelReceiver, Sender
from ._state import ChannelState

__all__ = [
    "MemoryObjectReceiveStream",
    "MemoryObjectSendStream",
    "MemoryObjectStreamStatistics",
    "create_memory_object_stream",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class MemoryObjectStreamStatistics(_anyio_memory.MemoryObjectStreamStatistics):
    """anyio's statistics (a named tuple of its six fields, which compares, unpacks and indexes
    as anyio's does), with fearless's three counters as extra attributes (not tuple fields:
    ``_asdict()`` and ``_replace()`` know only anyio's six)."""

    peak_buffer_used: int
    """The most items the buffer has held at once."""
    total_sent: int
    """Items that have entered the channel (buffered or handed to a receiver)."""
    total_received: int
    """Items that have left the channel to a receiver."""

    def __repr__(self) -> str:
        return (
            f"{super().__repr__()[:-1]}, peak_buffer_used={self.peak_buffer_used}, "
            f"total_sent={self.total_sent}, total_received={self.total_received})"
        )


def _statistics(state: ChannelState[Any]) -> MemoryObjectStreamStatistics:
    s = state.statistics()
    stats = MemoryObjectStreamStatistics(
        s.current_buffer_used,
        s.max_buffer_size,
        s.open_send_streams,
        s.open_receive_streams,
        s.tasks_waiting_send,
        s.tasks_waiting_receive,
    )
    stats.peak_buffer_used = s.peak_buffer_used
    stats.total_sent = s.total_sent
    stats.total_received = s.total_received
    return stats


class MemoryObjectSendStream(Sender[T_contra], _anyio_memory.MemoryObjectSendStream[T_contra]):
    """A fearless :class:`Sender` that is (for types and ``isinstance``) anyio's
    ``MemoryObjectSendStream``; ``aclose()`` and ``statistics()`` are anyio's: ``aclose()`` only
    closes (no checkpoint), ``statistics()`` is anyio's named tuple with fearless's counters added.
    The guide: ``docs/channels.md``, "anyio drop-in"."""

    __slots__ = ()
    _factory = "fearless.create_memory_object_stream"
    _state: ChannelState[T_contra]  # type: ignore[assignment]  # fearless's, under anyio's name

    # anyio's type, not fearless's ChannelStatistics (a frozen dataclass with the same nine
    # names): a drop-in's statistics must be anyio's tuple; read through fearless's Sender and
    # Receiver types, only the nine attributes are the same.
    def statistics(self) -> MemoryObjectStreamStatistics:  # type: ignore[override]
        """anyio's statistics of the stream, plus fearless's counters (see
        :class:`MemoryObjectStreamStatistics`)."""
        return _statistics(self._state)

    async def aclose(self) -> None:
        """Close the stream, as anyio's does: synchronously, with no checkpoint. Cancellation:
        never raises it (not a cancel point), so it also closes inside a cancelled scope."""
        self.close()


class MemoryObjectReceiveStream(
    ChannelReceiver[T_co], _anyio_memory.MemoryObjectReceiveStream[T_co]
):
    """A fearless channel receiver that is (for types and ``isinstance``) anyio's
    ``MemoryObjectReceiveStream``; ``aclose()`` and ``statistics()`` are anyio's: ``aclose()``
    only closes (no checkpoint), ``statistics()`` is anyio's named tuple with fearless's counters
    added. The guide: ``docs/channels.md``, "anyio drop-in"."""

    __slots__ = ()
    _factory = "fearless.create_memory_object_stream"
    _state: ChannelState[T_co]  # type: ignore[assignment]  # fearless's, under anyio's name

    # anyio's type, not fearless's ChannelStatistics (a frozen dataclass with the same nine
    # names): a drop-in's statistics must be anyio's tuple; read through fearless's Sender and
    # Receiver types, only the nine attributes are the same.
    def statistics(self) -> MemoryObjectStreamStatistics:  # type: ignore[override]
        """anyio's statistics of the stream, plus fearless's counters (see
        :class:`MemoryObjectStreamStatistics`)."""
        return _statistics(self._state)

    async def aclose(self) -> None:
        """Close the stream, as anyio's does: synchronously, with no checkpoint. Cancellation:
        never raises it (not a cancel point), so it also closes inside a cancelled scope."""
        self.close()


class create_memory_object_stream(tuple[MemoryObjectSendStream[T], MemoryObjectReceiveStream[T]]):
    """Create a channel with anyio's signature: ``create_memory_object_stream[T](max_buffer_size)``.

    ``max_buffer_size`` is ``0`` (the default: a send waits for a receiver), a positive int, or
    ``math.inf``. ``item_type`` is accepted, deprecated, as in anyio 4. The default
    ``yield_every=1`` is anyio's schedule (a yield on every operation); a larger ``yield_every``
    opts in to the scheduling budget of :func:`fearless.channel`.
    """

    def __new__(  # type: ignore[misc]
        cls,
        max_buffer_size: float = 0,
        item_type: object = None,
        *,
        yield_every: int = 1,
    ) -> tuple[MemoryObjectSendStream[T], MemoryObjectReceiveStream[T]]:
        # The checks cost next to nothing for the usual argument (MCP makes a stream per request).
        capacity: float
        if type(max_buffer_size) is int and max_buffer_size >= 0:
            capacity = max_buffer_size
        else:
            capacity = _check_max_buffer_size(max_buffer_size)
        if item_type is not None:
            warnings.warn(
                "The item_type argument has been deprecated in AnyIO 4.0. "
                "Use create_memory_object_stream[YourItemType](...) instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        if type(yield_every) is not int or yield_every < 1:
            _check_yield_every(yield_every)
        state: ChannelState[T] = ChannelState(capacity, yield_every)
        return MemoryObjectSendStream._create(state), MemoryObjectReceiveStream._create(state)


def _check_max_buffer_size(max_buffer_size: object) -> float:
    if max_buffer_size != math.inf and not isinstance(max_buffer_size, int):
        raise ValueError(
            f"max_buffer_size must be either an integer or math.inf, got {max_buffer_size!r}"
        )
    return check_capacity(max_buffer_size, "max_buffer_size")
