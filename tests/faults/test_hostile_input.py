"""Hostile input end to end: prompts full of shell syntax, agent output full of pings, secrets that
must stay out of Slack, the log and the database, odd repo and branch names, and presets whose
files or `copy` entries lead outside where they should.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENTS_DIR, git
from support.env import bot_env
from support.slackharness import (
    CHANNEL,
    SIGNING_SECRET,
    Bot,
    preset,
)

from superset_bot.presets import PresetError, load_presets
from superset_bot.store import FAILED, FINISHED

HOSTILE_AGENT = str(AGENTS_DIR / "hostile_agent.py")
API_SECRET = "sk-live-0123456789-very-secret"
PINGS = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<!subteam^S1>", "<#C999>", "<https://evil.example|")


def hostile_preset(**env: str) -> dict[str, Any]:
    return {"description": "hostile agent", "agent": {"command": [sys.executable, HOSTILE_AGENT, "{prompt}"],
                                                      "followup": [sys.executable, HOSTILE_AGENT, "{prompt}"]},
            "env": {"MY_API_TOKEN": API_SECRET, **env}}


def messages_sent(b: Bot) -> str:
    """What Slack renders as mrkdwn: messages, updates, ephemerals, views; not uploaded file content
    (a diff snippet is shown verbatim and pings nobody)."""
    return json.dumps([[c.method, c.args] for c in b.fake.calls if not c.method.startswith(("files.", "upload"))]
                      + b.fake.responses_to_urls, default=str)


def everything_sent(b: Bot) -> str:
    """Every Web API call and response_url answer the bot made, as text (tokens are not in args)."""
    return json.dumps([[c.method, c.args] for c in b.fake.calls] + b.fake.responses_to_urls + b.fake.files,
                      default=str)


async def test_full_run_keeps_secrets_out_and_pings_and_shell_syntax_inert(
        bot: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    marker = tmp_path / "pwned"
    prompt = (f"fix it $(touch {marker}) ; touch {marker}2 `touch {marker}3` && rm -rf / | cat "
              f"'quote\" <!channel> {API_SECRET[:4]}")
    b: Bot = await bot({"hostile": hostile_preset()}, rate_limits=False)
    _, started = await b.command(f"spawn {prompt}")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    assert done.state == FINISHED, done.reason
    follow = f"and $(touch {marker}4); `touch {marker}5` <!here>"
    await b.event({"type": "app_mention", "user": "U0ALICE", "channel": CHANNEL, "ts": "9.1",
                   "thread_ts": ids.thread_ts, "text": f"<@UBOT> {follow}"})
    await b.settle()  # the mention's job has queued the follow-up: wait for its run, not the first one
    for _ in range(600):
        if (await b.engine.get(task.id)).runs >= 2:
            break
        await asyncio.sleep(0.1)
    again = await b.finished(task.id)
    assert again.runs == 2
    await b.click("task_diff", task.id, message_ts=b.thread_of(again).review_ts)
    _, status = await b.command(f"status {task.id}")
    await b.settle()

    # the prompts reached the agent as one argument each, byte for byte, and no shell ran them
    received = (Path(again.worktree) / "PROMPTS.txt").read_text().split("\n\x00\n")
    assert received[0] == prompt and follow in received[1]
    assert not any(marker.parent.glob("pwned*")), "a prompt was run by a shell"

    sent = everything_sent(b)
    # secrets: the preset's API key, the bot's tokens and signing secret
    for secret in (API_SECRET, b.fake.bot_token, b.fake.app_token, SIGNING_SECRET):
        assert secret not in sent, f"{secret} was sent to Slack"
        assert secret not in caplog.text, f"{secret} is in the bot's log"
        for path in b.settings.db_path.parent.glob(b.settings.db_path.name + "*"):
            assert secret.encode() not in path.read_bytes(), f"{secret} is in {path.name}"
    assert "env dump" in sent and "[redacted]" in sent, "the agent's output did reach Slack, redacted"
    assert "SLACK_BOT_TOKEN= SLACK_APP_TOKEN= SLACK_SIGNING_SECRET=" in sent, "the agent saw no bot credentials"

    # pings from the agent (output, commit subject, file content) are shown, never rendered as pings
    rendered = messages_sent(b)
    assert "agent says" in rendered and "initial_comment" in sent
    for ping in PINGS:
        where = rendered.find(ping)
        assert where < 0, f"{ping} would notify people: ...{rendered[max(0, where - 300):where + 100]}"
    assert not any(c.args.get("link_names") in (True, 1, "1", "true") for c in b.fake.calls)
    assert b.fake.rejected == []
    assert b.answers(started) and b.answers(status)


async def test_agent_output_in_a_failure_reason_cannot_ping(bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"hostile": hostile_preset(AGENT_EXIT="3")}, rate_limits=False)
    await b.command("spawn fail loudly")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    assert done.state == FAILED
    rendered = messages_sent(b)
    assert "agent says" in rendered
    for ping in PINGS:
        assert ping not in rendered
    assert API_SECRET not in everything_sent(b)


# ------------------------------------------------------------------------------------------ odd names


@pytest.mark.parametrize("option", [
    "--base ..", "--base ../main", "--base -main", "--base=--upload-pack=touch", "--base refs/heads/main",
    "--base main..main", "--base main.lock", "--base 'main'", "--base ma\u202ein", "--base ümlaut",
    "--base " + "b" * 300, "--base @{-1}", "--base HEAD", "--base main~1", "--base /main", "--base main/",
    "--repo ../demo", "--repo /etc", "--repo -demo", "--repo dëmo", "--repo " + "r" * 300, "--repo demo/..",
    "repo=.. base=main",
])
async def test_odd_repo_and_branch_names_create_nothing(bot: Callable[..., Any], option: str) -> None:
    b: Bot = await bot(rate_limits=False)
    branches_before = git(b.repo, "for-each-ref", "--format=%(refname)")
    status, key = await b.command(f"spawn {option} -- do the thing")
    await b.settle()
    assert status == 200
    (answer,) = b.answers(key)
    assert ":warning:" in answer and any(reason in answer for reason in (
        "not a valid branch name", "is not a local branch", "Unknown repo", "needs a value")), answer
    assert "Traceback" not in answer and "failed in git" not in answer, answer
    assert await b.store.list_tasks() == []
    assert git(b.repo, "for-each-ref", "--format=%(refname)") == branches_before
    assert not (b.settings.data_dir / "worktrees").exists() or not any((b.settings.data_dir / "worktrees").rglob(
        "*.git"))
    for message in b.fake.channel_messages(CHANNEL):  # a root message posted before the refusal says so
        assert "was not started" in (message.text or ""), message.text
    assert b.fake.rejected == []


# ------------------------------------------------------------------------------------------ presets


def write_preset(directory: Path, name: str, body: Any) -> Path:
    path = directory / f"{name}.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def test_preset_files_that_are_symlinks(tmp_path: Path) -> None:
    """A link to a preset kept elsewhere loads under the link's name; a link to a non-preset is an
    error naming the link, never a silent skip or the target's content."""
    presets, elsewhere = tmp_path / "presets", tmp_path / "elsewhere"
    presets.mkdir()
    elsewhere.mkdir()
    write_preset(elsewhere, "shared", preset("edit"))
    os.symlink(elsewhere / "shared.json", presets / "linked.json")
    assert set(load_presets(presets)) == {"linked"}
    secret = elsewhere / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretkeymaterial\n")
    os.symlink(secret, presets / "key.json")
    with pytest.raises(PresetError) as err:
        load_presets(presets)
    assert "key.json" in str(err.value) and "invalid JSON" in str(err.value)
    assert "AAAAsecretkeymaterial" not in str(err.value)


