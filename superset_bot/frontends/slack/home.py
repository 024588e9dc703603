"""App Home: each viewer's own tasks and what runs, as far as `list` shows them to that viewer
(`Service.visible_tasks`), published when opened and refreshed as tasks change.

Refreshes are throttled per viewer (at most one every `refresh_every` seconds), since views.publish
is rate limited and a busy task changes state often.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

from superset_bot.frontends.slack import blocks as ui
from superset_bot.service.results import Refused
from superset_bot.store import QUEUED, RUNNING

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend

HOME_REFRESH_EVERY = 10.0  # seconds between App Home refreshes per user


class AppHome:
    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend
        self.refresh_every = HOME_REFRESH_EVERY
        self._viewers: dict[str, float] = {}  # who opened App Home, and when it was last published for them
        self._places: dict[str, str] = {}  # the channel App Home lists for, per viewer (the app's DM)
        self._scheduled: set[str] = set()

    def register(self, app: AsyncApp) -> None:
        app.event("app_home_opened")(self.on_opened)

    async def on_opened(self, event: dict[str, Any]) -> None:
        user = str(event.get("user", ""))
        if user and event.get("tab", "home") == "home":
            self._viewers[user] = 0.0
            # the app's DM with the person: App Home lists what `list` would answer them there
            self._places[user] = str(event.get("channel") or user)
            self.frontend.spawn_job(self.publish(user), "home")

    async def publish(self, user: str) -> None:
        frontend = self.frontend
        self._viewers[user] = frontend.clock()
        listed = await frontend.service.visible_tasks(user, self.place_of(user))
        if isinstance(listed, Refused):
            view = ui.app_home(user, [], [], {}, now=frontend.clock(), refusal=listed.reason)
        else:
            mine = [t for t in reversed(listed.tasks) if t.requester == user]  # newest first
            running = [t for t in listed.tasks if t.state in (RUNNING, QUEUED)]
            links = {t.id: link for t in listed.tasks if (link := frontend.thread_link(t))}
            spent = await frontend.service.task_costs([t.id for t in listed.tasks])
            view = ui.app_home(user, mine, running, links, now=frontend.clock(),
                               costs={task_id: s.brief() for task_id, s in spent.items()})
        await frontend.outbox.call("views.publish", user_id=user, view=view)

    def place_of(self, user: str) -> str:
        """Where App Home looks from for `user`: the app's DM with them (their user id until known)."""
        return self._places.get(user) or user

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
