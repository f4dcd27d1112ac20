"""The one seam that knows asyncio and trio.

Everything else in fearless is written against a few operations:

``enter()``
    Called once at the start of every async operation. Returns the :class:`Backend` of the event
    loop running in this thread, with ``cancel_pending`` set when the current task's cancel scope
    has been cancelled (so the operation must not go through). One Python call: on asyncio it reads
    anyio's cancel-scope state directly instead of paying anyio's ~1 us per
    ``checkpoint_if_cancelled()``, and finds the task through the loop last seen in this thread
    (``asyncio.get_running_loop()`` makes a ``getpid()`` system call each time); on trio it reads
    the flag trio's own ``checkpoint_if_cancelled`` reads. Raises ``RuntimeError`` outside an
    event loop.
``current()``
    The backend, without the cancel check (for closing and other non-operations).
``await backend.checkpoint()``
    Yield to the scheduler once; a cancel point.
``backend.new_waiter()``
    A :class:`Waiter`: the handle by which one parked task is woken exactly once.

Waking and cancelling a parked task race. A :class:`Waiter` settles the race so that callers can
rely on one rule (the foundation of rule 3 in ``concurrency-rules.md``):

    ``await waiter.wait(abort, undo)`` either returns the value given to the one successful
    ``wake(value)``, or raises the backend's cancellation exception having left no trace: if it
    was never woken, ``abort()`` has unregistered it, and every later ``wake()`` returns
    ``False``; if it was woken, ``undo(value)`` has taken the operation back.

On trio, and for anyio cancel scopes on asyncio, a task that has been woken is never cancelled
before it resumes, so ``undo`` is never needed there. Native asyncio cancellation
(``task.cancel()``, ``asyncio.timeout``, a failing ``asyncio.TaskGroup``) can arrive after a task
was woken but before it ran, and asyncio's rule is that the cancellation is raised at once. So the
waiter asks ``undo(value)`` to take the operation back (a receiver gives its item back to the
channel; a sender withdraws its item if it is still buffered) and raises. Only when the operation
cannot be taken back (a sent item that a receiver has already taken) does ``undo`` return
``False``: the operation stands, ``wait`` returns its value, and the cancellation is re-delivered
on the next loop iteration if it is still wanted (trio's rule for a cancellation that arrives after
an operation completed). One case stays imperfect: if, before that next iteration, the task enters
an ``asyncio.timeout`` whose deadline has already passed, that block counts the pending
cancellation as older than itself and reports its own ``TimeoutError`` instead, as asyncio does for
any cancellation still pending when such a block starts.

This module reads a few private attributes of anyio (asyncio cancel scopes) and trio (a task's
cancel status). Each read has a public fallback, the package pins anyio below 5, and
``tests/test_backend.py`` checks that the fast paths are the ones in use.
"""

from __future__ import annotations

import sys
import threading
import types
from asyncio import AbstractEventLoop, CancelledError, Task
from asyncio import _get_running_loop as _running_loop
from asyncio.tasks import _current_tasks  # type: ignore[attr-defined]  # current_task(), minus a frame
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Final, Protocol
from weakref import ref as _weak_ref

if TYPE_CHECKING:
    import trio

__all__ = ["Backend", "Waiter", "current", "enter"]

_NO_LOOP: Final = "fearless: no asyncio or trio event loop is running in this thread"
_NEG_INF: Final = float("-inf")


class Waiter(Protocol):
    """One parked task, woken at most once (see the module docstring for the race rule)."""

    def wake(self, value: object) -> bool:
        """Deliver ``value`` and schedule the task; ``False`` if woken or cancelled already."""
        ...

    def alive(self) -> bool:
        """True while :meth:`wake` would succeed."""
        ...

    async def wait(self, abort: Callable[[], object], undo: Callable[[Any], bool]) -> Any:
        """Park until woken; if cancelled, leave no trace and re-raise (see the module doc)."""
        ...


class Backend:
    """One event-loop library. Two instances each: ``cancel_pending`` False and True."""

    __slots__ = ("cancel_pending", "name")

    def __init__(self, name: str, cancel_pending: bool) -> None:
        self.name = name
        self.cancel_pending = cancel_pending

    async def checkpoint(self) -> None:
        raise NotImplementedError

    def new_waiter(self) -> Waiter:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# asyncio (and uvloop, which runs asyncio's Task)
# --------------------------------------------------------------------------------------------


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    # A bare yield: asyncio's Task reschedules itself at once (this is what asyncio.sleep(0) does).
    yield


