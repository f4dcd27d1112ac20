"""examples/chat_server.py, tested over real TCP sockets on every backend.

The server runs in the test's event loop on a real 127.0.0.1 listener (one test runs it as a
process and stops it with SIGINT); the clients are anyio TCP streams. Nothing waits on a timer
for something to happen: a client reads until the line it expects, and server-side state (the
actors' mailboxes, dead letters) is polled under an ``anyio.fail_after`` bound.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream

from .excerpts import assert_page_quotes

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "chat_server.py"
TIMEOUT = 10.0  # the bound on any one wait; a passing test never comes near it


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_server_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


chat = load()


class Client:
    """A test's chat client: one TCP connection, read a line at a time."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buffer = BufferedByteReceiveStream(stream)

    @classmethod
    async def connect(cls, to: Any) -> Client:
        """Connect to a server from ``serving`` (which closes the client at its end), or to an
        address (the caller closes it)."""
        address = to if isinstance(to, tuple) else to.address
        client = cls(await anyio.connect_tcp(*address))
        if not isinstance(to, tuple):
            to.clients.append(client)
        assert (await client.line()).startswith("* welcome, guest")
        return client

    def raw_socket(self) -> socket.socket:
        raw: socket.socket = self.stream.extra(SocketAttribute.raw_socket)
        return raw

    async def send(self, *lines: str) -> None:
        await self.stream.send("".join(f"{line}\n" for line in lines).encode())

    async def line(self) -> str:
        with anyio.fail_after(TIMEOUT):
            return (await self.buffer.receive_until(b"\n", 1 << 20)).decode()

    async def until(self, last: str | Callable[[str], bool]) -> list[str]:
        """Read lines up to and including the first that is ``last`` (or satisfies it)."""
        lines = [await self.line()]
        while not (last(lines[-1]) if callable(last) else lines[-1] == last):
            lines.append(await self.line())
        return lines

    async def ask(self, command: str, *, lines: int = 1) -> list[str]:
        """Send a command, and read its reply (``lines`` lines)."""
        await self.send(command)
        return [await self.line() for _ in range(lines)]

    async def rest(self) -> list[str]:
        """Read every line until the server closes the connection."""
        lines: list[str] = []
        while True:
            try:
                lines.append(await self.line())
            except anyio.IncompleteRead:
                return lines

    async def aclose(self) -> None:
        await self.stream.aclose()


# The example is loaded by path, so its classes are Any to mypy.
UserBase: Any = chat.User
ChatServerBase: Any = chat.ChatServer


class GatedUser(UserBase):  # type: ignore[misc]
    """A User whose writer waits while its server is stalled: a client that reads nothing,
    exactly, whatever the kernel's socket buffers would have taken."""

    def __init__(self, stream: anyio.abc.ByteSendStream, server: GatedServer) -> None:
        super().__init__(stream)
        self.server = server

    async def write(self, data: bytes) -> None:
        while self.server.resume is not None:
            await self.server.resume.wait()
        await super().write(data)


class GatedServer(ChatServerBase):  # type: ignore[misc]
    """Connection 1's writer can be stalled (``stall()``) and released (``release()``)."""

    resume: anyio.Event | None = None

    def user_actor(self, number: int, stream: anyio.abc.ByteSendStream) -> Any:
        if number == 1:
            return GatedUser(stream, self)
        return super().user_actor(number, stream)

    def stall(self) -> None:
        self.resume = anyio.Event()

    def release(self) -> None:
        resume, self.resume = self.resume, None
        assert resume is not None
        resume.set()


