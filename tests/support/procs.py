"""Processes still running in a folder: no agent, git or bot a test started may outlive it.

A process counts as the folder's when its working directory is inside it (what agents, git and
the bots the tests start all have: a repo, a worktree or a tmp dir). Zombies have no working
directory left to read, so they do not count: they have ended, even where pid 1 never reaps them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cwd_under(pid: str, folder: Path) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(folder))
    except OSError:
        return False


def cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:300]
    except OSError:
        return "?"


def running_under(folder: Path) -> list[str]:
    """The pids of processes (other than this one) whose working directory is inside `folder`."""
    me = str(os.getpid())
    return [pid for pid in os.listdir("/proc") if pid.isdigit() and pid != me and cwd_under(pid, folder)]


def left_running(folder: Path, patience: float = 10.0) -> list[str]:
    """What still runs in `folder` after `patience` seconds (one being stopped gets that long to go),
    as "pid command line"; empty when nothing is left."""
    deadline = time.monotonic() + patience
    while True:
        alive = running_under(folder)
        if not alive or time.monotonic() >= deadline:
            return [f"{pid} {cmdline(pid)}" for pid in alive]
        time.sleep(0.1)
