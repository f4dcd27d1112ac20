"""Workload ``actors``: one actor taking messages, against a hand-written task and pykka.

Three tables, each its own workload (run together with ``--only actors``):

Tell (``actors-tell``)
    One actor receives ``0 .. n-1`` fire-and-forget, into an unbounded mailbox, and appends each
    to a list; then one ask (``DONE``) syncs: its reply is the list, checked by the harness.
    ``fearless tell``: ``ref.tell(i)`` into ``Mailbox(math.inf)`` (the baseline). The floor,
    ``asyncio.Queue``: a hand-written task ``await queue.get(); await handle(item)`` fed by
    ``put_nowait``, the same sync at the end (a future sent with ``DONE``). ``anyio stream``: the
    same task reading an unbounded anyio memory object stream fed by ``send_nowait``, ended by
    closing the stream and joining the task (every backend; the trio floor). ``pykka``: a
    ``pykka.ThreadingActor``, ``ref.tell(i)`` then ``ref.ask(DONE)`` (see ``pykka_tell``).
Send (``actors-send``)
    The same, with backpressure: ``fearless send`` does ``await ref.send(i)`` into a bounded
    ``Mailbox(128)`` (the baseline). Peers: the same unbounded ``asyncio.Queue`` floor, and the
    bounded like-for-like ones: ``asyncio.Queue 128`` (``await put``) and ``anyio stream 128``
    (``await send``).
Ask (``actors-ask``)
    Sequential request/reply, one at a time: the figure per item is the latency of one ask.
    ``fearless ask``: ``got.append(await ref.ask(i))`` to an actor whose ``handle`` returns its
    message (default mailbox). The floor, ``asyncio.Queue + future``: a server task reading
    ``(message, future)`` pairs from an ``asyncio.Queue`` and setting the future's result to
    ``await handle(message)``; the client does ``fut = loop.create_future();
    queue.put_nowait((i, fut)); await fut``. ``anyio stream + Event``: the same over an anyio
    memory object stream, the reply in a slot with an ``anyio.Event`` (every backend; the trio
    floor). ``pykka``: ``ref.ask(i)``, blocking (see ``pykka_ask``).

What is timed, for every contender alike: everything from creating the actor (spawning the task,
starting pykka's thread) to its end (leaving the ``ActorSystem`` block stops the actor
gracefully; pykka's ``ref.stop()`` joins its thread), spread over the ``n`` messages of a run.

pykka does not use the event loop at all: its actor is an OS thread, and its ``ask`` blocks the
caller. Its client loop runs in one worker thread (``anyio.to_thread.run_sync``, one hop per run,
not per message), the way a pykka user calls it, from a plain thread; calling it on the event
loop's thread instead would block the loop but cost the same. It is measured on each backend so
that each table has its ratio, though the backend makes no difference to it. pykka comes with the
``bench`` extra; if it is not installed it is left out with a note.

thespian (another Python actor library) is not measured: its default system base runs
every actor in the caller's thread (no concurrency), and its concurrent bases are OS processes
talking over sockets, a different weight class again.
"""

# ruff: noqa: PERF401  Every consumer appends item by item: the same per-item work for every
# contender (a queue consumer cannot be a comprehension).

from __future__ import annotations

import asyncio
import math
from typing import Any

import anyio
import anyio.to_thread

import fearless

from .harness import ASYNCIO, TRIO, UVLOOP, Body, Contender, Group, Target, Workload

try:
    import pykka
except ImportError:  # pragma: no cover - the bench extra installs it
    HAVE_PYKKA = False
else:
    HAVE_PYKKA = True

__all__ = ["ASK", "SEND", "TELL", "WORKLOAD"]

CAPACITY = 128
DONE = -1
"""The message that ends a run (the sync ask, or the floor's sentinel); items are never negative."""
DEADLINE = 30.0
"""Seconds one run may take before it is failed (a full run takes ~0.25 s)."""
SLOW = 2_000
"""The item cap of pykka's asks, which take tens of microseconds each (a thread round trip)."""

BACKENDS = (ASYNCIO, UVLOOP, TRIO)
ASYNCIO_ONLY = frozenset({"asyncio", "uvloop"})


# -- fearless -------------------------------------------------------------------------------------


class Sink(fearless.Actor[int]):
    """Appends every message to a list; ``DONE`` asks for the list."""

    def __init__(self) -> None:
        self.got: list[int] = []

    async def handle(self, message: int) -> list[int] | None:
        if message == DONE:
            return self.got
        self.got.append(message)
        return None


class Echo(fearless.Actor[int]):
    """Replies with the message it was asked."""

    async def handle(self, message: int) -> int:
        return message


async def fearless_tell(n: int) -> list[int]:
    with anyio.fail_after(DEADLINE):
        async with fearless.ActorSystem() as system:
            ref = await system.spawn(Sink, mailbox=fearless.Mailbox(math.inf))
            tell = ref.tell
            for i in range(n):
                tell(i)
            got: list[int] = await ref.ask(DONE)
    return got


