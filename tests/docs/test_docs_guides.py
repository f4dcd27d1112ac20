"""The getting-started page (docs/getting-started.md) and the how-to guides are real code:
every ```python block in them is run, or, where it cannot run here, type-checked, and the ones
that run print what the page says.

How each block is checked is written down below, in ``HOW``: for each page, a line that only that
block has, and one of

``Main(prints)``
    A program that ends with ``anyio.run(main)``: ``main`` is awaited on the test's backend
    (asyncio, uvloop, trio), and what it printed must be ``prints``.
``Script(prints)``
    Run as it is, in a plain (synchronous) test: the "before" side of a migration (asyncio,
    janus, pykka code that runs its own event loop or threads), or a program that runs several
    event loops itself.
``Interrupted(signal, prints)``
    A program that waits for a signal: it runs as a script in a subprocess on each backend, gets
    the signal once it has printed its first line, and must print ``prints`` (a regular
    expression) and exit with status 0.
``InPytest(filename)``
    Part of a test suite (a ``conftest.py``, test modules): the page's blocks are written to a
    directory and pytest runs it in a subprocess, where every test must pass on every backend.
``TypeOnly(why)``
    Cannot run in a test (``why`` says what it needs), so it is only type-checked.

Every block, whatever its kind, is also type-checked with ``mypy --strict`` (one run over all of
them), and a test fails if a block has no entry in ``HOW`` or an entry matches no block.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs"
SRC = ROOT / "src"


@dataclass(frozen=True)
class Main:
    prints: str


@dataclass(frozen=True)
class Script:
    prints: str


@dataclass(frozen=True)
class Interrupted:
    signal: signal.Signals
    prints: str  # a regular expression for the whole output


@dataclass(frozen=True)
class InPytest:
    filename: str
    passed: int = 0  # how many tests the file adds to the run (on all three backends)


@dataclass(frozen=True)
class TypeOnly:
    why: str


How = Main | Script | Interrupted | InPytest | TypeOnly

HOW: dict[str, dict[str, How]] = {
    "getting-started.md": {
        "fearless.channel[str](16)": Main("100 100\n"),
        "fearless.fan_out(jobs_rx, fetch": Main("True\n"),
        "class Account(": Main("75\n"),
        'fearless.AtomicCell("starting")': Main("ready\n"),
        "def read_sensor(": Main("[0.0, 0.5, 1.0, 1.5, 2.0]\n"),
        'backend="trio")  # trio': Script("running\nrunning\nrunning\n"),
    },
    "howto/migrate-anyio-streams.md": {
        "create_memory_object_stream[int](2)": Main("[0, 1, 2, 3, 4]\nTrue\n"),
        "def feed(": Main("b'fearless'\n"),
        "fearless.channel[int](100)": Main("499500\n"),
    },
    "howto/migrate-asyncio-queue.md": {
        "asyncio.Queue(maxsize=10)": Script("328350\n"),
        "# after: a channel": Main("328350\n"),
        "fearless.AtomicInt(0)": Main(
            "batch 0: 5 processed\nbatch 1: 10 processed\nbatch 2: 15 processed\n"
        ),
    },
    "howto/migrate-janus-culsans.md": {
        "janus.Queue(maxsize=4)": Script("285\n"),
        "# after: a channel": Main("285\n"),
        "tx.send_blocking(1)": Main("refused: use await tx.send(1) here\n0\n"),
    },
    "howto/migrate-pykka.md": {
        "import pykka": Script("12\n"),
        "# after: fearless": Main("12\n"),
        "class Parser(": Main("42\n1 1\n"),
    },
    "howto/testing.md": {
        "def anyio_backend(": InPytest("conftest.py"),
        "async def test_every_item_arrives_exactly_once(": InPytest("test_channels.py", 3 * 3),
        "class Reminder(": InPytest("test_actors.py", 3 * 3),
    },
    "howto/shutdown.md": {
        "except* KeyboardInterrupt:": Interrupted(
            signal.SIGINT, r"running; press Ctrl-C to stop\nworker: cleaned up\ninterrupted\n"
        ),
        "class Journal(": Interrupted(
            signal.SIGTERM,
            r"serving\nSIGTERM: draining\naccepted (\d+) jobs\njournal: \1 jobs written\n",
        ),
        "def index(": Interrupted(
            signal.SIGINT,
            # two threads print at once: one's newline may come after the other's line
            r"running; press Ctrl-C to stop\n(indexer: stopped\n?){2}\n?interrupted\n",
        ),
    },
}


def pages() -> list[str]:
    return list(HOW)


def blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


def how(page: str, block: str) -> How:
    (found,) = [way for marker, way in HOW[page].items() if marker in block]
    return found


def cases(*kinds: type) -> list[Any]:
    return [
        pytest.param(page, index, id=f"{page}-{index}")
        for page in pages()
        for index, block in enumerate(blocks(page))
        if isinstance(how(page, block), kinds)
    ]


# -- the table itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", pages())
def test_every_block_has_exactly_one_way_to_be_checked(page: str) -> None:
    for block in blocks(page):
        matches = [marker for marker in HOW[page] if marker in block]
        assert len(matches) == 1, (page, matches, block[:200])
    for marker in HOW[page]:
        assert sum(marker in block for block in blocks(page)) == 1, (page, marker)


# -- programs that run on the test's backend -----------------------------------------------------


@pytest.mark.parametrize(("page", "index"), cases(Main))
async def test_the_program_prints_what_the_page_says(
    page: str, index: int, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A program may hush the log of the failures it causes on purpose: caplog puts the level
    back afterwards."""
    block = blocks(page)[index]
    body, _, run_line = block.rstrip().rpartition("\n")
    assert run_line.startswith("anyio.run(main)"), run_line
    namespace: dict[str, Any] = {"__name__": f"docs_block_{index}"}
    exec(compile(body, f"{page} block {index}", "exec", dont_inherit=True), namespace)
    main: Callable[[], Awaitable[None]] = namespace["main"]
    with caplog.at_level(logging.WARNING, logger="fearless.actors"):
        await main()
    way = how(page, block)
    assert isinstance(way, Main)
    assert capsys.readouterr().out == way.prints


