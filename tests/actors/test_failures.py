"""What an actor's code may raise, and what each outcome is. Every test runs on asyncio, uvloop
and trio.

What must hold: in the factory, ``on_start``, ``on_restart``, ``handle``, ``on_terminated`` and
``on_stop``, an ``Exception``, a ``CancelledError`` that is not the actor's own cancellation (a
stray one: on asyncio, awaiting a future that another task cancelled) and any other
``BaseException`` subclass are failures of that actor: it is restarted per its supervisor, the
message goes to dead letters as ``HANDLER_FAILED`` with the error, the failure is logged at ERROR,
and the rest of the ``async with ActorSystem()`` body runs. ``KeyboardInterrupt`` and
``SystemExit`` stop the whole system and leave the block as they were raised (not in an exception
group), on every backend. An exception group the body raises leaves the block as that same
object. The actor's own cancellation (a kill, the system shutting down) is never a failure.

trio has no stray cancellation: ``trio.Cancelled`` is raised only into a task whose cancel scope
was cancelled, and cannot even be made by user code. So on trio the stray-cancellation tests raise
a ``BaseException`` subclass of their own, the path that a stray ``CancelledError`` takes on
asyncio (not an ``Exception``, not the task's own cancellation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn

import anyio
import pytest

import fearless
from fearless import (
    Actor,
    ActorRef,
    ActorStartError,
    ActorSystem,
    DeadLetter,
    DeadLetterReason,
    Terminated,
)
from fearless.testing import FakeClock, Probe, wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


class Stray(BaseException):
    """A ``BaseException`` that is neither an ``Exception`` nor a cancellation (on trio, the
    stand-in for a stray cancellation)."""


def stray_class(backend: str) -> type[BaseException]:
    if backend == "trio":
        return Stray
    import asyncio

    return asyncio.CancelledError


_cancellers: set[Any] = set()  # the asyncio tasks that cancel a future (kept until done)


async def await_stray_cancellation(backend: str) -> NoReturn:
    """Await something that is cancelled from elsewhere: on asyncio (and uvloop), a future that
    another task cancels, which raises a ``CancelledError`` in this task although nothing
    cancelled this task; on trio (which has none), raise ``Stray``."""
    if backend == "trio":
        raise Stray("stray")
    import asyncio

    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def cancel_it() -> None:
        future.cancel()

    canceller = asyncio.get_running_loop().create_task(cancel_it())
    _cancellers.add(canceller)
    canceller.add_done_callback(_cancellers.discard)
    await future
    raise AssertionError("the future was cancelled")  # pragma: no cover


def raise_stray_cancellation(backend: str) -> NoReturn:
    """The same in synchronous code (a factory): the result of a future that was cancelled."""
    if backend == "trio":
        raise Stray("stray")
    import asyncio

    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.cancel()
    future.result()
    raise AssertionError("the future was cancelled")  # pragma: no cover


def drain(letters: Any) -> list[DeadLetter]:
    out: list[DeadLetter] = []
    while True:
        try:
            out.append(letters.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return out


def error_logs(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    """ERROR records of ``fearless.actors`` that name actor ``name`` and carry a traceback."""
    return [
        r
        for r in caplog.records
        if r.name == "fearless.actors"
        and r.levelno == logging.ERROR
        and repr(name) in r.getMessage()
        and r.exc_info is not None
    ]


class Echo(Actor[Any]):
    async def handle(self, message: Any) -> Any:
        return message


# -- stray cancellations and other BaseExceptions are failures -------------------------------------


async def test_a_stray_cancellation_in_a_handler_is_a_failure_and_the_body_goes_on(
    anyio_backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler awaits a future that another task cancels (trio: raises a ``BaseException``
    subclass): the actor fails and is restarted (a new instance answers, ``restarts == 1``), the
    message is in dead letters as ``HANDLER_FAILED`` with that ``CancelledError``, the failure
    is logged at ERROR with its traceback, and the rest of the block's body runs."""
    built: list[int] = []

    class Waiter(Actor[str]):
        def __init__(self) -> None:
            built.append(1)

        async def handle(self, message: str) -> str:
            if message == "wait":
                await await_stray_cancellation(anyio_backend_name)
            return message

    body_done = False
    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref = await system.spawn(Waiter, name="waiter")
        ref.tell("wait")
        assert await ref.ask("after") == "after"
        assert len(built) == 2
        [actor] = system.snapshot().actors
        assert (actor.failures, actor.restarts) == (1, 1)
        [letter] = drain(letters)
        assert (letter.message, letter.recipient) == ("wait", "waiter")
        assert letter.reason is DeadLetterReason.HANDLER_FAILED
        assert type(letter.error) is stray_class(anyio_backend_name)
        assert error_logs(caplog, "waiter")
        letters.close()
        body_done = True
    assert body_done


