"""`superset-bot doctor`: everything a first run needs, checked at once, each failure with its fix.

`run` stops at the first problem it meets; the doctor keeps going so a new setup is fixed in one
pass: configuration, Slack tokens and scopes (against the real Web API, or SLACK_API_URL), the
transport's credentials, git, every repo, every preset and its agent, the data dir and free disk.
It prints one line per check (✓ ok, ! warning, ✗ blocks running) and returns the exit code.
Tokens are never printed: at most their prefix and last four characters.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from superset_bot.agents import cgroups, sandbox
from superset_bot.agents.versions import (
    KNOWN_CLIS,
    KnownCli,
    Probe,
    argv_flags,
    in_tested_range,
    probe,
    show_version,
)
from superset_bot.config import ConfigError, Settings, load_settings
from superset_bot.doctor_delivery import check_delivery
from superset_bot.git.commands import GitError, git_version, is_git_repo, run_git
from superset_bot.git.diff import is_dirty
from superset_bot.git.refs import default_branch
from superset_bot.presets import Preset, PresetError, agent_argv, scan_presets
from superset_bot.redact import Redactor
from superset_bot.units import format_size

# The bot token scopes the code needs, one reason each; deploy/slack-app-manifest*.yml declare
# exactly these (tests/e2e/test_deploy.py checks manifest, code and this list against each other).
REQUIRED_BOT_SCOPES: Mapping[str, str] = {
    "app_mentions:read": "@superset mentions start tasks and follow-ups",
    "channels:history": "after a failed post, check whether it went through in a public channel (no double post)",
    "chat:write": "task threads, status cards and answers",
    "commands": "the /superset command",
    "files:write": "diffs uploaded into task threads",
    "groups:history": "after a failed post, check whether it went through in a private channel (no double post)",
    "im:history": "after a failed post, check whether it went through in a direct message (no double post)",
    "mpim:history": "after a failed post, check whether it went through in a group DM (no double post)",
    "reactions:write": "the status emoji on each task",
}
MIN_GIT = (2, 38, 0)

OK, WARN, FAIL = "ok", "warn", "fail"
_MARKS = {OK: "✓", WARN: "!", FAIL: "✗"}
_ASCII_MARKS = {OK: "[ok]", WARN: "[warn]", FAIL: "[FAIL]"}

_SCOPE_FIX = ("under OAuth & Permissions -> Scopes -> Bot Token Scopes and reinstall the app "
              "(Install App -> Reinstall to Workspace); or paste deploy/slack-app-manifest.yml into the "
              "app's App Manifest page and reinstall")

_BOT_TOKEN_FIXES = {
    "invalid_auth": "SLACK_BOT_TOKEN is wrong or belongs to another app: copy the Bot User OAuth Token "
                    "(xoxb-...) from OAuth & Permissions again",
    "not_authed": "SLACK_BOT_TOKEN was not sent: set it to the Bot User OAuth Token (xoxb-...)",
    "token_revoked": "the token was revoked (was the app uninstalled?): reinstall the app (Install App) and "
                     "copy the new xoxb- token into SLACK_BOT_TOKEN",
    "account_inactive": "the app was uninstalled or deactivated: reinstall it (Install App) and copy the new "
                        "xoxb- token into SLACK_BOT_TOKEN",
    "token_expired": "the token expired: turn token rotation off for this app (the manifest does) and "
                     "reinstall it, then copy the new xoxb- token",
    "not_allowed_token_type": "SLACK_BOT_TOKEN must be the bot token (xoxb-...) from OAuth & Permissions, "
                              "not an app-level or user token",
}
_APP_TOKEN_FIXES = {
    "invalid_auth": "SLACK_APP_TOKEN is wrong or belongs to another app: generate an app-level token with "
                    "connections:write under Basic Information -> App-Level Tokens",
    "not_allowed_token_type": "SLACK_APP_TOKEN must be an app-level token (xapp-...) from Basic Information "
                              "-> App-Level Tokens, not the bot token",
    "missing_scope": "the app-level token lacks connections:write: generate a new one with that scope under "
                     "Basic Information -> App-Level Tokens",
    "token_revoked": "the app-level token was revoked: generate a new one with connections:write under "
                     "Basic Information -> App-Level Tokens",
}
_APP_TOKEN_DEFAULT_FIX = ("check that Socket Mode is enabled (Settings -> Socket Mode) and that SLACK_APP_TOKEN is "
                          "an app-level token with connections:write")


def mask_token(token: str | None) -> str:
    """`xoxb-…abcd`: enough to tell tokens apart, never enough to use one."""
    if not token:
        return "(not set)"
    prefix = token[:5] if token[4:5] == "-" else ""
    tail = token[-4:] if len(token) >= 16 else ""
    return f"{prefix}…{tail}"


class _Report:
    """Prints checks as they finish (a slow one is visible) and counts what blocks running."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failures = 0
        self.warnings = 0
        self.redactor = Redactor(())
        encoding = getattr(out, "encoding", None) or "utf-8"
        try:
            "".join(_MARKS.values()).encode(encoding)
            self.marks = _MARKS
        except (UnicodeEncodeError, LookupError):
            self.marks = _ASCII_MARKS

    def line(self, text: str = "") -> None:
        self.out.write(self.redactor.redact(text) + "\n")
        self.out.flush()

    def check(self, status: str, title: str, fix: str | Sequence[str] = "") -> None:
        if status == FAIL:
            self.failures += 1
        elif status == WARN:
            self.warnings += 1
        self.line(f"{self.marks[status]} {title}")
        for item in [fix] if isinstance(fix, str) else fix:
            if item:
                self.line(f"    -> {item}")

    def ok(self, title: str) -> None:
        self.check(OK, title)

    def warn(self, title: str, fix: str | Sequence[str]) -> None:
        self.check(WARN, title, fix)

    def fail(self, title: str, fix: str | Sequence[str]) -> None:
        self.check(FAIL, title, fix)


