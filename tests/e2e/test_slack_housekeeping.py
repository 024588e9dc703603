"""Housekeeping seen from Slack: the prune warning with its Keep button, pruning, dry runs, digests.

Stale and warning times are set to seconds so real time can pass in the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.slackharness import CHANNEL, Bot, buttons

from superset_bot.store import PRUNED


async def test_warning_keep_then_prune(bot: Callable[..., Any]) -> None:
    b: Bot = await bot(env={"SUPERSET_STALE_AFTER": "3s", "SUPERSET_PRUNE_WARNING": "1s"})
    await b.command("spawn short lived")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    await asyncio.sleep(2.1)  # idle past stale - warning

    _, key = await b.command("prune")
    await b.settle()
    assert "warn: task" in b.answers(key)[0]
    warning = next(m for m in b.fake.thread(CHANNEL, ids.thread_ts) if "task_keep" in buttons(m))
    assert buttons(warning)["task_keep"]["value"] == task.id

    _, keep = await b.click("task_keep", task.id, message_ts=warning.ts)
    await b.settle()
    assert "kept" in b.answers(keep)[0]
    _, dry = await b.command("prune --dry-run")
    await b.settle()
    assert "Nothing to prune." in b.answers(dry)[0], "Keep reset the idle clock"

    await asyncio.sleep(2.1)
    await b.command("prune")  # warned again
    await b.settle()
    await asyncio.sleep(1.1)
    _, dry = await b.command("prune --dry-run")
    await b.settle()
    assert "would prune: task" in b.answers(dry)[0] and Path(done.worktree).exists(), "a dry run changes nothing"
    await b.command("prune")
    pruned = await b.finished(task.id, {PRUNED})
    assert not Path(done.worktree).exists()
    texts = [m.text for m in b.fake.thread(CHANNEL, ids.thread_ts)]
    assert any("pruned" in t.lower() and "idle for" in t for t in texts), texts
    assert buttons(b.fake.messages[(CHANNEL, b.thread_of(pruned).review_ts)]) == {}, "no Merge on a pruned task"
    assert b.fake.rejected == []


async def test_digest_command_and_scheduled_sink(bot: Callable[..., Any]) -> None:
    b: Bot = await bot(env={"SUPERSET_DIGEST_CHANNEL": "C0OTHER"})
    _, empty = await b.command("digest")
    await b.settle()
    assert "Nothing to report" in b.answers(empty)[0]
    await b.command("spawn awaiting review")
    task = await b.task_for_thread()
    await b.finished(task.id)
    await b.command("digest")
    await b.settle()
    digest = [m for m in b.fake.channel_messages(CHANNEL) if "digest" in m.text.lower()]
    assert digest and task.id in json.dumps(digest[-1].blocks)
    # the scheduled digest goes to SUPERSET_DIGEST_CHANNEL through the same renderer
    assert b.slack.frontend is not None and b.slack.frontend.housekeeper is not None
    posted = await b.slack.frontend.housekeeper.digest()
    await b.settle()
    assert posted is not None
    assert any(task.id in json.dumps(m.blocks) for m in b.fake.channel_messages("C0OTHER"))
    assert b.fake.rejected == []