async def test_an_ask_meeting_a_stray_cancellation_raises_in_the_asker_and_the_body_goes_on(
    anyio_backend_name: str,
) -> None:
    """An ask whose handler fails with a stray cancellation: the asker gets ``HandlerFailed``
    with that cancellation as its cause (it is not left waiting, and a ``CancelledError`` raised
    in the asker would be taken for the asker's own cancellation), the actor is restarted, and
    the body goes on to the end of the block."""

    class Waiter(Actor[str]):
        async def handle(self, message: str) -> str:
            if message == "wait":
                await await_stray_cancellation(anyio_backend_name)
            return message

    body_done = False
    async with ActorSystem() as system:
        ref = await system.spawn(Waiter, name="waiter")
        with pytest.raises(fearless.HandlerFailed) as caught:
            await ref.ask("wait")
        assert isinstance(caught.value.__cause__, stray_class(anyio_backend_name))
        assert await ref.ask("after") == "after"
        body_done = True
    assert body_done


async def test_a_custom_base_exception_in_a_handler_is_a_failure_of_that_actor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A ``BaseException`` subclass that is not an ``Exception`` (nor a cancellation) raised by
    a handler: a failure like any other (restart, ``HANDLER_FAILED`` dead letter with that error,
    ERROR log), and the body goes on."""

    class Raiser(Actor[str]):
        async def handle(self, message: str) -> str:
            if message == "raise":
                raise Stray("custom")
            return message

    body_done = False
    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref = await system.spawn(Raiser, name="raiser")
        ref.tell("raise")
        assert await ref.ask("after") == "after"
        [actor] = system.snapshot().actors
        assert (actor.failures, actor.restarts) == (1, 1)
        [letter] = drain(letters)
        assert letter.reason is DeadLetterReason.HANDLER_FAILED
        assert type(letter.error) is Stray
        assert error_logs(caplog, "raiser")
        letters.close()
        body_done = True
    assert body_done


async def test_a_stray_cancellation_in_on_start_or_the_factory_fails_the_spawn(
    anyio_backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``on_start`` awaiting a future cancelled elsewhere, or a factory reading the result of a
    cancelled future: the actor never runs; ``spawn`` raises ``ActorStartError`` with that
    ``CancelledError`` (trio: ``Stray``) as its cause, the failure is logged at ERROR, the name
    is free again, and the body goes on."""

    class BadStart(Actor[Any]):
        async def on_start(self) -> None:
            await await_stray_cancellation(anyio_backend_name)

        async def handle(self, message: Any) -> Any:
            return message

    def bad_factory() -> Actor[Any]:
        raise_stray_cancellation(anyio_backend_name)

    body_done = False
    async with ActorSystem() as system:
        for name, factory in [("bad-start", BadStart), ("bad-factory", bad_factory)]:
            with pytest.raises(ActorStartError) as caught:
                await system.spawn(factory, name=name)
            assert type(caught.value.__cause__) is stray_class(anyio_backend_name)
            assert system.lookup(name) is None
            assert error_logs(caplog, name)
            assert await (await system.spawn(Echo, name=name)).ask("again") == "again"
        body_done = True
    assert body_done


