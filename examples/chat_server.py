"""A TCP chat server: rooms and users are actors, and a slow client loses its oldest lines.

    python examples/chat_server.py [--backend asyncio|uvloop|trio] [--host H] [--port N]

then, in other terminals, ``nc localhost PORT`` (the server prints the port it bound; ``--port 0``,
the default, picks a free one). The protocol is one line per command:

    /nick NAME     /join ROOM     /leave     /rooms     /who     /stats     /help     /quit

and any other line is said to your room (``//text`` says ``/text``). Lines from the server start
with ``*`` (a notice), ``!`` (an error, about the line you sent) or ``#room`` (a chat line).

The design, explained in ``docs/examples/chat.md``:

- ``Directory``, one actor, owns the names: the nicks in use and the running rooms. Every join,
  leave and nick change goes through it, one at a time, so a room is created on the first join
  and stopped when the last member leaves, with no race between the two.
- ``Room``, an actor per room (a child of the directory), owns its members and says every line
  to each of them in one order.
- ``User``, an actor per connection, owns the way out to the client: everything the client is
  sent passes through its mailbox, and its handler writes it to the socket. The mailbox is
  bounded with ``overflow="drop_oldest"``: a client that does not read blocks its own writer
  only; its mailbox fills, then loses its oldest lines (to dead letters), and a room telling
  it never waits. When the client catches up, it is told how many lines it missed.
- The connection's own task reads the client's lines and carries out its commands (the inbound
  half, which is never dropped: a command waits for the directory, and a line said waits for
  room in the room's mailbox).
- Every message that could not be delivered (lines dropped for a slow client, lines for a client
  that is gone) is a dead letter; a task counts them by reason and logs them, and ``/stats``
  shows the counts.
- Ctrl-C (SIGINT or SIGTERM) shuts down cleanly on every backend: no new connections, every
  client is told and its pending lines written (within ``flush_timeout``), sockets are closed,
  then the actors stop.
"""

from __future__ import annotations

import argparse
import functools
import logging
import re
import signal
import socket
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

import fearless

log = logging.getLogger("chat")

Backend = Literal["asyncio", "uvloop", "trio"]
BACKENDS: tuple[Backend, ...] = ("asyncio", "uvloop", "trio")

NAME = re.compile(r"[A-Za-z0-9_-]{1,24}")
"""What a nick or a room name may be (a room may be written with a leading ``#``)."""

HELP = (
    "* commands:",
    "*   /nick NAME    change your nick (1-24 letters, digits, '-' or '_')",
    "*   /join ROOM    join ROOM (it is created if needed), leaving your room",
    "*   /leave        leave your room",
    "*   /rooms        the rooms, and how many are in each",
    "*   /who          who is in your room",
    "*   /stats        dead letters and mailbox drops",
    "*   /quit         disconnect",
    "*   any other line is said to your room ('//text' says '/text')",
)


# -- messages -------------------------------------------------------------------------------------
# Requests (``fearless.Request[R]``) are asked, and type what the ask returns; the others are told.


@dataclass(frozen=True)
class Register(fearless.Request[str]):
    """A new connection: the directory answers with a free guest nick."""


@dataclass(frozen=True)
class ClaimNick(fearless.Request[bool]):
    """Change ``old`` to ``new`` (in ``room`` too): False if ``new`` is taken."""

    old: str
    new: str
    room: str | None


@dataclass(frozen=True)
class Joined:
    room: fearless.ActorRef[RoomMessage]
    members: tuple[str, ...]
    """Who was there already."""


@dataclass(frozen=True)
class Join(fearless.Request[Joined]):
    """Put ``nick`` in ``room`` (created if needed), out of ``previous`` first."""

    nick: str
    user: fearless.ActorRef[str]
    room: str
    previous: str | None


@dataclass(frozen=True)
class Leave(fearless.Request[None]):
    """Take ``nick`` out of ``room`` (stopped if now empty); ``gone``: release the nick too."""

    nick: str
    room: str | None
    gone: bool = False


@dataclass(frozen=True)
class ListRooms(fearless.Request[tuple[tuple[str, int], ...]]):
    """The running rooms, with their member counts."""


