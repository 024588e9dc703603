"""Slack end to end: signed requests over real HTTP into the bot, a fake Slack Web API that behaves
like Slack (validates payloads, rate-limits), real repos, real agents, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from support.slackharness import (
    CHANNEL,
    OTHER_CHANNEL,
    OUTSIDE_CHANNEL,
    Bot,
    all_text,
    buttons,
    preset,
)

from superset_bot.store import FINISHED, MERGED


async def test_spawn_thread_review_merge(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    status, key = await b.command("spawn --repo demo add the feature <!channel>")
    assert status == 200
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    assert done.state == FINISHED, done.reason
    thread = b.fake.thread(CHANNEL, ids.thread_ts)
    root = thread[0]
    assert task.id in root.text and "<!channel>" not in all_text(b.fake)
    # one live message: the root is the status card, the thread holds milestones and the review
    assert root.ts == ids.thread_ts and ids.status_ts is None
    assert "finished" in json.dumps(root.blocks).lower() and "task_cancel" not in json.dumps(root.blocks)
    assert not any("Running" in json.dumps(m.blocks) for m in thread[1:]), "no second card in the thread"
    review = b.fake.messages[(CHANNEL, ids.review_ts)]
    actions = buttons(review)
    assert actions["task_merge"]["value"] == task.id and actions["task_merge"]["style"] == "primary"
    assert "main" in json.dumps(actions["task_merge"]["confirm"])
    assert actions["task_discard"]["style"] == "danger"
    assert "src/feature.py" in json.dumps(review.blocks) and "NOTES.md" in json.dumps(review.blocks)
    assert "white_check_mark" in b.fake.messages[(CHANNEL, ids.thread_ts)].reactions

    status, key = await b.click("task_merge", task.id, message_ts=ids.review_ts)
    assert status == 200
    merged = await b.finished(task.id, {MERGED})
    assert git(b.repo, "rev-parse", "main") == merged.merge_commit
    review = b.fake.messages[(CHANNEL, ids.review_ts)]
    assert buttons(review) == {}, "the buttons are gone once merged"
    assert "U0ALICE" in json.dumps(review.blocks)
    assert any("Merged into" in m.text for m in b.fake.thread(CHANNEL, ids.thread_ts))
    assert b.fake.rejected == []


async def test_discard_removes_worktree_and_branch(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    await b.command("spawn throwaway")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    await b.click("task_discard", task.id, message_ts=ids.review_ts)
    gone = await b.finished(task.id, {"discarded"})
    assert not Path(done.worktree).exists()
    assert git(b.repo, "branch", "--list", "superset/*") == ""
    assert buttons(b.fake.messages[(CHANNEL, ids.review_ts)]) == {}
    assert gone.closed_by == "U0ALICE"


async def test_double_and_concurrent_clicks_merge_once(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    await b.command("spawn click me")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    clicks = await asyncio.gather(*(b.click("task_merge", task.id, user="U0ALICE", message_ts=ids.review_ts)
                                     for _ in range(4)))
    await b.finished(task.id, {MERGED})
    await b.settle()
    assert git(b.repo, "rev-list", "--count", "--merges", "main") == "1"
    _, late = await b.click("task_merge", task.id, message_ts=ids.review_ts)
    await b.settle()
    answers = [a for _, key in [*clicks, (0, late)] for a in b.answers(key)]
    assert sum("already merged by U0ALICE" in a or "being merged" in a for a in answers) >= 4
    assert git(b.repo, "rev-list", "--count", "--merges", "main") == "1"


async def test_unauthorised_merge_is_refused(bot: Callable[..., Any]) -> None:
    b: Bot = await bot(env={"SUPERSET_ADMINS": "U0ADMIN"})
    await b.command("spawn mine only", user="U0ALICE")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    _, key = await b.click("task_merge", task.id, user="U0MALLORY", message_ts=ids.review_ts)
    await b.settle()
    assert any("Only <@U0ALICE>" in a for a in b.answers(key))
    assert (await b.engine.get(task.id)).state == FINISHED
    assert any(e.actor == "U0MALLORY" and e.action == "merge_refused" for e in await b.store.events(task.id))
    _, key = await b.click("task_merge", task.id, user="U0ADMIN", message_ts=ids.review_ts)
    assert (await b.finished(task.id, {MERGED})).closed_by == "U0ADMIN"


async def test_bad_signatures_are_rejected(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    form = urllib.parse.urlencode({"command": "/superset", "text": "list", "user_id": "U1", "channel_id": CHANNEL})
    forged = await b.post_signed(form, "application/x-www-form-urlencoded", secret="wrong-secret")
    expired = await b.post_signed(form, "application/x-www-form-urlencoded", timestamp=int(time.time()) - 600)
    assert forged.status == 401 and expired.status == 401
    async with b.http.get(f"http://127.0.0.1:{b.slack.port}/healthz") as resp:
        assert resp.status == 200 and (await resp.json())["ok"] is True


async def test_follow_up_in_thread_reruns_agent(bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"followup": preset("followup")}, env={"SUPERSET_ADMINS": "U0ADMIN"})
    await b.command("spawn first instruction")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    mention = {"type": "app_mention", "user": "U0ALICE", "channel": CHANNEL, "ts": "9.1",
               "thread_ts": ids.thread_ts, "text": "<@UBOT> second instruction"}
    assert await b.event(mention, event_id="EvFollow") == 200
    assert await b.event(mention, event_id="EvFollow") == 200  # Slack's retry: deduplicated
    await b.settle()
    again = await b.finished(task.id)
    assert again.runs == 2
    assert (Path(again.worktree) / "RUNS.md").read_text().splitlines() == ["first instruction", "second instruction"]
    texts = [m.text for m in b.fake.thread(CHANNEL, ids.thread_ts)]
    assert any("second instruction" in t for t in texts)
    # chatter in the thread without a mention of a task thread is ignored; a stranger may not follow up
    await b.event({**mention, "user": "U0MALLORY", "text": "<@UBOT> do something else"})
    await b.settle()
    assert (await b.engine.get(task.id)).runs == 2


async def test_ten_tasks_streaming_under_rate_limits(bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"conc": preset("concurrency", CONCURRENCY_LOG="/dev/null", AGENT_SLEEP="0.5"),
                        "chatty": preset("sleep")}, env={"SUPERSET_MAX_CONCURRENT": "10"})
    for i in range(10):
        await b.command(f"spawn task number {i}")
    deadline = time.monotonic() + 30
    while len(await b.store.list_tasks()) < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    tasks = await b.store.list_tasks()
    assert len(tasks) == 10
    for task in tasks:
        done = await b.finished(task.id)
        assert done.state == FINISHED
    await b.settle()
    for task in await b.store.list_tasks():
        ids = b.thread_of(task)
        card = b.fake.messages[(CHANNEL, ids.thread_ts)]
        assert "finished" in json.dumps(card.blocks).lower(), "each task's card ends in the final state"
        assert ids.review_ts and buttons(b.fake.messages[(CHANNEL, ids.review_ts)])
    assert b.fake.rejected == []


@pytest.mark.parametrize("text, expected", [
    ("deploy now", 'Unknown command \\"deploy\\"'),
    ("status", "needs a task id"),
    ("status zzzzzz", "There is no task"),
    ("spawn --repo", "Option --repo needs a value"),
    ("spawn " + "x" * 60_000, "the limit is 50,000"),
    ("spawn --preset nope fix", 'Unknown preset \\"nope\\"'),
])
async def test_bad_input_gets_an_ephemeral_answer(bot: Callable[..., Any], text: str, expected: str) -> None:
    b: Bot = await bot()
    status, key = await b.command(text)
    assert status == 200
    await b.settle()
    answers = b.answers(key)
    assert answers and expected in answers[0], answers
    assert '"response_type": "ephemeral"' in answers[0]
    assert await b.store.list_tasks() == []


async def test_long_prompt_starts_a_task(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    _, key = await b.command("spawn " + "y" * 40_000)
    task = await b.task_for_thread()
    assert len(task.prompt) == 40_000
    done = await b.finished(task.id)
    assert done.state == FINISHED
    assert "Started task" in b.answers(key)[0]
    assert b.fake.rejected == []


async def test_task_of_another_channel_and_not_in_channel(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    await b.command("spawn over here")
    task = await b.task_for_thread()
    await b.finished(task.id)
    _, key = await b.command(f"merge {task.id}", channel=OTHER_CHANNEL)
    _, outside = await b.command("spawn somewhere", channel=OUTSIDE_CHANNEL)
    await b.settle()
    assert "belongs to <#C0TASKS>" in b.answers(key)[0]
    assert "/invite" in b.answers(outside)[0]
    assert len(await b.store.list_tasks()) == 1


async def test_spawn_over_socket_mode(bot: Callable[..., Any]) -> None:
    b: Bot = await bot(http=False)
    await asyncio.wait_for(b.fake.socket_connected.wait(), 10)
    payload = {"token": "x", "team_id": "T1", "channel_id": CHANNEL, "user_id": "U0ALICE", "command": "/superset",
               "text": "spawn via socket", "response_url": b.fake.response_url("sock"), "trigger_id": "t"}
    await b.fake.socket_send("slash_commands", payload)
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    assert done.state == FINISHED and ids.review_ts


async def test_healthz_fails_while_a_task_is_wedged_and_its_thread_hears_when_it_is_settled(
    bot: Callable[..., Any],
) -> None:
    b: Bot = await bot()
    await b.command("spawn throwaway")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    # the discard's request died after claiming the task, an hour ago: nothing will finish it by itself
    await b.store.transition(task.id, "discarding", "U0ALICE", expect={FINISHED})
    with sqlite3.connect(b.settings.db_path) as db:
        db.execute("UPDATE tasks SET updated_at = updated_at - 3600 WHERE id = ?", (task.id,))
    async with b.http.get(f"http://127.0.0.1:{b.slack.port}/healthz") as resp:
        body = await resp.json()
        assert resp.status == 503 and body["ok"] is False, body
        assert any(task.id in p and "discarding" in p for p in body["problems"]), body

    fixed = await b.slack.housekeeper.reconcile()
    assert any(task.id in f for f in fixed), fixed
    gone = await b.finished(task.id, {"discarded"})
    assert not Path(done.worktree).exists() and git(b.repo, "branch", "--list", "superset/*") == ""
    assert any("without progress" in m.text for m in b.fake.thread(CHANNEL, ids.thread_ts)), \
        [m.text for m in b.fake.thread(CHANNEL, ids.thread_ts)]
    assert gone.closed_by == "U0ALICE"
    async with b.http.get(f"http://127.0.0.1:{b.slack.port}/healthz") as resp:
        assert resp.status == 200 and (await resp.json())["ok"] is True
