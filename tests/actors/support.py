"""Helpers the supervision tests share."""

from __future__ import annotations

from typing import Any

from fearless import ActorRef, ActorSystem, WhichChildren


def lookup(system: ActorSystem, name: str) -> ActorRef[Any]:
    """The running actor called ``name`` (the test fails if there is none)."""
    ref = system.lookup(name)
    assert ref is not None, name
    return ref


async def states(sup: ActorRef[Any]) -> list[tuple[str | None, str]]:
    """Each child of ``sup`` as (name, state), in start order."""
    return [(info.name, info.state) for info in await sup.ask(WhichChildren())]
