"""Running the Slack front end: one shared HTTP session, the outbox, and a transport.

Socket Mode (SLACK_APP_TOKEN set) needs no public URL; HTTP mode serves
`POST /slack/events` and `GET /healthz` with aiohttp beside the engine in the same loop.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from superset_bot.config import Settings
from superset_bot.engine.core import Engine
from superset_bot.frontends.slack.app import SlackFrontend
from superset_bot.frontends.slack.blocks import validate_blocks
from superset_bot.frontends.slack.outbox import Outbox, slack_retry_handlers
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.service import Service

log = logging.getLogger(__name__)


class SlackBot:
    """Everything Slack needs, started and stopped as one: `await start()`, `await stop()`."""

    def __init__(self, settings: Settings, engine: Engine, *, http: bool, host: str = "0.0.0.0",
                 port: int | None = None, housekeeper: Housekeeper | None = None,
                 service: Service | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.housekeeper = housekeeper or Housekeeper(engine)
        self.service = service
        self.http = http
        self.host = host
        self.port = settings.http_port if port is None else port
        self.session: aiohttp.ClientSession | None = None
        self.frontend: SlackFrontend | None = None
        self.outbox: Outbox | None = None
        self._runner: web.AppRunner | None = None
        self._socket: Any = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        client = AsyncWebClient(
            token=self.settings.slack_bot_token,
            base_url=self.settings.slack_api_url,
            session=self.session,
            # connection errors retried except for chat.postMessage (the outbox checks before it posts
            # again), a 429 once: see outbox.slack_retry_handlers
            retry_handlers=slack_retry_handlers(),
        )
        self.outbox = Outbox(client, validate=validate_blocks)
        self.outbox.start()
        self.frontend = SlackFrontend(self.settings, self.engine, client, self.outbox, http=self.http,
                                      housekeeper=self.housekeeper, service=self.service)
        await self.frontend.start()
        if self.http:
            web_app = self.frontend.app.web_app(path="/slack/events")
            web_app.router.add_get("/healthz", self._healthz)
            self._runner = web.AppRunner(web_app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            if self.port == 0:  # tests ask for any free port
                server = getattr(site, "_server", None)
                sockets = getattr(server, "sockets", None) or []
                if sockets:
                    self.port = sockets[0].getsockname()[1]
            log.info("serving Slack over HTTP on %s:%s (/slack/events, /healthz)", self.host, self.port)
        else:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self._socket = AsyncSocketModeHandler(self.frontend.app, self.settings.slack_app_token,
                                                  web_client=client)
            await self._socket.connect_async()
            log.info("connected to Slack over Socket Mode")

    async def _healthz(self, request: web.Request) -> web.Response:
        """200 while the bot works; 503 when its loop, database or a task is wedged (a restart helps)."""
        running = len(self.engine.slots.holders)
        pending = self.outbox.pending if self.outbox else 0
        health = await self.engine.health()
        if not health["ok"]:
            log.warning("health check failing: %s", "; ".join(health["problems"]))
        return web.json_response({**health, "agents_running": running, "slack_updates_pending": pending},
                                 status=200 if health["ok"] else 503)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.frontend is not None:
            await self.frontend.stop()
        if self.outbox is not None:
            await self.outbox.stop()
        if self.session is not None:
            await self.session.close()
