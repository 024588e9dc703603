"""The `/superset` slash command: its text goes to the service, its result back to whoever asked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.answers import Reply, text_of
from superset_bot.frontends.slack.blocks import digest_message
from superset_bot.frontends.slack.rootmessage import RootMessage
from superset_bot.service import Caller, failure
from superset_bot.service.results import (
    DigestNow,
    NeedsPrompt,
)

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend



class Commands:
    """`/superset ...` in, an ephemeral answer out; `start_task` is the spawn that mentions and the form share."""

    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend

    def register(self, app: AsyncApp) -> None:
        app.command("/superset")(self.on_command)

    async def on_command(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any],
                         respond: Callable[..., Awaitable[Any]]) -> None:
        await ack()

        async def reply(rendered: ui.Rendered) -> None:
            if body.get("response_url"):
                await respond(text=rendered.text, blocks=rendered.blocks, response_type="ephemeral",
                              replace_original=False)
            elif body.get("channel_id") and body.get("user_id"):  # Slack always sends one; a forged body may not
                await self.frontend.ephemeral(str(body["channel_id"]), str(body["user_id"]), rendered)

        self.frontend.spawn_job(self.handle_command(body, reply), "command")

    async def handle_command(self, body: Mapping[str, Any], reply: Reply) -> None:
        frontend = self.frontend
        user = str(body.get("user_id", ""))
        channel = str(body.get("channel_id", ""))
        caller = Caller(user, channel)
        result = await frontend.service.command(caller, str(body.get("text", "")), RootMessage(frontend, channel))
        if isinstance(result, NeedsPrompt):
            await frontend.modal.open(body, channel, result.options, reply)
        elif isinstance(result, DigestNow) and not result.digest.empty:
            rendered = digest_message(result.digest, frontend.thread_link)
            try:
                await frontend.outbox.post(channel, text_of(result), rendered.blocks)
            except Exception as exc:  # noqa: BLE001 - said to the person who asked, logged when unexpected
                await self.frontend.answers.answer(failure(exc, "digest"), reply, user)
        else:
            await self.frontend.answers.answer(result, reply, user)

    async def start_race(self, channel: str, user: str, prompt: str, options: Mapping[str, str | None],
                         count: int | None, reply: Reply) -> None:
        """A race from the form: its root message first, then the attempts."""
        frontend = self.frontend
        result = await frontend.service.race(Caller(user, channel), prompt, options, count,
                                             RootMessage(frontend, channel))
        await self.frontend.answers.answer(result, reply, user)

    async def start_task(self, channel: str, user: str, prompt: str, options: Mapping[str, str | None],
                         reply: Reply) -> None:
        """Post the root message first (so the thread exists), then hand the task to the engine."""
        frontend = self.frontend
        result = await frontend.service.spawn(Caller(user, channel), prompt, options, RootMessage(frontend, channel))
        await self.frontend.answers.answer(result, reply, user)
