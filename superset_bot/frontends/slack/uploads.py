"""A file in a thread (a diff) the way files_upload_v2 does it, but through the outbox: the two Web
API steps (files.getUploadURLExternal, files.completeUploadExternal) take their methods' budgets and
retries like every other call, so a 429 delays the diff instead of failing it; the upload between
them is retried on transport errors and server errors."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from superset_bot.frontends.slack.outbox import Outbox

UPLOAD_ATTEMPTS = 4
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120)


class UploadFailed(Exception):
    """The file's bytes could not be sent to the URL Slack gave for them."""


async def upload_file(outbox: Outbox, *, channel: str, thread_ts: str | None, content: bytes, filename: str,
                      title: str, initial_comment: str, snippet_type: str | None = None) -> str:
    """Post `content` as a file in the channel (or thread); returns the file id."""
    args: dict[str, object] = {"filename": filename, "length": len(content)}
    if snippet_type:
        args["snippet_type"] = snippet_type
    slot = await outbox.call("files.getUploadURLExternal", **args)
    file_id, url = str(slot.get("file_id", "")), str(slot.get("upload_url", ""))
    if not file_id or not url:
        raise UploadFailed("Slack gave no upload URL for the file")
    await _send(url, content)
    done: dict[str, object] = {"files": json.dumps([{"id": file_id, "title": title}]), "channel_id": channel,
                               "initial_comment": initial_comment}
    if thread_ts:
        done["thread_ts"] = thread_ts
    await outbox.call("files.completeUploadExternal", **done)
    return file_id


async def _send(url: str, content: bytes) -> None:
    delay = 1.0
    problem = ""
    for attempt in range(UPLOAD_ATTEMPTS):
        try:
            async with aiohttp.ClientSession(timeout=UPLOAD_TIMEOUT) as session, \
                    session.post(url, data=content, headers={"Content-Type": "application/octet-stream"}) as resp:
                if resp.status < 300:
                    return
                problem = f"HTTP {resp.status}"
                if resp.status < 500 and resp.status != 429:
                    break  # refused, not unavailable: asking again changes nothing
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = type(exc).__name__
        if attempt + 1 < UPLOAD_ATTEMPTS:
            await asyncio.sleep(delay)
            delay *= 2
    raise UploadFailed(f"the upload to Slack failed ({problem})")
