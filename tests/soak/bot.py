"""The bot under test: `superset-bot run --http` in process against the fake Slack, and what watches it.

`start_bot` builds it as the composition root does, over the soak's repo and agent (soak/workdir.py);
`Tracker` follows every task's state from the engine's events, `LogWatch` the bot's warnings,
`PostWatch` the outbox's thread posts, and `SoakBot` sends signed slash commands, clicks and mentions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from support.engineharness import make_engine, stop_agents, write_presets
from support.env import bot_settings
from support.fakeslack import FakeSlack
from support.slackharness import SIGNING_SECRET, SignedRequests

from soak.workdir import AGENT, isolate_git, make_repo
from superset_bot.composition import build_service
from superset_bot.config import Settings
from superset_bot.domain.events import EngineEvent, ProgressChanged, StateChanged
from superset_bot.engine.core import Engine
from superset_bot.frontends.slack.messages import SlackIds
from superset_bot.frontends.slack.runtime import SlackBot
from superset_bot.store import QUEUED, Store, Task

CHANNELS = ("C0SOAK1", "C0SOAK2", "C0SOAK3")
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
BOT_USER = "UBOT"
KEY_RE = re.compile(r"\[soak (\S+) \w+\]")
T = TypeVar("T")


class Stuck(Exception):
    """A task did not reach the state its scenario waits for in time."""



class Tracker:
    """The latest state of every task, from the engine's own StateChanged events (no polling).

    Its waits are progress-aware: a step may take as long as the bot keeps moving, so a long queue
    (300 tasks behind 6 slots) is not a violation, while a wedge still is. A wait for a task fails
    after `timeout` seconds in which either no task in the run changed state, or the task's own state
    did not change (time it spends queued while every slot is held by another task does not count;
    queued with a slot free does).
    """

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.history: dict[str, list[str]] = defaultdict(list)
        self.by_key: dict[str, str] = {}
        self.progress_events = 0
        self._changed = asyncio.Event()
        self.last_change = time.monotonic()  # any task's state, anywhere in the run
        self.changed_at: dict[str, float] = {}  # each task's own last state change
        self.slots_full: Callable[[], bool] = lambda: False  # set by start_bot from the engine's slots
        self.most_queued = 0
        self.longest_wait = (0.0, "")  # seconds, what: the longest single step a wait took

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ProgressChanged):
            self.progress_events += 1
        if not isinstance(event, StateChanged):
            return
        task = event.task
        self.tasks[task.id] = task
        self.history[task.id].append(task.state)
        self.last_change = self.changed_at[task.id] = time.monotonic()
        if task.state == QUEUED:
            self.most_queued = max(self.most_queued, sum(1 for t in self.tasks.values() if t.state == QUEUED))
        if event.previous is None and (found := KEY_RE.search(task.prompt)):
            self.by_key[found.group(1)] = task.id
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def run_state(self) -> str:
        """Where the run stands, for a Stuck message: states of all tasks, and the last change anywhere."""
        states = Counter(t.state for t in self.tasks.values())
        return (", ".join(f"{k} {v}" for k, v in sorted(states.items())) +
                f"; last state change anywhere {time.monotonic() - self.last_change:.0f} s ago")

    async def wait(self, check: Callable[[], T | None], timeout: float, what: str,
                   task_id: str | None = None) -> T:
        """`check()` until it answers; without `task_id` a fixed deadline, with it progress-aware (above)."""
        start = time.monotonic()
        excused = start  # the last moment the task was queued behind full slots
        while True:
            changed = self._changed
            result = check()
            now = time.monotonic()
            if result is not None and result is not False:
                if now - start > self.longest_wait[0]:
                    self.longest_wait = (now - start, what.split(" (history")[0])
                return result
            if task_id is None:
                idle, why = now - start, f"after {timeout:g} s"
            else:
                task = self.tasks.get(task_id)
                if task is not None and task.state == QUEUED and self.slots_full():
                    excused = now
                own = now - max(start, excused, self.changed_at.get(task_id, start))
                anywhere = now - max(start, self.last_change)
                idle, why = max(own, anywhere), (
                    f"its state did not change for {own:.0f} s" if own >= anywhere
                    else f"no task changed state for {anywhere:.0f} s")
                why += f", {now - start:.0f} s after the wait began; run: {self.run_state()}"
            if idle >= timeout:
                raise Stuck(f"{what} [{why}]")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(timeout - idle, 1.0))

    async def wait_state(self, task_id: str, states: Iterable[str], timeout: float) -> Task:
        wanted = frozenset(states)

        def reached() -> Task | None:
            task = self.tasks.get(task_id)
            return task if task is not None and task.state in wanted else None

        return await self.wait(reached, timeout, f"task {task_id} never reached {sorted(wanted)} "
                                                 f"(history: {self.history.get(task_id)})", task_id)


class LogWatch(logging.Handler):
    """Errors and warnings the bot and the Slack SDK logged while the soak ran."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[float, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("bot", "slack")):
            self.records.append((time.monotonic(), record))

    def errors(self, since: float = 0.0, until: float = float("inf")) -> list[str]:
        """ERROR records, and outbox warnings that mean an update was dropped (Slack refused it)."""
        found = []
        for when, record in self.records:
            if not since <= when <= until:
                continue
            text = record.getMessage()
            if record.levelno >= logging.ERROR or "refused" in text:
                extra = f" ({record.exc_info[1]!r})" if record.exc_info else ""
                found.append(f"{record.name}: {text[:300]}{extra}")
        return found


