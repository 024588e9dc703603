"""The jobs that keep many agents' worktrees from filling disks and states from drifting.

Prune warns a task awaiting review before its worktree goes, removes leftovers and orphans,
and keeps the worktrees under a disk budget (oldest idle first, never an active task).
Reconcile fixes what happened behind the bot's back. The digest gathers what a team wants to
see each morning. Every job takes "now" from the engine's clock, so tests need no sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from superset_bot.domain.spend import Spend
from superset_bot.engine.core import BOT_ACTOR, Engine
from superset_bot.git import inventory as gitinventory
from superset_bot.git import naming as gitnaming
from superset_bot.git import worktrees as gitworktrees
from superset_bot.git.commands import GitError, run_git
from superset_bot.store import (
    ACTIVE_STATES,
    CLOSED_STATES,
    DISCARDED,
    FAILED,
    MERGED,
    PREPARING,
    PRUNED,
    QUEUED,
    REVIEWABLE_STATES,
    RUNNING,
    Task,
)
from superset_bot.units import format_duration, format_size

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"
LAST_DIGEST = "last_digest"


@dataclass
class PruneReport:
    """What a prune run did, or with dry_run would do: one line per item, for people."""

    dry_run: bool
    warned: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.warned or self.pruned or self.cleaned or self.errors)

    def lines(self) -> list[str]:
        would = "would " if self.dry_run else ""
        out = [f"{would}warn: {w}" for w in self.warned]
        out += [f"{would}prune: {p}" for p in self.pruned]
        out += [f"{would}clean up: {c}" for c in self.cleaned]
        out += [f"error: {e}" for e in self.errors]
        return out or ["Nothing to prune."]


@dataclass
class Digest:
    since: float
    now: float
    running: list[Task]
    awaiting: list[Task]  # oldest first
    closed: list[Task]  # merged, discarded, failed or pruned since the last digest
    to_prune: list[Task]  # warned, will go soon
    disk: dict[str, int]  # repo -> bytes used by its worktrees
    free_disk: int
    spend_by_user: dict[str, Spend] = field(default_factory=dict)  # runs that ended in the period
    spend_by_repo: dict[str, Spend] = field(default_factory=dict)
    spend_by_task: dict[str, Spend] = field(default_factory=dict)  # each listed task's cost over all its runs

    @property
    def empty(self) -> bool:
        return not (self.running or self.awaiting or self.closed or self.to_prune)


DigestSink = Callable[[Digest], Awaitable[None]]


class Housekeeper:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.store = engine.store
        self.digest_sinks: list[DigestSink] = []
        self._lock = asyncio.Lock()  # a manual `prune` and the scheduled one never overlap

    def now(self) -> float:
        return self.engine.clock()

    # prune

    async def prune(self, dry_run: bool = False, actor: str = SCHEDULER) -> PruneReport:
        async with self._lock:
            report = PruneReport(dry_run)
            tasks = await self.store.list_tasks()
            await self._prune_stale(tasks, report, actor)
            await self._clean_leftovers(tasks, report)
            await self._clean_orphans(report)
            await self._prune_to_budget(report, actor)
            if not dry_run and not report.empty:
                await self.store.add_event(None, actor, "prune", {"lines": report.lines()[:200]})
            return report

    async def _prune_stale(self, tasks: list[Task], report: PruneReport, actor: str) -> None:
        now = self.now()
        stale, grace = self.settings.stale_after, self.settings.prune_warning
        for task in tasks:
            # a task on worker hosts has its worktree there (or none, failed before a host took it): pruning
            # it has the host remove it, and its branches go as a local task's do
            if task.state not in REVIEWABLE_STATES or not (task.worktree or task.runner):
                continue
            idle = now - task.last_activity
            label = f"task {task.id} ({task.state}, idle {format_duration(idle)})"
            warned = task.prune_warned_at is not None and task.last_activity <= task.prune_warned_at
            if not warned:
                if idle >= max(0.0, stale - grace):
                    report.warned.append(f"{label}: will be pruned in {format_duration(grace)} unless kept")
                    if not report.dry_run:
                        await self.engine.warn_prune(task, grace)
                continue
            assert task.prune_warned_at is not None
            if idle >= stale and now - task.prune_warned_at >= grace:
                current = await self.store.get_task(task.id)  # a Keep or a follow-up may have just happened
                if current is None or current.last_activity != task.last_activity or current.state != task.state:
                    continue
                report.pruned.append(label)
                if not report.dry_run:
                    await self.engine.prune(task.id, actor, f"idle for {format_duration(idle)}")

    async def _clean_leftovers(self, tasks: list[Task], report: PruneReport) -> None:
        """Merged/discarded/pruned tasks whose worktree or branch survived (a failed cleanup).

        One branch listing per repo, not one git call per closed task: history only grows.
        """
        branches = {name: await _task_branches(repo) for name, repo in self.settings.repos.items()}
        kept = await self.store.kept_branches()
        for task in tasks:
            if task.state not in CLOSED_STATES:
                continue
            has_dir = bool(task.worktree) and await asyncio.to_thread(Path(task.worktree or "").exists)
            preset = self.engine.presets.get(task.preset)
            keep_branch = (bool(preset and preset.keep_branch) and task.state != DISCARDED) or task.id in kept
            repo = self.settings.repos.get(task.repo)
            has_branch = bool(repo and task.branch and not keep_branch
                              and task.branch in branches.get(task.repo, set()))
            if not (has_dir or has_branch) or repo is None:
                continue
            report.cleaned.append(f"leftovers of {task.state} task {task.id}")
            if not report.dry_run:
                await self._discard(repo, Path(task.worktree) if has_dir and task.worktree else None,
                                    task.branch if has_branch else None, report)

    async def _clean_orphans(self, report: PruneReport) -> None:
        """Worktrees and task branches no open task owns (pool spares aside), whatever left them."""
        for name, repo in self.settings.repos.items():
            # read the tasks now, not at the start of the run: a task spawned meanwhile is not an orphan.
            # A closed task owns nothing any more, however its cleanup went (or raced with a cancel).
            known = {t.id: Path(t.worktree) if t.worktree else self.settings.worktrees_dir / t.repo / t.id
                     for t in await self.store.list_tasks() if t.state not in CLOSED_STATES}
            root = self.settings.worktrees_dir / name
            try:
                orphans = await gitinventory.find_orphans(repo, root, known)
            except GitError as exc:
                report.errors.append(f"repo {name}: {exc}")
                continue
            for path in orphans.worktrees:
                if await self._still_owned(orphans.owners.get(path) or path.name):
                    continue
                report.cleaned.append(f"orphan worktree {path} in {name}")
                if not report.dry_run:
                    await self._discard(repo, path, None, report)
            for branch in orphans.branches:
                if await self._still_owned(gitnaming.task_id_from_branch(branch), branch):
                    continue
                report.cleaned.append(f"orphan branch {branch} in {name}")
                if not report.dry_run:
                    await self._discard(repo, None, branch, report)

    async def _still_owned(self, task_id: str | None, branch: str | None = None) -> bool:
        """Checked right before deleting: the task may have been created since the scan began.

        Open tasks own their worktree and branch; a merged or pruned task keeps its stored branch
        when its preset says so, and any closed task the branch the bot kept for work nobody has seen;
        nothing else is owned.
        """
        task = await self.store.get_task(task_id) if task_id else None
        if task is None:
            return False
        if task.state not in CLOSED_STATES:
            return True
        if branch and branch == task.branch and task.id in await self.store.kept_branches():
            return True  # work nobody has seen, kept on purpose (store.BRANCH_KEPT)
        preset = self.engine.presets.get(task.preset)
        return bool(branch and branch == task.branch and task.state != DISCARDED and preset and preset.keep_branch)

    async def _discard(self, repo: Path, path: Path | None, branch: str | None, report: PruneReport) -> None:
        try:
            await gitworktrees.discard(repo, path, branch)
        except (GitError, OSError) as exc:
            report.errors.append(str(exc))

    async def _prune_to_budget(self, report: PruneReport, actor: str) -> None:
        budget = self.settings.disk_budget
        if not budget:
            return
        usage = await self.disk_usage()
        total = sum(usage.values())
        if total <= budget:
            return
        sizes = await self._task_sizes()
        candidates = sorted(
            (t for t in await self.store.list_tasks(REVIEWABLE_STATES) if t.worktree and t.id in sizes),
            key=lambda t: t.last_activity,
        )
        for task in candidates:
            if total <= budget:
                break
            total -= sizes[task.id]
            label = f"task {task.id} ({format_size(sizes[task.id])}, idle {format_duration(self.now() - task.last_activity)})"
            report.pruned.append(f"{label}: over the disk budget of {format_size(budget)}")
            if not report.dry_run:
                await self.engine.prune(task.id, actor, f"worktrees were over the disk budget ({format_size(budget)})")

    async def _task_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for name, repo in self.settings.repos.items():
            try:
                infos = await gitinventory.list_worktrees(repo, self.settings.worktrees_dir / name)
            except GitError:
                continue
            for info in infos:
                if info.task_id:
                    sizes[info.task_id] = info.size_bytes
        return sizes

    async def disk_usage(self) -> dict[str, int]:
        usage: dict[str, int] = {}
        for name, repo in self.settings.repos.items():
            try:
                infos = await gitinventory.list_worktrees(repo, self.settings.worktrees_dir / name)
            except GitError:
                infos = []
            usage[name] = sum(i.size_bytes for i in infos)
        return usage

    # reconcile

    async def reconcile(self) -> list[str]:
        """Fix drift: undriven tasks, vanished worktrees, agents over their disk limit."""
        fixed: list[str] = []
        picked_up: set[str] = set()
        for task in await self.store.list_tasks(ACTIVE_STATES | REVIEWABLE_STATES):
            try:
                note = await self._reconcile_one(task)
            except Exception as exc:  # one task's trouble must not stop the others' checks
                log.exception("task %s: reconcile failed", task.id)
                note = None
                await self.store.add_event(task.id, SCHEDULER, "reconcile_failed", {"error": str(exc)})
            if note:
                fixed.append(f"task {task.id}: {note}")
                picked_up.add(task.id)
                await self.store.add_event(task.id, SCHEDULER, "reconciled", {"fix": note})
        # driven (or claimed) but not moving: queued with a free slot, preparing, merging, discarding
        for task, age in await self.engine.stuck_tasks():
            if task.id in picked_up:
                continue  # just given a new driver above: judge it next time
            try:
                note = f"{task.state} for {format_duration(age)} without progress; " + \
                    await self.engine.settle_stuck(task, age)
            except Exception as exc:
                log.exception("task %s: could not settle it", task.id)
                await self.store.add_event(task.id, SCHEDULER, "reconcile_failed", {"error": str(exc)})
                continue
            fixed.append(f"task {task.id}: {note}")
            await self.store.add_event(task.id, SCHEDULER, "reconciled", {"fix": note})
        return fixed

    async def _reconcile_one(self, listed: Task) -> str | None:
        engine = self.engine
        task = await self.store.get_task(listed.id)  # the list is a snapshot; act on the task as it is now
        if task is None or task.state != listed.state:
            return None
        if task.state in (QUEUED, RUNNING, PREPARING) and not engine.is_driven(task.id):
            await engine.recover(task)
            return f"was {task.state} with nobody driving it; picked up again"
        if task.state in REVIEWABLE_STATES and task.worktree and not await asyncio.to_thread(Path(task.worktree).is_dir):
            await engine.mark_pruned(task, "its worktree was removed outside the bot")
            return "worktree vanished; marked pruned"
        if task.state == RUNNING and task.worktree:
            preset = engine.presets.get(task.preset)
            limit = preset.limits.disk if preset else None
            if limit:
                size = await asyncio.to_thread(_tree_size, Path(task.worktree))
                if size > limit:
                    await engine.stop_for_limit(
                        task.id, f"the worktree grew to {format_size(size)}, past the preset's disk limit "
                                 f"of {format_size(limit)}")
                    return f"stopped: worktree {format_size(size)} over the disk limit {format_size(limit)}"
        return None

    # git maintenance

    async def maintenance(self) -> list[str]:
        """Nightly: prune stale worktree entries and let git pack, but only in repos with no agent running."""
        busy = {t.repo for t in await self.store.list_tasks({RUNNING, PREPARING})}
        done: list[str] = []
        for name, repo in self.settings.repos.items():
            if name in busy:
                done.append(f"{name}: skipped, an agent is running")
                continue
            try:
                await gitinventory.git_maintenance(repo)
                done.append(f"{name}: maintained")
            except GitError as exc:
                done.append(f"{name}: {exc}")
        await self.store.add_event(None, SCHEDULER, "git_maintenance", {"repos": done})
        return done

    # digest

    async def build_digest(self) -> Digest:
        now = self.now()
        raw = await self.store.get_meta(LAST_DIGEST)
        since = float(raw) if raw else now - 86400
        running = await self.store.list_tasks({RUNNING, PREPARING, QUEUED})
        awaiting = sorted(await self.store.list_tasks(REVIEWABLE_STATES - {FAILED}), key=lambda t: t.finished_at or t.updated_at)
        closed = [t for t in await self.store.list_tasks({MERGED, DISCARDED, FAILED, PRUNED})
                  if t.updated_at > since]
        to_prune = [t for t in awaiting if t.prune_warned_at is not None and t.last_activity <= t.prune_warned_at]
        free = (await asyncio.to_thread(shutil.disk_usage, self.settings.data_dir)).free
        listed = [t.id for t in (*running, *awaiting, *closed)]
        return Digest(since, now, running, awaiting, closed, to_prune, await self.disk_usage(), free,
                      await self.store.spend_since(since, "requester"), await self.store.spend_since(since, "repo"),
                      await self.store.spend_of(listed))

    async def digest(self, force: bool = False) -> Digest | None:
        """Build the digest and hand it to the front ends; None (nothing posted) when there is nothing to say."""
        digest = await self.build_digest()
        if digest.empty and not force:
            return None
        for sink in self.digest_sinks:
            await sink(digest)
        await self.store.set_meta(LAST_DIGEST, repr(digest.now))
        return digest


async def _task_branches(repo: Path) -> set[str]:
    """The repo's task branches (`superset/...`); empty when the repo cannot be read."""
    try:
        refs = await run_git(repo, "for-each-ref", "--format=%(refname:lstrip=2)", f"refs/heads/{gitnaming.BRANCH_PREFIX}")
    except GitError:
        return set()
    return set(refs.stdout.splitlines())


def _tree_size(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        try:
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_size
        except OSError:
            continue
    return total


__all__ = ["BOT_ACTOR", "Digest", "Housekeeper", "PruneReport"]
