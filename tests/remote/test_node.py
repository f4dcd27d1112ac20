"""Joining a system: the embedded server by default, a real server's URL, the connection options
passing through to nats-py, and the errors for what cannot work."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

import fearless.nats
from fearless.nats import NatsServer

pytestmark = pytest.mark.anyio


def running(server: NatsServer) -> bool:
    return server.running


async def test_no_url_starts_an_embedded_server_and_closing_stops_it(system: str) -> None:
    """The default for the demo and a laptop: a real server, on loopback, gone afterwards with
    its temporary store."""
    async with fearless.nats.connect(system=system) as node:
        server = node.server
        assert server is not None
        assert running(server)
        assert node.url == server.url
        assert node.url.startswith("nats://127.0.0.1:")
        store = server.store_dir
        assert store.exists()
        tx, rx = await node.open_channel("jobs", int)
        await tx.send(1)
        assert await rx.receive() == 1
    assert not running(server)
    assert not store.exists()
    assert "closed" in repr(node)


async def test_a_server_restarted_keeps_its_port_and_its_store(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path / "store") as server:
        port = server.port
        assert port
        assert repr(server).startswith(f"<NatsServer 127.0.0.1:{port} running")
        server.stop()
        assert not running(server)
        server.start()
        assert server.port == port
    assert (tmp_path / "store").exists()  # the caller's store is the caller's


async def test_user_and_password_pass_through_and_wrong_ones_fail_clearly(system: str) -> None:
    with NatsServer(args=("--user", "shop", "--pass", "s3cret")) as server:
        async with fearless.nats.connect(
            server.url, system=system, user="shop", password="s3cret"
        ) as node:
            cell = await node.int_cell("n")
            assert await cell.increment() == 1
        with anyio.fail_after(20), pytest.raises(fearless.nats.ConnectFailed, match="Authoriz"):
            async with fearless.nats.connect(
                server.url, system=system, user="shop", password="wrong", connect_timeout=1
            ):
                pass


async def test_a_token_passes_through(system: str) -> None:
    with NatsServer(args=("--auth", "t0ken")) as server:
        async with fearless.nats.connect(server.url, system=system, token="t0ken") as node:
            assert (await node.int_cell("n")).name == "n"


async def test_an_unreachable_server_fails_promptly_with_the_clients_error(system: str) -> None:
    """No server at the URL: the connect fails after connect_timeout, it does not hang."""
    with NatsServer() as server:
        url = server.url
    with anyio.fail_after(20), pytest.raises(fearless.nats.ConnectFailed, match="could not"):
        async with fearless.nats.connect(url, system=system, connect_timeout=1):
            pass


async def test_bad_arguments_are_refused_with_the_value_named() -> None:
    with pytest.raises(ValueError, match="system name must be"):
        fearless.nats.connect(system="")
    with pytest.raises(ValueError, match="url must be a URL or a non-empty list"):
        fearless.nats.connect([], system="s")
    with pytest.raises(ValueError, match="port must be 0"):
        NatsServer(port=70000)
    with pytest.raises(fearless.nats.NatsServerError, match="no nats-server binary"):
        NatsServer(binary="/nonexistent/nats-server")


def test_the_binary_is_found_beside_the_interpreter_or_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = fearless.nats.find_nats_server()
    assert os.access(found, os.X_OK)
    monkeypatch.setenv("FEARLESS_NATS_SERVER", "/nonexistent/nats-server")
    with pytest.raises(fearless.nats.NatsServerError, match="FEARLESS_NATS_SERVER"):
        fearless.nats.find_nats_server()