async def run_doctor(
    settings_loader: Callable[[], Settings] = load_settings,
    out: TextIO | None = None,
    http: bool | None = None,
    *,
    timeout: float = 15.0,
) -> int:
    """Run every check and print the checklist to `out` (default stdout); 0 when nothing blocks running.

    `http`: True checks HTTP mode (`run --http`), False Socket Mode, None the mode `run` would pick
    (Socket Mode when SLACK_APP_TOKEN is set, HTTP when only SLACK_SIGNING_SECRET is).
    `timeout` bounds each Slack call in seconds.
    """
    report = _Report(out if out is not None else sys.stdout)
    report.line("superset-bot doctor")
    try:
        settings = await asyncio.to_thread(settings_loader)
    except ConfigError as exc:
        report.fail(
            f"configuration: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} "
            "in .env or the environment",
            [*exc.problems, "fix these in .env or the environment (.env.example describes every setting)"],
        )
        await _check_git(report)
        report.line()
        report.line("The remaining checks need a configuration that loads; fix it and run the doctor again.")
        _summary(report)
        return 1
    report.redactor = Redactor(settings.secrets())
    report.ok(f"configuration loads (data dir {settings.data_dir}, presets {settings.presets_dir})")
    await _check_slack(settings, http, report, timeout)
    await _check_git(report)
    await _check_repos(settings, report)
    await check_delivery(settings, report, timeout)
    await _check_presets(settings, report)
    await _check_data_dir(settings, report)
    _summary(report)
    return 1 if report.failures else 0


def _summary(report: _Report) -> None:
    report.line()
    if report.failures:
        what = "problem blocks" if report.failures == 1 else "problems block"
        report.line(f"{report.failures} {what} running superset-bot ({report.marks[FAIL]} above); "
                    "fix and run `superset-bot doctor` again.")
    elif report.warnings:
        plural = "s" if report.warnings != 1 else ""
        report.line(f"Nothing blocks running superset-bot; {report.warnings} warning{plural} "
                    f"({report.marks[WARN]}) worth a look.")
    else:
        report.line("All good: nothing blocks running superset-bot.")


# --------------------------------------------------------------------------- Slack


