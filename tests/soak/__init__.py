"""The soak (`make soak`: many tasks with random fates and Slack faults) and the Slack outage scenario.

Everything is real except Slack: the bot (SlackBot over HTTP, Engine, Store) runs against
tests/support/fakeslack/ over real HTTP, tasks arrive as signed slash commands, buttons as signed
block_actions and follow-ups as signed app_mention events, agents are real processes
(soak/agent.py) in real git worktrees. Slack's budgets are scaled by `speed` on *both* sides (the
fake's rate limits and the bot's outbox), so the pressure on the outbox stays Slack's while 100
tasks fit in a few minutes instead of the hour Slack's real Tier 3 budget would take.

`run_soak` spawns N tasks, acts on them at random (cancel, merge, discard, follow-up, double
clicks) while the fake answers a fraction of Web API calls with 429 or 500, then checks
invariants: every task in the final state its scenario allows; database, git and worktrees agree;
each thread's root, status card, reaction and review show the task's state; Slack rejected no
payload; the outbox left nothing behind. `run_outage` takes Slack down (or has it answer 500) for
a while as tasks stream and finish, then checks that updates were coalesced and delivered after.

Run: `PYTHONPATH=tests .venv/bin/python -m soak --tasks 100 --seed 1 --outage 120`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from support.engineharness import stop_agents
from support.env import bot_settings
from support.fakeslack import FakeSlack
from support.slackharness import SIGNING_SECRET, SignedRequests

from superset_bot.config import Settings
from superset_bot.domain.events import EngineEvent, ProgressChanged, StateChanged
from superset_bot.engine.core import Engine
from superset_bot.frontends.slack.blocks import (
    ACTION_CANCEL,
    ACTION_DISCARD,
    ACTION_MERGE,
    STATE_EMOJI,
    STATE_LABEL,
)
from superset_bot.frontends.slack.messages import SlackIds
from superset_bot.frontends.slack.outbox import TokenBucket
from superset_bot.frontends.slack.runtime import SlackBot
from superset_bot.git.naming import POOL_PREFIX
from superset_bot.plugins.hooks import builtin_hooks
from superset_bot.presets import load_presets
from superset_bot.store import (
    CANCELLED,
    CLOSED_STATES,
    DISCARDED,
    FAILED,
    FINISHED,
    MERGED,
    MERGING,
    QUEUED,
    REVIEWABLE_STATES,
    RUNNING,
    Store,
    Task,
)

__all__ = ["ACTION_CANCEL", "CHANNELS", "PLANS", "USERS", "Report", "Stuck", "make_plans", "run_outage",
           "run_soak", "start_bot"]

AGENT = Path(__file__).resolve().with_name("agent.py")
CHANNELS = ("C0SOAK1", "C0SOAK2", "C0SOAK3")
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
BOT_USER = "UBOT"
FINAL_STATES = frozenset({MERGED, DISCARDED, CANCELLED, FAILED, FINISHED})
KEY_RE = re.compile(r"\[soak (\S+) \w+\]")
T = TypeVar("T")

log = logging.getLogger("soak")


class Stuck(Exception):
    """A task did not reach the state its scenario waits for in time."""


# --------------------------------------------------------------------------- the bot under test


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


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """git for setting up and inspecting, synchronously: only called while the bot is idle."""
    out = subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True)
    return out.stdout.strip()


def isolate_git(workdir: Path) -> None:
    """A private git config (as tests/conftest.py gives pytest runs) when run on its own."""
    if os.environ.get("GIT_CONFIG_GLOBAL"):
        return
    cfg = workdir / "gitconfig"
    cfg.write_text("[user]\n\tname = Soak\n\temail = soak@example.com\n[init]\n\tdefaultBranch = main\n")
    os.environ["GIT_CONFIG_GLOBAL"] = str(cfg)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# soak\n")
    (path / "shared.txt").write_text("base\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


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
    presets_dir = workdir / "presets"
    presets_dir.mkdir(parents=True, exist_ok=True)
    preset = {"description": "soak agent", "agent": {"command": [sys.executable, str(AGENT), "{prompt}"]},
              "env": dict(agent_env or {})}
    (presets_dir / "soak.json").write_text(json.dumps(preset))
    settings = bot_settings(workdir, repo, presets=presets_dir, **{
        "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url,
        "SUPERSET_DEFAULT_PRESET": "soak", "SUPERSET_MAX_CONCURRENT": str(concurrency),
        "SUPERSET_CANCEL_GRACE": "1s",  # the warm pool stays at its default, as users run it
        **(env or {}),
    })
    store = await Store.open(settings.db_path)
    engine = Engine(settings, store, load_presets(presets_dir), builtin_hooks())
    tracker = Tracker()
    engine.subscribe(tracker.on_event)
    tracker.slots_full = lambda: len(engine.slots.holders) >= engine.slots.limit
    slack = SlackBot(settings, engine, http=True, host="127.0.0.1", port=0)
    await slack.start()
    assert slack.outbox is not None
    # the outbox keeps its own (Slack's) budgets; scale them like the fake's
    slack.outbox.tier3 = TokenBucket(50 * speed / 60, 5, slack.outbox.clock)
    slack.outbox.post_rate = 1.0 * speed
    await engine.start()
    return SoakBot(fake, slack, engine, store, repo, settings, aiohttp.ClientSession(), tracker,
                   PostWatch(slack.outbox))


# --------------------------------------------------------------------------- invariants


def _worktrees(repo: Path) -> set[str]:
    paths = {line[len("worktree "):] for line in git(repo, "worktree", "list", "--porcelain").splitlines()
             if line.startswith("worktree ")}
    return {str(Path(p).resolve()) for p in paths} - {str(repo.resolve())}


def _pooled(path: str) -> bool:
    """A warm-pool worktree (SUPERSET_POOL_SIZE, superset_bot/engine/pool.py) belongs to the pool, not to a lost task."""
    return Path(path).name.startswith(POOL_PREFIX)


def check_git(sb: SoakBot, tasks: dict[str, Task]) -> list[str]:
    """Database, git and the worktrees folder agree: nothing orphaned, nothing lost."""
    problems: list[str] = []
    repo = sb.repo
    branches = set(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/superset/").split())
    registered = _worktrees(repo)
    root = sb.settings.worktrees_dir
    on_disk = {str(p.resolve()) for repo_dir in root.iterdir() if repo_dir.is_dir() for p in repo_dir.iterdir()} \
        if root.is_dir() else set()  # worktrees/<repo>/<task>
    keep_worktree = {str(Path(t.worktree).resolve()) for t in tasks.values()
                     if t.worktree and t.state in REVIEWABLE_STATES}
    keep_branch = {t.branch for t in tasks.values() if t.branch and t.state in REVIEWABLE_STATES}
    for path in sorted(registered - keep_worktree):
        if not _pooled(path):
            problems.append(f"orphan worktree registered in git: {path}")
    for path in sorted(on_disk - keep_worktree - registered):
        if not _pooled(path):
            problems.append(f"orphan folder in {root}: {path}")
    for branch in sorted(branches - keep_branch):
        if not _pooled(branch):
            problems.append(f"orphan branch {branch}")
    for task in tasks.values():
        where = f"task {task.id} ({task.state})"
        if task.state in REVIEWABLE_STATES and task.worktree:
            path = str(Path(task.worktree).resolve())
            if path not in registered or not Path(path).is_dir():
                problems.append(f"{where}: its worktree {path} is gone but the task awaits review")
            if task.branch and task.branch not in branches:
                problems.append(f"{where}: its branch {task.branch} is gone but the task awaits review")
        if task.state in CLOSED_STATES:
            if task.worktree and (Path(task.worktree).exists() or str(Path(task.worktree).resolve()) in registered):
                problems.append(f"{where}: its worktree {task.worktree} is still there")
            if task.branch and task.branch in branches:
                problems.append(f"{where}: its branch {task.branch} is still there")
        if task.state == MERGED:
            base = task.base_branch or "main"
            merged = task.merge_commit and subprocess.run(
                ["git", "merge-base", "--is-ancestor", task.merge_commit, base], cwd=repo,
                capture_output=True).returncode == 0
            if not merged:
                problems.append(f"{where}: merge commit {task.merge_commit} is not on {base}")
    return problems


def check_threads(sb: SoakBot, tasks: Iterable[Task]) -> list[str]:
    """Each thread's root, reaction, status card and review show the task's state now."""
    problems: list[str] = []
    for task in tasks:
        ids = _slack_ids(sb, task)
        if not (task.channel and ids.thread_ts):
            problems.append(f"task {task.id}: no thread")
            continue
        where = f"task {task.id} ({task.state})"
        label, emoji = STATE_LABEL[task.state], STATE_EMOJI[task.state]
        root = sb.fake.messages.get((task.channel, ids.thread_ts))
        if root is None:
            problems.append(f"{where}: its root message was never posted")
            continue
        if f"· {label}:" not in (root.text or ""):
            problems.append(f"{where}: the root message says {(root.text or '')[:80]!r}")
        if root.reactions != {emoji}:
            problems.append(f"{where}: the root's reactions are {sorted(root.reactions)}, expected [{emoji!r}]")
        card = sb.fake.messages.get((task.channel, ids.status_ts)) if ids.status_ts else None
        if card is None:
            problems.append(f"{where}: no status card")
        elif not (card.text or "").startswith(f"Task {task.id}: {label} "):
            problems.append(f"{where}: the status card says {(card.text or '')[:80]!r}")
        review = sb.fake.messages.get((task.channel, ids.review_ts)) if ids.review_ts else None
        if ids.review_ts and review is None:
            problems.append(f"{where}: review_ts {ids.review_ts} is not a message in Slack")
        if task.state in REVIEWABLE_STATES and task.runs >= 1 and task.branch and not ids.review_ts:
            problems.append(f"{where}: the agent ran but no review was posted")
        if review is not None:
            live = {el.get("action_id") for block in review.blocks or [] if block.get("type") == "actions"
                    for el in block.get("elements", [])}
            if task.state in CLOSED_STATES and live & {ACTION_MERGE, ACTION_DISCARD}:
                problems.append(f"{where}: its review still has live buttons {sorted(live)}")
            if task.state in REVIEWABLE_STATES and ACTION_DISCARD not in live:
                problems.append(f"{where}: its review has no Discard button")
        seen: Counter[str] = Counter(json.dumps([m.text, m.blocks]) for m in sb.fake.thread(task.channel, ids.thread_ts)
                                     if not m.deleted)
        for content, n in seen.items():
            if n > 1:
                problems.append(f"{where}: the same message was posted {n} times: {content[:120]}")
    return problems


def check_slack(sb: SoakBot) -> list[str]:
    problems = [f"Slack rejected {c.method} ({c.status}): {json.dumps(c.response)[:200]}" for c in sb.fake.rejected]
    assert sb.slack.outbox is not None
    if sb.slack.outbox.pending:
        problems.append(f"the outbox still holds {sb.slack.outbox.pending} updates")
    return problems


async def eventually(check: Callable[[], Awaitable[list[str]]], timeout: float) -> list[str]:
    """Slack is eventually consistent with the store: retry a check until it passes or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        problems = await check()
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- the soak


