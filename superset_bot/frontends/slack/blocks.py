"""Block Kit rendering: pure functions from tasks, progress and reviews to Slack payloads.

Everything here that came from a person, an agent, a file name or a branch name is escaped
(or fenced in a code block whose fence cannot be broken), and every message renderer shrinks its
variable parts until the result passes `validate_blocks`. So no input, however long or hostile,
makes Slack reject a message (`invalid_blocks`, `msg_blocks_too_long`) or ping a channel.
Lengths are counted in UTF-16 code units, the stricter of the ways Slack might count.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from superset_bot.domain.commands import SPECS, usage
from superset_bot.store import (
    ACTIVE_STATES,
    CANCELLED,
    DISCARDED,
    DISCARDING,
    FAILED,
    FINISHED,
    MERGED,
    MERGING,
    PREPARING,
    PRUNED,
    QUEUED,
    REVIEWABLE_STATES,
    RUNNING,
    TIMED_OUT,
    Task,
)
from superset_bot.units import format_duration

Block = dict[str, Any]

# ----------------------------------------------------------------------------- identifiers

ACTION_MERGE = "task_merge"
ACTION_DISCARD = "task_discard"
ACTION_DIFF = "task_diff"
ACTION_UPDATE = "task_update_base"
ACTION_KEEP = "task_keep"
ACTION_RETRY = "task_retry"
ACTION_CANCEL = "task_cancel"
ACTIONS = (ACTION_MERGE, ACTION_DISCARD, ACTION_DIFF, ACTION_UPDATE, ACTION_KEEP, ACTION_RETRY, ACTION_CANCEL)

SPAWN_CALLBACK = "spawn_modal"
# Input block ids of the spawn modal; each block's element uses the same string as action_id.
SPAWN_REPO, SPAWN_PRESET, SPAWN_BASE, SPAWN_PROMPT = "repo", "preset", "base", "prompt"

STATE_EMOJI: dict[str, str] = {
    QUEUED: "hourglass_flowing_sand",
    PREPARING: "gear",
    RUNNING: "runner",
    FINISHED: "white_check_mark",
    FAILED: "x",
    CANCELLED: "no_entry_sign",
    TIMED_OUT: "alarm_clock",
    MERGING: "hourglass",
    MERGED: "twisted_rightwards_arrows",
    DISCARDING: "hourglass",
    DISCARDED: "wastebasket",
    PRUNED: "broom",
}
UNKNOWN_EMOJI = "grey_question"

STATE_LABEL: dict[str, str] = {
    QUEUED: "queued",
    PREPARING: "preparing",
    RUNNING: "running",
    FINISHED: "finished",
    FAILED: "failed",
    CANCELLED: "cancelled",
    TIMED_OUT: "timed out",
    MERGING: "merging",
    MERGED: "merged",
    DISCARDING: "discarding",
    DISCARDED: "discarded",
    PRUNED: "pruned",
}

# ----------------------------------------------------------------------------- Slack's limits

MAX_BLOCKS = {"message": 50, "modal": 100, "home": 100}
MESSAGE_BLOCKS_JSON = 12_000  # msg_blocks_too_long shows up near 13k characters
TEXT_MAX = 3000  # a text object; also the fallback `text` we produce
SECTION_FIELD_MAX = 2000
SECTION_FIELDS = 10
HEADER_MAX = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
URL_MAX = 3000
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30
SELECT_OPTIONS = 100
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
OPTION_DESCRIPTION_MAX = 75
PLACEHOLDER_MAX = 150
INPUT_LABEL_MAX = 2000
INPUT_HINT_MAX = 2000
INPUT_VALUE_MAX = 3000
MARKDOWN_TOTAL_MAX = 12_000
VIEW_TITLE_MAX = 24
PRIVATE_METADATA_MAX = 3000
CALLBACK_ID_MAX = 255

LIST_MAX = 40  # tasks in one `list` answer
HOME_MINE_MAX = 20
HOME_RUNNING_MAX = 50

ZWSP = "\u200b"
ELLIPSIS = "…"
MINUS = "\u2212"


class Rendered(NamedTuple):
    """A message: `text` is the notification / fallback text, `blocks` the Block Kit layout."""

    text: str
    blocks: list[dict[str, Any]]


# ----------------------------------------------------------------------------- text helpers

# Control characters (tab and newline survive), C1 controls, line/paragraph separators and
# bidirectional overrides (which can make `evil.exe` look like `exe.live` in a file list).
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_BACKTICK_RUN = re.compile(r"`(?=`)")
_WS = re.compile(r"\s+")


def escape(text: str) -> str:
    """Make text safe for mrkdwn: `<!channel>`, `<@U1>`, `<#C1>` and `<url|x>` stay literal text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ulen(text: str) -> int:
    """Length in UTF-16 code units (an emoji counts 2), never less than `len(text)`."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _clean(value: object, limit: int | None = None) -> str:
    """Any value as printable text: control and bidi characters replaced, lone surrogates gone."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return _UNSAFE.sub("\ufffd", text)


def _cut(text: str, limit: int) -> str:
    """Cut escaped mrkdwn to `limit` units with "…", never inside an entity or a `<...>` token."""
    if ulen(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    keep = limit - 1
    k = keep
    while k > 0 and ulen(text[:k]) > keep:
        k -= max(1, ulen(text[:k]) - keep)
    amp = text.rfind("&", max(0, k - 5), k)
    if amp >= 0:
        semi = text.find(";", amp, amp + 6)
        if semi < 0 or semi >= k:
            k = amp  # "&amp;" cut to "&am" would show as garbage
    lt = text.rfind("<", 0, k)
    if lt > text.rfind(">", 0, k):
        k = lt
    if 0 < k < len(text) and "\ud800" <= text[k - 1] <= "\udbff":
        k -= 1  # never split a surrogate pair
    return text[:k] + ELLIPSIS


def clip(text: str, limit: int) -> str:
    """Cut plain text to at most `limit` UTF-16 units, marking the cut with "…"."""
    if ulen(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    k = limit - 1
    while k > 0 and ulen(text[:k]) > limit - 1:
        k -= max(1, ulen(text[:k]) - (limit - 1))
    return text[:k] + ELLIPSIS


def _one_line(value: object, limit: int) -> str:
    """Raw value as one clean line of at most about `limit` chars (not escaped)."""
    text = _clean(value, limit * 2 + 16)
    return clip(_WS.sub(" ", text).strip(), limit)


def esc(value: object, limit: int = TEXT_MAX) -> str:
    """Escaped mrkdwn of any value, at most `limit` units; `code` works, ``` fences cannot open."""
    return _cut(escape(_no_fence(_clean(value, limit + 1))), limit)


def esc_line(value: object, limit: int) -> str:
    """Escaped single line (newlines and runs of spaces become one space)."""
    return _cut(escape(_no_fence(_WS.sub(" ", _clean(value, limit * 2 + 16)).strip())), limit)


def _no_fence(text: str) -> str:
    """Put a zero-width space between adjacent backticks, so no ``` can open or close a fence."""
    return _BACKTICK_RUN.sub("`" + ZWSP, text) if "``" in text else text


def inline_code(value: object, limit: int = 200) -> str:
    """`value` as inline code; a backtick inside becomes ˋ so it cannot end the span early."""
    text = _WS.sub(" ", _clean(value, limit * 2 + 16)).strip().replace("`", "\u02cb")
    if not text:
        return "` `"
    return "`" + _cut(escape(text), max(limit - 2, 2)) + "`"


def quote(value: object, limit: int = 600, max_lines: int = 12) -> str:
    """Text as a mrkdwn block quote of at most `max_lines` lines; "" for blank text."""
    text = _clean(value, limit + 1).strip("\n")
    if not text.strip():
        return ""
    lines = text.split("\n")
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], ELLIPSIS]
    body = _cut(escape(_no_fence("\n".join(line.rstrip() for line in lines))), limit)
    return "\n".join(">" + line for line in body.split("\n"))


