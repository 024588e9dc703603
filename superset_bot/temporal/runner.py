"""The Temporal runner, the bot's side: a task's turns go to worker hosts as workflows, their
heartbeats come back as the same events a local agent makes, and the branch a host pushed is fetched
into the bot's repo, where the review, merge and discard work on it as on a local task's.

The task row says which turn is under way (`turn`, the workflow id) and where its worktree lives
(`host`); the workflow holds the rest, so a bot restart follows the same turn again. What is done to
a turn from outside (cancel, retry on another host) is a signal to its workflow.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import ActivityFailureError, Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from superset_bot.agents.formats import AgentParser, Progress, make_parser
from superset_bot.domain.events import HOST_LOST, Milestone, OutputLines, ProgressChanged
from superset_bot.domain.logs import LogChunk
from superset_bot.domain.progress import TAIL_LINES, ProgressSnapshot
from superset_bot.domain.task import encode_progress
from superset_bot.engine.errors import UserError
from superset_bot.engine.runners import TEMPORAL
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.git import merge as gitmerge
from superset_bot.git import naming as gitnaming
from superset_bot.git.commands import GitError, run_git
from superset_bot.git.refs import branch_exists, default_branch, is_ancestor, rev_parse
from superset_bot.git.remote import (
    FetchError,
    PushError,
    delete_branch,
    fetch_branch,
    push_branch,
    strip_credentials,
)
from superset_bot.store import (
    ACTIVE_STATES,
    CANCELLED,
    CLOSED_STATES,
    FAILED,
    PREPARING,
    QUEUED,
    REVIEWABLE_STATES,
    RUNNING,
    Task,
)
from superset_bot.temporal import wire

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)

FETCH_RETRIES = (1.0, 3.0, 0.0)  # seconds after each failed fetch of a finished turn's branch
LINES_EVERY = 1.0  # seconds between reads of a running agent's new lines from its host
LINES_WAIT = 5.0  # seconds a host gets to send them
LINES_BACKOFF = 10.0  # seconds before a host that did not send them is asked again
LINES_READ = 64 * 1024  # bytes of new lines one read brings at most (a chattier agent shows its latest)
OUTPUT_SHOWN = 200  # lines one output event carries
LOG_WAIT = 20.0  # seconds a host gets to answer for a piece of a log
WATCH_EVERY = 0.5  # seconds between looks at a running turn's last heartbeat
RETRY_EVERY = 2.0  # seconds between tries while the Temporal server does not answer
DEFAULT_REMOTE = "origin"


class Unreachable(Exception):
    """The Temporal server did not answer."""


class TemporalRunner:
    """Sends tasks' turns to worker hosts and follows them; one per bot, made by the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self._client: Client | None = None
        self._connecting = asyncio.Lock()
        self._said_down: set[str] = set()  # tasks told the Temporal server does not answer
        self._said_lost: dict[str, str] = {}  # turn -> the host it was said to have lost

    async def client(self) -> Client:
        async with self._connecting:
            if self._client is None:
                try:
                    self._client = await Client.connect(self.settings.temporal_address,
                                                        namespace=self.settings.temporal_namespace)
                except RuntimeError as exc:  # the SDK's connect error
                    raise Unreachable(str(exc)) from exc
            return self._client

    def remote_of(self, repo: str) -> str:
        return self.settings.remote_for(repo) or DEFAULT_REMOTE

    # driving

    async def drive(self, task_id: str, followup: str | None = None) -> None:
        """Send the queued task's next turn to a host (or find the one under way) and follow it to its review."""
        engine = self.engine
        task = await engine.store.get_task(task_id)
        if task is None or task.state not in ACTIVE_STATES:
            return
        if task.state == QUEUED:
            dispatched = await self._dispatch(task, followup or task.pending_prompt)
            if dispatched is None:
                return
            task = dispatched
        try:
            await self._start(task)
        except _Settled:
            return
        await self._follow(task)

    async def _dispatch(self, task: Task, followup: str | None) -> Task | None:
        """Decide the turn (its start commit, the task's branch) and store it before any host hears of it."""
        engine = self.engine
        repo = engine.repo_path(task.repo)
        run = task.runs + 1
        changes: dict[str, Any] = {"runs": run, "turn": wire.turn_id(task.id, run), "runner": TEMPORAL,
                                   "pending_prompt": followup}
        try:
            await self._remote_url(task)
            if task.branch is not None:  # a follow-up: from the branch as the last turn left it on the remote
                await self.catch_up(task)
            if task.branch is None:  # its first turn: the base as on one machine, and the task's branch name
                base_branch = task.base_branch or await default_branch(repo)
                start = task.base_commit or (await engine.bases.start_point(task.repo, base_branch)).commit
                branch = gitnaming.branch_name(task.id, task.prompt)
                # the task's branch is made here, at its start, and pushed: the hosts fetch the start from
                # it (the local base may hold commits the remote has not: merges delivered locally)
                await run_git(repo, "update-ref", f"refs/heads/{branch}", start, bot_write=True)
                try:
                    await push_branch(repo, self.remote_of(task.repo), branch, force=True)
                except PushError:
                    await run_git(repo, "update-ref", "-d", f"refs/heads/{branch}", check=False, bot_write=True)
                    raise
                changes.update(branch=branch, base_branch=base_branch, base_commit=start)
        except UserError as exc:
            await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={QUEUED}, reason=str(exc))
            return None
        except FetchError as exc:
            await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={QUEUED},
                                                reason=f"could not fetch the task's branch from the remote the worker "
                                                       f"hosts push to (its last turn's work is there): {exc}")
            return None
        except (GitError, PushError) as exc:
            await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={QUEUED},
                                                reason=f"could not give the task its branch on the remote the "
                                                       f"worker hosts use: {exc}")
            return None
        moved = await engine.transitions.transition(task.id, PREPARING, BOT_ACTOR, expect={QUEUED}, **changes)
        if moved is None:
            return None
        if run == 1:
            await engine.hooks_dispatch("task_created", moved)
        where = f"worker host `{moved.host}`" if followup and moved.host else "the worker hosts"
        engine.publish(Milestone(moved, "dispatched", f"Sent to {where} (Temporal queue "
                                                      f"`{self.settings.temporal_task_queue}`)."))
        return moved

    async def catch_up(self, task: Task) -> str | None:
        """Fetch the task's branch as its hosts last pushed it and move the local branch there (a turn whose
        fetch failed is caught up by the next look); the branch's commit. Raises FetchError, GitError."""
        assert task.branch
        repo = self.engine.repo_path(task.repo)
        there = await fetch_branch(repo, self.remote_of(task.repo), task.branch)
        if there is None:
            return None
        here = await _head_of(repo, task.branch)
        if here != there and (here is None or await is_ancestor(repo, here, there)):
            await run_git(repo, "update-ref", f"refs/heads/{task.branch}", there, *([here] if here else []),
                          bot_write=True)
        return there

    async def _turn_input(self, task: Task) -> wire.TurnInput:
        """The turn the stored task describes: the same input however often it is rebuilt."""
        assert task.branch and task.base_branch and task.base_commit
        repo = self.engine.repo_path(task.repo)
        url = await self._remote_url(task)
        followup = task.pending_prompt if task.runs > 1 else None
        start = task.base_commit
        if task.runs > 1:  # a follow-up starts where the last turn left the branch
            start = await rev_parse(repo, f"refs/heads/{task.branch}")
        return wire.TurnInput(
            # the hosts use credentials of their own: none of the bot's goes into the workflow's history
            task_id=task.id, run=task.runs, repo=task.repo, remote_url=strip_credentials(url), prompt=task.prompt,
            preset=task.preset, requester=task.requester, branch=task.branch, base_branch=task.base_branch,
            base_commit=task.base_commit, start=start, followup=followup,
            session_id=task.session_id if followup else None, host=task.host if followup else None,
            heartbeat_s=self.settings.temporal_heartbeat,
        )

    async def _remote_url(self, task: Task) -> str:
        """The URL of the repo's remote, which its worker hosts clone from and push to. Raises UserError."""
        remote = self.remote_of(task.repo)
        url = await run_git(self.engine.repo_path(task.repo), "remote", "get-url", "--", remote, check=False)
        if url.returncode != 0 or not url.stdout.strip():
            raise UserError(f"{task.repo} has no remote `{remote}`: worker hosts clone from the repo's remote and "
                            "push the task's branch there (set SUPERSET_REMOTE or SUPERSET_REPO_REMOTES)")
        return url.stdout.strip()

    async def _start(self, task: Task) -> None:
        """Start the task's turn workflow unless it is already there (a restart between store and start)."""
        assert task.turn
        try:
            turn = await self._turn_input(task)
        except (UserError, GitError) as exc:
            if await self._exists(task.turn):
                return  # started before a restart: it goes on without the input being made again
            await self._fail(task, str(exc))
            raise _Settled from None
        while True:
            try:
                client = await self.client()
                await client.start_workflow(wire.TURN_WORKFLOW, turn, id=task.turn,
                                            task_queue=self.settings.temporal_task_queue,
                                            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
                break
            except WorkflowAlreadyStartedError:
                break
            except (Unreachable, RPCError) as exc:
                if isinstance(exc, RPCError) and exc.status not in _DOWN:
                    raise
                await self._server_down(task, exc)
        self._server_back(task)

    async def _exists(self, turn: str) -> bool:
        try:
            await (await self.client()).get_workflow_handle(turn).describe()
            return True
        except (Unreachable, RPCError):
            return False

    async def _follow(self, task: Task) -> None:
        """Relay the turn's heartbeats until its workflow ends, then settle the task from its result."""
        seen = _Seen()
        try:
            await self._follow_with(task, seen)
        finally:
            if seen.reader is not None:
                seen.reader.cancel()

    async def _follow_with(self, task: Task, seen: _Seen) -> None:
        assert task.turn
        client = await self.client()
        handle: WorkflowHandle[Any, wire.TurnResult] = client.get_workflow_handle(task.turn,
                                                                                    result_type=wire.TurnResult)
        while True:
            waiter = asyncio.create_task(handle.result())
            try:
                while not waiter.done():
                    await asyncio.wait({waiter}, timeout=WATCH_EVERY)
                    if not waiter.done():
                        try:
                            task = await self._look(task, handle, seen)
                        except asyncio.CancelledError:
                            raise
                        except Exception:  # a look that broke must not end the turn's follower: its result settles it
                            log.exception("task %s: could not relay the turn's heartbeat", task.id)
                result = waiter.result()
                break
            except WorkflowFailureError as exc:
                await self._fail(task, f"the worker host could not run it: {_root_cause(exc)}")
                return
            except RPCError as exc:
                if exc.status not in _DOWN:
                    raise
                # the long poll for the result broke: the looks at the heartbeats say whether the server
                # is away (a poll cut by the server's restart would otherwise say it twice)
                await asyncio.sleep(RETRY_EVERY)
            finally:
                waiter.cancel()
        self._server_back(task)
        lost = self._said_lost.pop(task.turn or "", None)
        if lost is not None and lost == result.host and result.head is not None:
            self.engine.publish(Milestone(task, "host_back", f"Worker host `{lost}` answered again."))
        await self._settle(task, result, seen)

    async def _look(self, task: Task, handle: WorkflowHandle[Any, wire.TurnResult], seen: _Seen) -> Task:
        """Read the turn's last heartbeat from the server and pass on what is new in it."""
        try:
            described = await handle.describe()
        except RPCError as exc:
            if exc.status not in _DOWN:
                raise
            await self._server_down(task, exc, wait=False)
            return task
        self._server_back(task)
        turns = [p for p in described.raw_description.pending_activities if p.activity_type.name == wire.RUN_TURN]
        if not turns:
            seen.waiting_since = None  # (a move: the next host's wait counts from when it has the turn)
            if task.state == PREPARING:  # no host has it yet (no worker may even run the workflow)
                await self._placing(task, seen)
        else:
            seen.placing_since, seen.said_placing = None, False
        for pending in turns:
            if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED:
                continue  # an attempt being given up (moved elsewhere): the new one is what the thread follows
            failure = pending.last_failure
            if failure.message and not failure.HasField("timeout_failure_info") and \
                    failure.message not in seen.failures:
                seen.failures.add(failure.message)  # not a silent host: an error on it, said once
                self.engine.publish(Milestone(task, "turn_failing", (
                    f"The turn failed on worker host `{task.host or '?'}` and is tried again: "
                    f"{strip_credentials(failure.message)[:500]}"), ok=False))
            if pending.heartbeat_details.payloads:
                converter = (await self.client()).data_converter
                beats = await converter.decode(pending.heartbeat_details.payloads, [wire.Beat])
                task = await self._relay(task, beats[0], seen)
            waiting = pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
            if not waiting:
                seen.waiting_since = None
            elif seen.waiting_since is None:
                seen.waiting_since = time.monotonic()
            # an attempt after a heartbeat timeout, or a turn its host has not picked up for a while (a
            # follow-up sent to a host that is already gone never starts at all)
            gone = waiting and (pending.attempt > 1 or time.monotonic() - (seen.waiting_since or 0.0) >
                                max(10.0, 2 * self.settings.temporal_heartbeat))
            if gone and task.turn not in self._said_lost:
                host = task.host or "its host"
                self._said_lost[task.turn or ""] = host
                self.engine.publish(Milestone(task, HOST_LOST, (
                    f"Worker host `{host}` stopped answering (no heartbeat for "
                    f"{self.settings.temporal_heartbeat:g} s). The task resumes when the host is back; or retry it "
                    "on another host, from its branch as last pushed."), ok=False))
                await self.engine.store.add_event(task.id, BOT_ACTOR, "host_lost", {"host": host, "turn": task.turn})
            elif not gone and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and \
                    task.turn in self._said_lost and self._said_lost[task.turn] == task.host:
                del self._said_lost[task.turn]
                self.engine.publish(Milestone(task, "host_back", f"Worker host `{task.host}` is back; the turn goes on."))
        return task

    @property
    def _placing_notice(self) -> float:
        """Seconds without a host taking a turn before its thread is told: three heartbeats, 10 s at least."""
        return max(10.0, 3 * self.settings.temporal_heartbeat)

    async def _placing(self, task: Task, seen: _Seen) -> None:
        """No host has taken the turn yet: after a while, the thread hears that it waits and why it may."""
        if seen.placing_since is None:
            seen.placing_since = time.monotonic()
        elif not seen.said_placing and time.monotonic() - seen.placing_since > self._placing_notice:
            seen.said_placing = True
            queue = self.settings.temporal_task_queue
            self.engine.publish(Milestone(task, "no_host", (
                f"No worker host has taken this task for {self._placing_notice:g} s: every host is busy, or none runs on "
                f"queue `{queue}` (`superset-bot worker` with SUPERSET_TEMPORAL_TASK_QUEUE={queue}). It waits, "
                "and starts when one has room."), ok=False))

    async def _relay(self, task: Task, beat: wire.Beat, seen: _Seen) -> Task:
        """A heartbeat as the events a local agent makes: milestones, output lines, progress, the move to running."""
        engine = self.engine
        if task.host != beat.host:
            task = await engine.store.update_task(task.id, host=beat.host)
        if beat.attempt != seen.attempt:  # another attempt (a move, a host back): it counts from 1 again
            seen.attempt, seen.milestones, seen.lines = beat.attempt, -1, 0
        await self._milestones(task, beat.milestones, seen)
        if beat.lines_seen > seen.lines and (seen.reader is None or seen.reader.done()):
            # in the background: a slow host (or one gone) never holds up the looks at the turn
            seen.reader = asyncio.create_task(self._new_lines(task, beat.lines_seen, seen))
        if beat.status == "running" and task.state == PREPARING:
            moved = await engine.transitions.transition(
                task.id, RUNNING, BOT_ACTOR, expect={PREPARING}, started_at=engine.clock(), pending_prompt=None,
                finished_at=None, exit_code=None, log_pos=beat.log_pos, host=beat.host)
            if moved is not None:
                task = moved
                await engine.hooks_dispatch("agent_started", task)
        if beat.progress and (beat.progress != seen.progress or seen.tail_changed):
            seen.progress, seen.tail_changed = beat.progress, False
            snapshot = ProgressSnapshot.from_dict({**beat.progress, "tail": list(seen.tail)})
            engine.publish(ProgressChanged(task, snapshot))
            task = await engine.store.update_task(task.id, progress=encode_progress(snapshot), log_pos=beat.log_pos)
        return task

    async def _new_lines(self, task: Task, written: int, seen: _Seen, *, last: bool = False,
                         host: str | None = None) -> None:
        """The agent's new lines, read from its host's log (heartbeats carry no log text), at most once a
        second per task (`last`: once more as the turn ends, with a last line that has no newline); a
        reader that fell behind gets the last LINES_READ bytes; a host that does not answer is asked
        again LINES_BACKOFF later."""
        if not last and time.monotonic() - seen.lines_read_at < LINES_EVERY:
            return
        seen.lines_read_at = time.monotonic()
        try:
            chunk = await self._read(task, seen.log_at, LINES_READ, follow=True, whole=not last, host=host,
                                     wait=LINES_WAIT)
            if seen.log_where and chunk.where != seen.log_where:  # another run's log (a move): from its start
                seen.log_at, seen.parsed = 0, None
                chunk = await self._read(task, 0, LINES_READ, follow=True, whole=not last, host=host,
                                         wait=LINES_WAIT)
        except UserError as exc:
            log.debug("task %s: no new lines: %s", task.id, exc)
            seen.lines_read_at = time.monotonic() + LINES_BACKOFF - LINES_EVERY
            return
        seen.log_where = chunk.where
        lines = chunk.text.splitlines()
        seen.log_at = max(seen.log_at, chunk.end)
        seen.lines = written
        if lines:
            self.engine.publish(OutputLines(task, tuple(lines[-OUTPUT_SHOWN:]), "agent",
                                            max(0, len(lines) - OUTPUT_SHOWN)))
            # the card's tail as a local run shows it: the lines as the preset's format reads them
            # (Claude Code's and Codex's are JSON events, not lines to show)
            if seen.parsed is None:
                preset = self.engine.presets.get(task.preset)
                seen.parsed = (make_parser(preset.agent.format if preset else "plain"), Progress())
            parser, progress = seen.parsed
            for line in lines:
                for event in parser(line):
                    progress.apply(event)
            seen.tail.clear()
            seen.tail.extend(progress.snapshot().tail)
            seen.tail_changed = True

    async def _read(self, task: Task, offset: int, limit: int, follow: bool = False, whole: bool = False,
                    host: str | None = None, wait: float = LOG_WAIT) -> LogChunk:
        """A piece of the log of the task's last run on its host (a standalone activity). Raises UserError."""
        host = host or task.host
        if not host:
            raise UserError(f"Task {task.id} has not reached a worker host yet: there is no log.")
        try:
            client = await self.client()
            return await client.execute_activity(
                wire.READ_LOG, wire.LogRequest(task.id, offset, limit, follow, whole), result_type=LogChunk,
                id=f"log-{task.id}-{uuid.uuid4().hex[:12]}",
                task_queue=wire.host_queue(self.settings.temporal_task_queue, host),
                schedule_to_close_timeout=timedelta(seconds=wait), retry_policy=RetryPolicy(maximum_attempts=1))
        except (Unreachable, RPCError) as exc:
            raise UserError(f"Task {task.id}'s log is on worker host `{task.host}`, and the Temporal server does "
                            f"not answer ({exc}).") from exc
        except ActivityFailureError as exc:
            raise UserError(f"Task {task.id}'s log is on worker host `{task.host}`, which did not give it: "
                            f"{_root_cause(exc)}.") from exc

    async def _details(self, task: Task, host: str) -> wire.TurnDetails | None:
        """How the turn ended on `host`, with its text (final message, checks); None when the host does not say."""
        try:
            client = await self.client()
            return await client.execute_activity(
                wire.READ_TURN, task.id, result_type=wire.TurnDetails, id=f"turn-details-{task.id}-{uuid.uuid4().hex[:12]}",
                task_queue=wire.host_queue(self.settings.temporal_task_queue, host),
                schedule_to_close_timeout=timedelta(seconds=LINES_WAIT * 2), retry_policy=RetryPolicy(maximum_attempts=1))
        except (Unreachable, RPCError, ActivityFailureError) as exc:
            log.warning("task %s: host %s did not say how its turn ended: %s", task.id, host, exc)
            return None

    async def _milestones(self, task: Task, milestones: list[list[Any]], seen: _Seen) -> None:
        """Publish the host's milestones the thread has not had; how far it got is stored (a restarted
        bot does not say them twice)."""
        if seen.milestones < 0:
            seen.milestones = int(await self.engine.store.get_meta(f"said:{task.turn}:{seen.attempt}") or 0)
        before = seen.milestones
        for number, kind, text, ok in milestones:
            if number > seen.milestones:
                seen.milestones = number
                self.engine.publish(Milestone(task, str(kind), str(text), ok=bool(ok)))
        if seen.milestones != before:
            await self.engine.store.set_meta(f"said:{task.turn}:{seen.attempt}", str(seen.milestones))

    async def _settle(self, task: Task, result: wire.TurnResult, seen: _Seen) -> None:
        """The turn ended on its host: fetch its branch, store its end, post the review."""
        engine = self.engine
        current = await engine.store.get_task(task.id)
        if current is None or current.state not in (PREPARING, RUNNING):
            return
        task = current
        if result.attempt != seen.attempt:
            seen.attempt, seen.milestones = result.attempt, -1
        await self._milestones(task, result.milestones, seen)
        fetched = None
        if result.head and task.branch:
            for wait in FETCH_RETRIES:
                try:
                    fetched = await self.catch_up(task)
                    break
                except (FetchError, GitError) as exc:
                    log.warning("task %s: could not fetch its branch: %s", task.id, exc)
                    await engine.store.add_event(task.id, BOT_ACTOR, "fetch_failed", {"error": str(exc)})
                    await asyncio.sleep(wait)
        state = result.state if result.state in REVIEWABLE_STATES else FAILED
        reason = result.reason
        if result.head is None and result.pushed and state != CANCELLED:
            reason = f"{reason or state}; its work could not be pushed: {result.pushed}"
        elif result.head and not fetched:
            reason = f"{reason or state}; its branch could not be fetched from the remote"
        actor = engine.lifecycle.cancel_requests.pop(task.id, BOT_ACTOR)
        if state == CANCELLED and actor != BOT_ACTOR:
            reason = f"cancelled by {actor}" + (f" ({reason})" if reason and "host" in reason else "")
        # the result carries no log text: its final message, last lines and checks come from the host
        if seen.reader is not None:
            seen.reader.cancel()
            await asyncio.gather(seen.reader, return_exceptions=True)
        if result.host and result.head is not None:  # the host answered just now: its last lines
            await self._new_lines(task, seen.lines, seen, last=True, host=result.host)
        details = await self._details(task, result.host) if result.host else None
        snapshot = ProgressSnapshot.from_dict(details.progress if details else {**result.progress,
                                                                                 "tail": list(seen.tail)})
        if task.state == PREPARING and state not in (FAILED, CANCELLED):  # the agent ran between two looks
            moved = await engine.transitions.transition(task.id, RUNNING, BOT_ACTOR, expect={PREPARING},
                                                        started_at=result.started_at or engine.clock(),
                                                        pending_prompt=None, host=result.host)
            task = moved or task
        moved = await engine.transitions.transition(
            task.id, state, actor, expect={PREPARING, RUNNING}, reason=reason, exit_code=result.exit_code,
            finished_at=engine.clock(), pid=None, progress=encode_progress(snapshot), pending_prompt=None,
            session_id=result.session_id or task.session_id, host=result.host or task.host)
        if moved is None:
            return
        progress = Progress.from_snapshot(snapshot)
        engine.publish(ProgressChanged(moved, snapshot))
        await engine.spending.record(moved, moved.runs, progress)
        await engine.hooks_dispatch("agent_finished", moved, {"state": state, "host": result.host})
        if fetched:
            await engine.reviews.post(moved, progress, details.checks if details else None)

    async def _fail(self, task: Task, reason: str) -> None:
        await self.engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={QUEUED, PREPARING, RUNNING},
                                                 reason=reason, finished_at=self.engine.clock(), pid=None)

    async def _server_down(self, task: Task, exc: Exception, wait: bool = True) -> None:
        """Say once in the task's thread that dispatch waits for the Temporal server; wait a little."""
        if task.id not in self._said_down:
            self._said_down.add(task.id)
            log.warning("task %s: the Temporal server does not answer: %s", task.id, exc)
            self.engine.publish(Milestone(task, "temporal_down", (
                f"The Temporal server at {self.settings.temporal_address} does not answer; this task waits for it "
                "and goes on by itself when it is back (its agent, if running, is not affected)."), ok=False))
        if wait:
            await asyncio.sleep(RETRY_EVERY)

    def _server_back(self, task: Task) -> None:
        if task.id in self._said_down:
            self._said_down.discard(task.id)
            self.engine.publish(Milestone(task, "temporal_back", "The Temporal server answers again; the task goes on."))

    # from outside a turn

    async def cancel(self, task: Task, actor: str) -> Task:
        """Ask the turn's workflow to stop the agent; wait until the task has settled."""
        engine = self.engine
        engine.lifecycle.cancel_requests[task.id] = actor
        if task.state == QUEUED or not task.turn:
            driver = engine.workers.driver_of(task.id)
            if driver is not None and not driver.cancelling():
                driver.cancel()
                await asyncio.gather(driver, return_exceptions=True)
            else:
                await engine.lifecycle.cancelled_before_agent(task.id)
            return await engine.get(task.id)
        try:
            client = await self.client()
            await client.get_workflow_handle(task.turn).signal(wire.CANCEL_SIGNAL, actor)
        except RPCError as exc:
            engine.lifecycle.cancel_requests.pop(task.id, None)
            raise UserError(_signal_refused(task, exc, self.settings.temporal_address)) from exc
        except Unreachable as exc:
            engine.lifecycle.cancel_requests.pop(task.id, None)
            raise UserError(f"Task {task.id} could not be cancelled: the Temporal server at "
                            f"{self.settings.temporal_address} does not answer ({exc}). Try again when it is back.") from exc
        if not engine.is_driven(task.id):
            engine.workers.drive(task.id, engine.lifecycle.drive(task.id))
        return await engine.wait_for(task.id, REVIEWABLE_STATES | CLOSED_STATES, timeout=120)

    async def update_from_base(self, task: Task, target: str) -> list[str]:
        """Merge `target` into the task's branch here and push it; its host fast-forwards its worktree at the
        next turn. The files committed with conflict markers, for the agent (a follow-up) to resolve."""
        assert task.branch
        repo = self.engine.repo_path(task.repo)
        await self.catch_up(task)
        before = await rev_parse(repo, f"refs/heads/{task.branch}")
        merged, conflicts = await gitmerge.merge_into_branch(repo, task.branch, target)
        try:
            await push_branch(repo, self.remote_of(task.repo), task.branch)
        except PushError as exc:  # as it was: a branch here its hosts cannot fetch would fail its next turn
            await run_git(repo, "update-ref", f"refs/heads/{task.branch}", before, merged, bot_write=True)
            raise UserError(f"Task {task.id} could not be updated: its branch could not be pushed to the remote its "
                            f"worker hosts use ({exc}).") from exc
        return conflicts

    async def worktree_gone(self, task: Task) -> str | None:
        """A follow-up runs on the host's worktree, or from the branch elsewhere: the branch must be here."""
        if task.branch and await branch_exists(self.engine.repo_path(task.repo), task.branch):
            return None
        return f"Task {task.id} has no branch any more; spawn a new task instead."

    async def retry_elsewhere(self, task: Task, actor: str) -> Task:
        """The task's host is gone: run its turn again on another host, from its branch as last pushed."""
        if task.state not in (PREPARING, RUNNING) or not task.turn:
            raise UserError(f"Task {task.id} is {task.state}; only a turn under way can move to another host.")
        try:
            client = await self.client()
            handle = client.get_workflow_handle(task.turn)
            described = await handle.describe()
            # only a turn whose host is silent moves: an old button, or a second click, leaves a healthy one
            if not any(self._silent(pending) for pending in described.raw_description.pending_activities
                       if pending.activity_type.name == wire.RUN_TURN):
                raise UserError(f"Task {task.id}'s host `{task.host or '?'}` is answering; its turn stays there.")
            await handle.signal(wire.ELSEWHERE_SIGNAL)
        except RPCError as exc:
            raise UserError(_signal_refused(task, exc, self.settings.temporal_address)) from exc
        except Unreachable as exc:
            raise UserError(f"Task {task.id} could not be moved: the Temporal server does not answer ({exc}).") from exc
        await self.engine.store.add_event(task.id, actor, "retry_elsewhere", {"from": task.host})
        self._said_lost.pop(task.turn, None)
        self.engine.publish(Milestone(task, "retry_elsewhere",
                                      f"{actor} moved the task off `{task.host}`: it starts again on another host."))
        # its copy on the old host stays until the task closes: the turn may come back to that host (the
        # only one, or the first free), and then goes on there with the agent that ran on
        return task

    def _silent(self, pending: Any) -> bool:
        """A turn's activity waiting for its host, or whose host has not heartbeat for longer than allowed."""
        if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED:
            return True
        if not pending.HasField("last_heartbeat_time"):
            return False
        quiet = time.time() - pending.last_heartbeat_time.ToSeconds()
        return quiet > self.settings.temporal_heartbeat

    async def release(self, task: Task) -> None:
        """The task closed: its worktree on its host goes (when the host is reachable; later otherwise), and
        the branch the hosts pushed it on, unless the remote is where its work is delivered (push, pr)."""
        engine = self.engine
        preset = engine.presets.get(task.preset)
        if task.branch and engine.deliver_for(task) == "local" and not (preset and preset.keep_branch):
            try:
                await delete_branch(engine.repo_path(task.repo), self.remote_of(task.repo), task.branch)
            except (PushError, GitError) as exc:
                await engine.store.add_event(task.id, BOT_ACTOR, "cleanup_failed", {"error": str(exc)})
        hosts = {task.host} | {str(e.detail.get("from")) for e in await engine.store.events(task.id)
                               if e.action == "retry_elsewhere" and e.detail.get("from")}
        for host in sorted(h for h in hosts if h):  # every host that held a copy, its agent too if one still runs
            await self._drop(task, host)

    async def _drop(self, task: Task, host: str) -> None:
        """Have `host` remove its copy of the task (stopping its agent there if one still runs)."""
        try:
            client = await self.client()
            await client.start_workflow(wire.DROP_WORKFLOW, wire.DropInput(task.id, host),
                                        id=wire.drop_id(task.id, host), task_queue=self.settings.temporal_task_queue)
        except WorkflowAlreadyStartedError:
            pass
        except (Unreachable, RPCError) as exc:
            log.warning("task %s: its worktree on %s stays until removed by hand: %s", task.id, host, exc)

    async def read_log(self, task: Task, offset: int, limit: int) -> LogChunk:
        """A piece of the task's log from the host that ran its last turn, as a standalone activity: the
        text goes to the bot and into no workflow's history."""
        return await self._read(task, offset, limit)

    async def close(self) -> None:
        self._client = None


