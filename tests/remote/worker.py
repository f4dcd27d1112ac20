"""A receiving process for tests/remote/test_processes.py: ``python worker.py URL SYSTEM BACKEND``.

It opens the durable channel ``jobs`` of ``int`` and, for each item, prints ``got N`` (that is its
"processing": once printed, the item counts as processed) and then acknowledges it, waiting for the
server's confirmation. At the end of the stream it prints ``done``. Killed between the print and
the acknowledgement, an item is processed twice: that is at-least-once delivery, and the test
counts it.
"""

from __future__ import annotations

import sys

import anyio

import fearless.nats


async def main(url: str, system: str) -> None:
    async with fearless.nats.connect(url, system=system) as node:
        receiver = await node.open_receiver("jobs", int, prefetch=8)
        print("ready", flush=True)
        while True:
            try:
                delivery = await receiver.receive_delivery()
            except anyio.EndOfStream:
                break
            print(f"got {delivery.item}", flush=True)
            await delivery.ack()
        print("done", flush=True)


if __name__ == "__main__":
    url, system, backend = sys.argv[1:4]
    options = {}
    if backend == "uvloop":
        import uvloop

        backend, options = "asyncio", {"loop_factory": uvloop.new_event_loop}
    anyio.run(main, url, system, backend=backend, backend_options=options)
