"""examples/broadcast_ticker.py shows each lag policy doing what the docs say, on every backend."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import BACKENDS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "broadcast_ticker.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("broadcast_ticker_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", [param.id for param in BACKENDS])
def test_each_lag_policy_treats_the_slow_subscriber_as_documented(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fast subscriber sees every tick under every policy. The slow one: under "error" it
    is told of every tick it lost (the Lagged counts add up to what it missed) and, under "drop",
    loses ticks silently, each time resuming at the oldest kept tick, so what it saw is in order
    and, with what it missed, accounts for every tick; under "block" it sees every tick."""
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    example = load()
    ticks = list(range(example.TICKS))
    summary = example.main([backend])
    assert list(summary) == ["error", "drop", "block"]
    for policy, seen in summary.items():
        assert seen.fast == ticks, policy
        assert seen.slow == sorted(set(seen.slow)), policy
        assert len(seen.slow) + seen.slow_missed == example.TICKS, policy
        assert seen.slow[-example.CAPACITY :] == ticks[-example.CAPACITY :], policy  # drained
    error, drop, block = summary["error"], summary["drop"], summary["block"]
    assert error.slow_missed > 0
    assert sum(error.lag_errors) == error.slow_missed
    assert drop.slow_missed > 0
    assert drop.lag_errors == []
    assert block.slow == ticks
    assert (block.slow_missed, block.lag_errors) == (0, [])
    out = capsys.readouterr().out
    assert out.count("on_lag=") == 3
    assert "Lagged errors" in out


def test_the_example_runs_as_a_script() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "trio"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "on_lag='block'  fast saw 40 ticks; slow saw 40 and missed 0" in proc.stdout
