"""The preset manifest (presets/NAME.json): its dataclasses, its validation and loading a directory
of them, with errors that name the file and the field.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from superset_bot.presets.validation import Checker, PresetError, json_type, read_json, relative_path_problem

AGENT_FORMATS = ("plain", "claude-stream-json", "codex-json", "aider")
# which formats understand agent.permissions, and how (see `argv.permission_args`)
PERMISSION_FORMATS = ("claude-stream-json", "codex-json")
CODEX_SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
MERGE_STRATEGIES = ("merge", "squash", "rebase")
# where a task's work goes: merged into the local base (local), that and the base pushed to the remote
# (push), or the task's branch pushed and delivered as a pull request merged on the host (pr)
DELIVERIES = ("local", "push", "pr")
SANDBOXES = ("none", "bwrap")
DEFAULT_SETUP_TIMEOUT = 600.0
DEFAULT_CHECKS_TIMEOUT = 600.0

_TOP_FIELDS = (
    "description", "agent", "setup", "env", "copy", "checks", "limits", "merge",
    "prewarm", "keep_branch", "setup_timeout", "checks_timeout", "never_commit", "deliver", "follow_base",
    "sandbox", "sandbox_network", "sandbox_writable", "sandbox_hidden",
)  # fmt: skip
_AGENT_FIELDS = ("command", "format", "followup", "permissions")
_PERMISSION_FIELDS = ("commands", "tools", "sandbox", "writable")
_PATH_PLACEHOLDERS = ("worktree", "git_dir", "git_common_dir", "ref_dir", "ref_log_dir")
_DURATION_LIMITS = ("timeout", "cpu")
_SIZE_LIMITS = ("memory", "output", "disk")
PERMISSIONS_ELEMENT = "{permissions}"  # a whole argv element: replaced by the permission flags
_BRACED = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")  # `${VAR}` is shell syntax, not ours
_PLACEHOLDERS = ("prompt", "session", "python", "permissions")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    pids: int | None = None  # processes at once (kernel-enforced with cgroups only)
    cpus: float | None = None  # cores' worth of CPU (cgroup cpu.max; kernel-enforced with cgroups only)


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
    deliver: str = ""  # local | push | pr; "": as the repo says (SUPERSET_REPO_DELIVER), else local
    prewarm: bool = False
    never_commit: tuple[str, ...] = ()  # globs of files the agent keeps for itself (aider's .aider*)
    keep_branch: bool = False
    follow_base: bool = False  # a review that still merges cleanly takes in its base when the base moves
    sandbox: str = "none"  # "bwrap": the agent runs in a bubblewrap sandbox (agents/sandbox.py)
    sandbox_network: bool = True  # in the sandbox: may the agent reach the network (its model API)?
    sandbox_writable: tuple[str, ...] = ()  # in the sandbox: folders it may write besides its worktree
    sandbox_hidden: tuple[str, ...] = ()  # in the sandbox: paths it must not see (besides ~/.ssh and such)
    setup_timeout: float = DEFAULT_SETUP_TIMEOUT
    checks_timeout: float = DEFAULT_CHECKS_TIMEOUT
    source: Path | None = None


def _argv(check: Checker, value: object, name: str, placeholders: Sequence[str]) -> tuple[str, ...]:
    """An agent command list: non-empty strings, with only `placeholders` among the {words}."""
    example = '["your-agent", "--flag", "{prompt}"]'
    if not isinstance(value, list):
        raise check.error(name, f"expected a list of strings like {example}, got {json_type(value)}")
    if not value:
        raise check.error(name, f"must not be empty; give the program and its arguments, e.g. {example}")
    argv = tuple(check.string(item, f"{name}[{i}]") for i, item in enumerate(value))
    if not argv[0].strip():
        raise check.error(f"{name}[0]", "the program name must not be empty")
    for i, item in enumerate(argv):
        if item != PERMISSIONS_ELEMENT and PERMISSIONS_ELEMENT in item and "permissions" in placeholders:
            raise check.error(f"{name}[{i}]", "{permissions} must be a whole element of the list, "
                                             "because it becomes several arguments")
        for match in _BRACED.finditer(item):
            word = match.group(1)
            if word in placeholders:
                continue
            allowed = " and ".join("{" + p + "}" for p in placeholders)
            if word in _PLACEHOLDERS:
                raise check.error(f"{name}[{i}]", f"{match.group(0)} cannot be used here; only {allowed}")
            near = difflib.get_close_matches(word.lower(), _PLACEHOLDERS, n=1, cutoff=0.7)
            if near:
                raise check.error(
                    f"{name}[{i}]", f"unknown placeholder {match.group(0)}; did you mean {{{near[0]}}}?"
                )
    return argv


def parse_preset(name: str, data: object, *, source: Path | str | None = None) -> Preset:
    """Validate already-decoded manifest data; errors name `source` (or the preset name)."""
    check = Checker(source if source is not None else f"preset {name}")
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
        command=_argv(check, agent_obj["command"], "agent.command", words),
        format=agent_format,
        followup=(
            _argv(check, agent_obj["followup"], "agent.followup", (*words, "session"))
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

    limits_obj = check.obj(top.get("limits", {}), "limits", _DURATION_LIMITS + _SIZE_LIMITS + ("pids", "cpus"))
    durations = {k: check.duration(limits_obj[k], f"limits.{k}") for k in _DURATION_LIMITS if k in limits_obj}
    sizes = {k: check.size(limits_obj[k], f"limits.{k}") for k in _SIZE_LIMITS if k in limits_obj}

    copy_value = top.get("copy", [])
    if not isinstance(copy_value, list):
        raise check.error(
            "copy", f'expected a list of relative paths like [".env"], got {json_type(copy_value)}'
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
            pids=int(_positive(check, limits_obj["pids"], "limits.pids", whole=True)) if "pids" in limits_obj else None,
            cpus=_positive(check, limits_obj["cpus"], "limits.cpus") if "cpus" in limits_obj else None,
        ),
        merge=check.choice(top.get("merge", "merge"), "merge", MERGE_STRATEGIES),
        deliver=check.choice(check.string(top["deliver"], "deliver"), "deliver", DELIVERIES) if "deliver" in top else "",
        prewarm=check.boolean(top.get("prewarm", False), "prewarm"),
        never_commit=tuple(_glob(check, item, f"never_commit[{i}]")
                           for i, item in enumerate(check.strings(top.get("never_commit", []), "never_commit"))),
        keep_branch=check.boolean(top.get("keep_branch", False), "keep_branch"),
        follow_base=check.boolean(top.get("follow_base", False), "follow_base"),
        sandbox=check.choice(top.get("sandbox", "none"), "sandbox", SANDBOXES),
        sandbox_network=check.boolean(top.get("sandbox_network", True), "sandbox_network"),
        sandbox_writable=_paths(check, top.get("sandbox_writable", []), "sandbox_writable"),
        sandbox_hidden=_paths(check, top.get("sandbox_hidden", []), "sandbox_hidden"),
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


def _positive(check: Checker, value: object, name: str, whole: bool = False) -> float:
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise check.error(name, f"expected a positive {'whole ' if whole else ''}number, got {json.dumps(value)}")
    return float(value)


def _paths(check: Checker, value: object, name: str) -> tuple[str, ...]:
    """Absolute paths or ~/...: the sandbox's folders; a relative path would depend on where the bot runs."""
    paths = check.strings(value, name)
    for i, path in enumerate(paths):
        if not (path.startswith("/") or path == "~" or path.startswith("~/")):
            raise check.error(f"{name}[{i}]", f"{json.dumps(path)} should be absolute or start with ~/")
    return paths


