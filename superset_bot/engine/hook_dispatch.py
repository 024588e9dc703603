"""Running the plugins for one lifecycle event of a task, and reporting the plugins that failed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from superset_bot.domain.events import EngineEvent, Milestone
from superset_bot.engine.environment import Environment
from superset_bot.plugins.hooks import HookEvent, Hooks
from superset_bot.presets import Preset
from superset_bot.store import Store, Task


class HookDispatch:
    """Hands plugins the task's event with the task's environment; failures land in its events and thread."""

    def __init__(self, hooks: Hooks, store: Store, presets: Mapping[str, Preset], env: Environment,
                 publish: Callable[[EngineEvent], None]) -> None:
        self.hooks = hooks
        self.store = store
        self.presets = presets
        self.env = env
        self.publish = publish

    async def dispatch(self, name: str, task: Task, data: Mapping[str, Any] | None = None) -> list[Any]:
        preset = self.presets.get(task.preset)
        event = HookEvent(
            name=name,
            task_id=task.id,
            repo=task.repo,
            worktree=Path(task.worktree) if task.worktree else None,
            preset=preset,
            env=self.env.for_task(task, preset) if preset else {},
            data=dict(data or {}),
        )
        outcomes = await self.hooks.dispatch(event)
        for outcome in outcomes:
            if not outcome.ok:
                what = "timed out" if outcome.timed_out else f"failed: {outcome.error}"
                await self.store.add_event(task.id, f"plugin:{outcome.plugin}", "plugin_failed",
                                           {"event": name, "error": outcome.error, "timed_out": outcome.timed_out})
                self.publish(Milestone(task, "plugin_failed", f"Plugin `{outcome.plugin}` {what} on {name}.", ok=False))
        return outcomes
