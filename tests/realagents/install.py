"""Install the pinned agent CLIs into a cache dir, once per machine, safely from parallel workers.

`python tests/realagents/install.py` installs them (CI calls it before the suite); tests call
`agent_bin("claude")` etc., which installs on first use. npm packages go to
`$SUPERSET_AGENT_CACHE/npm-<versions>` (default `~/.cache/superset-bot/agent-clis`), aider to
its own venv beside it, so an upgrade is a new directory; one without `.installed` is redone.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# the versions the presets and parsers are tested with; superset_bot.doctor warns outside them
NPM_PACKAGES = {"claude": ("@anthropic-ai/claude-code", "2.1.197"), "codex": ("@openai/codex", "0.171.0")}
PIP_PACKAGES = {"aider": ("aider-chat", "0.86.2")}


def cache_root() -> Path:
    configured = os.environ.get("SUPERSET_AGENT_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "superset-bot" / "agent-clis"


def _key(packages: dict[str, tuple[str, str]]) -> str:
    spec = ",".join(f"{name}@{version}" for name, version in sorted(packages.values()))
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def _locked_install(target: Path, install: Callable[[Path], None]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    done = target / ".installed"
    if done.exists():
        return target
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return target
        # in place (a venv's scripts name their own absolute path); ".installed" marks it complete
        shutil.rmtree(target, ignore_errors=True)
        install(target)
        done.touch()
    return target


def _npm(target: Path) -> None:
    specs = [f"{name}@{version}" for name, version in NPM_PACKAGES.values()]
    subprocess.run(["npm", "install", "--prefix", str(target), "--no-audit", "--no-fund", "--loglevel=error", *specs],
                   check=True, stdout=sys.stderr)


def _pip(target: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    specs = [f"{name}=={version}" for name, version in PIP_PACKAGES.values()]
    subprocess.run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *specs], check=True, stdout=sys.stderr)


def npm_dir() -> Path:
    return _locked_install(cache_root() / f"npm-{_key(NPM_PACKAGES)}", _npm)


def aider_dir() -> Path:
    return _locked_install(cache_root() / f"aider-{_key(PIP_PACKAGES)}", _pip)


def agent_bin(name: str) -> Path:
    """The path of the pinned `claude`, `codex` or `aider` executable, installing it if needed."""
    if name in NPM_PACKAGES:
        return npm_dir() / "node_modules" / ".bin" / name
    if name in PIP_PACKAGES:
        return aider_dir() / "bin" / name
    raise KeyError(f"no pinned agent CLI named {name!r}")


if __name__ == "__main__":
    for cli in (*NPM_PACKAGES, *PIP_PACKAGES):
        print(agent_bin(cli))