def _signal_refused(task: Task, exc: RPCError, address: str) -> str:
    """Why a signal to the task's turn did not go through, as the person who asked should hear it."""
    if exc.status == RPCStatusCode.NOT_FOUND:
        return (f"Task {task.id}'s turn is not on the Temporal server (not started yet, or just ended): look at its "
                "state and try again.")
    if exc.status in _DOWN:
        return f"The Temporal server at {address} does not answer ({exc.message}); try again when it is back."
    return f"The Temporal server refused it: {exc.message}"


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost failure of a workflow's (an activity's ApplicationError says what went wrong)."""
    while isinstance(getattr(exc, "cause", None), BaseException):
        exc = exc.cause  # type: ignore[attr-defined]
    return exc


async def _head_of(repo: Path, branch: str) -> str | None:
    try:
        return await rev_parse(repo, f"refs/heads/{branch}")
    except GitError:
        return None


class _Settled(Exception):
    """The turn ended before it started (its state says why)."""


class _Seen:
    """How much of a turn's heartbeats the thread has been shown."""

    def __init__(self) -> None:
        self.attempt = ""  # the attempt of the turn the counts are of
        self.log_at = 0  # where in the host's log the next read of new lines starts
        self.log_where = ""  # that log's path on its host
        self.lines_read_at = 0.0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)  # the agent's last lines, for the status card
        self.tail_changed = False
        self.reader: asyncio.Task[None] | None = None  # the read of new lines under way
        self.parsed: tuple[AgentParser, Progress] | None = None  # the lines read, as the preset's format reads them
        self.milestones = -1  # not read from the store yet
        self.lines = 0
        self.failures: set[str] = set()  # errors of the turn's attempts the thread was told of
        self.waiting_since: float | None = None
        self.placing_since: float | None = None  # since when placement looks for a host
        self.said_placing = False  # since when the turn waits for its host to pick it up
        self.progress: dict[str, Any] = {}


_DOWN = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
