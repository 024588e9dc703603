"""reactions.add / reactions.remove on the messages the fake holds."""

from __future__ import annotations

import re
from typing import Any

from .state import Fail, Message, SlackState

_REACTION = re.compile(r"^[a-z0-9_+'\-]+(::skin-tone-[2-6])?$")


class ReactionsMixin(SlackState):
    def _reaction_target(self, args: dict[str, Any]) -> tuple[Message, str]:
        ch = self._channel(args)
        msg = self._message(ch.id, args.get("timestamp"))
        name = args.get("name")
        if not isinstance(name, str) or not _REACTION.match(name):
            raise Fail("invalid_name", [f"reaction name {name!r} must be an emoji name without colons"])
        return msg, name

    def _m_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(args)
        if name in msg.reactions:
            raise Fail("already_reacted")
        msg.reactions.add(name)
        return {"ok": True}

    def _m_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(args)
        if name not in msg.reactions:
            raise Fail("no_reaction")
        msg.reactions.discard(name)
        return {"ok": True}
