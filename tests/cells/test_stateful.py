"""Hypothesis state machines for the cells not covered elsewhere: AtomicCell, AtomicBool, Guarded
and ShardedCounter, each against a plain model. (AtomicInt, ArrayQueue and ConcurrentStack have
theirs in test_atomic.py and test_queue.py.)"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fearless import AtomicBool, AtomicCell, Guarded, ShardedCounter

SETTINGS = settings(max_examples=100, stateful_step_count=30, deadline=None)
values = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=2))


class CellModel(RuleBasedStateMachine):
    """AtomicCell against a variable; compare_and_set by identity."""

    def __init__(self) -> None:
        super().__init__()
        self.model: object = None
        self.cell: AtomicCell[object] = AtomicCell(self.model)
        self.changes = 0

    @rule(value=values)
    def store(self, value: object) -> None:
        self.cell.store(value)
        self.model = value
        self.changes += 1

    @rule(value=values)
    def swap(self, value: object) -> None:
        assert self.cell.swap(value) is self.model
        self.model = value
        self.changes += 1

    @rule(new=values, same=st.booleans())
    def compare_and_set(self, new: object, same: bool) -> None:
        expected = self.model if same else object()  # a fresh object is never the value
        assert self.cell.compare_and_set(expected, new) is same
        if same:
            self.model = new
            self.changes += 1

    @rule(suffix=st.text(max_size=2))
    def update(self, suffix: str) -> None:
        assert self.cell.update(lambda v: f"{v}{suffix}") == f"{self.model}{suffix}"
        self.model = self.cell.load()  # the object itself: compare_and_set compares identity
        self.changes += 1

    @rule()
    def modify(self) -> None:
        old = self.model
        assert self.cell.modify(lambda v: ((v,), repr(v))) == repr(old)
        self.model = self.cell.load()
        assert self.model == (old,)
        self.changes += 1

    @invariant()
    def agrees(self) -> None:
        assert self.cell.load() == self.model
        stats = self.cell.statistics()
        assert stats.changes == self.changes
        assert stats.waiting == 0


class BoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cell = AtomicBool(False)
        self.model = False

    @rule(b=st.booleans())
    def fetch_or(self, b: bool) -> None:
        assert self.cell.fetch_or(b) is self.model
        self.model = self.model or b

    @rule(b=st.booleans())
    def fetch_and(self, b: bool) -> None:
        assert self.cell.fetch_and(b) is self.model
        self.model = self.model and b

    @rule()
    def toggle(self) -> None:
        assert self.cell.toggle() is (not self.model)
        self.model = not self.model

    @rule(expected=st.booleans(), new=st.booleans())
    def compare_and_set(self, expected: bool, new: bool) -> None:
        assert self.cell.compare_and_set(expected, new) is (expected == self.model)
        if expected == self.model:
            self.model = new

    @invariant()
    def agrees(self) -> None:
        assert self.cell.load() is self.model


class GuardedModel(RuleBasedStateMachine):
    """Guarded[list[int]] against a list."""

    def __init__(self) -> None:
        super().__init__()
        self.guarded: Guarded[list[int]] = Guarded([])
        self.model: list[int] = []

    @rule(n=st.integers(-9, 9))
    def append_in_lock(self, n: int) -> None:
        with self.guarded.lock() as value:
            value.append(n)
        self.model.append(n)

    @rule(n=st.integers(-9, 9))
    def update(self, n: int) -> None:
        assert self.guarded.update(lambda v: [*v, n]) == [*self.model, n]
        self.model = [*self.model, n]

    @rule(new=st.lists(st.integers(-9, 9), max_size=3))
    def replace(self, new: list[int]) -> None:
        assert self.guarded.replace(list(new)) == self.model
        self.model = list(new)

    @precondition(lambda self: self.model)
    @rule()
    def read(self) -> None:
        assert self.guarded.read(max) == max(self.model)

    @invariant()
    def agrees(self) -> None:
        assert self.guarded.read(list) == self.model


class ShardedModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.counter = ShardedCounter()
        self.model = 0

    @rule(n=st.integers(-100, 100))
    def add(self, n: int) -> None:
        self.counter.add(n)
        self.model += n

    @rule()
    def increment(self) -> None:
        self.counter.increment()
        self.model += 1

    @rule()
    def reset(self) -> None:
        self.counter.reset()
        self.model = 0

    @invariant()
    def agrees(self) -> None:
        assert self.counter.value() == self.model


TestCellModel = CellModel.TestCase
TestBoolModel = BoolModel.TestCase
TestGuardedModel = GuardedModel.TestCase
TestShardedModel = ShardedModel.TestCase
for case in (TestCellModel, TestBoolModel, TestGuardedModel, TestShardedModel):
    case.settings = SETTINGS
