"""Actors and OS threads: ``tell`` from any thread, ``ask_blocking``, ``kill`` and ``stop`` from a
thread, ``wait_stopped_blocking``, and the misuse guard. Threads are joined with a deadline, so a
deadlock fails the test instead of hanging it. Also run on free-threaded 3.13t (``test-ft``)."""

from __future__ import annotations

import math
import threading
from functools import partial
from typing import Any

import anyio
import pytest
from anyio import to_thread

from fearless import (
    Actor,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    DeadLetterReason,
    EventLoopBlockingError,
    Mailbox,
    MailboxFull,
)
from fearless.testing import wait_all_tasks_blocked

from .support import Worker, until

pytestmark = pytest.mark.anyio


class Tally(Actor[Any]):
    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    async def handle(self, message: Any) -> Any:
        if isinstance(message, anyio.Event):
            await message.wait()
            return None
        if message == "count":
            return dict(self.seen)
        if isinstance(message, Exception):
            raise message
        thread, i = message
        assert self.seen.get(thread, -1) == i - 1, "out of order within one thread"
        self.seen[thread] = i
        return i


async def test_tells_from_many_threads_all_arrive_in_per_thread_order() -> None:
    threads, per_thread = 8, 2000
    async with ActorSystem() as system:
        ref = await system.spawn(Tally, mailbox=Mailbox(64))

        def produce(t: int) -> int:
            refused = 0
            i = 0
            while i < per_thread:
                try:
                    ref.tell((t, i))
                except MailboxFull:
                    refused += 1  # backpressure: a thread retries
                    continue
                i += 1
            return refused

        workers = [Worker(partial(produce, t)) for t in range(threads)]
        for w in workers:
            w.start()
        await to_thread.run_sync(lambda: [w.finish() for w in workers])
        counts = await ref.ask("count")
    assert counts == dict.fromkeys(range(threads), per_thread - 1)


async def test_ask_blocking_from_threads_gets_each_its_own_reply() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Tally, mailbox=Mailbox(4))

        def ask_many(t: int) -> list[int]:
            return [ref.ask_blocking((t, i), timeout=30) for i in range(200)]

        workers = [Worker(partial(ask_many, t)) for t in range(4)]
        for w in workers:
            w.start()
        results = await to_thread.run_sync(lambda: [w.finish() for w in workers])
    assert results == [list(range(200))] * 4


async def test_ask_blocking_refuses_to_run_on_an_event_loop_thread() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Tally)
        with pytest.raises(EventLoopBlockingError, match="ask_blocking"):
            ref.ask_blocking("count", timeout=0)
        with pytest.raises(EventLoopBlockingError):
            ref.wait_stopped_blocking(timeout=0)


async def test_ask_blocking_timeouts_while_queued_and_while_waiting_for_room() -> None:
    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref = await system.spawn(Tally, mailbox=Mailbox(1), name="tally")
        gate = anyio.Event()
        ref.tell(gate)
        await wait_all_tasks_blocked()
        first = Worker(lambda: ref.ask_blocking((0, 0), timeout=0.05))
        first.start()
        with pytest.raises(TimeoutError, match="still be handled"):
            await to_thread.run_sync(first.finish)
        second = Worker(lambda: ref.ask_blocking((1, 0), timeout=0.05))
        second.start()
        with pytest.raises(TimeoutError, match="not enqueued"):
            await to_thread.run_sync(second.finish)
        gate.set()
        assert await ref.ask("count") == {0: 0}  # the first was handled; the second never sent
        letter = letters.receive_nowait()
        assert letter == DeadLetter(0, "tally", DeadLetterReason.REPLY_UNDELIVERED)
        letters.close()


async def test_ask_blocking_raises_the_handlers_error_and_actor_stopped() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Tally, restart="temporary")
        worker = Worker(lambda: ref.ask_blocking(KeyError("k"), timeout=30))
        worker.start()
        with pytest.raises(KeyError):
            await to_thread.run_sync(worker.finish)
        notice = await to_thread.run_sync(lambda: ref.wait_stopped_blocking(timeout=30))
        assert notice.reason == "failed"
        worker = Worker(lambda: ref.ask_blocking("count", timeout=30))
        worker.start()
        with pytest.raises(ActorStopped):
            await to_thread.run_sync(worker.finish)


async def test_kill_and_stop_from_a_thread() -> None:
    async with ActorSystem() as system:
        stuck = await system.spawn(Tally)
        stuck.tell(anyio.Event())  # never set: stuck for ever
        idle = await system.spawn(Tally)
        await wait_all_tasks_blocked()

        def from_thread() -> tuple[str, str]:
            stuck.kill()
            idle.stop()
            return (
                stuck.wait_stopped_blocking(timeout=30).reason,
                idle.wait_stopped_blocking(timeout=30).reason,
            )

        worker = Worker(from_thread)
        worker.start()
        assert await to_thread.run_sync(worker.finish) == ("killed", "stopped")


async def test_a_thread_waiting_for_room_is_released_when_the_actor_stops() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Tally, mailbox=Mailbox(1))
        ref.tell(anyio.Event())  # stuck
        await wait_all_tasks_blocked()
        ref.tell((0, 0))  # fills the mailbox
        parked = threading.Event()

        def ask() -> Any:
            parked.set()
            return ref.ask_blocking("count", timeout=30)

        worker = Worker(ask)
        worker.start()
        await to_thread.run_sync(parked.wait)
        await until(lambda: ref.mailbox_statistics().waiting_senders == 1)  # it has parked
        ref.kill()
        with pytest.raises(ActorStopped):
            await to_thread.run_sync(worker.finish)


async def test_monitoring_actors_of_another_loop_while_they_stop_loses_no_notice(
    anyio_backend: Any,
) -> None:
    """An actor here monitors actors of a system running on another thread, which stop as the
    monitor requests arrive: each monitor either registers before the notice goes out, or finds
    the actor stopped and gets the notice at once; never neither."""
    backend, options = anyio_backend
    count = 100
    refs: list[Any] = []
    ready = threading.Event()
    stop_them = threading.Event()

    def other_loop() -> None:
        async def main() -> None:
            async with ActorSystem(name="other") as other:
                refs.extend([await other.spawn(Tally) for _ in range(count)])
                ready.set()
                await to_thread.run_sync(stop_them.wait)
                for ref in refs:
                    ref.stop()

        anyio.run(main, backend=backend, backend_options=options)

    got: set[str] = set()

    class Watcher(Actor[Any]):
        async def handle(self, message: Any) -> None:
            self.context.monitor(message)

        async def on_terminated(self, notice: Any) -> None:
            got.add(notice.name)

    async with ActorSystem() as system:
        watcher = await system.spawn(Watcher, mailbox=Mailbox(math.inf))
        thread = Worker(other_loop)
        thread.start()
        await to_thread.run_sync(ready.wait)
        stop_them.set()
        for ref in refs:
            watcher.tell(ref)
        await to_thread.run_sync(thread.finish)
        await until(lambda: len(got) == count)
    assert got == {ref.name for ref in refs}
