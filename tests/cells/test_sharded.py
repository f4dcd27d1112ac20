"""``ShardedCounter``: units, exact totals under 8 threads, and the lost ``+= 1`` it avoids.

The thread tests run on the default interpreter and on free-threaded CPython 3.13t, where
nothing may rely on the GIL.
"""

from __future__ import annotations

import sysconfig
import threading
from collections.abc import Callable
from typing import Any

import pytest

from fearless._cells._sharded import ShardedCounter

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
DEADLINE = 30.0  # seconds a thread may take before the test calls it a deadlock
THREADS = 8


def _run_together(target: Callable[[], None], n: int = THREADS) -> None:
    """Run ``target`` in ``n`` threads released at once; join each with a deadline."""
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            target()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive(), "a thread is still running: deadlock"
    if errors:
        raise errors[0]


def test_a_new_counter_is_zero() -> None:
    assert ShardedCounter().value() == 0


def test_add_and_increment_sum_up() -> None:
    c = ShardedCounter()
    c.increment()
    c.add()
    c.add(5)
    c.add(-2)
    assert c.value() == 5


@pytest.mark.parametrize("bad", [True, 1.5, "1", None])
def test_add_refuses_a_non_int_naming_it(bad: Any) -> None:
    c = ShardedCounter()
    with pytest.raises(TypeError, match=f"got {bad!r}"):
        c.add(bad)
    assert c.value() == 0


def test_add_takes_an_int_subclass_as_a_plain_int() -> None:
    class Count(int):
        pass

    c = ShardedCounter()
    c.add(Count(3))
    c.increment()
    assert c.value() == 4
    assert type(c.value()) is int


def test_reset_makes_the_total_zero_and_counting_goes_on() -> None:
    c = ShardedCounter()
    c.add(10)
    c.reset()
    assert c.value() == 0
    c.add(3)
    assert c.value() == 3


def test_repr_shows_the_value() -> None:
    c = ShardedCounter()
    c.add(7)
    assert repr(c) == "ShardedCounter(value=7)"


def test_shards_of_finished_threads_still_count() -> None:
    """A thread's adds count after the thread has ended and its ``threading.local`` is gone."""
    c = ShardedCounter()
    for n in (1, 2, 3):
        t = threading.Thread(target=c.add, args=(n,))
        t.start()
        t.join(DEADLINE)
    c.increment()
    assert c.value() == 7


def test_8_threads_of_100k_increments_give_the_exact_total() -> None:
    """No update is lost: 8 threads x 100k increments (half through ``add``) total 800k."""
    c = ShardedCounter()
    per_thread = 100_000

    def work() -> None:
        inc, add = c.increment, c.add
        for _ in range(per_thread // 2):
            inc()
            add(1)

    _run_together(work)
    assert c.value() == THREADS * per_thread


def test_reset_concurrent_with_adds_loses_none_of_the_later_adds() -> None:
    """Adds made after a ``reset`` returns are all counted, even with resets racing the adders."""
    c = ShardedCounter()
    stop = threading.Event()

    def adder() -> None:
        while not stop.is_set():
            c.increment()

    workers = [threading.Thread(target=adder, daemon=True) for _ in range(3)]
    for t in workers:
        t.start()
    for _ in range(50):
        c.reset()
    stop.set()
    for t in workers:
        t.join(DEADLINE)
    c.reset()
    assert c.value() == 0
    _run_together(lambda: c.add(2))
    assert c.value() == 2 * THREADS


@pytest.mark.skipif(not FREE_THREADED, reason="only a free-threaded build loses plain += updates")
def test_plain_increment_loses_updates_without_the_gil_and_sharded_counter_does_not() -> None:
    """On 3.13t, ``obj.x += 1`` from 8 threads loses updates (in at least one of a few rounds);
    ``ShardedCounter`` under the same load never does."""

    class Plain:
        x = 0

    per_thread = 20_000
    rounds_lost = 0
    for _ in range(5):
        plain = Plain()
        counter = ShardedCounter()

        def work(plain: Plain = plain, counter: ShardedCounter = counter) -> None:
            for _ in range(per_thread):
                plain.x += 1
                counter.increment()

        _run_together(work)
        assert counter.value() == THREADS * per_thread
        if plain.x < THREADS * per_thread:
            rounds_lost += 1
    assert rounds_lost >= 1, "a plain += 1 lost no update in 5 rounds of 8 threads"
