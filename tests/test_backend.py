"""The backend seam: backend detection, the cheap cancel check, and the waiter race rule."""

from __future__ import annotations

import gc
import math
import weakref
from typing import Any

import anyio
import pytest
from anyio import CancelScope

from fearless import _backend, channel

from .conftest import uvloop
from .threads.support import running, wait_for

pytestmark = pytest.mark.anyio


def test_the_fast_asyncio_cancel_check_is_in_use() -> None:
    """If anyio moved its private cancel-scope state, fearless would silently get slower."""
    assert _backend.FAST_ASYNCIO_CANCEL_CHECK


def test_operations_outside_an_event_loop_raise_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="no asyncio or trio event loop"):
        _backend.enter()
    with pytest.raises(RuntimeError, match="no asyncio or trio event loop"):
        _backend.current()


async def test_enter_names_the_running_backend(anyio_backend_name: str) -> None:
    assert _backend.enter().name == anyio_backend_name
    assert _backend.current().name == anyio_backend_name


async def test_a_shielded_scope_inside_a_cancelled_one_lets_operations_through() -> None:
    tx, rx = channel[int](math.inf)
    with tx, rx:
        with CancelScope() as outer:
            outer.cancel()
            with CancelScope(shield=True):
                assert not _backend.enter().cancel_pending
                await tx.send(1)
                assert await rx.receive() == 1
            assert _backend.enter().cancel_pending
            await tx.send(2)  # raises: the outer scope is cancelled
        assert outer.cancelled_caught
        assert tx.statistics().total_sent == 1


async def test_a_cancelled_parent_scope_cancels_operations_in_a_child_scope() -> None:
    tx, rx = channel[int](math.inf)
    with tx, rx:
        with CancelScope() as outer:
            with CancelScope():
                outer.cancel()
                await rx.receive_many(3)
        assert outer.cancelled_caught


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_native_task_that_enters_its_first_anyio_scope_is_still_checked() -> None:
    """anyio creates a task's scope state lazily; a cached 'no state' must not go stale."""
    import asyncio

    tx, rx = channel[int](math.inf)

    async def native() -> tuple[bool, int]:
        await tx.send(1)  # seen by fearless before anyio knows this task
        with CancelScope() as scope:
            scope.cancel()
            await tx.send(2)
        return scope.cancelled_caught, tx.statistics().total_sent

    with tx, rx:
        assert await asyncio.create_task(native()) == (True, 1)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_native_cancel_scopes_are_honoured() -> None:
    import trio

    tx, rx = channel[int](math.inf)
    with tx, rx:
        with trio.CancelScope() as scope:
            scope.cancel()
            await tx.send(1)
        assert scope.cancelled_caught
        assert tx.statistics().total_sent == 0


async def test_a_waiter_is_claimed_at_most_once_and_resumes_with_the_claim() -> None:
    holder: list[_backend.Waiter] = []  # a trio waiter belongs to the task that parks
    results: list[object] = []

    async def park() -> None:
        own = _backend.current().new_waiter()
        holder.append(own)
        assert own.alive()
        results.append(await own.wait(lambda: pytest.fail("not cancelled"), lambda _: True))

    async with anyio.create_task_group() as tg:
        tg.start_soon(park)
        await anyio.wait_all_tasks_blocked()
        (own,) = holder
        assert own.claim("first")
        assert not own.claim("second")
        assert not own.alive()
        assert own.revoke() == "first"  # a party giving up now learns it was claimed
        assert own.wake()
    assert results == ["first"]


