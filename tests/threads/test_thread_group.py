"""``thread_group``: threads started on clones of their endpoints, cancelled by closing, joined.

What must hold, on every backend (and on free-threaded CPython): nothing lost or duplicated in a
pipeline of many threads; the originals are closed, so a channel the threads feed ends when they
are done; the first failure is raised (the rest are notes); cancellation, an error of the block,
or a failing thread wakes every thread blocked on the group's endpoints, and the exit waits for
all of them, so no thread outlives the block; bad input is refused by name.
"""

from __future__ import annotations

import functools
import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
from anyio import CancelScope, ClosedResourceError, EndOfStream, WouldBlock

import fearless
from fearless.testing import wait_all_tasks_blocked

from .support import DEADLINE, until, wait_for

pytestmark = pytest.mark.anyio

_names = itertools.count()


def unique(what: str) -> str:
    """A thread-name prefix that no other test uses."""
    return f"thread-group test {next(_names)} {what}"


def alive(prefix: str) -> list[str]:
    """The threads still alive whose names start with ``prefix``."""
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def parked_receivers(endpoint: Any) -> int:
    return int(endpoint.statistics().tasks_waiting_receive)


def parked_senders(endpoint: Any) -> int:
    stats = endpoint.statistics()
    return int(getattr(stats, "broadcast", stats).tasks_waiting_send)


