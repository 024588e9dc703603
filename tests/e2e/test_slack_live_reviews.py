"""Live reviews across parallel tasks: when one task merges, the other open reviews on the same base
are looked at again, and a review whose branch no longer merges cleanly stops offering Merge.

Signed requests over real HTTP into the bot, the fake Slack, real repos and agent processes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from support.slackharness import CHANNEL, Bot, buttons, preset

from superset_bot.store import FINISHED, MERGED, Task


async def spawned(b: Bot, prompt: str, known: set[str]) -> Task:
    await b.command(f"spawn {prompt}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        fresh = [t for t in await b.store.list_tasks() if t.id not in known]
        if fresh:
            return await b.finished(fresh[0].id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no task for {prompt!r}")


async def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_merge_turns_the_other_reviews_on_its_base_stale_in_place(bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"edit": preset("edit")})
    first = await spawned(b, "add the feature one way", set())
    second = await spawned(b, "add the feature another way", {first.id})
    assert first.state == second.state == FINISHED
    review_ts = b.thread_of(second).review_ts
    assert review_ts
    before = b.fake.messages[(CHANNEL, review_ts)]
    assert "task_merge" in buttons(before) and "Merges cleanly" in json.dumps(before.blocks)
    assert "still its tip" in json.dumps(before.blocks)

    await b.click("task_merge", first.id, message_ts=b.thread_of(first).review_ts)
    await b.finished(first.id, {MERGED})

    def stale() -> bool:
        return "task_update_base" in buttons(b.fake.messages[(CHANNEL, review_ts)])

    await eventually(stale)
    await b.settle()
    after = b.fake.messages[(CHANNEL, review_ts)]
    assert "task_merge" not in buttons(after), "no Merge on a branch that no longer merges cleanly"
    # the first task's commits and its merge commit landed on main since the second started
    assert "src/feature.py" in json.dumps(after.blocks) and "has moved 3 commits since" in json.dumps(after.blocks)
    thread = b.fake.thread(CHANNEL, b.thread_of(second).thread_ts)
    (note,) = [m for m in thread if "no longer merges cleanly" in (m.text or "")]
    assert "Update from base" in note.text
    stored = (await b.engine.get(second.id)).review_data()
    assert stored and stored["clean"] is False and stored["base_moved"] == 3, "the store holds what Slack shows"
    assert len([m for m in thread if "ready for review" in (m.text or "")]) == 1, "updated in place, not reposted"
    assert b.fake.rejected == []
