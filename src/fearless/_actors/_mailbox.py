"""Mailboxes: bounded by default, with an overflow policy chosen at spawn.

Specification (``docs/actors.md`` is the user guide; ``docs/design/concurrency.md``, "Nothing is
lost silently"):

Capacity
    An ``int >= 1`` or ``math.inf``; anything else raises ``ValueError`` naming the value. The
    default is :data:`DEFAULT_CAPACITY`. Capacity counts user messages (tells, sends and asks);
    system messages (a graceful stop, a death-watch notice) never count and are never refused
    for lack of room: they never wait behind a full mailbox.
Overflow policy, when a user message finds the mailbox full
    ``"block"`` (the default): ``tell`` raises ``MailboxFull`` (nothing enqueued, the caller has the
    message back); ``send`` and ``ask`` wait for room, first come first served, and a task or
    thread waiting for room is never overtaken by a later ``tell``. ``"drop_newest"``: the new
    message goes to dead letters. ``"drop_oldest"``: the oldest user message goes to dead letters
    and the new one is enqueued. Under the drop policies nothing ever waits.
Order
    One queue, first in first out: user and system messages leave in the order they entered.
    Messages from one sender arrive in the order it sent them.
Closing
    When its actor stops, the mailbox closes: everything still in it is handed back to the actor's
    runtime (which sends it to dead letters), parked senders are released, and later messages are
    refused (they go to dead letters too).

Only one party takes from a mailbox: its actor's task. Senders are any tasks of any event loop and
any threads. Every field is guarded by ``lock``; parties to wake are claimed under it and woken
after it is released (``docs/design/concurrency.md``, "Wake outside the lock, and only those
parked").
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Literal, final

from .. import _backend
from .._parking import CLOSED, EMPTY, ROOM, Parked, ParkingLot, Signal, wake_all

__all__ = ["DEFAULT_CAPACITY", "Mailbox", "MailboxStatistics", "OverflowPolicy"]

OverflowPolicy = Literal["block", "drop_newest", "drop_oldest"]
_POLICIES: Final = ("block", "drop_newest", "drop_oldest")

DEFAULT_CAPACITY: Final = 1000
"""The capacity of a mailbox when ``spawn`` is not given one."""


@final
@dataclass(frozen=True, slots=True)
class Mailbox:
    """A mailbox's declaration, given to ``spawn``: ``Mailbox(64, overflow="drop_oldest")``.

    Validated when made: a bad capacity or policy raises ``ValueError`` naming the field and the
    value.
    """

    capacity: float = DEFAULT_CAPACITY
    """User messages it holds: an ``int >= 1``, or ``math.inf`` for an unbounded mailbox."""
    overflow: OverflowPolicy = "block"
    """What a user message that finds it full does: ``"block"``, ``"drop_newest"`` or
    ``"drop_oldest"``."""

    def __post_init__(self) -> None:
        capacity = self.capacity
        if not (
            (type(capacity) is int and capacity >= 1)
            or (isinstance(capacity, float) and capacity == math.inf)
        ):
            raise ValueError(f"Mailbox capacity must be an int >= 1 or math.inf, got {capacity!r}")
        if self.overflow not in _POLICIES:
            raise ValueError(
                f"Mailbox overflow must be one of {', '.join(map(repr, _POLICIES))}, "
                f"got {self.overflow!r}"
            )


@final
@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    """A snapshot of one actor's mailbox."""

    depth: int
    """User messages waiting now."""
    capacity: float
    """The declared capacity."""
    overflow: OverflowPolicy
    """The declared overflow policy."""
    peak_depth: int
    """The most user messages it has held at once."""
    total_enqueued: int
    """User messages that have entered it."""
    dropped: int
    """Messages the overflow policy sent to dead letters (newest or oldest)."""
    refused: int
    """Messages turned away because the actor had stopped: sent after it stopped, or waiting for
    room when it did (a tell or send goes to dead letters; an ask raises ``ActorStopped``)."""
    waiting_senders: int
    """Tasks and threads waiting for room (``"block"`` only)."""


class SystemMessage:
    """Base of the runtime's own messages; they bypass the capacity. Every subclass is listed
    in ``SYSTEM_TYPES`` (a set lookup is cheaper than ``isinstance`` on every message)."""

    __slots__ = ()

    def __init_subclass__(cls) -> None:
        SYSTEM_TYPES.add(cls)


SYSTEM_TYPES: set[type] = set()


# What put returns (besides an Evicted), and what a parked sender is claimed with. CLOSED (the
# actor has stopped), ROOM (a slot is reserved for the parked sender) and EMPTY (take: nothing
# queued) are the shared signals of fearless._parking.
ACCEPTED: Final = Signal("accepted")  # put: enqueued
FULL: Final = Signal("full")  # put: no room, policy "block"; nothing enqueued
DROPPED: Final = Signal("dropped")  # put: no room, policy "drop_newest"; the message is dropped


