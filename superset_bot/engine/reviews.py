"""A task's review: its branch summarised against its base with a merge preview, checks and cost,
posted to subscribers and plugins; looked at again when its base moves; and the full diff a reviewer
may ask for."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superset_bot.agents.formats import Progress
from superset_bot.domain.events import ReviewReady, ReviewRefreshed
from superset_bot.domain.review import Review
from superset_bot.domain.task import encode_review
from superset_bot.engine.errors import UserError
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.git import diff as gitdiff
from superset_bot.git import merge as gitmerge
from superset_bot.git import refs as gitrefs
from superset_bot.git import remote as gitremote
from superset_bot.git.commands import GitError
from superset_bot.redact import Redactor
from superset_bot.store import CLOSED_STATES, REVIEWABLE_STATES, Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)


class Reviews:
    """Builds and posts reviews, and redacts the diffs it hands out."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # (repo, base) with a refresh pass under way -> whether another merge asked for one meanwhile:
        # fifty merges in a row make two passes over the open reviews, not fifty
        self._again: dict[tuple[str, str], bool] = {}
        self._refreshing: dict[str, asyncio.Lock] = {}  # task id -> one look again at its review at a time

    async def build(self, task: Task, progress: Progress | None = None, checks: Any = None) -> Review | None:
        """Summarise the task's branch against its base and preview the merge."""
        if not (task.branch and task.base_branch):
            return None
        repo = self.engine.repo_path(task.repo)
        if progress is None and task.progress:
            progress = Progress.from_snapshot(task.progress_snapshot())
        try:
            summary = await gitdiff.summarize(repo, task.branch, task.base_branch, task.base_commit)
            target = await self.merge_target(task, repo)
            preview = await gitmerge.preview_merge(repo, task.branch, target)
            moved = await gitrefs.commits_between(repo, task.base_commit, preview.base_commit) \
                if task.base_commit else None
        except GitError as exc:
            log.warning("task %s: no review: %s", task.id, exc)
            return None
        pull = await self.engine.store.get_pull(task.id)
        notes = []
        preset = self.engine.presets.get(task.preset)
        if preset is not None and (preset.limits.memory or preset.limits.pids) and not self.engine.cgroups.hard:
            notes.append(f"Its limits were soft (polled, not kernel-enforced): {self.engine.cgroups.why_not}.")
        started, finished = task.started_at, task.finished_at
        return Review(
            task_id=task.id,
            state=task.state,
            reason=task.reason,
            branch=task.branch,
            base_branch=task.base_branch,
            files=[asdict(f) for f in summary.files],
            commits=summary.commits,
            insertions=summary.insertions,
            deletions=summary.deletions,
            clean=preview.clean,
            conflicts=list(preview.conflicts),
            checks=checks if isinstance(checks, dict) else None,
            duration_s=(finished - started) if (started and finished) else None,
            cost_usd=progress.cost_usd if progress else None,
            cost_estimated_from=progress.cost_estimated_from if progress else None,
            tokens_in=progress.tokens_in if progress else None,
            tokens_out=progress.tokens_out if progress else None,
            final_text=progress.final_text if progress else None,
            denials=list(progress.denials) if progress else [],
            base_commit=task.base_commit,
            base_moved=moved,
            pull=pull.to_dict() if pull is not None else None,
            notes=notes,
        )

    async def merge_target(self, task: Task, repo: Path) -> str:
        """What the task's work will merge into: its local base, or, when it is delivered to the remote
        (push, pr) and the remote's tip of the base is ahead of the local one, that tip (a fetch brought
        commits the local branch lacks yet, which the merge will meet all the same)."""
        assert task.base_branch
        local = f"refs/heads/{task.base_branch}"
        remote = self.engine.settings.remote_for(task.repo)
        deliver = self.engine.deliver_for(task)
        if remote is None or deliver not in ("push", "pr"):
            return local
        tracking = gitremote.tracking_ref(remote, task.base_branch)
        try:
            tip = await gitrefs.resolve_commit(repo, tracking)
            here = await gitrefs.resolve_commit(repo, local)
        except GitError:
            return local  # never fetched, or no such branch there
        if deliver == "pr":
            return tracking  # a pull request merges on the host, whatever the local branch holds
        return tracking if tip != here and await gitrefs.is_ancestor(repo, here, tip) else local

    async def post(self, task: Task, progress: Progress | None = None, checks: Any = None) -> Review | None:
        """Build the review, store it with the task (its idle clock starts), and announce it."""
        engine = self.engine
        review = await self.build(task, progress, checks)
        if review is None:
            return None
        task = await engine.store.update_task(task.id, review=encode_review(review), last_activity=engine.clock())
        engine.publish(ReviewReady(task, review))
        await engine.hooks_dispatch("review_ready", task, {"review": review.to_dict()})
        engine.pulls.after_review(task, review.commits)
        return review

    async def show_pull(self, task_id: str) -> None:
        """The task's pull request changed (opened, new checks): its open review shows it now."""
        await self._refresh(task_id)

    def base_moved(self, repo: str, base: str, merged: str = "") -> None:
        """Every path that moves a base branch (a task merged, a merge settled after a restart, the
        remote's commits merged in before a push) calls this: the open reviews on it are looked at
        again in the background, so the caller (a person waiting for "merged") does not wait."""
        self.engine.workers.background(self.refresh_open(repo, base, merged))

    async def refresh_open(self, repo: str, base: str, merged: str) -> None:
        """The base branch `base` of `repo` moved (task `merged` landed on it): look again at every open
        review on it, and publish the ones whose verdict changed (merges cleanly or not, how far the
        base moved), so no review goes on offering a Merge its branch no longer makes cleanly."""
        key = (repo, base)
        if key in self._again:  # a pass over this base is under way: it goes round once more
            self._again[key] = True
            return
        self._again[key] = False
        try:
            while True:
                for task in await self.engine.store.list_tasks(REVIEWABLE_STATES):
                    if task.id == merged or task.repo != repo or task.base_branch != base or not task.review:
                        continue
                    try:
                        await self._refresh(task.id)
                    except Exception:  # noqa: BLE001 - one task's review must not stop the others'
                        log.exception("task %s: could not refresh its review", task.id)
                if not self._again[key]:
                    return
                self._again[key] = False  # merges landed meanwhile: one more pass covers them all
        finally:
            del self._again[key]

    async def _refresh(self, task_id: str) -> None:
        """Look at one open review again. One look per task at a time, each from the task as stored
        when it starts: two causes at once (a fetch and a pull request's new checks) both land."""
        engine = self.engine
        lock = self._refreshing.setdefault(task_id, asyncio.Lock())
        async with lock:
            task = await engine.store.get_task(task_id)
            if task is None or task.state not in REVIEWABLE_STATES or not task.review:
                return
            await self._refresh_locked(task)

    async def _refresh_locked(self, task: Task) -> None:
        engine = self.engine
        saved = task.review_data() or {}
        try:
            previous: Review | None = Review.from_dict(saved)
        except ValueError:
            previous = None
        review = await self.build(task, checks=saved.get("checks"))
        if review is None or (previous is not None and (previous.clean, previous.conflicts, previous.base_moved,
                                                        previous.pull)
                              == (review.clean, review.conflicts, review.base_moved, review.pull)):
            return
        current = await engine.store.get_task(task.id)
        if current is None or current.state != task.state or current.review != task.review:
            return  # it moved on meanwhile (merged, followed up, reviewed again): that path says so
        task = await engine.store.update_task(task.id, review=encode_review(review))
        engine.publish(ReviewRefreshed(task, review, previous))
        preset = engine.presets.get(task.preset)
        if preset is not None and preset.follow_base and review.clean and review.base_moved and \
                (previous is None or previous.base_moved != review.base_moved):
            await self._follow_base(task)

    async def _follow_base(self, task: Task) -> None:
        """`follow_base`: a review that still merges cleanly takes in what its base gained, and is
        posted again (a pull request gets the merge pushed); a refusal is only logged: the review stays."""
        try:
            await self.engine.update_from_base(task.id, BOT_ACTOR)
        except (UserError, GitError) as exc:  # e.g. files the agent left in the way of the merge
            log.info("task %s: not following its base: %s", task.id, exc)

    async def diff(self, task_id: str) -> str:
        engine = self.engine
        task = await engine.get(task_id)
        if not (task.branch and task.base_branch) or task.state in CLOSED_STATES:
            raise UserError(f"Task {task.id} has no branch to diff ({task.state}).")
        patch = await gitdiff.full_patch(engine.repo_path(task.repo), task.branch, task.base_branch,
                                         task.base_commit)
        # the diff goes to Slack: a key the agent wrote into a file must not go with it
        return engine.env.redactor_for(engine.presets.get(task.preset)).redact(patch)


def checks_view(checks: Any, redactor: Redactor) -> dict[str, Any]:
    """The checks step's result (engine.checks) as the review shows it; command output may print
    secrets, so redact it."""
    return {
        "passed": bool(checks.passed),
        "summary": redactor.redact(str(checks.summary)),
        "failing_tail": redactor.redact(str(getattr(checks, "failing_tail", "") or "")),
    }
