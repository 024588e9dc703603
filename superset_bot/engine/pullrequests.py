"""Pull-request delivery (`deliver: pr`): a task's branch goes to the repo's remote and a pull request,
whose state and checks the thread follows; Merge merges it on the host, Discard closes it.

- When a review with changes is posted, the branch is pushed (never forced) and a pull request opened,
  or the open one found again (after a restart, or a follow-up that pushed more commits to it).
- A watcher per open pull request looks at it every SUPERSET_PR_POLL_EVERY with conditional requests:
  its checks go into the review as they change (a milestone when they all pass or one fails), and a
  pull request merged or closed by a person on the host moves the task to merged or discarded.
- Merge takes the task's merging claim (as a local merge does), pushes what is new, and asks the host
  to merge with the preset's `merge` method, naming the head commit it pushed so nothing pushed since
  is merged unseen. A refusal releases the claim and is said in the thread for everyone.
- After a merge the base is fetched and the local base fast-forwarded to it when it is behind (never
  merged into: local would then hold a commit the remote lacks), so the open reviews on it are
  looked at again.

The host's token lives in the forge only: never in an agent's environment, a git URL or a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from superset_bot.agents.formats import first_line
from superset_bot.domain.events import Milestone
from superset_bot.domain.pullrequest import CheckState, PullRequest, PullState
from superset_bot.domain.state import TaskState
from superset_bot.engine.errors import UserError
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.forges import Forge, ForgeError, HeadChanged, NotMergeable, RateLimited, RemotePull
from superset_bot.forges.github import GitHubForge, repo_slug
from superset_bot.git import merge as gitmerge
from superset_bot.git import refs as gitrefs
from superset_bot.git import remote as gitremote
from superset_bot.git import worktrees as gitworktrees
from superset_bot.git.commands import GitError
from superset_bot.presets import Preset
from superset_bot.store import BRANCH_KEPT, CLOSED_STATES, MERGED, MERGING, REVIEWABLE_STATES, Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)

PROVIDER = "github"
FAILURES_BEFORE_TELLING = 3
FIX_CI_CHARS = 20_000  # the failing checks' output a Fix CI follow-up carries, at most  # failed looks in a row before the thread hears the host is unreachable


class PullRequests:
    """Opens, follows, merges and closes the pull requests of tasks whose delivery is `pr`."""

    def __init__(self, engine: Engine, forge: Forge | None = None) -> None:
        self.engine = engine
        self._forge = forge
        self._watching: set[str] = set()  # task ids with a watcher
        self._locks: dict[str, asyncio.Lock] = {}  # per task: publishing and merging do not interleave
        # per task, bumped whenever the bot itself pushes a new head: a look that began before it is stale
        self._generation: dict[str, int] = {}

    # the host

    def forge(self) -> Forge:
        if self._forge is None:
            token = self.engine.settings.github_token
            if not token:
                raise ForgeError("pull-request delivery needs SUPERSET_GITHUB_TOKEN (a token that may open and "
                                 "merge pull requests)")
            self._forge = GitHubForge(token, self.engine.settings.github_api_url)
        return self._forge

    async def slug_for(self, repo_name: str) -> str:
        """The repository on the host: SUPERSET_GITHUB_REPOS, else read from the remote's URL."""
        remote = self._remote(repo_name)
        slug = await repo_slug(self.engine.settings, repo_name, remote)
        if slug is None:
            raise ForgeError(f"cannot tell which GitHub repository {remote} is; set "
                             f"SUPERSET_GITHUB_REPOS={repo_name}=owner/name")
        return slug

    def _remote(self, repo_name: str) -> str:
        remote = self.engine.settings.remote_for(repo_name)
        if remote is None:
            raise ForgeError(f"pull-request delivery needs a remote, and {repo_name} has none set "
                             "(SUPERSET_REMOTE / SUPERSET_REPO_REMOTES is none)")
        return remote

    def delivers(self, task: Task) -> bool:
        return self.engine.deliver_for(task) == "pr"

    @contextlib.asynccontextmanager
    async def _locked(self, task_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(task_id, asyncio.Lock())
        async with lock:
            yield

    # opening and updating

    def after_review(self, task: Task, commits: int) -> None:
        """A review was posted: a task delivered by pull request with work to show gets it pushed."""
        if commits > 0 and self.delivers(task):
            self.engine.workers.background(self.publish(task.id))

    async def publish(self, task_id: str) -> PullRequest | None:
        """Push the task's branch and open its pull request (or find the open one); None if that failed,
        which the thread is told."""
        engine = self.engine
        ended: tuple[PullRequest, RemotePull] | None = None
        async with self._locked(task_id):
            task = await engine.get(task_id)
            if task.state not in REVIEWABLE_STATES:
                return None  # being merged or discarded, or a follow-up runs: that path pushes
            try:
                known = await engine.store.get_pull(task.id)
                if known is not None and known.state == PullState.OPEN:
                    # merged or closed on the host meanwhile (during a follow-up): push nothing to it
                    remote = await self.forge().get_pull(known.slug, known.number)
                    if remote.merged or remote.state == "closed":
                        ended = (known, remote)
                pull = known if ended else await self._push_and_open(task)
            except (ForgeError, GitError) as exc:
                reason = _reason(exc)
                await engine.store.add_event(task.id, BOT_ACTOR, "pr_failed", {"reason": reason})
                engine.publish(Milestone(task, "pr_failed",
                                         f"Could not deliver the work as a pull request: {reason}. The work is "
                                         f"on `{task.branch}`; Merge tries again.", ok=False))
                return None
        if ended is not None:
            await self._ended_on_host(*ended)
            return None
        await engine.reviews.show_pull(task.id)
        self.watch(task.id)
        return pull

    async def _push_and_open(self, task: Task) -> PullRequest:
        """The pull request carrying the task's branch as it is now (pushed, never forced)."""
        engine = self.engine
        assert task.branch and task.base_branch
        repo = engine.repo_path(task.repo)
        remote = self._remote(task.repo)
        if not await gitremote.has_remote(repo, remote):
            raise ForgeError(f"the repository has no remote named {remote}")
        forge = self.forge()
        slug = await self.slug_for(task.repo)
        try:
            head = await gitremote.push_branch(repo, remote, task.branch)
        except gitremote.PushError as exc:
            if exc.rejected:
                raise ForgeError(f"{remote}'s `{task.branch}` has commits the task's branch lacks (someone pushed "
                                 "to the pull request); nothing was forced") from exc
            raise
        known = await engine.store.get_pull(task.id)
        if known is not None and known.state == PullState.OPEN:
            if known.head_sha == head:
                return known
            pull = await engine.store.save_pull(known.with_checks(head, ()))  # a new head: checks start over
            self._generation[task.id] = self._generation.get(task.id, 0) + 1
            engine.publish(Milestone(task, "pr_updated", f"Pushed the new commits to pull request {known.label}."))
            return pull
        found = await forge.find_open_pull(slug, task.branch, task.base_branch)
        opened = found is None
        if found is None:
            found = await forge.open_pull(slug, task.branch, task.base_branch, first_line(task.prompt, 72),
                                          _body(task))
        pull = await engine.store.save_pull(PullRequest(
            task.id, PROVIDER, slug, found.number, found.url, task.branch, task.base_branch, PullState.OPEN, head))
        await engine.store.add_event(task.id, BOT_ACTOR, "pr_opened" if opened else "pr_found",
                                     {"number": found.number, "url": found.url, "head": head})
        engine.publish(Milestone(task, "pr_opened", f"{'Opened' if opened else 'Following'} pull request "
                                                    f"{pull.label} from `{task.branch}` into `{task.base_branch}`: "
                                                    f"{found.url}"))
        return pull

    # following

    def watch(self, task_id: str) -> None:
        """Follow the task's open pull request until it is merged or closed (one watcher per task)."""
        if task_id not in self._watching:
            self._watching.add(task_id)
            self.engine.workers.background(self._watch(task_id))

    async def resume(self) -> None:
        """At start: follow every pull request left open."""
        for pull in await self.engine.store.open_pulls():
            self.watch(pull.task_id)

    async def _watch(self, task_id: str) -> None:
        engine = self.engine
        failures = 0
        try:
            while not engine.workers.stopping:
                pull = await engine.store.get_pull(task_id)
                task = await engine.store.get_task(task_id)
                if pull is None or pull.state != PullState.OPEN or task is None or task.state in CLOSED_STATES:
                    return  # nothing open to follow, or the task was closed (that path closed the PR)
                wait = engine.settings.pr_poll_every
                try:
                    if not await self.look(pull):
                        return
                    failures = 0
                except RateLimited as exc:
                    wait = max(wait, exc.reset_at - time.time())
                except ForgeError as exc:
                    failures += 1
                    log.warning("task %s: could not look at %s: %s", task_id, pull.label, exc.reason)
                    if failures == FAILURES_BEFORE_TELLING:
                        engine.publish(Milestone(task, "pr_unreachable", f"Cannot reach {pull.label} on GitHub "
                                                 f"({exc.reason}); still trying.", ok=False))
                    wait *= min(failures, 10)  # a host that is down is asked less and less often
                except Exception:  # noqa: BLE001 - the watcher outlives one bad look (a git error in a refresh)
                    failures += 1
                    log.exception("task %s: looking at %s failed", task_id, pull.label)
                    wait *= min(failures, 10)
                await asyncio.sleep(wait)
        finally:
            self._watching.discard(task_id)

    async def look(self, pull: PullRequest) -> bool:
        """Look at the pull request once; False when it is merged or closed (nothing more to follow)."""
        engine, forge = self.engine, self.forge()
        generation = self._generation.get(pull.task_id, 0)
        remote = await forge.get_pull(pull.slug, pull.number)
        if remote.merged or remote.state == "closed":
            return not await self._ended_on_host(pull, remote)
        checks = await forge.checks(pull.slug, remote.head_sha) if remote.head_sha else ()
        async with self._locked(pull.task_id):
            current = await engine.store.get_pull(pull.task_id)
            if current is None or current.state != PullState.OPEN:
                return False
            if self._generation.get(pull.task_id, 0) != generation or (current.head_sha, current.checks) == (
                    remote.head_sha, checks):
                return True  # nothing new, or the bot pushed meanwhile: what was read is stale
            updated = await engine.store.save_pull(current.with_checks(remote.head_sha, checks))
        await engine.reviews.show_pull(pull.task_id)
        verdict = updated.checks_state
        if verdict != current.checks_state and verdict in (CheckState.SUCCESS, CheckState.FAILURE):
            task = await engine.get(pull.task_id)
            if verdict == CheckState.SUCCESS:
                text = f"Checks passed on {updated.label} ({len(updated.checks)} of {len(updated.checks)})."
            else:
                failing = updated.failing()
                # a check's name is the host's text: no-break spaces keep "by U0SOMEONE" in it from pinging
                names = ", ".join(f"`{first_line(c.name, 60).replace(' ', chr(0xA0))}`" for c in failing[:5])
                text = (f"Checks failed on {updated.label}: {names}"
                        f"{f' and {len(failing) - 5} more' if len(failing) > 5 else ''}. Fix CI sends their "
                        "output to the agent.")
            await engine.store.add_event(pull.task_id, BOT_ACTOR, "pr_checks", {"state": str(verdict)})
            engine.publish(Milestone(task, "pr_checks", text, ok=verdict == CheckState.SUCCESS))
        return True

    async def _ended_on_host(self, pull: PullRequest, remote: RemotePull) -> bool:
        """A person merged or closed the pull request on the host: the task follows, once it may (a
        follow-up still running waits). True when the task was moved."""
        engine = self.engine
        who = remote.merged_by if remote.merged else remote.closed_by
        actor = f"{who} on GitHub" if who else "someone on GitHub"
        target = TaskState.MERGING if remote.merged else TaskState.DISCARDING
        with engine.merging.claiming(pull.task_id):  # so reconcile tells this claim from a lost one
            claimed = await engine.transitions.transition(pull.task_id, target, actor, expect=REVIEWABLE_STATES)
            if claimed is None:
                return False  # a merge or discard of ours is at work (it says so), or the agent runs
            await self._end(claimed, pull, remote, actor)
        return True

    async def _end(self, claimed: Task, pull: PullRequest, remote: RemotePull, actor: str) -> None:
        engine = self.engine
        if remote.merged:
            await engine.store.add_event(pull.task_id, actor, "pr_merged_on_host",
                                         {"number": pull.number, "commit": remote.merge_commit})
            await self._finish_merge(claimed, pull, remote.merge_commit or "", actor, remote.head_sha)
        else:
            await engine.store.save_pull(replace(pull, state=PullState.CLOSED))
            await engine.store.add_event(pull.task_id, actor, "pr_closed_on_host", {"number": pull.number})
            # a follow-up that ended after the close made commits nobody has seen: the person closed the
            # pull request, not those; they stay on the branch
            keep = await self._left_out(claimed, remote.head_sha) is not False
            if keep:
                await engine.store.add_event(claimed.id, BOT_ACTOR, BRANCH_KEPT, {"branch": claimed.branch,
                                                                                  "why": "not in the closed head"})
            kept = (f" The branch `{claimed.branch}` is kept: it has commits the pull request did not "
                    "(a follow-up that ended after the close).") if keep else ""
            engine.publish(Milestone(claimed, "pr_closed", f"Pull request {pull.label} was closed on GitHub "
                                                           f"without merging; the task is discarded.{kept}"))
            await engine.merging.finish_discard(claimed, actor, keep_branch=keep)

    # merging and closing

    async def merge_claimed(self, claimed: Task, previous: TaskState, preset: Preset, actor: str) -> Task:
        """Merge the claimed task's pull request on the host; the task MERGED, or back to `previous`
        with a UserError saying why (and the thread told)."""
        engine = self.engine
        asked = False  # whether the merge itself was sent (after that, no answer is not a refusal)
        try:
            async with self._locked(claimed.id):
                if claimed.worktree and Path(claimed.worktree).is_dir():
                    await gitworktrees.commit_pending(
                        Path(claimed.worktree), f"superset-bot: uncommitted work before merge (task {claimed.id})",
                        exclude=engine.env.copied(claimed), exclude_globs=engine.env.never_commit(claimed))
                pull = await self._push_and_open(claimed)
                self.watch(claimed.id)
                await engine.store.add_event(claimed.id, actor, "pr_merge_requested",
                                             {"number": pull.number, "head": pull.head_sha})
                asked = True
                commit = await self.forge().merge_pull(
                    pull.slug, pull.number, method=preset.merge, sha=pull.head_sha,
                    title=f"{first_line(claimed.prompt, 60)} (#{pull.number})",
                    message=f"Task {claimed.id} via superset-bot, requested by {claimed.requester}, merged by {actor}.")
        except asyncio.CancelledError:
            if not engine.workers.stopping:
                await engine.merging.settle_merge_claim(await engine.get(claimed.id), previous)
            raise
        except ForgeError as exc:
            unclear = exc.status is None or exc.status >= 500
            if asked and unclear and not isinstance(exc, NotMergeable | HeadChanged | RateLimited):
                # no answer, or a broken one: the host may have merged it all the same; ask
                await engine.merging.settle_merge_claim(await engine.get(claimed.id), previous)
                settled = await engine.get(claimed.id)
                if settled.state == MERGED:
                    return settled
                if settled.state == MERGING:
                    raise UserError(f"GitHub did not answer the merge ({exc.reason}); it is looked at again "
                                    "shortly.") from exc
                engine.publish(Milestone(settled, "merge_refused", f"Merge asked by {actor} failed: "
                                                                   f"{_reason(exc)}. Nothing was merged.", ok=False))
                raise UserError(f"Nothing was merged: {_reason(exc)}.") from exc
            await self._refuse(claimed, previous, actor, exc)
        except GitError as exc:
            await self._refuse(claimed, previous, actor, exc)
        except Exception as exc:
            log.exception("task %s: merging its pull request failed", claimed.id)
            await engine.merging.settle_merge_claim(await engine.get(claimed.id), previous)
            raise UserError(f"The merge failed unexpectedly ({exc}); the task is back to {previous}.") from exc
        await engine.store.add_event(claimed.id, actor, "pr_merged", {"number": pull.number, "commit": commit})
        return await self._finish_merge(claimed, pull, commit, actor, pull.head_sha)

    async def _refuse(self, claimed: Task, previous: TaskState, actor: str, exc: Exception) -> NoReturn:
        """The host or git refused the merge: the claim goes back, the thread and the clicker hear why."""
        reason = _reason(exc)
        if isinstance(exc, NotMergeable):
            reason = f"GitHub will not merge it ({reason}): conflicts with its base, required checks or reviews"
        elif isinstance(exc, HeadChanged):
            reason = f"{reason} (someone pushed to the pull request's branch)"
        await self.engine.merging.release_claim(claimed, previous, actor, f"merge refused: {reason}", tell=reason)
        raise UserError(f"Nothing was merged: {reason}.") from exc

    async def _finish_merge(self, claimed: Task, pull: PullRequest, commit: str, actor: str,
                            merged_head: str) -> Task:
        """The pull request was merged (with `merged_head` as its head): the task is MERGED and its worktree
        goes. Commits of the task's branch that the merge did not hold (a follow-up that ended after a
        person merged on the website) keep the branch, and the thread says so."""
        engine = self.engine
        preset = engine.presets.get(claimed.preset)
        keep_branch = bool(preset and preset.keep_branch)
        left_out = await self._left_out(claimed, merged_head)
        if left_out is not False:
            keep_branch = True
            await engine.store.add_event(claimed.id, BOT_ACTOR, BRANCH_KEPT, {"branch": claimed.branch,
                                                                              "why": "not in the merged head"})
            said = "without the task's latest commits" if left_out else "from a head this clone does not have"
            engine.publish(Milestone(claimed, "pr_left_out", f"{pull.label} was merged {said}; the branch "
                                                             f"`{claimed.branch}` is kept.", ok=False))
        # the task first: a restart between the two finds the record still open, asks the host, and
        # finishes nothing twice (the task is merged already)
        merged = await engine.transitions.transition(claimed.id, MERGED, actor, expect={MERGING}, closed_by=actor,
                                                     merge_commit=commit or None)
        await engine.store.save_pull(replace(pull, state=PullState.MERGED, merged_by=actor, merge_commit=commit))
        if merged is None:
            return await engine.get(claimed.id)
        await engine.cleanup.teardown(merged, actor)
        await engine.cleanup.remove_worktree(merged, keep_branch=keep_branch)
        await engine.hooks_dispatch("merged", merged, {"commit": commit, "strategy": preset.merge if preset else None,
                                                       "pull_request": pull.url})
        engine.workers.background(self._after_merge(merged, pull, keep_branch=keep_branch))
        return merged

    async def _left_out(self, task: Task, merged_head: str) -> bool | None:
        """Does the task's branch hold commits that the merged head did not? None: cannot be told."""
        if not task.branch:
            return False
        repo = self.engine.repo_path(task.repo)
        try:
            tip = await gitrefs.branch_commit(repo, task.branch, "branch")
        except GitError:
            return False  # the branch is gone: nothing is left on it
        if tip == merged_head:
            return False
        if not merged_head:
            return None
        try:
            return not await gitrefs.is_ancestor(repo, tip, merged_head)
        except GitError:
            return None  # a head this clone lacks (someone pushed on the host)

    async def _after_merge(self, task: Task, pull: PullRequest, keep_branch: bool) -> None:
        """The merged pull request's branch goes on the host; the local base follows the host's."""
        if not keep_branch:
            with contextlib.suppress(ForgeError):
                await self.forge().delete_branch(pull.slug, pull.head_branch)
        await self.catch_up(task)

    async def catch_up(self, task: Task) -> bool:
        """Fetch the base and fast-forward the local base to it when it is behind (its checkout brought
        along); the open reviews on it are looked at again. True when the local base moved."""
        engine = self.engine
        base = task.base_branch
        if not base:
            return False
        repo = engine.repo_path(task.repo)
        try:
            remote = self._remote(task.repo)
            tip = await gitremote.fetch_branch(repo, remote, base)
            local = await gitrefs.branch_commit(repo, base, "base branch")
            if tip is None or tip == local or not await gitrefs.is_ancestor(repo, local, tip):
                return False  # nothing new, or local has commits the host lacks: local stays as it is
            # "rebase" of a branch the base is an ancestor of is a fast-forward
            await gitmerge.merge(repo, f"{remote}/{base}", base, strategy="rebase",
                                 source_ref=gitremote.tracking_ref(remote, base))
        except (ForgeError, GitError) as exc:
            log.warning("task %s: local %s not brought up to the merged pull request: %s", task.id, base, _reason(exc))
            await engine.store.add_event(task.id, BOT_ACTOR, "base_not_updated", {"reason": _reason(exc)})
            return False
        engine.reviews.base_moved(task.repo, base, task.id)
        return True

    async def settle_merge(self, task: Task, previous: TaskState, actor: str) -> bool:
        """A merge through the pull request was interrupted (restart): merged on the host -> finish it;
        else back to `previous`. False when the task has no pull request (a local merge: settle as such)."""
        pull = await self.engine.store.get_pull(task.id)
        if pull is None or pull.state == PullState.CLOSED:
            return False
        if pull.state == PullState.MERGED:  # recorded by an older release before the task moved
            await self._finish_merge(task, pull, pull.merge_commit or "", actor, pull.head_sha)
            return True
        try:
            remote = await self.forge().get_pull(pull.slug, pull.number)
        except ForgeError as exc:
            log.warning("task %s: cannot tell whether %s was merged: %s", task.id, pull.label, exc.reason)
            return True  # the claim stays; reconcile looks again
        if remote.merged:
            await self._finish_merge(task, pull, remote.merge_commit or "", actor, remote.head_sha)
        else:
            await self.engine.transitions.transition(task.id, previous, BOT_ACTOR, expect={MERGING},
                                                     merge_commit=None,
                                                     reason="the merge was interrupted; nothing was merged")
        return True

    async def close_for_discard(self, task: Task, actor: str) -> None:
        """A discarded task's open pull request is closed and its branch deleted on the host; a failure
        is said in the thread (the task is discarded all the same)."""
        async with self._locked(task.id):  # a pull request being opened right now is closed too
            pull = await self.engine.store.get_pull(task.id)
        if pull is None or pull.state != PullState.OPEN:
            return
        try:
            forge = self.forge()
            await forge.close_pull(pull.slug, pull.number)
            await self.engine.store.save_pull(replace(pull, state=PullState.CLOSED))
            await forge.delete_branch(pull.slug, pull.head_branch)
        except ForgeError as exc:
            self.engine.publish(Milestone(task, "pr_close_failed", f"Could not close {pull.label} on GitHub: "
                                                                   f"{exc.reason}; close it there.", ok=False))
            return
        await self.engine.store.add_event(task.id, actor, "pr_closed", {"number": pull.number})

    async def let_go(self, task: Task) -> None:
        """A pruned task's open pull request stays open on the host, its branch there with it; the bot
        stops following it (its watcher ends with the task) and says so."""
        pull = await self.engine.store.get_pull(task.id)
        if pull is not None and pull.state == PullState.OPEN:
            self.engine.publish(Milestone(task, "pr_let_go", f"Pull request {pull.label} stays open on GitHub "
                                                             f"with the work; the bot no longer follows it: {pull.url}"))

    async def fix_ci(self, task_id: str, actor: str) -> Task:
        """Send the failing checks' output to the agent as a follow-up."""
        pull = await self.engine.store.get_pull(task_id)
        failing = pull.failing() if pull is not None and pull.state == PullState.OPEN else ()
        if pull is None or not failing:
            raise UserError(f"Task {task_id} has no failing check on an open pull request right now.")
        lines = [f"The CI checks of pull request {pull.label} failed on commit {pull.head_sha[:12]}:"]
        each = max(500, FIX_CI_CHARS // len(failing))  # many failing checks share the prompt's room
        for check in failing[:40]:
            said = check.summary.strip()[:each] or "(no output was given)"
            lines.append(f"\n## {first_line(check.name, 120)}\n{said}")
        if len(failing) > 40:
            lines.append(f"\n(and {len(failing) - 40} more failing checks)")
        lines.append("\nFind and fix what makes these checks fail, run them locally where you can, and commit.")
        return await self.engine.followup(task_id, "\n".join(lines), actor)

    async def close(self) -> None:
        if self._forge is not None:
            await self._forge.close()


def _body(task: Task) -> str:
    return (f"{task.prompt}\n\n---\nOpened by superset-bot for task `{task.id}`, requested by {task.requester}. "
            "Merge or discard it from the task's Slack thread; follow-ups push here.")


def _reason(exc: Exception) -> str:
    text = getattr(exc, "reason", None) or str(exc)
    return gitremote.strip_credentials(str(text)).rstrip(".")
