"""The registry of published actors, with liveness: who serves a name, and whether its node is up.

Each publication is an entry in the key-value bucket ``fearless_<system>_actors``, under the key
``<name>.<node id>-<n>``: the name, the node, whether it is a pool member and has a durable
mailbox, the message classes, the actor's state and mailbox depth at the last heartbeat, and
``beat``, the time of that heartbeat. A node rewrites the beats of its entries
every ``HEARTBEAT`` seconds; leaving a publication deletes its entry. An entry whose beat is older
than ``DOWN_AFTER`` seconds belongs to a node that is down (killed, cut off): it no longer counts
as serving the name.

``RemoteRef.wait_stopped()`` and an actor's ``context.monitor(remote_ref)`` watch a name: one
task per watched name and node reads the name's entries every ``POLL`` seconds and reports once
none is alive: with the reason ``"stopped"`` if the last one was deleted (unpublished), or
``"node_down"`` if the last one went stale. So a node's death is reported at most
``DOWN_AFTER + HEARTBEAT + POLL`` seconds (``REPORTED_WITHIN``, 4.5 s) after its last heartbeat.
An entry nobody rewrites expires from the bucket after ``FORGOTTEN_AFTER`` seconds (60 s): a dead
node's publications leave the cluster snapshot then, and a watch that starts after that reads
``"stopped"``.
A watch that cannot read the registry (the server is unreachable) keeps trying; it reports
nothing it has not read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio

if TYPE_CHECKING:
    from ._node import Node

__all__ = [
    "DOWN_AFTER",
    "HEARTBEAT",
    "POLL",
    "REPORTED_WITHIN",
    "ClusterSnapshot",
    "PublishedActor",
    "Registry",
]

logger = logging.getLogger("fearless.nats")

HEARTBEAT = 1.0
DOWN_AFTER = 3.0
POLL = 0.5
REPORTED_WITHIN = DOWN_AFTER + HEARTBEAT + POLL
"""Seconds within which a node's death is reported (``wait_stopped``, ``context.monitor`` of a
remote ref), after its last heartbeat: 4.5 s."""
# An entry nobody rewrote for this long (its node died) expires from the bucket.
FORGOTTEN_AFTER = 60.0

Gone = Literal["stopped", "node_down"]


@dataclasses.dataclass(frozen=True)
class PublishedActor:
    """One publication in a :class:`ClusterSnapshot`."""

    name: str
    node: str
    """The id of the node (process) serving it: ``<pid>-<random>``."""
    pool: bool
    durable: bool
    message_types: tuple[str, ...]
    alive: bool
    """Whether its node heartbeated in the last ``DOWN_AFTER`` seconds."""
    beat_age: float
    """Seconds since its node's last heartbeat."""
    state: str
    """The actor's state at that heartbeat (``"running"``, ``"restarting"``, ...)."""
    mailbox_depth: int
    """Messages in its local mailbox at that heartbeat (not those waiting in a durable one)."""


