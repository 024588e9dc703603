"""d. Merge storm: many finished tasks, each with its own file, merged by concurrent clicks."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from bench.common import AGENTS, Table, agent_preset, git_sync, make_rig, secs, settled, small_repo
from superset_bot.store import FINISHED, MERGED, REVIEWABLE_STATES


async def run(tmp: Path, *, tasks: int = 50) -> Table:
    repo = small_repo(tmp / "repo")
    preset = agent_preset([sys.executable, str(AGENTS / "edit_one.py"), "{prompt}"])
    rig = await make_rig(tmp / "bot", repo, {"edit": preset}, max_concurrent=8)
    errors: list[str] = []
    try:
        print(f"merge: preparing {tasks} finished tasks ...", flush=True)
        start = time.monotonic()
        spawned = [await rig.engine.spawn(f"edit file {i}", requester="bench") for i in range(tasks)]
        await asyncio.gather(*(settled(rig.engine, t.id, REVIEWABLE_STATES, timeout=300) for t in spawned))
        prepared = time.monotonic() - start
        finished = [t.id for t in spawned if (await rig.engine.get(t.id)).state == FINISHED]
        print(f"merge: {len(finished)} finished in {prepared:.1f} s; merging all at once ...", flush=True)
        start = time.monotonic()
        results = await asyncio.gather(*(rig.engine.merge(tid, "bench") for tid in finished),
                                       return_exceptions=True)
        wall = time.monotonic() - start
        errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
        merged = [tid for tid in finished if (await rig.engine.get(tid)).state == MERGED]
        on_main = [line for line in git_sync(repo, "ls-tree", "--name-only", "main", "work/").splitlines() if line]
    finally:
        await rig.close()

    table = Table(f"d. Merge storm ({tasks} finished tasks, concurrent engine.merge)",
                  ["tasks finished", "merged", "failures", "files on main", "wall time", "per merge"])
    table.rows.append([str(len(finished)), str(len(merged)), str(len(errors)), str(len(on_main)), secs(wall),
                       secs(wall / max(1, len(finished)))])
    table.notes.append(f"preparing the tasks (not timed in the storm) took {secs(prepared)}")
    for error in errors[:3]:
        table.notes.append(f"failure: {error[:200]}")
    table.targets.append(("merge storm: no failures, every change on main",
                          f"{len(errors)} failures, {len(on_main)}/{tasks} files",
                          not errors and len(on_main) == tasks))
    return table
