"""Remotes: whether a repository has one of a name, and fetching one branch of it into its
remote-tracking ref (`refs/remotes/<remote>/<branch>`), nothing else.

A fetch never waits for a person: no terminal prompt, ssh in batch mode, and a timeout that ends
git and whatever transport it started (its process group). Its errors say why in one line and
never show the credentials a URL may carry (`https://user:token@host/...`).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from superset_bot.git.commands import GitError, run_git
from superset_bot.git.refs import check_ref_arg

FETCH_TIMEOUT = 20.0  # seconds a fetch may take before it is ended

# scheme://userinfo@ -> scheme:// (userinfo holds "user:password" or a token)
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")
_MISSING_REMOTE_REF = re.compile(r"couldn't find remote ref", re.IGNORECASE)
_PREFIXES = ("fatal: ", "error: ", "remote: ", "ssh: ")


class FetchError(GitError):
    """A fetch failed; `reason` is one line for a person, with no credentials in it."""

    def __init__(self, remote: str, branch: str, reason: str, stderr: str = "") -> None:
        super().__init__(f"could not fetch {branch} from {remote}: {reason}", ("fetch", remote), None, stderr)
        self.remote = remote
        self.branch = branch
        self.reason = reason


def strip_credentials(text: str) -> str:
    """`text` with the `user:pass@` part of every URL in it removed."""
    return _URL_CREDENTIALS.sub(r"\1", text)


def tracking_ref(remote: str, branch: str) -> str:
    return f"refs/remotes/{remote}/{branch}"


def _reason(stderr: str, returncode: int | None) -> str:
    """The first line of git's complaint that says something, without its "fatal: " and credentials."""
    for line in stderr.splitlines():
        text = line.strip()
        if not text or text.startswith("hint:"):
            continue
        for prefix in _PREFIXES:
            if text.lower().startswith(prefix):
                text = text[len(prefix):].strip()
                break
        if text:
            return strip_credentials(text)[:300]
    return f"git fetch exited with status {returncode}"


async def has_remote(repo: Path, remote: str) -> bool:
    """Is `remote` one of the repository's remotes (`git remote`)?"""
    check_ref_arg(remote, "remote")
    result = await run_git(repo, "remote", check=False)
    if result.returncode != 0:
        raise GitError(f"cannot list the remotes of {repo}: {strip_credentials(result.stderr.strip())}")
    return remote in result.stdout.split()


async def _ssh_command(repo: Path) -> str:
    """The ssh command git would use (core.sshCommand, else ssh), told never to ask anything."""
    configured = await run_git(repo, "config", "--get", "core.sshCommand", check=False)
    base = configured.stdout.strip() if configured.returncode == 0 and configured.stdout.strip() else "ssh"
    return f"{base} -o BatchMode=yes"


async def fetch_branch(repo: Path, remote: str, branch: str, timeout: float = FETCH_TIMEOUT) -> str | None:
    """Fetch `branch` of `remote` into its remote-tracking ref and return the commit it names there;
    None when the remote has no such branch. Raises FetchError (timed out, unreachable, refused)."""
    check_ref_arg(remote, "remote")
    check_ref_arg(branch, "branch")
    ref = tracking_ref(remote, branch)
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": await _ssh_command(repo), "SSH_ASKPASS_REQUIRE": "never"}
    try:
        async with asyncio.timeout(timeout):
            # cancelled by the timeout, run_git ends git's process group (transports included)
            result = await run_git(
                repo, "-c", "credential.interactive=never", "fetch", "--quiet", "--no-tags",
                "--no-write-fetch-head", "--no-recurse-submodules", remote, f"+refs/heads/{branch}:{ref}",
                env=env, check=False, bot_write=True,
            )
    except TimeoutError:
        raise FetchError(remote, branch, f"no answer within {timeout:g} s") from None
    if result.returncode != 0:
        if _MISSING_REMOTE_REF.search(result.stderr):
            return None
        raise FetchError(remote, branch, _reason(result.stderr, result.returncode),
                         strip_credentials(result.stderr))
    sha = await run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return (sha.stdout.strip() or None) if sha.returncode == 0 else None
