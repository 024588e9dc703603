"""The `setup` fixture: `superset-bot doctor` against the fake Slack, a real repo and real preset files."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import RepoFactory

from superset_bot.config import load_settings
from superset_bot.doctor import run_doctor

from .env import bot_env
from .fakeslack import FakeSlack

BOT_TOKEN = "xoxb-1111-2222-doctorbottokenvalue"
APP_TOKEN = "xapp-1-A1-3333-doctorapptokenvalue"
SIGNING_SECRET = "doctor-signing-secret-0123456789"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET)
MARKS = ("✓", "!", "✗")


def ok_preset(description: str = "test agent") -> dict[str, Any]:
    return {"description": description, "agent": {"command": ["{python}", "-c", "pass", "{prompt}"]}}


@dataclass
class Setup:
    fake: FakeSlack
    repo: Path
    presets: Path
    env: dict[str, str]
    tmp: Path
    extra_secrets: list[str] = field(default_factory=list)

    def write_preset(self, name: str, body: dict[str, Any] | str) -> Path:
        path = self.presets / f"{name}.json"
        path.write_text(body if isinstance(body, str) else json.dumps(body))
        return path

    async def doctor(self, http: bool | None = None, **env: str) -> tuple[int, str]:
        merged = {**self.env, **env}
        out = io.StringIO()
        code = await run_doctor(lambda: load_settings(merged, env_file=None), out=out, http=http, timeout=10)
        text = out.getvalue()
        for secret in (*SECRETS, *self.extra_secrets, *(v for k, v in merged.items() if "TOKEN" in k and v)):
            assert secret not in text, "a token was printed"
        return code, text


@pytest.fixture
async def setup(tmp_path: Path, make_repo: RepoFactory) -> AsyncIterator[Setup]:
    fake = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN, rate_limits=False)
    await fake.start()
    repo = make_repo("demo", {"README.md": "# demo\n"})
    presets = tmp_path / "presets"
    presets.mkdir()
    env = bot_env(tmp_path, repo, presets=presets, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN,
                  SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=fake.url, SUPERSET_DEFAULT_PRESET="agent")
    s = Setup(fake, repo, presets, env, tmp_path)
    s.write_preset("agent", ok_preset())
    try:
        yield s
    finally:
        await fake.stop()


def check_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in MARKS]


def failures(text: str) -> list[str]:
    return [line for line in check_lines(text) if line.startswith("✗")]


def warnings(text: str) -> list[str]:
    return [line for line in check_lines(text) if line.startswith("!")]
