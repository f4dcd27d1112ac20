"""docs/supervision.md is real code: its first example runs on every backend, so do its
top-level example and its FakeClock test, and every example compiles."""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parent.parent / "docs" / "supervision.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def doc_main() -> Callable[[], Awaitable[None]]:
    code, run_line = blocks()[0].rstrip().rsplit("\n", 1)
    assert run_line.startswith("anyio.run(main")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["main"]  # type: ignore[no-any-return]


def doc_test(name: str) -> Callable[[], Awaitable[None]]:
    (code,) = [block for block in blocks() if f"async def {name}(" in block]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace[name]  # type: ignore[no-any-return]


async def test_the_cache_example_restarts_the_cache_and_keeps_its_mailbox(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await doc_main()()
    assert capsys.readouterr().out == (
        "None 3\n"
        "Put(key='b', value=-1) handler_failed\n"
        "[('cache', 'running'), ('sessions', 'running')]\n"
        "1\n"
    )


async def test_the_connections_example_stops_only_the_actor_that_keeps_failing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="fearless.actors"):
        await doc_test("connections")()
    assert capsys.readouterr().out == (
        "ok: hello ok: hello\nfailed ValueError('a client sent garbage')\nok: still there?\nNone\n"
    )


async def test_the_fake_clock_example_passes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="fearless.actors"):
        await doc_test("test_the_fourth_restart_within_5_seconds_is_one_too_many")()


@pytest.mark.parametrize("index", range(len(blocks())))
def test_every_example_compiles(index: int) -> None:
    """Fragments may await at the top level (they are shown as if inside an async function)."""
    compile(blocks()[index], f"{DOC.name} block {index}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
