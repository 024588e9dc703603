"""The `killable` fixture: `superset-bot console` as a separate process, to kill -9 at an exact step.

A `git` shim first on the bot's PATH (tests/agents/git_pause.sh) holds the real git at the step
under test, so the kill lands there every time, no timing luck.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AGENTS_DIR

from .engineharness import agent_preset, write_presets
from .env import bot_env

ROOT = Path(__file__).resolve().parents[2]

PRESETS = {"edit": agent_preset("edit")}


class KillableBot:
    """`superset-bot console` in its own process group, with tests/agents/git_pause.sh as its git.

    The data and presets dirs are the ones the `harness` fixture uses, so `await harness(PRESETS,
    repo=repo)` is the restarted bot: same database, same worktrees, same presets.
    """

    def __init__(self, tmp_path: Path, repo: Path, pause: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "data" / "superset.sqlite3"
        self.marker = tmp_path / "paused"
        presets = write_presets(tmp_path / "presets", PRESETS)
        shim = tmp_path / "shim"
        shim.mkdir()
        (shim / "git").write_text(f'#!/bin/sh\nexec /bin/sh {AGENTS_DIR / "git_pause.sh"} "$@"\n')
        (shim / "git").chmod(0o755)
        real_git = shutil.which("git")
        assert real_git
        env = bot_env(tmp_path, repo, presets=presets, **{
            "PATH": f"{shim}:{os.environ['PATH']}", "REAL_GIT": real_git, "SUPERSET_DEFAULT_PRESET": "edit",
            "SUPERSET_POOL_SIZE": "0", "PAUSE_MARKER": str(self.marker), **pause,
        })
        self.proc = subprocess.Popen([sys.executable, "-m", "superset_bot.cli", "console"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=ROOT, start_new_session=True)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def tasks(self) -> list[dict[str, object]]:
        if not self.db.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY created_at")]
            except sqlite3.OperationalError:  # not created yet
                return []

    def wait(self, check, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                raise AssertionError(f"{what}: not reached; tasks {self.tasks()}; bot said {self.proc.communicate()}")
            time.sleep(0.05)

    def wait_paused(self) -> str:
        self.wait(self.marker.exists, "git paused at the step under test")
        return self.marker.read_text()

    def kill(self) -> None:
        """SIGKILL the bot and everything in its process group, then the git it was held in."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=30)
        self.end_held_git()

    def end_held_git(self) -> None:
        """The bot runs each git command in a session of its own, so killing the bot's group does not
        reach the git_pause.sh shim holding one: end the shim's group too. (The shim also ends by itself
        once the bot is gone; this makes sure no held git outlives the test whatever happens.)"""
        try:
            pid = int(self.marker.read_text().split()[0])
            running = b"git_pause.sh" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):  # never held, or already gone
            return
        if running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # the shim leads the group of its git command


@pytest.fixture
def killable(tmp_path: Path) -> Iterator[Callable[..., KillableBot]]:
    bots: list[KillableBot] = []

    def start(repo: Path, **pause: str) -> KillableBot:
        bots.append(KillableBot(tmp_path, repo, pause))
        return bots[-1]

    yield start
    for bot in bots:
        if bot.proc.poll() is None:
            bot.kill()
        else:
            bot.end_held_git()
