"""f. End -> final in Slack: N busy tasks through the HTTP front end against the fake Slack (rate
limits on, in its own process). Each agent prints a steady stream of lines; once all N run, each
ends by itself 15-30 s later (staggered); every fifth is cancelled midway instead. Measured: how long after
a task's terminal transition (the events table) every live message of the task (the root message,
and the status card when slack_messages has one) shows the final state for good, Slack calls per
minute, 429s, and the acks of `list` commands sent every 0.5 s meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import CpuWindow, Table, bot_env, chatty_preset, ms, percentile, secs, small_repo
from bench.soak import (
    ACK_EVERY,
    SIGNING_SECRET,
    TARGET_ACK_P99,
    Commands,
    FakeSlackProcess,
    RateLimitLog,
)
from superset_bot.config import load_settings
from superset_bot.engine.core import Engine
from superset_bot.frontends.slack.runtime import SlackBot
from superset_bot.plugins.hooks import builtin_hooks
from superset_bot.presets import load_presets
from superset_bot.store import Store

ENDS = ("finished", "failed", "cancelled", "timed_out")  # the engine's terminal transitions (events.action)
SETTLED = {*ENDS, "merged", "discarded", "pruned"}
FINAL_LABELS = ("finished", "failed", "cancelled", "timed out", "merged", "discarded", "pruned")
LIVE_LABELS = ("queued", "preparing", "running", "merging", "discarding")
HOLD = 3.0  # seconds every message must stay final before the run counts as settled


def shows_final(text: str, task_id: str) -> bool:
    """The message text names a terminal state and no live one (the task id is left out: it is random)."""
    words = text.lower().replace(task_id, " ")
    return any(w in words for w in FINAL_LABELS) and not any(w in words for w in LIVE_LABELS)


@dataclass
class DbView:
    """What the bot's SQLite store says: task states, prompts, starts; message ids; terminal transitions."""

    tasks: dict[str, tuple[str, str, float | None]] = field(default_factory=dict)  # id -> state, prompt, started
    messages: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # id -> [(channel, ts)]
    ends: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (state, time of the transition)


def read_db(path: Path) -> DbView:
    view = DbView()
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        for tid, state, prompt, started in con.execute("SELECT id, state, prompt, started_at FROM tasks"):
            view.tasks[tid] = (state, prompt, started)
        for tid, channel, thread_ts, status_ts in con.execute(
                "SELECT task_id, channel, thread_ts, status_ts FROM slack_messages"):
            view.messages[tid] = [(channel, thread_ts)] + ([(channel, status_ts)] if status_ts else [])
        marks = ",".join("?" * len(ENDS))
        for tid, action, created in con.execute(
                f"SELECT task_id, action, created_at FROM events WHERE action IN ({marks}) ORDER BY id", ENDS):
            view.ends.setdefault(tid, (action, created))
    finally:
        con.close()
    return view


@dataclass
class Level:
    tasks: int
    lags: dict[str, float] = field(default_factory=dict)  # task id -> end -> final in Slack (s)
    cancelled: set[str] = field(default_factory=set)
    stuck: list[str] = field(default_factory=list)
    went_back: int = 0
    settle: float = float("nan")  # last end -> every task final
    window: float = float("nan")  # first spawn -> every task final (or the deadline)
    calls: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    outbox_429: int = 0
    unhandled: list[str] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    bad_acks: int = 0
    spawn_acks: list[float] = field(default_factory=list)
    cpu: float = float("nan")
    all_running: float = float("nan")  # first spawn -> every task running (the agents' clocks start then)
    peak: int = 0  # tasks running at once, at most
    load: list[float] = field(default_factory=list)


