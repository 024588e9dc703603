"""The service every front end calls: parse -> access -> engine -> a typed result.

Slack and the console are thin translators over this one dispatcher (as errbot's backends are):
they hand in who asked, where, and the text or button; they get back a `Result` to render. Access
control, refusal audit events, channel scoping and the error map live here once, so a command
means the same thing whichever front end carries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from superset_bot.domain.access import Access
from superset_bot.domain.commands import Command, CommandError, parse
from superset_bot.domain.race import AttemptFigures, Race, attempt_presets
from superset_bot.domain.spend import Spend
from superset_bot.engine.core import Engine, UserError
from superset_bot.housekeeping.jobs import Housekeeper
from superset_bot.service.errors import Refusal, failure
from superset_bot.service.results import (
    USAGE,
    AttemptsDiff,
    Diff,
    DigestNow,
    Done,
    Failed,
    Help,
    Log,
    NeedsPrompt,
    Presets,
    Pruned,
    RaceDone,
    RaceFollowups,
    RaceStarted,
    RaceView,
    Refused,
    Repos,
    Result,
    Started,
    Status,
    TaskList,
)
from superset_bot.store import ACTIVE_STATES, REVIEWABLE_STATES, Task, new_task_id

# the words access control uses for a task action, in its refusals ("Only ... can merge it")
_ACTION_WORDS = {"merge": "merge", "discard": "discard", "cancel": "cancel", "followup": "follow up on",
                 "update": "update", "retry": "retry", "keep": "keep", "fixci": "fix CI on",
                 "move": "move"}


@dataclass(frozen=True)
class Caller:
    """Who asked and where: `channel` is None for front ends without channels (the console).

    `place` is where the person looks when the surface is not a channel but still belongs to one
    person (Slack's App Home: the app's DM with them); it scopes what they may read like `list` does.
    """

    user: str
    channel: str | None = None
    prefix: str = "/superset"  # how this front end writes a command, for usage lines
    place: str | None = None


class Thread(Protocol):
    """A front end's place for a task's messages, opened before the task exists (Slack's root message)."""

    async def open(self, pending: Task) -> Mapping[str, str]:
        """Post the place; return the task fields that name it (the channel). May raise Refusal.

        The front end keeps its own ids for the place (Slack's message ts), keyed by `pending.id`."""

    async def not_started(self, pending: Task, where: Mapping[str, str], answer: Result) -> None:
        """The task could not be created after `open` (`answer` says why): say so in that place."""

    async def open_race(self, pending: Race, attempts: list[Task]) -> Mapping[str, str]:
        """Post one place for a race and its attempts (Slack: the race's root message, each attempt's
        card in its thread); return the fields that name it, as `open` does. May raise Refusal."""

    async def race_not_started(self, pending: Race, attempts: list[Task], answer: Result) -> None:
        """The race could not be started after `open_race`: say so there."""


class Service:
    def __init__(self, engine: Engine, housekeeper: Housekeeper, access: Access) -> None:
        self.engine = engine
        self.housekeeper = housekeeper
        self.access = access

    # a command line: /superset ... in Slack, a line in the console

    async def command(self, caller: Caller, text: str, thread: Thread | None = None) -> Result:
        refusal = self.access.refuse_user(caller.user, caller.channel)
        if refusal:
            return Refused(refusal)
        try:
            command = parse(text, caller.prefix)
        except CommandError as exc:
            return failure(exc, "", caller.prefix)
        refusal = self.access.refuse_command(caller.user, command.name)
        if refusal:
            return Refused(refusal, command.name)
        try:
            return await self._run(caller, command, thread)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer; the map logs the unexpected
            return failure(exc, command.name, caller.prefix, command.task_id, typed=True)

    async def _run(self, caller: Caller, command: Command, thread: Thread | None) -> Result:
        engine, name = self.engine, command.name
        if name == "help":
            return Help(tuple(self.access.allowed_commands(caller.user)))
        if name == "spawn":
            if not command.text:
                return NeedsPrompt(dict(command.options))
            return await self._spawn(caller, command.text, command.options, thread)
        if name == "race":
            if not command.text:  # the form asks for the prompt, with what was said filled in
                named = [n for n in command.options.get("presets", "").split(",") if n]
                if command.count is not None or len(named) > 1:
                    try:
                        attempt_presets(command.count, named, engine.settings.default_preset,
                                        engine.settings.race_max_attempts)
                    except ValueError as exc:
                        return Failed(USAGE, str(exc), "race")
                return NeedsPrompt({**command.options, "attempts": str(command.count or 2)}, "race")
            return await self._race(caller, command.text, command.options, command.count, thread)
        if name == "list":
            return await self.list_tasks(caller)
        if name == "presets":
            return Presets(tuple((n, p.description) for n, p in sorted(engine.presets.items())))
        if name == "repos":
            return Repos(tuple((n, str(path)) for n, path in engine.settings.repos.items()),
                         engine.settings.default_repo)
        if name == "prune":
            return Pruned(await self.housekeeper.prune(dry_run=command.dry_run, actor=caller.user))
        if name == "digest":
            # a look at the digest now; the scheduled one keeps its period ("closed since the last digest")
            return DigestNow(await self.housekeeper.build_digest())
        if name == "compare":
            return await self.act_race(caller, "compare", command.task_id or "")
        task = await engine.get(command.task_id or "")
        if caller.channel and task.channel and task.channel != caller.channel:
            raise Refusal(f"Task `{task.id}` belongs to <#{task.channel}>; run the command there.")
        return await self._on_task(caller, name, task, command.text)

    # a button or a message in a task's thread

    async def act(self, caller: Caller, verb: str, task_id: str, text: str = "",
                  thread: Thread | None = None) -> Result:
        """`verb` on one task (merge, discard, cancel, followup, update, keep, retry, diff, status)."""
        refusal = self.access.refuse_user(caller.user, caller.channel)
        if refusal:
            return Refused(refusal, verb)
        try:
            task = await self.engine.get(task_id)
            where = caller.channel or caller.place
            if verb in ("status", "diff", "log") and where and not self.access.sees(caller.user, where, task):
                # as list scopes it: a prompt asked in another (maybe private) channel stays there
                return Refused(f"Task `{task.id}` was started in another channel; look at it there.", verb)
            if verb == "retry":
                refused = await self._refuse_action(caller, task, verb)
                if refused:
                    return refused
                refusal = self.access.refuse_command(caller.user, "spawn")
                if refusal:
                    return Refused(refusal, verb)
                # again where the task was asked, with that channel's defaults, wherever the click was
                return await self._spawn(replace(caller, channel=task.channel), task.prompt, {"repo": task.repo, "preset": task.preset,
                                                              "base": task.base_branch or ""}, thread)
            return await self._on_task(caller, verb, task, text)
        except Exception as exc:  # noqa: BLE001 - as in command()
            return failure(exc, verb, caller.prefix, task_id)

    async def _on_task(self, caller: Caller, verb: str, task: Task, text: str) -> Result:
        engine = self.engine
        if verb == "status":
            return Status(task, task.progress_snapshot(), engine.queue_position(task.id))
        if verb == "diff":
            return Diff(task, await engine.diff(task.id))
        if verb == "log":
            task, log = await engine.log_of(task.id)
            return Log(task, log)
        if verb not in _ACTION_WORDS:
            raise UserError(f"Unknown action {verb!r}.")
        refusal = await self._refuse_action(caller, task, verb)
        if refusal:
            return refusal
        if verb == "merge":
            return Done(verb, await engine.merge(task.id, caller.user))
        if verb == "discard":
            return Done(verb, await engine.discard(task.id, caller.user))
        if verb == "cancel":
            return Done(verb, await engine.cancel(task.id, caller.user))
        if verb == "followup":
            return Done(verb, await engine.followup(task.id, text, caller.user))
        if verb == "update":
            return Done(verb, await engine.update_from_base(task.id, caller.user))
        if verb == "fixci":
            return Done(verb, await engine.fix_ci(task.id, caller.user))
        if verb == "move":
            return Done(verb, await engine.retry_elsewhere(task.id, caller.user))
        return Done(verb, await engine.keep(task.id, caller.user))

    async def _refuse_action(self, caller: Caller, task: Task, verb: str) -> Refused | None:
        refusal = self.access.refuse_action(caller.user, task, _ACTION_WORDS[verb])
        if not refusal:
            return None
        await self.engine.store.add_event(task.id, caller.user, f"{verb}_refused", {"reason": refusal})
        return Refused(refusal, verb)

    # spawning and listing, shared by commands, mentions, the spawn form and Retry

    async def spawn(self, caller: Caller, prompt: str, options: Mapping[str, str | None],
                    thread: Thread | None = None) -> Result:
        """Start a task (a mention, the spawn form); with a `thread`, its place is opened first so the
        task is born with it."""
        refusal = self.access.refuse_user(caller.user, caller.channel) or \
            self.access.refuse_command(caller.user, "spawn")
        if refusal:
            return Refused(refusal, "spawn")
        return await self._spawn(caller, prompt, options, thread)

    async def _spawn(self, caller: Caller, prompt: str, options: Mapping[str, str | None],
                     thread: Thread | None) -> Result:
        chosen = self.engine.settings.spawn_choices(caller.channel, options)
        try:
            # refused here, before a thread is opened for a task that would never exist
            valid = await self.engine.validate_spawn(prompt, repo=chosen.repo, preset=chosen.preset,
                                                     base=chosen.base, requester=caller.user)
        except Exception as exc:  # noqa: BLE001
            return failure(exc, "spawn", caller.prefix)
        pending = Task(id=new_task_id(), repo=valid.repo, prompt=valid.prompt, preset=valid.preset,
                       requester=caller.user, base_branch=valid.base, channel=caller.channel,
                       created_at=self.engine.clock())
        where: Mapping[str, str] = {}
        try:
            if thread is not None:
                where = await thread.open(pending)
            task = await self.engine.spawn_validated(valid, requester=caller.user, task_id=pending.id, **where)
        except Exception as exc:  # noqa: BLE001
            answer = failure(exc, "spawn", caller.prefix)
            if thread is not None and where:
                await thread.not_started(pending, where, answer)
            return answer
        return Started(task)

    # races: one prompt, several attempts, one picked

    async def race(self, caller: Caller, prompt: str, options: Mapping[str, str | None], count: int | None,
                   thread: Thread | None = None) -> Result:
        """Start a race (the spawn form with attempts); as `spawn`, its place is opened first."""
        refusal = self.access.refuse_user(caller.user, caller.channel) or \
            self.access.refuse_command(caller.user, "race")
        if refusal:
            return Refused(refusal, "race")
        return await self._race(caller, prompt, options, count, thread)

    async def _race(self, caller: Caller, prompt: str, options: Mapping[str, str | None], count: int | None,
                    thread: Thread | None) -> Result:
        engine = self.engine
        chosen = engine.settings.spawn_choices(caller.channel, options)
        named = [n for n in (options.get("presets") or "").split(",") if n] or \
            ([chosen.preset] if options.get("preset") and chosen.preset else [])
        try:
            presets = attempt_presets(count, named, chosen.preset or engine.settings.default_preset,
                                      engine.settings.race_max_attempts)
            valid = await engine.validate_race(prompt, presets=list(presets), repo=chosen.repo, base=chosen.base,
                                               requester=caller.user)
        except ValueError as exc:  # the count and the presets do not add up
            return Failed(USAGE, str(exc), "race")
        except Exception as exc:  # noqa: BLE001
            return failure(exc, "race", caller.prefix)
        first = valid.first
        pending_race = Race(id=new_task_id(), repo=first.repo, prompt=first.prompt, requester=caller.user,
                            presets=presets, base_branch=first.base or "", base_commit="", channel=caller.channel,
                            created_at=self.engine.clock())
        pending = [Task(id=new_task_id(), repo=v.repo, prompt=v.prompt, preset=v.preset, requester=caller.user,
                        base_branch=v.base, channel=caller.channel, race_id=pending_race.id, race_label=label,
                        created_at=self.engine.clock())
                   for v, label in zip(valid.attempts, pending_race.labels, strict=True)]
        where: Mapping[str, str] = {}
        try:
            if thread is not None:
                where = await thread.open_race(pending_race, pending)
            race, attempts = await engine.race(valid, requester=caller.user, race_id=pending_race.id,
                                               task_ids=[t.id for t in pending],
                                               channel=where.get("channel", caller.channel))
        except Exception as exc:  # noqa: BLE001
            answer = failure(exc, "race", caller.prefix)
            if thread is not None and where:
                await thread.race_not_started(pending_race, pending, answer)
            return answer
        return RaceStarted(race, tuple(attempts))

    async def act_race(self, caller: Caller, verb: str, race_id: str, text: str = "", other: str = "") -> Result:
        """`verb` on a race: compare (the card's figures), discard_all, followup (`text`, to the attempts it
        names), diff (between attempts `text` and `other`, two task ids). Pick is `act(..., "merge", attempt)`."""
        refusal = self.access.refuse_user(caller.user, caller.channel)
        if refusal:
            return Refused(refusal, verb)
        try:
            race, attempts = await self.engine.get_race(race_id)
            if not attempts:
                raise UserError(f"Race `{race.id}` has no attempts.")
            where = caller.channel or caller.place
            if where and not self.access.sees(caller.user, where, attempts[0]):
                return Refused(f"Race `{race.id}` was started in another channel; look at it there.", verb)
            if verb == "compare":
                return RaceView(race, tuple(attempts), tuple(AttemptFigures.of(t.race_label or "?", t)
                                                              for t in attempts))
            if verb == "diff":
                first, second, patch = await self.engine.diff_attempts(text, other)
                if race.id not in (first.race_id, second.race_id):
                    raise UserError("Those attempts are not of this race.")
                return AttemptsDiff(first, second, patch)
            word = {"discard_all": "discard", "followup": "followup"}.get(verb)
            if word is None:
                raise UserError(f"Unknown action {verb!r}.")
            refused = await self._refuse_action(caller, attempts[0], word)
            if refused:
                return refused
            if verb == "discard_all":
                return RaceDone(verb, await self.engine.discard_race(race.id, caller.user))
            sent = await self.engine.race_followup(race.id, text, caller.user)
            return RaceFollowups(race, tuple((s.label, s.task_id, s.error) for s in sent))
        except Exception as exc:  # noqa: BLE001 - as in command()
            return failure(exc, verb, caller.prefix)

    async def list_tasks(self, caller: Caller) -> TaskList:
        """Running, queued and awaiting review, as far as the caller sees them (`Access.sees`: in a
        channel, only its tasks and the caller's own)."""
        tasks = await self.engine.store.list_tasks(ACTIVE_STATES | REVIEWABLE_STATES)
        return TaskList(tuple(t for t in tasks if self.access.sees(caller.user, caller.channel, t)))

    async def task_costs(self, task_ids: list[str]) -> dict[str, Spend]:
        """What each task cost over its runs so far (for tasks the caller already may see)."""
        return await self.engine.store.spend_of(task_ids)

    async def visible_tasks(self, user: str, place: str) -> TaskList | Refused:
        """What `list` would answer `user` asking in `place`, for a surface that takes no commands
        (Slack's App Home passes the app's DM with the person): the person must be one the bot serves
        and who may list, and the tasks are scoped as `list` scopes them. `place` is required, so this
        never gives the console's unscoped list; the channel allow-list is not applied, since it says
        where the bot takes commands (App Home's buttons are checked the same way)."""
        if not place:
            raise ValueError("visible_tasks needs a place: without one, list would show every task")
        refusal = self.access.refuse_user(user, None) or self.access.refuse_command(user, "list")
        if refusal:
            return Refused(refusal, "list")
        return await self.list_tasks(Caller(user, place))
