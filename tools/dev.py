#!/usr/bin/env python3
"""Set-up and entry points for fearless, for a machine that has only python3 and pip.

    python3 tools/dev.py demo [--backend asyncio|uvloop|trio]   run the demo
    python3 tools/dev.py test [pytest args...]                   run the whole test suite
                                                                 (ours, then anyio's stream tests:
                                                                 its sdist is downloaded once,
                                                                 then kept in ~/.cache/fearless)
    python3 tools/dev.py test-ft [pytest args...]                the thread and stress tests on
                                                                 free-threaded CPython 3.13t
    python3 tools/dev.py check                                   ruff + mypy --strict
    python3 tools/dev.py bench [args...]                         run the benchmarks (a full run
                                                                 saves its results in
                                                                 benchmarks/results/latest.json)
    python3 tools/dev.py bench --plot [FILE]                     draw the charts (SVG) in
                                                                 docs/images/benchmarks/ from saved
                                                                 results, running nothing
    python3 tools/dev.py docs [--serve]                          build the documentation site
                                                                 into site/ (mkdocs --strict), or
                                                                 serve it with live reload

``demo`` has a light venv of its own, ``.venv-demo``: fearless (editable) with only its trio,
uvloop and nats extras (anyio, trio, uvloop; nats-py, msgspec and the nats-server binary for the
cluster part), so that a first run takes seconds. Every other command uses
``.venv``, which the first of them creates with fearless (editable) and its dev extra (the test
tools, mypy, ruff, mkdocs, the benchmark peers, the examples' web stack). Either venv is
reinstalled only when pyproject.toml changed.

``test-ft`` gets a free-threaded CPython 3.13t from ``tools/free-threaded-python.sh`` (built from
Debian's source package the first time, about 3 minutes, then cached in ``~/.cache/fearless``),
makes ``.venv-ft`` with it (fearless and its test extra: no uvloop, which has no free-threaded
build), checks that the GIL is really off once everything is imported, runs pytest there, and
checks again that nothing turned the GIL back on during the run. ``PYTHON_GIL`` is removed from
the environment: forcing the GIL off would hide an extension module that re-enables it.
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
PY = VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
DEV_EXTRAS = "dev"

# The demo's venv: only what `python -m fearless demo` imports on each of its backends.
VENV_DEMO = Path(os.environ.get("FEARLESS_VENV_DEMO", ROOT / ".venv-demo"))
PY_DEMO = VENV_DEMO / ("Scripts" if os.name == "nt" else "bin") / "python"
DEMO_EXTRAS = "trio,uvloop,nats"

# The free-threaded run: its own venv, made by the 3.13t interpreter that the script prints.
VENV_FT = Path(os.environ.get("FEARLESS_VENV_FT", ROOT / ".venv-ft"))
PY_FT = VENV_FT / "bin" / "python"
FT_SCRIPT = ROOT / "tools" / "free-threaded-python.sh"
# What test-ft runs when given no pytest arguments: the thread and cell tests (the actor thread
# tests among them), the backend seam, the channel tests, and the actor tests.
FT_TESTS = [
    "tests/threads",
    "tests/cells",
    "tests/test_backend.py",
    "tests/channels/test_channel.py",
    "tests/actors",
]


def ensure_venv(
    path: Path = VENV, python: Path = PY, extras: str = DEV_EXTRAS, upgrade_pip: bool = True
) -> None:
    """Create the venv at ``path`` with fearless (editable) and ``extras``; reinstall when
    pyproject.toml changed. (The demo's venv keeps the pip that ``venv`` bundles, recent enough
    for an editable install on Python 3.11+: upgrading it would only lengthen a first run.)"""
    stamp = path / ".fearless-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and python.exists():
        return
    if not python.exists():
        print(f"creating {path}", flush=True)
        venv.EnvBuilder(with_pip=True).create(path)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if upgrade_pip:
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]"], check=True)
    stamp.write_text(want)


def ensure_venv_ft() -> None:
    """Make ``.venv-ft`` on the free-threaded interpreter; reinstall when pyproject.toml or the
    interpreter changed."""
    if os.name == "nt":
        raise SystemExit("test-ft builds CPython from Debian's sources: Linux only")
    out = subprocess.run(["bash", str(FT_SCRIPT)], stdout=subprocess.PIPE, text=True, check=True)
    base = out.stdout.strip().splitlines()[-1]
    stamp = VENV_FT / ".fearless-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + base.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY_FT.exists():
        return
    print(f"creating {VENV_FT} with {base}", flush=True)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV_FT)], check=True)
    pip = [str(PY_FT), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # --prefer-binary: hypothesis >= 6.156 ships a Rust extension with no free-threaded wheel, and
    # its source build cannot fetch its crates here; the newest pure-Python hypothesis wheel does.
    subprocess.run([*pip, "--prefer-binary", "-e", f"{ROOT}[test]"], check=True)
    stamp.write_text(want)


# Imports everything a test run loads and names any extension module that turned the GIL back on
# (3.13t warns with a RuntimeWarning when it does so to load a module that did not opt out).
GIL_CHECK = """\
import importlib, pkgutil, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import anyio, anyio.pytest_plugin, hypothesis, hypothesis.stateful, hypothesis.strategies
    import pytest, pytest_timeout, trio, fearless
    import anyio._backends._asyncio, anyio._backends._trio
    for info in pkgutil.walk_packages(fearless.__path__, "fearless."):
        if not info.name.startswith("fearless.nats"):  # the nats extra: not in .venv-ft
            importlib.import_module(info.name)
