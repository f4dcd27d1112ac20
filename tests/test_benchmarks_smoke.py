"""The benchmarks still run, and every contender does the work it is timed for.

Speed is measured by ``python -m benchmarks``, never asserted here: these tests only check that
each contender of each workload delivers every item exactly once, with a tiny item count.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import benchmarks
import pykka
import pytest
from benchmarks.__main__ import main, parse_settings
from benchmarks.actor_scale import ActorScale, ScaleContender, parse_sizes
from benchmarks.anatomy import Anatomy
from benchmarks.cells import Cells, CounterContender
from benchmarks.harness import (
    FULL,
    QUICK,
    Contender,
    Delivery,
    Group,
    Settings,
    Workload,
    calibrate,
    capped,
    deliver,
    exactly_once,
)
from benchmarks.nats import NatsBench
from benchmarks.threads import THREAD_NAME, in_thread
from benchmarks.yield_every import LatencyProbe, Sweep

import fearless


@pytest.fixture(autouse=True, scope="module")
def _earlier_tests_objects_are_not_collected_again() -> Iterator[None]:
    """The harness runs ``gc.collect()`` before every repeat, and a full collection walks every
    live object: after the rest of the suite (hundreds of thousands of them) that made these
    tests several times slower than alone. What was alive before them is frozen (left out of
    collections) while they run; what they create is collected as usual."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


ITEMS = 203  # not a multiple of the 4 or 8 producers, nor of the capacity or the batch size


def _workloads() -> list[Workload | Sweep]:
    """Every workload, a group (``threads``) counting as the workloads it is made of; ``cells``,
    ``actor-scale``, ``anatomy`` and ``nats`` have no channel contenders (they have their own
    smoke tests)."""
    return [
        part
        for workload in benchmarks.WORKLOADS.values()
        if not isinstance(workload, Cells | ActorScale | Anatomy | NatsBench)
        for part in (workload.workloads if isinstance(workload, Group) else (workload,))
    ]


CONTENDERS = [
    pytest.param(contender, id=f"{workload.name}:{contender.name}")
    for workload in _workloads()
    for contender in workload.contenders
]
PROBES = [
    pytest.param(probe, id=f"{probe.backend.name}:yield_every={probe.yield_every}")
    for probe in benchmarks.yield_every.WORKLOAD.probes
]


@pytest.mark.parametrize("contender", CONTENDERS)
def test_every_contender_delivers_each_item_exactly_once(contender: Contender) -> None:
    """Whatever the library, every item sent reaches one consumer, once, and the run is timed."""
    delivery = deliver(contender, ITEMS)
    assert sorted(delivery.received) == list(range(ITEMS))
    assert delivery.seconds > 0
    assert not _benchmark_threads(), "a contender left its OS thread running"


def _benchmark_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@pytest.mark.parametrize("probe", PROBES)
def test_latency_probe_buffers_every_item_and_records_the_tickers_waits(
    probe: LatencyProbe,
) -> None:
    """The busy producer's items are all in the channel, and the ticker ran at least once."""
    run = probe.run(ITEMS)
    assert sorted(run.received) == list(range(ITEMS))
    assert run.waits
    assert all(wait >= 0 for wait in run.waits)


def test_exactly_once_rejects_a_lost_or_duplicated_item() -> None:
    """The check every benchmark run goes through catches a swap of one item for another."""
    assert exactly_once([2, 0, 1], 3)
    assert not exactly_once([0, 1, 1], 3)
    assert not exactly_once([0, 1], 3)


def test_a_workload_reports_a_ratio_against_its_fearless_baseline() -> None:
    """The harness (calibration, interleaved repeats, medians, table) runs end to end."""
    tiny = Settings(repeats=2, seconds=0.001, min_items=50, max_items=200)
    table = benchmarks.WORKLOADS["merge"].run(tiny)
    assert "anyio forwarders/fearless merge = " in table
    assert "Targets:" in table


