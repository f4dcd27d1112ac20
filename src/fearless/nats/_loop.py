"""Where the NATS client runs: the one module of ``fearless.nats`` that knows asyncio.

nats-py, the official client, is an asyncio library. A :class:`ClientLoop` runs its coroutines for
one connection:

- on asyncio (and uvloop, which is an asyncio loop), on the application's own loop, as tasks of
  their own: no thread, no hop;
- on trio, on a private asyncio loop in a daemon thread (the *client thread*), started with the
  connection and stopped with it. The trio task waits for the result on a ``fearless.oneshot``
  that the client thread fills, so it waits as any fearless receiver waits: cancellable, and woken
  through trio's token from the other thread.

What runs on the private loop runs in a fresh ``contextvars.Context``, not the trio task's that
scheduled it: a copied context would tell sniffio (and so anyio) that trio is running there.

Like ``fearless/_backend.py``, this module is allowed to import asyncio; nothing else in
``fearless.nats`` may (``tests/test_public_api.py`` checks it). What crosses the seam is a
coroutine function and its result.

Cancellation is the one decision :meth:`ClientLoop.call` exposes. A network operation that was
cancelled may already have happened on the server: a publish written to the socket is stored
whether or not anyone waits for its acknowledgement, and cancelling the coroutine cannot take it
back. ``call(..., settle=True)`` therefore does not cancel the coroutine: it waits, shielded, for
the coroutine's own outcome (bounded by the operation's own timeout). If it succeeded, its result
is returned (the caller's cancellation is delivered at its next cancel point, as anyio does for
an operation that completed before the cancellation reached it), so the caller knows the
operation happened; if it failed, the cancellation is raised and the operation did not happen.
``settle=False`` raises the cancellation at once and cancels the coroutine in the background;
``on_orphan`` is then called, on the client's loop, with a result that arrives anyway.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import anyio

from .. import _backend
from .._channels._oneshot import OneshotSender, oneshot
from .._exceptions import SendBrokenError

__all__ = ["ClientLoop", "barrier", "wait_done", "wait_done_all"]

T = TypeVar("T")

logger = logging.getLogger("fearless.nats")


class ClientLoop:
    """Runs nats-py coroutines for one connection; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread | None) -> None:
        self.loop = loop
        self._thread = thread
        # The thread the client's loop runs in: the caller's (asyncio) or the client thread (trio).
        self._loop_thread = threading.get_ident() if thread is None else None
        self.closed = False
        self._background: set[asyncio.Task[None]] = set()

    @property
    def private(self) -> bool:
        """Whether the client runs on a private loop in a thread of its own (trio)."""
        return self._thread is not None

    @classmethod
    def start(cls) -> ClientLoop:
        """The loop for a connection made from the running event loop."""
        if _backend.current().name == "asyncio":
            return cls(asyncio.get_running_loop(), None)
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:  # as asyncio.run ends: cancel what is left, and let it finish
                left = asyncio.all_tasks(loop)
                for task in left:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="fearless-nats-client", daemon=True)
        thread.start()
        ready.wait()
        client = cls(loop, thread)
        client._loop_thread = thread.ident
        return client

    def _here(self) -> bool:
        """Whether this thread runs the client's loop."""
        return threading.get_ident() == self._loop_thread

    async def call(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
        settle: bool = False,
        on_orphan: Callable[[T], object] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the client's loop; return its result or raise its error.

        Cancellation: with ``settle``, the coroutine runs to its end (the caller waits, shielded)
        and its result is returned if it succeeded, else the cancellation is raised. Without, the
        coroutine is cancelled, the cancellation is raised at once, and ``on_orphan(result)``
        runs on the client's loop if a result arrives anyway.
        """
        if kwargs:
            fn = partial(fn, **kwargs)
        if self._thread is None:
            return await self._call_here(fn, args, settle, on_orphan)
        return await self._call_across(fn, args, settle, on_orphan)

    async def _call_here(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        args: tuple[Any, ...],
        settle: bool,
        on_orphan: Callable[[T], object] | None,
    ) -> T:
        if not settle and on_orphan is None:
            return await fn(*args)
        task = self.loop.create_task(fn(*args))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not settle:
                task.cancel()
                task.add_done_callback(_orphan_callback(on_orphan))
                raise
            with anyio.CancelScope(shield=True):
                await asyncio.wait([task])
            if task.cancelled() or task.exception() is not None:
                raise
            return task.result()

    async def _call_across(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        args: tuple[Any, ...],
        settle: bool,
        on_orphan: Callable[[T], object] | None,
    ) -> T:
        tx, rx = oneshot[asyncio.Future[T]]()
        if self.closed:
            raise anyio.ClosedResourceError
        future: asyncio.Future[T] | None = None

        def begin() -> None:
            nonlocal future
            future = self.loop.create_task(fn(*args))
            future.add_done_callback(partial(_deliver, tx))

        self.loop.call_soon_threadsafe(begin, context=contextvars.Context())
        try:
            done = await rx.receive()
        except anyio.get_cancelled_exc_class():
            if not settle:

                def cancel() -> None:
                    assert future is not None  # begin() ran first: callbacks run in order
                    future.cancel()
                    future.add_done_callback(_orphan_callback(on_orphan))

                self.loop.call_soon_threadsafe(cancel, context=contextvars.Context())
                raise
            with anyio.CancelScope(shield=True):
                done = await rx.receive()
            if done.cancelled() or done.exception() is not None:
                raise
            return done.result()
        return done.result()

    def call_soon(self, fn: Callable[..., Coroutine[Any, Any, object]], *args: Any) -> None:
        """Start ``fn(*args)`` on the client's loop and do not wait for it (acknowledgements).

        A failure is logged, not raised: an acknowledgement that does not reach the server means
        the item is delivered again, which at-least-once delivery allows.
        """
        if self._here():
            self._start_background(fn, args)
        elif not self.closed:
            self.loop.call_soon_threadsafe(
                self._start_background, fn, args, context=contextvars.Context()
            )

    def _start_background(self, fn: Callable[..., Coroutine[Any, Any, object]], args: Any) -> None:
        task = self.loop.create_task(_logged(fn, args))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle_background(self, seconds: float) -> None:
        """Wait (on the client's loop) for what ``call_soon`` started, at most ``seconds``: the
        acknowledgements a closing node still owes the server."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=seconds)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the client's loop (for its own periodic work, such as heartbeats)."""
        await asyncio.sleep(seconds)

    def call_soon_sync(self, fn: Callable[[], object]) -> None:
        """Run the plain function ``fn`` on the client's loop (now, when that is this thread)."""
        if self._here():
            fn()
        elif not self.closed:
            self.loop.call_soon_threadsafe(fn, context=contextvars.Context())

    def call_blocking(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the client's loop and block this thread for its result (the
        thread calls of durable endpoints). ``EventLoopBlockingError`` on an event-loop thread."""
        _backend.check_blocking_allowed(getattr(fn, "__name__", "call"))
        if self.closed:
            raise anyio.ClosedResourceError
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result()  # a plain thread

    async def aclose(self) -> None:
        """Stop the private loop and join its thread (off the event loop); nothing on asyncio.

        Cancellation: the join is shielded; the loop is stopped whatever happens.
        """
        if self.closed:
            return
        self.closed = True
        thread = self._thread
        if thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join)


async def _logged(fn: Callable[..., Coroutine[Any, Any, object]], args: tuple[Any, ...]) -> None:
    try:
        await fn(*args)
    except Exception as exc:
        logger.debug("fearless.nats: %s failed: %r", getattr(fn, "__qualname__", fn), exc)


async def barrier(nc: Any) -> None:
    """Return once the server has the subscriptions made so far on ``nc`` (on the client's loop).

    A flush alone is not that barrier in nats-py: its PING can be written before a SUB still in
    the pending buffer. One yield lets the buffer go first; the PONG then proves the server read
    the SUB, so an item anyone publishes afterwards reaches the subscription.
    """
    await asyncio.sleep(0)
    await nc.flush()


async def wait_done_all(futures: list[asyncio.Future[Any]], seconds: float) -> None:
    """Wait until every future is done, at most ``seconds`` (on the client's loop)."""
    await asyncio.wait(futures, timeout=seconds)


async def wait_done(future: asyncio.Future[Any], seconds: float) -> None:
    """Wait until ``future`` is done, at most ``seconds`` (on the client's loop; no error on the
    timeout: the caller looks at what arrived)."""
    await asyncio.wait([future], timeout=seconds)


def _deliver(tx: OneshotSender[asyncio.Future[T]], future: asyncio.Future[T]) -> None:
    try:
        tx.send(future)
    except SendBrokenError:  # the caller was cancelled and left; on_orphan has the result
        pass


def _orphan_callback(on_orphan: Callable[[Any], object] | None) -> Callable[[Any], None]:
    def done(future: asyncio.Future[Any]) -> None:
        if on_orphan is not None and not future.cancelled() and future.exception() is None:
            on_orphan(future.result())

    return done