async def fearless_send(n: int) -> list[int]:
    with anyio.fail_after(DEADLINE):
        async with fearless.ActorSystem() as system:
            ref = await system.spawn(Sink, mailbox=fearless.Mailbox(CAPACITY))
            send = ref.send
            for i in range(n):
                await send(i)
            got: list[int] = await ref.ask(DONE)
    return got


async def fearless_ask(n: int) -> list[int]:
    got: list[int] = []
    with anyio.fail_after(DEADLINE):
        async with fearless.ActorSystem() as system:
            ref = await system.spawn(Echo)
            ask = ref.ask
            for i in range(n):
                got.append(await ask(i))
    return got


# -- the hand-written floors ----------------------------------------------------------------------


async def _append(got: list[int], item: int) -> None:
    """The floors' handler: an async function, as an actor's ``handle`` is."""
    got.append(item)


async def _echo(item: int) -> int:
    return item


def asyncio_queue_tell(capacity: int) -> Body:
    """A task reading an ``asyncio.Queue``: ``put_nowait`` into an unbounded queue
    (``capacity=0``), or ``await put`` into a bounded one; then a sync like the actor's ask."""

    async def body(n: int) -> list[int]:
        queue: asyncio.Queue[tuple[int, asyncio.Future[None] | None]] = asyncio.Queue(capacity)
        got: list[int] = []

        async def serve() -> None:
            while True:
                item, done = await queue.get()
                if done is not None:
                    done.set_result(None)
                    return
                await _append(got, item)

        async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tg:
            tg.create_task(serve())
            if capacity:
                put = queue.put
                for i in range(n):
                    await put((i, None))
            else:
                put_nowait = queue.put_nowait
                for i in range(n):
                    put_nowait((i, None))
            done = asyncio.get_running_loop().create_future()
            await queue.put((DONE, done))  # a bounded queue may be full
            await done
        return got

    return body


def anyio_stream_tell(capacity: float) -> Body:
    """A task reading an anyio memory object stream: ``send_nowait`` into an unbounded one
    (``math.inf``), or ``await send`` into a bounded one; ended by closing it and joining."""

    async def body(n: int) -> list[int]:
        send, receive = anyio.create_memory_object_stream[int](capacity)
        got: list[int] = []

        async def serve() -> None:
            with receive:
                async for item in receive:
                    await _append(got, item)

        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve)
                with send:
                    if capacity == math.inf:
                        send_nowait = send.send_nowait
                        for i in range(n):
                            send_nowait(i)
                    else:
                        send_one = send.send
                        for i in range(n):
                            await send_one(i)
        return got

    return body


async def asyncio_future_ask(n: int) -> list[int]:
    queue: asyncio.Queue[tuple[int, asyncio.Future[int]]] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    got: list[int] = []

    async def serve() -> None:
        while True:
            item, reply = await queue.get()
            if item == DONE:
                reply.set_result(DONE)
                return
            reply.set_result(await _echo(item))

    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tg:
        tg.create_task(serve())
        put_nowait = queue.put_nowait
        for i in range(n):
            fut = loop.create_future()
            put_nowait((i, fut))
            got.append(await fut)
        done = loop.create_future()
        put_nowait((DONE, done))
        await done
    return got


class _Slot:
    """The reply slot of one ask of the anyio floor."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value = 0


async def anyio_event_ask(n: int) -> list[int]:
    send, receive = anyio.create_memory_object_stream[tuple[int, _Slot]](math.inf)
    got: list[int] = []

    async def serve() -> None:
        with receive:
            async for item, slot in receive:
                slot.value = await _echo(item)
                slot.event.set()

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            with send:
                send_nowait = send.send_nowait
                for i in range(n):
                    slot = _Slot()
                    send_nowait((i, slot))
                    await slot.event.wait()
                    got.append(slot.value)
    return got


# -- pykka ----------------------------------------------------------------------------------------

if HAVE_PYKKA:

    class PykkaSink(pykka.ThreadingActor):
        use_daemon_thread = True  # a stuck run cannot keep the process alive

        def __init__(self) -> None:
            super().__init__()
            self.got: list[int] = []

        def on_receive(self, message: Any) -> Any:
            if message == DONE:
                return self.got
            self.got.append(message)
            return None

    class PykkaEcho(pykka.ThreadingActor):
        use_daemon_thread = True

        def on_receive(self, message: Any) -> Any:
            return message


def _pykka_tell_run(n: int) -> list[int]:
    ref = PykkaSink.start()
    try:
        tell = ref.tell
        for i in range(n):
            tell(i)
        got: list[int] = ref.ask(DONE, block=True, timeout=DEADLINE)
    finally:
        ref.stop(timeout=DEADLINE)
    return got


def _pykka_ask_run(n: int) -> list[int]:
    ref = PykkaEcho.start()
    got: list[int] = []
    try:
        ask = ref.ask
        for i in range(n):
            got.append(ask(i, block=True, timeout=DEADLINE))
    finally:
        ref.stop(timeout=DEADLINE)
    return got


async def pykka_tell(n: int) -> list[int]:
    """pykka's tells and its sync ask, all from one worker thread (pykka's ask blocks its
    caller, so its users call it from threads; one hop to the thread per run, not per item)."""
    return await anyio.to_thread.run_sync(_pykka_tell_run, n)


async def pykka_ask(n: int) -> list[int]:
    """pykka's blocking asks, one after the other, from one worker thread (as ``pykka_tell``)."""
    return await anyio.to_thread.run_sync(_pykka_ask_run, n)


