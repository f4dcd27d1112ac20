"""A process for tests/remote/test_processes.py: ``python counter_worker.py URL SYSTEM K``
increments the distributed counter ``hits`` K times, then prints ``done``."""

from __future__ import annotations

import sys

import anyio

import fearless.nats


async def main(url: str, system: str, times: int) -> None:
    async with fearless.nats.connect(url, system=system) as node:
        hits = await node.int_cell("hits")
        for _ in range(times):
            await hits.increment()
        print("done", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
