"""A local stand-in for Slack's Web API and Socket Mode, strict enough that bot code which passes
against it would not be rejected by real Slack.

The bot talks to it through the real slack_sdk/slack_bolt clients (``AsyncWebClient(base_url=fake.url)``,
``SLACK_API_URL``), so everything the SDK actually puts on the wire is exercised: form vs JSON bodies,
query parameters, the three steps of ``files_upload_v2``, ``apps.connections.open`` and the websocket.
Slack's rules that bite in production are enforced here: Block Kit limits (``invalid_blocks`` with
json-pointer reasons), ``msg_too_long``, ``msg_blocks_too_long``, channel membership, scopes, trigger
expiry, and rate limits answered with HTTP 429 + ``Retry-After`` from token buckets on an injectable clock.

Usage::

    fake = FakeSlack()
    await fake.start()
    fake.add_channel("C1", "general")
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.url)
    ...
    assert fake.rejected == []
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

__all__ = [
    "Call",
    "ChannelInfo",
    "FakeSlack",
    "Message",
    "check_blocks",
    "check_message",
    "check_view",
]

DEFAULT_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "files:write",
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "reactions:write",
    "users:read",
)

# Bucket name -> (capacity, refill per second). "chat.postMessage" is per channel; tiers are per method
# for the whole workspace (Slack counts each method separately, shared by every channel and task).
DEFAULT_LIMITS: dict[str, tuple[float, float]] = {
    "chat.postMessage": (3, 1.0),
    "tier1": (5, 1 / 60),
    "tier2": (10, 20 / 60),
    "tier3": (15, 50 / 60),
    "tier4": (20, 100 / 60),
}

MESSAGE_TEXT_LIMIT = 40_000
MESSAGE_BLOCKS_LIMIT = 50
VIEW_BLOCKS_LIMIT = 100
MARKDOWN_TOTAL_LIMIT = 12_000
# Slack answers msg_blocks_too_long somewhere above ~13k characters of blocks (slackapi/bolt-js#2509);
# measured here on the compact JSON, which is a little stricter than the content-only count.
BLOCKS_SERIALIZED_LIMIT = 13_000
TRIGGER_TTL = 3.0
RESPONSE_URL_USES = 5
MODAL_STACK_LIMIT = 3


# --------------------------------------------------------------------------------------------------
# Block Kit validation (shared by messages, views, response_url posts and socket acks)
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# State records
# --------------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One Web API call as the fake saw it (args merged from query, form and JSON; token removed)."""

    method: str
    args: dict[str, Any]
    response: dict[str, Any]
    status: int
    time: float


@dataclass
class ChannelInfo:
    id: str
    name: str
    is_member: bool = True
    is_private: bool = False
    is_archived: bool = False
    is_im: bool = False

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private and not self.is_im,
            "is_group": self.is_private,
            "is_im": self.is_im,
            "is_private": self.is_private or self.is_im,
            "is_archived": self.is_archived,
            "is_member": self.is_member,
        }


