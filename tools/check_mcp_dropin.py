#!/usr/bin/env python3
"""Run the MCP Python SDK's own test suite on anyio's memory streams, then on fearless's drop-in,
and compare which tests pass.

    python3 tools/check_mcp_dropin.py [--mcp-version 2.3.0] [--workdir DIR] [--rerun N]
                                      [-- pytest args...]

A tool for checking, by hand, that ``fearless.create_memory_object_stream`` really drops in to a
large project; it is not part of the test suite or of CI (it downloads an sdist and about a
hundred packages, and MCP's suite takes minutes). Pytest arguments after ``--`` go to both runs
(test ids, ``-k``, ``-x``). What it does:

1. Downloads the ``mcp`` sdist (which ships MCP's ``tests/``) from PyPI into a temporary directory
   (``--workdir`` keeps it, and the venv, for the next run).
2. Makes a throwaway venv there and installs into it: MCP (its ``mcp-types`` and its example
   stories, from the sdist), the dependency groups MCP installs by default (``dev`` and ``docs``,
   minus linters, type checker and a git-only coverage helper), every version pinned by MCP's
   own ``uv.lock``, and fearless from this repository (a fresh copy on every run).
3. Runs MCP's suite twice, in the sdist's directory, with MCP's own pytest configuration:
   once unchanged, and once with a plugin that swaps ``anyio.create_memory_object_stream`` for
   ``fearless.create_memory_object_stream`` before MCP is imported (MCP, and MCP's tests, call it
   as ``anyio.create_memory_object_stream``; a module that imported the name itself is patched
   too). Each test's outcome is recorded by a small plugin loaded in both runs.
4. Prints how many tests passed on each, and every test whose outcome differs. With ``--rerun N``
   each differing test is run N more times in both modes, to tell a consistent difference from a
   flaky test.

Exit status: 0 if the two runs passed the same tests, 1 if not, 2 if the set-up failed.

Last result (MCP 2.3.0, CPython 3.11, as root): 6104 tests; 6103 pass (or skip as expected) on
anyio and 6101 with fearless. The two that differ, steadily, are MCP tests that pin anyio's
cancellation of a sender parked on a rendezvous stream (anyio can deliver the item and still
raise the cancellation; fearless refuses the cancelled sender atomically: see ``docs/channels.md``,
"anyio drop-in"). ``test_permission_error`` fails on both as root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import venv
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MCP_VERSION = "2.3.0"

# MCP's default dependency groups, minus what does not run tests: linters, the type checker, a
# coverage plugin that only installs from git, and the workspace packages (installed from the
# sdist instead).
NOT_INSTALLED = {"mcp", "mcp-example-stories", "pyright", "ruff", "strict-no-cover"}

RECORDER = '''
"""Records every test's outcome (passed, failed, error, skipped, xfailed, xpassed) as JSON."""
import json
import os

_outcomes = {}


def pytest_runtest_logreport(report):
    nodeid = report.nodeid
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
        if _outcomes.get(nodeid) != "error":
            _outcomes[nodeid] = outcome
    elif report.failed:
        _outcomes[nodeid] = "error"
    elif report.skipped and report.when == "setup":
        _outcomes[nodeid] = "xfailed" if hasattr(report, "wasxfail") else "skipped"


def pytest_collectreport(report):
    if report.failed:
        _outcomes[report.nodeid or "<collection>"] = "error"


def pytest_sessionfinish(session):
    with open(os.environ["MCP_DROPIN_OUTCOMES"], "w", encoding="utf-8") as out:
        json.dump(_outcomes, out, indent=0, sort_keys=True)
'''

SWAP = '''
"""Swaps anyio's create_memory_object_stream for fearless's before MCP is imported."""
import sys

import anyio

import fearless

_anyio_factory = anyio.create_memory_object_stream
anyio.create_memory_object_stream = fearless.create_memory_object_stream
for _name, _module in list(sys.modules.items()):
    if _name.startswith("anyio") or _module is None:
        continue  # anyio's own internals keep anyio's streams
    if getattr(_module, "create_memory_object_stream", None) is _anyio_factory:
        _module.create_memory_object_stream = fearless.create_memory_object_stream


def pytest_report_header(config):
    return f"fearless drop-in: anyio.create_memory_object_stream is {fearless.__file__}'s"


def pytest_sessionstart(session):
    assert anyio.create_memory_object_stream is fearless.create_memory_object_stream
