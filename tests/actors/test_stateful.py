"""Random sequences of mailbox operations, checked step by step against a pure-Python model.

A Hypothesis state machine drives one ``MailboxQueue`` (capacity 1, 3 or ``math.inf``, under each
overflow policy) synchronously through ``put`` (user messages), ``put_system``, ``take`` and
``close``, and under ``"block"`` through parked senders (``put_or_park`` with a
``ThreadWaiter`` that nobody blocks on, then ``put_reserved`` once claimed with ``ROOM``, or
giving up through ``unpark_sender`` and ``undo_room``); no event loop is involved. The model is a
list, and follows the specification in ``fearless._actors._mailbox``: capacity counts user
messages only, a system message is never refused for room and never evicted, ``"block"`` refuses
with ``FULL`` (nothing enqueued), ``"drop_newest"`` answers ``DROPPED``, ``"drop_oldest"`` evicts
the oldest user message (returned in ``Evicted``) and enqueues the new one, parked senders get
room first come first served and are never overtaken by a later ``put``, everything leaves first
in first out, and a closed mailbox hands back what it held and refuses everything after. After
every step the outcome and ``statistics()`` (depth, peak depth, enqueued, dropped, refused,
waiting senders) must match.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Final

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fearless import Mailbox
from fearless._actors._mailbox import (
    ACCEPTED,
    DROPPED,
    FULL,
    SYSTEM_TYPES,
    Evicted,
    MailboxQueue,
    OverflowPolicy,
    SystemMessage,
)
from fearless._backend import ABORTED, ThreadWaiter
from fearless._parking import CLOSED, EMPTY, ROOM, Parked

SETTINGS: Final = settings(max_examples=100, stateful_step_count=50, deadline=None)
CAPACITIES: Final = (1, 3, math.inf)
POLICIES: Final[tuple[OverflowPolicy, ...]] = ("block", "drop_newest", "drop_oldest")


class Sys(SystemMessage):
    """A system message of the test's own (a stop or a notice, as far as the mailbox cares)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Sys({self.n})"