@dataclass
class Report:
    name: str
    seed: int
    lines: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    housekept: list[str] = field(default_factory=list)  # what housekeeping cleaned during the run
    faults: Counter[str] = field(default_factory=Counter)
    figures: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        head = [f"== {self.name} (seed {self.seed})", *self.lines]
        found = list(dict.fromkeys(self.violations))  # a problem seen by both checks is listed once
        head.append(f"invariant violations: {len(found)}")
        head.extend(f"  - {v}" for v in found[:50])
        if len(found) > 50:
            head.append(f"  ... and {len(found) - 50} more")
        return "\n".join(head)


# weights of what happens to a task (the agent mode follows from it)
PLANS: dict[str, int] = {"merge": 30, "discard": 12, "discard_running": 6, "cancel_running": 12,
                         "cancel_queued": 6, "fail": 10, "noop_merge": 5, "conflict": 7, "leave": 12}


@dataclass
class Plan:
    key: str
    kind: str
    mode: str
    channel: str
    user: str
    double: bool  # click twice at once
    followup: bool
    then_discard: bool
    pause: float
    task_id: str | None = None
    expected: frozenset[str] = frozenset()
    edit_runs: int = 0  # runs that appended a line to soak/KEY.txt

    def describe(self) -> str:
        extras = [x for x, on in (("double-click", self.double), ("follow-up", self.followup),
                                  ("then discard", self.then_discard)) if on]
        return f"{self.kind}{' + ' + ', '.join(extras) if extras else ''}"