async def test_a_stray_cancellation_in_on_restart_or_the_factory_is_a_failed_restart(
    anyio_backend_name: str,
) -> None:
    """The restart of a failed actor meets a stray cancellation, in the factory or in
    ``on_restart``: that is a failed restart (counted against the actor's budget, and retried),
    not an end: the next attempt starts it, and it answers."""
    clock = FakeClock()
    attempts: list[str] = []

    class Flaky(Actor[str]):
        def __init__(self, hook: str) -> None:
            self.hook = hook

        async def on_restart(self, error: BaseException) -> None:
            attempts.append(f"on_restart {self.hook}")
            if self.hook == "on_restart" and attempts.count("on_restart on_restart") == 1:
                await await_stray_cancellation(anyio_backend_name)

        async def handle(self, message: str) -> str:
            if message == "fail":
                raise RuntimeError("fail")
            return message

    def factory(hook: str) -> Callable[[], Flaky]:
        made = 0

        def make() -> Flaky:
            nonlocal made
            made += 1
            if hook == "factory" and made == 2:  # the first restart
                raise_stray_cancellation(anyio_backend_name)
            return Flaky(hook)

        return make

    async with ActorSystem(clock=clock, max_restarts=3, within=5.0) as system:
        for hook in ("factory", "on_restart"):
            ref = await system.spawn(factory(hook), name=hook)
            ref.tell("fail")
            assert await ref.ask("after") == "after"
            actor = next(a for a in system.snapshot().actors if a.name == hook)
            assert actor.restarts == 2  # the failed attempt and the one that worked
            assert actor.state == "running"
    assert attempts == ["on_restart factory", "on_restart on_restart", "on_restart on_restart"]


