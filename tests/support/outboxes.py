"""Outboxes over real HTTP against fake Slacks, with the client built as runtime.py builds it."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from superset_bot.frontends.slack.blocks import validate_blocks
from superset_bot.frontends.slack.outbox import (
    Outbox,
    PostSafeConnectionErrorRetryHandler,
    slack_retry_handlers,
)
from support.fakeslack import FakeSlack


class ManualClock:
    """A clock that moves only when a test sets `now`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Outboxes:
    """`make(...)` -> (fake, outbox) with one channel the bot is in; `close()` stops them all."""

    def __init__(self, channel: str, name: str) -> None:
        self.channel, self.name = channel, name
        self.opened: list[tuple[FakeSlack, Outbox, aiohttp.ClientSession]] = []

    async def make(self, *, rate_limits: bool = True, limits: dict[str, tuple[float, float]] | None = None,
                   sdk_retries_429: bool = True, **options: Any) -> tuple[FakeSlack, Outbox]:
        """`sdk_retries_429=False` leaves 429s to the outbox (the SDK then only retries connection errors)."""
        fake = FakeSlack(rate_limits=rate_limits, limits=limits)
        await fake.start()
        fake.add_channel(self.channel, self.name)
        session = aiohttp.ClientSession()
        handlers: list[Any] = slack_retry_handlers() if sdk_retries_429 else [PostSafeConnectionErrorRetryHandler()]
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.url, session=session, retry_handlers=handlers)
        outbox = Outbox(client, validate=validate_blocks, **options)
        outbox.start()
        self.opened.append((fake, outbox, session))
        return fake, outbox

    async def close(self, flush_timeout: float) -> None:
        for fake, outbox, session in self.opened:
            await outbox.stop(flush_timeout)
            await session.close()
            await fake.stop()
