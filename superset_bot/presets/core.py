"""Preset manifests (presets/NAME.json) and applying them to a fresh worktree.

A preset says which agent to start and how to prepare a worktree for it: files copied from
the main checkout, setup commands, env, checks, limits. Manifests are written by people, so
every error names the file and the field and says what was expected. Nothing here knows
about Slack; the engine calls `prepare_worktree` and `agent_argv`.

The agent's argv never passes through a shell: `{prompt}` is replaced inside one argv
element. Only fields that are shell commands by contract (`setup`, `checks`, and the Superset
desktop app's `.superset/config.json` lists) run through `/bin/sh`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import difflib
import inspect
import json
import logging
import os
import re
import shlex
import shutil
import signal
import stat
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from superset_bot.units import format_duration, parse_duration, parse_size

log = logging.getLogger(__name__)

AGENT_FORMATS = ("plain", "claude-stream-json", "codex-json", "aider")
# which formats understand agent.permissions, and how (see `permission_args`)
PERMISSION_FORMATS = ("claude-stream-json", "codex-json")
CODEX_SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
MERGE_STRATEGIES = ("merge", "squash", "rebase")
DEFAULT_SETUP_TIMEOUT = 600.0
DEFAULT_CHECKS_TIMEOUT = 600.0

LineCallback = Callable[[str], Awaitable[None] | None]

_TOP_FIELDS = (
    "description", "agent", "setup", "env", "copy", "checks", "limits", "merge",
    "prewarm", "keep_branch", "setup_timeout", "checks_timeout", "never_commit",
)  # fmt: skip
_AGENT_FIELDS = ("command", "format", "followup", "permissions")
_PERMISSION_FIELDS = ("commands", "tools", "sandbox", "writable")
_PATH_PLACEHOLDERS = ("worktree", "git_dir", "git_common_dir")
_DURATION_LIMITS = ("timeout", "cpu")
_SIZE_LIMITS = ("memory", "output", "disk")
_PLACEHOLDER = re.compile(r"\{(prompt|session|python)\}")
_PATH_PLACEHOLDER = re.compile(r"\{(worktree|git_dir|git_common_dir)\}")
PERMISSIONS_ELEMENT = "{permissions}"  # a whole argv element: replaced by the permission flags
_BRACED = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")  # `${VAR}` is shell syntax, not ours
_PLACEHOLDERS = ("prompt", "session", "python", "permissions")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PresetError(ValueError):
    """A preset or workspace config that cannot be used, with a message a person can act on.

    `errors` holds one error per invalid file when `load_presets` rejects several at once.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        field: str | None = None,
        errors: Sequence[PresetError] = (),
    ) -> None:
        super().__init__(message)
        self.path = path
        self.field = field
        self.errors = tuple(errors)


@dataclass(frozen=True)
class AgentPermissions:
    """What the agent may do inside its worktree, in the agent CLI's own terms.

    `commands`: shell command prefixes it may run (Claude Code: `--allowedTools "Bash(PREFIX:*)"`;
    the preset's `checks` are always added). `tools`: further Claude permission rules, verbatim
    ("WebFetch", "Bash(docker compose up:*)"). `sandbox`: Codex's `--sandbox` mode. `writable`:
    directories writable besides the worktree (`--add-dir`), with {worktree}, {git_dir} (the
    worktree's own git dir) and {git_common_dir} (the repository's .git) filled in per task.
    """

    commands: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    sandbox: str | None = None
    writable: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentSpec:
    command: tuple[str, ...]
    format: str = "plain"
    followup: tuple[str, ...] | None = None
    permissions: AgentPermissions | None = None


@dataclass(frozen=True)
class PresetLimits:
    """Seconds for timeout/cpu, bytes for memory/output/disk; None leaves the engine's default."""

    timeout: float | None = None
    memory: int | None = None
    cpu: float | None = None
    output: int | None = None
    disk: int | None = None


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    description: str = ""
    agent: AgentSpec
    setup: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    copy: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    limits: PresetLimits = PresetLimits()
    merge: str = "merge"
    prewarm: bool = False
    never_commit: tuple[str, ...] = ()  # globs of files the agent keeps for itself (aider's .aider*)
    keep_branch: bool = False
    setup_timeout: float = DEFAULT_SETUP_TIMEOUT
    checks_timeout: float = DEFAULT_CHECKS_TIMEOUT
    source: Path | None = None


