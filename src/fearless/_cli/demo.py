"""The demo, in four parts: a pipeline of tasks and channels, a bank built from actors, a
supervision tree, and worker processes sharing a durable channel over NATS.

    python -m fearless demo [--backend asyncio|uvloop|trio]
                            [--part all|pipeline|bank|tree|cluster]
                            [--items N] [--workers W] [--transfers T] [--jobs J]

The pipeline: a producer sends jobs into a bounded channel; ``fan_out`` runs the workers over it,
each "fetching" a job (a short, random, simulated I/O wait) and hashing it; the collector gathers
the results, drawing progress while it runs and a summary at the end: how many jobs each worker
did, the channel's statistics, and a check that every job came back exactly once.

The bank: a teller actor with four account actors as its children (one actor per account, each
with a bounded ``"block"`` mailbox). It shows ``tell`` into a full mailbox (``MailboxFull``) and
``send`` waiting for room, concurrent clients transferring money with typed asks, a failing
message (a buggy withdrawal) in dead letters with its reason, death watch (the teller monitors its
accounts), and ``system.snapshot()``. It ends with a check: no money was created or lost, every
transfer is accounted for, and exactly the expected dead letters were published. (The accounts
are children of a plain actor, so they are not supervised: a failing account stays failed.)

The tree: two top-level actors. ``service`` is an explicit supervisor over a ``workers``
supervisor (a flaky worker that fails on every fourth job, and a steady one) and a ``storm``
supervisor (a worker that crashes on every message); ``solo`` is a lone actor that crashes on every
message. On a fake clock, the flaky worker is restarted after each failure, its mailbox kept and
the failing jobs in dead letters. The storm needs more restarts than its supervisor's intensity
allows: ``storm`` gives up with ``RestartIntensityExceeded``, escalating to its parent, and
``service`` restarts it. ``solo`` has the restart budget the system gives every top-level actor,
its own (3 restarts in 5 s): the system restarts it three times, then stops it for good, logs
it, and goes on, and ``service`` keeps answering. The tree is printed before and after, and a
check ends it.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

import anyio

import fearless
from fearless.testing import FakeClock

BACKENDS = ("asyncio", "uvloop", "trio")


@dataclass(frozen=True)
class Result:
    job: int
    worker: int
    digest: str


def backend_args(name: str) -> tuple[str, dict[str, Any]]:
    """anyio.run's backend and options for a backend named on the command line."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise SystemExit("uvloop is not installed: pip install 'fearless[uvloop]'") from None
        return "asyncio", {"loop_factory": uvloop.new_event_loop}
    if name not in BACKENDS:
        raise SystemExit(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name, {}


async def pipeline(items: int, workers: int, out: TextIO, seed: int) -> Counter[int]:
    jobs_tx, jobs_rx = fearless.channel[int](64)
    rng = random.Random(seed)
    worker_ids: dict[object, int] = {}
    done = 0
    started = time.perf_counter()

    async def produce() -> None:
        async with jobs_tx:
            for job in range(items):
                await jobs_tx.send(job)

    async def work(job: int) -> Result:
        worker = worker_ids.setdefault(anyio.get_current_task().id, len(worker_ids) + 1)
        await anyio.sleep(rng.random() / 2000)  # the simulated fetch: up to 0.5 ms of "I/O"
        digest = hashlib.sha256(job.to_bytes(8, "little") * 64).hexdigest()[:12]
        return Result(job, worker, digest)

    async def draw_progress() -> None:
        while True:
            bar(done)
            await anyio.sleep(0.1)

    def bar(n: int) -> None:
        width = 30
        filled = width * n // items if items else width
        rate = n / max(time.perf_counter() - started, 1e-9)
        out.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {n:>6}/{items} jobs"
                  f"  {rate:>9,.0f} jobs/s")  # fmt: skip
        out.flush()

    seen: Counter[int] = Counter()
    per_worker: Counter[int] = Counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        tg.start_soon(draw_progress)
        async with fearless.fan_out(jobs_rx, work, workers=workers) as results:
            async for result in results:
                seen[result.job] += 1
                per_worker[result.worker] += 1
                done += 1
            stats = results.statistics()
        tg.cancel_scope.cancel()  # stop drawing
    bar(done)
    elapsed = time.perf_counter() - started
    out.write("\n\n")
    out.write(f"  {done} jobs in {elapsed:.2f} s ({done / elapsed:,.0f} jobs/s)\n")
    for worker, count in sorted(per_worker.items()):
        out.write(f"  worker {worker}: {count} jobs\n")
    out.write(
        f"  results channel: peak {stats.peak_buffer_used}/{stats.max_buffer_size:g} buffered,"
        f" {stats.total_sent} sent, {stats.total_received} received\n"
    )
    lost = [job for job in range(items) if seen[job] == 0]
    doubled = [job for job, n in seen.items() if n > 1]
    verdict = "every job exactly once" if not lost and not doubled else "MISMATCH"
    out.write(f"  check: {verdict} (lost {len(lost)}, duplicated {len(doubled)})\n")
    return seen


