"""c. Streaming soak: K chatty agents through the real HTTP front end against the fake Slack (rate
limits on, in its own process), with signed `list` commands timed while they stream."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import CpuWindow, Table, bot_env, chatty_preset, ms, percentile, rss_mb, secs, small_repo
from superset_bot.config import load_settings
from superset_bot.engine.core import Engine
from superset_bot.frontends.slack.runtime import SlackBot
from superset_bot.plugins.hooks import builtin_hooks
from superset_bot.presets import load_presets
from superset_bot.store import ACTIVE_STATES, REVIEWABLE_STATES, RUNNING, Store

CHANNEL = "C0TASKS"
SIGNING_SECRET = "bench-signing-secret-0123456789"
TARGET_ACK_P99 = 0.1
ACK_EVERY = 0.5  # seconds between timed `list` commands


class RateLimitLog(logging.Handler):
    """Counts warnings from the bot and the SDK that mention a rate limit (429s not absorbed)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "ratelimited" in text or "rate_limited" in text or "429" in text:
            self.records.append(f"{record.name}: {text[:200]}")


class FakeSlackProcess:
    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, str] = {}

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fakeslack_server", CHANNEL, cwd=str(Path(__file__).parent.parent),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the fake Slack process did not start")
        self.info = json.loads(line)

    async def stats(self, messages: list[list[str]] | None = None) -> dict[str, Any]:
        return await self._ask(f"stats {json.dumps(messages or [])}")

    async def history(self) -> dict[str, Any]:
        """Every call [time, method, status] and accepted chat write [time, method, channel, ts, text]."""
        return await self._ask("history")

    async def _ask(self, line: str) -> dict[str, Any]:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()
        return dict(json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 60)))

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"quit\n")
            await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class Commands:
    """Signed slash commands over HTTP, as Slack sends them."""

    def __init__(self, url: str, base: str) -> None:
        self.url = url
        self.base = base
        self.session = aiohttp.ClientSession()
        self.counter = 0

    async def send(self, text: str) -> tuple[int, float]:
        self.counter += 1
        form = {"token": "x", "team_id": "T1", "channel_id": CHANNEL, "channel_name": "tasks", "user_id": "U0ALICE",
                "user_name": "alice", "command": "/superset", "text": text, "api_app_id": "A1",
                "response_url": f"{self.base}/response/r{self.counter}", "trigger_id": f"trig{self.counter}"}
        body = urllib.parse.urlencode(form)
        ts = str(int(time.time()))
        signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature,
                   "Content-Type": "application/x-www-form-urlencoded"}
        start = time.monotonic()
        async with self.session.post(self.url, data=body.encode(), headers=headers) as resp:
            await resp.read()
            return resp.status, time.monotonic() - start

    async def close(self) -> None:
        await self.session.close()


