"""Cancellation is atomic, checked by randomized stress on every backend.

A cancelled ``send`` did not enqueue and a cancelled ``receive`` did not dequeue. Under native
asyncio cancellation an operation may be completed by another task just before the cancellation
lands: it is then taken back (a receiver gives its item back; a sender withdraws its item if it
is still buffered) and raises, or, if it cannot be taken back (a sent item a receiver already
has), it returns normally and the cancellation arrives at the next await. Every run keeps a ledger
of what each task saw happen to each item and checks, once the channel is drained:

- every item whose send returned was received exactly once, and no item was received twice;
- no item of a cancelled ``send`` was received; of a cancelled ``send_many``, exactly a prefix of
  the batch was received; a ``send_many`` that returned was received whole;
- each receiver saw each sender's items in the order they were sent (not checked under native
  asyncio cancellation, where an item given back by a cancelled receiver may reach another
  receiver after later items: docs/channels.md, "Order");
- the channel's statistics agree with the ledger (``total_sent == total_received``).

Native asyncio cancellation has one more rule to check: a task cancelled while it runs ends
cancelled (the cancellation is never lost), and no other task does.

The runs are seeded (the seed is in the test id and in the summary printed for a failing test);
``FEARLESS_CANCEL_SEEDS=1,2,3`` runs other seeds. Timing still varies (deadlines are real time),
so a failure may take a few runs of its seed to come back.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import pytest
from anyio import EndOfStream, WouldBlock

import fearless
from fearless import ChannelStatistics, Receiver, Sender, channel
from tests.conftest import BACKENDS

pytestmark = pytest.mark.anyio

Item = tuple[int, int]  # (sender id, sequence number within that sender)

CAPACITIES = [
    pytest.param(0, id="rendezvous"),
    pytest.param(1, id="cap1"),
    pytest.param(16, id="cap16"),
    pytest.param(math.inf, id="unbounded"),
]
SEEDS = [
    pytest.param(int(seed), id=f"seed={int(seed)}")
    for seed in os.environ.get("FEARLESS_CANCEL_SEEDS", "2024").split(",")
]
ASYNCIO_BACKENDS = [param for param in BACKENDS if param.id != "trio"]
TRIO_BACKEND = [param for param in BACKENDS if param.id == "trio"]


# -- the ledger ---------------------------------------------------------------------------------


@dataclass
class _Ledger:
    """What the tasks of one run saw happen to each item."""

    seed: int
    attempted: set[Item] = field(default_factory=set)
    """Items given to a single ``send`` (or ``send_nowait``)."""
    sent: set[Item] = field(default_factory=set)
    """Items whose single ``send`` returned normally."""
    batches: list[tuple[tuple[Item, ...], bool]] = field(default_factory=list)
    """Each ``send_many`` batch, and whether the call returned normally."""
    received: dict[str, list[Item]] = field(default_factory=dict)
    """What each receiver got, in the order it got it."""
    cancelled_ops: int = 0
    """Operations that ended in a cancellation (and so must have done nothing)."""
    completed_despite_cancel: int = 0
    """Operations that returned normally although a cancellation had been requested."""

    def summary(self) -> str:
        received = sum(len(items) for items in self.received.values())
        return (
            f"seed={self.seed}: {self.cancelled_ops} operations cancelled, "
            f"{self.completed_despite_cancel} completed although cancelled, {received} received"
        )

    def receiver(self, name: str) -> list[Item]:
        assert name not in self.received
        return self.received.setdefault(name, [])

    def check(self, stats: Iterable[ChannelStatistics], *, ordered: bool = True) -> None:
        """Assert the module docstring's invariants, the channel being drained."""
        print(self.summary())
        seed = f"seed={self.seed}"
        everything = [item for items in self.received.values() for item in items]
        counts = Counter(everything)
        twice = sorted(item for item, n in counts.items() if n > 1)
        assert not twice, f"{seed}: received more than once: {twice[:10]}"
        got = set(counts)
        in_batches = {item for batch, _ in self.batches for item in batch}
        phantom = got - self.attempted - in_batches
        assert not phantom, f"{seed}: received items nobody sent: {sorted(phantom)[:10]}"
        lost = self.sent - got
        assert not lost, f"{seed}: send returned but the item never arrived: {sorted(lost)[:10]}"
        leaked = (self.attempted - self.sent) & got
        assert not leaked, f"{seed}: a cancelled send's item was received: {sorted(leaked)[:10]}"
        for batch, returned in self.batches:
            arrived = [item in got for item in batch]
            if returned:
                assert all(arrived), f"{seed}: send_many returned, items missing: {batch} {arrived}"
            else:
                k = sum(arrived)
                assert arrived == [True] * k + [False] * (len(batch) - k), (
                    f"{seed}: a cancelled send_many delivered a non-prefix: {batch} {arrived}"
                )
        for name, items in self.received.items() if ordered else ():
            last: dict[int, int] = {}
            for sender, seq in items:
                assert seq > last.get(sender, -1), (
                    f"{seed}: receiver {name} got sender {sender}'s #{seq} after #{last[sender]}"
                )
                last[sender] = seq
        snapshots = list(stats)
        total_sent = sum(s.total_sent for s in snapshots)
        total_received = sum(s.total_received for s in snapshots)
        assert sum(s.current_buffer_used for s in snapshots) == 0, f"{seed}: not drained"
        assert total_sent == total_received == len(everything), (
            f"{seed}: statistics say sent {total_sent}, received {total_received}; "
            f"the receivers got {len(everything)}"
        )


