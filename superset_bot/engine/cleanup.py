"""Taking a closed task's worktree away: the preset's teardown first, then the worktree and its branch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from superset_bot.engine.errors import UserError
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.git import inventory as gitinventory
from superset_bot.git import worktrees as gitworktrees
from superset_bot.git.commands import GitError
from superset_bot.git.refs import branch_exists
from superset_bot.presets import run_teardown
from superset_bot.store import Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)


class WorktreeCleanup:
    """Removes what a task leaves on disk; a failure is recorded on the task, never raised."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def teardown(self, task: Task, actor: str) -> None:
        """The repo's Superset teardown before a worktree goes; a broken one is recorded, never blocking."""
        engine = self.engine
        preset = engine.presets.get(task.preset)
        if not (preset and task.worktree and Path(task.worktree).is_dir()):
            return
        try:
            await run_teardown(engine.repo_path(task.repo), Path(task.worktree),
                               engine.env.for_task(task, preset), timeout=preset.setup_timeout)
        except Exception as exc:
            await engine.store.add_event(task.id, actor, "teardown_failed", {"error": str(exc)})

    async def remove_worktree(self, task: Task, keep_branch: bool) -> None:
        engine = self.engine
        try:
            await gitworktrees.discard(engine.repo_path(task.repo), Path(task.worktree) if task.worktree else None,
                                       None if keep_branch else task.branch)
        except (GitError, OSError) as exc:  # housekeeping retries leftovers later
            if await self._cleaned_by_someone_else(task, keep_branch):
                return  # housekeeping removed the same leftovers at the same moment: nothing failed
            await engine.store.add_event(task.id, BOT_ACTOR, "cleanup_failed", {"error": str(exc)})
            log.warning("task %s: cleanup failed: %s", task.id, exc)
        finally:
            with contextlib.suppress(UserError):  # and what its runner holds elsewhere (a host's worktree)
                await engine.runner_for(task).release(task)

    async def _cleaned_by_someone_else(self, task: Task, keep_branch: bool) -> bool:
        repo = self.engine.repo_path(task.repo)
        try:
            if task.worktree:
                path = Path(task.worktree)
                there: bool = await asyncio.to_thread(path.exists)
                if there or path.resolve() in await gitinventory.registered_worktrees(repo):
                    return False
            return keep_branch or not (task.branch and await branch_exists(repo, task.branch))
        except (GitError, OSError):
            return False