@dataclass
class Message:
    """The current state of one message; chat.update and chat.delete change it in place."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    user: str
    thread_ts: str | None = None
    bot_id: str | None = None
    reactions: set[str] = field(default_factory=set)
    updated: int = 0
    deleted: bool = False
    reply_broadcast: bool = False
    attachments: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text or ""}
        if self.bot_id:
            d["bot_id"] = self.bot_id
        if self.blocks is not None:
            d["blocks"] = self.blocks
        if self.thread_ts:
            d["thread_ts"] = self.thread_ts
        if self.attachments is not None:
            d["attachments"] = self.attachments
        if self.metadata is not None:
            d["metadata"] = self.metadata
        if self.files:
            d["files"] = [{k: v for k, v in f.items() if k not in ("content", "text")} for f in self.files]
        return d


class _Fail(Exception):
    def __init__(self, error: str, errors: Sequence[str] = (), **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.errors = list(errors)
        self.extra = extra


class _Bucket:
    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.last = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# method -> (tier, required scopes (any of))
_METHODS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "auth.test": (None, ()),
    "apps.connections.open": ("tier1", ()),
    "chat.postMessage": ("chat.postMessage", ("chat:write",)),
    "chat.update": ("tier3", ("chat:write",)),
    "chat.delete": ("tier3", ("chat:write",)),
    "chat.postEphemeral": ("tier4", ("chat:write",)),
    "chat.getPermalink": (None, ()),
    "reactions.add": ("tier3", ("reactions:write",)),
    "reactions.remove": ("tier3", ("reactions:write",)),
    "conversations.info": ("tier3", ("channels:read", "groups:read", "im:read", "mpim:read")),
    "conversations.join": ("tier3", ("channels:join",)),
    "users.info": ("tier4", ("users:read",)),
    "views.open": ("tier4", ()),
    "views.push": ("tier4", ()),
    "views.update": ("tier4", ()),
    "views.publish": ("tier4", ()),
    "files.getUploadURLExternal": ("tier4", ("files:write",)),
    "files.completeUploadExternal": ("tier4", ("files:write",)),
    "files.upload": ("tier2", ("files:write",)),
}

_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
_REACTION = re.compile(r"^[a-z0-9_+'\-]+(::skin-tone-[2-6])?$")
_JSON_ARGS = ("blocks", "attachments", "view", "files", "metadata")


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() in ("1", "true")) or (isinstance(v, int) and v == 1)


def _ts_key(ts: str) -> tuple[int, int]:
    sec, _, frac = ts.partition(".")
    return int(sec), int(frac or 0)


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class FakeSlack:
    """An aiohttp server on 127.0.0.1 that answers like Slack's Web API and Socket Mode."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        bot_user_id: str = "UBOT",
        team_id: str = "T1",
        rate_limits: bool = True,
        clock: Callable[[], float] = time.monotonic,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        limits: Mapping[str, tuple[float, float]] | None = None,
        bot_id: str = "BBOT",
        app_id: str = "A1",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_id = team_id
        self.rate_limits = rate_limits
        self.clock = clock
        self.scopes: list[str] = list(scopes)
        self.limits: dict[str, tuple[float, float]] = {**DEFAULT_LIMITS, **(limits or {})}

        self.url = ""  # set by start(): "http://127.0.0.1:PORT/api/"
        self.base = ""
        self.calls: list[Call] = []
        self.rejected: list[Call] = []
        self.rate_limited: Counter[str] = Counter()
        self.messages: dict[tuple[str, str], Message] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {"home": {}, "modals": {}}
        self.responses_to_urls: list[dict[str, Any]] = []
        self.channels: dict[str, ChannelInfo] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.warnings: list[
            str
        ] = []  # accepted but suspicious (e.g. a reply to a message the fake never saw)
        self.socket_connected = asyncio.Event()
        self.socket_envelopes: list[dict[str, Any]] = []  # {"envelope", "ack", "ack_seconds"}
        self.socket_unexpected: list[str] = []  # client frames that were not acks of a pending envelope

        self._down = False
        self._faults: dict[str, list[tuple[int, str | None]]] = {}
        # random faults (inject_faults): off until asked for, so default behaviour is unchanged
        self.faults_injected: Counter[str] = Counter()  # "429" / "500" -> calls answered so
        self._fault_rate = 0.0
        self._fault_statuses: tuple[int, ...] = ()
        self._fault_methods: frozenset[str] | None = None
        self._fault_rng = random.Random(0)
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._last_ts_us = 0
        self._ids = 0
        self._triggers: dict[str, tuple[float, bool]] = {}  # trigger_id -> (issued, used)
        self._uploads: dict[str, dict[str, Any]] = {}  # file_id -> pending upload
        self._response_keys: dict[str, dict[str, Any]] = {}
        self._views_by_id: dict[str, dict[str, Any]] = {}
        self._modal_stacks: dict[str, list[str]] = {}  # root view id -> stack of view ids
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/api/"

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server stopping")
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- test controls ------------------------------------------------------------------------------

    def add_channel(
        self, channel_id: str, name: str = "general", is_member: bool = True, *, is_private: bool = False
    ) -> None:
        self.channels[channel_id] = ChannelInfo(channel_id, name, is_member=is_member, is_private=is_private)

    def add_user(self, user_id: str, name: str, *, real_name: str | None = None, tz: str = "UTC") -> None:
        self.users[user_id] = self._user_obj(user_id, name, real_name or name, tz)

    def fail_next(self, method: str, count: int = 1, *, status: int = 500, error: str | None = None) -> None:
        """The next `count` calls of `method` fail: with `error`, as Slack does (HTTP 200, ok:false);
        otherwise with HTTP `status` (429 carries Retry-After: 1). They change no state."""
        self._faults.setdefault(method, []).extend([(status, error)] * count)

    def inject_faults(self, rate: float = 0.1, statuses: Sequence[int] = (429, 500), *, seed: int = 0,
                      methods: Collection[str] | None = None) -> None:
        """From now on a random `rate` of Web API calls (of `methods`, default all) fails with one of
        `statuses`: 429 with Retry-After: 1 (``ratelimited``), anything else ``fatal_error``. Like
        `fail_next` they change no state. Seeded, so a run's fault pattern follows the order of calls
        and a failure can be replayed; counted in `faults_injected`. `rate=0` turns them off."""
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        if rate and not statuses:
            raise ValueError("statuses must name at least one HTTP status")
        self._fault_rate = rate
        self._fault_statuses = tuple(statuses)
        self._fault_methods = frozenset(methods) if methods is not None else None
        self._fault_rng = random.Random(seed)

    def _random_fault(self, method: str) -> int | None:
        if not self._fault_rate or (self._fault_methods is not None and method not in self._fault_methods):
            return None
        if self._fault_rng.random() >= self._fault_rate:
            return None
        status = self._fault_rng.choice(self._fault_statuses)
        self.faults_injected[str(status)] += 1
        return status

    def set_down(self, down: bool) -> None:
        """While down every HTTP request (API, upload, response_url) answers 503."""
        self._down = down

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        msgs = [
            m
            for (ch, ts), m in self.messages.items()
            if ch == channel and (ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(msgs, key=lambda m: _ts_key(m.ts))

    def channel_messages(self, channel: str) -> list[Message]:
        """Top-level messages (and broadcast replies) of a channel, oldest first."""
        msgs = [
            m
            for (ch, _), m in self.messages.items()
            if ch == channel and (not m.thread_ts or m.reply_broadcast)
        ]
        return sorted(msgs, key=lambda m: _ts_key(m.ts))

    def response_url(
        self, key: str, *, channel: str | None = None, message_ts: str | None = None, user: str | None = None
    ) -> str:
        """A response_url on the fake. Bound to a message (channel + message_ts) it honours
        replace_original / delete_original; bound to a channel it posts in_channel responses there."""
        self._response_keys[key] = {"channel": channel, "message_ts": message_ts, "user": user, "uses": 0}
        return f"{self.base}/response/{key}"

    def new_trigger_id(self) -> str:
        """A trigger_id as Slack puts in interaction payloads: usable once, within 3 s (on `clock`)."""
        tid = f"{self._next_id()}.{self.team_id}.{uuid.uuid4().hex[:16]}"
        self._triggers[tid] = (self.clock(), False)
        return tid

    def post_user_message(
        self, channel: str, text: str, *, user: str = "U1", thread_ts: str | None = None
    ) -> Message:
        """A message a person wrote (no API call): the parent of a bot thread, or a follow-up in it."""
        msg = Message(
            channel=channel, ts=self._new_ts(), text=text, blocks=None, user=user, thread_ts=thread_ts
        )
        self.messages[(channel, msg.ts)] = msg
        return msg

    # -- payload builders (what Slack would send over Socket Mode) ---------------------------------

    def command_payload(
        self,
        text: str,
        *,
        command: str = "/superset",
        user_id: str = "U1",
        user_name: str = "alice",
        channel_id: str = "C1",
    ) -> dict[str, Any]:
        ch = self.channels.get(channel_id)
        key = f"cmd-{self._next_id()}"
        return {
            "token": "verification-token",
            "team_id": self.team_id,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": ch.name if ch else "unknown",
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.response_url(key, channel=channel_id, user=user_id),
            "trigger_id": self.new_trigger_id(),
        }

    def block_actions_payload(
        self,
        *,
        channel: str,
        message_ts: str,
        action_id: str,
        user_id: str = "U1",
        value: str | None = None,
        selected: str | None = None,
    ) -> dict[str, Any]:
        """A button click (or select) on a message the fake holds; the element is looked up by action_id."""
        msg = self.messages.get((channel, message_ts))
        if msg is None or msg.deleted:
            raise LookupError(f"no message {message_ts} in {channel} to click on")
        element, block_id = None, None
        for b in msg.blocks or []:
            els = list(b.get("elements", [])) + ([b["accessory"]] if "accessory" in b else [])
            for el in els:
                if isinstance(el, dict) and el.get("action_id") == action_id:
                    element, block_id = el, b.get("block_id", "")
        if element is None:
            raise LookupError(
                f"message {message_ts} in {channel} has no element with action_id {action_id!r}"
            )
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": block_id,
            "type": element["type"],
            "action_ts": self._new_ts(),
        }
        if element["type"] == "button":
            action["text"] = element.get("text")
            if "value" in element:
                action["value"] = element["value"]
        if value is not None:
            action["value"] = value
        if selected is not None:
            opts = [o for o in element.get("options", []) if o.get("value") == selected]
            action["selected_option"] = opts[0] if opts else {"value": selected}
        key = f"act-{self._next_id()}"
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": "verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
                "thread_ts": msg.thread_ts,
            },
            "trigger_id": self.new_trigger_id(),
            "team": {"id": self.team_id, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {
                "id": channel,
                "name": self.channels[channel].name if channel in self.channels else "",
            },
            "message": msg.to_api(),
            "state": {"values": {}},
            "response_url": self.response_url(key, channel=channel, message_ts=message_ts, user=user_id),
            "actions": [action],
        }

    def view_submission_payload(
        self, view_id: str, *, values: dict[str, dict[str, Any]], user_id: str = "U1"
    ) -> dict[str, Any]:
        """A modal submitted by a person; `values` is state.values: {block_id: {action_id: {...}}}."""
        view = self._views_by_id.get(view_id)
        if view is None:
            raise LookupError(f"no open view {view_id}")
        submitted = {**view, "state": {"values": values}}
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": "verification-token",
            "trigger_id": self.new_trigger_id(),
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def event_payload(self, event: dict[str, Any]) -> dict[str, Any]:
        """Wraps an event as Slack's event_callback (the events_api envelope payload)."""
        return {
            "token": "verification-token",
            "team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": {"event_ts": self._new_ts(), **event},
            "type": "event_callback",
            "event_id": f"Ev{self._next_id():08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": uuid.uuid4().hex,
        }

    # -- socket mode --------------------------------------------------------------------------------

    async def socket_send(
        self, envelope_type: str, payload: dict[str, Any], *, retry_num: int = 0, timeout: float = 5.0
    ) -> dict[str, Any] | None:
        """Delivers an envelope to the newest Socket Mode connection and waits for its ack; returns the
        ack's payload (None for an empty ack). Raises RuntimeError with no client, TimeoutError on no ack."""
        if envelope_type not in ("slash_commands", "interactive", "events_api"):
            raise ValueError(f"unknown envelope type {envelope_type!r}")
        live = [ws for ws in self._sockets if not ws.closed]
        if not live:
            raise RuntimeError("no Socket Mode client is connected to the fake (call connect first)")
        tid = payload.get("trigger_id")
        if isinstance(tid, str) and tid not in self._triggers:
            self._triggers[tid] = (self.clock(), False)
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": envelope_type != "events_api",
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_num
            envelope["retry_reason"] = "timeout" if retry_num else ""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope["envelope_id"]] = fut
        started = time.monotonic()
        try:
            await live[-1].send_str(json.dumps(envelope))
            try:
                ack = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"no ack for {envelope_type} envelope within {timeout} s (Slack gives up after 3 s)"
                ) from None
        finally:
            self._pending.pop(envelope["envelope_id"], None)
        record = {"envelope": envelope, "ack": ack, "ack_seconds": time.monotonic() - started}
        self.socket_envelopes.append(record)
        ack_payload = ack.get("payload")
        if ack_payload is not None:
            self._check_ack(envelope_type, payload, ack_payload)
        return ack_payload if ack_payload else None

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Sends Slack's `disconnect` message; the SDK then opens a new connection."""
        for ws in [w for w in self._sockets if not w.closed]:
            await ws.send_str(
                json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink"}})
            )

    async def socket_close(self) -> None:
        """Drops every Socket Mode connection abruptly (as a network blip would)."""
        for ws in list(self._sockets):
            await ws.close(code=1011, message=b"fake drop")

    # -- internals: ids, lookups --------------------------------------------------------------------

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _new_ts(self) -> str:
        us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _user_obj(self, user_id: str, name: str, real_name: str, tz: str) -> dict[str, Any]:
        return {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": user_id == self.bot_user_id,
            "tz": tz,
            "profile": {"display_name": name, "real_name": real_name},
        }

    def _channel(self, args: dict[str, Any], key: str = "channel") -> ChannelInfo:
        cid = args.get(key)
        if not isinstance(cid, str) or not cid:
            raise _Fail("channel_not_found", [f"missing required argument: {key}"])
        if cid in self.channels:
            return self.channels[cid]
        if _USER_ID.match(cid):  # posting to a user id opens the DM with them
            dm = "D" + cid[1:]
            if dm not in self.channels:
                self.channels[dm] = ChannelInfo(dm, cid, is_member=True, is_im=True)
            return self.channels[dm]
        for ch in self.channels.values():
            if cid.lstrip("#") == ch.name and not ch.is_im:
                return ch
        raise _Fail("channel_not_found", [f"no channel {cid!r}; tests add channels with add_channel()"])

    def _writable(self, ch: ChannelInfo) -> None:
        if ch.is_archived:
            raise _Fail("is_archived")
        if not ch.is_member and not (not ch.is_private and "chat:write.public" in self.scopes):
            if ch.is_private:
                raise _Fail("channel_not_found", [f"the bot cannot see private channel {ch.id}"])
            raise _Fail("not_in_channel", [f"the bot is not a member of {ch.id} (#{ch.name})"])

    def _message(self, channel: str, ts: Any) -> Message:
        msg = self.messages.get((channel, ts)) if isinstance(ts, str) else None
        if msg is None or msg.deleted:
            raise _Fail("message_not_found", [f"no message {ts!r} in {channel}"])
        return msg

    def _take_trigger(self, args: dict[str, Any]) -> None:
        tid = args.get("trigger_id") or args.get("interactivity_pointer")
        if not isinstance(tid, str) or not tid:
            raise _Fail("invalid_arguments", ["missing required field: trigger_id"])
        if tid not in self._triggers:
            raise _Fail("invalid_trigger_id", [f"trigger_id {tid!r} was never issued"])
        issued, used = self._triggers[tid]
        if used:
            raise _Fail("exchanged_trigger_id", ["a trigger_id opens one view only"])
        if self.clock() - issued > TRIGGER_TTL:
            raise _Fail("expired_trigger_id", [f"trigger_id is older than {TRIGGER_TTL:.0f} s"])
        self._triggers[tid] = (issued, True)

    def _rate_limit(self, method: str, tier: str | None, args: dict[str, Any]) -> float:
        if not self.rate_limits or tier is None:
            return 0.0
        key: tuple[str, ...] = (method,)
        if tier == "chat.postMessage":
            key = (method, str(args.get("channel")))
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            capacity, rate = self.limits[tier]
            bucket = self._buckets[key] = _Bucket(capacity, rate, now)
        return bucket.take(now)

    # -- HTTP: Web API ------------------------------------------------------------------------------

    async def _read_args(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        args: dict[str, Any] = dict(request.query)
        form_token: str | None = args.pop("token", None)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as e:
                    raise _Fail("invalid_json", [f"request body is not JSON: {e}"]) from None
                if not isinstance(body, dict):
                    raise _Fail("invalid_json", ["request body must be a JSON object"])
                body.pop("token", None)  # Slack ignores tokens inside JSON bodies: use the header
                args.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for k, v in form.items():
                    args[k] = v if isinstance(v, str) else "(file)"
                form_token = args.pop("token", None) or form_token
            else:
                raw = await request.text()
                if raw:
                    args.update(dict(parse_qsl(raw)))
        for k in _JSON_ARGS:
            if isinstance(args.get(k), str):
                try:
                    args[k] = json.loads(args[k])
                except ValueError:
                    args[k] = _Unparsed(args[k])
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else form_token
        return args, token

    def _json(
        self, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        h = {"x-oauth-scopes": ",".join(self.scopes)}
        h.update(headers or {})
        return web.json_response(body, status=status, headers=h)

    def _record(
        self, method: str, args: dict[str, Any], body: dict[str, Any], status: int, rejected: bool
    ) -> None:
        call = Call(method, args, body, status, self.clock())
        self.calls.append(call)
        if rejected:
            self.rejected.append(call)

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args, token = await self._read_args(request)
        except _Fail as f:
            body = {"ok": False, "error": f.error, "errors": f.errors}
            self._record(method, {}, body, 200, True)
            return self._json(body)
        if self._down:
            body = {"ok": False, "error": "service_unavailable"}
            self._record(method, args, body, 503, False)
            return self._json(body, 503)
        faults = self._faults.get(method)
        if faults:
            status, error = faults.pop(0)
            if error is not None:
                body = {"ok": False, "error": error}
                self._record(method, args, body, 200, False)
                return self._json(body)
            body = {"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"}
            self._record(method, args, body, status, False)
            return self._json(body, status, {"Retry-After": "1"} if status == 429 else None)
        injected = self._random_fault(method)
        if injected is not None:
            body = {"ok": False, "error": "ratelimited" if injected == 429 else "fatal_error"}
            self._record(method, args, body, injected, False)
            return self._json(body, injected, {"Retry-After": "1"} if injected == 429 else None)

        status, body, headers = 200, {}, {}
        try:
            body = self._dispatch(method, args, token)
        except _Rated as r:
            status, headers = 429, {"Retry-After": str(r.retry_after)}
            body = {"ok": False, "error": "ratelimited"}
            self.rate_limited[method] += 1
        except _Fail as f:
            body = {"ok": False, "error": f.error, **f.extra}
            if f.errors:
                body["errors"] = f.errors
                body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in f.errors]}
        ok = bool(body.get("ok"))
        self._record(method, args, body, status, rejected=not ok and status != 429)
        return self._json(body, status, headers)

    def _dispatch(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method not in _METHODS:
            raise _Fail("unknown_method", [f"the fake does not implement {method}"], req_method=method)
        tier, needed = _METHODS[method]
        if not token:
            raise _Fail("not_authed")
        if method == "apps.connections.open":
            if token == self.bot_token:
                raise _Fail(
                    "not_allowed_token_type", ["apps.connections.open needs the app-level (xapp-) token"]
                )
            if token != self.app_token:
                raise _Fail("invalid_auth")
        elif token == self.app_token:
            raise _Fail("not_allowed_token_type", [f"{method} needs the bot token, not the app-level token"])
        elif token != self.bot_token:
            raise _Fail("invalid_auth")
        if needed and not any(s in self.scopes for s in needed):
            raise _Fail("missing_scope", needed=",".join(needed), provided=",".join(self.scopes))
        for k, v in args.items():
            if isinstance(v, _Unparsed):
                code = "invalid_blocks_format" if k == "blocks" else "invalid_arguments"
                raise _Fail(code, [f"{k} is not valid JSON: {v.raw[:80]!r}"])
        wait = self._rate_limit(method, tier, args)
        if wait > 0:
            raise _Rated(max(1, math.ceil(wait)))
        handler: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, "_m_" + method.replace(".", "_"))
        return handler(args)

    # -- methods ------------------------------------------------------------------------------------

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack/",
            "team": "Fake Team",
            "user": "superset-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        ws_base = self.base.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_base}/socket?ticket={ticket}&app_id={self.app_id}"}

    def _content(self, args: dict[str, Any], *, require: bool = True) -> None:
        problem = check_message(
            args.get("text"),
            args.get("blocks"),
            require_content=require,
            markdown_text=args.get("markdown_text"),
            attachments=args.get("attachments"),
        )
        if problem is not None:
            raise _Fail(problem[0], problem[1])

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        self._writable(ch)
        self._content(args)
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            parent = self.messages.get((ch.id, str(thread_ts)))
            if parent is None:
                self.warnings.append(
                    f"chat.postMessage replied to {thread_ts} in {ch.id}, a message the fake never saw"
                )
            elif parent.thread_ts and parent.thread_ts != parent.ts:
                thread_ts = parent.thread_ts  # replying to a reply lands in the parent's thread
        text = args.get("text") if "markdown_text" not in args else args["markdown_text"]
        msg = Message(
            channel=ch.id,
            ts=self._new_ts(),
            text=text,
            blocks=args.get("blocks"),
            user=self.bot_user_id,
            bot_id=self.bot_id,
            thread_ts=str(thread_ts) if thread_ts else None,
            reply_broadcast=_truthy(args.get("reply_broadcast")),
            attachments=args.get("attachments"),
            metadata=args.get("metadata"),
        )
        self.messages[(ch.id, msg.ts)] = msg
        return {"ok": True, "channel": ch.id, "ts": msg.ts, "message": msg.to_api()}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        msg = self._message(ch.id, args.get("ts"))
        if msg.user != self.bot_user_id:
            raise _Fail("cant_update_message", ["the bot can only update its own messages"])
        self._content(args, require=False)
        text = args["text"] if "text" in args else msg.text
        blocks = args["blocks"] if "blocks" in args else msg.blocks
        if "markdown_text" in args:
            text, blocks = args["markdown_text"], None
        if not text and not blocks and not msg.files:
            raise _Fail("no_text", ["the update would leave the message without text or blocks"])
        msg.text, msg.blocks = text, blocks
        if "attachments" in args:
            msg.attachments = args["attachments"]
        if "metadata" in args:
            msg.metadata = args["metadata"]
        msg.updated += 1
        return {"ok": True, "channel": ch.id, "ts": msg.ts, "text": msg.text or "", "message": msg.to_api()}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        msg = self._message(ch.id, args.get("ts"))
        if msg.user != self.bot_user_id:
            raise _Fail("cant_delete_message", ["the bot can only delete its own messages"])
        msg.deleted = True
        return {"ok": True, "channel": ch.id, "ts": msg.ts}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        self._writable(ch)
        user = args.get("user")
        if not isinstance(user, str) or not _USER_ID.match(user):
            raise _Fail("user_not_found", [f"user {user!r} is not a user id"])
        self._content(args)
        ts = self._new_ts()
        self.ephemerals.append(
            {
                "channel": ch.id,
                "user": user,
                "text": args.get("text"),
                "blocks": args.get("blocks"),
                "thread_ts": args.get("thread_ts"),
                "message_ts": ts,
            }
        )
        return {"ok": True, "message_ts": ts}

    def _m_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        msg = self._message(ch.id, args.get("message_ts"))
        link = f"https://fake.slack/archives/{ch.id}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts and msg.thread_ts != msg.ts:
            link += f"?thread_ts={msg.thread_ts}&cid={ch.id}"
        return {"ok": True, "channel": ch.id, "permalink": link}

    def _reaction_target(self, args: dict[str, Any]) -> tuple[Message, str]:
        ch = self._channel(args)
        msg = self._message(ch.id, args.get("timestamp"))
        name = args.get("name")
        if not isinstance(name, str) or not _REACTION.match(name):
            raise _Fail("invalid_name", [f"reaction name {name!r} must be an emoji name without colons"])
        return msg, name

    def _m_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(args)
        if name in msg.reactions:
            raise _Fail("already_reacted")
        msg.reactions.add(name)
        return {"ok": True}

    def _m_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(args)
        if name not in msg.reactions:
            raise _Fail("no_reaction")
        msg.reactions.discard(name)
        return {"ok": True}

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        if ch.is_private and not ch.is_member:
            raise _Fail("channel_not_found")
        return {"ok": True, "channel": ch.to_api()}

    def _m_conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        if ch.is_private or ch.is_im:
            raise _Fail("method_not_supported_for_channel_type")
        if ch.is_archived:
            raise _Fail("is_archived")
        ch.is_member = True
        return {"ok": True, "channel": ch.to_api()}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = args.get("user")
        if not isinstance(uid, str) or not _USER_ID.match(uid):
            raise _Fail("user_not_found")
        user = self.users.get(uid) or self._user_obj(uid, uid.lower(), f"User {uid}", "UTC")
        return {"ok": True, "user": user}

    # -- views --------------------------------------------------------------------------------------

    def _view_arg(self, args: dict[str, Any], kind: str | None) -> dict[str, Any]:
        view = args.get("view")
        errors = check_view(view)
        if not errors and kind is not None and isinstance(view, dict) and view.get("type") != kind:
            errors = [f"this method takes a {kind} view, not {view.get('type')!r} [json-pointer:/view/type]"]
        if errors:
            raise _Fail("invalid_arguments", errors)
        assert isinstance(view, dict)
        return view

    def _store_view(
        self,
        view: dict[str, Any],
        *,
        root: str | None = None,
        previous: str | None = None,
        view_id: str | None = None,
    ) -> dict[str, Any]:
        vid = view_id or f"V{self._next_id():08d}"
        stored = {
            "id": vid,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            **view,
            "hash": uuid.uuid4().hex,
            "root_view_id": root or vid,
            "previous_view_id": previous,
        }
        self._views_by_id[vid] = stored
        if stored["type"] == "modal":
            self.views["modals"][vid] = stored
        return stored

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args, "modal")
        self._take_trigger(args)
        stored = self._store_view(view)
        self._modal_stacks[stored["id"]] = [stored["id"]]
        return {"ok": True, "view": stored}

    def _m_views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args, "modal")
        self._take_trigger(args)
        if not self._modal_stacks:
            raise _Fail("not_found", ["views.push needs an open modal to push onto"])
        root = list(self._modal_stacks)[-1]
        stack = self._modal_stacks[root]
        if len(stack) >= MODAL_STACK_LIMIT:
            raise _Fail("push_limit_reached", [f"a modal stack holds at most {MODAL_STACK_LIMIT} views"])
        stored = self._store_view(view, root=root, previous=stack[-1])
        stack.append(stored["id"])
        return {"ok": True, "view": stored}

    def _m_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args, None)
        target: dict[str, Any] | None = None
        if args.get("view_id"):
            target = self._views_by_id.get(str(args["view_id"]))
        elif args.get("external_id"):
            target = next(
                (v for v in self._views_by_id.values() if v.get("external_id") == args["external_id"]), None
            )
        else:
            raise _Fail("invalid_arguments", ["views.update needs view_id or external_id"])
        if target is None:
            raise _Fail("not_found", ["no such view"])
        if args.get("hash") and args["hash"] != target["hash"]:
            raise _Fail("hash_conflict", ["the view changed since that hash was read"])
        if view["type"] != target["type"]:
            raise _Fail("invalid_arguments", [f"cannot turn a {target['type']} view into {view['type']}"])
        stored = self._store_view(
            view, root=target["root_view_id"], previous=target["previous_view_id"], view_id=target["id"]
        )
        if stored["type"] == "home":
            for user, v in self.views["home"].items():
                if v["id"] == stored["id"]:
                    self.views["home"][user] = stored
        return {"ok": True, "view": stored}

    def _m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user_id")
        if not isinstance(user, str) or not _USER_ID.match(user):
            raise _Fail("invalid_arguments", [f"user_id {user!r} is not a user id"])
        view = self._view_arg(args, "home")
        current = self.views["home"].get(user)
        if args.get("hash") and current is not None and args["hash"] != current["hash"]:
            raise _Fail("hash_conflict")
        stored = self._store_view(view, view_id=current["id"] if current else None)
        self.views["home"][user] = stored
        return {"ok": True, "view": stored}

    # -- files --------------------------------------------------------------------------------------

    def _m_files_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        raise _Fail("method_deprecated", ["files.upload is retired; use files_upload_v2"])

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        errors = []
        filename = args.get("filename")
        if not isinstance(filename, str) or not filename:
            errors.append("missing required field: filename [json-pointer:/filename]")
        try:
            length = int(args.get("length"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            length = -1
            errors.append("missing required field: length [json-pointer:/length]")
        if length == 0 or length < -1:
            errors.append("must be greater than 1 [json-pointer:/length]")
        if errors:
            raise _Fail("invalid_arguments", errors)
        fid = f"F{self._next_id():08d}"
        self._uploads[fid] = {
            "id": fid,
            "filename": filename,
            "length": length,
            "snippet_type": args.get("snippet_type"),
            "alt_txt": args.get("alt_txt"),
            "content": None,
        }
        return {"ok": True, "upload_url": f"{self.base}/upload/{fid}", "file_id": fid}

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if not isinstance(files, list) or not files:
            raise _Fail("invalid_arguments", ["files must be a JSON array of {id, title}"])
        pending = []
        for i, f in enumerate(files):
            up = self._uploads.get(str(f.get("id"))) if isinstance(f, dict) else None
            if up is None:
                raise _Fail("file_not_found", [f"files[{i}] id was not issued by files.getUploadURLExternal"])
            if up["content"] is None:
                raise _Fail("file_not_found", [f"file {up['id']} was never uploaded to its upload_url"])
            pending.append((up, f))
        channel_id = args.get("channel_id") or None
        channels = [c for c in str(args.get("channels") or "").split(",") if c]
        targets = ([channel_id] if channel_id else []) + channels
        chans = [self._channel({"channel": c}) for c in targets]
        for ch in chans:
            self._writable(ch)
        thread_ts = args.get("thread_ts") or None
        if thread_ts and len(chans) != 1:
            raise _Fail("invalid_arguments", ["thread_ts needs exactly one channel"])
        out = []
        for up, f in pending:
            content: bytes = up["content"]
            try:
                text: str | None = content.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            rec = {
                "id": up["id"],
                "filename": up["filename"],
                "name": up["filename"],
                "title": f.get("title") or up["filename"],
                "content": content,
                "text": text,
                "length": up["length"],
                "size": len(content),
                "snippet_type": up["snippet_type"],
                "alt_txt": up["alt_txt"],
                "channel_id": chans[0].id if chans else None,
                "channels": [c.id for c in chans],
                "thread_ts": thread_ts,
                "initial_comment": args.get("initial_comment"),
            }
            if up["length"] != len(content):
                self.warnings.append(
                    f"file {up['id']} declared {up['length']} bytes but {len(content)} arrived"
                )
            self.files.append(rec)
            del self._uploads[up["id"]]
            out.append({k: v for k, v in rec.items() if k not in ("content", "text")})
        for ch in chans:
            msg = Message(
                channel=ch.id,
                ts=self._new_ts(),
                text=args.get("initial_comment") or "",
                blocks=None,
                user=self.bot_user_id,
                bot_id=self.bot_id,
                thread_ts=str(thread_ts) if thread_ts else None,
                files=[r for r in self.files[-len(pending) :]],
            )
            self.messages[(ch.id, msg.ts)] = msg
        return {"ok": True, "files": out}

    async def _handle_upload(self, request: web.Request) -> web.Response:
        if self._down:
            return web.Response(status=503, text="service unavailable")
        fid = request.match_info["file_id"]
        up = self._uploads.get(fid)
        if up is None:
            return web.Response(status=404, text="upload url not found or already used")
        data = await request.read()
        up["content"] = data
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    # -- response_url -------------------------------------------------------------------------------

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if self._down:
            return web.Response(status=503, text="service unavailable")
        binding = self._response_keys.get(key)
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        method = f"response_url:{key}"
        if binding is None:
            self._record(method, {}, {"ok": False, "error": "expired_url"}, 404, True)
            return web.Response(status=404, text="expired_url")
        if not isinstance(payload, dict):
            self._record(method, {}, {"ok": False, "error": "invalid_payload"}, 400, True)
            return web.Response(status=400, text="invalid_payload")
        binding["uses"] += 1
        if binding["uses"] > RESPONSE_URL_USES:
            self._record(method, payload, {"ok": False, "error": "used_url"}, 404, True)
            return web.Response(status=404, text="used_url")
        delete = _truthy(payload.get("delete_original"))
        problem = None if delete else check_message(payload.get("text"), payload.get("blocks"))
        if problem is not None:
            body = {"ok": False, "error": problem[0], "errors": problem[1]}
            self._record(method, payload, body, 400, True)
            return web.Response(status=400, text=problem[0])
        self.responses_to_urls.append({"key": key, "payload": payload})
        ch, mts = binding["channel"], binding["message_ts"]
        target = self.messages.get((ch, mts)) if ch and mts else None
        if delete and target is not None:
            target.deleted = True
        elif _truthy(payload.get("replace_original")) and target is not None:
            target.text, target.blocks = payload.get("text"), payload.get("blocks")
            target.updated += 1
        elif payload.get("response_type") == "in_channel" and ch:
            thread_ts = payload.get("thread_ts")
            msg = Message(
                channel=ch,
                ts=self._new_ts(),
                text=payload.get("text"),
                blocks=payload.get("blocks"),
                user=self.bot_user_id,
                bot_id=self.bot_id,
                thread_ts=thread_ts,
            )
            self.messages[(ch, msg.ts)] = msg
        elif not delete:
            self.ephemerals.append(
                {
                    "channel": ch,
                    "user": binding["user"],
                    "text": payload.get("text"),
                    "blocks": payload.get("blocks"),
                    "thread_ts": None,
                    "message_ts": None,
                    "via": "response_url",
                }
            )
        self._record(method, payload, {"ok": True}, 200, False)
        return web.Response(text="ok", content_type="text/plain")

    # -- socket mode --------------------------------------------------------------------------------

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or already used ticket; call apps.connections.open")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        hello = {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": {"host": "fake-applink", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_str(json.dumps(hello))
        self.socket_connected.set()
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    self.socket_unexpected.append(frame.data)
                    continue
                fut = self._pending.get(data.get("envelope_id", "")) if isinstance(data, dict) else None
                if fut is not None and not fut.done():
                    fut.set_result(data)
                else:
                    self.socket_unexpected.append(frame.data)
        finally:
            self._sockets.remove(ws)
            if not any(not w.closed for w in self._sockets):
                self.socket_connected.clear()
        return ws

    def _check_ack(self, envelope_type: str, payload: dict[str, Any], ack: Any) -> None:
        """Acks can carry a response (command reply, view_submission response_action): Slack validates it."""
        problem: tuple[str, list[str]] | None = None
        if not isinstance(ack, dict):
            problem = ("invalid_ack", ["an ack payload must be a JSON object"])
        elif envelope_type == "slash_commands":
            problem = check_message(ack.get("text"), ack.get("blocks"), require_content=False)
        elif envelope_type == "interactive" and payload.get("type") == "view_submission":
            action = ack.get("response_action")
            if action in ("update", "push"):
                errors = check_view(ack.get("view"))
                problem = ("invalid_arguments", errors) if errors else None
            elif action == "errors":
                if not isinstance(ack.get("errors"), dict) or not ack["errors"]:
                    problem = ("invalid_arguments", ["response_action errors needs an errors object"])
            elif action not in (None, "clear"):
                problem = ("invalid_arguments", [f"unknown response_action {action!r}"])
        if problem is not None:
            body = {"ok": False, "error": problem[0], "errors": problem[1]}
            self._record(f"socket_ack:{envelope_type}", ack if isinstance(ack, dict) else {}, body, 200, True)


class _Rated(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass
class _Unparsed:
    raw: str