@final
class Evicted:
    """What ``put`` returns under ``"drop_oldest"`` on a full mailbox: the message it evicted."""

    __slots__ = ("message",)

    def __init__(self, message: Any) -> None:
        self.message = message


class MailboxQueue:
    """The running mailbox of one actor (kept across restarts of its instance)."""

    __slots__ = (
        "capacity",
        "closed",
        "dropped",
        "enqueued",
        "items",
        "lock",
        "lost",
        "overflow",
        "peak",
        "receiver",
        "refused",
        "reserved",
        "senders",
        "system",
    )

    def __init__(self, spec: Mailbox) -> None:
        self.lock = threading.Lock()
        self.capacity = spec.capacity
        self.overflow = spec.overflow
        # The queue; an idle actor that never got a message holds none (a deque is ~760 B, and
        # a service may hold 100k idle actors): ``_NO_ITEMS`` until the first put.
        self.items: deque[Any] = _NO_ITEMS
        # Invariants (under the lock):
        #   system   = the SystemMessage instances in items
        #   reserved = slots promised to parked senders claimed with ROOM that have not put yet
        #   user messages + reserved <= capacity, except that drop_oldest evicts to keep it so
        #   senders non-empty => no room (each is claimed as soon as a slot frees)
        self.system = 0
        self.reserved = 0
        # Senders waiting for room (policy "block"); the lot is made when the first one parks.
        self.senders: ParkingLot[Parked] | None = None
        # The actor's task, when parked. One slot, not a lot: only the actor's own task ever
        # waits here, and it re-arms one waiter for every park instead of making an entry.
        self.receiver: _backend.Waiter | None = None
        self.closed = False
        self.peak = 0
        self.enqueued = 0
        self.dropped = 0
        self.refused = 0
        self.lost = 0  # refused messages that went to dead letters (not asks: they raised)

    def _has_room(self) -> bool:
        return len(self.items) - self.system + self.reserved < self.capacity

    def _queue(self) -> deque[Any]:
        """Under the lock: the queue, made on first use."""
        items = self.items
        if items is _NO_ITEMS:
            items = self.items = deque()
        return items

    def _append(self, item: Any) -> _backend.Waiter | None:
        """Under the lock: enqueue a user message; return the receiver to wake, if any."""
        items = self._queue()
        items.append(item)
        self.enqueued += 1
        depth = len(items) - self.system
        if depth > self.peak:
            self.peak = depth
        receiver = self.receiver
        if receiver is not None:
            self.receiver = None
            if receiver.claim(None):
                return receiver
        return None

    def put(self, item: Any) -> object:
        """Enqueue a user message without waiting. Returns ``ACCEPTED``, ``FULL`` (``"block"``:
        nothing enqueued), ``DROPPED`` (``"drop_newest"``: this message was dropped), an
        :class:`Evicted` (``"drop_oldest"``: that one was dropped, this one enqueued) or
        ``CLOSED``. The caller sends whatever was dropped to dead letters."""
        lock = self.lock
        lock.acquire()
        try:
            if self.closed:
                self.refused += 1
                return CLOSED
            items = self.items
            depth = len(items) - self.system
            if depth + self.reserved >= self.capacity:
                return self._overflow(item)
            if items is _NO_ITEMS:
                items = self.items = deque()
            items.append(item)  # _append(), inlined: every tell comes through here
            self.enqueued += 1
            if depth >= self.peak:
                self.peak = depth + 1
            receiver = self.receiver
            if receiver is None:
                return ACCEPTED
            self.receiver = None
            if not receiver.claim(None):
                return ACCEPTED
        finally:
            lock.release()
        receiver.wake()
        return ACCEPTED

    def _overflow(self, item: Any) -> object:
        policy = self.overflow
        if policy == "block":
            return FULL
        self.dropped += 1
        if policy == "drop_newest":
            return DROPPED
        items = self.items
        for i, old in enumerate(items):  # the oldest user message (system ones stay)
            if old.__class__ not in SYSTEM_TYPES:
                del items[i]
                items.append(item)
                self.enqueued += 1
                return Evicted(old)
        raise AssertionError("a full mailbox holds at least one user message")  # pragma: no cover

    def put_system(self, item: SystemMessage, *, front: bool = False) -> bool:
        """Enqueue a system message, whatever the room (at the front: before everything queued);
        ``False`` if the mailbox is closed."""
        lock = self.lock
        lock.acquire()
        try:
            if self.closed:
                return False
            if front:
                self._queue().appendleft(item)
            else:
                self._queue().append(item)
            self.system += 1
            receiver = self.receiver
            self.receiver = None
            if receiver is None or not receiver.claim(None):
                return True
        finally:
            lock.release()
        receiver.wake()
        return True

    # -- waiting for room (policy "block") ---------------------------------------------------------

    def put_or_park(self, item: Any, entry: Parked) -> object:
        """``put``, except that under ``"block"`` a full mailbox parks ``entry`` (returning
        ``FULL``); the caller waits on it, then calls :meth:`put_reserved`."""
        lock = self.lock
        lock.acquire()
        try:
            if self.closed:
                self.refused += 1
                return CLOSED
            if self._has_room() and not self.senders:
                receiver = self._append(item)
                if receiver is None:
                    return ACCEPTED
            else:
                outcome = self._overflow(item)
                if outcome is FULL:
                    if self.senders is None:
                        self.senders = ParkingLot()
                    self.senders.append(entry)
                return outcome
        finally:
            lock.release()
        receiver.wake()
        return ACCEPTED

    def put_reserved(self, item: Any) -> object:
        """A parked sender claimed with ``ROOM`` puts its message in its reserved slot."""
        lock = self.lock
        lock.acquire()
        try:
            self.reserved -= 1
            if self.closed:  # the actor stopped between the slot's reservation and now
                self.refused += 1
                return CLOSED
            receiver = self._append(item)
            if receiver is None:
                return ACCEPTED
        finally:
            lock.release()
        receiver.wake()
        return ACCEPTED

    def unpark_sender(self, entry: Parked) -> Any:
        """A parked sender gives up: ``ABORTED`` if still parked, else what it was claimed with."""
        with self.lock:
            if self.senders is None:  # closed meanwhile: it was claimed with CLOSED
                return entry.waiter.revoke()
            return self.senders.withdraw(entry)

    def undo_room(self, outcome: object) -> bool:
        """A sender claimed with ``ROOM`` was cancelled before it put: hand its slot on."""
        if outcome is ROOM:
            with self.lock:
                self.reserved -= 1
                woken = self._make_room()
            wake_all(woken)
        return True

    def _make_room(self) -> list[Parked] | None:
        """Under the lock: slots are free; claim parked senders for them, first parked first."""
        senders = self.senders
        if not senders:
            return None
        woken: list[Parked] = []
        while self._has_room() and senders.claim_first(ROOM, woken) is not None:
            self.reserved += 1
        return woken

    # -- the actor's side --------------------------------------------------------------------------

    def take(self, waiter: _backend.Waiter | None = None) -> Any:
        """The next message, or ``EMPTY``: then ``waiter`` (if given) is parked as the receiver,
        re-armed first if it was used before, all under one acquisition of the lock."""
        lock = self.lock
        lock.acquire()
        try:
            items = self.items
            if not items:
                if waiter is not None:
                    if waiter.claimed:
                        waiter.rearm()
                    self.receiver = waiter
                return EMPTY
            item = items.popleft()
            if item.__class__ in SYSTEM_TYPES:
                self.system -= 1
                return item
            if not self.senders:
                return item
            woken = self._make_room()
        finally:
            lock.release()
        wake_all(woken)
        return item

    def unpark(self) -> Any:
        """The parked actor is cancelled (killed): revoke its waiter."""
        with self.lock:
            waiter = self.receiver
            if waiter is None:
                return None  # claimed already: the wake is on its way (nothing to undo)
            self.receiver = None
            return waiter.revoke()

    def close(self) -> tuple[list[Any], list[Parked]]:
        """Close it (the actor stopped): returns what was still queued, and the parked senders,
        already claimed with ``CLOSED`` (the caller wakes them)."""
        with self.lock:
            self.closed = True
            items = list(self.items)
            self.items = _NO_ITEMS
            self.system = 0
            senders: list[Parked] = []
            if self.senders is not None:
                self.senders.claim_all(CLOSED, senders)
                self.senders = None
            self.refused += len(senders)
            return items, senders

    def note_lost(self) -> None:
        """A refused message went to dead letters (counted for the actor's snapshot)."""
        with self.lock:
            self.lost += 1

    def statistics(self) -> MailboxStatistics:
        with self.lock:
            return MailboxStatistics(
                depth=len(self.items) - self.system,
                capacity=self.capacity,
                overflow=self.overflow,
                peak_depth=self.peak,
                total_enqueued=self.enqueued,
                dropped=self.dropped,
                refused=self.refused,
                waiting_senders=self.senders.waiting() if self.senders else 0,
            )


_NO_ITEMS: Final[deque[Any]] = deque(maxlen=0)
"""Every idle mailbox's queue until its first message (empty, and never appended to: a
``maxlen=0`` deque would drop what it was given, so nothing may append to it)."""