# -- part 2: a bank built from actors ---------------------------------------------------------

ACCOUNTS = ("alice", "bob", "carol", "dave")
OPENING_BALANCE = 100
ACCOUNT_MAILBOX = fearless.Mailbox(8)  # bounded, overflow "block": tell raises when it is full


@dataclass(frozen=True)
class Deposit(fearless.Request[int]):
    """Add ``amount``; an ask gets the new balance (a tell ignores it)."""

    amount: int


@dataclass(frozen=True)
class Withdraw(fearless.Request[bool]):
    """Take ``amount`` out: ``False`` if the balance is short. A negative amount is a bug."""

    amount: int


@dataclass(frozen=True)
class Balance(fearless.Request[int]):
    pass


AccountMessage = Deposit | Withdraw | Balance


class Account(fearless.Actor[AccountMessage]):
    """One account: its balance is plain state, touched only by this actor's task."""

    def __init__(self, balance: int, ledger: dict[str, int]) -> None:
        self.balance = balance
        self.ledger = ledger  # where each account writes its closing balance

    async def handle(self, message: AccountMessage) -> int | bool:
        match message:
            case Deposit(amount):
                self.balance += amount
                return self.balance
            case Withdraw(amount):
                if amount < 0:  # the deliberate bug: the account fails instead of refusing
                    raise ValueError(f"cannot withdraw a negative amount ({amount})")
                if amount > self.balance:
                    return False
                self.balance -= amount
                return True
            case Balance():
                return self.balance

    async def on_stop(self) -> None:
        self.ledger[self.context.name] = self.balance  # runs on a graceful stop and after a failure


@dataclass(frozen=True)
class Transfer(fearless.Request[str]):
    """Move ``amount`` from ``source`` to ``target``; the reply says what happened."""

    source: str
    target: str
    amount: int


class Teller(fearless.Actor[Transfer]):
    """Owns the accounts (its children) and runs transfers one at a time, by asking them."""

    def __init__(self, ledger: dict[str, int]) -> None:
        self.ledger = ledger
        self.accounts: dict[str, fearless.ActorRef[AccountMessage]] = {}
        self.closed: dict[str, str] = {}  # accounts that stopped, and how

    async def on_start(self) -> None:
        for name in ACCOUNTS:
            account = functools.partial(Account, OPENING_BALANCE, self.ledger)
            ref = await self.context.spawn(account, name=name, mailbox=ACCOUNT_MAILBOX)
            self.accounts[name] = ref
            self.context.monitor(ref)  # on_terminated when it stops

    async def handle(self, message: Transfer) -> str:
        for name in (message.source, message.target):
            if name in self.closed:
                return f"refused: {name} is closed ({self.closed[name]})"
        source, target = self.accounts[message.source], self.accounts[message.target]
        if not await source.ask(Withdraw(message.amount)):
            return "refused: insufficient funds"
        await target.ask(Deposit(message.amount))
        return "done"

    async def on_terminated(self, notice: fearless.Terminated) -> None:
        self.closed[notice.name] = notice.reason