# -- anyio and trio cancel scopes ---------------------------------------------------------------


class _Scope(Protocol):
    """What anyio's and trio's cancel scopes have in common."""

    def cancel(self) -> None: ...

    @property
    def cancel_called(self) -> bool: ...

    @property
    def cancelled_caught(self) -> bool: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
        /,
    ) -> bool | None: ...


@dataclass(frozen=True)
class _Api:
    """The cancel scopes and checkpoint a run uses: anyio's, or trio's own."""

    scope: Callable[[], _Scope]
    move_on_after: Callable[[float], _Scope]
    checkpoint: Callable[[], Awaitable[None]]


ANYIO = _Api(anyio.CancelScope, anyio.move_on_after, anyio.lowlevel.checkpoint)


class _ScopedRun:
    """Senders and receivers whose every operation runs in its own cancel scope, plus chaos.

    Each operation's scope is, at random: never cancelled unless chaos picks it, cancelled before
    it is entered, or given a deadline of 0, a few microseconds or up to a millisecond. The chaos
    task cancels the scope of a random in-flight operation every few scheduling rounds.
    """

    def __init__(self, seed: int, api: _Api) -> None:
        self.rng = random.Random(seed)
        self.api = api
        self.ledger = _Ledger(seed)
        self.scopes: dict[int, _Scope] = {}  # worker id -> the scope of its current operation
        self.workers_left = 0
        self.ids = itertools.count()

    def _scope(self, worker: int) -> _Scope:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            scope = self.api.scope()
        elif r < 0.4:
            scope = self.api.scope()
            scope.cancel()
        elif r < 0.55:
            scope = self.api.move_on_after(0)
        elif r < 0.8:
            scope = self.api.move_on_after(rng.uniform(0, 50e-6))
        else:
            scope = self.api.move_on_after(rng.uniform(0, 1e-3))
        self.scopes[worker] = scope
        return scope

    def _done(self, worker: int, scope: _Scope) -> None:
        del self.scopes[worker]
        if scope.cancelled_caught:
            self.ledger.cancelled_ops += 1
        elif scope.cancel_called:
            self.ledger.completed_despite_cancel += 1

    async def _pause(self) -> None:
        for _ in range(self.rng.choice((0, 0, 0, 1, 2))):
            await self.api.checkpoint()

    async def send_loop(self, tx: Sender[Item], ops: int, *, cancel: bool = True) -> None:
        """``ops`` sends (single or batched) of unique items; closes ``tx`` at the end."""
        rng, ledger = self.rng, self.ledger
        worker = sender = next(self.ids)
        seq = 0
        try:
            with tx:
                for _ in range(ops):
                    await self._pause()
                    scope = self._scope(worker) if cancel else self.api.scope()
                    if rng.random() < 0.6:
                        item = (sender, seq)
                        seq += 1
                        ledger.attempted.add(item)
                        with scope:
                            await tx.send(item)
                            ledger.sent.add(item)
                    else:
                        batch = tuple((sender, seq + k) for k in range(rng.randint(1, 6)))
                        seq += len(batch)
                        returned = False
                        with scope:
                            await tx.send_many(batch)
                            returned = True
                        ledger.batches.append((batch, returned))
                    if cancel:
                        self._done(worker, scope)
        finally:
            self.workers_left -= 1

    async def receive_loop(self, rx: Receiver[Item]) -> None:
        """Receive (one or many) until end of stream; closes ``rx`` at the end."""
        rng = self.rng
        worker = next(self.ids)
        got = self.ledger.receiver(f"receiver {worker}")
        try:
            with rx:
                while True:
                    await self._pause()
                    scope = self._scope(worker)
                    try:
                        with scope:
                            if rng.random() < 0.5:
                                got.append(await rx.receive())
                            else:
                                got.extend(await rx.receive_many(rng.randint(1, 8)))
                    except EndOfStream:
                        del self.scopes[worker]
                        return
                    self._done(worker, scope)
        finally:
            self.workers_left -= 1

    async def chaos(self) -> None:
        """Cancel a random in-flight operation every few scheduling rounds, until all are done."""
        rng = self.rng
        while self.workers_left:
            for _ in range(1 + rng.randrange(4)):
                await self.api.checkpoint()
            if self.scopes and rng.random() < 0.7:
                rng.choice(list(self.scopes.values())).cancel()


