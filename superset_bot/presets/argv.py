"""The agent's argv for one task: placeholders such as {prompt} filled in inside single elements, and
a {permissions} element expanded into the agent CLI's permission flags.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from superset_bot.presets.schema import PERMISSIONS_ELEMENT, Preset
from superset_bot.presets.validation import PresetError

_PLACEHOLDER = re.compile(r"\{(prompt|session|python)\}")
_PATH_PLACEHOLDER = re.compile(r"\{(worktree|git_dir|git_common_dir|ref_dir|ref_log_dir)\}")


def permission_args(preset: Preset, paths: Mapping[str, str]) -> list[str]:
    """The flags that grant `preset.agent.permissions`, in its CLI's terms, for one task.

    `paths` fills {worktree}, {git_dir}, {git_common_dir}, {ref_dir} and {ref_log_dir} (the folders of
    the task's own branches and their reflogs) in `writable`.
    """
    perms = preset.agent.permissions
    if perms is None:
        return []

    def path(entry: str) -> str:
        filled = _PATH_PLACEHOLDER.sub(lambda m: paths.get(m.group(1), m.group(0)), entry)
        return str(Path(filled).expanduser()) if filled.startswith("~") else filled

    writable = [path(entry) for entry in perms.writable]
    if preset.agent.format == "codex-json":
        args = ["--sandbox", perms.sandbox] if perms.sandbox else []
        for directory in writable:
            args += ["--add-dir", directory]
        return args
    rules = [*(f"Bash({command.strip()}:*)" for command in (*perms.commands, *preset.checks)), *perms.tools]
    args = ["--allowedTools", *dict.fromkeys(rules)] if rules else []
    for directory in writable:
        args += ["--add-dir", directory]
    return args


def agent_argv(
    preset: Preset, prompt: str, *, session: str | None = None, followup: bool = False,
    paths: Mapping[str, str] | None = None,
) -> list[str]:
    """The agent's argv with `{prompt}` (and `{session}`) replaced inside single elements.

    The result goes to exec directly, never to a shell, so the prompt stays exactly one
    argument whatever it contains; substitution is single-pass, so a prompt containing
    "{session}" is left as written. A `{permissions}` element becomes the permission flags
    (`permission_args`, with `paths` for the task's directories).
    """
    if not isinstance(prompt, str):
        raise TypeError("prompt must be a string")
    if "\x00" in prompt:
        raise ValueError("the prompt contains a NUL character, which cannot be passed to a program")
    if followup:
        template = preset.agent.followup
        if template is None:
            raise PresetError(
                f'preset "{preset.name}" has no agent.followup command, so a follow-up cannot continue '
                "the same agent session; add one or start a new task",
                path=str(preset.source) if preset.source else None,
                field="agent.followup",
            )
    else:
        template = preset.agent.command
    # {python} is the bot's own interpreter: scripted agents (the demo) run without PATH tricks
    values = {"prompt": prompt, "python": sys.executable}
    if session is not None:
        if "\x00" in session:
            raise ValueError("the session id contains a NUL character")
        values["session"] = session

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:  # only {session} can be missing
            raise ValueError(
                f'preset "{preset.name}": the command needs {{session}} but no session id is known'
            )
        return values[key]

    argv: list[str] = []
    for element in template:
        if element == PERMISSIONS_ELEMENT and preset.agent.permissions is not None:
            argv.extend(permission_args(preset, paths or {}))
        else:
            argv.append(_PLACEHOLDER.sub(substitute, element))
    return argv
