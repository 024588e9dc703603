"""Who may do what, from a table: user x channel x action, each row a real signed request.

Settings: SUPERSET_ADMINS=U0ADMIN, SUPERSET_ALLOWED_USERS=U0ALICE,U0BOB, SUPERSET_ALLOWED_CHANNELS=C0TASKS.
Alice owns the tasks; Bob is allowed but owns none; Mallory is not allowed at all; C0OTHER is not an
allowed channel. A refused row must leave the task exactly as it was and say why; an allowed row must
have its effect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import git
from support.engineharness import driver_done
from support.slackharness import (
    CHANNEL,
    OTHER_CHANNEL,
    Bot,
    preset,
)

from superset_bot.store import CANCELLED, DISCARDED, FINISHED, MERGED, REVIEWABLE_STATES, RUNNING

ALICE, BOB, ADMIN, MALLORY = "U0ALICE", "U0BOB", "U0ADMIN", "U0MALLORY"
ENV = {"SUPERSET_ADMINS": ADMIN, "SUPERSET_ALLOWED_USERS": f"{ALICE},{BOB}", "SUPERSET_ALLOWED_CHANNELS": CHANNEL,
       "SUPERSET_MAX_CONCURRENT": "8"}
PRESETS = {"edit": preset("edit"), "sleep": preset("sleep"), "followup": preset("followup")}

# what each refusal says (the setting to look at)
REFUSED = {
    "user": "SUPERSET_ALLOWED_USERS",
    "channel": "SUPERSET_ALLOWED_CHANNELS",
    "admin": "is for admins (SUPERSET_ADMINS)",
    "owner": "Only <@U0ALICE>",
}
TASK_ACTIONS = ("cancel", "merge", "discard", "followup")
# (user, channel, action, expected): "ok" or a key of REFUSED
MATRIX: list[tuple[str, str, str, str]] = []
for _action in ("spawn", "list", *TASK_ACTIONS, "prune", "digest"):
    MATRIX.append((MALLORY, CHANNEL, _action, "user"))
    MATRIX.append((MALLORY, OTHER_CHANNEL, _action, "user"))
    for _user in (ALICE, BOB, ADMIN):
        MATRIX.append((_user, OTHER_CHANNEL, _action, "channel"))
    for _user in (ALICE, BOB, ADMIN):
        if _action in ("prune", "digest"):
            expected = "ok" if _user == ADMIN else "admin"
        elif _action in TASK_ACTIONS:
            expected = "owner" if _user == BOB else "ok"
        else:
            expected = "ok"
        MATRIX.append((_user, CHANNEL, _action, expected))


async def jobs_done(b: Bot) -> None:
    """Handlers are done; unlike settle(), streaming card updates are not waited for (Tier 3 paced)."""
    assert b.slack.frontend is not None
    await b.slack.frontend.wait_jobs()


async def ended(b: Bot, task_id: str, states: Any = REVIEWABLE_STATES) -> Any:
    await b.engine.wait_for(task_id, set(states), timeout=60)
    await driver_done(b.engine, task_id, 60)
    return await b.engine.get(task_id)


def command_text(action: str, task_id: str) -> str:
    return {"spawn": "spawn --preset edit matrix spawn", "list": "list", "prune": "prune --dry-run",
            "digest": "digest", "followup": f"followup {task_id} one more thing"}.get(action, f"{action} {task_id}")


@pytest.mark.parametrize("only", ["spawn", "list", *TASK_ACTIONS, "prune", "digest"])
async def test_access_matrix_over_slash_commands(bot: Callable[..., Any], only: str) -> None:
    b: Bot = await bot(PRESETS, env=ENV, rate_limits=False)

    async def new_task(preset_name: str) -> Any:
        before = {t.id for t in await b.store.list_tasks()}
        # each prompt differs: the edit agent writes it into its file, and an unchanged file is no commit
        await b.command(f"spawn --preset {preset_name} matrix task {len(before)}", user=ALICE)
        await jobs_done(b)
        (task,) = [t for t in await b.store.list_tasks() if t.id not in before]
        if preset_name == "sleep":
            await b.engine.wait_for(task.id, {RUNNING}, timeout=30)
            return await b.engine.get(task.id)
        return await ended(b, task.id)

    shared = await new_task("followup")  # refused rows act on this one: it must never change
    problems: list[str] = []
    for user, channel, action, expected in [row for row in MATRIX if row[2] == only]:
        task = shared
        if expected == "ok" and action in TASK_ACTIONS:
            task = await new_task({"cancel": "sleep", "followup": "followup"}.get(action, "edit"))
        tasks_before = len(await b.store.list_tasks())
        events_before = len(await b.store.events(shared.id))
        status, key = await b.command(command_text(action, task.id), user=user, channel=channel)
        await jobs_done(b)
        answers = [r["payload"] for r in b.fake.responses_to_urls if r.get("key") == key]
        said = json.dumps(answers)
        row = f"{user} {channel} {action} (expected {expected})"
        if status != 200:
            problems.append(f"{row}: HTTP {status}")
            continue
        if expected != "ok":
            if REFUSED[expected] not in said:
                problems.append(f"{row}: answer {said[:300]}")
            if any(a.get("response_type") != "ephemeral" for a in answers):
                problems.append(f"{row}: the refusal is not ephemeral")
            if len(await b.store.list_tasks()) != tasks_before:
                problems.append(f"{row}: a task was created")
            now = await b.engine.get(shared.id)
            if now.state != shared.state or now.runs != shared.runs:
                problems.append(f"{row}: the task changed to {now.state} / runs {now.runs}")
            new_events = [e.action for e in (await b.store.events(shared.id))[events_before:]]
            if expected == "owner" and new_events != [f"{action}_refused"]:
                problems.append(f"{row}: audit log got {new_events}")
            continue
        if any(fragment in said for fragment in REFUSED.values()):
            problems.append(f"{row}: refused: {said[:300]}")
            continue
        if action == "spawn" and len(await b.store.list_tasks()) != tasks_before + 1:
            problems.append(f"{row}: no task was started")
        if action in ("merge", "discard", "cancel") and answers and ":warning:" in said:
            problems.append(f"{row}: {said[:300]}")
        elif action in ("merge", "discard", "cancel"):
            want = {"merge": MERGED, "discard": DISCARDED, "cancel": CANCELLED}[action]
            done = await ended(b, task.id, {want})
            if done.state != want:
                problems.append(f"{row}: task is {done.state}")
        if action == "followup":
            await b.engine.wait_for(task.id, {RUNNING} | REVIEWABLE_STATES, timeout=30)
            again = await ended(b, task.id)
            if again.runs != 2:
                problems.append(f"{row}: follow-up did not run ({again.runs} runs)")
        if action in ("list", "prune", "digest") and not (answers or b.fake.calls_to("chat.postMessage")):
            problems.append(f"{row}: no answer")
    assert problems == []
    await b.settle()
    if only == "merge":
        assert git(b.repo, "rev-list", "--count", "--merges", "main") == "2"  # Alice's and the admin's merges
    assert b.fake.rejected == []


@pytest.mark.parametrize("action", ["task_merge", "task_discard", "task_cancel"])
async def test_buttons_and_thread_follow_ups_obey_the_same_rules(bot: Callable[..., Any], action: str) -> None:
    """A click or a thread mention is the same request as the command: same refusals, same table."""
    b: Bot = await bot(PRESETS, env=ENV, rate_limits=False)
    await b.command("spawn --preset followup click target", user=ALICE)
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    rows = [(MALLORY, CHANNEL, "user"), (BOB, CHANNEL, "owner"), (ALICE, OTHER_CHANNEL, "channel")]
    for user, channel, expected in rows:
        _, key = await b.click(action, task.id, user=user, channel=channel, message_ts=ids.review_ts)
        await b.settle()
        assert REFUSED[expected] in json.dumps(b.answers(key)), (user, channel, b.answers(key))
    for user, expected in ((MALLORY, "user"), (BOB, "owner")):
        told = len(b.fake.ephemerals)
        await b.event({"type": "app_mention", "user": user, "channel": CHANNEL, "ts": "9.9",
                       "thread_ts": ids.thread_ts, "text": "<@UBOT> do more"})
        await b.settle()
        assert any(REFUSED[expected] in (e["text"] or "") and e["user"] == user for e in b.fake.ephemerals[told:])
    now = await b.engine.get(task.id)
    assert now.state == FINISHED and now.runs == 1
    _, key = await b.click(action, task.id, user=ADMIN, message_ts=ids.review_ts)
    await b.settle()
    if action != "task_cancel":
        want = MERGED if action == "task_merge" else DISCARDED
        assert (await b.finished(task.id, {want})).closed_by == ADMIN
    else:
        assert "nothing to cancel" in json.dumps(b.answers(key)), b.answers(key)


async def test_task_actions_by_anyone_lets_allowed_users_act_but_not_strangers(bot: Callable[..., Any]) -> None:
    b: Bot = await bot(PRESETS, env={**ENV, "SUPERSET_TASK_ACTIONS_BY": "anyone"}, rate_limits=False)
    await b.command("spawn --preset edit anyone may merge", user=ALICE)
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    _, stranger = await b.command(f"merge {task.id}", user=MALLORY)
    _, prune = await b.command("prune", user=BOB)
    await b.settle()
    assert "SUPERSET_ALLOWED_USERS" in json.dumps(b.answers(stranger))
    assert "is for admins" in json.dumps(b.answers(prune)), "anyone is about tasks, not admin commands"
    assert (await b.engine.get(task.id)).state == FINISHED
    await b.command(f"merge {task.id}", user=BOB)
    merged = await b.finished(task.id, {MERGED})
    assert merged.closed_by == BOB and git(b.repo, "rev-parse", "main") == merged.merge_commit
    assert ids.review_ts and b.fake.rejected == []