DirectoryMessage = Register | ClaimNick | Join | Leave | ListRooms


@dataclass(frozen=True)
class Enter(fearless.Request[tuple[str, ...]]):
    nick: str
    user: fearless.ActorRef[str]


@dataclass(frozen=True)
class Exit(fearless.Request[int]):
    """Answered with the members left."""

    nick: str
    why: str


@dataclass(frozen=True)
class Rename(fearless.Request[None]):
    old: str
    new: str


@dataclass(frozen=True)
class Who(fearless.Request[tuple[str, ...]]):
    pass


@dataclass(frozen=True)
class Say:
    nick: str
    text: str


RoomMessage = Enter | Exit | Rename | Who | Say


# -- actors ---------------------------------------------------------------------------------------


class Room(fearless.Actor[RoomMessage]):
    """A room: its members, and one order for everything said in it.

    It tells every member each line; a member's mailbox never makes it wait (it drops instead),
    so one slow client cannot hold up the room.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, fearless.ActorRef[str]] = {}

    def broadcast(self, line: str, *, skip: str | None = None) -> None:
        for nick, user in self.members.items():
            if nick != skip:
                user.tell(line)  # drop_oldest: never waits, never raises

    async def handle(self, message: RoomMessage) -> Any:
        match message:
            case Say(nick, text):
                self.broadcast(f"#{self.name} <{nick}> {text}")
            case Enter(nick, user):
                already = tuple(self.members)
                self.broadcast(f"* {nick} joined #{self.name}")
                self.members[nick] = user
                return already
            case Exit(nick, why):
                if self.members.pop(nick, None) is not None:
                    self.broadcast(f"* {nick} {why} #{self.name}")
                return len(self.members)
            case Rename(old, new):
                if old in self.members:
                    self.members[new] = self.members.pop(old)
                self.broadcast(f"* {old} is now known as {new}", skip=new)
            case Who():
                return tuple(self.members)
        return None


class Directory(fearless.Actor[DirectoryMessage]):
    """The registry: nicks in use and running rooms.

    Joins, leaves and renames are handled here one at a time, so the directory alone decides
    when a room starts (first join) and stops (last leave); a join can never reach a room that
    is stopping. The rooms are its children; it monitors them, so a room that fails (a bug) is
    forgotten and the next join starts a fresh one.
    """

    def __init__(self) -> None:
        self.nicks: set[str] = set()
        self.rooms: dict[str, fearless.ActorRef[RoomMessage]] = {}
        self.guests = 0

    async def handle(self, message: DirectoryMessage) -> Any:
        match message:
            case Register():
                self.guests += 1
                while f"guest{self.guests}" in self.nicks:
                    self.guests += 1
                nick = f"guest{self.guests}"
                self.nicks.add(nick)
                return nick
            case ClaimNick(old, new, where):
                if new in self.nicks:
                    return False
                self.nicks.discard(old)
                self.nicks.add(new)
                if where is not None and where in self.rooms:
                    try:
                        await self.rooms[where].ask(Rename(old, new))
                    except fearless.ActorStopped:  # it failed just now
                        await self.forget(self.rooms[where])
                return True
            case Join(nick, user, name, previous):
                if previous is not None:
                    await self.leave(nick, previous, "left")
                while True:
                    room = self.rooms.get(name)
                    if room is None:
                        room = await self.context.spawn(
                            functools.partial(Room, name), name=f"room:{name}"
                        )
                        self.context.monitor(room)
                        self.rooms[name] = room
                    try:
                        return Joined(room, await room.ask(Enter(nick, user)))
                    except fearless.ActorStopped:  # it failed just now: start a new one
                        await self.forget(room)
            case Leave(nick, where, gone):
                if where is not None:
                    await self.leave(nick, where, "disconnected from" if gone else "left")
                if gone:
                    self.nicks.discard(nick)
            case ListRooms():
                counts = []
                for name, room in list(self.rooms.items()):
                    try:
                        counts.append((name, len(await room.ask(Who()))))
                    except fearless.ActorStopped:  # it failed just now
                        await self.forget(room)
                return tuple(sorted(counts))
        return None

    async def leave(self, nick: str, name: str, why: str) -> None:
        room = self.rooms.get(name)
        if room is None:
            return
        try:
            left = await room.ask(Exit(nick, why))
        except fearless.ActorStopped:  # it failed just now
            await self.forget(room)
            return
        if left == 0:  # the last one out: the room stops, and its name is free again
            del self.rooms[name]
            room.stop()
            await room.wait_stopped()

    async def forget(self, room: fearless.Ref[RoomMessage]) -> None:
        """A room that ended without our stop (it failed: a bug): forget it, so that the next
        join starts a new one. Its members are told nothing (their lines to it go to dead
        letters, and their /who says it is gone)."""
        notice = await room.wait_stopped()
        for name, known in list(self.rooms.items()):
            if known == room:
                log.error("room %r ended (%s): %r", name, notice.reason, notice.error)
                del self.rooms[name]

    async def on_terminated(self, notice: fearless.Terminated) -> None:
        await self.forget(notice.ref)


class User(fearless.Actor[str]):
    """A connection's way out: each message is a line for the client, written to its socket.

    Spawned with a bounded ``drop_oldest`` mailbox. While the client does not read, ``handle``
    waits in ``send`` and the mailbox fills; then each new line evicts the oldest one (to dead
    letters, ``DROPPED_OLDEST``). Before writing a line it checks the mailbox's ``dropped``
    count: if lines were dropped since the last check, it first tells the client how many.
    """

    def __init__(self, stream: anyio.abc.ByteSendStream) -> None:
        self.stream = stream
        self.reported = 0
        """Drops the client has been told about."""

    async def handle(self, line: str) -> None:
        # Read before the first await: the runtime hands the message over with no await in
        # between, so every drop counted here was of a line older than this one.
        dropped = self.context.ref.mailbox_statistics().dropped
        data = f"{line}\n".encode()
        if dropped > self.reported:
            missed = dropped - self.reported
            self.reported = dropped
            data = (
                f"* you missed {missed} line(s): they came faster than you read them\n".encode()
                + data
            )
        try:
            await self.write(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The client is gone. Kill this actor: the line in hand goes to dead letters
            # (KILLED), and so does everything still queued (ACTOR_STOPPED), where the server
            # counts it; the connection's task notices the end and closes the socket.
            self.context.ref.kill()
            await anyio.sleep_forever()  # the kill cancels this

    async def write(self, data: bytes) -> None:
        """Write to the client: waits while its socket's buffers are full.

        Cancellation: a kill cancels it; what was written by then may have reached the
        client."""
        await self.stream.send(data)


# -- the server -----------------------------------------------------------------------------------


@dataclass
class DeadLetterCounts:
    """What the dead-letter inspector has seen."""

    by_reason: Counter[str] = field(default_factory=Counter)
    by_recipient: Counter[str] = field(default_factory=Counter)
    uninspected: int = 0
    """Letters the inspector fell too far behind to see (``fearless.Lagged``)."""

    @property
    def seen(self) -> int:
        return sum(self.by_reason.values())


class BadLine(ValueError):
    """A line from a client that cannot be taken; the message is what the client is told."""


class Connection:
    """One client: the task that reads its lines and carries out its commands.

    ``nick`` and ``room`` are only touched by this task. Everything the client is sent goes
    through its ``User`` actor.
    """

    def __init__(
        self,
        server: ChatServer,
        number: int,
        stream: anyio.abc.SocketStream,
        user: fearless.ActorRef[str],
    ) -> None:
        self.server = server
        self.number = number
        self.stream = stream
        self.user = user
        self.nick = ""
        self.room_name: str | None = None
        self.room: fearless.ActorRef[RoomMessage] | None = None
        self.reader = anyio.CancelScope()
        self.quit = False

    def tell(self, *lines: str) -> None:
        for line in lines:
            self.user.tell(line)

    async def read_lines(self) -> None:
        """Read the client's lines until it disconnects or quits. A line longer than
        ``max_line`` bytes is refused (and skipped up to its end), as is one that is not UTF-8
        or holds control characters.

        Cancellation: the connection's reader scope is cancelled at shutdown, and when the
        User actor ends; a command cut short was not carried out, or was in full (asks are
        handled even when the asker stops waiting)."""
        limit = self.server.max_line
        buffer = bytearray()
        skipping = False  # inside a line that was too long: drop up to its newline
        while not self.quit:
            try:
                chunk = await self.stream.receive()
            except anyio.EndOfStream:
                return
            buffer += chunk
            while not self.quit:
                end = buffer.find(b"\n")
                if end < 0:
                    if len(buffer) > limit:
                        if not skipping:
                            self.tell(f"! line too long (over {limit} bytes): ignored")
                        skipping = True
                        buffer.clear()
                    break
                raw = bytes(buffer[:end])
                del buffer[: end + 1]
                if skipping:
                    skipping = False
                    continue
                if len(raw) > limit:
                    self.tell(f"! line too long (over {limit} bytes): ignored")
                    continue
                try:
                    await self.command(decode(raw))
                except BadLine as bad:
                    self.tell(f"! {bad}")

    async def command(self, line: str) -> None:
        if not line:
            return
        if not line.startswith("/") or line.startswith("//"):
            await self.say(line[1:] if line.startswith("//") else line)
            return
        verb, _, rest = line.partition(" ")
        argument = rest.strip()
        directory = self.server.directory
        match verb:
            case "/nick":
                new = check_name("nick", argument)
                if new == self.nick:
                    self.tell(f"* you are {new} already")
                elif await directory.ask(ClaimNick(self.nick, new, self.room_name)):
                    self.tell(f"* you are now {new}")
                    self.nick = new
                else:
                    self.tell(f"! nick {new!r} is taken")
            case "/join":
                name = check_name("room", argument.removeprefix("#"))
                if self.room is not None and not self.room.is_alive:  # it ended under us
                    self.room = self.room_name = None
                if name == self.room_name:
                    self.tell(f"* you are in #{name} already")
                    return
                joined = await directory.ask(Join(self.nick, self.user, name, self.room_name))
                self.room, self.room_name = joined.room, name
                here = ", ".join(joined.members) or "nobody else"
                self.tell(f"* you joined #{name}; here: {here}")
            case "/leave":
                no_argument(verb, argument)
                if self.room_name is None:
                    raise BadLine("you are not in a room")
                await directory.ask(Leave(self.nick, self.room_name))
                self.tell(f"* you left #{self.room_name}")
                self.room = self.room_name = None
            case "/rooms":
                no_argument(verb, argument)
                rooms = await directory.ask(ListRooms())
                listed = ", ".join(f"#{name} ({count})" for name, count in rooms)
                self.tell(f"* rooms: {listed or 'none'}")
            case "/who":
                no_argument(verb, argument)
                room = self.in_room()
                try:
                    members = await room.ask(Who())
                except fearless.ActorStopped:
                    gone, self.room, self.room_name = self.room_name, None, None
                    raise BadLine(f"#{gone} is gone; /join a room") from None
                self.tell(f"* in #{self.room_name}: {', '.join(members)}")
            case "/stats":
                no_argument(verb, argument)
                self.tell(*self.server.stats_lines(self.user))
            case "/help":
                self.tell(*HELP)
            case "/quit":
                self.tell("* bye")
                self.quit = True
            case _:
                raise BadLine(f"unknown command {verb!r}; /help lists them")

    async def say(self, text: str) -> None:
        # send, not tell: a room with a full mailbox makes this client wait (backpressure on
        # the talker), instead of refusing the line
        await self.in_room().send(Say(self.nick, text))

    def in_room(self) -> fearless.ActorRef[RoomMessage]:
        if self.room is None:
            raise BadLine("you are not in a room; /join one first")
        return self.room


def decode(raw: bytes) -> str:
    """A client's line as text: UTF-8, no control characters (a trailing CR is dropped)."""
    raw = raw.removesuffix(b"\r")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = raw[error.start : error.end]
        raise BadLine(
            f"invalid UTF-8 at byte {error.start} ({bad.hex(' ')}): line ignored"
        ) from None
    for i, char in enumerate(line):
        if char != "\t" and unicodedata.category(char) == "Cc":
            raise BadLine(f"control character {char!r} at position {i}: line ignored")
    return line.strip()


