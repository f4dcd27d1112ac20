"""Distributed cells: a value of one system, kept in JetStream's key-value store.

Specification (the guide is docs/nats.md):

- **Where the value lives.** The cell ``hits`` of the system ``shop`` is the key ``hits`` of the
  bucket ``fearless_shop`` (one bucket per system, history 1). Every process that opens the cell
  sees one value; each write gets the next *revision* (the stream sequence of that write).
- **Reads and writes** go to the server: ``load()`` returns the latest stored value (a read after
  a write that returned sees it, in any process); ``store(value)`` writes unconditionally.
- **Compare-and-set** is checked by the server on the revision: ``compare_and_set(expected,
  new)`` reads the value, and writes ``new`` only if it equals ``expected`` *and* nobody wrote in
  between (the write names the revision it read). ``update(fn)`` and ``increment(n)`` are
  compare-and-set loops: they apply their change exactly once however many processes race.
- **Waiting.** ``wait_until(predicate)`` and ``changes()`` are driven by the store's watch: the
  cell keeps a local mirror of the value, fed by the watch, and waits on it as a local
  ``AtomicCell`` waits. A predicate sees values in revision order; ``changes()`` may skip values
  that were replaced before it looked (as a local cell's ``changes()`` does).
- **Bad values.** A stored value that does not decode into the cell's type (written by a foreign
  client) makes ``load`` raise :class:`UndecodableValue`, which names the payload; the watch
  reports it (logged, counted in ``statistics()``) and skips it.
- **Cancellation.** A cancelled ``store`` or compare-and-set waits for its write's outcome (at
  most the node's ``request_timeout``) and returns if it happened, so a caller never wonders
  whether a write that raised the cancellation took place. A cancelled read or wait took nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec

from .._cells._atomic import AtomicCell
from ._codec import Codec

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["CellStatistics", "DistributedCell", "DistributedInt", "UndecodableValue"]

T = TypeVar("T")

logger = logging.getLogger("fearless.nats")

# The mirror's value before the watch has delivered the current one.
_UNKNOWN: Any = object()


class UndecodableValue(ValueError):
    """The stored value does not decode into the cell's type (a foreign writer)."""

    def __init__(self, name: str, payload: bytes, error: str) -> None:
        super().__init__(
            f"the cell {name!r} holds {payload[:100]!r}, which does not decode: {error}"
        )
        self.payload = payload
        self.error = error


@dataclasses.dataclass
class CellStatistics:
    """What one process did with a distributed cell: compare-and-set attempts that lost a race
    (and were retried or reported), and watched values that did not decode."""

    conflicts: int = 0
    undecodable: int = 0