def measure(level: Level, view: DbView, history: dict[str, Any], started: float, deadline_hit: float | None) -> None:
    """Lags, stuck and went-back messages from the store and the fake's write log; calls in the window."""
    writes: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for at, _method, channel, ts, text in history["writes"]:
        writes.setdefault((channel, ts), []).append((at, text))
    visible_all: list[float] = []
    for tid in view.tasks:
        end = view.ends.get(tid)
        shown: list[float] = []
        for key in view.messages.get(tid, []):
            finals = [shows_final(text, tid) for _, text in writes.get(key, [])]
            level.went_back += any(a and not b for a, b in zip(finals, finals[1:], strict=False))
            if not finals or not finals[-1]:
                shown = []
                break
            last_live = max((i for i, final in enumerate(finals) if not final), default=-1)
            shown.append(writes[key][last_live + 1][0])
        if end is None or not shown:
            level.stuck.append(tid)
            continue
        level.lags[tid] = max(shown) - end[1]
        visible_all.append(max(shown))
        if end[0] == "cancelled":
            level.cancelled.add(tid)
    finished = deadline_hit if deadline_hit is not None else max(visible_all, default=time.time())
    level.window = finished - started
    marks = sorted([(b, 1) for _, _, b in view.tasks.values() if b] + [(e, -1) for _, e in view.ends.values()])
    running = 0
    for _, step in marks:
        running += step
        level.peak = max(level.peak, running)
    if visible_all and not level.stuck:
        level.settle = max(visible_all) - max(e[1] for e in view.ends.values())
    for at, method, status in history["calls"]:
        if started <= at <= finished:
            level.calls[method] += 1
            if status == 429:
                level.rate_limited[method] += 1


