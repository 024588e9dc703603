"""Where a task's agent runs: the seam between the engine and its runners.

`LocalRunner` runs agents on this machine (detached processes the bot re-attaches after a restart:
the default, no server needed); `superset_bot.temporal.runner.TemporalRunner` sends each turn to
worker hosts through Temporal. A task names its runner when it is created (`Task.runner`: None for
local), so a bot that changes SUPERSET_RUNNER still drives the tasks it already has where they are.
Everything else (review, merge, discard, races, the front ends) works on the task's branch in the
bot's repo and never asks which runner ran it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from superset_bot.agents.logs import read_chunk
from superset_bot.domain.logs import LogChunk
from superset_bot.engine.errors import UserError
from superset_bot.git import merge as gitmerge
from superset_bot.store import Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

TEMPORAL = "temporal"  # Task.runner of a task whose turns run on worker hosts


class Runner(Protocol):
    """What the engine asks of a runner; a driver's states and events are the same for every runner."""

    async def drive(self, task_id: str, followup: str | None = None) -> None:
        """Queue -> prepare -> run the agent -> review, for a new task or a follow-up."""

    async def cancel(self, task: Task, actor: str) -> Task:
        """Stop the task's agent (or its turn before the agent started); the task as it settled."""

    async def update_from_base(self, task: Task, target: str) -> list[str]:
        """Merge `target` into the task's work; the files left in conflict for the agent."""

    async def worktree_gone(self, task: Task) -> str | None:
        """Why a follow-up cannot run in the task's worktree any more, or None when it can."""

    async def release(self, task: Task) -> None:
        """The task closed: what the runner holds for it elsewhere goes (its worktree on a host)."""

    async def read_log(self, task: Task, offset: int, limit: int) -> LogChunk:
        """A piece of the log of the task's last run, redacted, wherever it ran. Raises UserError."""


class LocalRunner:
    """Agents on this machine: the engine's own lifecycle, cancel and worktree."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def drive(self, task_id: str, followup: str | None = None) -> None:
        await self.engine.lifecycle.drive_here(task_id, followup)

    async def cancel(self, task: Task, actor: str) -> Task:
        return await self.engine.control.cancel_here(task, actor)

    async def update_from_base(self, task: Task, target: str) -> list[str]:
        assert task.worktree
        return await gitmerge.update_from_base(Path(task.worktree), target)

    async def worktree_gone(self, task: Task) -> str | None:
        if task.worktree is not None and await asyncio.to_thread(Path(task.worktree).is_dir):
            return None
        return f"Task {task.id} has no worktree any more; spawn a new task instead."

    async def release(self, task: Task) -> None:
        return None  # its worktree and branch were removed by the cleanup itself

    async def read_log(self, task: Task, offset: int, limit: int) -> LogChunk:
        if not task.run_dir:
            raise UserError(f"Task {task.id}'s agent has not started yet: there is no log.")
        redactor = self.engine.env.redactor_for(self.engine.presets.get(task.preset))
        try:
            return await asyncio.to_thread(read_chunk, Path(task.run_dir) / "log", offset, limit, redactor)
        except OSError as exc:
            raise UserError(f"Task {task.id}'s log cannot be read: {exc.strerror or exc}.") from exc


def elsewhere(task: Task) -> UserError:
    """A task of another runner than this bot has (SUPERSET_RUNNER changed while it was open)."""
    return UserError(f"Task {task.id}'s worktree is on worker host {task.host or '(not placed yet)'}, and this bot "
                     "runs agents locally (SUPERSET_RUNNER=local); start the bot with SUPERSET_RUNNER=temporal "
                     "to go on with it.")
