"""The README's demo runs on every backend: the pipeline gets every job back exactly once, and the
bank of actors conserves money, accounts for every transfer and publishes the dead letters it
should."""

from __future__ import annotations

import io
import logging
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


def test_the_demo_bank_leaves_the_actor_logger_as_it_found_it() -> None:
    logger = logging.getLogger("fearless.actors")
    handlers, propagate = list(logger.handlers), logger.propagate
    assert demo.run("asyncio", out=io.StringIO(), part="bank", transfers=10)
    assert logger.handlers == handlers
    assert logger.propagate == propagate


def test_the_command_line_runs_both_parts_by_default() -> None:
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
    assert proc.stderr == ""  # the failing actor's traceback is not spilled


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