# --------------------------------------------------------------------------- validation


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({json.dumps(value)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Checker:
    """Collects the file name so every message reads `FILE: field "a.b": problem`."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)

    def error(self, field_name: str | None, problem: str) -> PresetError:
        where = f'{self.path}: field "{field_name}": ' if field_name else f"{self.path}: "
        return PresetError(where + problem, path=self.path, field=field_name)

    def obj(self, value: object, name: str | None, allowed: Sequence[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(name, f"expected an object {{...}}, got {_json_type(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    full = f"{name}.{key}" if name else key
                    raise self.error(
                        full, f"unknown field; allowed here: {', '.join(allowed)} (check the spelling)"
                    )
        return value

    def string(self, value: object, name: str, *, non_empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {_json_type(value)}")
        if non_empty and not value.strip():
            raise self.error(name, "must not be empty")
        if "\x00" in value:
            raise self.error(name, "must not contain a NUL character")
        return value

    def strings(self, value: object, name: str, *, non_empty_items: bool = True) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.error(name, f"expected a list of strings, got {_json_type(value)}")
        return tuple(
            self.string(item, f"{name}[{i}]", non_empty=non_empty_items) for i, item in enumerate(value)
        )

    def boolean(self, value: object, name: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_json_type(value)}")
        return value

    def choice(self, value: object, name: str, choices: Sequence[str]) -> str:
        text = self.string(value, name)
        if text not in choices:
            raise self.error(name, f"expected one of {', '.join(choices)}, got {json.dumps(text)}")
        return text

    def duration(self, value: object, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f"expected a duration like 30m or 2h, got {_json_type(value)}")
        try:
            return parse_duration(value)
        except ValueError:
            raise self.error(name, f"expected a duration like 30m or 2h, got {json.dumps(value)}") from None

    def size(self, value: object, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.error(name, f"expected a size like 512M or 4G, got {_json_type(value)}")
        try:
            return parse_size(value)
        except ValueError:
            raise self.error(name, f"expected a size like 512M or 4G, got {json.dumps(value)}") from None

    def argv(self, value: object, name: str, placeholders: Sequence[str]) -> tuple[str, ...]:
        example = '["your-agent", "--flag", "{prompt}"]'
        if not isinstance(value, list):
            raise self.error(name, f"expected a list of strings like {example}, got {_json_type(value)}")
        if not value:
            raise self.error(name, f"must not be empty; give the program and its arguments, e.g. {example}")
        argv = tuple(self.string(item, f"{name}[{i}]") for i, item in enumerate(value))
        if not argv[0].strip():
            raise self.error(f"{name}[0]", "the program name must not be empty")
        for i, item in enumerate(argv):
            if item != PERMISSIONS_ELEMENT and PERMISSIONS_ELEMENT in item and "permissions" in placeholders:
                raise self.error(f"{name}[{i}]", "{permissions} must be a whole element of the list, "
                                                 "because it becomes several arguments")
            for match in _BRACED.finditer(item):
                word = match.group(1)
                if word in placeholders:
                    continue
                allowed = " and ".join("{" + p + "}" for p in placeholders)
                if word in _PLACEHOLDERS:
                    raise self.error(f"{name}[{i}]", f"{match.group(0)} cannot be used here; only {allowed}")
                near = difflib.get_close_matches(word.lower(), _PLACEHOLDERS, n=1, cutoff=0.7)
                if near:
                    raise self.error(
                        f"{name}[{i}]", f"unknown placeholder {match.group(0)}; did you mean {{{near[0]}}}?"
                    )
        return argv

    def relative_path(self, value: object, name: str) -> str:
        text = self.string(value, name, non_empty=True)
        problem = relative_path_problem(text)
        if problem:
            raise self.error(name, problem)
        return text


def relative_path_problem(entry: str, *, allow_root: bool = False) -> str | None:
    """Why `entry` cannot name a path inside a checkout, or None when it can."""
    if not entry.strip():
        return "must not be empty"
    if "\x00" in entry:
        return "must not contain a NUL character"
    if (
        entry.startswith(("/", "\\", "~"))
        or PurePosixPath(entry).is_absolute()
        or re.match(r"^[A-Za-z]:", entry)
    ):
        return f"{json.dumps(entry)} is an absolute path; use a path relative to the repository root"
    parts = PurePosixPath(entry.replace("\\", "/")).parts
    if ".." in parts:
        return f"{json.dumps(entry)} contains a '..' component; paths must stay inside the repository"
    if not allow_root and all(part == "." for part in parts):
        return f"{json.dumps(entry)} names the whole checkout; name the files or directories to copy"
    if next((p for p in parts if p != "."), None) == ".git":
        return f"{json.dumps(entry)} is inside .git; git metadata cannot be copied or used"
    return None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _read_json(path: Path) -> object:
    """Parse a JSON file, or raise PresetError naming the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{path}: file not found", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise PresetError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(path)
        ) from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot read: {exc.strerror or exc}", path=str(path)) from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise PresetError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=str(path)
        ) from None
    except _DuplicateKey as exc:
        raise PresetError(
            f'{path}: field "{exc.key}" appears more than once; keep one', path=str(path), field=exc.key
        ) from None


