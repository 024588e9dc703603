"""The engine's events: who subscribed, and handing each published event to all of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from superset_bot.domain.events import EngineEvent
from superset_bot.store import Task

log = logging.getLogger(__name__)

Subscriber = Callable[[EngineEvent], None]


class EventBus:
    """Typed engine events to every subscriber, in the order they subscribed; a failing one is logged."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber(event)` for every event; it must not block. Returns an unsubscribe."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: EngineEvent) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("task %s: subscriber %r failed on %s", event.task.id, subscriber, type(event).__name__)

    async def wait_for(
        self, task_id: str, states: Iterable[str], timeout: float, current: Callable[[str], Awaitable[Task | None]]
    ) -> Task:
        """Wait until an event shows the task in one of `states`, or `current(task_id)` already does."""
        wanted = set(states)
        reached: asyncio.Future[Task] = asyncio.get_running_loop().create_future()

        def watch(event: EngineEvent) -> None:
            if event.task.id == task_id and event.task.state in wanted and not reached.done():
                reached.set_result(event.task)

        unsubscribe = self.subscribe(watch)
        try:
            task = await current(task_id)
            if task is not None and task.state in wanted:
                return task
            return await asyncio.wait_for(reached, timeout)
        finally:
            unsubscribe()