async def test_a_cancelled_waiter_aborts_and_cannot_be_claimed() -> None:
    holder: list[_backend.Waiter] = []
    aborted: list[object] = []

    async def park() -> None:
        own = _backend.current().new_waiter()
        holder.append(own)

        def abort() -> object:
            aborted.append(own.revoke())
            return aborted[-1]

        await own.wait(abort, lambda _: True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(park)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert aborted == [_backend.ABORTED]
    assert not holder[0].claim("too late")


async def test_a_waiter_claimed_in_another_thread_is_woken_through_its_loop() -> None:
    holder: list[_backend.Waiter] = []
    results: list[object] = []

    async def park() -> None:
        own = _backend.current().new_waiter()
        holder.append(own)
        results.append(await own.wait(lambda: pytest.fail("not cancelled"), lambda _: True))

    def claim_and_wake() -> None:
        assert holder[0].claim("from a thread")
        assert holder[0].wake()

    async with anyio.create_task_group() as tg:
        tg.start_soon(park)
        await anyio.wait_all_tasks_blocked()
        await anyio.to_thread.run_sync(claim_and_wake)
    assert results == ["from a thread"]


def test_loops_run_one_after_another_in_one_thread_are_told_apart() -> None:
    """The per-thread loop hint never makes an operation yield to the wrong library."""

    async def check(expected: str) -> None:
        tx, rx = channel[int](math.inf, yield_every=1)  # every operation yields
        with tx, rx:
            for i in range(5):
                assert _backend.enter().name == expected
                await tx.send(i)
                assert await rx.receive() == i

    for name in ["asyncio", "trio", "asyncio", "trio"]:
        anyio.run(check, name, backend=name)


def test_loops_in_two_threads_each_see_their_own_backend() -> None:
    """Two threads, two libraries, running at once: each operation resolves its own backend."""
    import threading

    errors: list[BaseException] = []
    both_running = threading.Barrier(2, timeout=30)

    async def check(expected: str) -> None:
        both_running.wait()  # deliberately blocking: hold the thread until the other is in too
        tx, rx = channel[int](math.inf, yield_every=1)
        with tx, rx:
            for i in range(2000):
                assert _backend.enter().name == expected
                await tx.send(i)
                assert await rx.receive() == i

    def in_thread() -> None:
        try:
            anyio.run(check, "asyncio", backend="asyncio")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    try:
        anyio.run(check, "trio", backend="trio")
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []


def test_trio_as_a_guest_on_an_asyncio_loop_is_recognised_as_trio() -> None:
    """trio's guest mode runs trio tasks on an asyncio host loop: they must park the trio way."""
    import asyncio

    import trio

    async def trio_main() -> list[int]:
        tx, rx = channel[int](0)
        got: list[int] = []
        with tx, rx:
            async with trio.open_nursery() as nursery:

                async def receive() -> None:
                    got.append(await rx.receive())

                nursery.start_soon(receive)
                await tx.send(5)  # parks until the receiver takes it: a trio park
        assert _backend.current().name == "trio"
        return got

    async def host() -> list[int]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[int]] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=lambda outcome: done.set_result(outcome.unwrap()),
            host_uses_signal_set_wakeup_fd=True,
        )
        return await done

    assert asyncio.run(host()) == [5]


# --------------------------------------------------------------------------------------------
# is_own_cancellation: the task's own cancellation, or a stray CancelledError (a failure)
# --------------------------------------------------------------------------------------------


async def test_a_cancellation_inside_a_cancelled_scope_is_the_tasks_own() -> None:
    verdicts: list[bool] = []
    with CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(3600)
        except BaseException as exc:
            verdicts.append(_backend.is_own_cancellation(exc))
            raise
    assert scope.cancelled_caught
    assert verdicts == [True]


async def test_a_cancellation_from_a_scope_cancelled_by_another_task_is_the_tasks_own() -> None:
    verdicts: list[bool] = []

    async def parked(task_status: anyio.abc.TaskStatus[CancelScope]) -> None:
        with CancelScope() as scope:
            task_status.started(scope)
            try:
                await anyio.sleep_forever()
            except BaseException as exc:
                verdicts.append(_backend.is_own_cancellation(exc))
                raise

    async with anyio.create_task_group() as tg:
        scope = await tg.start(parked)
        await anyio.wait_all_tasks_blocked()
        scope.cancel()
    assert verdicts == [True]


async def test_a_native_cancellation_of_the_task_is_its_own(anyio_backend_name: str) -> None:
    """asyncio's ``task.cancel()`` of the running task (and on trio, a trio cancel scope, its
    native cancellation) is the task's own cancellation."""
    verdicts: list[bool] = []
    if anyio_backend_name == "trio":
        import trio

        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.sleep(3600)
            except BaseException as exc:
                verdicts.append(_backend.is_own_cancellation(exc))
                raise
        assert scope.cancelled_caught
    else:
        import asyncio

        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError as exc:
            verdicts.append(_backend.is_own_cancellation(exc))
            assert task.uncancel() == 0  # done with it: this test swallows its own request
    assert verdicts == [True]