def parse_preset(name: str, data: object, *, source: Path | str | None = None) -> Preset:
    """Validate already-decoded manifest data; errors name `source` (or the preset name)."""
    check = _Checker(source if source is not None else f"preset {name}")
    if not _PRESET_NAME.match(name):
        raise check.error(
            None,
            f"preset name {json.dumps(name)} (taken from the file name) must start with a letter or digit "
            "and contain only letters, digits, '-', '_' or '.'; rename the file",
        )
    top = check.obj(data, None, _TOP_FIELDS)
    if "agent" not in top:
        raise check.error("agent", 'missing; add "agent": {"command": ["your-agent", "{prompt}"]}')
    agent_obj = check.obj(top["agent"], "agent", _AGENT_FIELDS)
    if "command" not in agent_obj:
        raise check.error("agent.command", 'missing; add e.g. "command": ["your-agent", "{prompt}"]')
    agent_format = check.choice(agent_obj.get("format", "plain"), "agent.format", AGENT_FORMATS)
    permissions = (
        _permissions(check, agent_obj["permissions"], agent_format) if "permissions" in agent_obj else None
    )
    words = ("prompt", "python", "permissions") if permissions else ("prompt", "python")
    agent = AgentSpec(
        command=check.argv(agent_obj["command"], "agent.command", words),
        format=agent_format,
        followup=(
            check.argv(agent_obj["followup"], "agent.followup", (*words, "session"))
            if "followup" in agent_obj
            else None
        ),
        permissions=permissions,
    )
    if permissions is not None:
        for key, argv in (("command", agent.command), ("followup", agent.followup)):
            if argv is not None and PERMISSIONS_ELEMENT not in argv:
                raise check.error(f"agent.{key}", "agent.permissions is set but this command has no "
                                                  '"{permissions}" element to put the permission flags in')

    env: dict[str, str] = {}
    for key, value in check.obj(top.get("env", {}), "env", None).items():
        if not _ENV_NAME.match(key):
            raise check.error(
                f"env.{key}",
                "not a valid environment variable name (letters, digits and _, not starting with a digit)",
            )
        env[key] = check.string(value, f"env.{key}")

    limits_obj = check.obj(top.get("limits", {}), "limits", _DURATION_LIMITS + _SIZE_LIMITS)
    durations = {k: check.duration(limits_obj[k], f"limits.{k}") for k in _DURATION_LIMITS if k in limits_obj}
    sizes = {k: check.size(limits_obj[k], f"limits.{k}") for k in _SIZE_LIMITS if k in limits_obj}

    copy_value = top.get("copy", [])
    if not isinstance(copy_value, list):
        raise check.error(
            "copy", f'expected a list of relative paths like [".env"], got {_json_type(copy_value)}'
        )

    return Preset(
        name=name,
        description=check.string(top.get("description", ""), "description"),
        agent=agent,
        setup=check.strings(top.get("setup", []), "setup"),
        env=MappingProxyType(env),
        copy=tuple(check.relative_path(item, f"copy[{i}]") for i, item in enumerate(copy_value)),
        checks=check.strings(top.get("checks", []), "checks"),
        limits=PresetLimits(
            timeout=durations.get("timeout"),
            cpu=durations.get("cpu"),
            memory=sizes.get("memory"),
            output=sizes.get("output"),
            disk=sizes.get("disk"),
        ),
        merge=check.choice(top.get("merge", "merge"), "merge", MERGE_STRATEGIES),
        prewarm=check.boolean(top.get("prewarm", False), "prewarm"),
        never_commit=tuple(_glob(check, item, f"never_commit[{i}]")
                           for i, item in enumerate(check.strings(top.get("never_commit", []), "never_commit"))),
        keep_branch=check.boolean(top.get("keep_branch", False), "keep_branch"),
        setup_timeout=(
            check.duration(top["setup_timeout"], "setup_timeout")
            if "setup_timeout" in top
            else DEFAULT_SETUP_TIMEOUT
        ),
        checks_timeout=(
            check.duration(top["checks_timeout"], "checks_timeout")
            if "checks_timeout" in top
            else DEFAULT_CHECKS_TIMEOUT
        ),
        source=Path(source) if source is not None else None,
    )


def _glob(check: _Checker, value: str, name: str) -> str:
    """A pattern relative to the worktree, like ".aider*" or "build/**/*.log"."""
    problem = relative_path_problem(value.replace("*", "x").replace("?", "x"))
    if not value.strip("*?/."):
        problem = f"{json.dumps(value)} matches every file, so nothing would ever be committed"
    if problem:
        raise check.error(name, problem)
    return value


def _permissions(check: _Checker, value: object, agent_format: str) -> AgentPermissions:
    obj = check.obj(value, "agent.permissions", _PERMISSION_FIELDS)
    if agent_format not in PERMISSION_FORMATS:
        raise check.error("agent.permissions", f'is understood for agent.format "claude-stream-json" (Claude '
                                               f'Code) and "codex-json" (Codex), not "{agent_format}"; remove it')
    claude = agent_format == "claude-stream-json"
    if claude and "sandbox" in obj:
        raise check.error("agent.permissions.sandbox", "is a Codex setting; Claude Code's permissions are "
                                                       '"commands" and "tools"')
    if not claude:
        for key in ("commands", "tools"):
            if key in obj:
                raise check.error(f"agent.permissions.{key}", "Codex has no per-command allow list: its sandbox "
                                                              'decides ("sandbox", "writable")')
    commands = check.strings(obj.get("commands", []), "agent.permissions.commands")
    for i, command in enumerate(commands):
        if any(c in command for c in "()\n\r") or not command.strip():
            raise check.error(f"agent.permissions.commands[{i}]",
                              "a command prefix like \"npm test\", without parentheses or line breaks")
    tools = check.strings(obj.get("tools", []), "agent.permissions.tools")
    for i, tool in enumerate(tools):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*(\([^()\n]*\))?", tool):
            raise check.error(f"agent.permissions.tools[{i}]",
                              f'{json.dumps(tool)} is not a permission rule like "WebFetch" or "Bash(make:*)"')
    writable = check.strings(obj.get("writable", []), "agent.permissions.writable")
    for i, entry in enumerate(writable):
        for match in _BRACED.finditer(entry):
            if match.group(1) not in _PATH_PLACEHOLDERS:
                raise check.error(f"agent.permissions.writable[{i}]",
                                  f"unknown placeholder {match.group(0)}; use {{worktree}}, {{git_dir}} "
                                  "or {git_common_dir}")
        if not entry.startswith(("/", "~/", "{")):
            raise check.error(f"agent.permissions.writable[{i}]",
                              "an absolute path, ~/..., or one starting with {worktree}, {git_dir} "
                              "or {git_common_dir}")
    sandbox = check.choice(obj["sandbox"], "agent.permissions.sandbox", CODEX_SANDBOXES) if "sandbox" in obj else None
    return AgentPermissions(commands=commands, tools=tools, sandbox=sandbox, writable=writable)


