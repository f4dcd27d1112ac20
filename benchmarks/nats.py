"""``nats``: ``fearless.nats`` against raw nats-py, over one embedded nats-server.

One ``fearless.nats.NatsServer`` (JetStream on, loopback, a temporary store) is started for the
whole workload; every contender connects to it. A run connects, creates what it needs (a stream,
a consumer, a bucket, a subscription) under a name of its own, **times only the loop over the
items**, checks what it got, and deletes what it created; so a contender's figure is its time per
item, not per connection. fearless runs on asyncio, uvloop and trio; raw nats-py is an asyncio
library, so it runs on asyncio and uvloop, and the trio tables show the asyncio run of the raw
client again as a reference row (``... (asyncio)``: the same measurement, not a second one).

Both sides encode the ints ``0 .. n-1`` as JSON with msgspec (fearless's codec does; the raw
client is given the same encoder), so the ratios are what fearless adds on top of the client.

The tables (the ratio is the peer's time per item over fearless's, as in every table here:
below 1x, the raw client is faster):

``nats-send``       sequential durable sends into a work-queue stream: ``DurableSender.send``
                    and ``send_many`` against ``js.publish`` with a ``Nats-Msg-Id`` header; also
                    ``js.publish`` with fearless's three headers (the id and the end check), and
                    ``publish_async`` (pipelined, which fearless's sends are not)
``nats-receive``    durable receives of a stream filled beforehand: ``DurableReceiver.receive``
                    with the default prefetch (16) and with 256, against a pull consumer's
                    ``fetch(16)`` / ``fetch(256)`` and ``await msg.ack()`` per message
``nats-request``    core request/reply to a responder on the same connection: fearless's
                    ``node.client_loop.call(node.connection.request, ...)`` (the backend bridge:
                    on trio, the client's private loop in its own thread) against
                    ``nc.request``
``nats-increment``  ``DistributedInt.increment`` against a raw key-value ``get`` + ``update``
``nats-load``       ``DistributedCell.load`` against ``kv.get``
``nats-broadcast``  publish and receive, in windows of 128 items: ``Publisher.send`` and a
                    ``node.subscribe`` ring (capacity 1024) against ``nc.publish`` and a
                    subscription callback

The remote actors' tables (``nats-ask``, ``nats-tell``, ``nats-ask-process``) are made the same
way, after these, by ``benchmarks/nats_actors.py``, whose ``WORKLOAD`` is the one registered.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec

from .harness import (
    ASYNCIO,
    TRIO,
    UVLOOP,
    Backend,
    Contender,
    Delivery,
    Series,
    Settings,
    Target,
    Workload,
    exactly_once,
    measure,
)

__all__ = ["WORKLOAD", "NatsBench", "NatsContender", "NatsWorkload"]

NatsBody = Callable[[str, int], Awaitable[Delivery]]
"""``body(url, n)``: connect to the server at ``url``, set up, time the loop over ``0 .. n-1``
only, tear down; the time and what the loop got (checked: each item exactly once)."""

encode = msgspec.json.encode
decode = msgspec.json.Decoder(int).decode

WINDOW = 128  # broadcast: items published before the publisher waits for them to arrive
RING = 1024  # broadcast: the local ring's capacity (more than a window: nobody lags)
PREFETCH = 256  # the larger prefetch / fetch batch (the default prefetch is 16)
FILL_WINDOW = 512  # pipelined publishes in flight while filling a stream before a receive run

_names = itertools.count()


def fresh(prefix: str) -> str:
    """A name no other run of this process used (a system, a stream, a subject)."""
    return f"{prefix}{os.getpid()}n{next(_names)}"


def received_all(n: int) -> list[int]:
    return list(range(n))


def _fearless_system() -> str:
    return fresh("bench")


def _stream_config(name: str, subjects: list[str]) -> Any:
    """The stream of a durable channel, as fearless makes it (work queue, discard new, file)."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    return StreamConfig(
        name=name,
        subjects=subjects,
        retention=RetentionPolicy.WORK_QUEUE,
        max_msgs=-1,
        discard=DiscardPolicy.NEW,
        storage=StorageType.FILE,
    )


