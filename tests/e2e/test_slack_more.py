"""More of the Slack front end end to end: the spawn modal, help, list/status, View diff, App Home,
access lists, mentions with channel defaults, Update from base, Cancel, a restart with a task in
flight, and Slack's retries.

Like test_slack_e2e.py: signed requests over real HTTP into the bot, the fake Slack records and
validates what the bot sends, real repos and real agent processes. Slack's pacing (about one post a
second per channel, Tier 3 updates) applies, so each scenario runs as few tasks as it can.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from conftest import git
from support.slackharness import (
    CHANNEL,
    OTHER_CHANNEL,
    SIGNING_SECRET,
    Bot,
    buttons,
    preset,
)

from superset_bot.frontends.slack.runtime import SlackBot
from superset_bot.store import CANCELLED, FINISHED, RUNNING, Task

ALICE, ADMIN, MALLORY = "U0ALICE", "U0ADMIN", "U0MALLORY"


# ------------------------------------------------------------------------------------------ helpers


async def post(b: Bot, body: str, content_type: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """A signed request like Slack's, with any extra headers; returns (status, response body)."""
    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    all_headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": content_type,
                   **(headers or {})}
    async with b.http.post(b.url, data=body.encode(), headers=all_headers) as resp:
        return resp.status, await resp.text()


def command_form(b: Bot, text: str, key: str, *, user: str = ALICE, channel: str = CHANNEL,
                 trigger_id: str = "trig-unused") -> str:
    form = {"token": "x", "team_id": "T1", "channel_id": channel, "channel_name": "tasks", "user_id": user,
            "user_name": user.lower(), "command": "/superset", "text": text, "api_app_id": "A1",
            "response_url": b.fake.response_url(key), "trigger_id": trigger_id}
    return urllib.parse.urlencode(form)


