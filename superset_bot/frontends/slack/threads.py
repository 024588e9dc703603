"""A task's Slack thread: its root message, and everything the engine's events post or update in it.

The root message is the task's one live message (its status card): state, time, what the agent is
doing, tokens and cost, the last lines. The thread below holds milestones, the review and the
outcome. Engine events are rendered per task by a serial worker, so the card, its reaction,
replies and the review follow the task in order; the outbox sends a final state ahead of progress.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from superset_bot.domain.events import (
    HOST_LOST,
    EngineEvent,
    Milestone,
    OutputLines,
    ProgressChanged,
    PruneWarning,
    QueuePosition,
    ReviewReady,
    ReviewRefreshed,
    StateChanged,
)
from superset_bot.domain.progress import ProgressSnapshot
from superset_bot.engine.core import UserError
from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.uploads import upload_file
from superset_bot.store import (
    CLOSED_STATES,
    DISCARDED,
    FAILED,
    FINISHED,
    MERGED,
    PREPARING,
    PRUNED,
    QUEUED,
    REVIEWABLE_STATES,
    Task,
)

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend

log = logging.getLogger(__name__)

MAX_DIFF_BYTES = 5 * 1024 * 1024
# steps of the way the card shows instead of a thread reply: posts are paced per channel, so with
# many tasks each reply delays the reviews and outcomes people wait for
CARD_MILESTONES = frozenset({"worktree_ready", "setup_done", "agent_started", "committed", "pr_updated"})
_SAVED_REVIEW: Any = object()


@dataclass
class TaskThread:
    """What the front end knows of one task's thread, and its serial render queue."""

    queue: asyncio.Queue[EngineEvent] = field(default_factory=asyncio.Queue)
    progress: ProgressSnapshot | None = None  # the last one published (None: the task's saved one)
    setup_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    queue_position: int | None = None
    refresh_pending: bool = False
    note: str | None = None  # the latest step of the way (setup done, agent started), for the card
    rendering: bool = False  # an event is being rendered (its post may be in flight)
    state_seen: int = 0  # state changes shown so far: a render that read the task before one is stale
    review: dict[str, Any] | None = None  # what the current review message shows
    worker: asyncio.Task[None] | None = None


