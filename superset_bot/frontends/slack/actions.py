"""The buttons on task messages and App Home (merge, discard, diff, update, cancel, retry, keep)."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from superset_bot.frontends.slack import blocks as ui
from superset_bot.frontends.slack.answers import Reply
from superset_bot.frontends.slack.blocks.race import (
    ACTION_RACE_COMPARE,
    ACTION_RACE_DIFF,
    ACTION_RACE_DISCARD,
    ACTION_RACE_PICK,
    ACTION_RACE_VIEW_DIFF,
    PER_ATTEMPT,
    RACE_ACTIONS,
    base_action,
)
from superset_bot.frontends.slack.rootmessage import RootMessage
from superset_bot.service import Caller
from superset_bot.service.results import AttemptsDiff, Done, RaceDone, RaceView

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend

log = logging.getLogger(__name__)

BUTTON_VERBS = {ui.ACTION_MERGE: "merge", ui.ACTION_DISCARD: "discard", ui.ACTION_CANCEL: "cancel",
                ui.ACTION_DIFF: "diff", ui.ACTION_UPDATE: "update", ui.ACTION_RETRY: "retry", ui.ACTION_KEEP: "keep",
                ui.ACTION_FIX_CI: "fixci", ui.ACTION_MOVE: "move", ACTION_RACE_PICK: "merge",  # a Pick is a race attempt's merge
                ACTION_RACE_VIEW_DIFF: "diff"}
RACE_VERBS = {ACTION_RACE_COMPARE: "compare", ACTION_RACE_DISCARD: "discard_all", ACTION_RACE_DIFF: "diff"}


class Buttons:
    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend

    def register(self, app: AsyncApp) -> None:
        for action in (*BUTTON_VERBS, *RACE_ACTIONS):
            app.action(action)(self.on_action)
        for action in PER_ATTEMPT:  # the comparison card's buttons, one per attempt: "race_pick_B"
            app.action(re.compile(rf"^{action}_[A-Z]$"))(self.on_action)

    async def on_action(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any],
                        respond: Callable[..., Awaitable[Any]]) -> None:
        await ack()
        frontend = self.frontend
        user = str((body.get("user") or {}).get("id", ""))

        async def reply(rendered: ui.Rendered) -> None:
            if body.get("response_url"):
                await respond(text=rendered.text, blocks=rendered.blocks, response_type="ephemeral",
                              replace_original=False)
                return
            # a click in App Home (a view, not a message) has no response_url: answer in the app's DM
            try:
                await frontend.outbox.post(user, rendered.text, rendered.blocks)
            except SlackApiError as exc:
                log.warning("could not tell %s: %s", user, exc.response.get("error") if exc.response else exc)

        frontend.spawn_job(self.handle_action(body, reply), "action")

    async def handle_action(self, body: Mapping[str, Any], reply: Reply) -> None:
        frontend = self.frontend
        actions = body.get("actions") or [{}]
        action_id = base_action(str(actions[0].get("action_id", "")))
        task_id = str(actions[0].get("value", ""))[:32]
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", "") or (body.get("container") or {}).get("channel_id", ""))
        # a click in App Home names no channel: it reads as the person's own place (the app's DM)
        place = None if channel else frontend.home.place_of(user)
        caller = Caller(user, channel or None, place=place)
        if action_id in RACE_VERBS:
            await self.handle_race_action(caller, RACE_VERBS[action_id], actions[0], reply)
            return
        verb = BUTTON_VERBS.get(action_id, action_id)
        thread = RootMessage(frontend) if verb == "retry" else None  # in the task's own channel
        result = await frontend.service.act(caller, verb, task_id, thread=thread)
        if isinstance(result, Done) and verb not in ("keep", "followup", "fixci"):
            return  # the thread shows what happened; the person who clicked needs no second copy
        await frontend.answers.answer(result, reply, user)

    async def handle_race_action(self, caller: Caller, verb: str, action: Mapping[str, Any], reply: Reply) -> None:
        """Compare now, Discard all, or a pair picked in "Diff A vs B" (its value: race:first:second)."""
        frontend = self.frontend
        if verb == "diff":
            value = str((action.get("selected_option") or {}).get("value", ""))[:150]
            race_id, _, pair = value.partition(":")
            first, _, second = pair.partition(":")
            result = await frontend.service.act_race(caller, verb, race_id, first, second)
        else:
            result = await frontend.service.act_race(caller, verb, str(action.get("value", ""))[:32])
        if isinstance(result, RaceView):
            frontend.races.request(result.race.id, compare=True)  # the card goes in the thread, for everyone
            return
        if isinstance(result, AttemptsDiff):
            await frontend.threads.post_pair_diff(result.first, result.second, result.patch, caller.user)
            return
        if isinstance(result, RaceDone):
            return  # the root message and the attempts' threads show it
        await frontend.answers.answer(result, reply, caller.user)
