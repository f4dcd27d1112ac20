"""The remote actors guide (docs/remote-actors.md) is real code: every ```python block in it is
run on asyncio, asyncio + uvloop and trio against an embedded nats-server (``connect()`` with no
URL starts one), or, where it cannot run here, type-checked; the blocks that run print what the
page says they print.

The page's first block defines ``Add``, ``Get``, ``Msg`` and ``Counter``, and the page says the
later examples reuse them: each later block runs (and is type-checked) after that block's
definitions (everything before its ``async def main``). How each block is checked is written down
in ``HOW``: for each block, a line that only that block has, and one of

``Main(prints)``
    A program that ends with ``anyio.run(main)``: ``main`` is awaited on the test's backend, and
    what it printed must be ``prints``. ``conf=True``: the page's ``nats.conf`` (its ```text
    block with ``accounts {``) is written to the working directory first, as the page says.
``TypeOnly(why)``
    Cannot run here (``why`` says what it needs), so it is only type-checked.

Every block is type-checked with ``mypy --strict`` (one run over all of them), and a test fails if
a block has no entry in ``HOW`` or an entry matches no block. More tests check sentences of the
page that no block shows: what two publications of one name do, where drop policies act, a poison
message in a durable mailbox, a durable message held by a killed process, and what the page's
``nats.conf`` allows and refuses.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec
import pytest
from anyio.streams.text import TextReceiveStream

import fearless
import fearless.nats
from fearless.nats import NatsServer, Node
from fearless.nats._mailbox import MAX_FAILURES, RETRY_FIRST, RETRY_LAST
from fearless.nats._registry import DOWN_AFTER, HEARTBEAT, POLL, REPORTED_WITHIN

from .strict import check_strict

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "remote-actors.md"


@dataclass(frozen=True)
class Main:
    prints: str
    conf: bool = False


@dataclass(frozen=True)
class TypeOnly:
    why: str


How = Main | TypeOnly

HOW: dict[str, How] = {
    "ref.tell(Add(2))  # at most once": Main("5\n"),
    '"the ask: ActorStopped"': Main("stopped\nthe ask: ActorStopped\n"),
    'node.lookup("workers", Msg)': Main(
        "no live actor 'workers' in the system 'shop' (nobody publishes it)\n100\n"
    ),
    "async def add_and_read(": Main("1\n3\n"),
    "class Ledger(": Main("11\nTrue\n"),
    "class Slow(": Main("mailbox_full Add(amount=3)\nMailboxFull: nothing sent\nsent\n"),
    "error.remote_traceback": Main(
        "ValueError | cannot add -1\nValueError: cannot add -1\n0\n"
        "actor 'nobody' is stopped; the message was not handled\n"
    ),
    '# no process serves "nobody"': Main("nobody no_responder Add(amount=1)\n"),
    "class Watcher(": Main("counter: stopped\nstopped True\n"),
    "node.cluster_snapshot()\n            for actor": Main(
        "counter False False True running\nworkers True True True running\n1 1\n"
    ),
    "async def serve(": Main("[('ledger', True, 'running')]\n"),
    'credentials="/etc/shop/app.creds"': TypeOnly("needs a NATS cluster and its credentials"),
    'args=("-c", "nats.conf")': Main(
        "1\nno live actor 'counter' in the system 'shop' (nobody publishes it)\n", conf=True
    ),
}


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", page(), re.S)


def prelude() -> str:
    """The first block's imports and classes: what the page says the later blocks reuse."""
    first = blocks()[0]
    return first[: first.index("async def main")]


def nats_conf() -> str:
    """The page's nats.conf: its ```text block with the accounts."""
    texts: list[str] = re.findall(r"```text\n(.*?)```", page(), re.S)
    (conf,) = [text for text in texts if "accounts {" in text]
    return conf


def how(block: str) -> How:
    (found,) = [way for marker, way in HOW.items() if marker in block]
    return found


def source(index: int) -> str:
    """Block ``index`` as it runs: after the first block's definitions (but the first block)."""
    block = blocks()[index]
    return block if index == 0 else prelude() + "\n\n" + block


def mains() -> list[Any]:
    return [
        pytest.param(index, id=f"docs/remote-actors.md-{index}")
        for index, block in enumerate(blocks())
        if isinstance(how(block), Main)
    ]