class _AsyncioWaiter:
    __slots__ = ("_future", "_loop")

    def __init__(self, loop: AbstractEventLoop) -> None:
        self._loop = loop
        self._future = loop.create_future()

    def wake(self, value: object) -> bool:
        future = self._future
        if future.done():  # cancelled, or woken already
            return False
        future.set_result(value)
        return True

    def alive(self) -> bool:
        return not self._future.done()

    async def wait(self, abort: Callable[[], object], undo: Callable[[Any], bool]) -> Any:
        future = self._future
        task = _current_tasks.get(self._loop)
        assert task is not None
        # Cancel requests outstanding before this park (one of ours still being deferred counts
        # from its own park): only requests above this line were made while we were parked.
        baseline = _deferred[task] if task in _deferred else task.cancelling()
        try:
            return await future
        except CancelledError:
            future.cancel()  # no-op if it was woken; otherwise no wake() can succeed from now on
            if future.cancelled():
                abort()
                raise
            # Woken, then natively cancelled before this task ran.
            value = future.result()
            if undo(value):
                raise
            _defer_cancellation(self._loop, task, baseline)
            return value


# Tasks with a swallowed cancellation waiting to be re-delivered, and the request count from
# before the park that swallowed it. An entry lives until the next loop iteration.
_deferred: dict[Task[Any], int] = {}


def _defer_cancellation(loop: AbstractEventLoop, task: Task[Any], baseline: int) -> None:
    """The operation could not be taken back, so it stands and returns; the cancellation that
    arrived after it completed is re-delivered on the next loop iteration, if still wanted.

    Still wanted means: a request made while the task was parked is still outstanding. Whoever
    made one may withdraw it first: an ``asyncio.timeout`` block that ends normally calls
    ``uncancel()``, and re-delivering then would be a spurious cancellation. (Re-arming the
    cancellation at once instead would survive that ``uncancel()`` on Python 3.11 and 3.12.)
    """
    if task in _deferred:
        return  # one re-delivery is already on its way, counted from the earlier park
    _deferred[task] = baseline

    def again() -> None:
        since = _deferred.pop(task, None)
        if since is not None and not task.done() and task.cancelling() > since:
            task.uncancel()  # keep the request count as it is: cancel() adds it back
            task.cancel()

    loop.call_soon(again)


class _AsyncioBackend(Backend):
    __slots__ = ()

    async def checkpoint(self) -> None:
        if _running_loop() is None:  # see _ThreadLoop: never yield to the wrong library
            await current().checkpoint()
        else:
            await _yield_once()

    def new_waiter(self) -> Waiter:
        loop = _running_loop()
        if loop is None:  # see _ThreadLoop
            return current().new_waiter()
        return _AsyncioWaiter(loop)


class _ThreadLoop(threading.local):
    """What ``enter()`` last saw in this thread: a hint, verified on every use.

    ``hint`` is ``(loop, task, state, key)``: the asyncio loop last seen running here, the task
    last seen running on it, anyio's TaskState for that task (None if anyio has none yet) and a
    weak reference to the task (the key of anyio's WeakKeyDictionary). anyio creates a task's
    state the first time the task enters a cancel scope and keeps it while the task lives, so a
    cached state stays right; a cached None is looked up again every time. The hint keeps the
    last task alive until this thread's next operation on another task.

    The loop is wrong only if it has since moved to another thread and is in a task step there
    at this very moment, while this thread runs a different loop. The only thing decided from the
    hint is whether a cancel scope is pending (a wrong answer costs one extra yield, or delays a
    cancellation to the next yield); which library to yield to and which loop to park on are
    always decided exactly.
    """

    hint: tuple[Any, Any, Any, Any] = (None, None, None, None)


_this_thread: Final = _ThreadLoop()


_ASYNCIO: Final = _AsyncioBackend("asyncio", False)
_ASYNCIO_CANCELLED: Final = _AsyncioBackend("asyncio", True)

try:
    from anyio._backends._asyncio import CancelScope as _AnyioScope
    from anyio._backends._asyncio import _task_states

    _probe = _AnyioScope()
    for _attr in ("_cancel_called", "_shield", "_parent_scope"):
        getattr(_probe, _attr)
    _states_by_ref: dict[Any, Any] = _task_states.data  # type: ignore[attr-defined]
    FAST_ASYNCIO_CANCEL_CHECK: Final = True
except (ImportError, AttributeError):  # pragma: no cover - depends on anyio's internals
    FAST_ASYNCIO_CANCEL_CHECK = False  # type: ignore[misc]


