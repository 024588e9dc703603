"""App Home shows each person what `list` would show them, through the service: their own tasks,
never the prompts of tasks someone else started in another (maybe private) channel.

Signed requests over real HTTP into the bot, against the fake Slack; real repos and agents.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from support.slackharness import CHANNEL, OTHER_CHANNEL, Bot, preset

from superset_bot.store import CANCELLED, Task

ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"


def home_of(b: Bot, user: str) -> str:
    return json.dumps(b.fake.views["home"].get(user, {}).get("blocks", []))


async def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Two running tasks keep their live cards updating, so the outbox is never idle: wait for what
    the test needs instead of `settle()`."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return found


async def spawn(b: Bot, prompt: str, *, user: str, channel: str) -> Task:
    before = {t.id for t in await b.store.list_tasks()}
    await b.command(f"spawn {prompt}", user=user, channel=channel)
    (task,) = await eventually(lambda: [t for t in b.engine.running_agents() if t not in before], "the task")
    return await b.engine.get(task)


async def listed(b: Bot, user: str, channel: str) -> str:
    """`/superset list` as `user` types it in `channel`: the blocks of the answer."""
    _, key = await b.command("list", user=user, channel=channel)
    (answer,) = await eventually(lambda: [r["payload"] for r in b.fake.responses_to_urls if r.get("key") == key],
                                 "the answer to list")
    return json.dumps(answer["blocks"])


async def test_app_home_lists_what_list_shows_the_viewer_and_not_others_tasks(bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"sleepy": preset("sleep")}, env={"SUPERSET_ALLOWED_USERS": f"{ALICE},{BOB}"})
    mine = await spawn(b, "alice works in the tasks channel", user=ALICE, channel=CHANNEL)
    theirs = await spawn(b, "bob's secret plan", user=BOB, channel=OTHER_CHANNEL)
    for user in (ALICE, BOB, MALLORY):
        assert await b.event({"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home"}) == 200
    await eventually(lambda: all(home_of(b, user) != "[]" for user in (ALICE, BOB, MALLORY)), "three App Homes")

    alice, bob = home_of(b, ALICE), home_of(b, BOB)
    assert mine.id in alice and "task_cancel" in alice, "her own running task, with its Cancel button"
    assert theirs.id not in alice and "secret plan" not in alice, "not Bob's task from another channel"
    assert theirs.id in bob and "secret plan" in bob
    assert mine.id not in bob and "alice works" not in bob

    # App Home is `list` in the app's DM with the person, laid out: the same tasks
    for user, home in ((ALICE, alice), (BOB, bob)):
        in_dm = await listed(b, user, f"D{user}")
        for task in (mine, theirs):
            assert (task.id in home) == (task.id in in_dm), (user, task.id)
    # in the tasks channel, `list` also shows that channel's tasks to Bob; App Home, no channel, does not
    assert mine.id in await listed(b, BOB, CHANNEL)

    # someone the bot does not serve is told so, and sees no task at all
    mallory = home_of(b, MALLORY)
    assert "SUPERSET_ALLOWED_USERS" in mallory
    assert mine.id not in mallory and theirs.id not in mallory and "Running now" not in mallory

    for task in (mine, theirs):
        await b.command(f"cancel {task.id}", user=task.requester, channel=task.channel or CHANNEL)
        await b.engine.wait_for(task.id, {CANCELLED}, timeout=30)
    await b.settle()
    assert b.fake.rejected == []


async def test_a_click_from_app_home_reads_only_what_the_viewer_may_see(bot: Callable[..., Any]) -> None:
    """App Home's buttons carry a task id and no channel: a crafted View diff for someone else's task
    from another channel gets a refusal and shows nothing there; the viewer's own task still works."""
    b: Bot = await bot({"sleepy": preset("sleep")})
    mine = await spawn(b, "alice works in the tasks channel", user=ALICE, channel=CHANNEL)
    theirs = await spawn(b, "bob's secret plan", user=BOB, channel=OTHER_CHANNEL)
    assert await b.event({"type": "app_home_opened", "user": ALICE, "channel": f"D{ALICE}", "tab": "home"}) == 200
    await eventually(lambda: home_of(b, ALICE) != "[]", "Alice's App Home")
    view = b.fake.views["home"][ALICE]

    async def diff_from_home(task: Task) -> None:
        payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": ALICE}, "api_app_id": "A1",
                   "trigger_id": b.fake.new_trigger_id(), "container": {"type": "view", "view_id": view["id"]},
                   "view": view, "actions": [{"action_id": "task_diff", "block_id": "x", "value": task.id,
                                              "type": "button", "action_ts": str(time.time())}]}
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        resp = await b.post_signed(body, "application/x-www-form-urlencoded")
        assert resp.status == 200

    def replies(task: Task) -> list[str]:
        ids = b.thread_of(task)
        return [m.text or "" for m in b.fake.thread(ids.channel, ids.thread_ts)[1:]]

    await diff_from_home(theirs)
    told = await eventually(lambda: b.fake.channel_messages("D" + ALICE[1:]),  # the fake's DM with her
                            "the answer in the app's DM")
    said = json.dumps([[m.text, m.blocks] for m in told])
    assert "another channel" in said and "secret plan" not in said
    await diff_from_home(mine)
    await eventually(lambda: any("No changes yet" in text for text in replies(mine)), "the diff in her thread")
    assert not any("No changes yet" in text for text in replies(theirs)), "nothing was posted in Bob's thread"
    for task in (mine, theirs):
        await b.command(f"cancel {task.id}", user=task.requester, channel=task.channel or CHANNEL)
        await b.engine.wait_for(task.id, {CANCELLED}, timeout=30)
    await b.settle()
    assert b.fake.rejected == []
