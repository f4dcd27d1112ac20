"""An inventory HTTP service whose products are actors: fearless behind a real ASGI server.

    python examples/inventory_service.py --backend asyncio --port 8000   # uvicorn on asyncio
    python examples/inventory_service.py --backend uvloop --port 8000    # uvicorn on uvloop
    python examples/inventory_service.py --backend trio --port 8000      # hypercorn on trio
    python examples/inventory_service.py --port 0 --chaos --stock apple=10 --mailbox 4

``--port 0`` picks a free port. Once the service accepts requests it prints its URL on one line
of stdout (``http://127.0.0.1:PORT``); everything else (logs) goes to stderr. Ctrl-C or SIGTERM
stops it gracefully: the server stops taking connections and finishes the requests in flight,
then the actor system stops every actor, and the process prints ``stopped`` and exits with 0. A
second signal stops it at once (exit status 1).

The design (docs/examples/inventory.md explains it at length):

- **An actor per product**, under one ``fearless.Supervisor`` (with an ``OrderBook`` actor
  that numbers and keeps the orders). A product's handlers are the only code that changes its
  stock, one message at a time, so two orders can never both take the last unit.
- **An order is coordinated in the request's own task**: it asks each product to ``Reserve``
  its quantity, then the order book to ``Record`` it; if any step fails, it asks the products
  already reserved to ``Release`` what they gave (all or nothing). The order runs shielded from
  cancellation, so a client that hangs up halfway cannot leave stock reserved for an order that
  was never recorded.
- **Backpressure shows as 503**: every mailbox is bounded (``--mailbox``); a request that would
  have to wait for room in a full one is answered ``503 Service Unavailable`` with
  ``Retry-After`` at once, having reserved nothing. A ``Release`` (undoing a reservation) is
  never shed: it waits for room, because dropping it would lose stock.
- **State that must survive a restart lives outside the actor instance**, in a ``Store`` (a
  stand-in for a database) that the actor writes through to. A restart builds a new instance
  from its factory, which hands it the same record: nothing sold is forgotten.
- ``GET /health`` is the actor system's ``snapshot()`` as JSON (each actor's state, mailbox
  depth, failures, restarts), with the latest dead letters. It never asks an actor, so a stuck
  actor cannot make it hang.

The API (every error is JSON ``{"error": code, "detail": message}``):

===============================================  ==============================================
``GET /products``                                every product: ``{"sku", "available", "sold"}``
``GET /products/{sku}``                          one product
``POST /products/{sku}/restock``                 ``{"quantity": n}``: adds stock
``POST /orders``                                 ``{"lines": [{"sku": "apple", "quantity": 2}]}``:
                                                 201 and the order, all or nothing
``GET /orders/{id}``                             an order placed earlier
``GET /health``                                  the actor system's snapshot (200, or 503 if an
                                                 actor is missing)
``POST /chaos/products/{sku}/crash``             (``--chaos`` only) the product's handler raises:
                                                 its supervisor restarts it
``POST /chaos/products/{sku}/hold``              (``--chaos`` only) the product's handler waits
                                                 on a gate, so its mailbox fills up
``POST /chaos/products/{sku}/release``           (``--chaos`` only) opens that gate
===============================================  ==============================================

Statuses: 400 malformed JSON, 404 unknown product or order, 405 wrong method, 409 out of stock,
422 invalid body (a negative quantity, an unknown product in an order...), 503 busy (a full
mailbox; with ``Retry-After``) or unavailable (a product whose actor has stopped for good).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import signal
import socket
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import anyio
import hypercorn.config
import hypercorn.trio
import hypercorn.typing
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import fearless

log = logging.getLogger("inventory")

R = TypeVar("R")

# -- the data: what must survive a restart ---------------------------------------------------------


@dataclass(frozen=True)
class StockLevel:
    """What a product answers: a copy of its stock at the time it handled the message."""

    sku: str
    available: int
    sold: int


@dataclass
class StockRecord:
    """One product's row in the store. Only that product's actor changes it."""

    sku: str
    available: int
    sold: int = 0

    def level(self) -> StockLevel:
        return StockLevel(self.sku, self.available, self.sold)


@dataclass(frozen=True)
class Order:
    id: int
    lines: tuple[tuple[str, int], ...]  # (sku, quantity), in the order they were reserved


@dataclass
class Store:
    """A stand-in for a database: the state the actors write through to, so that it outlives
    any instance of them (a restarted actor is a new instance, built by its factory)."""

    stock: dict[str, StockRecord]
    orders: dict[int, Order] = field(default_factory=dict)
    next_order_id: int = 1


# -- the messages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reserve(fearless.Request[StockLevel]):
    """Take ``quantity`` units for an order (refused with ``OutOfStock`` if there are fewer)."""

    quantity: int


@dataclass(frozen=True)
class Release(fearless.Request[StockLevel]):
    """Give back ``quantity`` units an order reserved but did not keep."""

    quantity: int


@dataclass(frozen=True)
class Restock(fearless.Request[StockLevel]):
    quantity: int


@dataclass(frozen=True)
class GetStock(fearless.Request[StockLevel]):
    pass


@dataclass(frozen=True)
class Crash(fearless.Request[None]):
    """Chaos: the handler raises, so the actor fails and its supervisor restarts it."""


@dataclass(frozen=True)
class Hold(fearless.Request[None]):
    """Chaos: the handler sets ``entered``, then waits until ``release`` is set. Meanwhile the
    product's mailbox fills up, as it would behind a slow database call."""

    entered: anyio.Event
    release: anyio.Event


