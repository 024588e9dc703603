"""Retry, end to end: a failed task's Retry button runs its prompt again in a new thread of the
channel it was asked in, only for those who may; a task started elsewhere gets a plain refusal.

Signed requests over real HTTP into the bot, the fake Slack, real repos and agent processes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from support.slackharness import CHANNEL, OTHER_CHANNEL, Bot, buttons, preset

from superset_bot.store import FAILED, Task

ALICE, ADMIN, MALLORY = "U0ALICE", "U0ADMIN", "U0MALLORY"


async def new_task(b: Bot, known: set[str], timeout: float = 30) -> Task:
    """The task created after the ones in `known`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [t for t in await b.store.list_tasks() if t.id not in known]
        if fresh:
            return fresh[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no new task was created")


async def test_retry_runs_the_prompt_again_in_a_new_thread_for_those_who_may(bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"failing": preset("fail")}, env={"SUPERSET_ADMINS": ADMIN})
    await b.command("spawn --preset failing make the build green")
    first = await b.finished((await b.task_for_thread()).id)
    assert first.state == FAILED, first.reason
    ids = b.thread_of(first)
    (notice,) = [m for m in b.fake.thread(CHANNEL, ids.thread_ts)[1:] if "task_retry" in buttons(m)]
    assert buttons(notice)["task_retry"]["value"] == first.id

    # someone else's failed task is not theirs to run again: said plainly, nothing started
    _, key = await b.click("task_retry", first.id, user=MALLORY, message_ts=notice.ts)
    await b.settle()
    assert "Only <@U0ALICE>" in " ".join(b.answers(key)) and len(await b.store.list_tasks()) == 1

    # clicked from another channel: the task runs again where it was asked, in a thread of its own
    _, key = await b.click("task_retry", first.id, channel=OTHER_CHANNEL, message_ts=notice.ts)
    second = await new_task(b, {first.id})
    done = await b.finished(second.id)
    assert (done.prompt, done.preset, done.repo, done.channel) == (first.prompt, first.preset, first.repo, CHANNEL)
    again = b.thread_of(done)
    assert again.channel == CHANNEL and again.thread_ts != ids.thread_ts
    root = b.fake.messages[(CHANNEL, again.thread_ts)]
    assert done.id in root.text and "make the build green" in root.text
    assert done.id in " ".join(b.answers(key))
    assert b.fake.channel_messages(OTHER_CHANNEL) == [], "nothing was posted where the click came from"
    assert b.fake.rejected == []


async def test_retry_of_a_task_not_started_from_slack_is_refused_plainly(bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"failing": preset("fail")})
    task = await b.engine.spawn("from the console", requester=ALICE, preset="failing")  # no channel
    await b.engine.wait_for(task.id, {FAILED}, timeout=60)
    _, key = await b.click("task_retry", task.id, message_ts="1.0")
    await b.settle()
    said = " ".join(b.answers(key))
    assert "not started from Slack" in said and "spawn it again" in said, said
    assert [t.id for t in await b.store.list_tasks()] == [task.id], "no task was started"
    assert "from the console" not in json.dumps([m.text for m in b.fake.channel_messages(CHANNEL)])
    assert b.fake.rejected == []