def test_every_block_has_exactly_one_way_to_be_checked() -> None:
    assert len(blocks()) >= 10, "the ```python pattern broke"
    for block in blocks():
        matches = [marker for marker in HOW if marker in block]
        assert len(matches) == 1, (matches, block[:200])
    for marker in HOW:
        assert sum(marker in block for block in blocks()) == 1, marker


@pytest.mark.parametrize("index", mains())
async def test_the_program_prints_what_the_page_says(
    index: int,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each program starts its own embedded server (connect() with no URL) and stops it."""
    way = how(blocks()[index])
    assert isinstance(way, Main)
    if way.conf:
        (tmp_path / "nats.conf").write_text(nats_conf())
        monkeypatch.chdir(tmp_path)
    body, _, run_line = source(index).rstrip().rpartition("\n")
    assert run_line.startswith("anyio.run(main)"), run_line
    namespace: dict[str, Any] = {"__name__": f"docs_remote_actors_block_{index}"}
    exec(
        compile(body, f"docs/remote-actors.md block {index}", "exec", dont_inherit=True), namespace
    )
    main: Callable[[], Awaitable[None]] = namespace["main"]
    with caplog.at_level(logging.WARNING, logger="fearless.nats"), anyio.fail_after(60):
        await main()
    assert capsys.readouterr().out == way.prints


def test_every_block_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    """One mypy run over every block, each a module of its own (after the first block's
    definitions, as it runs)."""
    files = []
    for index in range(len(blocks())):
        path = tmp_path / f"docs_remote_actors_block{index}.py"
        path.write_text(source(index))
        files.append(str(path))
    check_strict(files)


# -- numbers the page states ----------------------------------------------------------------------


def test_the_numbers_on_the_page_are_the_codes() -> None:
    """The liveness bound (3 + 1 + 0.5 = 4.5 s), and a durable message's retries (0.1 s doubling
    to 5 s, refused after 5 failures)."""
    assert (DOWN_AFTER, HEARTBEAT, POLL, REPORTED_WITHIN) == (3.0, 1.0, 0.5, 4.5)
    assert (RETRY_FIRST, RETRY_LAST, MAX_FAILURES) == (0.1, 5.0, 5)
    text = " ".join(page().split())
    assert "at most **4.5 seconds** (`REPORTED_WITHIN`: 3 + 1 + 0.5)" in text
    assert "after 0.1 s, doubling per failure up to 5 s. After 5 failures in one process" in text


# -- sentences of the page that no block shows ----------------------------------------------------


class Add(msgspec.Struct, frozen=True):
    amount: int


class Get(msgspec.Struct, fearless.Request[int], frozen=True):
    pass


Msg = Add | Get


class Log(fearless.Actor[Msg]):
    """Records what it handles; fails on negative amounts; ``busy``/``go`` hold its handler of
    ``Add(0)`` (a mailbox fills behind it)."""

    def __init__(
        self,
        seen: list[int],
        busy: anyio.Event | None = None,
        go: anyio.Event | None = None,
    ) -> None:
        self.seen = seen
        self.busy = busy
        self.go = go

    async def handle(self, message: Msg) -> int | None:
        match message:
            case Add(amount):
                self.seen.append(amount)
                if amount < 0:
                    raise ValueError(f"cannot add {amount}")
                if amount == 0 and self.busy is not None and self.go is not None:
                    self.busy.set()
                    await self.go.wait()
            case Get():
                return len(self.seen)
        return None


@asynccontextmanager
async def joined(
    server: NatsServer, system: str, actors: fearless.ActorSystem | None = None
) -> AsyncIterator[Node]:
    async with fearless.nats.connect(server.url, system=system, actor_system=actors) as node:
        yield node


async def until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait until ``condition()`` holds (a state another process or thread changes)."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110  (a state of another process or thread)
            await anyio.sleep(0.01)


async def mailbox_depth(node: Node, name: str) -> int:
    """How many messages wait in the durable mailbox of ``name``."""
    stream = f"FEARLESS_MB_{node.system}_{name}"
    info = await node.client_loop.call(node.jetstream.stream_info, stream)
    return int(info.state.messages)


async def test_a_second_publication_of_a_live_name_without_pool_is_refused(
    nats_server: NatsServer, system: str
) -> None:
    """ "One name, one publisher, or a pool": a second publication of a name a live node
    publishes alone (or a single one beside a pool) raises ValueError naming that node, after
    waiting out the bound for a dead node's entry; pool members join each other."""
    async with (
        fearless.ActorSystem() as actors,
        joined(nats_server, system) as first,
        joined(nats_server, system) as second,
    ):
        a = await actors.spawn(lambda: Log([]))
        b = await actors.spawn(lambda: Log([]))
        async with first.publish(a, "counter", Msg):
            with pytest.raises(ValueError, match=f"published alone by the live node {first.id}"):
                async with second.publish(b, "counter", Msg, pool=True):
                    pass
        async with first.publish(a, "workers", Msg, pool=True):
            async with second.publish(b, "workers", Msg, pool=True):
                assert len((await first.cluster_snapshot()).serving("workers")) == 2
            with pytest.raises(ValueError, match="published as a pool member"):
                async with second.publish(b, "workers", Msg):
                    pass
        a.stop()
        b.stop()


