"""``_backend.wait_all_tasks_blocked()``: the settling wait behind ``FakeClock`` and ``Probe``.

On trio it is trio's own (exact); on asyncio and uvloop it reads the loop's tasks directly
instead of polling every 0.1 s as ``anyio.wait_all_tasks_blocked()`` does there.
"""

from __future__ import annotations

import anyio
import pytest
from anyio import CancelScope

from fearless import _backend

pytestmark = pytest.mark.anyio


async def test_a_chain_of_tasks_each_waking_the_next_has_all_run_when_it_returns() -> None:
    """Each link wakes the next through an Event, one loop iteration after another: the wait
    returns only once the whole chain has run, however long it is."""
    links = 50
    events = [anyio.Event() for _ in range(links + 1)]
    ran: list[int] = []

    async def link(i: int) -> None:
        await events[i].wait()
        ran.append(i)
        events[i + 1].set()

    async with anyio.create_task_group() as tg:
        for i in range(links):
            tg.start_soon(link, i)
        await _backend.wait_all_tasks_blocked()
        assert ran == []  # every link is parked on its event
        events[0].set()
        await _backend.wait_all_tasks_blocked()
        assert ran == list(range(links))
        assert events[links].is_set()


async def test_a_task_sleeping_for_an_hour_counts_as_blocked() -> None:
    """A task waiting on a timer is blocked, however long the timer: the wait returns at once
    (the fail_after only turns a hang into a failure)."""
    asleep = False

    async def sleeper() -> None:
        nonlocal asleep
        asleep = True
        await anyio.sleep(3600)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await _backend.wait_all_tasks_blocked()
            assert asleep
            tg.cancel_scope.cancel()


async def test_new_tasks_run_until_they_block_before_it_returns() -> None:
    """Tasks started just before the wait have not run yet; the wait lets each run up to its
    first blocking point, through several plain checkpoints on the way."""
    steps: list[int] = []

    async def stepper(i: int) -> None:
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        steps.append(i)
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(stepper, i)
        await _backend.wait_all_tasks_blocked()
        assert sorted(steps) == list(range(10))
        tg.cancel_scope.cancel()


async def test_a_callback_scheduled_to_wake_a_task_is_seen(anyio_backend_name: str) -> None:
    """A task parked on a future that a callback already scheduled will complete, through one
    more callback it schedules, is about to run: the wait must not return before it has (this is
    why the check has to hold on two passes, with a yield between)."""
    if anyio_backend_name == "trio":
        pytest.skip("asyncio's loop callbacks and futures; trio's own wait is exact")
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    woken: list[bool] = []

    async def parked() -> None:
        await future
        woken.append(True)
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(parked)
        await _backend.wait_all_tasks_blocked()
        assert woken == []
        loop.call_soon(loop.call_soon, future.set_result, None)
        await _backend.wait_all_tasks_blocked()
        assert woken == [True]
        tg.cancel_scope.cancel()


async def test_two_tasks_waiting_at_once_both_return() -> None:
    """Two waits at the same time must not keep each other from ever returning (on asyncio each
    counts the other as blocked; on trio one returns first, then the other)."""
    returned: list[str] = []

    async def wait(name: str) -> None:
        await _backend.wait_all_tasks_blocked()
        returned.append(name)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "a")
            tg.start_soon(wait, "b")
    assert sorted(returned) == ["a", "b"]


async def test_a_cancelled_wait_ends_although_a_task_never_blocks() -> None:
    """While one task keeps yielding without ever blocking the wait cannot return by itself;
    cancelling it ends it (it is a cancel point)."""
    spinning = True
    spins = 0

    async def spinner() -> None:
        nonlocal spins
        while spinning:
            spins += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(spinner)
        with CancelScope() as scope:
            scope.cancel()
            await _backend.wait_all_tasks_blocked()
        assert scope.cancelled_caught
        spinning = False


async def test_fake_clock_and_probe_use_it() -> None:
    """``fearless.testing`` settles through this function, not through anyio's polling one."""
    import fearless.testing

    assert vars(fearless.testing)["wait_all_tasks_blocked"] is _backend.wait_all_tasks_blocked
