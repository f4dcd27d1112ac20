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

Scheduling differs: anyio yields to the event loop on every operation; fearless yields once every
``DEFAULT_YIELD_EVERY`` operations on an endpoint (each operation is still a cancel point). Pass
``yield_every=1`` to get anyio's schedule exactly.

Two differences stay, because a cancelled operation in fearless never half-happens: a receiver
cancelled natively on asyncio after it was handed an item keeps it (anyio 4.16 loses it), and on
a rendezvous (``max_buffer_size=0``) a sender cancelled while parked is refused atomically (anyio
can deliver its item to a receiver and still report the cancellation to the sender).
"""

from __future__ import annotations

import warnings
from typing import TypeVar

from ._base import DEFAULT_YIELD_EVERY, check_capacity
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
    ``math.inf``. ``item_type`` is accepted, deprecated, as in anyio 4. ``yield_every=1`` gives
    anyio's schedule (a yield on every operation).
    """

    def __new__(  # type: ignore[misc]
        cls,
        max_buffer_size: float = 0,
        item_type: object = None,
        *,
        yield_every: int = DEFAULT_YIELD_EVERY,
    ) -> tuple[MemoryObjectSendStream[T], MemoryObjectReceiveStream[T]]:
        if max_buffer_size != float("inf") and not isinstance(max_buffer_size, int):
            raise ValueError(
                f"max_buffer_size must be either an integer or math.inf, got {max_buffer_size!r}"
            )
        capacity = check_capacity(max_buffer_size, "max_buffer_size")
        if item_type is not None:
            warnings.warn(
                "The item_type argument has been deprecated in AnyIO 4.0. "
                "Use create_memory_object_stream[YourItemType](...) instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        state: ChannelState[T] = ChannelState(capacity, _check_yield_every(yield_every))
        return (
            MemoryObjectSendStream._create(state),
            MemoryObjectReceiveStream._create(state),
        )