@dataclasses.dataclass(frozen=True)
class ClusterSnapshot:
    """Every actor published in a system, as the registry had it (``node.cluster_snapshot()``)."""

    system: str
    actors: tuple[PublishedActor, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes serving at least one live publication."""
        return tuple(sorted({actor.node for actor in self.actors if actor.alive}))

    def serving(self, name: str) -> tuple[PublishedActor, ...]:
        """The live publications of ``name`` (one, or a pool's members)."""
        return tuple(actor for actor in self.actors if actor.name == name and actor.alive)

    def __str__(self) -> str:
        lines = [f"system {self.system!r}: {len(self.nodes)} node(s)"]
        for actor in self.actors:
            kind = "pool member" if actor.pool else "actor"
            if actor.durable:
                kind += ", durable"
            if actor.alive:
                health, seen = "up", ""
            else:
                health, seen = f"DOWN ({actor.beat_age:.1f} s silent)", "last seen "
            lines.append(
                f"  {actor.name:<12} {kind:<20} node {actor.node:<18} {health:<20} "
                f"{seen}{actor.state}, {actor.mailbox_depth} queued"
            )
        return "\n".join(lines)


class Registry:
    """One node's side of the registry (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.node_id = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._own: dict[str, dict[str, Any]] = {}
        self._count = 0
        self._stats: dict[str, Callable[[], dict[str, Any]]] = {}
        self._bucket: Any = None
        self._beating: Any = None
        # Watched names: the callbacks waiting for each, under the lock (from any thread).
        self._lock = threading.Lock()
        self._watches: dict[str, dict[object, Callable[[Gone], None]]] = {}
        self._watch_tasks: set[Any] = set()

    async def _kv(self) -> Any:
        if self._bucket is None:
            config = self._config()
            self._bucket = await self._node.client_loop.call(
                self._node.jetstream.create_key_value, config
            )
        return self._bucket

    async def register(
        self,
        name: str,
        pool: bool,
        durable: bool,
        classes: list[str],
        stats: Callable[[], dict[str, Any]],
    ) -> str:
        """Add an entry for a publication; return its key. Starts the heartbeat. ``stats()``
        gives the actor's ``state`` and ``depth`` at each heartbeat (from the client's loop)."""
        kv = await self._kv()
        self._count += 1
        key = f"{name}.{self.node_id}-{self._count}"
        entry = {
            "name": name,
            "node": self.node_id,
            "pool": pool,
            "durable": durable,
            "types": classes,
        }
        self._own[key] = entry
        self._stats[key] = stats
        await self._node.client_loop.call(kv.put, key, self._encode(key, entry))
        if self._beating is None:
            self._beating = self._node.client_loop.loop.create_task(self._beat())
        return key

    async def forget_here(self, key: str) -> None:
        """Delete a publication's entry (on the client's loop): its actor has stopped."""
        self._own.pop(key, None)
        self._stats.pop(key, None)
        await self._bucket.delete(key)

    async def unregister(self, key: str) -> None:
        self._own.pop(key, None)
        self._stats.pop(key, None)
        kv = await self._kv()
        await self._node.client_loop.call(kv.delete, key)

    def _encode(self, key: str, entry: dict[str, Any]) -> bytes:
        stats = self._stats.get(key)
        try:
            now = stats() if stats is not None else {}
        except Exception:  # a snapshot is a hint: never let it stop a heartbeat
            now = {}
        return json.dumps({**entry, **now, "beat": time.time()}).encode()

    async def _beat(self) -> None:
        """Rewrite this node's entries every HEARTBEAT seconds (on the client's loop)."""
        while True:
            await self._node.client_loop.sleep(HEARTBEAT)
            kv = self._bucket
            for key, entry in list(self._own.items()):
                try:
                    await kv.put(key, self._encode(key, entry))
                except Exception as exc:  # disconnected: the next beat tries again
                    logger.debug("fearless.nats: a heartbeat failed: %r", exc)

    def stop(self) -> None:
        """Stop heartbeating and watching (the node is closing)."""
        beating, self._beating = self._beating, None
        with self._lock:
            watches, self._watches = self._watches, {}
        tasks = list(self._watch_tasks)

        def cancel() -> None:
            if beating is not None:
                beating.cancel()
            for task in tasks:
                task.cancel()

        self._node.client_loop.call_soon_sync(cancel)
        del watches  # their watchers hear nothing more: the node that watched is closing

    async def _read(self, name: str | None) -> list[dict[str, Any]]:
        """The entries of ``name`` (every entry for None), alive or stale, each with ``alive``
        and ``age`` (on the client's loop)."""
        from nats.js.errors import NotFoundError

        kv = self._bucket if self._bucket is not None else await self._kv_here()
        bucket = f"fearless_{self._node.system}_actors"
        # The server's count of the name's subjects, not kv.keys(): nats-py 2.16 lists keys
        # through a watcher that can report the end before the keys (an empty list while entries
        # exist), and its filters find nothing with a ">" filter.
        prefix = f"$KV.{bucket}."
        pattern = f"{prefix}>" if name is None else f"{prefix}{name}.>"
        info = await self._node.jetstream.stream_info(f"KV_{bucket}", subjects_filter=pattern)
        found = []
        for subject in sorted(info.state.subjects or {}):
            try:
                entry = await kv.get(subject[len(prefix) :])
            except NotFoundError:  # deleted (unpublished)
                continue
            if entry.value:
                found.append(json.loads(entry.value))
        now = time.time()
        for entry in found:
            entry["age"] = max(0.0, now - entry.get("beat", 0))
            entry["alive"] = entry["age"] <= DOWN_AFTER
        return found

    async def _kv_here(self) -> Any:
        self._bucket = await self._node.jetstream.create_key_value(self._config())
        return self._bucket

    def _config(self) -> Any:
        from nats.js.api import KeyValueConfig

        bucket = f"fearless_{self._node.system}_actors"
        return KeyValueConfig(bucket=bucket, history=1, ttl=FORGOTTEN_AFTER)

    async def entries(self, name: str) -> list[dict[str, Any]]:
        """The entries of ``name`` (alive or stale), each with ``alive``."""
        await self._kv()
        return await self._node.client_loop.call(self._read, name)

    async def wait_unclaimed(self, name: str, pool: bool) -> None:
        """Return once no live publication of ``name`` stands in the way of one more: any
        other for a single publication, a single one for a pool member. A conflicting entry
        whose node died goes stale within ``REPORTED_WITHIN`` seconds (a replacement process
        waits for that); one still live then raises ``ValueError``. Two processes publishing
        at the same instant may both pass: the check reads the registry, it elects no owner."""
        deadline = time.monotonic() + REPORTED_WITHIN
        while True:
            live = [entry for entry in await self.entries(name) if entry["alive"]]
            conflicts = [entry for entry in live if not (pool and entry.get("pool"))]
            if not conflicts:
                return
            ours = any(entry["node"] == self.node_id for entry in conflicts)
            if ours or time.monotonic() >= deadline:  # this node's own: alive, no need to wait
                other = conflicts[0]
                how = "as a pool member" if other.get("pool") else "alone"
                raise ValueError(
                    f"the actor {name!r} of the system {self._node.system!r} is published "
                    f"{how} by the live node {other['node']}: publish a name from one process, "
                    "or from several with pool=True"
                )
            await anyio.sleep(POLL)

    async def snapshot(self) -> ClusterSnapshot:
        """Every publication of the system, as the registry has it now."""
        await self._kv()
        found = await self._node.client_loop.call(self._read, None)
        return ClusterSnapshot(
            self._node.system,
            tuple(
                PublishedActor(
                    name=entry["name"],
                    node=entry["node"],
                    pool=bool(entry.get("pool")),
                    durable=bool(entry.get("durable")),
                    message_types=tuple(entry.get("types", ())),
                    alive=entry["alive"],
                    beat_age=entry["age"],
                    state=str(entry.get("state", "?")),
                    mailbox_depth=int(entry.get("depth", 0)),
                )
                for entry in found
            ),
        )

    def watch(self, name: str, callback: Callable[[Gone], None]) -> Callable[[], None]:
        """Call ``callback(reason)`` once no publication of ``name`` is alive (from the client's
        loop; see the module docstring). Returns what cancels the watch. From any thread."""
        token = object()
        with self._lock:
            callbacks = self._watches.get(name)
            new = callbacks is None
            if callbacks is None:
                callbacks = self._watches[name] = {}
            callbacks[token] = callback
        if new:
            loop = self._node.client_loop

            def start() -> None:
                task = loop.loop.create_task(self._watching(name, callbacks))
                self._watch_tasks.add(task)
                task.add_done_callback(self._watch_tasks.discard)

            loop.call_soon_sync(start)

        def cancel() -> None:
            with self._lock:
                callbacks.pop(token, None)

        return cancel

    async def _watching(self, name: str, callbacks: dict[object, Callable[[Gone], None]]) -> None:
        """Poll the entries of ``name`` until none is alive, or nobody watches (client's loop)."""
        while True:
            try:
                entries = await self._read(name)
            except Exception as exc:  # unreachable for now: read again at the next poll
                logger.debug("fearless.nats: reading the registry failed: %r", exc)
                entries = None
            with self._lock:
                if not callbacks:
                    if self._watches.get(name) is callbacks:
                        del self._watches[name]
                    return
                gone = entries is not None and not any(entry["alive"] for entry in entries)
                if gone:
                    if self._watches.get(name) is callbacks:
                        del self._watches[name]
                    told = list(callbacks.values())
                    callbacks.clear()
            if gone:
                reason: Gone = "node_down" if entries else "stopped"
                for callback in told:
                    try:
                        callback(reason)
                    except Exception:
                        logger.exception("fearless.nats: a watch of %r failed", name)
                return
            await self._node.client_loop.sleep(POLL)