class User:
    """A user message; identity matters (two messages are never the same object)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"User({self.n})"


def test_system_subclass_is_registered() -> None:
    assert Sys in SYSTEM_TYPES
    assert User not in SYSTEM_TYPES


class MailboxMachine(RuleBasedStateMachine):
    def __init__(self, capacity: float, overflow: OverflowPolicy) -> None:
        super().__init__()
        self.capacity = capacity
        self.overflow = overflow
        self.queue = MailboxQueue(Mailbox(capacity, overflow=overflow))
        self.numbers = itertools.count()
        # The model.
        self.items: list[Any] = []
        self.closed = False
        self.peak = 0
        self.enqueued = 0
        self.dropped = 0
        self.refused = 0
        self.parked: list[tuple[Parked, User]] = []  # waiting for room, in park order
        self.reserved: list[tuple[Parked, User]] = []  # claimed with ROOM, not yet put
        self.released: list[Parked] = []  # claimed with CLOSED by close()

    def has_room(self) -> bool:
        return self.user_depth() + len(self.reserved) < self.capacity

    def make_room(self) -> None:
        """A slot freed: parked senders are claimed with ROOM for it, first parked first."""
        while self.parked and self.has_room():
            waiter, message = self.parked.pop(0)
            assert not waiter.waiter.alive()
            assert waiter.waiter.value is ROOM
            self.reserved.append((waiter, message))
        for waiter, _ in self.parked:
            assert waiter.waiter.alive()

    def append(self, message: User) -> None:
        self.items.append(message)
        self.enqueued += 1
        self.peak = max(self.peak, self.user_depth())

    def user_depth(self) -> int:
        return sum(1 for item in self.items if not isinstance(item, SystemMessage))

    @rule()
    def put(self) -> None:
        message = User(next(self.numbers))
        outcome = self.queue.put(message)
        if self.closed:
            assert outcome is CLOSED
            self.refused += 1
        elif self.has_room():
            assert outcome is ACCEPTED
            self.append(message)
        elif self.overflow == "block":
            assert outcome is FULL  # nothing enqueued, nothing counted: the caller has it back
        elif self.overflow == "drop_newest":
            assert outcome is DROPPED
            self.dropped += 1
        else:
            oldest = next(item for item in self.items if isinstance(item, User))
            assert isinstance(outcome, Evicted), outcome
            assert outcome.message is oldest
            self.items.remove(oldest)
            self.items.append(message)
            self.enqueued += 1
            self.dropped += 1

    @rule(count=st.integers(1, 3))
    def put_system(self, count: int) -> None:
        for _ in range(count):
            message = Sys(next(self.numbers))
            accepted = self.queue.put_system(message)
            assert accepted is (not self.closed)  # never refused for room
            if accepted:
                self.items.append(message)

    @rule(count=st.integers(1, 4))
    def take(self, count: int) -> None:
        for _ in range(count):
            item = self.queue.take()
            if not self.items:
                assert item is EMPTY
            else:
                assert item is self.items.pop(0)  # first in, first out, user or system
                if isinstance(item, User):
                    self.make_room()

    # -- senders waiting for room ("block") --------------------------------------------------

    @precondition(lambda self: self.overflow == "block" and self.capacity != math.inf)
    @rule()
    def send(self) -> None:
        """A ``send`` or ``ask`` that found the mailbox full parks, first come first served."""
        message = User(next(self.numbers))
        waiter = Parked(ThreadWaiter())
        outcome = self.queue.put_or_park(message, waiter)
        if self.closed:
            assert outcome is CLOSED
            self.refused += 1
        elif self.has_room() and not self.parked:
            assert outcome is ACCEPTED
            self.append(message)
        else:
            assert outcome is FULL
            assert waiter.waiter.alive()
            self.parked.append((waiter, message))

    @precondition(lambda self: bool(self.reserved))
    @rule(data=st.data())
    def put_reserved(self, data: st.DataObject) -> None:
        """A sender claimed with ROOM puts its message in its slot (maybe after the close)."""
        _, message = self.reserved.pop(data.draw(st.integers(0, len(self.reserved) - 1)))
        outcome = self.queue.put_reserved(message)
        if self.closed:
            assert outcome is CLOSED
            self.refused += 1
        else:
            assert outcome is ACCEPTED
            self.append(message)

    @precondition(lambda self: bool(self.parked or self.reserved or self.released))
    @rule(data=st.data())
    def give_up(self, data: st.DataObject) -> None:
        """A waiting sender is cancelled: still parked, claimed with ROOM, or released."""
        everyone = self.parked + self.reserved + [(w, None) for w in self.released]
        waiter, _ = everyone[data.draw(st.integers(0, len(everyone) - 1))]
        outcome = self.queue.unpark_sender(waiter)
        if any(w is waiter for w, _ in self.parked):
            assert outcome is ABORTED
            self.parked = [(w, m) for w, m in self.parked if w is not waiter]
        elif waiter in self.released:
            assert outcome is CLOSED
            self.released.remove(waiter)
            assert self.queue.undo_room(outcome)
        else:
            assert outcome is ROOM
            self.reserved = [(w, m) for w, m in self.reserved if w is not waiter]
            assert self.queue.undo_room(outcome)  # its slot goes to the next parked sender
            if not self.closed:
                self.make_room()

    @rule()
    def close(self) -> None:
        items, senders = self.queue.close()
        assert len(senders) == len(self.parked)
        assert all(a is b for a, (b, _) in zip(senders, self.parked, strict=True))
        for waiter in senders:
            assert waiter.waiter.value is CLOSED
        self.released += senders
        self.refused += len(senders)  # turned away by the close
        self.parked = []
        if self.closed:
            assert items == []
        else:
            assert len(items) == len(self.items)
            assert all(a is b for a, b in zip(items, self.items, strict=True))
        self.items = []
        self.closed = True

    @invariant()
    def statistics_match(self) -> None:
        stats = self.queue.statistics()
        depth = self.user_depth()
        assert stats.depth == depth
        assert depth <= self.capacity
        assert stats.capacity == self.capacity
        assert stats.overflow == self.overflow
        assert stats.peak_depth == self.peak
        assert stats.total_enqueued == self.enqueued
        assert stats.dropped == self.dropped
        assert stats.refused == self.refused
        assert stats.waiting_senders == len(self.parked)
        if self.parked:
            assert not self.has_room()  # a parked sender is claimed as soon as a slot frees
        if self.overflow == "block":
            assert self.dropped == 0
        if self.capacity == math.inf:
            assert self.dropped == 0  # an unbounded mailbox never overflows


@pytest.mark.parametrize("overflow", POLICIES)
@pytest.mark.parametrize("capacity", CAPACITIES)
def test_mailbox_matches_model(capacity: float, overflow: OverflowPolicy) -> None:
    class Machine(MailboxMachine):
        def __init__(self) -> None:
            super().__init__(capacity, overflow)

    run_state_machine_as_test(Machine, settings=SETTINGS)


@pytest.mark.parametrize(
    ("capacity", "overflow"),
    [(0, "block"), (-1, "block"), (2.5, "block"), (True, "block"), (1, "drop"), (1, "BLOCK")],
)
def test_mailbox_rejects_bad_declarations(capacity: Any, overflow: Any) -> None:
    with pytest.raises(ValueError, match=repr(capacity) if overflow == "block" else repr(overflow)):
        Mailbox(capacity, overflow=overflow)
