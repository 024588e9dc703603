"""Remotes: whether a repository has one of a name, fetching one branch of it into its
remote-tracking ref (`refs/remotes/<remote>/<branch>`), and pushing one local branch to the same
branch of the remote, never forced.

A fetch or a push never waits for a person: no terminal prompt, ssh in batch mode, and a timeout that ends
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
PUSH_TIMEOUT = 30.0  # seconds a push may take before it is ended

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


class PushError(GitError):
    """A push failed; `reason` is one line for a person, with no credentials in it. `rejected`: the
    remote refused it because its branch has commits the local one lacks (non-fast-forward)."""

    def __init__(self, remote: str, branch: str, reason: str, stderr: str = "", *, rejected: bool = False) -> None:
        super().__init__(f"could not push {branch} to {remote}: {reason}", ("push", remote), None, stderr)
        self.remote = remote
        self.branch = branch
        self.reason = reason
        self.rejected = rejected


_NON_FAST_FORWARD = re.compile(r"\[rejected\].*\((fetch first|non-fast-forward)\)|non-fast-forward", re.IGNORECASE)


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


async def _quiet_env(repo: Path) -> dict[str, str]:
    return {"GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": await _ssh_command(repo), "SSH_ASKPASS_REQUIRE": "never"}


async def push_branch(repo: Path, remote: str, branch: str, timeout: float = PUSH_TIMEOUT, *,
                      to: str | None = None, force: bool = False, lease: str | None = None) -> str:
    """Push the local `branch` to the same branch of `remote` (or to its branch `to`), not forced unless
    `force`, or, with `lease`, only over the remote's branch still at that commit (a worker host's turn,
    which started there); the commit pushed.
    Raises PushError (`rejected` when the remote moved on; timed out, unreachable, refused)."""
    check_ref_arg(remote, "remote")
    check_ref_arg(branch, "branch")
    target = check_ref_arg(to, "branch") if to else branch
    sha = await run_git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False)
    if sha.returncode != 0 or not sha.stdout.strip():
        raise PushError(remote, branch, f"there is no local branch {branch}")
    commit = sha.stdout.strip()
    env = await _quiet_env(repo)
    try:
        async with asyncio.timeout(timeout):
            # cancelled by the timeout, run_git ends git's process group (transports included)
            result = await run_git(
                repo, "-c", "credential.interactive=never", "push", "--quiet", "--no-verify", "--no-follow-tags",
                "--porcelain", *([f"--force-with-lease=refs/heads/{target}:{lease}"] if lease else []),
                remote, f"{'+' if force else ''}{commit}:refs/heads/{target}",
                env=env, check=False, bot_write=True,
            )
    except TimeoutError:
        raise PushError(remote, branch, f"no answer within {timeout:g} s") from None
    if result.returncode != 0:
        said = f"{result.stdout}\n{result.stderr}"
        if lease and "stale info" in said:
            raise PushError(remote, branch, f"{remote}'s {target} moved since {lease[:10]}: somebody else pushed to it",
                            strip_credentials(said), rejected=True)
        if _NON_FAST_FORWARD.search(said):
            raise PushError(remote, branch, f"{remote}'s {branch} has commits the local one lacks",
                            strip_credentials(said), rejected=True)
        raise PushError(remote, branch, _reason(result.stderr, result.returncode).replace("git fetch", "git push"),
                        strip_credentials(said))
    # the remote-tracking ref follows, as a fetch would have moved it
    await run_git(repo, "update-ref", tracking_ref(remote, target), commit, check=False, bot_write=True)
    return commit


async def fetch_branch(repo: Path, remote: str, branch: str, timeout: float = FETCH_TIMEOUT) -> str | None:
    """Fetch `branch` of `remote` into its remote-tracking ref and return the commit it names there;
    None when the remote has no such branch. Raises FetchError (timed out, unreachable, refused)."""
    check_ref_arg(remote, "remote")
    check_ref_arg(branch, "branch")
    ref = tracking_ref(remote, branch)
    env = await _quiet_env(repo)
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


async def remote_branch(repo: Path, remote: str, branch: str, timeout: float = FETCH_TIMEOUT) -> str | None:
    """The commit `branch` names on `remote` right now (`git ls-remote`: nothing is written), or None
    when the remote has no such branch. Raises FetchError (timed out, unreachable, refused)."""
    check_ref_arg(remote, "remote")
    check_ref_arg(branch, "branch")
    env = await _quiet_env(repo)
    try:
        async with asyncio.timeout(timeout):
            result = await run_git(repo, "-c", "credential.interactive=never", "ls-remote", "--heads", remote,
                                   f"refs/heads/{branch}", env=env, check=False)
    except TimeoutError:
        raise FetchError(remote, branch, f"no answer within {timeout:g} s") from None
    if result.returncode != 0:
        raise FetchError(remote, branch, _reason(result.stderr, result.returncode).replace("git fetch", "git ls-remote"),
                         strip_credentials(result.stderr))
    for line in result.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.strip() == f"refs/heads/{branch}":
            return sha.strip()
    return None


async def delete_branch(repo: Path, remote: str, branch: str, timeout: float = PUSH_TIMEOUT) -> None:
    """Delete `branch` on `remote` (nothing happens when it has none). Raises PushError."""
    check_ref_arg(remote, "remote")
    check_ref_arg(branch, "branch")
    env = await _quiet_env(repo)
    try:
        async with asyncio.timeout(timeout):
            result = await run_git(repo, "-c", "credential.interactive=never", "push", "--quiet", "--no-verify",
                                   remote, f":refs/heads/{branch}", env=env, check=False, bot_write=True)
    except TimeoutError:
        raise PushError(remote, branch, f"no answer within {timeout:g} s") from None
    if result.returncode != 0 and "remote ref does not exist" not in result.stderr:
        raise PushError(remote, branch, _reason(result.stderr, result.returncode).replace("git fetch", "git push"),
                        strip_credentials(result.stderr))
    await run_git(repo, "update-ref", "-d", tracking_ref(remote, branch), check=False, bot_write=True)
