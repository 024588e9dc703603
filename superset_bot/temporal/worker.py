"""`superset-bot worker`: one worker host. It polls the shared task queue (placement, and the turn
workflows themselves) and its own host queue (the turns on its worktrees), and runs them on an engine
of its own: clones under SUPERSET_DATA_DIR/clones, worktrees, logs and store beside them, presets
from SUPERSET_PRESETS_DIR, SUPERSET_MAX_CONCURRENT agents at once.

Stopping it (SIGTERM) leaves running agents alive, as the bot does: the next start re-attaches them
and the turns Temporal retries on this host's queue follow them again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from superset_bot.composition import open_engine
from superset_bot.config import Settings
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.housekeeping.scheduler import build_scheduler
from superset_bot.temporal import wire
from superset_bot.temporal.host import Clones, WorkerHost
from superset_bot.temporal.workflows import DropWorkflow, TurnWorkflow

log = logging.getLogger(__name__)

# heartbeats reach the server at least this often, whatever the heartbeat timeout (the thread's progress)
HEARTBEAT_THROTTLE = timedelta(seconds=1)
SHUTDOWN_GRACE = timedelta(seconds=5)


def host_name(settings: Settings) -> str:
    name = settings.worker_name or socket.gethostname().split(".")[0]
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name) or "worker"


def _clones_in(folder: Path) -> dict[str, Path]:
    """The clones a host made before it stopped, by repo name."""
    if not folder.is_dir():
        return {}
    return {path.name: path for path in sorted(folder.iterdir()) if (path / ".git").is_dir()}


def host_settings(settings: Settings, clones: dict[str, Path]) -> Settings:
    """The host engine's settings: its repos are its clones (filled in as work arrives), its agents local."""
    return dataclasses.replace(settings, repos=clones, default_repo=None, runner="local")


async def serve(settings: Settings, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Run the worker host until `stop` is set."""
    name = host_name(settings)
    clones_dir = settings.data_dir / "clones"
    repos = await asyncio.to_thread(_clones_in, clones_dir)
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    async with open_engine(host_settings(settings, repos)) as engine:
        await engine.start()  # re-attaches the agents a killed worker left running
        queue = settings.temporal_task_queue
        clones = Clones(clones_dir, repos)
        host = WorkerHost(name, engine, clones)
        placing = RepoQueues(client, queue, host)

        async def cloned(repo: str) -> None:  # a new clone: serve its placement queue, warm its worktrees
            await placing.serve(repo)
            engine.pool.add(repo)

        clones.on_new = cloned
        # the workflows hold no cache: a worker that dies leaves no sticky queue nobody polls
        shared = Worker(client, task_queue=queue, workflows=[TurnWorkflow, DropWorkflow], activities=[host.place],
                        max_cached_workflows=0, graceful_shutdown_timeout=SHUTDOWN_GRACE)
        own = Worker(client, task_queue=wire.host_queue(queue, name),
                     activities=[host.run_turn, host.drop, host.read_log, host.read_turn],
                     max_concurrent_activities=max(100, settings.max_concurrent * 4),
                     max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                     default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                     graceful_shutdown_timeout=SHUTDOWN_GRACE)
        # reconcile (each agent's disk limit, stuck tasks) and git maintenance, as on the bot's machine
        scheduler = build_scheduler(Housekeeper(engine), worker_host=True)
        scheduler.start()
        async with shared, own:
            for repo in sorted(repos):
                await placing.serve(repo)
            log.info("worker host %s serving %s and %s (%d agents at once)", name, queue,
                     wire.host_queue(queue, name), settings.max_concurrent)
            if ready is not None:
                ready.set()
            try:
                await stop.wait()
            finally:
                log.info("worker host %s stopping; running agents stay alive for its next start", name)
                scheduler.shutdown(wait=False)
                await placing.stop()


class RepoQueues:
    """The placement queues of the repos this host has cloned (placement asks them before the shared one)."""

    def __init__(self, client: Client, queue: str, host: WorkerHost) -> None:
        self.client = client
        self.queue = queue
        self.host = host
        self.workers: dict[str, tuple[Worker, asyncio.Task[None]]] = {}

    async def serve(self, repo: str) -> None:
        if repo in self.workers:
            return
        worker = Worker(self.client, task_queue=wire.repo_queue(self.queue, repo), activities=[self.host.place],
                        graceful_shutdown_timeout=SHUTDOWN_GRACE)
        self.workers[repo] = (worker, asyncio.create_task(worker.run(), name=f"placement-{repo}"))

    async def stop(self) -> None:
        for worker, running in self.workers.values():
            await worker.shutdown()
            await asyncio.gather(running, return_exceptions=True)


async def run_worker(settings: Settings) -> int:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(settings, stop)
    except RuntimeError as exc:  # the SDK's connect error
        log.error("cannot reach the Temporal server at %s: %s", settings.temporal_address, exc)
        return 2
    return 0
