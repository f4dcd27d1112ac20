"""Restart backoff: the delay stays finite at any attempt count, a supervisor keeps retrying at
the cap however long a child keeps failing, and what happens to a child stopped, killed or
link-failed while it waits out its delay (``docs/design/supervision.md``, cases 19, 25 and 35).

Time is a ``FakeClock``: every restart is asserted at its exact clock time, and
``clock.advance`` is the only way anything waits.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import anyio
import pytest

from fearless import (
    Actor,
    ActorSystem,
    Backoff,
    ChildSpec,
    Supervisor,
)
from fearless.testing import FakeClock

from .support import lookup, states

pytestmark = pytest.mark.anyio


class Boom(Actor[Any]):
    """Raises on "boom"; links to the actor named in "link:x"; echoes anything else."""

    async def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError(f"{self.context.name}: boom")
        if isinstance(message, str) and message.startswith("link:"):
            target = self.context.system.lookup(message[5:])
            assert target is not None
            self.context.link(target)
        return message


# -- the delay -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backoff",
    [
        Backoff(0.1, 10.0),
        Backoff(0.001, 3600.0, jitter=1.0),
        Backoff(5.0, 5.0, jitter=0.0),
        Backoff(1e-300, 1e300, jitter=0.5),
    ],
    ids=["0.1-10", "1ms-1h-full-jitter", "flat", "extreme-range"],
)
def test_a_backoff_delay_is_finite_and_at_most_the_cap_for_any_attempt(backoff: Backoff) -> None:
    """``Backoff.delay(n)`` is finite and at most ``max_backoff * (1 + jitter)`` for every
    attempt from 0 to 2000 (past 1024, where ``2.0 ** n`` overflows a float) and for 10**6; it
    never falls below ``min_backoff``, and once the doubling has reached the cap it stays there
    (case 35)."""
    cap = backoff.max_backoff * (1 + backoff.jitter)
    rng = random.Random(1)
    for attempt in [*range(2001), 10**6]:
        delay = backoff.delay(attempt, rng)
        assert math.isfinite(delay), attempt
        assert backoff.min_backoff <= delay <= cap, (attempt, delay)
    flat = Backoff(backoff.min_backoff, backoff.max_backoff, jitter=0.0)
    assert flat.delay(2000, rng) == flat.delay(10**6, rng) == backoff.max_backoff


def test_a_backoff_delay_doubles_exactly_until_the_cap() -> None:
    """Without jitter the delays are exactly ``min_backoff * 2**n`` until the cap (case 25's
    series), computed without overflow: the comparison with the cap comes first."""
    backoff = Backoff(0.1, 1.0, jitter=0.0)
    rng = random.Random(0)
    assert [backoff.delay(n, rng) for n in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="-1"):
        backoff.delay(-1, rng)


async def test_a_child_failing_more_than_1024_times_is_retried_at_the_cap_forever() -> None:
    """A child whose every restart fails, under a backoff from 1 s to 2 s and an intensity that
    never gives up: its supervisor retries it 1100 times, each retry exactly 2 s after the
    previous one once the cap is reached, past the 1024th attempt (where a delay computed as
    ``2.0 ** n`` overflowed and killed the supervisor); the supervisor keeps running throughout,
    and the child comes up as soon as its factory works again."""
    clock = FakeClock()
    attempts: list[float] = []  # the clock time of every call of the child's factory
    broken = [False]

    def factory() -> Boom:
        attempts.append(clock.now())
        if broken[0]:
            raise OSError("the database is down")
        return Boom()

    retries = 1100
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(factory, name="w", backoff=Backoff(1.0, 2.0, jitter=0.0))],
                max_restarts=10**9,
                within=1.0,
            ),
            name="sup",
        )
        broken[0] = True
        lookup(system, "w").tell("boom")  # at t = 0; the restart is due at t = 1, then every 2 s
        await clock.advance(1.0 + 2.0 * (retries - 1))
        assert len(attempts) == 1 + retries  # the first start, then every retry, on time
        assert attempts[1] == 1.0
        gaps = {later - earlier for earlier, later in itertools.pairwise(attempts[1:])}
        assert gaps == {2.0}
        assert sup.is_alive
        assert await states(sup) == [("w", "restarting")]

        broken[0] = False  # the next retry, at the cap, succeeds
        await clock.advance(2.0)
        assert len(attempts) == 2 + retries
        assert await states(sup) == [("w", "running")]
        assert await lookup(system, "w").ask("ping") == "ping"


# -- while a child waits out its delay -------------------------------------------------------------


async def test_a_kill_by_hand_during_a_backoff_ends_the_child_at_once() -> None:
    """A child killed by hand while it waits out a 30 s backoff ends at once (reason
    ``"killed"``, its name free, ``"ended"`` in ``WhichChildren``), and its restart, due later,
    never happens (case 19)."""
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        sup = await system.spawn(
            lambda: Supervisor(
                [ChildSpec(Boom, name="w", backoff=Backoff(30.0, 60.0, jitter=0.0))]
            ),
            name="sup",
        )
        w = lookup(system, "w")
        w.tell("boom")
        await clock.advance(0)
        assert await states(sup) == [("w", "restarting")]
        w.kill()
        await clock.advance(0)
        assert not w.is_alive
        assert system.lookup("w") is None
        assert (await w.wait_stopped()).reason == "killed"
        assert await states(sup) == [("w", "ended")]
        await clock.advance(60)  # the cancelled restart never happens
        assert await states(sup) == [("w", "ended")]


async def test_a_link_failure_between_instances_does_not_poison_the_next() -> None:
    """A linked actor that fails while a child waits out its backoff does not fail the child's
    next instance: the child is restarted on time and healthy, and a later kill ends it as a
    plain kill (reason ``"killed"``, no error left over from the link)."""
    clock = FakeClock()
    async with ActorSystem(clock=clock) as system:
        await system.spawn(
            lambda: Supervisor([ChildSpec(Boom, name="w", backoff=Backoff(1.0, 1.0, jitter=0))]),
            name="sup",
        )
        x = await system.spawn(Boom, name="x", restart="temporary")
        w = lookup(system, "w")
        await w.ask("link:x")
        w.tell("boom")
        await clock.advance(0)  # w waits 1 s for its restart
        x.tell("boom")  # the link fires while w is between instances
        await clock.advance(1.0)
        assert w.is_alive  # restarted, healthy
        assert await w.ask("ping") == "ping"
        w.kill()
        with anyio.fail_after(5):
            notice = await w.wait_stopped()
        assert (notice.reason, notice.error) == ("killed", None)
