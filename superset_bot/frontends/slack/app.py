"""The Slack front end: a Bolt app wired to the listeners of each Slack surface and to the engine's events.

Bolt handlers only ack and hand the work to supervised jobs, so Slack is always answered within
3 seconds. The listeners are grouped by surface: `commands.py` (and every answer), `mentions.py`,
`actions.py` (buttons), `modal.py` (the spawn form), `home.py` (App Home) and `threads.py` (what
engine events post in a task's thread); `middleware.py` checks requests first and `messages.py`
remembers where each task's messages are. All streaming calls go through the Outbox's budgets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from superset_bot.composition import build_service
from superset_bot.config import Settings
from superset_bot.engine.core import Engine
from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.actions import Buttons
from superset_bot.frontends.slack.answers import Answers
from superset_bot.frontends.slack.blocks import digest_message
from superset_bot.frontends.slack.commands import Commands
from superset_bot.frontends.slack.home import AppHome
from superset_bot.frontends.slack.mentions import Mentions
from superset_bot.frontends.slack.messages import SlackMessages
from superset_bot.frontends.slack.middleware import CheckedApp, Dedupe
from superset_bot.frontends.slack.modal import SpawnModal
from superset_bot.frontends.slack.outbox import Outbox
from superset_bot.frontends.slack.races import RaceThreads
from superset_bot.frontends.slack.threads import Threads
from superset_bot.housekeeping.jobs import Digest, Housekeeper
from superset_bot.service import Service
from superset_bot.store import ACTIVE_STATES, Task

log = logging.getLogger(__name__)


class SlackFrontend:
    """Wires a Bolt AsyncApp to the engine. `await start()`, then serve `app` over HTTP or Socket Mode."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        client: AsyncWebClient,
        outbox: Outbox,
        *,
        http: bool,
        clock: Callable[[], float] = time.time,
        housekeeper: Housekeeper | None = None,
        service: Service | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.client = client
        self.outbox = outbox
        self.clock = clock
        # the composition root's service; built there too while SlackBot may be given none
        self.service = service or build_service(engine, housekeeper)
        self.housekeeper = self.service.housekeeper  # prune/digest: the scheduler's work
        self.bot_user_id: str | None = None
        self._auth: dict[str, Any] | None = None  # start()'s auth.test answer
        self.workspace_url = "https://slack.com/"
        self._jobs: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self.messages = SlackMessages(engine.store)
        self.threads = Threads(self)
        self.races = RaceThreads(self)
        self.answers = Answers(self)
        self.commands = Commands(self)
        self.mentions = Mentions(self)
        self.buttons = Buttons(self)
        self.modal = SpawnModal(self)
        self.home = AppHome(self)
        self.app = CheckedApp(
            client=client,
            signing_secret=settings.slack_signing_secret or "",
            # Bolt's own check answers 500 to a non-numeric timestamp header; ours answers 401
            request_verification_enabled=False,
            process_before_response=False,
            raise_error_for_unhandled_request=False,
            # Bolt would call auth.test itself on the first request and drop that request if Slack
            # answered 500; the identity comes from start()'s auth.test, made through the outbox
            authorize=lambda enterprise_id, team_id: self._authorize(enterprise_id, team_id),
        )
        self.app.verifier = SignatureVerifier(settings.slack_signing_secret or "") if http else None
        self.app.middleware(Dedupe())
        for listeners in (self.commands, self.mentions, self.home, self.modal, self.buttons):
            listeners.register(self.app)

    @property
    def home_refresh_every(self) -> float:
        """Seconds between App Home refreshes per viewer."""
        return self.home.refresh_every

    @home_refresh_every.setter
    def home_refresh_every(self, seconds: float) -> None:
        self.home.refresh_every = seconds

    # lifecycle

    async def start(self) -> None:
        auth = await self.outbox.call("auth.test")
        self._auth = dict(auth)
        self.bot_user_id = auth.get("user_id")
        self.workspace_url = str(auth.get("url") or self.workspace_url)
        if not self.workspace_url.endswith("/"):
            self.workspace_url += "/"
        await self.messages.load()
        await self.races.messages.load()
        # which status reaction is on each root: after a restart an old one is replaced, not joined
        self.outbox.seed_reactions(self.messages.reactions())
        self.outbox.on_reaction = self.messages.reaction_set
        self._unsubscribe = [self.engine.subscribe(self.threads.on_engine_event),
                             self.engine.subscribe(self.races.on_engine_event)]
        if self.settings.digest_channel:
            self.housekeeper.digest_sinks.append(self.post_digest)
        self.threads.resume(await self.engine.store.list_tasks(ACTIVE_STATES))
        await self.races.resume(self.clock() - 86400)

    async def _authorize(self, enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        """Who the bot is, for every request: the one workspace its token belongs to."""
        if self._auth is None:
            auth = await self.outbox.call("auth.test")
            self._auth = dict(auth)
        return AuthorizeResult(
            enterprise_id=enterprise_id or self._auth.get("enterprise_id"),
            team_id=team_id or self._auth.get("team_id"),
            bot_user_id=self._auth.get("user_id"),
            bot_id=self._auth.get("bot_id"),
            bot_token=self.client.token,
        )

    async def post_digest(self, digest: Digest) -> None:
        """The scheduled digest goes to SUPERSET_DIGEST_CHANNEL."""
        assert self.settings.digest_channel
        rendered = digest_message(digest, self.thread_link)
        await self.outbox.post(self.settings.digest_channel, rendered.text, rendered.blocks)

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        workers = [*self.threads.workers(), *self.races.workers()]
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*jobs, *workers, return_exceptions=True)

    def spawn_job(self, coro: Awaitable[Any], what: str) -> None:
        """Run work after an ack, supervised: errors are logged, never lost in Bolt's futures."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("slack job failed: %s", what)

        job = asyncio.create_task(guarded(), name=f"slack-{what}")
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def wait_jobs(self) -> None:
        """Tests: wait until every handler job and render queue is done."""
        while self._jobs or self.threads.busy() or self.races.busy():
            await asyncio.gather(*list(self._jobs), return_exceptions=True)
            await asyncio.sleep(0.01)

    # shared by the listeners

    def permalink(self, channel: str | None, ts: str | None) -> str | None:
        if not channel or not ts:
            return None
        return f"{self.workspace_url}archives/{channel}/p{ts.replace('.', '')}"

    def thread_link(self, task: Task) -> str | None:
        """A link to the task's thread, or None for a task started elsewhere (the console)."""
        ids = self.messages.get(task.id)
        if ids is None:
            return None
        link = self.permalink(ids.channel, ids.card)
        # a race's attempt: its card is a reply, which Slack links to inside its thread
        return f"{link}?thread_ts={ids.thread_ts}&cid={ids.channel}" if link and ids.card_ts else link

    async def ephemeral(self, channel: str, user: str, rendered: ui.Rendered, thread_ts: Any = None) -> None:
        args: dict[str, Any] = {"channel": channel, "user": user, "text": rendered.text, "blocks": rendered.blocks}
        if thread_ts:
            args["thread_ts"] = thread_ts
        try:
            await self.outbox.call("chat.postEphemeral", **args)
        except SlackApiError as exc:
            log.warning("could not tell %s in %s: %s", user, channel, exc.response.get("error") if exc.response else exc)
