"""A select loop: one task serves two inputs and stops on a shutdown signal.

    python examples/select_loop.py [asyncio|uvloop|trio]

A monitoring service: sensor ``readings`` and operator ``alerts`` arrive on two channels, and
closing the ``shutdown`` channel asks the server to stop. One task waits on all three with
``select``: whichever has something first is served, ready inputs are served in random order so
neither starves, and the shutdown branch *ends* (its channel is closed) instead of carrying an
item. What was queued before the shutdown is still served: the summary shows nothing was lost.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import anyio
from anyio import WouldBlock

import fearless
from fearless import Branch, Recv, select, select_nowait


@dataclass
class Report:
    readings: int = 0
    hottest: float = float("-inf")
    alerts: list[str] = field(default_factory=list)
    stopped_by: str = ""


async def serve(
    readings: fearless.ChannelReceiver[float],
    alerts: fearless.ChannelReceiver[str],
    shutdown: fearless.ChannelReceiver[None],
) -> Report:
    """Serve both inputs until shutdown (then what is already queued); return the report."""
    report = Report()
    reading, alert, stop = Recv(readings), Recv(alerts), Recv(shutdown)
    inputs: list[Branch] = [reading, alert]

    def handle(won: Branch) -> None:
        assert isinstance(won, Recv)
        if won.ended:  # that input's producers are done: stop waiting on it
            inputs.remove(won)
        elif won is reading:
            report.readings += 1
            report.hottest = max(report.hottest, reading.value)
        else:
            report.alerts.append(alert.value)

    while inputs:
        won = await select(*inputs, stop)
        if won is stop:  # the shutdown channel ended: serve what is queued, then stop
            report.stopped_by = "shutdown"
            while inputs:
                try:
                    handle(select_nowait(*inputs))
                except WouldBlock:
                    break
            return report
        handle(won)
    report.stopped_by = "inputs ended"
    return report


async def run(n: int = 1000) -> tuple[Report, int]:
    """Run the service; return its report and how many readings the sensor managed to send."""
    readings_tx, readings_rx = fearless.channel[float](16)
    alerts_tx, alerts_rx = fearless.channel[str](4)
    shutdown_tx, shutdown_rx = fearless.channel[None](0)
    reports: list[Report] = []
    sent = 0

    async def sensor() -> None:  # would go on for ever: it stops when the server stops listening
        nonlocal sent
        async with readings_tx:
            i = 0
            while True:
                try:
                    await readings_tx.send(20.0 + (i * 7919 % 1000) / 100)
                except fearless.SendBrokenError:
                    return
                sent += 1
                i += 1

    async def operator() -> None:  # sends a few alerts, then asks for the shutdown
        async with alerts_tx, shutdown_tx:
            for i in range(0, n, 100):
                await alerts_tx.send(f"check the sensor (alert {i // 100})")
                for _ in range(100):
                    await anyio.lowlevel.checkpoint()  # let readings flow between alerts

    async def server() -> None:
        with readings_rx, alerts_rx, shutdown_rx:
            reports.append(await serve(readings_rx, alerts_rx, shutdown_rx))

    async with anyio.create_task_group() as tg:
        tg.start_soon(server)
        tg.start_soon(sensor)
        tg.start_soon(operator)
    return reports[0], sent


def main(argv: list[str]) -> int:
    backend = argv[0] if argv else "asyncio"
    options: dict[str, object] = {}
    if backend == "uvloop":
        import uvloop

        backend, options = "asyncio", {"loop_factory": uvloop.new_event_loop}
    report, sent = anyio.run(run, backend=backend, backend_options=options)
    print(
        f"served {report.readings} of {sent} readings sent (hottest {report.hottest:.2f}), "
        f"{len(report.alerts)} alerts, stopped by {report.stopped_by}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
