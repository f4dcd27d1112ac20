"""The channel's endpoints: :class:`Sender` and :class:`ChannelReceiver`.

The specification is ``fearless._channels._channel``'s module docstring; the moves between buffer
and parked parties are ``_state.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self, TypeVar, cast

from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import ObjectSendStream

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import SendBrokenError, SendClosedError
from .._parking import BROKEN, CLOSED, ENDED, SENT, Signal, is_signal
from ._base import LoopBound, Receiver, iterate_blocking, warn_unclosed
from ._state import ChannelState, ChannelStatistics, ParkedReceive, ParkedSend, gave_back

__all__ = ["ChannelReceiver", "Sender"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class _Endpoint(LoopBound):
    """What a sender and a channel receiver share: the channel state, a budget, a closed flag."""

    __slots__ = ("_closed", "_state")
    _factory: str = "fearless.channel"  # named in the no-public-constructor error

    _state: ChannelState[Any]
    _closed: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(f"{type(self).__name__} has no public constructor; use {self._factory}()")

    @classmethod
    def _create(cls, state: ChannelState[Any]) -> Self:
        self = object.__new__(cls)
        self._state = state
        self._budget = 0  # the first async operation yields, and binds the endpoint to its loop
        self._closed = False
        self._home = None
        return self

    def statistics(self) -> ChannelStatistics:
        """A snapshot of the channel's state and counters."""
        return self._state.statistics()

    def __repr__(self) -> str:
        # Read without the lock (a repr may be asked for while this thread holds it, in a
        # debugger say): a moment's snapshot, possibly mid-change under other threads.
        state = self._state
        return (
            f"<{type(self).__name__} {'closed' if self._closed else 'open'}"
            f" capacity={state.capacity} buffered={len(state.buffer)}"
            f" senders={state.open_senders} receivers={state.open_receivers}"
            f" parked_senders={len(state.send_waiters)}"
            f" parked_receivers={len(state.recv_waiters)}>"
        )

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):  # (at interpreter exit, module globals may be gone)
            warn_unclosed(self)


