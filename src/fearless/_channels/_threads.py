"""``thread_group``: OS threads wired to channels, started, stopped and joined as one block.

Specification (``docs/threads.md`` is the user guide):

Starting
    ``async with fearless.thread_group() as group:`` opens a group. ``group.start(fn, *endpoints,
    n=1, name=None)`` starts ``n`` OS threads; each calls ``fn(*clones)`` with its own ``clone()``
    of every endpoint given, in the order given. An endpoint is anything with ``clone()`` and
    ``close()``: a channel's ``Sender`` and ``ChannelReceiver`` (the threads share the work), a
    broadcast's ``BroadcastSender`` and ``Subscription`` (a subscription's clone starts at the
    original's position, so every thread sees every item), a ``merge``. Any other value goes in
    through ``functools.partial`` or a closure; the group neither clones nor closes it. ``fn``'s
    return value is ignored (results travel through channels). ``start`` is synchronous: the
    threads are running when it returns. It may be called from the block, from the group's own
    threads or from any other thread, until the group has finished. Threads are named ``name``
    (by default ``"fearless: "`` and ``fn``'s qualified name), with `` 0``, `` 1``, ... appended
    when ``n > 1``.

Closing: the group owns what it is given
    Once ``start`` has cloned the endpoints, it closes the originals (however it returns), so a
    channel the threads feed ends exactly when the last of them is done, and a channel they read
    from is not held open by the caller: the forgotten ``close()`` that left a pipeline hanging at
    the end cannot happen. Each thread's clones are closed when its ``fn`` returns or raises
    (``with`` in ``fn`` is harmless, and not needed). To give one endpoint to two ``start`` calls,
    pass a ``clone()`` to the first.

Ending
    The block's exit waits until every thread has ended: it waits for the last thread's word
    through a oneshot, then joins the threads from a worker thread (``anyio.to_thread``), never on
    the event loop's thread. When the block ends normally the threads are not disturbed: they end
    when their input ends (close the senders that feed them) or their work is done. No thread of
    the group outlives the block.

Cancelling: closing the threads' endpoints
    The group *cancels* its threads by closing every endpoint it handed them. That wakes every
    thread blocked on one of them in ``send_blocking``, ``receive_blocking`` or ``iter_blocking``,
    with ``ClosedResourceError`` (``SendClosedError`` for a send); the next such call of a thread
    that was busy raises the same. A thread started afterwards gets clones that are already
    closed. The group cancels when:

    - the block is cancelled, or raises: its exit cancels, then waits for the threads, shielded
      from cancellation;
    - the task is cancelled while the exit waits for the threads: the same, then the
      cancellation propagates;
    - a thread fails (below): at once, and the block is cancelled too (at its next cancel
      point), as a task group does when a child fails;
    - ``group.cancel()`` is called, from any thread: the threads are cancelled and so is the block,
      quietly (the exit raises nothing for it; the cancellation ends at the group).

    Order: the block's scope is cancelled first, then the endpoints are closed, both on the event
    loop's thread (a thread that fails or calls ``cancel()`` hands that over through the loop's
    thread-safe ``call_soon``), so a task of the block sees its cancellation, not a channel
    broken under it by the closing. A thread blocked in anything else (a socket read,
    ``time.sleep``, a channel the group did not hand it) ends only when that call returns; a
    thread that ignores its closed endpoints keeps the exit waiting, as a task that swallows its
    cancellation keeps a task group waiting. A native asyncio ``task.cancel()`` gets through
    anyio's shield; the exit holds it back until every thread has ended, then raises it.

Failures
    A thread *fails* when ``fn`` raises anything except the ways out a channel gives it:
    ``EndOfStream`` and ``BrokenResourceError`` (``SendBrokenError``: every receiver is closed)
    always count as the thread's normal end (its input ended, or the consumer went away, which is
    not this thread's failure); ``ClosedResourceError`` (``SendClosedError``) counts as a normal
    end once the group has cancelled (it is how the group stops threads), and as a failure before
    that (the thread used an endpoint after closing it). The block fails when it raises anything
    but a cancellation.

    Failures are ordered by the moment they were recorded, under the group's lock: a thread's
    when its ``fn`` raised, the block's when its exit began. The exit raises the *first* failure
    itself, never wrapped in an exception group (so ``except ValueError`` works), with a note
    naming the thread it came from; each later failure is named in a note on it, and every one is
    in ``group.failures``, first to last. A failure beats a cancellation: if a thread failed, its
    error is raised even when the block was cancelled from outside (anyio cancel scopes and trio
    deliver the outer cancellation again at the next cancel point). A thread's error keeps its
    own ``__context__``. Exceptions: ``KeyboardInterrupt`` and ``SystemExit`` from the block
    always propagate unchanged (the failures as notes), and if the first failure is the block's
    own exception, that exception propagates as it was raised.

Blocking form
    ``with fearless.thread_group() as group:`` is the same group for synchronous code (a plain
    thread, or a program without an event loop): its exit blocks until the threads have ended.
    There is no cancel scope to cancel: a failing thread closes the threads' endpoints itself,
    and the block sees them closed; a ``KeyboardInterrupt`` while the exit waits closes them,
    waits, and propagates. On a thread that runs an event loop, entering it raises
    ``EventLoopBlockingError``.

Bad input
    ``n`` that is not a positive int (``ValueError``), ``fn`` that is not callable or is a
    coroutine function, an argument that is not an endpoint (``TypeError``), an endpoint that is
    already closed (``ClosedResourceError``): each names the bad value, and the call had no
    effect (nothing started, nothing closed). ``start`` on a group that is not open, or has
    finished, raises ``RuntimeError`` and closes the endpoints it was given.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, TypeVarTuple, Unpack, final

import anyio.to_thread
from anyio import (
    BrokenResourceError,
    CancelScope,
    CapacityLimiter,
    ClosedResourceError,
    EndOfStream,
    get_cancelled_exc_class,
)

from .. import _backend
from .._exceptions import EventLoopBlockingError
from ._oneshot import OneshotReceiver, OneshotSender, oneshot

__all__ = ["ThreadGroup", "ThreadGroupStatistics", "thread_group"]

Ts = TypeVarTuple("Ts")

_State = Literal["new", "open", "exiting", "finished"]
_BLOCK: Final = "the block"  # what a failure of the block is attributed to


@final
@dataclass(frozen=True, slots=True)
class ThreadGroupStatistics:
    """A snapshot of a thread group."""

    started: int
    """Threads started so far."""
    running: int
    """Threads whose ``fn`` has not yet returned (or raised), with their endpoints open."""
    failed: int
    """Failures recorded so far (the threads' and the block's; see ``ThreadGroup.failures``)."""
    cancelled: bool
    """Whether the group has closed its threads' endpoints (cancellation, a failure, an error of
    the block or ``cancel()``)."""
    state: str
    """``"new"`` (not entered yet), ``"open"``, ``"exiting"`` (waiting for its threads) or
    ``"finished"``."""


class _Member:
    """One thread of the group: its name, its clones, and the thread itself."""

    __slots__ = ("clones", "name", "thread")

    def __init__(self, name: str, clones: list[Any]) -> None:
        self.name = name
        self.clones = clones
        self.thread: threading.Thread | None = None


def thread_group() -> ThreadGroup:
    """A new group of OS threads, for one ``async with`` (or ``with``) block.

    ``group.start(fn, *endpoints, n=1, name=None)`` starts ``n`` threads, each calling ``fn``
    with its own clones of the endpoints, and closes the originals. Closing: a channel the
    threads feed ends when the last of them is done; each thread's clones are closed when its
    ``fn`` ends. Ending: the block's exit waits until every thread has ended, and raises the
    first failure (a thread's or the block's; later ones are named in notes).

    Cancellation: if the block is cancelled or raises, or a thread fails, the group closes every
    endpoint it handed the threads, which wakes each thread blocked on one of them with
    ``ClosedResourceError`` (the normal way out, not a failure); the exit then waits, shielded,
    until every thread has ended. No thread outlives the block. The guide, ``docs/threads.md``
    ("Thread groups"), has the whole specification.
    """
    return ThreadGroup._create()


@final
class ThreadGroup:
    """OS threads started from one block, given clones of channel endpoints, joined on exit.

    Created by :func:`thread_group`. Use it once, as ``async with`` in a task or as ``with`` in
    synchronous code. ``start`` and ``cancel`` are safe from any thread.
    """

    __slots__ = (
        "_all_ended",
        "_block_ended",
        "_cancel_requested",
        "_cancelled",
        "_done_rx",
        "_done_tx",
        "_ended",
        "_failures",
        "_live",
        "_lock",
        "_loop_thread",
        "_running",
        "_schedule",
        "_scope",
        "_started",
        "_state",
    )

    _lock: threading.Lock
    _state: _State
    _cancel_requested: bool  # cancel() was called, or a failure or the exit cancelled
    _cancelled: bool  # the threads' endpoints are being (or have been) closed
    _running: int
    _started: int
    _live: dict[int, _Member]  # by id(member): the threads still in their fn
    _ended: list[threading.Thread]  # threads past their fn, perhaps still returning
    _failures: list[tuple[str, BaseException]]  # (where, error), first to last
    _done_tx: OneshotSender[None] | None  # the last thread out, while the exit waits, sends
    _done_rx: OneshotReceiver[None] | None
    _scope: CancelScope | None  # around the async with block
    _schedule: Callable[[Callable[[], object]], object] | None  # the loop's threadsafe call_soon
    _loop_thread: int
    _block_ended: bool
    _all_ended: bool  # the exit knows that every thread has left its fn

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("ThreadGroup has no public constructor; use fearless.thread_group()")

    @classmethod
    def _create(cls) -> ThreadGroup:
        self = object.__new__(cls)
        self._lock = threading.Lock()
        self._state = "new"
        self._cancel_requested = False
        self._cancelled = False
        self._running = 0
        self._started = 0
        self._live = {}
        self._ended = []
        self._failures = []
        self._done_tx = None
        self._done_rx = None
        self._scope = None
        self._schedule = None
        self._loop_thread = 0
        self._block_ended = False
        self._all_ended = False
        return self

    # -- starting ----------------------------------------------------------------------------

    def start(
        self,
        fn: Callable[[Unpack[Ts]], object],
        /,
        *endpoints: *Ts,
        n: int = 1,
        name: str | None = None,
    ) -> None:
        """Start ``n`` threads, each calling ``fn`` with its own clones of ``endpoints``.

        Returns once the threads are running; safe from any thread while the group is open
        (including from the group's threads). Closing: the originals are closed before this
        returns, so the channels behave as if only the threads held them; each thread's clones
        are closed when its ``fn`` returns or raises. If the group has already cancelled its
        threads, the new threads get clones that are already closed.

        Raises, having had no effect: ``ValueError`` if ``n`` is not a positive int;
        ``TypeError`` if ``fn`` is not callable or is a coroutine function, or an argument is
        not an endpoint (anything with ``clone()`` and ``close()``; pass other values with
        ``functools.partial``); ``ClosedResourceError`` if an endpoint is already closed.
        ``RuntimeError`` if the group is not open (not entered yet, or finished): the endpoints
        are closed then. If starting a thread fails (the system's thread limit), the error is
        raised, the threads already started go on as members of the group, and the originals
        are closed.
        """
        if type(n) is not int or n < 1:
            raise ValueError(f"n must be a positive int (the number of threads), got {n!r}")
        if not callable(fn):
            raise TypeError(f"start() needs a function to run in each thread, got {fn!r}")
        if _is_async(fn):
            raise TypeError(
                f"{fn!r} is a coroutine function: a thread would only create the coroutine; "
                "run it in a task (a task group), or give start() a plain function"
            )
        given: tuple[Any, ...] = endpoints
        for position, endpoint in enumerate(given, 1):
            if not (
                callable(getattr(endpoint, "clone", None))
                and callable(getattr(endpoint, "close", None))
            ):
                raise TypeError(
                    f"endpoint {position} given to start(), {endpoint!r}, is not an endpoint (it "
                    "needs clone() and close()); pass other values with functools.partial"
                )
        with self._lock:
            state = self._state
        if state in ("new", "finished"):
            _close_all(given)
            why = "enter it first: async with group" if state == "new" else "its block has ended"
            raise RuntimeError(
                f"start() on a thread group that is not open ({why}); the endpoints given to it "
                "are closed"
            )
        clones = _clone_each(given, n)  # n lists of clones, or ClosedResourceError
        base = name if name is not None else f"fearless: {_describe(fn)}"
        try:
            for index, own in enumerate(clones):
                member = _Member(base if n == 1 else f"{base} {index}", own)
                clones[index] = []  # the member has them now
                self._launch(fn, member)
        finally:
            for own in clones:  # the threads not started, if one failed to start
                _close_all(own)
            _close_all(given)

    def _launch(self, fn: Callable[..., object], member: _Member) -> None:
        thread = threading.Thread(target=self._run, args=(fn, member), name=member.name)
        thread.daemon = True
        member.thread = thread
        with self._lock:
            refused = self._state == "finished"  # a start from an outside thread lost the race
            if not refused:
                self._running += 1
                self._started += 1
                self._live[id(member)] = member
            cancelled = self._cancelled
        if refused:
            _close_all(member.clones)
            raise RuntimeError("start() on a thread group whose block has ended")
        if cancelled:
            _close_all(member.clones)  # a thread started into a cancelled group starts cancelled
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._started -= 1
            _close_all(member.clones)
            self._retire(member, joinable=False)
            raise

    # -- a thread's life ---------------------------------------------------------------------

    def _run(self, fn: Callable[..., object], member: _Member) -> None:
        """The thread: run ``fn``; record a failure (and cancel the group); close; retire."""
        try:
            try:
                fn(*member.clones)
            except BaseException as exc:
                with self._lock:
                    failed = not _normal_end(exc, self._cancelled)
                    if failed:
                        self._failures.append((f"thread {member.name!r}", exc))
                if failed:
                    self._cancel()
            self._close_recording(member.clones)
        finally:
            self._retire(member, joinable=True)  # whatever happened: the exit must hear of it

    def _retire(self, member: _Member, joinable: bool) -> None:
        """The member's thread is done with the group: the last one to go while the exit waits
        tells the exit so."""
        with self._lock:
            self._running -= 1
            del self._live[id(member)]
            if joinable and member.thread is not None:
                self._ended = [t for t in self._ended if t.is_alive()]
                self._ended.append(member.thread)
            last = self._running == 0 and self._state == "exiting"
            if last:
                self._state = "finished"
            done = self._done_tx
        if last and done is not None:
            done.send(None)

    # -- cancelling --------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel the group: close every endpoint it handed its threads, and cancel the block.

        Safe from any thread (from the group's own threads too), idempotent. Each thread blocked
        on one of its endpoints wakes with ``ClosedResourceError``, which is its normal way out;
        threads started later get closed clones. Cancellation: the block (``async with`` only)
        is cancelled at its next cancel point, and the exit absorbs that cancellation: it waits
        for the threads and raises nothing for it (a failure, if any, is still raised).
        """
        self._cancel()

    def _cancel(self) -> None:
        """Cancel the block's scope first, then close the threads' endpoints, on the event
        loop's thread: the block's tasks are cancelled before any of them can see a channel
        broken by the closing (an ``async with`` group; the blocking form only closes)."""
        with self._lock:
            if self._cancel_requested:
                return
            self._cancel_requested = True
        schedule = self._schedule
        if schedule is None or threading.get_ident() == self._loop_thread:
            self._cancel_here()
            return
        try:
            schedule(self._cancel_here)
        except RuntimeError:  # pragma: no cover - the loop has shut down: no block to cancel
            self._cancel_here()

    def _cancel_here(self) -> None:
        if not self._block_ended and self._scope is not None:
            self._scope.cancel()
        with self._lock:
            self._cancelled = True  # before any endpoint closes: see _normal_end
            clones = [c for m in self._live.values() for c in m.clones]
        self._close_recording(clones)

    def _close_recording(self, clones: list[Any]) -> None:
        """Close each clone; a custom endpoint whose ``close()`` raises is a failure, not lost."""
        for clone in clones:
            try:
                clone.close()
            except Exception as exc:
                with self._lock:
                    self._failures.append((f"closing {clone!r}", exc))

    # -- the block ---------------------------------------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            if self._state != "new":
                raise RuntimeError(
                    f"this thread group was already entered ({self._state}); a group serves one "
                    "block: make a new one with fearless.thread_group()"
                )
            self._state = "open"
        self._done_tx, self._done_rx = oneshot[None]()

    async def __aenter__(self) -> ThreadGroup:
        """Open the group; the block runs in a cancel scope of the group's own.

        Cancellation: not a cancel point (nothing here waits). ``RuntimeError`` if the group
        was already entered.
        """
        scope = CancelScope()
        self._enter()
        self._scope = scope
        self._schedule = _backend.current().scheduler()
        self._loop_thread = threading.get_ident()
        scope.__enter__()
        if self._cancel_requested:  # cancel() came before the block: the block starts cancelled
            scope.cancel()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Wait until every thread has ended, then raise the first failure, if any.

        Cancellation: if the block was cancelled or raised, or the task is cancelled while this
        waits, the group closes every endpoint it handed its threads and waits, shielded, until
        each thread has ended; then the cancellation (or the block's error, or a failure)
        propagates. A cancellation of the group's own (``cancel()``, a failing thread) ends
        here. A native asyncio ``task.cancel()`` that gets through the shield is held back
        until the threads have ended.
        """
        scope = self._scope
        assert scope is not None
        absorbed = scope.__exit__(exc_type, exc, tb)  # the group's own cancellation ends here
        self._block_ended = True
        error = None if absorbed else exc
        if error is not None:
            if not _backend.is_own_cancellation(error):
                self._block_failed(error)
            self._cancel()
        cancelled: BaseException | None = None
        self._all_ended = self._exiting()
        if error is None:
            try:
                await self._wait_done()
            except get_cancelled_exc_class() as exc_:
                cancelled = exc_
                self._cancel()
        # Every thread's last word is in, or the group has cancelled them: wait, shielded.
        cancelled = await _shielded(self._wait_done) or cancelled
        cancelled = await _shielded(self._join_off_loop) or cancelled
        self._outcome(error, cancelled)
        return error is None  # the group's own cancellation, absorbed, stops here

    def __enter__(self) -> ThreadGroup:
        """Open the group for synchronous code; ``EventLoopBlockingError`` on an event loop's
        thread (its exit blocks)."""
        try:
            _backend.check_blocking_allowed("thread_group")
        except EventLoopBlockingError:
            raise EventLoopBlockingError(
                "`with fearless.thread_group()` would block the event loop running in this "
                "thread while its exit waits for the threads; use `async with` here"
            ) from None
        self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Block until every thread has ended, then raise the first failure, if any. If the
        block raised, or a ``KeyboardInterrupt`` arrives while this waits, the threads'
        endpoints are closed first."""
        if exc is not None:
            self._block_failed(exc)
            self._cancel()
        interrupted: BaseException | None = None
        if not self._exiting():
            done = self._done_rx
            assert done is not None
            while True:
                try:
                    done.receive_blocking()
                    break
                except BaseException as exc_:  # KeyboardInterrupt: cancel, and go on waiting
                    interrupted = exc_
                    self._cancel()
        for thread in self._ending():
            thread.join()
        self._outcome(exc, interrupted)

    def _exiting(self) -> bool:
        """The exit begins: True if every thread has already ended (the group is finished)."""
        with self._lock:
            if self._running == 0:
                self._state = "finished"
                return True
            self._state = "exiting"
            return False

    async def _wait_done(self) -> None:
        """Wait for the last thread's word (once; a cancelled receive took nothing)."""
        if self._all_ended:
            return
        done = self._done_rx
        assert done is not None
        await done.receive()
        self._all_ended = True

    def _ending(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self._ended if t.is_alive()]

    async def _join_off_loop(self) -> None:
        """The threads have said their last word; they may still be returning. Join them from a
        worker thread, so that none outlives the block and the loop never blocks."""
        threads = self._ending()
        if threads:
            await anyio.to_thread.run_sync(_join_all, threads, limiter=CapacityLimiter(1))

    def _block_failed(self, error: BaseException) -> None:
        with self._lock:
            self._failures.append((_BLOCK, error))

    def _outcome(self, error: BaseException | None, cancelled: BaseException | None) -> None:
        """Raise what the exit raises (see Failures in the module docstring); returning lets
        ``error`` (the block's own exception, if any) propagate unchanged."""
        with self._lock:
            failures = list(self._failures)
            self._state = "finished"
        if self._done_rx is not None:
            self._done_rx.close()
        if isinstance(error, KeyboardInterrupt | SystemExit):
            _add_notes(error, [f for f in failures if f[1] is not error], first=None)
            return
        if isinstance(cancelled, KeyboardInterrupt | SystemExit):
            _add_notes(cancelled, failures, first=None)
            raise cancelled
        if failures:
            origin, first = failures[0]
            _add_notes(first, failures[1:], first=origin)
            if first is error:
                return
            context = first.__context__
            try:
                raise first
            finally:  # raising here would chain the block's exception in: keep the thread's own
                first.__context__ = context
        if cancelled is not None:
            raise cancelled

    # -- looking at it -----------------------------------------------------------------------

    @property
    def failures(self) -> tuple[BaseException, ...]:
        """Every failure recorded so far, first to last (the first is what the exit raises)."""
        with self._lock:
            return tuple(error for _, error in self._failures)

    def statistics(self) -> ThreadGroupStatistics:
        """A snapshot: threads started and running, failures, whether the group cancelled."""
        with self._lock:
            return ThreadGroupStatistics(
                started=self._started,
                running=self._running,
                failed=len(self._failures),
                cancelled=self._cancelled,
                state=self._state,
            )

    def __repr__(self) -> str:
        s = self.statistics()
        cancelled = ", cancelled" if s.cancelled else ""
        return (
            f"<ThreadGroup {s.state}{cancelled}: {s.running} running, {s.started} started, "
            f"{s.failed} failed>"
        )


# -- helpers ---------------------------------------------------------------------------------


def _normal_end(exc: BaseException, cancelled: bool) -> bool:
    """Whether a thread that raised ``exc`` ended the way a channel lets it (see Failures)."""
    if isinstance(exc, EndOfStream | BrokenResourceError):
        return True
    return cancelled and isinstance(exc, ClosedResourceError)


def _is_async(fn: object) -> bool:
    """A coroutine function, a partial of one, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _describe(fn: object) -> str:
    target = getattr(fn, "func", fn)
    return str(getattr(target, "__qualname__", None) or repr(target))


def _clone_each(endpoints: tuple[Any, ...], n: int) -> list[list[Any]]:
    """``n`` lists, each with one clone of every endpoint; nothing left open if one fails."""
    per_endpoint: list[list[Any]] = []
    try:
        for position, endpoint in enumerate(endpoints, 1):
            made: list[Any] = []
            per_endpoint.append(made)
            for _ in range(n):
                try:
                    made.append(endpoint.clone())
                except ClosedResourceError:
                    raise ClosedResourceError(
                        f"endpoint {position} given to start(), {endpoint!r}, is already closed: "
                        "a closed endpoint cannot be cloned for a thread (a group closes the "
                        "endpoints given to start(); pass a clone() to give one endpoint twice)"
                    ) from None
    except BaseException:
        for made in per_endpoint:
            _close_all(made)
        raise
    return [list(clones) for clones in zip(*per_endpoint, strict=True)] or [[] for _ in range(n)]


def _close_all(endpoints: Iterable[Any]) -> None:
    for endpoint in endpoints:
        endpoint.close()


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


async def _shielded(wait: Callable[[], Any]) -> BaseException | None:
    """Await ``wait()`` to the end whatever cancels the task meanwhile; return the cancellation
    that arrived, if any. The shield holds off cancel scopes; a native asyncio ``task.cancel()``
    gets through it, so it is held back by hand and returned."""
    cancelled: BaseException | None = None
    while True:
        try:
            with CancelScope(shield=True):
                await wait()
            return cancelled
        except get_cancelled_exc_class() as exc:
            cancelled = exc


def _add_notes(
    error: BaseException, others: list[tuple[str, BaseException]], first: str | None
) -> None:
    if first is not None and first != _BLOCK:
        error.add_note(f"{first}: the first failure in its thread group")
    for where, other in others:
        error.add_note(f"{where} failed too: {other!r}")
