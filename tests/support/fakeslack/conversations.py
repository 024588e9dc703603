"""conversations.info / conversations.join and users.info over the channels and users tests add."""

from __future__ import annotations

from typing import Any

from .state import USER_ID, Fail, SlackState


class ConversationsMixin(SlackState):
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