ProductMessage = Reserve | Release | Restock | GetStock | Crash | Hold


@dataclass(frozen=True)
class RecordOrder(fearless.Request[Order]):
    lines: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class FindOrder(fearless.Request[Order | None]):
    order_id: int


OrderBookMessage = RecordOrder | FindOrder


# -- the errors, each with its HTTP answer ---------------------------------------------------------


class ApiError(Exception):
    """An error the client gets as JSON: ``{"error": code, "detail": str(self)}``."""

    status = 500
    code = "internal"
    headers: dict[str, str] = {}  # noqa: RUF012 - read only, overridden by Busy

    def response(self) -> JSONResponse:
        body = {"error": self.code, "detail": str(self)}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class MalformedJson(ApiError):
    status, code = 400, "malformed_json"


class NotFound(ApiError):
    status, code = 404, "not_found"


class UnknownProduct(NotFound):
    code = "unknown_product"


class Invalid(ApiError):
    status, code = 422, "invalid"


class OutOfStock(ApiError):
    """Raised in the asker: the product refused a ``Reserve`` with ``fearless.ErrorReply``,
    which fails the request, not the actor."""

    status, code = 409, "out_of_stock"

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(f"{requested} x {sku!r} requested, {available} available")
        self.sku, self.requested, self.available = sku, requested, available


class Busy(ApiError):
    """The actor's mailbox is full: come back later. Nothing was enqueued."""

    status, code = 503, "busy"
    headers = {"Retry-After": "1"}  # noqa: RUF012


class Unavailable(ApiError):
    """The actor has stopped for good (it failed more often than its supervisor allows)."""

    status, code = 503, "unavailable"


class ChaosCrash(RuntimeError):
    """What a product raises when the chaos endpoint crashes it."""


# -- the actors ------------------------------------------------------------------------------------


class Product(fearless.Actor[ProductMessage]):
    """One product. Its handlers are the only code that changes its ``StockRecord``; since an
    actor handles one message at a time, a check and the change that follows it can never be
    interleaved with another order's (no lock, no lost update, no overselling)."""

    def __init__(self, record: StockRecord) -> None:
        self.record = record  # handed in by the factory: the same record after a restart

    async def on_restart(self, error: BaseException) -> None:
        log.warning(
            "%s restarted after %r; its stock is kept: %d available",
            self.context.name,
            error,
            self.record.available,
        )

    async def handle(self, message: ProductMessage) -> StockLevel | fearless.ErrorReply | None:
        record = self.record
        match message:
            case Reserve(quantity):
                if quantity > record.available:
                    # Refuse the ask without failing: the asker gets OutOfStock raised.
                    return fearless.ErrorReply(OutOfStock(record.sku, quantity, record.available))
                record.available -= quantity
                record.sold += quantity
            case Release(quantity):
                record.available += quantity
                record.sold -= quantity
            case Restock(quantity):
                record.available += quantity
            case GetStock():
                pass
            case Crash():
                raise ChaosCrash(f"chaos: {record.sku!r} crashed on purpose")
            case Hold(entered, release):
                entered.set()
                await release.wait()
                return None
        return record.level()