async def run(tmp: Path, *, agents: int = 20, seconds: float = 20.0, rate: int = 2000) -> Table:
    repo = small_repo(tmp / "repo")
    fake = FakeSlackProcess()
    await fake.start()
    env = bot_env(tmp / "bot", repo, {"chatty": chatty_preset(BENCH_RATE=str(rate), BENCH_SECONDS="3600")},
                  agents, {"SLACK_BOT_TOKEN": fake.info["bot_token"], "SLACK_APP_TOKEN": fake.info["app_token"],
                           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.info["url"]})
    settings = load_settings(env, env_file=None)
    store = await Store.open(settings.db_path)
    engine = Engine(settings, store, load_presets(Path(env["SUPERSET_PRESETS_DIR"])), builtin_hooks())
    await engine.start()
    slack = SlackBot(settings, engine, http=True, host="127.0.0.1", port=0)
    await slack.start()
    commands = Commands(f"http://127.0.0.1:{slack.port}/slack/events", fake.info["base"])
    watcher = RateLimitLog()
    logging.getLogger().addHandler(watcher)
    acks: list[float] = []
    bad_acks = 0
    rss_peak = rss_start = float("nan")
    cpu_percent = float("nan")
    settle_s = float("nan")
    stale: list[str] = []
    try:
        print(f"soak: spawning {agents} agents printing {rate} lines/s each ...", flush=True)
        for i in range(agents):
            status, _ = await commands.send(f"spawn soak agent number {i}")
            if status != 200:
                raise RuntimeError(f"spawn command {i} answered HTTP {status}")
        deadline = time.monotonic() + 180
        while len(await store.list_tasks({RUNNING})) < agents:
            if time.monotonic() > deadline:
                raise RuntimeError("the soak's agents did not all start within 180 s")
            await asyncio.sleep(0.2)
        before = await fake.stats()
        print(f"soak: all running; soaking for {seconds:.0f} s ...", flush=True)
        rss_start = rss_peak = rss_mb()
        cpu = CpuWindow()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            tick = time.monotonic()
            status, took = await commands.send("list")
            acks.append(took)
            bad_acks += status != 200
            rss_peak = max(rss_peak, rss_mb())
            await asyncio.sleep(max(0.0, ACK_EVERY - (time.monotonic() - tick)))
        soaked = time.monotonic() - started
        cpu_percent = cpu.percent()
        during = await fake.stats()
        print("soak: cancelling the agents and waiting for Slack to catch up ...", flush=True)
        settle_start = time.monotonic()
        tasks = await store.list_tasks(ACTIVE_STATES)
        await asyncio.gather(*(engine.cancel(t.id, "bench") for t in tasks), return_exceptions=True)
        for task in tasks:
            await engine.wait_for(task.id, REVIEWABLE_STATES, timeout=120)
        for task in tasks:
            driver = engine.driver_of(task.id)
            if driver is not None:
                await asyncio.wait_for(asyncio.shield(driver), 120)
        assert slack.frontend is not None and slack.outbox is not None
        await asyncio.wait_for(slack.frontend.wait_jobs(), 300)
        await slack.outbox.flush(300)
        settle_s = time.monotonic() - settle_start
        final = [await engine.get(t.id) for t in tasks]
        cards = {t.id: ids.status_ts or ids.thread_ts for t in final if (ids := slack.frontend.messages.get(t.id))}
        after = await fake.stats([[CHANNEL, ts] for ts in cards.values()])
        for task in final:
            card = after["messages"].get(f"{CHANNEL}/{cards.get(task.id)}")
            if card is None or task.state not in card["blocks"].lower():
                stale.append(task.id)
        outbox_stats = dict(slack.outbox.stats)
    finally:
        logging.getLogger().removeHandler(watcher)
        for run in list(engine.running_agents().values()):
            with contextlib.suppress(Exception):
                await run.cancel(0.5)
        await commands.close()
        await slack.stop()
        await engine.stop()
        await store.close()
        await fake.stop()

    minutes = soaked / 60
    table = Table(f"c. Streaming soak ({agents} agents x {rate:,} lines/s for {seconds:.0f} s, HTTP mode, "
                  "fake Slack with rate limits)", ["figure", "value"])
    methods = sorted(set(during["calls"]) | set(before["calls"]))
    for method in methods:
        count = during["calls"].get(method, 0) - before["calls"].get(method, 0)
        if count:
            table.rows.append([f"Slack calls/min during the soak: {method}", f"{count / minutes:.1f}"])
    received = sum(after["rate_limited"].values())
    unhandled = outbox_stats.get("dropped", 0) + len(watcher.records)
    table.rows += [
        ["429s received (whole run, by method)", f"{received} {json.dumps(after['rate_limited'])}"],
        ["429s that reached the outbox (the SDK retries once first)", str(outbox_stats.get("429", 0))],
        ["429s left unhandled (dropped updates + rate-limit warnings)", str(unhandled)],
        ["calls Slack rejected (not 429)", str(after["rejected"])],
        ["updates coalesced by the outbox", str(outbox_stats.get("coalesced", 0))],
        [f"ack latency of `list` ({len(acks)} sent, {bad_acks} not HTTP 200) p50 / p99",
         f"{ms(percentile(acks, 50))} / {ms(percentile(acks, 99))} (max {ms(max(acks) if acks else float('nan'))})"],
        ["bot RSS at soak start / peak", f"{rss_start:.0f} / {rss_peak:.0f} MiB"],
        ["bot CPU during the soak (% of one core)", f"{cpu_percent:.1f} %"],
        ["time from cancel to every card final and the outbox empty", secs(settle_s)],
        ["status cards stale at the end", f"{len(stale)} of {agents}"],
    ]
    for sample in after["rejected_sample"]:
        table.notes.append(f"rejected: {sample[:200]}")
    for record in watcher.records[:3]:
        table.notes.append(f"unhandled: {record}")
    table.notes.append("the fake Slack runs in its own process; bot RSS/CPU are this process (engine + Slack front end "
                       "+ the bench's HTTP client), agents not included")
    p99 = percentile(acks, 99)
    table.targets += [
        ("ack p99 < 100 ms during the soak", ms(p99), p99 < TARGET_ACK_P99),
        ("zero 429s left unhandled", str(unhandled), unhandled == 0),
        ("no status card stale at the end", f"{len(stale)} stale", not stale),
    ]
    return table
