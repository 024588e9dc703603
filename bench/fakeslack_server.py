"""The tests' fake Slack (rate limits on) in a process of its own, so the soak measures only the bot.

Prints one JSON line {"url", "base", "bot_token", "app_token"} when ready, then answers lines on
stdin: `stats [[channel, ts], ...]` prints a JSON line of call counts, 429s and the given messages;
`history` prints every call as [time, method, status] and every successful chat.postMessage /
chat.update as [time, method, channel, ts, text after the write]; `quit` (or end of input) stops it.
Times are wall clock (time.time()), so they compare with the bot's store. Response URLs r0 .. r19999
are registered up front.
usage: python -m bench.fakeslack_server CHANNEL
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.fakeslack import FakeSlack  # noqa: E402 - tests/ is not a package

RESPONSE_KEYS = 20_000


class RecordingFakeSlack(FakeSlack):
    """The fake on the wall clock, keeping what each accepted chat write left the message showing."""

    def __init__(self) -> None:
        super().__init__(rate_limits=True, clock=time.time)
        self.writes: list[tuple[float, str, str, str, str]] = []

    def _wrote(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get((str(body.get("channel")), str(body.get("ts"))))
        if body.get("ok") and message is not None:
            self.writes.append((time.time(), method, message.channel, message.ts, message.text or ""))
        return body

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._wrote("chat.postMessage", super()._m_chat_postMessage(args))

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._wrote("chat.update", super()._m_chat_update(args))


def stats(fake: FakeSlack, wanted: list[list[str]]) -> dict[str, object]:
    by_method: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    times: dict[str, list[float]] = {}
    for call in fake.calls:
        method = "response_url" if call.method.startswith("response_url:") else call.method
        by_method[method] += 1
        by_status[str(call.status)] += 1
        times.setdefault(method, []).append(call.time)
    messages = {}
    for channel, ts in wanted:
        message = fake.messages.get((channel, ts))
        if message is not None:
            messages[f"{channel}/{ts}"] = {"text": message.text, "blocks": json.dumps(message.blocks),
                                           "reactions": json.dumps(message.reactions, default=sorted)}
    return {"calls": dict(by_method), "statuses": dict(by_status), "rate_limited": dict(fake.rate_limited),
            "rejected": len(fake.rejected), "rejected_sample": [f"{c.method}: {c.response}" for c in fake.rejected[:3]],
            "first_last": {m: [min(t), max(t)] for m, t in times.items()}, "messages": messages}


def history(fake: RecordingFakeSlack) -> dict[str, object]:
    calls = [[c.time, "response_url" if c.method.startswith("response_url:") else c.method, c.status]
             for c in fake.calls]
    return {"calls": calls, "writes": fake.writes}


async def main() -> None:
    fake = RecordingFakeSlack()
    await fake.start()
    fake.add_channel(sys.argv[1], "tasks", is_member=True)
    for i in range(RESPONSE_KEYS):
        fake.response_url(f"r{i}")
    print(json.dumps({"url": fake.url, "base": fake.base, "bot_token": fake.bot_token,
                      "app_token": fake.app_token}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "quit":
                break
            if line.startswith("stats"):
                wanted = json.loads(line[5:].strip() or "[]")
                print(json.dumps(stats(fake, wanted), default=str), flush=True)
            elif line.startswith("history"):
                print(json.dumps(history(fake)), flush=True)
    finally:
        await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
