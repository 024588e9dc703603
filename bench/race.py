"""h. Race start and comparison: `/superset race N PROMPT` through the HTTP front end against the fake
Slack (rate limits on, in its own process), against N `/superset spawn`s sent at once. Measured: the
command's ack; how long until the channel shows the race (its root), until every attempt's card is in
its thread, until every agent runs; and once the last attempt's review is stored, how long until the
comparison card is in the thread. The root and the cards are posted before the attempts start (so no
early event of an attempt is lost), at Slack's pace for posts in one channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Table, bot_env, engine_agent_preset, ms, secs, small_repo
from bench.soak import SIGNING_SECRET, Commands, FakeSlackProcess
from superset_bot.config import load_settings
from superset_bot.engine.core import Engine
from superset_bot.frontends.slack.runtime import SlackBot
from superset_bot.plugins.hooks import builtin_hooks
from superset_bot.presets import load_presets
from superset_bot.store import Store

STARTED = ("running", "finished", "failed", "cancelled", "timed_out")


@dataclass
class Run:
    ack: float = 0.0
    root: float | None = None  # the race's root message recorded (the channel shows it)
    cards: float | None = None  # every attempt's card recorded in the thread
    running: float | None = None  # every agent started
    reviewed: float | None = None  # every attempt's review stored
    card: float | None = None  # the comparison card recorded, after `reviewed`
    notes: list[str] = field(default_factory=list)


def _read(db: Path) -> tuple[list[tuple[str, str, str | None]], int, int, int]:
    """(tasks: id, state, review), slack_messages rows, slack_races rows, comparison cards posted."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        tasks = [(r[0], r[1], r[2]) for r in con.execute("SELECT id, state, review FROM tasks")]
        messages = con.execute("SELECT COUNT(*) FROM slack_messages").fetchone()[0]
        try:
            races, cards = con.execute("SELECT COUNT(*), COUNT(card_ts) FROM slack_races").fetchone()
        except sqlite3.OperationalError:
            races, cards = 0, 0
        return tasks, messages, races, cards
    finally:
        con.close()


async def one(tmp: Path, n: int, race: bool) -> Run:
    repo = small_repo(tmp / "repo")
    fake = FakeSlackProcess()
    await fake.start()
    env = bot_env(tmp / "bot", repo, {"edit": engine_agent_preset("edit")}, n,
                  {"SLACK_BOT_TOKEN": fake.info["bot_token"], "SLACK_APP_TOKEN": fake.info["app_token"],
                   "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.info["url"],
                   "SUPERSET_POOL_SIZE": "0", "SUPERSET_RACE_MAX_ATTEMPTS": str(max(n, 2))})
    settings = load_settings(env, env_file=None)
    store = await Store.open(settings.db_path)
    engine = Engine(settings, store, load_presets(Path(env["SUPERSET_PRESETS_DIR"])), builtin_hooks())
    slack: SlackBot | None = None
    commands: Commands | None = None
    run = Run()
    try:
        await engine.start()
        slack = SlackBot(settings, engine, http=True, host="127.0.0.1", port=0)
        await slack.start()
        commands = Commands(f"http://127.0.0.1:{slack.port}/slack/events", fake.info["base"])
        started = time.monotonic()
        if race:
            status, run.ack = await commands.send(f"race {n} add the feature")
        else:
            acks = await asyncio.gather(*(commands.send(f"spawn add the feature {i}") for i in range(n)))
            status, run.ack = max(acks, key=lambda a: a[1])
        if status != 200:
            raise RuntimeError(f"the command answered HTTP {status}")
        deadline = started + 120
        while time.monotonic() < deadline:
            now = time.monotonic() - started
            tasks, messages, races, cards = await asyncio.to_thread(_read, settings.db_path)
            if run.root is None and (races if race else messages):
                run.root = now
            if run.cards is None and messages >= n:
                run.cards = now
            if run.running is None and len(tasks) == n and all(s in STARTED for _, s, _ in tasks):
                run.running = now
            if run.reviewed is None and len(tasks) == n and all(r for _, _, r in tasks):
                run.reviewed = now
            if not race and run.reviewed is not None:
                break
            if race and run.reviewed is not None and cards:
                run.card = now
                break
            await asyncio.sleep(0.02)
        else:
            run.notes.append("timed out")
    finally:
        if commands is not None:
            await commands.close()
        if slack is not None:
            await slack.stop()
        with contextlib.suppress(Exception):
            for agent in engine.running_agents().values():
                await agent.cancel(0.5)
        await engine.stop()
        await store.close()
        await fake.stop()
    return run


async def run(tmp: Path, *, ns: tuple[int, ...] = (3, 5)) -> Table:
    table = Table("h. Race start and comparison (fake Slack in its own process, rate limits on; each agent "
                  "commits one file and ends)",
                  ["command", "ack", "channel shows it", "every attempt's card", "every agent running",
                   "every review stored", "comparison card after the last review"])
    slowest: float = 0.0
    for n in ns:
        for race in (False, True):
            r = await one(tmp / f"{'race' if race else 'spawn'}{n}", n, race)
            label = f"race {n}" if race else f"{n} x spawn, at once"
            gap = (r.card - r.reviewed) if r.card is not None and r.reviewed is not None else None
            table.rows.append([label, ms(r.ack), secs(r.root) if r.root is not None else "-",
                               secs(r.cards) if r.cards is not None else "-",
                               secs(r.running) if r.running is not None else "-",
                               secs(r.reviewed) if r.reviewed is not None else "-",
                               secs(gap) if gap is not None else "-"])
            if race and gap is not None:
                slowest = max(slowest, gap)
            print(f"race: {label}: running after {r.running}, card {gap} after the last review {r.notes}", flush=True)
    table.notes.append("a race's root and its attempts' cards are posted before its agents start (an early event of "
                       "an attempt is never lost), one post at a time at Slack's pace for one channel; N spawns "
                       "each post their own root, so they start as their roots go out")
    table.targets.append(("comparison card within 5 s of the last attempt's review", secs(slowest), slowest < 5.0))
    return table
