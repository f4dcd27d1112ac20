"""Distributed cells on a real nats-server: the guarantees of fearless/nats/_cells.py's
docstring, on asyncio, asyncio + uvloop and trio. Several nodes (connections) stand for several
processes here; tests/remote/test_processes.py uses real ones."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import msgspec
import pytest

import fearless.nats
from fearless.nats import NatsServer, Node

pytestmark = pytest.mark.anyio


class Config(msgspec.Struct, frozen=True):
    workers: int
    mode: str = "normal"


@asynccontextmanager
async def nodes(server: NatsServer, system: str, n: int) -> AsyncIterator[list[Node]]:
    """``n`` more connections to the same system, as ``n`` processes would have."""
    async with AsyncExitStack() as stack:
        connect = fearless.nats.connect
        yield [
            await stack.enter_async_context(connect(server.url, system=system)) for _ in range(n)
        ]


async def test_increments_from_several_nodes_and_tasks_are_all_counted(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """Compare-and-set loops: 3 nodes x 4 tasks x 25 increments end at exactly 300, however
    often they lost a race (and they do: the conflicts are counted)."""
    async with nodes(nats_server, system, 2) as others:
        cells = [await n.int_cell("hits") for n in [node, *others]]

        async def bump(cell: fearless.nats.DistributedInt) -> None:
            for _ in range(25):
                await cell.increment()

        async with anyio.create_task_group() as tg:
            for cell in cells:
                for _ in range(4):
                    tg.start_soon(bump, cell)
        assert [await cell.load() for cell in cells] == [300, 300, 300]
        assert sum(cell.statistics().conflicts for cell in cells) > 0


async def test_the_first_open_stores_the_initial_value_and_later_opens_find_it(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    cell = await node.cell("config", Config, Config(4))
    await cell.store(Config(8, "fast"))
    async with nodes(nats_server, system, 1) as (other,):
        again = await other.cell("config", Config, Config(1))  # not stored: the cell exists
        assert await again.load() == Config(8, "fast")


async def test_only_one_of_two_racing_compare_and_sets_wins(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    """Both read 0 and try 0 -> their own value; the server's revision check lets one through."""
    async with nodes(nats_server, system, 1) as (other,):
        a = await node.int_cell("leader")
        b = await other.int_cell("leader")
        results: dict[str, bool] = {}

        async def claim(name: str, cell: fearless.nats.DistributedInt, value: int) -> None:
            results[name] = await cell.compare_and_set(0, value)

        for round_ in range(20):
            await a.store(0)
            results.clear()

            async with anyio.create_task_group() as tg:
                tg.start_soon(claim, "a", a, 1)
                tg.start_soon(claim, "b", b, 2)
            assert sorted(results.values()) == [False, True], round_
            assert await a.load() == (1 if results["a"] else 2)


async def test_store_if_refuses_a_stale_revision(node: Node) -> None:
    cell = await node.cell("config", Config, Config(1))
    _, revision = await cell.load_revision()
    assert await cell.store_if(revision, Config(2)) is not None
    assert await cell.store_if(revision, Config(3)) is None  # someone wrote since
    assert await cell.load() == Config(2)
    assert cell.statistics().conflicts == 1


async def test_wait_until_wakes_on_another_nodes_write(
    node: Node, nats_server: NatsServer, system: str
) -> None:
    cell = await node.int_cell("stage")
    async with nodes(nats_server, system, 1) as (other,):
        writer = await other.int_cell("stage")
        async with anyio.create_task_group() as tg:

            async def advance() -> None:
                for stage in range(1, 6):
                    await writer.store(stage)

            with anyio.fail_after(10):
                tg.start_soon(advance)
                assert await cell.wait_until(lambda stage: stage >= 5) == 5
        assert await cell.wait_until(lambda stage: stage == 5) == 5  # already true: at once


async def test_changes_come_in_revision_order_and_end_at_the_last_value(node: Node) -> None:
    cell = await node.int_cell("n")
    seen: list[int] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for value in cell.changes():
                    seen.append(value)
                    if value == 50:
                        return

            tg.start_soon(watch)
            for _ in range(50):
                await cell.increment()
    assert seen == sorted(seen)
    assert seen[-1] == 50


async def test_a_wrong_value_is_refused_and_a_foreign_value_is_named(node: Node) -> None:
    cell = await node.cell("config", Config, Config(1))
    with pytest.raises(TypeError, match="is not a valid Config"):
        await cell.store({"workers": "many"})  # type: ignore[arg-type]
    kv = await node._kv()
    await node.client_loop.call(kv.put, "config", b"\x00garbage")
    with pytest.raises(fearless.nats.UndecodableValue, match="garbage"):
        await cell.load()
    with pytest.raises(ValueError, match="cell name must be"):
        await node.int_cell("a.b")


async def test_the_watch_skips_an_undecodable_value_and_counts_it(node: Node) -> None:
    """A foreign value on the watch is counted and never shown to a predicate."""
    cell = await node.cell("config", Config, Config(1))
    kv = await node._kv()
    assert await cell.wait_until(lambda config: True) == Config(1)  # the watch runs from here
    async with anyio.create_task_group() as tg:

        async def wait() -> None:
            assert await cell.wait_until(lambda config: config.workers == 9) == Config(9)

        tg.start_soon(wait)
        await node.client_loop.call(kv.put, "config", b"not json")
        await cell.store(Config(9))
    assert cell.statistics().undecodable == 1


async def test_a_cancelled_store_either_wrote_or_raised(node: Node) -> None:
    """Stores cancelled at random points: the cell ends at the last value whose store returned
    (a store that raised the cancellation wrote nothing)."""
    cell = await node.int_cell("n")
    rng = random.Random(3)
    last = 0
    for i in range(1, 120):
        with anyio.move_on_after(rng.choice([0, 0.0001, 0.0005, 0.002])):
            await cell.store(i)
            last = i
    assert last > 0
    assert await cell.load() == last