async def run_level(tmp: Path, tasks: int, *, rate: int, seconds: tuple[float, float], cancel_every: int,
                    settle_timeout: float) -> Level:
    level = Level(tasks)
    repo = small_repo(tmp / "repo")
    fake = FakeSlackProcess()
    await fake.start()
    go_file = tmp / "go"  # the agents' 15-30 s count from this file's mtime, written once all N run
    preset = chatty_preset(BENCH_RATE=str(rate), BENCH_SECONDS="prompt", BENCH_GO_FILE=str(go_file),
                           BENCH_GO_TIMEOUT=str(300 + 3 * tasks))
    env = bot_env(tmp / "bot", repo, {"chatty": preset},
                  tasks, {"SLACK_BOT_TOKEN": fake.info["bot_token"], "SLACK_APP_TOKEN": fake.info["app_token"],
                          "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.info["url"]})
    settings = load_settings(env, env_file=None)
    store = await Store.open(settings.db_path)
    engine = Engine(settings, store, load_presets(Path(env["SUPERSET_PRESETS_DIR"])), builtin_hooks())
    slack: SlackBot | None = None
    commands: Commands | None = None
    watcher = RateLimitLog()
    logging.getLogger().addHandler(watcher)
    try:
        await engine.start()
        slack = SlackBot(settings, engine, http=True, host="127.0.0.1", port=0)
        await slack.start()
        commands = Commands(f"http://127.0.0.1:{slack.port}/slack/events", fake.info["base"])
        lo, hi = seconds
        cancel_after = lo / 2
        prompts = [f"stream lines for {lo + (hi - lo) * i / max(1, tasks - 1):.1f} seconds, bench item {i}"
                   for i in range(tasks)]
        to_cancel = {p for i, p in enumerate(prompts) if cancel_every and i % cancel_every == cancel_every - 1}
        print(f"endlag: {tasks} tasks printing {rate} lines/s for {lo:.0f}-{hi:.0f} s, "
              f"{len(to_cancel)} cancelled after {cancel_after:.0f} s ...", flush=True)
        level.load.append(os.getloadavg()[0])
        started = time.time()
        cpu = CpuWindow()

        async def spawn_all() -> None:
            assert commands is not None
            for prompt in prompts:
                status, took = await commands.send(f"spawn {prompt}")
                if status != 200:
                    raise RuntimeError(f"spawn answered HTTP {status}")
                level.spawn_acks.append(took)

        spawner = asyncio.create_task(spawn_all())
        cancelled: set[str] = set()
        final_since: float | None = None
        go: float | None = None
        deadline = time.monotonic() + 120 + 3 * tasks  # for every task to run; then hi + settle_timeout
        deadline_hit: float | None = None
        view = DbView()
        ticks = 0
        while True:
            tick = time.monotonic()
            status, took = await commands.send("list")
            level.acks.append(took)
            level.bad_acks += status != 200
            if spawner.done():
                spawner.result()  # raises if a spawn failed
            view = await asyncio.to_thread(read_db, settings.db_path)
            if go is None and len(view.tasks) == tasks and \
                    not any(s in ("queued", "preparing") for s, _, _ in view.tasks.values()):
                go_file.write_text("go\n")
                go = go_file.stat().st_mtime
                level.all_running = go - started
                deadline = time.monotonic() + hi + settle_timeout
            for tid, (state, prompt, _) in view.tasks.items():
                if prompt in to_cancel and tid not in cancelled and state == "running" and go is not None \
                        and time.time() >= go + cancel_after:
                    cancelled.add(tid)
                    await commands.send(f"cancel {tid}")
            ticks += 1
            settled = len(view.tasks) == tasks and all(s in SETTLED for s, _, _ in view.tasks.values())
            if settled and ticks % 2 == 0:
                wanted = [list(key) for keys in view.messages.values() for key in keys]
                shown = (await fake.stats(wanted))["messages"]
                final = len(view.messages) == tasks and all(
                    shows_final(str(shown.get(f"{ch}/{ts}", {}).get("text") or ""), tid)
                    for tid, keys in view.messages.items() for ch, ts in keys)
                final_since = (final_since or time.monotonic()) if final else None
                if final_since is not None and time.monotonic() - final_since >= HOLD:
                    break
            level.load.append(os.getloadavg()[0])
            if time.monotonic() > deadline:
                deadline_hit = time.time()
                print("endlag: " + ("not every task final in Slack in time" if go else "the tasks did not all start")
                      + "; giving up", flush=True)
                break
            await asyncio.sleep(max(0.0, ACK_EVERY - (time.monotonic() - tick)))
        level.cpu = cpu.percent()
        level.load.append(os.getloadavg()[0])
        assert slack.outbox is not None
        level.outbox_429 = int(slack.outbox.stats.get("429", 0))
        dropped = int(slack.outbox.stats.get("dropped", 0))
        level.unhandled = [f"outbox dropped {dropped} updates"] * bool(dropped) + watcher.records
        view = await asyncio.to_thread(read_db, settings.db_path)
        history = await fake.history()
        level.rejected = int((await fake.stats())["rejected"])
        measure(level, view, history, started, deadline_hit)
        dump = os.environ.get("BENCH_ENDLAG_DUMP")  # a folder: the raw store view and Slack log of each level
        if dump:
            raw = {"started": started, "tasks": view.tasks, "messages": view.messages, "ends": view.ends, **history}
            Path(dump, f"endlag-{tasks}.json").write_text(json.dumps(raw))
    finally:
        logging.getLogger().removeHandler(watcher)
        for agent in list(engine.running_agents().values()):
            with contextlib.suppress(Exception):
                await agent.cancel(0.5)
        if commands is not None:
            await commands.close()
        if slack is not None:
            await slack.stop()
        await engine.stop()
        await store.close()
        await fake.stop()
    return level


def _p(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return f"{secs(percentile(values, 50))} / {secs(max(values))}"


def table(levels: Sequence[Level], rate: int, seconds: tuple[float, float], cancel_every: int) -> Table:
    heads = [f"{lv.tasks} tasks" for lv in levels]
    t = Table(f"f. Task end -> final state in Slack ({', '.join(heads)}; {rate:,} lines/s each for "
              f"{seconds[0]:.0f}-{seconds[1]:.0f} s, HTTP mode, fake Slack with rate limits)", ["figure", *heads])

    def row(name: str, values: Sequence[str]) -> None:
        t.rows.append([name, *values])

    def lags(lv: Level, cancelled: bool | None) -> list[float]:
        return [lag for tid, lag in lv.lags.items() if cancelled is None or (tid in lv.cancelled) == cancelled]

    row("tasks ended by themselves / cancelled midway / never final in Slack",
        [f"{len(lags(lv, False))} / {len(lv.cancelled)} / {len(lv.stuck)}" for lv in levels])
    row("end -> final in Slack, ended by themselves: p50 / max", [_p(lags(lv, False)) for lv in levels])
    row("end -> final in Slack, cancelled: p50 / max", [_p(lags(lv, True)) for lv in levels])
    row("end -> final in Slack, all: p50 / p90 / max",
        [f"{secs(percentile(lags(lv, None), 50))} / {secs(percentile(lags(lv, None), 90))} / "
         f"{secs(max(lags(lv, None), default=float('nan')))}" for lv in levels])
    row("last end -> every task final in Slack", [secs(lv.settle) for lv in levels])
    row("messages final, then showing a live state again", [str(lv.went_back) for lv in levels])
    row("first spawn -> every task running (then the agents' clocks start)", [secs(lv.all_running) for lv in levels])
    row("tasks running at once, at most", [str(lv.peak) for lv in levels])
    row("run window (first spawn -> every task final)", [secs(lv.window) for lv in levels])
    for method in sorted({m for lv in levels for m in lv.calls}):
        row(f"Slack calls/min in the window: {method}",
            [f"{lv.calls.get(method, 0) / (lv.window / 60):.1f}" for lv in levels])
    row("429s received (by method)",
        [f"{sum(lv.rate_limited.values())} " + (", ".join(f"{m} {n}" for m, n in sorted(lv.rate_limited.items()))
                                                 or "") for lv in levels])
    row("429s that reached the outbox (the SDK retries once first)", [str(lv.outbox_429) for lv in levels])
    row("429s unhandled (dropped updates + rate-limit warnings)", [str(len(lv.unhandled)) for lv in levels])
    row("calls Slack rejected (not 429)", [str(lv.rejected) for lv in levels])
    row("ack of `list` every 0.5 s: count (not 200) p50 / p99 / max",
        [f"{len(lv.acks)} ({lv.bad_acks}) {ms(percentile(lv.acks, 50))} / {ms(percentile(lv.acks, 99))} / "
         f"{ms(max(lv.acks, default=float('nan')))}" for lv in levels])
    row("ack of `spawn`: p50 / max",
        [f"{ms(percentile(lv.spawn_acks, 50))} / {ms(max(lv.spawn_acks, default=float('nan')))}" for lv in levels])
    row("bot CPU in the window (% of one core)", [f"{lv.cpu:.0f} %" for lv in levels])
    row("load average (1 min): start / max / end",
        [" / ".join(f"{x:.1f}" for x in (lv.load[0], max(lv.load), lv.load[-1])) if lv.load else "n/a"
         for lv in levels])
    t.notes.append("end = the task's first finished/failed/cancelled/timed_out event in the bot's store; final in "
                   "Slack = the fake's wall-clock time of the write after which every live message of the task "
                   "(root, and the status card when slack_messages has one) only ever showed a text naming a "
                   "terminal state and no live one")
    if cancel_every:
        t.notes.append(f"every {cancel_every}th task is cancelled by `/superset cancel` {seconds[0] / 2:.0f} s "
                       "after every task was running")
    for lv in levels:
        for record in lv.unhandled[:3]:
            t.notes.append(f"{lv.tasks} tasks, unhandled: {record}")
        if lv.stuck:
            t.notes.append(f"{lv.tasks} tasks, never final in Slack: {', '.join(lv.stuck[:10])}")
    for lv in levels:
        p99 = percentile(lv.acks, 99)
        t.targets += [
            (f"{lv.tasks} tasks: ack p99 < 100 ms", ms(p99), p99 < TARGET_ACK_P99),
            (f"{lv.tasks} tasks: zero 429s left unhandled", str(len(lv.unhandled)), not lv.unhandled),
            (f"{lv.tasks} tasks: every task's final state in Slack", f"{len(lv.stuck)} never", not lv.stuck),
        ]
    return t


async def run(tmp: Path, *, levels: Sequence[int] = (20, 50), rate: int = 300,
              seconds: tuple[float, float] = (15.0, 30.0), cancel_every: int = 5,
              settle_timeout: float = 600.0) -> Table:
    results: list[Level] = []
    for n in levels:
        level_tmp = tmp / f"n{n}"
        level_tmp.mkdir()
        results.append(await run_level(level_tmp, n, rate=rate, seconds=seconds, cancel_every=cancel_every,
                                       settle_timeout=settle_timeout))
    return table(results, rate, seconds, cancel_every)
