"""``fearless.nats.connect``: one process's membership in a named system, over one NATS connection.

A :class:`Node` owns a nats-py connection (on the loop :class:`ClientLoop` picks), its JetStream
context, and, when no URL was given, the embedded :class:`NatsServer` it started. Everything a node
opens (durable channels, cells) is scoped by the system's name: the subjects, streams and buckets
of two systems on one NATS cluster never meet.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import ssl
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, overload

import anyio

from .._actors._ref import ActorRef
from .._channels._broadcast import Subscription
from ._actors import Publication, RemoteRef, Returns
from ._broadcast import Publisher, Subscriber, check_replay, stream_of, subject_of
from ._cells import DistributedCell, DistributedInt
from ._channel import DurableReceiver, DurableSender, _DurableChannel
from ._loop import ClientLoop
from ._mailbox import delete_mailbox
from ._registry import ClusterSnapshot, Registry
from ._server import NatsServer

if TYPE_CHECKING:
    from .._actors._system import ActorSystem

__all__ = ["Node", "connect"]

T = TypeVar("T")
M = TypeVar("M")

logger = logging.getLogger("fearless.nats")

NAME = re.compile(r"[A-Za-z0-9_-]+")
# A system's name is the first part of its stream names (FEARLESS_CH_<system>_<channel>): without
# "_" in it, two systems can never make the same stream name.
SYSTEM_NAME = re.compile(r"[A-Za-z0-9-]+")
# Stream names (FEARLESS_CH_<system>_<name>) are at most 255 characters, and a subject with its
# reply subject must fit NATS's 4 KB protocol line.
MAX_SYSTEM_NAME = 64
MAX_NAME = 128


# The longest ack_wait of a durable mailbox (seconds): the server counts it in nanoseconds.
MAX_ACK_WAIT = 30 * 86400.0

# How many times the first connection tries each server before connect() gives up.
CONNECT_ATTEMPTS = 3


class ConnectFailed(ConnectionError):
    """The first connection to the system's servers failed: none answered, or each refused (the
    message names each distinct error: an authorization violation, a TLS failure, a refused
    connection...)."""


def check_name(what: str, name: object) -> str:
    """A system, channel or cell name: letters, digits, ``_`` and ``-`` (they become parts of
    subjects and stream names)."""
    if what == "system":
        if not isinstance(name, str) or not SYSTEM_NAME.fullmatch(name):
            raise ValueError(f"system name must be letters, digits or '-', not {name!r}")
        if len(name) > MAX_SYSTEM_NAME:
            raise ValueError(f"system name must be at most {MAX_SYSTEM_NAME} characters: {name!r}")
        return name
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"{what} name must be letters, digits, '_' or '-', not {name!r}")
    if len(name) > MAX_NAME:
        raise ValueError(f"{what} name must be at most {MAX_NAME} characters: {name!r}")
    return name


class Node:
    """One process's connection to a fearless system on NATS. Made by :func:`connect`."""

    def __init__(
        self,
        servers: list[str] | None,
        system: str,
        options: dict[str, Any],
        server: NatsServer | None,
        request_timeout: float,
        actor_system: ActorSystem | None = None,
    ) -> None:
        self.system = check_name("system", system)
        # Where the tells this node sends that come back undelivered go (dead letters).
        self.actor_system = actor_system
        self._servers = servers
        self._options = options
        self._server = server
        self._own_server = False
        self.request_timeout = request_timeout
        self._loop: ClientLoop | None = None
        self._nc: Any = None
        self._js: Any = None
        self._channels: list[_DurableChannel[Any]] = []
        self._cells: list[DistributedCell[Any]] = []
        self._bucket: Any = None
        self._subscribers: list[Subscriber[Any]] = []
        self._publishers: list[Publisher[Any]] = []
        # Called on the client's loop after a reconnection (pull requests die with a connection).
        self.on_reconnect: list[Callable[[], object]] = []
        self.reconnections = 0  # how often the connection was lost and made again
        self.registry = Registry(self)
        self.returns = Returns(self)
        self.closed = False

    # -- the connection ---------------------------------------------------------------------

    @property
    def server(self) -> NatsServer | None:
        """The embedded server, when this node started one (or was given one)."""
        return self._server

    @property
    def url(self) -> str:
        """The URL of the server the connection uses now."""
        nc = self._nc
        if nc is None or nc.connected_url is None:
            return (self._servers or ["?"])[0]
        url = nc.connected_url
        return f"{url.scheme}://{url.hostname}:{url.port}"

    @property
    def id(self) -> str:
        """This node's id in the registry (``<pid>-<random>``): ``PublishedActor.node``."""
        return self.registry.node_id

    @property
    def max_payload(self) -> int:
        """The largest payload the server accepts, in bytes."""
        return int(self._nc.max_payload)

    @property
    def client_loop(self) -> ClientLoop:
        if self._loop is None or self.closed:
            raise anyio.ClosedResourceError
        return self._loop

    @property
    def jetstream(self) -> Any:
        """The nats-py JetStream context (use it on the client's loop: ``client_loop.call``)."""
        return self._js

    @property
    def connection(self) -> Any:
        """The nats-py connection (use it on the client's loop: ``client_loop.call``)."""
        return self._nc

    async def __aenter__(self) -> Self:
        import nats

        if self._servers is None:
            if self._server is None:
                self._server = NatsServer()
                self._own_server = True
            if not self._server.running:
                await anyio.to_thread.run_sync(self._server.start)
            self._servers = [self._server.url]
        loop = self._loop = ClientLoop.start()
        options = dict(self._options)
        reconnects = options.pop("max_reconnect_attempts")
        errors: list[Exception] = []  # the first connection's, to name in ConnectFailed

        async def error(exc: Exception) -> None:
            if self._nc is None:
                errors.append(exc)
            await _log_error(exc)

        try:
            try:
                # The first connection tries each server a bounded number of times (nats-py would
                # retry it forever); the connection's own reconnect policy applies after that.
                self._nc = await loop.call(
                    nats.connect,
                    servers=self._servers,
                    name=options.pop("name", None) or f"fearless:{self.system}:{os.getpid()}",
                    error_cb=error,
                    disconnected_cb=_log_event("disconnected"),
                    reconnected_cb=self._reconnected,
                    max_reconnect_attempts=CONNECT_ATTEMPTS,
                    allow_reconnect=reconnects != 0,
                    **options,
                )
            except Exception as exc:
                seen = list(dict.fromkeys(str(error) or repr(error) for error in errors))
                cause = errors[-1] if errors else exc
                raise ConnectFailed(
                    f"could not connect to {', '.join(self._servers)} for the system "
                    f"{self.system!r}: {'; '.join(seen) or repr(exc)}"
                ) from cause
            self._nc.options["max_reconnect_attempts"] = reconnects
            self._js = self._nc.jetstream(timeout=self.request_timeout)
            await loop.call(self.returns.start)
        except BaseException:
            await self._shut_down()
            raise
        return self

    async def _reconnected(self) -> None:
        self.reconnections += 1
        logger.info("fearless.nats: reconnected to %s", self.url)
        for callback in list(self.on_reconnect):
            callback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what this node opened, the connection, and the embedded server it started.

        Cancellation: shielded; the node is closed when this returns. Items its receivers had
        fetched and not handed out are handed back to the server for redelivery.
        """
        if self.closed:
            return
        with anyio.CancelScope(shield=True):
            try:
                with anyio.move_on_after(self.request_timeout):  # what was queued: published
                    for publisher in self._publishers:
                        await publisher.aclose()
                    await self.returns.outbox.flushed()
                for channel in self._channels:
                    await channel.aclose()
                for cell in self._cells:
                    await cell.aclose()
                for subscriber in self._subscribers:
                    await self.client_loop.call(subscriber.stop)
            finally:
                self.registry.stop()
                self.returns.stop()
                self.closed = True
                await self._shut_down()

    async def _shut_down(self) -> None:
        loop = self._loop
        if self._nc is not None and loop is not None:
            try:
                await loop.call(loop.settle_background, 2.0)
                await loop.call(self._nc.close)
            except Exception:  # a connection that is already gone has nothing to close
                logger.debug("fearless.nats: closing the connection failed", exc_info=True)
        if loop is not None:
            await loop.aclose()
        if self._own_server and self._server is not None:
            await anyio.to_thread.run_sync(self._server.close)

    # -- what a node opens ------------------------------------------------------------------

    async def open_channel(
        self,
        name: str,
        item_type: type[T],
        *,
        capacity: float = math.inf,
        ack_wait: float = 30.0,
        prefetch: int = 16,
    ) -> tuple[DurableSender[T], DurableReceiver[T]]:
        """Open the durable channel ``name`` of this system: a sender and a receiver.

        The channel is a JetStream stream, created by the first process that opens it and shared
        by every process that opens the same name with the same capacity (another capacity raises
        ``ValueError``; ``math.inf`` is unbounded). Items are ``item_type`` values (msgspec
        structs, dataclasses, plain types), encoded as JSON.

        ``ack_wait``: seconds after which an item handed to a receiver that has not acknowledged
        it is delivered again (its process may have died). ``prefetch``: how many items a
        receiver fetches at once (fetched items are held for this process; a receiver that closes
        hands them back at once, a process that dies hands them back after ``ack_wait``).

        Cancellation: creating the stream and its consumer is idempotent; a cancelled open leaves
        at most a stream and a consumer that the next open reuses.
        """
        channel = await self._open(name, item_type, capacity, ack_wait, prefetch)
        return channel.sender(), await channel.receiver()

    async def open_sender(
        self, name: str, item_type: type[T], *, capacity: float = math.inf
    ) -> DurableSender[T]:
        """Open only the sending side of the durable channel ``name`` (see :meth:`open_channel`).

        Cancellation: as :meth:`open_channel`.
        """
        channel = await self._open(name, item_type, capacity, 30.0, 16)
        return channel.sender()

    async def open_receiver(
        self,
        name: str,
        item_type: type[T],
        *,
        capacity: float = math.inf,
        ack_wait: float = 30.0,
        prefetch: int = 16,
    ) -> DurableReceiver[T]:
        """Open only the receiving side of the durable channel ``name`` (see
        :meth:`open_channel`).

        Cancellation: as :meth:`open_channel`.
        """
        channel = await self._open(name, item_type, capacity, ack_wait, prefetch)
        return await channel.receiver()

    async def _open(
        self, name: str, item_type: Any, capacity: float, ack_wait: float, prefetch: int
    ) -> _DurableChannel[Any]:
        check_name("channel", name)
        if capacity != math.inf and (
            not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1
        ):
            raise ValueError(f"capacity must be a positive int or math.inf, not {capacity!r}")
        if not (isinstance(ack_wait, int | float) and 0 < ack_wait < math.inf):
            raise ValueError(f"ack_wait must be a positive number of seconds, not {ack_wait!r}")
        if not isinstance(prefetch, int) or isinstance(prefetch, bool) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive int, not {prefetch!r}")
        channel = _DurableChannel[Any](self, name, item_type, capacity, ack_wait, prefetch)
        await channel.create()
        self._channels.append(channel)
        return channel

    async def cell(self, name: str, item_type: type[T], initial: T) -> DistributedCell[T]:
        """Open the distributed cell ``name`` of this system, holding ``item_type`` values.

        The first process to open it stores ``initial``; later ones find the value it holds. See
        :class:`DistributedCell` for what reads, writes and waits guarantee.

        Cancellation: creating the cell is idempotent; a cancelled open leaves at most a cell
        that the next open finds.
        """
        cell = DistributedCell[T](self, check_name("cell", name), item_type, await self._kv())
        await cell._create(initial)
        self._cells.append(cell)
        return cell

    async def int_cell(self, name: str, initial: int = 0) -> DistributedInt:
        """Open the distributed integer ``name`` of this system (see :meth:`cell`).

        Cancellation: as :meth:`cell`.
        """
        cell = DistributedInt(self, check_name("cell", name), int, await self._kv())
        await cell._create(initial)
        self._cells.append(cell)
        return cell

    async def open_publisher(
        self,
        name: str,
        item_type: type[T],
        *,
        keep: int | None = None,
        max_age: float | None = None,
    ) -> Publisher[T]:
        """Open a publisher of the broadcast ``name`` of this system (see :class:`Publisher`).

        ``keep`` (items) and ``max_age`` (seconds) make the broadcast replayable: a JetStream
        stream keeps its last ``keep`` items, none older than ``max_age``, for subscribers that
        ask for ``replay``. The first opener with ``keep`` or ``max_age`` creates the stream;
        another opener's limits must match (``ValueError``).

        Cancellation: creating the stream is idempotent.
        """
        check_name("broadcast", name)
        if keep is not None or max_age is not None:
            await self._keep_broadcast(name, keep, max_age)
        publisher = Publisher[T](self, name, item_type)
        self._publishers.append(publisher)
        return publisher

    async def _keep_broadcast(self, name: str, keep: int | None, max_age: float | None) -> None:
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig
        from nats.js.errors import BadRequestError

        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
            raise ValueError(f"keep must be a positive int, not {keep!r}")
        if max_age is not None and not (isinstance(max_age, int | float) and max_age > 0):
            raise ValueError(f"max_age must be a positive number of seconds, not {max_age!r}")
        config = StreamConfig(
            name=stream_of(self.system, name),
            subjects=[subject_of(self.system, name)],
            max_msgs=keep if keep is not None else -1,
            max_age=max_age,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
        )
        try:
            await self.client_loop.call(self._js.add_stream, config)
        except BadRequestError as exc:
            raise ValueError(
                f"the broadcast {name!r} of the system {self.system!r} is kept with other "
                f"limits ({exc.description})"
            ) from None

    async def subscribe(
        self,
        name: str,
        item_type: type[T],
        *,
        capacity: int = 256,
        on_lag: Literal["error", "drop"] = "error",
        replay: Literal["all"] | int | datetime.datetime | None = None,
    ) -> Subscription[T]:
        """Subscribe this process to the broadcast ``name``: a local ``fearless.Subscription``
        fed with every item published from now on (at-most-once; see :class:`Publisher`).

        ``capacity`` and ``on_lag`` are the local ring's (``"block"`` is refused: a process
        cannot hold the network back). ``replay`` starts from items the broadcast kept (its
        publisher was opened with ``keep`` or ``max_age``): ``"all"``, a stream sequence number,
        or a ``datetime``; then goes on with the live ones, in order.

        Cancellation: a cancelled subscribe leaves no subscription.
        """
        check_name("broadcast", name)
        if on_lag not in ("error", "drop"):
            raise ValueError(f'on_lag must be "error" or "drop" across processes, not {on_lag!r}')
        replay = check_replay(replay)
        subscriber = Subscriber[T](self, name, item_type, capacity, on_lag)
        try:
            await self.client_loop.call(subscriber.start, replay, settle=True)
        except BaseException as exc:
            subscriber.discard()
            if not isinstance(exc, Exception):
                raise
            from nats.js.errors import NotFoundError

            if isinstance(exc, NotFoundError) or "no stream" in str(exc).lower():
                raise ValueError(
                    f"the broadcast {name!r} keeps no items to replay: open its publisher with "
                    "keep= or max_age="
                ) from None
            raise
        self._subscribers.append(subscriber)
        return subscriber.subscription

    def publish(
        self,
        ref: ActorRef[M],
        name: str,
        message_type: Any,
        *,
        pool: bool = False,
        durable: bool = False,
        capacity: float = math.inf,
        ack_wait: float = 30.0,
    ) -> Publication:
        """Make the local actor ``ref`` reachable from every process of the system as ``name``
        while ``async with node.publish(...):`` runs (see :class:`Publication`). ``message_type``
        is what the actor takes: a class or a union of classes. ``pool=True`` shares the name
        with every other process publishing it with ``pool=True``: each message goes to one.

        ``durable=True`` keeps its tells and sends in a durable mailbox (a JetStream work queue
        that outlives the process: at-least-once, acknowledged once the handler returned)
        holding at most ``capacity`` messages; ``ack_wait`` is how long a message handed to a
        process that does not acknowledge it (it died) waits before it is delivered again: keep
        it longer than the actor's slowest handler. A name published durable once must be
        published durable (``ValueError`` otherwise) until ``delete_mailbox(name)``.

        The node's ``actor_system`` (where tells that come back undelivered become dead
        letters) is ``ref``'s system if the node had none.

        Cancellation: entering subscribes and registers (a cancelled entry leaves nothing);
        leaving unregisters, unsubscribes, then waits for the messages in progress (at most the
        node's ``request_timeout``).
        """
        check_name("actor", name)
        if not isinstance(ref, ActorRef):
            raise TypeError(f"publish takes a local ActorRef, not {ref!r}")
        for flag, value in (("pool", pool), ("durable", durable)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, not {value!r}")
        if isinstance(capacity, bool) or not (
            capacity == math.inf or (isinstance(capacity, int) and capacity > 0)
        ):
            raise ValueError(f"capacity must be a positive int or math.inf, not {capacity!r}")
        if isinstance(ack_wait, bool) or not (
            isinstance(ack_wait, int | float) and 0 < ack_wait <= MAX_ACK_WAIT
        ):
            raise ValueError(
                f"ack_wait must be a number of seconds above 0 and at most {MAX_ACK_WAIT:.0f} "
                f"(30 days), not {ack_wait!r}"
            )
        if not durable and capacity != math.inf:
            raise ValueError(
                "capacity is a durable mailbox's: the mailbox of a core publication is the "
                "actor's own (spawn's capacity)"
            )
        if self.actor_system is None:
            self.actor_system = ref._runtime.system
        return Publication(
            self,
            ref,
            name,
            message_type,
            pool=pool,
            durable=durable,
            capacity=capacity,
            ack_wait=ack_wait,
        )

    @overload
    async def lookup(self, name: str, message_type: type[M]) -> RemoteRef[M]: ...

    @overload
    async def lookup(self, name: str, message_type: Any) -> RemoteRef[Any]: ...

    async def lookup(self, name: str, message_type: Any) -> RemoteRef[Any]:
        """A ref to the actor published as ``name``, checked against the registry: raises
        ``LookupError`` if no live process serves the name now.

        Cancellation: a read; a cancelled lookup changed nothing.
        """
        check_name("actor", name)
        entries = await self.registry.entries(name)
        if not any(entry["alive"] for entry in entries):
            state = "its node is down" if entries else "nobody publishes it"
            raise LookupError(f"no live actor {name!r} in the system {self.system!r} ({state})")
        return RemoteRef[Any](self, name, message_type)

    @overload
    def actor(self, name: str, message_type: type[M]) -> RemoteRef[M]: ...

    @overload
    def actor(self, name: str, message_type: Any) -> RemoteRef[Any]: ...

    def actor(self, name: str, message_type: Any) -> RemoteRef[Any]:
        """A ref to the actor published as ``name`` in some process of the system; its
        ``tell``, ``send`` and ``ask`` take ``message_type`` (a class, or a union of classes;
        checked at the sender). Typed ``RemoteRef[M]`` for a class ``M``."""
        check_name("actor", name)
        return RemoteRef[Any](self, name, message_type)

    async def cluster_snapshot(self) -> ClusterSnapshot:
        """Every actor published in the system, as the registry has it now: each publication's
        node, pool and durable flags, liveness, and the actor's state and mailbox depth at its
        last heartbeat (``print`` it for a table).

        Cancellation: a read; a cancelled snapshot changed nothing.
        """
        return await self.registry.snapshot()

    async def delete_mailbox(self, name: str) -> bool:
        """Delete the durable mailbox of the actor ``name`` and every message in it; False if
        it had none. Publications running with it stop receiving from it.

        Cancellation: the deletion may have happened.
        """
        check_name("actor", name)
        return await delete_mailbox(self, name)

    async def _kv(self) -> Any:
        """The system's key-value bucket, created on first use."""
        if self._bucket is None:
            from nats.js.api import KeyValueConfig

            config = KeyValueConfig(bucket=f"fearless_{self.system}", history=1)
            self._bucket = await self.client_loop.call(self._js.create_key_value, config)
        return self._bucket

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.url
        return f"<fearless.nats.Node system={self.system!r} {state}>"


def connect(
    url: str | Sequence[str] | None = None,
    *,
    system: str,
    name: str | None = None,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    credentials: str | os.PathLike[str] | None = None,
    nkeys_seed: str | os.PathLike[str] | None = None,
    tls: ssl.SSLContext | None = None,
    tls_hostname: str | None = None,
    connect_timeout: float = 2.0,
    reconnect_wait: float = 0.25,
    max_reconnect_attempts: int = -1,
    request_timeout: float = 5.0,
    server: NatsServer | None = None,
    actor_system: ActorSystem | None = None,
) -> Node:
    """Join the system ``system``: ``async with fearless.nats.connect(url, system=...) as node:``.

    ``url``: a NATS server (``nats://host:4222``, ``tls://...``) or a list of a cluster's servers.
    None starts an embedded server (:class:`NatsServer`: loopback, a random port, a temporary
    JetStream store, stopped when the node closes), or uses ``server`` if given.

    The connection options pass through to nats-py: ``user``/``password``, ``token``,
    ``credentials`` (a ``.creds`` file), ``nkeys_seed`` (a seed file), ``tls`` (an
    ``ssl.SSLContext``) and ``tls_hostname``. The client reconnects forever by default
    (``max_reconnect_attempts=-1``), waiting ``reconnect_wait`` seconds between attempts; while it
    is disconnected, sends wait and retry (see :class:`DurableSender`). ``request_timeout`` bounds
    each request to the server (a stored publish, a fetch).

    ``actor_system``: the local ``ActorSystem`` whose dead letters get this node's remote tells
    that come back undelivered (nobody serves the name, a full mailbox); without one, the first
    actor this node publishes gives its system, and until then such tells are logged.

    Cancellation: a cancelled ``async with`` entry leaves nothing running: the connection and an
    embedded server it started are closed.
    """
    servers: list[str] | None
    if url is None:
        servers = None
    elif isinstance(url, str):
        servers = [url]
    else:
        servers = list(url)
        if not servers or not all(isinstance(u, str) for u in servers):
            raise ValueError(f"url must be a URL or a non-empty list of URLs, not {url!r}")
    if url is not None and server is not None:
        raise ValueError("pass a url or an embedded server, not both")
    options: dict[str, Any] = {
        "name": name,
        "connect_timeout": connect_timeout,
        "reconnect_time_wait": reconnect_wait,
        "max_reconnect_attempts": max_reconnect_attempts,
    }
    if user is not None:
        options["user"] = user
    if password is not None:
        options["password"] = password
    if token is not None:
        options["token"] = token
    if credentials is not None:
        options["user_credentials"] = os.fspath(credentials)
    if nkeys_seed is not None:
        options["nkeys_seed"] = os.fspath(nkeys_seed)
    if tls is not None:
        options["tls"] = tls
    if tls_hostname is not None:
        options["tls_hostname"] = tls_hostname
    return Node(servers, system, options, server, request_timeout, actor_system)


async def _log_error(exc: Exception) -> None:
    logger.warning("fearless.nats: connection error: %s", exc)


def _log_event(what: str) -> Any:
    async def log() -> None:
        logger.info("fearless.nats: %s", what)

    return log
