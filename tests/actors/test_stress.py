"""Stress: many actors telling and asking each other through small bounded mailboxes, under each
overflow policy, while actors are stopped, killed and fail at random.

Relay test: 40 relay actors with mailboxes of capacity 1 to 8 forward uniquely numbered messages
to random other relays for a few hops (``tell``), fed by tasks (``await send`` in randomly
cancelled scopes) and by OS threads (``tell``); a chaos task and a thread stop and kill relays at
random while the traffic flows, and a few messages make their last handler raise. Every id must
end exactly one way: handled once at its last hop (recorded as the handler's last synchronous
step, so a killed handler never recorded it), or exactly one dead letter with a reason the policy
allows, or refused to its teller with ``MailboxFull`` (``"block"`` only), or not sent because its
``send`` was cancelled. Per actor, the mailbox counters must add up with what the handlers and the
dead letters saw.

Ask test: many concurrent asks (tasks and threads) with random timeouts and random cancellation
against echo actors that sometimes raise and are sometimes killed: each ask returns its own reply
(the reply carries the ask's id), or raises what ``ActorRef.ask`` documents, and each outcome
comes with the dead letters it implies (a late reply is ``REPLY_UNDELIVERED``, never another ask's).

The actors here are temporary (a failure ends them, as without a supervisor): restarts have their
own chaos test in ``test_supervision_chaos.py``. Seeds are parametrized
(``FEARLESS_STRESS_SEEDS=3,4,5`` runs others); ``-s`` prints one summary line per run.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from anyio import CancelScope, EndOfStream, WouldBlock

from fearless import (
    Actor,
    ActorRef,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    DeadLetterReason,
    Mailbox,
    MailboxFull,
    MessageDropped,
)
from fearless._actors._mailbox import MailboxStatistics, OverflowPolicy

pytestmark = pytest.mark.anyio

POLICIES: Final[tuple[OverflowPolicy, ...]] = ("block", "drop_newest", "drop_oldest")
SEEDS: Final = tuple(
    int(seed) for seed in os.environ.get("FEARLESS_STRESS_SEEDS", "1,2").split(",")
)
GUARD: Final = 60.0  # seconds: a hang fails the test instead of blocking CI (never a sync point)

R = DeadLetterReason
DROP_REASON: Final[dict[str, set[R]]] = {
    "block": set(),
    "drop_newest": {R.DROPPED_NEWEST},
    "drop_oldest": {R.DROPPED_OLDEST},
}


class Boom(Exception):
    """What a handler raises for a message flagged to fail."""


def drain(subscription: Any) -> list[DeadLetter]:
    """Every dead letter published so far (the subscription must not have lagged)."""
    letters: list[DeadLetter] = []
    while True:
        try:
            letters.append(subscription.receive_nowait())
        except (WouldBlock, EndOfStream):  # the system closes its dead letters as it exits
            return letters


# -- relays ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    id: int
    hops: int  # forwards still to do; 0: this is the last hop
    fail: bool = False  # the last hop's handler raises


class RelayLedger:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # threads record refusals too
        self.handled: Counter[int] = Counter()  # ids handled at their last hop
        self.refused: Counter[int] = Counter()  # ids a tell refused with MailboxFull
        self.not_sent: Counter[int] = Counter()  # ids whose first send was cancelled
        self.started: Counter[str] = Counter()  # handler calls, per actor
        self.completed: Counter[str] = Counter()  # handler calls that returned, per actor
        self.issued = 0

    def refuse(self, ident: int) -> None:
        with self.lock:
            self.refused[ident] += 1


class Relay(Actor[Hop]):
    def __init__(self, ledger: RelayLedger, refs: list[ActorRef[Hop]], rng: random.Random) -> None:
        self.ledger = ledger
        self.refs = refs
        self.rng = rng

    async def handle(self, message: Hop) -> None:
        ledger = self.ledger
        name = self.context.name
        ledger.started[name] += 1
        for _ in range(self.rng.choice((0, 0, 1, 2))):
            await anyio.lowlevel.checkpoint()  # where a kill can land in the middle of a handler
        if message.hops == 0:
            if message.fail:
                raise Boom(message.id)
            ledger.handled[message.id] += 1  # the last synchronous step: nothing after it awaits
        else:
            target = self.rng.choice(self.refs)
            forward = Hop(message.id, message.hops - 1, message.fail)
            try:
                target.tell(forward)
            except MailboxFull as exc:
                refused = exc.message
                ledger.refuse(message.id)
                assert refused is forward  # the caller has its message back
        ledger.completed[name] += 1


RELAYS: Final = 40
TASK_FEEDERS: Final = 4
THREAD_FEEDERS: Final = 3
PER_FEEDER: Final = 400


def _hop(rng: random.Random, ident: int) -> Hop:
    return Hop(ident, rng.randint(0, 4), fail=rng.random() < 0.004)


def drained_mailboxes(
    refs: list[Any], letters: list[DeadLetter]
) -> Iterator[tuple[Any, MailboxStatistics, Counter[R]]]:
    """Each actor's mailbox statistics and its dead letters by reason, after checking what holds
    for every policy: the mailbox is empty, nobody waits for room, it never held more than its
    capacity, and every drop it counted is a dead letter."""
    per_actor: defaultdict[str, Counter[R]] = defaultdict(Counter)
    for letter in letters:
        per_actor[letter.recipient][letter.reason] += 1
    for ref in refs:
        stats = ref.mailbox_statistics()
        seen = per_actor[ref.name]
        assert stats.depth == 0, stats
        assert stats.waiting_senders == 0, stats
        assert stats.peak_depth <= stats.capacity, stats
        assert stats.dropped == seen[R.DROPPED_NEWEST] + seen[R.DROPPED_OLDEST], (ref, stats)
        yield ref, stats, seen


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("policy", POLICIES)
async def test_relays_every_message_handled_once_or_dead_lettered(
    policy: OverflowPolicy, seed: int
) -> None:
    rng = random.Random(seed)
    ledger = RelayLedger()
    refs: list[ActorRef[Hop]] = []
    ids = iter(range(10**9))
    ids_lock = threading.Lock()

    def next_id() -> int:
        with ids_lock:
            ledger.issued += 1
            return next(ids)

    def thread_feeder(me: int) -> None:
        trng = random.Random(seed * 1000 + me)
        for _ in range(PER_FEEDER):
            ident = next_id()
            try:
                trng.choice(refs).tell(_hop(trng, ident))
            except MailboxFull:
                ledger.refuse(ident)
            if me == 0 and trng.random() < 0.01:  # a thread stops and kills actors too
                victim = trng.choice(refs)
                victim.kill() if trng.random() < 0.5 else victim.stop()

    async def task_feeder(me: int) -> None:
        frng = random.Random(seed * 2000 + me)
        for _ in range(PER_FEEDER):
            ident = next_id()
            message = _hop(frng, ident)
            sent = False
            with CancelScope() as scope:
                roll = frng.random()
                if roll < 0.05:
                    scope.cancel()  # cancelled before it starts
                elif roll < 0.2:
                    scope.deadline = anyio.current_time() + frng.choice((0.0, 1e-4, 1e-3))
                await frng.choice(refs).send(message)
                sent = True
            if not sent:
                ledger.not_sent[ident] += 1  # a cancelled send did not enqueue the message

    async def chaos() -> None:
        crng = random.Random(seed * 3000)
        for _ in range(12):
            for _ in range(crng.randint(1, 200)):
                await anyio.lowlevel.checkpoint()
            victim = crng.choice(refs)
            victim.kill() if crng.random() < 0.5 else victim.stop()

    with anyio.fail_after(GUARD), ExitStack() as stack:
        async with ActorSystem(dead_letter_capacity=1 << 16) as system:
            subscription = stack.enter_context(system.dead_letters())
            for i in range(RELAYS):
                mailbox = Mailbox(rng.randint(1, 8), overflow=policy)
                ref = await system.spawn(
                    lambda: Relay(ledger, refs, rng),
                    name=f"relay-{i}",
                    mailbox=mailbox,
                    restart="temporary",  # a failure ends it (supervision has its own chaos test)
                )
                refs.append(ref)
            async with anyio.create_task_group() as tg:
                for me in range(TASK_FEEDERS):
                    tg.start_soon(task_feeder, me)
                for me in range(THREAD_FEEDERS):
                    tg.start_soon(anyio.to_thread.run_sync, thread_feeder, me)
                tg.start_soon(chaos)
            # Survivors' counters, before the system stops them (stopped actors are not in it).
            survivors = {actor.name: actor for actor in system.snapshot().actors}
            completed_then = Counter(ledger.completed)
        # The system has exited: every actor stopped, every message settled.
        letters = drain(subscription)

    assert all(not ref.is_alive for ref in refs)
    by_id: defaultdict[int, list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        assert isinstance(letter.message, Hop), letter
        by_id[letter.message.id].append(letter)

    allowed = {R.ACTOR_STOPPED, R.KILLED, R.HANDLER_FAILED} | DROP_REASON[policy]
    outcomes: Counter[str] = Counter()
    for ident in range(ledger.issued):
        dead = by_id.get(ident, [])
        ways = ledger.handled[ident] + len(dead) + ledger.refused[ident] + ledger.not_sent[ident]
        assert ways == 1, (ident, ledger.handled[ident], dead, ledger.refused[ident])
        if dead:
            (letter,) = dead
            assert letter.reason in allowed, letter
            if letter.reason is R.HANDLER_FAILED:
                assert isinstance(letter.error, Boom)
                assert letter.message.fail
                assert letter.message.hops == 0
            elif letter.reason is R.KILLED:
                assert letter.error is None
            outcomes[letter.reason.name] += 1
        elif ledger.handled[ident]:
            outcomes["handled"] += 1
        elif ledger.refused[ident]:
            assert policy == "block", ident  # MailboxFull only under "block"
            outcomes["refused"] += 1
        else:
            outcomes["send_cancelled"] += 1
    assert sum(outcomes.values()) == ledger.issued == (TASK_FEEDERS + THREAD_FEEDERS) * PER_FEEDER
    assert set(by_id) <= set(range(ledger.issued))

    # Per actor, the mailbox counters add up with what the handlers and dead letters saw.
    for ref, stats, seen in drained_mailboxes(refs, letters):
        # Each message that entered was taken by a handler, evicted, or still queued at the end.
        # An ACTOR_STOPPED letter is one of those still queued, or one the closed mailbox turned
        # away (``refused``: sent after the close, or a ``send`` parked for room that it released).
        left_at_close = stats.total_enqueued - ledger.started[ref.name] - seen[R.DROPPED_OLDEST]
        assert left_at_close >= 0, (ref, stats, seen, ledger.started[ref.name])
        assert seen[R.ACTOR_STOPPED] == stats.refused + left_at_close, (ref, stats, seen)
        # A handler that started either returned, raised, or was killed.
        assert ledger.started[ref.name] == (
            ledger.completed[ref.name] + seen[R.HANDLER_FAILED] + seen[R.KILLED]
        ), (ref, seen)
    for name, actor in survivors.items():
        assert actor.handled == completed_then[name], (actor, completed_then[name])
        assert actor.failures == 0, actor
    notices = [await ref.wait_stopped() for ref in refs]
    reasons = Counter(notice.reason for notice in notices)
    assert reasons["failed"] == outcomes[R.HANDLER_FAILED.name]
    print(
        f"\nrelays policy={policy} seed={seed}: "
        + " ".join(f"{key}={value}" for key, value in sorted(outcomes.items()))
        + f" exits={dict(sorted(reasons.items()))}"
    )


# -- asks -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Question:
    id: int
    fail: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    id: int


class AskLedger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcome: dict[int, str] = {}
        self.started: Counter[str] = Counter()  # handler calls, per actor
        self.started_ids: Counter[int] = Counter()
        self.issued = 0

    def record(self, ident: int, outcome: str) -> None:
        with self.lock:
            assert ident not in self.outcome, (ident, outcome)
            self.outcome[ident] = outcome


class Echo(Actor[Question]):
    def __init__(self, ledger: AskLedger, rng: random.Random) -> None:
        self.ledger = ledger
        self.rng = rng

    async def handle(self, message: Question) -> Answer:
        self.ledger.started[self.context.name] += 1
        self.ledger.started_ids[message.id] += 1
        for _ in range(self.rng.choice((0, 0, 1, 3))):
            await anyio.lowlevel.checkpoint()
        if message.fail:
            raise Boom(message.id)
        return Answer(message.id)


ECHOES: Final = 16
ASKERS: Final = 8
THREAD_ASKERS: Final = 2
ASKS_PER_ASKER: Final = 200


ASK_ERRORS: Final = (TimeoutError, ActorStopped, Boom, MessageDropped)


def outcome_of(ident: int, error: Exception) -> str:
    """Name what an ask raised; the handler's exception or the dropped message must be its own."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ActorStopped):
        return "stopped"
    if isinstance(error, Boom):
        assert error.args == (ident,), error
        return "raised"
    assert isinstance(error, MessageDropped), error
    assert isinstance(error.message, Question), error
    assert error.message.id == ident, error
    return "dropped"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("policy", POLICIES)