class PostWatch:
    """Times the outbox's thread posts (reviews, replies, cards): they are awaited and serialised per
    channel, so under load they queue; a wait on one is excused while its channel keeps delivering."""

    def __init__(self, outbox: Any) -> None:
        self.latencies: list[float] = []
        self.waiting: Counter[str] = Counter()  # posts under way per channel
        self.most_waiting = 0
        self.delivered_at: dict[str, float] = {}
        self.slowest_review = (0.0, "")
        inner = outbox.post

        async def post(channel: str, *args: Any, **kwargs: Any) -> str:
            began = time.monotonic()
            self.waiting[channel] += 1
            self.most_waiting = max(self.most_waiting, self.waiting[channel])
            try:
                ts = await inner(channel, *args, **kwargs)
            finally:
                self.waiting[channel] -= 1
            self.delivered_at[channel] = now = time.monotonic()
            self.latencies.append(now - began)
            return ts

        outbox.post = post

    def summary(self) -> str:
        done = sorted(self.latencies) or [0.0]
        return (f"thread posts: {len(self.latencies)}, slowest {done[-1]:.1f} s, 95th percentile "
                f"{done[int(len(done) * 0.95) - 1 if len(done) > 1 else 0]:.1f} s; at most {self.most_waiting} "
                f"under way in one channel; slowest review {self.slowest_review[0]:.0f} s ({self.slowest_review[1]})")


