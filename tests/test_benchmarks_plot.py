"""``python -m benchmarks --plot`` draws readable SVG charts from a saved results file.

A small results file (two ratio tables and a text table) is written to a temporary directory and
drawn; each chart must parse as XML and show what was measured: its title, a row per peer, a bar
per peer whose side of the 1x line matches its ratio, the values, the 1x reference and the
machine. Nothing is run: these tests need no benchmark peer.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from benchmarks import plot, results
from benchmarks.__main__ import main, parse_options

SVG = "{http://www.w3.org/2000/svg}"


def _row(backend: str, contender: str, median: float, ratio: float | None) -> dict[str, Any]:
    return {
        "backend": backend,
        "contender": contender,
        "items": 10_000,
        "median": median,
        "spread": 0.1,
        "ratio": ratio,
    }


FIXTURE: dict[str, Any] = {
    "format": results.FORMAT,
    "date": "2025-01-31T12:00:00+00:00",
    "commit": "abc1234",
    "command": [],
    "seconds": 12.5,
    "settings": {"repeats": 5, "seconds": 0.25},
    "machine": {
        "cpu": "Test CPU",
        "cores": 2,
        "python": "3.11.7",
        "implementation": "CPython",
        "pgo": False,
        "platform": "Linux",
        "load_average": [0.5, 0.5, 0.5],
    },
    "versions": {"fearless": "0.1.0", "anyio": "4.16.0"},
    "workloads": [
        {
            "name": "one-to-one",
            "kind": "ratios",
            "title": "1. One producer, one consumer",
            "baseline": "fearless",
            "rows": [
                _row("asyncio", "fearless", 1e-6, None),
                _row("asyncio", "anyio", 4.3e-6, 4.3),
                _row("asyncio", "asyncio.Queue", 0.6e-6, 0.6),
                _row("trio", "fearless", 2e-6, None),
                _row("trio", "trio channel", 9.4e-6, 4.7),
            ],
            "targets": [
                {
                    "backend": "asyncio",
                    "peer": "anyio",
                    "at_least": 4.0,
                    "wording": "",
                    "measured": 4.3,
                    "met": True,
                }
            ],
        },
        {
            "name": "merge",
            "kind": "ratios",
            "title": "4. Merge of 8 inputs & <friends>",
            "baseline": "fearless merge",
            "rows": [
                _row("asyncio", "fearless merge", 1e-6, None),
                _row("asyncio", "anyio forwarders", 11e-6, 11.0),
            ],
            "targets": [],
        },
        {"name": "cells", "kind": "text", "text": "### 8a. Cells\n"},
    ],
}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(FIXTURE))
    return path


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _bars(root: ET.Element) -> list[ET.Element]:
    """The bars (each with its tooltip), not the legend's swatches."""
    return [
        r
        for r in root.iter(f"{SVG}rect")
        if r.get("class") in {"faster", "slower"} and r.find(f"{SVG}title") is not None
    ]


