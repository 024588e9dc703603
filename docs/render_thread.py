"""Render README's picture of a task thread from a real run against the fake Slack.

Runs the bot in HTTP mode against tests/support/fakeslack/ with the demo preset in a temporary repo,
sends a signed `/superset spawn`, waits for the review, and draws the channel message and its
thread as an SVG (docs/thread.svg). Usage: .venv/bin/python docs/render_thread.py
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.fakeslack import FakeSlack  # noqa: E402

from superset_bot.config import load_settings  # noqa: E402
from superset_bot.engine.core import Engine  # noqa: E402
from superset_bot.frontends.slack.runtime import SlackBot  # noqa: E402
from superset_bot.plugins.hooks import builtin_hooks  # noqa: E402
from superset_bot.presets import load_presets  # noqa: E402
from superset_bot.store import REVIEWABLE_STATES, Store  # noqa: E402

SECRET = "render-secret"
CHANNEL = "C0TASKS"
WIDTH = 760


def block_lines(blocks: list[dict[str, Any]] | None, text: str) -> list[tuple[str, str]]:
    """(kind, text) lines of a message as Slack would show them, roughly."""
    out: list[tuple[str, str]] = []
    for block in blocks or [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]:
        kind = block.get("type")
        if kind in ("section", "header"):
            body = block.get("text", {}).get("text", "")
            in_code = False
            for line in body.splitlines():
                fence = line.startswith("```") or line.endswith("```")
                if fence and line.strip("`"):
                    out.append(("code", line))
                elif not fence:
                    out.append(("code" if in_code else kind, line))
                if fence and line.count("```") == 1:
                    in_code = not in_code
        elif kind == "context":
            out.append(("context", "  ".join(e.get("text", "") for e in block.get("elements", []))))
        elif kind == "actions":
            out.append(("buttons", "   ".join(f"[ {e['text']['text']} ]" for e in block.get("elements", []))))
    return out


def clean(line: str) -> str:
    line = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", line)
    line = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2", line)
    line = re.sub(r"<@(\w+)>", r"@\1", line)
    line = line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("```", "")
    line = re.sub(r":([a-z_]+):", lambda m: {"white_check_mark": "✅", "runner": "🏃", "gear": "⚙",
                                            "warning": "⚠", "hourglass_flowing_sand": "⏳"}.get(m.group(1), ""), line)
    line = line.replace("*", "").replace("`", "")
    return "▏ " + line[1:].lstrip() if line.startswith(">") else line


def svg(messages: list[tuple[str, list[tuple[str, str]]]]) -> str:
    y, parts = 20, []
    for who, lines in messages:
        height = 28 + 18 * len(lines)
        parts.append(f'<rect x="10" y="{y}" width="{WIDTH - 20}" height="{height}" rx="8" fill="#ffffff" '
                     f'stroke="#d0d0d0"/>')
        parts.append(f'<text x="24" y="{y + 20}" font-weight="bold" fill="#1d1c1d">{html.escape(who)}</text>')
        ty = y + 40
        for kind, line in lines:
            text = html.escape(clean(line))[:110]
            style = {"header": 'font-weight="bold" font-size="15"', "context": 'fill="#616061" font-size="12"',
                     "buttons": 'fill="#007a5a" font-weight="bold"', "code": 'font-family="monospace" fill="#c01343" '
                     'font-size="12"'}.get(kind, 'fill="#1d1c1d"')
            parts.append(f'<text x="24" y="{ty}" {style}>{text}</text>')
            ty += 18
        y += height + 10
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 10}" '
            f'font-family="Lato, Helvetica, Arial, sans-serif" font-size="13">'
            f'<rect width="100%" height="100%" fill="#f8f8f8"/>{"".join(parts)}</svg>\n')


ENV_GIT = {**os.environ, "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}


def make_repo(tmp: str) -> Path:
    repo = Path(tmp) / "web"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text("# web\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=ENV_GIT)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True, env=ENV_GIT)
    return repo


async def render(tmp: str, repo: Path) -> None:
    env_git = ENV_GIT
    fake = FakeSlack(rate_limits=False)
    await fake.start()
    fake.add_channel(CHANNEL, "agents")
    settings = load_settings({**env_git, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SECRET,
                              "SLACK_API_URL": fake.url, "SUPERSET_REPOS": f"web={repo}",
                              "SUPERSET_DATA_DIR": f"{tmp}/data", "SUPERSET_PRESETS_DIR": str(ROOT / "presets"),
                              "SUPERSET_DEFAULT_PRESET": "demo", "SUPERSET_MIN_FREE_DISK": "1M"}, env_file=None)
    store = await Store.open(settings.db_path)
    engine = Engine(settings, store, load_presets(settings.presets_dir), builtin_hooks())
    await engine.start()
    bot = SlackBot(settings, engine, http=True, host="127.0.0.1", port=0)
    await bot.start()
    try:
        import aiohttp

        form = urllib.parse.urlencode({"command": "/superset", "text": "spawn fix the flaky login test",
                                       "user_id": "U0ALICE", "channel_id": CHANNEL, "team_id": "T1",
                                       "response_url": fake.response_url("r"), "trigger_id": "t"})
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:{form}".encode(), hashlib.sha256).hexdigest()
        async with aiohttp.ClientSession() as http:
            await http.post(f"http://127.0.0.1:{bot.port}/slack/events", data=form.encode(),
                            headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig,
                                     "Content-Type": "application/x-www-form-urlencoded"})
        while not await store.list_tasks():  # noqa: ASYNC110 - polling the store is simplest here
            await asyncio.sleep(0.05)
        task = (await store.list_tasks())[0]
        await engine.wait_for(task.id, REVIEWABLE_STATES, timeout=60)
        await engine.wait_idle()
        assert bot.frontend and bot.outbox
        await bot.frontend.wait_jobs()
        await bot.outbox.flush(60)
        task = await engine.get(task.id)
        ids = bot.frontend.messages.get(task.id)
        thread = fake.thread(CHANNEL, ids.thread_ts if ids else "")
        messages = [("superset (in #agents)" if i == 0 else "superset (thread reply)", block_lines(m.blocks, m.text))
                    for i, m in enumerate(thread)]
        out = ROOT / "docs" / "thread.svg"
        out.write_text(svg(messages))
        print(f"wrote {out} ({len(thread)} messages)")
    finally:
        await bot.stop()
        await engine.stop()
        await store.close()
        await fake.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(render(tmp, make_repo(tmp)))


if __name__ == "__main__":
    main()
