"""Block Kit validation as Slack does it, shared by messages, views, response_url posts and socket acks.

Every problem is collected in one pass, each as a human reason with a json-pointer, as Slack's
``invalid_blocks`` answers carry them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

MESSAGE_TEXT_LIMIT = 40_000
MESSAGE_BLOCKS_LIMIT = 50
VIEW_BLOCKS_LIMIT = 100
MARKDOWN_TOTAL_LIMIT = 12_000
# Slack answers msg_blocks_too_long somewhere above ~13k characters of blocks (slackapi/bolt-js#2509);
# measured here on the compact JSON, which is a little stricter than the content-only count.
BLOCKS_SERIALIZED_LIMIT = 13_000

_TEXT_KEYS = {"plain_text": {"type", "text", "emoji"}, "mrkdwn": {"type", "text", "verbatim"}}

_BLOCK_KEYS: dict[str, set[str]] = {
    "section": {"type", "block_id", "text", "fields", "accessory", "expand"},
    "header": {"type", "block_id", "text"},
    "context": {"type", "block_id", "elements"},
    "actions": {"type", "block_id", "elements"},
    "divider": {"type", "block_id"},
    "markdown": {"type", "block_id", "text"},
    "image": {"type", "block_id", "image_url", "slack_file", "alt_text", "title"},
    "rich_text": {"type", "block_id", "elements"},
    "input": {"type", "block_id", "label", "element", "dispatch_action", "hint", "optional"},
}

_SELECTS = {
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
    "multi_static_select",
    "multi_external_select",
    "multi_users_select",
    "multi_conversations_select",
    "multi_channels_select",
}
_ACTION_ELEMENTS = _SELECTS | {
    "button",
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "overflow",
    "radio_buttons",
    "timepicker",
    "workflow_button",
    "rich_text_input",
}
_ACCESSORY_ELEMENTS = (_ACTION_ELEMENTS - {"datetimepicker", "rich_text_input"}) | {"image"}
_INPUT_ELEMENTS = _SELECTS | {
    "plain_text_input",
    "checkboxes",
    "radio_buttons",
    "datepicker",
    "timepicker",
    "datetimepicker",
    "email_text_input",
    "url_text_input",
    "number_input",
    "rich_text_input",
    "file_input",
}

_ELEMENT_KEYS: dict[str, set[str]] = {
    "button": {"type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"},
    "static_select": {
        "type",
        "action_id",
        "placeholder",
        "options",
        "option_groups",
        "initial_option",
        "confirm",
        "focus_on_load",
    },
    "multi_static_select": {
        "type",
        "action_id",
        "placeholder",
        "options",
        "option_groups",
        "initial_options",
        "confirm",
        "max_selected_items",
        "focus_on_load",
    },
    "overflow": {"type", "action_id", "options", "confirm"},
    "checkboxes": {"type", "action_id", "options", "initial_options", "confirm", "focus_on_load"},
    "radio_buttons": {"type", "action_id", "options", "initial_option", "confirm", "focus_on_load"},
    "plain_text_input": {
        "type",
        "action_id",
        "placeholder",
        "initial_value",
        "multiline",
        "min_length",
        "max_length",
        "dispatch_action_config",
        "focus_on_load",
    },
    "image": {"type", "image_url", "slack_file", "alt_text"},
}

_RICH_TEXT_ELEMENTS = {"rich_text_section", "rich_text_list", "rich_text_preformatted", "rich_text_quote"}


class _Checker:
    """Collects every Block Kit problem in one pass, each as a human reason with a json-pointer."""

    def __init__(self, surface: str) -> None:
        self.surface = surface
        self.errors: list[str] = []
        self.block_ids: set[str] = set()
        # action ids "should be unique among all other action_ids in the containing block" (Block Kit's
        # element reference): two blocks of one message may each hold a `task_merge` (App Home does)
        self.action_ids: set[str] = set()
        self.markdown_chars = 0

    def add(self, ptr: str, msg: str) -> None:
        self.errors.append(f"{msg} [json-pointer:{ptr}]")

    # -- primitives ---------------------------------------------------------------------------------

    def keys(self, obj: dict[str, Any], allowed: set[str], ptr: str) -> None:
        for k in obj:
            if k not in allowed:
                self.add(f"{ptr}/{k}", f"unknown field '{k}' (allowed: {', '.join(sorted(allowed))})")

    def string(
        self,
        obj: dict[str, Any],
        key: str,
        ptr: str,
        *,
        max_len: int,
        required: bool = False,
        min_len: int = 1,
    ) -> None:
        if key not in obj:
            if required:
                self.add(ptr, f"missing required field: {key}")
            return
        v = obj[key]
        if not isinstance(v, str):
            self.add(f"{ptr}/{key}", "must be a string")
        elif len(v) < min_len:
            self.add(f"{ptr}/{key}", f"must be more than {min_len - 1} characters")
        elif len(v) > max_len:
            self.add(f"{ptr}/{key}", f"must be less than {max_len + 1} characters (got {len(v)})")

    def text(self, obj: Any, ptr: str, *, max_len: int | None = None, plain: bool = False) -> None:
        if not isinstance(obj, dict):
            self.add(ptr, "must provide a text object {type, text}")
            return
        kind = obj.get("type")
        if plain and kind != "plain_text":
            self.add(f"{ptr}/type", f"must be plain_text here (got {kind!r})")
            if kind != "mrkdwn":
                return
        elif kind not in _TEXT_KEYS:
            self.add(f"{ptr}/type", f"must be a valid enum value: plain_text, mrkdwn (got {kind!r})")
            return
        self.keys(obj, _TEXT_KEYS[kind], ptr)
        s = obj.get("text")
        if not isinstance(s, str):
            self.add(f"{ptr}/text", "must be a string")
        elif not s:
            self.add(f"{ptr}/text", "must be more than 0 characters")
        elif max_len is not None and len(s) > max_len:
            self.add(f"{ptr}/text", f"must be less than {max_len + 1} characters (got {len(s)})")

    def items(
        self, obj: dict[str, Any], key: str, ptr: str, *, lo: int, hi: int, required: bool = True
    ) -> list[Any]:
        if key not in obj:
            if required:
                self.add(ptr, f"missing required field: {key}")
            return []
        v = obj[key]
        if not isinstance(v, list):
            self.add(f"{ptr}/{key}", "must be an array")
            return []
        if len(v) < lo:
            self.add(f"{ptr}/{key}", f"must provide at least {lo} items")
        if len(v) > hi:
            self.add(f"{ptr}/{key}", f"no more than {hi} items allowed (got {len(v)})")
        return v

    def enum(self, obj: dict[str, Any], key: str, ptr: str, allowed: Sequence[str]) -> None:
        if key in obj and obj[key] not in allowed:
            self.add(f"{ptr}/{key}", f"must be a valid enum value: {', '.join(allowed)} (got {obj[key]!r})")

    # -- blocks -------------------------------------------------------------------------------------

    def blocks(self, blocks: Any, ptr: str = "/blocks") -> None:
        if not isinstance(blocks, list):
            self.add(ptr, "must be an array of blocks")
            return
        limit = MESSAGE_BLOCKS_LIMIT if self.surface == "message" else VIEW_BLOCKS_LIMIT
        if len(blocks) > limit:
            self.add(ptr, f"no more than {limit} items allowed (got {len(blocks)})")
        for i, b in enumerate(blocks):
            self.block(b, f"{ptr}/{i}")
        if self.markdown_chars > MARKDOWN_TOTAL_LIMIT:
            self.add(
                ptr,
                f"markdown blocks hold {self.markdown_chars} characters in total; "
                f"the limit is {MARKDOWN_TOTAL_LIMIT} per message",
            )

    def block(self, b: Any, ptr: str) -> None:
        if not isinstance(b, dict):
            self.add(ptr, "must provide an object")
            return
        kind = b.get("type")
        if kind not in _BLOCK_KEYS:
            self.add(f"{ptr}/type", f"unknown block type {kind!r} (known: {', '.join(sorted(_BLOCK_KEYS))})")
            return
        self.keys(b, _BLOCK_KEYS[kind], ptr)
        if "block_id" in b:
            bid = b["block_id"]
            self.string(b, "block_id", ptr, max_len=255)
            if isinstance(bid, str):
                if bid in self.block_ids:
                    self.add(f"{ptr}/block_id", f"block_id {bid!r} is used more than once")
                self.block_ids.add(bid)
        self.action_ids = set()  # a new containing block
        getattr(self, f"_block_{kind}")(b, ptr)

    def _block_section(self, b: dict[str, Any], ptr: str) -> None:
        if "text" not in b and "fields" not in b:
            self.add(ptr, "a section needs text or fields")
        if "text" in b:
            self.text(b["text"], f"{ptr}/text", max_len=3000)
        for i, f in enumerate(self.items(b, "fields", ptr, lo=1, hi=10, required=False)):
            self.text(f, f"{ptr}/fields/{i}", max_len=2000)
        if "accessory" in b:
            self.element(b["accessory"], f"{ptr}/accessory", _ACCESSORY_ELEMENTS)

    def _block_header(self, b: dict[str, Any], ptr: str) -> None:
        if "text" not in b:
            self.add(ptr, "missing required field: text")
        else:
            self.text(b["text"], f"{ptr}/text", max_len=150, plain=True)

    def _block_context(self, b: dict[str, Any], ptr: str) -> None:
        for i, el in enumerate(self.items(b, "elements", ptr, lo=1, hi=10)):
            p = f"{ptr}/elements/{i}"
            if isinstance(el, dict) and el.get("type") == "image":
                self.element(el, p, {"image"})
            else:
                self.text(el, p)

    def _block_actions(self, b: dict[str, Any], ptr: str) -> None:
        for i, el in enumerate(self.items(b, "elements", ptr, lo=1, hi=25)):
            self.element(el, f"{ptr}/elements/{i}", _ACTION_ELEMENTS)

    def _block_divider(self, b: dict[str, Any], ptr: str) -> None:
        pass

    def _block_markdown(self, b: dict[str, Any], ptr: str) -> None:
        self.string(b, "text", ptr, max_len=MARKDOWN_TOTAL_LIMIT, required=True)
        if isinstance(b.get("text"), str):
            self.markdown_chars += len(b["text"])

    def _block_image(self, b: dict[str, Any], ptr: str) -> None:
        self._image_source(b, ptr)
        if "title" in b:
            self.text(b["title"], f"{ptr}/title", max_len=2000, plain=True)

    def _block_rich_text(self, b: dict[str, Any], ptr: str) -> None:
        for i, el in enumerate(self.items(b, "elements", ptr, lo=1, hi=10_000)):
            if not isinstance(el, dict) or el.get("type") not in _RICH_TEXT_ELEMENTS:
                self.add(f"{ptr}/elements/{i}", f"must be one of {', '.join(sorted(_RICH_TEXT_ELEMENTS))}")

    def _block_input(self, b: dict[str, Any], ptr: str) -> None:
        if "label" not in b:
            self.add(ptr, "missing required field: label")
        else:
            self.text(b["label"], f"{ptr}/label", max_len=2000, plain=True)
        if "hint" in b:
            self.text(b["hint"], f"{ptr}/hint", max_len=2000, plain=True)
        if "element" not in b:
            self.add(ptr, "missing required field: element")
        else:
            self.element(b["element"], f"{ptr}/element", _INPUT_ELEMENTS)

    # -- elements -----------------------------------------------------------------------------------

    def _image_source(self, el: dict[str, Any], ptr: str) -> None:
        if "image_url" not in el and "slack_file" not in el:
            self.add(ptr, "an image needs image_url or slack_file")
        self.string(el, "image_url", ptr, max_len=3000)
        self.string(el, "alt_text", ptr, max_len=2000, required=True)

    def element(self, el: Any, ptr: str, allowed: set[str]) -> None:
        if not isinstance(el, dict):
            self.add(ptr, "must provide an object")
            return
        kind = el.get("type")
        if kind not in allowed:
            self.add(f"{ptr}/type", f"element type {kind!r} is not allowed here")
            return
        if kind in _ELEMENT_KEYS:
            self.keys(el, _ELEMENT_KEYS[kind], ptr)
        if kind == "image":
            self._image_source(el, ptr)
            return
        if "action_id" in el:
            self.string(el, "action_id", ptr, max_len=255)
            aid = el["action_id"]
            if isinstance(aid, str):
                if aid in self.action_ids:
                    self.add(f"{ptr}/action_id", f"action_id {aid!r} is used more than once")
                self.action_ids.add(aid)
        if "confirm" in el:
            self.confirm(el["confirm"], f"{ptr}/confirm")
        if kind == "button":
            if "text" not in el:
                self.add(ptr, "missing required field: text")
            else:
                self.text(el["text"], f"{ptr}/text", max_len=75, plain=True)
            self.string(el, "value", ptr, max_len=2000)
            self.string(el, "url", ptr, max_len=3000)
            self.string(el, "accessibility_label", ptr, max_len=75)
            self.enum(el, "style", ptr, ("primary", "danger"))
        elif kind in ("static_select", "multi_static_select"):
            if "placeholder" in el:
                self.text(el["placeholder"], f"{ptr}/placeholder", max_len=150, plain=True)
            if ("options" in el) == ("option_groups" in el):
                self.add(ptr, "provide exactly one of options or option_groups")
            for i, o in enumerate(self.items(el, "options", ptr, lo=1, hi=100, required=False)):
                self.option(o, f"{ptr}/options/{i}", plain=True)
            for i, g in enumerate(self.items(el, "option_groups", ptr, lo=1, hi=100, required=False)):
                gp = f"{ptr}/option_groups/{i}"
                if not isinstance(g, dict):
                    self.add(gp, "must provide an object")
                    continue
                self.text(g.get("label"), f"{gp}/label", max_len=75, plain=True)
                for j, o in enumerate(self.items(g, "options", gp, lo=1, hi=100)):
                    self.option(o, f"{gp}/options/{j}", plain=True)
        elif kind == "overflow":
            for i, o in enumerate(self.items(el, "options", ptr, lo=1, hi=5)):
                self.option(o, f"{ptr}/options/{i}", plain=True, url=True)
        elif kind in ("checkboxes", "radio_buttons"):
            for i, o in enumerate(self.items(el, "options", ptr, lo=1, hi=10)):
                self.option(o, f"{ptr}/options/{i}", plain=False)
        elif kind == "plain_text_input":
            if "placeholder" in el:
                self.text(el["placeholder"], f"{ptr}/placeholder", max_len=150, plain=True)
            for key, lo, hi in (("min_length", 0, 3000), ("max_length", 1, 3000)):
                v = el.get(key)
                if v is not None and (not isinstance(v, int) or not lo <= v <= hi):
                    self.add(f"{ptr}/{key}", f"must be an integer from {lo} to {hi}")

    def option(self, o: Any, ptr: str, *, plain: bool, url: bool = False) -> None:
        if not isinstance(o, dict):
            self.add(ptr, "must provide an object")
            return
        self.keys(
            o, {"text", "value", "description", "url"} if url else {"text", "value", "description"}, ptr
        )
        if "text" not in o:
            self.add(ptr, "missing required field: text")
        else:
            self.text(o["text"], f"{ptr}/text", max_len=75, plain=plain)
        self.string(o, "value", ptr, max_len=150, required=True)
        if "description" in o:
            self.text(o["description"], f"{ptr}/description", max_len=75, plain=plain)
        if url:
            self.string(o, "url", ptr, max_len=3000)

    def confirm(self, c: Any, ptr: str) -> None:
        if not isinstance(c, dict):
            self.add(ptr, "must provide an object")
            return
        self.keys(c, {"title", "text", "confirm", "deny", "style"}, ptr)
        for key, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
            if key not in c:
                self.add(ptr, f"missing required field: {key}")
            else:
                self.text(c[key], f"{ptr}/{key}", max_len=limit, plain=True)
        self.enum(c, "style", ptr, ("primary", "danger"))


def check_blocks(blocks: Any, *, surface: str = "message") -> list[str]:
    """Every reason Slack would reject these blocks for (empty when fine); surface: message|modal|home."""
    c = _Checker(surface)
    c.blocks(blocks)
    return c.errors


def check_view(view: Any) -> list[str]:
    """Every reason views.open/push/update/publish would reject this view (empty when fine)."""
    if not isinstance(view, dict):
        return ["must provide an object [json-pointer:/view]"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        return [f"must be a valid enum value: modal, home (got {kind!r}) [json-pointer:/view/type]"]
    c = _Checker(kind)
    allowed = {
        "type",
        "title",
        "blocks",
        "close",
        "submit",
        "private_metadata",
        "callback_id",
        "clear_on_close",
        "notify_on_close",
        "external_id",
        "submit_disabled",
    }
    c.keys(view, allowed, "/view")
    if kind == "modal":
        if "title" not in view:
            c.add("/view", "missing required field: title")
        else:
            c.text(view["title"], "/view/title", max_len=24, plain=True)
    for key in ("close", "submit"):
        if key in view:
            c.text(view[key], f"/view/{key}", max_len=24, plain=True)
    c.string(view, "private_metadata", "/view", max_len=3000, min_len=0)
    c.string(view, "callback_id", "/view", max_len=255, min_len=0)
    c.string(view, "external_id", "/view", max_len=255)
    if "blocks" not in view:
        c.add("/view", "missing required field: blocks")
    else:
        c.blocks(view["blocks"], "/view/blocks")
        blocks = view["blocks"] if isinstance(view["blocks"], list) else []
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if kind == "modal" and has_input and "submit" not in view:
            c.add("/view", "a modal with input blocks needs a submit button (missing required field: submit)")
    return c.errors


def check_message(
    text: Any,
    blocks: Any,
    *,
    require_content: bool = True,
    markdown_text: Any = None,
    attachments: Any = None,
) -> tuple[str, list[str]] | None:
    """(error code, reasons) Slack would answer for this message content, or None when it is accepted."""
    if text is not None and not isinstance(text, str):
        return "invalid_arguments", ["text must be a string [json-pointer:/text]"]
    if markdown_text is not None:
        if text is not None or blocks is not None:
            return "markdown_text_conflict", ["markdown_text cannot be combined with text or blocks"]
        if not isinstance(markdown_text, str) or len(markdown_text) > MARKDOWN_TOTAL_LIMIT:
            return "msg_too_long", [f"markdown_text is limited to {MARKDOWN_TOTAL_LIMIT} characters"]
    if isinstance(text, str) and len(text) > MESSAGE_TEXT_LIMIT:
        return "msg_too_long", [f"text is {len(text)} characters; the limit is {MESSAGE_TEXT_LIMIT}"]
    if blocks is not None:
        if not isinstance(blocks, list):
            return "invalid_blocks_format", ["blocks must be a JSON array [json-pointer:/blocks]"]
        errors = check_blocks(blocks)
        if errors:
            return "invalid_blocks", errors
        size = len(json.dumps(blocks, separators=(",", ":"), ensure_ascii=False))
        if size > BLOCKS_SERIALIZED_LIMIT:
            return "msg_blocks_too_long", [
                f"blocks are {size} characters as JSON; Slack rejects messages above ~{BLOCKS_SERIALIZED_LIMIT}"
            ]
    if require_content and not text and not blocks and not markdown_text and not attachments:
        return "no_text", ["provide text, blocks or markdown_text"]
    return None