class DistributedCell(Generic[T]):
    """A value shared by every process of a system (see the module docstring).

    Made by ``await node.cell(name, item_type, initial)``. Usable from the tasks of the event loop
    that opened it.
    """

    def __init__(self, node: Node, name: str, item_type: Any, kv: Any) -> None:
        self._node = node
        self.name = name
        self._codec = Codec[T](item_type)
        self._kv = kv
        self._mirror = AtomicCell[tuple[int, T]]((0, _UNKNOWN))
        self._watcher: Any = None
        self._pump: Any = None
        self._watching = False
        self._stats = CellStatistics()

    async def _create(self, initial: T) -> None:
        from nats.js.errors import KeyWrongLastSequenceError

        payload = self._codec.encode(initial)
        try:
            await self._call(self._kv.create, self.name, payload, settle=True)
        except KeyWrongLastSequenceError:
            pass  # another process created it first: its value stands

    async def _call(self, fn: Any, *args: Any, settle: bool = False) -> Any:
        return await self._node.client_loop.call(fn, *args, settle=settle)

    def _decode(self, payload: bytes) -> T:
        try:
            return self._codec.decode(payload)
        except msgspec.DecodeError as exc:
            raise UndecodableValue(self.name, bytes(payload), str(exc)) from None

    async def load_revision(self) -> tuple[T, int]:
        """The latest value and its revision.

        Cancellation: a read; a cancelled one changed nothing.
        """
        entry = await self._call(self._kv.get, self.name)
        return self._decode(entry.value or b""), int(entry.revision)

    async def load(self) -> T:
        """The latest stored value. Raises :class:`UndecodableValue` for a foreign value.

        Cancellation: a read; a cancelled one changed nothing.
        """
        value, _ = await self.load_revision()
        return value

    async def store(self, value: T) -> int:
        """Write ``value`` whatever the cell holds; return its revision.

        Raises ``TypeError`` if ``value`` is not of the cell's type.

        Cancellation: waits for the write's outcome; returning means written, raising the
        cancellation means not written.
        """
        payload = self._codec.encode(value)
        return int(await self._call(self._kv.put, self.name, payload, settle=True))

    async def store_if(self, revision: int, value: T) -> int | None:
        """Write ``value`` only if the cell is still at ``revision``; return the new revision, or
        None if someone wrote in between.

        Cancellation: as :meth:`store`.
        """
        from nats.js.errors import KeyWrongLastSequenceError

        payload = self._codec.encode(value)
        try:
            return int(await self._call(self._kv.update, self.name, payload, revision, settle=True))
        except KeyWrongLastSequenceError:
            self._stats.conflicts += 1
            return None

    async def compare_and_set(self, expected: T, new: T) -> bool:
        """Write ``new`` if the cell holds ``expected`` (compared with ``==``); return whether it
        did. Checked by the server on the revision read, so two processes that race cannot both
        succeed from one value.

        Cancellation: as :meth:`store`.
        """
        self._codec.encode(new)  # a bad value fails before anything is read
        while True:
            current, revision = await self.load_revision()
            if current != expected:
                return False
            if await self.store_if(revision, new) is not None:
                return True
            # Someone wrote in between: if they wrote the expected value again, try again.

    async def update(self, fn: Callable[[T], T]) -> T:
        """Replace the value with ``fn(value)``, exactly once however many processes race (a
        compare-and-set loop: ``fn`` may be called more than once, with the value of each try,
        so keep it free of side effects); return the new value.

        Cancellation: as :meth:`store`, for the try in flight.
        """
        while True:
            current, revision = await self.load_revision()
            new = fn(current)
            if await self.store_if(revision, new) is not None:
                return new

    async def _watch(self) -> None:
        """Start the watch that feeds the mirror, once (on the client's loop)."""
        if self._watching:
            return
        self._watching = True
        mirror = self._mirror
        codec = self._codec
        stats = self._stats
        name = self.name

        async def on_update(entry: Any) -> None:
            if entry is None or entry.operation is not None:  # init done, or a delete/purge
                return
            try:
                value = codec.decode(entry.value or b"")
            except msgspec.DecodeError as exc:
                stats.undecodable += 1
                logger.warning(
                    "fearless.nats: the cell %r holds an undecodable value: %s", name, exc
                )
                return
            revision = int(entry.revision)

            def newer(current: tuple[int, Any]) -> tuple[int, Any]:
                return (revision, value) if revision > current[0] else current

            mirror.update(newer)

        async def start() -> Any:
            watcher = await self._kv.watch(self.name)

            async def pump() -> None:
                try:
                    async for entry in watcher:
                        await on_update(entry)
                except Exception as exc:  # the connection closed
                    logger.debug("fearless.nats: the watch of %r ended: %r", name, exc)

            self._pump = self._node.client_loop.loop.create_task(pump())
            return watcher

        self._watcher = await self._call(start)

    async def wait_until(self, predicate: Callable[[T], object]) -> T:
        """Wait until the cell holds a value for which ``predicate`` is true (possibly the current
        one) and return it. Values are seen in revision order; a value replaced before the watch
        delivered it may be skipped.

        Cancellation: a cancelled wait took nothing.
        """
        await self._watch()
        _, value = await self._mirror.wait_until(
            lambda current: current[1] is not _UNKNOWN and predicate(current[1])
        )
        return value

    def changes(self) -> AsyncIterator[T]:
        """The values the cell takes from now on (the current one first), as the watch delivers
        them; a value replaced before it was looked at may be skipped. ``async for value in
        cell.changes():`` never ends by itself.

        Cancellation: a cancelled iteration took nothing.
        """
        return _Changes(self)

    def statistics(self) -> CellStatistics:
        return dataclasses.replace(self._stats)

    async def aclose(self) -> None:
        """Stop the watch, if one was started. Cancellation: shielded."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            pump = self._pump

            async def stop() -> None:
                await watcher.stop()
                pump.cancel()

            with anyio.CancelScope(shield=True):
                try:
                    await self._call(stop)
                except Exception:
                    logger.debug("fearless.nats: stopping a watch failed", exc_info=True)

    def __repr__(self) -> str:
        revision, value = self._mirror.load()
        shown = "?" if value is _UNKNOWN else f"{value!r} at revision {revision}"
        return f"<fearless.nats.{type(self).__name__} {self.name!r} {shown}>"


class _Changes(Generic[T]):
    """The iterator of :meth:`DistributedCell.changes` (a class, not an async generator, so that
    leaving the loop early leaves nothing to finalize)."""

    def __init__(self, cell: DistributedCell[T]) -> None:
        self._cell = cell
        self._seen = -1

    def __aiter__(self) -> _Changes[T]:
        return self

    async def __anext__(self) -> T:
        await self._cell._watch()
        seen = self._seen

        def newer(current: tuple[int, T]) -> bool:
            return current[1] is not _UNKNOWN and current[0] > seen

        self._seen, value = await self._cell._mirror.wait_until(newer)
        return value


class DistributedInt(DistributedCell[int]):
    """An integer shared by every process of a system: a distributed cell with ``increment``."""

    async def increment(self, n: int = 1) -> int:
        """Add ``n`` (which may be negative) exactly once; return the new value.

        Cancellation: as :meth:`DistributedCell.update`.
        """
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"n must be an int, not {n!r}")
        return await self.update(lambda value: value + n)
