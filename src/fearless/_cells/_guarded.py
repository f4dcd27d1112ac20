"""``Guarded[T]``: a value behind a lock, reachable only through synchronous critical sections.

Rust's ``Mutex<T>`` for Python (``docs/design/concurrency.md``, "Critical sections are synchronous
callables"): the lock is only ever held by synchronous code, so it is never held across an
``await``.

Specification
-------------
``Guarded(value, *, debug=None)``
    Owns ``value``. ``debug=None`` (the default) takes the process-wide default, which is on when
    the environment variable ``FEARLESS_DEBUG`` is set to anything but ``""`` or ``"0"`` (read once,
    when fearless is imported).
``read(fn)``
    Runs ``fn(value)`` under the lock and returns its result.
``update(fn)``
    Runs ``fn(value)`` under the lock, stores the result as the new value and returns it.
``replace(new)``
    Stores ``new`` under the lock and returns the old value.
``with guarded.lock() as value:``
    Holds the lock for the block and gives the value (for mutable values: mutate it in place).
    Rebinding the name inside the block does *not* store anything; use ``update`` or ``replace``
    for that. The context manager is sync-only (it has no ``__aenter__``) and single-use; no object
    that keeps the lock outlives the block.

Errors
    ``read`` and ``update`` raise ``TypeError`` when ``fn`` is a coroutine function or returns an
    awaitable, and the stored value is unchanged. (A coroutine function is recognised by what its
    call returns: calling it only creates a coroutine object, which never starts and is closed at
    once, so no "never awaited" warning is given. Checking the result instead of ``fn`` keeps
    ``update`` to one ``isinstance`` beyond the lock.) Exceptions raised by ``fn``
    propagate, with the lock released and the value unchanged.

The lock is a ``threading.Lock``: it is not reentrant (calling the same ``Guarded`` from inside one
of its own critical sections raises ``RuntimeError``, where Rust's ``Mutex`` would deadlock or
panic), and it works the same with or
without the GIL (free-threaded builds included). Waiting for it blocks the thread: keep critical
sections short, and never do I/O in them.

Debug mode
----------
A synchronous ``with`` block inside an ``async def`` can still contain an ``await``; the lock is
then held while the task is suspended, and any other task of the same loop that wants it blocks the
whole loop. In debug mode a ``with guarded.lock()`` block notes whether its task was suspended
while the block was open, and if so raises :class:`AwaitInCriticalSectionError` when the block
exits (after releasing the lock). Two detectors feed the same per-thread record of open blocks:

- On Python 3.12+, ``sys.monitoring`` (tool name ``"fearless"``, the first free of tool ids 4
  and 3): ``PY_YIELD`` events are enabled only while at least one debug block is open in the
  process, and the callback marks the open blocks of the thread that yields only when the
  yielding frame is a coroutine, a generator-based coroutine or an async generator, that is, when a
  task on that thread suspends. Other threads' yields are ignored. If both tool ids are taken (by
  a debugger or a profiler) this detector is skipped.
- On every version, :func:`note_await`, which ``fearless._backend.enter()`` (the first step of
  every fearless async operation) calls while :data:`armed` is true. So on 3.11 an ``await`` is
  caught when it reaches a fearless operation; an ``await`` of anything else (``anyio.sleep``) is
  caught there only if another fearless operation then runs on the same thread before the block
  exits.

Turning the events on and off re-instruments code, so on 3.12+ each outermost debug block costs
about 10 us (more when many threads open and close debug blocks at once: on a free-threaded build
changing the events stops every thread). Debug mode is for development and tests.

An ``await`` that completes without suspending is not seen by monitoring (nothing was held across a
suspension). With debug off, no monitoring tool is registered, :data:`armed` stays false and the
per-thread record is never touched: ``lock()`` costs one lock acquire and release.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Awaitable, Callable
from inspect import CO_COROUTINE
from inspect import isawaitable as _isawaitable
from inspect import iscoroutinefunction as _iscoroutinefunction
from types import CodeType, CoroutineType, GeneratorType, TracebackType
from typing import Any, Final, Generic, NoReturn, TypeVar, final

from .. import _backend
from .._exceptions import AwaitInCriticalSectionError

__all__ = [
    "DEBUG",
    "AwaitInCriticalSectionError",
    "Guarded",
    "GuardedSection",
    "armed",
    "note_await",
]

T = TypeVar("T")
R = TypeVar("R")

DEBUG: Final = os.environ.get("FEARLESS_DEBUG", "") not in ("", "0")
"""The default for ``Guarded(debug=None)``: ``FEARLESS_DEBUG`` as read at import."""

armed: bool = False
"""True while at least one debug-mode ``lock()`` block is open in the process; while it is,
:func:`note_await` is ``fearless._backend.await_hook``, which ``enter()`` calls (so the hook costs
one global read when debug mode is not in use)."""


@final
class _Section:
    """One open debug-mode ``lock()`` block; lives in its thread's record while open."""

    __slots__ = ("awaited",)

    def __init__(self) -> None:
        self.awaited = False  # set by note_await or the monitoring callback, from this thread