def _slack_error(exc: SlackApiError) -> str | None:
    """Slack's error code, or None when the answer was not a Web API answer at all."""
    data = getattr(exc.response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return str(error) if error else None


def _not_slack(report: _Report, what: str, url: str, detail: str) -> None:
    report.fail(f"{what}: {url} did not answer like Slack's Web API ({detail})",
                "check SLACK_API_URL (default https://slack.com/api/) and any proxy in between")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


async def _check_slack(settings: Settings, http: bool | None, report: _Report, timeout: float) -> None:
    http_mode = http if http is not None else (not settings.slack_app_token and bool(settings.slack_signing_secret))
    async with aiohttp.ClientSession() as session:
        await _check_bot_token(settings, session, report, timeout)
        if http_mode:
            _check_http_mode(settings, report)
        else:
            await _check_socket_mode(settings, session, report, timeout)


async def _check_bot_token(settings: Settings, session: aiohttp.ClientSession, report: _Report,
                           timeout: float) -> None:
    token = settings.slack_bot_token
    if not token:
        report.fail("Slack: SLACK_BOT_TOKEN is not set",
                    "install the app (Install App -> Install to Workspace) and put the Bot User OAuth Token "
                    "(xoxb-...) in .env; deploy/README.md walks through creating the app from the manifest")
        return
    client = AsyncWebClient(token=token, base_url=settings.slack_api_url, session=session, timeout=int(timeout))
    shown = mask_token(token)
    try:
        response = await asyncio.wait_for(client.auth_test(), timeout)
    except SlackApiError as exc:
        error = _slack_error(exc)
        if error is None:
            _not_slack(report, "Slack", settings.slack_api_url, f"HTTP {exc.response.status_code}")
            return
        report.fail(f"Slack: the bot token {shown} was refused ({error})",
                    _BOT_TOKEN_FIXES.get(error, f"Slack answered {error}: check SLACK_BOT_TOKEN and that the app "
                                                "is installed in the workspace"))
        return
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        report.fail(f"Slack: cannot reach {settings.slack_api_url} ({_describe(exc)})",
                    "check the network or proxy (HTTPS_PROXY), and SLACK_API_URL if you changed it")
        return
    except Exception as exc:  # e.g. a web page instead of the Web API: never a traceback
        _not_slack(report, "Slack", settings.slack_api_url, _describe(exc))
        return
    data = response.data if isinstance(response.data, dict) else {}
    who = f"@{data.get('user', '?')} in {data.get('team', '?')}"
    report.ok(f"Slack: the bot token {shown} works ({who})")
    granted_header = _header(response.headers, "x-oauth-scopes")
    if granted_header is None:
        report.warn("Slack did not say which scopes the bot token has",
                    f"make sure the app has these bot scopes: {', '.join(REQUIRED_BOT_SCOPES)}")
        return
    granted = {s.strip() for s in granted_header.split(",") if s.strip()}
    missing = [s for s in REQUIRED_BOT_SCOPES if s not in granted]
    if missing:
        lines = [f"{scope}: {REQUIRED_BOT_SCOPES[scope]}" for scope in missing]
        lines.append(f"add {'it' if len(missing) == 1 else 'them'} {_SCOPE_FIX}")
        report.fail(f"Slack scopes: the bot token lacks {', '.join(missing)}", lines)
    else:
        report.ok(f"Slack scopes: all {len(REQUIRED_BOT_SCOPES)} the bot needs are granted")


def _check_http_mode(settings: Settings, report: _Report) -> None:
    if not settings.slack_signing_secret:
        report.fail("HTTP mode: SLACK_SIGNING_SECRET is not set",
                    "copy the Signing Secret from Basic Information -> App Credentials into .env "
                    "(or use Socket Mode: set SLACK_APP_TOKEN and run without --http)")
        return
    report.ok(f"HTTP mode: SLACK_SIGNING_SECRET is set; Slack's Request URLs must reach "
              f"POST /slack/events on port {settings.http_port} (through your HTTPS proxy)")


async def _check_socket_mode(settings: Settings, session: aiohttp.ClientSession, report: _Report,
                             timeout: float) -> None:
    token = settings.slack_app_token
    if not token:
        report.fail("Socket Mode: SLACK_APP_TOKEN is not set",
                    "Basic Information -> App-Level Tokens -> Generate Token with the connections:write scope, "
                    "put it (xapp-...) in .env; or use HTTP mode: set SLACK_SIGNING_SECRET and run with --http")
        return
    shown = mask_token(token)
    client = AsyncWebClient(token=token, base_url=settings.slack_api_url, session=session, timeout=int(timeout))
    try:
        await asyncio.wait_for(client.apps_connections_open(app_token=token), timeout)
    except SlackApiError as exc:
        error = _slack_error(exc)
        if error is None:
            _not_slack(report, "Socket Mode", settings.slack_api_url, f"HTTP {exc.response.status_code}")
            return
        report.fail(f"Socket Mode: the app-level token {shown} was refused ({error})",
                    _APP_TOKEN_FIXES.get(error, _APP_TOKEN_DEFAULT_FIX))
        return
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        report.fail(f"Socket Mode: cannot reach {settings.slack_api_url} ({_describe(exc)})",
                    "check the network or proxy (HTTPS_PROXY), and SLACK_API_URL if you changed it")
        return
    except Exception as exc:
        _not_slack(report, "Socket Mode", settings.slack_api_url, _describe(exc))
        return
    report.ok(f"Socket Mode: the app-level token {shown} can open a connection")


# --------------------------------------------------------------------------- git and repos


async def _check_git(report: _Report) -> None:
    fix = "install git 2.38 or newer (Debian/Ubuntu: apt install git; macOS: brew install git)"
    try:
        found = await git_version()
    except GitError as exc:
        report.fail(f"git: {exc}", fix)
        return
    shown = ".".join(str(n) for n in found)
    if found < MIN_GIT:
        report.fail(f"git {shown} is too old: 2.38 or newer is needed to preview merges "
                    "(git merge-tree --write-tree)", fix)
    else:
        report.ok(f"git {shown}")


async def _check_repos(settings: Settings, report: _Report) -> None:
    if not settings.repos:
        report.fail("repos: SUPERSET_REPOS is not set",
                    "name at least one repository in .env, e.g. SUPERSET_REPOS=web=/srv/repos/web")
        return
    for name, path in settings.repos.items():
        label = f"repo {name}{' (default)' if name == settings.default_repo else ''}"
        try:
            await _check_repo(label, path, report)
        except GitError as exc:  # e.g. git itself is missing: already reported above
            report.fail(f"{label}: cannot be checked: {exc}", "fix git first (see the git line above)")


async def _check_repo(label: str, path: Path, report: _Report) -> None:
    if not await asyncio.to_thread(path.is_dir):
        report.fail(f"{label}: {path} does not exist", "clone the repository there or fix SUPERSET_REPOS")
        return
    if not await is_git_repo(path):
        probe = await run_git(path, "rev-parse", "--git-dir", check=False)
        if "dubious ownership" in probe.stderr or "safe.directory" in probe.stderr:
            report.fail(f"{label}: git refuses {path}: it is owned by another user",
                        "run the bot as the repository's owner (or chown the repository to the bot's user); "
                        f"or, as the bot's user: git config --global --add safe.directory {path}")
        else:
            report.fail(f"{label}: {path} is not a git repository (or not the top folder of one)",
                        "point SUPERSET_REPOS at the top folder of a git clone (the one containing .git)")
        return
    try:
        branch = await default_branch(path)
    except GitError as exc:
        report.fail(f"{label}: no default branch found in {path}",
                    [str(exc), "create main (or master), or set origin/HEAD: git remote set-head origin --auto"])
        return
    common = await run_git(path, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False)
    git_dir = Path(common.stdout.strip()) if common.returncode == 0 and common.stdout.strip() else path / ".git"
    if not await asyncio.to_thread(os.access, git_dir, os.W_OK):
        report.fail(f"{label}: the bot's user cannot write to {git_dir} (worktrees and branches live there)",
                    "chown the repository to the bot's user, or run the bot as the repository's owner")
        return
    bare = await run_git(path, "rev-parse", "--is-bare-repository", check=False)
    if bare.stdout.strip() == "true":
        report.ok(f"{label}: {path} (bare), default branch {branch}")
        return
    try:
        dirty = await is_dirty(path)
    except GitError as exc:
        report.warn(f"{label}: cannot tell whether the main checkout is clean", str(exc))
        return
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        report.warn(f"{label}: {path}, default branch {branch}; the main checkout has uncommitted changes "
                    f"({shown})",
                    f"merging a task into the branch checked out there is refused while it would overwrite "
                    f"these; commit or stash them in {path}")
    else:
        report.ok(f"{label}: {path}, default branch {branch}, main checkout clean")


# --------------------------------------------------------------------------- presets


async def _check_presets(settings: Settings, report: _Report) -> None:
    directory = settings.presets_dir
    try:
        presets, errors = await asyncio.to_thread(scan_presets, directory)
    except PresetError as exc:
        report.fail(f"presets: {exc}", "point SUPERSET_PRESETS_DIR at a directory of NAME.json presets")
        return
    for error in errors:
        report.fail(f"preset: {error}",
                    "fix the field named above: the bot refuses to start while any preset is invalid "
                    "(README: Presets)")
    invalid = {Path(str(e.path)).stem for e in errors if e.path}
    default = settings.default_preset
    if default not in presets and default not in invalid:
        known = ", ".join(sorted(presets)) or "none"
        report.fail(f"preset {default} (SUPERSET_DEFAULT_PRESET) is not in {directory}",
                    f"set SUPERSET_DEFAULT_PRESET to one of: {known}; or add {directory / (default + '.json')}")
    if not presets and not errors:
        report.fail(f"presets: {directory} has no NAME.json presets",
                    "copy the shipped presets/ folder there, or point SUPERSET_PRESETS_DIR at it")
    probes: dict[str, Probe] = {}
    for name in sorted(presets, key=lambda n: (n != default, n)):
        await _check_agent(presets[name], name == default, settings, report, probes)
    sandboxed = sorted(name for name, preset in presets.items() if preset.sandbox == "bwrap")
    if sandboxed:
        await _check_sandbox(sandboxed, default in sandboxed, settings, report)
    delegation = await asyncio.to_thread(cgroups.find)
    if delegation.hard and settings.cgroups == "auto":
        report.ok(f"agent limits: kernel-enforced, each agent in a cgroup under {delegation.agents} "
                  f"({', '.join(delegation.controllers)})")
    else:
        why = delegation.why_not or "a delegated cgroup v2 subtree is there: SUPERSET_CGROUPS=auto uses it"
        if settings.cgroups == "off" and not delegation.hard:
            why = f"SUPERSET_CGROUPS is off; {why}"
        report.ok(f"agent limits: soft, polled (memory every 0.25 s, the worktree's disk during the run): {why}")


async def _check_sandbox(presets: list[str], has_default: bool, settings: Settings, report: _Report) -> None:
    which = ", ".join(presets)
    problem = await sandbox.probe(settings.bwrap, settings.process_env.get("PATH"))
    if problem is None:
        report.ok(f"sandbox: bwrap works for {which}; limits are polled (soft): memory every 0.25 s, disk "
                  "during the run")
        return
    fix = ["install bubblewrap (apt-get install bubblewrap) or point SUPERSET_BWRAP at a bwrap binary",
           'or set "sandbox": "none" in these presets (their agents then run unconfined)']
    if has_default:
        report.fail(f"sandbox: {problem}; the default preset needs it ({which})", fix)
    else:
        report.warn(f"sandbox: {problem}; tasks of {which} will be refused", fix)


_DOCTOR_PATHS = {"worktree": "/tmp/worktree", "git_dir": "/tmp/repo/.git/worktrees/id",
                 "git_common_dir": "/tmp/repo/.git", "ref_dir": "/tmp/repo/.git/refs/heads/superset/id",
                 "ref_log_dir": "/tmp/repo/.git/logs/refs/heads/superset/id"}


async def _check_agent(preset: Preset, is_default: bool, settings: Settings, report: _Report,
                       probes: dict[str, Probe]) -> None:
    label = f"preset {preset.name}{' (default)' if is_default else ''}"
    argvs = [agent_argv(preset, "doctor", paths=_DOCTOR_PATHS)]
    if preset.agent.followup:
        argvs.append(agent_argv(preset, "doctor", session="doctor-session", followup=True, paths=_DOCTOR_PATHS))
    program = argvs[0][0]
    search_path = settings.process_env.get("PATH")
    found = shutil.which(program, path=search_path)  # as the engine checks it before a spawn
    if found:
        where = "" if os.path.abspath(found) == os.path.abspath(program) else f" at {found}"
        known = KNOWN_CLIS.get(Path(program).name)
        if known is None:
            report.ok(f"{label}: agent {program} found{where}")
            return
        await _check_known_cli(label, preset, known, found, argvs, settings, report, probes)
        return
    fix = (f"install {program} for the bot's user, or add its folder to the PATH the bot runs with "
           "(under systemd: Environment=PATH=... or the env file)")
    if is_default:
        report.fail(f"{label}: agent command {program} is not installed or not on PATH",
                    [fix, "or set SUPERSET_DEFAULT_PRESET to a preset whose agent is installed (demo needs none)"])
    else:
        report.warn(f"{label}: agent command {program} is not installed or not on PATH; "
                    "tasks using this preset will be refused", fix)


async def _check_known_cli(label: str, preset: Preset, known: KnownCli, found: str, argvs: list[list[str]], settings: Settings,
                           report: _Report, probes: dict[str, Probe]) -> None:
    """Version in the tested range, and every flag the preset passes accepted by this version."""
    if found not in probes:
        probes[found] = await probe(found, [[found, *argv[1:]] for argv in argvs], dict(settings.process_env))
    else:  # another preset of the same CLI: its subcommands' help too
        extra = await probe(found, [[found, *argv[1:]] for argv in argvs], dict(settings.process_env))
        probes[found] = Probe(probes[found].version, probes[found].version_text,
                              probes[found].known_flags | extra.known_flags, probes[found].error)
    result = probes[found]
    if result.error:
        report.fail(f"{label}: agent {known.program} at {found} does not run: {result.error}",
                    f"reinstall it ({known.package}@{known.tested})")
        return
    tested = (f"tested with {show_version(known.tested_from)} up to below {show_version(known.tested_below)}; "
              f"the test suite pins {known.tested}")
    if result.version is None:
        report.warn(f"{label}: could not read the version of {known.program} from {result.version_text!r}", tested)
    elif not in_tested_range(known, result.version):
        report.warn(f"{label}: {known.program} {show_version(result.version)} is outside the tested range",
                    [tested, f"its flags and output may have changed: `{known.package}@{known.tested}` "
                             "installs the tested version"])
    else:
        report.ok(f"{label}: agent {known.program} {show_version(result.version)} at {found}")
    unknown = [flag for argv in argvs for flag in argv_flags(argv) if flag not in result.known_flags]
    if unknown:
        shown = ", ".join(dict.fromkeys(unknown))
        report.fail(f"{label}: {known.program} {show_version(result.version or ())} does not accept {shown}",
                    f"edit agent.command / agent.followup in {preset.source or preset.name} "
                    f"(see `{known.program} --help`), or install the tested version ({known.tested})")


# --------------------------------------------------------------------------- data dir and disk


def _probe_write(directory: Path) -> str | None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


async def _check_data_dir(settings: Settings, report: _Report) -> None:
    directory = settings.data_dir
    problem = await asyncio.to_thread(_probe_write, directory)
    if problem:
        report.fail(f"data dir {directory} is not writable ({problem})",
                    "chown it to the bot's user, or set SUPERSET_DATA_DIR to a directory the bot owns")
        return
    report.ok(f"data dir {directory} is writable")
    usage = await asyncio.to_thread(shutil.disk_usage, directory)
    minimum = settings.min_free_disk
    if minimum and usage.free < minimum:
        report.fail(f"free disk: {format_size(usage.free)} free in {directory}, below SUPERSET_MIN_FREE_DISK "
                    f"({format_size(minimum)}): new tasks are refused",
                    "free some space (merge or discard finished tasks, /superset prune), move SUPERSET_DATA_DIR "
                    "to a bigger disk, or lower SUPERSET_MIN_FREE_DISK")
    else:
        floor = f" (SUPERSET_MIN_FREE_DISK {format_size(minimum)})" if minimum else ""
        report.ok(f"free disk: {format_size(usage.free)} free in {directory}{floor}")
