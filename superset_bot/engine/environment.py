"""What an agent, its setup and the plugins run with: their environment, the redactor for what they
print, and the files a preset keeps out of the task's commits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from superset_bot.agents import sandbox
from superset_bot.config import Settings
from superset_bot.git.naming import branch_ref_dir
from superset_bot.presets import Preset
from superset_bot.redact import Redactor, agent_environment, secret_values
from superset_bot.store import Task


class Environment:
    """Builds a task's environment from the bot's process, its own preset and where its worktree is."""

    def __init__(self, settings: Settings, presets: Mapping[str, Preset], repo_path: Callable[[str], Path]) -> None:
        self.settings = settings
        self.presets = presets
        self.repo_path = repo_path
        self.redactor = Redactor([*settings.secrets(), *secret_values(settings.process_env)])

    def for_prewarm(self, repo_name: str, preset: Preset, worktree: Path) -> dict[str, str]:
        """What a task's setup would get, before there is a task (SUPERSET_TASK_ID is empty)."""
        return self._command_env(repo_name, preset, "", str(worktree))

    def for_task(self, task: Task, preset: Preset) -> dict[str, str]:
        return self._command_env(task.repo, preset, task.id, task.worktree or "")

    def _command_env(self, repo_name: str, preset: Preset, task_id: str, worktree: str) -> dict[str, str]:
        repo = self.repo_path(repo_name)
        extra = {
            **preset.env,
            "SUPERSET_TASK_ID": task_id,
            "SUPERSET_ROOT_PATH": str(repo),
            "SUPERSET_WORKSPACE_PATH": worktree,
            # many agents committing at once must not all start packing the repo
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "gc.auto",
            "GIT_CONFIG_VALUE_0": "0",
            "GIT_CONFIG_KEY_1": "maintenance.auto",
            "GIT_CONFIG_VALUE_1": "false",
        }
        return agent_environment(self.settings.process_env, extra)

    async def sandboxed(self, task: Task, preset: Preset, argv: list[str], paths: Mapping[str, str],
                        env: Mapping[str, str], run_dir: Path) -> list[str]:
        """`argv` in the preset's sandbox (unchanged for `"sandbox": "none"`). Hidden besides the preset's
        own list: the bot's data dir (database, logs, the other worktrees) and every repo's checkout."""
        if preset.sandbox != "bwrap":
            return argv
        assert task.worktree
        # its own branch folders (made by the engine); a branch named by an older release lives in the
        # folder all tasks share, which is not made writable (its commits there are refused)
        own = bool(task.branch and branch_ref_dir(task.branch)) and "ref_dir" in paths
        plan = await sandbox.plan(
            worktree=Path(task.worktree), git_dir=Path(paths.get("git_dir") or task.worktree),
            common_dir=Path(paths["git_common_dir"]),
            ref_dirs=[Path(paths["ref_dir"]), Path(paths["ref_log_dir"])] if own else [],
            hide=[self.settings.data_dir], checkouts=self.settings.repos.values(),
            # the bot's own .env (where `run` reads its settings) is no agent's to read
            hidden=[*preset.sandbox_hidden, str(Path.cwd() / ".env")], writable=preset.sandbox_writable,
            network=preset.sandbox_network,
            home=env.get("HOME"), tmp=run_dir / "tmp", reads=[env.get("GIT_CONFIG_GLOBAL", "")])
        return sandbox.bwrap_argv(self.settings.bwrap, plan, argv)

    def redactor_for(self, preset: Preset | None) -> Redactor:
        """The bot's secrets and those of the preset's env (None: a preset no longer loaded)."""
        preset_secrets = secret_values(preset.env) if preset else []
        if not preset_secrets:
            return self.redactor
        return Redactor([*self.settings.secrets(), *secret_values(self.settings.process_env), *preset_secrets])

    def copied(self, task: Task) -> tuple[str, ...]:
        """Files the preset copied in from the main checkout: never committed (a .env holds secrets)."""
        preset = self.presets.get(task.preset)
        return preset.copy if preset else ()

    def never_commit(self, task: Task) -> tuple[str, ...]:
        """Globs of files the agent keeps for itself in the worktree (aider's chat history)."""
        preset = self.presets.get(task.preset)
        return preset.never_commit if preset else ()
