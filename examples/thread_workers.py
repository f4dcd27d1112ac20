"""An ingest service: async request handlers feed blocking worker threads through channels.

    python -m examples.thread_workers [--backend asyncio|uvloop|trio] [--files N] [--hashers N]

Requests to ingest files arrive at async handler tasks, but the work they ask for blocks (reading
and hashing files, writing to sqlite), so plain OS threads do it. Every hand-off between the two
worlds is a bounded fearless channel::

                   paths          jobs (16)          rows (64)           results (8)
    walk thread ─────────► H handler ───────► N hasher ────────► 1 writer ──────────► collector
    iterate_in_thread      tasks:             threads:           thread: sqlite3,     task:
    (os.walk)              await send         iter_blocking      a transaction per    async for
                                              hashlib            batch

- The requests are simulated by walking a directory tree: ``os.walk`` blocks, so it runs in a
  thread of its own (``iterate_in_thread``) and the handlers ``async for`` over its paths.
- The threads run in a ``fearless.thread_group``: each hasher gets its own clones of the ``jobs``
  receiver (a job goes to exactly one hasher) and of the ``rows`` sender, and the group closes
  the originals. sqlite allows one writer at a time, so one thread owns the connection (the
  channel in front of it is its lock), stores what is ready in one transaction, and reports each
  committed batch on ``results``.
- Backpressure: every channel is bounded, so a slow disk holds back the writer, which holds back
  the hashers, which hold back the handlers, however big the tree.
- Shutdown is closing, in order: the walk ends, so the handlers end and ``run`` closes the ``jobs``
  sender; each hasher's ``iter_blocking()`` ends and the group closes its ``rows`` clone; after
  the last one the writer's loop ends and the group closes its ``results`` sender; the
  collector's ``async for`` ends. If anything fails (a thread, a task) or ``run`` is cancelled,
  the group cancels the tasks and closes every thread's endpoints, which releases each thread
  wherever it waits; its exit waits for them all and raises the first failure itself.
- Nothing is lost: the summary compares jobs submitted, rows reported and rows in the database.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import random
import sqlite3
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import astuple, dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
from anyio import EndOfStream, WouldBlock

import fearless

JOBS, ROWS, RESULTS = 16, 64, 8  # the channels' capacities (RESULTS in batches)
BATCH = 32  # the most rows the writer stores in one transaction


@dataclass(frozen=True)
class Hashed:
    path: str  # relative to the tree's top, with "/" separators
    size: int
    sha256: str
    hasher: str  # the name of the thread that hashed it


@dataclass
class Summary:
    submitted: int = 0  # jobs the handlers submitted
    collected: int = 0  # rows the writer reported stored
    rows: int = 0  # rows in the database once every thread has ended
    size: int = 0  # bytes hashed
    by_hasher: Counter[str] = field(default_factory=Counter)
    transactions: int = 0
    jobs_peak: int = 0  # the most jobs that were ever queued at once

    @property
    def complete(self) -> bool:
        return self.submitted == self.collected == self.rows

    def line(self) -> str:
        spread = "+".join(str(n) for _, n in sorted(self.by_hasher.items()))
        lost = f"{self.submitted - min(self.collected, self.rows)} LOST"
        return (
            f"ingested {self.rows} of {self.submitted} files ({self.size / 2**20:.1f} MiB), "
            f"hashed by {len(self.by_hasher)} threads ({spread}), stored in "
            f"{self.transactions} transactions: {'nothing lost' if self.complete else lost}; "
            f"jobs queue peaked at {self.jobs_peak}/{JOBS}"
        )


def make_tree(top: Path, files: int) -> None:
    """Write ``files`` files of random bytes (0 to 64 KiB) in nested directories under ``top``."""
    for i in range(files):
        rng = random.Random(i)
        path = top / f"d{i % 7}" / f"d{i % 3}" / f"file{i:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(64 * 1024)))


def walk(top: Path) -> Iterator[Path]:
    """Every file under ``top``. Blocking: ``os.walk`` lists directories as it goes."""
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            yield Path(dirpath, name)


def hash_files(
    top: Path, jobs: fearless.ChannelReceiver[Path], rows: fearless.Sender[Hashed]
) -> None:
    """A hasher thread: hash each job's file, until the ``jobs`` channel ends. (Its endpoints
    are clones of its own, which the thread group closes when it returns.)"""
    me = threading.current_thread().name
    for path in jobs.iter_blocking():
        with path.open("rb") as file:
            sha256 = hashlib.file_digest(file, "sha256").hexdigest()
            size = file.tell()  # file_digest read it to the end
        rows.send_blocking(Hashed(path.relative_to(top).as_posix(), size, sha256, me))


def store(
    db: Path, rows: fearless.ChannelReceiver[Hashed], results: fearless.Sender[list[Hashed]]
) -> None:
    """The writer thread, the only one using the database: store the rows that are ready (at
    least one, at most ``BATCH``) in one transaction, report them, until ``rows`` ends."""
    with closing(sqlite3.connect(db)) as db_conn:
        db_conn.execute("CREATE TABLE files (path TEXT, size INTEGER, sha256 TEXT, hasher TEXT)")
        for first in rows.iter_blocking():
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(rows.receive_nowait())
                except (WouldBlock, EndOfStream):  # nothing more ready now (or ever)
                    break
            with db_conn:  # commits, or rolls back and raises
                db_conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", map(astuple, batch))
            results.send_blocking(batch)


def count_rows(db: Path) -> int:
    with closing(sqlite3.connect(db)) as db_conn:
        return int(db_conn.execute("SELECT COUNT(*) FROM files").fetchone()[0])


async def handle_requests(
    paths: fearless.Receiver[Path], jobs: fearless.Sender[Path], summary: Summary
) -> None:
    """A request handler: submit each file it is asked to ingest as a job. ``send`` waits while
    the jobs channel is full: backpressure reaches the callers."""
    async for path in paths:
        await jobs.send(path)
        summary.submitted += 1


async def collect(results: fearless.Receiver[list[Hashed]], summary: Summary) -> None:
    async for batch in results:  # one committed transaction
        summary.transactions += 1
        for hashed in batch:
            summary.collected += 1
            summary.size += hashed.size
            summary.by_hasher[hashed.hasher] += 1


async def run(top: Path, db: Path, *, hashers: int = 4, handlers: int = 8) -> Summary:
    """Ingest every file under ``top`` into a new sqlite database ``db``; return the summary."""
    summary = Summary()
    jobs_tx, jobs_rx = fearless.channel[Path](JOBS)
    rows_tx, rows_rx = fearless.channel[Hashed](ROWS)
    results_tx, results_rx = fearless.channel[list[Hashed]](RESULTS)
    with jobs_tx, results_rx:
        async with fearless.thread_group() as threads, anyio.create_task_group() as tg:
            # Each thread gets clones of its own; the originals are closed here, so the rows
            # channel ends with the last hasher and the results channel with the writer.
            hash_here = functools.partial(hash_files, top)
            threads.start(hash_here, jobs_rx, rows_tx, n=hashers, name="ingest: hasher")
            threads.start(functools.partial(store, db), rows_rx, results_tx, name="ingest: writer")
            tg.start_soon(collect, results_rx, summary)
            async with (
                fearless.iterate_in_thread(walk, top) as paths,
                anyio.create_task_group() as requests,
            ):
                for _ in range(handlers):
                    requests.start_soon(handle_requests, paths, jobs_tx, summary)
            summary.jobs_peak = jobs_tx.statistics().peak_buffer_used
            jobs_tx.close()  # no more jobs: the hashers' iteration ends
    summary.rows = await anyio.to_thread.run_sync(count_rows, db)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Hash and store a tree of files with threads.")
    parser.add_argument("--backend", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    parser.add_argument("--files", type=int, default=500, help="files to make and ingest")
    parser.add_argument("--hashers", type=int, default=4, help="hasher threads")
    args = parser.parse_args(argv)
    backend, options = args.backend, {}
    if backend == "uvloop":
        import uvloop

        backend, options = "asyncio", {"loop_factory": uvloop.new_event_loop}
    with tempfile.TemporaryDirectory(prefix="fearless-ingest-") as tmp:
        top = Path(tmp, "files")
        make_tree(top, args.files)
        ingest = functools.partial(run, top, Path(tmp, "files.db"), hashers=args.hashers)
        summary = anyio.run(ingest, backend=backend, backend_options=options)
    print(summary.line())
    return 0 if summary.complete and summary.rows == args.files else 1


if __name__ == "__main__":
    sys.exit(main())
