"""A task's root message in its channel, posted before the task exists: the service's `Thread` for Slack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from superset_bot.frontends.slack import blocks as ui
from superset_bot.service import Refusal
from superset_bot.service.errors import failure
from superset_bot.service.results import INTERNAL, Failed, Result
from superset_bot.store import Task

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend


class RootMessage:
    """The service's `Thread` for Slack: a task's root message, posted before the task exists."""

    def __init__(self, frontend: SlackFrontend, channel: str | None = None) -> None:
        self.frontend = frontend
        self.given = channel  # None: the channel the pending task names (a Retry)
        self.channel = channel or ""

    async def open(self, pending: Task) -> Mapping[str, str]:
        frontend = self.frontend
        self.channel = self.given or pending.channel or ""
        if not self.channel:
            raise Refusal("This task was not started from Slack; spawn it again.")
        root = ui.task_card(pending, now=frontend.clock())
        try:
            ts = await frontend.outbox.post(self.channel, root.text, root.blocks, task_id=pending.id, kind="root")
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else ""
            if error in ("not_in_channel", "channel_not_found"):
                bot = frontend.bot_user_id
                who = f"<@{bot}>" if bot else "the bot"
                raise Refusal(f"I can't post in this channel yet, so no task was started. Invite me with "
                              f"`/invite {who}` and run the command again.") from exc
            raise
        try:
            await frontend.messages.open_thread(pending.id, self.channel, ts)
        except Exception as exc:
            # the service calls not_started only once open returned: the posted root must not look queued
            await self._say_not_started(pending, ts, failure(exc, "spawn"))
            raise
        return {"channel": self.channel}

    async def not_started(self, pending: Task, where: Mapping[str, str], answer: Result) -> None:
        ids = self.frontend.messages.get(pending.id)
        if ids is None:
            return
        try:
            await self._say_not_started(pending, ids.thread_ts, answer)
        finally:
            await self.frontend.messages.forget(pending.id)

    async def _say_not_started(self, pending: Task, ts: str, answer: Result) -> None:
        # blocks must be replaced too: chat.update keeps the old ones (the "queued" card) otherwise
        if isinstance(answer, Failed) and answer.kind == INTERNAL:
            text = (f"Task {pending.id} was not started because of an internal error; "
                    "the bot's log has the details.")
        else:
            text = f"Task {pending.id} was not started: {getattr(answer, 'message', '') or getattr(answer, 'reason', '')}"
        failed = ui.error_message(text)
        await self.frontend.outbox.call("chat.update", channel=self.channel, ts=ts,
                                        text=failed.text, blocks=failed.blocks)