def test_a_capped_contender_runs_with_at_most_its_cap_even_below_the_minimum() -> None:
    """A contender slow per item (``max_items``) is calibrated within its cap, warm-up included."""
    sizes: list[int] = []

    def trial(n: int) -> Delivery:
        sizes.append(n)
        return Delivery(1e-7 * n, [])

    assert calibrate(trial, capped(FULL, 2_000)) == 2_000
    assert max(sizes) == 2_000
    assert capped(FULL, None) is FULL


def test_the_threads_workload_runs_end_to_end_in_quick_mode() -> None:
    """``--quick --only threads``: both directions, every installed peer, the targets; no thread
    is left running."""
    table = benchmarks.WORKLOADS["threads"].run(QUICK)
    assert "### 7a. Threads: one OS thread producing" in table
    assert "### 7b. Threads: one task producing" in table
    assert "call_soon_threadsafe/fearless = " in table
    assert "anyio from_thread/fearless = " in table
    assert table.count("Targets:") == 2
    assert not _benchmark_threads()


def test_the_cells_workload_runs_end_to_end_in_quick_mode() -> None:
    """``--quick --only cells`` with small sizes: every counter contender counts exactly, both
    latency bridges on every backend, the targets; no thread is left running."""
    tiny = Settings(repeats=2, seconds=0.002, min_items=200, max_items=2_000)
    table = benchmarks.WORKLOADS["cells"].run(tiny)
    assert "### 8a. Cells: 4 OS threads incrementing one counter" in table
    assert "lock/fearless AtomicInt = " in table
    assert "lock/fearless ShardedCounter = " in table
    assert "### 8b. Cells: wake-up latency" in table
    for backend in ("asyncio", "uvloop", "trio"):
        assert f"| {backend} | AtomicInt.wait_until |" in table
        assert f"| {backend} | channel (thread bridge) |" in table
    assert "Targets (throughput, increments per second):" in table
    assert not _benchmark_threads()


@pytest.mark.parametrize("counter", benchmarks.cells.WORKLOAD.counters, ids=lambda c: c.label)
def test_every_cells_counter_counts_every_increment_of_every_thread(
    counter: CounterContender,
) -> None:
    """203 increments asked for: 50 per thread made, checked exact inside ``run``."""
    assert counter.run(ITEMS).seconds > 0
    assert not _benchmark_threads()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_failing_task_releases_the_benchmark_thread_which_is_joined(backend: str) -> None:
    """The task's error propagates; its abort frees the thread blocked on a full channel."""
    send, receive = fearless.channel[int](1)

    def produce() -> None:
        with send:
            for i in range(100):
                send.send_blocking(i)

    async def main() -> None:
        async with in_thread(produce, receive.close):
            with receive:
                await receive.receive()
                raise LookupError("the consumer failed")

    with pytest.raises(LookupError, match="the consumer failed"):
        anyio.run(main, backend=backend)
    assert not _benchmark_threads()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_failing_thread_releases_the_waiting_task_and_its_error_is_raised(backend: str) -> None:
    """The thread's error comes out of the body; its abort frees the task waiting for items."""
    send, receive = fearless.channel[int](1)

    def produce() -> None:
        raise LookupError("the producer failed")

    async def main() -> None:
        async with in_thread(produce, receive.close):
            with send, receive:
                await receive.receive()

    with pytest.raises(LookupError, match="the producer failed"):
        anyio.run(main, backend=backend)
    assert not _benchmark_threads()


