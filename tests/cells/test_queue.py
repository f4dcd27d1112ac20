"""``ArrayQueue`` and ``ConcurrentStack``: every method and error, a model check, and thread stress.

The stress tests run on the default interpreter and on free-threaded CPython 3.13t, where nothing
but the structures' own atomicity keeps an element from being lost or duplicated.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from anyio import WouldBlock
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from fearless._cells._queue import ArrayQueue, ConcurrentStack

DEADLINE = 30.0  # seconds a stress thread may take before the test calls it a deadlock

# ---------------------------------------------------------------------------- ArrayQueue units


@pytest.mark.parametrize("capacity", [0, -1, True, False, 1.0, math.inf, "3", None])
def test_bad_capacity_raises_value_error_naming_the_value(capacity: Any) -> None:
    with pytest.raises(ValueError, match=f"got {capacity!r}"):
        ArrayQueue(capacity)


def test_a_new_queue_is_empty_with_its_capacity() -> None:
    q = ArrayQueue[int](3)
    assert q.capacity == 3
    assert len(q) == 0
    assert q.is_empty()
    assert not q.is_full()


def test_items_leave_in_the_order_they_were_pushed() -> None:
    q = ArrayQueue[int](3)
    for i in range(3):
        q.push(i)
    assert [q.pop() for _ in range(3)] == [0, 1, 2]


def test_push_on_a_full_queue_raises_would_block_and_pushes_nothing() -> None:
    q = ArrayQueue[str](2)
    q.push("a")
    q.push("b")
    assert q.is_full()
    with pytest.raises(WouldBlock):
        q.push("c")
    assert len(q) == 2
    assert [q.pop(), q.pop()] == ["a", "b"]


def test_pop_on_an_empty_queue_raises_would_block() -> None:
    q = ArrayQueue[int](1)
    with pytest.raises(WouldBlock):
        q.pop()
    q.push(1)
    q.pop()
    with pytest.raises(WouldBlock):
        q.pop()


def test_force_push_with_room_evicts_nothing() -> None:
    q = ArrayQueue[int](2)
    assert q.force_push(1) == ()
    assert len(q) == 1


def test_force_push_on_a_full_queue_evicts_and_returns_the_oldest() -> None:
    q = ArrayQueue[int](2)
    q.push(1)
    q.push(2)
    assert q.force_push(3) == (1,)
    assert len(q) == 2
    assert [q.pop(), q.pop()] == [2, 3]


def test_force_push_tells_an_evicted_none_from_nothing_evicted() -> None:
    """Items may be ``None``: evicting one must not read as "nothing was evicted"."""
    q = ArrayQueue[None](1)
    assert q.force_push(None) == ()
    assert q.force_push(None) == (None,)


def test_len_is_empty_and_is_full_follow_the_contents() -> None:
    q = ArrayQueue[int](2)
    q.push(1)
    assert (len(q), q.is_empty(), q.is_full()) == (1, False, False)
    q.push(2)
    assert (len(q), q.is_empty(), q.is_full()) == (2, False, True)
    q.pop()
    q.pop()
    assert (len(q), q.is_empty(), q.is_full()) == (0, True, False)


def test_queue_has_slots() -> None:
    q = ArrayQueue[int](1)
    with pytest.raises(AttributeError):
        q.extra = 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- ConcurrentStack units


def test_a_new_stack_is_empty() -> None:
    s = ConcurrentStack[int]()
    assert len(s) == 0
    with pytest.raises(WouldBlock):
        s.pop()
    with pytest.raises(WouldBlock):
        s.peek()


def test_items_leave_the_stack_last_in_first_out() -> None:
    s = ConcurrentStack[int]()
    for i in range(3):
        s.push(i)
    assert len(s) == 3
    assert [s.pop() for _ in range(3)] == [2, 1, 0]
    with pytest.raises(WouldBlock):
        s.pop()


def test_peek_returns_the_top_without_removing_it() -> None:
    s = ConcurrentStack[str | None]()
    s.push("a")
    s.push(None)
    assert s.peek() is None
    assert len(s) == 2
    assert s.pop() is None
    assert s.peek() == "a"


def test_stack_has_slots() -> None:
    s = ConcurrentStack[int]()
    with pytest.raises(AttributeError):
        s.extra = 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- models


class ArrayQueueMachine(RuleBasedStateMachine):
    """``ArrayQueue`` behaves as a deque that refuses pushes beyond its capacity."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = ArrayQueue[int](1)
        self.model: deque[int] = deque()
        self.capacity = 1

    @initialize(capacity=st.integers(1, 5))
    def create(self, capacity: int) -> None:
        self.queue = ArrayQueue[int](capacity)
        self.capacity = capacity

    @rule(item=st.integers())
    def push(self, item: int) -> None:
        if len(self.model) >= self.capacity:
            with pytest.raises(WouldBlock):
                self.queue.push(item)
        else:
            self.queue.push(item)
            self.model.append(item)

    @rule(item=st.integers())
    def force_push(self, item: int) -> None:
        expected: tuple[()] | tuple[int] = ()
        if len(self.model) >= self.capacity:
            expected = (self.model.popleft(),)
        self.model.append(item)
        assert self.queue.force_push(item) == expected

    @rule()
    def pop(self) -> None:
        if self.model:
            assert self.queue.pop() == self.model.popleft()
        else:
            with pytest.raises(WouldBlock):
                self.queue.pop()

    @invariant()
    def sizes_match(self) -> None:
        assert len(self.queue) == len(self.model)
        assert self.queue.is_empty() == (not self.model)
        assert self.queue.is_full() == (len(self.model) == self.capacity)
        assert self.queue.capacity == self.capacity


