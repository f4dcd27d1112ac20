"""examples/inventory_service.py, run as a real server process and talked to over HTTP.

Each test starts the service in a subprocess on the test's backend (asyncio and uvloop: uvicorn;
trio: hypercorn on trio), reads the URL it prints once it accepts requests, and talks to it with
an ``httpx.AsyncClient`` running on that same backend. Nothing waits on time: where a test needs
the service in a given state (a product's mailbox full, say), it holds a product's handler on a
gate through the ``--chaos`` endpoints and reads ``/health`` until the state is there.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from .excerpts import assert_page_quotes

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "inventory_service.py"
PAGE = ROOT / "docs" / "examples" / "inventory.md"
START_TIMEOUT = 20.0  # seconds for the process to import everything and start serving
STEP_TIMEOUT = 10.0  # seconds for any one step that must happen promptly


def server_backend(anyio_backend: tuple[str, dict[str, Any]]) -> str:
    """The example's ``--backend`` matching the test's: asyncio, uvloop or trio."""
    name, options = anyio_backend
    if name == "trio":
        return "trio"
    return "uvloop" if options.get("loop_factory") is not None else "asyncio"


@dataclass
class Service:
    process: Process
    stdout: BufferedByteReceiveStream
    url: str
    client: httpx.AsyncClient

    async def order(self, *lines: tuple[str, int]) -> httpx.Response:
        body = {"lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines]}
        return await self.client.post("/orders", json=body)

    async def stock(self, sku: str) -> dict[str, Any]:
        response = await self.client.get(f"/products/{sku}")
        assert response.status_code == 200, response.text
        stock: dict[str, Any] = response.json()
        return stock

    async def health(self) -> dict[str, Any]:
        response = await self.client.get("/health")
        assert response.status_code == 200, response.text
        health: dict[str, Any] = response.json()
        return health

    async def actor(self, name: str) -> dict[str, Any]:
        """The actor ``name`` in ``/health``'s snapshot."""
        return find_actor((await self.health())["system"]["actors"], name)

    async def until_mailbox_depth(self, name: str, depth: int) -> None:
        """Read ``/health`` until the actor ``name`` has ``depth`` messages waiting."""
        with anyio.fail_after(STEP_TIMEOUT):
            while (await self.actor(name))["mailbox"]["depth"] != depth:
                pass


