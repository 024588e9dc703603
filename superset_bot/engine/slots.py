"""The concurrency limit on running agents: a fixed number of slots, and a FIFO queue for the rest."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable


class Slots:
    """A FIFO concurrency limit: at most `limit` tasks hold a slot; the rest wait in order."""

    def __init__(self, limit: int, on_queue_change: Callable[[list[str]], None]) -> None:
        self.limit = limit
        self.holders: set[str] = set()
        self._waiting: OrderedDict[str, asyncio.Future[None]] = OrderedDict()
        self._on_queue_change = on_queue_change

    def position(self, task_id: str) -> int | None:
        for index, waiting_id in enumerate(self._waiting, start=1):
            if waiting_id == task_id:
                return index
        return None

    async def acquire(self, task_id: str) -> None:
        if task_id in self.holders:
            return
        if len(self.holders) < self.limit and not self._waiting:
            self.holders.add(task_id)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[task_id] = future
        self._on_queue_change(list(self._waiting))
        try:
            await future
        except BaseException:
            if self._waiting.pop(task_id, None) is not None:
                self._on_queue_change(list(self._waiting))
            elif future.done() and not future.cancelled():
                self.release(task_id)  # granted while being cancelled: pass it on
            raise

    def kick(self) -> None:
        """Hand free slots to whoever waits (after a waiter was stopped from outside)."""
        self.release("")

    def take(self, task_id: str) -> None:
        """Hold a slot without queueing (an agent found running after a restart)."""
        self.holders.add(task_id)

    def release(self, task_id: str) -> None:
        self.holders.discard(task_id)
        changed = False
        while self._waiting and len(self.holders) < self.limit:
            next_id, future = self._waiting.popitem(last=False)
            changed = True
            if not future.done():
                self.holders.add(next_id)
                future.set_result(None)
        if changed:
            self._on_queue_change(list(self._waiting))
