"""Mailboxes: capacity, the three overflow policies, backpressure, system messages that never
wait, and cancellation. Every test runs on asyncio, uvloop and trio."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

import fearless
from fearless import (
    Actor,
    ActorSystem,
    DeadLetter,
    DeadLetterReason,
    Mailbox,
    MailboxFull,
    MessageDropped,
)
from fearless.testing import wait_all_tasks_blocked

pytestmark = pytest.mark.anyio


class Gated(Actor[Any]):
    """Waits on any event it is told; records every other message."""

    def __init__(self, handled: list[Any]) -> None:
        self.handled = handled

    async def handle(self, message: Any) -> Any:
        if isinstance(message, anyio.Event):
            await message.wait()
            return None
        self.handled.append(message)
        return message


def drain(letters: fearless.Subscription[DeadLetter]) -> list[tuple[Any, DeadLetterReason]]:
    out: list[tuple[Any, DeadLetterReason]] = []
    while True:
        try:
            letter = letters.receive_nowait()
        except anyio.WouldBlock:
            return out
        out.append((letter.message, letter.reason))


async def busy_actor(
    system: ActorSystem, mailbox: Mailbox, handled: list[Any]
) -> tuple[fearless.ActorRef[Any], anyio.Event]:
    """An actor stuck in its handler until the returned event is set: its mailbox only fills."""
    ref = await system.spawn(lambda: Gated(handled), mailbox=mailbox, name="busy")
    gate = anyio.Event()
    ref.tell(gate)
    await wait_all_tasks_blocked()
    return ref, gate


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "3", True, None, math.nan, -math.inf])
def test_a_bad_capacity_is_refused_naming_the_value(capacity: Any) -> None:
    with pytest.raises(ValueError, match="capacity") as caught:
        Mailbox(capacity)
    assert repr(capacity) in str(caught.value)


def test_a_bad_policy_is_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match="'drop_all'"):
        Mailbox(4, overflow="drop_all")  # type: ignore[arg-type]


def test_the_default_mailbox_is_bounded_and_blocks() -> None:
    assert Mailbox() == Mailbox(1000, "block")
    assert Mailbox(math.inf).capacity == math.inf


async def test_block_tell_raises_mailbox_full_with_the_message_and_loses_nothing() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref, gate = await busy_actor(system, Mailbox(2), handled)
        ref.tell(1)
        ref.tell(2)
        with pytest.raises(MailboxFull, match="'busy'") as caught:
            ref.tell(3)
        assert caught.value.message == 3
        assert isinstance(caught.value, anyio.WouldBlock)
        gate.set()
        ref.stop()
        await ref.wait_stopped()
        assert handled == [1, 2]
        assert drain(letters) == []  # the caller had it back: not a dead letter
        letters.close()


async def test_block_send_waits_for_room_first_come_first_served() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        ref, gate = await busy_actor(system, Mailbox(1), handled)
        ref.tell("queued")
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(ref.send, f"waiting {i}")
                await wait_all_tasks_blocked()  # park them in a known order
            assert ref.mailbox_statistics().waiting_senders == 5
            with pytest.raises(MailboxFull):
                ref.tell("late tell")  # never overtakes the parked senders
            gate.set()
        await ref.ask("last")
    assert handled == ["queued", *(f"waiting {i}" for i in range(5)), "last"]


async def test_a_cancelled_send_did_not_enqueue_and_hands_its_slot_on() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        ref, gate = await busy_actor(system, Mailbox(1), handled)
        ref.tell("queued")
        scope = anyio.CancelScope()

        async def cancelled_send() -> None:
            with scope:
                await ref.send("cancelled")

        async with anyio.create_task_group() as tg:
            tg.start_soon(ref.send, "first")
            await wait_all_tasks_blocked()
            tg.start_soon(cancelled_send)
            await wait_all_tasks_blocked()
            tg.start_soon(ref.send, "third")
            await wait_all_tasks_blocked()
            scope.cancel()
            await wait_all_tasks_blocked()
            assert ref.mailbox_statistics().waiting_senders == 2
            gate.set()
        await ref.ask("last")
    assert handled == ["queued", "first", "third", "last"]


async def test_a_send_cancelled_after_its_slot_was_reserved_passes_the_slot_on() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        ref, gate = await busy_actor(system, Mailbox(1), handled)
        ref.tell("queued")
        scopes: list[anyio.CancelScope] = []

        async def send(message: str) -> None:
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                await ref.send(message)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send, "a")
            await wait_all_tasks_blocked()
            tg.start_soon(send, "b")
            await wait_all_tasks_blocked()
            gate.set()  # "queued" is handled: a slot is reserved for "a" ...
            scopes[0].cancel()  # ... which is cancelled in the same step, before it runs
        await ref.ask("last")
    # "a" may have gone in before the cancel landed (the operation then stands); either way
    # nothing is lost, nothing duplicated, and "b" got a slot.
    assert handled in (["queued", "b", "last"], ["queued", "a", "b", "last"])


async def test_drop_newest_sends_the_new_message_to_dead_letters() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref, gate = await busy_actor(system, Mailbox(2, overflow="drop_newest"), handled)
        for i in range(5):
            ref.tell(i)  # never raises
        await ref.send(5)  # never waits
        assert drain(letters) == [(i, DeadLetterReason.DROPPED_NEWEST) for i in (2, 3, 4, 5)]
        with pytest.raises(MessageDropped) as caught:
            await ref.ask("asked")
        assert caught.value.message == "asked"
        assert drain(letters) == [("asked", DeadLetterReason.DROPPED_NEWEST)]
        gate.set()
        await wait_all_tasks_blocked()  # the actor drains its mailbox
        await ref.ask("last")
        assert handled == [0, 1, "last"]
        assert ref.mailbox_statistics().dropped == 5
        letters.close()


async def test_drop_oldest_evicts_the_oldest_message() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref, gate = await busy_actor(system, Mailbox(2, overflow="drop_oldest"), handled)
        results: list[Any] = []

        async def ask() -> None:
            try:
                results.append(await ref.ask("evicted ask"))
            except MessageDropped as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await wait_all_tasks_blocked()
            for i in range(4):
                ref.tell(i)
        assert len(results) == 1
        assert isinstance(results[0], MessageDropped)
        assert drain(letters) == [
            ("evicted ask", DeadLetterReason.DROPPED_OLDEST),
            (0, DeadLetterReason.DROPPED_OLDEST),
            (1, DeadLetterReason.DROPPED_OLDEST),
        ]
        gate.set()
        await ref.ask("last")  # evicts 2: the mailbox holds [2, 3] when it arrives
        assert handled == [3, "last"]
        letters.close()


@pytest.mark.parametrize("overflow", ["drop_newest", "drop_oldest"])
async def test_message_dropped_names_the_policy_the_same_way_on_both_paths(overflow: Any) -> None:
    """An ask dropped by the policy raises ``MessageDropped`` naming the policy, whether it was
    the new message refused (``drop_newest``) or a queued one evicted (``drop_oldest``)."""

    class Stuck(Actor[Any]):
        async def handle(self, message: Any) -> None:
            if isinstance(message, anyio.Event):
                await message.wait()

    async with ActorSystem() as system:
        gate = anyio.Event()
        ref = await system.spawn(Stuck, mailbox=Mailbox(1, overflow=overflow))
        ref.tell(gate)
        await wait_all_tasks_blocked()
        errors: list[MessageDropped] = []

        async def ask(message: str) -> None:
            try:
                await ref.ask(message)
            except MessageDropped as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "first")
            await wait_all_tasks_blocked()
            tg.start_soon(ask, "second")
            await wait_all_tasks_blocked()
            gate.set()
        [error] = errors
        assert f"({overflow})" in str(error)
        assert error.message == ("second" if overflow == "drop_newest" else "first")


@pytest.mark.parametrize("overflow", ["block", "drop_newest", "drop_oldest"])
async def test_a_stop_never_waits_behind_a_full_mailbox(overflow: Any) -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref, gate = await busy_actor(system, Mailbox(3, overflow=overflow), handled)
        for i in range(3):
            ref.tell(i)
        ref.stop()  # joins the back of the full mailbox, beyond its capacity
        assert ref.mailbox_statistics().depth == 3
        if overflow == "drop_oldest":
            ref.tell(3)  # evicts 0, never the stop message
        gate.set()
        notice = await ref.wait_stopped()
        assert notice.reason == "stopped"
        expected = [1, 2] if overflow == "drop_oldest" else [0, 1, 2]
        assert handled == expected
        late = drain(letters)
        if overflow == "drop_oldest":
            assert late == [
                (0, DeadLetterReason.DROPPED_OLDEST),
                (3, DeadLetterReason.ACTOR_STOPPED),
            ]
        else:
            assert late == []
        letters.close()


async def test_closing_releases_parked_senders_into_dead_letters() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        letters = system.dead_letters()
        ref, _gate = await busy_actor(system, Mailbox(1), handled)
        ref.tell("queued")
        outcomes: list[Any] = []

        async def ask() -> None:
            try:
                outcomes.append(await ref.ask("parked ask"))
            except fearless.ActorStopped as exc:
                outcomes.append(type(exc))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ref.send, "parked send")
            tg.start_soon(ask)
            await wait_all_tasks_blocked()
            ref.kill()
        assert outcomes == [fearless.ActorStopped]  # never enqueued: raised, no dead letter
        expected = [
            (_gate, DeadLetterReason.KILLED),
            ("queued", DeadLetterReason.ACTOR_STOPPED),
            ("parked send", DeadLetterReason.ACTOR_STOPPED),
        ]
        assert sorted(drain(letters), key=repr) == sorted(expected, key=repr)
        letters.close()


async def test_mailbox_statistics() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        ref, gate = await busy_actor(system, Mailbox(3, overflow="drop_newest"), handled)
        for i in range(5):
            ref.tell(i)
        stats = ref.mailbox_statistics()
        assert (stats.depth, stats.capacity, stats.overflow) == (3, 3, "drop_newest")
        assert (stats.peak_depth, stats.total_enqueued, stats.dropped, stats.refused) == (
            3,
            4,
            2,
            0,
        )
        assert stats.waiting_senders == 0
        gate.set()
        ref.stop()
        await ref.wait_stopped()
        ref.tell("late")
        assert ref.mailbox_statistics().refused == 1


async def test_an_unbounded_mailbox_never_refuses() -> None:
    handled: list[Any] = []
    async with ActorSystem() as system:
        ref, gate = await busy_actor(system, Mailbox(math.inf), handled)
        for i in range(10_000):
            ref.tell(i)
        gate.set()
        await ref.ask("last")
    assert handled == [*range(10_000), "last"]
