"""The code blocks of the guide pages are real code: each one runs, on every backend, and is
type-checked by mypy --strict.

Pages: docs/index.md, docs/channels.md, docs/select.md, docs/broadcast.md, docs/cells.md, and the
blocks of docs/threads.md after its first (tests/threads/test_docs_threads.py runs the first).
The fragments of docs/supervision.md that tests/test_docs_supervision.py only compiles are
type-checked here (``runs=False``), against stand-ins for the actors the page only names.
docs/benchmarks.md, docs/design/README.md, docs/design/concurrency.md, docs/design/supervision.md
and docs/comparison.md have no Python block today; tests/docs/test_docs_coverage.py fails as soon
as one gets a block that no test module covers.

Every block of those pages has an entry in ``BLOCKS`` (a test fails otherwise), found by a line that
only that block has. A block that is a fragment (it uses names it does not define: ``rx_a``,
``handle``) gets them from the entry's ``given`` code, which stands for what the page's prose
says they are; the block then runs as written, after it. Blocks that await at the top level run as
the body of an async function, the way the pages show them; a block that ends with
``anyio.run(main)`` runs ``main`` on the test's backend instead. What a block prints must be what
the page says it prints, and an entry's ``check`` asserts what the comments in the block say about
the values it makes (``# 6: items 0..5 were overwritten``).

For mypy every block becomes a module: its entry's ``given`` code, then the block (wrapped in an
``async def`` if it awaits at the top level). One mypy run checks them all, against this
checkout's ``src``.
"""

from __future__ import annotations

import ast
import inspect
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import anyio
import pytest

import fearless

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    """What running a block left behind: its names, what it printed and what it logged."""

    namespace: dict[str, Any]
    printed: str
    logged: list[str]


@dataclass(frozen=True)
class Block:
    page: str
    """The page, relative to the repository's root."""
    marker: str
    """A line (or part of one) that only this block of the page has."""
    given: str = ""
    """Code defining the names the block uses without defining them; runs first."""
    prints: str | None = ""
    """What the block prints (None: ``check`` looks at the output)."""
    check: Callable[[Outcome], None] | None = None
    files: dict[str, str] = field(default_factory=dict)
    """Files the block reads, created in a temporary working directory."""
    runs: bool = True
    """False: only type-checked (a fragment another module runs the rest of its page for)."""
    inside: str = ""
    """For mypy only: a line the block is indented under (a method shown without its class)."""


def raises(exception: type[BaseException], fn: Callable[[], object]) -> bool:
    try:
        fn()
    except exception:
        return True
    return False


# --- what the blocks say about their results ---------------------------------------------------


def index_prints_the_sum_of_squares(outcome: Outcome) -> None:
    assert outcome.printed == f"{sum(i * i for i in range(1000))}\n"


def merge_ends_and_closes_its_inputs(outcome: Outcome) -> None:
    # "it owns its inputs: closing it closes them"
    for name in ("rx_a", "rx_b", "rx_c"):
        receiver = outcome.namespace[name]
        assert raises(anyio.ClosedResourceError, receiver.receive_nowait), name


def fan_out_returns_every_result(outcome: Outcome) -> None:
    assert sorted(outcome.namespace["seen"]) == [0, 2, 4, 6, 8, 10]


def drop_in_streams_are_anyio_streams(outcome: Outcome) -> None:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    send, receive = outcome.namespace["send"], outcome.namespace["receive"]
    assert isinstance(send, MemoryObjectSendStream)
    assert isinstance(receive, MemoryObjectReceiveStream)
    assert send.statistics().max_buffer_size == 100


def select_loop_handles_every_job_then_stops(outcome: Outcome) -> None:
    namespace = outcome.namespace
    assert namespace["handled"] == [0, 1, 2, 3, 4]
    assert namespace["applied"] in ([], ["pause"])
    assert namespace["jobs"].ended


def select_with_a_ready_branch_commits_it(outcome: Outcome) -> None:
    namespace = outcome.namespace
    assert namespace["won"] is namespace["jobs"]
    assert namespace["jobs"].value == 7
    assert not namespace["scope"].cancelled_caught


def oneshot_delivers_the_value(outcome: Outcome) -> None:
    assert outcome.namespace["value"] == 42
    # "a second send raises SendClosedError"
    assert raises(fearless.SendClosedError, lambda: outcome.namespace["reply_tx"].send(43))


def every_subscriber_receives_hello(outcome: Outcome) -> None:
    for name in ("rx", "rx2", "rx3", "audit"):
        assert outcome.namespace[name].receive_nowait() == "hello", name


