"""Fan-out: N workers over one receiver, results gathered into one channel, errors propagated."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

import fearless
from fearless import channel, fan_out
from fearless.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


async def _produce(tx: fearless.Sender[int], n: int) -> None:
    async with tx:
        for i in range(n):
            await tx.send(i)


async def test_every_item_is_worked_exactly_once_and_results_end() -> None:
    tx, rx = channel[int](8)
    seen: Counter[int] = Counter()

    async def work(x: int) -> int:
        seen[x] += 1
        await anyio.lowlevel.checkpoint()
        return x * x

    async with anyio.create_task_group() as tg:
        tg.start_soon(_produce, tx, 500)
        async with fan_out(rx, work, workers=4) as results:
            squares = [y async for y in results]

    assert sorted(squares) == [i * i for i in range(500)]
    assert set(seen.values()) == {1}


async def test_work_is_spread_over_the_workers() -> None:
    tx, rx = channel[int](0)
    running = 0
    most = 0
    release = anyio.Event()

    async def work(x: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return x

    async with anyio.create_task_group() as tg:
        tg.start_soon(_produce, tx, 4)
        async with fan_out(rx, work, workers=4) as results:
            await wait_all_tasks_blocked()
            assert most == 4  # all four workers hold an item at once
            release.set()
            assert sorted([y async for y in results]) == [0, 1, 2, 3]


async def test_an_error_in_a_worker_propagates_out_of_the_block() -> None:
    tx, rx = channel[int](8)

    async def work(x: int) -> int:
        if x == 13:
            raise KeyError("unlucky")
        return x

    with pytest.RaisesGroup(KeyError, allow_unwrapped=True, flatten_subgroups=True):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_produce, tx, 100)
            async with fan_out(rx, work, workers=3) as results:
                async for _ in results:
                    pass


async def test_leaving_the_block_early_stops_the_workers_and_closes_both_ends() -> None:
    tx, rx = channel[int](4)
    started = 0

    async def work(x: int) -> int:
        nonlocal started
        started += 1
        return x

    with tx:
        async with fan_out(rx, work, workers=2) as results:
            tx.send_nowait(1)
            assert await results.receive() == 1
        # fan_out owned the source: it is closed now, so the producer learns nobody listens.
        with pytest.raises(fearless.SendBrokenError):
            tx.send_nowait(2)
    assert started == 1


async def test_results_apply_backpressure_to_the_workers() -> None:
    tx, rx = channel[int](100)
    for i in range(100):
        tx.send_nowait(i)
    tx.close()

    async def work(x: int) -> int:
        return x

    async with fan_out(rx, work, workers=2, capacity=3) as results:
        await wait_all_tasks_blocked()
        stats = results.statistics()
        assert isinstance(stats, fearless.ChannelStatistics)
        assert stats.current_buffer_used == 3
        assert stats.tasks_waiting_send == 2  # each worker holds one result it cannot send
        assert len([y async for y in results]) == 100


@pytest.mark.parametrize("bad", [0, -1, 2.0])
async def test_a_bad_worker_count_raises_value_error(bad: int) -> None:
    tx, rx = channel[int](1)

    async def work(x: int) -> int:
        return x

    with tx, rx, pytest.raises(ValueError, match="workers"):
        async with fan_out(rx, work, workers=bad):
            pass


async def test_an_anyio_error_raised_by_work_itself_is_not_swallowed() -> None:
    """Only the source ending and the results being closed stop a worker quietly; the same
    exception types raised by ``work`` propagate like any other error."""
    tx, rx = channel[int](8)
    audit_tx, audit_rx = channel[int](1)
    audit_rx.close()

    async def work(x: int) -> int:
        if x == 2:
            await audit_tx.send(x)  # SendBrokenError: nobody reads the audit channel
        return x

    with audit_tx, pytest.RaisesGroup(fearless.SendBrokenError, flatten_subgroups=True):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_produce, tx, 5)
            async with fan_out(rx, work, workers=2) as results:
                async for _ in results:
                    pass


async def test_a_closed_source_is_refused_when_the_block_starts() -> None:
    tx, rx = channel[int](1)
    rx.close()

    async def work(x: int) -> int:
        return x

    with tx, pytest.raises(anyio.ClosedResourceError, match="closed source"):
        async with fan_out(rx, work):
            pass


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


async def test_a_stray_cancelled_error_raised_by_work_propagates_out_of_the_block(
    anyio_backend_name: str,
) -> None:
    """On asyncio, work that awaits a future another task cancelled raises ``CancelledError``
    although nothing cancelled the worker. That is a failure of ``work``: it must come out of the
    block like any other error (a ``RuntimeError`` caused by the ``CancelledError``, in the
    block's ``ExceptionGroup``), never end the block quietly with results missing."""
    if anyio_backend_name == "trio":
        pytest.skip(
            "trio raises Cancelled only into a task whose own cancel scope was cancelled, and "
            "has no future another task could cancel: a stray Cancelled cannot happen there"
        )
    import asyncio

    shared = asyncio.get_running_loop().create_future()  # someone else's, cancelled by them
    awaiting = anyio.Event()
    tx, rx = channel[int](20)
    for i in range(20):
        tx.send_nowait(i)
    tx.close()

    async def work(x: int) -> int:
        if x == 4:
            awaiting.set()
            await shared
        return x

    async def cancel_the_shared_future() -> None:
        await awaiting.wait()
        shared.cancel()

    stray = pytest.RaisesExc(RuntimeError, match=r"work\(4\) raised CancelledError")
    with pytest.RaisesGroup(stray, flatten_subgroups=True) as caught:
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_the_shared_future)
            async with fan_out(rx, work, workers=4) as results:
                async for _ in results:
                    pass
    (error,) = _leaves(caught.value)
    assert isinstance(error.__cause__, asyncio.CancelledError)


async def test_work_cancelled_with_the_block_ends_quietly() -> None:
    """A worker cancelled in the middle of ``work`` because the block is left is the worker's
    own cancellation, not a failure: leaving the block raises nothing."""
    tx, rx = channel[int](8)
    in_work = 0
    never = anyio.Event()

    async def work(x: int) -> int:
        nonlocal in_work
        in_work += 1
        await never.wait()
        return x

    for i in range(8):
        tx.send_nowait(i)
    with tx:
        async with fan_out(rx, work, workers=3):
            await wait_all_tasks_blocked()
            assert in_work == 3  # every worker is inside work when the block is left


async def test_work_cancelled_by_a_scope_around_the_block_ends_quietly() -> None:
    """Cancelling a scope around the block cancels workers inside ``work``: their own
    cancellation, absorbed by that scope, never reported as an error."""
    tx, rx = channel[int](8)
    in_work = anyio.Event()

    async def work(x: int) -> int:
        in_work.set()
        await anyio.sleep_forever()
        return x

    for i in range(8):
        tx.send_nowait(i)
    with tx, anyio.CancelScope() as scope:
        async with fan_out(rx, work, workers=3):
            await in_work.wait()
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
