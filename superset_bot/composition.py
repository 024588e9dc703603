"""The composition root: one place builds the engine, housekeeping, scheduler and service.

Every front end starts the same runtime (`superset-bot run` and `superset-bot console` alike), so
housekeeping runs by itself wherever the bot runs, and a command reaches the same service.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from superset_bot.config import Settings
from superset_bot.domain.access import Access
from superset_bot.engine.core import Engine
from superset_bot.git.commands import require_git
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.housekeeping.scheduler import build_scheduler
from superset_bot.plugins.hooks import builtin_hooks
from superset_bot.presets import load_presets
from superset_bot.service import Service
from superset_bot.store import Store

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    housekeeper: Housekeeper
    access: Access
    service: Service
    scheduler: AsyncIOScheduler

    async def start(self) -> None:
        """Start once the front end has subscribed: what recovery publishes reaches it."""
        await self.engine.start()
        self.scheduler.start()


@asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[Engine]:
    """Check git, open the store, load presets and plugins; always stop the engine and close the store."""
    await require_git()
    presets = load_presets(settings.presets_dir)
    hooks = builtin_hooks()
    loaded = hooks.load_entry_points()
    if loaded:
        log.info("plugins loaded: %s", ", ".join(loaded))
    store = await Store.open(settings.db_path)
    engine = Engine(settings, store, presets, hooks)
    try:
        yield engine
    finally:
        await engine.stop()
        await store.close()


def build_service(engine: Engine, housekeeper: Housekeeper | None = None, operators: Iterable[str] = ()) -> Service:
    """The one service over an open engine: its housekeeping (a new one unless given) and the access
    rules of its settings; `operators` are admins by construction (the console's user)."""
    access = Access(engine.settings, operators=frozenset(operators))
    return Service(engine, housekeeper or Housekeeper(engine), access)


@asynccontextmanager
async def open_runtime(settings: Settings, operators: Iterable[str] = ()) -> AsyncIterator[Runtime]:
    """Everything but a front end; `operators` are admins by construction (the console's user)."""
    async with open_engine(settings) as engine:
        service = build_service(engine, operators=operators)
        runtime = Runtime(settings, engine, service.housekeeper, service.access, service,
                          build_scheduler(service.housekeeper))
        try:
            yield runtime
        finally:
            if runtime.scheduler.running:
                runtime.scheduler.shutdown(wait=False)