def each_subscription_has_its_policy(outcome: Outcome) -> None:
    assert outcome.namespace["alerter"].statistics().on_lag == "drop"
    assert outcome.namespace["counter"].statistics().on_lag == "block"


def the_lagged_loop_logs_the_lag_and_goes_on(outcome: Outcome) -> None:
    assert outcome.namespace["shown"] == [6.0, 7.0, 8.0, 9.0]
    assert outcome.logged == ["missed 6 prices"]


def merge_and_select_read_a_subscription(outcome: Outcome) -> None:
    # the merge ended (both inputs did) and the select committed one of its branches
    namespace = outcome.namespace
    assert (
        namespace["winner"] is namespace["recv_price"]
        or namespace["winner"].receiver is (namespace["commands_rx"])
    )


def cells_prints_a_value_then_the_total(outcome: Outcome) -> None:
    first, last = outcome.printed.splitlines()
    assert 500 <= int(first) <= 1000  # "some value >= 500"
    assert last == "1000"


def guarded_holds_what_the_block_did(outcome: Outcome) -> None:
    assert outcome.namespace["retries"] == 5
    assert outcome.namespace["settings"].read(dict) == {"retries": 5, "timeout": 10}


def the_thread_group_ran_the_thread(outcome: Outcome) -> None:
    assert outcome.namespace["calls"].load() == 1


# --- the blocks ---------------------------------------------------------------------------------

ENDED_CHANNEL = """
import fearless


def ended(*items: int) -> fearless.ChannelReceiver[int]:
    '''A channel holding items whose every sender is closed.'''
    tx, rx = fearless.channel[int](len(items))
    with tx:
        for item in items:
            tx.send_nowait(item)
    return rx
"""

BLOCKS = [
    Block(
        "docs/index.md",
        "fearless.fan_out(rx, square, workers=4)",
        prints=None,
        check=index_prints_the_sum_of_squares,
    ),
    Block("docs/channels.md", "tx2 = tx.clone()"),
    Block(
        "docs/channels.md",
        "fearless.merge(rx_a, rx_b, rx_c)",
        given=ENDED_CHANNEL + "rx_a, rx_b, rx_c = ended(1, 2), ended(3), ended()\n",
        check=merge_ends_and_closes_its_inputs,
    ),
    Block(
        "docs/channels.md",
        "fearless.fan_out(jobs_rx, handle, workers=4)",
        given=ENDED_CHANNEL
        + """
jobs_rx = ended(0, 1, 2, 3, 4, 5)
seen: list[int] = []


async def handle(job: int) -> int:
    seen.append(job * 2)
    return job * 2
""",
        check=fan_out_returns_every_result,
    ),
    Block(
        "docs/channels.md",
        "create_memory_object_stream[int](100)",
        check=drop_in_streams_are_anyio_streams,
    ),
    Block(
        "docs/select.md",
        "won = await select(jobs, control, report)",
        given="""
import math

import fearless

jobs_tx, jobs_rx = fearless.channel[int](math.inf)
control_tx, control_rx = fearless.channel[str](math.inf)  # stays open: control never ends
reports_tx, reports_rx = fearless.channel[str](math.inf)
with jobs_tx:
    for job in range(5):
        jobs_tx.send_nowait(job)
control_tx.send_nowait("pause")
handled: list[int] = []
applied: list[str] = []
latest = "report 0"


def handle(job: int) -> None:
    handled.append(job)


def apply(command: str) -> None:
    applied.append(command)


def next_report() -> str:
    return "report n"
""",
        check=select_loop_handles_every_job_then_stops,
    ),
    Block(
        "docs/select.md",
        "with anyio.move_on_after(1.0) as scope:",
        given="""
import anyio

import fearless
from fearless import Recv, select

jobs_tx, jobs_rx = fearless.channel[int](1)
control_tx, control_rx = fearless.channel[str](1)
jobs_tx.send_nowait(7)
jobs, control = Recv(jobs_rx), Recv(control_rx)
""",
        check=select_with_a_ready_branch_commits_it,
    ),
    Block(
        "docs/select.md",
        "reply_tx.send(42)",
        given="import fearless\n",
        check=oneshot_delivers_the_value,
    ),
    Block(
        "docs/broadcast.md",
        'await tx.send("hello")',
        check=every_subscriber_receives_hello,
    ),
    Block(
        "docs/broadcast.md",
        "fearless.broadcast[Event](256",
        given="""
import fearless


class Event:
    def __init__(self, name: str) -> None:
        self.name = name
""",
        check=each_subscription_has_its_policy,
    ),
    Block("docs/broadcast.md", "print(lag.missed)", given="import fearless\n", prints="6\n6\n"),
    Block(
        "docs/broadcast.md",
        'log.warning("missed %d prices", lag.missed)',
        given="""
import logging

import fearless

log = logging.getLogger("docs.prices")
shown: list[float] = []


def show(price: float) -> None:
    shown.append(price)


price_tx, rx = fearless.broadcast[float](4)
with price_tx:
    for i in range(10):
        price_tx.send_nowait(float(i))  # rx lags by 6, then the stream ends
""",
        check=the_lagged_loop_logs_the_lag_and_goes_on,
    ),
    Block(
        "docs/broadcast.md",
        "fearless.merge(commands_rx, prices)",
        given="""
import fearless

commands_tx, commands_rx = fearless.channel[str](1)
price_tx, prices = fearless.broadcast[float](4)
with commands_tx, price_tx:
    commands_tx.send_nowait("stop")
    price_tx.send_nowait(1.5)
""",
        check=merge_and_select_read_a_subscription,
    ),
    Block(
        "docs/cells.md",
        "served.wait_until(",
        prints=None,
        check=cells_prints_a_value_then_the_total,
    ),
    Block(
        "docs/cells.md",
        "fearless.Guarded(",
        given="import fearless\n",
        check=guarded_holds_what_the_block_did,
    ),
    Block(
        "docs/threads.md",
        "group.start(fn, *endpoints, n=1, name=None)",
        given="""
import fearless

calls = fearless.AtomicInt(0)
endpoints = ()


def fn() -> None:
    calls.increment()
""",
        check=the_thread_group_ran_the_thread,
    ),
    Block(
        "docs/threads.md",
        "def read_lines(path: str)",
        given="""
from collections.abc import Iterator

import fearless
""",
        files={"big.log": "one\ntwo\n"},
    ),
]