def test_a_dangling_preset_symlink_is_an_error(tmp_path: Path) -> None:
    presets = tmp_path / "presets"
    presets.mkdir()
    write_preset(presets, "edit", preset("edit"))
    os.symlink(tmp_path / "gone.json", presets / "codex.json")
    with pytest.raises(PresetError, match="codex.json"):
        load_presets(presets)


@pytest.mark.parametrize(("body", "fragment"), [
    ("{\"agent\": {\"command\": [\"x\", \"{prompt}\"]},", "invalid JSON"),
    ({**preset("edit"), "agnet": {}}, "unknown field"),
    ({**preset("edit"), "copy": ["../../etc/passwd"]}, "'..'"),
    ({**preset("edit"), "copy": ["/etc/passwd"]}, "absolute path"),
])
def test_bad_preset_files_stop_the_bot_before_anything_runs(tmp_path: Path, make_repo: Any,
                                                            body: Any, fragment: str) -> None:
    """`superset-bot console` (like `run`) loads presets first: a bad one is a clear error naming the
    file, and no database or worktree is created."""
    import subprocess

    repo = make_repo("demo")
    presets = tmp_path / "presets"
    presets.mkdir()
    write_preset(presets, "edit", preset("edit"))
    bad = write_preset(presets, "bad", body)
    data = tmp_path / "data"
    env = bot_env(tmp_path, repo, presets=presets, SUPERSET_DEFAULT_PRESET="edit")
    result = subprocess.run([sys.executable, "-m", "superset_bot.cli", "--env-file", str(tmp_path / "none.env"), "console"],
                            input="spawn hello\n", capture_output=True, text=True, env=env, timeout=60,
                            cwd=Path(__file__).parents[2])
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(bad) in output and fragment in output, output
    assert "Traceback" not in output, output
    assert not (data / "worktrees").exists() or not any((data / "worktrees").iterdir())
    assert git(repo, "branch", "--list", "superset/*") == ""


async def test_copy_of_a_symlink_leading_outside_fails_the_task_before_the_agent_runs(
        bot: Callable[..., Any], tmp_path: Path, make_repo: Any) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text("TOP SECRET CONTENT\n")
    ran = tmp_path / "agent-ran"
    copying = {**preset("edit"), "copy": ["config.env"],
               "agent": {"command": [sys.executable, "-c", f"open({str(ran)!r}, 'w').close()", "{prompt}"]}}
    b: Bot = await bot({"copying": copying}, rate_limits=False)
    os.symlink(outside, b.repo / "config.env")  # untracked, like a .env the preset copies
    await b.command("spawn use the config")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    assert done.state == FAILED and "outside the repository" in (done.reason or ""), done.reason
    assert not ran.exists(), "the agent ran although setup failed"
    if done.worktree:
        assert not (Path(done.worktree) / "config.env").exists()
    assert "TOP SECRET CONTENT" not in everything_sent(b)
    thread = json.dumps([m.text for m in b.fake.thread(CHANNEL, ids.thread_ts)])
    assert "outside the repository" in thread