def make_plans(n: int, seed: int) -> list[Plan]:
    plans = []
    for i in range(n):
        rng = random.Random(f"{seed}-{i}")  # each task's fate depends only on (seed, i), not on timing
        kind = rng.choices(list(PLANS), weights=list(PLANS.values()))[0]
        mode = {"discard_running": "slow", "cancel_running": "slow", "cancel_queued": "slow", "fail": "fail",
                "noop_merge": "noop", "conflict": "conflict"}.get(kind, "edit")
        plans.append(Plan(key=f"t{i:03d}", kind=kind, mode=mode, channel=CHANNELS[i % len(CHANNELS)],
                          user=USERS[rng.randrange(len(USERS))], double=rng.random() < 0.3,
                          followup=rng.random() < 0.3, then_discard=rng.random() < 0.5, pause=rng.random() * 0.5))
    return plans


async def _click(sb: SoakBot, plan: Plan, report: Report, action: str, message_ts: str | None) -> list[str]:
    assert plan.task_id
    times = 2 if plan.double else 1
    report.actions[action.removeprefix("task_") + (" x2" if plan.double else "")] += 1
    return list(await asyncio.gather(*(sb.click(action, plan.task_id, user=plan.user, channel=plan.channel,
                                                  message_ts=message_ts or "1.0") for _ in range(times))))