def permission_args(preset: Preset, paths: Mapping[str, str]) -> list[str]:
    """The flags that grant `preset.agent.permissions`, in its CLI's terms, for one task.

    `paths` fills {worktree}, {git_dir} and {git_common_dir} in `writable`.
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


def load_preset(path: Path) -> Preset:
    """Load and validate one manifest; the preset's name is the file's stem."""
    path = Path(path)
    return parse_preset(path.stem, _read_json(path), source=path)


def scan_presets(directory: Path) -> tuple[dict[str, Preset], list[PresetError]]:
    """Every valid preset in `directory` plus one error per invalid file (for lenient callers)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PresetError(
            f"{directory}: preset directory not found; create it or point SUPERSET_PRESETS_DIR at one",
            path=str(directory),
        )
    presets: dict[str, Preset] = {}
    errors: list[PresetError] = []
    for path in sorted(directory.glob("*.json")):
        if path.is_symlink() and not path.exists():  # skipping it would turn into "unknown preset" later
            errors.append(PresetError(f"{path}: a symlink to {os.readlink(path)}, which does not exist; "
                                      "fix or remove the link", path=str(path)))
            continue
        if not path.is_file():
            continue
        try:
            preset = load_preset(path)
        except PresetError as exc:
            errors.append(exc)
        else:
            presets[preset.name] = preset
    return presets, errors


def load_presets(directory: Path) -> dict[str, Preset]:
    """All presets in `directory` (`*.json`), strictly: any invalid file raises.

    The PresetError message lists every invalid file, one line each, and `.errors` holds them
    separately; use `scan_presets` to keep the valid ones and report the rest.
    """
    presets, errors = scan_presets(directory)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        lines = "\n".join(str(e) for e in errors)
        raise PresetError(
            f"{len(errors)} invalid presets in {directory}:\n{lines}", path=str(directory), errors=errors
        )
    return presets


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


def task_environment(
    base: Mapping[str, str], preset: Preset | None, repo: Path, worktree: Path
) -> dict[str, str]:
    """The env for a task's commands: `base`, then the preset's env, then the Superset variables.

    `base` is the complete environment (the caller decides what of its own env to pass on).
    """
    env = dict(base)
    if preset is not None:
        env.update(preset.env)
    env.update(workspace_env(repo, worktree))
    return env


# --------------------------------------------------------------------------- Superset workspace config

_WS_KEYS = ("setup", "teardown", "run")
SUPERSET_DIR = ".superset"


@dataclass(frozen=True)
class WorkspaceConfig:
    """The repository's Superset desktop-app lifecycle commands, layered as the app does.

    `sources` lists the files that contributed, in the order they were applied; `ignored`
    explains commands that were read but not trusted.
    """

    setup: tuple[str, ...] = ()
    teardown: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    cwd: str | None = None
    sources: tuple[Path, ...] = ()
    ignored: tuple[str, ...] = ()

    def commands(self, key: str) -> tuple[str, ...]:
        if key not in _WS_KEYS:
            raise ValueError(f"unknown lifecycle key {key!r}; use one of {', '.join(_WS_KEYS)}")
        result: tuple[str, ...] = getattr(self, key)
        return result


@dataclass
class _Wrap:
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass
class _Layer:
    path: Path
    commands: dict[str, tuple[str, ...] | _Wrap]
    cwd: str | None


def _command_list(check: _Checker, value: object, name: str) -> tuple[str, ...]:
    # Superset drops blank entries rather than failing on them.
    return tuple(c for c in check.strings(value, name, non_empty_items=False) if c.strip())


def _read_workspace_file(path: Path, *, local: bool) -> _Layer | None:
    if not path.is_file():
        return None
    check = _Checker(path)
    data = check.obj(_read_json(path), None, None)  # unknown keys: ignored, the app may add more
    commands: dict[str, tuple[str, ...] | _Wrap] = {}
    for key in _WS_KEYS:
        value = data.get(key)
        if value is None:
            continue
        if local and isinstance(value, dict):
            wrap = check.obj(value, key, ("before", "after"))
            commands[key] = _Wrap(
                before=_command_list(check, wrap.get("before", []), f"{key}.before"),
                after=_command_list(check, wrap.get("after", []), f"{key}.after"),
            )
        elif isinstance(value, list):
            commands[key] = _command_list(check, value, key)
        else:
            shape = (
                'a list of commands or {"before": [...], "after": [...]}' if local else "a list of commands"
            )
            raise check.error(key, f"expected {shape}, got {_json_type(value)}")
    cwd: str | None = None
    if data.get("cwd") is not None:
        cwd = check.string(data["cwd"], "cwd", non_empty=True).strip()
        problem = relative_path_problem(cwd, allow_root=True)
        if problem:
            raise check.error("cwd", problem + " (cwd is relative to the worktree)")
    return _Layer(path, commands, cwd)


def _user_override_dirs(repo: Path, home: Path, project_id: str | None) -> list[Path]:
    """~/.superset/projects/<repo path> (current app) before ~/.superset/projects/<project id> (older)."""
    projects = home / SUPERSET_DIR / "projects"
    dirs: list[Path] = []
    for candidate in (repo.absolute(), repo.resolve()):
        under = projects.joinpath(*candidate.parts[1:])
        if under not in dirs:
            dirs.append(under)
    if project_id and "/" not in project_id and "\\" not in project_id and project_id not in (".", ".."):
        dirs.append(projects / project_id)
    return dirs


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _fallback_script(key: str, dirs: Sequence[Path]) -> tuple[str, Path] | None:
    for base in dirs:
        script = base / SUPERSET_DIR / f"{key}.sh"
        if script.is_file():
            command = (
                shlex.quote(str(script)) if os.access(script, os.X_OK) else f"bash {shlex.quote(str(script))}"
            )
            return command, script
    return None


