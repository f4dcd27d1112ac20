"""The guide to fearless.nats (docs/nats.md) is real code: every ```python block in it is run on
asyncio, asyncio + uvloop and trio against an embedded nats-server (``connect()`` with no URL
starts one: that default is what the page teaches), or, where it cannot run here, type-checked;
the blocks that run print what the page says they print.

How each block is checked is written down in ``HOW``: for each block, a line that only that block
has, and one of

``Main(prints)``
    A program that ends with ``anyio.run(main)``: ``main`` is awaited on the test's backend, and
    what it printed must be ``prints``.
``TypeOnly(why, given)``
    Cannot run here (``why`` says what it needs: a NATS cluster, or names the page's prose
    defines), so it is only type-checked; ``given`` defines the names a fragment uses, and a
    fragment that awaits at the top level is type-checked as the body of an ``async def``.

Every block, whatever its kind, is type-checked with ``mypy --strict`` (one run over all of them),
and a test fails if a block has no entry in ``HOW`` or an entry matches no block. A few more tests
check sentences of the page that no block shows (what ``merge`` refuses, that an ended channel
stays ended).
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

import fearless
import fearless.nats

from .strict import check_strict

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "nats.md"


@dataclass(frozen=True)
class Main:
    prints: str


@dataclass(frozen=True)
class TypeOnly:
    why: str
    given: str = ""


How = Main | TypeOnly

JOB = """\
import msgspec
import fearless.nats


class Job(msgspec.Struct, frozen=True):
    id: int
    text: str


async def _given(node: fearless.nats.Node) -> None:
"""

HOW: dict[str, How] = {
    '"wrap the parcel"': Main("Job(id=1, text='wrap the parcel')\n"),
    'credentials="/etc/shop/worker.creds"': TypeOnly("needs a NATS cluster and its credentials"),
    'tx = await node.open_sender("jobs", Job, capacity=1000)': TypeOnly(
        "a fragment: node and Job are the page's", given=JOB
    ),
    '"invoices"': Main(
        "billed 100 (first)\nbilled 250 (first)\nfailed: the invoice service had a hiccup\n"
        "billed 0 (again)\n"
    ),
    '"orders"': Main("49500\nthe durable channel 'orders' has ended\n"),
    '"payments"': Main("True []\n"),
    '"readings"': Main("[0.0, 0.5, 1.0, 1.5, 2.0]\n"),
    '"events"': Main("['from the durable channel', 'from this process']\n"),
    '"prices"': Main("[100, 101, 102, 103]\n[101, 102, 103] 104\n"),
    'node.int_cell("hits")': Main("10\nTrue\nFalse\nConfig(workers=9, mode='fast')\n25\n"),
    "node.max_payload)": Main(
        "{'id': 'one', 'text': 1} is not a valid Job: Expected `int`, got `str` - at `$.id`\n"
        "too large\n0\n"
    ),
    "fearless.nats.NatsServer()": Main("42\n"),
}


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)


def how(block: str) -> How:
    (found,) = [way for marker, way in HOW.items() if marker in block]
    return found


def mains() -> list[Any]:
    return [
        pytest.param(index, id=f"docs/nats.md-{index}")
        for index, block in enumerate(blocks())
        if isinstance(how(block), Main)
    ]


def test_every_block_has_exactly_one_way_to_be_checked() -> None:
    assert blocks(), "the page has no ```python block: the pattern broke"
    for block in blocks():
        matches = [marker for marker in HOW if marker in block]
        assert len(matches) == 1, (matches, block[:200])
    for marker in HOW:
        assert sum(marker in block for block in blocks()) == 1, marker


@pytest.mark.parametrize("index", mains())
async def test_the_program_prints_what_the_page_says(
    index: int, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Each program starts its own embedded server (connect() with no URL) and stops it."""
    block = blocks()[index]
    body, _, run_line = block.rstrip().rpartition("\n")
    assert run_line.startswith("anyio.run(main)"), run_line
    namespace: dict[str, Any] = {"__name__": f"docs_nats_block_{index}"}
    exec(compile(body, f"docs/nats.md block {index}", "exec", dont_inherit=True), namespace)
    main: Callable[[], Awaitable[None]] = namespace["main"]
    with caplog.at_level(logging.WARNING, logger="fearless.nats"), anyio.fail_after(60):
        await main()
    way = how(block)
    assert isinstance(way, Main)
    assert capsys.readouterr().out == way.prints


def test_every_block_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    """One mypy run over every block, each a module of its own."""
    files = []
    for index, block in enumerate(blocks()):
        way = how(block)
        code = block
        if isinstance(way, TypeOnly) and way.given:
            try:
                compile(code, "<block>", "exec", dont_inherit=True)
                code = way.given + "\n" + code
            except SyntaxError:  # awaits at the top level: the body of the given coroutine
                code = way.given + textwrap.indent(code, "    ")
        path = tmp_path / f"docs_nats_block{index}.py"
        path.write_text(code)
        files.append(str(path))
    check_strict(files)


# -- sentences of the page that no block shows ---------------------------------------------------


async def test_merge_refuses_a_durable_receiver() -> None:
    """ "What does not work": merge takes only local receivers, and says so with TypeError."""
    async with fearless.nats.connect(system="docs") as node:
        _tx, rx = await node.open_channel("events", str)
        with pytest.raises(TypeError, match="merge\\(\\) takes receivers made by"):
            fearless.merge(rx)  # type: ignore[arg-type]


async def test_an_ended_channel_stays_ended_for_a_process_that_opens_it_later() -> None:
    """ "The end of a channel": a later opener gets ChannelEnded on send and EndOfStream on
    receive, and receive_nowait says WouldBlock at the end rather than EndOfStream."""
    async with fearless.nats.NatsServer() as server:
        async with fearless.nats.connect(server.url, system="docs") as node:
            tx, rx = await node.open_channel("jobs", int)
            await tx.send(1)
            await tx.end()
            assert await rx.receive() == 1
            with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
                await rx.receive()
        async with fearless.nats.connect(server.url, system="docs") as later:
            tx = await later.open_sender("jobs", int)
            with pytest.raises(fearless.nats.ChannelEnded):
                await tx.send(2)
            rx = await later.open_receiver("jobs", int)
            with pytest.raises(anyio.WouldBlock):
                rx.receive_nowait()
            with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
                await rx.receive()


async def test_the_first_receivers_ack_wait_stands() -> None:
    """ "Durable channels": ack_wait belongs to the shared consumer; a later opener's value is
    not applied."""
    async with fearless.nats.connect(system="docs") as node:
        await node.open_channel("jobs", int, ack_wait=30)
        await node.open_channel("jobs", int, ack_wait=99)
        info = await node.client_loop.call(
            node.jetstream.consumer_info, "FEARLESS_CH_docs_jobs", "receivers"
        )
        assert info.config.ack_wait == 30