async def _current(sb: SoakBot, task_id: str) -> Task:
    task = await sb.store.get_task(task_id)
    assert task is not None
    return task


def _slack_ids(sb: SoakBot, task: Task) -> SlackIds:
    """Where the task is in Slack, as the bot recorded it (no ids before its root message is posted)."""
    ids = sb.slack.frontend.messages.get(task.id) if sb.slack.frontend else None
    return ids or SlackIds("", "")


async def _review(sb: SoakBot, task_id: str, timeout: float, *, eager: bool, previous: str | None = None) -> str | None:
    """The ts of the task's review once Slack shows it: people click the buttons they can see.

    `eager` clicks at once instead, as a `/superset merge` typed the moment the agent is done would.
    Progress-aware like Tracker.wait: fails after `timeout` s in which the task's channel delivered no
    thread post, or in which no post was under way there (time queued behind other posts is excused).
    """
    start = excused = time.monotonic()
    while True:
        task = await _current(sb, task_id)
        review_ts = _slack_ids(sb, task).review_ts
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


async def drive(sb: SoakBot, plan: Plan, report: Report, timeout: float, eager: bool = False) -> None:
    """One task's life: spawned by a slash command, then what its plan says, waiting on real states."""
    tracker = sb.tracker
    await sb.command(f"spawn [soak {plan.key} {plan.mode}] soak task {plan.key}", user=plan.user,
                     channel=plan.channel)
    report.actions["spawn"] += 1
    plan.task_id = task_id = await tracker.wait(lambda: tracker.by_key.get(plan.key), timeout,
                                                f"{plan.key}: the spawn never created a task")
    kind = plan.kind
    if kind == "cancel_queued":
        await asyncio.sleep(plan.pause)
        await _click(sb, plan, report, ACTION_CANCEL, None)
        await tracker.wait_state(task_id, REVIEWABLE_STATES, timeout)
        plan.expected = frozenset({CANCELLED})
        if plan.then_discard:
            await _click(sb, plan, report, ACTION_DISCARD, None)
            await tracker.wait_state(task_id, {DISCARDED}, timeout)
            plan.expected = frozenset({DISCARDED})
        return
    if kind in ("cancel_running", "discard_running"):
        await tracker.wait_state(task_id, {RUNNING}, timeout)
        await asyncio.sleep(plan.pause)
        status_ts = _slack_ids(sb, await _current(sb, task_id)).status_ts
        if kind == "discard_running":
            await _click(sb, plan, report, ACTION_DISCARD, status_ts)
            await tracker.wait_state(task_id, {DISCARDED}, timeout)
            plan.expected = frozenset({DISCARDED})
            return
        await _click(sb, plan, report, ACTION_CANCEL, status_ts)
        await tracker.wait_state(task_id, REVIEWABLE_STATES, timeout)
        plan.expected = frozenset({CANCELLED})
        if plan.then_discard:
            await _click(sb, plan, report, ACTION_DISCARD, await _review(sb, task_id, timeout, eager=eager))
            await tracker.wait_state(task_id, {DISCARDED}, timeout)
            plan.expected = frozenset({DISCARDED})
        return
    task = await tracker.wait_state(task_id, REVIEWABLE_STATES, timeout)
    review_ts = await _review(sb, task_id, timeout, eager=eager)
    if plan.mode == "edit" and task.state == FINISHED:
        plan.edit_runs = 1
    if plan.followup and task.state in (FINISHED, FAILED):
        runs = task.runs
        await sb.mention(user=plan.user, channel=plan.channel, thread_ts=_slack_ids(sb, task).thread_ts,
                         text=f"[soak {plan.key} {'noop' if plan.mode == 'noop' else 'edit'}] one more please")
        report.actions["follow-up"] += 1

        def rerun() -> Task | None:
            now = tracker.tasks.get(task_id)
            return now if now and now.runs > runs and now.state in REVIEWABLE_STATES else None

        task = await tracker.wait(rerun, timeout, f"task {task_id}: the follow-up never ran "
                                                  f"(history: {tracker.history.get(task_id)})", task_id)
        if task.state == FINISHED and plan.mode != "noop":
            plan.edit_runs += 1
        review_ts = await _review(sb, task_id, timeout, eager=eager, previous=review_ts)
    if kind == "leave" or (kind == "fail" and not plan.followup and not plan.then_discard):
        plan.expected = frozenset({task.state})
        return
    if kind == "discard" or (kind == "fail" and not plan.followup):
        await _click(sb, plan, report, ACTION_DISCARD, review_ts)
        await tracker.wait_state(task_id, {DISCARDED}, timeout)
        plan.expected = frozenset({DISCARDED})
        return
    # merge, noop_merge, conflict, fail + follow-up: try to merge
    claims = tracker.history[task_id].count(MERGING)

    def merge_settled() -> Task | None:
        now = tracker.tasks.get(task_id)
        tried = tracker.history[task_id].count(MERGING) > claims
        return now if tried and now is not None and now.state != MERGING else None

    keys = await _click(sb, plan, report, ACTION_MERGE, review_ts)
    task = await tracker.wait(merge_settled, timeout, f"task {task_id}: the merge never settled "
                                                      f"(history: {tracker.history.get(task_id)})", task_id)
    if kind == "merge" or (kind == "fail" and plan.followup):
        plan.expected = frozenset({MERGED})
        return
    plan.expected = frozenset({MERGED, DISCARDED}) if kind == "conflict" else frozenset({DISCARDED})
    if task.state != MERGED:
        await _refused_merge_was_explained(sb, keys, task_id, report)
        await _click(sb, plan, report, ACTION_DISCARD, review_ts)
        await tracker.wait_state(task_id, {DISCARDED}, timeout)


