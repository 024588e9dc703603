"""Generic Block Kit builders (text objects, sections, buttons, ...) and `Rendered`, a finished message.

Builders clip what they are given to Slack's limits; `fit` renders at shrinking scales until they all hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from superset_bot.frontends.slack.blocks.limits import (
    ACTIONS_ELEMENTS,
    BLOCK_ID_MAX,
    BUTTON_TEXT_MAX,
    BUTTON_VALUE_MAX,
    CONFIRM_BUTTON_MAX,
    CONFIRM_TEXT_MAX,
    CONFIRM_TITLE_MAX,
    CONTEXT_ELEMENTS,
    HEADER_MAX,
    TEXT_MAX,
    ulen,
    validate_blocks,
)
from superset_bot.frontends.slack.blocks.text import clip, cut

Block = dict[str, Any]


class Rendered(NamedTuple):
    """A message: `text` is the notification / fallback text, `blocks` the Block Kit layout."""

    text: str
    blocks: list[dict[str, Any]]


def mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not auto-link or auto-parse mentions in the text; our own <@U..> and
    # <!date> tokens still work.
    return {"type": "mrkdwn", "text": text or " ", "verbatim": True}


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text or " ", "emoji": True}


def section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(cut(text, TEXT_MAX))}
    if block_id:
        block["block_id"] = block_id
    return block


def header(text: str) -> Block:
    return {"type": "header", "text": plain(clip(text, HEADER_MAX))}


def context(*texts: str) -> Block:
    items = [t for t in texts if t][:CONTEXT_ELEMENTS]
    return {"type": "context", "elements": [mrkdwn(cut(t, TEXT_MAX)) for t in items or [" "]]}


def confirm_dialog(title: str, text: str, confirm: str, deny: str = "Cancel", style: str | None = None) -> Block:
    dialog: Block = {
        "title": plain(clip(title, CONFIRM_TITLE_MAX)),
        "text": plain(clip(text, CONFIRM_TEXT_MAX)),
        "confirm": plain(clip(confirm, CONFIRM_BUTTON_MAX)),
        "deny": plain(clip(deny, CONFIRM_BUTTON_MAX)),
    }
    if style:
        dialog["style"] = style
    return dialog


def button(text: str, action_id: str, value: str, style: str | None = None,
           confirm: Block | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": plain(clip(text, BUTTON_TEXT_MAX)),
        "action_id": action_id,
        "value": value[:BUTTON_VALUE_MAX] or "-",
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def actions_block(buttons: Iterable[Block], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(buttons)[:ACTIONS_ELEMENTS]}
    if block_id:
        block["block_id"] = block_id[:BLOCK_ID_MAX]
    return block


def chunk_sections(lines: Sequence[str], limit: int = 2900) -> list[Block]:
    """Lines of mrkdwn packed into as few sections as hold them, each line cut to `limit`."""
    blocks: list[Block] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = cut(line, limit)
        if current and size + ulen(line) + 1 > limit:
            blocks.append(section("\n".join(current)))
            current, size = [], 0
        current.append(line)
        size += ulen(line) + 1
    if current:
        blocks.append(section("\n".join(current)))
    return blocks


def fit(build: Callable[[float], list[Block]], surface: str = "message") -> list[Block]:
    """Render at shrinking scales until the blocks pass `validate_blocks`."""
    blocks: list[Block] = []
    for scale in (1.0, 0.5, 0.25, 0.12, 0.05):
        blocks = build(scale)
        if not validate_blocks(blocks, surface=surface):
            return blocks
    return blocks


def fallback(text: str) -> str:
    """Notification text: escaped by the caller, never empty, at most TEXT_MAX."""
    text = cut(text.strip(), TEXT_MAX)
    return text or "superset-bot"
