"""The one wait queue: how every party fearless parks waits, is claimed, woken, or withdraws.

Every object that can make a task or a thread wait (a channel, a broadcast, a oneshot, a mailbox,
an atomic cell, a guarded value, the concurrent queue) keeps its waiting parties in
:class:`ParkingLot` s and follows one protocol (``docs/design/concurrency.md``, "Wake outside the
lock, and only those parked", and "Cancellation is atomic"):

park
    Under the owner's lock, a party that cannot go on appends a :class:`Parked` entry (holding its
    :class:`~fearless._backend.Waiter`) to a lot, releases the lock, and waits.
claim
    Under the owner's lock, whoever completes a parked party's operation claims it with the value it
    will resume with (an item, or a :class:`Signal`), takes it out of the lot, and adds it to the
    list of parties to wake. A claim succeeds at most once; a party parked in several lots at once
    (``merge``, ``select``: :func:`park_many`) is claimed by exactly one of them.
wake
    After releasing the lock, every claimed party is woken (``Waiter.wake``, from any thread). A
    party whose event loop has shut down cannot be woken; if it was handed an item, the owner takes
    the item back.
withdraw
    A party that gives up (cancelled, timed out) revokes its waiter and leaves the lot, under the
    owner's lock (:meth:`ParkingLot.withdraw`). If nobody had claimed it, nothing happened; if it
    had been claimed (the wake is on its way), the caller gets the value it was claimed with and
    takes the operation back, or lets it stand (``fearless._backend``'s module docstring).

An entry whose waiter was claimed elsewhere or revoked may stay in a lot until it is met: every
claim skips it, and :meth:`ParkingLot.waiting` does not count it. This keeps withdrawing cheap for a
party parked in many lots, and lets a lot be taken whole (``close``) without scanning.

A lot *is* its FIFO (a ``deque``): the hot paths of the channels test it for emptiness and pop it
at C speed, and everything else goes through the methods here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, final

if TYPE_CHECKING:
    import threading

    from ._backend import Waiter

__all__ = [
    "BROKEN",
    "CLOSED",
    "EMPTY",
    "ENDED",
    "READY",
    "ROOM",
    "SENT",
    "Parked",
    "ParkingLot",
    "Signal",
    "Site",
    "is_signal",
    "nothing_to_undo",
    "park_many",
    "wake_all",
]


@final
class Signal:
    """A value a parked party resumes with (or an operation returns) that is not an item."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


SENT: Final = Signal("sent")  # a parked send's last item went in
ENDED: Final = Signal("ended")  # every sender closed: the parked receive sees the end of stream
BROKEN: Final = Signal("broken")  # every receiver closed: the parked send fails
CLOSED: Final = Signal(
    "closed"
)  # the parked party's own endpoint was closed (or the actor stopped)
EMPTY: Final = Signal("empty")  # an operation that would have to wait (nothing to take)
READY: Final = Signal("ready")  # something changed: look again (wake-then-read parties)
ROOM: Final = Signal("room")  # a parked sender: a slot is reserved for it


def is_signal(value: object) -> bool:
    """Whether ``value`` is a :class:`Signal` rather than an item."""
    return type(value) is Signal


class Parked:
    """One party in a lot: its waiter, and the endpoint (``owner``) it parked through.

    ``owner`` lets closing an endpoint claim exactly its own parked operations
    (:meth:`ParkingLot.claim_owned`). Subclasses that park one task in several lots (``merge``,
    ``select``) override :meth:`wrap` to add where the value came from.
    """

    __slots__ = ("owner", "waiter")

    def __init__(self, waiter: Waiter, owner: object = None) -> None:
        self.waiter = waiter
        self.owner = owner

    def claim(self, value: object) -> bool:
        """Give the party ``value`` to resume with; ``False`` if claimed or revoked already."""
        return self.waiter.claim(self.wrap(value))

    def wrap(self, value: object) -> object:
        """What the party resumes with, for ``value``."""
        return value

    def claimed_item(self) -> Any:
        """The item a claim handed this party, or ``EMPTY`` if it was a signal (or nothing)."""
        value = self.waiter.value
        return EMPTY if type(value) is Signal else value


P = TypeVar("P", bound=Parked)


