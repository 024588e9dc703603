"""A task's root message in its channel, posted before the task exists: the service's `Thread` for Slack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from superset_bot.domain.race import Race
from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.blocks.race import race_root
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
        ts = await self._post_root(root, pending.id, "task")
        try:
            await frontend.messages.open_thread(pending.id, self.channel, ts)
        except Exception as exc:
            # the service calls not_started only once open returned: the posted root must not look queued
            await self._say_not_started(pending, ts, failure(exc, "spawn"))
            raise
        return {"channel": self.channel}

    async def _post_root(self, root: ui.Rendered, key: str, what: str) -> str:
        frontend = self.frontend
        try:
            return await frontend.outbox.post(self.channel, root.text, root.blocks, task_id=key, kind="root")
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else ""
            if error in ("not_in_channel", "channel_not_found"):
                bot = frontend.bot_user_id
                who = f"<@{bot}>" if bot else "the bot"
                raise Refusal(f"I can't post in this channel yet, so no {what} was started. Invite me with "
                              f"`/invite {who}` and run the command again.") from exc
            raise

    async def open_race(self, pending: Race, attempts: list[Task]) -> Mapping[str, str]:
        """The race's root message in the channel, then each attempt's card in its thread."""
        frontend = self.frontend
        self.channel = self.given or pending.channel or ""
        if not self.channel:
            raise Refusal("This race was not started from Slack; start it again.")
        ts = await self._post_root(race_root(pending, attempts), pending.id, "race")
        races = frontend.races.messages
        try:
            await races.open(pending.id, self.channel, ts)
            for attempt in attempts:
                card = ui.task_card(attempt, now=frontend.clock())
                card_ts = await frontend.outbox.post(self.channel, card.text, card.blocks, thread_ts=ts,
                                                     task_id=attempt.id, kind="root")
                await frontend.messages.open_thread(attempt.id, self.channel, ts, card_ts=card_ts)
        except Exception as exc:
            await self._say_not_started_race(pending, attempts, ts, failure(exc, "race"))
            await self._forget_race(pending, attempts)
            raise
        return {"channel": self.channel}

    async def race_not_started(self, pending: Race, attempts: list[Task], answer: Result) -> None:
        ids = self.frontend.races.messages.get(pending.id)
        if ids is None:
            return
        try:
            await self._say_not_started_race(pending, attempts, ids.thread_ts, answer)
        finally:
            await self._forget_race(pending, attempts)

    async def _forget_race(self, pending: Race, attempts: list[Task]) -> None:
        for attempt in attempts:
            await self.frontend.messages.forget(attempt.id)
        await self.frontend.races.messages.forget(pending.id)

    async def _say_not_started_race(self, pending: Race, attempts: list[Task], ts: str, answer: Result) -> None:
        """The race's root says why; each attempt card already posted stops saying "queued"."""
        if isinstance(answer, Failed) and answer.kind == INTERNAL:
            text = f"Race {pending.id} was not started because of an internal error; the bot's log has the details."
        else:
            text = f"Race {pending.id} was not started: {getattr(answer, 'message', '') or getattr(answer, 'reason', '')}"
        failed = ui.error_message(text)
        await self.frontend.outbox.call("chat.update", channel=self.channel, ts=ts, text=failed.text,
                                        blocks=failed.blocks)
        for attempt in attempts:
            ids = self.frontend.messages.get(attempt.id)
            if ids is not None and ids.card_ts:
                note = ui.error_message(f"Attempt {attempt.race_label} was not started: the race was not.")
                await self.frontend.outbox.call("chat.update", channel=self.channel, ts=ids.card_ts,
                                                text=note.text, blocks=note.blocks)

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
