"""An engine over real repos, presets, agents and SQLite, for tests: `harness(presets, ...)`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENTS_DIR, RepoFactory

from superset_bot.agents.runner import AgentRun, RunnerError
from superset_bot.config import Settings
from superset_bot.domain.events import EngineEvent, StateChanged
from superset_bot.engine.core import Engine
from superset_bot.plugins.hooks import Hooks, builtin_hooks
from superset_bot.presets import load_presets
from superset_bot.store import BUSY_TIMEOUT, REVIEWABLE_STATES, Store

from .env import bot_settings


class FakeClock:
    """A wall clock tests move by hand: hours pass in no time."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


AGENT = str(AGENTS_DIR / "engine_agent.py")
SECRET = "sk-test-9f8e7d6c5b4a"


def agent_preset(mode: str, **extra: Any) -> dict[str, Any]:
    env = {"AGENT_MODE": mode, **extra.pop("env", {})}
    return {"description": f"test agent ({mode})", "agent": {"command": [sys.executable, AGENT, "{prompt}"]},
            "env": env, **extra}


CLAUDE_SAMPLE = Path(__file__).parents[1] / "samples" / "claude_stream.jsonl"
CLAUDE_SAMPLE_COST = 0.1834  # what its result says the run cost


def costed_preset(mode: str, **extra: Any) -> dict[str, Any]:
    """The scripted agent in `mode`, then Claude Code's recorded stream: a run that does the mode's work,
    keeps its exit status and reports a cost of CLAUDE_SAMPLE_COST."""
    env = {"AGENT_MODE": mode, **extra.pop("env", {})}
    script = f'{sys.executable} {AGENT} "$1"; status=$?; cat {CLAUDE_SAMPLE}; exit $status'
    return {"description": f"test agent ({mode}), costed", "env": env, **extra,
            "agent": {"command": ["sh", "-c", script, "sh", "{prompt}"], "format": "claude-stream-json"}}


def chatty(lines: int) -> dict[str, Any]:
    """A preset whose agent prints `lines` numbered lines of 81 bytes ("line 000042 yyy...")."""
    script = f"for i in range({lines}): print(f'line {{i:06d}} ' + 'y' * 69)"
    return {"description": "chatty", "agent": {"command": [sys.executable, "-c", script]}}


def write_presets(presets_dir: Path, presets: Mapping[str, Mapping[str, Any]]) -> Path:
    """Each preset as `presets_dir/NAME.json` (the folder SUPERSET_PRESETS_DIR names); returns the folder."""
    presets_dir.mkdir(parents=True, exist_ok=True)
    for name, body in presets.items():
        (presets_dir / f"{name}.json").write_text(json.dumps(body))
    return presets_dir


async def make_engine(settings: Settings, *, hooks: Hooks | None = None, clock: Callable[[], float] = time.time,
                      busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    """An engine (not started) over a new store at the settings' database, with the presets of their
    SUPERSET_PRESETS_DIR: what every in-process test bot runs (close `engine.store` after `engine.stop()`)."""
    store = await Store.open(settings.db_path, clock=clock, busy_timeout=busy_timeout)
    return Engine(settings, store, load_presets(settings.presets_dir), hooks or builtin_hooks(), clock=clock)


async def driver_done(engine: Engine, task_id: str, timeout: float) -> None:
    """Wait until the engine no longer drives the task: its driver has ended (the review is posted)."""
    deadline = time.monotonic() + timeout
    while engine.is_driven(task_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} was still driven {timeout} s after it reached its state")
        await asyncio.sleep(0.01)


async def stop_agents(settings: Settings, grace: float = 0.5) -> None:
    """Stop every agent a bot with these settings started that still runs, whoever started it:
    agents are detached, so none would end with the engine, and none may outlive its test."""
    for pid_file in sorted(settings.runs_dir.glob("*/*/pid")):
        with contextlib.suppress(RunnerError):
            await AgentRun.attach(pid_file.parent).cancel(grace)


@dataclass
class Harness:
    engine: Engine
    store: Store
    repo: Path
    settings: Settings
    events: list[EngineEvent] = field(default_factory=list)

    def states(self, task_id: str) -> list[str]:
        return [e.task.state for e in self.events if isinstance(e, StateChanged) and e.task.id == task_id]

    async def settled(self, task_id: str, states: Any = REVIEWABLE_STATES, timeout: float = 60) -> Any:
        """Wait for the state, then for the task's driver to finish (review posted)."""
        task = await self.engine.wait_for(task_id, states, timeout=timeout)
        await driver_done(self.engine, task_id, timeout)
        return await self.engine.get(task.id)

    def of(self, task_id: str, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and e.task.id == task_id]


MakeHarness = Callable[..., Any]


@pytest.fixture
async def harness(tmp_path: Path, make_repo: RepoFactory) -> AsyncIterator[MakeHarness]:
    made: list[Harness] = []

    async def make(presets: dict[str, dict[str, Any]] | None = None, *, max_concurrent: int = 4,
                   env: dict[str, str] | None = None, hooks: Hooks | None = None, repo: Path | None = None,
                   clock: Callable[[], float] = time.time) -> Harness:
        if repo is None:
            repo = make_repo("demo", {"README.md": "# demo\n", "shared.txt": "base version\n"})
        presets_dir = write_presets(tmp_path / "presets", presets or {"edit": agent_preset("edit")})
        settings = bot_settings(tmp_path, repo, presets=presets_dir, **{
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "SUPERSET_DEFAULT_PRESET": next(iter(presets or {"edit": None})),
            "SUPERSET_MAX_CONCURRENT": str(max_concurrent),
            "SUPERSET_CANCEL_GRACE": "1s",
            "SUPERSET_POOL_SIZE": "0",  # tests of the warm pool turn it on
            **(env or {}),
        })
        engine = await make_engine(settings, hooks=hooks, clock=clock)
        h = Harness(engine, engine.store, repo, settings)
        engine.subscribe(h.events.append)
        await engine.start()
        made.append(h)
        return h

    yield make
    for h in made:
        await h.engine.stop()
        await stop_agents(h.settings)
        await h.store.close()
