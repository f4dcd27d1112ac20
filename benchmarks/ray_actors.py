"""Ray's actors, for reference beside the remote-actor tables of ``benchmarks/nats_actors.py``.

Not part of ``python -m benchmarks`` and not needed by the tests or CI: Ray is a large install
(it is not a dependency of fearless), so this script is run by hand, in a virtual environment of
its own that has Ray::

    python3 -m venv .venv-ray && .venv-ray/bin/pip install ray
    .venv-ray/bin/python benchmarks/ray_actors.py [--calls N] [--repeats N] [--window N]

It starts a local Ray (``ray.init(num_cpus=2)``, the size of the machine the other figures were
measured on), makes one actor with an ``echo(i)`` method returning ``i``, and measures, in
interleaved repeats (medians shown, every result checked):

- **latency**: sequential calls, ``ray.get(actor.echo.remote(i))`` one after the other;
- **throughput**: calls in flight, ``window`` at a time: ``ray.get`` on a list of ``window``
  ``actor.echo.remote(i)`` refs, then the next window.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from typing import Any

__all__ = ["Echo", "main"]


class Echo:
    """The actor: answers with its argument (the ask of the nats tables' echo)."""

    def echo(self, value: int) -> int:
        return value


def sequential(ray: Any, actor: Any, n: int) -> float:
    """Seconds for ``n`` calls one after the other."""
    start = time.perf_counter()
    received = [ray.get(actor.echo.remote(i)) for i in range(n)]
    seconds = time.perf_counter() - start
    if received != list(range(n)):
        raise AssertionError(f"sequential: the actor's answers are not 0 .. {n - 1}")
    return seconds


def windowed(ray: Any, actor: Any, n: int, window: int) -> float:
    """Seconds for ``n`` calls, ``window`` in flight at a time."""
    received: list[int] = []
    start = time.perf_counter()
    for low in range(0, n, window):
        received.extend(ray.get([actor.echo.remote(i) for i in range(low, min(low + window, n))]))
    seconds = time.perf_counter() - start
    if received != list(range(n)):
        raise AssertionError(f"windowed: the actor's answers are not 0 .. {n - 1}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/ray_actors.py", description=__doc__)
    parser.add_argument("--calls", type=int, default=2_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (median)")
    parser.add_argument("--window", type=int, default=128, help="calls in flight (throughput)")
    args = parser.parse_args(argv)
    if min(args.calls, args.repeats, args.window) < 1:
        parser.error(
            f"--calls, --repeats and --window must be positive, got {args.calls}, "
            f"{args.repeats}, {args.window}"
        )
    try:
        ray: Any = importlib.import_module("ray")
    except ImportError:
        print("ray is not installed here: see this script's docstring", file=sys.stderr)
        return 2
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actor = ray.remote(Echo).remote()
        sequential(ray, actor, 100)  # the actor's process is up, the paths are warm
        windowed(ray, actor, 1_000, args.window)
        latency: list[float] = []
        throughput: list[float] = []
        for _ in range(args.repeats):
            latency.append(sequential(ray, actor, args.calls) / args.calls)
            throughput.append(windowed(ray, actor, args.calls, args.window) / args.calls)
    finally:
        ray.shutdown()
    per_call = statistics.median(latency)
    per_item = statistics.median(throughput)
    print(
        f"Ray {ray.__version__}, num_cpus=2, {args.repeats} repeats of {args.calls:,} calls, "
        "medians:\n"
        f"- sequential ray.get(actor.echo.remote(i)): {per_call * 1e3:.2f} ms per call "
        f"({1 / per_call:,.0f} calls/s); repeats {', '.join(f'{x * 1e3:.2f}' for x in latency)}"
        " ms\n"
        f"- {args.window} in flight, ray.get on each window: {per_item * 1e6:.0f} us per call "
        f"({1 / per_item:,.0f} calls/s); repeats "
        f"{', '.join(f'{x * 1e6:.0f}' for x in throughput)} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
