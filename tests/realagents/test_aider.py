"""The shipped aider preset end to end: the engine runs the real, pinned `aider` against the fake model.

Four aider runs in all (each costs a few seconds of CPU: python with litellm starts slowly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import git
from fakemodels.openai_chat import FakeOpenAIChat, Reply, diff_edit
from support.engineharness import Harness, MakeHarness

from realagents.aider import aider_env, bindir, preset_body, write_model_metadata
from superset_bot.domain.events import ProgressChanged, ReviewReady
from superset_bot.domain.progress import ProgressSnapshot
from superset_bot.store import FAILED, FINISHED, MERGED


async def start(harness: MakeHarness, tmp_path: Path, fake: FakeOpenAIChat, **env: Any) -> Harness:
    # the harness gives every agent HOME=tmp_path: the model's context window and prices go there
    write_model_metadata(tmp_path)
    return await harness({"aider": preset_body()}, env={
        "PATH": f"{bindir()}:/usr/local/bin:/usr/bin:/bin", **aider_env(fake.base_url, **env),
    })


def last_progress(h: Harness, task_id: str) -> ProgressSnapshot:
    return h.of(task_id, ProgressChanged)[-1].progress


def branch_files(h: Harness, ref: str) -> set[str]:
    return set(git(h.repo, "ls-tree", "-r", "--name-only", ref).splitlines())


@pytest.mark.timeout(300)
async def test_aider_writes_a_file_resumes_its_chat_and_merges(harness: MakeHarness, tmp_path: Path) -> None:
    first = diff_edit("hello.txt", "", "hello from the model\n", "Creating hello.txt.") + (
        "\nThen check it:\n\n```bash\npython3 -m pytest -q\n```\n")
    second = diff_edit("hello.txt", "hello from the model\n", "hello again\n", "Changing the greeting.")
    with FakeOpenAIChat([Reply(text=first, prompt_tokens=1234, completion_tokens=56),
                         Reply(text=second, prompt_tokens=2000, completion_tokens=40)]) as fake:
        # the diff edit format, which aider picks for well-known models, is the one with shell commands
        h = await start(harness, tmp_path, fake, edit_format="diff")
        task = await h.engine.spawn("create hello.txt with a greeting", requester="U1", preset="aider")
        done = await h.settled(task.id, timeout=240)
        assert done.state == FINISHED, done.reason
        assert fake.user_texts(0)[-1].startswith("create hello.txt with a greeting")

        review = h.of(task.id, ReviewReady)[-1].review.to_dict()
        assert [f["path"] for f in review["files"]] == ["hello.txt"]  # no .aider* files, no .gitignore
        assert (review["tokens_in"], review["tokens_out"], review["cost_usd"]) == (1200, 56, 0.0045)
        assert review["final_text"] == "Creating hello.txt.\nThen check it:"
        assert len(review["denials"]) == 1 and review["denials"][0].startswith("denied: `python3 -m pytest -q`")
        assert '"--test-cmd", "python3 -m pytest -q", "--auto-test"' in review["denials"][0]
        progress = last_progress(h, task.id)
        assert "Editing hello.txt" in progress.tail and progress.tools_used == 1
        assert progress.session_id and not progress.is_error
        assert not any("```" in line or "SEARCH" in line or "Repo-map" in line for line in progress.tail)

        await h.engine.followup(task.id, "now say hello again", "U1")
        again = await h.settled(task.id, timeout=240)
        assert again.state == FINISHED, again.reason
        # --restore-chat-history: the model sees the earlier exchange before the new instruction
        history = fake.requests[1]["messages"]
        said = [m["content"] for m in history if isinstance(m.get("content"), str)]
        assert any(s.startswith("create hello.txt with a greeting") for s in said)
        assert any("Creating hello.txt." in s for s in said)
        assert fake.user_texts(1)[-1].startswith("now say hello again")
        # the file was not in this run's chat: aider adds it and asks the model again (a second call)
        progress = last_progress(h, task.id)
        assert (progress.tokens_in, progress.tokens_out) == (4000, 80)
        assert progress.cost_usd == pytest.approx(0.0132)
        assert progress.denials == () and "Editing hello.txt" in progress.tail
        assert (Path(again.worktree or "") / "hello.txt").read_text() == "hello again\n"

    merged = await h.engine.merge(task.id, "U1")
    assert merged.state == MERGED
    assert branch_files(h, "main") == {"README.md", "shared.txt", "hello.txt"}
    assert git(h.repo, "show", "main:hello.txt") == "hello again"


@pytest.mark.timeout(300)
async def test_aider_with_a_refused_key_fails_at_once_with_the_reason(harness: MakeHarness, tmp_path: Path) -> None:
    with FakeOpenAIChat([Reply(status=401)]) as fake:
        h = await start(harness, tmp_path, fake, key="sk-bad")
        task = await h.engine.spawn("create hello.txt", requester="U1", preset="aider")
        done = await h.settled(task.id, timeout=240)
    assert done.state == FAILED
    assert done.reason and "refused aider's credentials (HTTP 401)" in done.reason
    assert "Incorrect API key provided" in done.reason and "OPENAI_API_KEY" in done.reason
    assert len(fake.requests) == 1  # no retries
    assert fake.requests[0]["model"] == "fake-coder"
    assert branch_files(h, done.branch or "") == {"README.md", "shared.txt"}  # nothing committed


@pytest.mark.timeout(300)
async def test_aider_ends_failed_when_the_model_api_keeps_failing(harness: MakeHarness, tmp_path: Path) -> None:
    # aider retries a 500 eight times over about a minute, then exits 0 without a reply
    with FakeOpenAIChat([Reply(status=500)]) as fake:
        h = await start(harness, tmp_path, fake)
        task = await h.engine.spawn("create hello.txt", requester="U1", preset="aider")
        done = await h.settled(task.id, timeout=280)
    assert done.state == FAILED
    assert done.exit_code == 0
    assert done.reason == ("aider's model API call failed (HTTP 500: The server had an error while processing "
                           "your request.) after 8 retries; aider gave up without a reply")
    progress = last_progress(h, task.id)
    assert "API error 500, retry 8/8" in progress.tail
    assert len(fake.requests) == 9  # the first attempt and eight retries
