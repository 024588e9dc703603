"""The asyncio tasks that work for the engine: one driver per task it drives, and background jobs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from superset_bot.aio import stack_of

log = logging.getLogger(__name__)

STOP_WAIT = 30.0  # seconds `stop` waits for the drivers and jobs it cancelled


class Workers:
    """Starts, finds, awaits and stops the engine's asyncio tasks; `stopping` is set once the bot shuts down."""

    def __init__(self) -> None:
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.stopping = False

    def drive(self, task_id: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as the task's driver; it stops being the driver when it ends."""
        driver = asyncio.create_task(coro, name=f"task-{task_id}")
        self._drivers[task_id] = driver

        def done(job: asyncio.Task[None]) -> None:
            if self._drivers.get(task_id) is job:
                del self._drivers[task_id]

        driver.add_done_callback(done)

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` on its own, kept referenced until it ends (and cancelled by `stop`)."""
        job = asyncio.create_task(coro)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    def driver_of(self, task_id: str) -> asyncio.Task[None] | None:
        return self._drivers.get(task_id)

    def is_driven(self, task_id: str) -> bool:
        return task_id in self._drivers

    async def wait_idle(self) -> None:
        """Wait until no task is being driven."""
        while self._drivers:
            await asyncio.gather(*list(self._drivers.values()), return_exceptions=True)

    async def stop(self, timeout: float = STOP_WAIT) -> None:
        """Cancel every driver and background job, and wait up to `timeout` seconds for them."""
        drivers = list(self._drivers.values()) + list(self._background)
        for driver in drivers:
            driver.cancel()
        if not drivers:
            return
        # a step that must finish once begun (a worktree being stored) may take a while; a shutdown
        # that waits forever on one would wedge the service manager's stop, so say where it hangs
        _, pending = await asyncio.wait(drivers, timeout=timeout)
        for job in pending:
            log.error("%s did not stop within %.0f s of the bot stopping; left as it is (a restart "
                      "recovers its task). %s", job.get_name(), timeout, stack_of(job))
