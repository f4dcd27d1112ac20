"""``python -m benchmarks [--quick] [--only NAME] [--repeats N] [--sizes N,N] [--skip-100k]
[--json FILE] [--plot [FILE]] [--plot-dir DIR]``: run, print the tables, save the results as JSON,
draw the charts.

A full run (no ``--quick``, no ``--only``) saves its results to ``benchmarks/results/latest.json``
(``benchmarks/results.py`` describes the file); ``--json FILE`` saves any run's, there.

``--plot`` draws one SVG chart per ratio table into ``docs/images/benchmarks/``
(``benchmarks/plot.py``). Alone, or with a FILE, it runs nothing: it draws from FILE (default
``benchmarks/results/latest.json``). With any option that asks for a run (``--quick``, ``--only``,
``--repeats``, ``--sizes``, ``--skip-100k``, ``--json``), it draws the results of that run once it
is done.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from . import WORKLOADS, plot, results
from .actor_scale import DEFAULT_SIZES, QUICK_SIZES, ActorScale, parse_sizes
from .harness import FULL, QUICK, Group, Settings, Workload

HUNDRED_K = 100_000


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return parse_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """What the command line asks for."""

    settings: Settings
    names: list[str]
    """The workloads to run."""
    sizes: tuple[int, ...]
    """The ``actor-scale`` sizes."""
    run: bool
    """Whether to run anything: not for ``--plot`` alone or ``--plot FILE``."""
    json: Path | None
    """Where to save the results (``None``: not saved)."""
    plot: Path | None
    """The results file to draw from, when ``--plot`` draws a saved file instead of this run."""
    plotting: bool
    plot_dir: Path


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="fearless against anyio, asyncio.Queue and trio, side by side.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: short runs and 3 repeats (a few seconds in all)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(WORKLOADS),
        metavar="NAME",
        help=f"run only this workload (may repeat): {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--repeats",
        type=_positive_int,
        metavar="N",
        help="timed runs per contender (median reported)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,N",
        help="actor-scale: the numbers of idle actors to measure at, comma-separated "
        f"(default {','.join(map(str, DEFAULT_SIZES))}; with --quick "
        f"{','.join(map(str, QUICK_SIZES))})",
    )
    parser.add_argument(
        "--skip-100k",
        action="store_true",
        help=f"actor-scale: leave out every size of {HUNDRED_K:,} actors or more",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="save the results there (a full run saves them to "
        f"{results.DEFAULT_PATH.relative_to(results.ROOT)} unless told otherwise)",
    )
    parser.add_argument(
        "--plot",
        nargs="?",
        const=True,
        type=Path,
        metavar="FILE",
        help="draw the charts (SVG): alone, from FILE (default "
        f"{results.DEFAULT_PATH.relative_to(results.ROOT)}) without running anything; with "
        "options that ask for a run, from that run",
    )
    parser.add_argument(
        "--plot-dir",
        type=Path,
        default=plot.DEFAULT_DIR,
        metavar="DIR",
        help="where --plot writes the charts "
        f"(default {plot.DEFAULT_DIR.relative_to(results.ROOT)})",
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.repeats is not None:
        settings = dataclasses.replace(settings, repeats=args.repeats)
    sizes: tuple[int, ...] = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.skip_100k:
        sizes = tuple(n for n in sizes if n < HUNDRED_K)
        if not sizes:
            parser.error(f"--skip-100k leaves no actor-scale size below {HUNDRED_K:,}")
    run_options = [
        option
        for option, given in (
            ("--quick", args.quick),
            ("--only", args.only),
            ("--repeats", args.repeats is not None),
            ("--sizes", args.sizes),
            ("--skip-100k", args.skip_100k),
            ("--json", args.json is not None),
        )
        if given
    ]
    plot_file = args.plot if isinstance(args.plot, Path) else None
    if plot_file is not None and run_options:
        parser.error(
            f"--plot {plot_file} draws a saved file and runs nothing: drop {run_options[0]}"
        )
    plot_only = args.plot is not None and not run_options
    json_path = args.json
    if json_path is None and not (args.quick or args.only):
        json_path = results.DEFAULT_PATH
    return Options(
        settings=settings,
        names=args.only or list(WORKLOADS),
        sizes=sizes,
        run=not plot_only,
        json=None if plot_only else json_path,
        plot=(plot_file or results.DEFAULT_PATH) if plot_only else None,
        plotting=args.plot is not None,
        plot_dir=args.plot_dir,
    )


def parse_settings(argv: list[str] | None) -> tuple[Settings, list[str], tuple[int, ...]]:
    """The settings, the workload names and the ``actor-scale`` sizes asked for on the command
    line."""
    options = parse_options(argv)
    return options.settings, options.names, options.sizes


def describe_machine(settings: Settings) -> str:
    about = results.machine()
    found = results.versions()
    peers = ", ".join(
        f"{name} {found.get(name, 'not installed')}" for name in ("anyio", "trio", "uvloop")
    )
    return "\n".join(
        [
            f"- CPU: {about['cpu']}, {about['cores']} cores",
            f"- Python {about['python']} ({about['implementation']}), "
            f"PGO {'on' if about['pgo'] else 'off'}",
            f"- {peers}, fearless {found.get('fearless', 'not installed')}",
            f"- {settings.repeats} interleaved repeats per contender of about "
            f"{settings.seconds:g} s each; medians shown",
        ]
    )


def run(options: Options) -> list[dict[str, Any]]:
    """Run the workloads asked for, printing each table as it is done; their figures."""
    measured: list[dict[str, Any]] = []
    for name in options.names:
        workload = WORKLOADS[name]
        if isinstance(workload, Workload | Group):
            print(workload.run(options.settings, measured), flush=True)
            continue
        if isinstance(workload, ActorScale):
            workload = dataclasses.replace(workload, sizes=options.sizes)
        text = workload.run(options.settings)
        measured.append({"name": name, "kind": "text", "text": text})
        print(text, flush=True)
    return measured


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if not options.run:
        assert options.plot is not None
        written = plot.draw(results.load(options.plot), options.plot_dir)
        print(f"{len(written)} charts from {options.plot} in {options.plot_dir}")
        return 0
    print(describe_machine(options.settings), end="\n\n", flush=True)
    commit = results.git_commit()  # now: the tree may change while a long run goes on
    start = time.perf_counter()
    measured = run(options)
    seconds = time.perf_counter() - start
    print(f"(all measured in {seconds:.1f} s)")
    command = sys.argv[1:] if argv is None else argv
    data = results.results(measured, options.settings, command, seconds, commit)
    if options.json is not None:
        results.save(data, options.json)
        print(f"results saved to {options.json}")
    else:
        print("results not saved (a --quick or --only run): --json FILE saves them")
    if options.plotting:
        written = plot.draw(data, options.plot_dir)
        print(f"{len(written)} charts in {options.plot_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
