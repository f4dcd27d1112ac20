"""Remote actors across real processes: a node killed with SIGKILL is reported as down to a
watcher in another process within the documented bound, and a pool keeps serving asks while a
member process is killed."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.text import TextReceiveStream

import fearless
import fearless.nats
import fearless.testing
from fearless.nats import NatsServer, Node
from fearless.nats._registry import DOWN_AFTER, HEARTBEAT, POLL

from .test_actors import CounterMsg, Get

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
HOST = Path(__file__).with_name("actor_host.py")


async def host(url: str, system: str, name: str, pool: bool) -> anyio.abc.Process:
    """Start a process hosting a counter under ``name``; return once it serves."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    process = await anyio.open_process(
        [sys.executable, str(HOST), url, system, name, "pool" if pool else "solo"],
        env=env,
        stderr=None,
    )
    assert process.stdout is not None
    with anyio.fail_after(30):
        async for chunk in TextReceiveStream(process.stdout):
            if "ready" in chunk:
                break
    return process


async def stop(process: anyio.abc.Process) -> None:
    """Kill ``process`` if it still runs, and reap it."""
    if process.returncode is None:
        try:
            process.kill()
        except ProcessLookupError:  # it ended in between
            pass
    await process.wait()


async def test_a_killed_node_is_reported_down_within_the_documented_bound(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    process = await host(nats_server.url, system, "counter", pool=False)
    try:
        ref = await node.lookup("counter", CounterMsg)
        assert await ref.ask(Get()) == 0
        async with anyio.create_task_group() as tg:
            ended: list[fearless.Terminated] = []

            async def watch() -> None:
                ended.append(await ref.wait_stopped())

            tg.start_soon(watch)
            process.kill()
            killed_at = time.monotonic()
        await process.wait()
        took = time.monotonic() - killed_at
        assert [(notice.ref, notice.reason) for notice in ended] == [(ref, "node_down")]
        assert took <= DOWN_AFTER + HEARTBEAT + POLL + 1.0, took
        with pytest.raises(LookupError, match="its node is down"):
            await node.lookup("counter", CounterMsg)
        with pytest.raises(fearless.ActorStopped):
            await ref.ask(Get())  # nobody serves it: at once, not a timeout
    finally:
        await stop(process)


async def test_a_name_nobody_publishes_is_not_found_and_an_unpublished_one_is_stopped(
    node: Node,
) -> None:
    with pytest.raises(LookupError, match="nobody publishes it"):
        await node.lookup("nobody", CounterMsg)
    from .test_actors import Counter

    async with fearless.ActorSystem() as actors:
        counter = await actors.spawn(Counter, name="c")
        async with node.publish(counter, "c", CounterMsg):
            ref = await node.lookup("c", CounterMsg)
            async with anyio.create_task_group() as tg:
                ended: list[fearless.Terminated] = []

                async def watch() -> None:
                    ended.append(await ref.wait_stopped())

                tg.start_soon(watch)
                await fearless.testing.wait_all_tasks_blocked()
                assert ended == []
                tg.cancel_scope.cancel()
        notice = await ref.wait_stopped()
        assert (notice.name, notice.reason, notice.ref) == ("c", "stopped", ref)
        counter.stop()


async def test_a_pool_serves_asks_while_a_member_process_is_killed(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """Three processes serve the pool "workers"; one is killed while asks flow. Asks in flight
    to it fail (ActorStopped or a timeout, as documented), the others succeed, none hangs."""
    processes = [await host(nats_server.url, system, "workers", pool=True) for _ in range(3)]
    try:
        ref = await node.lookup("workers", CounterMsg)
        outcomes = {"ok": 0, "failed": 0}

        async def ask_many() -> None:
            for _ in range(100):
                try:
                    await ref.ask(Get(), timeout=2)
                    outcomes["ok"] += 1
                except (fearless.ActorStopped, TimeoutError):
                    outcomes["failed"] += 1

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(ask_many)
                while outcomes["ok"] < 50:  # noqa: ASYNC110  (the asks' progress)
                    await anyio.sleep(0.01)
                processes[0].kill()
                await processes[0].wait()
        assert outcomes["ok"] + outcomes["failed"] == 400
        assert outcomes["failed"] <= 4  # at most the asks in flight to the killed member
        assert await ref.ask(Get(), timeout=5) == 0
    finally:
        for process in processes:
            await stop(process)