async def test_a_stopped_actors_publication_sends_tells_back_as_no_responder(
    nats_server: NatsServer, system: str
) -> None:
    """ "A publication follows its actor": sends raise ActorStopped, tells come back to the
    sender's system as NO_RESPONDER, and the registry no longer has it."""
    async with (
        fearless.ActorSystem() as serving,
        fearless.ActorSystem() as sending,
        joined(nats_server, system) as host,
        joined(nats_server, system, sending) as far,
    ):
        actor = await serving.spawn(lambda: Log([]))
        async with host.publish(actor, "log", Msg):
            actor.stop()
            await actor.wait_stopped()
            ref = far.actor("log", Msg)
            with pytest.raises(fearless.ActorStopped):
                await ref.send(Add(1))
            with sending.dead_letters() as letters:
                ref.tell(Add(2))
                with anyio.fail_after(10):
                    letter = await letters.receive()
            assert (letter.reason, letter.message) == (
                fearless.DeadLetterReason.NO_RESPONDER,
                Add(2),
            )
            with pytest.raises(LookupError):
                await far.lookup("log", Msg)


async def test_drop_policies_act_in_the_serving_process(
    nats_server: NatsServer, system: str
) -> None:
    """Notes on the table: a send to a full "drop_newest" mailbox returns, its dead letter is the
    serving system's (not the sender's), and an ask that is dropped raises RemoteError naming
    MessageDropped."""
    busy, go = anyio.Event(), anyio.Event()
    seen: list[int] = []
    async with (
        fearless.ActorSystem() as serving,
        fearless.ActorSystem() as sending,
        joined(nats_server, system, serving) as host,
        joined(nats_server, system, sending) as far,
    ):
        actor = await serving.spawn(
            lambda: Log(seen, busy, go), mailbox=fearless.Mailbox(1, overflow="drop_newest")
        )
        with serving.dead_letters() as served, sending.dead_letters() as sent:
            async with host.publish(actor, "log", Msg):
                ref = far.actor("log", Msg)
                ref.tell(Add(0))  # held in the handler
                with anyio.fail_after(10):
                    await busy.wait()
                await ref.send(Add(1))  # queued: the mailbox of 1 is full
                await ref.send(Add(2))  # dropped there; the send returns all the same
                with anyio.fail_after(10):
                    letter = await served.receive()
                assert (letter.reason, letter.message) == (
                    fearless.DeadLetterReason.DROPPED_NEWEST,
                    Add(2),
                )
                with pytest.raises(fearless.nats.RemoteError) as caught:
                    await ref.ask(Get(), timeout=10)
                assert caught.value.type_name == "MessageDropped"
                go.set()
                await until(lambda: seen == [0, 1])
            with pytest.raises(anyio.WouldBlock):
                sent.receive_nowait()  # nothing came back to the sender


async def test_an_error_reply_comes_back_as_a_remote_error_and_the_actor_goes_on(
    node: Node,
) -> None:
    class Refuser(fearless.Actor[Get]):
        async def handle(self, message: Get) -> Any:
            return fearless.ErrorReply(KeyError("no such thing"))

    async with fearless.ActorSystem() as actors:
        refuser = await actors.spawn(Refuser)
        async with node.publish(refuser, "refuser", Get):
            with pytest.raises(fearless.nats.RemoteError) as caught:
                await node.actor("refuser", Get).ask(Get(), timeout=10)
            assert caught.value.type_name == "KeyError"
            assert refuser.is_alive


