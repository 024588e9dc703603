"""Pull-request delivery seen from Slack: a slash command to a pull request linked on the review, its
checks turning red (with Fix CI) and green in the thread, and the Merge PR button merging it on GitHub.

Signed requests over real HTTP into the bot, the fake Slack and the fake GitHub (both on 127.0.0.1),
a bare repo as the remote, real agents.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from support.fakegithub import FakeGitHub
from support.remotes import with_remote
from support.slackharness import CHANNEL, Bot, all_text, buttons, preset
from support.waiting import eventually

from superset_bot.store import FINISHED, MERGED

TOKEN = "ghp_slack_e2e_token_abcdef0123"
SLUG = "acme/demo"


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub.start(token=TOKEN, prefix="/api/v3") as gh:  # as GitHub Enterprise serves it
        yield gh


async def test_a_task_goes_from_slash_command_to_a_merged_pull_request(
        bot: Callable[..., Any], tmp_path: Path, github: FakeGitHub) -> None:
    b: Bot = await bot({"edit": {**preset("edit"), "deliver": "pr"}}, env={
        "SUPERSET_GITHUB_TOKEN": TOKEN, "SUPERSET_GITHUB_API_URL": github.url,
        "SUPERSET_GITHUB_REPOS": f"demo={SLUG}", "SUPERSET_PR_POLL_EVERY": "0.1s"})
    with_remote(tmp_path, b.repo)
    github.add_repo(SLUG, tmp_path / "remote.git")

    await b.command("spawn add the feature")
    task = await b.finished((await b.task_for_thread()).id, {FINISHED})
    ids = b.thread_of(task)

    def review() -> Any:
        return b.fake.messages[(CHANNEL, ids.review_ts)] if ids.review_ts else None

    def review_text() -> str:
        return json.dumps(review().blocks) if review() else ""

    pr_url = f"{github.web_url}/{SLUG}/pull/1"
    await eventually(lambda: pr_url in review_text(), what="the review linking the pull request")
    merge = buttons(review())["task_merge"]
    assert merge["text"]["text"] == "Merge PR" and f"{SLUG}#1" in json.dumps(merge["confirm"])
    thread = b.fake.thread(CHANNEL, ids.thread_ts)
    assert any(f"Opened pull request {SLUG}#1" in (m.text or "") for m in thread)

    head = (await github.fetch_pull(SLUG, 1))["head"]["sha"]
    github.set_check_run(SLUG, head, "tests", "completed", "failure", title="1 failed",
                         summary="test_login.py::test_flaky FAILED")

    def says(words: str) -> bool:
        return any(words in (m.text or "") for m in b.fake.thread(CHANNEL, ids.thread_ts))

    await eventually(lambda: says("Checks failed on"), what="the thread told the checks failed")
    await eventually(lambda: "task_fix_ci" in buttons(review()), what="Fix CI on the review")
    assert "test_login.py::test_flaky FAILED" in review_text()

    github.set_check_run(SLUG, head, "tests", "completed", "success")  # re-run, green
    await eventually(lambda: says("Checks passed on"), what="the thread told the checks passed")
    await eventually(lambda: "task_fix_ci" not in buttons(review()), what="Fix CI gone")

    await b.click("task_merge", task.id, message_ts=ids.review_ts)
    merged = await b.finished(task.id, {MERGED})
    pr = github.pull(SLUG, 1)
    assert pr["merged"] is True and merged.merge_commit == pr["merge_commit_sha"]
    assert git(tmp_path / "remote.git", "rev-parse", "main") == pr["merge_commit_sha"]
    await eventually(lambda: says("Merged into `main`"), what="the thread told the merge")
    assert "task_merge" not in buttons(review()), "the closed review has no buttons"
    assert TOKEN not in all_text(b.fake), "the GitHub token never reaches Slack"
    assert b.fake.rejected == []
