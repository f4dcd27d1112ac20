"""Remote actors across real processes and a real server (each host is a process of its own,
tests/remote/actor_host.py, on the test's backend, killed with SIGKILL): a durable mailbox loses
nothing when its host is killed mid-stream and a replacement takes over, a pool keeps serving asks
while a member is killed, a killed node is reported down (to ``wait_stopped`` and to a monitoring
actor) within the documented bound, and garbage from another process is a dead letter of the
host, which keeps serving."""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.text import TextReceiveStream

import fearless
import fearless.nats
import fearless.testing
from fearless.nats import NatsServer, Node
from fearless.nats._actors import mailbox_stream
from fearless.nats._mailbox import PREFETCH
from fearless.nats._registry import REPORTED_WITHIN

from .actor_host import Job
from .test_actors import Add, Counter, CounterMsg, Get

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
HOST = Path(__file__).with_name("actor_host.py")
# What a loaded machine may add to a documented bound (the machine may run other suites too).
MARGIN = 2.0


def backend_name(anyio_backend: tuple[str, dict[str, object]]) -> str:
    name, options = anyio_backend
    return "uvloop" if options.get("loop_factory") else name


class Host:
    """One host process and what it printed (see actor_host.py)."""

    def __init__(self, process: anyio.abc.Process, hosts: Hosts) -> None:
        self.process = process
        self.hosts = hosts
        self.handled: list[int] = []
        self.dead: list[str] = []
        self.ready = anyio.Event()
        self.ended = anyio.Event()

    async def read(self) -> None:
        assert self.process.stdout is not None
        buffer = ""
        try:
            async for chunk in TextReceiveStream(self.process.stdout):
                buffer += chunk
                *complete, buffer = buffer.split("\n")
                for line in complete:
                    if line == "ready":
                        self.ready.set()
                    elif line.startswith("handled "):
                        self.handled.append(int(line.removeprefix("handled ")))
                        self.hosts.handled.add(self.handled[-1])
                    elif line.startswith("dead "):
                        self.dead.append(line.removeprefix("dead "))
                self.hosts.changed()
        finally:
            self.ended.set()  # the stream ended: the process was killed
            self.hosts.changed()

    def kill(self) -> float:
        """SIGKILL the process; return when (``time.monotonic()``)."""
        self.process.kill()
        return time.monotonic()

    async def stop(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:  # it ended in between (a second kill raises on asyncio)
                pass
        await self.process.wait()


class Hosts:
    """The host processes of one test: starts them, and wakes waiters whenever one printed."""

    def __init__(self, tg: anyio.abc.TaskGroup, url: str, system: str, backend: str) -> None:
        self._tg = tg
        self._args = [url, system]
        self._backend = backend
        self.started: list[Host] = []
        self.handled: set[int] = set()  # by any host
        self._changed = anyio.Event()

    async def start(self, name: str, mode: str) -> Host:
        """Start a process hosting ``name`` (``solo``, ``pool`` or ``durable``); return once it
        printed ``ready`` (it serves the name)."""
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
        process = await anyio.open_process(
            [sys.executable, str(HOST), *self._args, name, mode, self._backend],
            env=env,
            stderr=None,
        )
        host = Host(process, self)
        self.started.append(host)
        self._tg.start_soon(host.read)
        with anyio.fail_after(30):
            await host.ready.wait()
        return host

    def changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, condition: Callable[[], bool], seconds: float = 45.0) -> None:
        """Wait until ``condition()`` holds; it is checked each time a host printed."""
        with anyio.fail_after(seconds):
            while not condition():
                await self._changed.wait()


@asynccontextmanager
async def hosting(url: str, system: str, backend: str) -> AsyncIterator[Hosts]:
    """Host processes that are all killed and reaped when the block ends."""
    async with anyio.create_task_group() as tg:
        hosts = Hosts(tg, url, system, backend)
        try:
            yield hosts
        finally:
            with anyio.CancelScope(shield=True):
                for host in hosts.started:
                    await host.stop()


async def stream_until(node: Node, stream: str, condition: Callable[[Any], bool]) -> None:
    """Wait until ``condition(stream_info)`` holds (the server's state: polled; 30 s at most)."""
    with anyio.fail_after(30):
        info = node.jetstream.stream_info
        while not condition(await node.client_loop.call(info, stream)):  # noqa: ASYNC110
            await anyio.sleep(0.05)  # the server's state: no event announces it