async def test_a_poison_message_is_refused_after_five_failures_given_the_budget_for_it(
    node: Node,
) -> None:
    """ "Durable mailboxes": with a restart budget that outlasts five failed deliveries, the
    message is refused for good after the fifth, the next one is handled, the actor runs on."""
    seen: list[int] = []
    async with fearless.ActorSystem(max_restarts=10) as actors:
        actor = await actors.spawn(lambda: Log(seen))
        async with node.publish(actor, "ledger", Msg, durable=True, ack_wait=30):
            ref = node.actor("ledger", Msg)
            await ref.send(Add(-1))
            await ref.send(Add(1))
            await until(lambda: seen.count(-1) == MAX_FAILURES and 1 in seen)
            with anyio.fail_after(10):
                while await mailbox_depth(node, "ledger"):  # noqa: ASYNC110  (the server's state)
                    await anyio.sleep(0.01)
            assert seen.count(-1) == MAX_FAILURES
            assert actor.is_alive


async def test_with_the_default_budget_a_poison_message_stops_a_durable_actor_first(
    node: Node,
) -> None:
    """ "Durable mailboxes": with ActorSystem's default budget (3 restarts within 5 s) the fourth
    failure stops the actor for good, and the message stays in the mailbox."""
    seen: list[int] = []
    async with fearless.ActorSystem() as actors:
        actor = await actors.spawn(lambda: Log(seen))
        async with node.publish(actor, "ledger", Msg, durable=True, ack_wait=30):
            await node.actor("ledger", Msg).send(Add(-1))
            with anyio.fail_after(15):
                await actor.wait_stopped()
            assert seen == [-1] * 4
            assert await mailbox_depth(node, "ledger") == 1


async def test_the_first_durable_publications_ack_wait_stands(node: Node) -> None:
    async with fearless.ActorSystem() as actors:
        actor = await actors.spawn(lambda: Log([]))
        async with node.publish(actor, "ledger", Msg, durable=True, ack_wait=5):
            pass
        async with node.publish(actor, "ledger", Msg, durable=True, ack_wait=9):
            info = await node.client_loop.call(
                node.jetstream.consumer_info, f"FEARLESS_MB_{node.system}_ledger", "mailbox"
            )
        assert info.config.ack_wait == 5
        with pytest.raises(ValueError, match="exists with capacity inf, not 10"):
            async with node.publish(actor, "ledger", Msg, durable=True, capacity=10):
                pass


async def test_a_watch_of_a_name_nobody_serves_reports_stopped_at_once(node: Node) -> None:
    with anyio.fail_after(5):
        notice = await node.actor("nobody", Msg).wait_stopped()
    assert notice.reason == "stopped"


HOLDER = """
import sys

import anyio
import msgspec

import fearless
import fearless.nats


class Add(msgspec.Struct, frozen=True):
    amount: int


class Holder(fearless.Actor[Add]):
    async def handle(self, message: Add) -> None:
        print("handling", message.amount, flush=True)
        await anyio.sleep_forever()  # killed mid-message


async def main() -> None:
    async with (
        fearless.nats.connect(sys.argv[1], system=sys.argv[2]) as node,
        fearless.ActorSystem() as actors,
    ):
        holder = await actors.spawn(Holder)
        async with node.publish(holder, "ledger", Add, durable=True, ack_wait=1):
            print("ready", flush=True)
            await anyio.sleep_forever()


anyio.run(main)
"""


