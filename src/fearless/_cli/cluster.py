"""The demo's cluster part: worker processes over NATS that share a durable channel and serve an
actor pool, one of them killed.

It starts an embedded nats-server (``fearless.nats.NatsServer``: nothing to install beyond the
``nats`` extra), opens the durable channel ``jobs`` and the distributed counter ``done`` of the
system ``demo``, and starts three worker *processes* on the demo's backend (``python -m
fearless._cli.cluster worker URL SYSTEM BACKEND``). Each worker takes jobs, does them (prints
them), increments ``done``, and acknowledges each job after that. Each also publishes a
``Pricer`` actor as a member of the pool ``pricing``: a quote asked of the pool goes to one of
the three members, which answers with its process id.

The demo prints the system's cluster snapshot (every publication, its node, whether it is up),
sends the jobs, and keeps asking the pool for quotes, a few asks at a time, each retried once if
it fails. Once the cluster has done a fifth of the jobs and the pool has answered
``ASKS_BEFORE_KILL`` asks, the first worker is killed with SIGKILL, mid-stream. The others finish
the jobs: every job is done at least once, and a job done twice is one the killed worker did and
never acknowledged. The counter, awaited with ``wait_until``, shows the cluster's progress from
the demo's own process. The pool goes on answering from the two members left (an ask in flight
to the killed one times out and is answered on its retry) until the registry reports the killed
worker's node down; the snapshot is printed again, and a check ends each half.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream

import fearless

if TYPE_CHECKING:
    from fearless.nats import ClusterSnapshot, Node, RemoteRef

SYSTEM = "demo"
POOL = "pricing"
ASKERS = 4  # asks to the pool in flight at once
ASK_TIMEOUT = 2.0  # seconds; an ask in flight to the killed member gets no answer
ASK_PAUSE = 0.025  # seconds between one asker's asks: a steady stream, not a flood
ASKS_BEFORE_KILL = 30  # so that every member has answered some before one is killed


@dataclass(frozen=True)
class Priced:
    item: int
    cents: int
    member: int
    """The process id of the pool member that answered."""


@dataclass(frozen=True)
class Quote(fearless.Request[Priced]):
    """Ask for the price of ``item``."""

    item: int


def price(item: int) -> int:
    return 100 + item * 37 % 900


class Pricer(fearless.Actor[Quote]):
    """One member of the pool ``pricing``: a quote, and which process gave it."""

    async def handle(self, message: Quote) -> Priced:
        await anyio.sleep(0.002)  # the work
        return Priced(message.item, price(message.item), os.getpid())


async def worker(url: str, system: str) -> None:
    """One worker process: a member of the pool ``pricing`` while it lives; jobs in, ``did N``
    lines out, until the channel ends; then it serves the pool until the demo is done."""
    import fearless.nats

    async with (
        fearless.nats.connect(url, system=system) as node,
        fearless.ActorSystem() as actors,
    ):
        pricer = await actors.spawn(Pricer, name=POOL)
        async with node.publish(pricer, POOL, Quote, pool=True):
            jobs = await node.open_receiver("jobs", int, prefetch=4)
            done = await node.int_cell("done")
            closing = await node.cell("closing", bool, False)
            print("ready", flush=True)
            while True:
                try:
                    delivery = await jobs.receive_delivery()
                except anyio.EndOfStream:
                    break
                async with delivery as job:  # acknowledged when the block ends without an error
                    await anyio.sleep(0.002)  # the work
                    print(f"did {job}", flush=True)
                    await done.increment()
            print("finished", flush=True)
            await closing.wait_until(lambda value: value)


class _Worker:
    def __init__(self, number: int, process: anyio.abc.Process) -> None:
        self.number = number
        self.process = process
        self.pid = process.pid
        self.did: list[int] = []
        self.ready = anyio.Event()
        self.finished = anyio.Event()  # its jobs: the channel ended
        self.exited = anyio.Event()

    async def read(self) -> None:
        assert self.process.stdout is not None
        buffered = ""
        async for chunk in TextReceiveStream(self.process.stdout):
            *lines, buffered = (buffered + chunk).split("\n")
            for line in lines:
                if line == "ready":
                    self.ready.set()
                elif line.startswith("did "):
                    self.did.append(int(line[4:]))
                elif line == "finished":
                    self.finished.set()
        self.exited.set()


class _Asks:
    """The demo's stream of asks to the pool: ``ASKERS`` at a time until stopped; a failed ask
    (``ActorStopped``, ``TimeoutError``, ``RemoteError``) is retried once."""

    def __init__(self, pool: RemoteRef[Quote]) -> None:
        self.pool = pool
        self.items = itertools.count()
        self.asked = 0
        self.answered = fearless.AtomicInt(0)
        self.retried = 0  # answered on the retry
        self.lost = 0  # failed twice
        self.wrong = 0  # an answer for another item, or another price
        self.first_failures: Counter[str] = Counter()
        self.before: Counter[int] = Counter()  # pid -> answers to the asks sent before the kill
        self.after: Counter[int] = Counter()  # pid -> answers to the asks sent after it
        self.killed = False
        self.stopping = False

    async def asker(self) -> None:
        from fearless.nats import RemoteError

        while not self.stopping:
            item = next(self.items)
            after_kill = self.killed
            self.asked += 1
            answer: Priced | None = None
            for attempt in range(2):
                try:
                    answer = await self.pool.ask(Quote(item), timeout=ASK_TIMEOUT)
                    break
                except (fearless.ActorStopped, TimeoutError, RemoteError) as exc:
                    if attempt == 0:
                        self.first_failures[type(exc).__name__] += 1
            if answer is None:
                self.lost += 1
            elif answer.item != item or answer.cents != price(item):
                self.wrong += 1
            else:
                self.answered.increment()
                self.retried += attempt
                (self.after if after_kill else self.before)[answer.member] += 1
            await anyio.sleep(ASK_PAUSE)


async def reported_down(node: Node, pid: int) -> ClusterSnapshot | None:
    """The cluster snapshot once the registry has the publications of the process ``pid`` as
    down (a node's id is ``<pid>-<random>``); None if it did not within the documented bound."""
    from fearless.nats import REPORTED_WITHIN

    with anyio.move_on_after(REPORTED_WITHIN + 5):
        while True:
            snapshot = await node.cluster_snapshot()
            its = [entry for entry in snapshot.actors if entry.node.startswith(f"{pid}-")]
            if not any(entry.alive for entry in its):
                return snapshot
            await anyio.sleep(0.25)  # the registry's own poll is 0.5 s
    return None


def indented(snapshot: ClusterSnapshot) -> str:
    return "".join(f"  {line}\n" for line in str(snapshot).splitlines())


async def cluster(jobs: int, backend: str, out: TextIO) -> bool:
    """Run the cluster part; True if every check passed."""
    import fearless.nats

    async with fearless.nats.connect(system=SYSTEM) as node:
        server = node.server
        assert server is not None
        out.write(f"an embedded nats-server with JetStream at {server.url}\n")
        tx, rx = await node.open_channel("jobs", int, ack_wait=1.0)
        await rx.aclose()  # this process only sends
        done = await node.int_cell("done")
        closing = await node.cell("closing", bool, False)
        asks = _Asks(node.actor(POOL, Quote))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable, "-m", "fearless._cli.cluster", "worker", server.url, SYSTEM, backend
        ]  # fmt: skip
        async with anyio.create_task_group() as tg:
            workers = []
            for number in range(1, 4):
                process = await anyio.open_process(command, env=env, stderr=None)
                one = _Worker(number, process)
                tg.start_soon(one.read)
                workers.append(one)
            with anyio.fail_after(60):
                for one in workers:
                    await one.ready.wait()
            pids = ", ".join(str(one.pid) for one in workers)
            out.write(f"3 worker processes (pids {pids}) share the durable channel 'jobs' and "
                      f"serve the actor pool '{POOL}'\n")  # fmt: skip
            cluster_before = await node.cluster_snapshot()
            out.write(f"the cluster, before:\n{indented(cluster_before)}")
            await tx.send_many(range(jobs))
            await tx.end()
            out.write(f"{jobs} jobs sent; meanwhile the demo asks '{POOL}' for quotes, "
                      f"{ASKERS} asks at a time\n")  # fmt: skip

            async def progress() -> None:
                """A bar at every tenth of the jobs, from the cluster-wide counter's watch."""
                shown = 0
                async for count in done.changes():
                    tenth = min(count * 10 // jobs, 10)
                    if tenth > shown:
                        shown = tenth
                        out.write(f"  [{'#' * tenth}{'.' * (10 - tenth)}] {count}/{jobs} done\n")
                    if count >= jobs:
                        return

            tg.start_soon(progress)
            victim = workers[0]
            async with anyio.create_task_group() as asking:
                for _ in range(ASKERS):
                    asking.start_soon(asks.asker)
                with anyio.fail_after(60):
                    await done.wait_until(lambda count: count >= jobs // 5)
                    await asks.answered.wait_until(lambda count: count >= ASKS_BEFORE_KILL)
                victim.process.kill()
                asks.killed = True
                killed_at = time.monotonic()
                await victim.process.wait()
                out.write(f"killed worker 1 (SIGKILL) after it did {len(victim.did)} jobs; the "
                          f"cluster-wide counter said {await done.load()}\n")  # fmt: skip
                # The pool keeps answering meanwhile: wait for the registry to see it.
                cluster_after = await reported_down(node, victim.pid)
                down_after = time.monotonic() - killed_at
                asks.stopping = True
            with anyio.fail_after(120):
                for one in workers[1:]:
                    await one.finished.wait()
            with anyio.move_on_after(10):  # the last increments reach this process's watch
                await done.wait_until(lambda count: count >= jobs)
            await closing.store(True)  # the workers left stop serving the pool, and exit
            with anyio.fail_after(30):
                for one in workers[1:]:
                    await one.exited.wait()
                    await one.process.wait()
            tg.cancel_scope.cancel()  # the progress bar, if a job was lost (the check says so)
        done_count = Counter(job for one in workers for job in one.did)
        twice = sorted(job for job, count in done_count.items() if count > 1)
        for one in workers:
            state = "killed" if one is victim else f"exit {one.process.returncode}"
            answers = f"answered {asks.before[one.pid]} asks before the kill"
            if one is not victim:
                answers += f" and {asks.after[one.pid]} after"
            out.write(f"  worker {one.number} (pid {one.pid}): {len(one.did)} jobs, {answers} "
                      f"({state})\n")  # fmt: skip
        total = await done.load()
        out.write(f"the counter 'done' (a distributed cell): {total}\n")
        lost = jobs - len(done_count)
        jobs_ok = (
            lost == 0
            and set(twice) <= set(victim.did)
            and all(one.process.returncode == 0 for one in workers[1:])
            # a job the victim did but had not counted when killed is counted once, by its redo
            and len(done_count) <= total <= sum(done_count.values())
        )
        out.write(
            f"check: every job done at least once (lost {lost}); done twice: {len(twice)} "
            f"{twice}, all of them jobs the killed worker did and never acknowledged\n"
        )
        failed = sum(asks.first_failures.values())
        kinds = ", ".join(f"{name}: {n}" for name, n in sorted(asks.first_failures.items()))
        out.write(f"asks to '{POOL}' retried after a failure: {failed}"
                  f"{f' ({kinds})' if kinds else ''}\n")  # fmt: skip
        if cluster_after is None:
            out.write("the registry did NOT report worker 1's node down\n")
            serving = len(cluster_before.serving(POOL))
        else:
            out.write(f"the registry reported worker 1's node down {down_after:.1f} s after the "
                      f"kill, the pool answering meanwhile; the cluster, after:\n"
                      f"{indented(cluster_after)}")  # fmt: skip
            serving = len(cluster_after.serving(POOL))
        pool_ok = (
            asks.answered.load() == asks.asked > 0
            and len(cluster_before.serving(POOL)) == 3
            and serving == 2
            and asks.after[victim.pid] == 0
        )
        wrong = f", {asks.wrong} WRONG" if asks.wrong else ""
        out.write(f"check: pool: {asks.asked} asks, {asks.answered.load()} answered "
                  f"({asks.retried} after one retry, lost {asks.lost}{wrong}), member {victim.pid} "
                  f"(worker 1) killed, {serving} members serving\n")  # fmt: skip
    return jobs_ok and pool_ok


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"] and len(sys.argv) == 5:
        from .demo import backend_args

        name, options = backend_args(sys.argv[4])
        anyio.run(worker, sys.argv[2], sys.argv[3], backend=name, backend_options=options)
    else:
        sys.exit("usage: python -m fearless._cli.cluster worker URL SYSTEM BACKEND")
