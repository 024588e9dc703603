"""b. Hook fan-out: N tasks x P plugins each sleeping 0.5 s, dispatched through the engine at once.

Measures the time each task's lifecycle step spends in plugins (engine.hooks_dispatch) against
the serial model N x P x 0.5 s that blocking hooks would give.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.common import Table, chatty_preset, make_rig, ms, small_repo
from superset_bot.plugins.hooks import HookEvent, Hooks
from superset_bot.store import Task, new_task_id

PLUGIN_SLEEP = 0.5
INDEPENDENT_WITHIN = 0.05  # overhead per task at the largest N may exceed the smallest N's by this much


def sleeper(seconds: float) -> Any:
    async def plugin(event: HookEvent) -> None:
        await asyncio.sleep(seconds)

    return plugin


async def one(tmp: Path, repo: Path, n: int, p: int) -> tuple[float, float, float]:
    """Returns (wall for all N, mean per-task time in plugins, max per-task time)."""
    hooks = Hooks(default_timeout=5.0)
    for i in range(p):
        hooks.register(sleeper(PLUGIN_SLEEP), name=f"sleeper{i}")
    rig = await make_rig(tmp, repo, {"chatty": chatty_preset()}, hooks=hooks)
    try:
        tasks = [Task(id=new_task_id(), repo="demo", prompt=f"task {i}", preset="chatty", requester="bench",
                      worktree=str(repo)) for i in range(n)]

        async def lifecycle_step(task: Task) -> float:
            start = time.monotonic()
            outcomes = await rig.engine.hooks_dispatch("agent_started", task)
            assert all(o.ok for o in outcomes), outcomes
            return time.monotonic() - start

        start = time.monotonic()
        per_task = await asyncio.gather(*(lifecycle_step(t) for t in tasks))
        wall = time.monotonic() - start
    finally:
        await rig.close()
    return wall, sum(per_task) / len(per_task), max(per_task)


async def run(tmp: Path, *, ns: tuple[int, ...] = (1, 10, 50), ps: tuple[int, ...] = (1, 5)) -> Table:
    repo = small_repo(tmp / "repo")
    table = Table(f"b. Hook fan-out (plugins sleep {PLUGIN_SLEEP} s each; one lifecycle event per task, "
                  "all tasks at once)",
                  ["N tasks", "P plugins", "wall, all N", "added per task (mean)", "max per task",
                   "overhead per task", "serial model N x P x 0.5 s"])
    overheads: dict[int, dict[int, float]] = {}
    for p in ps:
        for n in ns:
            wall, mean, worst = await one(tmp / f"n{n}p{p}", repo, n, p)
            overheads.setdefault(p, {})[n] = mean - PLUGIN_SLEEP
            table.rows.append([str(n), str(p), ms(wall), ms(mean), ms(worst), ms(mean - PLUGIN_SLEEP),
                               f"{n * p * PLUGIN_SLEEP:.1f} s"])
            print(f"fanout: N={n} P={p}: wall {ms(wall)}, per task {ms(mean)}", flush=True)
    worst_growth = max(by_n[max(ns)] - by_n[min(ns)] for by_n in overheads.values())
    table.notes.append("overhead per task = mean time in plugins minus the 0.5 s a plugin sleeps; the 6 lifecycle "
                       "events of a task run one after another, so a whole lifecycle adds 6 x this")
    table.targets.append((f"hook overhead per task independent of N (N={max(ns)} vs N={min(ns)} within "
                          f"{INDEPENDENT_WITHIN * 1000:.0f} ms)", f"+{ms(worst_growth)}",
                          worst_growth < INDEPENDENT_WITHIN))
    return table
