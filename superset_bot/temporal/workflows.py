"""The workflows worker hosts run: a task's turn (placed on a host, run there, heartbeating) and the
removal of a closed task's worktree. Deterministic code only: all I/O is in the activities
(temporal/host.py); the names they share are in temporal/wire.py.

A turn whose host stops heartbeating is retried on the same host's queue, so it resumes when the
host returns (its agent was detached and kept working); until then the bot may send
`retry_elsewhere`, and the turn starts again on another host from the branch as last pushed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from superset_bot.temporal import wire

PLACE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=0.2), backoff_coefficient=1.5,
                          maximum_interval=timedelta(seconds=2))
# a turn is retried on its own host's queue for as long as it takes the host to come back
TURN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2,
                         maximum_interval=timedelta(seconds=10), non_retryable_error_types=["TurnRefused"])
PREFER_CLONED = timedelta(seconds=2)  # how long placement waits for a host that has the repo cloned
TURN_LIMIT = timedelta(days=2)  # one attempt's bound; a dead host is noticed by its heartbeats long before


@workflow.defn(name=wire.TURN_WORKFLOW)
class TurnWorkflow:
    def __init__(self) -> None:
        self.host: str | None = None
        self.cancelled_by: str | None = None
        self.elsewhere = False

    @workflow.signal(name=wire.CANCEL_SIGNAL)
    def cancel(self, actor: str) -> None:
        self.cancelled_by = self.cancelled_by or actor

    @workflow.signal(name=wire.ELSEWHERE_SIGNAL)
    def retry_elsewhere(self) -> None:
        self.elsewhere = True

    @workflow.query(name="host")
    def where(self) -> str | None:
        return self.host

    def _ended(self, activity: asyncio.Task[Any], movable: bool) -> bool:
        """The activity is done, or the turn was cancelled (or, `movable`, sent to another host)."""
        return activity.done() or self.cancelled_by is not None or (movable and self.elsewhere)

    async def _place(self, repo: str, avoid: list[str], queue: str) -> str | None:
        """A host with a free slot: one that has the repo cloned if any answers within PREFER_CLONED, else
        any; None when the turn was cancelled meanwhile."""
        for where, within in ((wire.repo_queue(queue, repo), PREFER_CLONED), (queue, None)):
            placing = workflow.start_activity(
                wire.PLACE, wire.PlaceInput(repo, avoid), task_queue=where, result_type=str,
                start_to_close_timeout=timedelta(seconds=30), schedule_to_close_timeout=within,
                retry_policy=PLACE_RETRY)
            await workflow.wait_condition(functools.partial(self._ended, placing, False))
            if not placing.done():
                placing.cancel()
                return None
            try:
                return placing.result()
            except ActivityError:
                continue  # no host with a clone took it in time
        raise AssertionError("unreachable: placement on the shared queue retries until a host takes it")

    @workflow.run
    async def run(self, turn: wire.TurnInput) -> wire.TurnResult:
        queue = workflow.info().task_queue
        avoid = list(turn.avoid)
        host = turn.host
        while True:
            if host is None:
                host = await self._place(turn.repo, avoid, queue)
                if host is None:
                    return wire.TurnResult(host="", state="cancelled",
                                           reason=f"cancelled by {self.cancelled_by} before a host took it")
            self.host = host
            self.elsewhere = False  # a move asked before this host took the turn is not about this host
            running = workflow.start_activity(
                wire.RUN_TURN, dataclasses.replace(turn, host=host, avoid=avoid), result_type=wire.TurnResult,
                task_queue=wire.host_queue(queue, host),
                heartbeat_timeout=timedelta(seconds=turn.heartbeat_s), start_to_close_timeout=TURN_LIMIT,
                retry_policy=TURN_RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
            await workflow.wait_condition(functools.partial(self._ended, running, True))
            if running.done():
                return running.result()
            if self.cancelled_by is not None:
                # the activity stops the agent and pushes what it did; a host that is gone cannot:
                # then nothing of this turn is kept, and the result says so
                running.cancel()
                try:
                    return await running
                except (ActivityError, CancelledError, asyncio.CancelledError):
                    return wire.TurnResult(host=host, state="cancelled",
                                           reason=f"cancelled by {self.cancelled_by}; host {host} did not answer, "
                                                  "so this turn's work was not pushed")
            # the host is taken for gone: the turn starts over elsewhere, from the branch as last pushed
            self.elsewhere = False
            running.cancel()
            avoid.append(host)
            host = None
            turn = dataclasses.replace(turn, session_id=None)


@workflow.defn(name=wire.DROP_WORKFLOW)
class DropWorkflow:
    @workflow.run
    async def run(self, drop: wire.DropInput) -> None:
        queue = workflow.info().task_queue
        await workflow.execute_activity(
            wire.DROP, drop, task_queue=wire.host_queue(queue, drop.host),
            start_to_close_timeout=timedelta(minutes=5),
            # a host that is away removes it when it is back; a week later nobody needs it
            schedule_to_close_timeout=timedelta(days=7), retry_policy=PLACE_RETRY)
