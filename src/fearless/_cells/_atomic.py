"""Atomic cells: a value any thread may change and any task or thread may wait on.

Specification (``docs/cells.md`` is the user guide; ``docs/design/concurrency.md``, "Threads and
cells", gives the reasons):

- One ``threading.Lock`` per cell. Every change runs under it; ``load()`` reads without it (a
  single attribute read is atomic on every build, free-threaded included). Every operation is
  sequentially consistent ("Memory ordering").
- Critical sections are synchronous callables: ``update(fn)`` and ``modify(fn)`` run ``fn``
  under the lock. A coroutine function, or an ``fn`` that returns an awaitable, raises
  ``TypeError`` and changes nothing. ``fn`` must not use the same cell (it would wait for the lock
  its own thread holds): that raises ``RuntimeError`` instead of deadlocking.
- Waiting holds nothing: ``wait_until(predicate)`` checks the predicate under the lock,
  registers a waiter, releases the lock and parks; every change wakes the parties parked at that
  moment (after releasing the lock), and each re-checks its predicate when it runs. A change with
  nobody waiting wakes nobody.
- ``changes()`` follows tokio's ``watch``: it yields the value now, then, after each change, the
  latest value. A slow reader skips intermediate values, never the latest one.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar, final

from .. import _backend
from .._backend import enter as _enter
from .._parking import Parked, ParkingLot, nothing_to_undo, wake_all

__all__ = ["AtomicBool", "AtomicCell", "AtomicInt", "CellStatistics"]

T = TypeVar("T")
R = TypeVar("R")


@final
@dataclass(frozen=True, slots=True)
class CellStatistics:
    """A snapshot of a cell."""

    waiting: int
    """Parties (tasks or threads) parked in ``wait_until``/``changes``/``wait_until_blocking``."""
    changes: int
    """How many times the value has changed (stores, swaps, successful compare-and-sets...)."""


def _synchronous(fn: Callable[..., Any], what: str) -> None:
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"{what} takes a synchronous function, got {fn!r}")


def _no_awaitable(result: object, what: str) -> None:
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # never awaited on purpose: no "coroutine was never awaited" warning
        raise TypeError(
            f"{what}'s function returned an awaitable: critical sections are synchronous, "
            "so no lock is ever held across an await"
        )


class AtomicCell(Generic[T]):
    """A value that any thread may change and that tasks and threads may wait on.

    ``compare_and_set`` compares by identity (``is``), as an atomic compares bits: it never runs
    a user ``__eq__`` under the lock, and "the same object is still there" is what a
    read-modify-write loop needs. (``AtomicInt`` and ``AtomicBool`` compare by value.)
    """

    __slots__ = ("__weakref__", "_changes", "_lock", "_owner", "_value", "_waiters")

    def __init__(self, value: T) -> None:
        self._value = value
        self._lock = threading.Lock()
        self._changes = 0
        self._waiters: ParkingLot[Parked] = ParkingLot()  # parked in wait_until (or changes)
        self._owner = 0  # the thread running an update/modify fn under the lock, else 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"

    # -- the lock ---------------------------------------------------------------------------------

    def _acquire(self) -> None:
        if not self._lock.acquire(blocking=False):
            self._acquire_contended()

    def _refuse_reentry(self) -> None:
        """Someone runs an update/modify function or a predicate under the lock: if it is this
        very thread, this call comes from inside it, and waiting would deadlock."""
        if self._owner == threading.get_ident():
            raise RuntimeError(
                f"this {type(self).__name__} was used inside its own update/modify or predicate "
                "function, which runs under its lock: that would deadlock"
            )

    def _acquire_contended(self) -> None:
        """The lock is taken: by another thread (wait for it), or by this very thread running
        an update/modify function or a predicate that uses the cell (refuse: a deadlock)."""
        self._refuse_reentry()
        self._lock.acquire()

    def _changed(self, value: Any) -> list[Parked] | None:
        """Under the lock: store ``value`` and claim every parked party, to wake after it."""
        self._value = value
        self._changes += 1
        return self._waiters.take_all(None)  # they re-check the cell when they run

    # A wake hands no value over (the woken party reads the cell), so a party whose loop has gone
    # has nothing to lose.
    _wake = staticmethod(wake_all)

    # -- operations -------------------------------------------------------------------------------

    def load(self) -> T:
        """The current value (no lock: one attribute read is atomic on every build)."""
        return self._value

    def store(self, value: T) -> None:
        """Set the value and wake the parties waiting at that moment. Safe from any thread."""
        self._acquire()
        try:
            woken = self._changed(value)
        finally:
            self._lock.release()
        self._wake(woken)

    def swap(self, value: T) -> T:
        """Set the value; return the one it replaced."""
        self._acquire()
        try:
            old = self._value
            woken = self._changed(value)
        finally:
            self._lock.release()
        self._wake(woken)
        return old

    def compare_and_set(self, expected: T, new: T) -> bool:
        """Set ``new`` if the value is still ``expected`` (by identity; see the class); return
        whether it did."""
        self._acquire()
        try:
            if not self._same(self._value, expected):
                return False
            woken = self._changed(new)
        finally:
            self._lock.release()
        self._wake(woken)
        return True

    @staticmethod
    def _same(current: object, expected: object) -> bool:
        return current is expected

    def update(self, fn: Callable[[T], T]) -> T:
        """Set the value to ``fn(value)``, run under the lock; return the new value.

        ``fn`` must be synchronous and must not use this cell (``TypeError`` / ``RuntimeError``;
        the value is unchanged). If ``fn`` raises, the value is unchanged and the error
        propagates.
        """
        _synchronous(fn, "update")
        self._acquire()
        self._owner = threading.get_ident()
        try:
            new = fn(self._value)
            _no_awaitable(new, "update")
            woken = self._changed(new)
        finally:
            self._owner = 0
            self._lock.release()
        self._wake(woken)
        return new

    def modify(self, fn: Callable[[T], tuple[T, R]]) -> R:
        """Run ``new, result = fn(value)`` under the lock, store ``new``, return ``result``.

        For read-modify-write steps that also compute something (pop from a tuple, say). The
        same rules as :meth:`update`.
        """
        _synchronous(fn, "modify")
        self._acquire()
        self._owner = threading.get_ident()
        try:
            outcome = fn(self._value)
            _no_awaitable(outcome, "modify")
            new, result = outcome
            woken = self._changed(new)
        finally:
            self._owner = 0
            self._lock.release()
        self._wake(woken)
        return result

    # -- waiting ----------------------------------------------------------------------------------

    def _check(self, predicate: Callable[[T], object]) -> tuple[bool, T]:
        """Under the lock: whether ``predicate`` holds for the value now."""
        value = self._value
        self._owner = threading.get_ident()
        try:
            held = predicate(value)
            _no_awaitable(held, "wait_until")
            return bool(held), value  # (a __bool__ runs under the lock too)
        finally:
            self._owner = 0

    def _unpark(self, entry: Parked) -> Any:
        with self._lock:
            return self._waiters.withdraw(entry)

    async def wait_until(self, predicate: Callable[[T], object]) -> T:
        """Wait until ``predicate(value)`` is true; return the value that satisfied it.

        The predicate runs under the lock (synchronous, must not use this cell), first at once
        and then after each change. Ordering: the value returned satisfied the predicate when it
        was checked; a later change may have replaced it already. Cancellation: a cancel point
        (it checks for cancellation first and yields once even if the predicate already holds);
        if cancelled, nothing happened. Waiters on any event loop or thread are woken.
        """
        _synchronous(predicate, "wait_until")
        return await self._park_until(partial(self._check, predicate))

    async def _park_until(self, check: Callable[[], tuple[bool, R]]) -> R:
        """Yield once (a cancel point), then park until ``check()``, run under the lock, says
        done; return what it returned with that. Every change wakes the parked parties."""
        backend = _enter()
        await backend.checkpoint()
        while True:
            self._acquire()
            try:
                done, result = check()
                if done:
                    return result
                entry = Parked(backend.new_waiter())
                self._waiters.append(entry)
            finally:
                self._lock.release()
            await entry.waiter.wait(partial(self._unpark, entry), nothing_to_undo)

    def wait_until_blocking(
        self, predicate: Callable[[T], object], timeout: float | None = None
    ) -> T:
        """:meth:`wait_until` for a thread: block until ``predicate(value)`` is true.

        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: never) and
        ``EventLoopBlockingError`` at once on a thread that runs an event loop.
        """
        _synchronous(predicate, "wait_until_blocking")
        wait = _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("wait_until_blocking")
        deadline = None if wait < 0 else time.monotonic() + wait
        while True:
            self._acquire()
            try:
                held, value = self._check(predicate)
                if held:
                    return value
                waiter = _backend.ThreadWaiter()
                entry = Parked(waiter)
                self._waiters.append(entry)
            finally:
                self._lock.release()
            left = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            waiter.wait_blocking(partial(self._unpark, entry), nothing_to_undo, left)

    def changes(self) -> AsyncIterator[T]:
        """``async for value in cell.changes()``: the value now, then the latest value after
        each change (tokio's ``watch``).

        A slow reader skips intermediate values but never misses the latest one: after any
        change it yields a value at least that recent. Cancellation: each step is a cancel
        point; a cancelled step loses nothing (the next one yields the latest value). The
        iterator never ends; each one keeps its own place.
        """
        return _Changes(self)

    async def _wait_change(self, seen: int) -> tuple[int, T]:
        """The change count and value, once the count differs from ``seen``."""
        return await self._park_until(lambda: (self._changes != seen, (self._changes, self._value)))

    def statistics(self) -> CellStatistics:
        """Parties waiting now, and how many times the value has changed."""
        if self._owner:
            self._refuse_reentry()
        with self._lock:
            return CellStatistics(waiting=self._waiters.waiting(), changes=self._changes)


class _Changes(Generic[T]):
    """The iterator ``AtomicCell.changes()`` returns (a class, not an async generator, so that
    leaving the loop early needs no ``aclose()``)."""

    __slots__ = ("_cell", "_seen")

    def __init__(self, cell: AtomicCell[T]) -> None:
        self._cell = cell
        self._seen = -1

    def __aiter__(self) -> _Changes[T]:
        return self

    async def __anext__(self) -> T:
        self._seen, value = await self._cell._wait_change(self._seen)
        return value


class AtomicInt(AtomicCell[int]):
    """An int cell with Rust's integer atomics. Compares by value (ints are values)."""

    __slots__ = ()

    def __init__(self, value: int = 0) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"AtomicInt holds an int, got {value!r}")
        super().__init__(value)

    @staticmethod
    def _same(current: object, expected: object) -> bool:
        return current == expected

    def fetch_add(self, n: int) -> int:
        """Add ``n``; return the value before."""
        return self._add(n)

    def add_and_fetch(self, n: int) -> int:
        """Add ``n``; return the value after."""
        return self._add(n) + n

    def increment(self) -> int:
        """Add 1; return the value after."""
        # _add(1), written out: the commonest counter operation pays one call, not two.
        if self._owner:
            self._refuse_reentry()
        with self._lock:
            new = self._value + 1
            self._value = new
            self._changes += 1
            woken = self._waiters.take_all(None) if self._waiters else None
        if woken:
            self._wake(woken)
        return new

    def decrement(self) -> int:
        """Subtract 1; return the value after."""
        return self._add(-1) - 1

    def _add(self, n: int) -> int:
        # The hottest path of the cells (counters). ``with`` rather than acquire()/release()
        # calls: under the GIL a thread can be switched out right after a call returns, and
        # after acquire() that is while it holds the lock, so the other threads queue up behind
        # it (a lock convoy: 4 threads ran 5x slower). No call runs while the lock is held
        # unless someone waits.
        if self._owner:
            self._refuse_reentry()
        with self._lock:
            old = self._value
            self._value = old + n
            self._changes += 1
            woken = self._waiters.take_all(None) if self._waiters else None
        if woken:
            self._wake(woken)
        return old

    def fetch_max(self, n: int) -> int:
        """Set the value to ``max(value, n)``; return the value before."""
        self._acquire()
        try:
            old = self._value
            woken = self._changed(n) if n > old else None
        finally:
            self._lock.release()
        self._wake(woken)
        return old

    def fetch_min(self, n: int) -> int:
        """Set the value to ``min(value, n)``; return the value before."""
        self._acquire()
        try:
            old = self._value
            woken = self._changed(n) if n < old else None
        finally:
            self._lock.release()
        self._wake(woken)
        return old


class AtomicBool(AtomicCell[bool]):
    """A bool cell with Rust's boolean atomics. Compares by value."""

    __slots__ = ()

    def __init__(self, value: bool = False) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"AtomicBool holds a bool, got {value!r}")
        super().__init__(value)

    @staticmethod
    def _same(current: object, expected: object) -> bool:
        return current == expected

    def _fetch(self, fn: Callable[[bool], bool]) -> bool:
        self._acquire()
        try:
            old = self._value
            new = fn(old)
            woken = self._changed(new) if new != old else None
        finally:
            self._lock.release()
        self._wake(woken)
        return old

    def fetch_or(self, value: bool) -> bool:
        """Set the value to ``value or old``; return the value before."""
        return self._fetch(lambda old: old or value)

    def fetch_and(self, value: bool) -> bool:
        """Set the value to ``value and old``; return the value before."""
        return self._fetch(lambda old: old and value)

    def toggle(self) -> bool:
        """Flip the value; return the value after."""
        return not self._fetch(lambda old: not old)