class ConcurrentStackMachine(RuleBasedStateMachine):
    """``ConcurrentStack`` behaves as a list used from its end."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = ConcurrentStack[int]()
        self.model: list[int] = []

    @rule(item=st.integers())
    def push(self, item: int) -> None:
        self.stack.push(item)
        self.model.append(item)

    @rule()
    def pop(self) -> None:
        if self.model:
            assert self.stack.pop() == self.model.pop()
        else:
            with pytest.raises(WouldBlock):
                self.stack.pop()

    @rule()
    def peek(self) -> None:
        if self.model:
            assert self.stack.peek() == self.model[-1]
        else:
            with pytest.raises(WouldBlock):
                self.stack.peek()

    @invariant()
    def sizes_match(self) -> None:
        assert len(self.stack) == len(self.model)


TestArrayQueueModel = ArrayQueueMachine.TestCase
TestArrayQueueModel.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestConcurrentStackModel = ConcurrentStackMachine.TestCase
TestConcurrentStackModel.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)

# ---------------------------------------------------------------------------- thread stress

TOTAL = 50_000  # items pushed per stress test, across all producers
THREADS = 8  # half produce, half consume


def _run_all(targets: list[Callable[[], None]]) -> None:
    """Start a thread per target, all released at once; join each with a deadline."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                start.wait()
                target()
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive(), "a stress thread is still running: deadlock"
    if errors:
        raise errors[0]


def _check_exactly_once_and_fifo(
    producers: int, takers: list[list[tuple[int, int]]], fifo: bool
) -> None:
    """Every item (producer, seq) was taken exactly once; in FIFO mode, each taker saw every
    producer's items in the order that producer pushed them."""
    taken = [item for seq in takers for item in seq]
    assert len(taken) == TOTAL
    per_producer = TOTAL // producers
    assert sorted(taken) == [(p, i) for p in range(producers) for i in range(per_producer)]
    if fifo:
        for seq in takers:
            last = [-1] * producers
            for p, i in seq:
                assert i > last[p], f"producer {p}'s item {i} came after its item {last[p]}"
                last[p] = i


def _consumer(
    pop: Callable[[], tuple[int, int]], done: threading.Event, size: Callable[[], int]
) -> Callable[[], list[tuple[int, int]]]:
    """A loop popping until the producers are done and the structure is empty."""

    def run() -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = []
        while True:
            try:
                got.append(pop())
            except WouldBlock:
                if done.is_set() and size() == 0:
                    return got
                time.sleep(0)

    return run


@pytest.mark.parametrize("use_force_push", [False, True], ids=["push", "force_push"])
def test_queue_under_8_threads_loses_and_duplicates_nothing_and_keeps_fifo(
    use_force_push: bool,
) -> None:
    """4 producers and 4 consumers move 50k items through a small queue.

    Every item is popped (or evicted by ``force_push``) exactly once, and each consumer (and each
    evicting producer) sees each producer's items in the order that producer pushed them.
    """
    producers = THREADS // 2
    per_producer = TOTAL // producers
    q = ArrayQueue[tuple[int, int]](16)
    done = threading.Event()
    evicted: list[list[tuple[int, int]]] = [[] for _ in range(producers)]
    popped: list[list[tuple[int, int]]] = [[] for _ in range(THREADS - producers)]

    def producer(p: int) -> Callable[[], None]:
        def run() -> None:
            out = evicted[p]
            for i in range(per_producer):
                if use_force_push:
                    out.extend(q.force_push((p, i)))
                else:
                    while True:
                        try:
                            q.push((p, i))
                            break
                        except WouldBlock:
                            time.sleep(0)

        return run

    def consumer(c: int) -> Callable[[], None]:
        loop = _consumer(q.pop, done, q.__len__)

        def run() -> None:
            popped[c] = loop()

        return run

    producer_threads = [producer(p) for p in range(producers)]
    consumer_threads = [consumer(c) for c in range(THREADS - producers)]

    def producers_then_done() -> None:
        try:
            _run_all(producer_threads)
        finally:
            done.set()  # so a failing producer fails the test instead of stranding the consumers

    _run_all([producers_then_done, *consumer_threads])
    _check_exactly_once_and_fifo(producers, popped + evicted, fifo=True)


def test_stack_under_8_threads_loses_and_duplicates_nothing() -> None:
    """4 pushers and 4 poppers move 50k items through one stack: every item popped exactly once."""
    producers = THREADS // 2
    per_producer = TOTAL // producers
    s = ConcurrentStack[tuple[int, int]]()
    done = threading.Event()
    popped: list[list[tuple[int, int]]] = [[] for _ in range(THREADS - producers)]

    def producer(p: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(per_producer):
                s.push((p, i))

        return run

    def consumer(c: int) -> Callable[[], None]:
        loop = _consumer(s.pop, done, s.__len__)

        def run() -> None:
            popped[c] = loop()

        return run

    def producers_then_done() -> None:
        try:
            _run_all([producer(p) for p in range(producers)])
        finally:
            done.set()  # so a failing producer fails the test instead of stranding the consumers

    _run_all([producers_then_done, *(consumer(c) for c in range(THREADS - producers))])
    _check_exactly_once_and_fifo(producers, popped, fifo=False)