class ParkingLot(deque[P]):
    """The parties parked on one object for one thing, first parked first.

    Every method runs under the owner's lock; ``woken`` is the owner's list of claimed parties, to
    be woken once the lock is released.
    """

    __slots__ = ()

    def claim_first(self, value: object, woken: list[Any]) -> P | None:
        """Claim the longest-parked party still waiting with ``value``; ``None`` if none is."""
        while self:
            entry = self.popleft()
            if entry.claim(value):
                woken.append(entry)
                return entry
        return None

    def claim_all(self, value: object, woken: list[Any]) -> None:
        """Claim every party still waiting with ``value`` (the lot is left empty)."""
        if not self:
            return
        woken.extend([entry for entry in self if entry.claim(value)])
        self.clear()

    def take_all(self, value: object) -> list[P] | None:
        """Claim every party still waiting with ``value`` and return them, to wake once the
        lock is released; ``None`` if nobody was parked (the common case costs one test)."""
        if not self:
            return None
        woken: list[P] = []
        self.claim_all(value, woken)
        return woken

    def claim_owned(self, owner: object, value: object, woken: list[Any]) -> None:
        """Claim the parties that parked through ``owner`` (an endpoint being closed)."""
        if not self:
            return
        own = [entry for entry in self if entry.owner is owner]
        for entry in own:
            self.remove(entry)
            if entry.claim(value):
                woken.append(entry)

    def discard(self, entry: object) -> None:
        """Take ``entry`` out if it is still here (the other side may have taken it already)."""
        try:
            self.remove(entry)  # type: ignore[arg-type]
        except ValueError:
            pass

    def withdraw(self, entry: P) -> Any:
        """The party gives up: revoke its waiter and take it out.

        Returns ``ABORTED`` if nobody had claimed it (now nobody can), else the value it was
        claimed with: the wake is on its way, and the caller undoes the operation or lets it stand.
        """
        outcome = entry.waiter.revoke()
        self.discard(entry)
        return outcome

    def waiting(self) -> int:
        """How many parties are still waiting (entries claimed elsewhere are not counted)."""
        return sum(1 for entry in self if entry.waiter.alive())


def wake_all(woken: Iterable[Parked] | None) -> None:
    """Wake parties that were handed no item (a party whose loop has gone has nothing to lose)."""
    for entry in woken or ():
        entry.waiter.wake()


def nothing_to_undo(_: object) -> bool:
    """The ``undo`` of a party woken with no item (it looks again when it runs): a cancellation
    after the wake has nothing to take back."""
    return True


class Site(Protocol):
    """Something a party parked in several places at once (:func:`park_many`) can wait at."""

    lock: threading.Lock

    def take_woken(self) -> list[Any] | None:
        """Under the lock: the parties claimed since the last call, to wake after releasing it."""

    def wake(self, woken: list[Any]) -> None:
        """Without the lock: wake them (taking back an item a party can no longer receive)."""


async def park_many(
    waiter: Waiter,
    joins: Iterable[tuple[Site, Callable[[], tuple[ParkingLot[Any], Parked]]]],
    undo: Callable[[Any], bool],
) -> Any:
    """Park one task at several sites at once and return the value of the one claim that wins.

    ``waiter`` is the task's shared waiter (``backend.new_waiter(shared=True)``). Each join runs
    under its site's lock: it appends the task's entry to a lot there (or claims it at once: the
    site may have changed since the task last looked) and returns the lot and the entry. Parking
    stops at the first site that claims the waiter. Whatever happens, the entries that did not
    win leave their lots before this returns, so none lingers in an idle channel.

    Cancellation: as ``Waiter.wait``. If cancelled, the waiter is revoked; if a site had claimed it
    already, ``undo(value)`` takes that operation back (or returns ``False``: it stands, and the
    value is returned with the cancellation delivered at the next cancel point).
    """
    parked: list[tuple[Site, ParkingLot[Any], Parked]] = []
    claimed_here = False
    for site, join in joins:
        with site.lock:
            lot, entry = join()
            woken = site.take_woken()
        parked.append((site, lot, entry))
        if woken:
            others = [party for party in woken if party.waiter is not waiter]
            claimed_here |= len(others) < len(woken)  # this task's own join claimed it
            if others:
                site.wake(others)
        if not waiter.alive():
            break  # claimed already: no need to park at the rest

    def leave() -> None:
        for site, lot, entry in parked:
            with site.lock:
                lot.discard(entry)

    if claimed_here:  # settled at once, by this task: nothing to wait for, nobody to wake
        leave()
        return waiter.value

    def abort() -> Any:
        outcome = waiter.revoke()
        leave()
        return outcome

    try:
        return await waiter.wait(abort, undo)
    finally:
        leave()  # the entries that did not win must not linger at other sites
