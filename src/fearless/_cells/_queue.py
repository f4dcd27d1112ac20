"""A bounded MPMC queue and a concurrent stack, neither ever blocking (crossbeam's ``ArrayQueue``).

Specification
    ``ArrayQueue[T](capacity)`` holds at most ``capacity`` items, first in, first out. ``push``
    raises ``anyio.WouldBlock`` when the queue is full (nothing is pushed), ``pop`` raises it when
    the queue is empty, and ``force_push`` always pushes, evicting the oldest item when full.
    ``capacity`` is a positive ``int``; ``0``, negatives, ``bool``, floats (``math.inf`` included)
    and other types raise ``ValueError`` naming the value.

    ``ConcurrentStack[T]()`` is unbounded, last in, first out: ``push``, ``pop`` and ``peek`` (both
    raise ``anyio.WouldBlock`` when empty) and ``len``.

Why ``WouldBlock`` and not ``IndexError``
    An empty queue is the case where a waiting operation would have to wait (anyio's
    ``*_nowait`` methods name it so): ``WouldBlock`` names that cause, and it is what the channels'
    ``send_nowait`` and ``receive_nowait`` raise, so a caller moving between a channel and these
    structures handles "not now" one way. The stack follows the queue so that both say "empty" the
    same way.

Thread safety (no reliance on the GIL: ``docs/design/concurrency.md``, "No reliance on the GIL")
    Every method is safe from any number of threads at once, on GIL and free-threaded builds, and
    every operation is linearizable: it takes effect at one instant between its call and return.
    A single operation on a builtin container (``deque.append``, ``deque.popleft``, ``list.pop``)
    is atomic on both builds, which is all the stack needs, so it takes no lock. The queue's
    ``push`` is check-then-act (is it full? then append) and ``force_push`` is evict-then-append,
    so each queue takes one ``threading.Lock``; ``pop`` takes it too, because a lock-free
    ``popleft`` could run between ``force_push``'s eviction and its append and find the queue
    empty although it never was. Reads of the length are single atomic operations and take no lock.
    No lock is held across anything but a few container operations, never across a call into user
    code, so nothing here can deadlock. These are never awaited, so cancellation does not apply.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar, final

from anyio import WouldBlock

__all__ = ["ArrayQueue", "ConcurrentStack"]

T = TypeVar("T")


def _check_capacity(capacity: object) -> int:
    """``capacity`` as an ``ArrayQueue`` capacity, or ``ValueError`` naming the bad value."""
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    return capacity


@final
class ArrayQueue(Generic[T]):
    """A bounded multi-producer multi-consumer FIFO queue that never blocks.

    ``ArrayQueue[int](8)`` gives a typed queue of at most 8 items. Safe from any thread; every
    method is one atomic step: ``push``, ``force_push`` and ``pop`` take the queue's lock; reading
    the length takes none.
    """

    __slots__ = ("_capacity", "_items", "_lock")

    def __init__(self, capacity: int) -> None:
        self._capacity: int = _check_capacity(capacity)
        # Invariant (under _lock): len(_items) <= _capacity; the oldest item is _items[0].
        self._items: deque[T] = deque()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """The most items the queue holds at once (fixed at construction)."""
        return self._capacity

    def push(self, item: T) -> None:
        """Append ``item`` at the back, or raise ``anyio.WouldBlock`` if the queue is full.

        When it raises, nothing was pushed. FIFO: items leave in the order their pushes took
        effect. Thread-safe: the fullness check and the append are one step under the lock.
        """
        with self._lock:
            if len(self._items) >= self._capacity:
                raise WouldBlock
            self._items.append(item)

    def force_push(self, item: T) -> tuple[()] | tuple[T]:
        """Append ``item`` at the back; if the queue was full, evict the oldest item and return it.

        Returns ``()`` when nothing was evicted and ``(evicted,)`` when the front item was: a tuple
        rather than ``None`` or a sentinel, because items may themselves be ``None`` (or any
        value), and an empty or one-item tuple says "nothing" and "this" without ambiguity while
        keeping the item's type (``if evicted := q.force_push(x): (old,) = evicted``).

        FIFO: the evicted item is the one ``pop`` would have returned next. Thread-safe: the
        eviction and the append are one step under the lock, so no other operation sees the
        queue in between.
        """
        with self._lock:
            items = self._items
            if len(items) >= self._capacity:
                evicted = items.popleft()
                items.append(item)
                return (evicted,)
            items.append(item)
            return ()

    def pop(self) -> T:
        """Remove and return the oldest item, or raise ``anyio.WouldBlock`` if the queue is empty.

        FIFO. Thread-safe: each item is returned by exactly one ``pop`` (or one ``force_push``
        eviction). It takes the lock so that it can never fall between ``force_push``'s two steps.
        """
        with self._lock:
            try:
                return self._items.popleft()
            except IndexError:
                raise WouldBlock from None

    def is_empty(self) -> bool:
        """Whether the queue holds no items at this instant (other threads may change it next)."""
        return not self._items

    def is_full(self) -> bool:
        """Whether the queue holds ``capacity`` items at this instant (it may change at once)."""
        return len(self._items) >= self._capacity

    def __len__(self) -> int:
        """How many items the queue holds at this instant (one atomic read, no lock)."""
        return len(self._items)


@final
class ConcurrentStack(Generic[T]):
    """An unbounded LIFO stack that many threads may use at once (a lock-free stack's interface).

    Each method is a single atomic operation on a builtin list, atomic on GIL and free-threaded
    builds alike, so the stack takes no lock and ``push`` never fails.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        # The top of the stack is _items[-1].
        self._items: list[T] = []

    def push(self, item: T) -> None:
        """Put ``item`` on top. LIFO; thread-safe (one atomic ``list.append``)."""
        self._items.append(item)

    def pop(self) -> T:
        """Remove and return the top item, or raise ``anyio.WouldBlock`` if the stack is empty.

        LIFO: the most recently pushed item still on the stack. Thread-safe: one atomic
        ``list.pop``, so each item is returned by exactly one ``pop``, and an empty stack is
        detected by that same operation (no check-then-act).
        """
        try:
            return self._items.pop()
        except IndexError:
            raise WouldBlock from None

    def peek(self) -> T:
        """Return the top item without removing it, or raise ``anyio.WouldBlock`` if empty.

        LIFO; thread-safe (one atomic read). Another thread may pop the item right after.
        """
        try:
            return self._items[-1]
        except IndexError:
            raise WouldBlock from None

    def __len__(self) -> int:
        """How many items the stack holds at this instant (one atomic read)."""
        return len(self._items)
