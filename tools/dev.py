#!/usr/bin/env python3
"""Set-up and entry points for fearless, for a machine that has only python3 and pip.

    python3 tools/dev.py demo [--backend asyncio|uvloop|trio]   run the demo
    python3 tools/dev.py test [pytest args...]                   run the whole test suite
                                                                 (ours, then anyio's stream tests)
    python3 tools/dev.py check                                   ruff + mypy --strict
    python3 tools/dev.py bench [args...]                         run the benchmarks

The first call creates ``.venv`` beside this repository and installs fearless (editable) with its
test and dev extras; later calls reinstall only when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("FEARLESS_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def ensure_venv() -> None:
    stamp = VENV / ".fearless-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(want)


def run(*args: str) -> int:
    return subprocess.call([str(PY), *args], cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "check", "bench"}:
        print(__doc__)
        return 2
    ensure_venv()
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        return run("-m", "fearless", "demo", *rest)
    if cmd == "test":
        rc = run("-m", "pytest", *rest)
        if rest:  # a narrowed run (a file, -k ...) is about our tests only
            return rc
        print("\n== anyio's own memory-object-stream tests, against fearless ==", flush=True)
        return rc or run("tests/anyio_suite/run.py", "-q")
    if cmd == "bench":
        return run("-m", "benchmarks", *rest)
    rc = run("-m", "ruff", "check", ".")
    rc |= run("-m", "ruff", "format", "--check", ".")
    rc |= run("-m", "mypy")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
