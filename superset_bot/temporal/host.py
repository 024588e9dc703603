"""A worker host (`superset-bot worker`): an engine of its own with its clones, worktrees, presets and
logs, serving the turns the bot sends through Temporal.

Each turn is a task on this host's engine, under the bot's task id where it can be: prepared from
the commit the bot names (a clone of the repo's remote is made on first use), run by the ordinary
lifecycle (limits, sandbox, checks, work left uncommitted), relayed to the bot in heartbeats, and
its branch pushed to the remote under the bot's name for it. The agent is detached as on one
machine: a host killed mid-run finds it again when it starts, and the turn Temporal retries on the
host's queue follows it to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from superset_bot.agents.logs import read_chunk
from superset_bot.domain.events import (
    EngineEvent,
    Milestone,
    OutputLines,
    ProgressChanged,
    StateChanged,
)
from superset_bot.domain.logs import LogChunk
from superset_bot.engine.core import Engine
from superset_bot.engine.errors import UserError
from superset_bot.engine.recovery import RESTARTED_WHILE
from superset_bot.git.commands import GitError, run_git
from superset_bot.git.refs import is_ancestor, rev_parse
from superset_bot.git.remote import FetchError, PushError, push_branch, remote_branch, strip_credentials
from superset_bot.store import ACTIVE_STATES, CLOSED_STATES, FAILED, REVIEWABLE_STATES, Task
from superset_bot.temporal import wire

log = logging.getLogger(__name__)

SETTLED_POLL = 0.25  # seconds between looks at whether a turn's task has settled
BEAT_EVERY = 0.5  # seconds between heartbeats offered to the SDK (it sends at most one per throttle interval)
REMOTE = "origin"  # a clone's remote: the URL the bot gave
AVOIDED_FOR = 10  # placement attempts (about a second apart) a host a turn was moved off leaves to others


class TurnRelay:
    """What a turn's heartbeats carry, gathered from the host engine's events of one task."""

    def __init__(self, host: str, task_id: str, key: str = "") -> None:
        self.host = host
        self.task_id = task_id
        self.key = key  # this attempt of the turn: its milestones and lines are numbered from 1 in it
        self.status = "preparing"
        self.pid: int | None = None
        self.lines_seen = 0
        self.milestones: deque[list[Any]] = deque(maxlen=wire.MILESTONES_KEPT)
        self.said = 0
        self.progress: dict[str, Any] = {}

    def follow(self, task_id: str) -> None:
        self.task_id = task_id

    def __call__(self, event: EngineEvent) -> None:
        if event.task.id != self.task_id:
            return
        if isinstance(event, Milestone):
            self.said += 1
            self.milestones.append([self.said, event.kind, event.text, event.ok])
        elif isinstance(event, OutputLines) and event.source == "agent":
            self.lines_seen += len(event.lines) + event.dropped
        elif isinstance(event, ProgressChanged):
            self.progress = event.progress.to_dict()
        elif isinstance(event, StateChanged):
            self.status = "running" if event.task.state in ("running",) else \
                "finishing" if event.task.state not in ACTIVE_STATES else self.status
            self.pid = event.task.pid or self.pid

    def beat(self, log_pos: int = 0) -> wire.Beat:
        return wire.Beat(host=self.host, status=self.status, pid=self.pid, log_pos=log_pos,
                         lines_seen=self.lines_seen, milestones=list(self.milestones), progress=wire.bare(self.progress),
                         attempt=self.key)


class Clones:
    """This host's clones of the repos it has been sent work for, one per repo name."""

    def __init__(self, folder: Path, repos: dict[str, Path],
                 on_new: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.folder = folder
        self.repos = repos  # the host engine's SUPERSET_REPOS: each clone joins it once made
        self.on_new = on_new  # called with a repo's name once it is cloned here
        self._locks: dict[str, asyncio.Lock] = {}

    def has(self, repo: str) -> bool:
        return repo in self.repos

    async def ensure(self, repo: str, url: str, commit: str) -> Path:
        """The clone of `repo`, made from `url` if need be, holding `commit` (fetched if it does not)."""
        async with self._locks.setdefault(repo, asyncio.Lock()):
            path = self.folder / repo
            if not await asyncio.to_thread((path / ".git").is_dir):
                await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
                await run_git(self.folder, "clone", "--quiet", "--no-tags", "--", url, str(path))
            if not await _has_commit(path, commit):
                await run_git(path, "fetch", "--quiet", "--no-tags", "--prune", REMOTE, bot_write=True)
            if not await _has_commit(path, commit):
                raise ApplicationError(f"commit {commit[:12]} is not on {strip_credentials(url)}: the bot's task "
                                       "starts from a commit its worker hosts cannot fetch", type="TurnRefused",
                                       non_retryable=True)
            if repo not in self.repos:
                self.repos[repo] = path
                if self.on_new is not None:
                    await self.on_new(repo)
            return path


async def _has_commit(repo: Path, commit: str) -> bool:
    found = await run_git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False)
    return found.returncode == 0


