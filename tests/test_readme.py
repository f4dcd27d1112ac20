"""The README's tour is real code: it runs, on every backend, and prints what it should."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"


def tour_main() -> Callable[[], Awaitable[None]]:
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block.rstrip().endswith('anyio.run(main)  # or backend="trio"')
    namespace: dict[str, Any] = {}
    exec(block.rsplit("anyio.run(main)", 1)[0], namespace)
    return namespace["main"]  # type: ignore[no-any-return]


async def test_the_readme_tour_runs(capsys: pytest.CaptureFixture[str]) -> None:
    await tour_main()()
    assert capsys.readouterr().out == f"{sum(i * i for i in range(1000))}\n"
