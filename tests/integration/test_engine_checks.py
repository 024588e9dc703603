"""A preset's checks, a core step of the engine: run in the worktree after the agent ends, before the
agent_finished plugins, with the result in the review; a plugin named "checks" is just a plugin."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from support.engineharness import MakeHarness, agent_preset

from superset_bot.domain.events import Milestone, ReviewReady
from superset_bot.engine import checks as engine_checks
from superset_bot.engine.checks import ChecksResult, checks_bound, run_checks
from superset_bot.plugins.hooks import HookEvent, builtin_hooks
from superset_bot.presets import Preset, parse_preset


def checks_preset(checks: list[str], timeout: str = "1m") -> Preset:
    return parse_preset(
        "p", {"agent": {"command": ["a", "{prompt}"]}, "checks": checks, "checks_timeout": timeout}
    )


def task_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}


async def test_checks_pass(tmp_path: Path) -> None:
    preset = checks_preset(["test -f built.txt", 'echo "checking $SUPERSET_WORKSPACE_PATH"'])
    (tmp_path / "built.txt").write_text("ok")
    result = await run_checks(preset, tmp_path, task_env())
    assert isinstance(result, ChecksResult)
    assert result.passed and result.summary == "all 2 checks passed" and result.failing_tail == ""
    assert result.results[1].output_tail == f"checking {tmp_path}"


async def test_checks_fail_with_the_failing_output_tail(tmp_path: Path) -> None:
    preset = checks_preset(["echo lint ok", "echo 'FAILED tests/test_x.py::test_y'; exit 1", "echo never"])
    result = await run_checks(preset, tmp_path, task_env())
    assert result is not None and not result.passed
    assert (
        result.summary == "check command \"echo 'FAILED tests/test_x.py::test_y'; exit 1\" exited with code 1"
    )
    assert result.failing_tail == "FAILED tests/test_x.py::test_y"
    assert len(result.results) == 2


async def test_checks_time_out_within_the_step_and_say_so(tmp_path: Path) -> None:
    preset = checks_preset(["echo started; sleep 30"], timeout="300ms")
    assert checks_bound(preset) == preset.checks_timeout + engine_checks.CHECKS_GRACE
    result = await run_checks(preset, tmp_path, task_env())
    assert result is not None and not result.passed
    assert result.summary == 'checks timed out after 0.3s (while running "echo started; sleep 30")'
    assert result.failing_tail == "started"


async def test_no_checks_means_nothing_to_report(tmp_path: Path) -> None:
    preset = parse_preset("p", {"agent": {"command": ["a", "{prompt}"]}})
    assert await run_checks(preset, tmp_path, task_env()) is None
    assert await run_checks(None, tmp_path, task_env()) is None
    assert await run_checks(checks_preset(["true"]), None, task_env()) is None


async def test_a_step_that_overruns_its_bound_or_raises_is_failed_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = checks_preset(["true"], timeout="100ms")

    async def hangs(*args: object, **kw: object) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(engine_checks, "CHECKS_GRACE", 0.1)
    monkeypatch.setattr(engine_checks, "run_shell_commands", hangs)
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await run_checks(preset, tmp_path, task_env())
    assert loop.time() - start < 5
    assert result is not None and not result.passed and result.summary == "checks did not end within 0.2s; stopped"

    async def raises(*args: object, **kw: object) -> None:
        raise OSError("no /bin/sh")

    monkeypatch.setattr(engine_checks, "run_shell_commands", raises)
    result = await run_checks(preset, tmp_path, task_env())
    assert result is not None and not result.passed
    assert result.summary == "checks could not run: OSError: no /bin/sh"


def test_builtin_hooks_register_no_checks_plugin() -> None:
    assert "checks" not in builtin_hooks().names


async def test_checks_run_before_the_agent_finished_plugins_and_show_in_the_review(harness: MakeHarness) -> None:
    seen: list[tuple[str, bool]] = []
    hooks = builtin_hooks()

    async def on_finish(event: HookEvent) -> None:
        # the checks have already run (and left their mark) when the plugins hear of the agent's end
        assert event.worktree is not None
        seen.append((event.name, (event.worktree / "checked.txt").exists()))

    hooks.register(on_finish, name="watcher", events=["agent_finished"])
    h = await harness({"checked": agent_preset("edit", checks=["touch checked.txt", "true"])}, hooks=hooks)
    task = await h.engine.spawn("with checks", requester="U1")
    await h.settled(task.id)
    assert seen == [("agent_finished", True)]
    review = h.of(task.id, ReviewReady)[-1].review
    assert review.checks == {"passed": True, "summary": "all 2 checks passed", "failing_tail": ""}
    [milestone] = [m for m in h.of(task.id, Milestone) if m.kind == "checks"]
    assert milestone.text == "all 2 checks passed" and milestone.ok


async def test_a_user_plugin_named_checks_is_not_mistaken_for_the_checks_step(harness: MakeHarness) -> None:
    hooks = builtin_hooks()
    calls: list[str] = []

    async def impostor(event: HookEvent) -> ChecksResult:
        calls.append(event.name)
        return ChecksResult(True, [], "the impostor says all is well", "")

    hooks.register(impostor, name="checks", events=["agent_finished"])
    h = await harness({"checked": agent_preset("edit", checks=["echo broken; exit 1"]),
                       "plain": agent_preset("edit")}, hooks=hooks)
    task = await h.engine.spawn("with failing checks", requester="U1")
    await h.settled(task.id)
    assert calls == ["agent_finished"], "the plugin still hears agent_finished"
    review = h.of(task.id, ReviewReady)[-1].review
    assert review.checks is not None
    assert review.checks["passed"] is False and review.checks["failing_tail"] == "broken"
    assert "impostor" not in repr(h.events)

    # with a preset that has no checks, the plugin's result does not become the review's checks either
    plain = await h.engine.spawn("no checks", requester="U1", preset="plain")
    await h.settled(plain.id)
    assert calls == ["agent_finished", "agent_finished"]
    assert h.of(plain.id, ReviewReady)[-1].review.checks is None
    assert not [m for m in h.of(plain.id, Milestone) if m.kind == "checks"]