# The last task seen, anyio's TaskState for it (None if anyio has none yet) and a weak reference to
# it, the key anyio's WeakKeyDictionary uses. One slot, replaced as a whole, so that threads running
# loops of their own cannot pair one task with another's state. anyio creates a task's state the
# first time the task enters a cancel scope and keeps it while the task lives, so a cached state
# stays right; a cached None is looked up again every time (a plain dict lookup by the cached
# weak reference). The slot keeps the last task alive until another task uses fearless.
def enter() -> Backend:
    """The running backend, with ``cancel_pending`` telling whether the task is cancelled.

    Called by every async operation, so the asyncio path is written out inline.
    """
    # asyncio.get_running_loop() costs a getpid() system call (its fork check), about 0.1 us
    # here; the loop last seen running in this thread is cheaper, and is checked by asking it for
    # its current task. None means it is not in a task step, so look the exact way.
    hint = _this_thread.hint
    loop, seen, state, key = hint
    task = _current_tasks.get(loop)
    if task is None:
        loop = _running_loop()
        if loop is None:
            return _enter_trio()
        task = _current_tasks.get(loop)
        if task is None:  # a callback, not a task (or trio in guest mode on this loop)
            return _enter_trio() if _in_trio() else _ASYNCIO
    if task is not seen:
        key = _weak_ref(task)
        state = _states_by_ref.get(key)
        _this_thread.hint = (loop, task, state, key)
        if state is None:
            return _ASYNCIO
    elif state is None:
        state = _states_by_ref.get(key)
        if state is None:
            return _ASYNCIO
        _this_thread.hint = (loop, task, state, key)
    # A scope is effectively cancelled if it, or a parent up to the nearest shield, was cancelled.
    scope = state.cancel_scope
    while scope is not None:
        if scope._cancel_called:
            return _ASYNCIO_CANCELLED
        if scope._shield:
            return _ASYNCIO
        scope = scope._parent_scope
    return _ASYNCIO


def _enter_asyncio_public(loop: AbstractEventLoop) -> Backend:  # pragma: no cover
    import anyio

    if anyio.current_effective_deadline() == _NEG_INF:
        return _ASYNCIO_CANCELLED
    return _ASYNCIO


# --------------------------------------------------------------------------------------------
# trio
# --------------------------------------------------------------------------------------------


class _TrioWaiter:
    __slots__ = ("_done", "_task")

    def __init__(self) -> None:
        self._task = _trio.lowlevel.current_task()
        self._done = False

    def wake(self, value: object) -> bool:
        if self._done:
            return False
        self._done = True
        _trio.lowlevel.reschedule(self._task, _outcome.Value(value))
        return True

    def alive(self) -> bool:
        return not self._done

    async def wait(self, abort: Callable[[], object], undo: Callable[[Any], bool]) -> Any:
        # trio never cancels a task that has been rescheduled, so undo is never needed here.
        def abort_fn(_: object) -> trio.lowlevel.Abort:
            # Runs synchronously inside trio when the task's scope is cancelled; after this no
            # wake() succeeds, so the operation cannot also complete.
            self._done = True
            abort()
            return _trio.lowlevel.Abort.SUCCEEDED  # type: ignore[no-any-return]

        return await _trio.lowlevel.wait_task_rescheduled(abort_fn)


class _TrioBackend(Backend):
    __slots__ = ()

    async def checkpoint(self) -> None:
        await _trio.lowlevel.checkpoint()

    def new_waiter(self) -> Waiter:
        return _TrioWaiter()


_TRIO: Final = _TrioBackend("trio", False)
_TRIO_CANCELLED: Final = _TrioBackend("trio", True)
_trio: Any = None
_outcome: Any = None
_current_trio_task: Callable[[], Any] | None = None


def _load_trio() -> Callable[[], Any]:
    global _trio, _outcome, _current_trio_task
    if "trio" not in sys.modules:  # trio cannot be running if nobody imported it
        raise RuntimeError(_NO_LOOP)
    import outcome
    import trio

    _trio, _outcome = trio, outcome
    _current_trio_task = trio.lowlevel.current_task
    return _current_trio_task


def _enter_trio() -> Backend:
    try:
        task = (_current_trio_task or _load_trio())()
    except RuntimeError:
        raise RuntimeError(_NO_LOOP) from None
    try:
        # What trio's own checkpoint_if_cancelled() reads, without its coroutine.
        cancelled = task._cancel_status.effectively_cancelled
    except AttributeError:  # pragma: no cover - depends on trio's internals
        cancelled = _trio.current_effective_deadline() == _NEG_INF
    return _TRIO_CANCELLED if cancelled else _TRIO


if not FAST_ASYNCIO_CANCEL_CHECK:  # pragma: no cover

    def enter() -> Backend:
        loop = _running_loop()
        return _enter_trio() if loop is None else _enter_asyncio_public(loop)


def _in_trio() -> bool:
    """True if this code runs in a trio task (also when trio is a guest on an asyncio loop)."""
    if "trio" not in sys.modules:
        return False
    try:
        (_current_trio_task or _load_trio())()
    except RuntimeError:
        return False
    return True


def current() -> Backend:
    """The running backend; ``RuntimeError`` if no event loop runs in this thread."""
    loop = _running_loop()
    if loop is not None and (_current_tasks.get(loop) is not None or not _in_trio()):
        return _ASYNCIO
    return _enter_trio()
