"""The results of a benchmark run as JSON: what ``python -m benchmarks`` saves and ``--plot`` reads.

A results file is one JSON object::

    {
      "format": 1,
      "date": "2025-01-31T12:00:00+00:00",        # when the run ended, UTC
      "commit": "7468b61-dirty",                   # git describe --always --dirty as the run
                                                   # started, or null
      "command": ["--skip-100k"],                  # the arguments of the run
      "seconds": 612.3,                            # how long the whole run took
      "settings": {"repeats": 5, "seconds": 0.25},
      "machine": {"cpu": "...", "cores": 2, "python": "3.11.7", "implementation": "CPython",
                  "pgo": false, "platform": "Linux-...",
                  "load_average": [1.2, 1.1, 0.9]},       # os.getloadavg() as the run ended
      "versions": {"fearless": "...", "anyio": "...", "trio": "...", "uvloop": "...", ...},
      "workloads": [...]
    }

Each workload is either ``"kind": "ratios"`` (a :class:`benchmarks.harness.Workload`: its rows
with the median time per item in seconds, the spread and the ratio to the fearless baseline on the
same backend, and its targets; see :meth:`benchmarks.harness.Workload.table`) or ``"kind":
"text"`` (the workloads with tables of their own shape: ``yield-every``, ``cells``,
``actor-scale``, ``anatomy``), which keeps the printed markdown as it is.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sysconfig
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .harness import Settings

__all__ = ["DEFAULT_PATH", "FORMAT", "git_commit", "load", "machine", "results", "save", "versions"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "benchmarks" / "results" / "latest.json"
"""Where a full run saves its results, and what ``--plot`` reads when given no file."""
FORMAT = 1

PACKAGES = (
    "fearless",
    "anyio",
    "trio",
    "uvloop",
    "culsans",
    "janus",
    "aiologic",
    "atomics",
    "pykka",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """The CPU, the Python build and the load: what the figures depend on besides the code."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "pgo": "--enable-optimizations" in (sysconfig.get_config_var("CONFIG_ARGS") or ""),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def versions() -> dict[str, str]:
    """The installed version of fearless and of every peer measured (those not installed left
    out)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def git_commit() -> str | None:
    """``git describe --always --dirty`` of the repository, or ``None`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def results(
    workloads: list[dict[str, Any]],
    settings: Settings,
    command: list[str],
    seconds: float,
    commit: str | None,
) -> dict[str, Any]:
    """A whole results file, for the ``workloads`` just measured; ``commit`` is ``git_commit()``
    as the run started (the code that was imported and measured)."""
    return {
        "format": FORMAT,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "command": command,
        "seconds": round(seconds, 1),
        "settings": {"repeats": settings.repeats, "seconds": settings.seconds},
        "machine": machine(),
        "versions": versions(),
        "workloads": workloads,
    }


def save(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def load(path: Path) -> dict[str, Any]:
    """Read a results file; a file that is not one is refused with its path named."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"no benchmark results at {path}: run the benchmarks first") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SystemExit(f"{path} is not a benchmark results file of format {FORMAT}")
    return data