@dataclass
class SoakBot(SignedRequests):
    fake: FakeSlack
    slack: SlackBot
    engine: Engine
    store: Store
    repo: Path
    settings: Settings
    http: aiohttp.ClientSession
    tracker: Tracker
    posts: PostWatch
    counter: int = 0

    async def command(self, text: str, *, user: str, channel: str) -> str:
        status, key = await self.send_command(text, user=user, channel=channel)
        if status != 200:
            raise AssertionError(f"the bot answered {status} to /superset {text}")
        return key

    async def click(self, action_id: str, task_id: str, *, user: str, channel: str, message_ts: str) -> str:
        status, key = await self.send_click(action_id, task_id, user=user, channel=channel, message_ts=message_ts)
        if status != 200:
            raise AssertionError(f"the bot answered {status} to a {action_id} click")
        return key

    async def mention(self, *, user: str, channel: str, thread_ts: str, text: str) -> None:
        self.counter += 1
        event = {"type": "app_mention", "user": user, "channel": channel, "ts": f"{time.time():.6f}",
                 "thread_ts": thread_ts, "text": f"<@{BOT_USER}> {text}"}
        body = {"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                "event_id": f"EvSoak{self.counter}", "event_time": int(time.time()), "event": event}
        resp = await self.post_signed(json.dumps(body), "application/json")
        if resp.status != 200:
            raise AssertionError(f"the bot answered {resp.status} to an app_mention")

    def answers(self, key: str) -> list[str]:
        return [json.dumps(r["payload"]) for r in self.fake.responses_to_urls if r.get("key") == key]

    async def settle(self, timeout: float = 120) -> None:
        """Handler jobs and render queues done, then the outbox's coalesced queue delivered."""
        assert self.slack.frontend and self.slack.outbox
        await asyncio.wait_for(self.slack.frontend.wait_jobs(), timeout)
        await self.slack.outbox.flush(timeout)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await stop_agents(self.settings)
        await self.slack.stop()
        await self.engine.stop()
        await self.store.close()
        await self.http.close()
        await self.fake.stop()



async def current_task(sb: SoakBot, task_id: str) -> Task:
    task = await sb.store.get_task(task_id)
    assert task is not None
    return task


def slack_ids(sb: SoakBot, task: Task) -> SlackIds:
    """Where the task is in Slack, as the bot recorded it (no ids before its root message is posted)."""
    ids = sb.slack.frontend.messages.get(task.id) if sb.slack.frontend else None
    return ids or SlackIds("", "")


async def wait_review(sb: SoakBot, task_id: str, timeout: float, *, eager: bool, previous: str | None = None) -> str | None:
    """The ts of the task's review once Slack shows it: people click the buttons they can see.

    `eager` clicks at once instead, as a `/superset merge` typed the moment the agent is done would.
    Progress-aware like Tracker.wait: fails after `timeout` s in which the task's channel delivered no
    thread post, or in which no post was under way there (time queued behind other posts is excused).
    """
    start = excused = time.monotonic()
    while True:
        task = await current_task(sb, task_id)
        review_ts = slack_ids(sb, task).review_ts
        if eager:
            return review_ts
        now = time.monotonic()
        if review_ts and review_ts != previous and (task.channel, review_ts) in sb.fake.messages:
            if now - start > sb.posts.slowest_review[0]:
                sb.posts.slowest_review = (now - start, f"task {task_id} {task.state}")
            return review_ts
        channel = task.channel or ""
        if sb.posts.waiting[channel] > 0:
            excused = now
        quiet = now - max(start, sb.posts.delivered_at.get(channel, start))
        if max(quiet, now - excused) > timeout:
            raise Stuck(f"task {task_id} ({task.state}): no review message appeared in Slack [{now - start:.0f} s; "
                        f"review saved: {task.review is not None}, review_ts {review_ts}; channel {channel}: "
                        f"{sb.posts.waiting[channel]} posts under way, last delivered {quiet:.0f} s ago]")
        await asyncio.sleep(0.25)



def slack_limits(speed: float) -> dict[str, tuple[float, float]]:
    """The fake's budgets: Slack's bursts, Slack's rates times `speed`."""
    return {"chat.postMessage": (3, 1.0 * speed), "tier1": (5, speed / 60), "tier2": (10, 20 * speed / 60),
            "tier3": (15, 50 * speed / 60), "tier4": (20, 100 * speed / 60)}


async def start_bot(workdir: Path, *, speed: float, concurrency: int, agent_env: dict[str, str] | None = None,
                    env: dict[str, str] | None = None) -> SoakBot:
    """A bot as `superset-bot run --http` starts it (front end subscribed before the engine starts)."""
    workdir.mkdir(parents=True, exist_ok=True)
    isolate_git(workdir)
    fake = FakeSlack(limits=slack_limits(speed), bot_user_id=BOT_USER)
    await fake.start()
    for channel in CHANNELS:
        fake.add_channel(channel, channel.lower(), is_member=True)
    repo = make_repo(workdir / "repos" / "demo")
    preset = {"description": "soak agent", "agent": {"command": [sys.executable, str(AGENT), "{prompt}"]},
              "env": dict(agent_env or {})}
    presets_dir = write_presets(workdir / "presets", {"soak": preset})
    settings = bot_settings(workdir, repo, presets=presets_dir, **{
        "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url,
        "SUPERSET_DEFAULT_PRESET": "soak", "SUPERSET_MAX_CONCURRENT": str(concurrency),
        "SUPERSET_CANCEL_GRACE": "1s",  # the warm pool stays at its default, as users run it
        **(env or {}),
    })
    engine = await make_engine(settings)
    store = engine.store
    tracker = Tracker()
    engine.subscribe(tracker.on_event)
    tracker.slots_full = lambda: len(engine.slots.holders) >= engine.slots.limit
    service = build_service(engine)  # the composition root's, as `superset-bot run` builds it
    slack = SlackBot(settings, engine, http=True, host="127.0.0.1", port=0, housekeeper=service.housekeeper,
                     service=service)
    await slack.start()
    assert slack.outbox is not None
    # the outbox keeps its own (Slack's) budgets; scale them like the fake's
    slack.outbox.configure_budgets(tier3_per_minute=50 * speed, tier4_per_minute=100 * speed, post_rate=1.0 * speed)
    await engine.start()
    return SoakBot(fake, slack, engine, store, repo, settings, aiohttp.ClientSession(), tracker,
                   PostWatch(slack.outbox))

