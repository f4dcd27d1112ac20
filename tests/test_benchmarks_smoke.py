"""The benchmarks still run, and every contender does the work it is timed for.

Speed is measured by ``python -m benchmarks``, never asserted here: these tests only check that
each contender of each workload delivers every item exactly once, with a tiny item count.
"""

from __future__ import annotations

import benchmarks
import pytest
from benchmarks.harness import Contender, Settings, deliver, exactly_once
from benchmarks.yield_every import LatencyProbe

ITEMS = 203  # not a multiple of the 4 or 8 producers, nor of the capacity or the batch size

CONTENDERS = [
    pytest.param(contender, id=f"{workload.name}:{contender.name}")
    for workload in benchmarks.WORKLOADS.values()
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
