"""Looking up what a request names: a task by its id, a repo by its name, the preset a task uses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from superset_bot.config import Settings
from superset_bot.engine.errors import UserError
from superset_bot.presets import Preset
from superset_bot.store import Store, Task


class Catalog:
    """Answers with the thing named, or raises a UserError that lists what there is."""

    def __init__(self, settings: Settings, store: Store, presets: Mapping[str, Preset]) -> None:
        self.settings = settings
        self.store = store
        self.presets = presets

    async def get(self, task_id: str) -> Task:
        task = await self.store.get_task(task_id.strip().lower())
        if task is None:
            raise UserError(f'There is no task "{task_id}". `list` shows the current tasks.')
        return task

    def preset_for(self, task: Task) -> Preset:
        preset = self.presets.get(task.preset)
        if preset is None:
            raise UserError(f'Task {task.id} uses preset "{task.preset}", which is no longer loaded.')
        return preset

    def repo_path(self, name: str) -> Path:
        path = self.settings.repos.get(name)
        if path is None:
            known = ", ".join(sorted(self.settings.repos)) or "none are configured (SUPERSET_REPOS)"
            raise UserError(f'Unknown repo "{name}". Known repos: {known}.')
        return path
