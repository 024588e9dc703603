"""Hostile and random Slack payloads over real HTTP: commands, modal submissions, button clicks,
malformed, oversized and replayed requests.

Hypothesis generates the inputs in a worker thread and each example is sent, signed, to one running
bot on the test's event loop (starting a bot per example would be far too slow). Whatever comes in,
no exception may escape into the bot's log, Slack gets a 200 or a clean 4xx, and every answer a
person sees is a readable sentence, never a stack trace or "internal error".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from conftest import git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.slackharness import (
    CHANNEL,
    OTHER_CHANNEL,
    OUTSIDE_CHANNEL,
    SIGNING_SECRET,
    Bot,
)

from superset_bot.frontends.slack import blocks as ui
from superset_bot.store import DISCARDED, FINISHED, MERGED

ALICE = "U0ALICE"
UNREADABLE = ("Traceback", 'File "/', "internal error", "failed unexpectedly", "log has the details",
              "Exception", "NoneType", "KeyError", "AttributeError")


# ------------------------------------------------------------------------------------------ helpers


def fuzz(max_examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Hypothesis settings for examples that each cost an HTTP round trip into a live bot."""
    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on the bot's loop from hypothesis' worker thread and wait for its result."""
    def drive(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=90)
    return drive


def logged_errors(caplog: pytest.LogCaptureFixture, since: int = 0) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records[since:]
            if r.levelno >= logging.ERROR or r.exc_info]


def texts_of(payload: Any) -> str:
    """Every string a person could read in a message or view payload, joined."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for key, inner in value.items():
                if key not in ("action_id", "block_id", "value", "type", "style", "url"):
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(payload)
    return "\n".join(found)


def assert_readable(payload: Any, context: Any) -> None:
    text = texts_of(payload)
    assert text.strip(), f"an empty answer for {context!r}"
    for fragment in UNREADABLE:
        assert fragment not in text, f"{fragment!r} shown to a person for {context!r}: {text[:500]}"


async def signed(b: Bot, body: str | bytes, content_type: str, *, timestamp: str | None = None,
                 signature: str | None = None, extra: dict[str, str] | None = None) -> tuple[int, str]:
    raw = body.encode() if isinstance(body, str) else body
    ts = timestamp if timestamp is not None else str(int(time.time()))
    if signature is None:
        base = b"v0:" + ts.encode() + b":" + raw
        signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": content_type,
               **(extra or {})}
    async with b.http.post(b.url, data=raw, headers=headers) as resp:
        return resp.status, await resp.text()


def as_form(payload: Any) -> str:
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def clean_status(status: int) -> bool:
    return status == 200 or 400 <= status < 500


async def bot_still_answers(b: Bot) -> None:
    status, key = await b.command("help")
    await b.settle()
    assert status == 200 and b.answers(key), "the bot stopped answering"


def rejected_except_triggers(b: Bot) -> list[Any]:
    """Calls Slack refused, leaving out views.open with a trigger_id Slack never issued (the harness's)."""
    return [c for c in b.fake.rejected
            if not (c.method == "views.open" and c.response.get("error") == "invalid_trigger_id")]


# ------------------------------------------------------------------------------------------ strategies

ODD = st.sampled_from([
    "", " ", "..", "../../etc/passwd", "/etc/passwd", "-x", "--", "--help", "refs/heads/main", "main..x",
    "main", "demo", "edit", "ümlaut", "a b", "x" * 300, "$(touch /tmp/pwn)", "`id`", ";rm -rf /", "<!channel>",
    "<@U123>", "\u202eevil", "\x00", "\t", "{prompt}", "HEAD", "@{-1}", "main.lock", "é/../x", "*",
])
WORD = st.one_of(ODD, st.text(max_size=15))
COMMAND_NAMES = st.sampled_from(["spawn", "list", "status", "diff", "merge", "discard", "cancel", "followup",
                                 "presets", "repos", "prune", "digest", "help", "SPAWN", "Status", "nope"])