def load_workspace_config(
    repo: Path,
    worktree: Path,
    home: Path | None = None,
    *,
    project_id: str | None = None,
    trust_worktree: bool = True,
) -> WorkspaceConfig:
    """Resolve the Superset desktop app's lifecycle config for a task's worktree.

    As the current app does (apps/desktop .../workspaces/utils/setup.ts): `<repo>/.superset/
    config.json`, then `<worktree>/.superset/config.json`, then the user override
    `~/.superset/projects/<absolute repo path>/config.json` (or the older
    `~/.superset/projects/<project_id>/config.json`), each overriding only the keys it sets
    (an explicit `[]` clears a key). Then `.superset/config.local.json` (the worktree's, else
    the repo's) is laid on top: a list replaces the key, `{"before": [...], "after": [...]}`
    wraps it; the local overlay needs at least one config.json to apply to. A key still
    without commands falls back to `.superset/<key>.sh` (worktree first, then repo).

    `trust_worktree=False` ignores every command the worktree itself provides (its
    config.json, config.local.json and scripts), as the app now does for branch content;
    use it once an agent has written to the worktree. Malformed files raise PresetError
    naming the file and field (the app logs and skips them; a bot should say so).
    """
    repo = Path(repo)
    worktree = Path(worktree)
    home = Path.home() if home is None else Path(home)
    sources: list[Path] = []
    ignored: list[str] = []

    def untrusted(layer: _Layer | None, same_as: _Layer | None = None) -> None:
        if (
            same_as is not None
            and layer is not None
            and (layer.commands, layer.cwd) == (same_as.commands, same_as.cwd)
        ):
            return  # the branch's copy of the team's config: nothing is lost by ignoring it
        if layer and (layer.commands or layer.cwd):
            keys = ", ".join([*layer.commands, *(["cwd"] if layer.cwd else [])])
            ignored.append(f"{layer.path}: {keys} ignored (the worktree's own config is not trusted here)")

    same_dir = repo.resolve() == worktree.resolve()
    layers: list[_Layer] = []
    repo_layer = _read_workspace_file(repo / SUPERSET_DIR / "config.json", local=False)
    if repo_layer:
        layers.append(repo_layer)
    if not same_dir:
        wt_layer = _read_workspace_file(worktree / SUPERSET_DIR / "config.json", local=False)
        if trust_worktree:
            if wt_layer:
                layers.append(wt_layer)
        else:
            untrusted(wt_layer, same_as=repo_layer)
    for directory in _user_override_dirs(repo, home, project_id):
        user_layer = _read_workspace_file(directory / "config.json", local=False)
        if user_layer:
            layers.append(user_layer)
            break

    merged: dict[str, tuple[str, ...]] | None = None
    cwd: str | None = None
    cwd_source: Path | None = None
    for layer in layers:
        merged = {} if merged is None else merged
        for key, value in layer.commands.items():
            assert isinstance(value, tuple)
            merged[key] = value
        if layer.cwd is not None:
            cwd, cwd_source = layer.cwd, layer.path
        sources.append(layer.path)

    local: _Layer | None = None
    if not same_dir:
        wt_local = _read_workspace_file(worktree / SUPERSET_DIR / "config.local.json", local=True)
        if trust_worktree:
            local = wt_local
        else:
            untrusted(wt_local)
    if local is None:
        local = _read_workspace_file(repo / SUPERSET_DIR / "config.local.json", local=True)
    if local is not None and merged is not None:
        for key, value in local.commands.items():
            if isinstance(value, _Wrap):
                merged[key] = (*value.before, *merged.get(key, ()), *value.after)
            else:
                merged[key] = value
        if local.cwd is not None:
            cwd, cwd_source = local.cwd, local.path
        sources.append(local.path)
    elif local is not None:
        ignored.append(f"{local.path}: ignored because there is no .superset/config.json for it to extend")

    resolved: dict[str, tuple[str, ...]] = {}
    script_dirs = [worktree, repo] if trust_worktree and not same_dir else [repo]
    for key in _WS_KEYS:
        if merged is not None and key in merged:
            resolved[key] = merged[key]
            continue
        resolved[key] = ()
        fallback = _fallback_script(key, script_dirs)
        if fallback:
            resolved[key] = (fallback[0],)
            sources.append(fallback[1])
        wt_script = worktree / SUPERSET_DIR / f"{key}.sh"
        if (
            not trust_worktree
            and not same_dir
            and wt_script.is_file()
            and not _same_bytes(wt_script, repo / SUPERSET_DIR / f"{key}.sh")
        ):
            ignored.append(f"{wt_script}: ignored (the worktree's own scripts are not trusted here)")

    if cwd is not None and cwd_source is not None:
        target = (worktree / cwd).resolve()
        if target.exists() and not _inside(target, worktree.resolve()):
            raise PresetError(
                f'{cwd_source}: field "cwd": {json.dumps(cwd)} leads outside the worktree through a symlink; '
                "use a directory inside it",
                path=str(cwd_source),
                field="cwd",
            )

    return WorkspaceConfig(
        setup=resolved["setup"],
        teardown=resolved["teardown"],
        run=resolved["run"],
        cwd=cwd,
        sources=tuple(sources),
        ignored=tuple(ignored),
    )


def workspace_env(repo: Path, worktree: Path) -> dict[str, str]:
    """The variables Superset's setup scripts expect: main checkout and worktree paths."""
    worktree = Path(worktree).absolute()
    return {
        "SUPERSET_ROOT_PATH": str(Path(repo).absolute()),
        "SUPERSET_WORKSPACE_PATH": str(worktree),
        "SUPERSET_WORKSPACE_NAME": worktree.name,
    }


# --------------------------------------------------------------------------- copying files


