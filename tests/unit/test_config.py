"""Settings: read once, validated, errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.env import bot_env

from superset_bot.config import SETTINGS, ConfigError, load_settings, missing_for_slack


@pytest.fixture
def base_env(tmp_path: Path, make_repo) -> dict[str, str]:
    repo = make_repo("demo")
    (tmp_path / "presets").mkdir()
    return bot_env(tmp_path, repo, bare=True)  # the settings' own defaults are what these tests check


def test_defaults_and_repos(base_env: dict[str, str]) -> None:
    settings = load_settings(base_env, env_file=None)
    assert list(settings.repos) == ["demo"]
    assert settings.default_repo == "demo"
    assert settings.max_concurrent == 4
    assert settings.stale_after == 72 * 3600
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.data_dir.is_dir()
    with pytest.raises(AttributeError):
        settings.max_concurrent = 5  # type: ignore[misc]


def test_dotenv_file_is_read_and_environment_wins(base_env: dict[str, str], tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SUPERSET_MAX_CONCURRENT=7\nSUPERSET_HTTP_PORT=4000\n")
    settings = load_settings({**base_env, "SUPERSET_HTTP_PORT": "5000"}, env_file=env_file)
    assert settings.max_concurrent == 7
    assert settings.http_port == 5000
    # .env values are settings, not part of what agents inherit
    assert "SUPERSET_MAX_CONCURRENT" not in settings.process_env


def test_repo_that_is_not_git(base_env: dict[str, str], tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ConfigError) as err:
        load_settings({**base_env, "SUPERSET_REPOS": f"demo={plain}"}, env_file=None)
    assert str(err.value) == f'SUPERSET_REPOS: "demo" points to {plain}, which is not a git repository'


def test_all_problems_reported_at_once(base_env: dict[str, str], tmp_path: Path) -> None:
    env = {
        **base_env,
        "SUPERSET_REPOS": f"demo={tmp_path / 'missing'},bad name=/x,nopath",
        "SUPERSET_MAX_CONCURRENT": "lots",
        "SUPERSET_STALE_AFTER": "soon",
        "SUPERSET_TIMEZONE": "Mars/Olympus",
        "SLACK_BOT_TOKEN": "xoxp-user-token",
        "SUPERSET_ALLOWED_USERS": "U123ABC,alice",
        "SUPERSET_LOG_LEVEL": "loud",
        "SUPERSET_CHANNEL_DEFAULTS": "C123=repo:demo/colour:blue",
    }
    with pytest.raises(ConfigError) as err:
        load_settings(env, env_file=None)
    text = str(err.value)
    for expected in (
        "which does not exist",
        'repo name "bad name"',
        '"nopath" should be name=/path/to/repo',
        'SUPERSET_MAX_CONCURRENT: expected a whole number, got "lots"',
        "SUPERSET_STALE_AFTER: expected a duration",
        "SUPERSET_TIMEZONE",
        "SLACK_BOT_TOKEN: expected a bot token starting with xoxb-",
        "SUPERSET_ALLOWED_USERS: alice",
        "SUPERSET_LOG_LEVEL",
        '"colour:blue" for C123',
    ):
        assert expected in text, expected


def test_data_dir_not_writable(base_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(ConfigError, match="SUPERSET_DATA_DIR: .* is not writable"):
        load_settings({**base_env, "SUPERSET_DATA_DIR": str(blocker / "data")}, env_file=None)


def test_secrets_never_in_repr(base_env: dict[str, str]) -> None:
    settings = load_settings({**base_env, "SLACK_BOT_TOKEN": "xoxb-very-secret-1"}, env_file=None)
    assert "xoxb-very-secret-1" not in repr(settings)
    assert settings.secrets() == ["xoxb-very-secret-1"]


def test_missing_for_slack_says_what_to_set(base_env: dict[str, str]) -> None:
    settings = load_settings(base_env, env_file=None)
    socket = missing_for_slack(settings, http=False)
    assert any(m.startswith("SLACK_BOT_TOKEN is not set") for m in socket)
    assert any(m.startswith("SLACK_APP_TOKEN is not set") for m in socket)
    http = missing_for_slack(settings, http=True)
    assert any(m.startswith("SLACK_SIGNING_SECRET is not set") for m in http)


def test_channel_defaults(base_env: dict[str, str]) -> None:
    settings = load_settings({**base_env, "SUPERSET_CHANNEL_DEFAULTS": "C1AB=repo:demo/preset:codex;C2CD=base:dev"},
                             env_file=None)
    assert settings.channel_defaults["C1AB"].preset == "codex"
    assert settings.channel_defaults["C2CD"].base == "dev"


def test_env_example_lists_every_setting() -> None:
    example = (Path(__file__).parents[2] / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert {s.name for s in SETTINGS} <= names
    assert names <= {s.name for s in SETTINGS}, "unknown names in .env.example"


def test_readme_table_lists_every_setting_with_its_default() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "(empty)"
        assert f"| `{setting.name}` | {default} |" in readme, setting.name


def test_remote_settings_defaults_and_overrides(base_env: dict[str, str], make_repo) -> None:
    settings = load_settings(base_env, env_file=None)
    assert settings.remote == "origin" and settings.fetch_every == 30.0
    assert settings.remote_for("demo") == "origin"
    other = make_repo("other")
    env = {**base_env, "SUPERSET_REPOS": f"{base_env['SUPERSET_REPOS']},other={other}",
           "SUPERSET_REMOTE": "upstream", "SUPERSET_REPO_REMOTES": "other=none", "SUPERSET_FETCH_EVERY": "2m"}
    settings = load_settings(env, env_file=None)
    assert settings.remote_for("demo") == "upstream"
    assert settings.remote_for("other") is None
    assert settings.fetch_every == 120.0
    for off in ("none", "", "NONE"):
        assert load_settings({**base_env, "SUPERSET_REMOTE": off}, env_file=None).remote_for("demo") is None
    settings = load_settings({**base_env, "SUPERSET_REMOTE": "none", "SUPERSET_REPO_REMOTES": "demo=origin"},
                             env_file=None)
    assert settings.remote_for("demo") == "origin"


def test_remote_settings_problems_are_named(base_env: dict[str, str]) -> None:
    env = {**base_env, "SUPERSET_REMOTE": "-u evil", "SUPERSET_REPO_REMOTES": "web=origin,demo,demo=a..b",
           "SUPERSET_FETCH_EVERY": "often"}
    with pytest.raises(ConfigError) as err:
        load_settings(env, env_file=None)
    text = str(err.value)
    for expected in (
        'SUPERSET_REMOTE: "-u evil" is not a remote name',
        'SUPERSET_REPO_REMOTES: "web" is not in SUPERSET_REPOS (known: demo)',
        'SUPERSET_REPO_REMOTES: "demo" should be repo=remote',
        'SUPERSET_REPO_REMOTES: "a..b" for demo is not a remote name',
        "SUPERSET_FETCH_EVERY: expected a duration",
    ):
        assert expected in text, expected


def test_delivery_settings_per_repo_and_github(base_env: dict[str, str]) -> None:
    settings = load_settings(base_env, env_file=None)
    assert settings.deliver_for("demo") == "local" and settings.github_token is None
    assert settings.github_api_url == "https://api.github.com" and settings.pr_poll_every == 30.0
    env = {**base_env, "SUPERSET_REPO_DELIVER": "demo=pr", "SUPERSET_GITHUB_TOKEN": "ghp_abcdef123456",
           "SUPERSET_GITHUB_API_URL": "https://github.example.com/api/v3/", "SUPERSET_GITHUB_REPOS": "demo=acme/web"}
    settings = load_settings(env, env_file=None)
    assert settings.deliver_for("demo") == "pr" and settings.deliver_for("demo", "push") == "push", "a preset wins"
    assert settings.github_api_url == "https://github.example.com/api/v3"
    assert settings.github_repos["demo"] == "acme/web"
    assert "ghp_abcdef123456" in settings.secrets() and "ghp_abcdef123456" not in repr(settings)


def test_delivery_settings_problems_are_named(base_env: dict[str, str]) -> None:
    env = {**base_env, "SUPERSET_REPO_DELIVER": "demo=ftp,web=pr", "SUPERSET_GITHUB_REPOS": "demo=not a slug",
           "SUPERSET_GITHUB_API_URL": "github.com"}
    with pytest.raises(ConfigError) as err:
        load_settings(env, env_file=None)
    text = str(err.value)
    for expected in ('SUPERSET_REPO_DELIVER: "ftp" for demo is not local, push or pr',
                     'SUPERSET_REPO_DELIVER: "web" is not in SUPERSET_REPOS',
                     'SUPERSET_GITHUB_REPOS: "not a slug" for demo is not owner/name',
                     'SUPERSET_GITHUB_API_URL: expected an http(s) URL'):
        assert expected in text, expected
    with pytest.raises(ConfigError, match="would send the token unencrypted"):
        load_settings({**base_env, "SUPERSET_GITHUB_API_URL": "http://github.example.com/api/v3"}, env_file=None)
    assert load_settings({**base_env, "SUPERSET_GITHUB_API_URL": "http://127.0.0.1:8080"},
                         env_file=None).github_api_url == "http://127.0.0.1:8080"


def test_runner_settings(base_env: dict[str, str]) -> None:
    settings = load_settings(base_env, env_file=None)
    assert settings.runner == "local"  # no server needed by default
    assert (settings.temporal_address, settings.temporal_namespace, settings.temporal_task_queue) == \
        ("127.0.0.1:7233", "default", "superset")
    assert settings.temporal_heartbeat == 10.0
    settings = load_settings({**base_env, "SUPERSET_RUNNER": "Temporal", "SUPERSET_TEMPORAL_ADDRESS": "temporal:7233",
                              "SUPERSET_TEMPORAL_TASK_QUEUE": "agents", "SUPERSET_WORKER_NAME": "build-7",
                              "SUPERSET_TEMPORAL_HEARTBEAT": "30s"}, env_file=None)
    assert (settings.runner, settings.temporal_address, settings.temporal_task_queue, settings.worker_name,
            settings.temporal_heartbeat) == ("temporal", "temporal:7233", "agents", "build-7", 30.0)
    with pytest.raises(ConfigError) as err:
        load_settings({**base_env, "SUPERSET_RUNNER": "k8s", "SUPERSET_TEMPORAL_ADDRESS": "http://x",
                       "SUPERSET_TEMPORAL_TASK_QUEUE": "a queue", "SUPERSET_WORKER_NAME": "-x"}, env_file=None)
    assert err.value.problems == [
        'SUPERSET_RUNNER: expected local or temporal, got "k8s"',
        'SUPERSET_TEMPORAL_ADDRESS: expected host:port, got "http://x"',
        'SUPERSET_TEMPORAL_TASK_QUEUE: expected letters, digits, ".", "_" or "-", got "a queue"',
        'SUPERSET_WORKER_NAME: expected letters, digits, ".", "_" or "-", got "-x"',
    ]
