"""Settings, read once from the environment and `.env`, validated before anything starts.

This is the only module that reads the environment: everything else gets a `Settings`.
Errors name the variable and say what is expected, so a wrong `.env` is fixed in one go.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from superset_bot.domain.prices import DEFAULT_PRICES, Price, PriceFileError, load_prices
from superset_bot.domain.race import LABELS, MAX_ATTEMPTS_LIMIT
from superset_bot.git.naming import BadBranchName, check_branch_name
from superset_bot.units import parse_duration, parse_size

REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SLACK_ID = re.compile(r"^[A-Z0-9]{2,}$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PERMISSION_MODES = ("requester", "anyone")
REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NO_REMOTE = ("", "none")
RUNNERS = ("local", "temporal")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ConfigError(Exception):
    """One or more settings are wrong; the message has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Setting:
    """One documented setting: the single source for validation, `.env.example` and README."""

    name: str
    default: str
    help: str


# Every setting the bot reads. `.env.example` and the README table are checked against this list.
SETTINGS: tuple[Setting, ...] = (
    Setting("SLACK_BOT_TOKEN", "", "Bot token (xoxb-...) from OAuth & Permissions; needed to talk to Slack."),
    Setting("SLACK_APP_TOKEN", "", "App-level token (xapp-..., scope connections:write); when set, Socket Mode is used."),
    Setting("SLACK_SIGNING_SECRET", "", "Signing secret from Basic Information; needed for HTTP mode (run --http)."),
    Setting("SLACK_API_URL", "https://slack.com/api/", "Slack Web API base URL (tests point it at a local fake)."),
    Setting("SUPERSET_REPOS", "", "Repositories agents may work in: name=/path/to/repo,other=/path/to/other."),
    Setting("SUPERSET_DEFAULT_REPO", "", "Repo used when a command names none (default: the first in SUPERSET_REPOS)."),
    Setting("SUPERSET_DATA_DIR", "data", "Where the database, agent logs and worktrees live."),
    Setting("SUPERSET_PRESETS_DIR", "presets", "Directory of preset manifests (NAME.json)."),
    Setting("SUPERSET_DEFAULT_PRESET", "claude-code", "Preset used when a command names none."),
    Setting("SUPERSET_CHANNEL_DEFAULTS", "", "Per-channel defaults: C0123=repo:web/preset:codex;C0456=repo:api."),
    Setting("SUPERSET_HTTP_PORT", "3000", "Port for HTTP mode (POST /slack/events, GET /healthz)."),
    Setting("SUPERSET_MAX_CONCURRENT", "4", "Agents running at once; further tasks wait in a FIFO queue."),
    Setting("SUPERSET_ALLOWED_USERS", "", "Slack user ids allowed to use the bot, comma-separated (empty: everyone)."),
    Setting("SUPERSET_ALLOWED_CHANNELS", "", "Channel ids where the bot takes commands, comma-separated (empty: all)."),
    Setting("SUPERSET_ADMINS", "", "User ids who may act on anyone's task and run prune/digest, comma-separated (empty: everyone)."),
    Setting("SUPERSET_TASK_ACTIONS_BY", "requester", "Who may merge/discard/cancel/follow up: requester (and admins) or anyone."),
    Setting("SUPERSET_DIGEST_CHANNEL", "", "Channel id for status digests (empty: no scheduled digest)."),
    Setting("SUPERSET_DIGEST_CRON", "0 9 * * mon-fri", "When digests are posted (crontab: minute hour day month weekday)."),
    Setting("SUPERSET_TIMEZONE", "UTC", "Time zone for the digest schedule, e.g. Europe/Berlin."),
    Setting("SUPERSET_STALE_AFTER", "72h", "Idle time after which a finished task's worktree is pruned."),
    Setting("SUPERSET_PRUNE_WARNING", "24h", "How long before pruning a task awaiting review is warned in its thread."),
    Setting("SUPERSET_DISK_BUDGET", "", "Total size the bot's worktrees may use, e.g. 50G (empty: no budget)."),
    Setting("SUPERSET_MIN_FREE_DISK", "1G", "Spawning is refused when free disk in the data dir is below this."),
    Setting("SUPERSET_POOL_SIZE", "2", "Warm worktrees kept ready per repo (and per prewarm preset) for instant spawns; 0: off."),
    Setting("SUPERSET_REMOTE", "origin", "Remote new tasks start from: its tip of the base branch when ahead of the local one; none: off."),
    Setting("SUPERSET_REPO_REMOTES", "", "Per-repo remote instead of SUPERSET_REMOTE: web=upstream,api=none (none: no fetching)."),
    Setting("SUPERSET_FETCH_EVERY", "30s", "A repo's base branch is fetched at most this often (a spawn fetches at once when older)."),
    Setting("SUPERSET_REPO_DELIVER", "", "Per-repo delivery for presets that name none: web=pr,api=push (local, push or pr; default local)."),
    Setting("SUPERSET_GITHUB_TOKEN", "", "GitHub token for pull-request delivery (repo scope, or fine-grained: pull requests, contents, checks read)."),
    Setting("SUPERSET_GITHUB_API_URL", "https://api.github.com", "GitHub's API; for GitHub Enterprise https://HOST/api/v3."),
    Setting("SUPERSET_GITHUB_REPOS", "", "owner/name on GitHub per repo, when its remote's URL does not say: web=acme/web."),
    Setting("SUPERSET_PR_POLL_EVERY", "30s", "How often an open pull request's state and checks are looked at (conditional requests)."),
    Setting("SUPERSET_RACE_MAX_ATTEMPTS", "5", "Most attempts one `race` may start (2 to 10); each is an agent and a worktree."),
    Setting("SUPERSET_PRICES", "", "JSON file of model list prices over the shipped table, for agents that report tokens only (Codex): {\"gpt-5\": {\"input\": 1.25, \"cached_input\": 0.125, \"output\": 10}}, US dollars per million tokens; null removes a model."),
    Setting("SUPERSET_DAILY_BUDGET_PER_USER", "", "US dollars each person's agents may cost a day (SUPERSET_TIMEZONE's days), e.g. 20; empty: no budget."),
    Setting("SUPERSET_DAILY_BUDGET_PER_REPO", "", "US dollars the agents of each repo may cost a day, e.g. 100; empty: no budget."),
    Setting("SUPERSET_CGROUPS", "off", "auto: agents' limits enforced by the kernel when the bot has a delegated cgroup v2 subtree (systemd >= 254, DelegateSubgroup=bot); off: polled."),
    Setting("SUPERSET_BWRAP", "bwrap", "The bubblewrap binary for presets with \"sandbox\": \"bwrap\" (a name on PATH or an absolute path)."),
    Setting("SUPERSET_CANCEL_GRACE", "5s", "Time an agent gets between SIGTERM and SIGKILL when cancelled."),
    Setting("SUPERSET_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Setting("SUPERSET_RUNNER", "local", "Where agents run: local (this process's machine, no server needed) or temporal (worker hosts, see `superset-bot worker`)."),
    Setting("SUPERSET_TEMPORAL_ADDRESS", "127.0.0.1:7233", "The Temporal frontend (host:port) the bot and `superset-bot worker` connect to (SUPERSET_RUNNER=temporal)."),
    Setting("SUPERSET_TEMPORAL_NAMESPACE", "default", "The Temporal namespace of the bot and its workers."),
    Setting("SUPERSET_TEMPORAL_TASK_QUEUE", "superset", "The shared task queue workers register on for placement; each also serves QUEUE.host.NAME for its worktrees."),
    Setting("SUPERSET_TEMPORAL_HEARTBEAT", "10s", "A worker that sends no heartbeat for this long is taken for gone; cancels reach agents within about this time."),
    Setting("SUPERSET_WORKER_NAME", "", "This worker host's name (`superset-bot worker`); default: the machine's host name."),
)
SETTING_NAMES = frozenset(s.name for s in SETTINGS)
_DEFAULTS = {s.name: s.default for s in SETTINGS}


@dataclass(frozen=True)
class ChannelDefaults:
    repo: str | None = None
    preset: str | None = None
    base: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the bot was configured with; immutable once loaded."""

    slack_bot_token: str | None
    slack_app_token: str | None
    slack_signing_secret: str | None
    slack_api_url: str
    repos: Mapping[str, Path]
    default_repo: str | None
    data_dir: Path
    presets_dir: Path
    default_preset: str
    channel_defaults: Mapping[str, ChannelDefaults]
    http_port: int
    max_concurrent: int
    race_max_attempts: int
    allowed_users: frozenset[str]
    allowed_channels: frozenset[str]
    admins: frozenset[str]
    task_actions_by: str
    digest_channel: str | None
    digest_cron: str
    timezone: str
    stale_after: float
    prune_warning: float
    disk_budget: int | None
    min_free_disk: int
    pool_size: int
    remote: str | None  # None: fetching is off
    repo_remotes: Mapping[str, str | None]  # per-repo overrides of `remote`
    fetch_every: float
    repo_deliver: Mapping[str, str]  # per-repo delivery for presets that name none
    github_token: str | None
    github_api_url: str
    github_repos: Mapping[str, str]  # repo -> owner/name on GitHub
    pr_poll_every: float
    bwrap: str
    cgroups: str  # "auto" | "off"
    budget_per_user: float | None  # US dollars a day
    budget_per_repo: float | None
    prices: Mapping[str, Price]  # per model: the shipped table with SUPERSET_PRICES over it
    cancel_grace: float
    log_level: str
    runner: str = "local"  # "local" | "temporal"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "superset"
    temporal_heartbeat: float = 10.0
    worker_name: str = ""
    # The process environment at start (without .env additions): what agents inherit.
    process_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def spawn_choices(self, channel: str | None, options: Mapping[str, str | None]) -> ChannelDefaults:
        """What a spawn asked in `channel` uses: the command's options, else the channel's defaults."""
        defaults = self.channel_defaults.get(channel) if channel else None
        return ChannelDefaults(
            repo=options.get("repo") or (defaults.repo if defaults else None),
            preset=options.get("preset") or (defaults.preset if defaults else None),
            base=options.get("base") or (defaults.base if defaults else None),
        )

    def remote_for(self, repo: str) -> str | None:
        """The remote the repo's new tasks start from (SUPERSET_REPO_REMOTES, else SUPERSET_REMOTE); None: off."""
        if repo in self.repo_remotes:
            return self.repo_remotes[repo]
        return self.remote

    def deliver_for(self, repo: str, preset_deliver: str = "") -> str:
        """How a task's work is delivered: its preset's `deliver`, else the repo's, else local."""
        return preset_deliver or self.repo_deliver.get(repo) or "local"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "superset.sqlite3"

    @property
    def worktrees_dir(self) -> Path:
        return self.data_dir / "worktrees"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    def secrets(self) -> list[str]:
        """The bot's own credentials: never given to agents, never shown anywhere."""
        return [s for s in (self.slack_bot_token, self.slack_app_token, self.slack_signing_secret,
                            self.github_token) if s]

    def __repr__(self) -> str:  # tokens must never reach a log through a repr
        return f"Settings(repos={dict(self.repos)!r}, data_dir={str(self.data_dir)!r}, ...)"


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _is_git_repo(path: Path) -> bool:
    """A work tree with `.git` (dir or file, as in worktrees) or a bare repository."""
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


def _parse_repos(value: str, problems: list[str]) -> dict[str, Path]:
    repos: dict[str, Path] = {}
    for item in _split_list(value):
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            problems.append(f'SUPERSET_REPOS: "{item}" should be name=/path/to/repo')
            continue
        if not REPO_NAME.match(name):
            problems.append(
                f'SUPERSET_REPOS: repo name "{name}" may only use letters, digits, ".", "_" and "-"'
                " and must start with a letter or digit"
            )
            continue
        if name in repos:
            problems.append(f'SUPERSET_REPOS: repo name "{name}" is given twice')
            continue
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        if not path.is_dir():
            problems.append(f'SUPERSET_REPOS: "{name}" points to {path}, which does not exist')
        elif not _is_git_repo(path):
            problems.append(f'SUPERSET_REPOS: "{name}" points to {path}, which is not a git repository')
        repos[name] = path.resolve()
    return repos


def _parse_channel_defaults(value: str, problems: list[str]) -> dict[str, ChannelDefaults]:
    result: dict[str, ChannelDefaults] = {}
    for entry in (e.strip() for e in value.split(";")):
        if not entry:
            continue
        channel, sep, rest = entry.partition("=")
        channel = channel.strip()
        if not sep or not SLACK_ID.match(channel):
            problems.append(
                f'SUPERSET_CHANNEL_DEFAULTS: "{entry}" should be CHANNEL_ID=repo:NAME/preset:NAME/base:BRANCH'
            )
            continue
        values: dict[str, str] = {}
        for part in rest.split("/"):
            key, sep, val = part.partition(":")
            key, val = key.strip(), val.strip()
            if not sep or key not in ("repo", "preset", "base") or not val:
                problems.append(
                    f'SUPERSET_CHANNEL_DEFAULTS: "{part}" for {channel} should be repo:NAME, preset:NAME or base:BRANCH'
                )
                continue
            if key == "base":
                try:
                    check_branch_name(val)
                except BadBranchName as exc:
                    problems.append(f'SUPERSET_CHANNEL_DEFAULTS: base "{val}" for {channel} is not a valid branch '
                                    f"name: {exc.reason}")
                    continue
            values[key] = val
        result[channel] = ChannelDefaults(**values)
    return result


def _remote_name(name: str, value: str, problems: list[str], where: str = "") -> str | None:
    """A remote name, or None for "" and "none" (fetching off); a problem when git would refuse it."""
    if value.lower() in NO_REMOTE:
        return None
    if not REMOTE_NAME.match(value) or ".." in value or value.endswith(".lock"):
        problems.append(f'{name}: "{value}"{where} is not a remote name (letters, digits, ".", "_" and "-", '
                        "e.g. origin), or none to turn fetching off")
        return None
    return value


def _repo_pairs(setting: str, value: str, repos: Mapping[str, Path], problems: list[str],
                shape: str) -> Iterator[tuple[str, str]]:
    """The `repo=value` items of a per-repo setting whose repo is in SUPERSET_REPOS, each repo once;
    the others are problems (`shape` says how an item should look)."""
    seen: set[str] = set()
    for item in _split_list(value):
        name, sep, val = item.partition("=")
        name, val = name.strip(), val.strip()
        if not sep or not name or not val:
            problems.append(f'{setting}: "{item}" should be {shape}')
        elif name not in repos:
            known = ", ".join(repos) or "none configured"
            problems.append(f'{setting}: "{name}" is not in SUPERSET_REPOS (known: {known})')
        elif name in seen:
            problems.append(f'{setting}: repo "{name}" is given twice')
        else:
            seen.add(name)
            yield name, val


def _parse_repo_remotes(value: str, repos: Mapping[str, Path], problems: list[str]) -> dict[str, str | None]:
    pairs = _repo_pairs("SUPERSET_REPO_REMOTES", value, repos, problems,
                        "repo=remote (or repo=none), e.g. web=upstream")
    return {name: _remote_name("SUPERSET_REPO_REMOTES", remote, problems, f" for {name}") for name, remote in pairs}


def _parse_repo_map(setting: str, value: str, repos: Mapping[str, Path], problems: list[str],
                    what: str, valid: re.Pattern[str], example: str) -> dict[str, str]:
    """`repo=value,...` for repos in SUPERSET_REPOS, each value matching `valid`."""
    result: dict[str, str] = {}
    for name, val in _repo_pairs(setting, value, repos, problems, f"repo={what}, e.g. {example}"):
        if valid.match(val):
            result[name] = val
        else:
            problems.append(f'{setting}: "{val}" for {name} is not {what}, e.g. {example}')
    return result


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})  # where the token may travel over plain http
_DELIVERY = re.compile(r"^(local|push|pr)$")
_GITHUB_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")


