"""Guarded: read, update, replace and lock; refusing async callables; threads; debug mode."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Generator, Iterator
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint

from fearless import channel
from fearless._cells import _guarded
from fearless._cells._guarded import AwaitInCriticalSectionError, Guarded

pytestmark = pytest.mark.anyio

HAS_MONITORING = sys.version_info >= (3, 12)


# -- operations ---------------------------------------------------------------------------------


def test_read_returns_what_fn_returns_and_leaves_the_value() -> None:
    guarded = Guarded([1, 2, 3])
    assert guarded.read(len) == 3
    assert guarded.read(lambda v: v[-1]) == 3
    assert guarded.read(list) == [1, 2, 3]


def test_update_stores_and_returns_the_new_value() -> None:
    guarded = Guarded(1)
    assert guarded.update(lambda v: v + 1) == 2
    assert guarded.update(lambda v: v * 10) == 20
    assert guarded.read(lambda v: v) == 20


def test_replace_stores_and_returns_the_old_value() -> None:
    guarded = Guarded("a")
    assert guarded.replace("b") == "a"
    assert guarded.read(str.upper) == "B"


def test_lock_gives_the_value_to_mutate_in_place() -> None:
    guarded = Guarded({"n": 0})
    with guarded.lock() as value:
        value["n"] += 1
    assert guarded.read(dict) == {"n": 1}


def test_rebinding_the_name_inside_lock_does_not_store() -> None:
    guarded = Guarded(1)
    with guarded.lock() as value:
        value = 2  # noqa: F841 - the point of the test: this does not store
    assert guarded.read(lambda v: v) == 1


def test_lock_is_held_for_the_block_and_released_after_it() -> None:
    guarded = Guarded(0)
    with guarded.lock():
        assert guarded._lock.locked()
    assert not guarded._lock.locked()


def test_lock_is_released_when_the_block_raises() -> None:
    guarded = Guarded(0)
    with pytest.raises(ZeroDivisionError), guarded.lock() as value:
        value // 0
    assert not guarded._lock.locked()
    assert guarded.update(lambda v: v + 1) == 1


def test_an_exception_from_fn_propagates_and_leaves_the_value() -> None:
    guarded = Guarded(5)
    with pytest.raises(ZeroDivisionError):
        guarded.update(lambda v: v // 0)
    with pytest.raises(ZeroDivisionError):
        guarded.read(lambda v: v // 0)
    assert guarded.read(lambda v: v) == 5
    assert not guarded._lock.locked()


def test_lock_is_sync_only_and_single_use() -> None:
    guarded = Guarded(0)
    section = guarded.lock()
    assert not hasattr(section, "__aenter__")
    assert not hasattr(section, "__aexit__")
    with section:
        pass
    with pytest.raises(RuntimeError, match="only once"), section:
        pass  # pragma: no cover
    assert not guarded._lock.locked()


def test_slots_and_debug_flag() -> None:
    guarded = Guarded(0, debug=True)
    assert not hasattr(guarded, "__dict__")
    assert not hasattr(guarded.lock(), "__dict__")
    assert guarded.debug
    assert not Guarded(0, debug=False).debug
    assert Guarded(0).debug is _guarded.DEBUG
    assert "debug" in repr(guarded)


# -- refusing async callables -------------------------------------------------------------------


async def _add_one(value: int) -> int:  # pragma: no cover - never run: refused before the call
    return value + 1


def _returns_a_coroutine(value: int) -> Awaitable[int]:
    return _add_one(value)


@types.coroutine
def _generator_coroutine() -> Generator[None, None, int]:  # pragma: no cover - closed unstarted
    yield
    return 2


def _returns_a_generator_coroutine(value: int) -> Awaitable[int]:
    return _generator_coroutine()


def _returns_a_future(value: int) -> Awaitable[int]:
    loop = asyncio.new_event_loop()
    try:
        return loop.create_future()
    finally:
        loop.close()


@pytest.mark.parametrize("method", ["read", "update"])
@pytest.mark.parametrize("fn", [_add_one, functools.partial(_add_one)], ids=["function", "partial"])
def test_a_coroutine_function_is_refused_and_the_value_is_unchanged(method: str, fn: Any) -> None:
    guarded = Guarded(1)
    with pytest.raises(TypeError, match="coroutine function"):
        getattr(guarded, method)(fn)
    assert guarded.read(lambda v: v) == 1
    assert not guarded._lock.locked()


@pytest.mark.parametrize("method", ["read", "update"])
@pytest.mark.parametrize(
    "fn", [_returns_a_coroutine, _returns_a_generator_coroutine, _returns_a_future]
)
def test_a_returned_awaitable_is_refused_closed_and_the_value_is_unchanged(
    method: str, fn: Any
) -> None:
    """No "coroutine was never awaited" RuntimeWarning escapes (warnings are errors here)."""
    guarded = Guarded(1)
    with pytest.raises(TypeError, match="returned an awaitable"):
        getattr(guarded, method)(fn)
    assert guarded.read(lambda v: v) == 1
    assert not guarded._lock.locked()


def test_a_returned_plain_generator_is_not_an_awaitable_and_is_stored() -> None:
    guarded: Guarded[Any] = Guarded(3)
    stored = guarded.update(lambda n: (i for i in range(n)))
    assert guarded.read(list) == [0, 1, 2]
    assert guarded.read(lambda v: v) is stored


# -- threads ------------------------------------------------------------------------------------


def test_concurrent_updates_from_8_threads_lose_nothing() -> None:
    """8 threads x 20k ``update(v + 1)``: the total is exact, with or without a GIL."""
    threads, per_thread = 8, 20_000
    guarded = Guarded(0)
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            guarded.update(lambda v: v + 1)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert guarded.read(lambda v: v) == threads * per_thread


def test_lock_excludes_other_threads_for_the_whole_block() -> None:
    """A read-modify-write spread over a ``with lock()`` block is atomic against other threads."""
    threads, per_thread = 8, 5_000
    guarded = Guarded([0])
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            with guarded.lock() as box:
                current = box[0]
                box[0] = current + 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert guarded.read(lambda box: box[0]) == threads * per_thread


# -- debug mode ---------------------------------------------------------------------------------


class _Tripwire:
    """Stands in for the per-thread record: any use of it fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"debug-off code touched the per-thread record ({name})")


