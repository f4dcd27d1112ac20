"""An actor's timers: messages it sends itself later (``send_after``) or at a fixed rate
(``send_every``), on its system's clock.

Each timer is a task in the system's task group, keyed: starting a timer with the key of a running
one replaces it. Timers end with the instance that started them (a restart cancels them). A timer
never waits: a message that finds a ``"block"`` mailbox full goes to dead letters
(``MAILBOX_FULL``). The runtime's own timers (a supervisor's backoff) send system messages, which
are never refused.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import anyio

from ._mailbox import ACCEPTED, FULL
from ._messages import DeadLetterReason

if TYPE_CHECKING:
    from ._runtime import ActorRuntime

__all__ = ["Timers"]


class _Timer:
    __slots__ = ("cancelled", "scope")

    def __init__(self) -> None:
        self.cancelled = False
        self.scope: anyio.CancelScope | None = None

    def is_cancelled(self) -> bool:  # (a method: mypy would take the field for constant)
        return self.cancelled

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class _TimerKey:
    """The key of a timer started without one."""

    __slots__ = ()


class Timers:
    """The running timers of one actor, by key (made on its first timer)."""

    __slots__ = ("_runtime", "_timers")

    def __init__(self, runtime: ActorRuntime) -> None:
        self._runtime = runtime
        self._timers: dict[Hashable, _Timer] = {}

    def start(
        self, delay: float, message: Any, key: Hashable | None, repeat: bool, system: bool
    ) -> Hashable:
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise TypeError(f"a timer's delay must be a number >= 0, got {delay!r}")
        if not delay >= 0:
            raise ValueError(f"a timer's delay must be a number >= 0, got {delay!r}")
        if repeat and delay <= 0:
            raise ValueError(f"send_every's interval must be > 0, got {delay!r}")
        if key is None:
            key = _TimerKey()
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        timer = self._timers[key] = _Timer()
        self._runtime.system._task_group().start_soon(
            self._run, timer, key, delay, message, repeat, system
        )
        return key

    async def _run(
        self, timer: _Timer, key: Hashable, delay: float, message: Any, repeat: bool, system: bool
    ) -> None:
        runtime = self._runtime
        with anyio.CancelScope() as scope:
            timer.scope = scope
            if timer.cancelled:
                return
            clock = runtime.system.clock
            due = clock.now() + delay
            while True:
                await clock.sleep_until(due)
                if timer.is_cancelled():  # cancelled as the sleep ended: its cancel is late
                    return
                if not repeat and self._timers.get(key) is timer:
                    del self._timers[key]
                if system:  # the runtime's own (a supervisor's backoff): never refused
                    runtime.mailbox.put_system(message)
                    return
                outcome = runtime.mailbox.put(message)
                if outcome is FULL:
                    runtime.dead_letter(message, DeadLetterReason.MAILBOX_FULL)
                elif outcome is not ACCEPTED:
                    runtime.dropped(outcome, message)
                if not repeat:
                    return
                due += delay

    def cancel(self, key: Hashable) -> bool:
        timer = self._timers.pop(key, None)
        if timer is None:
            return False
        timer.cancel()
        return True

    def cancel_all(self) -> None:
        timers, self._timers = self._timers, {}
        for timer in timers.values():
            timer.cancel()
