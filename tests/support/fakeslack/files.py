"""File uploads: files_upload_v2's three steps (getUploadURLExternal, the upload, completeUploadExternal)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .state import Fail, Message, SlackState


class FilesMixin(SlackState):
    def __init__(self, **workspace: Any) -> None:
        super().__init__(**workspace)
        self.files: list[dict[str, Any]] = []
        self._uploads: dict[str, dict[str, Any]] = {}  # file_id -> pending upload

    def _m_files_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        raise Fail("method_deprecated", ["files.upload is retired; use files_upload_v2"])

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
            raise Fail("invalid_arguments", errors)
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
            raise Fail("invalid_arguments", ["files must be a JSON array of {id, title}"])
        pending = []
        for i, f in enumerate(files):
            up = self._uploads.get(str(f.get("id"))) if isinstance(f, dict) else None
            if up is None:
                raise Fail("file_not_found", [f"files[{i}] id was not issued by files.getUploadURLExternal"])
            if up["content"] is None:
                raise Fail("file_not_found", [f"file {up['id']} was never uploaded to its upload_url"])
            pending.append((up, f))
        channel_id = args.get("channel_id") or None
        channels = [c for c in str(args.get("channels") or "").split(",") if c]
        targets = ([channel_id] if channel_id else []) + channels
        chans = [self._channel({"channel": c}) for c in targets]
        for ch in chans:
            self._writable(ch)
        thread_ts = args.get("thread_ts") or None
        if thread_ts and len(chans) != 1:
            raise Fail("invalid_arguments", ["thread_ts needs exactly one channel"])
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
