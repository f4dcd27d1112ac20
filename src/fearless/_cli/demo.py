"""The demo: a fan-out/fan-in pipeline, a producer, four workers and one collector.

    python -m fearless demo [--backend asyncio|uvloop|trio] [--items N] [--workers W]

The producer sends jobs into a bounded channel; ``fan_out`` runs the workers over it, each
"fetching" a job (a short, random, simulated I/O wait) and hashing it; the collector gathers the
results, drawing progress while it runs and a summary at the end: how many jobs each worker did,
the channel's statistics, and a check that every job came back exactly once.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, TextIO

import anyio

import fearless

BACKENDS = ("asyncio", "uvloop", "trio")


@dataclass(frozen=True)
class Result:
    job: int
    worker: int
    digest: str


def backend_args(name: str) -> tuple[str, dict[str, Any]]:
    """anyio.run's backend and options for a backend named on the command line."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise SystemExit("uvloop is not installed: pip install 'fearless[uvloop]'") from None
        return "asyncio", {"loop_factory": uvloop.new_event_loop}
    if name not in BACKENDS:
        raise SystemExit(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name, {}


async def pipeline(items: int, workers: int, out: TextIO, seed: int) -> Counter[int]:
    jobs_tx, jobs_rx = fearless.channel[int](64)
    rng = random.Random(seed)
    worker_ids: dict[object, int] = {}
    done = 0
    started = time.perf_counter()

    async def produce() -> None:
        async with jobs_tx:
            for job in range(items):
                await jobs_tx.send(job)

    async def work(job: int) -> Result:
        worker = worker_ids.setdefault(anyio.get_current_task().id, len(worker_ids) + 1)
        await anyio.sleep(rng.random() / 2000)  # the simulated fetch: up to 0.5 ms of "I/O"
        digest = hashlib.sha256(job.to_bytes(8, "little") * 64).hexdigest()[:12]
        return Result(job, worker, digest)

    async def draw_progress() -> None:
        while True:
            bar(done)
            await anyio.sleep(0.1)

    def bar(n: int) -> None:
        width = 30
        filled = width * n // items if items else width
        rate = n / max(time.perf_counter() - started, 1e-9)
        out.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {n:>6}/{items} jobs"
                  f"  {rate:>9,.0f} jobs/s")  # fmt: skip
        out.flush()

    seen: Counter[int] = Counter()
    per_worker: Counter[int] = Counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        tg.start_soon(draw_progress)
        async with fearless.fan_out(jobs_rx, work, workers=workers) as results:
            async for result in results:
                seen[result.job] += 1
                per_worker[result.worker] += 1
                done += 1
            stats = results.statistics()
        tg.cancel_scope.cancel()  # stop drawing
    bar(done)
    elapsed = time.perf_counter() - started
    out.write("\n\n")
    out.write(f"  {done} jobs in {elapsed:.2f} s ({done / elapsed:,.0f} jobs/s)\n")
    for worker, count in sorted(per_worker.items()):
        out.write(f"  worker {worker}: {count} jobs\n")
    out.write(
        f"  results channel: peak {stats.peak_buffer_used}/{stats.max_buffer_size:g} buffered,"
        f" {stats.total_sent} sent, {stats.total_received} received\n"
    )
    lost = [job for job in range(items) if seen[job] == 0]
    doubled = [job for job, n in seen.items() if n > 1]
    verdict = "every job exactly once" if not lost and not doubled else "MISMATCH"
    out.write(f"  check: {verdict} (lost {len(lost)}, duplicated {len(doubled)})\n")
    return seen


def run(backend: str, items: int, workers: int, out: TextIO = sys.stdout, seed: int = 1) -> bool:
    """Run the demo on ``backend``; True if every job came back exactly once."""
    name, options = backend_args(backend)
    out.write(f"fearless demo: {items} jobs, 1 producer -> {workers} workers -> 1 collector, "
              f"on {backend}\n\n")  # fmt: skip
    seen = anyio.run(pipeline, items, workers, out, seed, backend=name, backend_options=options)
    return sorted(seen) == list(range(items)) and set(seen.values()) <= {1}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fearless demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="asyncio", choices=BACKENDS)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    if args.items < 0 or args.workers < 1:
        parser.error("--items must be >= 0 and --workers >= 1")
    return 0 if run(args.backend, args.items, args.workers) else 1
