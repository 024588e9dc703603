"""App Home: each viewer's own tasks and what runs, published when opened and refreshed as tasks change.

Refreshes are throttled per viewer (at most one every `refresh_every` seconds), since views.publish
is rate limited and a busy task changes state often.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

from superset_bot.frontends.slack import blocks as ui
from superset_bot.store import ACTIVE_STATES, QUEUED, REVIEWABLE_STATES, RUNNING

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend

HOME_REFRESH_EVERY = 10.0  # seconds between App Home refreshes per user


class AppHome:
    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend
        self.refresh_every = HOME_REFRESH_EVERY
        self._viewers: dict[str, float] = {}  # who opened App Home, and when it was last published for them
        self._scheduled: set[str] = set()

    def register(self, app: AsyncApp) -> None:
        app.event("app_home_opened")(self.on_opened)

    async def on_opened(self, event: dict[str, Any]) -> None:
        user = str(event.get("user", ""))
        if user and event.get("tab", "home") == "home":
            self._viewers[user] = 0.0
            self.frontend.spawn_job(self.publish(user), "home")

    async def publish(self, user: str) -> None:
        frontend = self.frontend
        store = frontend.engine.store
        self._viewers[user] = frontend.clock()
        mine = await store.list_tasks(ACTIVE_STATES | REVIEWABLE_STATES, requester=user, newest_first=True, limit=20)
        running = await store.list_tasks({RUNNING, QUEUED}, limit=30)
        links = {t.id: link for t in [*mine, *running] if (link := frontend.thread_link(t))}
        view = ui.app_home(user, mine, running, links, now=frontend.clock())
        await frontend.outbox.call("views.publish", user_id=user, view=view)

    def schedule(self, user: str) -> None:
        """Refresh a viewer's App Home once the throttle allows (one pending refresh per viewer)."""
        if user not in self._viewers or user in self._scheduled:
            return
        self._scheduled.add(user)
        delay = max(0.0, self._viewers[user] + self.refresh_every - self.frontend.clock())

        async def later() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                self._scheduled.discard(user)
            await self.publish(user)

        self.frontend.spawn_job(later(), "home-refresh")
