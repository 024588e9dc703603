"""Tasks left awaiting review: their idle clock, the warning before a prune, and pruning their worktree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from superset_bot.domain.events import PruneWarning
from superset_bot.engine.errors import UserError
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.store import PRUNED, REVIEWABLE_STATES, Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine


class Pruning:
    """Warns about, keeps and prunes idle tasks; the schedule of when is housekeeping's."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def prune(self, task_id: str, actor: str, reason: str) -> Task | None:
        """Remove an idle task's worktree (and branch, unless its preset keeps branches)."""
        engine = self.engine
        task = await engine.get(task_id)
        claimed = await engine.transitions.transition(task.id, PRUNED, actor, expect=REVIEWABLE_STATES,
                                                      reason=reason, closed_by=actor)
        if claimed is None:
            return None
        preset = engine.presets.get(task.preset)
        await engine.cleanup.teardown(claimed, actor)
        await engine.cleanup.remove_worktree(claimed, keep_branch=bool(preset and preset.keep_branch))
        await engine.pulls.let_go(claimed)
        await engine.hooks_dispatch("pruned", claimed, {"reason": reason})
        return claimed

    async def mark_pruned(self, task: Task, reason: str) -> None:
        """The worktree went away behind the bot's back: record it, and drop the branch too."""
        moved = await self.engine.transitions.transition(task.id, PRUNED, BOT_ACTOR, expect=REVIEWABLE_STATES,
                                                         reason=reason, closed_by=BOT_ACTOR)
        if moved is not None:
            await self.engine.cleanup.remove_worktree(moved, keep_branch=True)
            await self.engine.pulls.let_go(moved)

    async def keep(self, task_id: str, actor: str) -> Task:
        """Reset a task's idle clock (the Keep button on a prune warning)."""
        engine = self.engine
        task = await engine.get(task_id)
        if task.state not in REVIEWABLE_STATES:
            raise UserError(f"Task {task.id} is {task.state}; only tasks awaiting review can be kept.")
        kept = await engine.store.update_task(task.id, last_activity=engine.clock(), prune_warned_at=None)
        await engine.store.add_event(task.id, actor, "kept", {})
        return kept

    async def warn_prune(self, task: Task, grace_s: float) -> None:
        engine = self.engine
        current = await engine.get(task.id)  # keep the idle clock as it is now (a Keep may just have reset it)
        if current.state not in REVIEWABLE_STATES or current.last_activity > task.last_activity:
            return
        warned = await engine.store.update_task(task.id, prune_warned_at=engine.clock(),
                                                last_activity=current.last_activity)
        await engine.store.add_event(task.id, "scheduler", "prune_warning", {"grace_s": grace_s})
        engine.publish(PruneWarning(warned, grace_s))