async def test_a_cancelled_error_from_a_future_someone_else_cancelled_is_stray(
    anyio_backend_name: str,
) -> None:
    """Awaiting a future that another task cancels raises CancelledError in a task nobody
    cancelled: that is not the task's cancellation, and is_own_cancellation must say so."""
    if anyio_backend_name == "trio":
        pytest.skip(
            "trio raises Cancelled only into a task whose own cancel scope was cancelled, and "
            "has no future another task could cancel: a stray Cancelled cannot happen there"
        )
    import asyncio

    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    verdicts: list[bool] = []

    async def cancel_it() -> None:
        await anyio.wait_all_tasks_blocked()
        future.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_it)
        with CancelScope():  # a scope around the await, not cancelled
            try:
                await future
            except asyncio.CancelledError as exc:
                verdicts.append(_backend.is_own_cancellation(exc))
    assert verdicts == [False]


async def test_a_stray_cancelled_error_in_a_shield_under_a_cancelled_scope_is_stray(
    anyio_backend_name: str,
) -> None:
    """A shield hides the outer scope's cancellation: under it, a CancelledError from a cancelled
    future is still stray."""
    if anyio_backend_name == "trio":
        pytest.skip("a stray Cancelled cannot happen on trio (see the test above)")
    import asyncio

    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.cancel()
    verdicts: list[bool] = []
    with CancelScope() as outer:
        outer.cancel()
        with CancelScope(shield=True):
            try:
                await future
            except asyncio.CancelledError as exc:
                verdicts.append(_backend.is_own_cancellation(exc))
        await anyio.lowlevel.checkpoint()  # the outer scope's own cancellation, absorbed below
    assert outer.cancelled_caught
    assert verdicts == [False]


async def test_any_cancelled_error_inside_a_cancelled_scope_is_the_tasks_own(
    anyio_backend_name: str,
) -> None:
    """Right after the task cancels its own scope, before anyio has cancelled the task natively
    (it does so at the task's next yield), the scope alone says the task is being cancelled: a
    CancelledError raised there is its own, whatever raised it."""
    if anyio_backend_name == "trio":
        pytest.skip("a stray Cancelled cannot happen on trio (see the tests above)")
    import asyncio

    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.cancel()
    task = asyncio.current_task()
    assert task is not None
    verdicts: list[bool] = []
    with CancelScope() as scope:
        scope.cancel()
        assert task.cancelling() == 0  # anyio has not cancelled the task natively yet
        try:
            await future  # done already: raises without yielding
        except asyncio.CancelledError as exc:
            verdicts.append(_backend.is_own_cancellation(exc))
        await anyio.lowlevel.checkpoint()
    assert verdicts == [True]


async def test_an_exception_that_is_not_a_cancellation_is_never_the_tasks_own(
    anyio_backend_name: str,
) -> None:
    """Only the backend's cancellation exception itself can be the task's own: not another
    exception, and not a group holding a cancellation (the caller must look inside)."""
    with CancelScope() as scope:
        scope.cancel()
        assert not _backend.is_own_cancellation(ValueError("not a cancellation"))
        if anyio_backend_name != "trio":  # trio.Cancelled has no public constructor
            import asyncio

            group = BaseExceptionGroup("grouped", [asyncio.CancelledError()])
            assert not _backend.is_own_cancellation(group)
            assert _backend.is_own_cancellation(asyncio.CancelledError())
        await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught


# -- the loop registry: what a loop's shutdown closes for threads (fearless._backend.bind) -------


def _asyncio_factories() -> list[Any]:
    """The asyncio loops a test can make and close by hand: asyncio's, and uvloop's."""
    import asyncio

    return [
        pytest.param(asyncio.new_event_loop, id="asyncio"),
        pytest.param(
            getattr(uvloop, "new_event_loop", None),
            id="uvloop",
            marks=pytest.mark.skipif(uvloop is None, reason="no uvloop build for this Python"),
        ),
    ]


