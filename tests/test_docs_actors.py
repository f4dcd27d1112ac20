"""docs/actors.md is real code: every example in it runs, on every backend, and the ones that
print print what the doc says.

How a block runs: first the imports, functions and classes of every block before it (the doc's
examples build on each other: ``Counter`` is defined once, at the top). Then a block that ends
with ``anyio.run(main...)`` runs ``main``; any other block runs as the body of
``async with fearless.ActorSystem() as system:`` (so a fragment may ``await`` at the top level and
use ``system``), and the ``async def test_...`` functions it defines are awaited after it.
"""

from __future__ import annotations

import ast
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import fearless
from fearless.testing import FakeClock

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parent.parent / "docs" / "actors.md"

DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

# What a block prints, by a line that only that block has.
PRINTS = {
    'counter = await system.spawn(Counter, name="counter")': "10000\n",
    "class Account(": "105\n",
    'Room("lobby")': "lobby runs as 'room:lobby'\n1\n",
    'overflow="drop_oldest"': "256\n",
    'ghost = await system.spawn(Counter, name="ghost")': "ghost: actor_stopped Add(amount=1)\n",
    "class Parser(": "failed ValueError\n42\n",
    "ActorSystem(escalate=True)": (
        'the system failed: ValueError("invalid literal for int() with base 10: '
        "'not a number'\")\n"
    ),
    "async def join(": "kitchen runs as 'room:kitchen'\n4\n",
    "class Watchdog(": "worker ended: stopped None\n",
    "def report()": "1\n",
    "pickle.loads(": "ActorNameTaken alice\n",
}


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def definitions(code: str) -> str:
    """The imports, functions and classes of a block, without the statements that run things."""
    tree = ast.parse(code, type_comments=False, feature_version=(3, 11))
    tree.body = [node for node in tree.body if isinstance(node, DEFINITIONS)]
    return ast.unparse(tree)


def namespace_before(index: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for earlier in blocks()[:index]:
        exec(definitions(earlier), namespace)
    return namespace


async def run_block(index: int) -> None:
    code = blocks()[index]
    namespace = namespace_before(index)
    name = f"{DOC.name} block {index}"
    body, _, last_line = code.rstrip().rpartition("\n")
    if last_line.startswith("anyio.run(main"):
        exec(compile(body, name, "exec"), namespace)
        main: Callable[[], Awaitable[None]] = namespace["main"]
        await main()
    else:
        compiled = compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        async with fearless.ActorSystem() as system:
            namespace["system"] = system
            result = eval(compiled, namespace)
            if inspect.isawaitable(result):  # the block awaits at the top level
                await result
    defined = ast.parse(code).body
    for node in defined:
        if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_"):
            await namespace[node.name]()


def examples() -> list[int]:
    """Every block's index."""
    return list(range(len(blocks())))


@pytest.mark.parametrize("index", examples())
async def test_every_example_runs_and_prints_what_the_doc_says(
    index: int, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Examples whose actors fail on purpose log at ERROR: that is kept out of the output."""
    with caplog.at_level(logging.CRITICAL, logger="fearless.actors"):
        await run_block(index)
    printed = capsys.readouterr().out
    expected = [out for marker, out in PRINTS.items() if marker in blocks()[index]]
    assert printed == (expected[0] if expected else "")


def test_every_expected_output_belongs_to_exactly_one_example() -> None:
    for marker in PRINTS:
        assert sum(marker in block for block in blocks()) == 1, marker


async def test_the_heartbeat_beats_every_second_until_it_has_had_enough(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The Timers example, on a fake clock: ten beats by 10.5 s, then the beat timer is
    cancelled, so no eleventh comes."""
    heartbeat_type = namespace_before(len(blocks()))["Heartbeat"]
    clock = FakeClock()
    async with fearless.ActorSystem(clock=clock) as system:
        await system.spawn(heartbeat_type)
        await clock.advance(10.4)
        assert capsys.readouterr().out == ""
        await clock.advance(0.1)
        assert capsys.readouterr().out == "10 beats\n"
        await clock.advance(60.0)
        snapshot = system.snapshot().actors[0]
        assert snapshot.handled == 11  # ten beats and "enough", nothing since
