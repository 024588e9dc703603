"""The shipped codex preset end to end: the real Codex CLI through the engine, against the fake Responses API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from fakemodels.openai_responses import (
    FakeResponses,
    Script,
    Step,
    add_file,
    apply_patch,
    exec_command,
    message,
)
from support.bwrap import BWRAP, needs_bwrap
from support.engineharness import Harness, MakeHarness

from realagents import codex as real
from superset_bot.agents.formats import make_parser
from superset_bot.domain.events import ProgressChanged, ReviewReady
from superset_bot.domain.progress import ProgressSnapshot
from superset_bot.store import FAILED, FINISHED, MERGED

pytestmark = pytest.mark.timeout(300)

MakeServer = Callable[..., FakeResponses]
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
HAND_MADE = ("codex_exec.jsonl", "codex_legacy.jsonl")  # shapes the fake model cannot make Codex print


@pytest.fixture
def fake_openai() -> Iterator[MakeServer]:
    servers: list[FakeResponses] = []

    def make(script: Script, **kwargs: Any) -> FakeResponses:
        server = FakeResponses(script, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


async def codex_harness(harness: MakeHarness, tmp_path: Path, server: FakeResponses, **env_kwargs: Any) -> Harness:
    env = real.codex_env(tmp_path, server, **env_kwargs)
    return await harness({"codex": real.preset_body()}, env=env)


def last_progress(h: Harness, task_id: str) -> ProgressSnapshot:
    snapshots = h.of(task_id, ProgressChanged)
    assert snapshots, "no progress was published"
    return snapshots[-1].progress


def last_review(h: Harness, task_id: str) -> dict[str, Any]:
    reviews = h.of(task_id, ReviewReady)
    assert reviews, "no review was posted"
    review: dict[str, Any] = reviews[-1].review.to_dict()
    return review


async def test_codex_writes_commits_resumes_and_merges(
    harness: MakeHarness, fake_openai: MakeServer, tmp_path: Path
) -> None:
    patch = "*** Begin Patch\n*** Update File: hello.txt\n@@\n-hello from codex\n+hello again\n*** End Patch\n"
    server = fake_openai([
        # first run: write a file, run a command, commit inside the sandbox, answer
        Step([apply_patch(add_file("hello.txt", "hello from codex"))], input_tokens=1200, output_tokens=40),
        Step([exec_command("cat hello.txt")], input_tokens=1300, output_tokens=20),
        Step([exec_command("git add hello.txt && git commit -q -m 'Add hello.txt' && git log --oneline -1")],
             input_tokens=1400, output_tokens=20),
        Step([message("Wrote hello.txt and committed it.")], input_tokens=1500, output_tokens=30),
        # follow-up: edit the file in the same thread
        Step([apply_patch(patch)], input_tokens=2000, output_tokens=25),
        Step([message("Updated hello.txt.")], input_tokens=2100, output_tokens=15),
    ])
    h = await codex_harness(harness, tmp_path, server)
    task = await h.engine.spawn("Write hello.txt saying hello", requester="U1", preset="codex")
    task = await h.settled(task.id)
    assert task.state == FINISHED, task.reason
    first_run = server.requests[:]
    assert len(first_run) == 4
    assert "apply_patch" in first_run[0].tool_names() and "exec_command" in first_run[0].tool_names()
    outputs = [i["output"] for i in first_run[3].input_items("function_call_output")]
    assert "hello from codex" in outputs[0]
    assert "Process exited with code 0" in outputs[1] and "Add hello.txt" in outputs[1]  # git works in the sandbox

    progress = last_progress(h, task.id)
    assert progress.tokens_in == 1200 + 1300 + 1400 + 1500 and progress.tokens_out == 110
    assert progress.cost_usd is None
    assert progress.carry == {"thread_tokens_in": 5400, "thread_tokens_out": 110, "thread_cached_in": 0}
    tail = progress.tail
    assert "Editing hello.txt" in tail and "Running cat hello.txt" in tail
    assert not [line for line in tail if line.startswith("{") or "Reading additional input" in line]
    review = last_review(h, task.id)
    assert [f["path"] for f in review["files"]] == ["hello.txt"]
    assert review["final_text"] == "Wrote hello.txt and committed it."
    assert review["tokens_in"] == 5400 and review["denials"] == []
    assert git(Path(task.worktree or ""), "log", "-1", "--format=%s") == "Add hello.txt"

    await h.engine.followup(task.id, "Now say hello again", "U1")
    task = await h.settled(task.id)
    assert task.state == FINISHED, task.reason
    resumed = server.requests[4]
    assert resumed.headers["session-id"] == first_run[0].headers["session-id"]  # the same thread
    earlier_calls = {i["call_id"] for i in first_run[-1].input_items("custom_tool_call")}
    assert earlier_calls and earlier_calls <= {i["call_id"] for i in resumed.input_items("custom_tool_call")}
    assert resumed.user_texts()[-1] == "Now say hello again"
    progress = last_progress(h, task.id)
    assert (progress.tokens_in, progress.tokens_out) == (2000 + 2100, 40)  # this run's own, not the thread's
    assert progress.carry == {"thread_tokens_in": 9500, "thread_tokens_out": 150, "thread_cached_in": 0}
    assert "Editing hello.txt" in progress.tail

    merged = await h.engine.merge(task.id, "U1")
    assert merged.state == MERGED
    assert git(h.repo, "show", "main:hello.txt") == "hello again"


async def test_codex_cost_is_estimated_from_the_list_price_of_the_model_it_runs(
    harness: MakeHarness, fake_openai: MakeServer, tmp_path: Path
) -> None:
    # the config's model (gpt-5.5) is not in the price table: the test above shows tokens alone; a
    # model named on the preset's command line is, and the run's cost is estimated at its price
    server = fake_openai([Step([message("Nothing to change.")], input_tokens=10_000, cached_tokens=8_000,
                               output_tokens=500)])
    body = real.preset_body()
    body["agent"]["command"] = ["codex", "exec", "-m", "gpt-5-codex", *body["agent"]["command"][2:]]
    env = real.codex_env(tmp_path, server)
    h = await harness({"codex": body}, env=env)
    task = await h.engine.spawn("Look around", requester="U1", preset="codex")
    task = await h.settled(task.id)
    assert task.state == FINISHED, task.reason
    assert server.requests[0].body["model"] == "gpt-5-codex"  # the model priced is the model Codex asked for
    expected = (2_000 * 1.25 + 8_000 * 0.125 + 500 * 10.0) / 1e6
    progress = last_progress(h, task.id)
    assert progress.cost_usd == pytest.approx(expected) and progress.cost_estimated_from == "gpt-5-codex"
    review = last_review(h, task.id)
    assert review["cost_usd"] == pytest.approx(expected) and review["cost_estimated_from"] == "gpt-5-codex"
    (usage,) = [e.detail for e in await h.engine.store.events(task.id) if e.action == "usage"]
    assert usage["cost_usd"] == pytest.approx(expected) and usage["cost_estimated_from"] == "gpt-5-codex"


async def test_codex_bad_key_fails_at_once_with_the_reason(
    harness: MakeHarness, fake_openai: MakeServer, tmp_path: Path
) -> None:
    server = fake_openai([Step([message("never said")])])
    # Codex would retry a refused key five times with backoff: the engine stops it at the first refusal
    h = await codex_harness(harness, tmp_path, server, key="sk-wrong", retries=5)
    task = await h.engine.spawn("hello", requester="U1", preset="codex")
    task = await h.settled(task.id)
    assert task.state == FAILED
    assert "401" in (task.reason or "") and "Incorrect API key" in (task.reason or "")
    assert 1 <= len(server.requests) < 6
    progress = last_progress(h, task.id)
    assert progress.fatal is True
    assert "API error 401, retry 1/5" in progress.tail


async def test_codex_http_500_fails_plainly(harness: MakeHarness, fake_openai: MakeServer, tmp_path: Path) -> None:
    server = fake_openai([Step.fail(500, "upstream exploded")])
    h = await codex_harness(harness, tmp_path, server)
    task = await h.engine.spawn("hello", requester="U1", preset="codex")
    task = await h.settled(task.id)
    assert task.state == FAILED
    assert "model API error 500" in (task.reason or "")
    assert len(server.requests) == 1
    tail = last_progress(h, task.id).tail
    assert any(line.startswith("Error: model API error 500") for line in tail), tail
    assert not [line for line in tail if line.startswith("{")]


async def test_codex_sandbox_rejects_a_write_outside_the_worktree(
    harness: MakeHarness, fake_openai: MakeServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    server = fake_openai([])
    h = await codex_harness(harness, tmp_path, server)
    hook = h.repo / ".git" / "hooks" / "post-merge"  # git runs it outside any sandbox: must stay read-only
    server.script = [
        Step([apply_patch(add_file(str(outside / "escape.txt"), "out"))]),
        Step([exec_command(f"sleep 0.5; touch {outside}/escape2.txt")]),
        Step([exec_command(f"echo evil > {hook}")]),
        # only the task's own branch may move: the base branch's ref is not the agent's to write
        Step([exec_command("sleep 0.5; git update-ref refs/heads/main HEAD")]),
        Step([apply_patch(add_file("inside.txt", "in"))]),
        Step([message("Wrote inside.txt; the other files were refused.")]),
    ]
    main_before = git(h.repo, "rev-parse", "main")
    task = await h.engine.spawn("Write two files", requester="U1", preset="codex")
    task = await h.settled(task.id)
    assert task.state == FINISHED, task.reason
    assert not (outside / "escape.txt").exists() and not (outside / "escape2.txt").exists()
    refusal = server.requests[1].input_items("custom_tool_call_output")[0]["output"]
    assert "patch rejected" in refusal
    command_outputs = [i["output"] for i in server.requests[4].input_items("function_call_output")]
    assert len(command_outputs) == 3 and all("Read-only file system" in out for out in command_outputs)
    assert not hook.exists()
    assert git(h.repo, "rev-parse", "main") == main_before
    review = last_review(h, task.id)
    assert [f["path"] for f in review["files"]] == ["inside.txt"]
    patch = review["denials"][0]
    assert patch.startswith("denied: a patch writing outside of the project was rejected by the sandbox")
    assert '"writable"' in patch and "agent.permissions" in patch
    progress = last_progress(h, task.id)
    assert list(progress.denials) == review["denials"]
    # Codex prints the command's item (so the denial shows) unless the command died within milliseconds
    if any(line.startswith("Running sleep 0.5") for line in progress.tail):
        assert len(review["denials"]) >= 2 and "Read-only file system" in review["denials"][1]


def summary(path: Path) -> list[tuple[Any, ...]]:
    parse = make_parser("codex-json", cwd=real.SAMPLE_WORKTREE)
    events = [e for line in path.read_text().splitlines() for e in parse(line)] + parse.finish()
    return [(e.kind, e.text, e.action, e.denied, e.api_status, e.fatal, e.tokens_in, e.tokens_out) for e in events]


def test_recorded_fixtures_match_what_the_cli_prints_now(tmp_path: Path) -> None:
    """tests/samples/codex_*.jsonl are this CLI's output: a re-record parses the same."""
    written = real.record(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in SAMPLES.glob("codex_*.jsonl")
                                                     if p.name not in HAND_MADE)
    for path in written:
        assert summary(path) == summary(SAMPLES / path.name), path.name


