"""Oneshot: a single value from one task or thread to another.

Specification:

- ``tx, rx = fearless.oneshot[T]()``. ``tx.send(value)`` is synchronous and never waits: the value
  is stored for the receiver, and the sender is spent (a second ``send`` raises
  ``SendClosedError`` carrying the value).
- ``await rx.receive()`` (or simply ``await rx``) returns the value, waiting for it if need be.
  ``rx.receive_nowait()`` returns it or raises ``WouldBlock``. ``rx.receive_blocking(timeout)``
  waits for it in an OS thread. The value can be received once; afterwards the receiver is at
  its end (``EndOfStream``).
- If the sender is closed, or garbage-collected, without sending, the receiver learns it:
  ``receive`` raises ``EndOfStream``. Do not rely on garbage collection for that: a traceback or
  a reference cycle can keep a sender alive long after its task failed. Hold it in
  ``with tx:``, which closes it however the block ends.
- If the receiver is closed (or garbage-collected) first, ``send`` raises ``SendBrokenError``
  carrying the value.
- Cancellation: ``receive`` is a cancel point; a cancelled ``receive`` took nothing, and the value
  stays for the next call. Waking does not hand the value over: the woken receiver reads it when
  it runs, so there is no race to settle.
- Threads: every operation is safe from any thread. ``send`` and ``close`` from a thread wake a
  receiver parked on an event loop through that loop; ``receive_blocking`` blocks a thread (and
  raises ``EventLoopBlockingError`` at once on a thread that runs an event loop). One party at a
  time may wait, task or thread (``RuntimeError`` otherwise).

Locking: the state's critical sections run under a re-entrant lock (``threading.RLock``), and the
receiver is woken after it is released. Re-entrant because both halves close the state from
``__del__``, and a finalizer can run on a thread that already holds the lock: a collection
may start at any allocation (CPython runs a pending one at the next call), and dropping a
reference can free the other half at once. A plain lock would deadlock that thread against
itself. The alternative, never waiting for the lock in ``__del__`` and leaving the close to
whoever releases it next (what broadcast does for its subscriptions), costs a check after every
release; with four fields and one waiter it is simpler to make each critical section tolerate a
close landing inside it: a receive that found nothing installs its waiter and then looks again
(a close that landed in between found no waiter to wake), a send checks and stores with no call
in between, and a dropped value is released only after the lock is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from functools import partial
from typing import Any, Generic, Self, TypeVar, final

from anyio import ClosedResourceError, EndOfStream, WouldBlock

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import SendBrokenError, SendClosedError
from .._parking import EMPTY, Parked, ParkingLot, Signal, nothing_to_undo, wake_all
from ._base import ClosesOnExit

__all__ = ["OneshotReceiver", "OneshotSender", "oneshot"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class OneshotState(Generic[T]):
    """What the two halves share. Every field is read and written under ``lock``."""

    __slots__ = ("closed_receiver", "closed_sender", "lock", "value", "waiters")

    def __init__(self) -> None:
        self.lock = threading.RLock()  # re-entrant: see the module docstring
        self.value: T | Signal = EMPTY  # the value, until it is received
        self.closed_sender = False  # sent, or closed without sending
        self.closed_receiver = False
        self.waiters: ParkingLot[Parked] = ParkingLot()  # the parked receive (one at most)

    def claim_waiter(self) -> list[Parked] | None:
        """Under the lock: the parked receive to wake once the lock is released, if any."""
        return self.waiters.take_all(None)

    def take(self) -> T | Signal:
        """Under the lock: the value, or ``EMPTY`` if it has not been sent yet; raises
        ``ClosedResourceError`` or ``EndOfStream`` if it can never be received."""
        if self.closed_receiver:
            raise ClosedResourceError
        value = self.value
        if type(value) is not Signal:
            self.value = EMPTY
            return value
        if self.closed_sender:
            raise EndOfStream
        return EMPTY

    def park(self, entry: Parked) -> bool:
        """Under the lock, just after ``take()`` found nothing: ``entry`` waits for the send (or
        a close). ``False`` if something landed meanwhile: take again instead of waiting."""
        if self.waiters:
            raise RuntimeError("another task or thread is already waiting on this oneshot receiver")
        self.waiters.append(entry)
        # From here on a send or close claims the entry. One that landed re-entrantly between
        # take() and the line above (a finalizer: see the module docstring) found no one parked.
        if self.value is not EMPTY or self.closed_sender or self.closed_receiver:
            self.waiters.discard(entry)
            return False
        return True

    def unpark(self, entry: Parked) -> object:
        """The parked receive gives up (cancelled, timed out): what ``revoke`` returned."""
        with self.lock:
            return self.waiters.withdraw(entry)


@final
class OneshotSender(ClosesOnExit, Generic[T_contra]):
    """The sending half of :func:`oneshot`. Created only by the factory. Safe from any thread."""

    __slots__ = ("__weakref__", "_state")

    _state: OneshotState[T_contra]

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("OneshotSender has no public constructor; use fearless.oneshot()")

    @classmethod
    def _create(cls, state: OneshotState[Any]) -> Self:
        self = object.__new__(cls)
        self._state = state
        return self

    def send(self, value: T_contra) -> None:
        """Deliver ``value``; never waits. The sender is spent afterwards.

        Safe from any thread, event-loop thread or not: a receiver parked on an event loop is
        woken through that loop, a receiver blocked in ``receive_blocking`` is released. (If
        the receiver's event loop has shut down, the value stays stored, unread.)

        Raises ``SendClosedError`` if this sender already sent or was closed, and
        ``SendBrokenError`` if the receiver is closed; both carry the value, and then nothing
        was delivered.
        """
        state = self._state
        with state.lock:
            if state.closed_sender:
                raise SendClosedError((value,))
            if state.closed_receiver:
                raise SendBrokenError((value,))
            state.value = value
            state.closed_sender = True
            woken = state.claim_waiter()
        wake_all(woken)

    def close(self) -> None:
        """Close without sending (idempotent once sent): the receiver sees ``EndOfStream``.

        Safe from any thread; a parked receiver (task or thread) is woken to see it.
        """
        state = self._state
        with state.lock:
            if state.closed_sender:
                return
            state.closed_sender = True
            woken = state.claim_waiter()
        wake_all(woken)

    @property
    def closed(self) -> bool:
        """True once the value was sent or the sender was closed."""
        return self._state.closed_sender

    def __repr__(self) -> str:
        # Read without the lock: a moment's snapshot (the value itself is never shown).
        state = self._state
        return (
            f"<OneshotSender {'closed' if state.closed_sender else 'open'}"
            f" value={'none' if state.value is EMPTY else 'waiting'}"
            f" receiver={'closed' if state.closed_receiver else 'open'}"
            f" parked={len(state.waiters)}>"
        )

    def __del__(self) -> None:
        # A sender dropped without sending is a sender closed without sending. (The lock is
        # re-entrant, so this may run wherever a collection does: see the module docstring.)
        if getattr(self, "_state", None) is not None:
            self.close()


@final
class OneshotReceiver(ClosesOnExit, Generic[T_co]):
    """The receiving half of :func:`oneshot`. Created only by the factory; ``await rx`` works.

    Safe from any thread: tasks of any event loop ``await`` it, threads use
    :meth:`receive_blocking`.
    """

    __slots__ = ("_state",)

    _state: OneshotState[T_co]

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("OneshotReceiver has no public constructor; use fearless.oneshot()")

    def __del__(self) -> None:
        # A receiver dropped without closing is closed: a later send fails, handing the value
        # back, instead of succeeding into the void.
        if getattr(self, "_state", None) is not None:
            self.close()

    @classmethod
    def _create(cls, state: OneshotState[Any]) -> Self:
        self = object.__new__(cls)
        self._state = state
        return self

    def receive_nowait(self) -> T_co:
        """The value if it has been sent; ``WouldBlock`` if not yet. Safe from any thread.

        ``EndOfStream`` if the sender closed without sending or the value was already received;
        ``ClosedResourceError`` if this receiver is closed.
        """
        state = self._state
        with state.lock:
            value = state.take()
        if type(value) is Signal:
            raise WouldBlock
        return value

    async def receive(self) -> T_co:
        """The value, waiting until it is sent (from a task or a thread).

        Closing: ``EndOfStream`` if the sender closes (or is dropped) without sending, or the value
        was already received; ``ClosedResourceError`` if this receiver is (or gets) closed.
        Cancellation: a cancel point; a cancelled ``receive`` took nothing, and the value stays for
        the next call. Only one party, task or thread, may wait at a time (``RuntimeError``
        otherwise).
        """
        backend = _enter()
        if backend.cancel_pending:
            await backend.checkpoint()
        state = self._state
        with state.lock:
            value = state.take()
        while type(value) is Signal:
            entry = Parked(backend.new_waiter())
            with state.lock:
                value = state.take()
                parked = value is EMPTY and state.park(entry)
            if parked:
                await entry.waiter.wait(partial(state.unpark, entry), nothing_to_undo)
                with state.lock:
                    value = state.take()  # woken by a send or a close: not EMPTY any more
        return value

    def receive_blocking(self, timeout: float | None = None) -> T_co:
        """The value, blocking this thread until it is sent (from a task or another thread).

        For OS threads that are not running an event loop; on one that is, it raises
        ``EventLoopBlockingError`` at once instead of deadlocking it.

        Timeout: after ``timeout`` seconds (``None``: no limit) it raises ``TimeoutError``, and
        nothing was taken: the value, if it arrives later, stays for the next call (``0``: take
        it only if it is there now). The same holds for a wait interrupted by an exception
        (``KeyboardInterrupt``). Closing: as for :meth:`receive` (``EndOfStream`` as soon as
        the sender closes or is dropped without sending; ``ClosedResourceError`` if this
        receiver is, or while blocked gets, closed). Only one party, task or thread, may wait at
        a time (``RuntimeError`` otherwise).
        """
        wait = _backend.check_timeout(timeout)
        _backend.check_blocking_allowed("receive_blocking")
        state = self._state
        deadline = None if wait < 0 else time.monotonic() + wait
        with state.lock:
            value = state.take()
        while type(value) is Signal:
            left = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
            if left == 0:
                raise TimeoutError("nothing was sent in time; nothing was taken")
            waiter = _backend.ThreadWaiter()
            entry = Parked(waiter)
            with state.lock:
                value = state.take()
                parked = value is EMPTY and state.park(entry)
            if parked:
                waiter.wait_blocking(partial(state.unpark, entry), nothing_to_undo, left)
                with state.lock:
                    value = state.take()
        return value

    def close(self) -> None:
        """Close the receiver (idempotent; safe from any thread): a later ``send`` fails, handing
        the value back. A parked receive (task or thread) fails with ``ClosedResourceError``."""
        state = self._state
        with state.lock:
            if state.closed_receiver:
                return
            state.closed_receiver = True
            value, state.value = state.value, EMPTY  # dropped after the lock is released
            woken = state.claim_waiter()
        wake_all(woken)
        del value

    def __await__(self) -> Generator[Any, None, T_co]:
        return self.receive().__await__()

    def __repr__(self) -> str:
        # Read without the lock: a moment's snapshot (the value itself is never shown).
        state = self._state
        return (
            f"<OneshotReceiver {'closed' if state.closed_receiver else 'open'}"
            f" value={'none' if state.value is EMPTY else 'waiting'}"
            f" sender={'closed' if state.closed_sender else 'open'}"
            f" parked={len(state.waiters)}>"
        )


class oneshot(tuple[OneshotSender[T], OneshotReceiver[T]]):
    """Create a oneshot pair: ``tx, rx = fearless.oneshot[int]()``. The guide is ``docs/select.md``,
    "Oneshot"."""

    def __new__(cls) -> tuple[OneshotSender[T], OneshotReceiver[T]]:  # type: ignore[misc]
        state: OneshotState[T] = OneshotState()
        return OneshotSender._create(state), OneshotReceiver._create(state)