def check_name(what: str, name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadLine(f"invalid {what} {name!r}: use 1-24 letters, digits, '-' or '_'")
    return name


def no_argument(verb: str, argument: str) -> None:
    if argument:
        raise BadLine(f"{verb} takes no argument, got {argument!r}")


class ChatServer:
    """The chat service: ``await server.serve()`` runs it until :meth:`shutdown`.

    ``mailbox`` is each user's mailbox capacity (its lines in waiting before the oldest are
    dropped); ``max_line`` the longest line accepted, in bytes; ``send_buffer`` sets
    ``SO_SNDBUF`` on each client's socket (``None``: the system's, which grows to megabytes, so
    a slow client shows up later); ``flush_timeout`` bounds how long a departing client's
    pending lines may take to write before they go to dead letters.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mailbox: int = 256,
        max_line: int = 1024,
        send_buffer: int | None = None,
        flush_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.mailbox = fearless.Mailbox(mailbox, overflow="drop_oldest")
        self.max_line = max_line
        self.send_buffer = send_buffer
        self.flush_timeout = flush_timeout
        self.connections: dict[int, Connection] = {}
        self.accepted = 0
        self.dead_letters = DeadLetterCounts()
        self._system: fearless.ActorSystem | None = None
        self._directory: fearless.ActorRef[DirectoryMessage] | None = None
        self._accepting: anyio.CancelScope | None = None
        self._closing = False

    @property
    def system(self) -> fearless.ActorSystem:
        if self._system is None:
            raise RuntimeError("the chat server is not running")
        return self._system

    @property
    def directory(self) -> fearless.ActorRef[DirectoryMessage]:
        if self._directory is None:
            raise RuntimeError("the chat server is not running")
        return self._directory

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until :meth:`shutdown`; ``task_status.started`` gets the bound
        ``(host, port)``.

        Cancellation: cancelling it closes every connection at once, without telling the
        clients, and kills the actors; :meth:`shutdown` is the graceful way.
        """
        self._accepting = anyio.CancelScope()
        if self._closing:
            self._accepting.cancel()
        async with fearless.ActorSystem(name="chat") as system:
            self._system = system
            with system.dead_letters() as letters:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._inspect, letters)
                    self._directory = await system.spawn(Directory, name="directory")
                    listener = await anyio.create_tcp_listener(
                        local_host=self.host, local_port=self.port
                    )
                    address = listener.listeners[0].extra(SocketAttribute.local_address)
                    async with anyio.create_task_group() as connections:
                        async with listener:
                            with self._accepting:
                                task_status.started((str(address[0]), int(address[1])))
                                await listener.serve(self._connection, task_group=connections)
                        # Shutting down: the listener is closed; end every connection (each
                        # tells its client and writes what is pending first).
                        for connection in list(self.connections.values()):
                            connection.reader.cancel()
                    tasks.cancel_scope.cancel()  # the dead-letter inspector
        self._system = self._directory = None

    def shutdown(self) -> None:
        """Stop accepting, tell every client, write what is pending for it (within
        ``flush_timeout``), close the sockets, stop the actors; :meth:`serve` then returns."""
        self._closing = True
        if self._accepting is not None:
            self._accepting.cancel()

    async def serve_until_signalled(self) -> None:
        """:meth:`serve`, with SIGINT (Ctrl-C) and SIGTERM calling :meth:`shutdown`; prints the
        bound address once it listens. Cancellation: as :meth:`serve`."""
        async with anyio.create_task_group() as tg:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                host, port = await tg.start(self.serve)
                print(f"chat server listening on {host}:{port}", flush=True)
                async for signum in signals:
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    self.shutdown()
                    break
        print("chat server stopped", flush=True)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            if self.send_buffer is not None:
                raw = stream.extra(SocketAttribute.raw_socket)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            self.accepted += 1
            number = self.accepted
            user = await self.system.spawn(
                functools.partial(self.user_actor, number, stream),
                name=f"user:{number}",
                mailbox=self.mailbox,  # fearless.Mailbox(256, overflow="drop_oldest")
                restart="temporary",  # a User that fails (a bug) ends its connection
                shutdown=self.flush_timeout,
            )
            connection = Connection(self, number, stream, user)
            self.connections[number] = connection
            if self._closing:  # shutdown began while the user started: end it at once
                connection.reader.cancel()
            try:
                await self._run(connection)
            finally:
                del self.connections[number]

    def user_actor(self, number: int, stream: anyio.abc.ByteSendStream) -> User:
        """The ``User`` actor of connection ``number`` (the tests give one a gated writer)."""
        return User(stream)

    async def _run(self, connection: Connection) -> None:
        user = connection.user
        connection.nick = await self.directory.ask(Register())
        connection.tell(f"* welcome, {connection.nick}! /help lists the commands")
        async with anyio.create_task_group() as tg:

            async def end_with_user() -> None:
                # The User actor ends without us (it killed itself: the client is gone): so
                # does the connection.
                await user.wait_stopped()
                connection.reader.cancel()

            tg.start_soon(end_with_user)
            broken = False
            with connection.reader:
                try:
                    await connection.read_lines()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    broken = True  # reset by the client: what is pending cannot be delivered
            tg.cancel_scope.cancel()
        if self._closing:  # no leaving rooms one by one: they all stop with the server
            connection.tell("* the server is shutting down: goodbye")
        else:
            await self.directory.ask(Leave(connection.nick, connection.room_name, gone=True))
        if broken:
            user.kill()  # its queued lines go to dead letters (ACTOR_STOPPED)
        else:
            user.stop()  # after the lines queued for it: they are written first
            with anyio.move_on_after(self.flush_timeout):
                await user.wait_stopped()
            user.kill()  # (no-op if it has stopped) its client is not reading: dead letters
        await user.wait_stopped()

    async def _inspect(self, letters: fearless.Subscription[fearless.DeadLetter]) -> None:
        """Count and log every dead letter, by reason. A line dropped for a slow client is
        expected (DEBUG); anything else is worth a line in the log (INFO)."""
        counts = self.dead_letters
        while True:
            try:
                letter = await letters.receive()
            except fearless.Lagged as lagged:
                counts.uninspected += lagged.missed
                log.warning("the dead-letter inspector missed %d letters", lagged.missed)
                continue
            except anyio.EndOfStream:
                return
            counts.by_reason[letter.reason.value] += 1
            counts.by_recipient[letter.recipient] += 1
            level = (
                logging.DEBUG
                if letter.reason is fearless.DeadLetterReason.DROPPED_OLDEST
                else logging.INFO
            )
            log.log(
                level,
                "dead letter for %s (%s): %r",
                letter.recipient,
                letter.reason.value,
                letter.message,
            )

    def stats_lines(self, user: fearless.ActorRef[str]) -> list[str]:
        """What ``/stats`` answers ``user`` with."""
        system = self.system
        counts = self.dead_letters
        reasons = " ".join(f"{reason}={n}" for reason, n in sorted(counts.by_reason.items()))
        lagged = f", {counts.uninspected} not inspected" if counts.uninspected else ""
        dropped = sum(c.user.mailbox_statistics().dropped for c in self.connections.values())
        mine = user.mailbox_statistics()
        return [
            f"* users: {len(self.connections)}, dead letters: {system.dead_letter_count}"
            f" ({reasons or 'none'}{lagged})",
            f"* lines dropped for slow clients connected now: {dropped}",
            f"* your mailbox: {mine.depth}/{mine.capacity} queued, peak {mine.peak_depth},"
            f" dropped {mine.dropped} ({mine.overflow})",
        ]


# -- the command line ------------------------------------------------------------------------------


def run(server: ChatServer, backend: Backend) -> None:
    """Run ``server`` on ``backend`` until SIGINT or SIGTERM."""
    options: dict[str, Any] = {}
    if backend == "uvloop":
        import uvloop

        options["loop_factory"] = uvloop.new_event_loop
    anyio.run(
        server.serve_until_signalled,
        backend="trio" if backend == "trio" else "asyncio",
        backend_options=options,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A TCP chat server built on fearless actors.")
    parser.add_argument("--backend", choices=BACKENDS, default="asyncio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (the default) picks a free port")
    parser.add_argument("--mailbox", type=int, default=256, help="each user's mailbox capacity")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    run(ChatServer(host=args.host, port=args.port, mailbox=args.mailbox), args.backend)


if __name__ == "__main__":
    main(sys.argv[1:])