OPTION = st.one_of(
    st.tuples(st.sampled_from(["--repo", "--preset", "--base", "--bogus", "-", "--"]), WORD).map(" ".join),
    st.tuples(st.sampled_from(["repo=", "preset=", "base=", "--repo=", "--base=", "REPO="]), WORD).map("".join),
)
COMMAND_TEXT = st.one_of(
    st.text(max_size=200),
    st.tuples(COMMAND_NAMES, st.lists(WORD, max_size=4)).map(lambda t: " ".join([t[0], *t[1]])),
    st.tuples(st.just("spawn"), st.lists(OPTION, max_size=3), st.lists(WORD, max_size=3))
      .map(lambda t: " ".join(["spawn", *t[1], *t[2]])),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | ODD,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
MAYBE = st.one_of(ODD, JSONISH)


# ------------------------------------------------------------------------------------------ fuzzing


async def test_fuzzed_commands_get_readable_answers(bot: Callable[..., Any],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Any command text: the parser, the options and the engine's checks answer in words.

    Spawns that pass every check would start tasks, so free disk is set out of reach: each such
    spawn gets the disk refusal, itself a readable answer, and nothing is created.
    """
    b: Bot = await bot(env={"SUPERSET_MIN_FREE_DISK": "900000T"}, rate_limits=False)
    drive = on_loop(asyncio.get_running_loop())
    seen: list[str] = []

    async def check(text: str) -> None:
        since = len(caplog.records)
        status, key = await b.command(text)
        await b.settle()
        assert status == 200, (text, status)
        answers = [r["payload"] for r in b.fake.responses_to_urls if r.get("key") == key]
        if not text.strip().lower().startswith("digest"):
            assert answers, f"no answer to {text!r}"
        for answer in answers:
            assert answer.get("response_type") == "ephemeral", (text, answer)
            assert_readable(answer, text)
        assert logged_errors(caplog, since) == [], text
        seen.append(text)

    @fuzz(60)
    @given(COMMAND_TEXT)
    def run(text: str) -> None:
        drive(check(text))

    await asyncio.to_thread(run)
    assert len(seen) >= 30
    assert await b.store.list_tasks() == [], "no fuzzed command may start a task while disk is short"
    assert git(b.repo, "branch", "--list", "superset/*") == ""
    assert rejected_except_triggers(b) == [], [c.response for c in rejected_except_triggers(b)]


async def test_fuzzed_spawn_options_create_nothing_unless_valid(bot: Callable[..., Any],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Odd --repo/--preset/--base values reach git only as checked names; a task exists only for a
    real repo, preset and branch, and every refusal says what was wrong."""
    b: Bot = await bot(rate_limits=False)
    drive = on_loop(asyncio.get_running_loop())
    started: list[str] = []

    async def check(options: list[tuple[str, str]], prompt: str) -> None:
        since = len(caplog.records)
        before = {t.id for t in await b.store.list_tasks()}
        text = " ".join(["spawn", *(f"--{k} {v}" if " " not in v else f"{k}={v}" for k, v in options), "--",
                         prompt])
        status, key = await b.command(text)
        await b.settle()
        assert status == 200
        answers = [r["payload"] for r in b.fake.responses_to_urls if r.get("key") == key]
        assert answers, f"no answer to {text!r}"
        for answer in answers:
            assert_readable(answer, text)
        new = [t for t in await b.store.list_tasks() if t.id not in before]
        if any("Started task" in (a.get("text") or "") for a in answers):
            (task,) = new
            assert task.repo == "demo" and task.preset == "edit" and task.base_branch in (None, "main")
            started.append(task.id)
        else:
            assert new == [], f"{text!r} was refused but created {new}"
        assert logged_errors(caplog, since) == [], text

    values = st.one_of(ODD, st.text(min_size=1, max_size=12).filter(lambda v: not v.startswith("--")))
    option = st.tuples(st.sampled_from(["repo", "preset", "base"]), values)

    @fuzz(30)
    @given(st.lists(option, max_size=3, unique_by=lambda o: o[0]), st.sampled_from(["fix it", "add a test"]))
    def run(options: list[tuple[str, str]], prompt: str) -> None:
        drive(check(options, prompt))

    await asyncio.to_thread(run)
    for task_id in started:
        await b.finished(task_id)
    branches = git(b.repo, "branch", "--list", "--format=%(refname:short)").split()
    assert sorted(branches) == sorted(["main", *[t.branch for t in await b.store.list_tasks() if t.branch]])
    for task in await b.store.list_tasks():
        root = b.fake.messages[(CHANNEL, b.thread_of(task).thread_ts)]
        assert task.id in (root.text or "")
    # a refused spawn's root message (if one was posted) says so instead of looking queued
    roots = [m for m in b.fake.channel_messages(CHANNEL) if m.thread_ts in (None, m.ts)]
    known = {b.thread_of(t).thread_ts for t in await b.store.list_tasks()}
    for root in roots:
        if root.ts not in known:
            assert "was not started" in (root.text or ""), root.text
    assert rejected_except_triggers(b) == []


def modal_view(values: Any, metadata: Any, callback_id: str = ui.SPAWN_CALLBACK) -> dict[str, Any]:
    view: dict[str, Any] = {"id": "V1", "type": "modal", "callback_id": callback_id, "state": {"values": values}}
    if metadata is not None:
        view["private_metadata"] = metadata
    return view


def submitted(block: str, action: str, kind: str, value: Any) -> dict[str, Any]:
    field = {"type": kind, "selected_option": {"value": value}} if kind == "static_select" else \
        {"type": kind, "value": value}
    return {block: {action: field}}


MODAL_FIELD = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["repo", "preset", "base", "prompt", "other"]),
              st.sampled_from(["repo", "preset", "base", "prompt", "x"]),
              st.sampled_from(["static_select", "plain_text_input"]), MAYBE),
)
MODAL_VALUES = st.one_of(
    st.lists(MODAL_FIELD, max_size=5).map(
        lambda fields: {k: v for f in fields if f is not None for k, v in submitted(*f).items()}),
    JSONISH,
)
METADATA = st.one_of(st.none(), st.text(max_size=30),
                     st.sampled_from([CHANNEL, OTHER_CHANNEL, OUTSIDE_CHANNEL, "", "C0NOPE", None, 5, [CHANNEL]])
                       .map(lambda c: json.dumps({"channel": c})),
                     JSONISH.map(json.dumps))


