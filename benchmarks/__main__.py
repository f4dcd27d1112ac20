"""``python -m benchmarks [--quick] [--only NAME] [--repeats N] [--sizes N,N] [--skip-100k]``: run
and print the tables."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import sysconfig
import time
from importlib.metadata import version

from . import WORKLOADS
from .actor_scale import DEFAULT_SIZES, QUICK_SIZES, ActorScale, parse_sizes
from .harness import FULL, QUICK, Settings

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


def parse_settings(argv: list[str] | None) -> tuple[Settings, list[str], tuple[int, ...]]:
    """The settings, the workload names and the ``actor-scale`` sizes asked for on the command
    line."""
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
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.repeats is not None:
        settings = dataclasses.replace(settings, repeats=args.repeats)
    sizes: tuple[int, ...] = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.skip_100k:
        sizes = tuple(n for n in sizes if n < HUNDRED_K)
        if not sizes:
            parser.error(f"--skip-100k leaves no actor-scale size below {HUNDRED_K:,}")
    return settings, args.only or list(WORKLOADS), sizes


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine(settings: Settings) -> str:
    pgo = "--enable-optimizations" in (sysconfig.get_config_var("CONFIG_ARGS") or "")
    versions = ", ".join(f"{name} {version(name)}" for name in ("anyio", "trio", "uvloop"))
    return "\n".join(
        [
            f"- CPU: {_cpu_model()}, {os.cpu_count()} cores",
            f"- Python {platform.python_version()} ({platform.python_implementation()}), "
            f"PGO {'on' if pgo else 'off'}",
            f"- {versions}, fearless {version('fearless')}",
            f"- {settings.repeats} interleaved repeats per contender of about "
            f"{settings.seconds:g} s each; medians shown",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    settings, names, sizes = parse_settings(argv)
    print(describe_machine(settings), end="\n\n", flush=True)
    start = time.perf_counter()
    for name in names:
        workload = WORKLOADS[name]
        if isinstance(workload, ActorScale):
            workload = dataclasses.replace(workload, sizes=sizes)
        print(workload.run(settings), flush=True)
    print(f"(all measured in {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
