"""examples/atomic_counter.py loses no update made from its worker threads, its watcher sees the
count only grow up to the final one, and it leaves no thread behind, on every backend."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import BACKENDS

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "atomic_counter.py"
WORKERS, OPS = 3, 500


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("atomic_counter_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example() -> ModuleType:
    return load()


def threads_left() -> list[str]:
    """The example's worker threads (``counter: ...``) still alive; ``run`` joins them all."""
    return [t.name for t in threading.enumerate() if t.name.startswith("counter:")]


def expected_by_hand() -> tuple[int, int, int, dict[str, str]]:
    """(operations, total, maximum, last error per worker), computed by the test itself from the
    workers' value sequence."""
    total, maximum, last_errors = 0, 0, {}
    for w in range(WORKERS):
        for i in range(OPS):
            value = (w * 7919 + i * 104729) % 1000
            if value % 97:
                total += value
                maximum = max(maximum, value)
            else:
                last_errors[f"counter: worker {w}"] = f"op {i}: rejected {value}"
    return WORKERS * OPS, total, maximum, last_errors


async def test_every_update_from_every_thread_is_counted(example: ModuleType) -> None:
    """The cells hold exactly what the threads did: every operation counted once, the sum of the
    accepted values, their maximum and each worker's last rejection; the active flag is false at
    the end; and when ``run`` returns no worker thread is alive."""
    summary = await example.run(WORKERS, OPS)
    ops, total, maximum, last_errors = expected_by_hand()
    assert last_errors  # the sequence does reject some values, so the Guarded dict is exercised
    counted = summary.counted
    assert (counted.ops, counted.total, counted.maximum) == (ops, total, maximum)
    assert counted.last_errors == last_errors
    assert counted == summary.expected
    assert summary.active is False
    assert threads_left() == []


async def test_the_watcher_sees_a_growing_count_ending_at_the_final_one(
    example: ModuleType,
) -> None:
    """``changes()`` may skip counts but never goes back, and never misses the latest: the counts
    the watcher saw never decrease, and the last one is the final count."""
    summary = await example.run(WORKERS, OPS)
    seen = summary.seen
    assert seen
    assert seen == sorted(seen)
    assert seen[-1] == summary.counted.ops == WORKERS * OPS


async def test_a_failing_worker_is_raised_and_stops_the_watcher(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that raises: the count never reaches its target, yet ``run`` does not hang; it
    raises the worker's error, with every thread joined."""

    def broken(worker: int, i: int) -> int:
        if worker == 1:
            raise ValueError("worker 1 broke")
        return 1

    monkeypatch.setattr(example, "value_of", broken)
    with pytest.raises(ValueError, match="worker 1 broke"):
        await example.run(WORKERS, OPS)
    assert threads_left() == []


@pytest.mark.parametrize("backend", [param.id for param in BACKENDS])
def test_main_runs_twice_in_one_process(
    backend: str, example: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """No state survives a run: a second ``main`` in the same process counts as the first."""
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    for _ in range(2):
        assert example.main(["--backend", backend, "--workers", "2", "--ops", "300"]) == 0
    summaries = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("counted")
    ]
    assert len(summaries) == 2
    for line in summaries:
        assert line.startswith("counted 600 of 600 operations")
        assert line.endswith("nothing lost")
    assert threads_left() == []


def test_the_example_runs_as_a_module() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.atomic_counter",
            "--backend",
            "asyncio",
            "--workers",
            "3",
            "--ops",
            "400",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("progress: ")
    assert lines[-1].startswith("counted 1200 of 1200 operations")
    assert lines[-1].endswith("nothing lost")
