"""Oneshot: a single value from one task to another.

Specification:

- ``tx, rx = fearless.oneshot[T]()``. ``tx.send(value)`` is synchronous and never waits: the value
  is stored for the receiver, and the sender is spent (a second ``send`` raises
  ``SendClosedError`` carrying the value).
- ``await rx.receive()`` (or simply ``await rx``) returns the value, waiting for it if need be.
  ``rx.receive_nowait()`` returns it or raises ``WouldBlock``. The value can be received once;
  afterwards the receiver is at its end (``EndOfStream``).
- If the sender is closed, or garbage-collected, without sending, the receiver learns it:
  ``receive`` raises ``EndOfStream``. Do not rely on garbage collection for that: a traceback or
  a reference cycle can keep a sender alive long after its task failed. Hold it in
  ``with tx:``, which closes it however the block ends.
- If the receiver is closed (or garbage-collected) first, ``send`` raises ``SendBrokenError``
  carrying the value.
- Cancellation: ``receive`` is a cancel point; a cancelled ``receive`` took nothing, and the value
  stays for the next call. Waking does not hand the value over: the woken receiver reads it when
  it runs, so there is no race to settle.
- ``send`` is meant for the event loop's own thread in this release; sending from another OS
  thread comes with the thread bridge.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final, Generic, Self, TypeVar, final

from anyio import ClosedResourceError, EndOfStream, WouldBlock

from .. import _backend
from .._backend import enter as _enter
from .._exceptions import SendBrokenError, SendClosedError
from ._channel import ClosesOnExit

__all__ = ["OneshotReceiver", "OneshotSender", "oneshot"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class _Nothing:
    __slots__ = ()


_NOTHING: Final = _Nothing()


class _State:
    __slots__ = ("closed_receiver", "closed_sender", "value", "waiter")

    def __init__(self) -> None:
        self.value: Any = _NOTHING  # the value, until it is received
        self.closed_sender = False  # sent, or closed without sending
        self.closed_receiver = False
        self.waiter: _backend.Waiter | None = None  # the parked receive, if any

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and waiter.claim(None):
            waiter.wake()


@final
class OneshotSender(ClosesOnExit, Generic[T_contra]):
    """The sending half of :func:`oneshot`. Created only by the factory."""

    __slots__ = ("__weakref__", "_state")

    _state: _State

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("OneshotSender has no public constructor; use fearless.oneshot()")

    @classmethod
    def _create(cls, state: _State) -> Self:
        self = object.__new__(cls)
        self._state = state
        return self

    def send(self, value: T_contra) -> None:
        """Deliver ``value``; never waits. The sender is spent afterwards.

        Raises ``SendClosedError`` if this sender already sent or was closed, and
        ``SendBrokenError`` if the receiver is closed; both carry the value.
        """
        state = self._state
        if state.closed_sender:
            raise SendClosedError((value,))
        if state.closed_receiver:
            raise SendBrokenError((value,))
        state.value = value
        state.closed_sender = True
        state.wake()

    def close(self) -> None:
        """Close without sending (idempotent once sent): the receiver sees ``EndOfStream``."""
        state = self._state
        if not state.closed_sender:
            state.closed_sender = True
            state.wake()

    @property
    def closed(self) -> bool:
        """True once the value was sent or the sender was closed."""
        return self._state.closed_sender

    def __del__(self) -> None:
        # A sender dropped without sending is a sender closed without sending.
        state = getattr(self, "_state", None)
        if state is not None and not state.closed_sender:
            try:
                self.close()
            except RuntimeError:  # pragma: no cover - the receiver's loop is already closed
                pass


@final
class OneshotReceiver(ClosesOnExit, Generic[T_co]):
    """The receiving half of :func:`oneshot`. Created only by the factory; ``await rx`` works."""

    __slots__ = ("_state",)

    _state: _State

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("OneshotReceiver has no public constructor; use fearless.oneshot()")

    def __del__(self) -> None:
        # A receiver dropped without closing is closed: a later send fails, handing the value
        # back, instead of succeeding into the void.
        state = getattr(self, "_state", None)
        if state is not None:
            state.closed_receiver = True

    @classmethod
    def _create(cls, state: _State) -> Self:
        self = object.__new__(cls)
        self._state = state
        return self

    def receive_nowait(self) -> T_co:
        """The value if it has been sent; ``WouldBlock`` if not yet.

        ``EndOfStream`` if the sender closed without sending or the value was already received;
        ``ClosedResourceError`` if this receiver is closed.
        """
        state = self._state
        if state.closed_receiver:
            raise ClosedResourceError
        value = state.value
        if value is not _NOTHING:
            state.value = _NOTHING
            return value  # type: ignore[no-any-return]
        if state.closed_sender:
            raise EndOfStream
        raise WouldBlock

    async def receive(self) -> T_co:
        """The value, waiting until it is sent.

        Closing: ``EndOfStream`` if the sender closes (or is dropped) without sending, or the value
        was already received; ``ClosedResourceError`` if this receiver is closed. Cancellation: a
        cancel point; a cancelled ``receive`` took nothing, and the value stays for the next call.
        Only one task may wait at a time (``RuntimeError`` otherwise).
        """
        backend = _enter()
        if backend.cancel_pending:
            await backend.checkpoint()
        state = self._state
        while True:
            try:
                return self.receive_nowait()
            except WouldBlock:
                pass
            if state.waiter is not None:
                raise RuntimeError("another task is already waiting on this oneshot receiver")
            waiter = state.waiter = backend.new_waiter()

            def unregister(waiter: _backend.Waiter = waiter) -> object:
                if state.waiter is waiter:
                    state.waiter = None
                return waiter.revoke()

            # Woken with nothing in hand: the value stays in the state until read, so a
            # cancellation after the wake has nothing to undo.
            await waiter.wait(unregister, lambda _: True)

    def close(self) -> None:
        """Close the receiver (idempotent): a later ``send`` fails, handing the value back."""
        state = self._state
        if not state.closed_receiver:
            state.closed_receiver = True
            state.value = _NOTHING
            state.wake()

    def __await__(self) -> Generator[Any, None, T_co]:
        return self.receive().__await__()


class oneshot(tuple[OneshotSender[T], OneshotReceiver[T]]):
    """Create a oneshot pair: ``tx, rx = fearless.oneshot[int]()``. See the module docstring."""

    def __new__(cls) -> tuple[OneshotSender[T], OneshotReceiver[T]]:  # type: ignore[misc]
        state = _State()
        return OneshotSender._create(state), OneshotReceiver._create(state)
