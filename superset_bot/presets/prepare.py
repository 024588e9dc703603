"""Preparing a task's worktree from its preset (copied files, the repository's Superset setup, the
preset's setup) and running the Superset teardown before the worktree is discarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from superset_bot.presets.copying import copy_entries
from superset_bot.presets.schema import Preset
from superset_bot.presets.shell import (
    CommandResult,
    LineCallback,
    describe_failure,
    emit_line,
    run_shell_commands,
    short_duration,
)
from superset_bot.presets.superset_config import WorkspaceConfig, load_workspace_config, workspace_env
from superset_bot.presets.validation import PresetError


def task_environment(
    base: Mapping[str, str], preset: Preset | None, repo: Path, worktree: Path
) -> dict[str, str]:
    """The env for a task's commands: `base`, then the preset's env, then the Superset variables.

    `base` is the complete environment (the caller decides what of its own env to pass on).
    """
    env = dict(base)
    if preset is not None:
        env.update(preset.env)
    env.update(workspace_env(repo, worktree))
    return env


@dataclass(frozen=True)
class PrepareResult:
    copied: list[str]
    commands: list[CommandResult]
    ok: bool
    reason: str | None
    missing: list[str] = field(default_factory=list)
    workspace: WorkspaceConfig | None = None


async def prepare_worktree(
    preset: Preset,
    repo: Path,
    worktree: Path,
    env: Mapping[str, str],
    on_line: LineCallback | None = None,
    *,
    commands: bool = True,
) -> PrepareResult:
    """Copy the preset's files, then run the repo's Superset setup and the preset's setup.

    `commands=False` only copies (fresh copies into a worktree whose setup ran ahead, in the pool).
    Everything shares `preset.setup_timeout`. Commands run with `env` (complete) plus the
    preset's env plus SUPERSET_ROOT_PATH / SUPERSET_WORKSPACE_PATH. Never raises for a
    problem in the repo or preset: the result says what went wrong.
    """
    repo = Path(repo)
    worktree = Path(worktree)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + preset.setup_timeout
    copied: list[str] = []
    missing: list[str] = []
    results: list[CommandResult] = []

    def fail(reason: str, workspace: WorkspaceConfig | None = None) -> PrepareResult:
        return PrepareResult(copied, results, False, reason, missing, workspace)

    try:
        outcome = await asyncio.to_thread(copy_entries, preset.copy, repo, worktree)
    except PresetError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"copying files into the worktree failed: {exc}")
    copied, missing = outcome.copied, outcome.missing
    for entry in missing:
        await emit_line(on_line, f"[copy] {entry} is not in the main checkout; skipped")

    try:
        workspace = await asyncio.to_thread(load_workspace_config, repo, worktree)
    except PresetError as exc:
        return fail(f"the repository's Superset config is invalid: {exc}")
    for note in workspace.ignored:
        await emit_line(on_line, f"[superset] {note}")

    child_env = task_environment(env, preset, repo, worktree)
    steps = [
        ("workspace setup", workspace.setup, worktree / workspace.cwd if workspace.cwd else worktree),
        ("setup", preset.setup, worktree),
    ]
    for label, step_commands, cwd in steps if commands else ():
        if not step_commands:
            continue
        remaining = deadline - loop.time()
        if remaining > 0:
            step = await run_shell_commands(step_commands, cwd, child_env, remaining, on_line, announce=True)
        else:
            step = [CommandResult(step_commands[0], None, True, "not started: no time left", 0.0)]
        results.extend(step)
        failed = next((r for r in step if not r.ok), None)
        if failed is not None:
            if failed.timed_out:
                return fail(f"setup timed out after {short_duration(preset.setup_timeout)}", workspace)
            return fail(describe_failure(failed, label), workspace)
    return PrepareResult(copied, results, True, None, missing, workspace)


async def run_teardown(
    repo: Path,
    worktree: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: LineCallback | None = None,
) -> list[CommandResult]:
    """Run the repository's Superset `teardown` commands before a worktree is discarded.

    The worktree's own config and scripts are not trusted here (an agent has written to it
    by now), so the commands come from the main checkout and the user's override only.
    Raises PresetError when that config is malformed; the caller decides whether to discard
    anyway.
    """
    repo = Path(repo)
    worktree = Path(worktree)
    workspace = await asyncio.to_thread(load_workspace_config, repo, worktree, trust_worktree=False)
    if not workspace.teardown:
        return []
    cwd = worktree / workspace.cwd if workspace.cwd else worktree
    if not cwd.is_dir():
        cwd = worktree
    return await run_shell_commands(
        workspace.teardown, cwd, task_environment(env, None, repo, worktree), timeout, on_line, announce=True
    )