async def test_asks_get_their_own_reply_or_a_legitimate_error(
    policy: OverflowPolicy, seed: int
) -> None:
    rng = random.Random(seed)
    ledger = AskLedger()
    refs: list[ActorRef[Question]] = []
    chaos_scopes: list[CancelScope] = []
    ids_lock = threading.Lock()

    def next_id() -> int:
        with ids_lock:
            ident = ledger.issued
            ledger.issued += 1
            return ident

    def question(r: random.Random, ident: int) -> Question:
        return Question(ident, fail=r.random() < 0.003)

    async def asker(me: int) -> None:
        arng = random.Random(seed * 5000 + me)
        for _ in range(ASKS_PER_ASKER):
            ident = next_id()
            ref = arng.choice(refs)
            timeout = arng.choice((None, None, None, 0.0, 1e-4, 1e-3, 0.05))
            message = question(arng, ident)
            outcome = "cancelled"
            with CancelScope() as scope:
                roll = arng.random()
                if roll < 0.05:
                    scope.cancel()
                elif roll < 0.25:
                    chaos_scopes.append(scope)
                try:
                    answer = await ref.ask(message, timeout=timeout)
                except ASK_ERRORS as exc:
                    outcome = outcome_of(ident, exc)
                else:
                    assert answer == Answer(ident), (ident, answer)  # never another ask's reply
                    outcome = "returned"
            ledger.record(ident, outcome)

    def thread_asker(me: int) -> None:
        trng = random.Random(seed * 6000 + me)
        for _ in range(ASKS_PER_ASKER):
            ident = next_id()
            ref = trng.choice(refs)
            timeout = trng.choice((None, None, 0.0, 1e-4, 1e-3, 0.05))
            message = question(trng, ident)
            try:
                answer = ref.ask_blocking(message, timeout=timeout)
            except ASK_ERRORS as exc:
                ledger.record(ident, outcome_of(ident, exc))
            else:
                assert answer == Answer(ident), (ident, answer)  # never another ask's reply
                ledger.record(ident, "returned")

    async def chaos() -> None:
        crng = random.Random(seed * 7000)
        kills = 0
        for step in range(400):
            for _ in range(crng.randint(1, 20)):
                await anyio.lowlevel.checkpoint()
            if chaos_scopes:
                chaos_scopes.pop(crng.randrange(len(chaos_scopes))).cancel()
            if step % 25 == 24 and kills < 6:
                kills += 1
                victim = crng.choice(refs)
                victim.kill() if crng.random() < 0.7 else victim.stop()

    with anyio.fail_after(GUARD), ExitStack() as stack:
        async with ActorSystem(dead_letter_capacity=1 << 16) as system:
            subscription = stack.enter_context(system.dead_letters())
            for i in range(ECHOES):
                mailbox = Mailbox(rng.randint(1, 4), overflow=policy)
                ref = await system.spawn(
                    lambda: Echo(ledger, rng),
                    name=f"echo-{i}",
                    mailbox=mailbox,
                    restart="temporary",  # a failure ends it (supervision has its own chaos test)
                )
                refs.append(ref)
            async with anyio.create_task_group() as outer:
                outer.start_soon(chaos)
                async with anyio.create_task_group() as tg:
                    for me in range(ASKERS):
                        tg.start_soon(asker, me)
                    for me in range(THREAD_ASKERS):
                        tg.start_soon(anyio.to_thread.run_sync, thread_asker, me)
                outer.cancel_scope.cancel()  # the askers are done: so is the chaos
        letters = drain(subscription)

    by_id: defaultdict[int, list[DeadLetter]] = defaultdict(list)
    for letter in letters:
        message = letter.message
        if letter.reason is R.REPLY_UNDELIVERED:
            assert isinstance(message, Answer), letter
        else:
            assert isinstance(message, Question), letter
        by_id[message.id].append(letter)

    late_ok = {R.REPLY_UNDELIVERED, R.HANDLER_FAILED, R.KILLED, R.ACTOR_STOPPED}
    late_ok |= {R.DROPPED_OLDEST} & DROP_REASON[policy]
    assert len(ledger.outcome) == ledger.issued == (ASKERS + THREAD_ASKERS) * ASKS_PER_ASKER
    for ident in range(ledger.issued):
        outcome = ledger.outcome[ident]
        reasons = [letter.reason for letter in by_id.get(ident, [])]
        handled = ledger.started_ids[ident]
        assert handled <= 1, (ident, handled)  # never handled twice
        if outcome == "returned":
            assert reasons == [], (ident, reasons)
            assert handled == 1, ident
        elif outcome == "raised":
            assert reasons == [R.HANDLER_FAILED], (ident, reasons)
            assert handled == 1, ident
        elif outcome == "dropped":
            assert policy != "block", ident
            assert len(reasons) == 1, (ident, reasons)
            assert reasons[0] in DROP_REASON[policy], (ident, reasons)
            assert handled == 0, ident
        elif outcome == "stopped":
            # Not enqueued (no dead letter), still queued at the stop, or killed mid-handler.
            assert reasons in ([], [R.ACTOR_STOPPED], [R.KILLED]), (ident, reasons)
            assert handled == (reasons == [R.KILLED]), (ident, reasons, handled)
        else:  # timeout, cancelled: not enqueued, or its fate is in dead letters
            assert outcome in ("timeout", "cancelled"), outcome
            assert len(reasons) <= 1, (ident, reasons)
            assert set(reasons) <= late_ok, (ident, reasons)
            if handled:  # its handler ran: its reply, its failure or its kill is a dead letter
                assert reasons in ([R.REPLY_UNDELIVERED], [R.HANDLER_FAILED], [R.KILLED]), (
                    ident,
                    reasons,
                )
            else:
                assert R.REPLY_UNDELIVERED not in reasons, (ident, reasons)

    for ref, stats, seen in drained_mailboxes(refs, letters):
        # An ask refused by a closed mailbox raises ActorStopped without a dead letter, so every
        # ACTOR_STOPPED letter here is a message still queued when the actor stopped.
        assert stats.total_enqueued == (
            ledger.started[ref.name] + seen[R.DROPPED_OLDEST] + seen[R.ACTOR_STOPPED]
        ), (ref, stats, seen, ledger.started[ref.name])

    counts = Counter(ledger.outcome.values())
    dead = Counter(letter.reason.name for letter in letters)
    print(
        f"\nasks policy={policy} seed={seed}: "
        + " ".join(f"{key}={value}" for key, value in sorted(counts.items()))
        + " | dead letters: "
        + " ".join(f"{key}={value}" for key, value in sorted(dead.items()))
    )
