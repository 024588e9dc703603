"""Posts that never double: Slack accepts a post, then the connection drops before the answer.

The bot sees a transport error although the message exists. A blind retry (slack_sdk's connection
error handler, or the outbox's own retry) would post it twice, and a doubled review keeps live Merge
buttons. The outbox tags every post with a post_id in its message metadata, and before posting again
after such an ambiguous failure looks for it (conversations.replies / .history); the SDK does not
retry chat.postMessage at all. Real HTTP against the fake Slack, whose `drop_after_accept` carries
the call out and closes the connection unanswered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from support.fakeslack import DEFAULT_SCOPES, FakeSlack

from superset_bot.frontends.slack.blocks import validate_blocks
from superset_bot.frontends.slack.outbox import POST_EVENT_TYPE, Outbox, slack_retry_handlers

CHANNEL = "C0POSTS"
Make = Callable[..., Awaitable[tuple[FakeSlack, Outbox]]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def slack(session: aiohttp.ClientSession) -> AsyncIterator[Make]:
    """make(**outbox_options) -> (fake, outbox), the client built as runtime.py builds it."""
    opened: list[tuple[FakeSlack, Outbox]] = []

    async def make(**options: Any) -> tuple[FakeSlack, Outbox]:
        fake = FakeSlack(rate_limits=False)
        await fake.start()
        fake.add_channel(CHANNEL, "posts")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session,
                                retry_handlers=slack_retry_handlers())
        outbox = Outbox(client, validate=validate_blocks, **options)
        outbox.start()
        opened.append((fake, outbox))
        return fake, outbox

    yield make
    for fake, outbox in opened:
        await outbox.stop(1)
        await fake.stop()


def posts(fake: FakeSlack) -> list[Any]:
    return fake.calls_to("chat.postMessage")


async def test_a_thread_reply_dropped_after_acceptance_is_posted_once(slack: Make) -> None:
    fake, outbox = await slack()
    root = await outbox.post(CHANNEL, "Task t1 · running", task_id="t1", kind="root")
    fake.drop_after_accept("chat.postMessage")
    ts = await outbox.post(CHANNEL, "Review: 3 files changed", thread_ts=root, task_id="t1", kind="review")
    assert fake.dropped["chat.postMessage"] == 1 and [c.dropped for c in posts(fake)] == [False, True], \
        "the fault fired: Slack stored the reply and the bot got no answer"
    replies = [m for m in fake.thread(CHANNEL, root) if m.ts != root]
    assert [m.text for m in replies] == ["Review: 3 files changed"], "posted exactly once"
    assert ts == replies[0].ts, "the ts of the message that went through"
    assert len(posts(fake)) == 2, "not sent again"
    assert replies[0].metadata is not None
    assert replies[0].metadata["event_type"] == POST_EVENT_TYPE
    payload = replies[0].metadata["event_payload"]
    assert payload["task_id"] == "t1" and payload["kind"] == "review" and len(payload["post_id"]) == 32
    (lookup,) = fake.calls_to("conversations.replies")
    assert lookup.args["ts"] == root and lookup.args["include_all_metadata"] in ("1", "true", True)
    assert outbox.stats["post_deduplicated"] == 1 and outbox.stats["post_unverified_retry"] == 0
    assert fake.rejected == []


async def test_a_channel_message_dropped_after_acceptance_is_posted_once(slack: Make) -> None:
    fake, outbox = await slack()
    fake.post_user_message(CHANNEL, "someone else talking")
    fake.drop_after_accept("chat.postMessage")
    ts = await outbox.post(CHANNEL, "Task t2 · queued", task_id="t2", kind="root")
    assert fake.dropped["chat.postMessage"] == 1
    mine = [m for m in fake.channel_messages(CHANNEL) if m.user == fake.bot_user_id]
    assert [m.ts for m in mine] == [ts], "one root message, and its real ts"
    assert len(posts(fake)) == 1
    (lookup,) = fake.calls_to("conversations.history")
    assert float(lookup.args["oldest"]) < float(ts)
    assert outbox.stats["post_deduplicated"] == 1
    assert fake.rejected == []


async def test_without_the_history_scope_it_posts_again_and_says_so(
    slack: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """A lost review is worse than a doubled one: when it cannot look, it warns once and posts again."""
    fake, outbox = await slack()
    fake.scopes = [s for s in DEFAULT_SCOPES if not s.endswith(":history")]
    root = await outbox.post(CHANNEL, "Task t3 · running")
    fake.drop_after_accept("chat.postMessage")
    with caplog.at_level(logging.WARNING, logger="superset_bot.frontends.slack.outbox"):
        ts = await outbox.post(CHANNEL, "Review", thread_ts=root, task_id="t3", kind="review")
    assert fake.dropped["chat.postMessage"] == 1
    replies = [m for m in fake.thread(CHANNEL, root) if m.ts != root]
    assert len(replies) == 2 and ts == replies[-1].ts, "doubled, as the lesser evil, not lost"
    (lookup,) = fake.calls_to("conversations.replies")
    assert lookup.response["error"] == "missing_scope"
    assert outbox.stats["post_unverified_retry"] == 1 and outbox.stats["post_deduplicated"] == 0
    warnings = [r.getMessage() for r in caplog.records if "may show twice" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "missing_scope" in warnings[0] and "channels:history" in warnings[0]


async def test_a_lookup_that_fails_for_a_while_is_tried_again_rather_than_posting_blind(slack: Make) -> None:
    """Slack failing the read too (an outage) is no reason to post blind: it looks again, then finds it."""
    fake, outbox = await slack()
    root = await outbox.post(CHANNEL, "Task t4 · running")
    fake.drop_after_accept("chat.postMessage")
    fake.fail_next("conversations.replies", count=3, status=503)  # every try of the first lookup
    ts = await outbox.post(CHANNEL, "Review", thread_ts=root)
    assert fake.dropped["chat.postMessage"] == 1
    assert [c.status for c in fake.calls_to("conversations.replies")] == [503, 503, 503, 200]
    replies = [m for m in fake.thread(CHANNEL, root) if m.ts != root]
    assert [m.ts for m in replies] == [ts] and len(posts(fake)) == 2
    assert outbox.stats["post_lookup_failed"] == 1 and outbox.stats["post_deduplicated"] == 1
    assert outbox.stats["post_unverified_retry"] == 0


async def test_a_server_error_is_checked_and_the_post_goes_out_once(slack: Make) -> None:
    """HTTP 500 may or may not have posted: it looks, finds nothing, posts once."""
    fake, outbox = await slack()
    fake.fail_next("chat.postMessage", status=500)
    ts = await outbox.post(CHANNEL, "after a server error")
    assert [c.status for c in posts(fake)] == [500, 200]
    assert [m.ts for m in fake.channel_messages(CHANNEL)] == [ts]
    assert len(fake.calls_to("conversations.history")) == 1
    assert outbox.stats["post_deduplicated"] == 0 and outbox.stats["post_unverified_retry"] == 0


async def test_a_429_or_a_refusal_is_not_looked_up(slack: Make) -> None:
    """Slack did not post: a 429 is simply retried, a refusal raised."""
    fake, outbox = await slack()
    fake.fail_next("chat.postMessage", count=2, status=429)  # the SDK retries one, the outbox the other
    await outbox.post(CHANNEL, "after two 429s")
    fake.fail_next("chat.postMessage", error="msg_too_long")
    with pytest.raises(SlackApiError):
        await outbox.post(CHANNEL, "refused")
    assert not fake.calls_to("conversations.history") and not fake.calls_to("conversations.replies")
    assert len(fake.channel_messages(CHANNEL)) == 1


async def test_a_dm_post_is_looked_up_in_the_dm_slack_opened(slack: Make) -> None:
    """Posting to a user id opens a DM; the lookup needs that conversation's id (history takes no user id)."""
    fake, outbox = await slack()
    await outbox.post("U0ALICE", "your task is queued")
    fake.drop_after_accept("chat.postMessage")
    ts = await outbox.post("U0ALICE", "your task finished")
    dm = "D0ALICE"
    assert [m.text for m in fake.channel_messages(dm)] == ["your task is queued", "your task finished"]
    assert ts == fake.channel_messages(dm)[-1].ts
    (lookup,) = fake.calls_to("conversations.history")
    assert lookup.args["channel"] == dm and outbox.stats["post_deduplicated"] == 1


# -- the SDK's own retries --------------------------------------------------------------------------


async def test_the_sdk_does_not_retry_a_post_but_retries_other_methods(session: aiohttp.ClientSession) -> None:
    async with FakeSlack(rate_limits=False) as fake:
        fake.add_channel(CHANNEL, "posts")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session,
                                retry_handlers=slack_retry_handlers())
        fake.drop_after_accept("chat.postMessage")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.chat_postMessage(channel=CHANNEL, text="once")
        assert len(posts(fake)) == 1 and len(fake.messages) == 1
        # an update is idempotent: the connection-error retry still covers it
        (ts,) = [m.ts for m in fake.channel_messages(CHANNEL)]
        fake.drop_after_accept("chat.update")
        await client.chat_update(channel=CHANNEL, ts=ts, text="updated")
        assert len(fake.calls_to("chat.update")) == 2 and fake.dropped["chat.update"] == 1

        # why: slack_sdk's stock handler posts twice
        stock = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session,
                               retry_handlers=[AsyncConnectionErrorRetryHandler()])
        fake.drop_after_accept("chat.postMessage")
        await stock.chat_postMessage(channel=CHANNEL, text="twice")
        assert [m.text for m in fake.channel_messages(CHANNEL)].count("twice") == 2