async def _scoped_channel_stress(capacity: float, seed: int, api: _Api) -> _Ledger:
    """3 senders and 3 receivers (clones) on one channel, every operation randomly cancelled."""
    run = _ScopedRun(seed, api)
    tx, rx = channel[Item](capacity)
    with tx, rx:
        senders = [tx.clone() for _ in range(3)]
        receivers = [rx.clone() for _ in range(3)]
    run.workers_left = len(senders) + len(receivers)
    async with anyio.create_task_group() as tg:
        for sender in senders:
            tg.start_soon(run.send_loop, sender, 2000)
        for receiver in receivers:
            tg.start_soon(run.receive_loop, receiver)
        tg.start_soon(run.chaos)
    stats = rx.statistics()
    assert stats.open_send_streams == stats.open_receive_streams == 0
    run.ledger.check([stats])
    return run.ledger


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("capacity", CAPACITIES)
async def test_randomly_cancelled_sends_and_receives_lose_and_duplicate_nothing(
    capacity: float, seed: int
) -> None:
    """anyio cancel scopes, on every backend: 3 sender and 3 receiver clones use ``send``,
    ``send_many``, ``receive`` and ``receive_many``, each operation in its own randomly cancelled
    scope (pre-cancelled, deadlines of 0 to 1 ms, or cancelled by a chaos task). Every returned
    send is received exactly once, no cancelled send is received, a cancelled ``send_many``
    delivered a prefix, per-sender order holds for each receiver, statistics agree."""
    ledger = await _scoped_channel_stress(capacity, seed, ANYIO)
    # The run did exercise cancellation, and the race of a cancel with a completing operation.
    assert ledger.cancelled_ops >= 1000, ledger.summary()
    assert ledger.completed_despite_cancel >= 20, ledger.summary()


@pytest.mark.parametrize("anyio_backend", TRIO_BACKEND)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("capacity", CAPACITIES)
async def test_trio_native_cancel_scopes_lose_and_duplicate_nothing(
    capacity: float, seed: int
) -> None:
    """The same stress with trio's own ``trio.CancelScope`` and ``trio.move_on_after`` (and
    ``trio.lowlevel.checkpoint``): the same invariants hold."""
    import trio

    api = _Api(trio.CancelScope, trio.move_on_after, trio.lowlevel.checkpoint)
    ledger = await _scoped_channel_stress(capacity, seed, api)
    assert ledger.cancelled_ops >= 1000, ledger.summary()
    assert ledger.completed_despite_cancel >= 20, ledger.summary()


