"""The spawn form: opened by `/superset spawn` without a prompt, its submission starts the task."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.answers import Reply, trusted_error

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend


class SpawnModal:
    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend

    def register(self, app: AsyncApp) -> None:
        app.view(ui.SPAWN_CALLBACK)(self.on_submit)

    async def open(self, body: Mapping[str, Any], channel: str, options: Mapping[str, str], reply: Reply) -> None:
        """Open the form with the command's options (or the channel's defaults) filled in."""
        frontend = self.frontend
        settings = frontend.settings
        chosen = settings.spawn_choices(channel, options)
        view = ui.spawn_modal(
            list(settings.repos),
            {name: p.description for name, p in sorted(frontend.engine.presets.items())},
            repo=chosen.repo or settings.default_repo,
            preset=chosen.preset or settings.default_preset,
            base=chosen.base,
            channel=channel,
            max_attempts=settings.race_max_attempts,
            attempts=options.get("attempts"),
            race_presets=options.get("presets"),
        )
        try:
            await frontend.outbox.call("views.open", trigger_id=body.get("trigger_id"), view=view)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else exc
            await reply(ui.error_message(
                f"I could not open the spawn form ({error}). Run `/superset spawn` again, or give the prompt "
                "inline: `/superset spawn [--repo NAME] [--preset NAME] PROMPT`."))

    async def on_submit(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        frontend = self.frontend
        view = body.get("view", {})
        options, prompt, errors = ui.parse_spawn_submission(view)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = str(body.get("user", {}).get("id", ""))
        try:
            channel = str(json.loads(view.get("private_metadata") or "{}").get("channel", ""))
        except (ValueError, AttributeError):
            channel = ""

        async def reply(rendered: ui.Rendered) -> None:
            if channel:
                await frontend.ephemeral(channel, user, rendered)

        if not channel:
            await reply(trusted_error("The form lost its channel; run /superset spawn again."))
            return
        if options.get("presets") or options.get("attempts"):
            attempts = options.get("attempts") or ""
            count = int(attempts) if attempts.isdigit() else None
            frontend.spawn_job(frontend.commands.start_race(channel, user, prompt, options, count, reply), "race-modal")
            return
        frontend.spawn_job(frontend.commands.start_task(channel, user, prompt, options, reply), "spawn-modal")