# docs/supervision.md: tests/test_docs_supervision.py runs three of its blocks (the ones in
# COVERED_ELSEWHERE); the others are fragments about actors the page only names, type-checked
# here against stand-ins for those actors.
SUPERVISED = """
from dataclasses import dataclass
from typing import Any

import fearless


class Listener(fearless.Actor[str]):
    async def handle(self, message: str) -> None: ...


class Handler(fearless.Actor[bytes]):
    async def handle(self, message: bytes) -> None: ...


class Database(fearless.Actor[str]):
    async def handle(self, message: str) -> None: ...


class Cache(fearless.Actor[str]):
    async def handle(self, message: str) -> None: ...


class Fetcher(fearless.Actor[str]):
    def __init__(self, url: str = "https://example.com") -> None:
        self.url = url

    async def handle(self, message: str) -> None: ...


class Room(fearless.Actor[str]):
    async def handle(self, message: str) -> None: ...


class Session(fearless.Actor[str]):
    async def handle(self, message: str) -> None: ...


@dataclass
class Withdraw(fearless.Request[bool]):
    amount: int


system: fearless.ActorSystem
sup: fearless.ActorRef[Any]


async def serve(system: fearless.ActorSystem) -> None: ...
"""


def type_checked(marker: str, given: str = SUPERVISED, inside: str = "") -> Block:
    return Block("docs/supervision.md", marker, given=given, runs=False, inside=inside)


BLOCKS += [
    type_checked('strategy="rest_for_one",'),
    type_checked(
        "factory,  # makes the instance",
        given=SUPERVISED + "\nfrom fearless._actors._actor import DEFAULT\n\nfactory = Cache\n",
    ),
    type_checked('name="fetchers",'),
    type_checked("escalate=False)  # the defaults"),
    type_checked("await serve(system)"),
    type_checked("fearless.TerminateChild(ref)"),
    type_checked(
        "-> bool | fearless.ErrorReply:",
        inside="class Account(fearless.Actor[Withdraw]):\n    balance = 100\n",
    ),
    type_checked("fearless.GetOrStartChild("),
    type_checked("fearless.Backoff(min_backoff=0.1"),
    type_checked("def decide(error: BaseException)"),
]

# Blocks of these pages that another module runs, by their marker.
COVERED_ELSEWHERE = {
    (
        "docs/threads.md",
        'anyio.run(main, [b"a", b"b", b"c"])',
    ): "tests/threads/test_docs_threads.py",
    ("docs/supervision.md", "anyio.run(main"): "tests/test_docs_supervision.py",
    ("docs/supervision.md", "async def connections()"): "tests/test_docs_supervision.py",
    ("docs/supervision.md", "async def test_the_fourth_restart"): "tests/test_docs_supervision.py",
}

