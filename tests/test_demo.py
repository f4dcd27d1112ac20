"""The README's demo runs on every backend: the pipeline gets every job back exactly once, the
bank of actors conserves money, accounts for every transfer and publishes the dead letters it
should, the supervision tree restarts its flaky worker and contains its crash storms, and the
worker processes over NATS lose no job and no ask to their actor pool when one is killed."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys

import pytest

from fearless._cli import demo


def skip_if_missing(backend: str) -> None:
    if backend == "uvloop":
        pytest.importorskip("uvloop")


@pytest.mark.parametrize("backend", demo.BACKENDS)
def test_the_demo_pipeline_returns_every_job_exactly_once(backend: str) -> None:
    skip_if_missing(backend)
    out = io.StringIO()
    assert demo.run(backend, items=300, workers=4, out=out, part="pipeline")
    text = out.getvalue()
    assert "300 jobs in" in text
    assert "check: every job exactly once (lost 0, duplicated 0)" in text
    assert text.count("jobs\n") >= 4  # a line per worker
    assert "bank" not in text


@pytest.mark.parametrize("backend", demo.BACKENDS)
def test_the_demo_bank_conserves_money_and_reports_its_dead_letters(backend: str) -> None:
    skip_if_missing(backend)
    out = io.StringIO()
    assert demo.run(backend, out=out, part="bank", transfers=100)
    text = out.getvalue()
    assert "jobs" not in text
    # tell into a full "block" mailbox raises; send then waits for room.
    assert "12 deposits of 1 to alice at once: 8 queued (mailbox 8/8), 4 raised MailboxFull" in text
    assert "alice has 112" in text
    # the ask from a buggy client fails the account; the log record is one line.
    assert "ValueError: cannot withdraw a negative amount (-50)" in text
    assert "logged: ERROR fearless.actors: actor 'dave' failed (ValueError" in text
    assert "Traceback" not in text
    assert "dave failed" in text
    assert "a transfer to it now: refused: dave is closed (failed)" in text
    # the failing message and the late tell, in dead letters with their reasons.
    assert "Withdraw(amount=-50) for dave: handler_failed: ValueError(" in text
    assert "Deposit(amount=5) for dave: actor_stopped" in text
    # the snapshot: the teller and its three remaining accounts.
    assert "bank  (dead letters: 2)" in text
    assert "└── teller [Teller] running, mailbox 0/16 block, handled 101," in text
    assert text.count("[Account] running, mailbox 0/8 block") == 3
    assert "dave [Account]" not in text
    assert (
        "check: money conserved (400 + 12 deposited = 412, closing total 412), "
        "100/100 transfers accounted for, 2 dead letters (expected 2)"
    ) in text


@pytest.mark.parametrize("backend", demo.BACKENDS)
def test_the_demo_tree_restarts_the_flaky_worker_and_contains_both_storms(backend: str) -> None:
    """A supervisor that gives up escalates to its parent, which restarts it; a top-level actor
    that exhausts its own restart budget is stopped, and the system goes on."""
    skip_if_missing(backend)
    out = io.StringIO()
    assert demo.run(backend, out=out, part="tree")
    text = out.getvalue()
    assert "jobs in" not in text
    assert "bank" not in text
    # the tree, before: every actor fresh, solo beside service at the top.
    before, after = text.split("  before:\n")[1].split("  after")
    assert before.count("failures 0, restarts 0") == 7
    assert "├── service [Supervisor] running" in before
    assert "│   │   ├── flaky [Worker] running" in before
    assert "│   └── storm [Subtree] running" in before
    assert "└── solo [Crasher] running" in before
    # the flaky worker: restarted after each failure, the next job handled by the new instance.
    assert "flaky: 12 jobs, one a second: 9 done, 3 failed (ConnectionError)" in text
    assert (
        "logged: 3 x ERROR fearless.actors: supervisor 'workers' restarts actor 'flaky' "
        "(one_for_one), which ended: failed (ConnectionError"
    ) in text
    assert (
        "steady refuses job -1 with ErrorReply: the asker gets ValueError: there is no job -1"
        in (text)
    )
    # the storm: storm gives up, escalates, and its supervisor restarts it.
    assert (
        "storm gave up: RestartIntensityExceeded: supervisor 'storm' gave up: more than 2 "
        "restart(s) within 5.0 s (last: RuntimeError: crashed on 'boom 2')"
    ) in text
    assert "logged: ERROR fearless.actors: actor 'crasher' failed (RuntimeError" in text
    assert "supervisor 'service' restarts actor 'storm' (one_for_one)" in text
    assert "service restarted storm, which started a new crasher: running" in text
    # solo: restarted within its own budget, then stopped for good; the system goes on.
    assert (
        "solo: 5 messages that each crash it, at once: restarted 3 times, then stopped for good "
        "(failed: RuntimeError)"
    ) in text
    assert "logged: 3 x ERROR fearless.actors: supervisor '/' restarts actor 'solo'" in text
    assert (
        "logged: ERROR fearless.actors: actor 'solo' failed more than 3 time(s) within 5.0 s: "
        "stopped for good (the system goes on)"
    ) in text
    assert "the system goes on: steady answers 'job 12 done" in text
    assert "Traceback" not in text
    # the failing messages, in dead letters, and the one still queued for solo.
    for job in (3, 7, 11):
        assert f"Job(number={job}) for flaky: handler_failed: ConnectionError(" in text
    for boom in range(3):
        assert f"'boom {boom}' for crasher: handler_failed: RuntimeError(" in text
    for crash in range(4):
        assert f"'crash {crash}' for solo: handler_failed: RuntimeError(" in text
    assert "'crash 4' for solo: actor_stopped\n" in text
    # the tree, after: solo is gone, service and its tree are running.
    assert "tree  (dead letters: 11)" in after
    assert "solo" not in after.split("\n", 1)[1].split("  check:")[0]
    assert "└── service [Supervisor] running" in after
    assert (
        "flaky [Worker] running, mailbox 0/1000 block, handled 9, failures 3, restarts 3" in after
    )
    assert (
        "workers [Supervisor] running, mailbox 0/1000 block, handled 0, failures 0, restarts 0"
        in (after)
    )
    assert (
        "storm [Subtree] running, mailbox 0/1000 block, handled 1, failures 1, restarts 1" in after
    )
    assert "crasher [Crasher] running, mailbox 0/1000 block, handled 0, failures 0, restarts 0" in (
        after
    )
    assert (
        "check: tree recovered (flaky restarted 3 times, storm gave up once and service restarted "
        "it, solo failed 4 times and was stopped while the system went on, workers untouched, "
        "11 dead letters (expected 11))"
    ) in text


def test_the_demo_bank_leaves_the_actor_logger_as_it_found_it() -> None:
    logger = logging.getLogger("fearless.actors")
    handlers, propagate = list(logger.handlers), logger.propagate
    assert demo.run("asyncio", out=io.StringIO(), part="bank", transfers=10)
    assert logger.handlers == handlers
    assert logger.propagate == propagate


def test_the_command_line_runs_every_part_by_default() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fearless", "demo", "--backend", "trio", "--items", "50"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "every job exactly once" in proc.stdout
    assert "check: money conserved" in proc.stdout
    assert "check: tree recovered" in proc.stdout
    assert proc.stderr == ""  # the failing actors' tracebacks are not spilled


def test_the_command_line_runs_one_part_when_asked() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fearless", "demo", "--backend", "trio", "--part", "bank"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "jobs" not in proc.stdout
    assert "check: money conserved" in proc.stdout
    assert "check: tree" not in proc.stdout


def test_an_unknown_command_prints_usage() -> None:
    from fearless.__main__ import main

    assert main(["nonsense"]) == 2


@pytest.mark.parametrize(
    "argv", [["--workers", "0"], ["--transfers", "-1"], ["--part", "nonsense"]]
)
def test_bad_demo_arguments_are_refused_with_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        demo.main(argv)
    assert info.value.code == 2


def test_an_unknown_part_is_refused() -> None:
    with pytest.raises(ValueError, match="'nonsense'"):
        demo.run("asyncio", part="nonsense")


@pytest.mark.parametrize("backend", demo.BACKENDS)
def test_the_demo_cluster_loses_no_job_and_no_ask_when_a_worker_process_is_killed(
    backend: str,
) -> None:
    """Three worker processes over an embedded nats-server, one killed with SIGKILL: every job
    is done at least once, the jobs done twice are the killed worker's, the counter agrees; the
    actor pool the three serve answers every ask (after at most one retry), the killed member
    answers none sent after the kill, and the registry's snapshot, three members up before, has
    the killed one down after and two serving."""
    skip_if_missing(backend)
    out = io.StringIO()
    assert demo.run(backend, out=out, part="cluster", jobs=100), out.getvalue()
    text = out.getvalue()
    assert "an embedded nats-server with JetStream at nats://127.0.0.1:" in text
    found = re.search(r"3 worker processes \(pids (\d+), (\d+), (\d+)\)", text)
    assert found, text
    victim, *survivors = found.groups()
    assert "killed worker 1 (SIGKILL)" in text
    assert "check: every job done at least once (lost 0)" in text
    # the pool: every ask answered, the killed member none of those sent after the kill.
    check = re.search(
        r"check: pool: (\d+) asks, (\d+) answered \((\d+) after one retry, lost 0\), "
        r"member (\d+) \(worker 1\) killed, 2 members serving\n",
        text,
    )
    assert check, text
    asked, answered, _, killed = check.groups()
    assert asked == answered != "0"
    assert killed == victim
    killed_line = (
        rf"worker 1 \(pid {victim}\): \d+ jobs, answered \d+ asks before the kill \(killed\)"
    )
    assert re.search(killed_line, text), text
    answers = [
        int(n)
        for line in text.splitlines()
        if line.startswith("  worker ")
        for n in re.findall(r"(\d+) (?:asks before the kill|after)", line)
    ]
    assert sum(answers) == int(answered), text
    # the registry's snapshots: three members up before; after, the killed one down.
    before, after = text.split("the cluster, before:\n")[1].split("the cluster, after:\n")
    members = [line for line in before.splitlines() if line.startswith("    pricing ")]
    assert len(members) == 3, before
    assert all(" up " in line for line in members), before
    assert "system 'demo': 2 node(s)" in after
    members = [line for line in after.splitlines() if line.startswith("    pricing ")]
    down = {line.split(" node ")[1].split("-")[0]: "DOWN" in line for line in members}
    assert down == {victim: True, **dict.fromkeys(survivors, False)}, after