@dataclass(frozen=True)
class CopyOutcome:
    copied: list[str]
    missing: list[str]


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _check_destination(dest: Path, worktree_real: Path, entry: str) -> None:
    """Refuse to write through a symlink: `dest` must not be one, and its parent must resolve inside."""
    if dest.is_symlink():
        raise PresetError(
            f'copy entry "{entry}": {dest} in the worktree is a symlink; refusing to write through it',
            field="copy",
        )
    if not _inside(dest.parent.resolve(), worktree_real):
        raise PresetError(
            f'copy entry "{entry}": the destination leads outside the worktree through a symlink',
            field="copy",
        )


def _link_problem(link: Path, repo_real: Path) -> str | None:
    """Links are copied as links, and read in the worktree; only relative ones that stay inside do."""
    target = os.readlink(link)
    if os.path.isabs(target):
        return f"{link} is a symlink to an absolute path ({target}); only relative links inside the repository are copied"
    if not _inside(Path(os.path.normpath(link.parent / target)), repo_real):
        return f"{link} is a symlink pointing outside the repository ({target})"
    return None


def _copy_tree(src_dir: Path, dest_dir: Path, repo_real: Path, worktree_real: Path, entry: str) -> None:
    # Validate everything before writing anything, so a bad link leaves no half copy behind.
    for root, dirs, files in os.walk(src_dir, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            problem = None
            if stat.S_ISLNK(mode):
                problem = _link_problem(path, repo_real)
            elif not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                problem = f"{path} is not a regular file or directory (a pipe, socket or device)"
            if problem:
                raise PresetError(f'copy entry "{entry}": {problem}', field="copy")
    # os.walk lists links to directories in `dirs` but does not descend into them.
    for root, dirs, files in os.walk(src_dir, followlinks=False):
        target_dir = dest_dir / Path(root).relative_to(src_dir)
        _check_destination(target_dir, worktree_real, entry)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in [*dirs, *files]:
            src = Path(root) / name
            dest = target_dir / name
            if src.is_symlink():
                if dest.is_dir() and not dest.is_symlink():
                    raise PresetError(
                        f'copy entry "{entry}": {dest} is a directory in the worktree', field="copy"
                    )
                if dest.is_symlink() or dest.exists():
                    dest.unlink()  # replaces a link or file, never writes through it
                os.symlink(os.readlink(src), dest)
            elif src.is_file():
                _check_destination(dest, worktree_real, entry)
                shutil.copy2(src, dest, follow_symlinks=False)


def copy_entries(entries: Iterable[str], repo: Path, worktree: Path) -> CopyOutcome:
    """Copy each entry from the main checkout into the worktree; missing sources are skipped.

    Raises PresetError naming the entry for absolute paths, '..', a source that resolves
    outside the repository through a symlink, a destination that is or passes through a
    symlink, or a symlink inside a copied directory that points outside the repository.
    Blocking file work: call through asyncio.to_thread.
    """
    repo_real = Path(repo).resolve()
    worktree_real = Path(worktree).resolve()
    copied: list[str] = []
    missing: list[str] = []
    for entry in entries:
        problem = relative_path_problem(entry)
        if problem:
            raise PresetError(f'copy entry "{entry}": {problem}', field="copy")
        rel = PurePosixPath(entry.replace("\\", "/"))
        src = repo_real.joinpath(*rel.parts)
        dest = worktree_real.joinpath(*rel.parts)
        if not src.exists() and not src.is_symlink():
            missing.append(entry)
            continue
        src_real = src.resolve()
        if not _inside(src_real, repo_real) or src_real == repo_real:
            raise PresetError(
                f'copy entry "{entry}": {src} leads outside the repository through a symlink; refusing to copy it',
                field="copy",
            )
        if not src_real.exists():
            missing.append(entry)  # a dangling link inside the repo
            continue
        _check_destination(dest, worktree_real, entry)
        if src_real.is_dir():
            _copy_tree(src_real, dest, repo_real, worktree_real, entry)
        elif src_real.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            _check_destination(dest, worktree_real, entry)
            if dest.is_dir():
                raise PresetError(
                    f'copy entry "{entry}": {dest} is a directory in the worktree', field="copy"
                )
            shutil.copy2(src_real, dest)
        else:
            raise PresetError(
                f'copy entry "{entry}": not a regular file or directory (a pipe, socket or device)',
                field="copy",
            )
        copied.append(entry)
    if missing:
        log.info("copy: not in the main checkout, skipped: %s", ", ".join(missing))
    return CopyOutcome(copied=copied, missing=missing)


def copy_files(entries: Iterable[str], repo: Path, worktree: Path) -> list[str]:
    """`copy_entries` returning only what was copied (missing sources are logged and skipped)."""
    return copy_entries(entries, repo, worktree).copied


# --------------------------------------------------------------------------- running shell commands

_READ_LIMIT_LINES = 1000  # pause reading while this many lines wait for a slow on_line
_MAX_LINE = 4000  # characters; longer lines are split
_TERM_GRACE = 2.0  # SIGTERM -> SIGKILL
_LINGER_GRACE = 1.0  # after the command exits, how long a background child may keep its output open
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


@dataclass(frozen=True)
class CommandResult:
    """One shell command's outcome; `exit_code` is None when it could not start."""

    command: str
    exit_code: int | None
    timed_out: bool
    output_tail: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class _LineSplitter:
    """Bytes in, bounded text lines out: UTF-8 across chunk edges, \\r progress collapsed, ANSI dropped."""

    def __init__(self, max_line: int = _MAX_LINE) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._max = max_line

    def _clean(self, line: str) -> list[str]:
        line = _ANSI.sub("", line).rstrip("\r")
        if "\r" in line:
            line = line.rsplit("\r", 1)[1]
        return [line[i : i + self._max] for i in range(0, len(line), self._max)] or [""]

    def feed(self, data: bytes) -> list[str]:
        parts = (self._buf + self._decoder.decode(data)).split("\n")
        self._buf = parts.pop()
        lines = [piece for part in parts for piece in self._clean(part)]
        while len(self._buf) > self._max:
            lines.extend(self._clean(self._buf[: self._max]))
            self._buf = self._buf[self._max :]
        return lines

    def close(self) -> list[str]:
        rest = self._buf + self._decoder.decode(b"", final=True)
        self._buf = ""
        return self._clean(rest) if rest else []


class _ShellProtocol(asyncio.SubprocessProtocol):
    """Feeds output lines into a queue and notes when the shell exits and when output ends.

    Exit and end-of-output are separate on purpose: a background child can keep the pipe
    open after the command itself has finished.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None
        self._splitter = _LineSplitter()
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        for line in self._splitter.feed(data if isinstance(data, bytes) else data.encode()):
            self.lines.put_nowait(line)
        if not self._paused and self.lines.qsize() > _READ_LIMIT_LINES and self.transport is not None:
            pipe = self.transport.get_pipe_transport(1)
            if isinstance(pipe, asyncio.ReadTransport):
                pipe.pause_reading()
                self._paused = True

    @property
    def paused(self) -> bool:
        return self._paused

    def resume_if_drained(self) -> None:
        if self._paused and self.lines.qsize() < _READ_LIMIT_LINES // 2 and self.transport is not None:
            pipe = self.transport.get_pipe_transport(1)
            if isinstance(pipe, asyncio.ReadTransport) and not pipe.is_closing():
                pipe.resume_reading()
            self._paused = False

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd != 1 or self.eof.done():
            return
        for line in self._splitter.close():
            self.lines.put_nowait(line)
        self.lines.put_nowait(None)
        self.eof.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the process group; False when nothing is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a group member changed uid; nothing we may do
        return False
    return True


def _group_has_live_members(pgid: int) -> bool:
    """True while a non-zombie process is in the group (zombies wait on a parent that may never reap)."""
    if not _signal_group(pgid, 0):
        return False
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - not Linux: trust kill(0)
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


async def _terminate_group(pgid: int) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is still there after a grace period."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _TERM_GRACE
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        if not await asyncio.to_thread(_group_has_live_members, pgid):
            return
    _signal_group(pgid, signal.SIGKILL)


async def _wait_eof(proto: _ShellProtocol, grace: float) -> bool:
    """Wait for the end of output; time spent behind a slow on_line (reading paused) does not count."""
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(proto.eof), grace)
            return True
        except TimeoutError:
            if not proto.paused:
                return False


async def _emit(on_line: LineCallback | None, line: str) -> None:
    if on_line is None:
        return
    try:
        result = on_line(line)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:  # a broken display callback must not break setup
        log.exception("on_line callback failed")


async def _run_one(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: LineCallback | None,
    tail_lines: int,
) -> CommandResult:
    loop = asyncio.get_running_loop()
    start = loop.time()
    tail: deque[str] = deque(maxlen=max(tail_lines, 1))
    # Shielded: cancelled mid-start, asyncio would kill only the shell, not what it already forked.
    creation = asyncio.ensure_future(
        loop.subprocess_shell(
            lambda: _ShellProtocol(loop),
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(cwd),
            env=dict(env),
            start_new_session=True,
        )
    )
    try:
        transport, proto = await asyncio.shield(creation)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            transport, proto = await creation
            _signal_group(transport.get_pid(), signal.SIGKILL)
            await asyncio.wait_for(asyncio.shield(proto.exited), _TERM_GRACE)
            transport.close()
        raise
    except OSError as exc:
        message = f"could not start in {cwd}: {exc.strerror or exc}"
        await _emit(on_line, message)
        return CommandResult(command, None, False, message, loop.time() - start)
    pgid = transport.get_pid()

    async def consume() -> None:
        while True:
            line = await proto.lines.get()
            if line is None:
                return
            tail.append(line)
            await _emit(on_line, line)
            proto.resume_if_drained()

    consumer = asyncio.ensure_future(consume())
    timed_out = lingering = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(proto.exited), timeout)
        except TimeoutError:
            timed_out = True
            await _terminate_group(pgid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proto.exited), _TERM_GRACE)
        if not await _wait_eof(proto, _LINGER_GRACE):
            # Something the command started in the background still holds its output open.
            lingering = True
            await _terminate_group(pgid)
            await _wait_eof(proto, _TERM_GRACE)
        if proto.eof.done():
            await consumer  # the rest of the lines, however slow on_line is
        if lingering:
            note = "[superset-bot] stopped background processes that kept this command's output open"
            tail.append(note)
            await _emit(on_line, note)
    except asyncio.CancelledError:
        _signal_group(pgid, signal.SIGKILL)
        # SIGKILL is immediate; wait the moment it takes to be reaped so nothing is left half-open.
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(proto.exited), _TERM_GRACE)
        raise
    finally:
        if not consumer.done():
            consumer.cancel()
        transport.close()
    exit_code = transport.get_returncode()
    return CommandResult(command, exit_code, timed_out, "\n".join(tail), loop.time() - start)


async def run_shell_commands(
    commands: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: LineCallback | None = None,
    tail_lines: int = 40,
    *,
    announce: bool = False,
) -> list[CommandResult]:
    """Run shell commands one after another, stopping at the first failure.

    `timeout` is the total for the whole list (a command that would start after it is spent
    is reported as timed out without running). Each command runs through /bin/sh in its own
    process group with stdout and stderr merged and stdin closed; every output line goes to
    `on_line` as it arrives and the last `tail_lines` are kept. At the timeout the whole
    group gets SIGTERM, then SIGKILL 2 s later. Background processes that keep the output
    open after the command exits are stopped too (send them to a file if they must live).
    `env` is the complete environment. With `announce`, `$ command` is sent to `on_line` first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    results: list[CommandResult] = []
    for command in commands:
        remaining = deadline - loop.time()
        if remaining <= 0:
            results.append(CommandResult(command, None, True, "not started: no time left", 0.0))
            break
        if announce:
            await _emit(on_line, f"$ {command}")
        result = await _run_one(command, cwd, env, remaining, on_line, tail_lines)
        results.append(result)
        if not result.ok:
            break
    return results


def short_duration(seconds: float) -> str:
    """'10m', '2h', '45s', '0.2s' for whole units, else '3m 05s' (for messages)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds < 60:
        return f"{seconds:g}s"
    return format_duration(seconds)


def describe_failure(result: CommandResult, label: str, timeout: float | None = None) -> str:
    """A sentence for a failed command, e.g. 'setup command "npm ci" exited with code 1'."""
    if result.timed_out:
        after = f" after {short_duration(timeout)}" if timeout is not None else ""
        return f'{label} timed out{after} (while running "{result.command}")'
    if result.exit_code is None:
        detail = result.output_tail.splitlines()[-1] if result.output_tail else "it could not start"
        return f'{label} command "{result.command}" could not start: {detail}'
    if result.exit_code < 0:
        try:
            name = signal.Signals(-result.exit_code).name
        except ValueError:
            name = f"signal {-result.exit_code}"
        return f'{label} command "{result.command}" was killed by {name}'
    return f'{label} command "{result.command}" exited with code {result.exit_code}'


# --------------------------------------------------------------------------- preparing a worktree


@dataclass(frozen=True)
class PrepareResult:
    copied: list[str]
    commands: list[CommandResult]
    ok: bool
    reason: str | None
    missing: list[str] = field(default_factory=list)
    workspace: WorkspaceConfig | None = None


async def prepare_worktree(
    preset: Preset,
    repo: Path,
    worktree: Path,
    env: Mapping[str, str],
    on_line: LineCallback | None = None,
    *,
    commands: bool = True,
) -> PrepareResult:
    """Copy the preset's files, then run the repo's Superset setup and the preset's setup.

    `commands=False` only copies (fresh copies into a worktree whose setup ran ahead, in the pool).
    Everything shares `preset.setup_timeout`. Commands run with `env` (complete) plus the
    preset's env plus SUPERSET_ROOT_PATH / SUPERSET_WORKSPACE_PATH. Never raises for a
    problem in the repo or preset: the result says what went wrong.
    """
    repo = Path(repo)
    worktree = Path(worktree)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + preset.setup_timeout
    copied: list[str] = []
    missing: list[str] = []
    results: list[CommandResult] = []

    def fail(reason: str, workspace: WorkspaceConfig | None = None) -> PrepareResult:
        return PrepareResult(copied, results, False, reason, missing, workspace)

    try:
        outcome = await asyncio.to_thread(copy_entries, preset.copy, repo, worktree)
    except PresetError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"copying files into the worktree failed: {exc}")
    copied, missing = outcome.copied, outcome.missing
    for entry in missing:
        await _emit(on_line, f"[copy] {entry} is not in the main checkout; skipped")

    try:
        workspace = await asyncio.to_thread(load_workspace_config, repo, worktree)
    except PresetError as exc:
        return fail(f"the repository's Superset config is invalid: {exc}")
    for note in workspace.ignored:
        await _emit(on_line, f"[superset] {note}")

    child_env = task_environment(env, preset, repo, worktree)
    steps = [
        ("workspace setup", workspace.setup, worktree / workspace.cwd if workspace.cwd else worktree),
        ("setup", preset.setup, worktree),
    ]
    for label, step_commands, cwd in steps if commands else ():
        if not step_commands:
            continue
        remaining = deadline - loop.time()
        if remaining > 0:
            step = await run_shell_commands(step_commands, cwd, child_env, remaining, on_line, announce=True)
        else:
            step = [CommandResult(step_commands[0], None, True, "not started: no time left", 0.0)]
        results.extend(step)
        failed = next((r for r in step if not r.ok), None)
        if failed is not None:
            if failed.timed_out:
                return fail(f"setup timed out after {short_duration(preset.setup_timeout)}", workspace)
            return fail(describe_failure(failed, label), workspace)
    return PrepareResult(copied, results, True, None, missing, workspace)


async def run_teardown(
    repo: Path,
    worktree: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: LineCallback | None = None,
) -> list[CommandResult]:
    """Run the repository's Superset `teardown` commands before a worktree is discarded.

    The worktree's own config and scripts are not trusted here (an agent has written to it
    by now), so the commands come from the main checkout and the user's override only.
    Raises PresetError when that config is malformed; the caller decides whether to discard
    anyway.
    """
    repo = Path(repo)
    worktree = Path(worktree)
    workspace = await asyncio.to_thread(load_workspace_config, repo, worktree, trust_worktree=False)
    if not workspace.teardown:
        return []
    cwd = worktree / workspace.cwd if workspace.cwd else worktree
    if not cwd.is_dir():
        cwd = worktree
    return await run_shell_commands(
        workspace.teardown, cwd, task_environment(env, None, repo, worktree), timeout, on_line, announce=True
    )