PAGES = sorted({block.page for block in BLOCKS})


def blocks_of(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)


def code_of(block: Block) -> str:
    (code,) = [code for code in blocks_of(block.page) if block.marker in code]
    return code


def block_id(block: Block) -> str:
    return f"{block.page} block {blocks_of(block.page).index(code_of(block))}"


def awaits_at_top_level(code: str) -> bool:
    try:
        compile(code, "<block>", "exec")
    except SyntaxError:
        compile(code, "<block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return True
    return False


def close_what_it_opened(namespace: dict[str, Any]) -> None:
    """Close the endpoints a block left open (an unclosed one warns, and warnings are errors)."""
    for value in namespace.values():
        if isinstance(value, type | ModuleType | FunctionType):
            continue
        close = getattr(value, "close", None)
        if callable(close) and type(value).__module__.startswith("fearless"):
            close()


async def run(block: Block, namespace: dict[str, Any]) -> None:
    """Run the block's given code, then the block, in ``namespace``."""
    code = code_of(block)
    exec(compile(block.given, f"{block_id(block)} (given)", "exec"), namespace)
    body, _, last_line = code.rstrip().rpartition("\n")
    if last_line.split("#")[0].strip() == "anyio.run(main)":
        exec(compile(body, block_id(block), "exec"), namespace)
        main: Callable[[], Awaitable[None]] = namespace["main"]
        await main()
    else:
        compiled = compile(code, block_id(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(compiled, namespace)
        if inspect.isawaitable(result):  # the block awaits at the top level
            await result


@pytest.mark.parametrize("block", [block for block in BLOCKS if block.runs], ids=block_id)
async def test_every_block_runs_and_does_what_its_page_says(
    block: Block,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, text in block.files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs_block"}
    try:
        with caplog.at_level(logging.WARNING):
            await run(block, namespace)
        outcome = Outcome(namespace, capsys.readouterr().out, caplog.messages)
        if block.prints is not None:
            assert outcome.printed == block.prints
        if block.check is not None:
            block.check(outcome)
    finally:
        close_what_it_opened(namespace)


@pytest.mark.parametrize("page", PAGES)
def test_every_block_of_the_page_has_exactly_one_entry(page: str) -> None:
    markers = [block.marker for block in BLOCKS if block.page == page]
    markers += [marker for (other, marker) in COVERED_ELSEWHERE if other == page]
    for index, code in enumerate(blocks_of(page)):
        assert sum(marker in code for marker in markers) == 1, f"{page} block {index}"
    for marker in markers:
        assert sum(marker in code for code in blocks_of(page)) == 1, f"{page}: {marker!r}"


# --- mypy ---------------------------------------------------------------------------------------

MYPY_CONFIG = """\
[mypy]
strict = True
warn_unreachable = True
python_version = 3.11
mypy_path = {src}

[mypy-uvloop.*]
ignore_missing_imports = True
"""


def as_module(block: Block) -> str:
    code = code_of(block)
    if block.inside:
        code = block.inside + "\n" + textwrap.indent(code, "    ")
    elif awaits_at_top_level(code):
        code = "async def _the_block() -> None:\n" + textwrap.indent(code, "    ")
    return block.given + "\n\n" + code


def module_name(block: Block) -> str:
    return re.sub(r"\W", "_", block_id(block))


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One mypy --strict run over every block: the error lines, by block."""
    directory = tmp_path_factory.mktemp("doc_blocks")
    (directory / "mypy.ini").write_text(MYPY_CONFIG.format(src=ROOT / "src"))
    files = []
    for block in BLOCKS:
        path = directory / f"{module_name(block)}.py"
        path.write_text(as_module(block))
        files.append(str(path))
    # In a process of its own, with a cache kept between runs: mypy run in this process keeps its
    # whole last build alive (~600,000 objects after a cold run), which made every full garbage
    # collection of the rest of the session slow; and a cold run costs ~10 s.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(directory / "mypy.ini"),
            "--cache-dir",
            str(ROOT / ".mypy_cache" / "doc-blocks"),
            "--no-error-summary",
            "--show-error-codes",
            *files,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    out, err = result.stdout, result.stderr
    assert not err, err
    return {
        module_name(block): [
            line for line in out.splitlines() if f"{module_name(block)}.py:" in line
        ]
        for block in BLOCKS
    }


@pytest.mark.parametrize("block", BLOCKS, ids=block_id)
def test_every_block_type_checks_under_mypy_strict(
    block: Block, mypy_report: dict[str, list[str]]
) -> None:
    assert mypy_report[module_name(block)] == []