for w in caught:
    if "GIL" in str(w.message):
        print(f"re-enabled the GIL: {w.message}", file=sys.stderr)
if sys._is_gil_enabled():
    sys.exit("the GIL is enabled after importing fearless and the test dependencies")
print(f"{sys.version.splitlines()[0]}: the GIL is disabled")
"""

# pytest in-process, and the same check as its session ends (before its closing summary line): no
# module that a test imported may have re-enabled the GIL.
PYTEST_FT = """\
import sys, pytest

class GilStaysOff:
    line = ""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        if sys._is_gil_enabled():
            self.line = "test-ft: something imported during the run re-enabled the GIL"
            session.exitstatus = session.exitstatus or pytest.ExitCode.TESTS_FAILED
        else:
            self.line = "test-ft: the GIL stayed disabled for the whole run"

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(self.line)

sys.exit(pytest.main(sys.argv[1:], plugins=[GilStaysOff()]))
"""


def test_ft(args: list[str]) -> int:
    ensure_venv_ft()
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    if subprocess.call([str(PY_FT), "-c", GIL_CHECK], cwd=ROOT, env=env):
        return 1
    return subprocess.call([str(PY_FT), "-c", PYTEST_FT, *(args or FT_TESTS)], cwd=ROOT, env=env)


def run(*args: str) -> int:
    return subprocess.call([str(PY), *args], cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "test-ft", "check", "bench", "docs"}:
        print(__doc__)
        return 2
    if argv[0] == "test-ft":
        return test_ft(argv[1:])
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        ensure_venv(VENV_DEMO, PY_DEMO, DEMO_EXTRAS, upgrade_pip=False)
        return subprocess.call([str(PY_DEMO), "-m", "fearless", "demo", *rest], cwd=ROOT)
    ensure_venv()
    if cmd == "test":
        rc = run("-m", "pytest", *rest)
        if rest:  # a narrowed run (a file, -k ...) is about our tests only
            return rc
        print("\n== anyio's own memory-object-stream tests, against fearless ==", flush=True)
        return rc or run("tests/anyio_suite/run.py", "-q")
    if cmd == "bench":
        return run("-m", "benchmarks", *rest)
    if cmd == "docs":
        os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")  # Material's banner about its successor
        if rest == ["--serve"]:
            return run("-m", "mkdocs", "serve", "--strict")
        if rest:
            print(__doc__)
            return 2
        # --strict: a broken link, a missing page or a docstring mkdocstrings cannot render fails.
        return run("-m", "mkdocs", "build", "--strict", "--site-dir", "site")
    rc = run("-m", "ruff", "check", ".")
    rc |= run("-m", "ruff", "format", "--check", ".")
    rc |= run("-m", "mypy")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