@pytest.fixture
def hook_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debug detection through ``note_await`` alone (the 3.11 path), even on 3.12+."""
    monkeypatch.setattr(_guarded, "_USE_MONITORING", False)


def _assert_nothing_watching() -> None:
    assert not _guarded.armed
    assert _guarded._open_blocks == 0
    if sys.version_info >= (3, 12):
        assert "fearless" not in {sys.monitoring.get_tool(i) for i in range(6)}


def test_note_await_inside_a_debug_block_raises_at_exit_with_the_lock_released() -> None:
    guarded = Guarded([0], debug=True)

    def critical() -> None:
        with guarded.lock() as value:
            assert _guarded.armed
            _guarded.note_await()
            value.append(1)  # the block still runs to its end

    with pytest.raises(AwaitInCriticalSectionError):
        critical()
    assert guarded.read(list) == [0, 1]
    assert not guarded._lock.locked()
    _assert_nothing_watching()


def test_a_debug_block_without_an_await_raises_nothing() -> None:
    guarded = Guarded(0, debug=True)
    with guarded.lock():
        pass
    _guarded.note_await()  # outside any block: nothing to mark
    with guarded.lock():
        pass
    _assert_nothing_watching()


def test_note_await_marks_only_the_calling_threads_blocks() -> None:
    guarded = Guarded(0, debug=True)
    other = threading.Thread(target=_guarded.note_await)
    with guarded.lock():
        other.start()
        other.join()
    _assert_nothing_watching()


def test_nested_debug_blocks_raise_once() -> None:
    outer, inner = Guarded(0, debug=True), Guarded(0, debug=True)
    with pytest.raises(AwaitInCriticalSectionError) as caught, outer.lock(), inner.lock():
        _guarded.note_await()
    assert not isinstance(caught.value.__context__, AwaitInCriticalSectionError)
    _assert_nothing_watching()


def test_debug_off_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debug off: the per-thread record is never touched, nothing is armed, no tool registered."""
    monkeypatch.setattr(_guarded, "_local", _Tripwire())
    guarded = Guarded([0], debug=False)
    with guarded.lock() as value:
        value.append(1)
        _assert_nothing_watching()
    guarded.update(lambda v: [*v, 2])
    assert guarded.read(list) == [0, 1, 2]
    _assert_nothing_watching()


