"""The anyio drop-in (``fearless.create_memory_object_stream``) schedules and closes as anyio's
streams do: a yield on every operation (unless ``yield_every`` opts in to the budget), and
``aclose()`` is only ``close()``, never a cancel point. (anyio's own memory-stream tests also run
against it: ``tests/anyio_suite``.)"""

from __future__ import annotations

import math
import re

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


async def _other_task_steps_during_sends(**options: int) -> int:
    """How many times a task that only yields gets to run while this task makes 20 sends that
    never have to wait (an unbounded stream)."""
    send, receive = fearless.create_memory_object_stream[int](math.inf, **options)
    steps = 0
    sending = True

    async def other() -> None:
        nonlocal steps
        while sending:
            steps += 1
            await anyio.lowlevel.checkpoint()

    with send, receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            await anyio.lowlevel.checkpoint()  # let it start
            start = steps
            for i in range(20):
                await send.send(i)
            sending = False
        return steps - start


async def test_every_operation_yields_as_anyio_does() -> None:
    """A drop-in must not change scheduling: anyio's streams yield on every operation, and code
    written for them can depend on that without knowing it (the MCP SDK's SSE transport did: with
    a yield only every 32 operations, a stream could end before the task answering on it ran).
    So 20 sends that never wait give another runnable task (at least) 19 turns."""
    assert await _other_task_steps_during_sends() >= 19


async def test_yield_every_is_an_opt_in_to_the_scheduling_budget() -> None:
    """``yield_every=32`` (fearless's own default for ``channel``) yields once every 32
    operations: 20 sends that never wait give another task at most the one turn of the first."""
    assert await _other_task_steps_during_sends(yield_every=32) <= 1


@pytest.mark.parametrize("bad", [0, -1, 1.0, True, "1"])
def test_a_bad_yield_every_is_refused_with_its_value(bad: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        fearless.create_memory_object_stream[int](1, yield_every=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, math.nan])
def test_a_bad_max_buffer_size_is_refused_as_anyio_does(bad: object) -> None:
    with pytest.raises(ValueError, match="max_buffer_size"):
        fearless.create_memory_object_stream[int](bad)  # type: ignore[arg-type]
