"""Side-by-side benchmarks of fearless against its peers, in one process, printing ratios.

``python -m benchmarks`` (or ``python3 tools/dev.py bench``) runs every workload; ``--only NAME``
runs one, ``--quick`` makes a smoke run of a few seconds, ``--repeats N`` sets the repeats. The
results and the machine they were measured on are in ``docs/benchmarks.md``; how each figure is
made is in :mod:`benchmarks.harness`.

Workloads (each in its own module, one small function per contender):

``one-to-one``    one producer, one consumer, capacity 128 (fearless, the anyio drop-in, anyio,
                  asyncio.Queue, trio)
``four-to-four``  four producers, four consumers through clones
``receive-many``  one producer, a consumer taking batches with ``receive_many(128)``
``merge``         ``fearless.merge`` of 8 inputs against anyio with a forwarding task per input
``select``        ``fearless.select`` over 4 inputs against forwarding tasks into one channel
``yield-every``   the ``yield_every`` sweep: throughput against another task's scheduling delay
``broadcast``     one producer, 8 subscribers each receiving every item: ``fearless.broadcast``
                  against one anyio stream / ``asyncio.Queue`` / trio channel per subscriber
``threads``       an OS thread producing into a task, and a task into a thread: fearless's
                  ``*_blocking`` calls against culsans, janus, aiologic, a round trip per item
                  with ``anyio.from_thread``, and ``call_soon_threadsafe`` into an asyncio.Queue
``cells``         4 OS threads on one counter: a ``threading.Lock`` around an int against
                  ``AtomicInt``, ``ShardedCounter`` and the ``atomics`` package; and the wake-up
                  latency of ``AtomicInt.wait_until`` from a thread, next to the channel bridge's
``actors``        one actor: ``tell`` into an unbounded mailbox, ``await send`` into a
                  ``Mailbox(128)``, and sequential asks, against a hand-written task reading an
                  ``asyncio.Queue`` (or an anyio stream) and against pykka's threading actors
``short-lived``   a stream per item (create, send, receive, close): fearless, the drop-in, anyio
                  and trio
``actor-scale``   1,000 to 100,000 idle actors: spawn, shutdown and memory per actor against a
                  task draining its own queue (``--sizes N,N`` and ``--skip-100k`` choose the
                  sizes)
``anatomy``       where the time of one ``send`` and one ``receive`` goes: the real calls inside
                  one task beside copies of their fast paths stripped one part at a time (the
                  cancel check, the lock, the budget, the counters), ``asyncio.Queue.put``/``get``
                  and one yield; and the one-to-one stream with a consumer that only counts
``nats``          ``fearless.nats`` against raw nats-py over one embedded nats-server: durable
                  sends and receives, a request/reply round trip through the client's loop,
                  distributed cells (increment, load), broadcast; and remote actors
                  (``benchmarks/nats_actors.py``, issue 16): ``RemoteRef.ask`` to a published
                  echo actor against ``nc.request`` (one process, and across processes), ``tell``
                  against ``nc.publish`` to a callback (needs ``fearless[nats]``; skipped with a
                  note without it)
"""

from __future__ import annotations

from . import (
    actor_scale,
    actors,
    anatomy,
    batches,
    broadcasting,
    cells,
    four_to_four,
    merging,
    nats_actors,
    one_to_one,
    selecting,
    short_lived,
    threads,
    yield_every,
)
from .actor_scale import ActorScale
from .anatomy import Anatomy
from .cells import Cells
from .harness import Group, Workload
from .nats import NatsBench
from .yield_every import Sweep

__all__ = ["WORKLOADS"]

WORKLOADS: dict[str, Workload | Sweep | Group | Cells | ActorScale | Anatomy | NatsBench] = {
    workload.name: workload
    for workload in (
        one_to_one.WORKLOAD,
        four_to_four.WORKLOAD,
        batches.WORKLOAD,
        merging.WORKLOAD,
        yield_every.WORKLOAD,
        broadcasting.WORKLOAD,
        selecting.WORKLOAD,
        threads.WORKLOAD,
        cells.WORKLOAD,
        actors.WORKLOAD,
        short_lived.WORKLOAD,
        actor_scale.WORKLOAD,
        anatomy.WORKLOAD,
        nats_actors.WORKLOAD,
    )
}
"""Every workload, by its ``--only`` name, in the order they run."""
