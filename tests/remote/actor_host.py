"""A process that hosts an actor for tests/remote/test_remote_processes.py:
``python actor_host.py URL SYSTEM NAME POOL`` publishes a counter under NAME (as a pool member if
POOL is "pool"), prints ``ready``, and serves until it is killed."""

from __future__ import annotations

import sys

import anyio

import fearless
import fearless.nats
from tests.remote.test_actors import Counter, CounterMsg


async def main(url: str, system: str, name: str, pool: bool) -> None:
    async with (
        fearless.nats.connect(url, system=system) as node,
        fearless.ActorSystem() as actors,
    ):
        counter = await actors.spawn(Counter, name=name)
        async with node.publish(counter, name, CounterMsg, pool=pool):
            print("ready", flush=True)
            await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "pool")
