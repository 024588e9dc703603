"""A bot killed with SIGKILL loses no task: agents run on, and the next start finishes them."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import AGENTS_DIR, RepoFactory
from support.env import bot_env

ROOT = Path(__file__).parents[2]
LINES = 400


def console(env: dict[str, str], cwd: Path, stdin: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "superset_bot.cli", "console"], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def tasks(db: Path) -> list[dict[str, object]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY created_at")]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # the bot created the file but has not run its schema yet
            raise


def test_kill_9_then_restart_finishes_every_task(tmp_path: Path, make_repo: RepoFactory) -> None:
    repo = make_repo()
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "count.json").write_text(json.dumps({
        "description": "counts lines", "agent": {"command": [sys.executable, str(AGENTS_DIR / "engine_agent.py"),
                                                             "{prompt}"]},
        "env": {"AGENT_MODE": "count", "AGENT_LINES": str(LINES), "AGENT_DELAY": "0.01"}}))
    env = bot_env(tmp_path, repo, presets=presets, SUPERSET_DEFAULT_PRESET="count")
    db = tmp_path / "data" / "superset.sqlite3"
    first = console(env, tmp_path)
    assert first.stdin is not None
    for i in range(3):
        first.stdin.write(f"spawn count task {i}\n")
    first.stdin.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = tasks(db)
        if len(rows) == 3 and all(r["state"] == "running" and (r["log_pos"] or 0) > 0 for r in rows):
            break
        time.sleep(0.1)
    else:
        first.kill()
        raise AssertionError(f"agents did not start: {tasks(db)}; {first.communicate()}")
    first.send_signal(signal.SIGKILL)  # no cleanup, no goodbye
    first.communicate(timeout=30)
    pids = [int(r["pid"]) for r in tasks(db)]  # type: ignore[call-overload]
    assert all(Path(f"/proc/{pid}").exists() for pid in pids), "agents outlive the bot"

    second = subprocess.run([sys.executable, "-m", "superset_bot.cli", "console"], input="", capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert second.returncode == 0, second.stderr
    rows = tasks(db)
    assert [r["state"] for r in rows] == ["finished"] * 3, rows
    for row in rows:
        progress = json.loads(str(row["progress"]))
        # the agent prints a greeting line, then LINES numbered lines
        assert progress["lines_seen"] == LINES + 1, "every line read exactly once across the restart"
        assert progress["tail"][-1] == f"line {LINES} of {LINES}"
        assert row["review"] and json.loads(str(row["review"]))["files"], "each task got a normal review"
        assert f"[{row['id']}] ready for review:" in second.stdout
