"""Slack's Block Kit limits and the validation of blocks and views against them.

Lengths are counted in UTF-16 code units (`ulen`), the stricter of the ways Slack might count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

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


def ulen(text: str) -> int:
    """Length in UTF-16 code units (an emoji counts 2), never less than `len(text)`."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


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
