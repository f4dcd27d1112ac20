"""AtomicCell, AtomicInt, AtomicBool: operations, waiting from tasks and threads, and stress."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import anyio
import pytest
from anyio import CancelScope
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from fearless import EventLoopBlockingError
from fearless._cells._atomic import AtomicBool, AtomicCell, AtomicInt
from fearless.testing import wait_all_tasks_blocked

from ..threads.support import Worker, running, wait_for

pytestmark = pytest.mark.anyio


# -- operations ---------------------------------------------------------------------------------


def test_load_store_swap() -> None:
    cell = AtomicCell("a")
    assert cell.load() == "a"
    cell.store("b")
    assert cell.swap("c") == "b"
    assert cell.load() == "c"
    assert cell.statistics().changes == 2


def test_a_cell_compares_by_identity_and_an_int_by_value() -> None:
    first, equal = [1], [1]
    cell = AtomicCell(first)
    assert not cell.compare_and_set(equal, [2])  # equal, but not the same object
    assert cell.load() is first
    assert cell.compare_and_set(first, equal)
    assert cell.load() is equal
    number = AtomicInt(10**30)
    assert number.compare_and_set(int("1" + "0" * 30), 5)  # a different int object, same value
    assert number.load() == 5


def test_update_and_modify_run_the_function_under_the_lock() -> None:
    cell: AtomicCell[tuple[int, ...]] = AtomicCell((1, 2, 3))
    assert cell.update(lambda t: (*t, 4)) == (1, 2, 3, 4)
    assert cell.modify(lambda t: (t[1:], t[0])) == 1
    assert cell.load() == (2, 3, 4)


def test_a_failing_function_changes_nothing() -> None:
    cell = AtomicInt(1)

    def boom(_: int) -> int:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        cell.update(boom)
    assert cell.load() == 1
    assert cell.statistics().changes == 0


async def _async_fn(value: int) -> int:
    return value + 1


def test_a_coroutine_function_or_an_awaitable_result_raises_type_error() -> None:
    cell = AtomicInt(1)
    with pytest.raises(TypeError, match="synchronous"):
        cell.update(_async_fn)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="awaitable"):
        cell.update(lambda v: _async_fn(v))  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="awaitable"):
        cell.modify(lambda v: _async_fn(v))  # type: ignore[arg-type,return-value]
    assert cell.load() == 1  # and no "never awaited" warning (warnings are errors here)


def test_using_the_cell_inside_its_own_function_raises_instead_of_deadlocking() -> None:
    cell = AtomicInt(1)
    with pytest.raises(RuntimeError, match="deadlock"):
        cell.update(lambda v: cell.fetch_add(1))
    assert cell.load() == 1
    assert cell.increment() == 2  # the lock was released


def test_int_operations() -> None:
    n = AtomicInt(5)
    assert n.fetch_add(3) == 5
    assert n.add_and_fetch(2) == 10
    assert n.increment() == 11
    assert n.decrement() == 10
    assert n.fetch_max(7) == 10
    assert n.load() == 10
    assert n.fetch_max(12) == 10
    assert n.fetch_min(3) == 12
    assert n.load() == 3
    with pytest.raises(TypeError):
        AtomicInt(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AtomicInt(True)


def test_bool_operations() -> None:
    b = AtomicBool()
    assert b.fetch_or(True) is False
    assert b.load() is True
    assert b.fetch_and(False) is True
    assert b.toggle() is True
    assert b.toggle() is False
    with pytest.raises(TypeError):
        AtomicBool(1)  # type: ignore[arg-type]


class IntModel(RuleBasedStateMachine):
    """AtomicInt against a plain int."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = AtomicInt(0)
        self.model = 0

    numbers = st.integers(-1000, 1000)

    @rule(n=numbers)
    def fetch_add(self, n: int) -> None:
        assert self.cell.fetch_add(n) == self.model
        self.model += n

    @rule(n=numbers)
    def fetch_max(self, n: int) -> None:
        assert self.cell.fetch_max(n) == self.model
        self.model = max(self.model, n)

    @rule(n=numbers)
    def fetch_min(self, n: int) -> None:
        assert self.cell.fetch_min(n) == self.model
        self.model = min(self.model, n)

    @rule(n=numbers)
    def swap(self, n: int) -> None:
        assert self.cell.swap(n) == self.model
        self.model = n

    @rule(expected=numbers, new=numbers, hit=st.booleans())
    def compare_and_set(self, expected: int, new: int, hit: bool) -> None:
        if hit:
            expected = self.model
        assert self.cell.compare_and_set(expected, new) == (expected == self.model)
        if expected == self.model:
            self.model = new

    @rule(n=numbers)
    def update(self, n: int) -> None:
        assert self.cell.update(lambda v: v * 2 + n) == self.model * 2 + n
        self.model = self.model * 2 + n

    @rule()
    def increment_decrement(self) -> None:
        assert self.cell.increment() == self.model + 1
        assert self.cell.decrement() == self.model

    @invariant()
    def agrees(self) -> None:
        assert self.cell.load() == self.model


TestIntModel = IntModel.TestCase
TestIntModel.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


