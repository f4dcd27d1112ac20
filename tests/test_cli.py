"""The ``fearless`` command line: its help names every command and option that really exist,
``--version`` says the package's version, and a bad command is a usage error (exit status 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import fearless
from fearless.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT_VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# What the demo accepts, spelled out: a new option or choice must be added here as well.
DEMO_OPTIONS = (
    "--backend {asyncio,uvloop,trio}",
    "--part {all,pipeline,bank,tree,cluster}",
    "--items N",
    "--workers W",
    "--transfers T",
    "--jobs J",
)


def test_the_help_lists_every_command_and_the_demos_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines as it likes
    assert text.startswith("usage: fearless [-h] [--version] COMMAND ...")
    assert "demo run the demo (a pipeline, a bank of actors, a supervision tree)" in text
    assert "--version show program's version number and exit" in text
    usage = text.split("usage: fearless demo [-h] ")[1]
    for option in DEMO_OPTIONS:
        assert f"[{option}]" in usage, option
    assert "Run 'fearless COMMAND --help' for a command's options." in text


def test_the_demo_help_describes_every_option_it_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: fearless demo [-h]")
    options = text.split("options:\n")[1]
    for option, meaning in zip(
        DEMO_OPTIONS,
        [
            "event loop",
            "which part to run",
            "pipeline jobs",
            "pipeline workers",
            "bank transfers",
            "cluster jobs",
        ],
        strict=True,
    ):
        assert option in options, option
        assert meaning in options, meaning


def test_version_prints_the_version_in_pyproject(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"fearless {PYPROJECT_VERSION}\n"
    assert fearless.__version__ == PYPROJECT_VERSION


@pytest.mark.parametrize("argv", [["nonsense"], [], ["--nonsense"]])
def test_a_bad_command_exits_2_with_a_usage_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fearless [-h] [--version] COMMAND ...\n")
    assert "fearless: error: " in err
    if argv == ["nonsense"]:
        assert "invalid choice: 'nonsense'" in err


def test_a_bad_demo_option_exits_2_and_names_the_bad_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fearless demo [-h]")
    assert "--workers (0) >= 1" in err


def test_python_dash_m_fearless_names_itself_in_the_usage() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fearless", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: python -m fearless [-h] [--version] COMMAND ...\n")


def test_the_fearless_console_script_is_installed_and_runs_main() -> None:
    (script,) = entry_points(group="console_scripts", name="fearless")
    assert script.value == "fearless.__main__:main"
    executable = Path(sys.executable).parent / ("fearless.exe" if os.name == "nt" else "fearless")
    proc = subprocess.run(
        [str(executable), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"fearless {PYPROJECT_VERSION}\n"
