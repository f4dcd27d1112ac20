"""One ``mypy --strict`` run over the code blocks of a guide, each written to a module of its own
(shared by the nats guides' tests)."""

from __future__ import annotations

from pathlib import Path

import mypy.api

ROOT = Path(__file__).resolve().parents[2]


def check_strict(files: list[str]) -> None:
    """Type-check ``files`` with the project's configuration; fail with mypy's report."""
    stdout, stderr, status = mypy.api.run(
        [
            "--strict",
            "--python-version",
            "3.11",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *files,
        ]
    )
    assert status == 0, stdout + stderr