class Ends:
    """How each thread of a test ended: the type of what its function raised, or None."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_thread: dict[str, type[BaseException] | None] = {}

    def record(self, fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def recorded(*args: Any) -> None:
            name = threading.current_thread().name
            try:
                fn(*args)
            except BaseException as exc:
                with self._lock:
                    self.by_thread[name] = type(exc)
                raise
            with self._lock:
                self.by_thread[name] = None

        return recorded


# -- the pipeline ------------------------------------------------------------------------------


async def test_a_many_thread_pipeline_loses_and_duplicates_nothing() -> None:
    """4 producer tasks feed 6 squaring threads, which feed 3 tagging threads, which feed the
    block. Every square arrives exactly once; each stage's channel ends by itself once the
    threads feeding it are done (the group closed the originals), so the block's ``async for``
    ends with nothing closed by hand; every clone is closed and no thread is left."""
    producers, per_producer = 4, 2000
    prefix = unique("pipeline")
    jobs_tx, jobs_rx = fearless.channel[int](16)
    mid_tx, mid_rx = fearless.channel[int](8)
    out_tx, out_rx = fearless.channel[tuple[int, str]](8)

    def square(jobs: fearless.ChannelReceiver[int], mid: fearless.Sender[int]) -> None:
        for n in jobs.iter_blocking():
            mid.send_blocking(n * n)

    def tag(mid: fearless.ChannelReceiver[int], out: fearless.Sender[tuple[int, str]]) -> None:
        me = threading.current_thread().name
        for n in mid.iter_blocking():
            out.send_blocking((n, me))

    async def produce(tx: fearless.Sender[int], first: int) -> None:
        with tx:
            for n in range(first, first + per_producer):
                await tx.send(n)

    got: Counter[int] = Counter()
    by_thread: Counter[str] = Counter()
    async with fearless.thread_group() as group:
        group.start(square, jobs_rx, mid_tx, n=6, name=f"{prefix} square")
        group.start(tag, mid_rx, out_tx, n=3, name=f"{prefix} tag")
        async with anyio.create_task_group() as tg:
            with jobs_tx:
                for p in range(producers):
                    tg.start_soon(produce, jobs_tx.clone(), p * per_producer)
            with out_rx:
                async for n, name in out_rx:
                    got[n] += 1
                    by_thread[name] += 1
    assert got == Counter(n * n for n in range(producers * per_producer))
    assert set(by_thread) <= {f"{prefix} tag {i}" for i in range(3)}
    assert alive(prefix) == []
    for endpoint in (jobs_rx, mid_tx, out_tx):
        stats = endpoint.statistics()
        assert (stats.open_send_streams, stats.open_receive_streams) == (0, 0)
    s = group.statistics()
    assert (s.started, s.running, s.failed, s.cancelled, s.state) == (9, 0, 0, False, "finished")


async def test_a_forgotten_close_that_used_to_hang_now_ends() -> None:
    """By hand, threads given clones while the originals stay open: after every thread has
    ended, the results channel has still not ended (``receive_nowait`` says WouldBlock, not
    EndOfStream), so an ``async for`` over it would wait forever. The same workers started by a
    group: the originals are closed for the caller, and the ``async for`` ends with every item."""

    def double(jobs: fearless.ChannelReceiver[int], out: fearless.Sender[int]) -> None:
        with jobs, out:  # a careful worker: its own clones are closed
            for n in jobs.iter_blocking():
                out.send_blocking(2 * n)

    # By hand, forgetting to close jobs_rx and out_tx after cloning them for the threads.
    jobs_tx, jobs_rx = fearless.channel[int](100)
    out_tx, out_rx = fearless.channel[int](100)
    threads = [
        threading.Thread(target=double, args=(jobs_rx.clone(), out_tx.clone())) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    with jobs_tx:
        for n in range(50):
            await jobs_tx.send(n)
    received = [await out_rx.receive() for _ in range(50)]  # every item is there ...
    for thread in threads:
        await anyio.to_thread.run_sync(thread.join, DEADLINE)
    assert not any(thread.is_alive() for thread in threads)
    with pytest.raises(WouldBlock):  # ... but the stream never ends: out_tx is still open
        out_rx.receive_nowait()
    assert sorted(received) == [2 * n for n in range(50)]
    for endpoint in (jobs_rx, out_tx, out_rx):
        endpoint.close()

    # With a group.
    jobs_tx, jobs_rx = fearless.channel[int](100)
    out_tx, out_rx = fearless.channel[int](100)
    async with fearless.thread_group() as group:
        group.start(double, jobs_rx, out_tx, n=3)
        with jobs_tx:
            for n in range(50):
                await jobs_tx.send(n)
        with out_rx:
            received = [n async for n in out_rx]  # ends: the threads held the last senders
    assert sorted(received) == [2 * n for n in range(50)]
    with pytest.raises(ClosedResourceError):  # the group closed the originals
        jobs_rx.receive_nowait()


async def test_each_thread_gets_its_own_clones_and_the_originals_are_closed() -> None:
    """Anything with clone() and close() is an endpoint: each of 4 threads gets a distinct
    clone of each, in the order given; every clone is closed when its thread's function
    returns, even if the function never closes it; the originals are closed by start()."""

    class Token:
        def __init__(self, origin: str) -> None:
            self.origin = origin
            self.closed = False
            self.clones: list[Token] = []

        def clone(self) -> Token:
            clone = Token(self.origin)
            self.clones.append(clone)
            return clone

        def close(self) -> None:
            self.closed = True

    a, b = Token("a"), Token("b")
    seen: list[tuple[Token, Token]] = []
    lock = threading.Lock()

    def keep(x: Token, y: Token) -> None:
        assert not x.closed
        assert not y.closed
        with lock:
            seen.append((x, y))

    async with fearless.thread_group() as group:
        group.start(keep, a, b, n=4)
        assert a.closed
        assert b.closed
    assert sorted(map(id, (x for x, _ in seen))) == sorted(map(id, a.clones))
    assert sorted(map(id, (y for _, y in seen))) == sorted(map(id, b.clones))
    assert [(x.origin, y.origin) for x, y in seen] == [("a", "b")] * 4
    assert all(t.closed for t in a.clones + b.clones)


async def test_an_endpoint_whose_close_raises_is_a_failure_and_hangs_nothing() -> None:
    """A custom endpoint whose ``close()`` raises (when the thread's clone is closed at its end):
    the thread still counts as ended, the exit does not wait forever, and the error is raised
    as a failure naming the endpoint."""

    class Faulty:
        def __init__(self, fails: bool) -> None:
            self.fails = fails

        def clone(self) -> Faulty:
            return Faulty(fails=True)  # the original closes fine; its clones do not

        def close(self) -> None:
            if self.fails:
                raise OSError("close failed")

        def __repr__(self) -> str:
            return "<Faulty>"

    group = fearless.thread_group()

    async def run() -> None:
        async with group:
            group.start(lambda endpoint: None, Faulty(fails=False))

    with pytest.raises(OSError, match="close failed") as caught:
        await run()
    assert caught.value.__notes__ == ["closing <Faulty>: the first failure in its thread group"]
    assert group.statistics().running == 0


async def test_broadcast_endpoints_give_every_subscriber_thread_every_item() -> None:
    """Two sender threads on clones of a ``BroadcastSender`` and three subscriber threads on
    clones of one ``Subscription``: each subscriber sees all 2 x 100 items, each sender's in its
    order, and the subscriptions end when both sender threads are done (the group closed the
    original sender)."""
    tx, sub = fearless.broadcast[tuple[int, int]](8, on_lag="block")
    report_tx, report_rx = fearless.channel[list[tuple[int, int]]](3)

    def send(tx: fearless.BroadcastSender[tuple[int, int]]) -> None:
        me = int(threading.current_thread().name.rsplit(" ", 1)[1])
        for i in range(100):
            tx.send_blocking((me, i))

    def listen(
        sub: fearless.Subscription[tuple[int, int]], report: fearless.Sender[list[tuple[int, int]]]
    ) -> None:
        report.send_blocking(list(sub.iter_blocking()))

    async with fearless.thread_group() as group:
        group.start(listen, sub, report_tx, n=3)  # subscribed before anything is sent
        group.start(send, tx, n=2, name="sender")
        with report_rx:
            reports = [r async for r in report_rx]
    assert len(reports) == 3
    for seen in reports:
        for me in (0, 1):
            assert [i for who, i in seen if who == me] == list(range(100))


async def test_a_thread_can_start_another_thread_in_its_group() -> None:
    """``start`` from one of the group's threads (with a clone of its own endpoint) adds a
    member: the exit waits for it too, and its items arrive."""
    out_tx, out_rx = fearless.channel[str](4)

    def second(out: fearless.Sender[str]) -> None:
        out.send_blocking("second")

    def first(group: fearless.ThreadGroup, out: fearless.Sender[str]) -> None:
        group.start(second, out.clone())
        out.send_blocking("first")

    async with fearless.thread_group() as group:
        group.start(functools.partial(first, group), out_tx)
        with out_rx:
            got = sorted([s async for s in out_rx])
    assert got == ["first", "second"]
    assert group.statistics().started == 2


# -- failures ---------------------------------------------------------------------------------


async def test_the_first_failure_is_raised_and_later_ones_are_notes() -> None:
    """Thread ``first`` raises ValueError; that cancels the group, which wakes the two threads
    blocked in ``receive_blocking``; they raise KeyError when woken, so they fail after it. The
    exit raises the ValueError itself (no exception group), with a note naming its thread and
    one per later failure, and its own ``__context__`` (not the block's cancellation);
    ``group.failures`` lists all three, first to last."""
    tx, rx = fearless.channel[int](1)

    def fail_when_woken(rx: fearless.ChannelReceiver[int]) -> None:
        try:
            rx.receive_blocking()
        except ClosedResourceError:
            raise KeyError("woken") from None

    def fail(rx: fearless.ChannelReceiver[int]) -> None:
        try:
            raise KeyError("in the thread")
        except KeyError:
            raise ValueError("first")  # noqa: B904 - its context is the KeyError, and stays so

    group = fearless.thread_group()

    async def run() -> None:
        async with group:
            group.start(fail_when_woken, rx.clone(), n=2, name="later")
            await until(lambda: parked_receivers(tx) == 2)
            group.start(fail, rx, name="first")
            await anyio.sleep_forever()  # cancelled by the failure

    with tx, pytest.raises(ValueError, match="first") as caught:  # tx stays open throughout
        await run()
    error = caught.value
    assert error.__notes__[0] == "thread 'first': the first failure in its thread group"
    assert sorted(error.__notes__[1:]) == [
        "thread 'later 0' failed too: KeyError('woken')",
        "thread 'later 1' failed too: KeyError('woken')",
    ]
    assert [type(e) for e in group.failures] == [ValueError, KeyError, KeyError]
    assert group.failures[0] is error
    assert repr(error.__context__) == "KeyError('in the thread')"  # not the block's cancellation


async def test_a_failing_thread_cancels_the_block_and_wakes_its_siblings() -> None:
    """The block sends jobs forever; the thread that takes job 5 raises. The block is cancelled
    (not failed: the group cancels its scope before closing the channels, so the block's send
    sees the cancellation, never a broken channel), the other threads, blocked or busy, end
    quietly, and the exit raises that thread's error alone."""
    ends = Ends()
    prefix = unique("siblings")
    jobs_tx, jobs_rx = fearless.channel[int](2)

    @ends.record
    def work(jobs: fearless.ChannelReceiver[int]) -> None:
        for job in jobs.iter_blocking():
            if job == 5:
                raise ValueError(f"job {job}")

    group = fearless.thread_group()

    async def run() -> None:
        async with group:
            group.start(work, jobs_rx, n=4, name=prefix)
            for job in itertools.count():
                await jobs_tx.send(job)

    with jobs_tx, pytest.raises(ValueError, match="job 5") as caught:
        await run()
    assert group.failures == (caught.value,)
    assert sorted(ends.by_thread.values(), key=str) == sorted(
        [ValueError, ClosedResourceError, ClosedResourceError, ClosedResourceError], key=str
    )
    assert alive(prefix) == []


async def test_a_thread_failing_while_the_exit_waits_is_raised_and_cancels_the_rest() -> None:
    """The block ends normally while two threads wait on a channel the test keeps open (they
    would wait forever) and a third waits for a gate. Once the exit is waiting, the gate opens
    and the third thread raises: that cancels the group, the two waiting threads wake, and the
    exit raises the error."""
    tx, rx = fearless.channel[int](1)
    gate = threading.Event()

    def wait_forever(rx: fearless.ChannelReceiver[int]) -> None:
        rx.receive_blocking()

    def fail_at_the_gate() -> None:
        gate.wait(DEADLINE)
        raise ValueError("at the gate")

    async def open_the_gate() -> None:
        await wait_all_tasks_blocked()  # the exit is waiting for the threads
        gate.set()

    group = fearless.thread_group()

    async def run() -> None:
        async with group:
            group.start(wait_forever, rx, n=2)
            group.start(fail_at_the_gate)

    with tx:
        async with anyio.create_task_group() as tg:
            tg.start_soon(open_the_gate)
            with pytest.raises(ValueError, match="at the gate"):
                await run()
    assert len(group.failures) == 1
    assert group.statistics().running == 0


async def test_a_failure_beats_a_cancellation_from_outside() -> None:
    """An outer scope cancels the block; the group closes the threads' endpoints; the woken
    thread fails while cleaning up. The failure is raised, not swallowed with the cancellation."""
    tx, rx = fearless.channel[int](1)

    def fail_when_woken(rx: fearless.ChannelReceiver[int]) -> None:
        try:
            rx.receive_blocking()
        except ClosedResourceError:
            raise ValueError("cleanup failed") from None

    async def run(outer: CancelScope) -> None:
        async with fearless.thread_group() as group:
            group.start(fail_when_woken, rx)
            await until(lambda: parked_receivers(tx) == 1)
            outer.cancel()
            await anyio.sleep_forever()

    with tx, CancelScope() as outer, pytest.raises(ValueError, match="cleanup failed"):
        await run(outer)
    assert outer.cancel_called


async def test_the_blocks_own_error_propagates_as_raised_with_later_thread_failures_as_notes() -> (
    None
):
    """The block raises first; a thread then fails while the group cancels it. The block's
    exception propagates (the same object), with a note naming the thread's failure."""
    tx, rx = fearless.channel[int](1)

    def fail_when_woken(rx: fearless.ChannelReceiver[int]) -> None:
        try:
            rx.receive_blocking()
        except ClosedResourceError:
            raise KeyError("woken") from None

    raised = RuntimeError("the block")
    group = fearless.thread_group()

    async def run() -> None:
        async with group:
            group.start(fail_when_woken, rx, name="w")
            await until(lambda: parked_receivers(tx) == 1)
            raise raised

    with tx, pytest.raises(RuntimeError) as caught:
        await run()
    assert caught.value is raised
    assert caught.value.__notes__ == ["thread 'w' failed too: KeyError('woken')"]
    assert group.failures == (raised, group.failures[1])


async def test_channel_ends_are_a_threads_normal_way_out_but_using_a_closed_endpoint_fails() -> (
    None
):
    """``EndOfStream`` (every sender gone) and ``SendBrokenError`` (every receiver gone) end a
    thread quietly; ``ClosedResourceError`` before the group has cancelled means the thread
    used an endpoint after closing it, and is a failure."""
    ends = Ends()
    a_tx, a_rx = fearless.channel[int](1)
    b_tx, b_rx = fearless.channel[int](0)

    @ends.record
    def read_past_the_end(rx: fearless.ChannelReceiver[int]) -> None:
        rx.receive_blocking()

    @ends.record
    def send_to_nobody(tx: fearless.Sender[int]) -> None:
        tx.send_blocking(1)

    a_tx.close()
    b_rx.close()
    async with fearless.thread_group() as group:
        group.start(read_past_the_end, a_rx, name="eos")
        group.start(send_to_nobody, b_tx, name="broken")
    assert ends.by_thread == {"eos": EndOfStream, "broken": fearless.SendBrokenError}
    assert group.failures == ()

    def use_after_close(rx: fearless.ChannelReceiver[int]) -> None:
        rx.close()
        rx.receive_nowait()

    tx, rx = fearless.channel[int](1)
    with tx, pytest.raises(ClosedResourceError):
        async with fearless.thread_group() as group:
            group.start(use_after_close, rx)


# -- cancellation -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["outer scope", "block error", "group.cancel()"])
async def test_every_kind_of_blocked_thread_wakes_and_the_exit_waits_for_it(how: str) -> None:
    """Five threads, each blocked on a group endpoint: ``receive_blocking`` and
    ``iter_blocking`` on an empty channel, ``send_blocking`` on a full one, a subscription's
    ``receive_blocking``, a ``BroadcastSender.send_blocking`` on a full ring (``"block"``).
    However the block ends (an outer cancellation, an error, ``group.cancel()``), each wakes
    with its endpoint's closed error, none counts as a failure, and none outlives the block."""
    ends = Ends()
    prefix = unique(how)
    empty_tx, empty_rx = fearless.channel[int](1)
    full_tx, full_rx = fearless.channel[int](1)
    full_tx.send_nowait(0)
    news_tx, news = fearless.broadcast[int](1)
    ring_tx, slow = fearless.broadcast[int](1, on_lag="block")
    ring_tx.send_nowait(0)  # the ring is full until `slow` reads, which it never does

    @ends.record
    def receive(rx: fearless.ChannelReceiver[int]) -> None:
        rx.receive_blocking()

    @ends.record
    def iterate(rx: fearless.ChannelReceiver[int]) -> None:
        for _ in rx.iter_blocking():
            pass

    @ends.record
    def send(tx: fearless.Sender[int] | fearless.BroadcastSender[int]) -> None:
        tx.send_blocking(1)

    @ends.record
    def subscribe(sub: fearless.Subscription[int]) -> None:
        sub.receive_blocking()

    raised = RuntimeError("the block failed")
    group = fearless.thread_group()

    async def run(outer: CancelScope) -> None:
        async with group:
            group.start(receive, empty_rx.clone(), name=f"{prefix} receive")
            group.start(iterate, empty_rx, name=f"{prefix} iterate")
            group.start(send, full_tx, name=f"{prefix} send")
            group.start(subscribe, news, name=f"{prefix} subscribe")
            group.start(send, ring_tx, name=f"{prefix} broadcast")
            await until(lambda: parked_receivers(empty_tx) == 2)
            await until(lambda: parked_senders(full_rx) == 1)
            await until(lambda: parked_receivers(news_tx) == 1)
            await until(lambda: parked_senders(slow) == 1)
            assert group.statistics().running == 5
            if how == "outer scope":
                outer.cancel()
            elif how == "block error":
                raise raised
            else:
                group.cancel()
            await anyio.sleep_forever()

    with empty_tx, full_rx, news_tx, slow, CancelScope() as outer:
        if how == "block error":
            with pytest.raises(RuntimeError) as caught:
                await run(outer)
            assert caught.value is raised
            assert not hasattr(caught.value, "__notes__")  # no thread failed
        else:
            await run(outer)
    assert ends.by_thread == {
        f"{prefix} receive": ClosedResourceError,
        f"{prefix} iterate": ClosedResourceError,
        f"{prefix} send": fearless.SendClosedError,
        f"{prefix} subscribe": ClosedResourceError,
        f"{prefix} broadcast": fearless.SendClosedError,
    }
    assert group.failures == ((raised,) if how == "block error" else ())
    assert alive(prefix) == []
    assert group.statistics().cancelled


@pytest.mark.parametrize("seed", range(10))
async def test_cancelling_at_a_random_point_wakes_every_thread_and_ends_quietly(seed: int) -> None:
    """A random number of threads between a producer task and the block, through channels of
    random capacity (rendezvous included); at a random item, the group is cancelled by one of:
    an outer scope, ``group.cancel()`` from the block, ``group.cancel()`` from a thread. Threads
    are caught wherever they are (blocked in ``iter_blocking`` or ``send_blocking``, or busy).
    Every thread ends by a channel's way out, nothing is a failure, the cancellation ends at the
    group (``group.cancel()``) or the outer scope, no item arrives twice, and no thread outlives
    the block."""
    rng = random.Random(seed)
    how = rng.choice(["outer scope", "block", "thread"])
    at = rng.randrange(0, 200)
    threads = rng.randrange(1, 8)
    capacity = rng.choice([0, 1, 4, 16])
    prefix = unique(f"random {seed}")
    ends = Ends()
    jobs_tx, jobs_rx = fearless.channel[int](capacity)
    out_tx, out_rx = fearless.channel[int](capacity)
    got: list[int] = []
    after_the_group = False

    async def produce(tx: fearless.Sender[int]) -> None:
        with tx:
            for n in range(10**9):
                await tx.send(n)

    with CancelScope() as outer, out_rx:
        async with fearless.thread_group() as group:

            @ends.record
            def work(jobs: fearless.ChannelReceiver[int], out: fearless.Sender[int]) -> None:
                for n in jobs.iter_blocking():
                    out.send_blocking(n)
                    if how == "thread" and n == at:
                        group.cancel()

            group.start(work, jobs_rx, out_tx, n=threads, name=prefix)
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce, jobs_tx)
                async for n in out_rx:
                    got.append(n)
                    if len(got) > at and how == "outer scope":
                        outer.cancel()
                    elif len(got) > at and how == "block":
                        group.cancel()
        after_the_group = True  # group.cancel() ends at the group; an outer cancellation does not
    assert after_the_group == (how != "outer scope")
    assert len(got) == len(set(got))
    assert len(got) > at or how == "thread"
    assert group.failures == ()
    assert len(ends.by_thread) == threads
    ways_out = {None, ClosedResourceError, fearless.SendClosedError, fearless.SendBrokenError}
    assert set(ends.by_thread.values()) <= ways_out
    assert alive(prefix) == []
    s = group.statistics()
    assert (s.running, s.cancelled, s.state) == (0, True, "finished")


async def test_the_exit_waits_for_the_threads_without_blocking_the_event_loop() -> None:
    """A thread held (outside any channel) until a task of the same loop lets it go: the block
    ends, the exit waits, and the task still runs, so the thread is released and the exit
    returns. An exit that blocked the loop would deadlock here."""
    release = threading.Event()
    prefix = unique("held")

    async def let_go() -> None:
        await wait_all_tasks_blocked()
        release.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(let_go)
        async with fearless.thread_group() as group:
            group.start(functools.partial(release.wait, DEADLINE), name=prefix)
        assert release.is_set()
        assert alive(prefix) == []


def test_a_native_asyncio_cancellation_does_not_leave_a_thread_running() -> None:
    """``task.cancel()`` gets through anyio's shield: a second native cancellation landing while
    the exit waits for a thread (held in its cleanup) does not end the wait early; the
    cancellation propagates once the thread has ended."""
    import asyncio

    release = threading.Event()
    cleaning = threading.Event()
    threads: list[threading.Thread] = []
    tx, rx = fearless.channel[int](1)

    def work(rx: fearless.ChannelReceiver[int]) -> None:
        threads.append(threading.current_thread())
        try:
            rx.receive_blocking()
        finally:
            cleaning.set()
            release.wait(DEADLINE)  # the thread cannot end until the test says so

    async def run() -> None:
        async with fearless.thread_group() as group:
            group.start(work, rx)
            await anyio.sleep_forever()

    async def main() -> None:
        task = asyncio.create_task(run())
        await asyncio.to_thread(wait_for, lambda: parked_receivers(tx) == 1)
        task.cancel()  # the block exits, closing the thread's endpoint; the exit waits
        await asyncio.to_thread(cleaning.wait, DEADLINE)
        task.cancel()  # a second, native cancellation lands during that wait
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done()  # still waiting for the thread
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not threads[0].is_alive()

    with tx:
        asyncio.run(main())


# -- the blocking form ------------------------------------------------------------------------


def test_the_blocking_form_joins_its_threads_and_raises_the_first_failure() -> None:
    """In synchronous code, ``with thread_group()`` starts, closes and joins the same way: the
    block reads the results with ``iter_blocking`` until the threads are done; a failing thread
    closes its siblings' endpoints, and the exit raises its error."""
    out_tx, out_rx = fearless.channel[int](4)
    prefix = unique("blocking")

    def count(out: fearless.Sender[int]) -> None:
        for n in range(100):
            out.send_blocking(n)

    with fearless.thread_group() as group:
        group.start(count, out_tx, n=3, name=prefix)
        with out_rx:
            got = Counter(out_rx.iter_blocking())
    assert got == Counter(dict.fromkeys(range(100), 3))
    assert alive(prefix) == []

    tx, rx = fearless.channel[int](1)
    ends = Ends()

    @ends.record
    def wait(rx: fearless.ChannelReceiver[int]) -> None:
        rx.receive_blocking()

    def fail() -> None:
        raise ValueError("blocking")

    def run() -> None:
        with fearless.thread_group() as group:
            group.start(wait, rx, n=2, name=prefix)
            wait_for(lambda: parked_receivers(tx) == 2)
            group.start(fail)

    with tx, pytest.raises(ValueError, match="blocking"):
        run()
    assert set(ends.by_thread.values()) == {ClosedResourceError}
    assert alive(prefix) == []


def test_a_keyboard_interrupt_in_the_blocking_form_propagates_with_the_failures_as_notes() -> None:
    """KeyboardInterrupt from the block is never replaced by a thread's failure: the threads
    are cancelled and joined, and the interrupt propagates, naming the failure in a note."""
    tx, rx = fearless.channel[int](1)

    def fail() -> None:
        raise ValueError("in a thread")

    def wait(rx: fearless.ChannelReceiver[int]) -> None:
        rx.receive_blocking()

    group = fearless.thread_group()

    def run() -> None:
        with group:
            group.start(wait, rx, name="waiting")
            group.start(fail, name="failing")
            wait_for(lambda: group.statistics().failed == 1)
            raise KeyboardInterrupt

    with tx, pytest.raises(KeyboardInterrupt) as caught:
        run()
    assert caught.value.__notes__ == ["thread 'failing' failed too: ValueError('in a thread')"]
    assert group.statistics().running == 0


async def test_the_blocking_form_on_an_event_loop_thread_raises_event_loop_blocking_error() -> None:
    group = fearless.thread_group()
    with pytest.raises(fearless.EventLoopBlockingError, match="async with"), group:
        pass  # pragma: no cover
    assert group.statistics().state == "new"


# -- bad input and misuse ---------------------------------------------------------------------


async def noop_async(rx: fearless.ChannelReceiver[int]) -> None:
    """A coroutine function: not something a thread can run."""


@pytest.mark.parametrize("n", [0, -1, True, 2.0, "4", None])
async def test_a_bad_thread_count_raises_value_error_naming_it(n: Any) -> None:
    tx, rx = fearless.channel[int](1)
    with tx, rx:
        async with fearless.thread_group() as group:
            with pytest.raises(ValueError, match=f"got {n!r}"):
                group.start(print, rx, n=n)
        assert rx.statistics().open_receive_streams == 1  # nothing cloned, nothing closed
    assert group.statistics().started == 0


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (42, "got 42"),
        (noop_async, "noop_async"),
        (functools.partial(noop_async), "noop_async"),
    ],
)
async def test_a_function_a_thread_cannot_run_raises_type_error_naming_it(
    fn: Any, message: str
) -> None:
    tx, rx = fearless.channel[int](1)
    with tx, rx:
        async with fearless.thread_group() as group:
            with pytest.raises(TypeError, match=message):
                group.start(fn, rx)
        assert rx.statistics().open_receive_streams == 1
    assert group.statistics().started == 0


