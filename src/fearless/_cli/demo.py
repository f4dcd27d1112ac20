"""The demo, in two parts: a pipeline of tasks and channels, then a bank built from actors.

    python -m fearless demo [--backend asyncio|uvloop|trio] [--part all|pipeline|bank]
                            [--items N] [--workers W] [--transfers T]

The pipeline: a producer sends jobs into a bounded channel; ``fan_out`` runs the workers over it,
each "fetching" a job (a short, random, simulated I/O wait) and hashing it; the collector gathers
the results, drawing progress while it runs and a summary at the end: how many jobs each worker
did, the channel's statistics, and a check that every job came back exactly once.

The bank: a teller actor with four account actors as its children (one actor per account, each
with a bounded ``"block"`` mailbox). It shows ``tell`` into a full mailbox (``MailboxFull``) and
``send`` waiting for room, concurrent clients transferring money with typed asks, a failing
message (a buggy withdrawal) in dead letters with its reason, death watch (the teller monitors its
accounts), and ``system.snapshot()``. It ends with a check: no money was created or lost, every
transfer is accounted for, and exactly the expected dead letters were published.
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
from dataclasses import dataclass
from typing import Any, TextIO

import anyio

import fearless

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
        self.ledger[self.name] = self.balance  # runs on a graceful stop and after a failure


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
            ref = await self.spawn(account, name=name, mailbox=ACCOUNT_MAILBOX)
            self.accounts[name] = ref
            self.monitor(ref)  # on_terminated when it stops

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
            for record in log.records:
                error_type = record.exc_info[1].__class__.__name__ if record.exc_info else ""
                out.write(
                    f"        logged: {record.levelname} {record.name}: {record.getMessage()} "
                    f"({error_type}; traceback not shown)\n"
                )
            out.write(
                f"        dave {notice.reason} (its on_stop still ran: it kept its balance)\n"
            )
            reply = await teller.ask(Transfer("alice", "dave", 10))
            out.write(f"        the teller monitors dave; a transfer to it now: {reply}\n")
            dave.tell(Deposit(5))  # to a stopped actor: no error (it could always race with
            # the stop), the message goes to dead letters
            out.write("        a deposit of 5 told to dave now goes to dead letters\n")

            out.write("  dead letters:\n")
            dead = 0
            while True:
                try:
                    letter = letters.receive_nowait()
                except anyio.WouldBlock:
                    break
                dead += 1
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


# -- the command line -------------------------------------------------------------------------

PARTS = ("all", "pipeline", "bank")


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
    if part in ("all", "bank"):
        if part == "all":
            out.write("\n")
        out.write(f"fearless demo: a bank built from actors, on {backend}\n\n")
        logger = logging.getLogger("fearless.actors")
        log, propagate = _Collect(), logger.propagate
        logger.addHandler(log)
        logger.propagate = False
        try:
            args = (clients, transfers, out, seed, log)
            ok = anyio.run(bank, *args, backend=name, backend_options=options) and ok
        finally:
            logger.removeHandler(log)
            logger.propagate = propagate
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fearless demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="asyncio", choices=BACKENDS)
    parser.add_argument("--part", default="all", choices=PARTS)
    parser.add_argument("--items", type=int, default=10_000, help="pipeline jobs")
    parser.add_argument("--workers", type=int, default=4, help="pipeline workers")
    parser.add_argument("--transfers", type=int, default=100, help="bank transfers")
    args = parser.parse_args(argv)
    if args.items < 0 or args.workers < 1 or args.transfers < 0:
        parser.error("--items and --transfers must be >= 0, --workers >= 1")
    ok = run(args.backend, args.items, args.workers, part=args.part, transfers=args.transfers)
    return 0 if ok else 1
