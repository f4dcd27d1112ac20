"""The anyio drop-in (``fearless.create_memory_object_stream``) closes as anyio's streams do:
``aclose()`` is only ``close()``, never a cancel point. (anyio's own memory-stream tests also run
against it: ``tests/anyio_suite``.)"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import fearless

pytestmark = pytest.mark.anyio


async def test_aclose_in_a_cancelled_scope_closes_both_streams_and_raises_nothing() -> None:
    """Cleanup that awaits ``aclose()`` on two streams in a row inside a cancelled scope (as the
    MCP SDK's does in ``finally`` blocks) closes both: the first ``aclose()`` must not deliver the
    scope's cancellation, or the second stream would never be closed."""
    send, receive = fearless.create_memory_object_stream[int](1)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await send.aclose()
        await receive.aclose()
        reached = True
    assert reached
    assert not scope.cancelled_caught  # nothing in the block was a cancel point
    with pytest.raises(anyio.ClosedResourceError):
        send.send_nowait(1)
    with pytest.raises(anyio.ClosedResourceError):
        receive.receive_nowait()


async def test_async_with_closes_in_a_cancelled_scope_as_anyio_does() -> None:
    """``async with`` on both streams, left inside a cancelled scope: both end closed."""
    send, receive = fearless.create_memory_object_stream[int](1)
    with anyio.CancelScope() as scope:
        scope.cancel()
        async with send, receive:
            pass
    with pytest.raises(anyio.ClosedResourceError):
        send.send_nowait(1)
    with pytest.raises(anyio.ClosedResourceError):
        receive.receive_nowait()