def test_plot_alone_draws_one_well_formed_chart_per_ratio_table(
    saved: Path, tmp_path: Path
) -> None:
    out = tmp_path / "charts"
    assert main(["--plot", str(saved), "--plot-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["merge.svg", "one-to-one.svg"]
    for chart in out.iterdir():
        root = ET.parse(chart).getroot()  # raises on anything that is not well-formed XML
        assert root.tag == f"{SVG}svg"
        assert root.get("viewBox")


def test_a_chart_names_its_workload_every_peer_and_backend_and_the_baseline(
    saved: Path, tmp_path: Path
) -> None:
    plot.draw(results.load(saved), tmp_path)
    root = ET.parse(tmp_path / "one-to-one.svg").getroot()
    texts = _texts(root)
    assert "1. One producer, one consumer" in texts
    assert root.findtext(f"{SVG}title") == "1. One producer, one consumer"
    for label in ("asyncio", "trio", "anyio", "asyncio.Queue", "trio channel"):
        assert label in texts
    assert "1x = fearless" in texts
    assert "fearless" not in texts  # the baseline is the 1x line, not a bar of its own
    assert {"4.30x", "0.60x", "4.70x"} <= set(texts)
    assert any("Measured 2025-01-31 at abc1234: Test CPU, 2 cores" in t for t in texts)


def test_each_bar_starts_at_the_1x_line_and_goes_the_way_its_ratio_says(
    saved: Path, tmp_path: Path
) -> None:
    """A ratio above 1 (fearless faster) is a bar right of the 1x line, below 1 one to its left,
    and on the log scale 4.7x is longer than 4.3x."""
    plot.draw(results.load(saved), tmp_path)
    root = ET.parse(tmp_path / "one-to-one.svg").getroot()
    one = next(line for line in root.iter(f"{SVG}line") if line.get("class") == "one")
    x_one = float(one.get("x1", "nan"))
    bars = {"".join(bar.itertext()).split(":")[0]: bar for bar in _bars(root)}
    assert set(bars) == {"asyncio, anyio", "asyncio, asyncio.Queue", "trio, trio channel"}

    def span(key: str) -> tuple[float, float]:
        x, width = float(bars[key].get("x", "nan")), float(bars[key].get("width", "nan"))
        return x, x + width

    for key in ("asyncio, anyio", "trio, trio channel"):
        assert bars[key].get("class") == "faster"
        assert math.isclose(span(key)[0], x_one, abs_tol=0.1)
    assert bars["asyncio, asyncio.Queue"].get("class") == "slower"
    assert math.isclose(span("asyncio, asyncio.Queue")[1], x_one, abs_tol=0.1)
    assert span("trio, trio channel")[1] > span("asyncio, anyio")[1]
    targets = [
        line
        for line in root.iter(f"{SVG}line")
        if line.get("class") == "target" and line.find(f"{SVG}title") is not None
    ]
    assert ["".join(t.itertext()) for t in targets] == ["target: at least 4x"]  # anyio, asyncio


def test_text_from_the_results_file_is_escaped_in_the_chart(saved: Path, tmp_path: Path) -> None:
    plot.draw(results.load(saved), tmp_path)
    root = ET.parse(tmp_path / "merge.svg").getroot()
    assert "4. Merge of 8 inputs & <friends>" in _texts(root)
    assert "11.0x" in _texts(root)


def test_a_file_that_is_not_a_results_file_is_refused_with_its_path_named(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": 99}))
    with pytest.raises(SystemExit, match=r"wrong\.json is not a benchmark results file"):
        results.load(wrong)
    with pytest.raises(SystemExit, match=r"no benchmark results at .*missing\.json"):
        results.load(tmp_path / "missing.json")


def test_plot_alone_runs_nothing_and_plot_with_run_options_draws_that_run() -> None:
    alone = parse_options(["--plot"])
    assert not alone.run
    assert alone.plot == results.DEFAULT_PATH
    after = parse_options(["--quick", "--only", "merge", "--plot"])
    assert after.run
    assert after.plotting
    assert after.json is None  # a quick, partial run is not saved over the committed results
    assert parse_options([]).json == results.DEFAULT_PATH  # a full run is


def test_plot_of_a_file_with_run_options_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--plot", "some.json", "--quick"])
    assert "--plot some.json draws a saved file and runs nothing: drop --quick" in (
        capsys.readouterr().err
    )


def test_a_run_records_its_ratio_tables_as_plain_data(tmp_path: Path) -> None:
    """A tiny real run of one workload saves, and the saved file draws."""
    path = tmp_path / "run.json"
    out = tmp_path / "charts"
    code = main(
        ["--quick", "--only", "merge", "--repeats", "1", "--json", str(path), "--plot",
         "--plot-dir", str(out)]
    )  # fmt: skip
    assert code == 0
    data = results.load(path)
    (merge,) = data["workloads"]
    assert merge["name"] == "merge"
    assert merge["baseline"] == "fearless merge"
    assert {row["backend"] for row in merge["rows"]} == {"asyncio", "trio"}
    for row in merge["rows"]:
        assert row["median"] > 0
        assert (row["ratio"] is None) == (row["contender"] == "fearless merge")
    assert data["versions"]["fearless"]
    assert data["machine"]["cores"]
    assert (out / "merge.svg").exists()
