"""Waiting in tests for something the bot does in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    """Poll `check` until it returns something true (and return that); fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return got
