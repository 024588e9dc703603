"""A bot wired to a fake Slack over real HTTP, for end-to-end tests: signed requests in, Slack calls out."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import RepoFactory

from superset_bot.composition import build_service
from superset_bot.config import Settings
from superset_bot.engine.core import Engine
from superset_bot.frontends.slack.messages import SlackIds
from superset_bot.frontends.slack.runtime import SlackBot
from superset_bot.store import BUSY_TIMEOUT, REVIEWABLE_STATES, Store, Task

from .engineharness import agent_preset, driver_done, make_engine, stop_agents, write_presets
from .env import bot_settings
from .fakeslack import FakeSlack

SIGNING_SECRET = "test-signing-secret-0123456789"
CHANNEL = "C0TASKS"
OTHER_CHANNEL = "C0OTHER"
OUTSIDE_CHANNEL = "C0NOTIN"


def preset(mode: str, **env: str) -> dict[str, Any]:
    """The test agent (tests/agents/engine_agent.py) in `mode`, with more environment variables."""
    return agent_preset(mode, env=env)


class SignedRequests:
    """Requests into the bot as Slack sends them: signed, form- or JSON-encoded (shared with the soak)."""

    fake: FakeSlack
    slack: SlackBot
    http: aiohttp.ClientSession
    counter: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.slack.port}/slack/events"

    def thread_of(self, task: Task) -> SlackIds:
        """Where the task is in Slack now (its thread's root, status card, latest review), as the bot recorded it."""
        ids = self.slack.frontend.messages.get(task.id) if self.slack.frontend else None
        assert ids is not None, f"task {task.id} has no Slack thread"
        return ids

    async def post_signed(self, body: str, content_type: str, *, secret: str = SIGNING_SECRET,
                          timestamp: int | None = None) -> aiohttp.ClientResponse:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": content_type}
        async with self.http.post(self.url, data=body.encode(), headers=headers) as resp:
            await resp.read()
            return resp

    async def send_command(self, text: str, *, user: str, channel: str) -> tuple[int, str]:
        self.counter += 1
        key = f"cmd{self.counter}"
        form = {
            "token": "x", "team_id": "T1", "channel_id": channel, "channel_name": "tasks", "user_id": user,
            "user_name": user.lower(), "command": "/superset", "text": text, "api_app_id": "A1",
            "response_url": self.fake.response_url(key), "trigger_id": f"trig{self.counter}",
        }
        resp = await self.post_signed(urllib.parse.urlencode(form), "application/x-www-form-urlencoded")
        return resp.status, key

    async def send_click(self, action_id: str, task_id: str, *, user: str, channel: str,
                         message_ts: str) -> tuple[int, str]:
        self.counter += 1
        key = f"act{self.counter}"
        payload = {
            "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1",
            "trigger_id": f"trig{self.counter}", "container": {"type": "message", "channel_id": channel,
                                                                "message_ts": message_ts},
            "channel": {"id": channel}, "message": {"ts": message_ts},
            "response_url": self.fake.response_url(key),
            "actions": [{"action_id": action_id, "block_id": "review", "value": task_id, "type": "button",
                         "action_ts": str(time.time())}],
        }
        resp = await self.post_signed(urllib.parse.urlencode({"payload": json.dumps(payload)}),
                                      "application/x-www-form-urlencoded")
        return resp.status, key


@dataclass
class Bot(SignedRequests):
    fake: FakeSlack
    slack: SlackBot
    engine: Engine
    store: Store
    repo: Path
    settings: Settings
    http: aiohttp.ClientSession
    counter: int = 0

    async def command(self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL) -> tuple[int, str]:
        return await self.send_command(text, user=user, channel=channel)

    async def click(self, action_id: str, task_id: str, *, user: str = "U0ALICE", channel: str = CHANNEL,
                    message_ts: str = "1.0") -> tuple[int, str]:
        return await self.send_click(action_id, task_id, user=user, channel=channel, message_ts=message_ts)

    async def event(self, event: dict[str, Any], *, event_id: str | None = None) -> int:
        self.counter += 1
        body = {"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                "event_id": event_id or f"Ev{self.counter}", "event_time": int(time.time()), "event": event}
        resp = await self.post_signed(json.dumps(body), "application/json")
        return resp.status

    def answers(self, key: str) -> list[str]:
        """Texts the bot sent to a response_url (ephemeral answers to commands and clicks)."""
        return [json.dumps(r) for r in self.fake.responses_to_urls if r.get("key") == key]

    async def settle(self) -> None:
        assert self.slack.frontend and self.slack.outbox
        await self.slack.frontend.wait_jobs()
        await self.slack.outbox.flush(60)

    async def task_for_thread(self, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = await self.store.list_tasks(newest_first=True)
            if tasks:
                return tasks[0]
            await asyncio.sleep(0.05)
        raise AssertionError("no task was created")

    async def finished(self, task_id: str, states: Any = REVIEWABLE_STATES) -> Any:
        await self.engine.wait_for(task_id, states, timeout=90)
        await driver_done(self.engine, task_id, 90)
        await self.settle()
        return await self.engine.get(task_id)


@pytest.fixture
async def bot(tmp_path: Path, make_repo: RepoFactory) -> AsyncIterator[Callable[..., Any]]:
    started: list[Bot] = []

    async def make(presets: dict[str, dict[str, Any]] | None = None, env: dict[str, str] | None = None,
                   rate_limits: bool = True, http: bool = True, busy_timeout: float = BUSY_TIMEOUT) -> Bot:
        fake = FakeSlack(rate_limits=rate_limits)
        await fake.start()
        fake.add_channel(CHANNEL, "tasks", is_member=True)
        fake.add_channel(OTHER_CHANNEL, "other", is_member=True)
        fake.add_channel(OUTSIDE_CHANNEL, "outside", is_member=False)
        repo = make_repo("demo", {"README.md": "# demo\n", "shared.txt": "base\n"})
        presets_dir = write_presets(tmp_path / "presets", presets or {"edit": preset("edit")})
        settings = bot_settings(tmp_path, repo, presets=presets_dir, **{
            "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url,
            "SUPERSET_DEFAULT_PRESET": next(iter(presets)) if presets else "edit",
            "SUPERSET_CANCEL_GRACE": "1s", "SUPERSET_POOL_SIZE": "0",
            **(env or {}),
        })
        engine = await make_engine(settings, busy_timeout=busy_timeout)
        store = engine.store
        service = build_service(engine)  # the composition root's, as `superset-bot run` builds it
        slack = SlackBot(settings, engine, http=http, host="127.0.0.1", port=0, housekeeper=service.housekeeper,
                         service=service)
        await slack.start()
        await engine.start()  # as superset-bot run does: the front end subscribes first
        b = Bot(fake, slack, engine, store, repo, settings, aiohttp.ClientSession())
        started.append(b)
        return b

    yield make
    for b in started:
        await stop_agents(b.settings)
        await b.slack.stop()
        await b.engine.stop()
        await b.store.close()
        await b.http.close()
        await b.fake.stop()


def all_text(fake: FakeSlack) -> str:
    return json.dumps([c.args for c in fake.calls], default=str)


def buttons(message: Any) -> dict[str, dict[str, Any]]:
    found = {}
    for block in message.blocks or []:
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                found[element["action_id"]] = element
    return found