class _Collect(logging.Handler):
    """Keeps the records of logger "fearless.actors" while the bank runs.

    A failing actor is logged at ERROR with its traceback; the demo fails one on purpose, so it
    shows that record as one line instead of a traceback in the middle of the output.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _account(system: fearless.ActorSystem, name: str) -> fearless.ActorRef[AccountMessage]:
    ref = system.lookup(name)  # every running actor with a name can be looked up
    if ref is None:
        raise LookupError(f"no running account {name!r}")
    return ref


def _logged(log: _Collect, since: int, out: TextIO) -> int:
    """Write the log records from ``since`` on, one line each (a run of equal ones as one line,
    with a count); return where the next call starts."""
    lines: list[str] = []
    for record in log.records[since:]:
        error_type = record.exc_info[1].__class__.__name__ if record.exc_info else ""
        lines.append(
            f"{record.levelname} {record.name}: {record.getMessage()} "
            f"({error_type}; traceback not shown)"
        )
    i = 0
    while i < len(lines):
        run = 1
        while i + run < len(lines) and lines[i + run] == lines[i]:
            run += 1
        times = f"{run} x " if run > 1 else ""
        out.write(f"        logged: {times}{lines[i]}\n")
        i += run
    return len(log.records)


def _dead_letters(letters: fearless.Subscription[fearless.DeadLetter]) -> list[fearless.DeadLetter]:
    taken: list[fearless.DeadLetter] = []
    while True:
        try:
            taken.append(letters.receive_nowait())
        except anyio.WouldBlock:
            return taken


async def bank(clients: int, transfers: int, out: TextIO, seed: int, log: _Collect) -> bool:
    ledger: dict[str, int] = {}
    opening = OPENING_BALANCE * len(ACCOUNTS)
    replies: Counter[str] = Counter()
    async with fearless.ActorSystem(name="bank") as system:
        with system.dead_letters() as letters:
            teller = await system.spawn(
                functools.partial(Teller, ledger), name="teller", mailbox=fearless.Mailbox(16)
            )
            alice = _account(system, "alice")
            out.write(
                f"  a teller and {len(ACCOUNTS)} accounts of {OPENING_BALANCE} ({opening} in all); "
                f"one actor per account, mailbox {ACCOUNT_MAILBOX.capacity:g} "
                f"{ACCOUNT_MAILBOX.overflow!r}\n"
            )

            # tell never waits: into a full "block" mailbox it raises MailboxFull, and the
            # caller keeps the message. Nothing here awaits, so alice cannot run in between.
            burst, refused = 12, []
            for _ in range(burst):
                try:
                    alice.tell(Deposit(1))
                except fearless.MailboxFull as full:
                    refused.append(full.message)
            stats = alice.mailbox_statistics()
            out.write(
                f"  tell: {burst} deposits of 1 to alice at once: {burst - len(refused)} queued "
                f"(mailbox {stats.depth}/{stats.capacity:g}), {len(refused)} raised MailboxFull\n"
            )
            for message in refused:
                await alice.send(message)  # waits for room: backpressure instead of an error
            out.write(
                f"  send: the {len(refused)} refused ones, with await send (waits for room); "
                f"alice has {await alice.ask(Balance())}\n"
            )

            # The clients' asks interleave as the scheduler decides (trio shuffles it on
            # purpose), so how many transfers find the balance short can vary from run to run;
            # the total, and every balance, are checked at the end.
            async def client(number: int) -> None:
                rng = random.Random(seed * 1000 + number)
                for _ in range(transfers // clients + (number < transfers % clients)):
                    source, target = rng.sample(ACCOUNTS, 2)
                    replies[await teller.ask(Transfer(source, target, rng.randint(1, 60)))] += 1

            async with anyio.create_task_group() as tg:
                for number in range(clients):
                    tg.start_soon(client, number)
            done = replies["done"]
            out.write(
                f"  ask:  {transfers} transfers by {clients} concurrent clients, via the teller: "
                f"{done} done, {transfers - done} refused (insufficient funds)\n"
            )

            dave = _account(system, "dave")
            try:
                await dave.ask(Withdraw(-50))
            except ValueError as error:
                out.write(
                    f"  fail: a buggy client asks dave to withdraw -50: ValueError: {error}\n"
                )
            notice = await dave.wait_stopped()
            _logged(log, 0, out)
            out.write(
                f"        dave {notice.reason} (its on_stop still ran: it kept its balance)\n"
            )
            reply = await teller.ask(Transfer("alice", "dave", 10))
            out.write(f"        the teller monitors dave; a transfer to it now: {reply}\n")
            dave.tell(Deposit(5))  # to a stopped actor: no error (it could always race with
            # the stop), the message goes to dead letters
            out.write("        a deposit of 5 told to dave now goes to dead letters\n")

            out.write("  dead letters:\n")
            dead = len(published := _dead_letters(letters))
            for letter in published:
                why = "" if letter.error is None else f": {letter.error!r}"
                out.write(
                    f"    {letter.message} for {letter.recipient}: {letter.reason.value}{why}\n"
                )
            out.write("  snapshot (dave has stopped, so it is no longer in the tree):\n")
            for line in system.snapshot().render().splitlines():
                out.write(f"    {line}\n")
    # Leaving the system stopped the teller, which stopped its accounts first: every account's
    # on_stop has written its closing balance.
    closing = sum(ledger.values())
    out.write(
        "  closing balances: "
        + ", ".join(f"{n} {ledger[n]}" for n in ACCOUNTS if n in ledger)
        + "\n"
    )
    expected = opening + burst
    conserved = closing == expected and len(ledger) == len(ACCOUNTS)
    accounted = sum(replies.values()) == transfers
    letters_ok = dead == 2 and system.dead_letter_count == 2
    verdict = "money conserved" if conserved and accounted and letters_ok else "MISMATCH"
    out.write(
        f"  check: {verdict} ({opening} + {burst} deposited = {expected}, closing total "
        f"{closing}), {sum(replies.values())}/{transfers} transfers accounted for, "
        f"{dead} dead letters (expected 2)\n"
    )
    return conserved and accounted and letters_ok


# -- part 3: a supervision tree ---------------------------------------------------------------

JOBS = 12
FAIL_EVERY = 4  # the flaky worker fails on jobs 3, 7, 11
STORM = 3  # crashing messages sent to the storm's worker at once: one more than it may restart
SYSTEM_RESTARTS = 3  # the budget the system gives each top-level actor (within 5 s), its own
SOLO = SYSTEM_RESTARTS + 2  # crashing messages sent to solo at once: it fails on all but the
# last, one failure more than its budget, and the last is still queued when it is stopped


@dataclass(frozen=True)
class Job(fearless.Request[str]):
    number: int


class Worker(fearless.Actor[Job]):
    """Does jobs; with ``fail_every``, raises on every ``fail_every``-th one (a flaky
    connection). A negative job is refused with ``ErrorReply``: the asker gets the error, and
    the worker does not fail."""

    def __init__(self, fail_every: int = 0) -> None:
        self.fail_every = fail_every
        self.done = 0  # state: a restart starts again from a new instance, at 0

    async def handle(self, job: Job) -> str | fearless.ErrorReply:
        if job.number < 0:
            return fearless.ErrorReply(ValueError(f"there is no job {job.number}"))
        if self.fail_every and job.number % self.fail_every == self.fail_every - 1:
            raise ConnectionError(f"job {job.number}: connection lost")
        self.done += 1
        return f"job {job.number} done ({self.done} since this instance started)"


class Crasher(fearless.Actor[str]):
    """Crashes on every message: a crash storm."""

    async def handle(self, message: str) -> None:
        raise RuntimeError(f"crashed on {message!r}")


class Subtree(fearless.Supervisor):
    """A supervisor that notes why its own supervisor restarted it (``on_restart`` gets the
    error: here, the ``RestartIntensityExceeded`` it failed with when it gave up)."""

    def __init__(self, children: list[fearless.ChildSpec], notes: list[BaseException]) -> None:
        super().__init__(children, max_restarts=STORM - 1, within=5.0)
        self.notes = notes

    async def on_restart(self, error: BaseException) -> None:
        self.notes.append(error)
        await super().on_restart(error)  # starts its children again


def _service(notes: list[BaseException]) -> fearless.Supervisor:
    workers = fearless.ChildSpec(
        lambda: fearless.Supervisor(
            [
                fearless.ChildSpec(functools.partial(Worker, FAIL_EVERY), name="flaky"),
                fearless.ChildSpec(Worker, name="steady"),
            ]
        ),
        name="workers",
    )
    storm = fearless.ChildSpec(
        lambda: Subtree([fearless.ChildSpec(Crasher, name="crasher")], notes), name="storm"
    )
    return fearless.Supervisor([workers, storm], strategy="one_for_one", max_restarts=3, within=5.0)


def _find(actors: tuple[fearless.ActorSnapshot, ...], name: str) -> fearless.ActorSnapshot:
    for actor in actors:
        if actor.name == name:
            return actor
        try:
            return _find(actor.children, name)
        except LookupError:
            pass
    raise LookupError(name)


def _running(system: fearless.ActorSystem, name: str) -> fearless.ActorRef[Any]:
    ref = system.lookup(name)
    if ref is None:
        raise LookupError(f"no running actor {name!r}")
    return ref


def _tree(system: fearless.ActorSystem, out: TextIO) -> None:
    for line in system.snapshot().render().splitlines():
        out.write(f"    {line}\n")


async def tree(out: TextIO, log: _Collect) -> bool:
    clock = FakeClock()  # time moves only when the demo says: deterministic, and instant
    notes: list[BaseException] = []
    async with fearless.ActorSystem(
        name="tree", clock=clock, max_restarts=SYSTEM_RESTARTS, within=5.0
    ) as system:
        with system.dead_letters() as letters:
            await system.spawn(lambda: _service(notes), name="service")
            solo = await system.spawn(Crasher, name="solo")
            out.write(
                "  service, a supervisor (one_for_one, 3 restarts in 5 s), over workers (flaky,\n"
                f"  steady) and storm (crasher; {STORM - 1} restarts in 5 s); beside it, solo, "
                "a lone top-level actor.\n"
                "  The system gives each top-level actor a restart budget of its own, "
                f"{SYSTEM_RESTARTS} in 5 s\n"
                "  ('/' in the log is the system's guardian, their parent). The clock is a "
                "FakeClock.\n"
                "  before:\n"
            )
            _tree(system, out)

            seen = 0
            flaky = _running(system, "flaky")
            done = failed = 0
            for number in range(JOBS):
                try:
                    await flaky.ask(Job(number))
                    done += 1
                except ConnectionError:
                    failed += 1  # the new instance handles the next job: the mailbox is kept
                await clock.advance(1.0)
            out.write(
                f"  flaky: {JOBS} jobs, one a second: {done} done, {failed} failed "
                "(ConnectionError), restarted after each\n"
            )
            seen = _logged(log, seen, out)
            steady = _running(system, "steady")
            try:
                await steady.ask(Job(-1))
            except ValueError as error:
                out.write(
                    f"  steady refuses job -1 with ErrorReply: the asker gets ValueError: {error}; "
                    "steady does not fail\n"
                )

            crasher = _running(system, "crasher")
            for number in range(STORM):
                crasher.tell(f"boom {number}")
            await crasher.wait_stopped()  # storm gave up: it stopped crasher, then failed
            storm: fearless.ActorRef[Any] = _running(system, "storm")
            # storm keeps its mailbox across the restart: the new instance answers this.
            children = await storm.ask(fearless.WhichChildren())
            out.write(f"  storm: {STORM} messages that each crash crasher, at once\n")
            for note in notes:
                out.write(f"        storm gave up: {type(note).__name__}: {note}\n")
            seen = _logged(log, seen, out)
            new = children[0].ref
            out.write(
                f"        service restarted storm, which started a new {children[0].name}: "
                f"{children[0].state}\n"
            )

            for number in range(SOLO):
                solo.tell(f"crash {number}")
            notice = await solo.wait_stopped()
            out.write(
                f"  solo: {SOLO} messages that each crash it, at once: restarted "
                f"{SYSTEM_RESTARTS} times, then stopped for good ({notice.reason}: "
                f"{type(notice.error).__name__})\n"
            )
            seen = _logged(log, seen, out)
            reply = await steady.ask(Job(JOBS))
            out.write(f"        the system goes on: steady answers {reply!r}\n")

            out.write("  dead letters:\n")
            dead = _dead_letters(letters)
            for letter in dead:
                why = "" if letter.error is None else f": {letter.error!r}"
                out.write(
                    f"    {letter.message!r} for {letter.recipient}: {letter.reason.value}{why}\n"
                )
            out.write("  after (solo has stopped, so it is no longer in the tree):\n")
            _tree(system, out)
            snapshot = system.snapshot().actors
            service_now = _find(snapshot, "service")
            flaky_now = _find(snapshot, "flaky")
            storm_now = _find(snapshot, "storm")
            workers_now = _find(snapshot, "workers")
            solo_gone = system.lookup("solo") is None and [a.name for a in snapshot] == ["service"]
    restarted = flaky_now.restarts == failed == JOBS // FAIL_EVERY and done == JOBS - failed
    escalated = (
        len(notes) == 1
        and isinstance(notes[0], fearless.RestartIntensityExceeded)
        and storm_now.restarts == 1
        and new is not None
        and new is not crasher
        and workers_now.restarts == 0
        and service_now.restarts == 0
    )
    solo_failures = [
        d
        for d in dead
        if d.recipient == "solo" and d.reason is fearless.DeadLetterReason.HANDLER_FAILED
    ]
    contained = (
        notice.reason == "failed"
        and isinstance(notice.error, RuntimeError)
        and len(solo_failures) == SYSTEM_RESTARTS + 1
        and solo_gone
    )
    expected = failed + STORM + SOLO
    letters_ok = len(dead) == expected == system.dead_letter_count
    ok = restarted and escalated and contained and letters_ok
    out.write(
        f"  check: {'tree recovered' if ok else 'MISMATCH'} (flaky restarted {flaky_now.restarts} "
        f"times, storm gave up {'once' if len(notes) == 1 else f'{len(notes)} times'} and "
        f"service restarted it, solo failed {len(solo_failures)} times and was stopped while the "
        f"system went on, workers untouched, {len(dead)} dead letters (expected {expected}))\n"
    )
    return ok


# -- the command line -------------------------------------------------------------------------

PARTS = ("all", "pipeline", "bank", "tree", "cluster")


def run(
    backend: str,
    items: int = 10_000,
    workers: int = 4,
    out: TextIO = sys.stdout,
    seed: int = 1,
    *,
    part: str = "all",
    transfers: int = 100,
    clients: int = 4,
    jobs: int = 300,
) -> bool:
    """Run the demo on ``backend``; True if every check passed."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    name, options = backend_args(backend)
    ok = True
    if part in ("all", "pipeline"):
        out.write(f"fearless demo: {items} jobs, 1 producer -> {workers} workers -> 1 collector, "
                  f"on {backend}\n\n")  # fmt: skip
        seen = anyio.run(pipeline, items, workers, out, seed, backend=name, backend_options=options)
        ok = sorted(seen) == list(range(items)) and set(seen.values()) <= {1}
    actor_parts: tuple[tuple[str, str, Callable[[_Collect], Awaitable[bool]]], ...] = (
        (
            "bank",
            "a bank built from actors",
            functools.partial(bank, clients, transfers, out, seed),
        ),
        ("tree", "a supervision tree", functools.partial(tree, out)),
    )
    for this, title, part_main in actor_parts:
        if part not in ("all", this):
            continue
        if part == "all":
            out.write("\n")
        out.write(f"fearless demo: {title}, on {backend}\n\n")
        logger = logging.getLogger("fearless.actors")
        log, propagate = _Collect(), logger.propagate
        logger.addHandler(log)
        logger.propagate = False
        try:
            passed = anyio.run(part_main, log, backend=name, backend_options=options)
            ok = passed and ok
        finally:
            logger.removeHandler(log)
            logger.propagate = propagate
    if part in ("all", "cluster"):
        from .cluster import cluster

        if part == "all":
            out.write("\n")
        out.write(f"fearless demo: worker processes over NATS, one killed, on {backend}\n\n")
        passed = anyio.run(cluster, jobs, backend, out, backend=name, backend_options=options)
        ok = passed and ok
    return ok


