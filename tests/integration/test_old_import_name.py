"""The old import name `bot` keeps plugins and presets written against it working for one release."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bot.hooks
from superset_bot.plugins import hooks


def test_plugins_importing_bot_hooks_get_the_same_plugin_api() -> None:
    for name in bot.hooks.__all__:
        assert getattr(bot.hooks, name) is getattr(hooks, name), name


def test_presets_running_python_m_bot_demo_agent_still_run_the_demo_agent(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    old = subprocess.run([sys.executable, "-m", "bot.demo_agent"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    new = subprocess.run([sys.executable, "-m", "superset_bot.agents.demo"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert old.returncode == new.returncode != 0 and old.stderr == new.stderr and "usage:" in old.stderr
