"""``iterate_in_thread``: a blocking iterable, produced in a thread, consumed by tasks.

Specification (``docs/threads.md`` is the user guide):

- ``async with iterate_in_thread(fn, *args, capacity=N) as items`` starts one dedicated OS thread
  that calls ``fn(*args)`` and iterates the result, sending each item into a channel of capacity
  ``N`` with ``send_blocking``: the thread waits while the channel is full (backpressure).
  ``items`` is the channel's receiver; ``async for item in items`` ends when the iterable is
  exhausted.
- Stopping: when the block exits (normally, by an error, or by cancellation), or the receiver is
  closed earlier, the thread's next send fails, the iterable is closed (a generator's ``finally``
  and ``with`` blocks run, in the thread) and the thread ends. The block's exit waits for that,
  shielded from cancellation, so no thread outlives the block. A thread blocked elsewhere (in a
  socket read, say) delays the exit until that call returns and it tries to send.
- Errors: if ``fn`` or the iteration raises, the receiver sees the end of the stream after the
  items sent before the error, and the exception is raised from the block's exit. If the block
  itself raised, that exception propagates with a note naming the thread's error.
- The event loop's thread is never blocked: every wait is a channel operation or a park on the
  thread's completion.
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple, Unpack

from anyio import CancelScope, get_cancelled_exc_class

from .._exceptions import SendBrokenError, SendClosedError
from ._base import check_capacity
from ._channel import channel
from ._endpoints import ChannelReceiver

__all__ = ["iterate_in_thread"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@asynccontextmanager
async def iterate_in_thread(
    fn: Callable[[Unpack[Ts]], Iterable[T]], /, *args: *Ts, capacity: float = 64
) -> AsyncIterator[ChannelReceiver[T]]:
    """Run ``fn(*args)`` in a new thread and receive what it yields, with backpressure.

    (For keyword arguments, pass a ``functools.partial``.)

    Ordering: items arrive in the order the iterable yields them. Closing: the stream ends when
    the iterable is exhausted; leaving the block (or closing the receiver) stops the thread at its
    next item and closes the iterable. Cancellation: leaving the block by cancellation stops the
    thread the same way; the exit waits, shielded, until the thread has ended. Errors raised in
    the thread are re-raised from the block's exit, after the receiver has seen the end of the
    stream (if the block itself raised, that exception propagates with a note naming the
    thread's error).
    """
    capacity = check_capacity(capacity)
    if capacity == math.inf:
        raise ValueError("iterate_in_thread needs a bounded capacity: it is there for backpressure")
    tx, rx = channel[T](capacity)
    done_tx, done_rx = channel[BaseException | None](1)
    name = getattr(fn, "__qualname__", repr(fn))

    def produce() -> None:
        error: BaseException | None = None
        iterator: Any = None
        try:
            with tx:
                iterator = iter(fn(*args))
                for item in iterator:
                    try:
                        tx.send_blocking(item)
                    except (SendBrokenError, SendClosedError):
                        break  # the receiver was closed: stop quietly
        except BaseException as exc:
            error = exc
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()  # a generator runs its finally blocks here, in this thread
                except BaseException as exc:
                    error = error or exc
            with done_tx:
                done_tx.send_nowait(error)

    thread = threading.Thread(target=produce, name=f"fearless: {name}", daemon=True)
    with done_rx:
        thread.start()
        try:
            with rx:
                yield rx
        except BaseException as exc:
            error = await _ended(thread, done_rx)
            if error is not None:
                exc.add_note(f"and the thread running {name} failed: {error!r}")
            raise
        error = await _ended(thread, done_rx)
    if error is not None:
        raise error


async def _ended(thread: threading.Thread, done: ChannelReceiver[BaseException | None]) -> Any:
    """Wait for the thread's last word, then for its end, whatever cancels the task meanwhile.

    The shield holds off cancel scopes; a native asyncio ``task.cancel()`` gets through it, so it
    is held back by hand until the thread has ended, and re-raised then.
    """
    cancelled: BaseException | None = None
    while True:
        try:
            with CancelScope(shield=True):
                error = await done.receive()
            break
        except get_cancelled_exc_class() as exc:
            cancelled = exc
    # The thread has sent its last word and only has to return: joining blocks this loop for
    # no more than that, and afterwards no thread of this block is left running.
    thread.join()
    if cancelled is not None:
        if error is not None:
            cancelled.add_note(f"and the thread failed: {error!r}")
        raise cancelled
    return error
