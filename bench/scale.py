"""e. Scale: the bot's RSS and CPU per running agent at 1, 10 and 50 agents (tests' agent, mode sleep).

The engine is measured in this process; agents are separate processes and not counted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.common import CpuWindow, Table, engine_agent_preset, make_rig, rss_mb, small_repo
from superset_bot.store import RUNNING

TARGET_RSS_MB = 150.0


async def run(tmp: Path, *, levels: tuple[int, ...] = (1, 10, 50), window: float = 5.0) -> Table:
    repo = small_repo(tmp / "repo")
    top = max(levels)
    rig = await make_rig(tmp / "bot", repo, {"sleep": engine_agent_preset("sleep")}, max_concurrent=top)
    baseline = rss_mb()
    table = Table(f"e. Scale (agents print a line every 0.1 s; CPU over {window:.0f} s)",
                  ["agents", "bot RSS", "RSS per agent (above idle)", "bot CPU", "CPU per agent"])
    rss_at_top = float("nan")
    spawned = 0
    try:
        for level in sorted(levels):
            new = [await rig.engine.spawn(f"sleep {i}", requester="bench") for i in range(spawned, level)]
            spawned = level
            await asyncio.gather(*(rig.engine.wait_for(t.id, {RUNNING}, timeout=180) for t in new))
            await asyncio.sleep(1.0)  # let start-up work settle
            cpu = CpuWindow()
            peak = rss_mb()
            end = time.monotonic() + window
            while time.monotonic() < end:
                await asyncio.sleep(0.25)
                peak = max(peak, rss_mb())
            percent = cpu.percent()
            rss_at_top = peak
            table.rows.append([str(level), f"{peak:.0f} MiB", f"{(peak - baseline) / level:.2f} MiB",
                               f"{percent:.1f} %", f"{percent / level:.2f} %"])
            print(f"scale: {level} agents: RSS {peak:.0f} MiB, CPU {percent:.1f} %", flush=True)
    finally:
        await rig.close()
    table.notes.append(f"idle bot (engine started, no agents) RSS {baseline:.0f} MiB; CPU is % of one core; the bench "
                       "process also holds the bench's own code, so this is an upper bound")
    table.targets.append((f"bot RSS < 150 MB with {top} agents", f"{rss_at_top * 1.048576:.0f} MB",
                          rss_at_top * 1.048576 < TARGET_RSS_MB if top >= 50 else None))
    return table
