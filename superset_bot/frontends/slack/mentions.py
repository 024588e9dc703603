"""Mentions of the bot: in a channel a new task, in a task's thread a follow-up for its agent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

from superset_bot.domain.commands import CommandError, parse
from superset_bot.frontends.slack import blocks as ui
from superset_bot.service import Caller

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend

MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


class Mentions:
    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend

    def register(self, app: AsyncApp) -> None:
        app.event("app_mention")(self.on_mention)

    async def on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        self.frontend.spawn_job(self.handle_mention(event), "mention")

    async def handle_mention(self, event: Mapping[str, Any]) -> None:
        frontend = self.frontend
        user = str(event.get("user", ""))
        channel = str(event.get("channel", ""))
        raw_text = event.get("text")  # a string from Slack; anything else is no prompt, not "None" or "5"
        text = self.without_bot_mention(raw_text if isinstance(raw_text, str) else "")

        async def reply(rendered: ui.Rendered) -> None:
            await frontend.ephemeral(channel, user, rendered, thread_ts=event.get("thread_ts"))

        if not user or user == frontend.bot_user_id:
            return
        thread_ts = event.get("thread_ts")
        if thread_ts:
            race_id = frontend.races.messages.race_in_thread(channel, str(thread_ts))
            if race_id is not None:  # a race's thread: to the attempts the text names ("A: ..."), or all
                result = await frontend.service.act_race(Caller(user, channel), "followup", race_id, text)
                await frontend.answers.answer(result, reply, user)
                return
            task_id = frontend.messages.task_in_thread(channel, str(thread_ts))
            task = await frontend.engine.store.get_task(task_id) if task_id else None
            if task is None:
                return  # chatter in some other thread
            result = await frontend.service.act(Caller(user, channel), "followup", task.id, text)
            await frontend.answers.answer(result, reply, user)
            return
        try:
            command = parse(f"spawn {text}")
        except CommandError as exc:
            await reply(ui.error_message(str(exc)))
            return
        if not command.text:
            await frontend.answers.answer(await frontend.service.command(Caller(user, channel), "help"), reply, user)
            return
        await frontend.commands.start_task(channel, user, command.text, command.options, reply)

    def without_bot_mention(self, text: str) -> str:
        """Drop the mention that addressed the bot; other people's mentions are part of the prompt."""
        bot = self.frontend.bot_user_id
        if not bot:
            return MENTION.sub("", text, count=1).strip()
        return re.sub(rf"<@{re.escape(bot)}(?:\|[^>]*)?>", "", text).strip()