'''


def run(command: list[str], **kwargs: object) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def download(version: str, dest: Path) -> Path:
    """The extracted sdist of ``mcp==version``."""
    tree = dest / f"mcp-{version}"
    if tree.exists():
        return tree
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", f"mcp=={version}", "-d", str(dest),
    ]  # fmt: skip
    for attempt in range(3):  # a registry hiccup should not end the run
        if subprocess.run(command, check=False).returncode == 0:
            break
        time.sleep(2 * (attempt + 1))
    else:
        raise RuntimeError(f"could not download the mcp {version} sdist from PyPI")
    with tarfile.open(dest / f"mcp-{version}.tar.gz") as tar:
        tar.extractall(dest, filter="data")
    return tree


def pins(tree: Path) -> list[str]:
    """``name==version`` for every package MCP's ``uv.lock`` takes from a registry."""
    lock = tomllib.loads((tree / "uv.lock").read_text(encoding="utf-8"))
    names = Counter(package["name"] for package in lock["package"])
    return [
        f"{package['name']}=={package['version']}"
        for package in lock["package"]
        if "registry" in package.get("source", {}) and names[package["name"]] == 1
    ]


def test_requirements(tree: Path) -> list[str]:
    """The dependency groups MCP's ``uv sync`` installs by default (``dev`` and ``docs``: the
    tests of MCP's docs tooling import the latter), minus ``NOT_INSTALLED``."""
    project = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
    groups = project["dependency-groups"]
    wanted = []
    for requirement in (r for g in project["tool"]["uv"]["default-groups"] for r in groups[g]):
        name = requirement.split(";")[0].split("[")[0]
        for mark in "<>=!~ ":
            name = name.split(mark)[0]
        if name.strip() not in NOT_INSTALLED:
            wanted.append(requirement)
    return wanted


def make_venv(work: Path, tree: Path) -> Path:
    """The venv's python, with MCP and its test dependencies installed (once)."""
    env_dir = work / "venv"
    python = env_dir / "bin" / "python"
    done = env_dir / ".mcp-installed"
    if not done.exists():
        if not python.exists():
            venv.EnvBuilder(with_pip=True).create(env_dir)
        constraints = work / "constraints.txt"
        constraints.write_text("\n".join(pins(tree)) + "\n", encoding="utf-8")
        env = dict(os.environ, UV_DYNAMIC_VERSIONING_BYPASS=tree.name.removeprefix("mcp-"))
        run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
             "-c", str(constraints),
             str(tree / "src" / "mcp-types"), f"{tree}[cli]", str(tree / "examples"),
             *test_requirements(tree)],
            env=env,
        )  # fmt: skip
        done.write_text("ok\n")
    # fearless from this repository, afresh every time (not editable: the venv gets a copy).
    run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
         "--force-reinstall", "--no-deps", str(ROOT)]
    )  # fmt: skip
    return python


def run_suite(
    python: Path, tree: Path, plugins: Path, label: str, swapped: bool, args: list[str]
) -> dict[str, str]:
    out = plugins / f"outcomes-{label}.json"
    env = dict(os.environ, MCP_DROPIN_OUTCOMES=str(out))
    env["PYTHONPATH"] = str(plugins)
    env.pop("PYTHONWARNINGS", None)
    command = [str(python), "-m", "pytest", "-p", "mcp_dropin_recorder", "-q",
               "-p", "no:cacheprovider", "-o", "log_cli=false", "--color=no"]  # fmt: skip
    if swapped:
        command += ["-p", "mcp_dropin_swap"]
    command += args
    print(f"\n=== MCP's suite, {label} ===", flush=True)
    start = time.monotonic()
    log = plugins.parent / f"pytest-{label}.log"
    with log.open("w", encoding="utf-8") as output:
        subprocess.run(
            command, cwd=tree, env=env, check=False, stdout=output, stderr=subprocess.STDOUT
        )
    outcomes: dict[str, str] = json.loads(out.read_text(encoding="utf-8"))
    counts = Counter(outcomes.values())
    print(f"{label}: {dict(sorted(counts.items()))} in {time.monotonic() - start:.0f} s ({log})")
    return outcomes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/check_mcp_dropin.py", description=__doc__)
    parser.add_argument("--mcp-version", default=MCP_VERSION)
    parser.add_argument("--workdir", type=Path, help="keep the sdist and venv here for reuse")
    parser.add_argument("--rerun", type=int, default=0, metavar="N")
    parser.add_argument("pytest_args", nargs="*")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fearless-mcp-") as tmp:
        work = options.workdir.resolve() if options.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            tree = download(options.mcp_version, work)
            python = make_venv(work, tree)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"set-up failed: {exc}", file=sys.stderr)
            return 2
        plugins = work / "plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "mcp_dropin_recorder.py").write_text(RECORDER, encoding="utf-8")
        (plugins / "mcp_dropin_swap.py").write_text(SWAP, encoding="utf-8")
        args = options.pytest_args
        anyio_run = run_suite(python, tree, plugins, "anyio", False, args)
        fearless_run = run_suite(python, tree, plugins, "fearless", True, args)
        return compare(python, tree, plugins, anyio_run, fearless_run, options.rerun)


def compare(
    python: Path,
    tree: Path,
    plugins: Path,
    anyio_run: dict[str, str],
    fearless_run: dict[str, str],
    rerun: int,
) -> int:
    passed = {"passed", "xfailed", "skipped"}
    ok_anyio = {t for t, o in anyio_run.items() if o in passed}
    ok_fearless = {t for t, o in fearless_run.items() if o in passed}
    tests = sorted(set(anyio_run) | set(fearless_run))
    differ = [t for t in tests if anyio_run.get(t) != fearless_run.get(t)]
    print(f"\ntests: {len(tests)}")
    print(f"passed (or skipped/xfailed as expected) on anyio:    {len(ok_anyio)}")
    print(f"passed (or skipped/xfailed as expected) on fearless: {len(ok_fearless)}")
    print(f"outcomes that differ: {len(differ)}")
    for test in differ:
        print(f"  {test}: anyio {anyio_run.get(test)}, fearless {fearless_run.get(test)}")
    if differ and rerun:
        print(f"\nrerunning the {len(differ)} differing tests {rerun} times in both modes")
        for label, swapped in (("anyio", False), ("fearless", True)):
            tally: dict[str, Counter[str]] = {t: Counter() for t in differ}
            for i in range(rerun):
                got = run_suite(python, tree, plugins, f"{label}-rerun{i}", swapped, differ)
                for test in differ:
                    tally[test][got.get(test, "not run")] += 1
            for test in differ:
                print(f"  {label}: {test}: {dict(tally[test])}")
    return 0 if ok_anyio == ok_fearless else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
