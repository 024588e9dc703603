"""The real Claude Code CLI through the engine, its real runner and the shipped claude-code preset,
against the fake Anthropic API on 127.0.0.1: spawn -> review -> merge, a resumed follow-up, an
auth failure, an HTTP 500 and a denied command.

These run whenever the suite runs: the pinned CLI is installed on first use, and a failed install
fails the test (it is never skipped).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RepoFactory, git
from fakemodels.anthropic import FakeAnthropic, fail, message_texts
from support.bwrap import BWRAP, needs_bwrap
from support.engineharness import Harness, MakeHarness

from realagents.claude import (
    MAKEFILE,
    claude_env,
    denied_run,
    first_run,
    preset_body,
    resumed_run,
)
from superset_bot.domain.events import ProgressChanged, ReviewReady
from superset_bot.domain.progress import ProgressSnapshot
from superset_bot.store import FAILED, FINISHED, MERGED

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


async def claude_harness(harness: MakeHarness, make_repo: RepoFactory, api: FakeAnthropic, **env: str) -> Harness:
    repo = make_repo("demo", {"README.md": "# demo\n", "Makefile": MAKEFILE})
    return await harness({"claude-code": preset_body()}, env={**claude_env(api), **env}, repo=repo)


def last_progress(h: Harness, task_id: str) -> ProgressSnapshot:
    return h.of(task_id, ProgressChanged)[-1].progress


def agent_argv(run_dir: str | None) -> list[str]:
    argv: list[str] = json.loads((Path(run_dir or "") / "agent.json").read_text())["argv"]
    return argv


async def test_claude_writes_runs_tests_merges_and_resumes(
    harness: MakeHarness, make_repo: RepoFactory, api: FakeAnthropic
) -> None:
    api.add(*first_run())
    h = await claude_harness(harness, make_repo, api)
    task = await h.engine.spawn("Write hello.txt and run the tests", requester="U1")
    done = await h.settled(task.id, timeout=180)
    assert done.state == FINISHED, done.reason

    argv = agent_argv(done.run_dir)
    assert argv[-2:] == ["--", "Write hello.txt and run the tests"]
    assert "Bash(make:*)" in argv and "--dangerously-skip-permissions" not in argv
    # `make test` is in the preset's allow list: it ran, and the model saw its output
    assert any("all 3 tests passed" in text for text in message_texts(api.agent_requests[2]))

    progress = last_progress(h, task.id)
    assert "Writing hello.txt" in progress.tail  # relative to the worktree
    assert "Running make test" in progress.tail
    # totals are the sum over the model's replies (input + cache write + cache read; output)
    assert progress.tokens_in == (1200 + 300 + 5000) + (1300 + 6000) + (1400 + 6200)
    assert progress.tokens_out == 40 + 20 + 30
    assert progress.cost_usd and progress.cost_usd > 0
    assert progress.denials == () and progress.is_error is False
    session = progress.session_id
    assert session and done.session_id == session

    review = h.of(task.id, ReviewReady)[-1].review.to_dict()
    assert {f["path"] for f in review["files"]} == {"hello.txt"}
    assert review["tokens_in"] == progress.tokens_in and review["cost_usd"] == progress.cost_usd
    assert review["final_text"] == "Wrote hello.txt; make test passes."

    # the follow-up resumes the same session: the CLI gets --resume, the model sees the earlier turns
    api.add(*resumed_run())
    asked = len(api.agent_requests)
    await h.engine.followup(task.id, "Now add bye.txt", "U1")
    again = await h.settled(task.id, timeout=180)
    assert again.state == FINISHED, again.reason
    argv = agent_argv(again.run_dir)
    assert argv[argv.index("--resume") + 1] == session
    assert argv[-1] == "Now add bye.txt"
    conversation = message_texts(api.agent_requests[asked])
    assert "Write hello.txt and run the tests" in conversation
    assert any("hello from claude" in text for text in conversation)  # the earlier Write
    assert "Now add bye.txt" in conversation
    progress = last_progress(h, task.id)
    assert progress.session_id == session
    assert progress.tokens_in == 2000 + 2100 and progress.tokens_out == 25 + 15  # this run's own
    review = h.of(task.id, ReviewReady)[-1].review.to_dict()
    assert {f["path"] for f in review["files"]} == {"hello.txt", "bye.txt"}

    merged = await h.engine.merge(task.id, "U1")
    assert merged.state == MERGED
    assert git(h.repo, "show", "main:hello.txt") == "hello from claude"
    assert git(h.repo, "show", "main:bye.txt") == "bye from claude"


async def test_claude_denied_command_is_reported_and_task_stays_reviewable(
    harness: MakeHarness, make_repo: RepoFactory, api: FakeAnthropic, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    api.add(*denied_run(outside))
    h = await claude_harness(harness, make_repo, api)
    task = await h.engine.spawn("Install the tool", requester="U1")
    done = await h.settled(task.id, timeout=180)
    assert done.state == FINISHED, done.reason
    said = [
        'denied: `curl -s https://example.com/install.sh` needs approval; grant it with '
        '"commands": ["curl"] in the preset\'s agent.permissions',
        f'denied: writing {outside}/escape.txt (outside the worktree); grant it with '
        f'"writable": ["{outside}"] in the preset\'s agent.permissions',
    ]
    assert list(last_progress(h, task.id).denials) == said
    review = h.of(task.id, ReviewReady)[-1].review.to_dict()
    assert review["denials"] == said
    assert {f["path"] for f in review["files"]} == {"notes.txt"}
    # the CLI really refused both: the model was told so, and nothing was written outside
    assert any("requires approval" in text for text in message_texts(api.agent_requests[1]))
    assert any("haven't granted it" in text for text in message_texts(api.agent_requests[2]))
    assert not (outside / "escape.txt").exists()


async def test_claude_auth_failure_stops_the_agent_at_once(
    harness: MakeHarness, make_repo: RepoFactory, api: FakeAnthropic
) -> None:
    api.add(fail(401))  # every request; the CLI's own default is ten retries over minutes
    h = await claude_harness(harness, make_repo, api)
    task = await h.engine.spawn("Say hi", requester="U1")
    done = await h.settled(task.id, timeout=180)
    assert done.state == FAILED
    assert done.reason and "refused the credentials (401)" in done.reason and "ANTHROPIC_API_KEY" in done.reason
    progress = last_progress(h, task.id)
    assert "API error 401, retry 1/10" in progress.tail
    # stopped after its first retry or two, not after all ten (eleven requests over minutes)
    assert 1 <= len([r for r in api.requests if r["path"].startswith("/v1/messages")]) <= 5


async def test_claude_http_500_fails_plainly(harness: MakeHarness, make_repo: RepoFactory, api: FakeAnthropic) -> None:
    api.add(fail(500))
    h = await claude_harness(harness, make_repo, api, CLAUDE_CODE_MAX_RETRIES="1")
    task = await h.engine.spawn("Say hi", requester="U1")
    done = await h.settled(task.id, timeout=180)
    assert done.state == FAILED
    assert done.reason and done.reason.startswith("Failed (API error 500): Internal server error"), done.reason
    progress = last_progress(h, task.id)
    assert "API error 500, retry 1/1" in progress.tail
    assert progress.fatal is False  # a server error is not the credentials: the CLI decided
    assert h.of(task.id, ReviewReady) == [] or h.of(task.id, ReviewReady)[-1].review.files == []


@needs_bwrap
async def test_claude_works_in_the_bwrap_sandbox(
    harness: MakeHarness, make_repo: RepoFactory, api: FakeAnthropic
) -> None:
    """The real CLI inside `"sandbox": "bwrap"`: it writes, runs the tests and commits in its worktree,
    with only its own state folder (~/.claude) writable besides."""
    api.add(*first_run())
    repo = make_repo("demo", {"README.md": "# demo\n", "Makefile": MAKEFILE})
    body = {**preset_body(), "sandbox": "bwrap", "sandbox_writable": ["~/.claude"]}
    h = await harness({"claude-code": body}, env={**claude_env(api), "SUPERSET_BWRAP": str(BWRAP)}, repo=repo)
    task = await h.engine.spawn("Write hello.txt and run the tests", requester="U1")
    done = await h.settled(task.id, timeout=180)
    assert done.state == FINISHED, done.reason
    assert agent_argv(done.run_dir)[0] == str(BWRAP), "it ran in the sandbox"
    assert any("all 3 tests passed" in text for text in message_texts(api.agent_requests[2]))
    assert git(h.repo, "show", f"{done.branch}:hello.txt") == "hello from claude"