@pytest.mark.parametrize(("page", "index"), cases(Script))
def test_the_script_prints_what_the_page_says(
    page: str, index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    block = blocks(page)[index]
    namespace: dict[str, Any] = {"__name__": f"docs_block_{index}"}
    exec(compile(block, f"{page} block {index}", "exec", dont_inherit=True), namespace)
    way = how(page, block)
    assert isinstance(way, Script)
    assert capsys.readouterr().out == way.prints


# -- programs that wait for a signal -------------------------------------------------------------

# Runs a block as __main__ with anyio.run bound to one backend.
RUNNER = """
import functools, sys, anyio
backend, path = sys.argv[1], sys.argv[2]
if backend == "uvloop":
    import uvloop
    options = {"backend": "asyncio", "backend_options": {"loop_factory": uvloop.new_event_loop}}
else:
    options = {"backend": backend}
anyio.run = functools.partial(anyio.run, **options)
code = compile(open(path).read(), path, "exec", dont_inherit=True)
exec(code, {"__name__": "__main__"})
"""

BACKENDS = ["asyncio", "uvloop", "trio"]


def wait_until_idle(pid: int) -> None:
    """Return once process ``pid`` sleeps in the kernel (its event loop waits for something to
    happen), as it is when a person presses Ctrl-C; at once where ``/proc`` cannot tell.

    A program that has printed its line may still be finishing what it started: on trio, a
    signal in that moment raises ``KeyboardInterrupt`` inside that code (docs/howto/shutdown.md
    says what that means), which is not the moment the page describes."""
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(100_000):
        try:
            state = stat.read_text().rpartition(")")[2].split()[0]
        except OSError:
            return
        if state != "R":  # sleeping (S), or gone (Z): either way, nothing of it runs now
            return
        os.sched_yield()


def interrupt(tmp_path: Path, code: str, backend: str, signum: signal.Signals) -> tuple[int, str]:
    """Run ``code`` on ``backend``, send ``signum`` once it has printed a line, return its exit
    status and everything it printed."""
    script = tmp_path / f"block_{backend}.py"
    script.write_text(code)
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", RUNNER, backend, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the program is ready: its signal handling is in place
    wait_until_idle(process.pid)
    process.send_signal(signum)
    try:
        rest, errors = process.communicate(timeout=30)
    finally:
        process.kill()
    assert first, errors
    return process.returncode, first + rest + errors


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("page", "index"), cases(Interrupted))
def test_the_interrupted_program_prints_what_the_page_says_and_exits_cleanly(
    page: str, index: int, backend: str, tmp_path: Path
) -> None:
    """The claims of docs/howto/shutdown.md, on a real process and a real signal."""
    block = blocks(page)[index]
    way = how(page, block)
    assert isinstance(way, Interrupted)
    status, output = interrupt(tmp_path, block, backend, way.signal)
    assert re.fullmatch(way.prints, output), output
    assert status == 0, (status, output)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_graceful_stop_works_on_ctrl_c_too(backend: str, tmp_path: Path) -> None:
    """The graceful example takes SIGINT as it takes SIGTERM."""
    (block,) = [b for b in blocks("howto/shutdown.md") if "class Journal(" in b]
    status, output = interrupt(tmp_path, block, backend, signal.SIGINT)
    expected = r"serving\nSIGINT: draining\naccepted (\d+) jobs\njournal: \1 jobs written\n"
    assert re.fullmatch(expected, output), output
    assert status == 0, (status, output)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_plain_except_keyboard_interrupt_misses_ctrl_c_on_trio_only(
    backend: str, tmp_path: Path
) -> None:
    """What the page says of ``except KeyboardInterrupt:`` around a task group: it catches Ctrl-C
    on asyncio and uvloop; on trio the KeyboardInterrupt comes out in an exception group."""
    (block,) = [b for b in blocks("howto/shutdown.md") if "except* KeyboardInterrupt:" in b]
    plain = block.replace("except* KeyboardInterrupt:", "except KeyboardInterrupt:")
    status, output = interrupt(tmp_path, plain, backend, signal.SIGINT)
    if backend == "trio":
        assert status != 0
        assert "BaseExceptionGroup" in output, output
        assert "KeyboardInterrupt" in output, output
        assert "interrupted" not in output
    else:
        assert status == 0, (status, output)
        assert output.endswith("interrupted\n"), output