@needs_bwrap
async def test_codex_works_in_the_bwrap_sandbox(
    harness: MakeHarness, fake_openai: MakeServer, tmp_path: Path
) -> None:
    """The real CLI inside `"sandbox": "bwrap"`, its own sandbox nested in ours: it writes, runs a
    command and commits in its worktree, with only CODEX_HOME writable besides."""
    server = fake_openai([
        Step([apply_patch(add_file("hello.txt", "hello from codex"))], input_tokens=1200, output_tokens=40),
        Step([exec_command("git add hello.txt && git commit -q -m 'Add hello.txt' && git log --oneline -1")],
             input_tokens=1300, output_tokens=20),
        Step([message("Wrote hello.txt and committed it.")], input_tokens=1400, output_tokens=30),
    ])
    env = real.codex_env(tmp_path, server)
    body = {**real.preset_body(), "sandbox": "bwrap", "sandbox_writable": [env["CODEX_HOME"]]}
    h = await harness({"codex": body}, env={**env, "SUPERSET_BWRAP": str(BWRAP)})
    task = await h.engine.spawn("Write hello.txt saying hello", requester="U1", preset="codex")
    done = await h.settled(task.id)
    outputs = [i["output"] for i in server.requests[-1].input_items("function_call_output")] if server.requests else []
    assert done.state == FINISHED, (done.reason, outputs)
    assert "Process exited with code 0" in outputs[-1] and "Add hello.txt" in outputs[-1], outputs
    assert git(Path(done.worktree or ""), "log", "-1", "--format=%s") == "Add hello.txt"
