"""The outbox's budgets as Slack counts them: one per method, a chat.update reserve for final states,
a 429 pausing only its own method; and the status reaction of each message across a restart.

Real HTTP against the fake Slack through slack_sdk's client (built as runtime.py builds it); the
outbox runs on a manual clock, so a budget refills only when a test moves the clock: "sent without
waiting for a refill" is then a fact, not a race.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from support.fakeslack import FakeSlack
from support.outboxes import ManualClock, Outboxes

from superset_bot.frontends.slack.outbox import (
    Outbox,
)

CHANNEL = "C0BUDGET"
Make = Callable[..., Awaitable[tuple[FakeSlack, Outbox]]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slack(clock: ManualClock) -> AsyncIterator[Make]:
    """make(sdk_retries_429=True, **outbox_options) -> (fake, outbox) on the manual clock. The fake does not
    rate-limit here: what is tested is the outbox's own pacing (the fake's buckets: test_fakeslack.py)."""
    outboxes = Outboxes(CHANNEL, "budget")

    async def make(*, sdk_retries_429: bool = True, **options: Any) -> tuple[FakeSlack, Outbox]:
        options.setdefault("post_burst", 100)
        return await outboxes.make(rate_limits=False, sdk_retries_429=sdk_retries_429, clock=clock, **options)

    yield make
    await outboxes.close(0.5)


async def until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> float:
    """Real seconds until `condition` holds (fails after `timeout`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def ok_calls(fake: FakeSlack, method: str) -> list[Any]:
    return [c for c in fake.calls_to(method) if c.status == 200]


async def post_messages(outbox: Outbox, n: int) -> list[str]:
    return [await outbox.post(CHANNEL, f"card {i}") for i in range(n)]


# -- one budget per method ---------------------------------------------------------------------------


async def test_each_tier3_method_has_its_own_budget(slack: Make, clock: ManualClock) -> None:
    """Spending chat.update's budget leaves reactions.add's whole: reactions do not wait behind a
    backlog of updates, though those were queued first."""
    fake, outbox = await slack(tier3_burst=10, update_reserve=3)
    messages = await post_messages(outbox, 50)
    for i, ts in enumerate(messages):
        outbox.update(CHANNEL, ts, f"progress {i}")
    await until(lambda: len(fake.calls_to("chat.update")) == 7, what="the burst less the reserve")
    await asyncio.sleep(0.3)
    assert len(fake.calls_to("chat.update")) == 7, "the clock stood still: no refill, no more progress"
    assert outbox.pending == 43
    for ts in messages[:5]:
        outbox.set_reaction(CHANNEL, ts, "gear")
    waited = await until(lambda: len(ok_calls(fake, "reactions.add")) == 5, what="reactions behind the updates")
    assert waited < 2.0
    assert all(fake.messages[(CHANNEL, ts)].reactions == {"gear"} for ts in messages[:5])
    assert len(fake.calls_to("chat.update")) == 7, "the reactions did not use chat.update's tokens"
    # as the clock moves on the updates' budget refills and the backlog drains again
    clock.now += 60
    await until(lambda: len(fake.calls_to("chat.update")) >= 14, 5.0, "progress after a refill")
    assert fake.rejected == []


async def test_a_429_on_chat_update_does_not_delay_reactions(slack: Make, clock: ManualClock) -> None:
    """Slack's Retry-After pauses the method it came for; reactions.add goes on at once."""
    fake, outbox = await slack(sdk_retries_429=False)
    (ts,) = await post_messages(outbox, 1)
    fake.fail_next("chat.update", status=429)  # Retry-After: 1
    outbox.update(CHANNEL, ts, "after the 429")
    await until(lambda: outbox.stats["429"] == 1, what="the 429 reached the outbox")
    outbox.set_reaction(CHANNEL, ts, "gear")
    await until(lambda: fake.messages[(CHANNEL, ts)].reactions == {"gear"}, 2.0, "the reaction during the pause")
    await asyncio.sleep(0.3)
    assert [c.status for c in fake.calls_to("chat.update")] == [429], "chat.update waits for Retry-After"
    bucket = outbox.bucket("chat.update")
    assert bucket is not None and bucket.paused_until > clock.now
    clock.now += 1.0 + 4 * 60 / 50  # Retry-After, then (progress) the reserve and one token refilled
    await until(lambda: fake.messages[(CHANNEL, ts)].text == "after the 429", what="the update after the pause")
    assert [c.status for c in fake.calls_to("chat.update")] == [429, 200]
    assert fake.rejected == []


async def test_a_429_retried_inside_the_sdk_holds_up_only_its_method(slack: Make) -> None:
    """runtime.py's client sleeps out one 429 itself (Retry-After: 1, plus up to 1 s): meanwhile that
    chat.update is in flight, and the outbox's other methods go on."""
    fake, outbox = await slack(sdk_retries_429=True)
    (ts,) = await post_messages(outbox, 1)
    fake.fail_next("chat.update", status=429)
    outbox.update(CHANNEL, ts, "after the 429")
    await until(lambda: len(fake.calls_to("chat.update")) == 1, what="the first chat.update")
    outbox.set_reaction(CHANNEL, ts, "gear")
    waited = await until(lambda: fake.messages[(CHANNEL, ts)].reactions == {"gear"}, 2.0, "the reaction")
    assert fake.messages[(CHANNEL, ts)].text != "after the 429", "the update was still sleeping in the SDK"
    assert waited < 0.9
    await until(lambda: fake.messages[(CHANNEL, ts)].text == "after the 429", 5.0, "the SDK's retry")
    assert [c.status for c in fake.calls_to("chat.update")] == [429, 200]


# -- final states first ------------------------------------------------------------------------------


async def test_an_urgent_update_goes_first_and_needs_no_refill(slack: Make, clock: ManualClock) -> None:
    """50 busy cards keep the progress queue full and have spent chat.update's budget down to the
    reserve; a task's final state is the next call sent, at once, with the clock standing still."""
    fake, outbox = await slack(tier3_burst=10, update_reserve=3)
    messages = await post_messages(outbox, 51)
    for i, ts in enumerate(messages[:50]):
        outbox.update(CHANNEL, ts, f"progress {i}")
    await until(lambda: len(fake.calls_to("chat.update")) == 7, what="progress down to the reserve")
    await asyncio.sleep(0.3)
    assert len(fake.calls_to("chat.update")) == 7 and outbox.pending == 43, "progress leaves the reserve alone"
    before = clock.now
    outbox.update(CHANNEL, messages[50], "finished", urgent=True)
    waited = await until(lambda: len(fake.calls_to("chat.update")) == 8, 2.0, "the urgent update")
    assert fake.calls_to("chat.update")[7].args["ts"] == messages[50]
    assert fake.messages[(CHANNEL, messages[50])].text == "finished"
    assert clock.now == before and waited < 1.0, "sent from the reserve, without waiting for a refill"
    # a pending card's final state jumps the queue too (it replaces that card's progress)
    outbox.update(CHANNEL, messages[40], "also finished", urgent=True)
    await until(lambda: len(fake.calls_to("chat.update")) == 9, 2.0, "the second urgent update")
    assert fake.calls_to("chat.update")[8].args["ts"] == messages[40]
    assert outbox.pending == 42


async def test_an_urgent_update_is_the_next_call_whatever_is_queued(slack: Make) -> None:
    fake, outbox = await slack(tier3_burst=10)
    messages = await post_messages(outbox, 51)
    for i, ts in enumerate(messages[:50]):
        outbox.update(CHANNEL, ts, f"progress {i}")
    outbox.update(CHANNEL, messages[50], "finished", urgent=True)  # the worker has not run yet
    await until(lambda: len(fake.calls_to("chat.update")) >= 1, what="a first chat.update")
    assert fake.calls_to("chat.update")[0].args["ts"] == messages[50]


# -- reactions across a restart ------------------------------------------------------------------------


async def test_seeded_reactions_are_replaced_and_changes_are_reported(slack: Make) -> None:
    """After a restart the outbox knows, from what on_reaction persisted, which reaction to take off."""
    seen: list[tuple[str, str, str | None]] = []

    async def on_reaction(channel: str, ts: str, name: str | None) -> None:
        seen.append((channel, ts, name))

    fake, outbox = await slack(on_reaction=on_reaction)
    (ts,) = await post_messages(outbox, 1)
    message = fake.messages[(CHANNEL, ts)]
    message.reactions.add("runner")  # put there by the process before the restart
    outbox.seed_reactions({(CHANNEL, ts): "runner"})
    assert outbox.known_reaction(CHANNEL, ts) == "runner"
    outbox.set_reaction(CHANNEL, ts, "white_check_mark")
    await outbox.flush(5)
    assert message.reactions == {"white_check_mark"}
    assert seen == [(CHANNEL, ts, None), (CHANNEL, ts, "white_check_mark")]
    outbox.seed_reactions({(CHANNEL, ts): "runner"})  # stale: what this outbox saw itself wins
    assert outbox.known_reaction(CHANNEL, ts) == "white_check_mark"
    assert fake.rejected == []


async def test_stale_seeds_and_reactions_already_there(slack: Make) -> None:
    seen: list[str | None] = []

    async def on_reaction(channel: str, ts: str, name: str | None) -> None:
        seen.append(name)
        raise RuntimeError("the store is away")  # logged; the outbox goes on

    fake, outbox = await slack(on_reaction=on_reaction)
    stale, doubled = await post_messages(outbox, 2)
    # the seed says "runner", but someone took it off: reactions.remove answers no_reaction
    outbox.seed_reactions({(CHANNEL, stale): "runner"})
    outbox.set_reaction(CHANNEL, stale, "x")
    # the process before the restart added "x" but died before persisting it: already_reacted
    fake.messages[(CHANNEL, doubled)].reactions.add("x")
    outbox.set_reaction(CHANNEL, doubled, "x")
    await outbox.flush(5)
    assert fake.messages[(CHANNEL, stale)].reactions == {"x"}
    assert fake.messages[(CHANNEL, doubled)].reactions == {"x"}
    assert outbox.stats["reaction_stale"] == 1
    assert sorted(c.response.get("error", "") for c in fake.rejected) == ["already_reacted", "no_reaction"]
    assert outbox.known_reaction(CHANNEL, doubled) == "x"
    assert seen.count("x") == 2 and None in seen
    outbox.set_reaction(CHANNEL, doubled, None)  # and it can be taken off again
    await outbox.flush(5)
    assert fake.messages[(CHANNEL, doubled)].reactions == set()