class OrderBook(fearless.Actor[OrderBookMessage]):
    """Numbers the orders and keeps them (in the store)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def handle(self, message: OrderBookMessage) -> Order | None:
        store = self.store
        match message:
            case RecordOrder(lines):
                order = Order(store.next_order_id, lines)
                store.orders[order.id] = order
                store.next_order_id += 1
                return order
            case FindOrder(order_id):
                return store.orders.get(order_id)


def product_name(sku: str) -> str:
    return f"product:{sku}"


ORDER_BOOK = "orders"


# -- the service: HTTP requests in, asks out -------------------------------------------------------


class Gates:
    """Chaos: the ``Hold`` gates open at the moment, by sku."""

    def __init__(self) -> None:
        self.open: dict[str, anyio.Event] = {}

    def release(self, sku: str) -> bool:
        gate = self.open.pop(sku, None)
        if gate is not None:
            gate.set()
        return gate is not None

    def release_all(self) -> None:
        for sku in list(self.open):
            self.release(sku)


class Inventory:
    """The HTTP endpoints, and the actor system they talk to (alive during the app's lifespan).

    ``mailbox`` is every actor's mailbox capacity; ``max_restarts`` within ``within`` seconds is
    the supervisor's restart intensity, shared by its children (one more and it gives up, and
    the system's guardian restarts it with all its children)."""

    def __init__(
        self,
        stock: dict[str, int],
        *,
        mailbox: int = 64,
        chaos: bool = False,
        max_restarts: int = 10,
        within: float = 10.0,
    ) -> None:
        self.store = Store({sku: StockRecord(sku, units) for sku, units in stock.items()})
        self.mailbox = fearless.Mailbox(mailbox)
        self.chaos = chaos
        self.max_restarts = max_restarts
        self.within = within
        self.gates = Gates()
        self.dead_letters: deque[fearless.DeadLetter] = deque(maxlen=20)
        self.system: fearless.ActorSystem | None = None
        self.stopped_cleanly = False

    # -- the lifespan: the actor system lives as long as the app -----------------------------------

    def supervisor(self) -> fearless.Supervisor:
        """The supervisor's factory: called again if the supervisor itself is restarted, and
        every child's factory hands the new instance the same record of the store."""
        children = [fearless.ChildSpec(lambda: OrderBook(self.store), name=ORDER_BOOK)]
        children += [
            fearless.ChildSpec(functools.partial(Product, record), name=product_name(sku))
            for sku, record in self.store.stock.items()
        ]
        return fearless.Supervisor(
            children, strategy="one_for_one", max_restarts=self.max_restarts, within=self.within
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with fearless.ActorSystem(name="inventory", mailbox=self.mailbox) as system:
            with system.dead_letters() as letters:  # subscribed before anything can fail
                await system.spawn(self.supervisor, name="inventory")
                self.system = system
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self.keep_dead_letters, letters)
                    try:
                        yield
                    finally:
                        self.system = None  # (requests that still come are told 503)
                        self.gates.release_all()  # held handlers finish, so actors stop in time
                        tg.cancel_scope.cancel()
        # Leaving the block stopped every actor gracefully, in reverse start order.
        self.stopped_cleanly = True
        stock = {sku: record.available for sku, record in self.store.stock.items()}
        log.info("actor system stopped; stock available: %s", stock)

    async def keep_dead_letters(self, letters: fearless.Subscription[fearless.DeadLetter]) -> None:
        """Log every dead letter and keep the latest for ``/health``."""
        while True:
            try:
                async for letter in letters:
                    self.dead_letters.append(letter)
                    log.warning(
                        "dead letter for %s (%s): %r", letter.recipient, letter.reason.value, letter
                    )
                return  # the system has closed
            except fearless.Lagged as lagged:
                log.warning("%d dead letters were not seen (too many at once)", lagged.missed)

    # -- asking actors -----------------------------------------------------------------------------

    def actor(self, name: str) -> fearless.ActorRef[Any]:
        """The running actor ``name`` (looked up each time: if the supervisor itself is
        restarted, its children are new actors with new refs)."""
        system = self.system
        ref = None if system is None else system.lookup(name)
        if ref is None:
            raise Unavailable(f"{name} is not running")
        return ref

    def product(self, sku: str) -> fearless.ActorRef[ProductMessage]:
        if sku not in self.store.stock:
            raise UnknownProduct(f"no product {sku!r}")
        return self.actor(product_name(sku))

    async def ask_or_shed(self, ref: fearless.ActorRef[Any], message: fearless.Request[R]) -> R:
        """``ref.ask(message)``, unless the actor's mailbox is full: then ``Busy`` (a 503) at
        once, with nothing enqueued, instead of waiting for room.

        ``ask`` waits for room in a full ``"block"`` mailbox (that is backpressure inside the
        program); at the edge of a service, a client is better told to come back later than
        held while the queue grows. The check and the ask's enqueue run with no await between
        them, so on the event loop nothing can fill the mailbox in between (and if something
        did, the ask would only wait for room: nothing breaks).
        """
        statistics = ref.mailbox_statistics()
        if statistics.depth + statistics.waiting_senders >= statistics.capacity:
            raise Busy(f"{ref.name} has {statistics.depth} messages waiting; try again later")
        try:
            return await ref.ask(message)
        except fearless.ActorStopped:
            raise Unavailable(f"{ref.name} has stopped") from None

    async def place_order(self, lines: dict[str, int]) -> Order:
        """Reserve every line, then record the order; on any failure, release what was
        reserved and raise. Shielded from cancellation: once started, an order either is
        recorded or leaves the stock as it found it, even if the client hangs up."""
        with anyio.CancelScope(shield=True):
            order = await self.reserve_and_record(lines)
        return order

    async def reserve_and_record(self, lines: dict[str, int]) -> Order:
        reserved: list[tuple[str, int]] = []
        try:
            for sku, quantity in lines.items():
                await self.ask_or_shed(self.product(sku), Reserve(quantity))
                reserved.append((sku, quantity))
            return await self.ask_or_shed(self.actor(ORDER_BOOK), RecordOrder(tuple(reserved)))
        except BaseException:
            for sku, quantity in reversed(reserved):  # compensate: all or nothing
                await self.release(sku, quantity)
            raise

    async def release(self, sku: str, quantity: int) -> None:
        """Undo a reservation. Never shed: a plain ``ask`` waits for room in a full mailbox
        (and a restarting product keeps its mailbox: the new instance handles it)."""
        try:
            await self.product(sku).ask(Release(quantity))
        except (fearless.ActorStopped, Unavailable):
            log.error("%d x %r could not be released: product %r is gone", quantity, sku, sku)

    # -- the endpoints -----------------------------------------------------------------------------

    async def list_products(self, request: Request) -> Response:
        levels: dict[str, StockLevel] = {}

        async def get(sku: str) -> None:
            levels[sku] = await self.ask_or_shed(self.product(sku), GetStock())

        async with anyio.create_task_group() as tg:  # ask them all at once
            for sku in self.store.stock:
                tg.start_soon(get, sku)
        return JSONResponse([stock_json(levels[sku]) for sku in self.store.stock])

    async def get_product(self, request: Request) -> Response:
        sku = request.path_params["sku"]
        return JSONResponse(stock_json(await self.ask_or_shed(self.product(sku), GetStock())))

    async def restock(self, request: Request) -> Response:
        sku = request.path_params["sku"]
        ref = self.product(sku)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise Invalid(f"the body must be a JSON object, got {body!r}")
        quantity = positive_int(body.get("quantity"), "quantity")
        return JSONResponse(stock_json(await self.ask_or_shed(ref, Restock(quantity))))

    async def create_order(self, request: Request) -> Response:
        lines = self.order_lines(await read_json(request))
        order = await self.place_order(lines)
        return JSONResponse(order_json(order), status_code=201)

    async def get_order(self, request: Request) -> Response:
        order_id: int = request.path_params["order_id"]
        order = await self.ask_or_shed(self.actor(ORDER_BOOK), FindOrder(order_id))
        if order is None:
            raise NotFound(f"no order {order_id}")
        return JSONResponse(order_json(order))

    async def health(self, request: Request) -> Response:
        system = self.system
        if system is None:
            raise Unavailable("the actor system is not running")
        snapshot = system.snapshot()  # synchronous: asks no actor, so it cannot hang
        running = {actor.name for actor in walk(snapshot.actors)}
        expected = {ORDER_BOOK, *(product_name(sku) for sku in self.store.stock)}
        missing = sorted(expected - running)
        body = {
            "status": "degraded" if missing else "ok",
            "missing": missing,
            "system": snapshot_json(snapshot),
            "recent_dead_letters": [dead_letter_json(letter) for letter in self.dead_letters],
        }
        return JSONResponse(body, status_code=503 if missing else 200)

    # -- chaos (only with --chaos) -----------------------------------------------------------------

    async def chaos_crash(self, request: Request) -> Response:
        sku = request.path_params["sku"]
        try:
            await self.ask_or_shed(self.product(sku), Crash())
        except ChaosCrash as crash:  # an ask gets the exception its handler raised
            return JSONResponse({"crashed": sku, "error": str(crash)})
        raise AssertionError("a Crash always raises")  # pragma: no cover

    async def chaos_hold(self, request: Request) -> Response:
        """Returns once the product's handler is waiting on the gate (its ask would answer
        only when the gate opens, so the message is told, not asked)."""
        sku = request.path_params["sku"]
        ref = self.product(sku)
        if sku in self.gates.open:
            raise Invalid(f"{sku!r} is held already")
        entered, release = anyio.Event(), anyio.Event()
        try:
            ref.tell(Hold(entered, release))
        except fearless.MailboxFull:  # tell never waits: a full mailbox raises at once
            raise Busy(f"{ref.name} has a full mailbox") from None
        self.gates.open[sku] = release
        with anyio.move_on_after(10):
            await entered.wait()
        if not entered.is_set():
            self.gates.release(sku)
            raise Unavailable(f"{ref.name} did not take the hold within 10 s")
        return JSONResponse({"held": sku})

    async def chaos_release(self, request: Request) -> Response:
        sku = request.path_params["sku"]
        if not self.gates.release(sku):
            raise Invalid(f"{sku!r} is not held")
        return JSONResponse({"released": sku})

    # -- input -------------------------------------------------------------------------------------

    def order_lines(self, body: object) -> dict[str, int]:
        """``{"lines": [{"sku": ..., "quantity": ...}, ...]}`` as sku -> quantity (lines of one
        sku added up), in the order given; ``Invalid`` naming the first bad value."""
        if not isinstance(body, dict):
            raise Invalid(f"the body must be a JSON object, got {body!r}")
        lines = body.get("lines")
        if not isinstance(lines, list) or not lines:
            raise Invalid(f"'lines' must be a non-empty list of lines, got {lines!r}")
        order: dict[str, int] = {}
        for i, line in enumerate(lines):
            if not isinstance(line, dict):
                raise Invalid(f"lines[{i}] must be an object, got {line!r}")
            sku = line.get("sku")
            if not isinstance(sku, str):
                raise Invalid(f"lines[{i}].sku must be a string, got {sku!r}")
            if sku not in self.store.stock:
                raise Invalid(f"lines[{i}].sku: no product {sku!r}")
            order[sku] = order.get(sku, 0) + positive_int(
                line.get("quantity"), f"lines[{i}].quantity"
            )
        return order


async def read_json(request: Request) -> object:
    body = await request.body()
    try:
        return json.loads(body)
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        raise MalformedJson(f"the body is not valid JSON: {error}") from None


def positive_int(value: object, name: str) -> int:
    if type(value) is not int or value < 1:  # (not isinstance: True is an int)
        raise Invalid(f"{name} must be a positive integer, got {value!r}")
    return value


# -- JSON ------------------------------------------------------------------------------------------


def stock_json(level: StockLevel) -> dict[str, Any]:
    return {"sku": level.sku, "available": level.available, "sold": level.sold}


def order_json(order: Order) -> dict[str, Any]:
    lines = [{"sku": sku, "quantity": quantity} for sku, quantity in order.lines]
    return {"id": order.id, "lines": lines}


def walk(actors: tuple[fearless.ActorSnapshot, ...]) -> Iterator[fearless.ActorSnapshot]:
    for actor in actors:
        yield actor
        yield from walk(actor.children)


def actor_json(actor: fearless.ActorSnapshot) -> dict[str, Any]:
    capacity = actor.mailbox_capacity
    return {
        "name": actor.name,
        "type": actor.actor_type,
        "state": actor.state,
        "mailbox": {
            "depth": actor.mailbox_depth,
            "capacity": None if capacity == float("inf") else int(capacity),  # JSON has no inf
            "overflow": actor.overflow,
        },
        "handled": actor.handled,
        "failures": actor.failures,
        "restarts": actor.restarts,
        "dead_letters": actor.dead_letters,
        "children": [actor_json(child) for child in actor.children],
    }


def snapshot_json(snapshot: fearless.SystemSnapshot) -> dict[str, Any]:
    return {
        "name": snapshot.name,
        "dead_letters": snapshot.dead_letters,
        "actors": [actor_json(actor) for actor in snapshot.actors],
    }


def dead_letter_json(letter: fearless.DeadLetter) -> dict[str, Any]:
    return {
        "recipient": letter.recipient,
        "reason": letter.reason.value,
        "message": repr(letter.message),
        "error": None if letter.error is None else repr(letter.error),
    }


# -- the app ---------------------------------------------------------------------------------------


async def api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error.response()


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own errors (no such route, wrong method) as JSON too."""
    assert isinstance(error, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    body = {"error": code, "detail": f"{request.method} {request.url.path}: {error.detail}"}
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def internal_error(request: Request, error: Exception) -> Response:
    return JSONResponse({"error": "internal", "detail": "internal server error"}, status_code=500)


def build_app(inventory: Inventory) -> Starlette:
    routes = [
        Route("/products", inventory.list_products, methods=["GET"]),
        Route("/products/{sku}", inventory.get_product, methods=["GET"]),
        Route("/products/{sku}/restock", inventory.restock, methods=["POST"]),
        Route("/orders", inventory.create_order, methods=["POST"]),
        Route("/orders/{order_id:int}", inventory.get_order, methods=["GET"]),
        Route("/health", inventory.health, methods=["GET"]),
    ]
    if inventory.chaos:
        routes += [
            Route("/chaos/products/{sku}/crash", inventory.chaos_crash, methods=["POST"]),
            Route("/chaos/products/{sku}/hold", inventory.chaos_hold, methods=["POST"]),
            Route("/chaos/products/{sku}/release", inventory.chaos_release, methods=["POST"]),
        ]
    return Starlette(
        routes=routes,
        lifespan=inventory.lifespan,
        exception_handlers={
            ApiError: api_error,
            HTTPException: http_error,
            Exception: internal_error,
        },
    )


# -- serving: uvicorn on asyncio and uvloop, hypercorn on trio -------------------------------------

Backend = Literal["asyncio", "uvloop", "trio"]


class UvicornServer(uvicorn.Server):
    """uvicorn's server, told when to stop by ``serve`` instead of by its own signal handlers
    (which, after a graceful shutdown, raise the signal again: the process would then die of
    it, with no exit status 0)."""

    def __init__(self, config: uvicorn.Config, ready: Callable[[], None]) -> None:
        super().__init__(config)
        self.ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # the lifespan's startup, then the listeners
        self.ready()


async def serve(app: Starlette, backend: Backend, host: str, port: int, access_log: bool) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (a graceful stop; a second signal: at once).
    Prints the URL on stdout once requests are accepted."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            stop = anyio.Event()

            async def on_signals() -> None:
                async for signum in signals:
                    if stop.is_set():
                        log.warning("%s again: stopping now", signal.Signals(signum).name)
                        tg.cancel_scope.cancel()
                        return
                    log.info("%s: stopping gracefully", signal.Signals(signum).name)
                    stop.set()

            tg.start_soon(on_signals)
            if backend == "trio":
                await serve_hypercorn(app, host, port, access_log, stop.wait)
            else:
                await serve_uvicorn(app, host, port, access_log, stop.wait)
            tg.cancel_scope.cancel()


def announce(url: str) -> None:
    print(url, flush=True)  # the one line a test (or a script) reads


async def serve_uvicorn(
    app: Starlette, host: str, port: int, access_log: bool, stopped: Callable[[], Awaitable[Any]]
) -> None:
    # Bind the socket ourselves, so that with port 0 we know the port before serving.
    sock = socket.create_server((host, port))
    url = "http://{}:{}".format(*sock.getsockname()[:2])
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=access_log, timeout_graceful_shutdown=5
    )
    server = UvicornServer(config, ready=lambda: announce(url))

    async def stop_when_told() -> None:
        await stopped()
        server.should_exit = True  # uvicorn looks at it every 0.1 s

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_when_told)
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()


async def serve_hypercorn(
    app: Starlette, host: str, port: int, access_log: bool, stopped: Callable[[], Awaitable[Any]]
) -> None:
    config = hypercorn.config.Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = 5.0
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = logging.getLogger("hypercorn.access") if access_log else None
    # Starlette's ASGI types are looser than hypercorn's (a scope is any mapping): the same app.
    asgi = cast("hypercorn.typing.ASGIFramework", app)
    async with anyio.create_task_group() as tg:
        # hypercorn reports the addresses it listens on (after the lifespan's startup).
        binds = await tg.start(
            functools.partial(hypercorn.trio.serve, asgi, config, shutdown_trigger=stopped)
        )
        announce(binds[0])


# -- the command line ------------------------------------------------------------------------------

DEFAULT_STOCK = {"apple": 100, "pear": 50, "plum": 20}


def stock_item(text: str) -> tuple[str, int]:
    sku, _, units = text.partition("=")
    if not sku or not units.isdigit():
        raise argparse.ArgumentTypeError(f"expected SKU=UNITS (like apple=10), got {text!r}")
    return sku, int(units)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An inventory HTTP service built on actors.")
    parser.add_argument("--backend", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument(
        "--stock",
        type=stock_item,
        action="append",
        metavar="SKU=UNITS",
        help=f"a product and its stock (repeat it; default: {DEFAULT_STOCK})",
    )
    parser.add_argument("--mailbox", type=int, default=64, help="each actor's mailbox capacity")
    parser.add_argument("--chaos", action="store_true", help="enable the /chaos endpoints")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if args.mailbox < 1:
        parser.error(f"--mailbox must be at least 1, got {args.mailbox}")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    inventory = Inventory(
        dict(args.stock) if args.stock else DEFAULT_STOCK, mailbox=args.mailbox, chaos=args.chaos
    )
    app = build_app(inventory)
    backend: Backend = args.backend
    options: dict[str, Any] = {}
    if backend == "uvloop":
        import uvloop

        options["loop_factory"] = uvloop.new_event_loop
    anyio.run(
        serve,
        app,
        backend,
        args.host,
        args.port,
        args.access_log,
        backend="trio" if backend == "trio" else "asyncio",
        backend_options=options,
    )
    if not inventory.stopped_cleanly:
        return 1
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
