"""Delivery: what follows a merge into the local base, as the preset's `deliver` says.

`local` does nothing more. `push` pushes the base branch to the repo's remote, never forced. When
the remote moved on meanwhile (the push is refused as non-fast-forward), its branch is fetched and
merged into the local base through the same merge as a task's (compare-and-swap of the base ref,
its checkout brought along), and the push is tried once more. Whatever happens, the task stays
MERGED: its work is in the local base, and the thread is told whether the remote has it too.

It runs in the background after the merge: the person's answer to "merge" never waits on the network;
each git call against the remote is bounded by PUSH_TIMEOUT / FETCH_TIMEOUT.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from superset_bot.domain.events import Milestone
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.git import merge as gitmerge
from superset_bot.git import remote as gitremote
from superset_bot.git.commands import GitError
from superset_bot.git.worktrees import BOT_AUTHOR
from superset_bot.store import Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)


class Delivery:
    """Pushes a merged task's base branch to its repo's remote when its preset says `deliver: push`."""

    def __init__(self, engine: Engine, *, push_timeout: float = gitremote.PUSH_TIMEOUT,
                 fetch_timeout: float = gitremote.FETCH_TIMEOUT) -> None:
        self.engine = engine
        self.push_timeout = push_timeout
        self.fetch_timeout = fetch_timeout

    def after_merge(self, task: Task, deliver: str) -> None:
        """Start the delivery of a task just MERGED into the local base (nothing for `local`; `pr` merges
        on the host instead: engine/pullrequests.py)."""
        if deliver == "push":
            self.engine.workers.background(self.push(task))

    async def push(self, task: Task) -> bool:
        """Push the task's base branch to the repo's remote; a Milestone either way. True when pushed."""
        engine = self.engine
        base = task.base_branch
        assert base
        remote = engine.settings.remote_for(task.repo)
        try:
            if remote is None:
                raise GitError(f"no remote is set for {task.repo} (SUPERSET_REMOTE / SUPERSET_REPO_REMOTES is none)")
            repo = engine.repo_path(task.repo)
            if not await gitremote.has_remote(repo, remote):
                raise GitError(f"the repository has no remote named {remote}")
            commit = await self._push_or_catch_up(task, repo, remote, base)
        except Exception as exc:  # the merge stands; the thread hears why the remote lacks it
            if not isinstance(exc, GitError):
                log.exception("task %s: pushing %s failed", task.id, base)
            reason = gitremote.strip_credentials(getattr(exc, "reason", None) or str(exc))
            where = remote or "its remote"
            await engine.store.add_event(task.id, BOT_ACTOR, "push_failed", {"remote": remote, "branch": base,
                                                                             "reason": reason})
            by_hand = f"`git push {remote} {base}`" if remote else "git push"
            engine.publish(Milestone(task, "push_failed",
                                     f"Merged into local `{base}`, but pushing to {where} failed: {reason}; "
                                     f"push by hand ({by_hand}) once that is sorted out.", ok=False))
            return False
        await engine.store.add_event(task.id, BOT_ACTOR, "pushed", {"remote": remote, "branch": base,
                                                                    "commit": commit})
        engine.publish(Milestone(task, "pushed", f"Pushed `{base}` to {remote} ({commit[:7]})."))
        return True

    async def _push_or_catch_up(self, task: Task, repo: Path, remote: str, base: str) -> str:
        try:
            return await gitremote.push_branch(repo, remote, base, timeout=self.push_timeout)
        except gitremote.PushError as exc:
            if not exc.rejected:
                raise
        # the remote moved on: take its new commits into the local base (a real merge), push once more
        tip = await gitremote.fetch_branch(repo, remote, base, timeout=self.fetch_timeout)
        if tip is None:
            raise GitError(f"{remote} refused the push, and has no branch {base} to catch up with")
        tracking = gitremote.tracking_ref(remote, base)
        try:
            merged = await gitmerge.merge(
                repo, f"{remote}/{base}", base, strategy="merge", source_ref=tracking, author=BOT_AUTHOR,
                message=f"Merge {remote}/{base} into {base}\n\nTaking in {remote}'s new commits before pushing "
                        f"task {task.id} via superset-bot.",
            )
        except gitmerge.NothingToMerge:
            merged = None  # local base already holds the remote's tip: the push failed for another reason
        except gitmerge.MergeConflict as exc:
            raise GitError(f"{remote}'s `{base}` has new commits that conflict with it in "
                           f"{', '.join(exc.files) or 'some files'}; nothing was forced") from exc
        if merged is not None:
            await self.engine.store.add_event(task.id, BOT_ACTOR, "remote_merged",
                                              {"remote": remote, "branch": base, "tip": tip,
                                               "commit": merged.new_commit})
            self.engine.reviews.base_moved(task.repo, base)  # the remote's commits are on it now
        return await gitremote.push_branch(repo, remote, base, timeout=self.push_timeout)
