"""Random sequences of channel operations, checked step by step against a pure-Python model.

A Hypothesis state machine drives one ``fearless.channel`` (capacity 0, 1, 2, 5 or ``math.inf``)
through sync operations (``send_nowait``, ``receive_nowait``, ``clone``, ``close``), async
operations that complete at once, async operations inside an already-cancelled cancel scope, and
parked operations (``send``, ``send_many``, ``receive``, ``receive_many`` tasks that wait because
the buffer is full or empty), which later steps complete, fail (by closing) or cancel. After every
step each operation's result or exception (type and ``unsent`` items) and ``statistics()`` must
match the model, which follows the specification in ``fearless._channels._channel``.

The machine is synchronous; each run owns one event loop in a thread (a blocking portal) on the
backend under test. A step runs in one ``portal.call``, so everything it does happens in one go on
the loop thread, then lets every woken task run to completion before it reports back; parked
operations are tasks started with ``portal.start_task_soon``. A parked operation is cancelled
through a cancel scope it creates itself, from the loop thread, and possibly in the same step as
(before or after) another operation that may complete it.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.lowlevel
import pytest
from anyio import CancelScope, ClosedResourceError, EndOfStream, WouldBlock
from anyio.from_thread import start_blocking_portal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fearless import (
    DEFAULT_YIELD_EVERY,
    ChannelReceiver,
    ChannelStatistics,
    SendBrokenError,
    SendClosedError,
    Sender,
    channel,
)
from fearless.testing import wait_all_tasks_blocked

uvloop: Any
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a test dependency; free-threaded builds lack it
    uvloop = None

BACKENDS = [
    pytest.param("asyncio", {}, id="asyncio"),
    pytest.param(
        "asyncio",
        {"loop_factory": getattr(uvloop, "new_event_loop", None)},
        id="uvloop",
        marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed"),
    ),
    pytest.param("trio", {}, id="trio"),
]

SETTINGS: Final = settings(max_examples=200, stateful_step_count=50, deadline=None)

CAPACITIES: Final = (0, 1, 2, 5, math.inf)
MAX_CLONES: Final = 4  # endpoints per side, counting the original
SENDS: Final = ("send", "send_many")
RECEIVES: Final = ("receive", "receive_many")

# -- outcomes -----------------------------------------------------------------------------------

Outcome = tuple[Any, ...]
"""``("returned", value)``, ``("raised", exception type, unsent items or None)``, ``CANCELLED``."""

CANCELLED: Final[Outcome] = ("cancelled",)


def returned(value: object) -> Outcome:
    return ("returned", value)


def raised(exc_type: type[Exception], unsent: tuple[int, ...] | None = None) -> Outcome:
    return ("raised", exc_type, unsent)


def raised_by(exc: Exception) -> Outcome:
    """The exact type (a subclass does not pass for its base) and, for sends, the unsent items."""
    return raised(type(exc), getattr(exc, "unsent", None))


def outcome_of(call: Callable[[], object]) -> Outcome:
    try:
        return returned(call())
    except Exception as exc:
        return raised_by(exc)


@dataclass(eq=False)
class Op:
    """One async operation: what the model expects of it, and what its real task did."""

    ident: int
    kind: str  # one of SENDS or RECEIVES
    endpoint: int  # index into the machine's senders or receivers
    items: list[int]  # sends: the items not yet in the channel when it parked
    max_items: int = 1  # receive_many
    pos: int = 0  # sends: items[:pos] went in while it was parked
    first: int | None = None  # receive_many: handed its first item, takes the rest when it runs
    expected: Outcome | None = None  # None while the model has it parked
    scope: CancelScope | None = None  # set by the task, which runs the operation inside it
    real: Outcome | None = None  # set by the task when the operation ended


async def run_op(op: Op, call: Callable[[], Awaitable[object]]) -> None:
    """Run one operation in a cancel scope of its own (``op.scope``); record how it ended."""
    op.scope = scope = CancelScope()
    outcome = CANCELLED
    with scope:
        try:
            outcome = returned(await call())
        except Exception as exc:
            outcome = raised_by(exc)
    op.real = outcome


async def settle() -> None:
    """Let every task that can run, run, until all are blocked again."""
    await wait_all_tasks_blocked()


# -- the model ----------------------------------------------------------------------------------


class Model:
    """The channel as the specification describes it: no event loop, no cancellation races."""

    def __init__(self, capacity: float) -> None:
        self.capacity = capacity
        self.buffer: deque[int] = deque()
        self.send_waiters: deque[Op] = deque()  # parked sends, in the order they parked
        self.recv_waiters: deque[Op] = deque()  # parked receives, in the order they parked
        self.senders_closed = [False]
        self.receivers_closed = [False]
        self.peak = 0
        self.total_sent = 0
        self.total_received = 0
        self.resumes: list[Op] = []  # receive_many ops handed an item; they take more on resuming

    def open_senders(self) -> int:
        return self.senders_closed.count(False)

    def open_receivers(self) -> int:
        return self.receivers_closed.count(False)

    def parked(self) -> list[Op]:
        return sorted([*self.send_waiters, *self.recv_waiters], key=lambda op: op.ident)

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            current_buffer_used=len(self.buffer),
            max_buffer_size=self.capacity,
            open_send_streams=self.open_senders(),
            open_receive_streams=self.open_receivers(),
            tasks_waiting_send=len(self.send_waiters),
            tasks_waiting_receive=len(self.recv_waiters),
            peak_buffer_used=self.peak,
            total_sent=self.total_sent,
            total_received=self.total_received,
        )

    # -- moving items -----------------------------------------------------------------------------

    def _append(self, item: int) -> None:
        self.buffer.append(item)
        self.total_sent += 1
        self.peak = max(self.peak, len(self.buffer))

    def _offer(self, item: int) -> bool:
        """The longest-parked receiver gets ``item``; else the buffer, if it has room."""
        if self.recv_waiters:
            op = self.recv_waiters.popleft()
            self.total_sent += 1
            self.total_received += 1
            if op.kind == "receive":
                op.expected = returned(item)
            else:
                op.first = item
                self.resumes.append(op)
            return True
        if len(self.buffer) < self.capacity:
            self._append(item)
            return True
        return False

    def _from_parked_sender(self) -> int:
        """The next item of the longest-parked sender, which completes with its last item."""
        op = self.send_waiters[0]
        item = op.items[op.pos]
        op.pos += 1
        if op.pos == len(op.items):
            self.send_waiters.popleft()
            op.expected = returned(None)
        return item

    def _take(self) -> int | None:
        """The next item (a freed slot pulls a parked sender's item in), or None."""
        if self.buffer:
            item = self.buffer.popleft()
            while self.send_waiters and len(self.buffer) < self.capacity:
                self._append(self._from_parked_sender())
        elif self.send_waiters:  # rendezvous: straight from the parked sender
            item = self._from_parked_sender()
            self.total_sent += 1
        else:
            return None
        self.total_received += 1
        return item

    def _take_many(self, max_items: int, first: int) -> list[int]:
        items = [first]
        while len(items) < max_items:
            item = self._take()
            if item is None:
                break
            items.append(item)
        return items

    # -- operations -------------------------------------------------------------------------------

    def send_nowait(self, sender: int, item: int) -> Outcome:
        if self.senders_closed[sender]:
            return raised(SendClosedError, (item,))
        if not self.open_receivers():
            return raised(SendBrokenError, (item,))
        return returned(None) if self._offer(item) else raised(WouldBlock)

    def receive_nowait(self, receiver: int) -> Outcome:
        if self.receivers_closed[receiver]:
            return raised(ClosedResourceError)
        item = self._take()
        if item is None:
            return raised(WouldBlock if self.open_senders() else EndOfStream)
        return returned(item)

    def start(self, op: Op) -> None:
        """An async operation begins: it completes (``op.expected`` is set) or parks."""
        if op.kind in SENDS:
            if self.senders_closed[op.endpoint]:
                op.expected = raised(SendClosedError, tuple(op.items))
            elif not self.open_receivers():
                op.expected = raised(SendBrokenError, tuple(op.items))
            else:
                for i, item in enumerate(op.items):
                    if not self._offer(item):
                        op.items = op.items[i:]
                        self.send_waiters.append(op)
                        return
                op.expected = returned(None)
            return
        if self.receivers_closed[op.endpoint]:
            op.expected = raised(ClosedResourceError)
            return
        taken = self._take()
        if taken is not None:
            if op.kind == "receive":
                op.expected = returned(taken)
            else:
                op.expected = returned(self._take_many(op.max_items, taken))
        elif not self.open_senders():
            op.expected = raised(EndOfStream)
        else:
            self.recv_waiters.append(op)

    def cancel(self, op: Op) -> None:
        """Cancelling a parked operation leaves no trace; a completed one keeps its outcome."""
        for waiters in (self.send_waiters, self.recv_waiters):
            if op in waiters:
                waiters.remove(op)
                op.expected = CANCELLED

    def clone(self, closed: list[bool], index: int) -> Outcome:
        if closed[index]:
            return raised(ClosedResourceError)
        closed.append(False)
        return returned(None)

    def close_sender(self, sender: int) -> Outcome:
        if not self.senders_closed[sender]:
            self.senders_closed[sender] = True
            for op in [op for op in self.send_waiters if op.endpoint == sender]:
                self.send_waiters.remove(op)
                op.expected = raised(SendClosedError, tuple(op.items[op.pos :]))
            if not self.open_senders():
                for op in self.recv_waiters:
                    op.expected = raised(EndOfStream)
                self.recv_waiters.clear()
        return returned(None)

    def close_receiver(self, receiver: int) -> Outcome:
        if not self.receivers_closed[receiver]:
            self.receivers_closed[receiver] = True
            for op in [op for op in self.recv_waiters if op.endpoint == receiver]:
                self.recv_waiters.remove(op)
                op.expected = raised(ClosedResourceError)
            if not self.open_receivers():
                self.buffer.clear()
                for op in self.send_waiters:
                    op.expected = raised(SendBrokenError, tuple(op.items[op.pos :]))
                self.send_waiters.clear()
        return returned(None)

    def resume(self) -> None:
        """Woken ``receive_many`` tasks ran: each took what was there, up to its ``max_items``.

        When several were woken in one step the scheduler may run them in any order (trio
        shuffles), so follow the order they actually ran in: the one whose second item is the
        next item in the channel went first.
        """
        pending, self.resumes = self.resumes, []
        while pending:
            if self.buffer:
                upcoming: int | None = self.buffer[0]
            elif self.send_waiters:
                upcoming = self.send_waiters[0].items[self.send_waiters[0].pos]
            else:
                upcoming = None
            op = next((p for p in pending if _second_item(p) == upcoming), pending[0])
            pending.remove(op)
            assert op.first is not None
            op.expected = returned(self._take_many(op.max_items, op.first))


def _second_item(op: Op) -> int | None:
    if op.real is not None and op.real[0] == "returned" and len(op.real[1]) > 1:
        return op.real[1][1]  # type: ignore[no-any-return]
    return None


# -- the state machine --------------------------------------------------------------------------

INDEX: Final = st.integers(min_value=0, max_value=MAX_CLONES - 1)
# Mostly no cancellation; 0 is the longest-parked operation, the one a step is likeliest to end.
CANCEL: Final = st.sampled_from([None, None, None, None, None, 0, 0, 1, 2, 3])
KIND: Final = st.sampled_from(SENDS + RECEIVES)
SIZE: Final = st.integers(min_value=0, max_value=3)


class ChannelMachine(RuleBasedStateMachine):
    """One channel, its clones and its parked tasks, on one backend, against the model."""

    model: Model

    def __init__(self, backend: str, options: dict[str, Any]) -> None:
        super().__init__()
        self._exit = ExitStack()
        self.portal = self._exit.enter_context(start_blocking_portal(backend, options))
        self.senders: list[Sender[int]] = []
        self.receivers: list[ChannelReceiver[int]] = []
        self.live: list[Op] = []  # operations whose end the test has not checked yet
        self._ids = itertools.count()
        self._items = itertools.count()

    @initialize(
        capacity=st.sampled_from(CAPACITIES),
        yield_every=st.sampled_from([1, 2, DEFAULT_YIELD_EVERY]),
    )
    def open_channel(self, capacity: float, yield_every: int) -> None:
        tx, rx = channel[int](capacity, yield_every=yield_every)
        self.senders.append(tx)
        self.receivers.append(rx)
        self.model = Model(capacity)

    def teardown(self) -> None:
        try:
            if self.senders:
                self.portal.call(self._close_everything)
        finally:
            self._exit.close()

    async def _close_everything(self) -> None:
        endpoints: list[Sender[int] | ChannelReceiver[int]] = [*self.senders, *self.receivers]
        for endpoint in endpoints:
            endpoint.close()
        await settle()
        for op in self.live:  # closing fails every parked operation; this is only a safety net
            if op.real is None and op.scope is not None:
                op.scope.cancel()
        await settle()

    # -- helpers ----------------------------------------------------------------------------------

    def _statistics(self) -> ChannelStatistics:
        return self.senders[0].statistics()

    def _pick(self, parked: list[Op], index: int | None) -> Op | None:
        if index is None or not parked:
            return None
        return parked[index % len(parked)]

    def _check(self, after: ChannelStatistics) -> None:
        """Every operation the model ended must have ended exactly so; the rest must still wait."""
        self.model.resume()
        still_parked = []
        for op in self.live:
            if op.expected is None:
                assert op.real is None, f"{op.kind} #{op.ident} ended ({op.real}) but should wait"
                still_parked.append(op)
            else:
                assert op.real == op.expected, f"{op.kind} #{op.ident}"
        self.live = still_parked
        assert after == self.model.statistics()

    def _sync_step(
        self,
        action: Callable[[], object],
        modelled: Callable[[], Outcome],
        cancel_first: int | None = None,
        cancel_then: int | None = None,
    ) -> None:
        """Run ``action`` on the loop thread, optionally cancelling parked operations in the same
        go (just before it, or just after it, before any woken task has had a chance to run)."""
        parked = self.model.parked()
        first, then = self._pick(parked, cancel_first), self._pick(parked, cancel_then)

        async def step() -> tuple[Outcome, ChannelStatistics, ChannelStatistics]:
            if first is not None:
                assert first.scope is not None
                first.scope.cancel()
            outcome = outcome_of(action)
            if then is not None:
                assert then.scope is not None
                then.scope.cancel()
            during = self._statistics()  # woken tasks have not run yet
            await settle()
            return outcome, during, self._statistics()

        outcome, during, after = self.portal.call(step)
        if first is not None:
            self.model.cancel(first)
        expected = modelled()
        if then is not None:
            self.model.cancel(then)
        assert outcome == expected
        assert during == self.model.statistics()
        self._check(after)

    def _new_op(
        self, kind: str, index: int, size: int
    ) -> tuple[Op, Callable[[], Awaitable[object]]]:
        """A fresh operation and the call that performs it."""
        op = Op(next(self._ids), kind, 0, [])
        call: Callable[[], Awaitable[object]]
        if kind in SENDS:
            op.endpoint = index % len(self.senders)
            tx = self.senders[op.endpoint]
            op.items = [next(self._items) for _ in range(1 if kind == "send" else size)]
            batch = list(op.items)
            call = (lambda: tx.send(batch[0])) if kind == "send" else (lambda: tx.send_many(batch))
        else:
            op.endpoint = index % len(self.receivers)
            rx = self.receivers[op.endpoint]
            op.max_items = max(size, 1)
            call = rx.receive if kind == "receive" else (lambda: rx.receive_many(op.max_items))
        return op, call

    # -- sync operations --------------------------------------------------------------------------

    @rule(index=INDEX, cancel_first=CANCEL, cancel_then=CANCEL)
    def send_nowait(self, index: int, cancel_first: int | None, cancel_then: int | None) -> None:
        i, item = index % len(self.senders), next(self._items)
        self._sync_step(
            lambda: self.senders[i].send_nowait(item),
            lambda: self.model.send_nowait(i, item),
            cancel_first,
            cancel_then,
        )

    @rule(index=INDEX, cancel_first=CANCEL, cancel_then=CANCEL)
    def receive_nowait(self, index: int, cancel_first: int | None, cancel_then: int | None) -> None:
        i = index % len(self.receivers)
        self._sync_step(
            self.receivers[i].receive_nowait,
            lambda: self.model.receive_nowait(i),
            cancel_first,
            cancel_then,
        )

    @precondition(lambda self: len(self.senders) + len(self.receivers) < 2 * MAX_CLONES)
    @rule(sender=st.booleans(), index=INDEX)
    def clone(self, sender: bool, index: int) -> None:
        if len(self.senders if sender else self.receivers) == MAX_CLONES:
            sender = not sender  # the precondition leaves room on one side at least
        endpoints: list[Any] = self.senders if sender else self.receivers
        closed = self.model.senders_closed if sender else self.model.receivers_closed
        i = index % len(endpoints)

        def clone() -> None:
            endpoints.append(endpoints[i].clone())

        self._sync_step(clone, lambda: self.model.clone(closed, i))

    @rule(sender=st.booleans(), index=INDEX, cancel_first=CANCEL, cancel_then=CANCEL)
    def close(
        self, sender: bool, index: int, cancel_first: int | None, cancel_then: int | None
    ) -> None:
        if sender:
            i = index % len(self.senders)
            action, modelled = self.senders[i].close, lambda: self.model.close_sender(i)
        else:
            i = index % len(self.receivers)
            action, modelled = self.receivers[i].close, lambda: self.model.close_receiver(i)
        self._sync_step(action, modelled, cancel_first, cancel_then)

    @precondition(lambda self: bool(self.model.parked()))
    @rule(index=INDEX, cancel_then=st.sampled_from([None, 0, 0, 1]))
    def complete_parked(self, index: int, cancel_then: int | None) -> None:
        """The other side's nowait operation through an open endpoint, which ends the
        longest-parked operation (or moves a parked batch along); then perhaps cancel it."""
        if self.model.send_waiters:
            i = self._open(self.model.receivers_closed, index)
            self._sync_step(
                self.receivers[i].receive_nowait,
                lambda: self.model.receive_nowait(i),
                cancel_then=cancel_then,
            )
        else:
            i, item = self._open(self.model.senders_closed, index), next(self._items)
            self._sync_step(
                lambda: self.senders[i].send_nowait(item),
                lambda: self.model.send_nowait(i, item),
                cancel_then=cancel_then,
            )

    @staticmethod
    def _open(closed: list[bool], index: int) -> int:
        """An open endpoint's index; a parked operation means the other side has one."""
        open_ones = [i for i, is_closed in enumerate(closed) if not is_closed]
        return open_ones[index % len(open_ones)]

    @precondition(lambda self: bool(self.model.parked()))
    @rule(index=st.integers(min_value=0, max_value=7))
    def cancel_parked(self, index: int) -> None:
        self._sync_step(lambda: None, lambda: returned(None), cancel_first=index)

    # -- async operations -------------------------------------------------------------------------

    @rule(many=st.booleans(), index=INDEX, size=SIZE)
    def async_send(self, many: bool, index: int, size: int) -> None:
        self._async_op("send_many" if many else "send", index, size)

    @rule(many=st.booleans(), index=INDEX, size=SIZE)
    def async_receive(self, many: bool, index: int, size: int) -> None:
        self._async_op("receive_many" if many else "receive", index, size)

    def _async_op(self, kind: str, index: int, size: int) -> None:
        """Completes at once if the model says it can (one ``portal.call``), else parks (a task)."""
        op, call = self._new_op(kind, index, size)
        self.model.start(op)
        self.live.append(op)
        if op.expected is None:
            self.portal.start_task_soon(run_op, op, call)
            after = self.portal.call(self._settled_statistics)
        else:
            after = self.portal.call(self._run_at_once, op, call)
        self._check(after)

    async def _settled_statistics(self) -> ChannelStatistics:
        await settle()
        return self._statistics()

    async def _run_at_once(
        self, op: Op, call: Callable[[], Awaitable[object]]
    ) -> ChannelStatistics:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_op, op, call)
            await settle()
            if op.real is None:  # it parked although the model says it could not: report that
                assert op.scope is not None
                op.scope.cancel()
        await settle()
        return self._statistics()

    @rule(kind=KIND, index=INDEX, size=SIZE)
    def async_op_in_a_cancelled_scope(self, kind: str, index: int, size: int) -> None:
        """Every async operation is a cancel point: cancelled on entry, it changes nothing."""
        _, call = self._new_op(kind, index, size)

        async def attempt() -> tuple[bool, Outcome | None, ChannelStatistics]:
            outcome: Outcome | None = None
            with CancelScope() as scope:
                scope.cancel()
                try:
                    outcome = returned(await call())
                except Exception as exc:
                    outcome = raised_by(exc)
            await settle()
            return scope.cancelled_caught, outcome, self._statistics()

        cancelled, outcome, after = self.portal.call(attempt)
        assert cancelled
        assert outcome is None
        self._check(after)


@pytest.mark.parametrize(("backend", "options"), BACKENDS)
def test_random_operation_sequences_match_the_model(backend: str, options: dict[str, Any]) -> None:
    """Every operation's result or error (type and unsent items) and every ``statistics()``
    snapshot match the model after every step of every random sequence, on every backend:
    FIFO items and waiters with direct hand-off, capacity limits, closing rules, and atomic
    cancellation (a cancelled parked operation leaves no trace, a completed one keeps its result,
    an operation cancelled on entry does nothing)."""

    class OnThisBackend(ChannelMachine):
        def __init__(self) -> None:
            super().__init__(backend, options)

    run_state_machine_as_test(OnThisBackend, settings=SETTINGS)
