"""The Slack front end: `/superset`, mentions, buttons, the spawn modal, App Home, task threads.

Bolt handlers only ack and hand the work to supervised jobs, so Slack is always answered
within 3 seconds. Engine events are rendered per task by a serial worker (the status card
exists before it is updated) and all streaming calls go through the Outbox's budgets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from superset_bot.config import Settings
from superset_bot.domain.access import Access
from superset_bot.domain.commands import CommandError, parse
from superset_bot.domain.commands import usage as usage_line
from superset_bot.domain.events import (
    EngineEvent,
    Milestone,
    OutputLines,
    ProgressChanged,
    PruneWarning,
    QueuePosition,
    ReviewReady,
    StateChanged,
)
from superset_bot.engine.core import AlreadyClosed, Engine, UserError
from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.digest import digest_message
from superset_bot.frontends.slack.outbox import Outbox
from superset_bot.git.commands import GitError
from superset_bot.housekeeping.jobs import Digest, Housekeeper
from superset_bot.store import (
    ACTIVE_STATES,
    CLOSED_STATES,
    DISCARDED,
    FAILED,
    FINISHED,
    MERGED,
    PRUNED,
    QUEUED,
    REVIEWABLE_STATES,
    RUNNING,
    StoreBusy,
    Task,
    new_task_id,
)

log = logging.getLogger(__name__)

MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
HOME_REFRESH_EVERY = 10.0  # seconds between App Home refreshes per user
MAX_DIFF_BYTES = 5 * 1024 * 1024
DEDUPE_KEEP = 5000
_SAVED_REVIEW: Any = object()

Reply = Callable[[ui.Rendered], Awaitable[None]]


@dataclass
class _Thread:
    """What the front end knows of one task's thread, and its serial render queue."""

    queue: asyncio.Queue[EngineEvent] = field(default_factory=asyncio.Queue)
    progress: dict[str, Any] | None = None
    setup_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    queue_position: int | None = None
    refresh_pending: bool = False
    review: dict[str, Any] | None = None  # what the current review message shows
    worker: asyncio.Task[None] | None = None


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
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.housekeeper = housekeeper  # prune/digest (the scheduler's work); runtime.py passes it
        self.client = client
        self.outbox = outbox
        self.clock = clock
        self.access = Access(settings)
        self.bot_user_id: str | None = None
        self._auth: dict[str, Any] | None = None  # start()'s auth.test answer
        self.workspace_url = "https://slack.com/"
        self._threads: dict[str, _Thread] = {}
        self._jobs: set[asyncio.Task[Any]] = set()
        self._seen_events: OrderedDict[str, None] = OrderedDict()
        self._home_viewers: dict[str, float] = {}
        self._home_scheduled: set[str] = set()
        self.home_refresh_every = HOME_REFRESH_EVERY
        self._unsubscribe: Callable[[], None] | None = None
        self.app = _CheckedApp(
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
        self._register()

    # lifecycle

    async def start(self) -> None:
        auth = await self.outbox.call("auth.test")
        self._auth = dict(auth)
        self.bot_user_id = auth.get("user_id")
        self.workspace_url = str(auth.get("url") or self.workspace_url)
        if not self.workspace_url.endswith("/"):
            self.workspace_url += "/"
        self._unsubscribe = self.engine.subscribe(self.on_engine_event)
        if self.settings.digest_channel:
            self._housekeeper().digest_sinks.append(self.post_digest)
        for task in await self.engine.store.list_tasks(ACTIVE_STATES):
            if task.channel and task.thread_ts:
                self._thread(task.id)  # resume rendering for tasks re-attached after a restart

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

    def _housekeeper(self) -> Housekeeper:
        if self.housekeeper is None:
            self.housekeeper = Housekeeper(self.engine)
        return self.housekeeper

    async def post_digest(self, digest: Digest) -> None:
        """The scheduled digest goes to SUPERSET_DIGEST_CHANNEL."""
        assert self.settings.digest_channel
        rendered = digest_message(digest, lambda t: self.permalink(t.channel, t.thread_ts))
        await self.outbox.post(self.settings.digest_channel, rendered.text, rendered.blocks)

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        workers = [t.worker for t in self._threads.values() if t.worker]
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
        while self._jobs or any(not t.queue.empty() or t.refresh_pending for t in self._threads.values()):
            await asyncio.gather(*list(self._jobs), return_exceptions=True)
            await asyncio.sleep(0.01)

    def permalink(self, channel: str | None, ts: str | None) -> str | None:
        if not channel or not ts:
            return None
        return f"{self.workspace_url}archives/{channel}/p{ts.replace('.', '')}"

    # Bolt registration

    def _register(self) -> None:
        app = self.app
        # an AsyncMiddleware object: Bolt builds a function middleware's arguments from the payload
        # (action, view, ...) before calling it, which raises on a payload of an odd shape
        app.middleware(_Middleware(self._dedupe))
        app.command("/superset")(self._on_command)
        app.event("app_mention")(self._on_mention)
        app.event("app_home_opened")(self._on_home_opened)
        app.view(ui.SPAWN_CALLBACK)(self._on_spawn_submit)
        for action in (ui.ACTION_MERGE, ui.ACTION_DISCARD, ui.ACTION_DIFF, ui.ACTION_UPDATE,
                       ui.ACTION_CANCEL, ui.ACTION_RETRY, ui.ACTION_KEEP):
            app.action(action)(self._on_action)

    async def _dedupe(self, req: AsyncBoltRequest, resp: BoltResponse,
                      next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse:  # noqa: A002 - Bolt's name
        """Slack retries events it thinks were not acked; Bolt does not dedupe them."""
        event_id = req.body.get("event_id") if isinstance(req.body, dict) else None
        if event_id:
            if event_id in self._seen_events:
                return BoltResponse(status=200, body="")
            self._seen_events[event_id] = None
            while len(self._seen_events) > DEDUPE_KEEP:
                self._seen_events.popitem(last=False)
        return await next()

    # slash command

    async def _on_command(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any],
                          respond: Callable[..., Awaitable[Any]]) -> None:
        await ack()

        async def reply(rendered: ui.Rendered) -> None:
            if body.get("response_url"):
                await respond(text=rendered.text, blocks=rendered.blocks, response_type="ephemeral",
                              replace_original=False)
            elif body.get("channel_id") and body.get("user_id"):  # Slack always sends one; a forged body may not
                await self.ephemeral(str(body["channel_id"]), str(body["user_id"]), rendered)

        self.spawn_job(self.handle_command(body, reply), "command")

    async def handle_command(self, body: Mapping[str, Any], reply: Reply) -> None:
        user = str(body.get("user_id", ""))
        channel = str(body.get("channel_id", ""))
        text = str(body.get("text", ""))
        refusal = self.access.refuse_user(user, channel)
        if refusal:
            await reply(_trusted_error(refusal))
            return
        try:
            command = parse(text)
        except CommandError as exc:
            await reply(ui.error_message(str(exc)))
            return
        refusal = self.access.refuse_command(user, command.name)
        if refusal:
            await reply(_trusted_error(refusal))
            return
        try:
            await self._run_command(command, user, channel, body, reply)
        except AlreadyClosed as exc:
            await reply(ui.error_message(str(exc)))
        except _Refusal as exc:
            await reply(_trusted_error(str(exc)))
        except UserError as exc:
            usage = f"\nUsage: {usage_line(command.name)}"
            await reply(ui.error_message(f"{exc}{usage if command.name != 'spawn' else ''}"))
        except GitError as exc:
            await reply(ui.error_message(f"`{command.name}` failed in git: {exc}"))
        except StoreBusy as exc:
            await reply(ui.error_message(f"`{command.name}` could not be done: {exc}. Try again in a minute."))
        except Exception:
            log.exception("command %r by %s failed", command.name, user)
            await reply(ui.error_message(f"`{command.name}` failed unexpectedly; the bot's log has the details."))

    async def _run_command(self, command: Any, user: str, channel: str, body: Mapping[str, Any],
                           reply: Reply) -> None:
        engine = self.engine
        name = command.name
        if name == "help":
            await reply(ui.help_message(self.access.allowed_commands(user)))
        elif name == "spawn":
            if not command.text:
                await self._open_spawn_modal(body, channel, command.options, reply)
                return
            await self.start_task(channel, user, command.text, command.options, reply)
        elif name == "list":
            # this channel's tasks and your own: prompts from other (maybe private) channels stay there
            tasks = [t for t in await engine.store.list_tasks(ACTIVE_STATES | REVIEWABLE_STATES)
                     if t.channel == channel or t.requester == user]
            links = {t.id: link for t in tasks if (link := self.permalink(t.channel, t.thread_ts))}
            await reply(ui.task_list(tasks, links, title="Tasks here and yours, running or awaiting review",
                                     now=self.clock()))
        elif name == "presets":
            lines = [f"*{name}*: {ui.escape(p.description)}" for name, p in sorted(engine.presets.items())]
            await reply(ui.Rendered("Presets", [_section("\n".join(lines) or "No presets are loaded.")]))
        elif name == "repos":
            lines = [f"*{name}*{' (default)' if name == self.settings.default_repo else ''}"
                     for name in self.settings.repos]
            await reply(ui.Rendered("Repos", [_section("\n".join(lines) or "No repos are configured.")]))
        elif name == "prune":
            report = await self._housekeeper().prune(dry_run=command.dry_run, actor=user)
            title = "Prune (dry run): nothing was changed" if command.dry_run else "Prune"
            await reply(ui.Rendered(title, [_section(f"*{title}*"),
                                            *_text_sections([ui.escape(line) for line in report.lines()])]))
        elif name == "digest":
            digest = await self._housekeeper().build_digest()
            if digest.empty:
                await reply(ui.Rendered("Nothing to report", [_section("Nothing to report: no tasks running, "
                                                                       "awaiting review or closed lately.")]))
                return
            rendered = digest_message(digest, lambda t: self.permalink(t.channel, t.thread_ts))
            await self.outbox.post(channel, rendered.text, rendered.blocks)
        else:
            task = await self._task_in_channel(command.task_id, channel)
            if name == "status":
                progress = json.loads(task.progress) if task.progress else None
                await reply(ui.status_message(task, progress, self.permalink(task.channel, task.thread_ts),
                                              now=self.clock(), queue_position=engine.queue_position(task.id)))
                return
            if name == "diff":
                await self.post_diff(task, user)
                await reply(ui.Rendered("Diff posted", [_section(f"The diff of `{task.id}` is in its thread.")]))
                return
            action = {"merge": "merge", "discard": "discard", "cancel": "cancel", "followup": "follow up on"}[name]
            refusal = self.access.refuse_action(user, task, action)
            if refusal:
                await engine.store.add_event(task.id, user, f"{name}_refused", {"reason": refusal})
                await reply(_trusted_error(refusal))
                return
            if name == "merge":
                merged = await engine.merge(task.id, user)
                await reply(ui.Rendered("Merged", [_section(
                    f"Merged `{merged.branch}` into `{merged.base_branch}` ({(merged.merge_commit or '')[:10]}).")]))
            elif name == "discard":
                await engine.discard(task.id, user)
                await reply(ui.Rendered("Discarded", [_section(f"Task `{task.id}` was discarded.")]))
            elif name == "cancel":
                done = await engine.cancel(task.id, user)
                await reply(ui.Rendered("Cancelled", [_section(f"Task `{task.id}` is {done.state}.")]))
            elif name == "followup":
                await engine.followup(task.id, command.text, user)
                await reply(ui.Rendered("Follow-up sent", [_section(f"Follow-up queued for `{task.id}`.")]))

    async def _task_in_channel(self, task_id: str | None, channel: str) -> Task:
        task = await self.engine.get(task_id or "")
        if task.channel and channel and task.channel != channel:
            raise _Refusal(f"Task `{task.id}` belongs to <#{task.channel}>; run the command there.")
        return task

    async def start_task(self, channel: str, user: str, prompt: str, options: Mapping[str, str | None],
                         reply: Reply) -> Task | None:
        """Post the root message first (so the thread exists), then hand the task to the engine."""
        defaults = self.settings.channel_defaults.get(channel)
        repo = options.get("repo") or (defaults.repo if defaults else None)
        preset = options.get("preset") or (defaults.preset if defaults else None)
        base = options.get("base") or (defaults.base if defaults else None)
        task_id = new_task_id()
        try:
            self.engine.validate_spawn(prompt, repo=repo, preset=preset, base=base)
        except UserError as exc:
            await reply(ui.error_message(str(exc)))
            return None
        pending = Task(id=task_id, repo=repo or self.settings.default_repo or "", prompt=prompt,
                       preset=preset or self.settings.default_preset, requester=user, channel=channel,
                       created_at=self.clock())
        root = ui.root_message(pending)
        try:
            root_ts = await self.outbox.post(channel, root.text, root.blocks)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else ""
            if error in ("not_in_channel", "channel_not_found"):
                who = f"<@{self.bot_user_id}>" if self.bot_user_id else "the bot"
                await reply(_trusted_error(
                    f"I can't post in this channel yet, so no task was started. Invite me with `/invite {who}` "
                    "and run the command again."))
                return None
            raise
        try:
            task = await self.engine.spawn(prompt, requester=user, repo=repo, preset=preset, base=base,
                                           channel=channel, thread_ts=root_ts, task_id=task_id)
            link = self.permalink(channel, root_ts)
            where = f"<{link}|its thread>" if link else "its thread"
            await reply(ui.Rendered(f"Started task {task.id}", [_section(
                f"Started task `{task.id}` in `{task.repo}` with preset `{task.preset}`; follow it in {where}.")]))
            return task
        except (UserError, StoreBusy) as exc:
            # blocks must be replaced too: chat.update keeps the old ones (the "queued" card) otherwise
            failed = ui.error_message(f"Task {task_id} was not started: {exc}")
            await self.outbox.call("chat.update", channel=channel, ts=root_ts, text=failed.text, blocks=failed.blocks)
            await reply(ui.error_message(str(exc)))
            return None
        except Exception:  # the root message must not go on saying "queued"
            failed = ui.error_message(f"Task {task_id} was not started because of an internal error; "
                                      "the bot's log has the details.")
            await self.outbox.call("chat.update", channel=channel, ts=root_ts, text=failed.text, blocks=failed.blocks)
            raise

    async def _open_spawn_modal(self, body: Mapping[str, Any], channel: str, options: Mapping[str, str],
                                reply: Reply) -> None:
        defaults = self.settings.channel_defaults.get(channel)
        view = ui.spawn_modal(
            list(self.settings.repos),
            {name: p.description for name, p in sorted(self.engine.presets.items())},
            repo=options.get("repo") or (defaults.repo if defaults else None) or self.settings.default_repo,
            preset=options.get("preset") or (defaults.preset if defaults else None) or self.settings.default_preset,
            base=options.get("base") or (defaults.base if defaults else None),
            channel=channel,
        )
        try:
            await self.outbox.call("views.open", trigger_id=body.get("trigger_id"), view=view)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else exc
            await reply(ui.error_message(
                f"I could not open the spawn form ({error}). Run `/superset spawn` again, or give the prompt "
                "inline: `/superset spawn [--repo NAME] [--preset NAME] PROMPT`."))

    async def _on_spawn_submit(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        view = body.get("view", {})
        options, prompt, errors = ui.parse_spawn_submission(view)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = str(body.get("user", {}).get("id", ""))
        try:
            channel = str(json.loads(view.get("private_metadata") or "{}").get("channel", ""))
        except (ValueError, AttributeError):
            channel = ""

        async def reply(rendered: ui.Rendered) -> None:
            if channel:
                await self.ephemeral(channel, user, rendered)

        refusal = self.access.refuse_user(user, channel)
        if refusal or not channel:
            await reply(_trusted_error(refusal or "The form lost its channel; run /superset spawn again."))
            return
        self.spawn_job(self.start_task(channel, user, prompt, options, reply), "spawn-modal")

    # mentions: a new task in a channel, or a follow-up in a task's thread

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        self.spawn_job(self.handle_mention(event), "mention")

    async def handle_mention(self, event: Mapping[str, Any]) -> None:
        user = str(event.get("user", ""))
        channel = str(event.get("channel", ""))
        raw_text = event.get("text")  # a string from Slack; anything else is no prompt, not "None" or "5"
        text = self._without_bot_mention(raw_text if isinstance(raw_text, str) else "")

        async def reply(rendered: ui.Rendered) -> None:
            await self.ephemeral(channel, user, rendered, thread_ts=event.get("thread_ts"))

        if not user or user == self.bot_user_id:
            return
        refusal = self.access.refuse_user(user, channel)
        if refusal:
            await reply(_trusted_error(refusal))
            return
        thread_ts = event.get("thread_ts")
        if thread_ts:
            task = await self.engine.store.find_by_thread(channel, str(thread_ts))
            if task is None:
                return  # chatter in some other thread
            refusal = self.access.refuse_action(user, task, "follow up on")
            if refusal:
                await self.engine.store.add_event(task.id, user, "followup_refused", {"reason": refusal})
                await reply(_trusted_error(refusal))
                return
            try:
                await self.engine.followup(task.id, text, user)
            except UserError as exc:
                await reply(ui.error_message(str(exc)))
            except Exception:
                log.exception("task %s: follow-up failed", task.id)
                await reply(ui.error_message("The follow-up could not be sent because of an internal error; "
                                             "it is in the bot's log. Try again, or spawn a new task."))
            return
        try:
            command = parse(f"spawn {text}")
        except CommandError as exc:
            await reply(ui.error_message(str(exc)))
            return
        if not command.text:
            await reply(ui.help_message(self.access.allowed_commands(user)))
            return
        await self.start_task(channel, user, command.text, command.options, reply)

    def _without_bot_mention(self, text: str) -> str:
        """Drop the mention that addressed the bot; other people's mentions are part of the prompt."""
        if not self.bot_user_id:
            return MENTION.sub("", text, count=1).strip()
        return re.sub(rf"<@{re.escape(self.bot_user_id)}(?:\|[^>]*)?>", "", text).strip()

    # buttons

    async def _on_action(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any],
                         respond: Callable[..., Awaitable[Any]]) -> None:
        await ack()
        user = str((body.get("user") or {}).get("id", ""))

        async def reply(rendered: ui.Rendered) -> None:
            if body.get("response_url"):
                await respond(text=rendered.text, blocks=rendered.blocks, response_type="ephemeral",
                              replace_original=False)
                return
            # a click in App Home (a view, not a message) has no response_url: answer in the app's DM
            try:
                await self.outbox.post(user, rendered.text, rendered.blocks)
            except SlackApiError as exc:
                log.warning("could not tell %s: %s", user, exc.response.get("error") if exc.response else exc)

        self.spawn_job(self.handle_action(body, reply), "action")

    async def handle_action(self, body: Mapping[str, Any], reply: Reply) -> None:
        actions = body.get("actions") or [{}]
        action_id = str(actions[0].get("action_id", ""))
        task_id = str(actions[0].get("value", ""))[:32]
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", "") or (body.get("container") or {}).get("channel_id", ""))
        refusal = self.access.refuse_user(user, channel or None)
        if refusal:
            await reply(_trusted_error(refusal))
            return
        try:
            task = await self.engine.get(task_id)
        except UserError as exc:
            await reply(ui.error_message(str(exc)))
            return
        verb = {ui.ACTION_MERGE: "merge", ui.ACTION_DISCARD: "discard", ui.ACTION_CANCEL: "cancel",
                ui.ACTION_UPDATE: "update", ui.ACTION_RETRY: "retry", ui.ACTION_KEEP: "keep"}.get(action_id)
        if verb is not None:
            refusal = self.access.refuse_action(user, task, verb)
            if refusal:
                await self.engine.store.add_event(task.id, user, f"{verb}_refused", {"reason": refusal})
                await reply(_trusted_error(refusal))
                return
        try:
            if action_id == ui.ACTION_MERGE:
                await self.engine.merge(task.id, user)
            elif action_id == ui.ACTION_DISCARD:
                await self.engine.discard(task.id, user)
            elif action_id == ui.ACTION_CANCEL:
                await self.engine.cancel(task.id, user)
            elif action_id == ui.ACTION_DIFF:
                await self.post_diff(task, user)
            elif action_id == ui.ACTION_UPDATE:
                await self.engine.update_from_base(task.id, user)
            elif action_id == ui.ACTION_RETRY:
                if not task.channel:
                    raise UserError("This task was not started from Slack; spawn it again.")
                await self.start_task(task.channel, user, task.prompt,
                                      {"repo": task.repo, "preset": task.preset, "base": task.base_branch}, reply)
            elif action_id == ui.ACTION_KEEP:
                await self.engine.keep(task.id, user)
                await reply(ui.Rendered("Kept", [_section(f"Task `{task.id}` is kept; its idle clock starts again.")]))
        except AlreadyClosed as exc:
            self._close_review(exc.task)
            await reply(ui.error_message(str(exc)))
        except UserError as exc:
            await reply(ui.error_message(str(exc)))
        except GitError as exc:
            await reply(ui.error_message(f"Task `{task.id}`: git refused: {exc}"))
        except Exception:
            log.exception("action %s on task %s by %s failed", action_id, task.id, user)
            await reply(ui.error_message(f"That did not work on task `{task.id}`; the bot's log has the details."))

    async def post_diff(self, task: Task, user: str) -> None:
        if not task.channel or not task.thread_ts:
            raise UserError(f"Task `{task.id}` has no Slack thread to post the diff in.")
        patch = await self.engine.diff(task.id)
        if not patch.strip():
            await self.outbox.post(task.channel, "No changes yet.", thread_ts=task.thread_ts)
            return
        data = patch.encode()
        note = ""
        if len(data) > MAX_DIFF_BYTES:
            data = data[:MAX_DIFF_BYTES]
            note = f" (first {MAX_DIFF_BYTES // (1024 * 1024)} MiB)"
        await self.client.files_upload_v2(
            channel=task.channel, thread_ts=task.thread_ts, content=data.decode(errors="replace"),
            filename=f"{task.id}.diff", title=f"Diff of {task.branch}{note}", snippet_type="diff",
            initial_comment=f"Diff requested by <@{user}>{note}.",
        )

    # App Home

    async def _on_home_opened(self, event: dict[str, Any]) -> None:
        user = str(event.get("user", ""))
        if user and event.get("tab", "home") == "home":
            self._home_viewers[user] = 0.0
            self.spawn_job(self.publish_home(user), "home")

    async def publish_home(self, user: str) -> None:
        self._home_viewers[user] = self.clock()
        mine = await self.engine.store.list_tasks(ACTIVE_STATES | REVIEWABLE_STATES, requester=user, newest_first=True,
                                                  limit=20)
        running = await self.engine.store.list_tasks({RUNNING, QUEUED}, limit=30)
        links = {t.id: link for t in [*mine, *running] if (link := self.permalink(t.channel, t.thread_ts))}
        view = ui.app_home(user, mine, running, links, now=self.clock())
        await self.outbox.call("views.publish", user_id=user, view=view)

    def _schedule_home(self, user: str) -> None:
        if user not in self._home_viewers or user in self._home_scheduled:
            return
        self._home_scheduled.add(user)
        delay = max(0.0, self._home_viewers[user] + self.home_refresh_every - self.clock())

        async def later() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                self._home_scheduled.discard(user)
            await self.publish_home(user)

        self.spawn_job(later(), "home-refresh")

    # engine events -> thread

    def on_engine_event(self, event: EngineEvent) -> None:
        task = event.task
        if not task.channel or not task.thread_ts:
            return  # not a Slack task (console) or its root message is not posted yet
        thread = self._thread(task.id)
        if isinstance(event, ProgressChanged):
            thread.progress = event.progress
            self._request_refresh(task.id, thread, event)
            return
        if isinstance(event, OutputLines):
            if event.source == "setup":
                thread.setup_tail.extend(event.lines)
                self._request_refresh(task.id, thread, event)
            return
        if isinstance(event, QueuePosition):
            thread.queue_position = event.position
            self._request_refresh(task.id, thread, event)
            return
        thread.queue.put_nowait(event)
        if isinstance(event, StateChanged):
            self._schedule_home(task.requester)

    def _thread(self, task_id: str) -> _Thread:
        thread = self._threads.get(task_id)
        if thread is None:
            thread = self._threads[task_id] = _Thread()
            thread.worker = asyncio.create_task(self._render_loop(task_id, thread), name=f"render-{task_id}")
        return thread

    def _request_refresh(self, task_id: str, thread: _Thread, event: EngineEvent) -> None:
        """Progress is coalesced: at most one pending card refresh per task."""
        if not thread.refresh_pending:
            thread.refresh_pending = True
            thread.queue.put_nowait(event)

    async def _render_loop(self, task_id: str, thread: _Thread) -> None:
        while True:
            event = await thread.queue.get()
            try:
                await self._render(event, thread)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task %s: could not render %s in Slack", task_id, type(event).__name__)
            if isinstance(event, StateChanged) and event.task.state in CLOSED_STATES and thread.queue.empty():
                self._threads.pop(task_id, None)
                return

    async def _render(self, event: EngineEvent, thread: _Thread) -> None:
        task = await self.engine.store.get_task(event.task.id) or event.task
        assert task.channel and task.thread_ts
        if isinstance(event, ProgressChanged | OutputLines | QueuePosition):
            thread.refresh_pending = False
            await self._refresh_card(task, thread)
        elif isinstance(event, StateChanged):
            # root, reaction and card show the latest state; the reply is about this transition
            root = ui.root_message(task)
            self.outbox.update(task.channel, task.thread_ts, root.text, root.blocks, urgent=True)
            self.outbox.set_reaction(task.channel, task.thread_ts, ui.STATE_EMOJI.get(task.state))
            await self._refresh_card(task, thread, urgent=True)
            changed = event.task
            reply: ui.Rendered | None = None
            if event.previous is not None and changed.state in REVIEWABLE_STATES - {FINISHED} and changed.reason:
                reply = ui.failure_with_retry(changed, changed.reason) if changed.state == FAILED else \
                    ui.milestone(changed, f"Task {changed.state.replace('_', ' ')}: {changed.reason}", ok=False)
            elif changed.state == MERGED:
                self._close_review(task)  # re-read: the review may have been posted since the transition
                reply = ui.milestone(changed, f"Merged into `{changed.base_branch}` by {{actor}} "
                                              f"({(changed.merge_commit or '')[:10]}).", actor=changed.closed_by)
            elif changed.state == DISCARDED:
                self._close_review(task)  # re-read: the review may have been posted since the transition
                reply = ui.milestone(changed, "Discarded by {actor}: worktree and branch removed.",
                                     actor=changed.closed_by)
            elif changed.state == PRUNED:
                self._close_review(task)  # re-read: the review may have been posted since the transition
                reply = ui.milestone(changed, f"Worktree pruned: {changed.reason or 'idle too long'}.")
            if reply is not None:
                await self.outbox.post(task.channel, reply.text, reply.blocks, thread_ts=task.thread_ts)
        elif isinstance(event, PruneWarning):
            warning = ui.prune_warning(task, event.grace_s / 3600)
            await self.outbox.post(task.channel, warning.text, warning.blocks, thread_ts=task.thread_ts)
        elif isinstance(event, Milestone):
            if event.kind in ("worktree_ready", "committed"):
                return  # shown on the status card; keep the thread for what matters
            rendered = ui.milestone(task, event.text, ok=event.ok)
            await self.outbox.post(task.channel, rendered.text, rendered.blocks, thread_ts=task.thread_ts)
        elif isinstance(event, ReviewReady):
            if task.state in CLOSED_STATES:
                return  # merged or discarded before this review got its turn: no live buttons on a closed task
            if task.review_ts:
                # the store already holds the new review; the old message keeps showing what it said
                self._close_review(task, outcome="superseded", review=thread.review)
            thread.review = dict(event.review)
            rendered = ui.review_message(task, event.review)
            ts = await self.outbox.post(task.channel, rendered.text, rendered.blocks, thread_ts=task.thread_ts)
            await self.engine.store.update_task(task.id, review_ts=ts, last_activity=task.last_activity)

    async def _refresh_card(self, task: Task, thread: _Thread, urgent: bool = False) -> None:
        assert task.channel and task.thread_ts
        progress = thread.progress
        if progress is None and task.progress:
            progress = json.loads(task.progress)
        if task.state == "preparing" and thread.setup_tail:
            progress = {**(progress or {}), "tail": list(thread.setup_tail), "action": "Running setup"}
        card = ui.status_card(task, progress, now=self.clock(),
                              queue_position=thread.queue_position if task.state == QUEUED else None)
        if task.status_ts:
            self.outbox.update(task.channel, task.status_ts, card.text, card.blocks, urgent=urgent)
        else:
            ts = await self.outbox.post(task.channel, card.text, card.blocks, thread_ts=task.thread_ts)
            await self.engine.store.update_task(task.id, status_ts=ts, last_activity=task.last_activity)

    def _close_review(self, task: Task, outcome: str | None = None, review: Any = _SAVED_REVIEW) -> None:
        """Replace the review's buttons with the outcome, so nobody clicks a stale Merge.

        `review` is what the message showed (None: unknown, render the task only); by default the
        task's saved review, which is the one on the message unless a newer review is being posted.
        """
        if not (task.channel and task.review_ts):
            return
        if review is _SAVED_REVIEW:
            review = json.loads(task.review) if task.review else None
        rendered = ui.closed_review(task, review, outcome=outcome or task.state, actor=task.closed_by or "",
                                    when=task.updated_at or self.clock())
        self.outbox.update(task.channel, task.review_ts, rendered.text, rendered.blocks, urgent=True)

    async def ephemeral(self, channel: str, user: str, rendered: ui.Rendered, thread_ts: Any = None) -> None:
        args: dict[str, Any] = {"channel": channel, "user": user, "text": rendered.text, "blocks": rendered.blocks}
        if thread_ts:
            args["thread_ts"] = thread_ts
        try:
            await self.outbox.call("chat.postEphemeral", **args)
        except SlackApiError as exc:
            log.warning("could not tell %s in %s: %s", user, channel, exc.response.get("error") if exc.response else exc)


class _CheckedApp(AsyncApp):
    """Bolt, with the signature and the payload's shape checked before any of Bolt's own middleware.

    Bolt's verification answers 500 to a non-numeric timestamp header, and its middleware and
    listener matching index payloads blindly; here those requests get a 401 or a 400.
    """

    verifier: SignatureVerifier | None = None

    def web_app(self, path: str = "/slack/events", port: int = 3000) -> web.Application:
        served = super().web_app(path=path, port=port)
        served.middlewares.append(_unparsable_is_400)
        return served

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        if self.verifier is not None and req.mode != "socket_mode":
            timestamp = (req.headers.get("x-slack-request-timestamp") or [""])[0]
            signature = (req.headers.get("x-slack-signature") or [""])[0]
            if not timestamp.isdigit() or not self.verifier.is_valid(req.raw_body, timestamp, signature):
                return BoltResponse(status=401, body="")
        problem = _malformed(req.body)
        if problem:
            log.warning("refused a malformed Slack payload: %s", problem)
            return BoltResponse(status=400, body="")
        return await super().async_dispatch(req)


@web.middleware
async def _unparsable_is_400(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Bolt's aiohttp adapter raises on a body it cannot parse (not UTF-8, `payload=null`, a `user`
    that is not an object) before any check runs; aiohttp would answer 500 and log a traceback.
    Bolt's dispatch answers errors itself, so what escapes here comes from reading the request."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.warning("refused a Slack request that could not be parsed: %s", type(exc).__name__)
        return web.Response(status=400, text="")


class _Middleware(AsyncMiddleware):
    def __init__(self, func: Callable[[AsyncBoltRequest, BoltResponse, Callable[[], Awaitable[BoltResponse]]],
                                      Awaitable[BoltResponse]]) -> None:
        self.func = func

    async def async_process(self, *, req: AsyncBoltRequest, resp: BoltResponse,
                            next: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse | None:  # noqa: A002
        return await self.func(req, resp, next)


def _malformed(body: Any) -> str | None:
    """What is wrong with a payload's shape (the parts Bolt and the handlers rely on), or None."""
    if not isinstance(body, dict):
        return "not a JSON object"
    for key in ("user", "channel", "container", "team", "message", "view", "event"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"{key} is not an object"
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "block_actions without actions"
        if not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) and isinstance(a.get("block_id", ""), str)
                   for a in actions):
            return "an action without a string action_id"
    elif kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("callback_id"), str):
            return f"{kind} without a view callback_id"
    elif kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "event_callback without an event type"
    return None


class _Refusal(UserError):
    """A refusal whose text we wrote (it may link users and channels), shown unescaped."""


def _trusted_error(text: str) -> ui.Rendered:
    return ui.Rendered(text[:3000], [_section(f":warning: {text}")])


def _text_sections(lines: list[str]) -> list[dict[str, Any]]:
    """Lines packed into sections under Slack's 3000-character limit (at most 40 sections)."""
    sections: list[dict[str, Any]] = []
    chunk = ""
    for line in lines:
        if len(chunk) + len(line) + 1 > 2900 and chunk:
            sections.append(_section(chunk))
            chunk = ""
        chunk += ("\n" if chunk else "") + line[:2900]
    if chunk:
        sections.append(_section(chunk))
    return sections[:40]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}