@pytest.mark.parametrize("seed", SEEDS)
async def test_merge_with_randomly_cancelled_consumers_delivers_each_item_once(seed: int) -> None:
    """``merge`` over 4 inputs of random capacities: a merge and its clone consume with
    ``receive``/``receive_many``, each call in a randomly cancelled scope (plus chaos). A cancelled
    merge receive took nothing from any input: every item arrives exactly once, each consumer
    sees each input's items in order, and the inputs' statistics agree."""
    run = _ScopedRun(seed, ANYIO)
    pairs = [channel[Item](run.rng.choice([0, 1, 16, math.inf])) for _ in range(4)]
    merged = fearless.merge(*(rx for _, rx in pairs))
    consumers = [merged, merged.clone()]
    run.workers_left = len(pairs) + len(consumers)
    async with anyio.create_task_group() as tg:
        for tx, _ in pairs:
            tg.start_soon(partial(run.send_loop, tx, 2500, cancel=False))
        for consumer in consumers:
            tg.start_soon(run.receive_loop, consumer)
        tg.start_soon(run.chaos)
    run.ledger.check(rx.statistics() for _, rx in pairs)
    assert all(returned for _, returned in run.ledger.batches)
    assert run.ledger.sent == run.ledger.attempted
    assert run.ledger.cancelled_ops >= 1000, run.ledger.summary()
    assert run.ledger.completed_despite_cancel >= 20, run.ledger.summary()


# -- native asyncio cancellation ----------------------------------------------------------------


class _Bomb(Exception):
    """Raised by a task group member so that the group cancels its siblings."""


