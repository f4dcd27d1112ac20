"""A process that hosts an actor for tests/remote/test_remote_processes.py:
``python actor_host.py URL SYSTEM NAME MODE BACKEND``.

MODE ``solo`` publishes a counter (``tests.remote.test_actors.Counter``) under NAME, ``pool``
publishes it as a pool member, ``durable`` publishes a :class:`Recorder` under a supervisor with a
durable mailbox (``ack_wait=ACK_WAIT``). BACKEND is ``asyncio``, ``uvloop`` or ``trio`` (the test's
own). It prints, one line each, flushed:

- ``ready`` once it serves the name;
- ``handled N`` when the recorder handles ``Job(N)`` (that is its "processing": once printed, the
  job counts as handled; the line is in the pipe, and a SIGKILL after it cannot take it back);
- ``dead REASON RECIPIENT`` for each dead letter of its actor system.

It serves until it is killed.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import msgspec

import fearless
import fearless.nats
from tests.remote.test_actors import Counter, CounterMsg

ACK_WAIT = 2.0
WORK = 0.001


class Job(msgspec.Struct, frozen=True):
    id: int


class Recorder(fearless.Actor[Job]):
    """Handles a job: a millisecond of work (a sleep stands for it: its senders get ahead, so
    the mailbox has a backlog and this process holds messages when it is killed), then a line.
    """

    async def handle(self, message: Job) -> None:
        await anyio.sleep(WORK)
        print(f"handled {message.id}", flush=True)


async def report_dead_letters(actors: fearless.ActorSystem, subscribed: anyio.Event) -> None:
    with actors.dead_letters() as letters:
        subscribed.set()
        async for letter in letters:
            print(f"dead {letter.reason.name} {letter.recipient}", flush=True)


async def main(url: str, system: str, name: str, mode: str) -> None:
    async with (
        fearless.nats.connect(url, system=system) as node,
        fearless.ActorSystem() as actors,
        anyio.create_task_group() as tg,
    ):
        subscribed = anyio.Event()
        tg.start_soon(report_dead_letters, actors, subscribed)
        await subscribed.wait()
        publication: Any
        if mode == "durable":
            await actors.spawn(
                lambda: fearless.Supervisor(
                    [fearless.ChildSpec(Recorder, name="recorder")], max_restarts=10
                ),
                name="supervisor",
            )
            recorder = actors.lookup("recorder")
            assert recorder is not None
            publication = node.publish(recorder, name, Job, durable=True, ack_wait=ACK_WAIT)
        else:
            counter = await actors.spawn(Counter, name=name)
            publication = node.publish(counter, name, CounterMsg, pool=mode == "pool")
        async with publication:
            print("ready", flush=True)
            await anyio.sleep_forever()


if __name__ == "__main__":
    url, system, name, mode, backend = sys.argv[1:6]
    if mode not in ("solo", "pool", "durable"):
        raise SystemExit(f"MODE must be solo, pool or durable, not {mode!r}")
    options: dict[str, Any] = {}
    if backend == "uvloop":
        import uvloop

        backend, options = "asyncio", {"loop_factory": uvloop.new_event_loop}
    anyio.run(main, url, system, name, mode, backend=backend, backend_options=options)
