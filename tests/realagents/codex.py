"""The real Codex CLI against the fake Responses API: setup helpers, scenarios, and `record(out_dir)`.

Codex reads its provider from `$CODEX_HOME/config.toml` (`codex_home` writes one pointing at
the fake server, with retries off so a failure shows at once). `record` drives the pinned CLI
with the shipped preset's own argv through each scenario, in a linked worktree as the engine
makes them, and writes stdout+stderr merged (as the engine's log holds them) to
tests/samples/codex_<scenario>.jsonl, with temp paths and ports normalised.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fakemodels.openai_responses import (
    API_KEY_ENV,
    GOOD_KEY,
    FakeResponses,
    Step,
    add_file,
    apply_patch,
    codex_config,
    exec_command,
    message,
    reasoning,
)

from realagents import common

PRESET = "codex"

SAMPLE_WORKTREE = "/srv/wt/codex-task"  # where recorded fixtures say the task's worktree was


def preset_body() -> dict[str, Any]:
    """The shipped codex preset, as the engine loads it."""
    return common.preset_body(PRESET)


def codex_home(root: Path, base_url: str, *, retries: int = 0) -> Path:
    """A CODEX_HOME under `root` whose config points Codex at the fake server at `base_url`.

    Plugins, apps and analytics are off: at start Codex would otherwise try to sync plugins from
    github.com (and fail, offline).
    """
    home = root / "codex-home"
    home.mkdir(parents=True, exist_ok=True)
    config = codex_config(base_url)
    if retries:
        config = config.replace("stream_max_retries = 0", f"stream_max_retries = {retries}")
    config += "\n[features]\nplugins = false\napps = false\n\n[analytics]\nenabled = false\n"
    (home / "config.toml").write_text(config)
    return home


def codex_env(root: Path, server: FakeResponses, *, key: str = GOOD_KEY, retries: int = 0) -> dict[str, str]:
    """Environment for an agent process (or the harness) running the real Codex against `server`."""
    return {
        "PATH": common.agent_path("codex"),
        "CODEX_HOME": str(codex_home(root, server.base_url, retries=retries)),
        API_KEY_ENV: key,
    }


def thread_id(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("type") == "thread.started":
                return str(event["thread_id"])
    raise AssertionError(f"codex printed no thread.started:\n{output}")


# ---------------------------------------------------------------------- scenarios

def first_run() -> list[Step]:
    """Writes hello.txt with apply_patch, reads it back, runs a failing command, answers."""
    return [
        Step([reasoning("**Writing the greeting file**"), apply_patch(add_file("hello.txt", "hello from codex"))],
             input_tokens=1200, output_tokens=40),
        Step([exec_command("cat hello.txt")], input_tokens=1300, output_tokens=20),
        Step([exec_command("ls no-such-file")], input_tokens=1400, output_tokens=20),
        Step([message("Wrote hello.txt and checked it.")], input_tokens=1500, output_tokens=30),
    ]


def resumed_run() -> list[Step]:
    patch = ("*** Begin Patch\n*** Update File: hello.txt\n@@\n-hello from codex\n+hello again from codex\n"
             "*** End Patch\n")
    return [
        Step([apply_patch(patch)], input_tokens=2000, output_tokens=25),
        Step([message("Updated hello.txt.")], input_tokens=2100, output_tokens=15),
    ]


def denied_run(outside: Path) -> list[Step]:
    """Tries to write outside the worktree: once by patch, once by a shell command.

    Codex 0.171 prints no item at all for a command that the sandbox stops within a few
    milliseconds (a race in its exec events): the sleep makes the command's item appear.
    """
    return [
        Step([apply_patch(add_file(str(outside / "escape.txt"), "out"))]),
        Step([exec_command(f"sleep 0.5; touch {outside}/escape2.txt")]),
        Step([message("I could not write outside the worktree.")]),
    ]


def record(out_dir: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Re-record tests/samples/codex_*.jsonl from the real CLI; returns the files written."""
    with common.task_recording(out_dir, names, cli="codex", preset=PRESET, files={"README.md": "# demo\n"},
                               sample_worktree=SAMPLE_WORKTREE, pattern="codex_{name}.jsonl") as rec:
        home = rec.home  # CODEX_HOME goes inside HOME
        with FakeResponses(first_run() + resumed_run()) as server:
            env = codex_env(home, server)
            first = rec.run("Write hello.txt saying hello", env)
            rec.save("first", first)
            rec.save("resume", rec.run("Now say hello again", env, session=thread_id(first)))
        with FakeResponses(denied_run(rec.outside)) as server:
            rec.save("denied", rec.run("Write outside the worktree", codex_env(home, server)))
        with FakeResponses([Step([message("never reached")])]) as server:
            rec.save("auth", rec.run("hi", codex_env(home, server, key="sk-wrong")))
        with FakeResponses([Step([message("never reached")])]) as server:
            rec.save("retry", rec.run("hi", codex_env(home, server, key="sk-wrong", retries=2)))
        with FakeResponses([Step.fail(500, "upstream exploded")]) as server:
            rec.save("http500", rec.run("hi", codex_env(home, server)))
        with FakeResponses([Step([message("never reached")])]) as server:
            env = {**codex_env(home, server), "RUST_BACKTRACE": "1"}
            rec.save("no_rollout", rec.run("hi", env, session=str(uuid.UUID(int=7))))
    return rec.written
