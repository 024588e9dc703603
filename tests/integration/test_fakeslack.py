"""The fake Slack must reject what real Slack rejects, through the real slack_sdk clients, or bot tests
against it prove nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from support.fakeslack import FakeSlack, check_blocks, check_view
from support.outboxes import ManualClock


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        f.add_channel("C1", "general")
        yield f


@pytest.fixture
def client(fake: FakeSlack, session: aiohttp.ClientSession) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session)


async def slack_error(coro: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await coro
    return info.value


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(text: str, action_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id, **extra}


# -- auth -------------------------------------------------------------------------------------------


async def test_auth_test_and_token_checks(fake: FakeSlack, client: AsyncWebClient, session: Any) -> None:
    resp = await client.auth_test()
    assert resp["user_id"] == "UBOT" and resp["team_id"] == "T1" and resp["bot_id"]
    assert "chat:write" in resp.headers["x-oauth-scopes"].split(",")

    wrong = AsyncWebClient(token="xoxb-wrong", base_url=fake.url, session=session)
    assert (await slack_error(wrong.auth_test())).response["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=fake.url, session=session)
    assert (await slack_error(anonymous.auth_test())).response["error"] == "not_authed"
    app_level = AsyncWebClient(token=fake.app_token, base_url=fake.url, session=session)
    assert (await slack_error(app_level.auth_test())).response["error"] == "not_allowed_token_type"
    err = await slack_error(client.apps_connections_open(app_token=fake.bot_token))
    assert err.response["error"] == "not_allowed_token_type"


async def test_unknown_method_and_missing_scope(fake: FakeSlack, client: AsyncWebClient) -> None:
    assert (await slack_error(client.api_call("chat.doesNotExist"))).response["error"] == "unknown_method"
    # conversations.info needs channels:read, which the bot's default scopes do not include
    err = await slack_error(client.conversations_info(channel="C1"))
    assert err.response["error"] == "missing_scope" and "channels:read" in err.response["needed"]
    fake.scopes.append("channels:read")
    info = await client.conversations_info(channel="C1")
    assert info["channel"]["is_member"] is True and info["channel"]["name"] == "general"


# -- messages ---------------------------------------------------------------------------------------


async def test_post_update_delete_and_thread_tracking(fake: FakeSlack, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel="C1", text="task 1 started")
    r1 = await client.chat_postMessage(channel="C1", thread_ts=root["ts"], text="step one")
    # a reply to a reply lands in the root's thread, as in Slack
    r2 = await client.chat_postMessage(channel="C1", thread_ts=r1["ts"], text="step two")
    assert float(root["ts"]) < float(r1["ts"]) < float(r2["ts"])
    assert root["message"]["user"] == "UBOT" and root["channel"] == "C1"

    blocks = [section("*done*"), {"type": "actions", "elements": [button("Merge", "merge", style="primary")]}]
    await client.chat_update(channel="C1", ts=root["ts"], text="task 1 done", blocks=blocks)
    msg = fake.messages[("C1", root["ts"])]
    assert (msg.text, msg.blocks, msg.updated) == ("task 1 done", blocks, 1)
    assert [m.text for m in fake.thread("C1", root["ts"])] == ["task 1 done", "step one", "step two"]
    assert fake.messages[("C1", r2["ts"])].thread_ts == root["ts"]

    await client.chat_delete(channel="C1", ts=r1["ts"])
    assert fake.messages[("C1", r1["ts"])].deleted
    err = await slack_error(client.chat_update(channel="C1", ts=r1["ts"], text="x"))
    assert err.response["error"] == "message_not_found"
    err = await slack_error(client.chat_update(channel="C1", ts="1.000001", text="x"))
    assert err.response["error"] == "message_not_found"
    assert [c.response["error"] for c in fake.rejected] == ["message_not_found", "message_not_found"]
    assert [c.method for c in fake.calls].count("chat.postMessage") == 3


async def test_cannot_update_someone_elses_message(fake: FakeSlack, client: AsyncWebClient) -> None:
    human = fake.post_user_message("C1", "please fix the login test", user="U1")
    err = await slack_error(client.chat_update(channel="C1", ts=human.ts, text="edited"))
    assert err.response["error"] == "cant_update_message"
    reply = await client.chat_postMessage(channel="C1", thread_ts=human.ts, text="on it")
    assert [m.ts for m in fake.thread("C1", human.ts)] == [human.ts, reply["ts"]]


async def test_blocks_as_json_string_in_form_data(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [section("hello")]
    await client.api_call("chat.postMessage", data={"channel": "C1", "blocks": json.dumps(blocks)})
    assert list(fake.messages.values())[0].blocks == blocks
    err = await slack_error(client.api_call("chat.postMessage", data={"channel": "C1", "blocks": "[{oops"}))
    assert err.response["error"] == "invalid_blocks_format"


INVALID_BLOCKS: dict[str, tuple[list[Any], str]] = {
    "51 blocks": ([{"type": "divider"}] * 51, "no more than 50 items"),
    "section text 3001": ([section("x" * 3001)], "must be less than 3001 characters"),
    "header 151": (
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "must be less than 151 characters",
    ),
    "header mrkdwn": ([{"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}], "must be plain_text"),
    "button text 76": ([{"type": "actions", "elements": [button("b" * 76, "a")]}], "less than 76"),
    "button value 2001": (
        [{"type": "actions", "elements": [button("b", "a", value="v" * 2001)]}],
        "less than 2001",
    ),
    "button style": ([{"type": "actions", "elements": [button("b", "a", style="green")]}], "enum"),
    "duplicate action_id": (
        [{"type": "actions", "elements": [button("a", "same"), button("b", "same")]}],
        "action_id 'same' is used more than once",
    ),
    "duplicate block_id": ([section("a", block_id="x"), section("b", block_id="x")], "block_id 'x' is used"),
    "unknown block type": ([{"type": "fancy"}], "unknown block type 'fancy'"),
    "empty text": ([section("")], "must be more than 0 characters"),
    "emoji on mrkdwn": (
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x", "emoji": True}}],
        "unknown field 'emoji'",
    ),
    "26 actions": (
        [{"type": "actions", "elements": [button("b", f"a{i}") for i in range(26)]}],
        "no more than 25",
    ),
    "11 context elements": (
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
        "no more than 10",
    ),
    "confirm text 301 and mrkdwn": (
        [
            {
                "type": "actions",
                "elements": [
                    button(
                        "Discard",
                        "discard",
                        confirm={
                            "title": {"type": "plain_text", "text": "Sure?"},
                            "text": {"type": "mrkdwn", "text": "t" * 301},
                            "confirm": {"type": "plain_text", "text": "Yes"},
                            "deny": {"type": "plain_text", "text": "No"},
                        },
                    )
                ],
            }
        ],
        "must be plain_text",
    ),
    "markdown over 12000 in total": (
        [{"type": "markdown", "text": "m" * 6001}, {"type": "markdown", "text": "m" * 6000}],
        "markdown blocks hold 12001 characters",
    ),
    "blocks not a list": ({"type": "divider"}, "JSON array"),  # type: ignore[dict-item]
}


@pytest.mark.parametrize("case", list(INVALID_BLOCKS))
async def test_invalid_blocks_are_rejected_with_reasons(
    fake: FakeSlack, client: AsyncWebClient, case: str
) -> None:
    blocks, reason = INVALID_BLOCKS[case]
    err = await slack_error(client.chat_postMessage(channel="C1", text="fallback", blocks=blocks))
    assert err.response["error"] in ("invalid_blocks", "invalid_blocks_format")
    assert any(reason in e for e in err.response["errors"]), err.response["errors"]
    assert fake.rejected[-1].method == "chat.postMessage" and fake.rejected[-1].response["errors"]
    assert fake.messages == {}


async def test_all_problems_are_reported_at_once() -> None:
    errors = check_blocks(
        [section("x" * 3001), {"type": "header", "text": {"type": "plain_text", "text": ""}}]
    )
    assert len(errors) == 2
    assert errors[0].endswith("[json-pointer:/blocks/0/text/text]")


async def test_long_messages(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.rate_limits = False  # rejected calls spend the channel's budget too; this test is about content
    # 45 sections of 300 characters: every block is fine, the message as a whole is too big
    blocks = [section("y" * 300) for _ in range(45)]
    err = await slack_error(client.chat_postMessage(channel="C1", text="t", blocks=blocks))
    assert err.response["error"] == "msg_blocks_too_long" and "13000" in err.response["errors"][0]
    err = await slack_error(client.chat_postMessage(channel="C1", text="z" * 40_001))
    assert err.response["error"] == "msg_too_long"
    await client.chat_postMessage(channel="C1", text="z" * 40_000)
    with pytest.warns(UserWarning):  # slack_sdk warns about the missing text as well
        err = await slack_error(client.chat_postMessage(channel="C1"))
    assert err.response["error"] == "no_text"
    assert [c.response["error"] for c in fake.rejected] == ["msg_blocks_too_long", "msg_too_long", "no_text"]


async def test_channel_membership(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C2", "random", is_member=False)
    err = await slack_error(client.chat_postMessage(channel="C2", text="hi"))
    assert err.response["error"] == "not_in_channel"
    err = await slack_error(client.chat_postMessage(channel="C404", text="hi"))
    assert err.response["error"] == "channel_not_found"
    err = await slack_error(client.conversations_join(channel="C2"))
    assert err.response["error"] == "missing_scope"
    fake.scopes.append("channels:join")
    await client.conversations_join(channel="C2")
    await client.chat_postMessage(channel="C2", text="hi")
    # posting to a user id opens a DM
    dm = await client.chat_postMessage(channel="U7", text="psst")
    assert dm["channel"].startswith("D")


async def test_reactions_ephemeral_permalink(fake: FakeSlack, client: AsyncWebClient) -> None:
    msg = await client.chat_postMessage(channel="C1", text="working")
    await client.reactions_add(channel="C1", timestamp=msg["ts"], name="eyes")
    assert (await slack_error(client.reactions_add(channel="C1", timestamp=msg["ts"], name="eyes"))).response[
        "error"
    ] == "already_reacted"
    err = await slack_error(client.reactions_add(channel="C1", timestamp=msg["ts"], name=":tada:"))
    assert err.response["error"] == "invalid_name"
    await client.reactions_remove(channel="C1", timestamp=msg["ts"], name="eyes")
    err = await slack_error(client.reactions_remove(channel="C1", timestamp=msg["ts"], name="eyes"))
    assert err.response["error"] == "no_reaction"
    await client.reactions_add(channel="C1", timestamp=msg["ts"], name="white_check_mark")
    assert fake.messages[("C1", msg["ts"])].reactions == {"white_check_mark"}

    eph = await client.chat_postEphemeral(
        channel="C1", user="U1", text="only you", blocks=[section("only you")]
    )
    assert (
        eph["message_ts"] and fake.ephemerals[0]["user"] == "U1" and fake.ephemerals[0]["text"] == "only you"
    )

    reply = await client.chat_postMessage(channel="C1", thread_ts=msg["ts"], text="r")
    link = await client.chat_getPermalink(channel="C1", message_ts=reply["ts"])
    assert (
        link["permalink"].startswith("https://fake.slack/archives/C1/p") and "thread_ts=" in link["permalink"]
    )


# -- message metadata, conversations.history / replies ---------------------------------------------

POST_METADATA = {"event_type": "superset_bot_post", "event_payload": {"post_id": "abc123", "task_id": "t1"}}


async def test_metadata_is_stored_and_returned_only_when_asked_for(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.rate_limits = False  # many posts in a row: not what is tested here
    root = (await client.chat_postMessage(channel="C1", text="root", metadata=POST_METADATA))["ts"]
    assert fake.messages[("C1", root)].metadata == POST_METADATA
    plain = await client.conversations_history(channel="C1")
    assert [m["ts"] for m in plain["messages"]] == [root] and "metadata" not in plain["messages"][0]
    full = await client.conversations_history(channel="C1", include_all_metadata=True)
    assert full["messages"][0]["metadata"] == POST_METADATA
    # form-encoded too (the SDK's default for conversations.*), metadata as a JSON string
    reply = await client.api_call("chat.postMessage", data={
        "channel": "C1", "text": "reply", "thread_ts": root, "metadata": json.dumps(POST_METADATA)})
    replies = await client.conversations_replies(channel="C1", ts=root, include_all_metadata=True)
    assert [m["ts"] for m in replies["messages"]] == [root, reply["ts"]]
    assert replies["messages"][1]["metadata"] == POST_METADATA
    assert "metadata" not in (await client.conversations_replies(channel="C1", ts=root))["messages"][1]
    assert fake.rejected == []


async def test_metadata_is_checked_like_slack(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.rate_limits = False  # many posts in a row: not what is tested here
    async def error(**args: Any) -> str:
        return str((await slack_error(client.api_call("chat.postMessage", json={"channel": "C1", "text": "x",
                                                                                 **args}))).response["error"])

    assert await error(metadata="not an object") == "invalid_metadata_format"
    assert await error(metadata=["event_type"]) == "invalid_metadata_format"
    assert await error(metadata={"event_payload": {}}) == "invalid_metadata_schema"
    assert await error(metadata={"event_type": "ok_type"}) == "invalid_metadata_schema"
    assert await error(metadata={"event_type": "ok_type", "event_payload": "x"}) == "invalid_metadata_schema"
    form = await slack_error(client.api_call("chat.postMessage", data={"channel": "C1", "text": "x",
                                                                      "metadata": "{not json"}))
    assert form.response["error"] == "invalid_metadata_format"
    assert fake.messages == {}
    # an event_type with punctuation: Slack posts the message, ignores the metadata and warns
    resp = await client.chat_postMessage(channel="C1", text="x", metadata={"event_type": "bot.post",
                                                                           "event_payload": {}})
    assert resp["response_metadata"]["warnings"] == ["invalid_metadata_schema"]
    assert fake.messages[("C1", resp["ts"])].metadata is None and fake.warnings


async def test_history_is_newest_first_top_level_and_paged(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.rate_limits = False  # many posts in a row: not what is tested here
    ts = [(await client.chat_postMessage(channel="C1", text=f"m{i}"))["ts"] for i in range(5)]
    await client.chat_postMessage(channel="C1", text="in a thread", thread_ts=ts[0])
    fake.post_user_message("C1", "a person")
    resp = await client.conversations_history(channel="C1", limit=3)
    assert [m["text"] for m in resp["messages"]] == ["a person", "m4", "m3"]
    assert resp["has_more"] is True
    more = await client.conversations_history(channel="C1", limit=3, cursor=resp["response_metadata"]["next_cursor"])
    assert [m["text"] for m in more["messages"]] == ["m2", "m1", "m0"] and more["has_more"] is False
    parent = more["messages"][-1]
    assert parent["thread_ts"] == ts[0] and parent["reply_count"] == 1, "a thread's parent, as Slack shows it"
    since = await client.conversations_history(channel="C1", oldest=ts[2])
    assert [m["text"] for m in since["messages"]] == ["a person", "m4", "m3"], "oldest is exclusive"
    inclusive = await client.conversations_history(channel="C1", oldest=ts[2], latest=ts[3], inclusive=True)
    assert [m["text"] for m in inclusive["messages"]] == ["m3", "m2"]
    await client.chat_delete(channel="C1", ts=ts[4])
    assert "m4" not in [m["text"] for m in (await client.conversations_history(channel="C1"))["messages"]]
    err = await slack_error(client.conversations_history(channel="C1", cursor="bogus"))
    assert err.response["error"] == "invalid_cursor"


async def test_replies_need_ts_and_come_in_thread_order(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.rate_limits = False  # many posts in a row: not what is tested here
    root = fake.post_user_message("C1", "please fix the login test")
    first = (await client.chat_postMessage(channel="C1", text="on it", thread_ts=root.ts))["ts"]
    second = (await client.chat_postMessage(channel="C1", text="done", thread_ts=root.ts))["ts"]
    resp = await client.conversations_replies(channel="C1", ts=root.ts)
    assert [(m["ts"], m["text"]) for m in resp["messages"]] == [
        (root.ts, "please fix the login test"), (first, "on it"), (second, "done")]
    assert all(m["thread_ts"] == root.ts for m in resp["messages"])
    newer = await client.conversations_replies(channel="C1", ts=root.ts, oldest=first)
    assert [m["text"] for m in newer["messages"]] == ["please fix the login test", "done"], "parent first"
    err = await slack_error(client.api_call("conversations.replies", params={"channel": "C1"}))
    assert err.response["error"] == "invalid_arguments"
    err = await slack_error(client.conversations_replies(channel="C1", ts="1.000001"))
    assert err.response["error"] == "thread_not_found"


async def test_history_scopes_and_membership(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.rate_limits = False  # many posts in a row: not what is tested here
    fake.add_channel("CPUB", "public", is_member=False)
    fake.add_channel("GPRIV", "private", is_private=True)
    assert (await slack_error(client.conversations_history(channel="CPUB"))).response["error"] == "not_in_channel"
    assert (await slack_error(client.conversations_history(channel="general"))).response["error"] \
        == "channel_not_found", "history takes a conversation id, not a name"
    await client.chat_postMessage(channel="U0BOB", text="a DM")  # Slack opens D0BOB
    assert (await slack_error(client.conversations_history(channel="U0BOB"))).response["error"] \
        == "channel_not_found", "nor a user id"
    assert (await client.conversations_history(channel="D0BOB"))["messages"][0]["text"] == "a DM"
    fake.scopes = [s for s in fake.scopes if s != "groups:history"]
    err = await slack_error(client.conversations_history(channel="GPRIV"))
    assert err.response["error"] == "missing_scope" and err.response["needed"] == "groups:history"
    await client.conversations_history(channel="C1")  # channels:history still covers public channels
    fake.scopes = [s for s in fake.scopes if not s.endswith(":history")]
    err = await slack_error(client.conversations_replies(channel="C1", ts="1.0"))
    assert err.response["error"] == "missing_scope"


# -- rate limits ------------------------------------------------------------------------------------


async def test_post_message_rate_limit_per_channel(session: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeSlack(clock=clock) as fake:
        fake.add_channel("C1")
        fake.add_channel("C2", "other")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session)
        outcomes = []
        for i in range(10):
            try:
                await client.chat_postMessage(channel="C1", text=f"m{i}")
                outcomes.append("ok")
            except SlackApiError as e:
                assert e.response.status_code == 429 and e.response["error"] == "ratelimited"
                assert int(e.response.headers["Retry-After"]) >= 1
                outcomes.append("429")
        assert outcomes == ["ok"] * 3 + ["429"] * 7
        assert fake.rate_limited["chat.postMessage"] == 7
        assert len(fake.messages) == 3 and fake.rejected == []
        assert [c.status for c in fake.calls_to("chat.postMessage")].count(429) == 7
        await client.chat_postMessage(channel="C2", text="other channels have their own budget")
        clock.now += 1.0
        await client.chat_postMessage(channel="C1", text="a second later")
        assert len(fake.messages) == 5


async def test_tier3_budget_is_shared_across_channels(session: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeSlack(clock=clock, limits={"chat.postMessage": (100, 100)}) as fake:
        fake.add_channel("C1")
        fake.add_channel("C2", "other")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session)
        ts = [(await client.chat_postMessage(channel=ch, text="s"))["ts"] for ch in ("C1", "C2")]
        capacity = int(fake.limits["tier3"][0])
        for i in range(capacity):
            await client.chat_update(channel=("C1", "C2")[i % 2], ts=ts[i % 2], text=f"u{i}")
        err = await slack_error(client.chat_update(channel="C2", ts=ts[1], text="one too many"))
        assert err.response.status_code == 429
        assert fake.messages[("C2", ts[1])].text != "one too many"
        clock.now += 60 / 50
        await client.chat_update(channel="C2", ts=ts[1], text="after refill")


async def test_each_tier3_method_has_its_own_budget(session: aiohttp.ClientSession) -> None:
    """Slack counts chat.update and reactions.add apart: spending one leaves the other whole."""
    clock = ManualClock()
    async with FakeSlack(clock=clock, limits={"chat.postMessage": (100, 100)}) as fake:
        fake.add_channel("C1")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session)
        ts = (await client.chat_postMessage(channel="C1", text="s"))["ts"]
        capacity = int(fake.limits["tier3"][0])
        for i in range(capacity):
            await client.chat_update(channel="C1", ts=ts, text=f"u{i}")
        assert (await slack_error(client.chat_update(channel="C1", ts=ts, text="x"))).response.status_code == 429
        for name in ("a", "b", "c"):
            await client.reactions_add(channel="C1", timestamp=ts, name=name)
        await client.reactions_remove(channel="C1", timestamp=ts, name="a")
        await client.conversations_replies(channel="C1", ts=ts)
        assert fake.rate_limited == {"chat.update": 1}


async def test_a_method_can_get_a_budget_of_its_own(session: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeSlack(clock=clock, limits={"chat.update": (2, 1.0)}) as fake:
        fake.add_channel("C1")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session)
        ts = (await client.chat_postMessage(channel="C1", text="s"))["ts"]
        await client.chat_update(channel="C1", ts=ts, text="1")
        await client.chat_update(channel="C1", ts=ts, text="2")
        assert (await slack_error(client.chat_update(channel="C1", ts=ts, text="3"))).response.status_code == 429
        await client.reactions_add(channel="C1", timestamp=ts, name="x")  # still the tier's 15


async def test_retry_handler_gets_through_after_retry_after(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    client = AsyncWebClient(
        token=fake.bot_token,
        base_url=fake.url,
        session=session,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
    )
    for i in range(4):  # burst of 3, the 4th waits out Retry-After inside the SDK
        await client.chat_postMessage(channel="C1", text=f"m{i}")
    assert len(fake.messages) == 4
    assert fake.rate_limited["chat.postMessage"] >= 1


# -- faults -----------------------------------------------------------------------------------------


async def test_fail_next_and_set_down(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_next("chat.postMessage")
    err = await slack_error(client.chat_postMessage(channel="C1", text="a"))
    assert err.response.status_code == 500
    fake.fail_next("chat.postMessage", error="internal_error")
    err = await slack_error(client.chat_postMessage(channel="C1", text="a"))
    assert err.response.status_code == 200 and err.response["error"] == "internal_error"
    await client.chat_postMessage(channel="C1", text="a")

    fake.set_down(True)
    err = await slack_error(client.auth_test())
    assert err.response.status_code == 503
    fake.set_down(False)
    await client.auth_test()
    assert len(fake.messages) == 1 and fake.rejected == []  # injected faults are not the bot's mistakes


async def test_drop_after_accept_does_the_work_and_never_answers(fake: FakeSlack, session: Any) -> None:
    """The case a blind retry turns into a double post: Slack stored it, the client saw the connection go."""
    fake.rate_limits = False  # many posts in a row: not what is tested here
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session, retry_handlers=[])
    fake.drop_after_accept("chat.postMessage")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel="C1", text="accepted", metadata=POST_METADATA)
    (message,) = fake.messages.values()
    assert message.text == "accepted" and message.metadata == POST_METADATA
    (call,) = fake.calls_to("chat.postMessage")
    assert call.dropped and call.response["ts"] == message.ts and fake.dropped["chat.postMessage"] == 1
    # a refused call does not use the fault up: it drops the next accepted one
    fake.drop_after_accept("chat.postMessage")
    await slack_error(client.chat_postMessage(channel="CNOWHERE", text="refused"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel="C1", text="second")
    await client.chat_postMessage(channel="C1", text="answered again")  # the fault is used up
    assert [m.text for m in fake.channel_messages("C1")] == ["accepted", "second", "answered again"]
    assert fake.dropped["chat.postMessage"] == 2 and not fake.calls_to("chat.postMessage")[-1].dropped


async def test_random_faults_are_seeded_counted_and_change_nothing(session: Any) -> None:
    async def run(seed: int) -> tuple[list[int], FakeSlack]:
        async with FakeSlack(rate_limits=False) as f:
            f.add_channel("C1", "general")
            c = AsyncWebClient(token=f.bot_token, base_url=f.url, session=session)  # no retry handlers
            f.inject_faults(rate=0.3, statuses=(429, 500), seed=seed, methods={"chat.postMessage"})
            statuses = []
            for i in range(60):
                try:
                    await c.chat_postMessage(channel="C1", text=f"m{i}")
                    statuses.append(200)
                except SlackApiError as e:
                    statuses.append(e.response.status_code)
                    if e.response.status_code == 429:
                        assert e.response.headers.get("Retry-After") == "1"
                        assert e.response["error"] == "ratelimited"
                    else:
                        assert e.response["error"] == "fatal_error"
            await c.auth_test()  # not a faulted method
            assert f.faults_injected["429"] + f.faults_injected["500"] == statuses.count(429) + statuses.count(500)
            assert len(f.messages) == statuses.count(200) and f.rejected == []
            f.inject_faults(rate=0)
            await c.chat_postMessage(channel="C1", text="after")
            return statuses, f

    first, fake1 = await run(7)
    again, _ = await run(7)
    other, _ = await run(8)
    assert first == again, "the same seed replays the same faults"
    assert first != other
    assert 429 in first and 500 in first and 200 in first
    assert 5 <= fake1.faults_injected.total() <= 35


async def test_no_random_faults_by_default(fake: FakeSlack, client: AsyncWebClient) -> None:
    for i in range(30):
        await client.auth_test()
    await client.chat_postMessage(channel="C1", text="m")
    assert fake.faults_injected.total() == 0 and all(c.status == 200 for c in fake.calls)


# -- files ------------------------------------------------------------------------------------------


async def test_files_upload_v2_end_to_end(fake: FakeSlack, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel="C1", text="task")
    diff = "diff --git a/x b/x\n+héllo\n"
    resp = await client.files_upload_v2(
        channel="C1",
        thread_ts=root["ts"],
        content=diff,
        filename="task-1.diff",
        title="Diff of task 1",
        snippet_type="diff",
        initial_comment="full diff",
    )
    assert resp["file"]["id"].startswith("F")
    [f] = fake.files
    assert f["content"] == diff.encode() and f["text"] == diff
    assert (f["filename"], f["title"], f["snippet_type"]) == ("task-1.diff", "Diff of task 1", "diff")
    assert (f["channel_id"], f["thread_ts"]) == ("C1", root["ts"])
    share = fake.thread("C1", root["ts"])[-1]
    assert share.files and share.text == "full diff"
    assert [c.method for c in fake.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert fake.warnings == []


async def test_files_upload_rejections(fake: FakeSlack, client: AsyncWebClient) -> None:
    err = await slack_error(client.files_upload_v2(channel="C1", content="", filename="empty.txt"))
    assert err.response["error"] == "invalid_arguments"
    fake.add_channel("C2", "random", is_member=False)
    err = await slack_error(client.files_upload_v2(channel="C2", content="x", filename="x.txt"))
    assert err.response["error"] == "not_in_channel"
    err = await slack_error(client.files_completeUploadExternal(files=[{"id": "F404", "title": "t"}]))
    assert err.response["error"] == "file_not_found"
    assert (await slack_error(client.api_call("files.upload"))).response["error"] == "method_deprecated"


# -- views ------------------------------------------------------------------------------------------


def modal(title: str = "New task", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title},
        "blocks": [section("hi")],
        **extra,
    }


async def test_views_publish_and_open(session: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeSlack(clock=clock) as fake:
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session)
        home = {"type": "home", "blocks": [section("Running tasks: 0")]}
        resp = await client.views_publish(user_id="U1", view=home)
        assert fake.views["home"]["U1"]["id"] == resp["view"]["id"]
        err = await slack_error(client.views_publish(user_id="U1", view=modal()))
        assert err.response["error"] == "invalid_arguments"

        trigger = fake.new_trigger_id()
        err = await slack_error(client.views_open(trigger_id=trigger, view=modal("t" * 25)))
        assert err.response["error"] == "invalid_arguments"
        assert "[json-pointer:/view/title/text]" in err.response["errors"][0]
        opened = await client.views_open(trigger_id=trigger, view=modal(private_metadata="task-1"))
        vid = opened["view"]["id"]
        assert fake.views["modals"][vid]["private_metadata"] == "task-1"
        err = await slack_error(client.views_open(trigger_id=trigger, view=modal()))
        assert err.response["error"] == "exchanged_trigger_id"
        err = await slack_error(client.views_open(trigger_id="never-issued", view=modal()))
        assert err.response["error"] == "invalid_trigger_id"
        late = fake.new_trigger_id()
        clock.now += 3.5
        err = await slack_error(client.views_open(trigger_id=late, view=modal()))
        assert err.response["error"] == "expired_trigger_id"

        updated = await client.views_update(view_id=vid, hash=opened["view"]["hash"], view=modal("Updated"))
        assert fake.views["modals"][vid]["title"]["text"] == "Updated"
        err = await slack_error(client.views_update(view_id=vid, hash=opened["view"]["hash"], view=modal()))
        assert err.response["error"] == "hash_conflict"
        assert updated["view"]["hash"] != opened["view"]["hash"]


def test_view_limits() -> None:
    assert check_view(modal()) == []
    too_many = modal(blocks=[{"type": "divider"}] * 101)
    assert any("no more than 100" in e for e in check_view(too_many))
    assert check_view({"type": "home", "blocks": [{"type": "divider"}] * 100}) == []
    assert any("less than 3001" in e for e in check_view(modal(private_metadata="p" * 3001)))
    assert any("less than 256" in e for e in check_view(modal(callback_id="c" * 256)))
    assert any("submit" in e for e in check_view(modal(submit={"type": "plain_text", "text": "s" * 25})))
    with_input = modal(
        blocks=[
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "Prompt"},
                "element": {"type": "plain_text_input", "action_id": "prompt", "multiline": True},
            }
        ]
    )
    assert any("needs a submit button" in e for e in check_view(with_input))
    assert check_view({**with_input, "submit": {"type": "plain_text", "text": "Spawn"}}) == []
    no_title = modal()
    del no_title["title"]
    assert any("title" in e for e in check_view(no_title))


# -- response_url -----------------------------------------------------------------------------------


async def test_response_url_replaces_original_and_validates(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [
        section("Task 1 finished"),
        {"type": "actions", "elements": [button("Merge", "merge", value="1")]},
    ]
    msg = await client.chat_postMessage(channel="C1", text="finished", blocks=blocks)
    payload = fake.block_actions_payload(channel="C1", message_ts=msg["ts"], action_id="merge", user_id="U1")
    assert payload["actions"][0]["value"] == "1" and payload["message"]["ts"] == msg["ts"]
    hook = AsyncWebhookClient(payload["response_url"])
    resp = await hook.send(text="merged", replace_original=True, blocks=[section("Task 1 merged")])
    assert resp.status_code == 200
    assert fake.messages[("C1", msg["ts"])].text == "merged"
    assert fake.responses_to_urls[-1]["payload"]["replace_original"] is True

    resp = await hook.send(
        text="bad", blocks=[{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]
    )
    assert resp.status_code == 400
    assert fake.rejected[-1].method.startswith("response_url:")


# -- socket mode ------------------------------------------------------------------------------------


async def test_socket_mode_round_trip(fake: FakeSlack, session: aiohttp.ClientSession) -> None:
    with pytest.raises(RuntimeError, match="no Socket Mode client"):
        await fake.socket_send("slash_commands", fake.command_payload("help"))
    web = AsyncWebClient(base_url=fake.url, session=session)
    sm = SocketModeClient(app_token=fake.app_token, web_client=web)
    seen: list[dict[str, Any]] = []
    requests: list[SocketModeRequest] = []

    async def on_message(client: Any, message: dict[str, Any], raw: str | None) -> None:
        seen.append(message)

    async def on_request(client: Any, req: SocketModeRequest) -> None:
        requests.append(req)
        payload = {"text": f"got {req.payload.get('text')}"} if req.type == "slash_commands" else None
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload=payload)
        )

    sm.message_listeners.append(on_message)
    sm.socket_mode_request_listeners.append(on_request)
    try:
        await sm.connect()
        await asyncio.wait_for(fake.socket_connected.wait(), 5)
        ack = await fake.socket_send("slash_commands", fake.command_payload("spawn fix it"))
        assert ack == {"text": "got spawn fix it"}
        assert seen[0]["type"] == "hello" and seen[0]["connection_info"]["app_id"] == fake.app_id

        event = fake.event_payload(
            {"type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "channel": "C1"}
        )
        assert await fake.socket_send("events_api", event, retry_num=1) is None
        assert requests[-1].retry_attempt == 1 and requests[-1].retry_reason == "timeout"
        assert requests[0].accepts_response_payload and not requests[-1].accepts_response_payload
        assert fake.calls_to("apps.connections.open")[0].status == 200

        # Slack's "disconnect" message makes the SDK fetch a new URL and reconnect
        await fake.socket_disconnect()
        for _ in range(250):
            if len(fake.calls_to("apps.connections.open")) == 2 and fake.socket_connected.is_set():
                break
            await asyncio.sleep(0.02)
        assert len(fake.calls_to("apps.connections.open")) == 2
        ack = await fake.socket_send("slash_commands", fake.command_payload("status 1"))
        assert ack == {"text": "got status 1"}
        # a dropped connection is re-established by the SDK too
        await fake.socket_close()
        for _ in range(250):
            if len(fake.calls_to("apps.connections.open")) == 3 and fake.socket_connected.is_set():
                break
            await asyncio.sleep(0.02)
        assert await fake.socket_send("slash_commands", fake.command_payload("list")) == {"text": "got list"}
        assert fake.rejected == []
        await asyncio.wait_for(fake.stop(), 5)  # stopping with a client still connected does not hang
    finally:
        await sm.close()


async def test_bolt_app_over_socket_mode(fake: FakeSlack, session: aiohttp.ClientSession) -> None:
    """The bot's real stack (Bolt AsyncApp + AsyncSocketModeHandler) works against the fake."""
    web = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session)
    app = AsyncApp(client=web)

    @app.command("/superset")
    async def superset(ack: Any, command: dict[str, Any], say: Any) -> None:
        await ack(blocks=[section(f"queued: {command['text']}")], text="queued")
        await say(text="started", channel=command["channel_id"])

    @app.view("bad")
    async def bad_view(ack: Any) -> None:
        await ack(response_action="update", view=modal("x" * 30))

    app_web = AsyncWebClient(base_url=fake.url, session=session)
    handler = AsyncSocketModeHandler(app, fake.app_token, web_client=app_web)
    try:
        await handler.connect_async()
        await asyncio.wait_for(fake.socket_connected.wait(), 5)
        ack = await fake.socket_send("slash_commands", fake.command_payload("spawn fix the flaky test"))
        assert ack is not None and ack["text"] == "queued"
        for _ in range(100):
            if fake.messages:
                break
            await asyncio.sleep(0.02)
        assert [m.text for m in fake.messages.values()] == ["started"]
        assert fake.calls_to("auth.test")

        # Bolt does not ack a command nobody handles: Slack would show the user a failure
        with pytest.raises(TimeoutError, match="no ack"):
            await fake.socket_send("slash_commands", fake.command_payload("x", command="/other"), timeout=0.5)

        trigger = fake.new_trigger_id()
        opened = await web.views_open(trigger_id=trigger, view=modal(callback_id="bad"))
        submission = fake.view_submission_payload(opened["view"]["id"], values={})
        await fake.socket_send("interactive", submission)
        assert fake.rejected[-1].method == "socket_ack:interactive"
        assert "/view/title/text" in fake.rejected[-1].response["errors"][0]
    finally:
        await handler.close_async()
