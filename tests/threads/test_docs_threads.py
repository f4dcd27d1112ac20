"""The first example of docs/threads.md is real code: it runs on every backend."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parents[2] / "docs" / "threads.md"


def doc_main() -> Callable[[list[bytes]], Awaitable[None]]:
    block = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    code, run_line = block.rstrip().rsplit("\n", 1)
    assert run_line.startswith("anyio.run(main")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["main"]  # type: ignore[no-any-return]


async def test_the_worker_threads_example_hashes_every_blob(
    capsys: pytest.CaptureFixture[str],
) -> None:
    blobs = [str(i).encode() for i in range(300)]
    await doc_main()(blobs)
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(hashlib.sha256(blob).hexdigest() for blob in blobs)
