"""Presets: manifests (presets/NAME.json) that say which agent to start and how to prepare its
worktree, and applying them; the agent's argv never passes through a shell, only fields that are
shell commands by contract (setup, checks, the Superset app's lifecycle lists) run through /bin/sh.
"""

from superset_bot.presets.argv import agent_argv, permission_args
from superset_bot.presets.copying import CopyOutcome, copy_entries, copy_files
from superset_bot.presets.prepare import PrepareResult, prepare_worktree, run_teardown, task_environment
from superset_bot.presets.schema import (
    AGENT_FORMATS,
    CODEX_SANDBOXES,
    DEFAULT_CHECKS_TIMEOUT,
    DEFAULT_SETUP_TIMEOUT,
    MERGE_STRATEGIES,
    PERMISSION_FORMATS,
    PERMISSIONS_ELEMENT,
    AgentPermissions,
    AgentSpec,
    Preset,
    PresetLimits,
    load_preset,
    load_presets,
    parse_preset,
    scan_presets,
)
from superset_bot.presets.shell import (
    CommandResult,
    LineCallback,
    describe_failure,
    run_shell_commands,
    short_duration,
)
from superset_bot.presets.superset_config import (
    SUPERSET_DIR,
    WorkspaceConfig,
    load_workspace_config,
    workspace_env,
)
from superset_bot.presets.validation import PresetError, relative_path_problem

__all__ = [
    "AGENT_FORMATS",
    "CODEX_SANDBOXES",
    "DEFAULT_CHECKS_TIMEOUT",
    "DEFAULT_SETUP_TIMEOUT",
    "MERGE_STRATEGIES",
    "PERMISSIONS_ELEMENT",
    "PERMISSION_FORMATS",
    "SUPERSET_DIR",
    "AgentPermissions",
    "AgentSpec",
    "CommandResult",
    "CopyOutcome",
    "LineCallback",
    "PrepareResult",
    "Preset",
    "PresetError",
    "PresetLimits",
    "WorkspaceConfig",
    "agent_argv",
    "copy_entries",
    "copy_files",
    "describe_failure",
    "load_preset",
    "load_presets",
    "load_workspace_config",
    "parse_preset",
    "permission_args",
    "prepare_worktree",
    "relative_path_problem",
    "run_shell_commands",
    "run_teardown",
    "scan_presets",
    "short_duration",
    "task_environment",
    "workspace_env",
]