async def test_a_durable_message_held_by_a_killed_process_is_delivered_again_after_ack_wait(
    node: Node, nats_server: NatsServer, system: str, tmp_path: Path
) -> None:
    """The delivery table, "the serving process dies", durable: a process killed (SIGKILL) in the
    middle of a handler never acknowledged the message; once ack_wait (1 s) has passed the server
    delivers it to the process that serves the name then, which handles it once."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    log = tmp_path / "holder.log"
    with log.open("w") as errors:
        process = await anyio.open_process(
            [sys.executable, "-c", HOLDER, nats_server.url, system], env=env, stderr=errors
        )
    said = ""

    async def until_said(text: str) -> None:
        nonlocal said
        assert process.stdout is not None
        with anyio.fail_after(30):
            async for chunk in TextReceiveStream(process.stdout):
                said += chunk
                if text in said:
                    return
        raise AssertionError(f"the process ended before saying {text!r}: {log.read_text()}")

    try:
        try:
            await until_said("ready")
            await node.actor("ledger", Add).send(Add(7))
            await until_said("handling 7")
        except TimeoutError:
            raise AssertionError(f"said {said!r}; its log: {log.read_text()}") from None
        process.kill()
        await process.wait()
        seen: list[int] = []
        async with fearless.ActorSystem() as actors:
            actor = await actors.spawn(lambda: Log(seen))
            async with node.publish(actor, "ledger", Msg, durable=True, ack_wait=1):
                await until(lambda: seen == [7])
                assert await actor.ask(Get()) == 1  # once
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# -- the page's nats.conf -------------------------------------------------------------------------


@asynccontextmanager
async def configured(tmp_path: Path, conf: str) -> AsyncIterator[NatsServer]:
    path = tmp_path / "nats.conf"
    path.write_text(conf)
    async with NatsServer(args=("-c", str(path))) as server:
        yield server


def shop(server: NatsServer, system: str = "shop", **options: Any) -> Node:
    return fearless.nats.connect(
        server.url, system=system, user="shop-app", password="change-me", **options
    )


async def test_the_shop_user_of_the_page_uses_durable_mailboxes_monitors_and_the_snapshot(
    tmp_path: Path,
) -> None:
    """The subjects the page lists are enough for everything remote actors do: publish (core and
    durable), tell, send, ask, the registry, a watch; and nothing is delivered twice."""
    seen: list[int] = []
    async with (
        configured(tmp_path, nats_conf()) as server,
        fearless.ActorSystem() as actors,
        shop(server) as host,
        shop(server) as far,
    ):
        actor = await actors.spawn(lambda: Log(seen))
        async with host.publish(actor, "ledger", Msg, durable=True, ack_wait=1):
            ref = await far.lookup("ledger", Msg)
            ref.tell(Add(1))
            await ref.send(Add(2))
            await until(lambda: sorted(seen) == [1, 2])
            snapshot = await far.cluster_snapshot()
            assert [actor.name for actor in snapshot.actors] == ["ledger"]
            stream = f"FEARLESS_MB_{far.system}_ledger"
            with anyio.fail_after(10):
                while True:  # until the server has both acknowledgements
                    info = await far.client_loop.call(
                        far.jetstream.consumer_info, stream, "mailbox"
                    )
                    if info.num_ack_pending == 0 and info.num_pending == 0:
                        break
                    await anyio.sleep(0.05)
            assert info.num_redelivered == 0
            assert sorted(seen) == [1, 2]
        with anyio.fail_after(10):
            assert (await ref.wait_stopped()).reason == "stopped"


async def test_without_js_ack_a_durable_message_is_delivered_again_after_ack_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ "Without $JS.ACK.>, a durable mailbox's messages are handled but never acknowledged",
    and the refused subject is a warning naming it."""
    conf = nats_conf()
    line = next(line for line in conf.splitlines() if '"$JS.ACK.>"' in line)
    seen: list[int] = []
    with caplog.at_level(logging.WARNING, logger="fearless.nats"):
        async with (
            configured(tmp_path, conf.replace(line + "\n", "")) as server,
            fearless.ActorSystem() as actors,
            shop(server) as host,
        ):
            actor = await actors.spawn(lambda: Log(seen))
            async with host.publish(actor, "ledger", Msg, durable=True, ack_wait=1):
                await host.actor("ledger", Msg).send(Add(1))
                await until(lambda: seen.count(1) >= 2)
    assert any("permissions violation for publish to" in r.getMessage() for r in caplog.records)


async def test_a_refused_subject_is_a_warning_and_publishing_times_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The shop user may not serve actors of the system "billing": the subscription and the
    registry entry are refused (warnings naming the subjects), and entering publish raises
    TimeoutError after request_timeout."""
    with caplog.at_level(logging.WARNING, logger="fearless.nats"):
        async with (
            configured(tmp_path, nats_conf()) as server,
            fearless.ActorSystem() as actors,
            shop(server, "billing", request_timeout=1.0) as node,
        ):
            actor = await actors.spawn(lambda: Log([]))
            with anyio.fail_after(20), pytest.raises(TimeoutError):
                async with node.publish(actor, "counter", Msg):
                    pass
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        'permissions violation for subscription to "fearless.billing.actor.counter.>"' in m
        for m in messages
    ), messages
