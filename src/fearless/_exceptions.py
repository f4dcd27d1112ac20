"""Every public exception fearless raises, in one place.

fearless reuses anyio's exception types wherever they fit, so code written against anyio memory
object streams catches fearless's errors unchanged. Where fearless needs to say more (which items
were not sent), it subclasses the anyio type, so ``except anyio.BrokenResourceError`` still works::

    Exception
    ├── anyio.WouldBlock             a *_nowait call would have had to wait (reused as is)
    ├── anyio.EndOfStream            every sender is closed and the buffer is drained (reused)
    ├── anyio.ClosedResourceError    you closed this endpoint, then used it
    │   └── SendClosedError          ... and these items were not sent (``.unsent``)
    ├── anyio.BrokenResourceError    the other side went away
    │   └── SendBrokenError          every receiver is closed; these items were not sent
    └── Lagged                       a broadcast subscription fell behind and lost ``.missed`` items
    RuntimeError
    ├── EventLoopBlockingError       a ``*_blocking`` call on a thread that runs an event loop
    └── AwaitInCriticalSectionError  (debug mode) a task awaited inside ``with guarded.lock()``
"""

from __future__ import annotations

from typing import Any

import anyio

__all__ = [
    "AwaitInCriticalSectionError",
    "EventLoopBlockingError",
    "Lagged",
    "SendBrokenError",
    "SendClosedError",
]


class _CarriesUnsent(Exception):
    """Mixin: a failed send hands its items back instead of losing them silently."""

    unsent: tuple[Any, ...]
    """The items that were not enqueued, in the order they were given."""

    @property
    def item(self) -> Any:
        """The first item that was not sent (for ``send``, the item itself); ``None`` if none."""
        return self.unsent[0] if self.unsent else None


class SendClosedError(_CarriesUnsent, anyio.ClosedResourceError):
    """A send on a sender that was closed (by this task or another) before the item went in."""

    def __init__(self, unsent: tuple[Any, ...]) -> None:
        super().__init__(f"this sender is closed; {len(unsent)} item(s) were not sent")
        self.unsent = unsent


class SendBrokenError(_CarriesUnsent, anyio.BrokenResourceError):
    """A send on a channel whose receivers are all closed: nobody could ever receive the item."""

    def __init__(self, unsent: tuple[Any, ...]) -> None:
        super().__init__(f"every receiver is closed; {len(unsent)} item(s) were not sent")
        self.unsent = unsent


class Lagged(Exception):
    """A broadcast subscription fell more than its capacity behind: ``missed`` items are gone.

    Raised by a subscription's receive under ``on_lag="error"``. The subscription has already
    moved on to the oldest item the broadcast still keeps; receive again to get it.
    """

    missed: int
    """How many items this subscription lost (exact)."""

    def __init__(self, missed: int) -> None:
        super().__init__(f"this subscription fell behind and missed {missed} item(s)")
        self.missed = missed

    def __reduce__(self) -> tuple[type[Lagged], tuple[int]]:
        return type(self), (self.missed,)


class EventLoopBlockingError(RuntimeError):
    """A blocking call was made from a thread that is running an event loop.

    It would block the loop, and with it the very tasks that could unblock the call: a deadlock.
    Use the ``await`` form in async code, or call the blocking form from another thread (for
    example through ``anyio.to_thread.run_sync``).
    """


class AwaitInCriticalSectionError(RuntimeError):
    """A task was suspended (it awaited) inside a debug-mode ``with guarded.lock()`` block.

    Raised when the block exits, after the lock has been released. The lock was held while the task
    was suspended, which can block every other task that wants it, or deadlock the event loop.
    """