# -- waiting ------------------------------------------------------------------------------------


async def test_a_task_waits_until_a_thread_makes_the_predicate_true() -> None:
    cell = AtomicInt(0)
    got: list[int] = []

    async def wait() -> None:
        got.append(await cell.wait_until(lambda v: v >= 3))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await wait_all_tasks_blocked()
        assert cell.statistics().waiting == 1

        def bump() -> None:
            for _ in range(5):
                cell.increment()

        await anyio.to_thread.run_sync(bump)
    assert got
    assert got[0] >= 3
    assert cell.statistics().waiting == 0


async def test_wait_until_returns_at_once_when_the_predicate_already_holds() -> None:
    cell = AtomicCell("ready")
    assert await cell.wait_until(lambda v: v == "ready") == "ready"


async def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    cell = AtomicInt(0)
    with CancelScope() as scope:

        async def cancel_soon() -> None:
            await wait_all_tasks_blocked()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_soon)
            await cell.wait_until(lambda v: v > 0)
    assert scope.cancelled_caught
    assert cell.statistics().waiting == 0
    cell.increment()  # nobody to wake


async def test_a_change_wakes_only_parties_parked_at_that_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fearless import _backend

    wakes = 0
    for cls in (_backend._AsyncioWaiter, _backend._TrioWaiter):
        original = cls.wake

        def counting(self: Any, original: Any = original) -> bool:
            nonlocal wakes
            wakes += 1
            return original(self)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "wake", counting)
    cell = AtomicInt(0)
    for _ in range(100):
        cell.increment()
    assert wakes == 0  # nobody waited: the loop was never woken
    async with anyio.create_task_group() as tg:
        tg.start_soon(cell.wait_until, lambda v: v >= 101)
        await wait_all_tasks_blocked()
        cell.increment()
    assert wakes == 1


async def test_changes_yields_the_latest_value_and_skips_intermediate_ones() -> None:
    cell = AtomicInt(0)
    changes = cell.changes()
    assert await changes.__anext__() == 0
    for _ in range(3):
        cell.increment()  # three changes before the reader looks again
    assert await changes.__anext__() == 3  # the latest, not 1
    got: list[int] = []

    async def read() -> None:
        async for value in changes:
            got.append(value)
            if value == 10:
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await wait_all_tasks_blocked()
        cell.store(10)
    assert got == [10]


def test_a_thread_waits_until_a_task_makes_the_predicate_true() -> None:
    cell = AtomicBool(False)

    async def main() -> None:
        with running(lambda: cell.wait_until_blocking(lambda v: v)) as waiter:
            await anyio.to_thread.run_sync(wait_for, lambda: cell.statistics().waiting == 1)
            cell.store(True)
            assert await anyio.to_thread.run_sync(waiter.finish) is True

    anyio.run(main)


def test_a_blocking_wait_times_out_having_left_nothing() -> None:
    cell = AtomicInt(0)
    with pytest.raises(TimeoutError):
        cell.wait_until_blocking(lambda v: v > 0, timeout=0.01)
    with pytest.raises(TimeoutError):
        cell.wait_until_blocking(lambda v: v > 0, timeout=0)
    assert cell.statistics().waiting == 0
    assert cell.wait_until_blocking(lambda v: v == 0, timeout=0) == 0


async def test_a_blocking_wait_on_an_event_loop_thread_raises_at_once() -> None:
    cell = AtomicInt(0)
    with pytest.raises(EventLoopBlockingError):
        cell.wait_until_blocking(lambda v: v > 0)


# -- threads ------------------------------------------------------------------------------------


def _hammer(threads: int, work: Any) -> None:
    start = threading.Barrier(threads, timeout=30)

    def run() -> None:
        start.wait()
        work()

    workers = [Worker(run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.finish()


def test_eight_threads_lose_no_update() -> None:
    per_thread = 20_000
    counter = AtomicInt(0)
    _hammer(8, lambda: [counter.fetch_add(1) for _ in range(per_thread)])
    assert counter.load() == 8 * per_thread

    cas = AtomicInt(0)

    def cas_loop() -> None:
        for _ in range(5_000):
            while True:
                seen = cas.load()
                if cas.compare_and_set(seen, seen + 1):
                    break

    _hammer(8, cas_loop)
    assert cas.load() == 8 * 5_000

    cell: AtomicCell[tuple[int, ...]] = AtomicCell(())
    _hammer(8, lambda: [cell.update(lambda t: (*t, len(t))) for _ in range(500)])
    assert cell.load() == tuple(range(8 * 500))

    peak = AtomicInt(-1)
    _hammer(8, partial(lambda p: [p.fetch_max(i) for i in range(10_000)], peak))
    assert peak.load() == 9_999


def test_statistics_inside_the_cells_own_function_raises_instead_of_deadlocking() -> None:
    cell = AtomicInt(0)
    with pytest.raises(RuntimeError, match="deadlock"):
        cell.update(lambda v: cell.statistics().changes)
    with pytest.raises(RuntimeError, match="deadlock"):
        cell.wait_until_blocking(lambda v: cell.statistics().waiting == 0, timeout=0)
    assert cell.statistics().changes == 0