class _Local(threading.local):
    def __init__(self) -> None:
        self.sections: list[_Section] = []  # open debug blocks of this thread, innermost last


_local: Any = _Local()  # Any: tests replace it with a tripwire to show debug-off never touches it

# Process-wide count of open debug blocks, and the monitoring tool id while they are open.
_state_lock: Final = threading.Lock()
_open_blocks = 0  # invariant: armed == (_open_blocks > 0); both change under _state_lock
_tool_id: int | None = None  # not None only while _open_blocks > 0 (and a tool id was free)
_USE_MONITORING = sys.version_info >= (3, 12)  # tests switch it off to exercise note_await alone
# A task that suspends always yields through its coroutine's frames; an async generator or a
# generator-based coroutine also yields when it merely produces a value (``async for`` over a
# generator that never suspends), so only coroutine frames count.
_SUSPENDING: Final = CO_COROUTINE


def note_await() -> None:
    """Record that a task is awaiting on this thread: marks this thread's open debug blocks.

    Called by ``fearless._backend.enter()`` while :data:`armed` is true; safe to call at any time
    from any thread (it touches only the calling thread's record).
    """
    for section in _local.sections:
        section.awaited = True


def _on_yield(code: CodeType, offset: int, retval: object) -> None:
    """``sys.monitoring`` ``PY_YIELD`` callback: a frame yielded somewhere in the process."""
    if code.co_flags & _SUSPENDING:
        for section in _local.sections:
            section.awaited = True


def _start_monitoring() -> int | None:
    """Register the monitoring tool and enable ``PY_YIELD``; the tool id, or None if none free."""
    if sys.version_info >= (3, 12):
        monitoring = sys.monitoring
        for tool_id in (4, 3):
            if monitoring.get_tool(tool_id) is None:
                monitoring.use_tool_id(tool_id, "fearless")
                try:
                    monitoring.register_callback(tool_id, monitoring.events.PY_YIELD, _on_yield)
                    monitoring.set_events(tool_id, monitoring.events.PY_YIELD)
                except BaseException:
                    monitoring.free_tool_id(tool_id)  # leave nothing registered
                    raise
                return tool_id
    return None  # pragma: no cover - every id taken (or 3.11, where _USE_MONITORING is false)


def _stop_monitoring(tool_id: int) -> None:
    if sys.version_info >= (3, 12):
        monitoring = sys.monitoring
        monitoring.set_events(tool_id, monitoring.events.NO_EVENTS)
        monitoring.register_callback(tool_id, monitoring.events.PY_YIELD, None)
        monitoring.free_tool_id(tool_id)


