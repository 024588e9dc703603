"""Where a new task starts: the local base branch, or the remote's tip of it when that is newer.

Agents should start from what the team has, not from whatever the bot's checkout last saw. For a
repo with a remote (SUPERSET_REMOTE, SUPERSET_REPO_REMOTES) the base branch is fetched into its
remote-tracking ref at most once per SUPERSET_FETCH_EVERY (per repo and branch; one fetch at a time
per repo, and spawns that come while one runs wait for it instead of starting their own). Then
`decide_start`, a pure function of the two commits and their ancestry, picks the start point:

- no remote-tracking ref (no remote, fetching off, the branch is not on the remote): local
- local equal to, or an ancestor of, the remote tip: the remote tip
- the remote tip an ancestor of local (merges the bot made that nobody pushed yet): local
- diverged: local, and the task's thread is told
- the fetch failed: local, and the thread is told why; the task is not failed for it

The task's branch still merges back into the LOCAL base branch; nothing is pushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from superset_bot.config import Settings
from superset_bot.git import remote as gitremote
from superset_bot.git.commands import GitError, run_git
from superset_bot.git.refs import branch_commit, is_ancestor

log = logging.getLogger(__name__)

LOCAL = "local"
REMOTE = "remote"


@dataclass(frozen=True)
class StartPoint:
    """The commit a new task on a base branch starts from, and what its thread should be told."""

    commit: str
    source: str  # LOCAL or REMOTE
    note: str | None = None  # one sentence for the task's thread; None: nothing worth saying
    ok: bool = True  # False: the note is a warning (the fetch failed, the branches diverged)


def _commits(n: int) -> str:
    return f"{n} commit{'s' if n != 1 else ''}"


def decide_start(
    *,
    branch: str,
    local: str,
    remote: str | None = None,
    remote_tip: str | None = None,
    local_in_remote: bool = False,
    remote_in_local: bool = False,
    ahead: int = 0,
    fetch_error: str | None = None,
) -> StartPoint:
    """The start point from the facts: `local` (the local branch's commit), `remote_tip` (the
    remote-tracking ref's, None when there is none), whether each is an ancestor of the other, how
    many commits the remote tip has that local lacks, and why the fetch failed (None: it did not)."""
    short = local[:8]
    if fetch_error is not None and remote is not None:
        return StartPoint(local, LOCAL, f"Could not fetch {remote} ({fetch_error}); started from local "
                                        f"`{branch}` at {short}.", ok=False)
    if remote is None or remote_tip is None or remote_tip == local:
        return StartPoint(local, LOCAL)
    if local_in_remote:
        return StartPoint(remote_tip, REMOTE, f"Started from {remote}/{branch} at {remote_tip[:8]} "
                                              f"({_commits(ahead)} ahead of local {branch}).")
    if remote_in_local:
        return StartPoint(local, LOCAL)  # local is ahead: the bot's own merges, not pushed yet
    return StartPoint(local, LOCAL, f"`{remote}/{branch}` ({remote_tip[:8]}) and local `{branch}` ({short}) "
                                    f"have diverged; started from local `{branch}` at {short}.", ok=False)


@dataclass(frozen=True)
class _Fetched:
    at: float  # monotonic time the fetch started
    has_remote: bool = True  # False: the repo has no remote of that name (nothing was fetched)
    error: str | None = None  # why the fetch failed, for a person
    absent: bool = False  # the remote has no such branch


class Bases:
    """Fetches base branches from their remote now and then, and decides each new task's start point."""

    def __init__(self, settings: Settings, *, on_moved: Callable[[str, str], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._on_moved = on_moved
        self._monotonic = monotonic
        self._last: dict[tuple[str, str], _Fetched] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[_Fetched]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._fetches: dict[str, int] = {}

    def fetch_count(self, repo_name: str) -> int:
        """Public: how many fetches this process has started for the repo (tests and doctor read it)."""
        return self._fetches.get(repo_name, 0)

    async def tip(self, repo_name: str, branch: str) -> str:
        """The commit a new task on `branch` starts from now (what the warm pool keeps ready)."""
        return (await self.start_point(repo_name, branch)).commit

    async def start_point(self, repo_name: str, branch: str) -> StartPoint:
        """Fetch when the last fetch is older than SUPERSET_FETCH_EVERY, then decide. GitError only
        when the local branch does not exist; a failed fetch is in the answer, not raised."""
        repo = self.settings.repos[repo_name]
        remote = self.settings.remote_for(repo_name)
        fetched = await self._fresh(repo_name, repo, remote, branch) if remote else None
        local = await branch_commit(repo, branch, "base branch")
        if remote is None or fetched is None or not fetched.has_remote or fetched.absent:
            return decide_start(branch=branch, local=local)
        if fetched.error is not None:
            return decide_start(branch=branch, local=local, remote=remote, fetch_error=fetched.error)
        ref = gitremote.tracking_ref(remote, branch)
        found = await run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        remote_tip = found.stdout.strip() if found.returncode == 0 else ""
        if not remote_tip or remote_tip == local:
            return decide_start(branch=branch, local=local, remote=remote, remote_tip=remote_tip or None)
        local_in_remote = await is_ancestor(repo, local, remote_tip)
        remote_in_local = not local_in_remote and await is_ancestor(repo, remote_tip, local)
        ahead = 0
        if local_in_remote:
            counted = await run_git(repo, "rev-list", "--count", f"{local}..{remote_tip}", "--")
            ahead = int(counted.stdout.strip() or 0)
        return decide_start(branch=branch, local=local, remote=remote, remote_tip=remote_tip,
                            local_in_remote=local_in_remote, remote_in_local=remote_in_local, ahead=ahead)

    async def stop(self) -> None:
        """End the fetches under way (their git processes with them)."""
        running = list(self._inflight.values())
        for job in running:
            job.cancel()
        for job in running:
            with contextlib.suppress(BaseException):
                await job

    # fetching

    async def _fresh(self, repo_name: str, repo: Path, remote: str, branch: str) -> _Fetched:
        """The last fetch of (repo, branch) if recent enough, else the one under way, else a new one."""
        key = (repo_name, branch)
        job = self._inflight.get(key)
        if job is None:
            last = self._last.get(key)
            if last is not None and self._monotonic() - last.at < self.settings.fetch_every:
                return last
            job = asyncio.create_task(self._fetch(repo_name, repo, remote, branch), name=f"fetch-{repo_name}")
            self._inflight[key] = job
            job.add_done_callback(lambda done: self._inflight.pop(key, None) if self._inflight.get(key) is done
                                  else None)
        # shielded: a spawn cancelled meanwhile does not end the fetch others wait for
        return await asyncio.shield(job)

    def _lock(self, repo_name: str) -> asyncio.Lock:
        lock = self._locks.get(repo_name)
        if lock is None:
            lock = self._locks[repo_name] = asyncio.Lock()
        return lock

    async def _fetch(self, repo_name: str, repo: Path, remote: str, branch: str) -> _Fetched:
        async with self._lock(repo_name):
            started = self._monotonic()
            try:
                if not await gitremote.has_remote(repo, remote):
                    result = _Fetched(started, has_remote=False)
                else:
                    self._fetches[repo_name] = self._fetches.get(repo_name, 0) + 1
                    ref = gitremote.tracking_ref(remote, branch)
                    before = await run_git(repo, "rev-parse", "--verify", "--quiet", ref, check=False)
                    tip = await gitremote.fetch_branch(repo, remote, branch)
                    result = _Fetched(started, absent=tip is None)
                    if tip is not None and tip != before.stdout.strip() and self._on_moved is not None:
                        self._on_moved(repo_name, branch)
            except GitError as exc:
                reason = exc.reason if isinstance(exc, gitremote.FetchError) else gitremote.strip_credentials(str(exc))
                result = _Fetched(started, error=reason)
            previous = self._last.get((repo_name, branch))
            if result.error is not None:
                # the warm pool's tender asks every few seconds: say it once, not every SUPERSET_FETCH_EVERY
                again = previous is not None and previous.error == result.error
                log.log(logging.DEBUG if again else logging.WARNING, "repo %s: could not fetch %s from %s: %s; "
                        "new tasks start from the local branch", repo_name, branch, remote, result.error)
            elif previous is not None and previous.error is not None:
                log.info("repo %s: fetching %s from %s works again", repo_name, branch, remote)
            self._last[(repo_name, branch)] = result
            return result
