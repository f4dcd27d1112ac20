"""The registry of published actors, with liveness: who serves a name, and whether its node is up.

Each publication is an entry in the key-value bucket ``fearless_<system>_actors``, under the key
``<name>.<node id>-<n>``: the name, the node, whether it is a pool member, the message classes,
and ``beat``, the time of its node's last heartbeat. A node rewrites the beats of its entries
every ``HEARTBEAT`` seconds; leaving a publication deletes its entry. An entry whose beat is older
than ``DOWN_AFTER`` seconds belongs to a node that is down (killed, cut off): it no longer counts
as serving the name.

``RemoteRef.wait_stopped()`` reads the entries of its name every ``POLL`` seconds and returns once
none is alive: with the reason ``"stopped"`` if the last one was deleted (unpublished), or
``"node_down"`` if the last one went stale. So a node's death is reported at most
``DOWN_AFTER + HEARTBEAT + POLL`` seconds after its last heartbeat.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Literal

import anyio

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["DOWN_AFTER", "HEARTBEAT", "POLL", "Registry", "RemoteTerminated"]

logger = logging.getLogger("fearless.nats")

HEARTBEAT = 1.0
DOWN_AFTER = 3.0
POLL = 0.5


@dataclasses.dataclass(frozen=True)
class RemoteTerminated:
    """The notice that a remote actor is no longer served: ``"stopped"`` (every publication of
    the name ended) or ``"node_down"`` (the last one's node stopped heartbeating)."""

    name: str
    reason: Literal["stopped", "node_down"]


class Registry:
    """One node's side of the registry (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.node_id = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._own: dict[str, dict[str, Any]] = {}
        self._count = 0
        self._bucket: Any = None
        self._beating: Any = None

    async def _kv(self) -> Any:
        if self._bucket is None:
            from nats.js.api import KeyValueConfig

            config = KeyValueConfig(bucket=f"fearless_{self._node.system}_actors", history=1)
            self._bucket = await self._node.client_loop.call(
                self._node.jetstream.create_key_value, config
            )
        return self._bucket

    async def register(self, name: str, pool: bool, classes: list[str]) -> str:
        """Add an entry for a publication; return its key. Starts the heartbeat."""
        kv = await self._kv()
        self._count += 1
        key = f"{name}.{self.node_id}-{self._count}"
        entry = {"name": name, "node": self.node_id, "pool": pool, "types": classes}
        self._own[key] = entry
        await self._node.client_loop.call(kv.put, key, self._encode(entry))
        if self._beating is None:
            self._beating = self._node.client_loop.loop.create_task(self._beat())
        return key

    async def unregister(self, key: str) -> None:
        self._own.pop(key, None)
        kv = await self._kv()
        await self._node.client_loop.call(kv.delete, key)

    def _encode(self, entry: dict[str, Any]) -> bytes:
        return json.dumps({**entry, "beat": time.time()}).encode()

    async def _beat(self) -> None:
        """Rewrite this node's entries every HEARTBEAT seconds (on the client's loop)."""
        while True:
            await self._node.client_loop.sleep(HEARTBEAT)
            kv = self._bucket
            for key, entry in list(self._own.items()):
                try:
                    await kv.put(key, self._encode(entry))
                except Exception as exc:  # disconnected: the next beat tries again
                    logger.debug("fearless.nats: a heartbeat failed: %r", exc)

    def stop(self) -> None:
        if self._beating is not None:
            self._node.client_loop.call_soon_sync(self._beating.cancel)

    async def entries(self, name: str) -> list[dict[str, Any]]:
        """The entries of ``name`` (alive or stale), each with ``alive``."""
        from nats.js.errors import NotFoundError

        kv = await self._kv()

        bucket = f"fearless_{self._node.system}_actors"
        js = self._node.jetstream

        async def read() -> list[dict[str, Any]]:
            # The server's count of the name's subjects, not kv.keys(): nats-py 2.16 lists keys
            # through a watcher that can report the end before the keys (an empty list while
            # entries exist), and its filters find nothing with a ">" filter.
            prefix = f"$KV.{bucket}."
            info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}{name}.>")
            found = []
            for subject in info.state.subjects or {}:
                try:
                    entry = await kv.get(subject[len(prefix) :])
                except NotFoundError:  # deleted (unpublished)
                    continue
                if entry.value:
                    found.append(json.loads(entry.value))
            return found

        now = time.time()
        found = await self._node.client_loop.call(read)
        for entry in found:
            entry["alive"] = now - entry.get("beat", 0) <= DOWN_AFTER
        return found

    async def wait_gone(self, name: str) -> RemoteTerminated:
        """Return once no publication of ``name`` is alive (see the module docstring)."""
        while True:
            entries = await self.entries(name)
            if not any(entry["alive"] for entry in entries):
                return RemoteTerminated(name, "node_down" if entries else "stopped")
            await anyio.sleep(POLL)