async def interactive(b: Bot, payload: dict[str, Any]) -> tuple[int, str]:
    return await post(b, urllib.parse.urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


def answer_payloads(b: Bot, key: str) -> list[dict[str, Any]]:
    return [r["payload"] for r in b.fake.responses_to_urls if r.get("key") == key]


def permalink(channel: str, ts: str) -> str:
    return f"https://fake.slack/archives/{channel}/p{ts.replace('.', '')}"


def home_of(b: Bot, user: str) -> str:
    return json.dumps(b.fake.views["home"].get(user, {}).get("blocks", []))


async def eventually(check: Callable[[], Any], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def home_click(b: Bot, user: str, viewer: str, action_id: str, task_id: str) -> dict[str, Any]:
    """A button click in App Home as Slack sends it: a view container, no channel, no response_url."""
    view = b.fake.views["home"][viewer]
    assert action_id in json.dumps(view["blocks"]), f"no {action_id} button in {viewer}'s App Home"
    return {
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1",
        "trigger_id": b.fake.new_trigger_id(), "container": {"type": "view", "view_id": view["id"]},
        "view": view, "actions": [{"action_id": action_id, "block_id": "x", "value": task_id, "type": "button",
                                   "action_ts": str(time.time())}],
    }


def modal_values(prompt: str | None, repo: str = "demo", preset_name: str = "edit") -> dict[str, Any]:
    return {
        "repo": {"repo": {"type": "static_select", "selected_option": {"value": repo}}},
        "preset": {"preset": {"type": "static_select", "selected_option": {"value": preset_name}}},
        "base": {"base": {"type": "plain_text_input", "value": None}},
        "prompt": {"prompt": {"type": "plain_text_input", "value": prompt}},
    }


# ------------------------------------------------------------------------------------------ scenarios


async def test_spawn_modal_opens_and_its_submission_starts_a_task(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    trigger = b.fake.new_trigger_id()  # Slack's trigger_id is single-use and valid for 3 s
    status, _ = await post(b, command_form(b, "spawn --preset edit", "modal", trigger_id=trigger),
                           "application/x-www-form-urlencoded")
    assert status == 200
    await b.settle()
    (opened,) = b.fake.calls_to("views.open")
    assert opened.args["trigger_id"] == trigger
    (view,) = b.fake.views["modals"].values()
    assert view["callback_id"] == "spawn_modal"
    assert json.loads(view["private_metadata"])["channel"] == CHANNEL
    assert '"value": "edit"' in json.dumps(view["blocks"]), "the modal is prefilled from the command's options"

    status, body = await interactive(b, b.fake.view_submission_payload(
        view["id"], values=modal_values("   "), user_id=ALICE))
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors" and set(answer["errors"]) == {"prompt"}
    assert await b.store.list_tasks() == []

    status, body = await interactive(b, b.fake.view_submission_payload(
        view["id"], values=modal_values("write the feature from the form"), user_id=ALICE))
    assert status == 200 and not body.strip(), "a good submission just closes the modal"
    task = await b.task_for_thread()
    assert (task.channel, task.requester, task.prompt, task.repo) == (
        CHANNEL, ALICE, "write the feature from the form", "demo")
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    assert done.state == FINISHED
    assert task.id in (b.fake.messages[(CHANNEL, ids.thread_ts)].text or "")
    assert any(e["user"] == ALICE and "Started task" in (e["text"] or "") for e in b.fake.ephemerals)
    assert b.fake.rejected == []


async def test_a_spawn_form_that_cannot_open_says_so(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    _, key = await b.command("spawn")  # the harness's trigger_id was never issued by Slack
    await b.settle()
    (answer,) = b.answers(key)
    assert "could not open the spawn form (invalid_trigger_id)" in answer and "/superset spawn" in answer
    assert len(b.fake.calls_to("views.open")) == 1, "a refused trigger is not retried"
    assert [c.method for c in b.fake.rejected] == ["views.open"]


async def test_help_lists_only_what_the_caller_may_run(bot: Callable[..., Any]) -> None:
    b: Bot = await bot(env={"SUPERSET_ADMINS": ADMIN})
    _, member = await b.command("help", user=ALICE)
    _, admin = await b.command("help", user=ADMIN)
    _, refused = await b.command("prune", user=ALICE)
    await b.settle()
    (mine,) = answer_payloads(b, member)
    (theirs,) = answer_payloads(b, admin)
    assert mine["response_type"] == "ephemeral"
    listed = mine["text"].split(": ", 1)[1].split(", ")
    assert "spawn" in listed and "list" in listed
    assert "prune" not in listed and "digest" not in listed
    assert "/superset prune" not in json.dumps(mine["blocks"])
    listed = theirs["text"].split(": ", 1)[1].split(", ")
    assert "prune" in listed and "digest" in listed
    assert "is for admins" in b.answers(refused)[0]
    assert b.fake.rejected == []


async def test_list_status_and_app_home_show_the_task_with_thread_links(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    assert b.slack.frontend is not None
    b.slack.frontend.home_refresh_every = 1.0  # the production throttle is 10 s; the logic is the same
    assert await b.event({"type": "app_home_opened", "user": ALICE, "channel": "D0ALICE", "tab": "home"}) == 200
    await b.settle()
    assert "You have no tasks" in home_of(b, ALICE)
    published_before = len(b.fake.calls_to("views.publish"))

    started = time.monotonic()
    await b.command("spawn --repo demo list me")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    link = permalink(CHANNEL, ids.thread_ts)

    # App Home follows the state changes, at most once per throttle period
    await eventually(lambda: task.id in home_of(b, ALICE) and "finished" in home_of(b, ALICE), what="home refresh")
    assert link in home_of(b, ALICE)
    refreshes = len(b.fake.calls_to("views.publish")) - published_before
    assert 1 <= refreshes <= (time.monotonic() - started) / 1.0 + 1, refreshes

    _, listed = await b.command("list")
    _, status = await b.command(f"status {task.id}")
    await b.settle()
    (answer,) = answer_payloads(b, listed)
    assert answer["response_type"] == "ephemeral"
    assert task.id in json.dumps(answer["blocks"]) and "finished" in json.dumps(answer["blocks"])
    assert f"<{link}|thread>" in json.dumps(answer["blocks"])
    # someone else, in another channel, does not see this channel's prompts
    _, elsewhere = await b.command("list", user=MALLORY, channel=OTHER_CHANNEL)
    await b.settle()
    (answer,) = answer_payloads(b, elsewhere)
    assert task.id not in json.dumps(answer["blocks"])
    (answer,) = answer_payloads(b, status)
    assert answer["response_type"] == "ephemeral"
    blocks = json.dumps(answer["blocks"])
    assert task.id in blocks and "finished" in blocks and link in blocks and "list me" in blocks
    assert b.fake.rejected == []


async def test_view_diff_uploads_the_patch_into_the_thread(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    await b.command("spawn make a diff")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    review = b.fake.messages[(CHANNEL, ids.review_ts)]
    assert "task_diff" in buttons(review)
    # Slack is busy for each of the upload's steps once: the diff waits, it is not lost
    b.fake.fail_next("files.getUploadURLExternal", status=429)
    b.fake.fail_next("files.completeUploadExternal", status=503)
    status, _ = await b.click("task_diff", task.id, message_ts=ids.review_ts)
    assert status == 200
    await b.settle()
    assert [c.status for c in b.fake.calls_to("files.getUploadURLExternal")] == [429, 200]
    (upload,) = b.fake.files
    assert upload["snippet_type"] == "diff" and upload["filename"].endswith(".diff")
    assert upload["thread_ts"] == ids.thread_ts and upload["channels"] == [CHANNEL]
    assert "src/feature.py" in upload["text"] and "+VALUE = 1" in upload["text"]
    in_thread = [m for m in b.fake.thread(CHANNEL, ids.thread_ts) if m.files]
    assert len(in_thread) == 1 and ALICE in (in_thread[0].text or "")
    assert b.fake.rejected == []


async def test_allowed_users_and_channels_refuse_with_the_reason(bot: Callable[..., Any]) -> None:
    b: Bot = await bot(env={"SUPERSET_ALLOWED_USERS": ALICE, "SUPERSET_ALLOWED_CHANNELS": CHANNEL})
    _, stranger = await b.command("spawn let me in", user=MALLORY)
    _, elsewhere = await b.command("spawn over there", user=ALICE, channel=OTHER_CHANNEL)
    _, click = await b.click("task_merge", "abcdef", user=MALLORY)
    await b.event({"type": "app_mention", "user": MALLORY, "channel": CHANNEL, "ts": "5.1",
                   "text": "<@UBOT> do it anyway"})
    await b.settle()
    for key in (stranger, click):
        (answer,) = answer_payloads(b, key)
        assert answer["response_type"] == "ephemeral" and "SUPERSET_ALLOWED_USERS" in answer["text"]
    (answer,) = answer_payloads(b, elsewhere)
    assert answer["response_type"] == "ephemeral"
    assert f"<#{CHANNEL}>" in answer["text"] and "SUPERSET_ALLOWED_CHANNELS" in answer["text"]
    (told,) = [e for e in b.fake.ephemerals if "via" not in e]  # chat.postEphemeral, for the mention
    assert told["user"] == MALLORY and "SUPERSET_ALLOWED_USERS" in told["text"]
    assert await b.store.list_tasks() == []
    assert b.fake.calls_to("chat.postMessage") == []
    assert b.fake.rejected == []


async def test_top_level_mention_spawns_with_channel_defaults_and_retries_are_dropped(
        bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"edit": preset("edit"), "notes": preset("followup")},
                       env={"SUPERSET_CHANNEL_DEFAULTS": f"{CHANNEL}=preset:notes"})
    mention = {"type": "app_mention", "user": ALICE, "channel": CHANNEL, "ts": "7.1",
               "text": "<@UBOT> --repo demo ask <@U0BOB> about the notes"}
    assert await b.event(mention, event_id="EvTop") == 200
    task = await b.task_for_thread()
    # Slack redelivers an event it thinks was not acked: same event_id, X-Slack-Retry-Num set
    body = json.dumps({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                       "event_id": "EvTop", "event_time": int(time.time()), "event": mention})
    status, _ = await post(b, body, "application/json",
                           {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert status == 200
    assert (task.preset, task.repo, task.requester) == ("notes", "demo", ALICE), "the channel's default preset"
    assert task.prompt == "ask <@U0BOB> about the notes", "only the bot's own mention is taken out"

    await b.event({**mention, "ts": "7.2", "text": "<@UBOT> preset=edit add the feature"}, event_id="EvExplicit")
    await eventually(lambda: len(b.fake.channel_messages(CHANNEL)) == 2, what="the second task's root message")
    # the root message is posted before its task is stored (the task records the message's ts)
    await eventually(lambda: len([e for e in b.fake.ephemerals if "Started task" in (e["text"] or "")]) == 2,
                     what="both confirmations")
    tasks = await b.store.list_tasks(newest_first=True)
    assert len(tasks) == 2, "the retried event started no second task"
    assert tasks[0].preset == "edit", "an explicit option wins over the channel default"
    for t in tasks:
        assert (await b.finished(t.id)).state == FINISHED
    assert len(await b.store.list_tasks()) == 2 and len(b.fake.channel_messages(CHANNEL)) == 2
    started = [e for e in b.fake.ephemerals if "Started task" in (e["text"] or "") and "via" not in e]
    assert len(started) == 2 and all(e["user"] == ALICE for e in started)
    assert b.fake.rejected == []


async def test_a_retried_slash_command_is_answered_twice_and_harmless(bot: Callable[..., Any]) -> None:
    """Slack never retries a slash command (a slow ack shows the person `operation_timeout` instead),
    and a command carries no event_id to dedupe on: the same request arriving twice is run twice.
    That is safe for read-only commands; a repeated spawn starts a second task, as retyping it would."""
    b: Bot = await bot()
    form = command_form(b, "list", "twice")
    first, _ = await post(b, form, "application/x-www-form-urlencoded")
    again, _ = await post(b, form, "application/x-www-form-urlencoded", {"X-Slack-Retry-Num": "1"})
    await b.settle()
    assert first == again == 200
    answers = answer_payloads(b, "twice")
    assert len(answers) == 2 and all("No tasks running" in json.dumps(a) for a in answers)
    assert await b.store.list_tasks() == []
    assert b.fake.rejected == []


async def test_update_from_base_hands_conflicts_to_the_agent(bot: Callable[..., Any]) -> None:
    # The preset's setup commits a different shared.txt on main once the task's worktree exists, so
    # the agent's own change to shared.txt conflicts with the new base by the time it is reviewed.
    on_main = ('printf "main version\\n" > "$SUPERSET_ROOT_PATH/shared.txt" && '
               'git -C "$SUPERSET_ROOT_PATH" commit -qam "main changes shared.txt"')
    b: Bot = await bot({"conflict": {**preset("conflict", CONFLICT_FILE="shared.txt"), "setup": [on_main]}})
    await b.command("spawn change the shared file")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    assert git(b.repo, "show", "main:shared.txt") == "main version"
    review = b.fake.messages[(CHANNEL, ids.review_ts)]
    actions = buttons(review)
    assert "task_update_base" in actions and "task_merge" not in actions
    assert "shared.txt" in json.dumps(review.blocks)

    status, _ = await b.click("task_update_base", task.id, message_ts=ids.review_ts)
    assert status == 200
    await b.engine.wait_for(task.id, {RUNNING}, timeout=30)
    again = await b.finished(task.id)
    assert again.runs == 2, "the conflict went to the agent as a follow-up run"
    assert b.thread_of(again).review_ts != ids.review_ts
    assert "task_merge" in buttons(b.fake.messages[(CHANNEL, b.thread_of(again).review_ts)]), "resolved: Merge is back"
    old = b.fake.messages[(CHANNEL, ids.review_ts)]
    assert buttons(old) == {} and "Superseded" in json.dumps(old.blocks), "the old review is closed"
    assert "Conflicts with" in json.dumps(old.blocks) and "Merges cleanly" not in json.dumps(old.blocks), \
        "a superseded review keeps showing what it said, not the newer review's summary"
    thread = json.dumps([m.text for m in b.fake.thread(CHANNEL, ids.thread_ts)])
    assert "conflicts in: shared.txt" in thread
    assert git(b.repo, "merge-base", "--is-ancestor", "main", again.branch) == ""
    assert b.fake.rejected == []


async def test_cancel_button_in_app_home_stops_a_running_task(bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"sleepy": preset("sleep")}, env={"SUPERSET_ADMINS": ADMIN})  # Mallory is no admin
    await b.command("spawn take your time")
    task = await b.task_for_thread()
    await b.engine.wait_for(task.id, {RUNNING}, timeout=30)
    for user in (ALICE, MALLORY):
        await b.event({"type": "app_home_opened", "user": user, "channel": "D0X", "tab": "home"})
    await b.settle()

    home = b.fake.views["home"]
    assert task.id not in json.dumps(home[MALLORY]["blocks"]), "someone else's task: `list` would not show it there"
    assert task.id in json.dumps(home[ALICE]["blocks"]), "her own task is listed, with its Cancel button"
    click = home_click(b, ALICE, ALICE, "task_cancel", task.id)
    status, _ = await interactive(b, click)
    assert status == 200
    done = await b.finished(task.id, {CANCELLED})
    ids = b.thread_of(done)
    assert done.state == CANCELLED and done.reason and "U0ALICE" in done.reason
    thread = b.fake.thread(CHANNEL, ids.thread_ts)
    assert any("cancelled" in (m.text or "").lower() for m in thread[1:]), "a thread reply says it was cancelled"
    assert "cancelled" in json.dumps(b.fake.messages[(CHANNEL, ids.thread_ts)].blocks)
    assert "no_entry_sign" in b.fake.messages[(CHANNEL, ids.thread_ts)].reactions

    # a second click on the now stale App Home: App Home clicks carry no response_url, so the answer
    # goes to the app's DM with the person
    status, _ = await interactive(b, click)
    assert status == 200
    await b.settle()
    (told,) = b.fake.channel_messages("D0ALICE")
    assert "nothing to cancel" in (told.text or "")
    assert (await b.engine.get(task.id)).state == CANCELLED
    assert b.fake.rejected == []


async def running_task(b: Bot) -> Task:
    """A task spawned from Slack whose agent runs until it is stopped, with its card up."""
    await b.command("spawn take your time")
    task = await b.task_for_thread()
    await b.engine.wait_for(task.id, {RUNNING}, timeout=30)
    await b.settle()
    return task


async def test_a_restarted_front_end_goes_on_in_the_threads_of_tasks_in_flight(bot: Callable[..., Any]) -> None:
    """The Slack ids come back from the store: a task running across a restart ends in its own thread."""
    b: Bot = await bot({"sleepy": preset("sleep")})
    task = await running_task(b)
    before = b.thread_of(task)
    assert b.fake.messages[(CHANNEL, before.thread_ts)].reactions == {"runner"}
    await b.slack.stop()
    b.slack = SlackBot(b.settings, b.engine, http=True, host="127.0.0.1", port=0)
    await b.slack.start()
    assert b.thread_of(task) == before
    await b.command(f"cancel {task.id}")
    await b.finished(task.id, {CANCELLED})
    thread = b.fake.thread(CHANNEL, before.thread_ts)
    assert "cancelled" in json.dumps(b.fake.messages[(CHANNEL, before.thread_ts)].blocks), "the same card, updated"
    assert any("cancelled" in (m.text or "").lower() for m in thread[1:]), "a thread reply says it was cancelled"
    await b.settle()
    # the reaction the first front end put on the root is known after the restart: replaced, not joined
    assert b.fake.messages[(CHANNEL, before.thread_ts)].reactions == {"no_entry_sign"}
    assert b.fake.rejected == []


async def test_a_locked_database_gets_a_readable_answer_and_no_stale_root_message(bot: Callable[..., Any]) -> None:
    import sqlite3

    # the bot waits 30 s for a lock by default; this test does not want to wait that long
    b = await bot(busy_timeout=0.3)
    other = sqlite3.connect(b.settings.db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a sqlite3 shell left open by someone, say
    try:
        status, key = await b.command("spawn blocked by a lock")
        assert status == 200
        await b.settle()
    finally:
        other.execute("ROLLBACK")
        other.close()
    answer = " ".join(b.answers(key))
    assert "locked by another process" in answer and "unexpectedly" not in answer
    root = b.fake.channel_messages(CHANNEL)[-1]
    assert "was not started" in root.text, "the root message says what happened instead of 'queued'"
    assert await b.store.list_tasks() == []

    status, key = await b.command("spawn after the lock")
    task = await b.task_for_thread()
    assert (await b.finished(task.id)).state == FINISHED


async def test_the_first_request_is_not_lost_when_slack_answers_auth_test_with_500(bot: Callable[..., Any]) -> None:
    b = await bot()
    b.fake.fail_next("auth.test", 5, status=500)  # the bot asked at start; nobody may need to ask again
    status, _key = await b.command("spawn the very first request")
    assert status == 200
    task = await b.task_for_thread()
    assert (await b.finished(task.id)).state == FINISHED


async def test_the_root_message_is_the_live_card_and_its_cancel_button_stops_the_task(
        bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"sleepy": preset("sleep")}, env={"SUPERSET_ADMINS": ADMIN})
    task = await running_task(b)
    ids = b.thread_of(task)
    root = b.fake.messages[(CHANNEL, ids.thread_ts)]
    assert "*Running*" in json.dumps(root.blocks) and buttons(root)["task_cancel"]["value"] == task.id
    replies = b.fake.thread(CHANNEL, ids.thread_ts)[1:]
    assert ids.status_ts is None and not any("*Running*" in json.dumps(m.blocks) for m in replies), "no second card"

    status, _ = await b.click("task_cancel", task.id, user=MALLORY, message_ts=ids.thread_ts)
    assert status == 200
    await b.settle()
    assert (await b.engine.get(task.id)).state == RUNNING, "someone else's task is not theirs to cancel"
    status, _ = await b.click("task_cancel", task.id, message_ts=ids.thread_ts)
    assert status == 200
    await b.finished(task.id, {CANCELLED})
    await b.settle()
    root = b.fake.messages[(CHANNEL, ids.thread_ts)]
    assert "Cancelled" in json.dumps(root.blocks) and "task_cancel" not in json.dumps(root.blocks)
    assert f"<@{ALICE}>" in json.dumps(root.blocks), "the card names who cancelled it as a mention"
    assert b.fake.rejected == []


async def test_a_status_card_from_an_older_release_is_told_once_where_the_state_went(
        bot: Callable[..., Any]) -> None:
    b: Bot = await bot({"sleepy": preset("sleep")})
    task = await running_task(b)
    ids = b.thread_of(task)
    assert b.slack.frontend and b.slack.outbox
    old = await b.slack.outbox.post(CHANNEL, "Task running (old card)", thread_ts=ids.thread_ts)
    await b.slack.frontend.messages.set_status(task.id, old)  # as an older release left it
    await b.slack.stop()
    b.slack = SlackBot(b.settings, b.engine, http=True, host="127.0.0.1", port=0)
    await b.slack.start()
    await b.command(f"cancel {task.id}")
    await b.finished(task.id, {CANCELLED})
    await b.settle()
    assert "first message" in b.fake.messages[(CHANNEL, old)].text
    assert b.thread_of(task).status_ts is None
    assert "Cancelled" in json.dumps(b.fake.messages[(CHANNEL, ids.thread_ts)].blocks)
    assert b.fake.rejected == []
