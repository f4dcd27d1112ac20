"""``ShardedCounter``: a counter that many threads update without contending ("shard shared state").

Specification
    ``add(n)`` adds an ``int`` (``increment()`` adds 1), ``value()`` returns the total, and
    ``reset()`` makes the total 0 from now on. The counter starts at 0.

Design
    Each thread that adds gets its own shard, a tiny object with one ``int`` slot, found through a
    ``threading.local`` and registered once, under the counter's lock, in a list the counter keeps.
    A thread only ever writes its own shard, so ``add`` takes no lock: ``shard.value += n`` is a
    read-modify-write, but with a single writer no other write can fall between the read and the
    write, on GIL and free-threaded builds alike. ``value()`` sums the shards. A shard
    outlives its thread (the list keeps it after the ``threading.local`` drops it), so counts from
    threads that have finished still count; the cost is one small object per thread that ever added.

Reads concurrent with adds
    Reading a shard's slot while its owner writes it is safe on both builds: a slot holds a
    reference to an immutable ``int``, and CPython stores and loads that reference atomically (on
    free-threaded builds through atomic pointer operations with safe reference counting), so a
    reader sees the old or the new value, never a torn one. ``value()`` therefore sees each shard
    as it was at some instant during the call, not every shard at the same instant: while adds run
    concurrently the total is a snapshot that no single moment may have had exactly (with only
    non-negative adds, it lies between the totals at the start and at the end of the call). Once
    the writers stop, it is exact: no update is ever lost.

``reset()`` never writes a shard (which would race with its owner's ``+=``); it records the current
sum as a baseline that ``value()`` subtracts, so an add concurrent with a reset counts either before
or after it, never not at all.
"""

from __future__ import annotations

import threading
from typing import final

__all__ = ["ShardedCounter"]


def _check_int(n: object) -> int:
    """``n`` as a plain ``int``, or ``TypeError`` naming the bad value (``bool`` is refused)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"ShardedCounter.add needs an int, got {n!r}")
    return int(n)


@final
class _Shard:
    """One thread's part of the total. Written only by its thread; read by anyone."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


@final
class ShardedCounter:
    """An ``int`` counter for hot paths updated from many threads; reads sum per-thread shards.

    Thread-safe on GIL and free-threaded builds; adds never block and never lose an update. Reads
    cost one addition per thread that has ever added, so prefer it where adds far outnumber reads.
    """

    __slots__ = ("_base", "_local", "_lock", "_shards")

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()  # guards registration in _shards, and reset()
        self._shards: list[_Shard] = []  # every shard ever created, in creation order; only grows
        self._base = 0  # the sum of the shards at the last reset(); value() subtracts it

    def _register(self) -> _Shard:
        """Create, register and return the calling thread's shard (its first add)."""
        shard = _Shard()
        with self._lock:
            self._shards.append(shard)
        self._local.shard = shard
        return shard

    def add(self, n: int = 1) -> None:
        """Add ``n`` (any ``int``, negative too) to the total.

        Thread-safe and lock-free after a thread's first add: it writes only the calling thread's
        shard. ``bool`` and non-``int`` values raise ``TypeError`` naming the value.
        """
        if n.__class__ is not int:
            n = _check_int(n)
        try:
            shard: _Shard = self._local.shard
        except AttributeError:
            shard = self._register()
        shard.value += n

    def increment(self) -> None:
        """Add 1 to the total. Thread-safe and lock-free, like ``add``."""
        try:
            shard: _Shard = self._local.shard
        except AttributeError:
            shard = self._register()
        shard.value += 1

    def value(self) -> int:
        """The total: the sum of every thread's shard (finished threads' included) since ``reset``.

        Thread-safe. Concurrent with adds, each shard is read as it was at some instant during the
        call, not every shard at the same instant; once writers stop, the result is exact.
        """
        base = self._base  # read before the shards: a concurrent reset() only raises the baseline
        return sum(shard.value for shard in tuple(self._shards)) - base

    def reset(self) -> None:
        """Make the total 0 from now on, without writing any shard.

        Thread-safe: an add concurrent with the reset counts either before it or after it; no add
        is lost from the count after the reset that did not happen before it.
        """
        with self._lock:
            self._base = sum(shard.value for shard in tuple(self._shards))

    def __repr__(self) -> str:
        return f"ShardedCounter(value={self.value()})"