class _NativeRun:
    """Rounds of ``asyncio.create_task`` senders and receivers on one channel, cancelled natively.

    A round is either a chaos round (random ``task.cancel()``, including right after an item was
    handed to a parked receiver or taken from a parked sender, and at the end every task still
    running) or an ``asyncio.TaskGroup`` in which one member raises. Inside the tasks, single
    operations run in ``asyncio.timeout`` blocks of random tiny delays.
    """

    def __init__(self, capacity: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ledger = _Ledger(seed)
        self.tx, self.rx = channel[Item](capacity)
        self.ids = itertools.count()
        self.in_op: dict[asyncio.Task[Any], str] = {}  # task -> "send"/"receive" while in one
        self.chaos_sender = next(self.ids)
        self.chaos_seq = 0
        self.chaos_got = self.ledger.receiver("chaos")
        self.cancel_requests = 0
        self.lost_cancellations: list[str] = []
        self.spurious_cancellations: list[str] = []
        self.deferring: set[asyncio.Task[Any]] = set()  # a stood send's cancellation is deferred

    def _timeout(self, task: asyncio.Task[Any]) -> float | None:
        r = self.rng.random()
        if r < 0.4 or task in self.deferring:
            # The one documented imperfection (fearless._backend): a timeout block entered while
            # a stood send's cancellation is still deferred, and expiring before the next loop
            # iteration, reports TimeoutError instead. Not drawn then; the last test of this
            # module shows that case on its own.
            return None
        if r < 0.55:
            return 0
        if r < 0.8:
            return self.rng.uniform(0, 20e-6)
        return self.rng.uniform(0, 500e-6)

    async def _op(self, kind: str, op: Coroutine[Any, Any, None]) -> None:
        """Run one operation, under a random ``asyncio.timeout``, and book its cancellation."""
        task = asyncio.current_task()
        assert task is not None
        timeout = self._timeout(task)
        self.deferring.discard(task)
        self.in_op[task] = kind
        try:
            if timeout is None:
                await op
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await op
                except TimeoutError:
                    self.ledger.cancelled_ops += 1
                    return
        except asyncio.CancelledError:
            self.ledger.cancelled_ops += 1
            raise
        finally:
            del self.in_op[task]
        if task.cancelling():  # completed although cancelled: the cancellation comes next
            self.ledger.completed_despite_cancel += 1
            self.deferring.add(task)

    async def _send(self, item: Item) -> None:
        await self.tx.send(item)
        self.ledger.sent.add(item)

    async def _send_many(self, batch: tuple[Item, ...]) -> None:
        entry = len(self.ledger.batches)
        self.ledger.batches.append((batch, False))
        await self.tx.send_many(batch)
        self.ledger.batches[entry] = (batch, True)

    async def _receive(self, got: list[Item]) -> None:
        got.append(await self.rx.receive())

    async def _receive_many(self, got: list[Item], max_items: int) -> None:
        got.extend(await self.rx.receive_many(max_items))

    async def sender(self) -> None:
        rng = self.rng
        sender = next(self.ids)
        seq = 0
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.3:
                await asyncio.sleep(0)
            if rng.random() < 0.6:
                item = (sender, seq)
                seq += 1
                self.ledger.attempted.add(item)
                await self._op("send", self._send(item))
            else:
                batch = tuple((sender, seq + k) for k in range(rng.randint(1, 6)))
                seq += len(batch)
                await self._op("send", self._send_many(batch))
        await asyncio.sleep(0)  # a suspension point after the last operation, for a late cancel

    async def receiver(self) -> None:
        rng = self.rng
        got = self.ledger.receiver(f"receiver {next(self.ids)}")
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.3:
                await asyncio.sleep(0)
            if rng.random() < 0.5:
                await self._op("receive", self._receive(got))
            else:
                await self._op("receive", self._receive_many(got, rng.randint(1, 8)))
        await asyncio.sleep(0)

    def _spawn(self, n_senders: int, n_receivers: int) -> list[Coroutine[Any, Any, None]]:
        kinds = [self.sender] * n_senders + [self.receiver] * n_receivers
        self.rng.shuffle(kinds)
        return [kind() for kind in kinds]

    async def _settle(
        self, tasks: list[asyncio.Task[None]], what: str, group: asyncio.Task[None] | None = None
    ) -> None:
        """Let ``tasks`` (and the ``group`` task running them) finish. Every task has been
        cancelled or is about to be, so each finishes within a few loop iterations; one still
        running after a thousand is parked for good, its cancellation lost. It is booked as such
        and cancelled again, so that the run can go on (instead of hanging until the timeout)."""

        def finished() -> bool:
            return all(task.done() for task in tasks) and (group is None or group.done())

        for _ in range(1000):
            if finished():
                return
            await asyncio.sleep(0)
        stuck = [task for task in tasks if not task.done()]
        self.lost_cancellations.extend(f"{what}: {task!r} never finished" for task in stuck)
        while not finished():
            for task in stuck:
                task.cancel()
            await asyncio.sleep(0)

    def _check_tasks(
        self, tasks: list[asyncio.Task[None]], cancelled: set[asyncio.Task[None]], what: str
    ) -> None:
        """A task cancelled while running must end cancelled; a task nobody cancelled must not."""
        for task in tasks:
            if task.cancelled():
                if task not in cancelled:
                    self.spurious_cancellations.append(f"{what}: {task!r}")
                continue
            exc = task.exception()
            if exc is not None:
                raise exc
            if task in cancelled:
                self.lost_cancellations.append(f"{what}: {task!r} ran to completion")

    async def chaos_round(self) -> None:
        rng, tx, rx = self.rng, self.tx, self.rx
        coros = self._spawn(rng.randint(1, 4), rng.randint(1, 4))
        tasks = [asyncio.create_task(coro) for coro in coros]
        cancelled: set[asyncio.Task[None]] = set()

        def cancel(task: asyncio.Task[None]) -> None:
            if not task.done():
                task.cancel()
                cancelled.add(task)
                self.cancel_requests += 1

        def cancel_some(kind: str) -> None:
            doing = [task for task in tasks if self.in_op.get(task) == kind]
            for task in rng.sample(doing, rng.randint(min(1, len(doing)), len(doing))):
                cancel(task)

        for _ in range(rng.randint(1, 30)):
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            r = rng.random()
            if r < 0.35:
                cancel(rng.choice(tasks))
            elif r < 0.65 and rx.statistics().tasks_waiting_receive:
                # Hand an item straight to a parked receiver, then cancel receivers before any runs.
                item = (self.chaos_sender, self.chaos_seq)
                self.chaos_seq += 1
                self.ledger.attempted.add(item)
                tx.send_nowait(item)
                self.ledger.sent.add(item)
                cancel_some("receive")
            elif r < 0.9 and tx.statistics().tasks_waiting_send:
                # Complete a parked send (take its item or free a slot), then cancel senders.
                self.chaos_got.append(rx.receive_nowait())
                cancel_some("send")
        for task in tasks:  # the round is over
            cancel(task)
        await self._settle(tasks, "task.cancel()")
        self._check_tasks(tasks, cancelled, "task.cancel()")

    async def task_group_round(self) -> None:
        rng = self.rng
        members: list[asyncio.Task[None]] = []
        cancelled: set[asyncio.Task[None]] = set()

        async def bomb() -> None:
            for _ in range(rng.randrange(30)):
                await asyncio.sleep(0)
            raise _Bomb

        def snapshot(_: object) -> None:
            # Runs right after the group's own done-callback has cancelled the running members.
            cancelled.update(task for task in members if not task.done())

        async def group() -> None:
            try:
                async with asyncio.TaskGroup() as tg:
                    coros = self._spawn(rng.randint(1, 4), rng.randint(1, 4))
                    members.extend(tg.create_task(coro) for coro in coros)
                    tg.create_task(bomb()).add_done_callback(snapshot)
            except* _Bomb:
                pass

        # In a task of its own: Python 3.11's TaskGroup can leave its parent's cancel count raised
        # when a member fails while the parent already waits in __aexit__.
        task = asyncio.create_task(group())
        await self._settle(members, "TaskGroup", task)
        await task
        self.cancel_requests += len(cancelled)
        self._check_tasks(members, cancelled, "TaskGroup")

    async def run(self, rounds: int) -> None:
        for _ in range(rounds):
            if self.rng.random() < 0.3:
                await self.task_group_round()
            else:
                await self.chaos_round()
        self.tx.close()
        drained = self.ledger.receiver("drain")
        with self.rx:
            while True:
                try:
                    drained.append(self.rx.receive_nowait())
                except EndOfStream:
                    break
        self.ledger.check([self.rx.statistics()], ordered=False)


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("capacity", CAPACITIES)
async def test_native_asyncio_cancellation_loses_and_duplicates_nothing(
    capacity: float, seed: int
) -> None:
    """Native asyncio cancellation, on asyncio and uvloop: ``task.cancel()`` at random points
    (including right after an item was handed to a parked receiver, or a parked sender's item was
    taken, before that task ran), ``asyncio.timeout`` of random tiny delays around single
    operations, and failing ``asyncio.TaskGroup`` blocks. Each operation either raised and did
    nothing or completed, so the ledger invariants hold; and no task that nobody cancelled ends
    cancelled (no spurious cancellation)."""
    run = _NativeRun(capacity, seed)
    await asyncio.create_task(run.run(rounds=600))
    assert not run.spurious_cancellations, f"seed={seed}: {run.spurious_cancellations[:5]}"
    assert run.ledger.cancelled_ops >= 200, run.ledger.summary()


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("capacity", CAPACITIES)
async def test_native_asyncio_cancellation_is_never_lost(capacity: float, seed: int) -> None:
    """The same native stress: every task cancelled (by ``task.cancel()`` or by its failing
    ``TaskGroup``) while it was still running ends cancelled. An operation that could not be taken
    back defers the cancellation to the next await; it must not be dropped there, and a task must
    never run on (or park for good) after being cancelled."""
    run = _NativeRun(capacity, seed)
    await asyncio.create_task(run.run(rounds=300))
    lost = run.lost_cancellations
    assert not lost, f"seed={seed}: {len(lost)} of {run.cancel_requests} lost, e.g. {lost[:3]}"


# -- native asyncio: the races, one at a time ---------------------------------------------------


async def _until(condition: Callable[[], object]) -> None:
    """Let other tasks run until ``condition()`` holds (no sleeping)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# What each race ends as: (events the victim records, items taken by the other side in total).
# The victim records the operation's result, then whether its next await was cancelled.
RACES = {
    # A receiver gives the item back and raises: the item is taken next, by someone else.
    ("receive", 0): ([], [7]),
    ("receive", math.inf): ([], [7]),
    ("receive_many", 16): ([], [7]),
    # The parked sender's item went into the buffer but nobody took it yet: it is withdrawn.
    ("send", 1): ([], [0]),
    # At capacity 0 a receiver took the item straight from the parked sender: the send stands.
    ("send", 0): (["sent", "cancelled at the next await"], [1]),
    # A batch delivered a prefix of its items, here all of them, and raises (send_many's rule).
    ("send_many", 1): ([], [0, 1, 2]),
}


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
@pytest.mark.parametrize(("op", "capacity"), list(RACES))
async def test_an_operation_completed_just_before_task_cancel_is_taken_back_or_stands(
    op: str, capacity: float
) -> None:
    """A parked operation is completed by another task (an item handed to the parked receiver
    with ``send_nowait``, or the parked sender's item taken with ``receive_nowait``), and its task
    is cancelled with ``task.cancel()`` before it runs. The operation is taken back and raises
    ``CancelledError`` at once, as asyncio's own primitives do; only a send whose item a receiver
    already has stands, returning normally with ``CancelledError`` at the next await. Either way
    no item is lost or duplicated (anyio 4.16's own stream loses the receiver's item here)."""
    tx, rx = channel[int](capacity)
    events: list[object] = []
    expected_events, expected_taken = RACES[op, capacity]

    async def victim() -> None:
        if op == "receive":
            events.append(await rx.receive())
        elif op == "receive_many":
            events.append(await rx.receive_many(10))
        elif op == "send":
            await tx.send(1)
            events.append("sent")
        else:
            await tx.send_many([1, 2])
            events.append("sent")
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            events.append("cancelled at the next await")
            raise
        events.append("not cancelled")

    async def main() -> None:
        with tx, rx:
            if op.startswith("send") and capacity:
                tx.send_nowait(0)  # fill the buffer, so that the send parks
            task = asyncio.create_task(victim())
            stats = tx.statistics
            taken: list[int] = []
            if op.startswith("receive"):
                await _until(lambda: stats().tasks_waiting_receive == 1)
                tx.send_nowait(7)  # handed straight to the parked receiver
            else:
                await _until(lambda: stats().tasks_waiting_send == 1)
                while stats().tasks_waiting_send:  # completes the parked send, item by item
                    taken.append(rx.receive_nowait())
            task.cancel()
            await asyncio.wait([task])
            assert events == expected_events
            assert task.cancelled()
            while True:
                try:
                    taken.append(rx.receive_nowait())
                except WouldBlock:
                    break
            assert taken == expected_taken
            assert stats().total_sent == stats().total_received == len(taken)

    await asyncio.create_task(main())


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
@pytest.mark.parametrize("capacity", [0, 1])
async def test_a_send_completing_as_its_asyncio_timeout_fires(capacity: int) -> None:
    """``async with asyncio.timeout(...)`` around a parked ``send``: the timeout fires in the
    same loop iteration in which a receiver completes the send, before the task runs.

    At capacity 1 the item is still buffered, so it is withdrawn and the block raises
    ``TimeoutError``: the send did not happen. At capacity 0 the receiver already has the item, so
    the send stands, the block exits normally (the timeout did expire, and withdrew its request),
    the item is received exactly once, and no spurious ``CancelledError`` follows the block."""
    tx, rx = channel[int](capacity)
    events: list[object] = []
    timeouts: list[asyncio.Timeout] = []

    async def victim() -> None:
        try:
            async with asyncio.timeout(None) as timeout:
                timeouts.append(timeout)
                await tx.send(1)
                events.append("sent")
        except TimeoutError:
            events.append("TimeoutError")
        for _ in range(10):
            await asyncio.sleep(0)
        events.append("not cancelled")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tx, rx:
            if capacity:
                tx.send_nowait(0)
            task = asyncio.create_task(victim())
            await _until(lambda: tx.statistics().tasks_waiting_send == 1)
            timeouts[0].reschedule(loop.time())  # fires on the next loop iteration, first ...
            taken = [rx.receive_nowait()]  # ... then the task resumes, its send completed
            await asyncio.wait([task])
            assert timeouts[0].expired()
            if capacity:
                assert events == ["TimeoutError", "not cancelled"]
                with pytest.raises(WouldBlock):
                    rx.receive_nowait()
                assert taken == [0]
            else:
                assert taken == [1]
                assert events == ["sent", "not cancelled"]
            assert tx.statistics().total_sent == tx.statistics().total_received == 1

    await asyncio.create_task(main())


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
async def test_task_cancel_is_not_lost_when_an_expired_timeout_is_withdrawn(
    anyio_backend: object,
) -> None:
    """A parked ``receive`` inside ``asyncio.timeout`` is handed an item; before its task runs,
    both the timeout fires and another task calls ``task.cancel()``. The receive gives the item
    back and raises; the timeout withdraws only its own request, so the block lets
    ``CancelledError`` through (not ``TimeoutError``) and the task ends cancelled."""
    tx, rx = channel[int](0)
    events: list[object] = []
    timeouts: list[asyncio.Timeout] = []

    async def victim() -> None:
        async with asyncio.timeout(None) as timeout:
            timeouts.append(timeout)
            events.append(await rx.receive())
        events.append("not cancelled")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tx, rx:
            task = asyncio.create_task(victim())
            await _until(lambda: rx.statistics().tasks_waiting_receive == 1)
            timeouts[0].reschedule(loop.time())
            tx.send_nowait(7)
            task.cancel()
            await asyncio.wait([task])
            assert events == []
            assert task.cancelled()
            assert rx.receive_nowait() == 7  # given back, not lost

    await asyncio.create_task(main())


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
async def test_a_cancelled_receive_raises_at_once_so_no_later_timeout_can_swallow_it(
    anyio_backend: object,
) -> None:
    """A parked ``receive`` is handed an item and its task is cancelled with ``task.cancel()``
    before it runs. The receive raises ``CancelledError`` itself (the item goes back), so a fresh
    ``asyncio.timeout`` entered afterwards cannot mistake the cancellation for its own."""
    tx, rx = channel[int](0)
    events: list[object] = []

    async def victim() -> None:
        events.append(await rx.receive())
        try:
            async with asyncio.timeout(0):
                await asyncio.sleep(0)
        except TimeoutError:
            events.append("TimeoutError")
        await asyncio.sleep(0)
        events.append("not cancelled")

    async def main() -> None:
        with tx, rx:
            task = asyncio.create_task(victim())
            await _until(lambda: rx.statistics().tasks_waiting_receive == 1)
            tx.send_nowait(7)
            task.cancel()
            await asyncio.wait([task])
            assert events == []
            assert task.cancelled()
            assert rx.receive_nowait() == 7

    await asyncio.create_task(main())


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
async def test_a_timeout_that_has_already_expired_can_absorb_a_stood_sends_cancellation(
    anyio_backend: object,
) -> None:
    """The documented imperfection (``fearless._backend``): a rendezvous ``send`` whose item a
    receiver took is cancelled with ``task.cancel()`` before its task runs; the send stands and
    the cancellation is deferred to the next loop iteration. If the task first enters an
    ``asyncio.timeout(0)``, that block counts the pending cancellation as older than itself and
    reports ``TimeoutError``, as asyncio does for any cancellation pending when such a block
    starts; the request stays counted in ``cancelling()``. Pinned here so that a change shows."""
    tx, rx = channel[int](0)
    events: list[object] = []

    async def victim() -> None:
        await tx.send(1)
        events.append("sent")
        try:
            async with asyncio.timeout(0):
                await asyncio.sleep(0)
        except TimeoutError:
            events.append("TimeoutError")
        events.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]

    async def main() -> None:
        with tx, rx:
            task = asyncio.create_task(victim())
            await _until(lambda: tx.statistics().tasks_waiting_send == 1)
            assert rx.receive_nowait() == 1
            task.cancel()
            await asyncio.wait([task])
            assert events == ["sent", "TimeoutError", 1]

    await asyncio.create_task(main())


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
@pytest.mark.parametrize("via_select", [False, True])
async def test_a_withdrawn_send_takes_out_its_own_item_not_a_later_equal_one(
    via_select: bool,
) -> None:
    """A parked send's item went in, then its task was cancelled natively before it ran; since
    then another sender sent ``2`` and the very same object ``1``. Withdrawing must take out the
    cancelled send's ``1`` (found by place), so the other sender's items keep their order."""
    tx, rx = channel[int](3)
    other = tx.clone()

    async def main() -> None:
        with tx, rx, other:
            for item in (-1, -2, -3):
                tx.send_nowait(item)
            op = fearless.select(fearless.Send(tx, 1)) if via_select else tx.send(1)
            task = asyncio.ensure_future(op)
            await _until(lambda: tx.statistics().tasks_waiting_send == 1)
            assert [rx.receive_nowait() for _ in range(3)] == [-1, -2, -3]  # 1 moved in
            other.send_nowait(2)
            other.send_nowait(1)
            task.cancel()
            await asyncio.wait([task])
            assert task.cancelled()
            assert [rx.receive_nowait(), rx.receive_nowait()] == [2, 1]
            with pytest.raises(WouldBlock):
                rx.receive_nowait()

    await asyncio.create_task(main())
