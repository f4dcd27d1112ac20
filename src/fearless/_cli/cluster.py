"""The demo's cluster part: work shared by worker processes over NATS, one of them killed.

It starts an embedded nats-server (``fearless.nats.NatsServer``: nothing to install beyond the
``nats`` extra), opens the durable channel ``jobs`` and the distributed counter ``done`` of the
system ``demo``, and starts three worker *processes* on the demo's backend (``python -m
fearless._cli.cluster worker URL SYSTEM BACKEND``). Each worker takes jobs, does them (prints
them), increments ``done``, and acknowledges each job after that. Once the cluster has done a
fifth of the jobs, the first worker is killed with SIGKILL, mid-stream. The others finish the
stream: every job is done at least once, and a job done twice is one the killed worker did and
never acknowledged. The counter, awaited with ``wait_until``, shows the cluster's progress from
the demo's own process.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import TextIO

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream

SYSTEM = "demo"


async def worker(url: str, system: str) -> None:
    """One worker process: jobs in, ``did N`` lines out, until the channel ends."""
    import fearless.nats

    async with fearless.nats.connect(url, system=system) as node:
        jobs = await node.open_receiver("jobs", int, prefetch=4)
        done = await node.int_cell("done")
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


class _Worker:
    def __init__(self, number: int, process: anyio.abc.Process) -> None:
        self.number = number
        self.process = process
        self.did: list[int] = []
        self.ready = anyio.Event()
        self.finished = anyio.Event()

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
        self.finished.set()


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
            out.write(f"3 worker processes (pids {', '.join(str(w.process.pid) for w in workers)})"
                      f" share the durable channel 'jobs'; {jobs} jobs sent\n")  # fmt: skip
            await tx.send_many(range(jobs))
            await tx.end()

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
            with anyio.fail_after(60):
                await done.wait_until(lambda count: count >= jobs // 5)
            victim.process.kill()
            await victim.process.wait()
            held = len(victim.did)
            out.write(f"killed worker 1 (SIGKILL) after it did {held} jobs; the cluster-wide "
                      f"counter said {await done.load()}\n")  # fmt: skip
            with anyio.fail_after(120):
                for one in workers[1:]:
                    await one.finished.wait()
                    await one.process.wait()
            with anyio.move_on_after(10):  # the last increments reach this process's watch
                await done.wait_until(lambda count: count >= jobs)
            tg.cancel_scope.cancel()  # the progress bar, if a job was lost (the check says so)
        done_count = Counter(job for one in workers for job in one.did)
        twice = sorted(job for job, count in done_count.items() if count > 1)
        for one in workers:
            state = "killed" if one is victim else f"exit {one.process.returncode}"
            out.write(f"  worker {one.number}: {len(one.did)} jobs ({state})\n")
        total = await done.load()
        out.write(f"the counter 'done' (a distributed cell): {total}\n")
        lost = jobs - len(done_count)
        ok = (
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
    return ok


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"] and len(sys.argv) == 5:
        from .demo import backend_args

        name, options = backend_args(sys.argv[4])
        anyio.run(worker, sys.argv[2], sys.argv[3], backend=name, backend_options=options)
    else:
        sys.exit("usage: python -m fearless._cli.cluster worker URL SYSTEM BACKEND")
