"""chat.*: messages the bot posts, updates, deletes, posts ephemerally or links to."""

from __future__ import annotations

from typing import Any

from .blockkit import check_message
from .state import USER_ID, Fail, Message, SlackState, truthy


class ChatMixin(SlackState):
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
            metadata=args.get("metadata"),
        )
        self.messages[(ch.id, msg.ts)] = msg
        return {"ok": True, "channel": ch.id, "ts": msg.ts, "message": msg.to_api()}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel(args)
        msg = self._message(ch.id, args.get("ts"))
        if msg.user != self.bot_user_id:
            raise Fail("cant_update_message", ["the bot can only update its own messages"])
        self._content(args, require=False)
        text = args["text"] if "text" in args else msg.text
        blocks = args["blocks"] if "blocks" in args else msg.blocks
        if "markdown_text" in args:
            text, blocks = args["markdown_text"], None
        if not text and not blocks and not msg.files:
            raise Fail("no_text", ["the update would leave the message without text or blocks"])
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
