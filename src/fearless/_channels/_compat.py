"""``create_memory_object_stream``: fearless channels behind anyio's exact signature.

Swap ``from anyio import create_memory_object_stream`` for
``from fearless import create_memory_object_stream`` and nothing else changes: the same abc classes
(``ObjectSendStream``, ``ObjectReceiveStream``), the same exceptions and close semantics, the same
statistics fields (plus fearless's own), the same ``ResourceWarning`` for an endpoint that was
never closed. What changes is speed, and cancellation: a receiver cancelled natively on asyncio
after it was handed an item does not lose the item (anyio 4.16 does).

Annotate with the ``anyio.abc`` types (``ObjectSendStream[T]``, ``ObjectReceiveStream[T]``) or
fearless's own classes: code annotated with anyio's *concrete* ``MemoryObjectSendStream`` class
will not type-check against fearless's streams (they are not subclasses of it).

``aclose()`` is what anyio's is: ``close()`` and nothing else (no checkpoint), so cleanup code
that awaits ``aclose()`` on several streams in a row inside a cancelled scope closes every one of
them and raises nothing.

Scheduling is anyio's: every operation yields to the event loop once (``yield_every=1``), as anyio's
streams do. Code written for anyio may depend on that schedule without knowing it (the MCP SDK's
SSE transport does: with fewer yields, a stream can end before the task that answers on it has
run), so a drop-in must not change it. ``yield_every=N``, a keyword only fearless accepts, opts in
to the scheduling budget of ``fearless.channel`` (a yield once every N operations on an endpoint,
each operation still a cancel point).

Two differences stay, because a cancelled operation in fearless never half-happens: a receiver
cancelled natively on asyncio after it was handed an item keeps it (anyio 4.16 loses it), and on
a rendezvous (``max_buffer_size=0``) a sender cancelled while parked is refused atomically (anyio
can deliver its item to a receiver and still report the cancellation to the sender).
"""

from __future__ import annotations

import math
import warnings
from typing import TypeVar

from ._base import check_capacity
from ._base import check_yield_every as _check_yield_every
from ._endpoints import ChannelReceiver, Sender
from ._state import ChannelState

__all__ = ["MemoryObjectReceiveStream", "MemoryObjectSendStream", "create_memory_object_stream"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class MemoryObjectSendStream(Sender[T_contra]):
    """A fearless :class:`Sender` under anyio's name; ``aclose()`` is anyio's (see the module
    docstring)."""

    __slots__ = ()
    _factory = "fearless.create_memory_object_stream"

    async def aclose(self) -> None:
        """Close the stream, as anyio's does: synchronously, with no checkpoint. Cancellation:
        never raises it (not a cancel point), so it also closes inside a cancelled scope."""
        self.close()


class MemoryObjectReceiveStream(ChannelReceiver[T_co]):
    """A fearless channel receiver under anyio's name; ``aclose()`` is anyio's (see the module
    docstring)."""

    __slots__ = ()
    _factory = "fearless.create_memory_object_stream"

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