async def test_a_durable_mailbox_loses_nothing_when_its_host_is_killed_mid_stream(
    node: Node, nats_server: NatsServer, system: str, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    """A host process serves "jobs" (a supervised actor, durable mailbox, ack_wait 2 s) while
    this process sends 600 jobs (each stored before send returns). The host is killed with
    SIGKILL after it handled 150, while jobs are still being sent; a replacement process
    publishes the name again and the run goes on until the mailbox is empty. Every job sent is
    handled at least once, none more than twice; a job handled twice was handled by the killed
    host (which never acknowledged it) and once more by the replacement; there are at most
    PREFETCH of them (what the killed host had been handed and not acknowledged)."""
    # Four sending tasks (faster than the host handles: it always has a backlog to hold), at
    # most `window` jobs ahead of the handlers (so the kill lands while jobs are being sent).
    items, senders, window = 600, 4, 200
    ref = node.actor("jobs", Job)
    sent: list[int] = []
    async with hosting(nats_server.url, system, backend_name(anyio_backend)) as hosts:
        victim = await hosts.start("jobs", "durable")
        async with anyio.create_task_group() as tg:

            async def produce(first: int) -> None:
                for item in range(first, items, senders):
                    await hosts.until(lambda: len(hosts.handled) >= item - window)  # noqa: B023
                    await ref.send(Job(item))
                    sent.append(item)

            for first in range(senders):
                tg.start_soon(produce, first)
            await hosts.until(lambda: len(victim.handled) >= 150)
            victim.kill()
            sent_at_kill = len(sent)
            await victim.process.wait()
            replacement = await hosts.start("jobs", "durable")
            await hosts.until(lambda: len(hosts.handled) == items)
        # Every message acknowledged (printed before): nothing is left to deliver again.
        stream = mailbox_stream(system, "jobs")
        await stream_until(node, stream, lambda info: info.state.messages == 0)
        await replacement.stop()
        with anyio.fail_after(10):
            await replacement.ended.wait()
        await victim.ended.wait()
    assert victim.process.returncode == -9
    assert sent_at_kill < items  # the kill landed while jobs were being sent
    assert sorted(sent) == list(range(items))
    assert len(victim.handled) < items  # the replacement had work left
    handled = collections.Counter(victim.handled + replacement.handled)
    assert set(handled) == set(range(items))  # nothing lost
    assert max(handled.values()) <= 2
    twice = {job for job, count in handled.items() if count == 2}
    for job in twice:  # once by the killed host, once more by the replacement
        assert (victim.handled.count(job), replacement.handled.count(job)) == (1, 1), job
    assert len(twice) <= PREFETCH, sorted(twice)
    assert await node.delete_mailbox("jobs") is True


async def test_a_pool_serves_asks_while_a_member_process_is_killed(
    node: Node, nats_server: NatsServer, system: str, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    """Three processes serve the pool "workers"; one is killed with SIGKILL while four tasks
    ask 100 times each. Every ask ends (answered, or ActorStopped / a timeout, as documented;
    the fail_after proves none hangs), at most the 4 in flight to the killed member fail, the
    others are answered, and the pool answers afterwards."""
    async with hosting(nats_server.url, system, backend_name(anyio_backend)) as hosts:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(hosts.start, "workers", "pool")
        victim = hosts.started[0]
        ref = await node.lookup("workers", CounterMsg)
        outcomes = {"ok": 0, "failed": 0}
        progress = fearless.AtomicInt(0)

        async def ask_many() -> None:
            for _ in range(100):
                try:
                    await ref.ask(Get(), timeout=2)
                    outcomes["ok"] += 1
                except (fearless.ActorStopped, TimeoutError):
                    outcomes["failed"] += 1
                progress.increment()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(ask_many)
                await progress.wait_until(lambda done: done >= 50)
                victim.kill()
                done_at_kill = outcomes["ok"] + outcomes["failed"]
                await victim.process.wait()
        assert done_at_kill < 400  # killed while asks flowed
        assert outcomes["ok"] + outcomes["failed"] == 400
        assert outcomes["failed"] <= 4  # at most the asks in flight to the killed member
        with anyio.fail_after(10):
            assert await ref.ask(Get(), timeout=5) == 0


async def test_a_killed_node_is_reported_down_within_the_documented_bound(
    node: Node, nats_server: NatsServer, system: str, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    """wait_stopped() on a ref to an actor in a process killed with SIGKILL returns a notice
    with the reason "node_down" within REPORTED_WITHIN (+ a margin) of the kill; the name is
    then looked up as down, and an ask fails at once with ActorStopped."""
    async with hosting(nats_server.url, system, backend_name(anyio_backend)) as hosts:
        victim = await hosts.start("counter", "solo")
        ref = await node.lookup("counter", CounterMsg)
        assert await ref.ask(Get()) == 0
        ended: list[tuple[fearless.Terminated, float]] = []
        with anyio.fail_after(REPORTED_WITHIN + MARGIN + 10):  # a hang fails, not the bound
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    notice = await ref.wait_stopped()
                    ended.append((notice, time.monotonic()))

                tg.start_soon(watch)
                await fearless.testing.wait_all_tasks_blocked()
                assert ended == []  # it waits while the node is up
                killed_at = victim.kill()
                await victim.process.wait()
        ((notice, noticed_at),) = ended
        took = noticed_at - killed_at
        assert (notice.ref, notice.reason) == (ref, "node_down")
        assert 0 < took <= REPORTED_WITHIN + MARGIN, took
        with pytest.raises(LookupError, match="its node is down"):
            await node.lookup("counter", CounterMsg)
        with anyio.fail_after(2), pytest.raises(fearless.ActorStopped):
            await ref.ask(Get())  # nobody serves it: at once, not a timeout


async def test_a_name_nobody_publishes_is_not_found_and_an_unpublished_one_is_stopped(
    node: Node,
) -> None:
    """lookup() of a name nobody ever published raises LookupError saying so; wait_stopped()
    on a published name waits while it is published, and once it is unpublished returns a
    notice with the reason "stopped" (at once, for a later call)."""
    with pytest.raises(LookupError, match="nobody publishes it"):
        await node.lookup("nobody", CounterMsg)
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


class Watcher(fearless.Actor[str]):
    """Monitors the ref it is given; records each notice with the time it came."""

    def __init__(self, target: fearless.Ref[Any]) -> None:
        self.target = target
        self.notices: list[tuple[fearless.Terminated, float]] = []
        self.noticed = anyio.Event()

    async def on_start(self) -> None:
        self.context.monitor(self.target)

    async def handle(self, message: str) -> None:
        pass

    async def on_terminated(self, notice: fearless.Terminated) -> None:
        self.notices.append((notice, time.monotonic()))
        self.noticed.set()


async def test_an_actor_monitoring_an_actor_in_a_killed_process_is_told_node_down_in_time(
    node: Node, nats_server: NatsServer, system: str, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    """An actor of this process monitors (context.monitor) an actor hosted by another process,
    which is killed with SIGKILL: its on_terminated gets one Terminated whose reason is
    "node_down" and whose ref is the remote ref, within REPORTED_WITHIN (+ a margin) of the
    kill (and not before it)."""
    async with (
        hosting(nats_server.url, system, backend_name(anyio_backend)) as hosts,
        fearless.ActorSystem() as actors,
    ):
        victim = await hosts.start("counter", "solo")
        ref = await node.lookup("counter", CounterMsg)
        watcher = Watcher(ref)
        watching = await actors.spawn(lambda: watcher, name="watcher")  # monitoring once started
        assert await ref.ask(Get()) == 0
        assert watcher.notices == []
        killed_at = victim.kill()
        with anyio.fail_after(REPORTED_WITHIN + MARGIN + 10):  # a hang fails, not the bound
            await watcher.noticed.wait()
        ((notice, noticed_at),) = watcher.notices
        assert (notice.ref, notice.reason, notice.name) == (ref, "node_down", "counter")
        took = noticed_at - killed_at
        assert 0 < took <= REPORTED_WITHIN + MARGIN, took
        watching.stop()


async def test_garbage_from_another_process_is_a_dead_letter_of_the_host_which_keeps_serving(
    node: Node, nats_server: NatsServer, system: str, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    """Raw NATS messages to an actor hosted by another process: bad JSON, a wrong class in the
    subject, no class, a value of the wrong type, to its tell, send and ask subjects, and
    a good message on a subject the actor does not have. Each is an UNDECODABLE dead letter of
    the host's actor system (the host prints them); each request gets an answer that is JSON
    with "error"; none changes the actor, which keeps serving. An ask to a name nobody serves
    fails with ActorStopped at once."""
    async with hosting(nats_server.url, system, backend_name(anyio_backend)) as hosts:
        host = await hosts.start("counter", "solo")
        nc, call = node.connection, node.client_loop.call
        base = f"fearless.{system}.actor.counter"
        # (payload, the class named in the subject: "" for none)
        garbage = [
            (b"not json", "Add"),
            (b'{"amount": 1}', "Rm"),
            (b'{"amount": 1}', ""),
            (b'{"amount": "one"}', "Add"),
        ]

        def subject_of(kind: str, class_name: str) -> str:
            return f"{base}.{kind}.{class_name}" if class_name else f"{base}.{kind}"

        for payload, class_name in garbage:
            await call(nc.publish, subject_of("tell", class_name), payload)
        for kind in ("send", "ask"):
            for payload, class_name in garbage:
                with anyio.fail_after(10):
                    reply = await call(nc.request, subject_of(kind, class_name), payload, timeout=5)
                answer = json.loads(reply.data)
                assert "does not decode" in answer["error"]["message"], (kind, payload, answer)
        # A message the actor takes, on a subject it does not have: refused, not handled.
        subject = subject_of("add", "Add")
        await call(nc.publish, subject, b'{"amount": 1}')
        with anyio.fail_after(10):
            reply = await call(nc.request, subject, b'{"amount": 1}', timeout=5)
        assert "is not a subject of the actor" in json.loads(reply.data)["error"]["message"]
        letters = 3 * len(garbage) + 2
        await hosts.until(lambda: len(host.dead) >= letters)
        assert host.dead == ["UNDECODABLE counter"] * letters
        ref = node.actor("counter", CounterMsg)
        await ref.send(Add(2))
        assert await ref.ask(Get()) == 2  # the garbage added nothing; the actor goes on
        with anyio.fail_after(2), pytest.raises(fearless.ActorStopped, match="nobody"):
            await node.actor("nobody", CounterMsg).ask(Get())