class Threads:
    """Renders engine events into the threads of tasks started from Slack (`frontend.messages` knows them)."""

    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend
        self._threads: dict[str, TaskThread] = {}

    def resume(self, tasks: Iterable[Task]) -> None:
        """Render again for tasks re-attached after a restart."""
        for task in tasks:
            if self.frontend.messages.get(task.id):
                self._thread(task.id)

    def busy(self) -> bool:
        return any(not t.queue.empty() or t.refresh_pending or t.rendering for t in self._threads.values())

    def workers(self) -> list[asyncio.Task[None]]:
        return [t.worker for t in self._threads.values() if t.worker]

    # engine events -> thread

    def on_engine_event(self, event: EngineEvent) -> None:
        task = event.task
        if self.frontend.messages.get(task.id) is None:
            return  # not a Slack task (console) or its root message is not posted yet
        thread = self._thread(task.id)
        if isinstance(event, ProgressChanged):
            thread.progress = event.progress
            self._request_refresh(thread, event)
            return
        if isinstance(event, OutputLines):
            if event.source == "setup":
                thread.setup_tail.extend(event.lines)
                self._request_refresh(thread, event)
            return
        if isinstance(event, Milestone) and event.kind in CARD_MILESTONES:
            thread.note = event.text  # a step of the way: on the card, not a post the channel paces
            self._request_refresh(thread, event)
            return
        if isinstance(event, QueuePosition):
            thread.queue_position = event.position
            self._request_refresh(thread, event)
            return
        if isinstance(event, StateChanged):
            # a new state goes out now, ahead of every queued post and progress update: the card
            # must not say "running" while a review or a busy channel's posts wait their turn
            thread.state_seen += 1
            if event.previous is not None:  # a new task's card was posted with its root message
                self._show(task, thread, urgent=True)
            ids = self.frontend.messages.get(task.id)
            assert ids is not None
            self.frontend.outbox.set_reaction(ids.channel, ids.card, ui.STATE_EMOJI.get(task.state))
            self.frontend.home.schedule(task.requester)
        thread.queue.put_nowait(event)

    def _thread(self, task_id: str) -> TaskThread:
        thread = self._threads.get(task_id)
        if thread is None:
            thread = self._threads[task_id] = TaskThread()
            thread.worker = asyncio.create_task(self._render_loop(task_id, thread), name=f"render-{task_id}")
        return thread

    def _request_refresh(self, thread: TaskThread, event: EngineEvent) -> None:
        """Progress is coalesced: at most one pending card refresh per task."""
        if not thread.refresh_pending:
            thread.refresh_pending = True
            thread.queue.put_nowait(event)

    async def _render_loop(self, task_id: str, thread: TaskThread) -> None:
        while True:
            event = await thread.queue.get()
            thread.rendering = True
            try:
                await self._render(event, thread)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task %s: could not render %s in Slack", task_id, type(event).__name__)
            finally:
                thread.rendering = False
            if isinstance(event, StateChanged) and event.task.state in CLOSED_STATES and thread.queue.empty():
                self._threads.pop(task_id, None)
                return

    async def _render(self, event: EngineEvent, thread: TaskThread) -> None:
        frontend, outbox = self.frontend, self.frontend.outbox
        seen = thread.state_seen
        task = await frontend.engine.store.get_task(event.task.id) or event.task
        ids = frontend.messages.get(task.id)
        assert ids is not None
        channel, thread_ts = ids.channel, ids.thread_ts
        if ids.status_ts:
            await self._retire_old_card(task.id, ids.channel, ids.status_ts)
        if isinstance(event, ProgressChanged | OutputLines | QueuePosition) or (
                isinstance(event, Milestone) and event.kind in CARD_MILESTONES):
            thread.refresh_pending = False
            if thread.state_seen == seen:  # else a newer state was shown meanwhile: this read is stale
                self._show(task, thread)
        elif isinstance(event, StateChanged):
            # the card and its reaction were updated when the event came; the reply is about this transition
            changed = event.task
            reply: ui.Rendered | None = None
            if event.previous is not None and changed.state in REVIEWABLE_STATES - {FINISHED} and changed.reason:
                reply = ui.failure_with_retry(changed, changed.reason) if changed.state == FAILED else \
                    ui.milestone(changed, f"Task {changed.state.replace('_', ' ')}: {changed.reason}", ok=False)
            elif changed.state == MERGED:
                self.close_review(task)  # re-read: the review may have been posted since the transition
                reply = ui.milestone(changed, f"Merged into `{changed.base_branch}` by {{actor}} "
                                              f"({(changed.merge_commit or '')[:10]}).", actor=changed.closed_by)
            elif changed.state == DISCARDED:
                self.close_review(task)  # re-read: the review may have been posted since the transition
                reply = ui.milestone(changed, "Discarded by {actor}: worktree and branch removed.",
                                     actor=changed.closed_by)
            elif changed.state == PRUNED:
                self.close_review(task)  # re-read: the review may have been posted since the transition
                reply = ui.milestone(changed, f"Worktree pruned: {changed.reason or 'idle too long'}.")
            if reply is not None:
                await outbox.post(channel, reply.text, reply.blocks, thread_ts=thread_ts, task_id=task.id,
                                  kind=f"state:{changed.state}")
        elif isinstance(event, PruneWarning):
            warning = ui.prune_warning(task, event.grace_s / 3600)
            await outbox.post(channel, warning.text, warning.blocks, thread_ts=thread_ts, task_id=task.id,
                              kind="prune_warning")
        elif isinstance(event, Milestone):
            rendered = ui.host_lost(task, event.text) if event.kind == HOST_LOST else \
                ui.milestone(task, event.text, ok=event.ok)
            await outbox.post(channel, rendered.text, rendered.blocks, thread_ts=thread_ts, task_id=task.id,
                              kind=f"milestone:{event.kind}")
        elif isinstance(event, ReviewRefreshed):
            if task.state in CLOSED_STATES or not ids.review_ts:
                return
            thread.review = event.review.to_dict()
            rendered = ui.review_message(task, thread.review)
            outbox.update(channel, ids.review_ts, rendered.text, rendered.blocks, urgent=True)
            if (event.previous is None or event.previous.clean) and not event.review.clean:
                base = event.review.base_branch
                note = ui.milestone(task, f"`{base}` moved and this branch no longer merges cleanly into it; "
                                          "the review above now offers Update from base.", ok=False)
                await outbox.post(channel, note.text, note.blocks, thread_ts=thread_ts, task_id=task.id,
                                  kind="review_stale")
        elif isinstance(event, ReviewReady):
            if task.state in CLOSED_STATES:
                return  # merged or discarded before this review got its turn: no live buttons on a closed task
            if ids.review_ts:
                # the store already holds the new review; the old message keeps showing what it said
                self.close_review(task, outcome="superseded", review=thread.review)
            thread.review = event.review.to_dict()  # the blocks render (and the store holds) the JSON form
            rendered = ui.review_message(task, thread.review)
            ts = await outbox.post(channel, rendered.text, rendered.blocks, thread_ts=thread_ts, task_id=task.id,
                                   kind="review")
            await frontend.messages.set_review(task.id, ts)

    def _show(self, task: Task, thread: TaskThread, urgent: bool = False) -> None:
        """Show the task's state and progress on its root message, the one live message it has."""
        frontend = self.frontend
        ids = frontend.messages.get(task.id)
        assert ids is not None
        progress = thread.progress if thread.progress is not None else task.progress_snapshot()
        if task.state == PREPARING and thread.setup_tail:
            progress = replace(progress, tail=tuple(thread.setup_tail), action="Running setup")
        card = ui.task_card(task, progress, now=frontend.clock(), note=thread.note,
                            queue_position=thread.queue_position if task.state == QUEUED else None)
        frontend.outbox.update(ids.channel, ids.card, card.text, card.blocks, urgent=urgent)

    async def _retire_old_card(self, task_id: str, channel: str, status_ts: str) -> None:
        """A status card in the thread from an older release: say once where the state went, so it
        does not stay "running" forever, and stop following it."""
        moved = ui.moved_card()
        self.frontend.outbox.update(channel, status_ts, moved.text, moved.blocks)
        await self.frontend.messages.set_status(task_id, None)

    def close_review(self, task: Task, outcome: str | None = None, review: Any = _SAVED_REVIEW) -> None:
        """Replace the review's buttons with the outcome, so nobody clicks a stale Merge.

        `review` is what the message showed (None: unknown, render the task only); by default the
        task's saved review, which is the one on the message unless a newer review is being posted.
        """
        ids = self.frontend.messages.get(task.id)
        if not (ids and ids.review_ts):
            return
        if review is _SAVED_REVIEW:
            review = task.review_data()
        rendered = ui.closed_review(task, review, outcome=outcome or task.state, actor=task.closed_by or "",
                                    when=task.updated_at or self.frontend.clock())
        self.frontend.outbox.update(ids.channel, ids.review_ts, rendered.text, rendered.blocks, urgent=True)

    async def post_pair_diff(self, first: Task, second: Task, patch: str, user: str) -> None:
        """Diff A vs B of a race, as a file in the race's thread."""
        ids = self.frontend.messages.get(first.id)
        if ids is None:
            raise UserError(f"Task `{first.id}` has no Slack thread to post the diff in.")
        name = f"{first.race_label} vs {second.race_label}"
        if not patch.strip():
            await self.frontend.outbox.post(ids.channel, f"Attempts {name}: their branches are the same.",
                                            thread_ts=ids.thread_ts, task_id=first.id, kind="diff")
            return
        await self._upload(ids.channel, ids.thread_ts, patch, f"{first.id}-vs-{second.id}.diff",
                           f"Diff {name}: `{first.branch}` to `{second.branch}`",
                           f"Diff of attempt {name} requested by <@{user}>")

    async def post_diff(self, task: Task, patch: str, user: str) -> None:
        frontend = self.frontend
        ids = frontend.messages.get(task.id)
        if ids is None:
            raise UserError(f"Task `{task.id}` has no Slack thread to post the diff in.")
        if not patch.strip():
            await frontend.outbox.post(ids.channel, "No changes yet.", thread_ts=ids.thread_ts, task_id=task.id,
                                       kind="diff")
            return
        await self._upload(ids.channel, ids.thread_ts, patch, f"{task.id}.diff", f"Diff of {task.branch}",
                           f"Diff requested by <@{user}>")

    async def post_log(self, task: Task, text: str, user: str) -> None:
        """The end of the agent's log as a file in the task's thread (redacted where the log is)."""
        ids = self.frontend.messages.get(task.id)
        if ids is None:
            raise UserError(f"Task `{task.id}` has no Slack thread to post the log in.")
        await self._upload(ids.channel, ids.thread_ts, text, f"{task.id}-run{task.runs}.log",
                           f"Log of task {task.id}, run {task.runs}", f"Log requested by <@{user}>",
                           snippet_type="text")

    async def _upload(self, channel: str, thread_ts: str, patch: str, filename: str, title: str, comment: str,
                      snippet_type: str = "diff") -> None:
        data = patch.encode()
        note = ""
        if len(data) > MAX_DIFF_BYTES:
            data = data[:MAX_DIFF_BYTES]
            note = f" (first {MAX_DIFF_BYTES // (1024 * 1024)} MiB)"
        await upload_file(self.frontend.outbox, channel=channel, thread_ts=thread_ts, content=data, filename=filename,
                          title=f"{title}{note}", snippet_type=snippet_type, initial_comment=f"{comment}{note}.")