async def test_a_value_that_is_not_an_endpoint_raises_type_error_naming_it() -> None:
    tx, rx = fearless.channel[int](1)
    with tx, rx:
        async with fearless.thread_group() as group:
            with pytest.raises(TypeError, match=r"endpoint 2 given to start\(\), 'data'.*partial"):
                group.start(print, rx, "data")
        assert rx.statistics().open_receive_streams == 1


async def test_a_closed_endpoint_raises_closed_resource_error_naming_it_and_starts_nothing() -> (
    None
):
    """The call has no effect: no thread started, the clones already made of the other
    endpoints closed again, the other originals left open."""
    a_tx, a_rx = fearless.channel[int](1)
    b_tx, b_rx = fearless.channel[int](1)
    b_rx.close()
    with a_tx, a_rx, b_tx:
        async with fearless.thread_group() as group:
            with pytest.raises(ClosedResourceError, match=f"endpoint 2 .*{b_rx!r}.*closed"):
                group.start(print, a_rx, b_rx, n=3)
        assert a_rx.statistics().open_receive_streams == 1
    assert group.statistics().started == 0


async def test_start_outside_the_block_raises_runtime_error_and_closes_the_endpoints() -> None:
    group = fearless.thread_group()
    tx, rx = fearless.channel[int](1)
    with tx, pytest.raises(RuntimeError, match="enter it first"):
        group.start(print, rx)
    assert rx.statistics().open_receive_streams == 0
    async with group:
        pass
    tx, rx = fearless.channel[int](1)
    with tx, pytest.raises(RuntimeError, match="block has ended"):
        group.start(print, rx)
    assert rx.statistics().open_receive_streams == 0


