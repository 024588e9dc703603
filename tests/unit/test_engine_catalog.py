"""Looking up what a request names: a task id as typed, a repo, the preset a task uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.env import bot_settings

from superset_bot.engine.catalog import Catalog
from superset_bot.engine.errors import UserError
from superset_bot.presets import parse_preset
from superset_bot.store import Task

TASK = Task(id="k3x9qa", repo="demo", prompt="p", preset="edit")


class FakeStore:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get_task(self, task_id: str) -> Task | None:
        self.asked.append(task_id)
        return TASK if task_id == TASK.id else None


def catalog(tmp_path: Path, with_repo: bool = True) -> tuple[Catalog, FakeStore]:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True, exist_ok=True)  # settings only look for it
    (tmp_path / "presets").mkdir(exist_ok=True)
    settings = bot_settings(tmp_path, repo if with_repo else None)
    store = FakeStore()
    presets = {"edit": parse_preset("edit", {"agent": {"command": ["agent", "{prompt}"]}})}
    return Catalog(settings, store, presets), store  # type: ignore[arg-type]


async def test_a_task_id_is_found_as_typed_in_a_message(tmp_path: Path) -> None:
    found, store = catalog(tmp_path)
    assert await found.get("  K3X9QA\n") is TASK
    assert store.asked == ["k3x9qa"]
    with pytest.raises(UserError, match='There is no task "nope1". `list` shows the current tasks.'):
        await found.get("nope1")


def test_a_tasks_preset_must_still_be_loaded(tmp_path: Path) -> None:
    found, _ = catalog(tmp_path)
    assert found.preset_for(TASK).name == "edit"
    with pytest.raises(UserError, match='Task k3x9qa uses preset "gone", which is no longer loaded.'):
        found.preset_for(Task(id="k3x9qa", repo="demo", prompt="p", preset="gone"))


def test_an_unknown_repo_names_the_known_ones(tmp_path: Path) -> None:
    found, _ = catalog(tmp_path)
    assert found.repo_path("demo") == tmp_path / "repo"
    with pytest.raises(UserError, match='Unknown repo "other". Known repos: demo.'):
        found.repo_path("other")
    bare, _ = catalog(tmp_path / "bare", with_repo=False)
    with pytest.raises(UserError, match=r"none are configured \(SUPERSET_REPOS\)"):
        bare.repo_path("demo")