async def _refused_merge_was_explained(sb: SoakBot, keys: list[str], task_id: str, report: Report) -> None:
    """A refused merge answers the clicker with a reason (conflicts or nothing to merge)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        texts = " ".join(a for key in keys for a in sb.answers(key))
        if "conflicts with" in texts or "Nothing to merge" in texts:
            return
        await asyncio.sleep(0.2)
    report.violations.append(f"task {task_id}: a refused merge got no explanation (answers: "
                             f"{[sb.answers(k) for k in keys]})")


async def run_soak(workdir: Path, *, tasks: int = 100, seed: int = 1, concurrency: int = 6,
                   fault_rate: float = 0.1, speed: float = 20.0, spawn_gap: float = 0.15,
                   timeout: float = 180.0, eager: bool = False, patience: float = 120.0) -> Report:
    """N tasks with random fates and random Slack faults; returns the report (violations must be empty)."""
    report = Report(f"soak: {tasks} tasks, concurrency {concurrency}, {fault_rate:.0%} of Web API calls "
                    f"answered 429/500, Slack budgets x{speed:g}", seed)
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    started = time.monotonic()
    sb = await start_bot(workdir, speed=speed, concurrency=concurrency)
    try:
        # Bolt calls auth.test itself (not through the outbox) on the first request and, if Slack answers
        # 500, drops that request: a bug outside the soak's files, and not what the soak is about.
        # One command before the faults start lets Bolt cache it, so the soak tests everything else.
        warmup = await sb.command("help", user=USERS[0], channel=CHANNELS[0])
        await sb.tracker.wait(lambda: bool(sb.answers(warmup)), 30, "the bot never answered /superset help")
        sb.fake.inject_faults(rate=fault_rate, statuses=(429, 500), seed=seed)
        plans = make_plans(tasks, seed)
        rng = random.Random(seed)

        async def one(plan: Plan) -> None:
            try:
                await drive(sb, plan, report, timeout, eager)
            except Stuck as exc:
                report.violations.append(f"{plan.key} ({plan.describe()}): {exc}")
            except Exception as exc:
                log.exception("soak driver of %s failed", plan.key)
                report.violations.append(f"{plan.key} ({plan.describe()}): the soak driver failed: {exc!r}")

        # housekeeping runs all along, as the scheduler would but far more often, so its cleanup
        # races with cancels, discards and merges: it may remove only what no open task owns
        housekeeping = asyncio.create_task(_housekeep(sb, report))
        drivers = []
        for plan in plans:
            drivers.append(asyncio.create_task(one(plan)))
            await asyncio.sleep(rng.random() * spawn_gap * 2)
        await asyncio.gather(*drivers)
        driven = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await sb.settle(timeout)
        await _verify(sb, plans, report, timeout=patience)
        before_cleanup = Counter(t.state for t in await sb.store.list_tasks())
        # close what is left (by slash command this time) so the end state is empty: nothing may linger
        left = [t for t in await sb.store.list_tasks() if t.state in REVIEWABLE_STATES]
        for task in left:
            await sb.command(f"discard {task.id}", user=USERS[0], channel=task.channel or CHANNELS[0])
            report.actions["discard command"] += 1
        for task in left:
            try:
                await sb.tracker.wait_state(task.id, {DISCARDED}, timeout)
            except Stuck as exc:
                report.violations.append(f"cleanup: {exc}")
        for plan in plans:
            if plan.task_id and any(t.id == plan.task_id for t in left):
                plan.expected = frozenset({DISCARDED})
        with contextlib.suppress(TimeoutError):
            await sb.settle(timeout)
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeping
        before = len(report.violations)
        await _verify(sb, plans, report, timeout=patience)
        leftovers = set(git(sb.repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/superset/").split())
        leftovers |= _worktrees(sb.repo)
        leftovers = {x for x in leftovers if not _pooled(x)}
        if leftovers:
            report.violations.append(f"after discarding everything, still there: {sorted(leftovers)}")
        report.violations.extend(f"bot log: {e}" for e in watch.errors())
        states = Counter(t.state for t in await sb.store.list_tasks())
        calls = Counter(c.method for c in sb.fake.calls)
        assert sb.slack.outbox is not None
        report.faults = Counter(sb.fake.faults_injected)
        report.lines += [
            f"tasks: {tasks} spawned, {sum(1 for p in plans if p.task_id)} created; states before cleanup: "
            + ", ".join(f"{k} {v}" for k, v in sorted(before_cleanup.items())),
            "plans: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(p.kind for p in plans).items())),
            "actions: " + ", ".join(f"{k} {v}" for k, v in sorted(report.actions.items())),
            "final states: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
            f"faults injected: 429 x {report.faults['429']}, 500 x {report.faults['500']} "
            f"(of {len(sb.fake.calls)} Web API calls; chat.postMessage {calls['chat.postMessage']}, "
            f"chat.update {calls['chat.update']}, reactions {calls['reactions.add'] + calls['reactions.remove']})",
            f"fake's own 429s (budget): {sum(sb.fake.rate_limited.values())}; outbox: "
            + ", ".join(f"{k} {sb.slack.outbox.stats[k]}" for k in ("429", "coalesced", "dropped", "invalid_blocks")),
            f"housekeeping: {report.actions['housekeeping cycle']} prune + reconcile cycles during the run, "
            f"{report.actions['housekeeping cleaned']} leftovers cleaned, "
            f"{report.actions['housekeeping error']} errors" + "".join(f"\n  {x}" for x in report.housekept[:8]),
            f"queue: at most {sb.tracker.most_queued} tasks queued at once; longest step waited "
            f"{sb.tracker.longest_wait[0]:.0f} s ({sb.tracker.longest_wait[1]}); {sb.posts.summary()}",
            f"time: {driven - started:.1f} s driving, {time.monotonic() - started:.1f} s in all; "
            f"violations found in the final check: {len(report.violations) - before}",
        ]
    finally:
        logging.getLogger().removeHandler(watch)
        await sb.stop()
    return report


async def _housekeep(sb: SoakBot, report: Report, every: float = 1.5) -> None:
    """Prune (orphans, leftovers) and reconcile over and over while the tasks run."""
    keeper = sb.slack.housekeeper
    while True:
        await asyncio.sleep(every)
        try:
            pruned = await keeper.prune()
            await keeper.reconcile()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("soak: housekeeping failed")
            report.violations.append(f"housekeeping raised {exc!r}")
            continue
        report.actions["housekeeping cycle"] += 1
        report.actions["housekeeping cleaned"] += len(pruned.cleaned)
        report.actions["housekeeping error"] += len(pruned.errors)
        report.housekept += [*pruned.cleaned, *(f"error: {e}" for e in pruned.errors)]


async def _verify(sb: SoakBot, plans: list[Plan], report: Report, timeout: float) -> None:
    tasks = {t.id: t for t in await sb.store.list_tasks()}
    for plan in plans:
        task = tasks.get(plan.task_id or "")
        if task is None:
            continue  # already reported by its driver
        if task.state not in FINAL_STATES:
            report.violations.append(f"task {task.id} ({plan.describe()}): ended {task.state}, not a final state")
        elif plan.expected and task.state not in plan.expected:
            report.violations.append(f"task {task.id} ({plan.describe()}): ended {task.state}, expected "
                                     f"{'/'.join(sorted(plan.expected))} (reason: {task.reason})")
        if task.state == MERGED and plan.edit_runs:
            content = git(sb.repo, "show", f"{task.base_branch or 'main'}:soak/{plan.key}.txt", check=False)
            if len(content.splitlines()) != plan.edit_runs:
                report.violations.append(f"task {task.id} ({plan.describe()}): merged, but soak/{plan.key}.txt on "
                                         f"its base has {len(content.splitlines())} lines, expected {plan.edit_runs}")
    report.violations.extend(check_git(sb, tasks))

    async def slack_side() -> list[str]:
        fresh = [t for t in await sb.store.list_tasks()]
        return check_threads(sb, fresh) + check_slack(sb)

    report.violations.extend(await eventually(slack_side, timeout))


# --------------------------------------------------------------------------- a Slack outage


async def run_outage(workdir: Path, *, kind: str, seconds: float, tasks: int = 6, seed: int = 1,
                     speed: float = 10.0) -> Report:
    """Slack down (`kind="down"`: every call 503) or failing (`"500"`) for `seconds` while tasks stream
    and finish, one is cancelled and one (done before the outage) merged; afterwards every thread must
    show the final state, the updates coalesced (a bounded number of chat.update calls, not one per
    progress event) and the outbox's queue bounded by the number of messages meanwhile."""
    if kind not in ("down", "500"):
        raise ValueError(f"kind is 'down' or '500', not {kind!r}")
    report = Report(f"Slack {'down (503)' if kind == 'down' else 'answering 500'} for {seconds:g} s "
                    f"while {tasks} tasks stream and finish", seed)
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    # agents stream through most of the outage, so they start before it and finish during it
    sb = await start_bot(workdir, speed=speed, concurrency=tasks + 1,
                         agent_env={"SOAK_SECONDS": str(max(2.0, seconds * 0.8))})
    try:
        tracker = sb.tracker
        ids = []
        for i in range(tasks):
            # the first is done before the outage: its review is up, and its Merge is clicked while Slack is down
            mode = "edit" if i == 0 else "stream"
            await sb.command(f"spawn [soak o{i} {mode}] work through the outage", user=USERS[i % len(USERS)],
                             channel=CHANNELS[i % len(CHANNELS)])
            ids.append(await tracker.wait(lambda i=i: tracker.by_key.get(f"o{i}"), 60, f"o{i} was not created"))
        merged_id, cancelled_id = ids[0], ids[1]
        await tracker.wait_state(merged_id, {FINISHED}, 60)
        merge_on = await _review(sb, merged_id, 60, eager=False)
        for task_id in ids[1:]:
            await tracker.wait_state(task_id, {RUNNING}, 60)

        async def cards_posted() -> list[str]:
            return [t.id for t in await sb.store.list_tasks() if not _slack_ids(sb, t).status_ts]

        if await eventually(cards_posted, 30):
            report.violations.append("the status cards were not posted before the outage")

        assert sb.slack.outbox is not None
        outbox = sb.slack.outbox
        progress_before = tracker.progress_events
        calls_before = len(sb.fake.calls)
        if kind == "down":
            sb.fake.set_down(True)
        else:
            sb.fake.inject_faults(rate=1.0, statuses=(500,), seed=seed)
        outage_start = time.monotonic()
        most_pending = 0
        acted: dict[str, str] = {}
        while time.monotonic() - outage_start < seconds:
            most_pending = max(most_pending, outbox.pending)
            now = {i: tracker.tasks[i] for i in ids}
            if "cancel" not in acted and now[cancelled_id].state == RUNNING \
                    and time.monotonic() - outage_start > seconds / 5:
                acted["cancel"] = await sb.click(ACTION_CANCEL, cancelled_id, user=USERS[1 % len(USERS)],
                                                 channel=now[cancelled_id].channel or "", message_ts="1.0")
            if "merge" not in acted and time.monotonic() - outage_start > seconds / 3:
                acted["merge"] = await sb.click(ACTION_MERGE, merged_id, user=USERS[0], channel=now[merged_id].channel
                                                or "", message_ts=merge_on or "1.0")
            if "healthz" not in acted and time.monotonic() - outage_start > seconds / 2:
                async with sb.http.get(f"http://127.0.0.1:{sb.slack.port}/healthz") as resp:
                    acted["healthz"] = str(resp.status)
            await asyncio.sleep(0.05)
        progress_during = tracker.progress_events - progress_before
        calls_during = len(sb.fake.calls) - calls_before
        if kind == "down":
            sb.fake.set_down(False)
        else:
            sb.fake.inject_faults(rate=0)
        recovered = len(sb.fake.calls)
        recovered_at = time.monotonic()

        finals = []
        for task_id in ids:
            try:
                finals.append(await tracker.wait_state(task_id, REVIEWABLE_STATES | CLOSED_STATES, 120))
            except Stuck as exc:
                report.violations.append(str(exc))
        expected = {merged_id: MERGED, cancelled_id: CANCELLED}

        async def threads_final() -> list[str]:
            fresh = [t for t in await sb.store.list_tasks() if t.id in ids]
            problems = check_threads(sb, fresh) + check_slack(sb)
            for task in fresh:
                want = expected.get(task.id, FINISHED)
                if task.state != want:
                    problems.append(f"task {task.id} is {task.state}, expected {want} ({task.reason})")
                replies = " ".join(m.text or "" for m in sb.fake.thread(task.channel or "", _slack_ids(sb, task).thread_ts))
                if want == MERGED and "Merged into" not in replies:
                    problems.append(f"task {task.id}: the 'Merged into' reply never reached the thread")
                if want == CANCELLED and "Task cancelled" not in replies:
                    problems.append(f"task {task.id}: the 'Task cancelled' reply never reached the thread")
            return problems

        # the outbox backs off up to a minute between retries of a failing update
        report.violations.extend(await eventually(threads_final, 150))
        delivered = time.monotonic() - recovered_at
        with contextlib.suppress(TimeoutError):
            await sb.settle(60)
        updates_after = sum(1 for c in sb.fake.calls[recovered:] if c.method == "chat.update" and c.status == 200)
        # what the threads need after the outage: each root, card and review once, and once more for a
        # thread whose render was held up by a retried post (it renders its later events after recovery);
        # not one per progress event
        bound = 4 * tasks
        if updates_after > bound:
            report.violations.append(f"{updates_after} chat.update calls after the outage for {tasks} tasks "
                                     f"(at most {bound} expected: updates should have been coalesced)")
        if progress_during < 3 * bound:
            report.violations.append(f"only {progress_during} progress events during the outage: the scenario "
                                     "did not stream enough to show coalescing")
        live_messages = 4 * tasks  # root, card, review and the root's reaction per task
        if most_pending > live_messages:
            report.violations.append(f"the outbox held {most_pending} pending updates during the outage "
                                     f"(more than one per message: {live_messages})")
        if acted.get("healthz") != "200":
            report.violations.append(f"/healthz answered {acted.get('healthz')} during the outage")
        if "merge" not in acted or "cancel" not in acted:
            report.violations.append(f"the scenario did not get to merge and cancel during the outage ({acted})")

        # the bot is still well: a new task goes through end to end
        await sb.command("spawn [soak after edit] after the outage", user=USERS[0], channel=CHANNELS[0])
        after_id = await tracker.wait(lambda: tracker.by_key.get("after"), 60, "no task after the outage")
        after = await tracker.wait_state(after_id, REVIEWABLE_STATES, 60)
        if after.state != FINISHED:
            report.violations.append(f"the task spawned after the outage ended {after.state}: {after.reason}")

        async def after_thread() -> list[str]:
            task = await sb.store.get_task(after_id)
            return check_threads(sb, [task] if task else [])

        report.violations.extend(await eventually(after_thread, 60))
        report.violations.extend(check_git(sb, {t.id: t for t in await sb.store.list_tasks()}))
        report.violations.extend(f"bot log: {e}" for e in watch.errors(since=recovered_at + 0.5))
        during = watch.errors(since=outage_start, until=recovered_at + 0.5)
        report.figures.update(tasks=tasks, progress_during=progress_during, calls_during=calls_during,
                              updates_after=updates_after, most_pending=most_pending, delivered_s=delivered)
        report.lines += [
            f"progress events during the outage: {progress_during}; Web API calls tried during it: {calls_during}",
            f"chat.update calls delivered after it: {updates_after} (bound {bound}); most updates pending: "
            f"{most_pending} (bound {live_messages}); threads final {delivered:.1f} s after recovery",
            "final states: " + ", ".join(f"{t.id} {t.state}" for t in finals),
            f"errors logged during the outage (expected: answers to clicks could not be sent): {len(during)}",
        ]
        report.lines += [f"  - {e}" for e in during[:5]]
    finally:
        logging.getLogger().removeHandler(watch)
        await sb.stop()
    return report
