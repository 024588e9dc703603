"""The `/superset` slash command, and how a service result is shown to whoever asked in Slack.

Every listener answers through `Commands.answer`: the shared wording (service/plain.py) as the
notification text, Slack's layout as blocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.blocks import digest_message
from superset_bot.frontends.slack.threads import RootMessage
from superset_bot.service import Caller, failure
from superset_bot.service.plain import answer
from superset_bot.service.results import (
    CLOSED,
    Diff,
    DigestNow,
    Failed,
    Help,
    NeedsPrompt,
    Presets,
    Pruned,
    Refused,
    Repos,
    Result,
    Started,
    Status,
    TaskList,
)

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend

Reply = Callable[[ui.Rendered], Awaitable[None]]


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
                await self.answer(failure(exc, "digest"), reply, user)
        else:
            await self.answer(result, reply, user)

    async def start_task(self, channel: str, user: str, prompt: str, options: Mapping[str, str | None],
                         reply: Reply) -> None:
        """Post the root message first (so the thread exists), then hand the task to the engine."""
        frontend = self.frontend
        result = await frontend.service.spawn(Caller(user, channel), prompt, options, RootMessage(frontend, channel))
        await self.answer(result, reply, user)

    async def answer(self, result: Result, reply: Reply, user: str) -> None:
        """Show a service result to the person who asked: the shared wording as text, Slack's layout as blocks."""
        frontend = self.frontend
        text = text_of(result)
        if isinstance(result, Refused):
            await reply(trusted_error(result.reason))
        elif isinstance(result, Failed):
            if result.kind == CLOSED and result.task is not None:
                frontend.threads.close_review(result.task)
            await reply(ui.error_message(result.message)._replace(text=text))
        elif isinstance(result, Help):
            await reply(ui.help_message(list(result.commands))._replace(text=text))
        elif isinstance(result, Started):
            task = result.task
            link = frontend.thread_link(task)
            where = f"<{link}|its thread>" if link else "its thread"
            await reply(ui.Rendered(text, [section(
                f"Started task `{task.id}` in `{task.repo}` with preset `{task.preset}`; follow it in {where}.")]))
        elif isinstance(result, TaskList):
            links = {t.id: link for t in result.tasks if (link := frontend.thread_link(t))}
            await reply(ui.task_list(result.tasks, links, title="Tasks here and yours, running or awaiting review",
                                     now=frontend.clock())._replace(text=text))
        elif isinstance(result, Status):
            task = result.task
            await reply(ui.status_message(task, result.progress, frontend.thread_link(task),
                                          now=frontend.clock(), queue_position=result.queue_position)._replace(text=text))
        elif isinstance(result, Diff):
            try:
                await frontend.threads.post_diff(result.task, result.patch, user)
            except Exception as exc:  # noqa: BLE001 - a task without a thread, an upload Slack refused
                await self.answer(failure(exc, "diff", task_id=result.task.id), reply, user)
                return
            await reply(ui.Rendered(f"The diff of `{result.task.id}` is in its thread.", [section(
                f"The diff of `{result.task.id}` is in its thread.")]))
        elif isinstance(result, Presets):
            lines = [f"*{name}*: {ui.escape(description)}" for name, description in result.presets]
            await reply(ui.Rendered(text, [section("\n".join(lines) or "No presets are loaded.")]))
        elif isinstance(result, Repos):
            lines = [f"*{name}*{' (default)' if name == result.default else ''}" for name, _ in result.repos]
            await reply(ui.Rendered(text, [section("\n".join(lines) or "No repos are configured.")]))
        elif isinstance(result, Pruned):
            title = "Prune (dry run): nothing was changed" if result.report.dry_run else "Prune"
            await reply(ui.Rendered(text, [section(f"*{title}*"), *text_sections(
                [ui.escape(line) for line in result.report.lines()])]))
        else:  # Done, an empty DigestNow
            await reply(ui.Rendered(text, [section(text)]))


def text_of(result: Result) -> str:
    """The service's wording of a result, escaped for mrkdwn: Slack's notification text."""
    return ui.escape(answer(result))[:3000] or "superset-bot"


def trusted_error(text: str) -> ui.Rendered:
    return ui.Rendered(text[:3000], [section(f":warning: {text}")])


def text_sections(lines: list[str]) -> list[dict[str, Any]]:
    """Lines packed into sections under Slack's 3000-character limit (at most 40 sections)."""
    sections: list[dict[str, Any]] = []
    chunk = ""
    for line in lines:
        if len(chunk) + len(line) + 1 > 2900 and chunk:
            sections.append(section(chunk))
            chunk = ""
        chunk += ("\n" if chunk else "") + line[:2900]
    if chunk:
        sections.append(section(chunk))
    return sections[:40]


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
