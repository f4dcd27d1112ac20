"""What the thread tests share: threads that report back, and waits with a deadline.

A thread is always joined with a deadline, so a deadlock fails the test instead of hanging it.
The waits poll for a state another thread reaches; they never stand in for an assertion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio

DEADLINE = 30.0  # seconds a thread may take before the test calls it a deadlock


class Worker(threading.Thread):
    """A thread that records its result or exception, joined with a deadline."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_fn()
        except BaseException as exc:
            self.error = exc

    def finish(self) -> Any:
        """Join (with the deadline) and return the result, or raise what the thread raised."""
        self.join(DEADLINE)
        assert not self.is_alive(), "the thread is still blocked: deadlock"
        if self.error is not None:
            raise self.error
        return self.result


@contextmanager
def running(target: Callable[[], Any]) -> Iterator[Worker]:
    """Run ``target`` in a :class:`Worker` for the block; joined (with the deadline) on exit."""
    worker = Worker(target)
    worker.start()
    try:
        yield worker
    finally:
        worker.join(DEADLINE)


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait (not assert) until another thread has reached a state; fail after the deadline."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0.0005)


async def until(condition: Callable[[], bool]) -> None:
    """``wait_for`` for a task: poll without blocking the event loop."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        await anyio.sleep(0.0005)
