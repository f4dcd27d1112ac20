"""Charts of a results file (``benchmarks/results.py``) as SVG, written by hand (no plotting
library).

``python -m benchmarks --plot [FILE]`` draws one chart per ratio table (``"kind": "ratios"``) into
``docs/images/benchmarks/<workload>.svg``. A chart has a row per peer, grouped by backend, and a
bar from the 1.0x line to the peer's ratio (its median time per item over the fearless baseline's
on the same backend), on a log scale: a bar to the right means fearless was faster by that
factor, a bar to the left that the peer was. A target of the workload is a tick across its bar.
The chart paints its own background, light or dark after the reader's colour scheme.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["DEFAULT_DIR", "chart", "draw"]

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "docs" / "images" / "benchmarks"

WIDTH = 760
LABEL_X = 16  # left edge of the row labels
PLOT_LEFT = 230  # left edge of the plot area
PLOT_RIGHT = WIDTH - 24
PAD = 56  # room inside the plot area, at each end, for a bar's value
ROW = 24  # height of a bar's row
BAR = 14
TOP = 96  # the title, the subtitle, the axis labels
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

STYLE = f"""
text {{ font-family: {FONT}; font-size: 12px; fill: #1f2328; }}
.bg {{ fill: #ffffff; stroke: #d0d7de; }}
.title {{ font-size: 15px; font-weight: 600; }}
.note, .tick {{ fill: #57606a; }}
.backend {{ font-weight: 600; }}
.grid {{ stroke: #d8dee4; stroke-width: 1; }}
.one {{ stroke: #1f2328; stroke-width: 1.5; }}
.faster {{ fill: #2f81c7; }}
.slower {{ fill: #d4762c; }}
.target {{ stroke: #1f2328; stroke-width: 2; }}
@media (prefers-color-scheme: dark) {{
  text {{ fill: #e6edf3; }}
  .bg {{ fill: #0d1117; stroke: #30363d; }}
  .note, .tick {{ fill: #9198a1; }}
  .grid {{ stroke: #30363d; }}
  .one, .target {{ stroke: #e6edf3; }}
  .faster {{ fill: #4c9be0; }}
  .slower {{ fill: #e08a45; }}
}}
"""


def _text(x: float, y: float, body: str, cls: str = "", anchor: str = "start") -> str:
    attrs = f' class="{cls}"' if cls else ""
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    return f'<text x="{x:.1f}" y="{y:.1f}"{attrs}>{escape(body)}</text>'


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def _tick(value: float) -> str:
    return f"{value:g}x"


def _domain(ratios: list[float]) -> tuple[int, int]:
    """The log2 range drawn: whole powers of two around every ratio and 1.0x."""
    logs = [math.log2(r) for r in ratios] + [0.0]
    low, high = math.floor(min(logs)), math.ceil(max(logs))
    if low == high:
        high += 1
    return low, high


def chart(workload: dict[str, Any], about: dict[str, Any]) -> str:
    """One ratio table (a ``"kind": "ratios"`` entry of a results file) as an SVG document;
    ``about`` is the whole results file, for the footer (date, commit, machine)."""
    baseline = workload["baseline"]
    peers = [row for row in workload["rows"] if row["ratio"] is not None]
    if not peers:
        raise ValueError(f"workload {workload['name']!r} has no peer to draw against {baseline!r}")
    backends: list[str] = []
    for row in peers:
        if row["backend"] not in backends:
            backends.append(row["backend"])
    targets = {(t["backend"], t["peer"]): t for t in workload.get("targets", ())}

    low, high = _domain([row["ratio"] for row in peers] + [t["at_least"] for t in targets.values()])
    span = (PLOT_RIGHT - PAD) - (PLOT_LEFT + PAD)

    def x(ratio: float) -> float:
        return PLOT_LEFT + PAD + (math.log2(ratio) - low) / (high - low) * span

    rows_height = len(peers) * ROW + len(backends) * ROW
    plot_bottom = TOP + rows_height + 8
    height = plot_bottom + 74
    one = x(1.0)
    settings = about.get("settings", {})
    repeats = settings.get("repeats", "?")

    body: list[str] = [
        f'<rect class="bg" x="0.5" y="0.5" width="{WIDTH - 1}" height="{height - 1}" rx="6"/>',
        _text(LABEL_X, 28, workload["title"], "title"),
        _text(
            LABEL_X,
            48,
            f"Each peer's time per item / {baseline}'s, same backend; median of {repeats} "
            "interleaved runs; log scale.",
            "note",
        ),
        _text(
            LABEL_X,
            64,
            f"Right of 1x: {baseline} is faster by that factor; left of 1x: the peer is faster.",
            "note",
        ),
    ]
    # The grid, the ticks and the 1x line.
    for power in range(low, high + 1):
        value = 2.0**power
        gx = x(value)
        cls = "one" if power == 0 else "grid"
        body.append(
            f'<line class="{cls}" x1="{gx:.1f}" y1="{TOP - 8}" x2="{gx:.1f}" y2="{plot_bottom}"/>'
        )
        body.append(_text(gx, plot_bottom + 16, _tick(value), "tick", "middle"))
    body.append(_text(one, TOP - 14, f"1x = {baseline}", "tick", "middle"))

    y = TOP
    for backend in backends:
        body.append(_text(LABEL_X, y + ROW / 2 + 4, backend, "backend"))
        y += ROW
        for row in (r for r in peers if r["backend"] == backend):
            ratio = row["ratio"]
            end = x(ratio)
            mid = y + ROW / 2
            body.append(_text(LABEL_X + 12, mid + 4, row["contender"]))
            left, right = min(one, end), max(one, end)
            cls = "faster" if ratio >= 1 else "slower"
            tooltip = (
                f"{backend}, {row['contender']}: {_ratio(ratio)} "
                f"({row['median'] * 1e6:.3g} us per item, spread {row['spread']:.0%})"
            )
            body.append(
                f'<rect class="{cls}" x="{left:.1f}" y="{mid - BAR / 2:.1f}" '
                f'width="{max(right - left, 1.0):.1f}" height="{BAR}" rx="2">'
                f"<title>{escape(tooltip)}</title></rect>"
            )
            target = targets.get((backend, row["contender"]))
            reach = [end]
            if target is not None:
                tx = x(target["at_least"])
                reach.append(tx)
                body.append(
                    f'<line class="target" x1="{tx:.1f}" y1="{mid - BAR / 2 - 3:.1f}" '
                    f'x2="{tx:.1f}" y2="{mid + BAR / 2 + 3:.1f}">'
                    f"<title>target: at least {_tick(target['at_least'])}</title></line>"
                )
            # The value, past the bar's end and past the target's tick.
            if ratio >= 1:
                body.append(_text(max(reach) + 5, mid + 4, _ratio(ratio)))
            else:
                body.append(_text(min(reach) - 5, mid + 4, _ratio(ratio), anchor="end"))
            y += ROW

    legend_y = plot_bottom + 38
    body += [
        f'<rect class="faster" x="{LABEL_X}" y="{legend_y - 9}" width="12" height="10" rx="2"/>',
        _text(LABEL_X + 17, legend_y, f"{baseline} faster"),
        f'<rect class="slower" x="{LABEL_X + 150}" y="{legend_y - 9}" width="12" height="10" '
        'rx="2"/>',
        _text(LABEL_X + 167, legend_y, "peer faster"),
    ]
    if targets:
        body += [
            f'<line class="target" x1="{LABEL_X + 270}" y1="{legend_y - 10}" '
            f'x2="{LABEL_X + 270}" y2="{legend_y + 2}"/>',
            _text(LABEL_X + 277, legend_y, "target"),
        ]
    body.append(_text(LABEL_X, legend_y + 22, footer(about), "note"))

    title = escape(workload["title"])
    description = escape(
        "; ".join(f"{r['backend']} {r['contender']} {_ratio(r['ratio'])}" for r in peers)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="title desc">\n'
        f'<title id="title">{title}</title>\n<desc id="desc">{description}</desc>\n'
        f"<style>{STYLE}</style>\n" + "\n".join(body) + "\n</svg>\n"
    )


def footer(about: dict[str, Any]) -> str:
    """``Measured 2025-01-31 at 7468b61: <cpu>, 2 cores, CPython 3.11.7 (no PGO), load 1.2``."""
    machine = about.get("machine", {})
    date = str(about.get("date", "?"))[:10]
    commit = about.get("commit") or "?"
    load = machine.get("load_average")
    parts = [
        f"Measured {date} at {commit}: {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores",
        f"{machine.get('implementation', 'Python')} {machine.get('python', '?')}"
        + ("" if machine.get("pgo") else " (no PGO)"),
    ]
    if load:
        parts.append(f"load {load[0]:.1f}")
    return ", ".join(parts)


def draw(about: dict[str, Any], directory: Path) -> list[Path]:
    """Write a chart for every ratio table of the results file ``about`` into ``directory``;
    the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for workload in about["workloads"]:
        if workload.get("kind") != "ratios":
            continue
        path = directory / f"{workload['name']}.svg"
        path.write_text(chart(workload, about))
        written.append(path)
    return written
