"""``nats`` (remote actors, issue 16): an actor published with ``fearless.nats`` against raw
nats-py doing the same thing, on the embedded server of ``benchmarks/nats.py``.

Only the public API is used: ``node.publish(ref, name, Msg)``, ``node.actor(name, Msg)`` and the
``RemoteRef``'s ``tell`` / ``send`` / ``ask``. Both sides encode the same msgspec structs (below)
as JSON; fearless puts the message's kind and class in its subject (no headers), gives each
tell a reply subject of its own (its way back if it cannot be delivered), and wraps an ask's
answer as ``{"ok": value}``. The tables are made and shown as the other
``nats`` tables are (:class:`benchmarks.nats.NatsWorkload`): fearless on asyncio, uvloop and trio,
raw nats-py on asyncio and uvloop, its asyncio row shown again on trio as the reference.

``nats-ask``           sequential asks, one process: ``RemoteRef.ask(Ping(i))`` to a published
                       echo actor (it returns ``i``; ``Ping`` is a ``Request[int]``) against
                       ``nc.request`` to a subscription callback that decodes the ``Ping`` and
                       answers ``i``, on the same connection
``nats-tell``          ``n`` tells to a published actor that records them (``Mailbox(inf)``),
                       timed until the actor has handled them all (an ``End`` sent after them,
                       with ``send``, sets an event when handled), against ``n`` ``nc.publish``
                       to a subscription callback recording them, timed until all are recorded
                       (and again with a reply subject per message, as fearless's tells carry);
                       then, as a note, what becomes of 20,000 tells sent as fast as possible to
                       the default ``Mailbox(1000)``: handled, came back (dead letters), or
                       refused at once (``MailboxFull``)
``nats-ask-process``   sequential asks across processes: the echo actor (and the raw responder)
                       in a process of their own (``python -m benchmarks.nats_host``, on
                       asyncio), started once for the table
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec

import fearless

from . import nats
from .harness import ASYNCIO, TRIO, UVLOOP, Delivery, Settings, Target
from .nats import NatsBench, NatsBody, NatsWorkload, _sides, fresh

__all__ = ["TABLES", "WORKLOAD"]


ROOT = Path(__file__).resolve().parents[1]
HOST_SYSTEM = fresh("host")
"""The system (and the raw subject's prefix) the across-processes host serves under."""
DROP_PROBE = 20_000
"""Tells sent to the default ``Mailbox(1000)`` for the ``nats-tell`` note."""
END_LIMIT = 120.0
"""Seconds a tell run waits for its items before failing loudly (never reached when healthy)."""


# -- the messages and actors ---------------------------------------------------------------------


class Ping(msgspec.Struct, fearless.Request[int], frozen=True):
    """An ask's message; the echo answers with ``value``."""

    value: int


class Count(msgspec.Struct, frozen=True):
    """A tell's message; the tally records ``value``."""

    value: int


class End(msgspec.Struct, frozen=True):
    """Sent (``send``, not ``tell``) after the tells: handled after every tell that arrived."""


class Echo(fearless.Actor[Ping]):
    """Answers an ask with its argument."""

    async def handle(self, message: Ping) -> int:
        return message.value


class Tally(fearless.Actor[Count | End]):
    """Records every ``Count``; sets ``ended`` on ``End``."""

    def __init__(self, received: list[int], ended: anyio.Event) -> None:
        self.received = received
        self.ended = ended

    async def handle(self, message: Count | End) -> None:
        if isinstance(message, Count):
            self.received.append(message.value)
        else:
            self.ended.set()


encode = msgspec.json.encode
decode_ping = msgspec.json.Decoder(Ping).decode
decode_int = msgspec.json.Decoder(int).decode
decode_count = msgspec.json.Decoder(Count).decode


async def respond(msg: Any) -> None:
    """The raw responder: decode the ``Ping``, answer with its value (msgspec JSON)."""
    await msg.respond(encode(decode_ping(msg.data).value))


# -- ask ------------------------------------------------------------------------------------------


async def _ask_loop(remote: Any, n: int) -> Delivery:
    await remote.ask(Ping(-1))  # the connection's reply inbox is made: not timed
    start = time.perf_counter()
    received = [await remote.ask(Ping(i)) for i in range(n)]
    return Delivery(time.perf_counter() - start, received)


async def _request_loop(nc: Any, subject: str, n: int) -> Delivery:
    await nc.request(subject, encode(Ping(-1)), timeout=5.0)  # as above
    start = time.perf_counter()
    received = []
    for i in range(n):
        reply = await nc.request(subject, encode(Ping(i)), timeout=5.0)
        received.append(decode_int(reply.data))
    return Delivery(time.perf_counter() - start, received)


def fearless_ask() -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import fearless.nats

        async with (
            fearless.nats.connect(url, system=fresh("bench")) as node,
            fearless.ActorSystem() as actors,
        ):
            echo = await actors.spawn(Echo)
            async with node.publish(echo, "echo", Ping):
                delivery = await _ask_loop(node.actor("echo", Ping), n)
            echo.stop()
        return delivery

    return body


def raw_ask() -> NatsBody:
    """``nc.request`` to a subscription callback that answers."""

    async def body(url: str, n: int) -> Delivery:
        import nats

        nc = await nats.connect(url)
        try:
            subject = fresh("echo.")
            await nc.subscribe(subject, cb=respond)
            await nc.flush()
            return await _request_loop(nc, subject, n)
        finally:
            await nc.close()

    return body


# -- tell -----------------------------------------------------------------------------------------


def fearless_tell() -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import fearless.nats

        received: list[int] = []
        ended = anyio.Event()
        async with (
            fearless.nats.connect(url, system=fresh("bench")) as node,
            fearless.ActorSystem() as actors,
        ):
            tally = await actors.spawn(
                lambda: Tally(received, ended), mailbox=fearless.Mailbox(math.inf)
            )
            async with node.publish(tally, "tally", Count | End):
                remote = node.actor("tally", Count | End)
                start = time.perf_counter()
                for i in range(n):
                    remote.tell(Count(i))
                await remote.send(End())  # after the tells: handled once they all were
                with anyio.fail_after(END_LIMIT):
                    await ended.wait()
                seconds = time.perf_counter() - start
            tally.stop()
        return Delivery(seconds, received)

    return body


def raw_tell(reply: bool) -> NatsBody:
    """``nc.publish`` to a callback; with ``reply``, a reply subject per message (as fearless's
    tells carry: their way back)."""

    async def body(url: str, n: int) -> Delivery:
        import nats

        nc = await nats.connect(url)
        try:
            subject = fresh("tally.")
            inbox = nc.new_inbox()
            received: list[int] = []
            done = anyio.Event()

            async def record(msg: Any) -> None:
                received.append(decode_count(msg.data).value)
                if len(received) == n:
                    done.set()

            await nc.subscribe(subject, cb=record)
            await nc.flush()  # the server knows of the subscription before the first publish
            start = time.perf_counter()
            for i in range(n):
                await nc.publish(subject, encode(Count(i)), reply=f"{inbox}.{i}" if reply else "")
            with anyio.fail_after(END_LIMIT):
                await done.wait()
            seconds = time.perf_counter() - start
        finally:
            await nc.close()
        return Delivery(seconds, received)

    return body


async def default_mailbox_probe(url: str, n: int) -> tuple[int, int, int]:
    """``n`` tells to a tally with the default mailbox, as fast as the sender can: how many it
    handled, how many came back as dead letters (the mailbox was full when they arrived), and
    how many ``tell`` refused at once with ``MailboxFull`` (after one came back). Every tell is
    one of the three (the probe waits until they add up)."""
    import fearless.nats

    received: list[int] = []
    ended = anyio.Event()
    refused = 0
    async with (
        fearless.nats.connect(url, system=fresh("bench")) as node,
        fearless.ActorSystem() as actors,
    ):
        tally = await actors.spawn(lambda: Tally(received, ended))
        async with node.publish(tally, "tally", Count | End):
            remote = node.actor("tally", Count | End)
            for i in range(n):
                try:
                    remote.tell(Count(i))
                except fearless.MailboxFull:
                    refused += 1
            await remote.send(End())
            with anyio.fail_after(END_LIMIT):
                await ended.wait()
                while len(received) + actors.dead_letter_count + refused < n:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
        tally.stop()
        dead = actors.dead_letter_count
    return len(received), dead, refused


@dataclass(frozen=True, slots=True, eq=False)
class TellWorkload(NatsWorkload):
    """The tell table, then a note: what ``n`` tells do to the default ``Mailbox(1000)``."""

    probe_items: int = DROP_PROBE

    def measure(self, url: str, settings: Settings) -> tuple[str, dict[str, Any]]:
        text, table = NatsWorkload.measure(self, url, settings)
        n = min(self.probe_items, settings.max_items)
        notes = []
        for backend in (ASYNCIO, UVLOOP, TRIO):
            handled, dead, refused = backend.run(lambda: default_mailbox_probe(url, n))
            notes.append(
                f"{backend.name}: {n:,} tells to the default Mailbox(1000): {handled:,} handled, "
                f"{dead:,} came back (dead letters: the mailbox was full), {refused:,} refused "
                "at once (MailboxFull)"
            )
        table["notes"] = notes
        return text + "\n" + "".join(f"- {note}\n" for note in notes), table


# -- ask across processes -------------------------------------------------------------------------


@contextmanager
def hosted(url: str, system: str) -> Iterator[None]:
    """Run ``python -m benchmarks.nats_host`` (the echo actor and the raw responder) while the
    block runs."""
    paths = [str(Path(fearless.__file__).resolve().parents[1]), str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    with subprocess.Popen(
        [sys.executable, "-m", "benchmarks.nats_host", url, system],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    ) as process:  # its exit closes the pipes and reaps the process
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            line = process.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"the actor host did not start (it printed {line!r})")
            yield
        finally:
            process.stdin.close()  # the host leaves its publication and exits
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def fearless_ask_process() -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import fearless.nats

        async with fearless.nats.connect(url, system=HOST_SYSTEM) as node:
            return await _ask_loop(node.actor("echo", Ping), n)

    return body


def raw_ask_process() -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import nats

        nc = await nats.connect(url)
        try:
            return await _request_loop(nc, f"{HOST_SYSTEM}.raw", n)
        finally:
            await nc.close()

    return body


@dataclass(frozen=True, slots=True, eq=False)
class HostedWorkload(NatsWorkload):
    """A table whose contenders talk to ``benchmarks/nats_host.py``, started for the table."""

    def measure(self, url: str, settings: Settings) -> tuple[str, dict[str, Any]]:
        with hosted(url, HOST_SYSTEM):
            return NatsWorkload.measure(self, url, settings)


# -- the tables -----------------------------------------------------------------------------------


TABLES: tuple[NatsWorkload, ...] = (
    NatsWorkload(
        "nats-ask",
        "12g. fearless.nats vs nats-py: remote ask latency, sequential, one process",
        "fearless ask",
        _sides(
            (("fearless ask", fearless_ask),),
            (("nc.request", raw_ask),),
        ),
        targets=(
            Target("asyncio", "nc.request", 0.67, "fearless within 1.5x of raw"),
            Target("trio", "nc.request (asyncio)", 0.4, "fearless within 2.5x of raw"),
        ),
    ),
    TellWorkload(
        "nats-tell",
        "12h. fearless.nats vs nats-py: remote tells, n in a row, until all are handled",
        "fearless tell",
        _sides(
            (("fearless tell", fearless_tell),),
            (
                ("nc.publish + callback", lambda: raw_tell(reply=False)),
                ("nc.publish + reply subject + callback", lambda: raw_tell(reply=True)),
            ),
        ),
        targets=(Target("asyncio", "nc.publish + callback", 0.5),),
    ),
    HostedWorkload(
        "nats-ask-process",
        "12i. fearless.nats vs nats-py: remote ask latency, sequential, across processes",
        "fearless ask",
        _sides((("fearless ask", fearless_ask_process),), (("nc.request", raw_ask_process),)),
    ),
)
"""The remote-actor tables, run after the other ``nats`` tables on the same server."""

WORKLOAD = NatsBench("nats", nats.WORKLOAD.workloads + TABLES)
"""The ``nats`` workload: the tables of ``benchmarks/nats.py``, then the remote actors'."""
