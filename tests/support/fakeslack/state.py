"""What the fake workspace holds and has seen: channels, users, messages, every call, issued trigger_ids.

`SlackState` is the base of every surface (chat, reactions, views, files, events, Socket Mode):
the records tests assert on, the workspace's identity, and the lookups the surfaces share.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    """One Web API call as the fake saw it (args merged from query, form and JSON; token removed)."""

    method: str
    args: dict[str, Any]
    response: dict[str, Any]
    status: int
    time: float
    dropped: bool = False  # Slack did it, but the connection closed before the answer (drop_after_accept)


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

    def to_api(self, *, include_metadata: bool = True) -> dict[str, Any]:
        """The message as Slack returns it; conversations.history/replies leave `metadata` out unless
        asked for it (include_all_metadata)."""
        d: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text or ""}
        if self.bot_id:
            d["bot_id"] = self.bot_id
        if self.blocks is not None:
            d["blocks"] = self.blocks
        if self.thread_ts:
            d["thread_ts"] = self.thread_ts
        if self.attachments is not None:
            d["attachments"] = self.attachments
        if self.metadata is not None and include_metadata:
            d["metadata"] = self.metadata
        if self.files:
            d["files"] = [{k: v for k, v in f.items() if k not in ("content", "text")} for f in self.files]
        return d


class Fail(Exception):
    def __init__(self, error: str, errors: Sequence[str] = (), **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.errors = list(errors)
        self.extra = extra


USER_ID = re.compile(r"^[UW][A-Z0-9]+$")


def truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() in ("1", "true")) or (isinstance(v, int) and v == 1)


def ts_key(ts: str) -> tuple[int, int]:
    sec, _, frac = ts.partition(".")
    return int(sec), int(frac or 0)


class SlackState:
    """The workspace: who the bot is, what it may do, and everything it posted or was refused."""

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str,
        bot_user_id: str,
        team_id: str,
        clock: Callable[[], float],
        scopes: Sequence[str],
        bot_id: str,
        app_id: str,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_id = team_id
        self.clock = clock
        self.scopes: list[str] = list(scopes)

        self.url = ""  # set by start(): "http://127.0.0.1:PORT/api/"
        self.base = ""
        self.calls: list[Call] = []
        self.rejected: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.channels: dict[str, ChannelInfo] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []  # accepted but suspicious (e.g. a reply to a message the fake never saw)

        self._down = False  # set_down(): every HTTP request answers 503
        self._last_ts_us = 0
        self._ids = 0
        self._triggers: dict[str, tuple[float, bool]] = {}  # trigger_id -> (issued, used)

    # -- test controls ------------------------------------------------------------------------------

    def add_channel(
        self, channel_id: str, name: str = "general", is_member: bool = True, *, is_private: bool = False
    ) -> None:
        self.channels[channel_id] = ChannelInfo(channel_id, name, is_member=is_member, is_private=is_private)

    def add_user(self, user_id: str, name: str, *, real_name: str | None = None, tz: str = "UTC") -> None:
        self.users[user_id] = self._user_obj(user_id, name, real_name or name, tz)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        msgs = [
            m
            for (ch, ts), m in self.messages.items()
            if ch == channel and (ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(msgs, key=lambda m: ts_key(m.ts))

    def channel_messages(self, channel: str) -> list[Message]:
        """Top-level messages (and broadcast replies) of a channel, oldest first."""
        msgs = [
            m
            for (ch, _), m in self.messages.items()
            if ch == channel and (not m.thread_ts or m.reply_broadcast)
        ]
        return sorted(msgs, key=lambda m: ts_key(m.ts))

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
            raise Fail("channel_not_found", [f"missing required argument: {key}"])
        if cid in self.channels:
            return self.channels[cid]
        if USER_ID.match(cid):  # posting to a user id opens the DM with them
            dm = "D" + cid[1:]
            if dm not in self.channels:
                self.channels[dm] = ChannelInfo(dm, cid, is_member=True, is_im=True)
            return self.channels[dm]
        for ch in self.channels.values():
            if cid.lstrip("#") == ch.name and not ch.is_im:
                return ch
        raise Fail("channel_not_found", [f"no channel {cid!r}; tests add channels with add_channel()"])

    def _writable(self, ch: ChannelInfo) -> None:
        if ch.is_archived:
            raise Fail("is_archived")
        if not ch.is_member and not (not ch.is_private and "chat:write.public" in self.scopes):
            if ch.is_private:
                raise Fail("channel_not_found", [f"the bot cannot see private channel {ch.id}"])
            raise Fail("not_in_channel", [f"the bot is not a member of {ch.id} (#{ch.name})"])

    def _message(self, channel: str, ts: Any) -> Message:
        msg = self.messages.get((channel, ts)) if isinstance(ts, str) else None
        if msg is None or msg.deleted:
            raise Fail("message_not_found", [f"no message {ts!r} in {channel}"])
        return msg

    def _record(
        self,
        method: str,
        args: dict[str, Any],
        body: dict[str, Any],
        status: int,
        rejected: bool,
        *,
        dropped: bool = False,
    ) -> None:
        call = Call(method, args, body, status, self.clock(), dropped=dropped)
        self.calls.append(call)
        if rejected:
            self.rejected.append(call)
