"""The anyio drop-in (``fearless.create_memory_object_stream``) schedules and closes as anyio's
streams do: a yield on every operation (unless ``yield_every`` opts in to the budget), and
``aclose()`` is only ``close()``, never a cancel point. (anyio's own memory-stream tests also run
against it: ``tests/anyio_suite``.)"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import anyio.streams.memory
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
    operations: 20 sends that never wait yield once (the first, which binds the endpoint), which
    gives another task a turn or, as trio orders its runnable tasks at random, two."""
    assert await _other_task_steps_during_sends(yield_every=32) <= 2


@pytest.mark.parametrize("bad", [0, -1, 1.0, True, "1"])
def test_a_bad_yield_every_is_refused_with_its_value(bad: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        fearless.create_memory_object_stream[int](1, yield_every=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, math.nan])
def test_a_bad_max_buffer_size_is_refused_as_anyio_does(bad: object) -> None:
    with pytest.raises(ValueError, match="max_buffer_size"):
        fearless.create_memory_object_stream[int](bad)  # type: ignore[arg-type]


# -- anyio's classes: the drop-in's streams are subclasses of them ------------------------------


def test_the_streams_are_anyios_classes_for_isinstance() -> None:
    """Code that checks ``isinstance(stream, MemoryObjectSendStream)`` with anyio's classes (or
    dispatches on them) treats the drop-in's streams as anyio's."""
    send, receive = fearless.create_memory_object_stream[int](1)
    with send, receive:
        assert isinstance(send, anyio.streams.memory.MemoryObjectSendStream)
        assert isinstance(receive, anyio.streams.memory.MemoryObjectReceiveStream)
        with send.clone() as clone:
            assert isinstance(clone, anyio.streams.memory.MemoryObjectSendStream)
        assert isinstance(send, fearless.Sender)
        assert isinstance(receive, fearless.Receiver)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (fearless.MemoryObjectSendStream, anyio.streams.memory.MemoryObjectSendStream),
        (fearless.MemoryObjectReceiveStream, anyio.streams.memory.MemoryObjectReceiveStream),
    ],
    ids=["send", "receive"],
)
def test_no_method_of_anyios_class_is_left_reachable(ours: type, theirs: type) -> None:
    """The drop-in subclasses anyio's concrete classes for types and ``isinstance`` only: every
    method anyio's class defines must be fearless's own on the drop-in, since anyio's would work
    on anyio's private state, which the drop-in does not have. A method a later anyio adds fails
    this test until fearless implements it."""
    # The dataclass machinery anyio's classes carry (never reached: fearless's endpoints have no
    # public constructor, so anyio's __init__ and __post_init__ never run) and field defaults.
    machinery = {"__init__", "__post_init__", "__match_args__", "__dataclass_fields__"}
    machinery |= {"__dataclass_params__", "_closed", "_waiters"}
    left = [
        name
        for name, value in vars(theirs).items()
        if name not in machinery
        and (callable(value) or isinstance(value, property))
        and getattr(ours, name) is getattr(theirs, name)
    ]
    assert left == []


async def test_statistics_are_anyios_named_tuple_with_fearless_counters() -> None:
    """Code written for anyio may compare, unpack or index the statistics tuple; fearless's own
    counters ride along as attributes."""
    send, receive = fearless.create_memory_object_stream[int](4)
    with send, receive:
        await send.send(1)
        await send.send(2)
        assert await receive.receive() == 1
        stats = receive.statistics()
        assert isinstance(stats, anyio.streams.memory.MemoryObjectStreamStatistics)
        expected: tuple[int, float, int, int, int, int] = (1, 4, 1, 1, 0, 0)
        assert stats == expected
        buffered, capacity, *_ = stats
        assert (buffered, capacity) == (1, 4)
        assert (stats.peak_buffer_used, stats.total_sent, stats.total_received) == (2, 2, 1)
        assert "total_sent=2" in repr(stats)
        assert send.statistics() == stats


if TYPE_CHECKING:  # checked by mypy --strict (which also flags an unused ignore), never run
    from anyio.streams.memory import (
        MemoryObjectReceiveStream,
        MemoryObjectSendStream,
        MemoryObjectStreamStatistics,
    )

    async def code_annotated_for_anyio_switches_with_the_import_alone() -> None:
        """What typed anyio code looks like (the MCP SDK's does), with only the factory's import
        changed to fearless's: it type-checks unchanged."""
        writer: MemoryObjectSendStream[bytes]
        reader: MemoryObjectReceiveStream[bytes]
        writer, reader = fearless.create_memory_object_stream[bytes](0)
        pair: tuple[MemoryObjectSendStream[int], MemoryObjectReceiveStream[int]]
        pair = fearless.create_memory_object_stream[int](math.inf)
        clone: MemoryObjectSendStream[bytes] = writer.clone()
        stats: MemoryObjectStreamStatistics = reader.statistics()
        await writer.send(b"x")
        data: bytes = await reader.receive()
        async with writer, reader:
            pass
        del pair, clone, stats, data

    def what_still_needs_fearless_types(
        writer: MemoryObjectSendStream[int], reader: MemoryObjectReceiveStream[int]
    ) -> None:
        """Through anyio's classes a type checker sees anyio's API: fearless's additions need
        fearless's types (or none: the factory's result is typed with fearless's classes)."""
        reader.receive_blocking()  # type: ignore[attr-defined]
        writer.send_blocking(1)  # type: ignore[attr-defined]
        reader.statistics().total_sent  # type: ignore[attr-defined]  # noqa: B018
        # The types still mean something: a stream of str is not one of int.
        wrong: MemoryObjectSendStream[str] = fearless.create_memory_object_stream[int](1)[0]  # type: ignore[assignment]
        del wrong
        own_writer, own_reader = fearless.create_memory_object_stream[int](1)
        own_reader.receive_blocking()
        own_writer.send_blocking(1)
        total: int = own_reader.statistics().total_sent
        del total
