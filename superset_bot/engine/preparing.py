"""Preparing a task's worktree before its agent runs: its start point decided (engine/bases.py: the
remote's tip of the base when it is ahead), taken from the warm pool or created there, stored as
the task's, then set up by its preset (files copied in, setup commands)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from superset_bot.aio import run_to_end
from superset_bot.domain.events import Milestone
from superset_bot.engine.bases import LOCAL, StartPoint
from superset_bot.engine.output import OutputBatcher
from superset_bot.engine.pool import Taken
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.git import worktrees as gitworktrees
from superset_bot.git.commands import GitError
from superset_bot.git.refs import default_branch
from superset_bot.presets import Preset, prepare_worktree
from superset_bot.store import FAILED, PREPARING, QUEUED, Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)

T = TypeVar("T")


class Preparation:
    """Moves a queued task to preparing and gives it a worktree that is ready for its agent."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def prepare(self, task: Task) -> Task | None:
        """The task with its worktree, set up; None when it failed (its state says why) or moved on."""
        engine = self.engine
        repo = engine.repo_path(task.repo)
        preset = engine.preset_for(task)
        moved = await engine.transitions.transition(task.id, PREPARING, BOT_ACTOR, expect={QUEUED})
        if moved is None:
            return None
        await engine.hooks_dispatch("task_created", moved)
        try:
            # before the uninterrupted step: a fetch may take seconds, and a cancel need not wait for it
            base_branch = task.base_branch or await default_branch(repo)
            if task.base_commit:  # a race's attempts all start where it did; a worker host's turn where the bot said
                start = StartPoint(task.base_commit, LOCAL)
            else:
                start = await engine.bases.start_point(task.repo, base_branch)
            task, worktree, taken = await _uninterrupted(self._make_worktree(task, repo, preset, base_branch, start))
        except GitError as exc:
            await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={PREPARING},
                                                reason=f"could not create the worktree: {exc}")
            return None
        if start.note and not start.ok:
            engine.publish(Milestone(task, "base", start.note, ok=False))
        warm = " (warm, setup done ahead)" if taken and taken.prewarmed else " (warm)" if taken else ""
        started = f" {start.note}" if start.note and start.ok else ""
        engine.publish(Milestone(task, "worktree_ready", f"Worktree ready on branch `{worktree.branch}` from "
                                                         f"`{worktree.base_branch}` ({worktree.base_commit[:8]}){warm}."
                                                         f"{started}"))
        await engine.hooks_dispatch("worktree_ready", task)

        output = OutputBatcher(task, "setup", engine.env.redactor_for(engine.presets.get(task.preset)), engine.publish)
        result = await prepare_worktree(preset, repo, worktree.path, engine.env.for_task(task, preset),
                                        on_line=output.add, commands=not (taken and taken.prewarmed))
        output.flush()
        if not result.ok:
            reason = result.reason or "setup failed"
            await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={PREPARING},
                                                reason=f"{reason}; the worktree is kept at {worktree.path} for inspection")
            return None
        ran = len(result.commands)
        what = "ran ahead in the warm pool" if taken and taken.prewarmed else f"{ran} command{'s' if ran != 1 else ''}"
        text = f"Setup done ({what}" + (f", copied {', '.join(result.copied)})." if result.copied else ").")
        engine.publish(Milestone(task, "setup_done", text))
        await engine.hooks_dispatch("setup_done", task)
        return task

    async def _make_worktree(self, task: Task, repo: Path, preset: Preset, base_branch: str,
                             start: StartPoint) -> tuple[Task, gitworktrees.Worktree, Taken | None]:
        """Take or create the task's worktree at `start` and store it, as one step nothing interrupts
        halfway. The stored base commit is the one the worktree started from.

        Once git made a worktree and branch, only the stored task row says whose they are: a cancel
        or discard landing in between would leave both behind, owned by nobody.
        """
        engine = self.engine
        taken = await self._take_warm(task, preset, base_branch, start.commit)
        worktree = taken.worktree if taken else await gitworktrees.create_worktree(
            repo, engine.settings.worktrees_dir / task.repo, task.id, task.prompt, base_branch, start=start.commit
        )
        task = await engine.store.update_task(
            task.id,
            worktree=str(worktree.path),
            branch=worktree.branch,
            base_branch=worktree.base_branch,
            base_commit=worktree.base_commit,
        )
        return task, worktree, taken

    async def _take_warm(self, task: Task, preset: Preset, base_branch: str, start: str) -> Taken | None:
        """A worktree from the warm pool at `start`, or None to create one; a pool failure never fails the task."""
        try:
            return await self.engine.pool.take(task.repo, preset, task.id, task.prompt, base_branch, start=start)
        except GitError as exc:
            log.warning("task %s: no warm worktree (%s); creating one", task.id, exc)
            return None


async def _uninterrupted(coro: Awaitable[T]) -> T:
    """Run `coro` to its end even if the caller is cancelled meanwhile; then the cancel goes on.

    For steps whose every outcome must be recorded (git made something; the store says whose).
    """
    job, cancelled = await run_to_end(coro)
    if cancelled:
        if not job.cancelled() and job.exception() is not None:
            log.warning("a step finished after a cancel, with an error: %s", job.exception())
        raise asyncio.CancelledError
    return job.result()