@pytest.mark.skipif(not HAS_MONITORING, reason="sys.monitoring needs Python 3.12+")
def test_monitoring_is_registered_only_while_a_debug_block_is_open() -> None:
    guarded = Guarded(0, debug=True)
    with guarded.lock():
        if sys.version_info >= (3, 12):
            assert "fearless" in {sys.monitoring.get_tool(i) for i in range(6)}
    _assert_nothing_watching()


@pytest.mark.skipif(not HAS_MONITORING, reason="sys.monitoring needs Python 3.12+")
def test_monitoring_ignores_sync_generators_and_other_threads() -> None:
    guarded = Guarded(0, debug=True)

    async def elsewhere() -> None:
        await checkpoint()

    def generator() -> Iterator[int]:
        yield 1
        yield 2

    with guarded.lock():
        assert list(generator()) == [1, 2]
        other = threading.Thread(target=anyio.run, args=(elsewhere,))
        other.start()
        other.join()
    _assert_nothing_watching()


@pytest.mark.skipif(not HAS_MONITORING, reason="sys.monitoring needs Python 3.12+")
async def test_awaiting_inside_a_debug_lock_block_raises_at_block_exit() -> None:
    """Any suspension inside the block (here a plain anyio checkpoint) is caught by monitoring."""
    guarded = Guarded([0], debug=True)

    async def critical() -> None:
        with guarded.lock() as value:
            await checkpoint()
            value.append(1)

    with pytest.raises(AwaitInCriticalSectionError):
        await critical()
    assert guarded.read(list) == [0, 1]
    assert not guarded._lock.locked()
    _assert_nothing_watching()


@pytest.mark.usefixtures("hook_only")
async def test_awaiting_a_fearless_operation_inside_a_debug_lock_block_is_caught_on_311() -> None:
    """Without monitoring, an await that reaches ``enter()`` is caught through ``note_await``."""
    guarded = Guarded(0, debug=True)
    tx, rx = channel[int](1)
    with tx, rx:
        with pytest.raises(AwaitInCriticalSectionError), guarded.lock():
            await tx.send(1)
        assert await rx.receive() == 1
    _assert_nothing_watching()


async def test_awaiting_inside_a_lock_block_with_debug_off_raises_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guarded = Guarded([0], debug=False)
    tx, rx = channel[int](1)
    with tx, rx:
        monkeypatch.setattr(_guarded, "_local", _Tripwire())
        with guarded.lock() as value:
            await checkpoint()
            await tx.send(1)
            value.append(1)
        assert await rx.receive() == 1
    assert guarded.read(list) == [0, 1]
    _assert_nothing_watching()


def test_using_a_guarded_inside_its_own_critical_section_raises_instead_of_deadlocking() -> None:
    guarded = Guarded(1)
    with pytest.raises(RuntimeError, match="deadlock"):
        guarded.update(lambda v: guarded.read(lambda w: w + v))
    with pytest.raises(RuntimeError, match="deadlock"), guarded.lock():
        guarded.replace(5)
    assert guarded.read(lambda v: v) == 1  # unchanged, and the lock is free again


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
async def test_async_for_over_a_generator_that_never_suspends_is_not_an_await() -> None:
    """An async generator yields a value without suspending the task: not an await."""

    async def numbers() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    guarded = Guarded(0, debug=True)
    with guarded.lock():
        assert [i async for i in numbers()] == [0, 1, 2]
    _assert_nothing_watching()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_a_monitoring_setup_that_fails_leaves_nothing_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> object:
        raise ValueError("refused")

    guarded = Guarded(0, debug=True)
    if sys.version_info >= (3, 12):  # (for mypy, which checks as 3.11; the test is skipped there)
        monkeypatch.setattr(sys.monitoring, "register_callback", refuse)
        with pytest.raises(ValueError, match="refused"), guarded.lock():
            pass  # pragma: no cover - the block is never entered
        monkeypatch.undo()
        assert sys.monitoring.get_tool(4) is None
    _assert_nothing_watching()
    with guarded.lock():  # and debug mode works again
        pass
    _assert_nothing_watching()
