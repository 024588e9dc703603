"""g. Git lock contention: many agents commit in a tight loop at once (bench/agents/commit_loop.py: write
a file, `git add`, `git commit`), each in its own worktree of one repo, all started through the real
engine. Per mode: commits per second (all agents together), failed commits, failures on a git lock
file, and the latency of one add + commit. Modes: one agent alone (the baseline), then all agents
plain and in the bubblewrap sandbox, each also while the bot does git work on the same repo
(a loop of spawn -> agent commit -> merge into main -> worktree and branch removed, which also makes
the warm pool refill and move its worktrees to the new main).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    AGENTS,
    Rig,
    Table,
    agent_preset,
    find_bwrap,
    make_rig,
    ms,
    percentile,
    settled,
    small_repo,
)
from superset_bot.store import FINISHED, MERGED, REVIEWABLE_STATES


@dataclass
class Mode:
    agents: int
    made: int = 0
    failed: int = 0
    locked: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    merges: int = 0  # the bot's merges during the window
    merge_errors: list[str] = field(default_factory=list)


async def run(tmp: Path, *, agents: int, seconds: float) -> Table:
    bwrap, why_not = find_bwrap()
    modes = (("plain, 1 agent alone (baseline)", 1, None, False), ("plain", agents, None, False),
             ("sandboxed", agents, bwrap, False), ("plain, bot busy", agents, None, True),
             ("sandboxed, bot busy", agents, bwrap, True))
    table = Table(f"g. Git lock contention ({agents} agents committing at once in their worktrees of one repo, "
                  f"{seconds:g} s per mode)",
                  ["mode", "agents", "commits/s (total)", "commits", "failed commits", "lock failures",
                   "add + commit latency p50 / p95 / max", "bot merges meanwhile"])
    results: list[Mode] = []
    load_before = os.getloadavg()[0]
    for i, (label, n, sandbox, busy) in enumerate(modes):
        if "sandboxed" in label and not sandbox:
            table.rows.append([label, str(n), f"not measured: {why_not}", "-", "-", "-", "-", "-"])
            continue
        print(f"gitlock: {label}: {n} agents for {seconds:g} s ...", flush=True)
        mode = await one_mode(tmp / f"mode{i}", n, seconds, sandbox, busy)
        results.append(mode)
        lat = mode.latencies
        table.rows.append([label, str(n), f"{mode.made / mode.seconds:.0f}", str(mode.made), str(mode.failed),
                           str(mode.locked), f"{ms(percentile(lat, 50))} / {ms(percentile(lat, 95))} / "
                           f"{ms(max(lat, default=float('nan')))}",
                           f"{mode.merges} ({len(mode.merge_errors)} failed)" if busy else "-"])
        for error in (mode.errors + mode.merge_errors)[:2]:
            table.notes.append(f"{label}: {error[:200]!r}")
    locked = sum(mode.locked for mode in results)
    failed = sum(mode.failed for mode in results)
    if locked == 0:
        table.notes.append(
            "no commit failed on a lock: git waits for a held lock file briefly or not at all (the index: not at all; "
            "a ref: core.filesRefLockTimeout, 100 ms) and then fails, so 0 lock failures means no agent was kept from "
            "a lock for longer than that. Each linked "
            "worktree has its own index (.git/worktrees/<name>/index) and HEAD, each task's branch is its own ref "
            "file (refs/heads/superset/<id>/<slug>), and new objects go to the shared store by write + rename "
            "without a lock; the bot's merges lock main's ref, main's checkout and, deleting a branch, packed-refs, "
            "none of which an agent's commit takes")
    table.notes.append(f"latency = one `git add` + `git commit` of a one-line change; with no lock contended, its rise "
                       f"from 1 to {agents} agents is the agents sharing {os.cpu_count()} cores")
    table.notes.append(f"load average (1 min) before the first mode {load_before:.1f}, after the last "
                       f"{os.getloadavg()[0]:.1f} (the agents' own load included)")
    table.notes.append("bot busy: during the window the bot also ran, one after another, spawn -> an unsandboxed agent "
                       "commits a file -> merge into main -> worktree and branch removed (each also makes the warm "
                       "pool refill and move to the new main)")
    table.targets.append(("gitlock: no agent commit fails on a git lock", f"{locked} lock failures, {failed} failed",
                          locked == 0))
    return table


async def one_mode(tmp: Path, agents: int, seconds: float, bwrap: str | None, busy: bool) -> Mode:
    repo = small_repo(tmp / "repo")
    out = tmp / "out"
    out.mkdir()
    loop = agent_preset([sys.executable, str(AGENTS / "commit_loop.py"), "{prompt}"],
                        {"BENCH_OUT_DIR": str(out), "BENCH_SECONDS": str(seconds)})
    edit = agent_preset([sys.executable, str(AGENTS / "edit_one.py"), "{prompt}"])
    env = {}
    if bwrap:
        loop.update(sandbox="bwrap", sandbox_writable=[str(out)])
        env["SUPERSET_BWRAP"] = bwrap
    rig = await make_rig(tmp / "bot", repo, {"loop": loop, "edit": edit}, max_concurrent=agents + 2, extra_env=env)
    mode = Mode(agents)
    try:
        tasks = [await rig.engine.spawn(f"commit loop {i}", requester="bench") for i in range(agents)]
        await until_ready(rig, out, [t.id for t in tasks], timeout=120 + 5 * agents)
        (out / "go").touch()
        end = (out / "go").stat().st_mtime + seconds
        work = asyncio.create_task(bot_git_work(rig, end, mode)) if busy else None
        await asyncio.gather(*(settled(rig.engine, t.id, REVIEWABLE_STATES, timeout=seconds + 300) for t in tasks))
        if work is not None:
            await work
        for task in tasks:
            done = await rig.engine.get(task.id)
            if done.state != FINISHED:
                raise RuntimeError(f"task {task.id} ended {done.state}: {done.reason}")
            argv = json.loads((Path(done.run_dir or "") / "agent.json").read_text())["argv"]
            if (argv[0] == bwrap) != bool(bwrap):
                raise RuntimeError(f"task {task.id} ran {argv[0]}, not {'in' if bwrap else 'outside'} the sandbox")
            got = json.loads((out / f"{task.id}.json").read_text())
            mode.made += got["made"]
            mode.failed += got["failed"]
            mode.locked += got["locked"]
            mode.latencies += got["latencies"]
            mode.errors += got["errors"]
            mode.seconds = max(mode.seconds, got["elapsed"])
    finally:
        await rig.close()
    return mode


async def until_ready(rig: Rig, out: Path, task_ids: list[str], timeout: float) -> None:
    """Wait until every agent runs and waits for the go file; a task that ended before that fails the run."""
    deadline = time.monotonic() + timeout
    while not all((out / f"{tid}.ready").exists() for tid in task_ids):
        for tid in task_ids:
            task = await rig.engine.get(tid)
            if task.state in REVIEWABLE_STATES and not (out / f"{tid}.ready").exists():
                raise RuntimeError(f"task {tid} ended {task.state} before its agent was ready: {task.reason}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the agents were not all running after {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def bot_git_work(rig: Rig, end: float, mode: Mode) -> None:
    """Until `end` (wall clock): spawn an `edit` task, let it commit, merge it into main; one after another."""
    i = 0
    while time.time() < end:
        i += 1
        task = await rig.engine.spawn(f"edit file {i}", requester="bench", preset="edit")
        await settled(rig.engine, task.id, REVIEWABLE_STATES, timeout=300)
        try:
            merged = await rig.engine.merge(task.id, "bench")
            if merged.state == MERGED:
                mode.merges += 1
            else:
                mode.merge_errors.append(f"task {task.id} ended {merged.state} after merge")
        except Exception as exc:  # a failed merge is a finding, not the end of the run
            mode.merge_errors.append(f"{type(exc).__name__}: {exc}")
