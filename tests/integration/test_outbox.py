"""The outbox against the fake Slack over real HTTP: slack_sdk's AsyncWebClient, the real Outbox.

Budgets are scaled down (a fast Tier 3 on both sides) so each scenario takes a second or two;
the fake still answers 429 + Retry-After when called faster than it allows. (Per-method budgets,
the chat.update reserve and reactions after a restart: test_outbox_budgets.py; posts that never
double: tests/faults/test_fault_slack_posts.py.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from support.outboxes import Outboxes

from superset_bot.frontends.slack.outbox import (
    Outbox,
)

CHANNEL = "C0OUT"
Make = Callable[..., Any]


def section(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


@pytest.fixture
async def slack() -> AsyncIterator[Make]:
    """make(limits=..., rate_limits=..., sdk_retries_429=..., **outbox_options) -> (fake, outbox)."""
    outboxes = Outboxes(CHANNEL, "outbox")
    yield outboxes.make
    await outboxes.close(1)


async def post_messages(outbox: Outbox, n: int) -> list[str]:
    return [await outbox.post(CHANNEL, f"message {i} v0", section(f"*message {i}* v0")) for i in range(n)]


async def test_many_updates_are_coalesced_and_each_message_ends_with_its_last_content(slack: Make) -> None:
    fake, outbox = await slack(limits={"tier3": (100, 50.0), "chat.postMessage": (10, 10.0)},
                               post_burst=10, tier3_per_minute=600, tier3_burst=5)
    messages = await post_messages(outbox, 5)
    for i in range(200):
        ts = messages[i % 5]
        outbox.update(CHANNEL, ts, f"update {i}", section(f"*update* {i}"))
        if i % 10 == 9:
            await asyncio.sleep(0.02)  # agents print in bursts; the worker runs in between
    await outbox.flush(10)
    updates = fake.calls_to("chat.update")
    assert 5 <= len(updates) <= 60, f"{len(updates)} chat.update calls for 200 updates"
    for k, ts in enumerate(messages):
        last = max(i for i in range(200) if i % 5 == k)
        message = fake.messages[(CHANNEL, ts)]
        assert message.text == f"update {last}"
        assert message.blocks == section(f"*update* {last}")
    assert outbox.stats["coalesced"] >= 140
    assert fake.rejected == [] and sum(fake.rate_limited.values()) == 0


async def test_updates_survive_an_outage_with_bounded_pending(slack: Make) -> None:
    fake, outbox = await slack(limits={"tier3": (100, 50.0), "chat.postMessage": (10, 10.0)},
                               post_burst=10, tier3_per_minute=600, tier3_burst=10)
    messages = await post_messages(outbox, 5)
    fake.set_down(True)
    most_pending = 0
    down_until = time.monotonic() + 2.0
    i = 0
    while time.monotonic() < down_until:
        outbox.update(CHANNEL, messages[i % 5], f"during outage {i}", section(f"outage {i}"))
        most_pending = max(most_pending, outbox.pending)
        i += 1
        await asyncio.sleep(0.01)
    failed = [c for c in fake.calls_to("chat.update") if c.status == 503]
    assert failed, "the outbox kept trying while Slack was down"
    assert most_pending <= 5, "one pending update per message, however many were asked for"
    fake.set_down(False)
    await outbox.flush(15)
    for k, ts in enumerate(messages):
        last = max(j for j in range(i) if j % 5 == k)
        assert fake.messages[(CHANNEL, ts)].text == f"during outage {last}"
    assert outbox.pending == 0 and fake.rejected == []


@pytest.mark.parametrize("sdk_retries_429", [True, False], ids=["sdk-retries-first", "outbox-alone"])
async def test_rate_limited_updates_honour_retry_after_and_lose_nothing(slack: Make, sdk_retries_429: bool) -> None:
    # the outbox is configured faster than the fake allows, so it runs into 429s and must back off;
    # runtime.py's client retries a 429 once itself, so the outbox's own pause is tested without it too
    fake, outbox = await slack(limits={"tier3": (3, 3.0), "chat.postMessage": (10, 10.0)},
                               sdk_retries_429=sdk_retries_429, post_burst=10, tier3_per_minute=1200,
                               tier3_burst=20)
    messages = await post_messages(outbox, 4)
    for round_ in range(5):
        for k, ts in enumerate(messages):
            outbox.update(CHANNEL, ts, f"round {round_} message {k}")
        await asyncio.sleep(0.05)
    await outbox.flush(20)
    assert fake.rate_limited["chat.update"] >= 1, "the scenario should run into Slack's limit"
    assert fake.rate_limited["chat.update"] <= 4, "after a 429 the outbox waits for Retry-After"
    if not sdk_retries_429:
        assert outbox.stats["429"] == fake.rate_limited["chat.update"]
    for k, ts in enumerate(messages):
        assert fake.messages[(CHANNEL, ts)].text == f"round 4 message {k}"
    assert fake.rejected == []


async def test_set_reaction_keeps_exactly_one(slack: Make) -> None:
    fake, outbox = await slack(rate_limits=False, tier3_per_minute=6000, tier3_burst=20)
    (ts,) = await post_messages(outbox, 1)
    message = fake.messages[(CHANNEL, ts)]
    outbox.set_reaction(CHANNEL, ts, "gear")
    await outbox.flush(5)
    assert message.reactions == {"gear"}
    for name in ("runner", "hourglass", "white_check_mark"):
        outbox.set_reaction(CHANNEL, ts, name)
    await outbox.flush(5)
    assert message.reactions == {"white_check_mark"}
    outbox.set_reaction(CHANNEL, ts, "x")
    await outbox.flush(5)
    outbox.set_reaction(CHANNEL, ts, "x")
    await outbox.flush(5)
    assert message.reactions == {"x"}
    outbox.set_reaction(CHANNEL, ts, None)
    await outbox.flush(5)
    assert message.reactions == set()
    assert fake.rejected == []


async def test_invalid_blocks_are_left_out_and_the_text_still_goes_out(slack: Make) -> None:
    fake, outbox = await slack(rate_limits=False, tier3_per_minute=6000, tier3_burst=20)
    too_long = section("x" * 3001)  # a section's text is limited to 3000 characters
    ts = await outbox.post(CHANNEL, "posted with bad blocks", too_long)
    assert fake.messages[(CHANNEL, ts)].text == "posted with bad blocks"
    (card,) = await post_messages(outbox, 1)
    outbox.update(CHANNEL, card, "updated with bad blocks", too_long)
    await outbox.flush(5)
    message = fake.messages[(CHANNEL, card)]
    assert message.text == "updated with bad blocks"
    # chat.update keeps a message's old blocks unless told otherwise, and Slack shows blocks over text
    assert not message.blocks, "the stale blocks are cleared so the new text is what people see"
    assert outbox.stats["invalid_blocks"] == 2
    assert fake.rejected == []


async def test_a_refusal_is_not_retried(slack: Make) -> None:
    """Slack's ok:false answers (a spent trigger, a missing message) never pass by retrying."""
    fake, outbox = await slack(rate_limits=False, tier3_per_minute=6000, tier3_burst=20)
    view = {"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []}
    started = time.monotonic()
    with pytest.raises(SlackApiError) as caught:
        await outbox.call("views.open", trigger_id="never-issued", view=view)
    assert caught.value.response["error"] == "invalid_trigger_id"
    assert len(fake.calls_to("views.open")) == 1
    outbox.update(CHANNEL, "1.000001", "to a message that does not exist")
    await outbox.flush(5)
    assert len(fake.calls_to("chat.update")) == 1 and outbox.stats["dropped"] == 1
    assert time.monotonic() - started < 5
    fake.fail_next("chat.postMessage", status=500)
    assert await outbox.post(CHANNEL, "after a server error")  # retried
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [500, 200]


async def test_urgent_updates_go_ahead_of_pending_progress(slack: Make) -> None:
    """A task's final state is not stuck behind every busy task's progress in the chat.update budget."""
    fake, outbox = await slack(limits={"tier3": (100, 50.0), "chat.postMessage": (10, 10.0)},
                               post_burst=10, tier3_per_minute=60, tier3_burst=1)
    messages = await post_messages(outbox, 6)
    for i, ts in enumerate(messages[:5]):
        outbox.update(CHANNEL, ts, f"progress {i}", section(f"progress {i}"))
    outbox.update(CHANNEL, messages[5], "finished", section("*finished*"), urgent=True)
    await outbox.flush(30)
    order = [c.args.get("ts") for c in fake.calls_to("chat.update")]
    assert order.index(messages[5]) <= 1, order  # at most the one already in flight went first
    assert fake.messages[(CHANNEL, messages[5])].text == "finished"
