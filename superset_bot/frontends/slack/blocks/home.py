"""The App Home tab: the viewer's own tasks, each with the buttons its state allows, and what runs now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from superset_bot.frontends.slack.blocks.actions import (
    cancel_button,
    discard_button,
    merge_button,
    update_button,
)
from superset_bot.frontends.slack.blocks.coerce import as_map
from superset_bot.frontends.slack.blocks.figures import count
from superset_bot.frontends.slack.blocks.kit import (
    Block,
    actions_block,
    chunk_sections,
    context,
    header,
    section,
)
from superset_bot.frontends.slack.blocks.limits import MAX_BLOCKS
from superset_bot.frontends.slack.blocks.lists import task_line
from superset_bot.frontends.slack.blocks.review import saved_review
from superset_bot.frontends.slack.blocks.text import mention, slack_date
from superset_bot.store import ACTIVE_STATES, REVIEWABLE_STATES, Task

HOME_MINE_MAX = 20
HOME_RUNNING_MAX = 50


def _home_buttons(task: Task) -> list[Block]:
    if task.state in ACTIVE_STATES:
        return [cancel_button(task)]
    if task.state not in REVIEWABLE_STATES:
        return []
    buttons: list[Block] = []
    review = saved_review(task)
    if task.branch:
        if review is not None and review.get("clean") is False:
            buttons.append(update_button(task))
        else:
            buttons.append(merge_button(task, task.branch, task.base_branch))
    buttons.append(discard_button(task, task.branch))
    return buttons


def app_home(viewer: str, mine: Sequence[Task], running: Sequence[Task], permalinks: Mapping[str, str], *,
             now: float, refusal: str | None = None, costs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The App Home tab (`views.publish`): your tasks with their buttons, and what is running now
    (the caller passes only tasks `list` shows the viewer); with a `refusal` (trusted text, why the
    bot does not serve the viewer), that instead. `costs`: what each task cost so far, by id."""
    links = as_map(permalinks)
    spent = as_map(costs)

    def cost(task: Task) -> str:
        value = spent.get(task.id) if isinstance(task.id, str) else None
        return value if isinstance(value, str) else ""

    def url(task: Task) -> str | None:
        value = links.get(task.id) if isinstance(task.id, str) else None
        return value if isinstance(value, str) else None

    blocks: list[Block] = [
        header("superset-bot"),
        context(f"Hi {mention(viewer)} · updated {slack_date(now, '{date_short_pretty} at {time}')}"),
    ]
    if refusal is not None:
        return {"type": "home", "blocks": [*blocks, section(f":warning: {refusal}")]}
    blocks.append(section("*Your tasks*"))
    if not mine:
        blocks.append(section("You have no tasks. Start one with `/superset spawn PROMPT`."))
    for task in mine[:HOME_MINE_MAX]:
        blocks.append(section(task_line(task, url(task), now=now, cost=cost(task))))
        buttons = _home_buttons(task)
        if buttons:
            blocks.append(actions_block(buttons))
    if len(mine) > HOME_MINE_MAX:
        blocks.append(context(f"…and {len(mine) - HOME_MINE_MAX:,} more: `/superset list` shows them all."))
    blocks += [{"type": "divider"}, section("*Running now*")]
    if not running:
        blocks.append(section("Nothing is running."))
    else:
        lines = [task_line(t, url(t), now=now, cost=cost(t)) for t in running[:HOME_RUNNING_MAX]]
        room = MAX_BLOCKS["home"] - len(blocks) - 1
        sections = chunk_sections(lines)
        blocks += sections[:room]
        hidden = len(running) - len(lines)
        if len(sections) > room or hidden > 0:
            blocks.append(context(f"…and more running: {count(len(running), 'task')} in all."))
    return {"type": "home", "blocks": blocks[: MAX_BLOCKS["home"]]}
