"""Slack's Web API down (every call 503), or answering 500, while tasks run and finish.

The bot must ride out a 2-minute outage. That takes too long for `make test`, so the duration is a
parameter: here the scenario runs with a 15-second outage (long enough for several rounds of the
outbox's backoff), and `make soak` runs the same code for the full 2 minutes (`--outage 120`, both
kinds at once; the summary prints the figures). The scenario is tests/soak/outage.py:run_outage.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from soak.outage import run_outage
from support.fakeslack import FakeSlack

from superset_bot.frontends.slack.blocks import validate_blocks
from superset_bot.frontends.slack.outbox import Outbox, slack_retry_handlers

OUTAGE_SECONDS = 15.0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["down", "500"])
async def test_slack_outage_updates_coalesce_and_arrive_after(tmp_path: Path, kind: str) -> None:
    report = await run_outage(tmp_path, kind=kind, seconds=OUTAGE_SECONDS, tasks=6)
    print(report.summary())
    figures = report.figures
    # the agents kept the bot busy: many progress events while nothing could reach Slack ...
    assert figures["progress_during"] >= 60, report.summary()
    # ... yet after recovery each thread's messages were updated a bounded number of times
    assert figures["updates_after"] <= 4 * figures["tasks"], report.summary()
    # one pending update per message at most (root, card, review, the root's reaction), however long it lasts
    assert figures["most_pending"] <= 4 * figures["tasks"], report.summary()
    assert figures["calls_during"] > 0, "the bot kept trying while Slack was failing"
    # every thread shows its final state (merged, cancelled, finished), nothing rejected, no error logged
    # after recovery, and a task spawned afterwards goes through end to end
    assert report.violations == [], report.summary()


async def test_a_thread_reply_outlasts_a_long_run_of_slack_failures() -> None:
    """A post is not coalesced like an update: given up on, a review (with its buttons) is lost.

    The outbox used to give up after 6 attempts (15-45 s of backoff), so a 2-minute outage lost the
    replies of every task that finished meanwhile; now it keeps trying for `post_patience` seconds.
    Slack answers 429 (Retry-After: 1) 13 times in a row here: more than 6 attempts, each retried
    once by the SDK as runtime.py configures it.
    """
    async with FakeSlack(rate_limits=False) as fake, aiohttp.ClientSession() as session:
        fake.add_channel("C0OUT", "outbox")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session,
                                retry_handlers=slack_retry_handlers())
        outbox = Outbox(client, validate=validate_blocks, post_patience=120)
        outbox.start()
        try:
            fake.fail_next("chat.postMessage", count=13, status=429)
            ts = await outbox.post("C0OUT", "the review", [{"type": "section", "text": {"type": "mrkdwn",
                                                                                       "text": "*review*"}}])
            assert fake.messages[("C0OUT", ts)].text == "the review"
            statuses = [c.status for c in fake.calls_to("chat.postMessage")]
            assert statuses == [429] * 13 + [200]
            assert len(fake.messages) == 1 and fake.rejected == []
            # a refusal still fails at once: no retry can fix it
            with pytest.raises(SlackApiError):
                await outbox.post("C0NOWHERE", "to a channel that does not exist")
        finally:
            await outbox.stop(1)