async def test_an_endpoint_bound_here_is_not_bound_again(
    anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At ``yield_every=1`` (anyio's schedule) every operation passes through the bind; once an
    endpoint is bound to this loop, that must cost nothing more: no exact bind, no registering
    again, and on asyncio no search for the running loop (a system call on CPython 3.11)."""
    tx, rx = channel[int](math.inf, yield_every=1)
    with tx, rx:
        await tx.send(0)
        await rx.receive()  # both endpoints are bound now
        home = tx._home
        assert home is not None
        assert rx._home is home
        registered = len(home.endpoints)
        calls: list[str] = []

        def counting(name: str, real: Any) -> Any:
            def counted(*args: Any) -> Any:
                calls.append(name)
                return real(*args)

            return counted

        monkeypatch.setattr(_backend, "bind", counting("bind", _backend.bind))
        monkeypatch.setattr(_backend, "_register", counting("register", _backend._register))
        if anyio_backend_name == "asyncio":
            import asyncio

            monkeypatch.setattr(
                _backend, "_running_loop", counting("running_loop", asyncio._get_running_loop)
            )
        for i in range(200):
            await tx.send(i)
            assert await rx.receive() == i
        monkeypatch.undo()
        assert calls == []
        assert tx._home is home
        assert rx._home is home
        assert len(home.endpoints) == registered


async def test_a_long_lived_loop_does_not_pile_up_the_endpoints_of_short_lived_streams() -> None:
    """A server that makes a stream per request (the MCP SDK does) binds two new endpoints each
    time; the loop's list of them is swept as it grows, so it stays bounded by the endpoints
    still alive, not by every endpoint the loop has ever seen."""
    import fearless

    longest = 0
    for i in range(3000):
        send, receive = fearless.create_memory_object_stream[int](1)
        with send, receive:
            await send.send(i)
            assert await receive.receive() == i
            home = send._home
        assert home is not None
        longest = max(longest, len(home.endpoints))
    assert longest <= 2 * _backend._FIRST_SWEEP


async def _round_trip() -> None:
    tx, rx = channel[int](1)
    with tx, rx:
        await tx.send(1)
        assert await rx.receive() == 1


@pytest.mark.parametrize("factory", _asyncio_factories())
def test_loops_closed_without_shutting_down_are_not_kept_alive(factory: Any) -> None:
    """``run_until_complete`` then ``close()``, without ``shutdown_asyncgens()``, never tells
    fearless that the loop ended, so nothing unregisters it; still, nothing of fearless may keep
    such a loop alive. Of 1000 loops that each used a channel, none survives a collection but
    possibly the last (this thread's hint of the loop last seen keeps it until the next
    operation elsewhere)."""
    loops: list[weakref.ref[Any]] = []
    for _ in range(1000):
        loop = factory()
        try:
            loop.run_until_complete(_round_trip())
        finally:
            loop.close()
        loops.append(weakref.ref(loop))
        del loop
    gc.collect()
    assert sum(ref() is not None for ref in loops) <= 1


def test_trio_runs_leave_nothing_registered() -> None:
    """Every trio run ends (its system tasks are cancelled), and its registration goes with it:
    after 300 runs that each used a channel, no run is registered or kept alive."""
    import trio

    tokens: list[weakref.ref[Any]] = []

    async def main() -> None:
        tokens.append(weakref.ref(trio.lowlevel.current_trio_token()))
        await _round_trip()

    for _ in range(300):
        trio.run(main)
    gc.collect()
    assert _backend._trio_homes == {}
    assert sum(ref() is not None for ref in tokens) <= 1


@pytest.mark.parametrize("factory", _asyncio_factories())
def test_a_loop_shut_down_by_hand_releases_the_thread_it_fed(factory: Any) -> None:
    """The same hand-run loop, shut down properly (``shutdown_asyncgens()`` before ``close()``):
    the sender its task used and left open counts as closed for the thread reading the channel."""
    tx, rx = channel[int](math.inf)

    async def send_one() -> None:
        await tx.send(1)  # and return, leaving tx open

    with rx, running(lambda: list(rx.iter_blocking())) as consumer:
        wait_for(lambda: rx.statistics().tasks_waiting_receive == 1)
        loop = factory()
        try:
            loop.run_until_complete(send_one())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
        assert consumer.finish() == [1]
    assert tx._closed


@pytest.mark.parametrize("factory", _asyncio_factories())
def test_an_endpoint_belongs_to_the_loop_that_used_it_last(factory: Any) -> None:
    """Two loops alive at once, used one after the other: the sender moves to the second (at its
    first yield there: at ``yield_every=1``, its first operation), so the second's shutdown
    closes it for the thread reading."""
    tx, rx = channel[int](math.inf, yield_every=1)

    async def send(item: int) -> None:
        await tx.send(item)

    first, second = factory(), factory()
    try:
        with rx, running(lambda: list(rx.iter_blocking())) as consumer:
            wait_for(lambda: rx.statistics().tasks_waiting_receive == 1)
            first.run_until_complete(send(1))
            second.run_until_complete(send(2))
            assert tx._home.key is second
            second.run_until_complete(second.shutdown_asyncgens())
            assert consumer.finish() == [1, 2]
        assert tx._closed
        first.run_until_complete(first.shutdown_asyncgens())
    finally:
        first.close()
        second.close()