async def test_fuzzed_modal_submissions(bot: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    b: Bot = await bot(env={"SUPERSET_MIN_FREE_DISK": "900000T"}, rate_limits=False)
    drive = on_loop(asyncio.get_running_loop())

    async def check(values: Any, metadata: Any, user: Any) -> None:
        since, told = len(caplog.records), len(b.fake.ephemerals)
        payload: dict[str, Any] = {"type": "view_submission", "team": {"id": "T1"}, "api_app_id": "A1",
                                   "trigger_id": "t", "view": modal_view(values, metadata)}
        if user is not None:
            payload["user"] = user
        status, body = await signed(b, as_form(payload), "application/x-www-form-urlencoded")
        await b.settle()
        assert clean_status(status), (payload, status, body)
        if body.strip():
            answer = json.loads(body)
            assert answer["response_action"] == "errors", answer
            assert answer["errors"] and all(isinstance(v, str) and v for v in answer["errors"].values())
            assert_readable(answer["errors"], payload)
        for ephemeral in b.fake.ephemerals[told:]:
            assert_readable({"text": ephemeral["text"], "blocks": ephemeral["blocks"]}, payload)
        assert logged_errors(caplog, since) == [], payload

    users = st.one_of(st.none(), st.just({"id": ALICE}), st.builds(lambda v: {"id": v}, MAYBE), JSONISH)

    @fuzz(50)
    @given(MODAL_VALUES, METADATA, users)
    def run(values: Any, metadata: Any, user: Any) -> None:
        drive(check(values, metadata, user))

    await asyncio.to_thread(run)
    assert await b.store.list_tasks() == []
    assert rejected_except_triggers(b) == []


async def test_fuzzed_button_clicks(bot: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    """Clicks with any action id and any value (missing, not a string, another task's, a real one)."""
    b: Bot = await bot(env={"SUPERSET_ADMINS": "U0ADMIN"}, rate_limits=False)
    await b.command("spawn something to click on")
    real = await b.task_for_thread()
    done = await b.finished(real.id)
    ids = b.thread_of(done)
    assert done.state == FINISHED
    drive = on_loop(asyncio.get_running_loop())
    counter = [0]

    async def check(action: Any, user: Any, channel: Any, with_url: bool) -> None:
        since, dms = len(caplog.records), len(b.fake.calls_to("chat.postMessage"))
        counter[0] += 1
        key = f"fuzzclick{counter[0]}"
        payload: dict[str, Any] = {"type": "block_actions", "team": {"id": "T1"}, "api_app_id": "A1",
                                   "trigger_id": "t", "actions": action}
        if user is not None:
            payload["user"] = user
        if channel is not None:
            payload["channel"] = channel
            payload["container"] = {"type": "message", "channel_id": channel.get("id") if isinstance(
                channel, dict) else channel, "message_ts": ids.review_ts}
        if with_url:
            payload["response_url"] = b.fake.response_url(key)
        status, body = await signed(b, as_form(payload), "application/x-www-form-urlencoded")
        await b.settle()
        assert clean_status(status), (payload, status, body)
        for answer in [r["payload"] for r in b.fake.responses_to_urls if r.get("key") == key]:
            assert_readable(answer, payload)
        for call in b.fake.calls_to("chat.postMessage")[dms:]:
            if str(call.args.get("channel", "")).startswith(("U", "D")):  # an App Home answer in the DM
                assert_readable({"text": call.args.get("text"), "blocks": call.args.get("blocks")}, payload)
        assert logged_errors(caplog, since) == [], payload

    action_ids = st.one_of(st.sampled_from([*ui.ACTIONS]), st.text(max_size=10), st.none())
    values = st.one_of(st.just(real.id), st.just(real.id.upper()), st.just("abcdef"), MAYBE)
    one_action = st.fixed_dictionaries({}, optional={"action_id": action_ids, "value": values,
                                                     "block_id": st.text(max_size=5), "type": st.just("button")})
    actions = st.one_of(st.lists(one_action, min_size=1, max_size=2), st.just([]), JSONISH)
    users = st.one_of(st.sampled_from([{"id": ALICE}, {"id": "U0MALLORY"}, {"id": "U0ADMIN"}]), st.none(),
                      st.builds(lambda v: {"id": v}, MAYBE), JSONISH)
    channels = st.one_of(st.sampled_from([{"id": CHANNEL}, {"id": OTHER_CHANNEL}, {"id": OUTSIDE_CHANNEL}]),
                         st.none(), st.builds(lambda v: {"id": v}, MAYBE))

    @fuzz(60)
    @given(actions, users, channels, st.booleans())
    def run(action: Any, user: Any, channel: Any, with_url: bool) -> None:
        drive(check(action, user, channel, with_url))

    await asyncio.to_thread(run)
    final = await b.engine.get(real.id)
    assert final.state in (FINISHED, MERGED, DISCARDED)
    merges = int(git(b.repo, "rev-list", "--count", "--merges", "main") or 0)
    assert merges <= 1
    await bot_still_answers(b)


# ------------------------------------------------------------------------------------------ malformed


MALFORMED_FORMS = [
    "payload=%7Bnot+json",                                    # invalid JSON in payload
    "payload=",                                               # empty payload
    "payload=null",
    "payload=%5B1%2C2%5D",                                    # a JSON list
    "payload=" + urllib.parse.quote(json.dumps({})),          # no type at all
    "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions"})),  # no actions, user, channel
    "payload=" + urllib.parse.quote(json.dumps({"type": "view_submission"})),  # no view
    "payload=" + urllib.parse.quote(json.dumps({"type": "view_submission", "view": "x"})),
    "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions", "actions": "merge",
                                                "user": "U0ALICE"})),
    "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions", "user": True,
                                                "actions": [{"action_id": "task_merge", "value": "x"}]})),
    "command=%2Fsuperset",                                    # a command without user, channel, text
    "command=%2Fsuperset&text=list&user_id=&channel_id=",
    "%%%&&==",
    "",
]
MALFORMED_JSON = [
    "{not json",
    "[]",
    "null",
    json.dumps({"type": "event_callback"}),                   # no event
    json.dumps({"type": "event_callback", "event_id": "EvX", "event": "mention"}),
    json.dumps({"type": "event_callback", "event_id": "EvY", "event": {"type": "app_mention"}}),
    json.dumps({"type": "event_callback", "event_id": "EvZ",
                "event": {"type": "app_mention", "user": ALICE, "channel": CHANNEL, "text": 5}}),
    json.dumps({"type": "event_callback", "event_id": "EvW",
                "event": {"type": "app_mention", "user": ALICE, "channel": CHANNEL, "text": None}}),
    json.dumps({"type": "event_callback", "event_id": "EvV", "user": True, "event": {"type": "app_mention"}}),
    json.dumps({"type": "url_verification", "challenge": "abc"}),
]


