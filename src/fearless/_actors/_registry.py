"""Names: unique among the running actors of one system.

A name is taken when its actor is made (before it starts, so two spawns with one name cannot
both start) and released when the actor ends, before its ``Terminated`` notice goes out (so a
monitor may reuse it at once). An actor spawned without a name is not registered; the runtime
calls it after its type and a number (``"Counter#7"``).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from .._exceptions import ActorNameTaken

if TYPE_CHECKING:
    from ._runtime import ActorRuntime

__all__ = ["Registry"]


class Registry:
    """The running actors of one system, by name."""

    __slots__ = ("_names", "_numbers")

    def __init__(self) -> None:
        self._names: dict[str, ActorRuntime] = {}
        self._numbers = itertools.count(1)

    def new_name(self, name: str | None) -> tuple[str, bool]:
        """The name for a new actor and whether it is registered: ``name`` (checked, and free),
        or ``"#7"`` for an unnamed one (completed with its type by the runtime)."""
        if name is None:
            return f"#{next(self._numbers)}", False
        if not isinstance(name, str):
            raise TypeError(f"name must be a non-empty str or None, got {name!r}")
        if not name:
            raise ValueError("name must be a non-empty str or None, got ''")
        if name in self._names:
            raise ActorNameTaken(name)
        return name, True

    def add(self, runtime: ActorRuntime) -> None:
        if runtime.registered:
            self._names[runtime.name] = runtime

    def remove(self, runtime: ActorRuntime) -> None:
        if runtime.registered and self._names.get(runtime.name) is runtime:
            del self._names[runtime.name]

    def lookup(self, name: str) -> ActorRuntime | None:
        return self._names.get(name)
