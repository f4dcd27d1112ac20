"""Statistics updated from OS threads and watched by an async task, through fearless cells.

``workers`` OS threads each process ``ops`` values (a fixed sequence, so the expected results are
known in advance); a value divisible by ``REJECT`` is rejected. Each thread updates:

- ``ops`` (``AtomicInt.increment``): operations done, accepted or rejected; the watched count.
- ``total`` (``ShardedCounter``): the sum of the accepted values, the hottest counter: each thread
  adds to its own shard, with no lock after its first add.
- ``maximum`` (``AtomicInt.fetch_max``): the largest accepted value.
- ``last_errors`` (``Guarded[dict]``): worker name -> its last rejection, by ``update(fn)``.
- ``active`` (``AtomicBool``): true until the last worker ends (``running`` counts them down).

On the event loop a watcher task prints progress from ``async for n in ops.changes()`` (it may skip
counts, never the latest) until it has seen every operation, while ``run`` awaits
``active.wait_until(lambda a: not a)``. The threads run in a ``fearless.thread_group``, whose exit
joins them; if one fails, the group cancels the watcher and raises that error. The summary
compares what the cells hold with what the workers were given.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from dataclasses import dataclass

import anyio

import fearless

REJECT = 97  # a value divisible by this is rejected


def value_of(worker: int, i: int) -> int:
    """The ``i``-th value worker ``worker`` processes: 0 to 999, spread out."""
    return (worker * 7919 + i * 104729) % 1000


@dataclass(frozen=True)
class Tally:
    ops: int
    total: int
    maximum: int
    last_errors: dict[str, str]  # worker thread name -> its last rejection

    @classmethod
    def expected(cls, workers: int, ops: int) -> Tally:
        """What the cells must hold once ``workers`` threads have done ``ops`` each."""
        values = [(w, i, value_of(w, i)) for w in range(workers) for i in range(ops)]
        accepted = [v for _, _, v in values if v % REJECT]
        errors = {
            f"counter: worker {w}": f"op {i}: rejected {v}" for w, i, v in values if not v % REJECT
        }
        return cls(len(values), sum(accepted), max(accepted, default=0), errors)


class Stats:
    """The shared statistics; one per run (nothing global survives it)."""

    def __init__(self, workers: int) -> None:
        self.ops = fearless.AtomicInt()
        self.total = fearless.ShardedCounter()
        self.maximum = fearless.AtomicInt()
        self.last_errors = fearless.Guarded[dict[str, str]]({})
        self.active = fearless.AtomicBool(workers > 0)
        self.running = fearless.AtomicInt(workers)  # workers not yet ended


@dataclass
class Summary:
    counted: Tally
    expected: Tally
    active: bool  # the flag once every worker has ended
    seen: list[int]  # the counts the watcher saw, in order

    def line(self) -> str:
        c = self.counted
        lost = "nothing lost" if c == self.expected else f"MISMATCH, expected {self.expected}"
        return (
            f"counted {c.ops} of {self.expected.ops} operations: total {c.total}, "
            f"max {c.maximum}, {len(c.last_errors)} workers with a last error, "
            f"watcher saw {len(self.seen)} counts: {lost}"
        )


def with_entry(key: str, value: str, entries: dict[str, str]) -> dict[str, str]:
    return {**entries, key: value}


def work(stats: Stats, worker: int, ops: int) -> None:
    """A worker thread: process its ``ops`` values, updating the statistics."""
    me = threading.current_thread().name
    try:
        for i in range(ops):
            value = value_of(worker, i)
            if value % REJECT:
                stats.total.add(value)
                stats.maximum.fetch_max(value)
            else:
                error = f"op {i}: rejected {value}"
                stats.last_errors.update(functools.partial(with_entry, me, error))
            stats.ops.increment()
    finally:
        if stats.running.decrement() == 0:
            stats.active.store(False)


async def watch(ops: fearless.AtomicInt, target: int, seen: list[int]) -> None:
    """Print progress (about every tenth of ``target``) until the count reaches ``target``."""
    step = max(1, target // 10)
    async for n in ops.changes():
        if not seen or n // step > seen[-1] // step:
            print(f"progress: {n}/{target} operations", flush=True)
        seen.append(n)
        if n >= target:
            return


async def run(workers: int = 4, ops: int = 20_000) -> Summary:
    """Run ``workers`` threads doing ``ops`` operations each; return the summary."""
    stats = Stats(workers)
    seen: list[int] = []
    async with fearless.thread_group() as threads, anyio.create_task_group() as tg:
        for w in range(workers):
            threads.start(functools.partial(work, stats, w, ops), name=f"counter: worker {w}")
        tg.start_soon(watch, stats.ops, workers * ops, seen)
        await stats.active.wait_until(lambda active: not active)
    last_errors = stats.last_errors.read(dict)
    counted = Tally(stats.ops.load(), stats.total.value(), stats.maximum.load(), last_errors)
    return Summary(counted, Tally.expected(workers, ops), stats.active.load(), seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Count from threads, watch from async code.")
    parser.add_argument("--backend", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    parser.add_argument("--workers", type=int, default=4, help="worker threads")
    parser.add_argument("--ops", type=int, default=20_000, help="operations per worker")
    args = parser.parse_args(argv)
    backend, options = args.backend, {}
    if backend == "uvloop":
        import uvloop

        backend, options = "asyncio", {"loop_factory": uvloop.new_event_loop}
    count = functools.partial(run, args.workers, args.ops)
    summary = anyio.run(count, backend=backend, backend_options=options)
    print(summary.line())
    return 0 if summary.counted == summary.expected and not summary.active else 1


if __name__ == "__main__":
    sys.exit(main())
