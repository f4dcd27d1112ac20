"""Death watch: monitors and links (Erlang's ``monitor`` and ``link``).

- ``monitor(target)``: the watcher gets a ``Terminated`` notice when ``target`` stops, however it
  stops; at once if it has stopped already.
- ``link(target)``: if either fails (``"failed"`` or ``"killed"``), the other fails too, with
  ``LinkedActorFailed`` (or, trapping links, gets the notice as a message). A graceful stop and a
  ``"shutdown"`` do not propagate.

Actors of other systems, on other threads, may watch this one, so each actor's watch state is
guarded by its own lock; two actors' locks are always taken in one order (by ``id``). The notice
is published (``notice``) under that lock, so a watch registered concurrently either sees it or is
told by :meth:`DeathWatch.publish`.

An actor may also monitor a remote actor (``fearless.nats``): the remote ref starts a watch of its
own (it polls the system's registry) and calls back with the notice; ``remote`` maps each such
ref to the function that cancels its watch, so that a demonitor, or this actor's end, stops it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._cells._atomic import AtomicCell
from ._mailbox import SystemMessage
from ._messages import Terminated

if TYPE_CHECKING:
    from ._runtime import ActorRuntime

__all__ = ["DeathWatch", "Notice"]


class Notice(SystemMessage):
    """A ``Terminated`` notice on its way to a monitor (or a linked actor that traps links)."""

    __slots__ = ("notice",)

    def __init__(self, notice: Terminated) -> None:
        self.notice = notice


def _not_none(value: object) -> bool:
    return value is not None


class DeathWatch:
    """One actor's watchers, the actors it watches, its links, and its ``Terminated`` notice."""

    __slots__ = (
        "_runtime",
        "_waited",
        "guard",
        "links",
        "notice",
        "remote",
        "watchers",
        "watching",
    )

    def __init__(self, runtime: ActorRuntime) -> None:
        self._runtime = runtime
        self.guard = threading.Lock()
        # The notice, once the actor has ended (set under the guard; a plain read is a hint, as
        # ``ref.is_alive`` is). Those who wait for it wait on ``_waited``, made by the first.
        self.notice: Terminated | None = None
        self._waited: AtomicCell[Terminated | None] | None = None
        # Ordered sets, made on first use (most actors are never watched).
        self.watchers: dict[DeathWatch, None] | None = None  # who monitors this actor
        self.watching: dict[DeathWatch, None] | None = None  # whom this actor monitors
        self.links: dict[DeathWatch, None] | None = None
        # Remote actors this one monitors: the ref, and what cancels its watch (None while the
        # watch is being started).
        self.remote: dict[Any, Callable[[], None] | None] | None = None

    def monitor(self, target: DeathWatch) -> None:
        with target.guard:
            notice = target.notice
            if notice is None:
                if target.watchers is None:
                    target.watchers = {}
                target.watchers[self] = None
        if notice is not None:
            self._runtime.mailbox.put_system(Notice(notice))
            return
        if self.watching is None:
            self.watching = {}
        self.watching[target] = None

    def demonitor(self, target: DeathWatch) -> None:
        with target.guard:
            if target.watchers is not None:
                target.watchers.pop(self, None)
        if self.watching is not None:
            self.watching.pop(target, None)

    def monitor_remote(
        self, ref: Any, start: Callable[[Callable[[Terminated], None]], Callable[[], None]]
    ) -> None:
        """Monitor a remote actor: ``start(deliver)`` begins watching it and returns what cancels
        the watch; ``deliver(notice)`` may be called from any thread, once."""
        mailbox = self._runtime.mailbox

        def deliver(notice: Terminated) -> None:
            with self.guard:
                if self.remote is None or ref not in self.remote:
                    return  # demonitored, or this actor has ended
                del self.remote[ref]
            mailbox.put_system(Notice(notice))

        with self.guard:
            if self.notice is not None:
                return
            if self.remote is None:
                self.remote = {}
            if ref in self.remote:
                return  # monitored already: one notice, as for a local actor
            self.remote[ref] = None
        cancel = start(deliver)
        with self.guard:
            if self.remote is not None and ref in self.remote:
                self.remote[ref] = cancel
                return
        cancel()  # delivered, demonitored or ended while it started

    def demonitor_remote(self, ref: Any) -> None:
        with self.guard:
            cancel = None if self.remote is None else self.remote.pop(ref, None)
        if cancel is not None:
            cancel()

    def link(self, target: DeathWatch) -> None:
        if target is self:
            raise ValueError(f"actor {self._runtime.name!r} cannot link to itself")
        first, second = sorted((self, target), key=id)  # two locks: a fixed order
        with first.guard, second.guard:
            notice = target.notice
            if notice is None and self.notice is None:
                if target.links is None:
                    target.links = {}
                if self.links is None:
                    self.links = {}
                target.links[self] = None
                self.links[target] = None
        if notice is not None and notice.failed:
            self._runtime.linked_failed(notice)

    def unlink(self, target: DeathWatch) -> None:
        first, second = sorted((self, target), key=id)
        with first.guard, second.guard:
            if target.links is not None:
                target.links.pop(self, None)
            if self.links is not None:
                self.links.pop(target, None)

    def publish(self, notice: Terminated) -> None:
        """The actor has ended: forget whom it watched, publish its notice, tell its watchers,
        and fail its links if it ended abnormally. Synchronous (it runs under cancellation)."""
        for watched in self.watching or ():
            with watched.guard:
                if watched.watchers is not None:
                    watched.watchers.pop(self, None)
        self.watching = None
        with self.guard:  # against monitor(), link() and waiters on other threads
            self.notice = notice
            waited = self._waited
            watchers, self.watchers = self.watchers, None
            links, self.links = self.links, None
            remote, self.remote = self.remote, None
        for cancel in (remote or {}).values():
            if cancel is not None:
                cancel()
        if waited is not None:
            waited.store(notice)
        for watcher in watchers or ():
            watcher._runtime.mailbox.put_system(Notice(notice))
        for linked in links or ():
            with linked.guard:
                if linked.links is not None:
                    linked.links.pop(self, None)
            if notice.failed:
                linked._runtime.linked_failed(notice)

    def _waitable(self) -> AtomicCell[Terminated | None]:
        with self.guard:
            waited = self._waited
            if waited is None:
                waited = self._waited = AtomicCell(self.notice)
            return waited

    async def wait(self) -> Terminated:
        notice = self.notice
        if notice is None:
            notice = await self._waitable().wait_until(_not_none)
            assert notice is not None
        return notice

    def wait_blocking(self, timeout: float | None) -> Terminated:
        notice = self.notice
        if notice is None:
            notice = self._waitable().wait_until_blocking(_not_none, timeout)
            assert notice is not None
        return notice
