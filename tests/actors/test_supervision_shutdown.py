"""Stopping supervised children: ``shutdown=0`` kills at once, idle or busy, with no ``on_stop``;
a child that raised ends failed even if its supervisor stops first; cancelled spawns leave
nothing behind (``docs/design/supervision.md``, case 15, and the "Shutdown" rules).

Time is a ``FakeClock``: "at once" means with the clock still at 0, and nothing waits but
``clock.advance``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from fearless import (
    Actor,
    ActorSystem,
    ChildSpec,
    DeadLetter,
    DeadLetterReason,
    Supervisor,
    TerminateChild,
    WhichChildren,
)
from fearless.testing import FakeClock

from .support import lookup

pytestmark = pytest.mark.anyio


class Recorder(Actor[Any]):
    """Records its hooks in ``log``; waits on an event it is told (busy until it is set);
    raises on "boom"; links to the actor named in "link:x"."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append(f"start {self.context.name}")

    async def on_stop(self) -> None:
        self.log.append(f"on_stop {self.context.name}")

    async def handle(self, message: Any) -> Any:
        if isinstance(message, anyio.Event):
            self.log.append(f"busy {self.context.name}")
            await message.wait()
        elif message == "boom":
            raise RuntimeError(f"{self.context.name}: boom")
        elif isinstance(message, str) and message.startswith("link:"):
            target = self.context.system.lookup(message[5:])
            assert target is not None
            self.context.link(target)
        return message


def drain(letters: Any) -> list[DeadLetter]:
    out: list[DeadLetter] = []
    while True:
        try:
            out.append(letters.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return out


# -- shutdown=0 ------------------------------------------------------------------------------------


async def test_shutdown_zero_kills_an_idle_child_at_once_without_on_stop() -> None:
    """``TerminateChild`` of an idle child with ``shutdown=0`` kills it at once (the clock has
    not moved) and its ``on_stop`` never runs: no graceful stop is queued before the kill, so
    none can win the race. Its end is a shutdown, and its spec stays (``"ended"``)."""
    clock = FakeClock()
    log: list[str] = []
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor([ChildSpec(lambda: Recorder(log), name="idle", shutdown=0)]),
            name="sup",
        )
        idle = lookup(system, "idle")
        await clock.advance(0)  # idle: parked on its empty mailbox
        with anyio.fail_after(5):
            await sup.ask(TerminateChild("idle"))
        assert not idle.is_alive
        assert (await idle.wait_stopped()).reason == "shutdown"
        assert clock.now() == 0
        assert log == ["start idle"]  # no on_stop
        assert [(c.name, c.state) for c in await sup.ask(WhichChildren())] == [("idle", "ended")]


async def test_shutdown_zero_kills_a_busy_child_at_once_without_on_stop() -> None:
    """``TerminateChild`` of a child with ``shutdown=0`` that is in the middle of a message
    (waiting on an event nobody sets) kills it at once: ``on_stop`` never runs, the message it
    was handling goes to dead letters as ``KILLED``, and the clock has not moved."""
    clock = FakeClock()
    log: list[str] = []
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor([ChildSpec(lambda: Recorder(log), name="busy", shutdown=0)]),
            name="sup",
        )
        busy = lookup(system, "busy")
        never = anyio.Event()
        with system.dead_letters() as letters:
            busy.tell(never)
            await clock.advance(0)
            assert log == ["start busy", "busy busy"]
            with anyio.fail_after(5):
                await sup.ask(TerminateChild("busy"))
            assert not busy.is_alive
            assert clock.now() == 0
            assert log == ["start busy", "busy busy"]  # no on_stop
            assert [(d.message, d.reason) for d in drain(letters)] == [
                (never, DeadLetterReason.KILLED)
            ]


async def test_shutdown_zero_children_are_killed_when_their_supervisor_stops() -> None:
    """A supervisor stopping kills its ``shutdown=0`` children at once, idle or busy, without
    their ``on_stop``, while a sibling with a graceful shutdown gets its ``on_stop``; the
    children stop in reverse start order and the clock never moves."""
    clock = FakeClock()
    log: list[str] = []
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [
                    ChildSpec(lambda: Recorder(log), name="graceful", shutdown=5.0),
                    ChildSpec(lambda: Recorder(log), name="idle", shutdown=0),
                    ChildSpec(lambda: Recorder(log), name="busy", shutdown=0),
                ]
            ),
            name="sup",
        )
        lookup(system, "busy").tell(anyio.Event())
        await clock.advance(0)
        sup.stop()
        with anyio.fail_after(5):
            await sup.wait_stopped()
        assert clock.now() == 0
        assert log == [
            "start graceful",
            "start idle",
            "start busy",
            "busy busy",
            "on_stop graceful",  # the only on_stop: the others were killed
        ]


async def test_shutdown_zero_top_level_actors_are_killed_when_the_system_closes() -> None:
    """Leaving the ``ActorSystem`` block kills a top-level actor spawned with ``shutdown=0`` at
    once, idle or busy, without its ``on_stop``; the block does not wait on the clock."""
    clock = FakeClock()
    log: list[str] = []
    async with ActorSystem(clock=clock) as system:
        idle = await system.spawn(lambda: Recorder(log), name="idle", shutdown=0)
        busy = await system.spawn(lambda: Recorder(log), name="busy", shutdown=0)
        busy.tell(anyio.Event())
        await clock.advance(0)
    assert not idle.is_alive
    assert not busy.is_alive
    assert (await idle.wait_stopped()).reason == "shutdown"
    assert clock.now() == 0
    assert log == ["start idle", "start busy", "busy busy"]  # no on_stop


# -- a supervisor stopping while its children end ------------------------------------------------


async def test_a_temporary_child_that_raised_ends_failed_even_if_its_supervisor_stops_first() -> (
    None
):
    """A temporary child raises, and its supervisor is asked to stop before it can handle the
    child's report: the child still ends ``"failed"`` with its error (not ``"shutdown"``), so
    an actor linked to it fails too."""
    clock = FakeClock()
    log: list[str] = []
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor([ChildSpec(lambda: Recorder(log), name="t", restart="temporary")]),
            restart="temporary",
        )
        x = await system.spawn(lambda: Recorder(log), name="x", restart="temporary")
        await x.ask("link:t")
        t = lookup(system, "t")
        t.tell("boom")
        sup.stop()  # queued before t's report can be handled
        with anyio.fail_after(5):
            notice = await t.wait_stopped()
            assert notice.reason == "failed"
            assert isinstance(notice.error, RuntimeError)
            assert (await x.wait_stopped()).reason == "failed"  # the link fired


async def test_cancelled_spawns_leave_nothing_behind() -> None:
    """A spawn cancelled before it starts, or while its actor's ``on_start`` hangs, leaves no
    actor running and no name taken, twenty times over."""

    class SlowStart(Actor[Any]):
        async def on_start(self) -> None:
            await anyio.sleep_forever()

        async def handle(self, message: Any) -> None:
            pass

    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        for _ in range(20):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await system.spawn(SlowStart, name="s")
            async with anyio.create_task_group() as tg:

                async def spawn() -> None:
                    await system.spawn(SlowStart, name="s")

                tg.start_soon(spawn)
                await clock.advance(0)  # the spawn is parked in on_start
                tg.cancel_scope.cancel()
        assert system.lookup("s") is None
        assert system.snapshot().actors == ()
