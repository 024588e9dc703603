"""What Slack sends the bot: slash commands, block_actions clicks and events (as payloads for
Socket Mode or HTTP), and the response_urls that come with them, answered as Slack answers them."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from .blockkit import check_message
from .state import Message, SlackState, truthy

RESPONSE_URL_USES = 5


class EventsMixin(SlackState):
    def __init__(self, **workspace: Any) -> None:
        super().__init__(**workspace)
        self.responses_to_urls: list[dict[str, Any]] = []
        self._response_keys: dict[str, dict[str, Any]] = {}

    def response_url(
        self, key: str, *, channel: str | None = None, message_ts: str | None = None, user: str | None = None
    ) -> str:
        """A response_url on the fake. Bound to a message (channel + message_ts) it honours
        replace_original / delete_original; bound to a channel it posts in_channel responses there."""
        self._response_keys[key] = {"channel": channel, "message_ts": message_ts, "user": user, "uses": 0}
        return f"{self.base}/response/{key}"

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
        delete = truthy(payload.get("delete_original"))
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
        elif truthy(payload.get("replace_original")) and target is not None:
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