class Sender(_Endpoint, ObjectSendStream[T_contra]):
    """The sending end of a channel. Created only by :func:`channel` (or ``clone()``).

    Safe to share between tasks, event loops and threads; ``clone()`` makes another independently
    closable sender. Every async method is a cancel point and is atomic under cancellation.
    """

    __slots__ = ()

    _state: ChannelState[T_contra]

    def _fail(self, items: tuple[Any, ...]) -> None:
        if self._closed:
            raise SendClosedError(items)
        raise SendBrokenError(items)

    def send_nowait(self, item: T_contra) -> None:
        """Send ``item`` without waiting, or raise ``WouldBlock`` (nothing sent).

        Hands the item to the longest-waiting receiver, else buffers it. Raises
        ``SendClosedError`` (a ``ClosedResourceError``) if this sender is closed and
        ``SendBrokenError`` (a ``BrokenResourceError``) if every receiver is; both carry the item.
        Safe from any thread; a receiver parked on an event loop is woken through that loop.
        """
        state = self._state
        lock = state.lock
        lock.acquire()  # (not ``with``: acquire and release are about twice as fast)
        try:
            self._put(item, None)
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)

    def _put(
        self, item: T_contra, park: Callable[[], _backend.Waiter] | None
    ) -> ParkedSend[Any] | None:
        """Under the lock: hand ``item`` to a parked receiver or buffer it; if it would have to
        wait, park it with a waiter made by ``park`` and return the entry (or raise
        ``WouldBlock``, if ``park`` is None). Raises the closed and broken errors first."""
        state = self._state
        if self._closed or not state.open_receivers:
            self._fail((item,))
        if state.offer(item):
            return None
        if park is None:
            raise WouldBlock
        entry = ParkedSend(park(), [item], self)
        state.send_waiters.append(entry)
        return entry

    async def send(self, item: T_contra) -> None:
        """Send ``item``, waiting while the channel is full (or, at capacity 0, for a receiver).

        Ordering: items from one sender arrive in the order sent; parked senders go in the order
        they parked. Closing: raises ``SendBrokenError`` if every receiver closes (before or while
        waiting) and ``SendClosedError`` if this sender is closed; the error carries the item.

        Cancellation: a cancel point. If cancelled, the item was not sent (it is not in the
        channel and no receiver has it). If the item was taken just as the cancellation arrived,
        the send returns normally and the cancellation is delivered at the next cancel point.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            buffer = state.buffer
            n = len(buffer)
            # _put(), inlined: the commonest case
            if (
                n < state.capacity
                and not state.recv_waiters
                and not self._closed
                and state.open_receivers
            ):
                buffer.append(item)
                state.total_sent += 1
                if n >= state.peak:
                    state.peak = n + 1
                return
            entry = self._put(item, backend.new_waiter)
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if entry is not None:
            await self._wait_sent(entry)

    async def send_many(self, items: Iterable[T_contra]) -> None:
        """Send every item in ``items``, in order, waiting for space as often as needed.

        The batch costs one scheduling decision (one cancel check, at most one yield), not one
        per item. Items go in one by one as space allows; receivers may see the first items
        before the last ones are sent, and items of other senders may interleave only where this
        batch had to wait.

        Cancellation: if cancelled while waiting, the items already sent stay sent, and they are
        exactly a prefix of ``items``; the rest were not sent. If nothing is waited for, the
        batch is sent whole or (cancelled at the start) not at all. Closing: as for
        :meth:`send`; the error's ``unsent`` holds the items not sent.
        """
        batch = list(items)
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        entry = None
        lock.acquire()
        try:
            if self._closed or not state.open_receivers:
                self._fail(tuple(batch))
            for i, item in enumerate(batch):
                if not state.offer(item):
                    entry = ParkedSend(backend.new_waiter(), batch[i:], self)
                    state.send_waiters.append(entry)
                    break
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if entry is not None:
            await self._wait_sent(entry)

    async def _wait_sent(self, entry: ParkedSend[Any]) -> None:
        state = self._state
        items = entry.items
        result = await entry.waiter.wait(
            lambda: state.unpark(state.send_waiters, entry),
            # Cancelled after going in: a lone item is withdrawn if still buffered; a batch has
            # delivered a prefix of its items (all of them), which send_many allows.
            lambda result: result is not SENT or len(items) > 1 or state.withdraw(entry),
        )
        self._budget = state.yield_every
        self._check_sent(result, entry)

    @staticmethod
    def _check_sent(result: object, entry: ParkedSend[Any]) -> None:
        if result is SENT:
            return
        unsent = tuple(entry.items[entry.pos :])
        if result is BROKEN:
            raise SendBrokenError(unsent)
        assert result is CLOSED, result
        raise SendClosedError(unsent)

    def send_blocking(self, item: T_contra, timeout: float | None = None) -> None:
        """Send ``item`` from a thread, blocking while the channel is full (backpressure).

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once instead of deadlocking it. A receiver parked on an
        event loop is woken through that loop.

        Timeout: after ``timeout`` seconds (``None``: no limit) it raises ``TimeoutError``, and
        the item was not sent. Ordering and closing: as for :meth:`send` (a blocked thread is
        released with ``SendBrokenError`` as soon as every receiver is closed, or when the event
        loop whose tasks held them shuts down).
        """
        wait = -1.0 if timeout is None else _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("send_blocking")
        state = self._state
        state.threads = True
        lock = state.lock
        lock.acquire()
        try:
            buffer = state.buffer
            n = len(buffer)
            # _put(), inlined: a thread feeding a channel comes here
            if (
                n < state.capacity
                and not state.recv_waiters
                and not self._closed
                and state.open_receivers
            ):
                buffer.append(item)
                state.total_sent += 1
                if n >= state.peak:
                    state.peak = n + 1
                return
            try:
                entry = self._put(item, None if wait == 0 else _backend.ThreadWaiter)
            except WouldBlock:
                raise TimeoutError("the send would have to wait; the item was not sent") from None
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if entry is None:
            return
        waiter = cast(_backend.ThreadWaiter, entry.waiter)
        result = waiter.wait_blocking(
            lambda: state.unpark(state.send_waiters, entry),
            lambda result: result is not SENT or state.withdraw(entry),
            wait,
        )
        self._check_sent(result, entry)

    def clone(self) -> Self:
        """Another sender on the same channel; the channel ends when every clone is closed."""
        state = self._state
        with state.lock:
            if self._closed:
                raise ClosedResourceError
            state.open_senders += 1
        return type(self)._create(state)

    def close(self) -> None:
        """Close this sender (idempotent). Its own parked sends fail with ``SendClosedError``.

        When the last sender clone closes, receivers drain the buffer and then see EndOfStream.
        """
        state = self._state
        with state.lock:
            if self._closed:
                return
            self._closed = True
            state.close_sender(self)
            woken = state.take_woken()
        if woken:
            state.wake(woken)

    async def aclose(self) -> None:
        """Close, then a cancel point. The sender is closed even if the call is cancelled."""
        self.close()
        await _backend.current().checkpoint()


def _item_or_raise(value: T | Signal) -> T:
    """What a parked receive was handed: the item, or the end it was woken for, raised."""
    if type(value) is Signal:
        if value is CLOSED:
            raise ClosedResourceError
        assert value is ENDED, value
        raise EndOfStream
    return value


class ChannelReceiver(_Endpoint, Receiver[T_co]):
    """The receiving end of a channel. Created only by :func:`channel` (or ``clone()``).

    Iterate with ``async for`` (in a task) or ``for item in receiver.iter_blocking()`` (in a
    thread); iteration ends at end of stream. Safe to share between tasks, event loops and
    threads. Every async method is a cancel point and is atomic under cancellation.
    """

    __slots__ = ()

    _state: ChannelState[T_co]

    def receive_nowait(self) -> T_co:
        """The next item, without waiting.

        Raises ``WouldBlock`` if there is none yet, ``EndOfStream`` if there never will be
        (every sender closed and the buffer drained), ``ClosedResourceError`` if this receiver
        is closed. At capacity 0 it takes the item of the longest-parked sender. Safe from any
        thread.
        """
        state = self._state
        lock = state.lock
        lock.acquire()
        try:
            taken = self._take(None)  # an item, or it raises
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        assert not isinstance(taken, ParkedReceive)
        return taken

    def _take(self, park: Callable[[], _backend.Waiter] | None) -> T_co | ParkedReceive:
        """Under the lock: the next item; or, if there is none yet, a waiter made by ``park``
        parked here, as the entry returned (``WouldBlock`` if ``park`` is None). Raises
        ``ClosedResourceError`` if this receiver is closed and ``EndOfStream`` if no item can
        ever come. (No item is a ``ParkedReceive``: the class is private.)"""
        state = self._state
        if self._closed:
            raise ClosedResourceError
        item = state.take()
        if type(item) is not Signal:
            return item
        if not state.open_senders:
            raise EndOfStream
        if park is None:
            raise WouldBlock
        entry = ParkedReceive(park(), self)
        state.recv_waiters.append(entry)
        return entry

    async def receive(self) -> T_co:
        """The next item, waiting until one arrives.

        Ordering: items arrive in the order they were sent; parked receivers are served in the
        order they parked. Closing: raises ``EndOfStream`` once every sender is closed and the
        buffer is drained, ``ClosedResourceError`` if this receiver is (or gets) closed.

        Cancellation: a cancel point. If cancelled, no item was taken; it stays in the channel for
        the next receiver. If an item was handed over just as the cancellation arrived, the item is
        returned and the cancellation is delivered at the next cancel point.
        """
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        lock.acquire()
        buffer = state.buffer
        if buffer and not state.send_waiters and not self._closed:  # _take(), inlined
            state.total_received += 1
            item = buffer.popleft()
            lock.release()
            return item
        lock.release()
        return await self._receive_or_wait(backend)

    async def __anext__(self) -> T_co:
        # receive(), inlined: iteration is the commonest way to consume a channel.
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        lock = state.lock
        lock.acquire()
        buffer = state.buffer
        if buffer and not state.send_waiters and not self._closed:
            state.total_received += 1
            item = buffer.popleft()
            lock.release()
            return item
        lock.release()
        try:
            return await self._receive_or_wait(backend)
        except EndOfStream:
            raise StopAsyncIteration from None

    async def _receive_or_wait(self, backend: _backend.Backend) -> T_co:
        """``receive`` past its fast path: take the next item, or park until one is handed over."""
        state = self._state
        with state.lock:
            taken = self._take(backend.new_waiter)
            woken = state.take_woken()
        if woken:
            state.wake(woken)
        if not isinstance(taken, ParkedReceive):
            return taken
        return await self._wait_item(taken)

    async def receive_many(self, max_items: int) -> list[T_co]:
        """Wait for at least one item, then return up to ``max_items`` of them, in order.

        The batch costs one scheduling decision, not one per item: after the (at most one) wait,
        it takes whatever is buffered, up to ``max_items``, without yielding.

        Closing: as :meth:`receive`; ``EndOfStream`` only when not even one item is left.
        Cancellation: if cancelled, nothing was taken. If the first item was handed over just as
        the cancellation arrived, the batch is returned and the cancellation delivered at the
        next cancel point.
        """
        if type(max_items) is not int or max_items < 1:
            raise ValueError(f"max_items must be a positive int, got {max_items!r}")
        backend = _enter()
        self._budget -= 1
        if self._budget <= 0 or backend.cancel_pending:
            await self._yield(backend)
        state = self._state
        with state.lock:
            first = self._take(backend.new_waiter)
            items = None if isinstance(first, ParkedReceive) else state.take_many(max_items, first)
            woken = state.take_woken()
        if woken:
            state.wake(woken)
        if items is not None:
            return items
        assert isinstance(first, ParkedReceive)
        handed = await self._wait_item(first)
        with state.lock:
            items = state.take_many(max_items, handed)
            woken = state.take_woken()
        if woken:
            state.wake(woken)
        return items

    async def _wait_item(self, entry: ParkedReceive) -> T_co:
        state = self._state
        item: T_co | Signal = await entry.waiter.wait(
            lambda: state.unpark(state.recv_waiters, entry),
            lambda handed: is_signal(handed) or gave_back(state, handed),
        )
        self._budget = state.yield_every
        return _item_or_raise(item)

    def receive_blocking(self, timeout: float | None = None) -> T_co:
        """The next item, blocking this thread until one arrives.

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once instead of deadlocking it. A sender parked on an event
        loop is woken through that loop when its item goes in.

        Timeout: after ``timeout`` seconds (``None``: no limit) it raises ``TimeoutError``, and
        nothing was taken. Ordering and closing: as for :meth:`receive` (a blocked thread sees
        ``EndOfStream`` as soon as every sender is closed, or when the event loop whose tasks
        held them shuts down).
        """
        wait = -1.0 if timeout is None else _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("receive_blocking")
        state = self._state
        state.threads = True
        lock = state.lock
        lock.acquire()
        buffer = state.buffer
        if buffer and not state.send_waiters and not self._closed:  # _take(), inlined
            state.total_received += 1
            item = buffer.popleft()
            lock.release()
            return item
        try:
            try:
                taken = self._take(None if wait == 0 else _backend.ThreadWaiter)
            except WouldBlock:
                raise TimeoutError("the channel is empty; nothing was taken") from None
            woken = state.take_woken()
        finally:
            lock.release()
        if woken:
            state.wake(woken)
        if not isinstance(taken, ParkedReceive):
            return taken
        entry = taken
        waiter = cast(_backend.ThreadWaiter, entry.waiter)
        handed: T_co | Signal = waiter.wait_blocking(
            lambda: state.unpark(state.recv_waiters, entry),
            lambda handed: is_signal(handed) or gave_back(state, handed),
            wait,
        )
        return _item_or_raise(handed)

    def iter_blocking(self, timeout: float | None = None) -> Iterator[T_co]:
        """Iterate in a thread: ``receive_blocking(timeout)`` until the end of the stream.

        Raises ``EventLoopBlockingError`` (on the first ``next``) on an event-loop thread, and
        ``TimeoutError`` if an item takes longer than ``timeout`` to arrive.
        """
        _backend.check_timeout(timeout)
        return iterate_blocking(self.receive_blocking, timeout)

    def clone(self) -> Self:
        """Another receiver on the same channel; each item goes to exactly one receiver."""
        state = self._state
        with state.lock:
            if self._closed:
                raise ClosedResourceError
            state.open_receivers += 1
        return type(self)._create(state)

    def close(self) -> None:
        """Close this receiver (idempotent). Its own parked receives fail with ClosedResourceError.

        When the last receiver clone closes, buffered items are discarded and senders (parked or
        future) get ``SendBrokenError``.
        """
        state = self._state
        with state.lock:
            if self._closed:
                return
            self._closed = True
            state.close_receiver(self)
            woken = state.take_woken()
        if woken:
            state.wake(woken)
