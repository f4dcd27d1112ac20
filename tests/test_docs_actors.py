"""docs/actors.md is real code: its first example runs on every backend, and every example
compiles."""

from __future__ import annotations

import ast
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parent.parent / "docs" / "actors.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def doc_main() -> Callable[[], Awaitable[None]]:
    code, run_line = blocks()[0].rstrip().rsplit("\n", 1)
    assert run_line.startswith("anyio.run(main")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["main"]  # type: ignore[no-any-return]


async def test_the_counter_example_counts_every_message_from_every_client(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await doc_main()()
    assert capsys.readouterr().out == "10000\n"


@pytest.mark.parametrize("index", range(len(blocks())))
def test_every_example_compiles(index: int) -> None:
    """Fragments may await at the top level (they are shown as if inside an async function)."""
    compile(blocks()[index], f"{DOC.name} block {index}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
