"""chat.*: messages the bot posts, updates, deletes, posts ephemerally or links to."""

from __future__ import annotations

import re
from typing import Any

from .blockkit import check_message
from .state import USER_ID, Fail, Message, SlackState, truthy

# Slack: "Event types can contain letters, numbers, underscores, and hyphens, but not periods or other
# punctuation. Metadata with an invalid event_type returns an invalid_metadata_schema warning and is ignored."
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_-]+$")


class ChatMixin(SlackState):
    def _metadata(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any] | None:
        """The message metadata of chat.postMessage / chat.update, checked as Slack does: a JSON object
        with a string `event_type` and an object `event_payload`."""
        if "metadata" not in args:
            return None
        metadata = args["metadata"]
        if not isinstance(metadata, dict):
            raise Fail("invalid_metadata_format", [f"metadata must be a JSON object, not {type(metadata).__name__}"])
        event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
        if not isinstance(event_type, str) or not event_type:
            raise Fail("invalid_metadata_schema", ["metadata.event_type must be a non-empty string"])
        if not isinstance(payload, dict):
            raise Fail("invalid_metadata_schema", ["metadata.event_payload must be a JSON object"])
        if not _EVENT_TYPE.match(event_type):
            warnings.append("invalid_metadata_schema")
            self.warnings.append(f"metadata with event_type {event_type!r} ignored: only letters, digits, _ and -")
            return None
        return {"event_type": event_type, "event_payload": payload}

    @staticmethod
    def _with_warnings(body: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        if warnings:
            body["warning"] = ",".join(warnings)
            body["response_metadata"] = {"warnings": warnings}
        return body

    def _content(self, args: dict[str, Any], *, require: bool = True) -> None:
        problem = check_message(
            args.get("text"),
            args.get("blocks"),
            require_content=require,
            markdown_text=args.get("markdown_text"),
            attachments=args.get("attachments"),
        )
        if problem is not None:
            raise Fail(problem[0], problem[1])

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        self._writable(ch)
        self._content(args)
        warnings: list[str] = []
        metadata = self._metadata(args, warnings)
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
            reply_broadcast=truthy(args.get("reply_broadcast")),
            attachments=args.get("attachments"),
            metadata=metadata,
        )
        self.messages[(ch.id, msg.ts)] = msg
        return self._with_warnings({"ok": True, "channel": ch.id, "ts": msg.ts, "message": msg.to_api()}, warnings)

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        msg = self._message(ch.id, args.get("ts"))
        if msg.user != self.bot_user_id:
            raise Fail("cant_update_message", ["the bot can only update its own messages"])
        self._content(args, require=False)
        warnings: list[str] = []
        metadata = self._metadata(args, warnings)
        text = args["text"] if "text" in args else msg.text
        blocks = args["blocks"] if "blocks" in args else msg.blocks
        if "markdown_text" in args:
            text, blocks = args["markdown_text"], None
        if not text and not blocks and not msg.files:
            raise Fail("no_text", ["the update would leave the message without text or blocks"])
        msg.text, msg.blocks = text, blocks
        if "attachments" in args:
            msg.attachments = args["attachments"]
        if metadata is not None:
            msg.metadata = metadata
        msg.updated += 1
        body = {"ok": True, "channel": ch.id, "ts": msg.ts, "text": msg.text or "", "message": msg.to_api()}
        return self._with_warnings(body, warnings)

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        msg = self._message(ch.id, args.get("ts"))
        if msg.user != self.bot_user_id:
            raise Fail("cant_delete_message", ["the bot can only delete its own messages"])
        msg.deleted = True
        return {"ok": True, "channel": ch.id, "ts": msg.ts}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        self._writable(ch)
        user = args.get("user")
        if not isinstance(user, str) or not USER_ID.match(user):
            raise Fail("user_not_found", [f"user {user!r} is not a user id"])
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
