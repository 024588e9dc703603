"""conversations.info / .join / .history / .replies and users.info over the channels and users tests add."""

from __future__ import annotations

import base64
from typing import Any

from .state import USER_ID, ChannelInfo, Fail, Message, SlackState, truthy, ts_key


def _ts_bound(args: dict[str, Any], key: str) -> tuple[int, int] | None:
    raw = args.get(key)
    if raw in (None, ""):
        return None
    try:
        value = float(str(raw))
    except ValueError:
        raise Fail("invalid_ts_" + key, [f"{key} must be a timestamp like 1712345678.123456, not {raw!r}"]) from None
    return ts_key(f"{value:.6f}")


def _page(args: dict[str, Any], default: int) -> tuple[int, int]:
    """(offset, limit) from Slack's cursor and limit arguments."""
    try:
        limit = int(args.get("limit") or default)
    except (TypeError, ValueError):
        raise Fail("invalid_limit", [f"limit must be a number, not {args.get('limit')!r}"]) from None
    limit = max(1, min(limit, 999))
    cursor = args.get("cursor")
    if not cursor:
        return 0, limit
    try:
        decoded = base64.b64decode(str(cursor), validate=True).decode()
        if not decoded.startswith("offset:"):
            raise ValueError(decoded)
        return int(decoded[len("offset:"):]), limit
    except ValueError:
        raise Fail("invalid_cursor", [f"cursor {cursor!r} was not given by an earlier page"]) from None


class ConversationsMixin(SlackState):
    def _readable(self, args: dict[str, Any]) -> ChannelInfo:
        """The conversation conversations.history/replies read: by id (not name, not user id), with the
        *:history scope of its kind, and the bot a member of it."""
        cid = args.get("channel")
        if not isinstance(cid, str) or not cid:
            raise Fail("invalid_arguments", ["missing required field: channel"])
        ch = self.channels.get(cid)
        if ch is None:
            raise Fail("channel_not_found", [f"no conversation {cid!r} (history takes a conversation id)"])
        scope = "im:history" if ch.is_im else "groups:history" if ch.is_private else "channels:history"
        if scope not in self.scopes:
            raise Fail("missing_scope", needed=scope, provided=",".join(self.scopes))
        if not ch.is_member:
            if ch.is_private:
                raise Fail("channel_not_found", [f"the bot cannot see private channel {ch.id}"])
            raise Fail("not_in_channel", [f"the bot is not a member of {ch.id} (#{ch.name})"])
        return ch

    def _listing(
        self, args: dict[str, Any], messages: list[Message], *, default_limit: int, keep_first: bool = False
    ) -> dict[str, Any]:
        """Slack's page of messages between oldest and latest (exclusive unless `inclusive`)."""
        oldest, latest = _ts_bound(args, "oldest"), _ts_bound(args, "latest")
        inclusive = truthy(args.get("inclusive"))

        def within(m: Message) -> bool:
            key = ts_key(m.ts)
            if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
                return False
            return latest is None or key < latest or (key == latest and inclusive)

        first = messages[:1] if keep_first else []
        selected = first + [m for m in messages[len(first):] if within(m)]
        offset, limit = _page(args, default_limit)
        page = selected[offset:offset + limit]
        with_metadata = truthy(args.get("include_all_metadata"))
        out = []
        for m in page:
            d = m.to_api(include_metadata=with_metadata)
            replies = [r for r in self.thread(m.channel, m.ts) if r.ts != m.ts and not r.deleted]
            if replies and not m.thread_ts:  # a thread's parent, as Slack shows it
                d["thread_ts"] = m.ts
                d["reply_count"] = len(replies)
                d["latest_reply"] = replies[-1].ts
            out.append(d)
        body: dict[str, Any] = {"ok": True, "messages": out, "has_more": offset + limit < len(selected)}
        if body["has_more"]:
            cursor = base64.b64encode(f"offset:{offset + limit}".encode()).decode()
            body["response_metadata"] = {"next_cursor": cursor}
        return body

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """A channel's top-level messages (and broadcast replies), newest first."""
        ch = self._readable(args)
        messages = [m for m in reversed(self.channel_messages(ch.id)) if not m.deleted]
        return {**self._listing(args, messages, default_limit=100), "pin_count": 0}

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent first, then the replies oldest first."""
        ch = self._readable(args)
        ts = args.get("ts")
        if not isinstance(ts, str) or not ts:
            raise Fail("invalid_arguments", ["missing required field: ts"])
        msg = self.messages.get((ch.id, ts))
        if msg is None or msg.deleted:
            raise Fail("thread_not_found", [f"no message {ts!r} in {ch.id}"])
        parent = msg.thread_ts or msg.ts
        messages = [m for m in self.thread(ch.id, parent) if not m.deleted]
        return self._listing(args, messages, default_limit=1000, keep_first=True)

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        if ch.is_private and not ch.is_member:
            raise Fail("channel_not_found")
        return {"ok": True, "channel": ch.to_api()}

    def _m_conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        if ch.is_private or ch.is_im:
            raise Fail("method_not_supported_for_channel_type")
        if ch.is_archived:
            raise Fail("is_archived")
        ch.is_member = True
        return {"ok": True, "channel": ch.to_api()}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = args.get("user")
        if not isinstance(uid, str) or not USER_ID.match(uid):
            raise Fail("user_not_found")
        user = self.users.get(uid) or self._user_obj(uid, uid.lower(), f"User {uid}", "UTC")
        return {"ok": True, "user": user}
