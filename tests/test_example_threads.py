"""examples/thread_workers.py stores every file once, correctly hashed, and leaves no thread behind,
on every backend."""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import BACKENDS

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "thread_workers.py"
FILES = 60  # more than the jobs channel holds, so the handlers fill it


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("thread_workers_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example() -> ModuleType:
    return load()


@pytest.fixture
def tree(example: ModuleType, tmp_path: Path) -> Path:
    top = tmp_path / "files"
    example.make_tree(top, FILES)
    return top


def hashed_here(top: Path) -> list[tuple[str, int, str]]:
    """(path, size, sha256) of every file under ``top``, computed by the test, sorted."""
    hashed = []
    for path in top.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hashed.append(
                (path.relative_to(top).as_posix(), len(data), hashlib.sha256(data).hexdigest())
            )
    return sorted(hashed)


def stored_rows(db: Path) -> list[tuple[str, int, str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return sorted(conn.execute("SELECT path, size, sha256, hasher FROM files"))


def threads_left() -> list[str]:
    """The example's threads (``ingest: ...``) and ``iterate_in_thread``'s (``fearless: ...``)
    still alive; the event loops' idle thread pools are not the example's. ``run`` joins its own
    threads, and ``iterate_in_thread``'s block exit joins its thread."""
    return [t.name for t in threading.enumerate() if t.name.startswith(("ingest:", "fearless:"))]


async def test_every_file_is_stored_exactly_once_with_its_hash(
    example: ModuleType, tree: Path, tmp_path: Path
) -> None:
    """Every file under the tree is one row in the database (no file missing, none twice), with
    the size and sha256 the test computes itself; the jobs were spread over the hasher threads
    named in the rows; the summary's counts agree; and when ``run`` returns, every thread it
    started (hashers, writer, the walk) has ended."""
    db = tmp_path / "files.db"
    summary = await example.run(tree, db, hashers=3, handlers=4)
    rows = stored_rows(db)
    expected = hashed_here(tree)
    assert len(expected) == FILES
    assert [row[:3] for row in rows] == expected
    assert {row[3] for row in rows} <= {f"ingest: hasher {i}" for i in range(3)}
    assert summary.complete
    assert summary.submitted == summary.collected == summary.rows == FILES
    assert sum(summary.by_hasher.values()) == FILES
    assert summary.size == sum(size for _, size, _ in expected)
    assert 1 <= summary.transactions <= FILES
    assert 0 < summary.jobs_peak <= example.JOBS  # bounded: backpressure held the handlers
    assert threads_left() == []


async def test_a_failing_writer_stops_the_service_and_every_thread(
    example: ModuleType, tree: Path, tmp_path: Path
) -> None:
    """The writer cannot open the database (its path is a directory): ``run`` raises the
    writer's own error (not a ``SendBrokenError`` from a stage it took down), having stopped
    the handlers, the hashers and the walk instead of hanging, and no thread is left."""
    with pytest.raises(sqlite3.OperationalError):
        await example.run(tree, tmp_path, hashers=3, handlers=4)
    assert threads_left() == []


@pytest.mark.parametrize("backend", [param.id for param in BACKENDS])
def test_main_runs_twice_in_one_process(
    backend: str, example: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """No state survives a run: a second ``main`` in the same process ingests as the first."""
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    for _ in range(2):
        assert example.main(["--backend", backend, "--files", "20", "--hashers", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("ingested 20 of 20 files")
        assert "nothing lost" in line
    assert threads_left() == []


def test_the_example_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "examples.thread_workers", "--backend", "asyncio", "--files", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ingested 40 of 40 files")
    assert "nothing lost" in proc.stdout