# -- the contenders -------------------------------------------------------------------------------


def _contenders(entries: list[tuple[str, bool, Body, bool, int | None]]) -> tuple[Contender, ...]:
    """``(label, installed, body, asyncio_only, max_items)`` for every backend, in order."""
    return tuple(
        Contender(backend, label, body, max_items)
        for backend in BACKENDS
        for label, installed, body, asyncio_only, max_items in entries
        if installed and (backend.name in ASYNCIO_ONLY or not asyncio_only)
    )


def _targets(contenders: tuple[Contender, ...], wanted: list[Target]) -> tuple[Target, ...]:
    """The targets whose peer is among the contenders (pykka may not be installed)."""
    present = {(c.backend.name, c.label) for c in contenders}
    return tuple(t for t in wanted if (t.backend, t.peer) in present)


FLOOR = "the floor: fearless at least 0.6x its throughput"

TELL_CONTENDERS = _contenders(
    [
        ("fearless tell", True, fearless_tell, False, None),
        ("asyncio.Queue", True, asyncio_queue_tell(0), True, None),
        ("anyio stream", True, anyio_stream_tell(math.inf), False, None),
        ("pykka", HAVE_PYKKA, pykka_tell, False, None),
    ]
)
SEND_CONTENDERS = _contenders(
    [
        ("fearless send", True, fearless_send, False, None),
        ("asyncio.Queue", True, asyncio_queue_tell(0), True, None),
        ("asyncio.Queue 128", True, asyncio_queue_tell(CAPACITY), True, None),
        ("anyio stream 128", True, anyio_stream_tell(CAPACITY), False, None),
    ]
)
ASK_CONTENDERS = _contenders(
    [
        ("fearless ask", True, fearless_ask, False, None),
        ("asyncio.Queue + future", True, asyncio_future_ask, True, None),
        ("anyio stream + Event", True, anyio_event_ask, False, None),
        ("pykka", HAVE_PYKKA, pykka_ask, False, SLOW),
    ]
)

TELL = Workload(
    name="actors-tell",
    title="9a. Actors: tell, one actor, unbounded mailbox",
    baseline="fearless tell",
    contenders=TELL_CONTENDERS,
    targets=_targets(
        TELL_CONTENDERS,
        [
            Target("asyncio", "asyncio.Queue", 0.6, FLOOR),
            Target("uvloop", "asyncio.Queue", 0.6, FLOOR),
            Target("trio", "anyio stream", 4.0),
            Target("asyncio", "pykka", 3.0),
            Target("uvloop", "pykka", 3.0),
            Target("trio", "pykka", 3.0),
        ],
    ),
)
SEND = Workload(
    name="actors-send",
    title="9b. Actors: await send, one actor, Mailbox(128)",
    baseline="fearless send",
    contenders=SEND_CONTENDERS,
    targets=(
        Target("asyncio", "asyncio.Queue", 0.6, FLOOR),
        Target("uvloop", "asyncio.Queue", 0.6, FLOOR),
        Target("trio", "anyio stream 128", 4.0),
    ),
)
ASK = Workload(
    name="actors-ask",
    title="9c. Actors: sequential asks (latency per ask)",
    baseline="fearless ask",
    contenders=ASK_CONTENDERS,
    targets=_targets(
        ASK_CONTENDERS,
        [
            Target(
                "asyncio",
                "asyncio.Queue + future",
                0.67,
                "the floor: fearless's latency at most 1.5x",
            ),
            Target(
                "uvloop",
                "asyncio.Queue + future",
                0.67,
                "the floor: fearless's latency at most 1.5x",
            ),
            Target("asyncio", "pykka", 2.0),
            Target("uvloop", "pykka", 2.0),
            Target("trio", "pykka", 2.0),
        ],
    ),
)


def _missing() -> tuple[str, ...]:
    if HAVE_PYKKA:
        return ()
    return ("pykka is not installed, so it was left out (pip install -e '.[dev]')",)


WORKLOAD = Group(
    name="actors",
    workloads=(TELL, SEND, ASK),
    notes=_missing(),
)