class WorkerHost:
    """The activities of one worker host; `engine` is started and stopped by whoever made it."""

    def __init__(self, name: str, engine: Engine, clones: Clones) -> None:
        self.name = name
        self.engine = engine
        self.clones = clones

    def activities(self) -> list[Any]:
        return [self.place, self.run_turn, self.drop, self.read_log, self.read_turn]

    @activity.defn(name=wire.PLACE)
    async def place(self, want: wire.PlaceInput) -> str:
        """Take a new turn if this host has a free slot (asked on the queue of a repo it has cloned first)."""
        slots = self.engine.slots
        if self.name in want.avoid and activity.info().attempt <= AVOIDED_FOR:
            # the turn was moved off this host: another takes it if one can; else, after a while, this one
            raise ApplicationError(f"host {self.name} is to be avoided for this turn")
        if len(slots.holders) >= slots.limit:
            raise ApplicationError(f"host {self.name} has no free slot")
        return self.name

    @activity.defn(name=wire.RUN_TURN)
    async def run_turn(self, turn: wire.TurnInput) -> wire.TurnResult:
        engine = self.engine
        info = activity.info()
        relay = TurnRelay(self.name, turn.task_id, f"{info.activity_id}:{info.attempt}")
        unsubscribe = engine.subscribe(relay)
        beating = asyncio.create_task(self._beat(relay))
        try:
            try:
                try:
                    repo = await self.clones.ensure(turn.repo, turn.remote_url, turn.start)
                    task = await self._begin(turn, relay)
                except (GitError, UserError, OSError) as exc:
                    # said plainly and not retried: a clone the remote refuses, a follow-up this host
                    # refuses (its disk, its budget) would fail the same way every time
                    raise ApplicationError(f"host {self.name}: {strip_credentials(str(exc))}", type="TurnRefused",
                                           non_retryable=True) from None
                await self._settled(task.id)
            except asyncio.CancelledError:
                details = activity.cancellation_details()
                if details is None or not details.cancel_requested or activity.is_worker_shutdown():
                    # not a cancel of the task: this host stops, or the server gave this attempt up (no
                    # heartbeat reached it in time); the agent runs on, and the next attempt follows it
                    raise
                local = await self._local_id(turn.task_id)
                with contextlib.suppress(UserError):
                    await engine.cancel(local, turn.requester)
                await self._settled(local)
                repo = engine.repo_path(turn.repo)
            task = await engine.get(await self._local_id(turn.task_id))
            return await self._result(turn, task, repo, relay)
        finally:
            unsubscribe()
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _beat(self, relay: TurnRelay) -> None:
        while True:
            task = await self.engine.store.get_task(relay.task_id)
            activity.heartbeat(relay.beat(task.log_pos if task else 0))
            await asyncio.sleep(BEAT_EVERY)

    async def _local_id(self, task_id: str) -> str:
        """This host's task for the bot's `task_id` (its own id when the bot's was taken by an older copy)."""
        return await self.engine.store.get_meta(f"local:{task_id}") or task_id

    async def _begin(self, turn: wire.TurnInput, relay: TurnRelay) -> Task:
        """Start the turn on this host's engine, or find it started (a retried attempt)."""
        engine, store = self.engine, self.engine.store
        marker = f"turn:{wire.turn_id(turn.task_id, turn.run)}"
        local_id = await self._local_id(turn.task_id)
        relay.follow(local_id)
        task = await store.get_task(local_id)
        mark = await store.get_meta(marker)
        # begun by an earlier attempt of this turn (a follow-up is marked "pending" until it is queued)
        begun = task is not None and task.state not in CLOSED_STATES and (
            mark == local_id or (mark == f"pending:{local_id}" and task.state in ACTIVE_STATES))
        if task is not None and begun:
            if not (task.state == FAILED and (task.reason or "").startswith(RESTARTED_WHILE)):
                return task  # follow it
            # this host was killed while it prepared the worktree: that attempt left nothing to go on
            # from, and the retried turn starts again (as a copy of its own, below)
        elif (task is not None and turn.followup and task.state in REVIEWABLE_STATES
                and await self._caught_up(task, turn.start)):
            await store.set_meta(marker, f"pending:{local_id}")
            try:
                moved = await engine.followup(local_id, turn.followup, turn.requester)
            except UserError:  # refused here (its disk, its budget): not begun
                await store.set_meta(marker, "")
                raise
            await store.set_meta(marker, local_id)
            return moved
        if task is not None:  # an older copy here (its turn moved elsewhere meanwhile): put it away
            if task.state not in CLOSED_STATES:
                with contextlib.suppress(UserError):
                    await engine.discard(local_id, "bot")
            local_id = f"{turn.task_id}r{turn.run}a{activity.info().attempt}{activity.info().activity_id[-4:]}"
            relay.follow(local_id)
        fresh = Task(id=local_id, repo=turn.repo, prompt=turn.prompt, preset=turn.preset, requester=turn.requester,
                     base_branch=turn.base_branch, base_commit=turn.start, pending_prompt=turn.followup)
        task = await store.create_task(fresh, turn.requester, {"turn": wire.turn_id(turn.task_id, turn.run),
                                                               "from": "bot"})
        await store.set_meta(f"local:{turn.task_id}", local_id)
        await store.set_meta(marker, local_id)
        engine.workers.drive(local_id, engine.lifecycle.drive(local_id, followup=turn.followup))
        return task

    async def _caught_up(self, task: Task, start: str) -> bool:
        """Whether the task's worktree here is at `start`, fast-forwarding it there when the bot moved the
        branch on (it merged the base in); False when it went another way (another host's turn)."""
        if not task.branch or not task.worktree or not await asyncio.to_thread(Path(task.worktree).is_dir):
            return False
        head = await _head(self.engine.repo_path(task.repo), task.branch)
        if head == start:
            return True
        if head is None or not await is_ancestor(Path(task.worktree), head, start):
            return False
        moved = await run_git(Path(task.worktree), "merge", "--ff-only", "--quiet", start, check=False,
                              bot_write=True)
        return moved.returncode == 0

    async def _settled(self, task_id: str) -> None:
        """Wait until the task's turn has ended here: out of the active states, its driver done."""
        while True:
            task = await self.engine.store.get_task(task_id)
            if task is None or (task.state not in ACTIVE_STATES and not self.engine.is_driven(task_id)):
                return
            await asyncio.sleep(SETTLED_POLL)

    async def _result(self, turn: wire.TurnInput, task: Task, repo: Path, relay: TurnRelay) -> wire.TurnResult:
        """Push the task's branch under the bot's name for it, and say how the turn ended."""
        head = pushed = None
        if task.branch:
            try:
                # over the branch as this turn found it, only: another host's turn of the task (moved
                # here and back), or a person's push to its pull request, is never overwritten
                head = await push_branch(repo, REMOTE, task.branch, to=turn.branch, lease=turn.start)
            except (PushError, GitError) as exc:
                mine = await _head(repo, task.branch)
                try:
                    there = await remote_branch(repo, REMOTE, turn.branch)
                except FetchError:
                    there = None
                if mine is not None and there == mine:
                    head = mine  # pushed by an earlier attempt of this turn
                else:
                    pushed = strip_credentials(str(exc))
                    log.warning("task %s: could not push %s: %s", task.id, task.branch, pushed)
        else:
            pushed = "the turn never got a worktree"
        return wire.TurnResult(
            host=self.name, state=str(task.state), reason=task.reason, exit_code=task.exit_code, head=head,
            pushed=pushed, progress=wire.bare(task.progress_snapshot().to_dict()), session_id=task.session_id,
            started_at=task.started_at, finished_at=task.finished_at, milestones=list(relay.milestones),
            attempt=relay.key,
        )

    @activity.defn(name=wire.READ_LOG)
    async def read_log(self, want: wire.LogRequest) -> LogChunk:
        """A piece of the log of the task's last run on this host, redacted here: secrets never leave it."""
        task = await self.engine.store.get_task(await self._local_id(want.task_id))
        if task is None or not task.run_dir:
            raise ApplicationError(f"host {self.name} has no log of task {want.task_id}", type="NoLog",
                                   non_retryable=True)
        redactor = self.engine.env.redactor_for(self.engine.presets.get(task.preset))
        try:
            return await asyncio.to_thread(read_chunk, Path(task.run_dir) / "log", want.offset, want.limit, redactor,
                                           want.follow, want.whole)
        except OSError as exc:
            raise ApplicationError(f"host {self.name} cannot read the log: {exc.strerror or exc}", type="NoLog",
                                   non_retryable=True) from exc

    @activity.defn(name=wire.READ_TURN)
    async def read_turn(self, task_id: str) -> wire.TurnDetails:
        """How the task's last turn here ended, with the text a turn's result leaves out (redacted as stored)."""
        task = await self.engine.store.get_task(await self._local_id(task_id))
        if task is None:
            raise ApplicationError(f"host {self.name} has no task {task_id}", type="NoTask", non_retryable=True)
        review = task.review_data() or {}
        checks = review.get("checks")
        return wire.TurnDetails(task.progress_snapshot().to_dict(), checks if isinstance(checks, dict) else None)

    @activity.defn(name=wire.DROP)
    async def drop(self, drop: wire.DropInput) -> None:
        """The bot closed the task: remove its worktree and branch here."""
        local_id = await self._local_id(drop.task_id)
        task = await self.engine.store.get_task(local_id)
        if task is None or task.state in CLOSED_STATES:
            return
        if task.state in ACTIVE_STATES:
            with contextlib.suppress(UserError):
                await self.engine.cancel(local_id, "bot")
            await self._settled(local_id)
        with contextlib.suppress(UserError):
            await self.engine.discard(local_id, "bot")


async def _head(repo: Path, branch: str) -> str | None:
    try:
        return await rev_parse(repo, f"refs/heads/{branch}")
    except GitError:
        return None