def code_block(lines: Sequence[str], max_chars: int = 2900) -> str:
    """A ``` fenced block of the last lines that fit in `max_chars`; "" when there is nothing to show.

    Lines are dropped from the top whole; only a single last line longer than the budget is cut
    (with "…"). Each line is escaped and cannot contain ``` so the fence always holds.
    """
    budget = max_chars - 8  # "```\n" + body + "\n```"
    if budget < 2 or isinstance(lines, str | bytes):
        return ""
    picked: list[str] = []
    used = 0
    full = False
    for raw in reversed(list(lines)):
        text = raw if isinstance(raw, str) else _clean(raw)
        for part in reversed(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
            line = _no_fence(escape(_clean(part, budget + 1).rstrip()))
            if not picked and not line.strip():
                continue  # trailing blank lines take no room
            size = ulen(line) + (1 if picked else 0)
            if used + size > budget:
                if not picked:
                    picked.append(_cut(line, budget))
                full = True
                break
            picked.append(line)
            used += size
        if full:
            break
    picked.reverse()
    while picked and not picked[0].strip():
        picked.pop(0)
    if not any(line.strip() for line in picked):
        return ""
    return "```\n" + "\n".join(picked) + "\n```"


def mention(user: object) -> str:
    """`<@U123>` for a Slack user id (a real mention), escaped text for anything else."""
    text = user.strip() if isinstance(user, str) else ""
    if _USER_ID.match(text):
        return f"<@{text}>"
    return esc_line(text, 60) or "someone"


def slack_date(ts: object, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A `<!date^...>` token that shows `ts` in each reader's own time zone."""
    seconds = _num(ts)
    if seconds is None:
        return "an unknown time"
    try:
        fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        fallback = str(int(seconds))
    return f"<!date^{int(seconds)}^{fmt}|{fallback}>"


def link(url: object, label: str) -> str:
    """`<url|label>` for an http(s) URL without characters that would break the token, else ""."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 1000:
        return ""
    if any(c in url for c in "<>|") or _WS.search(url) or _UNSAFE.search(url):
        return ""
    return f"<{escape(url)}|{label}>"


def state_emoji(state: object) -> str:
    return f":{STATE_EMOJI.get(state, UNKNOWN_EMOJI) if isinstance(state, str) else UNKNOWN_EMOJI}:"


def state_label(state: object) -> str:
    if isinstance(state, str) and state in STATE_LABEL:
        return STATE_LABEL[state]
    return esc_line(state, 30) or "unknown"


# ----------------------------------------------------------------------------- value helpers


def _num(value: object) -> float | None:
    """A finite, sane number or None (bools, strings, NaN and absurd magnitudes are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) <= 1e15 else None


def _int(value: object) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def format_tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000_000:
        return f"{n / 1_000_000:.1f}M"
    return f"{n / 1_000_000_000:.1f}B"


def format_cost(usd: float) -> str:
    if usd <= 0:
        return "$0.00"
    if usd < 0.01:
        return "<$0.01"
    return f"${usd:,.2f}" if usd < 1e9 else f"${usd:.3g}"


def _duration(seconds: float | None) -> str:
    value = _num(seconds)
    return format_duration(max(0.0, value)) if value is not None else "?"


def _stats(tools: object = None, tokens_in: object = None, tokens_out: object = None,
           cost: object = None) -> list[str]:
    parts: list[str] = []
    n_tools = _int(tools)
    if n_tools:
        parts.append(_count(n_tools, "tool call"))
    t_in, t_out = _int(tokens_in), _int(tokens_out)
    if t_in or t_out:
        parts.append(f"{format_tokens(max(t_in or 0, 0))} in / {format_tokens(max(t_out or 0, 0))} out tokens")
    usd = _num(cost)
    if usd is not None and usd >= 0:
        parts.append(format_cost(usd))
    return parts


# ----------------------------------------------------------------------------- block builders


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not auto-link or auto-parse mentions in the text; our own <@U..> and
    # <!date> tokens still work.
    return {"type": "mrkdwn", "text": text or " ", "verbatim": True}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text or " ", "emoji": True}


def _section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": _mrkdwn(_cut(text, TEXT_MAX))}
    if block_id:
        block["block_id"] = block_id
    return block


def _header(text: str) -> Block:
    return {"type": "header", "text": _plain(clip(text, HEADER_MAX))}


def _context(*texts: str) -> Block:
    items = [t for t in texts if t][:CONTEXT_ELEMENTS]
    return {"type": "context", "elements": [_mrkdwn(_cut(t, TEXT_MAX)) for t in items or [" "]]}


def _confirm(title: str, text: str, confirm: str, deny: str = "Cancel", style: str | None = None) -> Block:
    dialog: Block = {
        "title": _plain(clip(title, CONFIRM_TITLE_MAX)),
        "text": _plain(clip(text, CONFIRM_TEXT_MAX)),
        "confirm": _plain(clip(confirm, CONFIRM_BUTTON_MAX)),
        "deny": _plain(clip(deny, CONFIRM_BUTTON_MAX)),
    }
    if style:
        dialog["style"] = style
    return dialog


def _button(text: str, action_id: str, value: str, style: str | None = None,
            confirm: Block | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": _plain(clip(text, BUTTON_TEXT_MAX)),
        "action_id": action_id,
        "value": value[:BUTTON_VALUE_MAX] or "-",
    }
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = confirm
    return button


def _actions(buttons: Iterable[Block], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(buttons)[:ACTIONS_ELEMENTS]}
    if block_id:
        block["block_id"] = block_id[:BLOCK_ID_MAX]
    return block


def _plain_line(value: object, limit: int) -> str:
    """A user-supplied value for a plain_text field: one line, escaped like mrkdwn, clipped."""
    return esc_line(value, limit)


def _task_id(task: Task) -> str:
    return task.id if isinstance(task.id, str) else str(task.id)


def _merge_confirm(task: Task, branch: object, base: object) -> Block:
    b = _plain_line(branch or task.branch or "this task's branch", 100)
    target = _plain_line(base or task.base_branch or "its base branch", 80)
    return _confirm(
        "Merge task?",
        f"Merge `{b}` into {target}? The task's worktree is removed afterwards.",
        "Merge",
        style="primary",
    )


def _discard_confirm(task: Task, branch: object) -> Block:
    b = _plain_line(branch or task.branch or "its branch", 120)
    return _confirm(
        "Discard task?",
        f"Delete the worktree and the branch `{b}`? The agent's work is lost.",
        "Discard",
        style="danger",
    )


def _cancel_confirm(task: Task) -> Block:
    return _confirm("Cancel task?", f"Stop the agent working on task {_plain_line(_task_id(task), 40)}?",
                    "Stop it", "Keep running", style="danger")


def _fit(build: Callable[[float], list[Block]], surface: str = "message") -> list[Block]:
    """Render at shrinking scales until the blocks pass `validate_blocks`."""
    blocks: list[Block] = []
    for scale in (1.0, 0.5, 0.25, 0.12, 0.05):
        blocks = build(scale)
        if not validate_blocks(blocks, surface=surface):
            return blocks
    return blocks


def _fallback(text: str) -> str:
    """Notification text: escaped by the caller, never empty, at most TEXT_MAX."""
    text = _cut(text.strip(), TEXT_MAX)
    return text or "superset-bot"


# ----------------------------------------------------------------------------- validation


def _text_problems(obj: object, where: str, limit: int, *, plain_only: bool = False,
                   required: bool = True) -> list[str]:
    if obj is None and not required:
        return []
    if not isinstance(obj, Mapping):
        return [f"{where}: expected a text object"]
    kind = obj.get("type")
    if kind not in ("plain_text", "mrkdwn") or (plain_only and kind != "plain_text"):
        return [f"{where}: text type {kind!r} not allowed here"]
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return [f"{where}: text must be a non-empty string"]
    problems = []
    if ulen(text) > limit:
        problems.append(f"{where}: text is {ulen(text)} chars, limit {limit}")
    if kind == "plain_text" and "verbatim" in obj:
        problems.append(f"{where}: verbatim is only for mrkdwn")
    if kind == "mrkdwn" and "emoji" in obj:
        problems.append(f"{where}: emoji is only for plain_text")
    return problems


def _element_problems(el: object, where: str) -> list[str]:
    if not isinstance(el, Mapping):
        return [f"{where}: element must be an object"]
    problems: list[str] = []
    kind = el.get("type")
    action_id = el.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or not action_id
                                  or len(action_id) > ACTION_ID_MAX):
        problems.append(f"{where}: bad action_id")
    if kind == "button":
        problems += _text_problems(el.get("text"), f"{where}.text", BUTTON_TEXT_MAX, plain_only=True)
        value = el.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > BUTTON_VALUE_MAX):
            problems.append(f"{where}: button value too long or not a string")
        url = el.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > URL_MAX):
            problems.append(f"{where}: bad url")
        if el.get("style") not in (None, "primary", "danger"):
            problems.append(f"{where}: style must be primary or danger")
        confirm = el.get("confirm")
        if confirm is not None:
            problems += _confirm_problems(confirm, f"{where}.confirm")
    elif kind in ("static_select", "external_select"):
        problems += _text_problems(el.get("placeholder"), f"{where}.placeholder", PLACEHOLDER_MAX,
                                   plain_only=True, required=False)
        options = el.get("options")
        if kind == "static_select":
            if not isinstance(options, list) or not options:
                problems.append(f"{where}: static_select needs 1 to {SELECT_OPTIONS} options")
                options = []
            elif len(options) > SELECT_OPTIONS:
                problems.append(f"{where}: {len(options)} options, limit {SELECT_OPTIONS}")
            for i, option in enumerate(options):
                problems += _option_problems(option, f"{where}.options[{i}]")
            initial = el.get("initial_option")
            if initial is not None:
                problems += _option_problems(initial, f"{where}.initial_option")
                if initial not in options:
                    problems.append(f"{where}: initial_option is not one of the options")
    elif kind == "plain_text_input":
        problems += _text_problems(el.get("placeholder"), f"{where}.placeholder", PLACEHOLDER_MAX,
                                   plain_only=True, required=False)
        initial = el.get("initial_value")
        max_length = el.get("max_length", INPUT_VALUE_MAX)
        if initial is not None and (not isinstance(initial, str) or len(initial) > min(max_length, INPUT_VALUE_MAX)):
            problems.append(f"{where}: initial_value too long")
    elif kind == "image":
        pass
    elif kind in ("plain_text", "mrkdwn"):
        problems += _text_problems(el, where, TEXT_MAX)
    elif kind not in ("overflow", "datepicker", "timepicker", "checkboxes", "radio_buttons",
                      "users_select", "conversations_select", "channels_select", "multi_static_select"):
        problems.append(f"{where}: unknown element type {kind!r}")
    return problems


