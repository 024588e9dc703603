"""What an agent, its setup and its plugins run with: only their own preset's secrets, none of the bot's."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.env import bot_settings

from superset_bot.engine.catalog import Catalog
from superset_bot.engine.environment import Environment
from superset_bot.engine.errors import UserError
from superset_bot.presets import Preset, parse_preset
from superset_bot.redact import REDACTED
from superset_bot.store import Task

BOT_TOKEN = "xoxb-bot-token-0123456789"
HOST_KEY = "host-key-abcdef123456"  # a secret of the bot's own process, which agents inherit
ALPHA_KEY = "alpha-key-9f8e7d6c5b"
BETA_KEY = "beta-key-1a2b3c4d5e"


def preset(name: str, **body: object) -> Preset:
    return parse_preset(name, {"agent": {"command": ["agent", "{prompt}"]}, **body})


@pytest.fixture
def env(tmp_path: Path) -> Environment:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)  # settings only look for it; nothing here runs git
    (tmp_path / "presets").mkdir()
    settings = bot_settings(tmp_path, repo, SLACK_BOT_TOKEN=BOT_TOKEN, HOST_API_KEY=HOST_KEY)
    presets = {
        "alpha": preset("alpha", env={"ALPHA_API_KEY": ALPHA_KEY, "MODE": "fast"}, copy=[".env"],
                        never_commit=[".aider*"]),
        "beta": preset("beta", env={"BETA_API_KEY": BETA_KEY}),
    }
    return Environment(settings, presets, Catalog(settings, None, presets).repo_path)  # no store: no task lookups


def task(preset_name: str = "alpha", worktree: str | None = "/wt/t1") -> Task:
    return Task(id="t1", repo="demo", prompt="p", preset=preset_name, worktree=worktree)


def test_a_task_gets_its_own_presets_env_and_never_another_presets_secrets(env: Environment) -> None:
    alpha = env.for_task(task("alpha"), env.presets["alpha"])
    assert alpha["ALPHA_API_KEY"] == ALPHA_KEY and alpha["MODE"] == "fast"
    assert "BETA_API_KEY" not in alpha and BETA_KEY not in alpha.values()
    beta = env.for_task(task("beta"), env.presets["beta"])
    assert beta["BETA_API_KEY"] == BETA_KEY
    assert "ALPHA_API_KEY" not in beta and ALPHA_KEY not in beta.values()


def test_a_task_never_gets_the_bots_slack_credentials(env: Environment) -> None:
    made = env.for_task(task(), env.presets["alpha"])
    assert "SLACK_BOT_TOKEN" not in made and BOT_TOKEN not in made.values()
    assert made["HOST_API_KEY"] == HOST_KEY  # the process's own keys are the agents' to use
    assert made["GIT_TERMINAL_PROMPT"] == "0"


def test_a_task_is_told_where_it_works_and_keeps_git_from_packing(env: Environment) -> None:
    made = env.for_task(task(), env.presets["alpha"])
    assert made["SUPERSET_TASK_ID"] == "t1"
    assert made["SUPERSET_ROOT_PATH"] == str(env.repo_path("demo"))
    assert made["SUPERSET_WORKSPACE_PATH"] == "/wt/t1"
    config = {made[f"GIT_CONFIG_KEY_{i}"]: made[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(made["GIT_CONFIG_COUNT"]))}
    assert config == {"gc.auto": "0", "maintenance.auto": "false"}
    assert env.for_task(task(worktree=None), env.presets["alpha"])["SUPERSET_WORKSPACE_PATH"] == ""


def test_a_prewarmed_setup_runs_as_a_task_without_an_id(env: Environment) -> None:
    made = env.for_prewarm("demo", env.presets["alpha"], Path("/wt/.pool-1"))
    assert made["SUPERSET_TASK_ID"] == "" and made["SUPERSET_WORKSPACE_PATH"] == "/wt/.pool-1"
    assert made["ALPHA_API_KEY"] == ALPHA_KEY and "BETA_API_KEY" not in made


def test_an_unknown_repo_is_refused(env: Environment) -> None:
    with pytest.raises(UserError, match='Unknown repo "nope". Known repos: demo.'):
        env.for_task(Task(id="t1", repo="nope", prompt="p", preset="alpha"), env.presets["alpha"])


def test_redactors_hide_the_bots_secrets_and_the_presets_own(env: Environment) -> None:
    line = f"{BOT_TOKEN} {HOST_KEY} {ALPHA_KEY} {BETA_KEY}"
    assert env.redactor.redact(line) == f"{REDACTED} {REDACTED} {ALPHA_KEY} {BETA_KEY}"
    assert env.redactor_for(env.presets["alpha"]).redact(line) == f"{REDACTED} {REDACTED} {REDACTED} {BETA_KEY}"
    assert env.redactor_for(None) is env.redactor  # a preset no longer loaded
    assert env.redactor_for(preset("plain", env={"MODE": "fast"})) is env.redactor  # nothing secret in it


def test_copied_files_and_never_commit_globs_come_from_the_tasks_preset(env: Environment) -> None:
    assert env.copied(task("alpha")) == (".env",) and env.never_commit(task("alpha")) == (".aider*",)
    assert env.copied(task("beta")) == () and env.never_commit(task("beta")) == ()
    assert env.copied(task("gone")) == () and env.never_commit(task("gone")) == ()
