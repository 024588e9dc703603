"""APScheduler jobs in the bot's own event loop, rebuilt from settings at every start.

Jobs live in the memory store (they vanish on restart by design: the settings are the
source of truth). Coalescing and one instance per job mean a slow prune never piles up,
and a generous misfire grace keeps a job that was due during a busy moment from being lost.
"""

from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from superset_bot.housekeeping.jobs import Housekeeper

log = logging.getLogger(__name__)

PRUNE_EVERY_MINUTES = 15
RECONCILE_EVERY_SECONDS = 60
MAINTENANCE_AT = {"hour": 3, "minute": 30}


def digest_trigger(cron: str, timezone: str) -> CronTrigger:
    """SUPERSET_DIGEST_CRON as a trigger; raises ValueError with APScheduler's reason when invalid."""
    return CronTrigger.from_crontab(cron, timezone=timezone)


def build_scheduler(housekeeper: Housekeeper, *, worker_host: bool = False) -> AsyncIOScheduler:
    """A scheduler with every job; call `.start()` inside the running loop, `.shutdown()` at exit.
    A worker host's (`worker_host`) has only reconcile (its agents' disk limits, stuck tasks) and git
    maintenance: what it holds is pruned when the bot prunes or closes the task."""
    settings = housekeeper.settings
    scheduler = AsyncIOScheduler(
        timezone=settings.timezone,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
    )
    if not worker_host:
        scheduler.add_job(_logged(housekeeper.prune, "prune"), IntervalTrigger(minutes=PRUNE_EVERY_MINUTES),
                          id="prune", name="prune stale worktrees")
    scheduler.add_job(_logged(housekeeper.reconcile, "reconcile"), IntervalTrigger(seconds=RECONCILE_EVERY_SECONDS),
                      id="reconcile", name="reconcile tasks with git and processes")
    scheduler.add_job(_logged(housekeeper.maintenance, "git maintenance"),
                      CronTrigger(timezone=settings.timezone, **MAINTENANCE_AT),
                      id="git-maintenance", name="git worktree prune and maintenance")
    if settings.digest_channel and not worker_host:
        scheduler.add_job(_logged(housekeeper.digest, "digest"), digest_trigger(settings.digest_cron, settings.timezone),
                          id="digest", name="status digest")
    return scheduler


def _logged(job: Any, name: str) -> Any:
    async def run() -> None:
        try:
            result = await job()
        except Exception:
            log.exception("scheduled job %s failed", name)
            return
        lines = result.lines() if hasattr(result, "lines") else result
        if isinstance(lines, list) and lines and lines != ["Nothing to prune."]:
            log.info("%s: %s", name, "; ".join(str(x) for x in lines[:20]))

    run.__name__ = f"job_{name.replace(' ', '_')}"
    return run
