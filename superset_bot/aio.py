"""Small asyncio tools the engine and the store share: finishing a step despite a cancel, and
showing where a coroutine waits."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def run_to_end(step: Awaitable[T]) -> tuple[asyncio.Future[T], bool]:
    """Await `step` to its end even if the caller is cancelled meanwhile.

    Returns the finished job and whether a cancel arrived; the caller decides what wins, the
    step's own error or the cancel, and re-raises the cancel itself.
    """
    job = asyncio.ensure_future(step)
    cancelled = False
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            cancelled = True
    return job, cancelled


def stack_of(task: asyncio.Task[Any], limit: int = 30) -> str:
    """Where an asyncio task waits right now, as the lines a traceback would show."""
    buffer = io.StringIO()
    task.print_stack(limit=limit, file=buffer)
    return buffer.getvalue().strip()