def _option_problems(option: object, where: str) -> list[str]:
    if not isinstance(option, Mapping):
        return [f"{where}: option must be an object"]
    problems = _text_problems(option.get("text"), f"{where}.text", OPTION_TEXT_MAX)
    value = option.get("value")
    if not isinstance(value, str) or not value or len(value) > OPTION_VALUE_MAX:
        problems.append(f"{where}: option value must be 1-{OPTION_VALUE_MAX} chars")
    problems += _text_problems(option.get("description"), f"{where}.description", OPTION_DESCRIPTION_MAX,
                               plain_only=True, required=False)
    return problems


def _confirm_problems(confirm: object, where: str) -> list[str]:
    if not isinstance(confirm, Mapping):
        return [f"{where}: confirm must be an object"]
    problems = _text_problems(confirm.get("title"), f"{where}.title", CONFIRM_TITLE_MAX, plain_only=True)
    problems += _text_problems(confirm.get("text"), f"{where}.text", CONFIRM_TEXT_MAX)
    problems += _text_problems(confirm.get("confirm"), f"{where}.confirm", CONFIRM_BUTTON_MAX, plain_only=True)
    problems += _text_problems(confirm.get("deny"), f"{where}.deny", CONFIRM_BUTTON_MAX, plain_only=True)
    if confirm.get("style") not in (None, "primary", "danger"):
        problems.append(f"{where}: style must be primary or danger")
    return problems


