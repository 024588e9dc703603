"""The doctor's checks of where work goes: each repo's remote (reachable, its default branch there)
when tasks start from it or deliver to it, and GitHub for pull-request delivery (the token works, its
scopes, the repository it names and the token's right to push there, the default branch on GitHub).

Nothing is written anywhere: `git ls-remote` and GitHub GETs only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from superset_bot.config import Settings
from superset_bot.forges import ForgeError
from superset_bot.forges.github import GitHubForge, repo_slug
from superset_bot.git import remote as gitremote
from superset_bot.git.commands import GitError, is_git_repo
from superset_bot.git.refs import default_branch
from superset_bot.presets import Preset, scan_presets

if TYPE_CHECKING:
    from superset_bot.doctor import _Report

# classic token scopes that let it open and merge pull requests
PR_SCOPES = frozenset({"repo", "public_repo"})


def deliveries(settings: Settings, presets: Mapping[str, Preset]) -> dict[str, set[str]]:
    """For each repo, the deliveries its tasks may use (its own, and every preset's that names one)."""
    named = {p.deliver for p in presets.values() if p.deliver}
    return {name: {settings.deliver_for(name)} | named for name in settings.repos}


async def check_delivery(settings: Settings, report: _Report, timeout: float) -> None:
    presets, _ = await asyncio.to_thread(scan_presets, settings.presets_dir)
    wanted = deliveries(settings, presets)
    forge = GitHubForge(settings.github_token, settings.github_api_url) if settings.github_token else None
    try:
        if forge is not None and any("pr" in w for w in wanted.values()):
            await _check_token(forge, report, timeout)
        for name, path in settings.repos.items():
            try:
                if not await is_git_repo(path):
                    continue  # the repo line above says so
                await _check_repo(name, settings, wanted[name], forge, report, timeout)
            except GitError as exc:  # e.g. git itself is missing: the git line above says so
                report.warn(f"repo {name}: its remote cannot be checked: {exc}", "see the lines above")
    finally:
        if forge is not None:
            await forge.close()


async def _check_token(forge: GitHubForge, report: _Report, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            scopes = await forge.token_scopes()
    except (ForgeError, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, ForgeError) else f"no answer within {timeout:g} s"
        report.fail(f"GitHub: {reason}", f"check SUPERSET_GITHUB_TOKEN and SUPERSET_GITHUB_API_URL ({forge.api_url})")
        return
    if scopes is None:
        report.ok(f"GitHub token works at {forge.api_url} (fine-grained: its permissions are checked per repo)")
    elif PR_SCOPES & set(scopes):
        report.ok(f"GitHub token works at {forge.api_url}, scopes {', '.join(scopes)}")
    else:
        report.fail(f"GitHub token lacks the repo scope (it has: {', '.join(scopes) or 'none'})",
                    "pull requests need a classic token with repo (public_repo for public repos), or a fine-grained "
                    "one with read/write pull requests and contents, read checks and commit statuses")


async def _check_repo(name: str, settings: Settings, wanted: set[str], forge: GitHubForge | None,
                      report: _Report, timeout: float) -> None:
    path = settings.repos[name]
    remote = settings.remote_for(name)
    needs_remote = bool(wanted & {"push", "pr"})
    label = f"repo {name}: remote"
    if remote is None:
        if needs_remote:
            report.fail(f"{label}: none set, but its tasks may deliver by {' or '.join(sorted(wanted - {'local'}))}",
                        f"set SUPERSET_REPO_REMOTES={name}=origin (or the remote's name)")
        return
    if not await gitremote.has_remote(path, remote):
        fix = f"git -C {path} remote add {remote} URL, or SUPERSET_REPO_REMOTES={name}=none"
        if needs_remote:
            report.fail(f"{label}: {path} has no remote named {remote}, which push/pr delivery needs", fix)
        else:
            report.ok(f"{label}: none named {remote}; tasks start from local branches")
        return
    branch = await default_branch(path)
    try:
        tip = await gitremote.remote_branch(path, remote, branch, timeout=timeout)
    except gitremote.FetchError as exc:
        check = report.fail if needs_remote else report.warn
        check(f"{label} {remote} is not reachable: {exc.reason}",
              "check the URL and the bot's git credentials (they must work without a prompt: an ssh key or a "
              "credential helper)")
        return
    if tip is None:
        report.warn(f"{label} {remote} has no branch {branch} (the local default branch)",
                    f"push it once: git -C {path} push {remote} {branch}")
    else:
        report.ok(f"{label} {remote} reachable, {branch} at {tip[:10]}")
    if "pr" in wanted:
        await _check_github_repo(name, settings, remote, branch, forge, report, timeout)


async def _check_github_repo(name: str, settings: Settings, remote: str, branch: str, forge: GitHubForge | None,
                             report: _Report, timeout: float) -> None:
    label = f"repo {name}: GitHub"
    if forge is None:
        report.fail(f"{label}: pull-request delivery needs SUPERSET_GITHUB_TOKEN", "set it in .env")
        return
    slug = await repo_slug(settings, name, remote)
    if slug is None:
        report.fail(f"{label}: cannot tell which repository {remote} is on GitHub",
                    f"set SUPERSET_GITHUB_REPOS={name}=owner/name")
        return
    try:
        async with asyncio.timeout(timeout):
            info = await forge.repository(slug)
    except (ForgeError, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, ForgeError) else f"no answer within {timeout:g} s"
        report.fail(f"{label} {slug}: {reason}", "check SUPERSET_GITHUB_REPOS and what the token may see")
        return
    permissions = info.get("permissions") if isinstance(info.get("permissions"), Mapping) else {}
    on_github = info.get("default_branch")
    if permissions and not permissions.get("push"):
        report.fail(f"{label} {slug}: the token may not push there (merging pull requests needs write access)",
                    "give the token's user write access, or use a token that has it")
    elif on_github and on_github != branch:
        report.warn(f"{label} {slug}: its default branch is {on_github}, the local one {branch}",
                    "tasks open pull requests into their --base (default: the local default branch)")
    else:
        report.ok(f"{label} {slug}: reachable, default branch {on_github or '?'}")
