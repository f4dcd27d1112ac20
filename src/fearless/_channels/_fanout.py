"""Fan-out: N worker tasks over one receiver, their results gathered into one channel.

Specification:

- ``async with fan_out(source, work, workers=4) as results:`` starts ``workers`` tasks. Each
  takes the next item from ``source`` and sends ``await work(item)`` to ``results``. An item goes
  to exactly one worker; results arrive in completion order, not input order.
- ``results`` ends once ``source`` has ended and every worker has sent its last result.
- Errors propagate: if ``work`` raises (anything, even ``ClosedResourceError``), the other
  workers and the body of the ``async with`` are cancelled, and the block raises an
  ``ExceptionGroup`` holding the error (anyio's task-group rule). Nothing is swallowed. The body
  runs inside that task group too, so an exception raised in the body also comes out wrapped in
  an ``ExceptionGroup``: catch with ``except*``.
- A cancellation exception raised by ``work`` when nothing cancelled its worker (on asyncio, a
  ``CancelledError`` from awaiting a future or task that someone else cancelled) is such an error
  too, not a cancellation: the task group would take it for one and end the block quietly, so it
  comes out of the block as a ``RuntimeError`` naming the item, caused by (``__cause__``) that
  ``CancelledError``. A worker's own cancellation (the block being left or cancelled) stays a
  cancellation.
- A source that is already closed raises ``ClosedResourceError`` when the block is entered.
- Leaving the block (normally, by ``break``, or by an exception) cancels workers still running
  and closes ``source`` and ``results``: ``fan_out`` owns them. An item a worker had taken but not
  finished is dropped with that worker's cancellation; to drain everything, consume ``results``
  to its end before leaving the block.
- Backpressure: ``results`` holds at most ``capacity`` items (default: one per worker); workers
  wait while it is full, so a slow consumer slows the workers, which slows ``source``.
"""

from __future__ import annotations

import reprlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream, get_cancelled_exc_class

from .._backend import is_own_cancellation
from ._base import Receiver, check_capacity
from ._channel import channel
from ._endpoints import ChannelReceiver, Sender

__all__ = ["fan_out"]

T = TypeVar("T")
R = TypeVar("R")


@asynccontextmanager
async def fan_out(
    source: Receiver[T],
    work: Callable[[T], Awaitable[R]],
    *,
    workers: int = 4,
    capacity: float | None = None,
) -> AsyncIterator[ChannelReceiver[R]]:
    """Run ``workers`` tasks applying ``work`` to items of ``source``; yield their results.

    The guide, ``docs/channels.md`` ("Fan-out"), says how results are ordered, errors, closing
    and backpressure. Cancellation: the
    whole block is one task group; cancelling it cancels every worker, and no result that a
    worker sent is lost from ``results`` while the block runs.
    """
    if type(workers) is not int or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    size = check_capacity(workers if capacity is None else capacity)
    if source._closed if isinstance(source, ChannelReceiver) else False:
        raise ClosedResourceError("fan_out() was given a closed source")
    tx, results = channel[R](size)

    async def worker(out: Sender[R]) -> None:
        with out:
            while True:
                try:
                    item = await source.receive()
                except (EndOfStream, ClosedResourceError):
                    return  # the source ended, or the block is closing it
                # Whatever work raises propagates: nothing is swallowed.
                try:
                    result = await work(item)
                except get_cancelled_exc_class() as exc:
                    if is_own_cancellation(exc):
                        raise
                    raise RuntimeError(
                        f"fan_out: work({reprlib.repr(item)}) raised {type(exc).__name__}, but "
                        "nothing cancelled its worker (it awaited something that was cancelled "
                        "elsewhere): a failure of work, not a cancellation"
                    ) from exc
                try:
                    await out.send(result)
                except BrokenResourceError:
                    return  # the consumer closed results: nobody wants more

    with source, results:
        async with anyio.create_task_group() as tg:
            with tx:
                for _ in range(workers):
                    tg.start_soon(worker, tx.clone())
            try:
                yield results
            finally:
                tg.cancel_scope.cancel()