def _glob(check: Checker, value: str, name: str) -> str:
    """A pattern relative to the worktree, like ".aider*" or "build/**/*.log"."""
    problem = relative_path_problem(value.replace("*", "x").replace("?", "x"))
    if not value.strip("*?/."):
        problem = f"{json.dumps(value)} matches every file, so nothing would ever be committed"
    if problem:
        raise check.error(name, problem)
    return value


def _permissions(check: Checker, value: object, agent_format: str) -> AgentPermissions:
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
                                  f"unknown placeholder {match.group(0)}; use {{worktree}}, {{git_dir}}, "
                                  "{git_common_dir}, {ref_dir} or {ref_log_dir}")
        if not entry.startswith(("/", "~/", "{")):
            raise check.error(f"agent.permissions.writable[{i}]",
                              "an absolute path, ~/..., or one starting with {worktree}, {git_dir} "
                              "or {git_common_dir}")
    sandbox = check.choice(obj["sandbox"], "agent.permissions.sandbox", CODEX_SANDBOXES) if "sandbox" in obj else None
    return AgentPermissions(commands=commands, tools=tools, sandbox=sandbox, writable=writable)


def load_preset(path: Path) -> Preset:
    """Load and validate one manifest; the preset's name is the file's stem."""
    path = Path(path)
    return parse_preset(path.stem, read_json(path), source=path)


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