async def test_malformed_payloads_are_refused_cleanly(bot: Callable[..., Any],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    b: Bot = await bot()
    failures = []
    for body in MALFORMED_FORMS:
        status, text = await signed(b, body, "application/x-www-form-urlencoded")
        await b.settle()
        if not clean_status(status) or "Traceback" in text:
            failures.append((body, status, text[:200]))
    for body in MALFORMED_JSON:
        status, text = await signed(b, body, "application/json")
        await b.settle()
        if not clean_status(status) or "Traceback" in text:
            failures.append((body, status, text[:200]))
    status, text = await signed(b, b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded")
    if not clean_status(status):
        failures.append(("binary", status, text[:200]))
    await b.settle()
    assert failures == []
    assert logged_errors(caplog) == []
    assert await b.store.list_tasks() == []
    await bot_still_answers(b)


async def test_bad_signature_headers_are_401(bot: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    b: Bot = await bot()
    form = urllib.parse.urlencode({"command": "/superset", "text": "spawn do it", "user_id": ALICE,
                                   "channel_id": CHANNEL, "response_url": b.fake.response_url("never")})
    now = int(time.time())
    cases = {
        "old timestamp": {"timestamp": str(now - 301)},
        "future timestamp": {"timestamp": str(now + 600)},
        "non-numeric timestamp": {"timestamp": "yesterday"},
        "empty timestamp": {"timestamp": ""},
        "no signature": {"signature": ""},
        "wrong version": {"signature": "v1=" + "0" * 64},
        "garbage signature": {"signature": "v0=zz"},
    }
    statuses = {name: (await signed(b, form, "application/x-www-form-urlencoded", **kw))[0]  # type: ignore[arg-type]
                for name, kw in cases.items()}
    async with b.http.post(b.url, data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        statuses["no headers"] = r.status
    await b.settle()
    assert statuses == dict.fromkeys(statuses, 401)
    assert b.answers("never") == [] and await b.store.list_tasks() == []
    assert logged_errors(caplog) == []


async def test_a_replayed_request_older_than_five_minutes_is_401(bot: Callable[..., Any]) -> None:
    """An attacker who captured a real signed request cannot send it again later."""
    b: Bot = await bot()
    form = urllib.parse.urlencode({"command": "/superset", "text": "spawn replayed", "user_id": ALICE,
                                   "channel_id": CHANNEL, "response_url": b.fake.response_url("replay"),
                                   "trigger_id": "t"})
    captured_at = str(int(time.time()) - 6 * 60)
    base = f"v0:{captured_at}:{form}".encode()
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    status, _ = await signed(b, form, "application/x-www-form-urlencoded", timestamp=captured_at,
                             signature=signature)
    assert status == 401
    await b.settle()
    assert b.answers("replay") == [] and await b.store.list_tasks() == []
    assert b.fake.calls_to("chat.postMessage") == []


async def test_huge_bodies_are_refused_and_the_bot_goes_on(bot: Callable[..., Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    b: Bot = await bot()
    huge_text = "x" * (5 * 1024 * 1024)
    form = urllib.parse.urlencode({"command": "/superset", "text": "spawn " + huge_text, "user_id": ALICE,
                                   "channel_id": CHANNEL, "response_url": b.fake.response_url("huge")})
    status, _ = await signed(b, form, "application/x-www-form-urlencoded")
    assert 400 <= status < 500, status
    payload = as_form({"type": "block_actions", "user": {"id": ALICE}, "actions": [{"action_id": "task_merge",
                                                                                   "value": huge_text}]})
    status, _ = await signed(b, payload, "application/x-www-form-urlencoded")
    assert 400 <= status < 500, status
    status, _ = await signed(b, json.dumps({"type": "event_callback", "event_id": "EvHuge",
                                            "event": {"type": "app_mention", "text": huge_text}}),
                             "application/json")
    assert 400 <= status < 500, status
    await b.settle()
    assert b.answers("huge") == [] and await b.store.list_tasks() == []
    assert logged_errors(caplog) == []
    await bot_still_answers(b)


# ------------------------------------------------------------------------------------------ replays


async def test_a_replayed_mention_event_starts_one_task(bot: Callable[..., Any]) -> None:
    """Slack (or anyone replaying within 5 minutes) sends the same event_id several times at once."""
    b: Bot = await bot()
    mention = {"type": "app_mention", "user": ALICE, "channel": CHANNEL, "ts": "8.1",
               "text": "<@UBOT> replay me"}
    body = json.dumps({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                       "event_id": "EvReplay", "event_time": int(time.time()), "event": mention})
    statuses = await asyncio.gather(*(signed(b, body, "application/json",
                                             extra={"X-Slack-Retry-Num": str(i)} if i else None)
                                      for i in range(5)))
    assert [s for s, _ in statuses] == [200] * 5
    task = await b.task_for_thread()
    await b.finished(task.id)
    assert [t.id for t in await b.store.list_tasks()] == [task.id]
    assert len(b.fake.channel_messages(CHANNEL)) == 1


async def test_a_replayed_button_click_acts_once(bot: Callable[..., Any]) -> None:
    """The very same signed click body sent again (a replay inside the 5 minutes) discards once."""
    b: Bot = await bot()
    await b.command("spawn click twice")
    task = await b.task_for_thread()
    done = await b.finished(task.id)
    ids = b.thread_of(done)
    payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": ALICE}, "api_app_id": "A1",
               "trigger_id": "t", "container": {"type": "message", "channel_id": CHANNEL,
                                                "message_ts": ids.review_ts},
               "channel": {"id": CHANNEL}, "message": {"ts": ids.review_ts},
               "response_url": b.fake.response_url("replayed-click"),
               "actions": [{"action_id": ui.ACTION_DISCARD, "block_id": "review", "value": task.id,
                            "type": "button", "action_ts": "1.1"}]}
    form = as_form(payload)
    ts = str(int(time.time()))
    first = await signed(b, form, "application/x-www-form-urlencoded", timestamp=ts)
    await b.finished(task.id, {DISCARDED})
    replays = await asyncio.gather(*(signed(b, form, "application/x-www-form-urlencoded", timestamp=ts)
                                     for _ in range(3)))
    await b.settle()
    assert {first[0], *(s for s, _ in replays)} == {200}
    events = [e.action for e in await b.store.events(task.id)]
    assert events.count(DISCARDED) == 1, events
    assert sum(1 for m in b.fake.thread(CHANNEL, ids.thread_ts) if "Discarded by" in (m.text or "")) == 1
    answers = b.answers("replayed-click")
    assert len(answers) == 3 and all("already discarded" in a for a in answers), answers
    assert (await b.engine.get(task.id)).state == DISCARDED
