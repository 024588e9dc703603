"""Moving a task to a new state: the move is stored first, then published; and who the bot is as an actor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from superset_bot.domain.events import EngineEvent, StateChanged
from superset_bot.domain.state import TaskState
from superset_bot.engine.pool import WorktreePool
from superset_bot.store import MERGED, Store, Task

log = logging.getLogger(__name__)

BOT_ACTOR = "superset-bot"


class Transitions:
    """Moves tasks through the store's state machine and tells subscribers of each move that happened."""

    def __init__(self, store: Store, publish: Callable[[EngineEvent], None], pool: WorktreePool) -> None:
        self.store = store
        self.publish = publish
        self.pool = pool

    async def transition(
        self,
        task_id: str,
        state: TaskState | str,
        actor: str,
        *,
        expect: Iterable[str] | None = None,
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Task | None:
        """Move the task if it is in one of `expect`; None if it was not (nothing changed then)."""
        task_before = await self.store.get_task(task_id)
        detail = {**(detail or {}), **({"reason": reason} if reason else {})}
        changes.setdefault("reason", reason)
        task = await self.store.transition(task_id, state, actor, expect=expect, detail=detail, **changes)
        if task is not None:
            if state == MERGED:
                self.pool.poke(task.repo)  # the base moved: warm worktrees follow it
            log.info("task %s: %s -> %s (%s)%s", task.id, task_before.state if task_before else None, state, actor,
                     f": {reason}" if reason else "")
            self.publish(StateChanged(task, task_before.state if task_before else None, actor, reason))
        return task
