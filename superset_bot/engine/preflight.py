"""What a request must pass before anything is made for it: prompt size, the agent's program, free disk."""

from __future__ import annotations

import shutil

from superset_bot.config import Settings
from superset_bot.engine.errors import UserError
from superset_bot.presets import Preset, agent_argv
from superset_bot.units import format_size

MAX_PROMPT_CHARS = 50_000
MAX_PROMPT_BYTES = 120_000  # one argv element may hold 128 KiB on Linux


def check_agent_command(settings: Settings, preset: Preset) -> None:
    program = agent_argv(preset, "x")[0]
    path_env = settings.process_env.get("PATH")
    if preset.sandbox == "bwrap" and shutil.which(settings.bwrap, path=path_env) is None:
        raise UserError(
            f'Preset "{preset.name}" runs its agent in a bubblewrap sandbox, but `{settings.bwrap}` is not '
            "installed or not on PATH (SUPERSET_BWRAP). Install bubblewrap, or pick another preset."
        )
    if shutil.which(program, path=path_env) is None:
        raise UserError(
            f'Preset "{preset.name}" runs `{program}`, which is not installed or not on PATH. '
            "Install it, or pick another preset (`presets` lists them)."
        )


def check_free_disk(settings: Settings) -> None:
    if not settings.min_free_disk:
        return
    free = shutil.disk_usage(settings.data_dir).free
    if free < settings.min_free_disk:
        raise UserError(
            f"Only {format_size(free)} of disk is free in {settings.data_dir} "
            f"(SUPERSET_MIN_FREE_DISK is {format_size(settings.min_free_disk)}). "
            "Discard or merge finished tasks, or run `prune`, then try again."
        )