async def test_a_stray_cancellation_in_on_terminated_is_a_failure_of_that_actor(
    anyio_backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``on_terminated`` awaiting a future cancelled elsewhere: the watcher fails and is
    restarted (as if a message's handler had raised); the notice is in dead letters as
    ``HANDLER_FAILED`` with the error; the failure is logged at ERROR; the body goes on."""

    class Watcher(Actor[Any]):
        def __init__(self, target: ActorRef[Any]) -> None:
            self.target = target

        async def on_start(self) -> None:
            self.context.monitor(self.target)

        async def on_restart(self, error: BaseException) -> None:
            pass  # (the target has ended: nothing to monitor)

        async def handle(self, message: Any) -> Any:
            return message

        async def on_terminated(self, notice: Terminated) -> None:
            await await_stray_cancellation(anyio_backend_name)

    body_done = False
    async with ActorSystem() as system:
        letters = system.dead_letters()
        target = await system.spawn(Echo, name="target")
        watcher = await system.spawn(lambda: Watcher(target), name="watcher")
        target.stop()
        notice = await target.wait_stopped()
        assert await watcher.ask("after") == "after"
        snapshot = next(a for a in system.snapshot().actors if a.name == "watcher")
        assert (snapshot.failures, snapshot.restarts) == (1, 1)
        [letter] = [d for d in drain(letters) if d.recipient == "watcher"]
        assert letter.reason is DeadLetterReason.HANDLER_FAILED
        assert letter.message == notice
        assert type(letter.error) is stray_class(anyio_backend_name)
        assert error_logs(caplog, "watcher")
        letters.close()
        body_done = True
    assert body_done


async def test_a_stray_cancellation_in_on_stop_is_logged_and_the_stop_completes(
    anyio_backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``on_stop`` awaiting a future cancelled elsewhere: the error is logged at ERROR with its
    traceback (``on_stop``'s errors are logged, not raised); the actor still ends as it was
    ending (``ref.stop()``: reason ``"stopped"``, not restarted), and the body goes on."""

    class BadStop(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            return message

        async def on_stop(self) -> None:
            await await_stray_cancellation(anyio_backend_name)

    body_done = False
    async with ActorSystem() as system:
        other = await system.spawn(Echo, name="other")
        ref = await system.spawn(BadStop, name="bad-stop")
        ref.stop()
        notice = await ref.wait_stopped()
        assert (notice.reason, notice.error) == ("stopped", None)
        [record] = error_logs(caplog, "bad-stop")
        assert record.exc_info is not None
        assert type(record.exc_info[1]) is stray_class(anyio_backend_name)
        assert system.lookup("bad-stop") is None
        assert await other.ask("x") == "x"
        body_done = True
    assert body_done


# -- KeyboardInterrupt and SystemExit stop the whole system ----------------------------------------


class Interrupter(Actor[Any]):
    """Raises ``error`` in the hook named ``where``."""

    def __init__(self, where: str, error: BaseException, probe: ActorRef[Any] | None) -> None:
        if where == "factory":
            raise error
        self.where = where
        self.error = error
        self.probe = probe

    async def on_start(self) -> None:
        if self.where == "on_start":
            raise self.error
        if self.probe is not None:
            self.context.monitor(self.probe)

    async def handle(self, message: Any) -> Any:
        if message == "interrupt":
            raise self.error
        return message

    async def on_terminated(self, notice: Terminated) -> None:
        if self.where == "on_terminated":
            raise self.error

    async def on_stop(self) -> None:
        if self.where == "on_stop":
            raise self.error


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("where", ["handle", "on_start", "factory", "on_terminated", "on_stop"])
async def test_keyboard_interrupt_and_system_exit_in_an_actor_end_the_block_unwrapped(
    kind: type[BaseException], where: str
) -> None:
    """``KeyboardInterrupt`` or ``SystemExit`` raised in an actor's code (a handler, a hook, the
    factory) while the body waits forever: the whole system stops, the body is cancelled, and
    the block raises that same exception object, not an exception group, the same on trio as on
    asyncio. Every actor has ended when the block is left. (From the factory or ``on_start``,
    the body's ``spawn`` does not return: it is cancelled, or raises ``ActorStartError``, and the
    block still raises the interrupt.)"""
    error = kind("from an actor")
    refs: list[ActorRef[Any]] = []
    body_cancelled = False

    async def run() -> None:
        nonlocal body_cancelled
        async with ActorSystem() as system:
            refs.extend([await system.spawn(Echo, name=f"bystander-{i}") for i in range(3)])
            target = await system.spawn(Echo, name="target")
            refs.append(target)
            probe = None if where != "on_terminated" else target
            factory = lambda: Interrupter(where, error, probe)  # noqa: E731
            if where in ("on_start", "factory"):
                await system.spawn(factory, name="interrupter")  # raises ActorStartError
            else:
                ref = await system.spawn(factory, name="interrupter")
                refs.append(ref)
                if where == "handle":
                    ref.tell("interrupt")
                elif where == "on_terminated":
                    target.stop()
                else:
                    ref.stop()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                body_cancelled = True
                raise

    with anyio.fail_after(10):  # a guard against a hang; the block ends as soon as it can
        with pytest.raises(kind) as caught:
            await run()
    assert caught.value is error
    assert body_cancelled or where in ("on_start", "factory")  # (then spawn did not return)
    assert all(not ref.is_alive for ref in refs)


async def test_keyboard_interrupt_in_an_actor_while_the_body_asks_it_ends_the_block() -> None:
    """The body is waiting on an ask to the actor that raises ``KeyboardInterrupt``: the block
    raises the ``KeyboardInterrupt`` itself (not the ask's failure, nor a group)."""
    error = KeyboardInterrupt()

    class Raiser(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            raise error

    async def run() -> None:
        async with ActorSystem() as system:
            ref = await system.spawn(Raiser, name="raiser")
            await ref.ask("x")

    with pytest.raises(KeyboardInterrupt) as caught:
        await run()
    assert caught.value is error


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
async def test_keyboard_interrupt_from_a_decider_ends_the_block_unwrapped(
    kind: type[BaseException],
) -> None:
    """A decider is the user's code too, called by the runtime after a handler failed: a
    ``KeyboardInterrupt`` or ``SystemExit`` it raises stops the whole system, and the block
    raises that same object, not an exception group (it used to escape the actor's task into
    the system's task group: wrapped in a group on every backend, and on asyncio stopping the
    event loop itself)."""
    error = kind("from a decider")

    class Failing(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            raise ValueError(message)

    def decider(failure: BaseException) -> Any:
        raise error

    refs: list[ActorRef[Any]] = []

    async def run() -> None:
        async with ActorSystem() as system:
            refs.append(await system.spawn(Echo, name="bystander"))
            ref = await system.spawn(Failing, name="failing", decider=decider)
            refs.append(ref)
            ref.tell("x")
            await anyio.sleep_forever()

    with anyio.fail_after(10):  # a guard against a hang
        with pytest.raises(kind) as caught:
            await run()
    assert caught.value is error
    assert all(not ref.is_alive for ref in refs)


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
async def test_keyboard_interrupt_from_on_stop_while_the_block_stops_its_actors_ends_it_unwrapped(
    kind: type[BaseException],
) -> None:
    """The body has ended normally and the block is stopping the actors one at a time, in
    reverse start order: the ``on_stop`` of the last one started raises ``KeyboardInterrupt`` or
    ``SystemExit``. The graceful stop ends there: the other actors are killed (their
    ``on_stop`` does not run), and the block raises that same object."""
    error = kind("from on_stop")
    stopped: list[str] = []

    class Polite(Actor[Any]):
        async def handle(self, message: Any) -> Any:
            return message

        async def on_stop(self) -> None:
            stopped.append(self.context.name)

    refs: list[ActorRef[Any]] = []

    async def run() -> None:
        async with ActorSystem() as system:
            refs.extend([await system.spawn(Polite, name=f"polite-{i}") for i in range(3)])
            refs.append(await system.spawn(lambda: Interrupter("on_stop", error, None)))

    with anyio.fail_after(10):  # a guard against a hang
        with pytest.raises(kind) as caught:
            await run()
    assert caught.value is error
    assert stopped == []
    assert [(await ref.wait_stopped()).reason for ref in refs[:3]] == ["shutdown"] * 3


# -- exceptions of the body ------------------------------------------------------------------------


async def test_an_exception_group_raised_by_the_body_leaves_the_block_as_that_same_group() -> None:
    """The body raises an ``ExceptionGroup`` of its own, with actors running: the block lets
    that very object out (``is``), not wrapped in a second group, on trio as on asyncio, and the
    actors are killed."""
    group = ExceptionGroup("the body's", [ValueError("a"), KeyError("b")])
    refs: list[ActorRef[Any]] = []

    async def run() -> None:
        async with ActorSystem() as system:
            refs.extend([await system.spawn(Echo) for _ in range(3)])
            raise group

    with pytest.raises(ExceptionGroup) as caught:
        await run()
    assert caught.value is group
    assert [(await r.wait_stopped()).reason for r in refs] == ["shutdown"] * 3


async def test_a_base_exception_group_raised_by_the_body_leaves_the_block_as_raised() -> None:
    """The same for a ``BaseExceptionGroup`` holding a ``BaseException`` subclass."""
    group = BaseExceptionGroup("the body's", [Stray("a"), ValueError("b")])

    async def run() -> None:
        async with ActorSystem() as system:
            await system.spawn(Echo)
            raise group

    with pytest.raises(BaseExceptionGroup) as caught:
        await run()
    assert caught.value is group


async def test_a_custom_base_exception_raised_by_the_body_leaves_the_block_as_raised() -> None:
    """A ``BaseException`` subclass raised by the body itself is not swallowed nor wrapped."""
    error = Stray("the body's")

    async def run() -> None:
        async with ActorSystem() as system:
            await system.spawn(Echo)
            raise error

    with pytest.raises(Stray) as caught:
        await run()
    assert caught.value is error


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
async def test_keyboard_interrupt_raised_by_the_body_leaves_the_block_as_raised(
    kind: type[BaseException],
) -> None:
    """The body itself raises ``KeyboardInterrupt`` or ``SystemExit`` (a Ctrl-C landing in it):
    every actor is killed and the block raises that same object, not a group."""
    error = kind("the body's")
    refs: list[ActorRef[Any]] = []

    async def run() -> None:
        async with ActorSystem() as system:
            refs.append(await system.spawn(Echo))
            raise error

    with pytest.raises(kind) as caught:
        await run()
    assert caught.value is error
    assert (await refs[0].wait_stopped()).reason == "shutdown"


async def test_a_stray_cancellation_in_the_body_leaves_the_block_as_raised(
    anyio_backend_name: str,
) -> None:
    """The body awaits a future that another task cancels (trio: raises ``Stray``): that is not
    the block's own cancellation, so it is not swallowed by the block's task group (which has
    cancelled its actors by then): it leaves the block as raised."""
    caught_error: BaseException | None = None
    try:
        async with ActorSystem() as system:
            await system.spawn(Echo)
            await await_stray_cancellation(anyio_backend_name)
    except BaseException as exc:  # what it is, is the point
        caught_error = exc
    assert type(caught_error) is stray_class(anyio_backend_name)


# -- the actor's own cancellation is not a failure -------------------------------------------------


class Hanger(Actor[Any]):
    """Its handler awaits forever (on asyncio: a future nobody completes, as real I/O would)."""

    def __init__(self, started: list[str]) -> None:
        self.started = started

    async def handle(self, message: Any) -> Any:
        self.started.append(message)
        await anyio.sleep_forever()

    async def on_stop(self) -> None:
        self.started.append("on_stop")


async def test_a_kill_is_the_actors_own_cancellation_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``ref.kill()`` while the handler awaits: the cancellation is the actor's own, not a
    failure: it ends with reason ``"killed"`` (no error), is not restarted, ``on_stop`` does not
    run, the message is a ``KILLED`` dead letter (not ``HANDLER_FAILED``), nothing is logged at
    ERROR, and the body goes on."""
    log: list[str] = []
    built: list[int] = []

    def factory() -> Hanger:
        built.append(1)
        return Hanger(log)

    async with ActorSystem() as system:
        letters = system.dead_letters()
        probe = await Probe[Any].spawn(system)
        ref = await system.spawn(factory, name="hanger")
        ref.tell("hang")
        await wait_all_tasks_blocked()
        ref.kill()
        notice = await ref.wait_stopped()
        assert (notice.reason, notice.error) == ("killed", None)
        await probe.expect_no_message()
        assert (built, log) == ([1], ["hang"])
        [letter] = drain(letters)
        assert (letter.message, letter.reason) == ("hang", DeadLetterReason.KILLED)
        letters.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_system_shutting_down_is_the_actors_own_cancellation_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The system shuts down while handlers await: on a graceful exit, the one that outlives its
    shutdown timeout is killed; on an exit with an exception, every actor is killed at once.
    Either way the reason is ``"shutdown"`` with no error, nothing is restarted, and nothing is
    logged at ERROR."""
    clock = FakeClock()
    log: list[str] = []
    built: list[int] = []

    def factory() -> Hanger:
        built.append(1)
        return Hanger(log)

    async with anyio.create_task_group() as tg, ActorSystem(clock=clock) as system:
        graceful = await system.spawn(factory, name="graceful", shutdown=1.0)
        graceful.tell("hang")
        tg.start_soon(clock.advance, 1.0)  # (once the block waits for the shutdown timeout)
    notice = await graceful.wait_stopped()
    assert (notice.reason, notice.error) == ("shutdown", None)

    refs: list[ActorRef[Any]] = []

    async def run() -> None:
        async with ActorSystem() as system:
            for _ in range(3):
                ref = await system.spawn(factory)
                ref.tell("hang")
                refs.append(ref)
            await wait_all_tasks_blocked()
            raise LookupError("leaving")

    with pytest.raises(LookupError):
        await run()
    for ref in refs:
        notice = await ref.wait_stopped()
        assert (notice.reason, notice.error) == ("shutdown", None)
    assert len(built) == 4
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