async def test_a_group_serves_one_block_and_has_no_public_constructor() -> None:
    group = fearless.thread_group()
    async with group:
        pass
    with pytest.raises(RuntimeError, match="already entered"):
        async with group:
            pass  # pragma: no cover
    with pytest.raises(TypeError, match=r"fearless\.thread_group\(\)"):
        fearless.ThreadGroup()


async def test_a_thread_that_fails_to_start_leaves_the_others_running_in_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Starting the third of four threads fails (the system's thread limit): ``start`` raises
    that error, the two started threads go on as members and are joined by the exit, and the
    originals and the unstarted threads' clones are closed."""
    prefix = unique("limit")
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name == f"{prefix} 2":
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    jobs_tx, jobs_rx = fearless.channel[int](1)
    seen: list[int] = []

    def work(jobs: fearless.ChannelReceiver[int]) -> None:
        seen.extend(jobs.iter_blocking())

    async with fearless.thread_group() as group:
        with pytest.raises(RuntimeError, match="can't start new thread"):
            group.start(work, jobs_rx, n=4, name=prefix)
        assert jobs_rx.statistics().open_receive_streams == 2  # the two running threads' clones
        with jobs_tx:
            for n in range(10):
                await jobs_tx.send(n)
    assert sorted(seen) == list(range(10))
    assert group.statistics().started == 2
    assert alive(prefix) == []


async def test_statistics_and_repr_describe_the_group() -> None:
    tx, rx = fearless.channel[int](1)
    group = fearless.thread_group()
    assert repr(group) == "<ThreadGroup new: 0 running, 0 started, 0 failed>"
    with tx:
        async with group:
            group.start(lambda rx: rx.receive_blocking(), rx, n=2)
            s = group.statistics()
            assert (s.started, s.running, s.failed, s.cancelled, s.state) == (
                2,
                2,
                0,
                False,
                "open",
            )
            assert repr(group) == "<ThreadGroup open: 2 running, 2 started, 0 failed>"
            group.cancel()
    assert repr(group) == "<ThreadGroup finished, cancelled: 0 running, 2 started, 0 failed>"


def test_the_threads_are_named_after_the_function_or_the_name_given() -> None:
    names: list[str] = []
    lock = threading.Lock()

    def record() -> None:
        with lock:
            names.append(threading.current_thread().name)

    with fearless.thread_group() as group:
        group.start(record)
        group.start(record, n=2, name="pool")
    assert sorted(names) == [
        "fearless: test_the_threads_are_named_after_the_function_or_the_name_given.<locals>.record",
        "pool 0",
        "pool 1",
    ]