def test_the_actors_workload_runs_end_to_end_in_quick_mode() -> None:
    """``--quick --only actors``: the three tables, every contender (pykka included, from the
    bench extra), the targets; every pykka actor is stopped and no thread is left running."""
    tiny = Settings(repeats=2, seconds=0.002, min_items=50, max_items=500)
    table = benchmarks.WORKLOADS["actors"].run(tiny)
    assert "### 9a. Actors: tell, one actor, unbounded mailbox" in table
    assert "### 9b. Actors: await send, one actor, Mailbox(128)" in table
    assert "### 9c. Actors: sequential asks (latency per ask)" in table
    assert "asyncio.Queue/fearless tell = " in table
    assert "anyio stream 128/fearless send = " in table
    assert "asyncio.Queue + future/fearless ask = " in table
    for backend in ("asyncio", "uvloop", "trio"):
        assert f"| {backend} | pykka |" in table
    assert table.count("Targets:") == 3
    assert not pykka.ActorRegistry.get_all()
    assert not _benchmark_threads()


SCALE_CONTENDERS = [
    pytest.param(contender, id=f"{contender.backend.name}:{contender.label}")
    for contender in benchmarks.actor_scale.WORKLOAD.contenders
]


@pytest.mark.parametrize("contender", SCALE_CONTENDERS)
def test_every_actor_scale_contender_starts_and_gracefully_stops_every_actor(
    contender: ScaleContender,
) -> None:
    """50 idle actors (or floor tasks): each alive once spawned and ended by its stop, checked
    inside the run; the spawn and the shutdown are timed, and the idle actors hold memory."""
    timing = contender.timed(50)
    assert timing.spawn > 0
    assert timing.shutdown > 0
    assert contender.footprint(50) > 0


def test_the_actor_scale_workload_runs_end_to_end_at_tiny_sizes() -> None:
    """``--only actor-scale --sizes 20,60``: every backend and contender at both sizes, the
    ratios against the floor, the growth from the smallest size to the largest, the targets."""
    tiny = Settings(repeats=2)
    workload = benchmarks.actor_scale.WORKLOAD
    table = dataclasses.replace(workload, sizes=(20, 60)).run(tiny)
    assert "### 10. Actors at scale" in table
    for backend in ("asyncio", "trio"):
        for label in ("fearless", "floor", "floor, all at once", "floor, anyio task"):
            assert f"| {backend} | 20 | {label} | 2 |" in table
            assert f"| {backend} | 60 | {label} | 2 |" in table
        assert f"- {backend}, 60 actors: memory fearless/floor <= 1.6x: measured " in table
        assert f"- {backend}: fearless spawn per actor flat from 20 to 60: grew " in table
    assert "Growth: per actor at 60 / per actor at 20" in table


def test_actor_scale_sizes_come_from_the_command_line() -> None:
    """The defaults, ``--quick``'s, ``--sizes`` (sorted, deduplicated) and ``--skip-100k``."""
    assert parse_settings([])[2] == (1_000, 10_000, 100_000)
    assert parse_settings(["--quick"])[2] == (100, 1_000)
    assert parse_settings(["--sizes", "10_000, 1000,1000"])[2] == (1_000, 10_000)
    assert parse_settings(["--skip-100k"])[2] == (1_000, 10_000)
    assert parse_settings(["--sizes", "500,200000", "--skip-100k"])[2] == (500,)
    with pytest.raises(SystemExit):
        parse_settings(["--sizes", "100000", "--skip-100k"])  # nothing left to measure


@pytest.mark.parametrize("text", ["0", "1000,-5", "1000,lots", ""])
def test_a_bad_actor_count_is_refused_with_its_value_named(text: str) -> None:
    """An actor count that is not a positive integer names the bad part."""
    bad = text.split(",")[-1].strip()
    with pytest.raises(ValueError, match=f"an actor count must be .*{bad}"):
        parse_sizes(text)