def _consumer_config() -> Any:
    """The shared consumer of a durable channel, as fearless makes it."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    return ConsumerConfig(
        durable_name="receivers",
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=30.0,
        max_deliver=-1,
    )


async def _fill(js: Any, subject: str, n: int) -> None:
    """Store ``0 .. n-1`` on ``subject``, pipelined (on the client's loop; not timed)."""
    import asyncio

    for start in range(0, n, FILL_WINDOW):
        acks = [
            await js.publish_async(
                subject, encode(i), headers={"Nats-Msg-Id": os.urandom(12).hex()}
            )
            for i in range(start, min(start + FILL_WINDOW, n))
        ]
        await asyncio.gather(*acks)


async def _stored(js: Any, stream: str) -> int:
    info = await js.stream_info(stream)
    return int(info.state.messages)


def _check_stored(stored: int, n: int, who: str) -> list[int]:
    """What a send run delivered: all of ``0 .. n-1`` if the stream holds exactly ``n`` items."""
    if stored != n:
        raise AssertionError(f"{who}: the stream holds {stored} items after {n} sends")
    return received_all(n)


# -- durable send ---------------------------------------------------------------------------------


def fearless_send(many: bool) -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import fearless.nats

        async with fearless.nats.connect(url, system=_fearless_system()) as node:
            sender = await node.open_sender("jobs", int)
            start = time.perf_counter()
            if many:
                await sender.send_many(range(n))
            else:
                for i in range(n):
                    await sender.send(i)
            seconds = time.perf_counter() - start
            stream = f"FEARLESS_CH_{node.system}_jobs"
            stored = await node.client_loop.call(_stored, node.jetstream, stream)
            await node.client_loop.call(node.jetstream.delete_stream, stream)
        return Delivery(seconds, _check_stored(stored, n, "fearless send"))

    return body


def raw_publish(headers: str) -> NatsBody:
    """``js.publish`` per item; ``headers``: ``"id"`` (a Nats-Msg-Id) or ``"fearless"`` (the id
    and the two headers of fearless's end check), or ``"async"`` for ``publish_async`` with an id,
    pipelined (awaited all at the end)."""

    async def body(url: str, n: int) -> Delivery:
        import asyncio

        import nats

        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            name = fresh("RAW")
            subject = f"{name}.items"
            end_subject = f"{name}.end"
            await js.add_stream(_stream_config(name, [f"{name}.*"]))
            start = time.perf_counter()
            if headers == "async":
                acks = []
                for i in range(n):
                    msg_id = os.urandom(12).hex()
                    acks.append(
                        await js.publish_async(subject, encode(i), headers={"Nats-Msg-Id": msg_id})
                    )
                await asyncio.gather(*acks)
            else:
                for i in range(n):
                    msg_id = os.urandom(12).hex()
                    hdrs = {"Nats-Msg-Id": msg_id}
                    if headers == "fearless":
                        hdrs["Nats-Expected-Last-Subject-Sequence"] = "0"
                        hdrs["Nats-Expected-Last-Subject-Sequence-Subject"] = end_subject
                    await js.publish(subject, encode(i), headers=hdrs)
            seconds = time.perf_counter() - start
            stored = await _stored(js, name)
            await js.delete_stream(name)
        finally:
            await nc.close()
        return Delivery(seconds, _check_stored(stored, n, f"raw publish ({headers})"))

    return body


# -- durable receive ------------------------------------------------------------------------------


def fearless_receive(prefetch: int) -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import fearless.nats

        async with fearless.nats.connect(url, system=_fearless_system()) as node:
            sender = await node.open_sender("jobs", int)
            subject = f"fearless.{node.system}.channel.jobs.items"
            await node.client_loop.call(_fill, node.jetstream, subject, n)
            sender.close()
            receiver = await node.open_receiver("jobs", int, prefetch=prefetch)
            start = time.perf_counter()
            received = [await receiver.receive() for _ in range(n)]
            seconds = time.perf_counter() - start
            await receiver.aclose()
            await node.client_loop.call(
                node.jetstream.delete_stream, f"FEARLESS_CH_{node.system}_jobs"
            )
        return Delivery(seconds, received)

    return body


def raw_fetch(batch: int) -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import nats

        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            name = fresh("RAW")
            await js.add_stream(_stream_config(name, [f"{name}.*"]))
            await _fill(js, f"{name}.items", n)
            await js.add_consumer(name, _consumer_config())
            pull = await js.pull_subscribe_bind(durable="receivers", stream=name)
            received: list[int] = []
            start = time.perf_counter()
            while len(received) < n:
                for msg in await pull.fetch(min(batch, n - len(received))):
                    received.append(decode(msg.data))
                    await msg.ack()
            seconds = time.perf_counter() - start
            await pull.unsubscribe()
            await js.delete_stream(name)
        finally:
            await nc.close()
        return Delivery(seconds, received)

    return body


# -- request/reply --------------------------------------------------------------------------------


async def _echo(msg: Any) -> None:
    await msg.respond(msg.data)


def fearless_request() -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import fearless.nats

        async with fearless.nats.connect(url, system=_fearless_system()) as node:
            loop = node.client_loop
            nc = node.connection
            subject = fresh("echo.")
            await loop.call(nc.subscribe, subject, cb=_echo)
            received = []
            start = time.perf_counter()
            for i in range(n):
                reply = await loop.call(nc.request, subject, encode(i), timeout=5.0)
                received.append(decode(reply.data))
            seconds = time.perf_counter() - start
        return Delivery(seconds, received)

    return body


def raw_request() -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import nats

        nc = await nats.connect(url)
        try:
            subject = fresh("echo.")
            await nc.subscribe(subject, cb=_echo)
            received = []
            start = time.perf_counter()
            for i in range(n):
                reply = await nc.request(subject, encode(i), timeout=5.0)
                received.append(decode(reply.data))
            seconds = time.perf_counter() - start
        finally:
            await nc.close()
        return Delivery(seconds, received)

    return body


# -- distributed cells ----------------------------------------------------------------------------


def fearless_cell(op: str) -> NatsBody:
    """``op``: ``"increment"`` (returns 1 .. n) or ``"load"`` (of a cell holding 7)."""

    async def body(url: str, n: int) -> Delivery:
        import fearless.nats

        async with fearless.nats.connect(url, system=_fearless_system()) as node:
            initial = 0 if op == "increment" else 7
            cell = await node.int_cell("hits", initial)
            start = time.perf_counter()
            if op == "increment":
                received = [await cell.increment() - 1 for _ in range(n)]
            else:  # the value read is checked: a read counts as item i if it is right
                received = [i for i in range(n) if await cell.load() == 7]
            seconds = time.perf_counter() - start
            await node.client_loop.call(node.jetstream.delete_key_value, f"fearless_{node.system}")
        return Delivery(seconds, received)

    return body


def raw_cell(op: str) -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import nats
        from nats.js.api import KeyValueConfig
        from nats.js.errors import KeyWrongLastSequenceError

        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            bucket = fresh("raw_")
            kv = await js.create_key_value(KeyValueConfig(bucket=bucket, history=1))
            initial = 0 if op == "increment" else 7
            await kv.create("hits", encode(initial))
            received = []
            start = time.perf_counter()
            if op == "increment":
                for _ in range(n):
                    while True:
                        entry = await kv.get("hits")
                        value = decode(entry.value or b"") + 1
                        try:
                            await kv.update("hits", encode(value), last=entry.revision)
                        except KeyWrongLastSequenceError:
                            continue
                        break
                    received.append(value - 1)
            else:
                for i in range(n):
                    entry = await kv.get("hits")
                    if decode(entry.value or b"") == 7:
                        received.append(i)
            seconds = time.perf_counter() - start
            await js.delete_key_value(bucket)
        finally:
            await nc.close()
        return Delivery(seconds, received)

    return body


# -- broadcast ------------------------------------------------------------------------------------


def fearless_broadcast() -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import fearless.nats

        async with fearless.nats.connect(url, system=_fearless_system()) as node:
            subscription = await node.subscribe("ticks", int, capacity=RING)
            publisher = await node.open_publisher("ticks", int)
            received = []
            start = time.perf_counter()
            for low in range(0, n, WINDOW):
                high = min(low + WINDOW, n)
                for i in range(low, high):
                    await publisher.send(i)
                received.extend([await subscription.receive() for _ in range(low, high)])
            seconds = time.perf_counter() - start
            subscription.close()
        return Delivery(seconds, received)

    return body


def raw_broadcast() -> NatsBody:
    async def body(url: str, n: int) -> Delivery:
        import asyncio

        import nats

        nc = await nats.connect(url)
        try:
            subject = fresh("ticks.")
            received: list[int] = []
            arrived = asyncio.Event()
            wanted = 0

            async def on_message(msg: Any) -> None:
                received.append(decode(msg.data))
                if len(received) >= wanted:
                    arrived.set()

            subscription = await nc.subscribe(subject, cb=on_message)
            await nc.flush()  # the server knows of the subscription before the first publish
            start = time.perf_counter()
            for low in range(0, n, WINDOW):
                wanted = min(low + WINDOW, n)
                arrived.clear()
                for i in range(low, wanted):
                    await nc.publish(subject, encode(i))
                await arrived.wait()
            seconds = time.perf_counter() - start
            await subscription.unsubscribe()
        finally:
            await nc.close()
        return Delivery(seconds, received)

    return body


# -- the workloads --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class NatsContender:
    """One side (fearless or raw nats-py) on one backend; its body times itself."""

    backend: Backend
    label: str
    body: NatsBody
    reference: bool = False
    """Shown again on the trio table, as ``label (asyncio)`` (a raw client's asyncio run)."""

    @property
    def name(self) -> str:
        return f"{self.backend.name}/{self.label}"

    def run(self, url: str, n: int) -> Delivery:
        """One run with ``n`` items on a fresh event loop; fails loudly unless each of
        ``0 .. n-1`` came back exactly once."""
        out: list[Delivery] = []

        async def main() -> None:
            out.append(await self.body(url, n))

        self.backend.run(main)
        delivery = out[0]
        if not exactly_once(delivery.received, n):
            raise AssertionError(f"{self.name} did not deliver each of {n} items once")
        return Delivery(delivery.seconds, [])


def _unused(n: int) -> Awaitable[list[int]]:
    raise RuntimeError("a nats contender runs through NatsContender.run")


@dataclass(frozen=True, slots=True, eq=False)
class NatsWorkload:
    """One table: contenders doing the same thing against one server, one fearless baseline."""

    name: str
    title: str
    baseline: str
    contenders: tuple[NatsContender, ...]
    targets: tuple[Target, ...] = ()

    def measure(self, url: str, settings: Settings) -> tuple[str, dict[str, Any]]:
        """The table as markdown, and as JSON-ready data (``Workload.table``)."""
        measured = measure([partial(c.run, url) for c in self.contenders], settings)
        rows: dict[str, list[tuple[Contender, Series[Delivery]]]] = {}
        for contender, series in zip(self.contenders, measured, strict=True):
            shown = Contender(contender.backend, contender.label, _unused)
            rows.setdefault(contender.backend.name, []).append((shown, series))
            if contender.reference:
                again = Contender(TRIO, f"{contender.label} (asyncio)", _unused)
                rows.setdefault(TRIO.name, []).append((again, series))
        results = {
            contender: series
            for backend in (ASYNCIO.name, UVLOOP.name, TRIO.name)
            for contender, series in rows.get(backend, ())
        }
        workload = Workload(self.name, self.title, self.baseline, tuple(results), self.targets)
        return workload.report(results), workload.table(results)


def nats_settings(settings: Settings) -> Settings:
    """``settings`` for items that take 50 us to 1 ms each: runs of a few hundred to a few
    thousand items (not the 10,000 at least of the in-process workloads)."""
    return dataclasses.replace(
        settings,
        min_items=min(settings.min_items, 100),
        max_items=min(settings.max_items, 20_000),
    )


@dataclass(frozen=True, slots=True, eq=False)
class NatsBench:
    """Every ``nats`` table, against one embedded server started for them all."""

    name: str
    workloads: tuple[NatsWorkload, ...]

    @property
    def contenders(self) -> tuple[NatsContender, ...]:
        return tuple(c for workload in self.workloads for c in workload.contenders)

    def run(self, settings: Settings, record: list[dict[str, Any]] | None = None) -> str:
        """Start the server, measure every table, stop the server; the tables as markdown. The
        ``fearless[nats]`` extra missing (or its server binary) skips them, with a note."""
        try:
            from fearless.nats import NatsServer, NatsServerError
        except ImportError as exc:
            return f"Note: nats skipped: fearless.nats cannot be imported ({exc})\n"
        try:
            server = NatsServer()
        except NatsServerError as exc:
            return f"Note: nats skipped: {exc}\n"
        settings = nats_settings(settings)
        tables = []
        with server:
            for workload in self.workloads:
                text, table = workload.measure(server.url, settings)
                if record is not None:
                    record.append(table)
                tables.append(text)
        return "\n".join(tables)


def _sides(
    fearless: tuple[tuple[str, Callable[[], NatsBody]], ...],
    raw: tuple[tuple[str, Callable[[], NatsBody]], ...],
) -> tuple[NatsContender, ...]:
    """Every fearless contender on every backend, every raw one on asyncio and uvloop."""
    return tuple(
        [
            NatsContender(backend, label, make())
            for backend in (ASYNCIO, UVLOOP, TRIO)
            for label, make in fearless
        ]
        + [
            NatsContender(backend, label, make(), reference=backend is ASYNCIO)
            for backend in (ASYNCIO, UVLOOP)
            for label, make in raw
        ]
    )


WORKLOAD = NatsBench(
    "nats",
    (
        NatsWorkload(
            "nats-send",
            "12a. fearless.nats vs nats-py: durable sends, one at a time, into a work-queue stream",
            "fearless send",
            _sides(
                (
                    ("fearless send", lambda: fearless_send(many=False)),
                    ("fearless send_many", lambda: fearless_send(many=True)),
                ),
                (
                    ("js.publish", lambda: raw_publish("id")),
                    ("js.publish + end check", lambda: raw_publish("fearless")),
                    ("js.publish_async, pipelined", lambda: raw_publish("async")),
                ),
            ),
        ),
        NatsWorkload(
            "nats-receive",
            "12b. fearless.nats vs nats-py: durable receives (acknowledged) from a full stream",
            "fearless prefetch 16",
            _sides(
                (
                    ("fearless prefetch 16", lambda: fearless_receive(16)),
                    (f"fearless prefetch {PREFETCH}", lambda: fearless_receive(PREFETCH)),
                ),
                (
                    ("fetch(16) + ack", lambda: raw_fetch(16)),
                    (f"fetch({PREFETCH}) + ack", lambda: raw_fetch(PREFETCH)),
                ),
            ),
        ),
        NatsWorkload(
            "nats-request",
            "12c. fearless.nats vs nats-py: a core request/reply round trip via the client's loop",
            "fearless client_loop.call",
            _sides(
                (("fearless client_loop.call", fearless_request),),
                (("nc.request", raw_request),),
            ),
        ),
        NatsWorkload(
            "nats-increment",
            "12d. fearless.nats vs nats-py: distributed counter, one increment at a time",
            "fearless increment",
            _sides(
                (("fearless increment", lambda: fearless_cell("increment")),),
                (("kv.get + kv.update", lambda: raw_cell("increment")),),
            ),
        ),
        NatsWorkload(
            "nats-load",
            "12e. fearless.nats vs nats-py: distributed cell, one read at a time",
            "fearless load",
            _sides(
                (("fearless load", lambda: fearless_cell("load")),),
                (("kv.get", lambda: raw_cell("load")),),
            ),
        ),
        NatsWorkload(
            "nats-broadcast",
            f"12f. fearless.nats vs nats-py: broadcast, publish + receive in windows of {WINDOW}",
            "fearless publish + subscribe",
            _sides(
                (("fearless publish + subscribe", fearless_broadcast),),
                (("nc.publish + callback", raw_broadcast),),
            ),
        ),
    ),
)
"""The ``nats`` workload: six tables against one embedded nats-server."""
