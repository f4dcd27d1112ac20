"""The README's demo runs on every backend and gets every job back exactly once."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from fearless._cli import demo


@pytest.mark.parametrize("backend", demo.BACKENDS)
def test_the_demo_pipeline_returns_every_job_exactly_once(backend: str) -> None:
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    out = io.StringIO()
    assert demo.run(backend, items=300, workers=4, out=out)
    text = out.getvalue()
    assert "300 jobs in" in text
    assert "check: every job exactly once (lost 0, duplicated 0)" in text
    assert text.count("jobs\n") >= 4  # a line per worker


def test_the_command_line_runs_the_demo() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fearless", "demo", "--backend", "trio", "--items", "50"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "every job exactly once" in proc.stdout


def test_an_unknown_command_prints_usage() -> None:
    from fearless.__main__ import main

    assert main(["nonsense"]) == 2


def test_bad_demo_arguments_are_refused_with_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        demo.main(["--workers", "0"])
    assert info.value.code == 2
