"""What a spawn or follow-up must pass before anything is made: the agent's program on PATH, free disk."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.env import bot_settings

from superset_bot.config import Settings
from superset_bot.engine.errors import UserError
from superset_bot.engine.preflight import check_agent_command, check_free_disk
from superset_bot.presets import Preset, parse_preset


def settings(tmp_path: Path, **env: str) -> Settings:
    (tmp_path / "presets").mkdir(exist_ok=True)
    return bot_settings(tmp_path, **env)


def preset(*command: str) -> Preset:
    return parse_preset("p", {"agent": {"command": [*command, "{prompt}"]}})


def test_an_agent_program_that_is_on_the_bots_path_passes(tmp_path: Path) -> None:
    check_agent_command(settings(tmp_path), preset(sys.executable))
    check_agent_command(settings(tmp_path, PATH="/usr/bin:/bin"), preset("sh"))


def test_an_agent_program_not_on_the_bots_path_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r'Preset "p" runs `no-such-agent-x1`, which is not installed or not on PATH'):
        check_agent_command(settings(tmp_path), preset("no-such-agent-x1"))
    # the bot's PATH decides, not the one of whoever runs the tests
    (tmp_path / "bin").mkdir()
    with pytest.raises(UserError, match="`sh`"):
        check_agent_command(settings(tmp_path, PATH=str(tmp_path / "bin")), preset("sh"))


def test_free_disk_is_checked_against_the_configured_minimum(tmp_path: Path) -> None:
    check_free_disk(settings(tmp_path, SUPERSET_MIN_FREE_DISK="1K"))
    with pytest.raises(UserError, match=r"of disk is free in .* \(SUPERSET_MIN_FREE_DISK is 1048576.0 GiB\)\. "
                                        r"Discard or merge finished tasks, or run `prune`, then try again\."):
        check_free_disk(settings(tmp_path, SUPERSET_MIN_FREE_DISK="1048576G"))
