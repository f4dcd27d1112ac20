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
``backend.new_waiter(shared=False)``
    A :class:`Waiter`: the handle by which one parked task is claimed once and woken.
``is_own_cancellation(exc)``
    Whether a caught cancellation exception is the task's own cancellation, or a stray asyncio
    ``CancelledError`` (from awaiting a future that someone else cancelled), which is a failure.
``await wait_all_tasks_blocked()``
    For ``fearless.testing``: return once every other task of the loop is blocked, without
    anyio's 0.1 s polling on asyncio.

Parking is two-sided. A party (a task, or a thread in a ``*_blocking`` call) registers a
:class:`Waiter` in a channel's queue and parks. Whoever completes its operation *claims* the waiter
under the channel's lock (``claim(value)`` records what the party resumes with, and succeeds at
most once) and *wakes* it after releasing the lock (``wake()``, from any thread: directly on the
loop's own thread, else through ``call_soon_threadsafe`` / ``TrioToken.run_sync_soon``). Deciding
under the lock and waking outside it: ``docs/design/concurrency.md``, "Wake outside the lock, and
only those parked".

Waking and cancelling a parked task race. A :class:`Waiter` settles the race so that callers can
rely on one rule (the foundation of ``docs/design/concurrency.md``, "Cancellation is atomic"):

    ``await waiter.wait(abort, undo)`` either returns the value of the one successful
    ``claim(value)``, or raises the backend's cancellation exception having left no trace:
    ``abort()`` calls ``revoke()`` (under the channel's lock; a party parked on several channels
    revokes under its waiter's own guard, then leaves each queue); if nobody had claimed the waiter,
    it is unregistered and no claim can succeed any more; if it had been claimed, ``undo(value)``
    has taken the operation back.

On trio a task that has been claimed is never cancelled before it resumes (its abort function
reports that the wake is on its way), so ``undo`` is never needed there; the same holds for anyio
cancel scopes on asyncio when the claim came from the loop's own thread, since the wake is then
immediate. Native asyncio cancellation (``task.cancel()``, ``asyncio.timeout``, a failing
``asyncio.TaskGroup``), and any cancellation that lands while a wake from another thread is on its
way, can arrive after a task was claimed but before it ran, and asyncio's rule is that the
cancellation is raised at once. So the waiter asks ``undo(value)`` to take the operation back (a
receiver gives its item back to the channel; a sender withdraws its item if it is still buffered)
and raises. Only when the operation cannot be taken back (a sent item that a receiver has already
taken) does ``undo`` return ``False``: the operation stands, ``wait`` returns its value, and the
cancellation is re-delivered on the next loop iteration if it is still wanted (trio's rule for a
cancellation that arrives after an operation completed). One case stays imperfect: if, before that
next iteration, the task enters an ``asyncio.timeout`` whose deadline has already passed, that
block counts the pending cancellation as older than itself and reports its own ``TimeoutError``
instead, as asyncio does for any cancellation still pending when such a block starts.

A thread parks on a :class:`ThreadWaiter` (a lock it blocks on); its timeout revokes the same way.
``check_blocking_allowed`` refuses a blocking call on an event-loop thread, and :func:`bind`
closes what a loop's tasks used when that loop shuts down (``docs/design/concurrency.md``, "Closing
releases everyone").

This module reads a few private attributes of anyio (asyncio cancel scopes), trio (a task's
cancel status) and asyncio (``Task._fut_waiter``, which anyio reads too). Each anyio and trio read
has a public fallback, the package pins anyio below 5, and
``tests/test_backend.py`` checks that the fast paths are the ones in use.
"""

from __future__ import annotations

import sys
import threading
import types
import weakref
from asyncio import AbstractEventLoop, CancelledError, Task
from asyncio import _get_running_loop as _running_loop
from asyncio import all_tasks as _all_tasks
from asyncio.tasks import _current_tasks  # type: ignore[attr-defined]  # current_task(), minus a frame
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from threading import get_ident as _get_ident
from typing import TYPE_CHECKING, Any, Final, Protocol
from weakref import ref as _weak_ref

from ._exceptions import EventLoopBlockingError

if TYPE_CHECKING:
    import trio

__all__ = [
    "ABORTED",
    "Backend",
    "EventLoopBlockingError",
    "ThreadWaiter",
    "Waiter",
    "bind",
    "check_blocking_allowed",
    "check_timeout",
    "current",
    "enter",
    "is_own_cancellation",
    "wait_all_tasks_blocked",
]

_modules: Final = sys.modules
_NO_LOOP: Final = "fearless: no asyncio or trio event loop is running in this thread"

await_hook: Callable[[], None] | None = None
"""Called by :func:`enter` (the first step of every fearless async operation) when set. The debug
mode of ``Guarded`` sets it while one of its ``lock()`` blocks is open, to learn that a task
awaited inside one; a higher layer plugs in here so that this seam imports nothing above it."""
_NEG_INF: Final = float("-inf")


class Waiter:
    """One parked party (a task, or a thread): claimed at most once, then woken.

    The two steps are apart so that a channel can decide whom to wake inside its critical section
    (``claim``, which records the value the party will resume with) and wake them after releasing
    its lock (``wake``): ``docs/design/concurrency.md``, "Wake outside the lock, and only those
    parked".

    ``claim`` and ``revoke`` run under the lock of the channel the party is parked on. A party
    parked on several channels at once (``merge``, ``select``) is ``shared``: its own small lock
    then makes the first claim win across channels.
    """

    __slots__ = ("_guard", "claimed", "value")

    def __init__(self, shared: bool) -> None:
        self.claimed = False  # claimed by a channel, or revoked by its own party
        self.value: Any = None  # what the party resumes with, once claimed
        self._guard = threading.Lock() if shared else None

    def claim(self, value: object) -> bool:
        """Give the party ``value`` to resume with; ``False`` if claimed or revoked already."""
        guard = self._guard
        if guard is None:
            if self.claimed:
                return False
            self.claimed = True
            self.value = value
            return True
        with guard:
            if self.claimed:
                return False
            self.claimed = True
            self.value = value
            return True

    def revoke(self) -> Any:
        """The party gives up (cancelled, timed out): ``ABORTED`` if nobody had claimed it (and
        now nobody can), else the value it was claimed with (a ``wake`` is on its way)."""
        guard = self._guard
        if guard is not None:
            guard.acquire()
        try:
            if self.claimed:
                return self.value
            self.claimed = True
            self.value = ABORTED
            return ABORTED
        finally:
            if guard is not None:
                guard.release()

    def alive(self) -> bool:
        """True while :meth:`claim` would succeed (a hint unless the channel's lock is held)."""
        return not self.claimed

    @staticmethod
    def claim_pair(a: Waiter, value_a: object, b: Waiter, value_b: object) -> bool:
        """Claim two parked parties together, or neither: a parked sender and a parked receiver
        that a channel matches (under its lock). Shared waiters' guards are taken in a fixed
        order (by ``id``), so two channels matching the same parties cannot deadlock."""
        if a is b:
            return False  # one party (a select) on both sides: it cannot meet itself
        guards = sorted((g for g in (a._guard, b._guard) if g is not None), key=id)
        for guard in guards:
            guard.acquire()
        try:
            if not (a.alive() and b.alive()):
                return False
            a.claimed = b.claimed = True
            a.value, b.value = value_a, value_b
            return True
        finally:
            for guard in guards:
                guard.release()

    def wake(self) -> bool:
        """Resume the claimed party, from any thread; ``False`` if it can never resume (its event
        loop has shut down)."""
        raise NotImplementedError

    def rearm(self) -> None:
        """Make this waiter, claimed and woken, ready for its party's next park (a party that
        parks over and over, an actor's task, saves making one each time). Only for a waiter
        nobody else can still claim or wake: it was taken out of every queue when claimed."""
        self.claimed = False
        self.value = None

    async def wait(self, abort: Callable[[], Any], undo: Callable[[Any], bool]) -> Any:
        """Park until woken, and return the value claimed; if cancelled, leave no trace.

        ``abort()`` unregisters the party (taking the channel's lock and calling
        :meth:`revoke`) and returns what ``revoke`` returned. See the module docstring.
        """
        raise NotImplementedError


class _Aborted:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<aborted>"


ABORTED: Final = _Aborted()
"""What :meth:`Waiter.revoke` returns when the party was still unclaimed."""


def check_blocking_allowed(what: str) -> None:
    """Raise :class:`EventLoopBlockingError` at once if this thread runs an event loop.

    Runs on every blocking call, so it costs two cheap reads: asyncio's running loop for this
    thread, and (once trio has been imported) whether trio's per-thread run context has a runner,
    which is what ``trio.lowlevel.in_trio_run()`` asks, minus the cost of ``hasattr`` failing.
    """
    context = _trio_context or _find_trio_context()
    if _running_loop() is not None or (context is not None and "runner" in context.__dict__):
        raise EventLoopBlockingError(
            f"{what}() would block the event loop running in this thread (and could deadlock "
            f"it); await the async form instead, or call {what}() from another thread"
        )


_trio_context: Any = None  # trio's GLOBAL_RUN_CONTEXT (a threading.local), once trio is imported


def _find_trio_context() -> Any:
    global _trio_context
    if "trio" not in sys.modules:  # nobody imported trio, so no trio run can be in progress
        return None
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT
    except ImportError:  # pragma: no cover - depends on trio's internals

        class _AskTrio:  # the public question, slower: __dict__ has "runner" inside a run
            @property
            def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
                import trio

                return {"runner": None} if trio.lowlevel.in_trio_run() else {}

        _trio_context = _AskTrio()
    else:
        _trio_context = GLOBAL_RUN_CONTEXT
    return _trio_context


def check_timeout(timeout: float | None) -> float:
    """``timeout`` as seconds for ``Lock.acquire`` (-1: forever), or ``ValueError``."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(f"timeout must be None or a non-negative number, got {timeout!r}")
    return min(float(timeout), threading.TIMEOUT_MAX)


class ThreadWaiter(Waiter):
    """An OS thread blocked in a ``*_blocking`` call."""

    __slots__ = ("_parked",)

    def __init__(self, shared: bool = False) -> None:
        super().__init__(shared)
        self._parked = threading.Lock()
        self._parked.acquire()  # released by wake()

    def wake(self) -> bool:
        self._parked.release()
        return True

    def wait_blocking(
        self, abort: Callable[[], Any], undo: Callable[[Any], bool], timeout: float
    ) -> Any:
        """Block until woken and return the value claimed; ``TimeoutError`` after ``timeout``
        seconds (-1: never) having left no trace.

        A claim that lands just as the timeout expires wins: the operation happened, and its
        value is returned. An exception raised while blocked (``KeyboardInterrupt``) is always
        re-raised, having left no trace if it can: a claimed operation is taken back with
        ``undo``; one that cannot be (an item a receiver already has) stands, and a note on the
        exception says so.
        """
        try:
            if self._parked.acquire(timeout=timeout):
                return self.value
        except BaseException as exc:
            value = abort()
            if value is not ABORTED and not undo(value):
                exc.add_note("fearless: the operation had completed and could not be taken back")
            raise
        value = abort()
        if value is ABORTED:
            raise TimeoutError(f"timed out after {timeout} s; nothing was done")
        return value  # claimed as the timeout expired: the operation happened


# --------------------------------------------------------------------------------------------
# Event loops that shut down: what their tasks used counts as closed (docs/design/concurrency.md,
# "Closing releases everyone")
# --------------------------------------------------------------------------------------------


class _Bound(Protocol):
    _home: _Home | None

    def _loop_shut_down(self) -> None:
        """The loop its tasks used has shut down (closes it if threads use its channel)."""


class _Home:
    """One event loop (an asyncio loop, or a trio run) whose tasks have used endpoints.

    ``key`` is the loop (or trio's run) while it runs, ``None`` once it has shut down; an
    endpoint is bound here while its ``_home`` is this object. ``endpoints`` holds the endpoints
    bound here weakly (plain references, without callbacks: one costs less than 0.1 us, and a dead
    one costs nothing until the list is swept), so that the loop's shutdown can close them.
    Only the loop's own thread touches a home (tasks bind in it, and the shutdown runs in it),
    but for the wrong hint that ``_ThreadLoop`` describes; the worst a race with it can do is lose
    that one registration.

    Nothing global holds a home or its loop: an asyncio loop holds its home in an attribute, and
    the home holds the loop's watch, so a loop that is closed without ``shutdown_asyncgens()``
    (``run_until_complete`` then ``close``) is garbage like any other once nothing else refers to
    it (a cycle: the watch refers to the loop through the loop's async-generator finalizer).
    A trio run's home is in ``_trio_homes`` until the run ends, which a trio run always does.
    """

    __slots__ = ("endpoints", "key", "sweep_at", "watch")

    def __init__(self, key: object) -> None:
        self.key: object = key
        self.endpoints: list[weakref.ref[Any]] = []
        self.sweep_at = _FIRST_SWEEP
        self.watch: object = None  # the asyncio watch (an async generator), kept alive here

    def sweep(self) -> None:
        """Drop the dead, the moved and repeats; run when the list has doubled since the last
        sweep, so registering stays amortized O(1) however many endpoints come and go."""
        endpoints = self.endpoints
        alive = [r for r in endpoints if r() is not None]  # usually few: a cheap first pass
        endpoints[:] = dict.fromkeys(r for r in alive if getattr(r(), "_home", None) is self)
        self.sweep_at = max(_FIRST_SWEEP, 2 * len(endpoints))

    def shut_down(self) -> None:
        """The loop has shut down: close (for threads) what its tasks used, and forget it."""
        self.key = None  # later uses rebind, and endpoints no longer keep the loop alive
        endpoints, self.endpoints = self.endpoints, []
        for ref in endpoints:
            endpoint = ref()
            if endpoint is None or endpoint._home is not self:
                continue  # collected, or used by another loop's tasks since
            try:
                endpoint._loop_shut_down()
            except Exception:  # pragma: no cover - close() does not raise; never break a shutdown
                pass


_FIRST_SWEEP: Final = 64
_HOME_ATTRIBUTE: Final = "_fearless_home"  # where an asyncio loop keeps its _Home
_homes_lock: Final = threading.Lock()  # creating homes (a home is then used by one thread)
_trio_homes: dict[object, _Home] = {}  # trio runner -> its home, until the run ends
_other_homes: dict[object, _Home] = {}  # an asyncio loop that takes no attributes -> its home


def bind(endpoint: _Bound) -> None:
    """Record that tasks of the event loop running in this thread use ``endpoint``, so that its
    ``_loop_shut_down()`` is called when that loop shuts down (for threads, a loop that has shut
    down counts as closed: ``docs/design/concurrency.md``, "Closing releases everyone").

    An endpoint moves to the loop that used it last. Shutting down means: on asyncio (and
    uvloop), ``asyncio.run``, ``asyncio.Runner`` or ``anyio.run`` ending, after the loop's
    remaining tasks have been cancelled and have finished (the watch is an async generator, closed
    by ``loop.shutdown_asyncgens()``); on trio, ``trio.run`` ending (the watch is a system task,
    cancelled once the main task has finished). Endpoints call it through
    :meth:`Backend.pause`, which skips it while the endpoint is bound here already; binding a new
    endpoint costs a weak reference and a list append.
    """
    loop = _running_loop()
    if loop is None:
        home = _trio_home()
    else:
        home = getattr(loop, _HOME_ATTRIBUTE, None) or _asyncio_home(loop)
    if endpoint._home is home:
        return
    if home.key is None:  # a loop that has shut down takes no more (asyncio: code run after it)
        endpoint._home = home
    else:
        _register(endpoint, home)


def _register(endpoint: _Bound, home: _Home) -> None:
    """Bind ``endpoint`` to ``home``, a home that has not shut down: a weak reference and a list
    append (amortized: the list is swept when it has doubled)."""
    endpoint._home = home
    endpoints = home.endpoints
    endpoints.append(_weak_ref(endpoint))
    if len(endpoints) >= home.sweep_at:
        home.sweep()


def _asyncio_home(loop: AbstractEventLoop) -> _Home:
    home = _other_homes.get(loop)
    if home is None:
        home = _Home(loop)
        try:
            setattr(loop, _HOME_ATTRIBUTE, home)
        except AttributeError:  # pragma: no cover - a loop class with __slots__
            _other_homes[loop] = home  # kept alive until it shuts down
        home.watch = _start_asyncio_watch(home)
    return home


def _trio_home() -> _Home:
    runner = _trio_runner()
    home = _trio_homes.get(runner)
    if home is None:
        with _homes_lock:
            home = _trio_homes[runner] = _Home(runner)
        _trio.lowlevel.spawn_system_task(_trio_watch, home, name="fearless-loop-watch")
    return home


def _trio_runner() -> object:
    """What identifies the trio run in this thread: its runner (read where trio's own
    ``current_trio_token()`` reads it), else its token; ``RuntimeError`` outside a run."""
    (_current_trio_task or _load_trio())()  # RuntimeError if trio is not running here
    try:
        return (_trio_context or _find_trio_context()).runner
    except AttributeError:  # pragma: no cover - depends on trio's internals
        return _trio.lowlevel.current_trio_token()


def _asyncio_ended(home: _Home) -> None:
    loop = home.key
    if _other_homes.get(loop) is home:  # pragma: no cover - a loop class with __slots__
        del _other_homes[loop]
    home.watch = None
    home.shut_down()


async def _asyncio_watch(home: _Home) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:  # closed by loop.shutdown_asyncgens(), after every task has finished
        _asyncio_ended(home)


def _start_asyncio_watch(home: _Home) -> AsyncGenerator[None, None]:
    """Start the watch: its first step registers it with the running loop's async-generator
    hooks, so the loop's shutdown closes it. Not a task, so that cancelling every other task
    (a common way to shut down) does not end it early. The loop holds it only weakly: the home
    keeps it."""
    watch = _asyncio_watch(home)
    step = watch.asend(None)
    try:
        step.send(None)
    except StopIteration:  # it reached its yield
        pass
    return watch


async def _trio_watch(home: _Home) -> None:
    try:
        await _trio.sleep_forever()
    finally:  # system tasks are cancelled when the run's main task has finished
        with _homes_lock:
            _trio_homes.pop(home.key, None)
        home.shut_down()


class Backend:
    """One event-loop library. Two instances each: ``cancel_pending`` False and True."""

    __slots__ = ("cancel_pending", "name")

    def __init__(self, name: str, cancel_pending: bool) -> None:
        self.name = name
        self.cancel_pending = cancel_pending

    async def checkpoint(self) -> None:
        raise NotImplementedError

    def pause(self, endpoint: _Bound) -> Awaitable[None]:
        """What an endpoint awaits when its scheduling budget runs out (or its task is
        cancelled): bind ``endpoint`` to this event loop (:func:`bind`), then one yield to the
        scheduler, a cancel point, as :meth:`checkpoint`.

        The hot path of a stream that yields on every operation (anyio's schedule), so it is cheap:
        no system call (``asyncio.get_running_loop()`` makes one), no coroutine frame of its own
        (the awaitable is the bare yield itself), and the bind is skipped while the endpoint's home
        is this loop's.
        """
        raise NotImplementedError

    def new_waiter(self, shared: bool = False) -> Waiter:
        """A waiter for the current task; ``shared`` if it parks on several channels at once."""
        raise NotImplementedError

    def scheduler(self) -> Callable[[Callable[[], object]], object]:
        """A thread-safe ``call_soon`` for this event loop: from any thread, it runs a callable
        on the loop's own thread (and raises ``RuntimeError`` once the loop has shut down)."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# asyncio (and uvloop, which runs asyncio's Task)
# --------------------------------------------------------------------------------------------


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    # A bare yield: asyncio's Task reschedules itself at once (this is what asyncio.sleep(0) does).
    yield


class _AsyncioWaiter(Waiter):
    __slots__ = ("_future", "_loop", "_thread")

    def __init__(self, loop: AbstractEventLoop, shared: bool) -> None:
        # Waiter.__init__, inlined: a waiter is made on every park, so calls count here.
        self.claimed = False
        self.value = None
        self._guard = threading.Lock() if shared else None
        self._loop = loop
        self._future = loop.create_future()
        self._thread = _get_ident()

    def claim(self, value: object) -> bool:
        # A cancelled future means the task was cancelled while parked and has not run yet: it
        # will revoke when it does. Refusing it now keeps the value with the next party in line,
        # instead of handing it over only for the task to give it back later, out of order.
        if self._future.cancelled():
            return False
        guard = self._guard
        if guard is None:  # Waiter.claim, inlined
            if self.claimed:
                return False
            self.claimed = True
            self.value = value
            return True
        with guard:
            if self.claimed:
                return False
            self.claimed = True
            self.value = value
            return True

    def alive(self) -> bool:
        return not self.claimed and not self._future.cancelled()

    def wake(self) -> bool:
        if _get_ident() == self._thread:
            future = self._future
            if not future.done():  # done: the task was cancelled; its abort() sees the claim
                try:
                    future.set_result(None)
                except RuntimeError:  # the loop is closed: the task will never run again
                    return False
            return True
        try:
            self._loop.call_soon_threadsafe(self._resume)
        except RuntimeError:  # the loop is closed: the task will never run again
            return False
        return True

    def _resume(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    def rearm(self) -> None:
        self.claimed = False
        self.value = None
        self._future = self._loop.create_future()

    async def wait(self, abort: Callable[[], Any], undo: Callable[[Any], bool]) -> Any:
        task = _current_tasks.get(self._loop)
        assert task is not None
        # Cancel requests outstanding before this park (one of ours still being deferred counts
        # from its own park): only requests above this line were made while we were parked.
        baseline = _deferred[task] if task in _deferred else task.cancelling()
        try:
            await self._future
        except CancelledError:
            value = abort()
            if value is ABORTED:
                raise
            # Claimed, then cancelled before this task ran.
            if undo(value):
                raise
            # The operation stands. An anyio cancel scope that is still cancelled re-delivers
            # its own cancellation at the task's next await (with the message anyio recognises
            # as its own); only a native cancellation needs re-delivering here.
            if not enter().cancel_pending:
                _defer_cancellation(self._loop, task, baseline)
            return value
        return self.value


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
        if since is None or task.done() or task.cancelling() <= since:
            return
        if getattr(task, "_must_cancel", False):
            return  # a cancellation is on its way already (with its own message): keep it
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

    def pause(self, endpoint: _Bound) -> Awaitable[None]:
        context = _trio_context
        if context is None and "trio" in _modules:
            context = _find_trio_context()
        if context is not None and "runner" in context.__dict__:
            # trio runs in this thread (as a guest of this loop, or the hint is of a loop that now
            # runs in another thread): bind, and choose whom to yield to, exactly.
            bind(endpoint)
            return self.checkpoint()
        # enter() has just found a task running on the loop of the hint: the loop to bind to.
        loop = _this_thread.hint[0]
        home = endpoint._home
        if home is None or home.key is not loop:
            home = getattr(loop, _HOME_ATTRIBUTE, None)
            if home is None or home.key is None:
                bind(endpoint)
            else:  # _register(endpoint, home), inlined: every new endpoint comes here
                endpoint._home = home
                endpoints = home.endpoints
                endpoints.append(_weak_ref(endpoint))
                if len(endpoints) >= home.sweep_at:
                    home.sweep()
        return _yield_once()

    def new_waiter(self, shared: bool = False) -> Waiter:
        loop = _running_loop()
        if loop is None:  # see _ThreadLoop
            return current().new_waiter(shared)
        return _AsyncioWaiter(loop, shared)

    def scheduler(self) -> Callable[[Callable[[], object]], object]:
        loop = _running_loop()
        if loop is None:  # see _ThreadLoop
            return current().scheduler()
        return loop.call_soon_threadsafe


class _ThreadLoop(threading.local):
    """What ``enter()`` last saw in this thread: a hint, verified on every use.

    ``hint`` is ``(loop, task, state, key)``: the asyncio loop last seen running here, the task
    last seen running on it, anyio's TaskState for that task (None if anyio has none yet) and a
    weak reference to the task (the key of anyio's WeakKeyDictionary). anyio creates a task's
    state the first time the task enters a cancel scope and keeps it while the task lives, so a
    cached state stays right; a cached None is looked up again every time. The hint keeps the
    last task alive until this thread's next operation on another task.

    The loop is wrong only if it has since moved to another thread and is in a task step there
    at this very moment, while this thread runs a different loop. Two things are decided from the
    hint: whether a cancel scope is pending (a wrong answer costs one extra yield, or delays a
    cancellation to the next yield), and, in :meth:`Backend.pause`, which loop an endpoint is
    bound to (a wrong answer leaves it bound to, or binds it to, that other loop, whose shutdown
    then closes it for threads instead of this loop's; binding to a loop that has no home yet is
    always exact). Which library to yield to and which loop to park on are always decided exactly.
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
    if await_hook is not None:  # debug mode, with a ``with guarded.lock()`` block open somewhere
        await_hook()
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


class _TrioWaiter(Waiter):
    __slots__ = ("_task", "_thread", "_token")

    def __init__(self, shared: bool) -> None:
        super().__init__(shared)
        self._task = _trio.lowlevel.current_task()
        self._token = _trio.lowlevel.current_trio_token()
        self._thread = _get_ident()

    def wake(self) -> bool:
        if _get_ident() == self._thread:
            try:
                _trio.lowlevel.reschedule(self._task)
            except RuntimeError:  # pragma: no cover - the run is over: the task is gone
                return False
            return True
        try:
            self._token.run_sync_soon(_trio.lowlevel.reschedule, self._task)
        except _trio.RunFinishedError:
            return False
        return True

    async def wait(self, abort: Callable[[], Any], undo: Callable[[Any], bool]) -> Any:
        # trio never cancels a task that has been rescheduled, so undo is never needed here.
        def abort_fn(_: object) -> trio.lowlevel.Abort:
            # Runs synchronously inside trio when the task's scope is cancelled.
            if abort() is ABORTED:
                return _trio.lowlevel.Abort.SUCCEEDED  # type: ignore[no-any-return]
            # Claimed already: its wake() is on the way (from another thread, or from the task
            # that claimed it, which wakes right after releasing the channel's lock).
            return _trio.lowlevel.Abort.FAILED  # type: ignore[no-any-return]

        await _trio.lowlevel.wait_task_rescheduled(abort_fn)
        return self.value


class _TrioBackend(Backend):
    __slots__ = ()

    async def checkpoint(self) -> None:
        await _trio.lowlevel.checkpoint()

    def pause(self, endpoint: _Bound) -> Awaitable[None]:
        runner = getattr(_trio_context, "runner", None)  # this thread's run (see _trio_runner)
        home = endpoint._home
        if home is None or home.key is not runner or runner is None:
            home = _trio_homes.get(runner)
            if home is None or home.key is None:
                bind(endpoint)
            else:  # _register(endpoint, home), inlined: every new endpoint comes here
                endpoint._home = home
                endpoints = home.endpoints
                endpoints.append(_weak_ref(endpoint))
                if len(endpoints) >= home.sweep_at:
                    home.sweep()
        return _trio.lowlevel.checkpoint()  # type: ignore[no-any-return]

    def new_waiter(self, shared: bool = False) -> Waiter:
        return _TrioWaiter(shared)

    def scheduler(self) -> Callable[[Callable[[], object]], object]:
        return _trio.lowlevel.current_trio_token().run_sync_soon  # type: ignore[no-any-return]


_TRIO: Final = _TrioBackend("trio", False)
_TRIO_CANCELLED: Final = _TrioBackend("trio", True)
_trio: Any = None
_current_trio_task: Callable[[], Any] | None = None


def _load_trio() -> Callable[[], Any]:
    global _trio, _current_trio_task
    if "trio" not in sys.modules:  # trio cannot be running if nobody imported it
        raise RuntimeError(_NO_LOOP)
    import trio

    _trio = trio
    _current_trio_task = trio.lowlevel.current_task
    _find_trio_context()
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
        if await_hook is not None:
            await_hook()
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


# --------------------------------------------------------------------------------------------
# Settling (for fearless.testing), and where a cancellation exception came from
# --------------------------------------------------------------------------------------------

# asyncio tasks inside wait_all_tasks_blocked() right now: they count as blocked for each other,
# so that two of them waiting at once cannot keep each other from ever returning.
_settling: set[Task[Any]] = set()


async def wait_all_tasks_blocked() -> None:
    """Return once every other task of the running event loop is blocked.

    On trio this is ``trio.testing.wait_all_tasks_blocked()``, which is exact: trio knows its run
    queue, so on return no other task is runnable (and of several tasks waiting here at once, one
    returns and the others wait until it blocks again).

    On asyncio (and uvloop) the loop's tasks are looked at directly, without the 0.1 s sleeps of
    ``anyio.wait_all_tasks_blocked()``: this task yields once (a zero sleep, letting every
    callback already scheduled run), then checks that every other task of the loop is parked on
    a future that is not done (a task that has not started, that yielded without blocking, or
    whose future is done and whose wake-up is scheduled, is not blocked). It returns once that
    check has held on two consecutive passes, with a yield between them, so a callback that was
    already scheduled and is about to wake a task (setting its future) is seen. Other tasks
    inside this function at the same time count as blocked.

    Limits (both backends): OS threads are not seen, so work in ``to_thread``, a ``*_blocking``
    call in another thread, or a wake-up another thread has sent but the loop has not run yet,
    does not hold it back; a task waiting for a timer or for I/O counts as blocked, however soon
    it is due. On asyncio, also: a chain of plain callbacks longer than two loop iterations (a
    callback that schedules a callback that schedules the one that wakes a task) is not seen,
    and a task that keeps yielding without ever blocking keeps this function waiting (so does
    trio's).

    Cancellation: a cancel point at every yield; cancelling it has no effect on other tasks.
    """
    if current() is not _ASYNCIO:
        import trio.testing

        await trio.testing.wait_all_tasks_blocked()
        return
    loop = _running_loop()
    this = _current_tasks.get(loop)
    assert loop is not None  # current() found an asyncio task
    assert this is not None
    _settling.add(this)
    try:
        passes = 0
        while passes < 2:
            await _yield_once()
            passes = passes + 1 if _all_others_blocked(loop, this) else 0
    finally:
        _settling.discard(this)


def _all_others_blocked(loop: AbstractEventLoop, this: Task[Any]) -> bool:
    for task in _all_tasks(loop):  # the loop's tasks that are not done
        if task is this or task in _settling:
            continue
        # What anyio reads too: the future the task is parked on, None while it is runnable.
        waiter = task._fut_waiter  # type: ignore[attr-defined]
        if waiter is None or waiter.done():
            return False
    return True


def is_own_cancellation(exc: BaseException) -> bool:
    """Whether ``exc``, caught in a task, is that task's own cancellation.

    Call it in an ``except BaseException as exc`` block of the task that caught ``exc``, still
    inside the cancel scopes that were around the failing ``await``. True if ``exc`` is the
    running backend's cancellation exception and the task is being cancelled: on trio, every
    ``trio.Cancelled`` (trio raises it only into a task whose cancel scope was cancelled); on
    asyncio (and uvloop), an ``asyncio.CancelledError`` while an anyio cancel scope around this
    point is cancelled (up to the nearest shield), or while the task has a native cancellation
    request outstanding (``task.cancelling() > 0``: ``task.cancel()``, ``asyncio.timeout``, a
    failing ``asyncio.TaskGroup``, and anyio, which cancels tasks that way too).

    False for anything else, in particular a stray ``CancelledError``: the task awaited a future
    (or a task) that someone else cancelled, and nothing cancelled the task itself. That is a
    failure of the code that awaited it, not a cancellation, and must be handled as one (anyio's
    task groups would otherwise take it for a cancellation and drop it). An exception group is
    never a cancellation here: look inside it with ``split``.
    """
    if isinstance(exc, CancelledError):  # asyncio's (which uvloop raises too)
        loop = _running_loop()
        task = None if loop is None else _current_tasks.get(loop)
        if task is None:
            return False  # not in an asyncio task: not this backend's cancellation
        return task.cancelling() > 0 or _anyio_scope_cancelled(task)
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled) and _in_trio()


def _anyio_scope_cancelled(task: Task[Any]) -> bool:
    """Whether an anyio cancel scope around the current point of ``task`` (the running one) is
    cancelled: what ``enter()`` reads, without marking an await for ``guarded``'s debug mode."""
    if not FAST_ASYNCIO_CANCEL_CHECK:  # pragma: no cover - depends on anyio's internals
        import anyio

        return anyio.current_effective_deadline() == _NEG_INF
    state = _states_by_ref.get(_weak_ref(task))
    scope = None if state is None else state.cancel_scope
    while scope is not None:
        if scope._cancel_called:
            return True
        if scope._shield:
            return False
        scope = scope._parent_scope
    return False
