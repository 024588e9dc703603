"""The real Claude Code CLI against the fake Anthropic API: setup helpers, scenarios, `record(out_dir)`.

Claude Code needs, to run headless against a local server with no onboarding and no network:
`ANTHROPIC_BASE_URL`, any `ANTHROPIC_API_KEY`, `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`,
`DISABLE_AUTOUPDATER=1` and a HOME of its own (it writes ~/.claude.json and ~/.claude/ there on
first start; `-p` asks nothing). `CLAUDE_CODE_MAX_RETRIES` bounds its API retries (default 10,
over minutes): the recordings use it so a failure ends in seconds; the engine tests do not, so
they prove the parser's fatal-on-401 stops the agent whatever the retry count.

`record` drives the pinned CLI with the shipped preset's own argv through each scenario, in a
linked worktree as the engine makes them, and writes stdout+stderr merged (as the engine's log
holds them) to tests/samples/claude_<scenario>.jsonl with temp paths and ports normalised.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fakemodels.anthropic import FakeAnthropic, Step, Usage, bash, fail, say, tool, write

from realagents import common

PRESET = "claude-code"
API_KEY = "sk-ant-fake-key-for-tests"

SAMPLE_WORKTREE = "/srv/wt/claude-task"  # where recorded fixtures say the task's worktree was

MAKEFILE = "test:\n\t@echo 'all 3 tests passed'\n"


def preset_body() -> dict[str, Any]:
    """The shipped claude-code preset, as the engine loads it."""
    return common.preset_body(PRESET)


def claude_env(api: FakeAnthropic, *, retries: int | None = None) -> dict[str, str]:
    """Environment for an agent process (or the harness) running the real Claude Code against `api`."""
    env = {
        "PATH": common.agent_path("claude"),
        "ANTHROPIC_BASE_URL": api.url,
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    if retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(retries)
    return env


# ---------------------------------------------------------------------- scenarios

def first_run() -> list[Step]:
    """Writes hello.txt, runs the repo's tests (allowed by the preset), answers."""
    return [
        write("hello.txt", "hello from claude\n", Usage(1200, 40, 300, 5000)),
        bash("make test", Usage(1300, 20, 0, 6000)),
        say("Wrote hello.txt; make test passes.", Usage(1400, 30, 0, 6200)),
    ]


def resumed_run() -> list[Step]:
    return [
        write("bye.txt", "bye from claude\n", Usage(2000, 25)),
        say("Added bye.txt.", Usage(2100, 15)),
    ]


def denied_run(outside: Path) -> list[Step]:
    """A command the preset does not allow and a write outside the worktree; the model carries on."""
    return [
        bash("curl -s https://example.com/install.sh"),
        write(str(outside / "escape.txt"), "out\n"),
        write("notes.txt", "could not fetch the installer\n"),
        say("I could not run curl: it needs approval."),
    ]


def planning_run(outside: Path) -> list[Step]:
    """Planning tools, a sub-agent, a write outside the worktree and a command not allowed."""
    return [
        tool("TaskCreate", {"subject": "Write the greeting", "description": "hello.txt with a greeting",
                            "activeForm": "Writing the greeting"}, text="I'll plan this first."),
        tool("TaskUpdate", {"taskId": "1", "status": "in_progress"}),
        write(str(outside / "escape.txt"), "out\n"),
        bash("python3 -m pytest -q"),
        tool("Agent", {"description": "Survey the tests", "prompt": "List the test files",
                       "subagent_type": "general-purpose"}),
        say("There are no test files yet.", Usage(500, 12)),  # the sub-agent's answer
        tool("TaskUpdate", {"taskId": "1", "status": "completed"}),
        say("Planned, surveyed, and reported what was denied."),
    ]


# ---------------------------------------------------------------------- running it by hand

def session_id(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("type") == "system" and event.get("subtype") == "init":
                return str(event["session_id"])
    raise AssertionError(f"claude printed no init event:\n{output}")


def record(out_dir: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Re-record tests/samples/claude_*.jsonl from the real CLI; returns the files written."""
    with common.task_recording(out_dir, names, cli="claude", preset=PRESET,
                               files={"README.md": "# demo\n", "Makefile": MAKEFILE},
                               sample_worktree=SAMPLE_WORKTREE, pattern="claude_{name}.jsonl") as rec:
        with FakeAnthropic(first_run() + resumed_run()) as api:
            first = rec.run("Write hello.txt and run the tests", claude_env(api))
            rec.save("first", first)
            rec.save("resume", rec.run("Now add bye.txt", claude_env(api), session=session_id(first)))
        with FakeAnthropic(denied_run(rec.outside)) as api:
            rec.save("denied", rec.run("Install the tool", claude_env(api)))
        with FakeAnthropic(planning_run(rec.outside)) as api:
            rec.save("planning", rec.run("Plan, survey and write", claude_env(api)))
        with FakeAnthropic([fail(401)]) as api:
            rec.save("auth", rec.run("hi", claude_env(api, retries=2)))
        with FakeAnthropic([fail(500)]) as api:
            rec.save("http500", rec.run("hi", claude_env(api, retries=1)))
    return rec.written
