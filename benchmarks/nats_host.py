"""The process that hosts an echo for the across-processes table of ``benchmarks/nats_actors.py``.

``python -m benchmarks.nats_host URL SYSTEM`` (on asyncio) publishes an ``Echo`` actor as ``echo``
in the fearless system ``SYSTEM``, answers raw nats-py requests on ``SYSTEM.raw`` the way
``respond`` does, prints ``ready`` and serves until its standard input closes.
"""

from __future__ import annotations

import sys

import anyio

from benchmarks.nats_actors import Echo, Ping, respond


async def serve(url: str, system: str) -> None:
    import nats

    import fearless.nats

    async with (
        fearless.nats.connect(url, system=system) as node,
        fearless.ActorSystem() as actors,
    ):
        echo = await actors.spawn(Echo, name="echo")
        nc = await nats.connect(url)
        try:
            await nc.subscribe(f"{system}.raw", cb=respond)
            await nc.flush()
            async with node.publish(echo, "echo", Ping):
                print("ready", flush=True)
                await anyio.wrap_file(sys.stdin).read()  # until the benchmark closes it
        finally:
            await nc.close()
        echo.stop()


if __name__ == "__main__":
    anyio.run(serve, sys.argv[1], sys.argv[2])