def find_actor(actors: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The actor ``name`` in a snapshot's tree (as JSON)."""
    stack = list(actors)
    while stack:
        actor = stack.pop()
        if actor["name"] == name:
            return actor
        stack.extend(actor["children"])
    raise LookupError(f"no actor {name!r} in the snapshot")


@asynccontextmanager
async def running(backend: str, *args: str) -> AsyncIterator[Service]:
    """The service, started on ``backend`` with ``args``; killed on the way out if it is still
    running."""
    command = [sys.executable, str(EXAMPLE), "--backend", backend, "--port", "0", *args]
    # stderr (the logs) goes where the test's goes: pytest shows it when a test fails.
    process = await anyio.open_process(command, stdin=subprocess.DEVNULL, stderr=None)
    try:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(START_TIMEOUT):
            url = (await stdout.receive_until(b"\n", 1000)).decode()
        assert url.startswith("http://127.0.0.1:"), url
        async with httpx.AsyncClient(base_url=url, timeout=STEP_TIMEOUT) as client:
            yield Service(process, stdout, url, client)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.aclose()


async def test_an_order_takes_stock_and_can_be_read_back(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """An order takes its quantities from every product it names, is numbered, and can be
    read back; a restock adds stock; /health lists every actor, running."""
    async with running(
        server_backend(anyio_backend), "--stock", "apple=10", "--stock", "pear=5"
    ) as svc:
        products = (await svc.client.get("/products")).json()
        assert products == [
            {"sku": "apple", "available": 10, "sold": 0},
            {"sku": "pear", "available": 5, "sold": 0},
        ]

        response = await svc.order(("apple", 3), ("pear", 1), ("apple", 1))
        assert response.status_code == 201, response.text
        order = response.json()
        # Lines of one product are added up, in the order they first appear.
        assert order == {
            "id": 1,
            "lines": [{"sku": "apple", "quantity": 4}, {"sku": "pear", "quantity": 1}],
        }
        assert (await svc.client.get("/orders/1")).json() == order
        assert await svc.stock("apple") == {"sku": "apple", "available": 6, "sold": 4}
        assert await svc.stock("pear") == {"sku": "pear", "available": 4, "sold": 1}

        second = await svc.order(("pear", 4))
        assert second.status_code == 201, second.text
        assert second.json()["id"] == 2

        response = await svc.client.post("/products/pear/restock", json={"quantity": 7})
        assert response.status_code == 200, response.text
        assert response.json() == {"sku": "pear", "available": 7, "sold": 5}

        health = await svc.health()
        assert health["status"] == "ok"
        (supervisor,) = health["system"]["actors"]
        assert supervisor["name"] == "inventory"
        assert supervisor["type"] == "Supervisor"
        children = {child["name"]: child for child in supervisor["children"]}
        assert set(children) == {"orders", "product:apple", "product:pear"}
        for child in children.values():
            assert child["state"] == "running"
            assert child["failures"] == child["restarts"] == 0
            assert child["mailbox"] == {"depth": 0, "capacity": 64, "overflow": "block"}


async def test_bad_requests_get_a_4xx_with_a_json_error_that_names_the_problem(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """Every bad request gets its status and a JSON body {"error", "detail"} whose detail names
    the bad value, and none of them changes any stock."""
    async with running(
        server_backend(anyio_backend), "--stock", "apple=10", "--stock", "pear=5"
    ) as svc:
        client = svc.client
        cases: list[tuple[httpx.Response, int, str, str]] = [
            (
                await client.post("/orders", content=b"{not json"),
                400,
                "malformed_json",
                "not valid JSON",
            ),
            (
                await client.post("/orders", content=b"\xff\xfe"),
                400,
                "malformed_json",
                "not valid JSON",
            ),
            (await client.post("/orders", json=[1, 2]), 422, "invalid", "[1, 2]"),
            (await client.post("/orders", json={"lines": []}), 422, "invalid", "non-empty list"),
            (await client.post("/orders", json={"items": []}), 422, "invalid", "got None"),
            (
                await svc.order(("apple", -3)),
                422,
                "invalid",
                "lines[0].quantity must be a positive integer, got -3",
            ),
            (await svc.order(("apple", 1), ("pear", 0)), 422, "invalid", "lines[1].quantity"),
            (
                await client.post("/orders", json={"lines": [{"sku": "apple", "quantity": True}]}),
                422,
                "invalid",
                "got True",
            ),
            (
                await client.post("/orders", json={"lines": [{"sku": "apple", "quantity": "2"}]}),
                422,
                "invalid",
                "got '2'",
            ),
            (await svc.order(("apple", 1), ("durian", 1)), 422, "invalid", "no product 'durian'"),
            (
                await client.post("/orders", json={"lines": [{"quantity": 1}]}),
                422,
                "invalid",
                "lines[0].sku",
            ),
            (
                await svc.order(("apple", 11)),
                409,
                "out_of_stock",
                "11 x 'apple' requested, 10 available",
            ),
            # The second line fails: the first one's reservation is released.
            (
                await svc.order(("apple", 2), ("pear", 6)),
                409,
                "out_of_stock",
                "6 x 'pear' requested, 5 available",
            ),
            (await client.get("/products/durian"), 404, "unknown_product", "'durian'"),
            (
                await client.post("/products/durian/restock", json={"quantity": 1}),
                404,
                "unknown_product",
                "'durian'",
            ),
            (
                await client.post("/products/apple/restock", json={"quantity": -1}),
                422,
                "invalid",
                "got -1",
            ),
            (await client.get("/orders/999"), 404, "not_found", "no order 999"),
            (await client.get("/nowhere"), 404, "not_found", "/nowhere"),
            (await client.delete("/orders"), 405, "method_not_allowed", "DELETE /orders"),
            # Without --chaos there are no chaos endpoints.
            (await client.post("/chaos/products/apple/crash"), 404, "not_found", "/chaos"),
        ]
        for response, status, error, detail in cases:
            assert response.status_code == status, (response.request.url, response.text)
            body = response.json()
            assert body["error"] == error, body
            assert detail in body["detail"], body
        assert await svc.stock("apple") == {"sku": "apple", "available": 10, "sold": 0}
        assert await svc.stock("pear") == {"sku": "pear", "available": 5, "sold": 0}
        assert (await svc.order(("apple", 10))).status_code == 201  # and it still serves


async def test_concurrent_orders_never_oversell_nor_lose_stock(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """20 clients place 4 orders each at once, every order one 'plenty' (reserved first) and one
    'scarce', of which there are 50: exactly 50 orders succeed, the other 30 are refused with
    409, and the 30 units of 'plenty' they had reserved are all given back."""
    clients, orders_each, scarce = 20, 4, 50
    async with running(
        server_backend(anyio_backend), "--stock", f"scarce={scarce}", "--stock", "plenty=1000"
    ) as svc:
        statuses: list[int] = []
        refusals: list[dict[str, Any]] = []
        order_ids: list[int] = []

        async def client() -> None:
            for _ in range(orders_each):
                response = await svc.order(("plenty", 1), ("scarce", 1))
                statuses.append(response.status_code)
                if response.status_code == 201:
                    order_ids.append(response.json()["id"])
                else:
                    refusals.append(response.json())

        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(client)

        assert statuses.count(201) == scarce, statuses
        assert statuses.count(409) == clients * orders_each - scarce, statuses
        assert all(refusal["error"] == "out_of_stock" for refusal in refusals)
        assert all("'scarce'" in refusal["detail"] for refusal in refusals)
        assert sorted(order_ids) == list(range(1, scarce + 1))  # numbered once each, no gaps
        assert await svc.stock("scarce") == {"sku": "scarce", "available": 0, "sold": scarce}
        assert await svc.stock("plenty") == {
            "sku": "plenty",
            "available": 1000 - scarce,
            "sold": scarce,
        }
        for name in ("product:scarce", "product:plenty", "orders"):
            actor = await svc.actor(name)
            assert actor["failures"] == 0, actor
            assert actor["mailbox"]["depth"] == 0, actor


async def test_a_crashed_product_is_restarted_and_handles_the_orders_queued_behind_the_crash(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """'apple' is held on a gate with a crash queued behind the hold and 8 orders behind the
    crash; meanwhile 'pear' keeps serving. Released, apple crashes, its supervisor restarts it,
    and the new instance handles all 8 orders with the stock the old one had: nothing failed
    but the crash itself, which is in dead letters; /health counts one failure, one restart."""
    queued = 8
    async with running(
        server_backend(anyio_backend), "--chaos", "--stock", "apple=100", "--stock", "pear=100"
    ) as svc:
        assert (await svc.order(("apple", 10))).status_code == 201  # handled by the first instance
        assert (await svc.client.post("/chaos/products/apple/hold")).json() == {"held": "apple"}
        crashes: list[httpx.Response] = []
        orders: list[httpx.Response] = []

        async def crash() -> None:
            crashes.append(await svc.client.post("/chaos/products/apple/crash"))

        async def order() -> None:
            orders.append(await svc.order(("pear", 1), ("apple", 1)))

        pear_orders = 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(crash)
            await svc.until_mailbox_depth("product:apple", 1)  # the crash is queued first
            for _ in range(queued):
                tg.start_soon(order)
            await svc.until_mailbox_depth("product:apple", 1 + queued)
            # apple is stuck with 9 messages waiting; pear, the orders and /health go on.
            for _ in range(5):
                response = await svc.order(("pear", 2))
                assert response.status_code == 201, response.text
                pear_orders += 2
            release = await svc.client.post("/chaos/products/apple/release")
            assert release.json() == {"released": "apple"}

        (crashed,) = crashes
        assert crashed.status_code == 200, crashed.text
        assert crashed.json() == {"crashed": "apple", "error": "chaos: 'apple' crashed on purpose"}
        assert [response.status_code for response in orders] == [201] * queued
        assert (await svc.order(("apple", 1))).status_code == 201  # and after the restart

        apple = await svc.actor("product:apple")
        assert (apple["state"], apple["failures"], apple["restarts"]) == ("running", 1, 1)
        pear = await svc.actor("product:pear")
        assert (pear["failures"], pear["restarts"]) == (0, 0)
        assert await svc.stock("apple") == {
            "sku": "apple",
            "available": 100 - 10 - queued - 1,
            "sold": 19,
        }
        assert await svc.stock("pear") == {
            "sku": "pear",
            "available": 100 - queued - pear_orders,
            "sold": queued + pear_orders,
        }
        letters = (await svc.health())["recent_dead_letters"]
        assert letters == [
            {
                "recipient": "product:apple",
                "reason": "handler_failed",
                "message": "Crash()",
                "error": "ChaosCrash(\"chaos: 'apple' crashed on purpose\")",
            }
        ]


async def test_a_full_mailbox_answers_503_at_once_and_the_queued_orders_still_succeed(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """With 'widget' held and its mailbox (capacity 4) full of orders, a new order for it is
    answered 503 with Retry-After at once, reserving nothing: not even its line for 'plenty',
    reserved first and given back. Released, the 4 queued orders succeed, and so do new ones."""
    capacity = 4
    async with running(
        server_backend(anyio_backend),
        "--chaos",
        "--mailbox",
        str(capacity),
        "--stock",
        "widget=100",
        "--stock",
        "plenty=100",
    ) as svc:
        assert (await svc.client.post("/chaos/products/widget/hold")).status_code == 200
        queued: list[httpx.Response] = []

        async def order() -> None:
            queued.append(await svc.order(("widget", 1)))

        async with anyio.create_task_group() as tg:
            for _ in range(capacity):
                tg.start_soon(order)
            await svc.until_mailbox_depth("product:widget", capacity)

            with anyio.fail_after(STEP_TIMEOUT):  # at once: nothing waits for room
                refused = await svc.order(("widget", 1))
                refused_two = await svc.order(("plenty", 1), ("widget", 1))
                refused_read = await svc.client.get("/products/widget")
                refused_crash = await svc.client.post("/chaos/products/widget/crash")
            for response in (refused, refused_two, refused_read, refused_crash):
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
                assert response.json()["error"] == "busy"
                assert "product:widget has 4 messages waiting" in response.json()["detail"]
            assert await svc.stock("plenty") == {"sku": "plenty", "available": 100, "sold": 0}
            widget = await svc.actor("product:widget")
            assert widget["mailbox"]["depth"] == capacity  # the refused ones never entered
            assert widget["dead_letters"] == 0
            assert queued == []  # the queued orders are still waiting

            await svc.client.post("/chaos/products/widget/release")

        assert [response.status_code for response in queued] == [201] * capacity
        assert (await svc.order(("plenty", 1), ("widget", 1))).status_code == 201
        assert await svc.stock("widget") == {"sku": "widget", "available": 95, "sold": 5}
        assert await svc.stock("plenty") == {"sku": "plenty", "available": 99, "sold": 1}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_stops_the_service_cleanly(
    anyio_backend: tuple[str, dict[str, Any]], signum: signal.Signals
) -> None:
    """SIGINT (Ctrl-C) or SIGTERM stops the server and then the actor system gracefully: the
    process prints "stopped" and exits with status 0, promptly."""
    async with running(server_backend(anyio_backend)) as svc:
        assert (await svc.order(("apple", 1))).status_code == 201
        await svc.client.aclose()  # (a kept-alive connection would only delay the stop)
        svc.process.send_signal(signum)
        with anyio.fail_after(STEP_TIMEOUT):
            status = await svc.process.wait()
            rest = b""
            while b"\n" not in rest:
                rest += await svc.stdout.receive()
        assert status == 0
        assert rest == b"stopped\n"


def test_the_docs_page_quotes_the_example_as_it_is() -> None:
    """Every Python excerpt on docs/examples/inventory.md is a verbatim piece of the example."""
    assert_page_quotes(PAGE, EXAMPLE, at_least=5)