def test_the_anatomy_runs_end_to_end_and_every_copy_stays_on_its_fast_path() -> None:
    """``--quick --only anatomy`` with tiny runs: every stripped copy of the send and receive fast
    paths completes (a copy that left its fast path would raise), both runners, both tables, the
    real methods beside the sums of their parts, and both counting streams deliver their count."""
    tiny = Settings(repeats=1, seconds=0.002, min_items=50, max_items=500)
    table = benchmarks.WORKLOADS["anatomy"].run(tiny)
    assert "### 11a. Anatomy: one send and one receive inside one task" in table
    assert "### 11b. Anatomy: the stream it adds up to" in table
    assert "| `await tx.send(x)` |" in table
    assert "| `await rx.__anext__()` (what `async for` calls) |" in table
    assert table.count("| sum of the parts below (a copy of the fast path) |") == 2
    assert table.count("| - the cancel check, `_backend.enter()` |") == 2
    for runner in ("asyncio.run", "anyio.run"):
        assert f"| {runner} | asyncio.Queue |" in table
        assert f"- {runner}: the real method minus the sum of its parts: send " in table
        assert f"- {runner}: the parts predict fearless at send + __anext__" in table


def _nats_server_or_skip() -> None:
    """Skip without the ``fearless[nats]`` extra or its server binary; under ``CI=true``, fail."""
    try:
        import fearless.nats

        fearless.nats.find_nats_server()
    except (ImportError, RuntimeError) as exc:  # NatsServerError is a RuntimeError
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs fearless[nats] and nats-server: {exc}")
        pytest.skip(str(exc))


def test_the_nats_workload_runs_end_to_end_in_quick_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--only nats --quick`` against one embedded server: the nine tables (six of channels,
    broadcast and cells, three of remote actors), every contender on its backends (each run
    checks that every item came back exactly once), the raw client shown again on trio's rows,
    the remote actors' targets and the tell note; the results saved as JSON, nine ratio tables,
    and a chart drawn for each."""
    _nats_server_or_skip()
    saved = tmp_path / "results.json"
    charts = tmp_path / "charts"
    argv = ["--only", "nats", "--quick", "--json", str(saved), "--plot", "--plot-dir", str(charts)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "nats skipped" not in out
    for letter in "abcdefghi":
        assert f"### 12{letter}. fearless.nats vs nats-py: " in out
    for backend in ("asyncio", "uvloop", "trio"):
        assert f"| {backend} | fearless send | " in out
        assert f"| {backend} | fearless prefetch 256 | " in out
        assert f"| {backend} | fearless client_loop.call | " in out
        assert f"| {backend} | fearless increment | " in out
        assert f"| {backend} | fearless load | " in out
        assert f"| {backend} | fearless publish + subscribe | " in out
        assert f"| {backend} | fearless ask | " in out
        assert f"| {backend} | fearless tell | " in out
        assert f"- {backend}: 20,000 tells to the default Mailbox(1000): " in out
    assert "- trio: nc.request (asyncio)/fearless ask >= 0.4x (fearless within 2.5x" in out
    assert "- asyncio: nc.publish + callback/fearless tell >= 0.5x: measured " in out
    assert "| uvloop | js.publish | " in out
    assert "| trio | js.publish (asyncio) | " in out
    assert "nc.request (asyncio)/fearless client_loop.call = " in out
    assert "| trio | fetch(16) + ack | " not in out  # raw nats-py never runs on trio
    data = json.loads(saved.read_text())
    tables = {w["name"]: w for w in data["workloads"]}
    assert sorted(tables) == [
        "nats-ask",
        "nats-ask-process",
        "nats-broadcast",
        "nats-increment",
        "nats-load",
        "nats-receive",
        "nats-request",
        "nats-send",
        "nats-tell",
    ]
    assert all(t["kind"] == "ratios" for t in tables.values())
    assert [t["backend"] for t in tables["nats-ask"]["targets"]] == ["asyncio", "trio"]
    assert len(tables["nats-tell"]["notes"]) == 3  # the default mailbox's note, per backend
    request = {(r["backend"], r["contender"]): r for r in tables["nats-request"]["rows"]}
    assert (
        request["trio", "nc.request (asyncio)"]["median"]
        == (request["asyncio", "nc.request"]["median"])
    )
    assert sorted(p.name for p in charts.iterdir()) == sorted(f"{n}.svg" for n in tables)