@asynccontextmanager
async def serving(server_class: Any = None, **options: Any) -> AsyncIterator[Any]:
    """A ChatServer listening on 127.0.0.1 (a free port) in this event loop; shut down
    gracefully at the end. ``server.address`` is where it listens."""
    server = (server_class or chat.ChatServer)(**options)
    server.clients = []
    async with anyio.create_task_group() as tg:
        server.address = await tg.start(server.serve)
        try:
            yield server
        finally:
            for client in server.clients:
                await client.aclose()
            server.shutdown()


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds: server state that changes when the kernel delivers
    bytes, which no task-level barrier can see, so it is polled, within ``TIMEOUT``."""
    with anyio.fail_after(TIMEOUT):
        while not condition():  # noqa: ASYNC110 - no event to wait on: the kernel's doing
            await anyio.sleep(0.001)


def failures(server: Any) -> int:
    snapshot = server.system.snapshot()

    def walk(actors: Any) -> int:
        return sum(actor.failures + walk(actor.children) for actor in actors)

    return walk(snapshot.actors)


async def test_nicks_and_rooms_work_as_the_protocol_says() -> None:
    """Nicks are unique and released on disconnect; a room is created by its first join,
    members see each other come, go and rename, and the last one out stops the room."""
    async with serving() as server:
        alice = await Client.connect(server)
        bob = await Client.connect(server)
        assert await alice.ask("/nick alice") == ["* you are now alice"]
        assert await bob.ask("/nick alice") == ["! nick 'alice' is taken"]
        assert await bob.ask("/nick bob") == ["* you are now bob"]
        assert await alice.ask("/join #lobby") == ["* you joined #lobby; here: nobody else"]
        assert await bob.ask("/join lobby") == ["* you joined #lobby; here: alice"]
        assert await alice.line() == "* bob joined #lobby"
        assert await bob.ask("/who") == ["* in #lobby: alice, bob"]
        assert await alice.ask("/rooms") == ["* rooms: #lobby (2)"]

        assert await alice.ask("/nick ada") == ["* you are now ada"]
        assert await bob.line() == "* alice is now known as ada"
        await bob.send("hello")
        assert await bob.line() == "#lobby <bob> hello"  # said to everyone, the talker too
        assert await alice.line() == "#lobby <bob> hello"

        assert await bob.ask("/join kitchen") == ["* you joined #kitchen; here: nobody else"]
        assert await alice.line() == "* bob left #lobby"
        assert await alice.ask("/rooms") == ["* rooms: #kitchen (1), #lobby (1)"]
        assert await alice.ask("/leave") == ["* you left #lobby"]
        # The directory answers a leave once an emptied room has stopped: its name is free.
        assert server.system.lookup("room:lobby") is None
        assert await alice.ask("/rooms") == ["* rooms: #kitchen (1)"]
        assert await alice.ask("/join lobby") == ["* you joined #lobby; here: nobody else"]

        await bob.aclose()  # bob disconnects: his room stops, his nick is free
        await eventually(lambda: server.system.lookup("room:kitchen") is None)
        assert await alice.ask("/rooms") == ["* rooms: #lobby (1)"]
        assert await alice.ask("/nick bob") == ["* you are now bob"]
        await alice.aclose()
        assert failures(server) == 0


async def test_a_room_that_ends_unexpectedly_is_forgotten_and_started_again() -> None:
    """A room killed from outside (standing in for a bug) is not restarted: the directory,
    which monitors its rooms, forgets it; its member is told it is gone, what it says goes to
    dead letters, and the next join starts a fresh room under the same name."""
    async with serving() as server:
        client = await Client.connect(server)
        await client.ask("/join lobby")
        room = server.system.lookup("room:lobby")
        assert room is not None
        room.kill()
        await room.wait_stopped()
        await client.send("anyone?")  # to the dead room: a dead letter, no error
        await eventually(lambda: server.dead_letters.by_reason["actor_stopped"] == 1)
        assert await client.ask("/who") == ["! #lobby is gone; /join a room"]
        assert await client.ask("/rooms") == ["* rooms: none"]
        assert await client.ask("/join lobby") == ["* you joined #lobby; here: nobody else"]
        assert await client.ask("hello") == ["#lobby <guest1> hello"]
        assert server.system.lookup("room:lobby") is not room


def chat_lines(lines: list[str], room: str) -> list[str]:
    return [line for line in lines if line.startswith(f"#{room} <")]


async def test_every_member_sees_the_lines_of_a_room_in_one_order() -> None:
    """Three members talk at once: each sees every line exactly once, all three see the same
    sequence (the room's order), and each talker's lines keep the order it sent them in."""
    count = 40
    async with serving() as server:
        clients = [await Client.connect(server) for _ in range(3)]
        for i, client in enumerate(clients):
            await client.ask(f"/nick n{i}")
            await client.ask("/join talk")
        for i, client in enumerate(clients[:-1]):  # each sees the later ones join
            for j in range(i + 1, len(clients)):
                assert await client.line() == f"* n{j} joined #talk"
        seen: list[list[str]] = [[] for _ in clients]

        async def talk_and_listen(i: int) -> None:
            await clients[i].send(*(f"m{i}.{k}" for k in range(count)))
            while len(chat_lines(seen[i], "talk")) < count * len(clients):
                seen[i].append(await clients[i].line())

        async with anyio.create_task_group() as tg:
            for i in range(len(clients)):
                tg.start_soon(talk_and_listen, i)
        orders = [chat_lines(lines, "talk") for lines in seen]
        assert orders[0] == orders[1] == orders[2]
        assert sorted(orders[0]) == sorted(
            f"#talk <n{i}> m{i}.{k}" for i in range(len(clients)) for k in range(count)
        )
        for i in range(len(clients)):
            mine = [line for line in orders[0] if line.startswith(f"#talk <n{i}>")]
            assert mine == [f"#talk <n{i}> m{i}.{k}" for k in range(count)]
        for client in clients:
            await client.aclose()


async def test_many_concurrent_clients_lose_nothing_and_duplicate_nothing() -> None:
    """Twenty clients join a room and talk at once while reading: every client receives every
    line exactly once. Their mailboxes (1024) can hold every line there is, so a client that
    reads never loses one, however the tasks are scheduled: none dropped anything."""
    clients_n, lines_n = 20, 20
    async with serving(mailbox=1024) as server:
        clients = [await Client.connect(server) for _ in range(clients_n)]
        for i, client in enumerate(clients):
            assert await client.ask(f"/nick c{i}") == [f"* you are now c{i}"]
            assert (await client.ask("/join crowd"))[0].startswith("* you joined #crowd")
        everyone = sorted(f"#crowd <c{i}> l{k}" for i in range(clients_n) for k in range(lines_n))
        received: list[list[str]] = [[] for _ in clients]

        async def talk_and_listen(i: int) -> None:
            await clients[i].send(*(f"l{k}" for k in range(lines_n)))
            got = received[i]
            while len(got) < len(everyone):
                line = await clients[i].line()
                if line.startswith("#crowd <"):
                    got.append(line)

        async with anyio.create_task_group() as tg:
            for i in range(clients_n):
                tg.start_soon(talk_and_listen, i)
        for got in received:
            assert sorted(got) == everyone
        for client in clients:
            await client.aclose()
        for connection in server.connections.values():
            assert connection.user.mailbox_statistics().dropped == 0


CAPACITY = 16  # each user's mailbox in the slow-client tests
BATCH = 8  # the talker sends this many, then reads their echoes: its own mailbox never fills


async def slow_and_talker(server: Any) -> tuple[Client, Client, Any]:
    """``slow`` (connection 1) and ``talker`` (connection 2) in #flood; returns when the slow
    one has read everything it was sent so far, with its User actor's ref."""
    slow = await Client.connect(server)
    talker = await Client.connect(server)
    assert await slow.ask("/nick slow") == ["* you are now slow"]
    assert await talker.ask("/nick talker") == ["* you are now talker"]
    await slow.ask("/join flood")
    await talker.ask("/join flood")
    assert await slow.line() == "* talker joined #flood"  # the last thing the slow one reads
    user = server.system.lookup("user:1")
    assert user is not None
    return slow, talker, user


async def flood(talker: Client, lines: list[str]) -> None:
    """The talker says ``lines``, reading its own echoes, BATCH at a time. When it returns the
    room has handled them all, so it has told every one to every member."""
    for start in range(0, len(lines), BATCH):
        batch = lines[start : start + BATCH]
        await talker.send(*batch)
        for line in batch:  # the room and the talker keep going, whatever the slow one does
            assert await talker.line() == f"#flood <talker> {line}"


async def test_a_client_that_does_not_read_loses_its_oldest_lines_and_slows_no_one() -> None:
    """Real sockets with small buffers: while one member reads nothing, another floods the
    room with ~300 KB, ten times what the buffers hold. The talker gets every line back (the
    room never waited for the slow one), and its own mailbox dropped nothing. The slow one's
    mailbox never held more than CAPACITY and dropped lines. When it reads, it gets the lines
    in order with a "you missed N" notice at each gap saying exactly how many are missing
    there; the notices add up to its mailbox's drop count and every drop is a dead letter.
    (How many lines the kernel takes, and when, is the kernel's business: the test asserts
    what holds whatever it is.)"""
    count = 300
    pad = "x" * 1000
    async with serving(mailbox=CAPACITY, send_buffer=4096) as server:
        slow, talker, user = await slow_and_talker(server)
        slow.raw_socket().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        before = user.mailbox_statistics().total_enqueued
        await flood(talker, [f"{n:04} {pad}" for n in range(count)])
        assert server.connections[2].user.mailbox_statistics().dropped == 0
        stats = user.mailbox_statistics()
        assert stats.peak_depth == CAPACITY
        assert stats.total_enqueued - before == count

        lines = await slow.until(lambda line: line.startswith(f"#flood <talker> {count - 1:04}"))
        dropped = user.mailbox_statistics().dropped
        assert dropped > 0
        # Replay what it read: each line is the one expected next, and each notice says
        # exactly how many lines are missing before the next one.
        expected, missed = 0, 0
        for line in lines:
            if line.startswith("* you missed "):
                n = int(line.split()[3])
                assert line == f"* you missed {n} line(s): they came faster than you read them"
                expected, missed = expected + n, missed + n
            else:
                assert line == f"#flood <talker> {expected:04} {pad}"
                expected += 1
        assert expected == count
        assert missed == dropped  # the notices account for every drop, and only for drops

        # Caught up: the next line comes with no notice, and the drops are dead letters.
        await talker.send("and now?")
        assert await slow.line() == "#flood <talker> and now?"
        await eventually(lambda: server.dead_letters.seen == server.system.dead_letter_count)
        assert server.dead_letters.by_reason == {"dropped_oldest": dropped}
        assert server.dead_letters.by_recipient == {"user:1": dropped}
        await slow.aclose()
        await talker.aclose()


async def test_a_stalled_client_keeps_its_newest_lines_and_is_told_how_many_it_missed() -> None:
    """The slow client's writer is stalled on line 0 (as a client that reads nothing, minus
    the kernel's buffers) while 100 lines are said: its mailbox keeps the newest CAPACITY,
    every older one but line 0 is dropped, oldest first, into dead letters. Released, the
    client gets line 0, "you missed 83", then the last CAPACITY lines."""
    count = 100
    async with serving(GatedServer, mailbox=CAPACITY) as server:
        slow, talker, user = await slow_and_talker(server)
        with server.system.dead_letters() as letters:
            server.stall()
            await flood(talker, [f"line {n}" for n in range(count)])
            stats = user.mailbox_statistics()
            assert (stats.depth, stats.peak_depth) == (CAPACITY, CAPACITY)
            assert stats.dropped == count - CAPACITY - 1
            dead = [letters.receive_nowait() for _ in range(stats.dropped)]
        assert [letter.message for letter in dead] == [
            f"#flood <talker> line {n}" for n in range(1, count - CAPACITY)
        ]
        assert {(letter.recipient, letter.reason.value) for letter in dead} == {
            ("user:1", "dropped_oldest")
        }
        server.release()
        assert await slow.until(f"#flood <talker> line {count - 1}") == [
            "#flood <talker> line 0",
            f"* you missed {count - CAPACITY - 1} line(s): they came faster than you read them",
            *(f"#flood <talker> line {n}" for n in range(count - CAPACITY, count)),
        ]
        await slow.aclose()
        await talker.aclose()


async def test_lines_for_a_client_that_is_gone_become_dead_letters_that_stats_reports() -> None:
    """A client whose writer is stalled (line 0 in hand, CAPACITY lines queued) disconnects
    with a reset: what it was still to be sent cannot be delivered. Its User actor is killed:
    line 0 is a dead letter (KILLED), the queued lines too (ACTOR_STOPPED), with the earlier
    drops; the inspector counts them by reason and /stats reports exactly that."""
    count = 100
    async with serving(GatedServer, mailbox=CAPACITY) as server:
        slow, talker, user = await slow_and_talker(server)
        server.stall()
        await flood(talker, [f"line {n}" for n in range(count)])
        # SO_LINGER 0: closing sends a reset, as from a client that crashed
        slow.raw_socket().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await slow.aclose()
        assert await talker.line() == "* slow disconnected from #flood"
        assert (await user.wait_stopped()).reason == "killed"
        expected = {"dropped_oldest": count - CAPACITY - 1, "actor_stopped": CAPACITY, "killed": 1}
        total = sum(expected.values())
        await eventually(lambda: server.dead_letters.seen == total)
        assert server.system.dead_letter_count == total
        assert server.dead_letters.by_reason == expected
        assert server.dead_letters.by_recipient == {"user:1": total}
        stats = await talker.ask("/stats", lines=3)
        assert stats[:2] == [
            f"* users: 1, dead letters: {total} (actor_stopped={CAPACITY}"
            f" dropped_oldest={count - CAPACITY - 1} killed=1)",
            "* lines dropped for slow clients connected now: 0",
        ]
        assert re.fullmatch(
            rf"\* your mailbox: 0/{CAPACITY} queued, peak \d+, dropped 0 \(drop_oldest\)",
            stats[2],
        )
        await talker.aclose()


async def test_bad_input_gets_an_error_line_and_the_connection_goes_on() -> None:
    """Overlong lines (in one piece or many), invalid UTF-8, control characters, unknown
    commands, bad names and commands out of place each get one error line naming the
    problem; the next line is served as usual, and no actor fails."""
    async with serving(max_line=100) as server:
        client = await Client.connect(server)
        stream = client.stream
        await stream.send(b"y" * 150 + b"\n/rooms\n")
        assert await client.line() == "! line too long (over 100 bytes): ignored"
        assert await client.line() == "* rooms: none"
        for _ in range(5):  # one long line that arrives in pieces: one error, once
            await stream.send(b"z" * 60)
        await stream.send(b"\n/rooms\r\n")  # CRLF is fine
        assert await client.line() == "! line too long (over 100 bytes): ignored"
        assert await client.line() == "* rooms: none"
        await stream.send(b"caf\xc3\xa9 \xff\xfe\n")
        assert await client.line() == "! invalid UTF-8 at byte 6 (ff): line ignored"
        await stream.send(b"\x1b[31mred\n")
        assert await client.line() == "! control character '\\x1b' at position 0: line ignored"
        assert await client.ask("/frobnicate") == [
            "! unknown command '/frobnicate'; /help lists them"
        ]
        assert await client.ask("/nick no spaces") == [
            "! invalid nick 'no spaces': use 1-24 letters, digits, '-' or '_'"
        ]
        assert await client.ask("/join") == [
            "! invalid room '': use 1-24 letters, digits, '-' or '_'"
        ]
        assert await client.ask("hello?") == ["! you are not in a room; /join one first"]
        assert await client.ask("/who") == ["! you are not in a room; /join one first"]
        assert await client.ask("/leave") == ["! you are not in a room"]
        assert await client.ask("/rooms please") == ["! /rooms takes no argument, got 'please'"]
        assert await client.ask("/help", lines=len(chat.HELP)) == list(chat.HELP)
        assert await client.ask("/join ok") == ["* you joined #ok; here: nobody else"]
        assert await client.ask("//slash") == ["#ok <guest1> /slash"]
        assert await client.ask("caf\u00e9") == ["#ok <guest1> caf\u00e9"]
        assert await client.ask("/quit") == ["* bye"]
        assert await client.rest() == []  # and the server closes the connection
        assert failures(server) == 0


async def test_shutdown_tells_every_client_and_closes_its_socket() -> None:
    """A graceful shutdown: each connected client is told, then its connection is closed,
    and serve() returns with every actor stopped."""
    async with anyio.create_task_group() as tg:
        server = chat.ChatServer()
        address = await tg.start(server.serve)
        first = await Client.connect(address)
        second = await Client.connect(address)
        await first.ask("/join lobby")
        await second.ask("/join lobby")
        assert await first.line() == "* guest2 joined #lobby"
        system = server.system
        server.shutdown()
        for client in (first, second):
            assert await client.rest() == ["* the server is shutting down: goodbye"]
            await client.aclose()
    assert system.snapshot().actors == ()  # serve() has returned: the system is closed
    with pytest.raises(OSError, match="connection attempts failed"):  # nothing listens
        await anyio.connect_tcp(*address)


async def test_the_server_process_stops_cleanly_on_sigint(anyio_backend: Any) -> None:
    """The script, run on the test's backend, prints its address, serves, and on SIGINT
    (Ctrl-C) tells its clients, closes their sockets and exits with status 0."""
    name, options = anyio_backend
    backend = "uvloop" if options.get("loop_factory") else name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    command = [sys.executable, str(EXAMPLE), "--backend", backend, "--port", "0"]
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        out = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(TIMEOUT):
            first_line = (await out.receive_until(b"\n", 1000)).decode()
        match = re.fullmatch(r"chat server listening on (127\.0\.0\.1):(\d+)", first_line)
        assert match, first_line
        address = (match[1], int(match[2]))
        alice = await Client.connect(address)
        bob = await Client.connect(address)
        await alice.ask("/join lobby")
        await bob.ask("/join lobby")
        await bob.send("hi")
        assert await alice.until("#lobby <guest2> hi")
        process.send_signal(signal.SIGINT)
        for client in (alice, bob):
            assert (await client.rest())[-1] == "* the server is shutting down: goodbye"
            await client.aclose()
        with anyio.fail_after(TIMEOUT):
            code = await process.wait()
            rest = out.buffer + b"".join([chunk async for chunk in out.receive_stream])
            errors = b"".join([chunk async for chunk in process.stderr]).decode()
        assert code == 0, errors
        assert rest.decode() == "chat server stopped\n"
        assert "Traceback" not in errors
        assert "SIGINT: shutting down" in errors


def test_the_docs_page_quotes_the_example_as_it_is() -> None:
    """Every Python excerpt on docs/examples/chat.md is a verbatim piece of the example."""
    assert_page_quotes(ROOT / "docs" / "examples" / "chat.md", EXAMPLE, Path(__file__), at_least=3)