def _check_data_dir(path: Path, problems: list[str]) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        problems.append(f"SUPERSET_DATA_DIR: {path} is not writable ({exc.strerror or exc}); pick a directory you own")


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = Path(".env"),
) -> Settings:
    """Read settings from `environ` (default: the process env) over `env_file`; raise ConfigError."""
    process_env = dict(os.environ if environ is None else environ)
    file_values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    merged = {**file_values, **process_env}
    problems: list[str] = []

    def get(name: str) -> str:
        return merged.get(name, _DEFAULTS[name]).strip()

    def optional(name: str) -> str | None:
        return get(name) or None

    def integer(name: str, minimum: int) -> int:
        raw = get(name)
        try:
            value = int(raw)
        except ValueError:
            problems.append(f'{name}: expected a whole number, got "{raw}"')
            return int(_DEFAULTS[name])
        if value < minimum:
            problems.append(f"{name}: expected a number >= {minimum}, got {value}")
        return value

    def prices() -> Mapping[str, Price]:
        raw = get("SUPERSET_PRICES")
        if not raw:
            return DEFAULT_PRICES
        path = Path(raw).expanduser()
        try:
            return MappingProxyType(load_prices(path if path.is_absolute() else Path.cwd() / path))
        except PriceFileError as exc:  # its message names the file and the problem
            problems.append(f"SUPERSET_PRICES: {exc}")
            return DEFAULT_PRICES

    def race_limit() -> int:
        value = integer("SUPERSET_RACE_MAX_ATTEMPTS", 2)
        if value > MAX_ATTEMPTS_LIMIT:
            problems.append(f"SUPERSET_RACE_MAX_ATTEMPTS: at most {MAX_ATTEMPTS_LIMIT} attempts are named "
                            f"(A to {LABELS[MAX_ATTEMPTS_LIMIT - 1]}), got {value}")
        return min(value, MAX_ATTEMPTS_LIMIT)

    def duration(name: str) -> float:
        try:
            return parse_duration(get(name))
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            return parse_duration(_DEFAULTS[name])

    def size(name: str) -> int | None:
        raw = get(name)
        if not raw:
            return None
        try:
            return parse_size(raw)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            return None

    def money(name: str) -> float | None:
        raw = get(name).lstrip("$").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not (value > 0 and value < 1e9):
            problems.append(f'{name}: expected an amount of US dollars like 20 or 7.50, got "{get(name)}"')
            return None
        return value

    def ids(name: str) -> frozenset[str]:
        values = _split_list(get(name))
        bad = [v for v in values if not SLACK_ID.match(v)]
        if bad:
            problems.append(f"{name}: {', '.join(bad)} do not look like Slack ids (e.g. U024BE7LH, C024BE91L)")
        return frozenset(values)

    bot_token, app_token = optional("SLACK_BOT_TOKEN"), optional("SLACK_APP_TOKEN")
    if bot_token and not bot_token.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN: expected a bot token starting with xoxb- (OAuth & Permissions page)")
    if app_token and not app_token.startswith("xapp-"):
        problems.append("SLACK_APP_TOKEN: expected an app-level token starting with xapp- (Basic Information page)")

    api_url = get("SLACK_API_URL")
    if not re.match(r"^https?://", api_url):
        problems.append(f'SLACK_API_URL: expected an http(s) URL, got "{api_url}"')
    elif not api_url.endswith("/"):
        api_url += "/"

    repos = _parse_repos(get("SUPERSET_REPOS"), problems)
    cgroups_mode = get("SUPERSET_CGROUPS").lower() or "off"
    if cgroups_mode not in ("auto", "off"):
        problems.append(f'SUPERSET_CGROUPS: expected auto or off, got "{get("SUPERSET_CGROUPS")}"')
    runner = get("SUPERSET_RUNNER").lower() or "local"
    if runner not in RUNNERS:
        problems.append(f'SUPERSET_RUNNER: expected local or temporal, got "{get("SUPERSET_RUNNER")}"')
    elif runner == "temporal" and importlib.util.find_spec("temporalio") is None:
        problems.append("SUPERSET_RUNNER: temporal needs the Temporal SDK, which is not installed: "
                        "pip install 'superset-bot[temporal]'")
    temporal_address = get("SUPERSET_TEMPORAL_ADDRESS")
    if not re.match(r"^[A-Za-z0-9._\[\]:-]+:[0-9]{1,5}$", temporal_address):
        problems.append(f'SUPERSET_TEMPORAL_ADDRESS: expected host:port, got "{temporal_address}"')
    queue = get("SUPERSET_TEMPORAL_TASK_QUEUE")
    if not QUEUE_NAME.match(queue):
        problems.append(f'SUPERSET_TEMPORAL_TASK_QUEUE: expected letters, digits, ".", "_" or "-", got "{queue}"')
    worker_name = get("SUPERSET_WORKER_NAME")
    if worker_name and not QUEUE_NAME.match(worker_name):
        problems.append(f'SUPERSET_WORKER_NAME: expected letters, digits, ".", "_" or "-", got "{worker_name}"')
    github_api_url = get("SUPERSET_GITHUB_API_URL").rstrip("/")
    if not re.match(r"^https?://[^/\s]+", github_api_url):
        problems.append(f'SUPERSET_GITHUB_API_URL: expected an http(s) URL, got "{github_api_url}"')
    elif github_api_url.startswith("http://") and urlsplit(github_api_url).hostname not in LOOPBACK_HOSTS:
        problems.append(f'SUPERSET_GITHUB_API_URL: "{github_api_url}" would send the token unencrypted; use https '
                        "(plain http only on this machine: 127.0.0.1, localhost)")
    default_repo = optional("SUPERSET_DEFAULT_REPO")
    if default_repo and default_repo not in repos:
        known = ", ".join(repos) or "none configured"
        problems.append(f'SUPERSET_DEFAULT_REPO: "{default_repo}" is not in SUPERSET_REPOS (known: {known})')
    if default_repo is None and repos:
        default_repo = next(iter(repos))

    data_dir = Path(get("SUPERSET_DATA_DIR")).expanduser()
    data_dir = (data_dir if data_dir.is_absolute() else Path.cwd() / data_dir).resolve()
    _check_data_dir(data_dir, problems)
    presets_dir = Path(get("SUPERSET_PRESETS_DIR")).expanduser()
    presets_dir = (presets_dir if presets_dir.is_absolute() else Path.cwd() / presets_dir).resolve()
    if not presets_dir.is_dir():
        problems.append(f"SUPERSET_PRESETS_DIR: {presets_dir} does not exist; point it at a directory of NAME.json presets")

    port = integer("SUPERSET_HTTP_PORT", 1)
    if port > 65535:
        problems.append(f"SUPERSET_HTTP_PORT: expected a port between 1 and 65535, got {port}")

    timezone = get("SUPERSET_TIMEZONE")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f'SUPERSET_TIMEZONE: "{timezone}" is not a known time zone (e.g. UTC, Europe/Berlin)')

    cron = get("SUPERSET_DIGEST_CRON")
    if len(cron.split()) != 5:
        problems.append(f'SUPERSET_DIGEST_CRON: expected 5 crontab fields "minute hour day month weekday", got "{cron}"')
    else:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron)
        except ValueError as exc:
            problems.append(f'SUPERSET_DIGEST_CRON: "{cron}" is not a valid schedule ({exc})')

    log_level = get("SUPERSET_LOG_LEVEL").upper()
    if log_level not in LOG_LEVELS:
        problems.append(f'SUPERSET_LOG_LEVEL: expected one of {", ".join(LOG_LEVELS)}, got "{log_level}"')
    actions_by = get("SUPERSET_TASK_ACTIONS_BY").lower()
    if actions_by not in PERMISSION_MODES:
        problems.append(f'SUPERSET_TASK_ACTIONS_BY: expected requester or anyone, got "{actions_by}"')

    digest_channel = optional("SUPERSET_DIGEST_CHANNEL")
    if digest_channel and not SLACK_ID.match(digest_channel):
        problems.append(f'SUPERSET_DIGEST_CHANNEL: "{digest_channel}" is not a channel id (e.g. C024BE91L)')

    values: dict[str, Any] = dict(
        slack_bot_token=bot_token,
        slack_app_token=app_token,
        slack_signing_secret=optional("SLACK_SIGNING_SECRET"),
        slack_api_url=api_url,
        repos=MappingProxyType(repos),
        default_repo=default_repo,
        data_dir=data_dir,
        presets_dir=presets_dir,
        default_preset=get("SUPERSET_DEFAULT_PRESET"),
        channel_defaults=MappingProxyType(_parse_channel_defaults(get("SUPERSET_CHANNEL_DEFAULTS"), problems)),
        http_port=port,
        max_concurrent=integer("SUPERSET_MAX_CONCURRENT", 1),
        race_max_attempts=race_limit(),
        allowed_users=ids("SUPERSET_ALLOWED_USERS"),
        allowed_channels=ids("SUPERSET_ALLOWED_CHANNELS"),
        admins=ids("SUPERSET_ADMINS"),
        task_actions_by=actions_by,
        digest_channel=digest_channel,
        digest_cron=cron,
        timezone=timezone,
        stale_after=duration("SUPERSET_STALE_AFTER"),
        prune_warning=duration("SUPERSET_PRUNE_WARNING"),
        disk_budget=size("SUPERSET_DISK_BUDGET"),
        min_free_disk=size("SUPERSET_MIN_FREE_DISK") or 0,
        pool_size=integer("SUPERSET_POOL_SIZE", 0),
        remote=_remote_name("SUPERSET_REMOTE", get("SUPERSET_REMOTE"), problems),
        repo_remotes=MappingProxyType(_parse_repo_remotes(get("SUPERSET_REPO_REMOTES"), repos, problems)),
        fetch_every=duration("SUPERSET_FETCH_EVERY"),
        repo_deliver=MappingProxyType(_parse_repo_map(
            "SUPERSET_REPO_DELIVER", get("SUPERSET_REPO_DELIVER"), repos, problems, "local, push or pr", _DELIVERY,
            "web=pr")),
        github_token=optional("SUPERSET_GITHUB_TOKEN"),
        github_api_url=github_api_url,
        github_repos=MappingProxyType(_parse_repo_map(
            "SUPERSET_GITHUB_REPOS", get("SUPERSET_GITHUB_REPOS"), repos, problems, "owner/name", _GITHUB_SLUG,
            "web=acme/web")),
        pr_poll_every=duration("SUPERSET_PR_POLL_EVERY"),
        bwrap=get("SUPERSET_BWRAP") or "bwrap",
        cgroups=cgroups_mode,
        budget_per_user=money("SUPERSET_DAILY_BUDGET_PER_USER"),
        budget_per_repo=money("SUPERSET_DAILY_BUDGET_PER_REPO"),
        prices=prices(),
        cancel_grace=duration("SUPERSET_CANCEL_GRACE"),
        log_level=log_level,
        runner=runner,
        temporal_address=temporal_address,
        temporal_namespace=get("SUPERSET_TEMPORAL_NAMESPACE") or "default",
        temporal_task_queue=queue,
        temporal_heartbeat=duration("SUPERSET_TEMPORAL_HEARTBEAT"),
        worker_name=worker_name,
        process_env=MappingProxyType(process_env),
    )
    if problems:
        raise ConfigError(problems)
    return Settings(**values)


def missing_for_slack(settings: Settings, http: bool) -> list[str]:
    """What `run` still needs before it can talk to Slack, as sentences a person can act on."""
    missing = []
    if not settings.slack_bot_token:
        missing.append("SLACK_BOT_TOKEN is not set: install the app to your workspace and copy the xoxb- token")
    if http:
        if not settings.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET is not set: HTTP mode needs it to verify requests from Slack")
    elif not settings.slack_app_token:
        missing.append(
            "SLACK_APP_TOKEN is not set: Socket Mode needs an xapp- token with connections:write"
            " (or run with --http and set SLACK_SIGNING_SECRET)"
        )
    if not settings.repos:
        missing.append("SUPERSET_REPOS is not set: name at least one repository, e.g. SUPERSET_REPOS=demo=/path/to/repo")
    return missing
