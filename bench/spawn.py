"""a. Spawn latency: engine.spawn -> RUNNING event and -> the agent's first instruction, on a big repo,
next to plain `git worktree add` of the same repo; the warm-pool run once more with the same agent in
its bubblewrap sandbox (`"sandbox": "bwrap"`), when this host has a bwrap that works."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from bench.common import (
    Table,
    chatty_preset,
    find_bwrap,
    git_sync,
    make_rig,
    ms,
    percentile,
    secs,
    settled,
    synthetic_repo,
)
from superset_bot.domain.events import EngineEvent, StateChanged
from superset_bot.store import REVIEWABLE_STATES, RUNNING

TARGET_P50 = 0.3
TARGET_SANDBOX_EXTRA = 0.05  # a sandboxed warm spawn may take this much longer (p50)


def plain_worktree_add(repo: Path, root: Path, times: int) -> list[float]:
    """`git worktree add -b` of main, timed, then removed again (removal not timed)."""
    took = []
    for i in range(times):
        path = root / f"plain{i}"
        start = time.monotonic()
        git_sync(repo, "worktree", "add", "-q", "-b", f"plain{i}", str(path), "main")
        took.append(time.monotonic() - start)
        shutil.rmtree(path)
        git_sync(repo, "worktree", "prune")
        git_sync(repo, "branch", "-D", f"plain{i}")
    return took


async def run(tmp: Path, *, files: int, spawns: int) -> Table:
    repo = tmp / "repo"
    print(f"spawn: generating a repo of {files:,} files with git fast-import ...", flush=True)
    made = synthetic_repo(repo, files)
    print(f"spawn: repo ready in {made:.1f} s; timing {spawns} x plain `git worktree add` ...", flush=True)
    plain = plain_worktree_add(repo, tmp / "plain", spawns)
    bwrap, why_not = find_bwrap()
    both = f" and {spawns} sandboxed, in turn" if bwrap else ""
    print(f"spawn: plain worktree add p50 {ms(percentile(plain, 50))}; now {spawns} spawns{both} ...", flush=True)
    warm = await timed_spawns(tmp / "warm", repo, spawns, pool=2, bwrap=bwrap)
    sandboxed = warm[3]
    print(f"spawn: warm p50 {ms(percentile(warm[1], 50))}; now {spawns} spawns with the pool off ...", flush=True)
    cold = await timed_spawns(tmp / "cold", repo, spawns, pool=0)

    table = Table(f"a. Spawn latency ({files:,}-file repo, {spawns} spawns, one at a time)",
                  ["measure", "p50", "p95", "max"])
    sandbox_row = "warm pool, sandboxed: spawn -> agent process running"
    rows = (("plain `git worktree add`", plain),
            ("warm pool: spawn -> RUNNING event", warm[0]),
            ("warm pool: spawn -> agent process running (its first line)", warm[1]),
            (sandbox_row, sandboxed),
            ("pool off: spawn -> RUNNING event", cold[0]),
            ("pool off: spawn -> agent process running", cold[1]),
            ("warm pool: refill after a take (background)", warm[2]))
    for name, values in rows:
        table.rows.append([name, ms(percentile(values, 50)), ms(percentile(values, 95)), ms(max(values))] if values
                          else [name, f"not measured: {why_not}", "-", "-"])
    p50 = percentile(warm[1], 50)
    table.notes.append(f"repo generated in {secs(made)}; warm spawn p50 is {p50 / percentile(plain, 50):.2f} x plain "
                       f"worktree add, pool-off spawn p50 {percentile(cold[1], 50) / percentile(plain, 50):.2f} x")
    table.notes.append("warm: each spawn waits until the pool (SUPERSET_POOL_SIZE=2) is full again, as when people "
                       "spawn a few seconds apart; a burst larger than the pool gets the pool-off figures")
    label = f"spawn p50 < 0.3 s on {files:,} files" + ("" if files >= 100_000 else " (reduced repo: --files)")
    table.targets.append((label, ms(p50), p50 < TARGET_P50 if files >= 100_000 else None))
    label = "sandboxed warm spawn within 50 ms of unsandboxed (p50 difference)"
    if sandboxed:
        extra = percentile(sandboxed, 50) - p50
        table.targets.append((label, f"{extra * 1000:+.0f} ms", extra <= TARGET_SANDBOX_EXTRA))
        table.notes.append(f"sandboxed: the same chatty agent with \"sandbox\": \"bwrap\" ({bwrap}), its stamp "
                           "folder in sandbox_writable, spawned in turn with the unsandboxed one on the same bot (so "
                           "changes in the machine's load hit both); the difference is planning the sandbox plus bwrap "
                           "making its namespaces and mounts")
    else:
        table.targets.append((label, f"not measured: {why_not}", None))
    return table


async def timed_spawns(tmp: Path, repo: Path, spawns: int, *, pool: int, bwrap: str | None = None
                       ) -> tuple[list[float], list[float], list[float], list[float]]:
    """Spawn one task at a time: seconds to RUNNING, to the agent's first instruction, to a full pool.
    With `bwrap`, each spawn is followed (or, every other time, preceded) by one of the same agent in
    its sandbox: the fourth list holds those, to the agent's first instruction."""
    stamps = tmp / "stamps"
    stamps.mkdir(parents=True)
    presets = {"chatty": chatty_preset(BENCH_STAMP_DIR=str(stamps))}
    env = {"SUPERSET_POOL_SIZE": str(pool)}
    if bwrap:
        presets["sandboxed"] = {**presets["chatty"], "sandbox": "bwrap", "sandbox_writable": [str(stamps)]}
        env["SUPERSET_BWRAP"] = bwrap
    turns = [name for i in range(spawns) for name in (list(presets) if i % 2 == 0 else list(presets)[::-1])]
    rig = await make_rig(tmp / "bot", repo, presets, max_concurrent=2, extra_env=env)
    running_at: dict[str, float] = {}

    def watch(event: EngineEvent) -> None:
        if isinstance(event, StateChanged) and event.task.state == RUNNING:
            running_at.setdefault(event.task.id, time.time())

    rig.engine.subscribe(watch)
    to_running: list[float] = []
    to_agent: list[float] = []
    refill: list[float] = []
    sandboxed: list[float] = []
    try:
        for i, preset in enumerate(turns):
            if pool:
                waited = time.monotonic()
                await rig.engine.pool.wait_ready("demo", timeout=300)
                if i:
                    refill.append(time.monotonic() - waited)
            start = time.time()
            task = await rig.engine.spawn(f"bench spawn {i}", requester="bench", preset=preset)
            await rig.engine.wait_for(task.id, {RUNNING, *REVIEWABLE_STATES}, timeout=120)
            stamp = stamps / task.id
            deadline = time.monotonic() + 60
            while not stamp.exists() or not stamp.read_text():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the agent of task {task.id} never started")
                await asyncio.sleep(0.005)
            if preset == "sandboxed":
                sandboxed.append(float(stamp.read_text()) - start)
            else:
                to_agent.append(float(stamp.read_text()) - start)
                to_running.append(running_at.get(task.id, float("nan")) - start)
            await settled(rig.engine, task.id, REVIEWABLE_STATES)
            run_dir = Path((await rig.engine.get(task.id)).run_dir or "")
            if (json.loads((run_dir / "agent.json").read_text())["argv"][0] == bwrap) != (preset == "sandboxed"):
                raise RuntimeError(f"the agent of task {task.id} ({preset}) ran in the wrong place")
            await rig.engine.discard(task.id, "bench")  # keeps the disk and the next spawn fair
    finally:
        await rig.close()
    return to_running, to_agent, refill or [0.0], sandboxed
