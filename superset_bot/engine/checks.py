"""A preset's checks: its `checks` commands, run in the worktree after the agent ends and before the
`agent_finished` plugins, a core step of the lifecycle (not a plugin); the review shows the result.

The commands share the preset's `checks_timeout` (the shell runner stops the whole process group at
it and reports the kill); the step itself is bounded a grace period later, whatever the commands do,
and a step that fails or overruns reports failed checks rather than none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from superset_bot.presets import CommandResult, Preset, describe_failure, run_shell_commands, short_duration

log = logging.getLogger(__name__)

CHECKS_GRACE = 5.0  # the step's bound outlives the commands' own timeout, so their kill is reported

_stragglers: set[asyncio.Future[Any]] = set()  # runs cancelled at the bound that had not ended yet


@dataclass(frozen=True)
class ChecksResult:
    passed: bool
    results: list[CommandResult]
    summary: str
    failing_tail: str


def checks_bound(preset: Preset) -> float:
    """How long the step may take in all: the commands' timeout and a grace."""
    return preset.checks_timeout + CHECKS_GRACE


async def run_checks(
    preset: Preset | None, worktree: Path | str | None, env: Mapping[str, str], *, task_id: str = "?",
    wrap: Callable[[str], str] | None = None,
) -> ChecksResult | None:
    """Run the preset's checks in `worktree` with the task's `env`; None when there are none to run.

    Never raises for the checks' own trouble (an error or overrunning the bound is a failed result),
    and returns no later than checks_bound(preset) (plus a moment).
    """
    if preset is None or not preset.checks or worktree is None:
        return None
    bound = checks_bound(preset)
    inner = asyncio.ensure_future(_run(preset, Path(worktree), env, wrap))
    try:
        done, _ = await asyncio.wait({inner}, timeout=bound)
    except asyncio.CancelledError:
        inner.cancel()
        _keep(inner)
        raise
    if not done:
        inner.cancel()
        _keep(inner)  # if it ignores the cancel, it finishes (or not) on its own
        log.warning("task %s: checks did not end within %s; cancelled", task_id, short_duration(bound))
        return ChecksResult(False, [], f"checks did not end within {short_duration(bound)}; stopped", "")
    if inner.cancelled():
        return ChecksResult(False, [], "checks were cancelled", "")
    exc = inner.exception()
    if exc is not None:
        log.warning("task %s: checks could not run: %s: %s", task_id, type(exc).__name__, exc, exc_info=exc)
        return ChecksResult(False, [], f"checks could not run: {type(exc).__name__}: {exc}", "")
    return inner.result()


async def _run(preset: Preset, worktree: Path, env: Mapping[str, str],
               wrap: Callable[[str], str] | None) -> ChecksResult:
    env = {**env, **preset.env}
    env.setdefault("SUPERSET_WORKSPACE_PATH", str(worktree))
    commands = [wrap(c) for c in preset.checks] if wrap else list(preset.checks)
    results = await run_shell_commands(commands, worktree, env, preset.checks_timeout)
    if wrap:  # what people read is the command the preset names, not its sandbox around it
        results = [replace(r, command=c) for r, c in zip(results, preset.checks, strict=False)]
    passed = len(results) == len(preset.checks) and all(r.ok for r in results)
    if passed:
        count = len(results)
        summary = f"all {count} checks passed" if count > 1 else f'check "{results[0].command}" passed'
        return ChecksResult(True, results, summary, "")
    failed = next(r for r in results if not r.ok)
    if failed.timed_out:
        summary = f'checks timed out after {short_duration(preset.checks_timeout)} (while running "{failed.command}")'
    else:
        summary = describe_failure(failed, "check")
    return ChecksResult(False, results, summary, failed.output_tail)


def _keep(task: asyncio.Future[Any]) -> None:
    if task.done():
        _consume(task)
        return
    _stragglers.add(task)

    def forget(t: asyncio.Future[Any]) -> None:
        _stragglers.discard(t)
        _consume(t)

    task.add_done_callback(forget)


def _consume(task: asyncio.Future[Any]) -> None:
    """Fetch a finished task's exception so asyncio does not warn that it was never retrieved."""
    if not task.cancelled():
        task.exception()
