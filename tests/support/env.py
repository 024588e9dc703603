"""The environment a bot under test starts with, built in one place.

Every test bot, in process (the `harness` and `bot` fixtures, the soak) or as a `superset-bot`
process (the CLI, restart and fault tests), gets the same base; a test names only what it changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from superset_bot.config import Settings, load_settings

Repos = Path | Mapping[str, Path]


def bot_env(home: Path, repos: Repos | None = None, *, presets: Path | None = None, bare: bool = False,
            **overrides: str) -> dict[str, str]:
    """The environment of a bot living in `home` (a test's tmp_path), as a dict of variables.

    - SUPERSET_REPOS: `repos`, one path (named "demo") or {name: path}; unset when None
    - SUPERSET_DATA_DIR: home/data; SUPERSET_PRESETS_DIR: `presets`, by default home/presets
    - unless `bare`: the process around the settings: PATH (this process's), HOME=home, the suite's
      private git config (GIT_CONFIG_GLOBAL, GIT_CONFIG_NOSYSTEM=1) and SUPERSET_MIN_FREE_DISK=1M
      (a test needs little disk; the default of 1G would refuse spawns on a full test machine).
      `bare` is for tests of the settings' own defaults.
    - `overrides` last, so they win: any variable, e.g. SUPERSET_DEFAULT_PRESET="edit" or PATH.
    """
    env: dict[str, str] = {}
    if not bare:
        env.update({
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "GIT_CONFIG_GLOBAL": os.environ["GIT_CONFIG_GLOBAL"],
            "GIT_CONFIG_NOSYSTEM": "1",
        })
    if repos is not None:
        named = {"demo": repos} if isinstance(repos, Path) else repos
        env["SUPERSET_REPOS"] = ",".join(f"{name}={path}" for name, path in named.items())
    env["SUPERSET_DATA_DIR"] = str(home / "data")
    env["SUPERSET_PRESETS_DIR"] = str(presets if presets is not None else home / "presets")
    if not bare:
        env["SUPERSET_MIN_FREE_DISK"] = "1M"
    env.update(overrides)
    return env


def bot_settings(home: Path, repos: Repos | None = None, *, presets: Path | None = None,
                 **overrides: str) -> Settings:
    """`bot_env(...)` read as the bot reads it (no .env file): the Settings of an in-process bot."""
    return load_settings(bot_env(home, repos, presets=presets, **overrides), env_file=None)