def _open_debug_section() -> _Section:
    global _open_blocks, armed, _tool_id
    section = _Section()
    with _state_lock:
        if _open_blocks == 0 and _USE_MONITORING:
            _tool_id = _start_monitoring()  # if this raises, nothing has changed yet
        _open_blocks += 1
        armed = True
        _backend.await_hook = note_await
    _local.sections.append(section)
    return section


def _close_debug_section(section: _Section) -> None:
    global _open_blocks, armed, _tool_id
    sections = _local.sections
    if sections and sections[-1] is section:
        sections.pop()
    else:  # pragma: no cover - blocks closed out of order (manual __enter__/__exit__ calls)
        sections.remove(section)
    with _state_lock:
        _open_blocks -= 1
        if _open_blocks == 0:
            armed = False
            _backend.await_hook = None
            if _tool_id is not None:
                _stop_monitoring(_tool_id)
                _tool_id = None


def _refuse_awaitable(result: object, fn: object, method: str) -> NoReturn:
    """Raise ``TypeError`` for an awaitable result, closing it first if it is a coroutine."""
    if isinstance(result, CoroutineType | GeneratorType):
        result.close()  # never started, so nothing runs; no "was never awaited" warning
    if _iscoroutinefunction(fn):
        raise TypeError(
            f"Guarded.{method}() needs a synchronous function, got coroutine function {fn!r}: "
            "a critical section cannot await; the stored value is unchanged"
        )
    raise TypeError(
        f"Guarded.{method}() needs a synchronous function, but {fn!r} returned an awaitable "
        f"({type(result).__name__}); the stored value is unchanged"
    )


