"""Closing a task by merging or discarding it: the claim that makes either happen once, the merge and
its settling after an interruption, the discard; and merging a task's base into its branch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superset_bot.agents.formats import first_line
from superset_bot.domain.events import Milestone
from superset_bot.domain.state import TaskState
from superset_bot.engine.errors import AlreadyClosed, UserError
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.git import checkout as gitcheckout
from superset_bot.git import locks as gitlocks
from superset_bot.git import merge as gitmerge
from superset_bot.git import refs as gitrefs
from superset_bot.git import worktrees as gitworktrees
from superset_bot.git.commands import GitError
from superset_bot.presets import Preset
from superset_bot.store import (
    ACTIVE_STATES,
    CLOSED_STATES,
    DISCARDED,
    DISCARDING,
    FINISHED,
    MERGED,
    MERGING,
    REVIEWABLE_STATES,
    Task,
)

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)


class Merging:
    """Merges and discards; knows which claims are at work and which worktrees take in their base right now."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._updating: set[str] = set()  # tasks whose worktree is merging in their base right now
        self._claims: dict[str, asyncio.Task[Any]] = {}  # task id -> the merge or discard working on it

    def claim_of(self, task_id: str) -> asyncio.Task[Any] | None:
        """The merge or discard working on the task in this process, if any."""
        return self._claims.get(task_id)

    def updating(self, task_id: str) -> bool:
        """Whether the task's worktree is taking in its base right now (Update from base)."""
        return task_id in self._updating

    def claim_alive(self, task_id: str) -> bool:
        claim = self._claims.get(task_id)
        return claim is not None and not claim.done()

    async def merge(self, task_id: str, actor: str) -> Task:
        """Merge the task's branch into its base, once, however many times it is asked."""
        engine = self.engine
        task = await engine.get(task_id)
        if task.state in CLOSED_STATES:
            raise AlreadyClosed(task)
        preset = engine.preset_for(task)
        repo = engine.repo_path(task.repo)
        if not (task.branch and task.base_branch):
            raise UserError(f"Task {task.id} has no branch to merge ({task.reason or task.state}).")
        claimed = await self._claim(task, MERGING, actor)
        with self.claiming(claimed.id):
            if engine.deliver_for(task) == "pr":  # merged on the host, through the task's pull request
                return await engine.pulls.merge_claimed(claimed, task.state, preset, actor)
            return await self._merge_claimed(claimed, task.state, preset, repo, actor)

    async def _merge_claimed(self, claimed: Task, previous: TaskState, preset: Preset, repo: Path, actor: str) -> Task:
        engine = self.engine
        assert claimed.branch and claimed.base_branch
        try:
            if claimed.worktree and Path(claimed.worktree).is_dir():
                await gitworktrees.commit_pending(Path(claimed.worktree),
                                                  f"superset-bot: uncommitted work before merge (task {claimed.id})",
                                                  exclude=engine.env.copied(claimed),
                                                  exclude_globs=engine.env.never_commit(claimed))

            async def remember(old: str, new: str) -> None:
                # written before the base ref moves, so a restart can tell whether it did (and
                # bring the base's checkout along if the bot died before it could)
                await engine.store.update_task(claimed.id, merge_commit=new)
                await engine.store.add_event(claimed.id, actor, "merge_ready", {"old": old, "new": new})

            result = await gitmerge.merge(
                repo, claimed.branch, claimed.base_branch, strategy=preset.merge,
                message=f"Merge task {claimed.id}: {first_line(claimed.prompt, 72)}\n\nBranch {claimed.branch}, "
                        f"requested by {claimed.requester}, merged by {actor} via superset-bot.",
                on_ready=remember,
            )
        except gitmerge.NothingToMerge as exc:
            await self.release_claim(claimed, previous, actor, "nothing to merge")
            raise UserError(
                f"Nothing to merge: `{claimed.branch}` has no changes that `{claimed.base_branch}` lacks. "
                "Discard the task, or follow up with more instructions."
            ) from exc
        except gitmerge.MergeConflict as exc:
            await self.release_claim(claimed, previous, actor, f"merge refused: conflicts in {', '.join(exc.files)}",
                                     tell=f"`{claimed.branch}` conflicts with `{claimed.base_branch}` in "
                                          f"{', '.join(exc.files)}; update it from its base (or follow up) first")
            raise UserError(
                f"`{claimed.branch}` conflicts with `{claimed.base_branch}` in {', '.join(exc.files)}. "
                "Nothing was merged. Update the task from its base (or follow up) to resolve them."
            ) from exc
        except GitError as exc:
            await self.release_claim(claimed, previous, actor, f"merge failed: {exc}", tell=str(exc))
            raise UserError(f"Nothing was merged: {exc}") from exc
        except asyncio.CancelledError:
            if not engine.workers.stopping:  # when stopping, the next start settles the claim from git
                await self.settle_merge_claim(await engine.get(claimed.id), previous)
            raise
        except Exception as exc:
            log.exception("task %s: merge failed", claimed.id)
            await self.settle_merge_claim(await engine.get(claimed.id), previous)
            raise UserError(f"The merge failed unexpectedly ({exc}); the task is back to {previous}.") from exc
        merged = await engine.transitions.transition(
            claimed.id, MERGED, actor, expect={MERGING}, closed_by=actor, merge_commit=result.new_commit,
        )
        assert merged is not None
        await engine.cleanup.teardown(merged, actor)
        await engine.cleanup.remove_worktree(merged, keep_branch=preset.keep_branch)
        await engine.hooks_dispatch("merged", merged, {"commit": result.new_commit, "strategy": result.strategy})
        # `deliver: push` sends the base to the remote, in the background: the merge is done, and the
        # push (bounded by its timeouts) reports in the thread
        engine.delivery.after_merge(merged, engine.deliver_for(merged))
        # the base moved: the other open reviews on it may no longer merge cleanly
        engine.reviews.base_moved(merged.repo, merged.base_branch or "", merged.id)
        return merged

    async def discard(self, task_id: str, actor: str) -> Task:
        """Throw the task's work away: stop its agent if needed, remove worktree and branch."""
        task = await self.engine.get(task_id)
        if task.state in ACTIVE_STATES:
            task = await self.engine.cancel(task.id, actor)
        claimed = await self._claim(task, DISCARDING, actor)
        with self.claiming(claimed.id):
            return await self.finish_discard(claimed, actor)

    @contextlib.contextmanager
    def claiming(self, task_id: str) -> Iterator[None]:
        """While a merge or discard works on a claimed task, so reconcile can tell a live claim from a lost one."""
        current = asyncio.current_task()
        if current is not None:
            self._claims[task_id] = current
        try:
            yield
        finally:
            if self._claims.get(task_id) is current:
                del self._claims[task_id]

    async def finish_discard(self, task: Task, actor: str, keep_branch: bool = False) -> Task:
        """`keep_branch`: the worktree goes but the branch stays (work nobody has seen yet)."""
        engine = self.engine
        await engine.pulls.close_for_discard(task, actor)
        await engine.cleanup.teardown(task, actor)
        await engine.cleanup.remove_worktree(task, keep_branch=keep_branch)
        done = await engine.transitions.transition(task.id, DISCARDED, actor, expect={DISCARDING}, closed_by=actor)
        assert done is not None
        await engine.hooks_dispatch("discarded", done)
        return done

    def refuse_while_updating(self, task: Task) -> None:
        """Nothing else touches a worktree while its base is being merged in (a merge would take half of it)."""
        if task.id in self._updating:
            raise UserError(f"Task {task.id} is being updated from `{task.base_branch}` right now; "
                            "try again when the new review is posted.")

    async def _claim(self, task: Task, state: TaskState, actor: str) -> Task:
        self.refuse_while_updating(task)
        claimed = await self.engine.transitions.transition(task.id, state, actor, expect=REVIEWABLE_STATES)
        if claimed is not None:
            return claimed
        current = await self.engine.get(task.id)
        if current.state in CLOSED_STATES:
            raise AlreadyClosed(current)
        if current.state in (MERGING, DISCARDING):
            raise UserError(f"Task {task.id} is being {'merged' if current.state == MERGING else 'discarded'} "
                            "right now; nothing else was done.")
        raise UserError(f"Task {task.id} is {current.state}; wait for the agent to finish or cancel it first.")

    async def release_claim(self, task: Task, previous: TaskState, actor: str, reason: str,
                            tell: str | None = None) -> None:
        """A merge that did not happen gives its claim back; `tell` says why in the thread, for everyone
        following the task, not only the person who clicked."""
        await self.engine.store.add_event(task.id, actor, "merge_refused", {"reason": reason})
        if tell:
            self.engine.publish(Milestone(task, "merge_refused", f"Merge asked by {actor} was refused: "
                                                                 f"{tell.rstrip('.')}. Nothing was merged.", ok=False))
        await self.engine.transitions.transition(task.id, previous, BOT_ACTOR, expect={MERGING}, reason=task.reason,
                                                 merge_commit=None)

    async def settle_merge_claim(self, task: Task, previous: TaskState | None = None) -> None:
        """A merge was interrupted: the base ref moved fully or not at all; find out which, and finish it."""
        engine = self.engine
        repo = engine.repo_path(task.repo)
        # the claim's audit entry says who merged and what the task was before (a restart knows no more)
        events = await engine.store.events(task.id, limit=100_000)
        claim = next((e for e in reversed(events) if e.action == MERGING), None)
        actor = claim.actor if claim else BOT_ACTOR
        if previous is None:
            before = claim.detail.get("from") if claim else None
            previous = TaskState(before) if before in REVIEWABLE_STATES else FINISHED
        if await engine.pulls.settle_merge(task, previous, actor):
            return
        landed = False
        if task.merge_commit and task.base_branch:
            if await gitlocks.drop_own_ref_lock(repo, task.base_branch, task.merge_commit):
                await engine.store.add_event(task.id, BOT_ACTOR, "stale_ref_lock_removed",
                                             {"branch": task.base_branch})
            landed = await gitrefs.commit_on_branch(repo, task.merge_commit, task.base_branch)
        if landed:
            assert task.base_branch and task.merge_commit
            merged = await engine.transitions.transition(
                task.id, MERGED, actor, expect={MERGING}, closed_by=actor,
                reason="the merge completed; the bot restarted before it could say so")
            if merged is None:
                return
            ready = next((e for e in reversed(events) if e.action == "merge_ready"
                          and e.detail.get("new") == task.merge_commit), None)
            if ready is not None and isinstance(ready.detail.get("old"), str):
                try:
                    await gitcheckout.follow_checkout(repo, task.base_branch, ready.detail["old"], task.merge_commit)
                except GitError as exc:  # the person's own changes there: say so, change nothing
                    await engine.store.add_event(task.id, BOT_ACTOR, "checkout_not_updated", {"error": str(exc)})
            preset = engine.presets.get(task.preset)
            await engine.cleanup.teardown(merged, actor)
            await engine.cleanup.remove_worktree(merged, keep_branch=bool(preset and preset.keep_branch))
            await engine.hooks_dispatch("merged", merged, {"commit": task.merge_commit,
                                                           "strategy": preset.merge if preset else None})
            engine.delivery.after_merge(merged, engine.deliver_for(merged))  # `push` still pushes it
            engine.reviews.base_moved(merged.repo, task.base_branch, merged.id)
        else:
            await engine.transitions.transition(task.id, previous, BOT_ACTOR, expect={MERGING}, merge_commit=None,
                                                reason="the merge was interrupted; nothing was merged")

    async def settle_claim(self, task_id: str) -> None:
        """Finish a merge or discard that nothing works on any more, as git and the audit entries tell."""
        engine = self.engine
        current = await engine.get(task_id)
        if current.state == MERGING:
            await self.settle_merge_claim(current)
        elif current.state == DISCARDING:
            events = await engine.store.events(task_id, limit=100_000)
            claimed = next((e for e in reversed(events) if e.action == DISCARDING), None)
            await self.finish_discard(current, claimed.actor if claimed else BOT_ACTOR)

    async def update_from_base(self, task_id: str, actor: str) -> Task:
        """Merge the base into the task branch; conflicts go to the agent as a follow-up."""
        engine = self.engine
        task = await engine.get(task_id)
        if task.state not in REVIEWABLE_STATES:
            raise UserError(f"Task {task.id} is {task.state}; it can be updated from its base once the agent is done.")
        runner = engine.runner_for(task)
        assert task.base_branch
        self.refuse_while_updating(task)
        self._updating.add(task.id)
        try:
            # what the work will merge into: the remote's tip for a pull request (or a push) when ahead
            target = await engine.reviews.merge_target(task, engine.repo_path(task.repo))
            conflicts = await runner.update_from_base(task, target)
            await engine.store.add_event(task.id, actor, "updated_from_base", {"conflicts": conflicts})
        finally:
            self._updating.discard(task.id)
        if conflicts:
            done = "committed the merge with conflict markers" if task.runner else "left conflicts"
            instruction = (
                f"Merging `{task.base_branch}` into this branch {done} in: {', '.join(conflicts)}. "
                "Resolve every conflict, keep both sides' intent, and commit "
                f"{'the resolution' if task.runner else 'the merge'}."
            )
            return await engine.followup(task.id, instruction, actor)
        await engine.reviews.post(task)
        return task
