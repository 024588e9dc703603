"""How a service result is shown in Slack to whoever asked: the shared wording (service/plain.py)
as the notification text, Slack's layout as blocks. Every listener answers through `Answers.answer`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.blocks.kit import chunk_sections
from superset_bot.frontends.slack.blocks.kit import section as kit_section
from superset_bot.service import failure
from superset_bot.service.plain import answer, log_text, race_lines
from superset_bot.service.results import (
    CLOSED,
    Diff,
    Failed,
    Help,
    Log,
    Presets,
    Pruned,
    RaceFollowups,
    RaceStarted,
    RaceView,
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


class Answers:
    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend

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
        elif isinstance(result, RaceStarted):
            ids = frontend.races.messages.get(result.race.id)
            link = frontend.permalink(ids.channel, ids.thread_ts) if ids else None
            where = f"<{link}|its thread>" if link else "its thread"
            names = ", ".join(f"*{t.race_label}* `{t.id}` ({ui.escape(t.preset)})" for t in result.attempts)
            await reply(ui.Rendered(text, [section(f"Started race `{result.race.id}`: {names}. Follow it in {where}; "
                                                   "the comparison card comes when every attempt has finished.")]))
        elif isinstance(result, RaceView):
            ids = frontend.races.messages.get(result.race.id)
            if ids is None:  # a race started elsewhere (the console): its figures here, no card to post
                head = f"Race `{result.race.id}` has no thread in Slack; its attempts:"
            else:
                frontend.races.request(result.race.id, compare=True)  # the card, in its thread for everyone
                link = frontend.permalink(ids.channel, ids.thread_ts)
                head = f"The comparison card of race `{result.race.id}` is in <{link}|the race's thread>."
            await reply(ui.Rendered(text, [section(head),
                                           *text_sections([ui.escape(line) for line in race_lines(result)[1:]])]))
        elif isinstance(result, RaceFollowups):
            lines = [f"*{label}* `{task_id}`: " + ("follow-up queued" if error is None else ui.escape(error))
                     for label, task_id, error in result.sent]
            await reply(ui.Rendered(text, text_sections(lines)))
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
        elif isinstance(result, Log):
            try:
                await frontend.threads.post_log(result.task, log_text(result), user)
            except Exception as exc:  # noqa: BLE001 - as for a diff
                await self.answer(failure(exc, "log", task_id=result.task.id), reply, user)
                return
            await reply(ui.Rendered(f"The log of `{result.task.id}` is in its thread.", [section(
                f"The log of `{result.task.id}` is in its thread.")]))
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
    return chunk_sections(lines)[:40]


def section(text: str) -> dict[str, Any]:
    return kit_section(text)