@final
class Guarded(Generic[T]):
    """A value behind a lock (Rust's ``Mutex<T>``), reached only through synchronous callables.

    The guide, ``docs/cells.md`` ("Guarded[T]: a value behind a lock"), has the whole
    specification and debug mode.
    """

    __slots__ = ("_debug", "_lock", "_owner", "_value")

    def __init__(self, value: T, *, debug: bool | None = None) -> None:
        """Guard ``value``; ``debug=None`` takes ``FEARLESS_DEBUG`` as read at import."""
        self._value = value  # read and written only while _lock is held
        self._lock: Final = threading.Lock()
        self._debug: Final = DEBUG if debug is None else bool(debug)
        self._owner = 0  # the thread holding the lock, else 0

    def _acquire(self) -> None:
        """Take the lock, or raise ``RuntimeError`` if this very thread holds it: a call from
        inside one of its own critical sections, or another task of this thread's event loop
        while a task awaits inside ``with lock()``. Either would deadlock the thread."""
        lock = self._lock
        me = threading.get_ident()
        if not lock.acquire(blocking=False):
            if self._owner == me:
                raise RuntimeError(
                    "this Guarded is locked by this very thread (used inside its own critical "
                    "section, or by another task while one awaits inside `with lock()`): waiting "
                    "for it would deadlock"
                )
            lock.acquire()
        self._owner = me

    def _release(self) -> None:
        self._owner = 0
        self._lock.release()

    @property
    def debug(self) -> bool:
        """Whether ``lock()`` blocks detect an ``await`` inside them (fixed at construction)."""
        return self._debug

    def read(self, fn: Callable[[T], R]) -> R:
        """Run ``fn(value)`` under the lock and return its result.

        Thread-safe: ``fn`` sees the value with no other critical section running on it, from any
        thread. Only ``fn`` runs under the lock. ``fn`` must not keep a reference to a mutable value
        to use after it returns, and must not call back into this ``Guarded`` (that raises
        ``RuntimeError`` rather than deadlocking).

        Raises ``TypeError`` if ``fn`` is a coroutine function or returns an awaitable (a returned
        coroutine is closed). An exception from ``fn`` propagates with the lock released.
        """
        self._acquire()
        try:
            result = fn(self._value)
        finally:
            self._release()
        # Awaitable, or a generator-based coroutine; the precise test only on that rare path.
        if (isinstance(result, Awaitable) or type(result) is GeneratorType) and _isawaitable(
            result
        ):
            _refuse_awaitable(result, fn, "read")
        return result

    def update(self, fn: Callable[[T], T]) -> T:
        """Run ``fn(value)`` under the lock, store its result as the new value, and return it.

        Thread-safe and atomic: no other critical section on this value runs between the read and
        the store, on any build (free-threaded included), so concurrent ``update`` calls never lose
        one another's changes. Only ``fn`` and the store run under the lock; ``fn`` must not call
        back into this ``Guarded`` (``RuntimeError``, not a deadlock).

        Raises ``TypeError`` if ``fn`` is a coroutine function or returns an awaitable (a returned
        coroutine is closed); the stored value is then unchanged. If ``fn`` raises, the exception
        propagates and the value is unchanged.
        """
        self._acquire()
        try:
            new = fn(self._value)
            if not (
                (isinstance(new, Awaitable) or type(new) is GeneratorType) and _isawaitable(new)
            ):
                self._value = new
                return new
        finally:
            self._release()
        _refuse_awaitable(new, fn, "update")

    def replace(self, new: T) -> T:
        """Store ``new`` and return the value it replaced, under the lock (thread-safe, atomic).

        The way to store a new value when the ``with lock()`` form cannot (rebinding its name does
        not store). Never raises.
        """
        self._acquire()
        old = self._value
        self._value = new
        self._release()
        return old

    def lock(self) -> GuardedSection[T]:
        """A sync-only, single-use context manager: ``with guarded.lock() as value:``.

        The lock is held from the start of the block to its end, whatever ends it; ``value`` is the
        guarded object itself, to be mutated in place. Rebinding ``value`` does not store: use
        :meth:`update` or :meth:`replace`. There is no ``async with`` form, and the block must not
        ``await``: in debug mode an ``await`` that suspends the task inside the block raises
        :class:`AwaitInCriticalSectionError` when the block exits (after the lock is released).

        Thread-safe; waiting for the lock blocks the calling thread. Not reentrant: a ``read``,
        ``update`` or ``lock`` of the same ``Guarded`` inside the block raises ``RuntimeError``
        instead of deadlocking.
        """
        return GuardedSection(self)

    def __repr__(self) -> str:
        return f"<Guarded{' debug' if self._debug else ''} at {id(self):#x}>"


@final
class GuardedSection(Generic[T]):
    """What ``Guarded.lock()`` returns: holds the lock inside its ``with`` block only.

    Single-use: entering it a second time raises ``RuntimeError``. Not to be created directly.
    """

    __slots__ = ("_guarded", "_section", "_used")

    def __init__(self, guarded: Guarded[T]) -> None:
        self._guarded = guarded
        self._used = False  # entered once already
        self._section: _Section | None = None  # the debug record while the block is open

    def __enter__(self) -> T:
        """Acquire the lock (blocking the thread) and return the guarded value."""
        if self._used:
            raise RuntimeError("a Guarded.lock() context manager can be entered only once")
        self._used = True
        guarded = self._guarded
        guarded._acquire()
        if guarded._debug:
            try:
                self._section = _open_debug_section()
            except BaseException:  # pragma: no cover - monitoring refused; do not keep the lock
                guarded._release()
                raise
        return guarded._value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock; in debug mode, raise if the task awaited inside the block."""
        section = self._section
        if section is None:
            self._guarded._release()
            return
        self._section = None
        try:
            _close_debug_section(section)
        finally:
            self._guarded._release()
        if section.awaited and not isinstance(exc, AwaitInCriticalSectionError):
            raise AwaitInCriticalSectionError(
                "a task awaited inside a `with guarded.lock()` block, holding the lock while it "
                "was suspended; critical sections must be synchronous (use Guarded.update/read "
                "with a sync function, and await outside the block)"
            ) from exc