# -- test suites ---------------------------------------------------------------------------------


def suites() -> list[str]:
    return [p for p in pages() if any(isinstance(how(p, b), InPytest) for b in blocks(p))]


@pytest.mark.parametrize("page", suites())
def test_the_test_suite_passes_on_every_backend(page: str, tmp_path: Path) -> None:
    """The page's conftest and test modules, as a project of their own, run by pytest."""
    expected = 0
    for block in blocks(page):
        way = how(page, block)
        if isinstance(way, InPytest):
            path = tmp_path / way.filename
            path.write_text(path.read_text() + block if path.exists() else block)
            expected += way.passed
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"\b{expected} passed\b", result.stdout), result.stdout


# -- every block type-checks ---------------------------------------------------------------------


def test_every_block_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    """One mypy run over every block of every page, each a module of its own."""
    files = []
    for number, page in enumerate(pages()):
        for index, block in enumerate(blocks(page)):
            path = tmp_path / f"page{number}_block{index}.py"
            path.write_text(block)
            files.append(str(path))
    # In a process of its own: mypy run in this process keeps its last build alive, which slows
    # every full garbage collection of the rest of the session.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--python-version",
            "3.11",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *files,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    stdout, stderr, status = result.stdout, result.stderr, result.returncode
    names = {f"page{number}_": page for number, page in enumerate(pages())}
    for prefix, page in names.items():
        stdout = stdout.replace(prefix, f"{page} ")
    assert status == 0, stdout + stderr