def validate_blocks(blocks: object, *, surface: str = "message") -> list[str]:
    """Every Block Kit limit Slack enforces that our renderers could break; [] when all hold.

    `surface` is "message", "modal" or "home". Never raises, whatever it is given.
    """
    if not isinstance(blocks, list):
        return ["blocks must be a list"]
    problems: list[str] = []
    limit = MAX_BLOCKS.get(surface, 50)
    if len(blocks) > limit:
        problems.append(f"{len(blocks)} blocks, limit {limit} for a {surface}")
    if surface == "message" and not blocks:
        problems.append("a message needs at least one block (or send text only)")
    block_ids: set[str] = set()
    markdown_total = 0
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, Mapping):
            problems.append(f"{where}: block must be an object")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not block_id or len(block_id) > BLOCK_ID_MAX:
                problems.append(f"{where}: bad block_id")
            elif block_id in block_ids:
                problems.append(f"{where}: duplicate block_id {block_id!r}")
            else:
                block_ids.add(block_id)
        kind = block.get("type")
        if kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and not fields:
                problems.append(f"{where}: section needs text or fields")
            if text is not None:
                problems += _text_problems(text, f"{where}.text", TEXT_MAX)
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > SECTION_FIELDS:
                    problems.append(f"{where}: at most {SECTION_FIELDS} fields")
                else:
                    for j, fld in enumerate(fields):
                        problems += _text_problems(fld, f"{where}.fields[{j}]", SECTION_FIELD_MAX)
            if block.get("accessory") is not None:
                problems += _element_problems(block.get("accessory"), f"{where}.accessory")
        elif kind == "header":
            problems += _text_problems(block.get("text"), f"{where}.text", HEADER_MAX, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > CONTEXT_ELEMENTS:
                problems.append(f"{where}: context needs 1 to {CONTEXT_ELEMENTS} elements")
            else:
                for j, el in enumerate(elements):
                    problems += _element_problems(el, f"{where}.elements[{j}]")
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > ACTIONS_ELEMENTS:
                problems.append(f"{where}: actions needs 1 to {ACTIONS_ELEMENTS} elements")
            else:
                seen: set[str] = set()
                for j, el in enumerate(elements):
                    problems += _element_problems(el, f"{where}.elements[{j}]")
                    action_id = el.get("action_id") if isinstance(el, Mapping) else None
                    if isinstance(action_id, str):
                        if action_id in seen:
                            problems.append(f"{where}: duplicate action_id {action_id!r}")
                        seen.add(action_id)
        elif kind == "input":
            if surface == "message":
                problems.append(f"{where}: input blocks belong in modals")
            problems += _text_problems(block.get("label"), f"{where}.label", INPUT_LABEL_MAX, plain_only=True)
            problems += _text_problems(block.get("hint"), f"{where}.hint", INPUT_HINT_MAX,
                                       plain_only=True, required=False)
            problems += _element_problems(block.get("element"), f"{where}.element")
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text:
                problems.append(f"{where}: markdown block needs text")
            else:
                markdown_total += ulen(text)
        elif kind not in ("divider", "image", "rich_text"):
            problems.append(f"{where}: unknown block type {kind!r}")
    if markdown_total > MARKDOWN_TOTAL_MAX:
        problems.append(f"markdown blocks hold {markdown_total} chars, limit {MARKDOWN_TOTAL_MAX}")
    if surface == "message" and not problems:
        try:
            size = ulen(json.dumps(blocks, ensure_ascii=False))
        except (TypeError, ValueError):
            return ["blocks are not JSON-serialisable"]
        if size > MESSAGE_BLOCKS_JSON:
            problems.append(f"blocks JSON is {size} chars, limit {MESSAGE_BLOCKS_JSON}")
    return problems


def validate_view(view: object) -> list[str]:
    """Limits of a modal or App Home view, its blocks included; [] when all hold."""
    if not isinstance(view, Mapping):
        return ["view must be an object"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        return [f"unknown view type {kind!r}"]
    problems: list[str] = []
    if kind == "modal":
        problems += _text_problems(view.get("title"), "title", VIEW_TITLE_MAX, plain_only=True)
        for key in ("submit", "close"):
            problems += _text_problems(view.get(key), key, VIEW_TITLE_MAX, plain_only=True, required=False)
    metadata = view.get("private_metadata")
    if metadata is not None and (not isinstance(metadata, str) or len(metadata) > PRIVATE_METADATA_MAX):
        problems.append(f"private_metadata must be a string of at most {PRIVATE_METADATA_MAX} chars")
    callback_id = view.get("callback_id")
    if callback_id is not None and (not isinstance(callback_id, str) or len(callback_id) > CALLBACK_ID_MAX):
        problems.append("bad callback_id")
    return problems + validate_blocks(view.get("blocks"), surface=str(kind))


# ----------------------------------------------------------------------------- task messages


def _task_context(task: Task) -> list[str]:
    branch = f"branch {inline_code(task.branch, 120)}" if task.branch else "branch pending"
    return [
        f"repo {inline_code(task.repo, 80)}",
        branch,
        f"preset {inline_code(task.preset, 60)}",
        f"by {mention(task.requester)}",
    ]


def root_message(task: Task) -> Rendered:
    """The channel message that starts a task's thread; updated when the state changes."""
    tid = _task_id(task)
    label = state_label(task.state)

    def build(scale: float) -> list[Block]:
        prompt = quote(task.prompt, max(40, int(500 * scale)), max(2, int(8 * scale))) or ">_(no prompt)_"
        head = f"{state_emoji(task.state)} *Task {inline_code(tid, 40)}* · {label}"
        return [_section(f"{head}\n{prompt}"), _context(" · ".join([*_task_context(task), label]))]

    text = f"Task {esc_line(tid, 40)} · {label}: {esc_line(task.prompt, 200)}"
    return Rendered(_fallback(text), _fit(build))


def _elapsed(task: Task, now: float) -> float:
    start = _num(task.started_at) or _num(task.created_at) or now
    end = now
    if task.state not in ACTIVE_STATES and _num(task.finished_at):
        end = _num(task.finished_at) or now
    if task.state == QUEUED:
        start = _num(task.created_at) or now
    return max(0.0, end - start)


def _headline(task: Task, progress: Mapping[str, Any], now: float, queue_position: int | None,
              scale: float = 1.0) -> str:
    """First lines of a status card: state, time, what the agent is doing right now."""
    state = task.state
    took = _duration(_elapsed(task, now))
    emoji = state_emoji(state)
    if state == QUEUED:
        head = f"{emoji} *Queued* · waiting {took}"
        pos = _int(queue_position)
        if pos is not None and pos > 0:
            head += f" · #{pos} in line"
        return head
    if state == PREPARING:
        return f"{emoji} *Preparing the worktree* · {took}"
    if state == RUNNING:
        head = f"{emoji} *Running* · {took}"
        action = _str(progress.get("action"))
        phase = progress.get("phase")
        if action:
            head += f"\n*Now:* {inline_code(action, max(40, int(200 * scale)))}"
        elif phase == "finishing":
            head += "\n_Wrapping up…_"
        elif phase == "done":
            head += "\n_The agent has exited._"
        else:
            head += "\n_Starting the agent…_"
        if progress.get("is_error") is True:
            head += "\n⚠️ The agent reported an error."
        return head
    head = f"{emoji} *{state_label(state).capitalize()}* · took {took}"
    if task.reason and state not in (FINISHED, MERGED):
        head += f"\n{esc(task.reason, max(60, int(500 * scale)))}"
    return head


def _tail(progress: Mapping[str, Any]) -> list[str]:
    return [line if isinstance(line, str) else _clean(line) for line in _list(progress.get("tail"))[-200:]]


def _progress_context(task: Task, progress: Mapping[str, Any]) -> list[str]:
    parts = _stats(progress.get("tools_used"), progress.get("tokens_in"), progress.get("tokens_out"),
                   progress.get("cost_usd"))
    lines = _int(progress.get("lines_seen"))
    if lines:
        parts.append(_count(lines, "line") + " of output")
    items = [f"task {inline_code(_task_id(task), 40)}"]
    if parts:
        items.append(" · ".join(parts))
    return items


def _denials(info: Mapping[str, Any], scale: float) -> str:
    """What the agent's permissions or sandbox refused, each with how to grant it ("" for none)."""
    denials = [d for d in _list(info.get("denials")) if isinstance(d, str) and d.strip()]
    if not denials:
        return ""
    n = max(1, int(5 * scale))
    lines = [f"• {esc(d, max(60, int(300 * scale)))}" for d in denials[:n]]
    if len(denials) > n:
        lines.append(f"_…and {len(denials) - n:,} more_")
    return ":no_entry: *Refused by the agent's permissions*\n" + "\n".join(lines)


def status_card(task: Task, progress: Mapping[str, Any] | None, *, now: float,
                queue_position: int | None = None) -> Rendered:
    """The one status message in a task's thread, kept current with chat.update."""
    p = _map(progress)
    tail = _tail(p)

    def build(scale: float) -> list[Block]:
        blocks = [_section(_headline(task, p, now, queue_position, scale)),
                  _context(*_progress_context(task, p))]
        denials = _denials(p, scale)
        if denials:
            blocks.append(_section(denials))
        block = code_block(tail, max_chars=int(2900 * scale))
        if block:
            blocks.append(_section(block))
        return blocks

    action = _str(p.get("action"))
    text = f"Task {esc_line(_task_id(task), 40)}: {state_label(task.state)} · {_duration(_elapsed(task, now))}"
    if action and task.state == RUNNING:
        text += f" · {esc_line(action, 200)}"
    return Rendered(_fallback(text), _fit(build))


def milestone(task: Task, text: str, ok: bool = True, *, actor: str | None = None) -> Rendered:
    """A short thread reply marking a step (worktree ready, checks passed, merged, ...).

    `text` is escaped like everything else; to credit a person, write "{actor}" in it and pass
    `actor` (a user id becomes a real `<@U..>` mention).
    """
    mark = "✅" if ok else "⚠️"
    who = mention(actor) if actor else "someone"
    body = (esc(text, 2800) or "(no details)").replace("{actor}", who)
    line = esc_line(text, 500).replace("{actor}", who)
    return Rendered(_fallback(f"{mark} Task {esc_line(_task_id(task), 40)}: {line}"),
                    [_section(f"{mark} {body}")])


# ----------------------------------------------------------------------------- reviews

_STATUS_LETTERS = "AMDRCTU"


def _file_line(entry: Mapping[str, Any], limit: int) -> str:
    status = entry.get("status")
    letter = status[:1].upper() if isinstance(status, str) and status else "?"
    letter = letter if letter in _STATUS_LETTERS else "?"
    path = inline_code(entry.get("path") or "?", limit)
    old = entry.get("old_path")
    if isinstance(old, str) and old and old != entry.get("path"):
        path = f"{inline_code(old, limit // 2)} → {inline_code(entry.get('path') or '?', limit // 2)}"
    if entry.get("binary") is True:
        change = "binary"
    else:
        added, deleted = _int(entry.get("added")) or 0, _int(entry.get("deleted")) or 0
        change = f"+{added:,} {MINUS}{deleted:,}"
    return f"`{letter}` {path}  {change}"


def _weight(entry: Mapping[str, Any]) -> int:
    return max(_int(entry.get("added")) or 0, 0) + max(_int(entry.get("deleted")) or 0, 0)


def _review_blocks(task: Task, review: Mapping[str, Any], scale: float, *, header: str,
                   top_files: int) -> list[Block]:
    """Header and summary of a review, shared by the open and the closed form."""
    tid = _task_id(task)
    state = review.get("state") if isinstance(review.get("state"), str) else task.state
    branch = _str(review.get("branch")) or task.branch or "?"
    base = _str(review.get("base_branch")) or task.base_branch or "?"
    files = [f for f in _list(review.get("files")) if isinstance(f, Mapping)]
    blocks: list[Block] = [_header(header)]

    lines = [f"*Task {inline_code(tid, 40)}* · {inline_code(branch, 100)} → {inline_code(base, 60)}"]
    if state != FINISHED:
        reason = _str(review.get("reason")) or task.reason
        problem = f"{state_emoji(state)} *{state_label(state).capitalize()}*"
        if reason:
            problem += f": {esc(reason, max(60, int(400 * scale)))}"
        lines.append(problem)
    commits = max(_int(review.get("commits")) or 0, 0)
    summary = [f"*{_count(len(files), 'file')} changed*"]
    summary.append(f"+{max(_int(review.get('insertions')) or 0, 0):,} "
                   f"{MINUS}{max(_int(review.get('deletions')) or 0, 0):,}")
    summary.append(_count(commits, "commit"))
    duration = _num(review.get("duration_s"))
    if duration is not None:
        summary.append(f"took {_duration(duration)}")
    summary += _stats(None, review.get("tokens_in"), review.get("tokens_out"), review.get("cost_usd"))
    lines.append(" · ".join(summary))
    blocks.append(_section("\n".join(lines)))

    if files:
        shown = max(1, int(max(0, min(top_files, 50)) * scale)) if top_files > 0 else 0
        path_limit = max(30, int(160 * scale))
        ranked = sorted(files, key=_weight, reverse=True)[:shown]
        file_lines = [_file_line(f, path_limit) for f in ranked]
        if len(files) > len(ranked):
            file_lines.append(f"_…and {len(files) - len(ranked):,} more_")
        blocks.append(_section("\n".join(file_lines)))
    elif not commits:
        blocks.append(_section("_The agent made no changes._"))

    checks = review.get("checks")
    if isinstance(checks, Mapping):
        passed = checks.get("passed") is True
        summary_text = esc(checks.get("summary") or "", max(40, int(300 * scale)))
        head = "✅ *Checks passed*" if passed else "❌ *Checks failed*"
        text = head + (f" · {summary_text}" if summary_text.strip() else "")
        tail = checks.get("failing_tail")
        if not passed and isinstance(tail, str | list | tuple):
            tail_lines = tail.split("\n") if isinstance(tail, str) else [_clean(x) for x in tail]
            block = code_block(tail_lines[-300:], max_chars=int(1500 * scale))
            if block:
                text += "\n" + block
        blocks.append(_section(text))

    if review.get("clean") is True:
        blocks.append(_section(f":white_check_mark: Merges cleanly into {inline_code(base, 60)}"))
    else:
        conflicts = [c for c in _list(review.get("conflicts")) if isinstance(c, str) and c]
        if conflicts:
            n = max(1, int(10 * scale))
            names = ", ".join(inline_code(c, max(30, int(120 * scale))) for c in conflicts[:n])
            more = f" and {len(conflicts) - n:,} more" if len(conflicts) > n else ""
            blocks.append(_section(f":warning: Conflicts with {inline_code(base, 60)} in: {names}{more}"))
        else:
            blocks.append(_section(f":warning: Does not merge cleanly into {inline_code(base, 60)}"))

    denials = _denials(review, scale)
    if denials:
        blocks.append(_section(denials))

    final = quote(review.get("final_text"), max(60, int(600 * scale)), max(2, int(12 * scale)))
    if final:
        blocks.append(_section(f"*The agent's summary*\n{final}"))

    notes = [n for n in _list(review.get("notes")) if isinstance(n, str) and n.strip()]
    if notes:
        blocks.append(_context(esc(" · ".join(notes[:10]), max(60, int(600 * scale)))))
    return blocks


def review_message(task: Task, review: Mapping[str, Any], *, top_files: int = 10,
                   bot_user: str | None = None) -> Rendered:
    """The review posted when an agent is done: what changed, checks, merge preview, buttons."""
    r = _map(review)
    tid = _task_id(task)
    state = r.get("state") if isinstance(r.get("state"), str) else task.state
    header = "Ready for review" if state == FINISHED else "Finished with problems"
    branch = _str(r.get("branch")) or task.branch
    base = _str(r.get("base_branch")) or task.base_branch
    files = _list(r.get("files"))
    no_changes = not files and not (_int(r.get("commits")) or 0)
    value = tid[:BUTTON_VALUE_MAX]
    buttons: list[Block] = []
    if not no_changes:
        if r.get("clean") is True:
            buttons.append(_button("Merge", ACTION_MERGE, value, "primary", _merge_confirm(task, branch, base)))
        else:
            buttons.append(_button("Update from base", ACTION_UPDATE, value, "primary"))
    buttons.append(_button("Discard", ACTION_DISCARD, value, "danger", _discard_confirm(task, branch)))
    if not no_changes:
        buttons.append(_button("View diff", ACTION_DIFF, value))
    who = mention(bot_user) if bot_user else "@bot"
    hint = f"Reply in this thread mentioning {who} to send the agent a follow-up."

    def build(scale: float) -> list[Block]:
        blocks = _review_blocks(task, r, scale, header=header, top_files=top_files)
        return [*blocks, _actions(buttons, "review_actions"), _context(hint)]

    summary = (f"{_count(len(files), 'file')} changed, +{max(_int(r.get('insertions')) or 0, 0):,} "
               f"{MINUS}{max(_int(r.get('deletions')) or 0, 0):,}")
    if state == FINISHED:
        text = f"Task {esc_line(tid, 40)} is ready for review: {summary}"
    else:
        reason = _str(r.get("reason")) or task.reason
        text = f"Task {esc_line(tid, 40)} finished with problems ({state_label(state)}"
        text += f": {esc_line(reason, 300)})" if reason else ")"
        text += f": {summary}"
    return Rendered(_fallback(text), _fit(build))


_OUTCOMES = {
    MERGED: ("Merged", "twisted_rightwards_arrows"),
    DISCARDED: ("Discarded", "wastebasket"),
    PRUNED: ("Pruned", "broom"),
    CANCELLED: ("Cancelled", "no_entry_sign"),
    "superseded": ("Superseded by a newer review", "arrows_counterclockwise"),
}


def closed_review(task: Task, review: Mapping[str, Any] | None, *, outcome: str, actor: str,
                  when: float) -> Rendered:
    """The review once decided: the same summary, no buttons, who closed it and when.

    `outcome` is merged, discarded, pruned, cancelled or superseded (a newer review replaced it);
    an empty `actor` leaves out the "by ...".
    """
    verb, emoji = _OUTCOMES.get(outcome, (state_label(outcome).capitalize(), UNKNOWN_EMOJI))
    tid = _task_id(task)
    by = f" by {mention(actor)}" if isinstance(actor, str) and actor.strip() and outcome != "superseded" else ""
    line = f":{emoji}: {verb}{by} · {slack_date(when)}"
    if outcome == MERGED and _str(task.merge_commit):
        line += f" as {inline_code((task.merge_commit or '')[:12], 20)}"
    header = f":{emoji}: {verb.split(' by ')[0]}"

    def build(scale: float) -> list[Block]:
        if isinstance(review, Mapping):
            blocks = _review_blocks(task, review, scale, header=header, top_files=10)
        else:
            branch = f" · {inline_code(task.branch, 100)}" if task.branch else ""
            blocks = [_header(header), _section(f"*Task {inline_code(tid, 40)}*{branch}")]
        return [*blocks, _context(line)]

    text = f"Task {esc_line(tid, 40)}: {verb.lower()}{by}"
    return Rendered(_fallback(text), _fit(build))


# ----------------------------------------------------------------------------- lists and status


def task_line(task: Task, permalink: str | None, *, now: float | None = None) -> str:
    """One mrkdwn line per task for lists: emoji, id, state, repo, age, prompt, thread link."""
    current = time.time() if now is None else now
    created = _num(task.created_at)
    age = f"{_duration(current - created)} ago" if created else "?"
    parts = [
        f"{state_emoji(task.state)} {inline_code(_task_id(task), 40)} *{state_label(task.state)}*",
        esc_line(task.repo, 40),
        age,
        f"“{esc_line(_no_fence(_one_line(task.prompt, 60)), 300)}”",
    ]
    thread = link(permalink, "thread")
    if thread:
        parts.append(thread)
    return " · ".join(parts)


def _chunk_sections(lines: Sequence[str], limit: int = 2900) -> list[Block]:
    blocks: list[Block] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = _cut(line, limit)
        if current and size + ulen(line) + 1 > limit:
            blocks.append(_section("\n".join(current)))
            current, size = [], 0
        current.append(line)
        size += ulen(line) + 1
    if current:
        blocks.append(_section("\n".join(current)))
    return blocks


def task_list(tasks: Sequence[Task], permalinks: Mapping[str, str], *, title: str, now: float) -> Rendered:
    """The `list` answer (ephemeral): one line per task, the newest work first as given."""
    links = _map(permalinks)
    heading = esc_line(title, HEADER_MAX) or "Tasks"
    if not tasks:
        empty = "No tasks running or awaiting review."
        return Rendered(empty, [_header(heading), _section(empty)])

    def build(scale: float) -> list[Block]:
        n = max(1, int(LIST_MAX * scale))
        shown = tasks[:n]
        lines = [task_line(t, links.get(t.id) if isinstance(t.id, str) else None, now=now) for t in shown]
        blocks = [_header(heading), *_chunk_sections(lines)]
        if len(tasks) > len(shown):
            blocks.append(_context(f"…and {len(tasks) - len(shown):,} more"))
        return blocks

    text = f"{heading}: {_count(len(tasks), 'task')}"
    return Rendered(_fallback(text), _fit(build))


def _review_line(task: Task) -> str:
    """A one-line summary of a task's saved review (`task.review` JSON), or ""."""
    if not task.review:
        return ""
    try:
        data = json.loads(task.review)
    except (ValueError, TypeError, RecursionError):
        return ""
    if not isinstance(data, Mapping):
        return ""
    files = _list(data.get("files"))
    parts = [f"{_count(len(files), 'file')} changed",
             f"+{max(_int(data.get('insertions')) or 0, 0):,} {MINUS}{max(_int(data.get('deletions')) or 0, 0):,}"]
    base = _str(data.get("base_branch")) or task.base_branch or "base"
    if data.get("clean") is True:
        parts.append(f"merges cleanly into {inline_code(base, 60)}")
    else:
        parts.append(f"conflicts with {inline_code(base, 60)}")
    return " · ".join(parts)


def status_message(task: Task, progress: Mapping[str, Any] | None, permalink: str | None, *, now: float,
                   queue_position: int | None) -> Rendered:
    """The `status ID` answer (ephemeral): the task, its progress and a link to its thread."""
    p = _map(progress)
    tid = _task_id(task)
    tail = _tail(p)

    def build(scale: float) -> list[Block]:
        head = f"{state_emoji(task.state)} *Task {inline_code(tid, 40)}* · {state_label(task.state)}"
        prompt = quote(task.prompt, max(40, int(300 * scale)), max(2, int(5 * scale)))
        blocks = [_section(f"{head}\n{prompt}" if prompt else head)]
        ctx = _task_context(task)
        created = _num(task.created_at)
        if created:
            ctx.append(f"created {slack_date(created)}")
        blocks.append(_context(" · ".join(ctx)))
        body = _headline(task, p, now, queue_position, scale)
        review = _review_line(task)
        if review and task.state not in ACTIVE_STATES:
            body += "\n" + review
        blocks.append(_section(body))
        stats = _progress_context(task, p)[1:]
        if stats:
            blocks.append(_context(*stats))
        block = code_block(tail, max_chars=int(1500 * scale))
        if block and task.state in ACTIVE_STATES:
            blocks.append(_section(block))
        thread = link(permalink, "Open the task's thread")
        if thread:
            blocks.append(_context(thread))
        return blocks

    text = f"Task {esc_line(tid, 40)}: {state_label(task.state)} · {_duration(_elapsed(task, now))}"
    return Rendered(_fallback(text), _fit(build))


# ----------------------------------------------------------------------------- commands


def help_message(allowed: Sequence[str], prefix: str = "/superset") -> Rendered:
    """The commands this person may use, one per line, in the grammar's order."""
    names = [spec for spec in SPECS if spec in set(allowed)]
    safe_prefix = _one_line(prefix, 40).replace("`", "") or "/superset"
    if not names:
        text = "You don't have access to any superset-bot commands. Ask an admin to add you."
        return Rendered(text, [_section(f":lock: {text}")])
    lines = [f"{escape(usage(name, safe_prefix))} – {escape(SPECS[name].help)}" for name in names]
    blocks = [_section("*superset-bot commands*"), *_chunk_sections(lines)]
    text = "superset-bot commands: " + ", ".join(names)
    return Rendered(_fallback(text), blocks)


def error_message(text: str) -> Rendered:
    """An ephemeral error: the sentence and usage line from CommandError/UserError, backticks kept."""
    body = esc(text, 2800).strip() or "Something went wrong."
    return Rendered(_fallback(body), [_section(f":warning: {body}")])


# ----------------------------------------------------------------------------- spawn modal


def _option(text: object, value: str, description: object = None) -> Block:
    option: Block = {"text": _plain(_plain_line(text, OPTION_TEXT_MAX) or "?"), "value": value}
    desc = _plain_line(description, OPTION_DESCRIPTION_MAX) if description else ""
    if desc:
        option["description"] = _plain(desc)
    return option


def _select_block(block_id: str, label: str, placeholder: str, options: list[Block],
                  initial: str | None, hint: str | None = None) -> Block:
    if options:
        element: Block = {
            "type": "static_select",
            "action_id": block_id,
            "placeholder": _plain(placeholder),
            "options": options,
        }
        chosen = next((o for o in options if o["value"] == initial), None)
        if chosen is not None:
            element["initial_option"] = chosen
    else:  # nothing configured: let the person type a name and get a clear error back
        element = {"type": "plain_text_input", "action_id": block_id, "placeholder": _plain(placeholder)}
    block: Block = {"type": "input", "block_id": block_id, "label": _plain(label), "element": element}
    if hint:
        block["hint"] = _plain(hint)
    return block


def _select_options(items: Iterable[tuple[str, object]], initial: str | None) -> list[Block]:
    """At most 100 options, the initial one always among them; values Slack cannot hold are skipped."""
    options: list[Block] = []
    seen: set[str] = set()
    for value, description in items:
        if not isinstance(value, str) or not value or len(value) > OPTION_VALUE_MAX or value in seen:
            continue
        seen.add(value)
        options.append(_option(value, value, description))
    index = next((i for i, o in enumerate(options) if o["value"] == initial), -1)
    if index >= SELECT_OPTIONS:
        options.insert(0, options.pop(index))  # the preselected one must survive the cut
    return options[:SELECT_OPTIONS]


def spawn_modal(repos: Sequence[str], presets: Mapping[str, str], *, repo: str | None, preset: str | None,
                base: str | None, channel: str, private_metadata_extra: Mapping[str, Any] | None = None,
                prompt: str | None = None) -> dict[str, Any]:
    """The `views.open` modal for a new task, prefilled with whatever the command already said."""
    repo_options = _select_options(((r, None) for r in repos if isinstance(r, str)), repo)
    preset_options = _select_options(
        ((name, desc) for name, desc in _map(presets).items() if isinstance(name, str)), preset
    )
    base_element: Block = {
        "type": "plain_text_input",
        "action_id": SPAWN_BASE,
        "placeholder": _plain("default branch"),
    }
    if isinstance(base, str) and base.strip():
        base_element["initial_value"] = base.strip()[:255]
    prompt_element: Block = {
        "type": "plain_text_input",
        "action_id": SPAWN_PROMPT,
        "multiline": True,
        "focus_on_load": True,
        "placeholder": _plain("e.g. Fix the flaky login test in tests/test_auth.py"),
    }
    if isinstance(prompt, str) and prompt.strip():
        prompt_element["initial_value"] = prompt.strip()[:INPUT_VALUE_MAX]
    blocks: list[Block] = [
        _select_block(SPAWN_REPO, "Repository", "Choose a repository", repo_options, repo),
        _select_block(SPAWN_PRESET, "Preset", "Choose a preset", preset_options, preset,
                      hint="Which agent runs, and how its worktree is prepared."),
        {
            "type": "input",
            "block_id": SPAWN_BASE,
            "optional": True,
            "label": _plain("Base branch"),
            "hint": _plain("The branch to start from and merge back into. Empty: the repository's default."),
            "element": base_element,
        },
        {
            "type": "input",
            "block_id": SPAWN_PROMPT,
            "label": _plain("What should the agent do?"),
            "element": prompt_element,
        },
    ]
    meta: dict[str, Any] = {**dict(_map(private_metadata_extra)), "channel": channel}
    try:
        metadata = json.dumps(meta, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        metadata = ""
    if not metadata or len(metadata) > PRIVATE_METADATA_MAX:
        metadata = json.dumps({"channel": channel if isinstance(channel, str) else ""}, separators=(",", ":"))
        if len(metadata) > PRIVATE_METADATA_MAX:
            metadata = "{}"
    return {
        "type": "modal",
        "callback_id": SPAWN_CALLBACK,
        "title": _plain("New agent task"),
        "submit": _plain("Spawn"),
        "close": _plain("Cancel"),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def spawn_metadata(view: Mapping[str, Any]) -> dict[str, Any]:
    """The private_metadata a spawn modal was opened with ({} when missing or unreadable)."""
    raw = _map(view).get("private_metadata")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return dict(data) if isinstance(data, dict) else {}


def _submitted(values: Mapping[str, Any], block_id: str) -> str | None:
    block = _map(values.get(block_id))
    element = block.get(block_id)
    if not isinstance(element, Mapping):
        element = next((v for v in block.values() if isinstance(v, Mapping)), {})
    selected = element.get("selected_option")
    if isinstance(selected, Mapping):
        value = selected.get("value")
    else:
        value = element.get("value")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


_BAD_REF = re.compile(r"[\s~^:?*\[\\\x00-\x1f\x7f]|\.\.|@\{|//")


def parse_spawn_submission(view: Mapping[str, Any]) -> tuple[dict[str, str | None], str, dict[str, str]]:
    """(options {repo, preset, base}, prompt, errors by block_id) from a spawn modal's view_submission.

    Never raises: anything missing or odd becomes an error message for `response_action: errors`.
    """
    values = _map(_map(_map(view).get("state")).get("values"))
    repo = _submitted(values, SPAWN_REPO)
    preset = _submitted(values, SPAWN_PRESET)
    base = _submitted(values, SPAWN_BASE)
    prompt = _submitted(values, SPAWN_PROMPT) or ""
    errors: dict[str, str] = {}
    if repo is None:
        errors[SPAWN_REPO] = "Choose the repository the agent should work in."
    if preset is None:
        errors[SPAWN_PRESET] = "Choose a preset."
    if base is not None and (len(base) > 255 or base.startswith(("-", "/", ".")) or base.endswith(
            (".", "/", ".lock")) or _BAD_REF.search(base)):
        errors[SPAWN_BASE] = "That is not a valid branch name. Leave it empty to use the default branch."
    if not prompt:
        errors[SPAWN_PROMPT] = "Tell the agent what to do."
    return {"repo": repo, "preset": preset, "base": base}, prompt, errors


# ----------------------------------------------------------------------------- App Home


def _home_buttons(task: Task) -> list[Block]:
    tid = _task_id(task)[:BUTTON_VALUE_MAX]
    if task.state in ACTIVE_STATES:
        return [_button("Cancel", ACTION_CANCEL, tid, "danger", _cancel_confirm(task))]
    if task.state not in REVIEWABLE_STATES:
        return []
    buttons: list[Block] = []
    review: Any = None
    if task.review:
        try:
            review = json.loads(task.review)
        except (ValueError, TypeError, RecursionError):
            review = None
    if task.branch:
        if isinstance(review, Mapping) and review.get("clean") is False:
            buttons.append(_button("Update from base", ACTION_UPDATE, tid, "primary"))
        else:
            buttons.append(_button("Merge", ACTION_MERGE, tid, "primary",
                                   _merge_confirm(task, task.branch, task.base_branch)))
    buttons.append(_button("Discard", ACTION_DISCARD, tid, "danger", _discard_confirm(task, task.branch)))
    return buttons


def app_home(viewer: str, mine: Sequence[Task], running: Sequence[Task], permalinks: Mapping[str, str], *,
             now: float) -> dict[str, Any]:
    """The App Home tab (`views.publish`): your tasks with their buttons, and what is running now."""
    links = _map(permalinks)

    def url(task: Task) -> str | None:
        value = links.get(task.id) if isinstance(task.id, str) else None
        return value if isinstance(value, str) else None

    blocks: list[Block] = [
        _header("superset-bot"),
        _context(f"Hi {mention(viewer)} · updated {slack_date(now, '{date_short_pretty} at {time}')}"),
        _section("*Your tasks*"),
    ]
    if not mine:
        blocks.append(_section("You have no tasks. Start one with `/superset spawn PROMPT`."))
    for task in mine[:HOME_MINE_MAX]:
        blocks.append(_section(task_line(task, url(task), now=now)))
        buttons = _home_buttons(task)
        if buttons:
            blocks.append(_actions(buttons))
    if len(mine) > HOME_MINE_MAX:
        blocks.append(_context(f"…and {len(mine) - HOME_MINE_MAX:,} more: `/superset list` shows them all."))
    blocks += [{"type": "divider"}, _section("*Running now*")]
    if not running:
        blocks.append(_section("Nothing is running."))
    else:
        lines = [task_line(t, url(t), now=now) for t in running[:HOME_RUNNING_MAX]]
        room = MAX_BLOCKS["home"] - len(blocks) - 1
        sections = _chunk_sections(lines)
        blocks += sections[:room]
        hidden = len(running) - len(lines)
        if len(sections) > room or hidden > 0:
            blocks.append(_context(f"…and more running: {_count(len(running), 'task')} in all."))
    return {"type": "home", "blocks": blocks[: MAX_BLOCKS["home"]]}


# ----------------------------------------------------------------------------- notices


def _hours(value: object) -> str:
    hours = _num(value)
    if hours is None or hours < 0:
        return "soon"
    return f"{int(hours)}h" if hours == int(hours) else f"{hours:.1f}h"


def prune_warning(task: Task, hours: float) -> Rendered:
    """A heads-up before the scheduler removes a stale worktree, with a Keep button."""
    tid = _task_id(task)
    when = _hours(hours)
    sentence = (f"This worktree will be pruned in {when} unless you keep it."
                if when != "soon" else "This worktree will be pruned soon unless you keep it.")
    blocks = [
        _section(f":broom: *Task {inline_code(tid, 40)}* · {sentence}"),
        _actions([_button("Keep it", ACTION_KEEP, tid[:BUTTON_VALUE_MAX], "primary")]),
    ]
    return Rendered(_fallback(f"Task {esc_line(tid, 40)}: {sentence}"), blocks)


def failure_with_retry(task: Task, reason: str) -> Rendered:
    """A failed task's notice with a Retry button that runs the same prompt again."""
    tid = _task_id(task)
    why = esc(reason, 2000).strip() or "no reason was given"
    blocks = [
        _section(f":x: *Task {inline_code(tid, 40)} failed:* {why}"),
        _actions([_button("Retry", ACTION_RETRY, tid[:BUTTON_VALUE_MAX], "primary")]),
    ]
    return Rendered(_fallback(f"Task {esc_line(tid, 40)} failed: {esc_line(reason, 500)}"), blocks)