DESCRIPTION = __doc__.split("\n\n")[0].replace("\n", " ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options, on ``parser`` (``fearless demo`` and this module's ``main``)."""
    parser.add_argument(
        "--backend", default="asyncio", choices=BACKENDS, help="event loop (default: asyncio)"
    )
    parser.add_argument(
        "--part", default="all", choices=PARTS, help="which part to run (default: all)"
    )
    parser.add_argument(
        "--items", type=int, default=10_000, metavar="N", help="pipeline jobs (default: 10000)"
    )
    parser.add_argument(
        "--workers", type=int, default=4, metavar="W", help="pipeline workers (default: 4)"
    )
    parser.add_argument(
        "--transfers", type=int, default=100, metavar="T", help="bank transfers (default: 100)"
    )
    parser.add_argument(
        "--jobs", type=int, default=300, metavar="J", help="cluster jobs (default: 300)"
    )


def run_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Check the parsed options (a usage error through ``parser``), run the demo, and return the
    exit status: 0 if every check passed, 1 if not."""
    if args.items < 0 or args.workers < 1 or args.transfers < 0 or args.jobs < 10:
        parser.error(
            f"--items ({args.items}) and --transfers ({args.transfers}) must be >= 0, "
            f"--workers ({args.workers}) >= 1, --jobs ({args.jobs}) >= 10"
        )
    ok = run(
        args.backend,
        args.items,
        args.workers,
        part=args.part,
        transfers=args.transfers,
        jobs=args.jobs,
    )
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fearless demo", description=DESCRIPTION)
    add_arguments(parser)
    return run_from_args(parser, parser.parse_args(argv))
