"""The soak's working folder: a private git config, the demo repository, and the soak agent.

Shared by the soak (`soak.bot`) and the crash soak (`soak.crash`), which runs the bot as a process.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

AGENT = Path(__file__).resolve().with_name("agent.py")


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

