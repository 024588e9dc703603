"""The task engine's facade: turns "spawn PROMPT" into an agent working in its own worktree, then a review.

`Engine` is what the service, the front ends and housekeeping call. It checks and creates new
tasks itself; everything else it hands to one part per concept: the event bus, the slots and
their queue, the driver of a task's lifecycle, merging, pruning, recovery and the watchdog. It
knows nothing of Slack: front ends call its methods and subscribe to its typed events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superset_bot.agents import cgroups
from superset_bot.agents.formats import Progress
from superset_bot.agents.runner import AgentRun
from superset_bot.config import Settings
from superset_bot.domain.events import EngineEvent, StateChanged
from superset_bot.domain.logs import LOG_CHUNK, LOG_SHOWN, LogChunk
from superset_bot.domain.race import Race
from superset_bot.domain.review import Review
from superset_bot.engine.bases import Bases
from superset_bot.engine.bus import EventBus, Subscriber
from superset_bot.engine.catalog import Catalog
from superset_bot.engine.cleanup import WorktreeCleanup
from superset_bot.engine.control import RunControl
from superset_bot.engine.delivery import Delivery
from superset_bot.engine.environment import Environment
from superset_bot.engine.errors import AlreadyClosed, UserError
from superset_bot.engine.hook_dispatch import HookDispatch
from superset_bot.engine.lifecycle import Lifecycle
from superset_bot.engine.merging import Merging
from superset_bot.engine.pool import WorktreePool
from superset_bot.engine.preflight import (
    MAX_PROMPT_BYTES,
    MAX_PROMPT_CHARS,
    check_agent_command,
    check_free_disk,
)
from superset_bot.engine.preparing import Preparation
from superset_bot.engine.pruning import Pruning
from superset_bot.engine.pullrequests import PullRequests
from superset_bot.engine.races import Races, Sent, ValidRace
from superset_bot.engine.recovery import Recovery
from superset_bot.engine.reviews import Reviews
from superset_bot.engine.runners import TEMPORAL, LocalRunner, Runner, elsewhere
from superset_bot.engine.slots import Slots
from superset_bot.engine.spending import Spending
from superset_bot.engine.transitions import BOT_ACTOR, Transitions
from superset_bot.engine.watchdog import Watchdog
from superset_bot.engine.workers import Workers
from superset_bot.git import naming as gitnaming
from superset_bot.git.refs import branch_exists
from superset_bot.plugins.hooks import Hooks
from superset_bot.presets import Preset
from superset_bot.store import Store, Task, new_task_id

if TYPE_CHECKING:
    from superset_bot.temporal.runner import TemporalRunner

__all__ = ["BOT_ACTOR", "AlreadyClosed", "Engine", "UserError", "ValidSpawn"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidSpawn:
    """A spawn request `Engine.validate_spawn` accepted, with its defaults resolved."""

    prompt: str  # stripped
    repo: str
    preset: str
    base: str | None  # a local branch of the repo; None: the repo's default branch


class Engine:
    """Runs tasks; one instance per bot process. `await start()` before use, `await stop()` after."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        presets: Mapping[str, Preset],
        hooks: Hooks,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.presets = dict(presets)
        self.hooks = hooks
        self.clock = clock
        # the parts it delegates to; each gets the engine and reaches the others through it
        self.bus = EventBus()
        self.workers = Workers()
        self.catalog = Catalog(settings, store, self.presets)
        self.env = Environment(settings, self.presets, self.catalog.repo_path)
        self.lifecycle = Lifecycle(self)
        self.slots = Slots(settings.max_concurrent, self.lifecycle.queue_changed)
        # a fetch that moved a base's remote tip sends the warm pool after it, and has the open reviews
        # delivered to that remote looked at again
        self.bases = Bases(settings, on_moved=self._remote_moved)
        # a bot whose agents run on worker hosts keeps no warm worktrees: its new tasks' are made there
        pooled = replace(settings, pool_size=0) if settings.runner == TEMPORAL else settings
        self.pool = WorktreePool(pooled, self.presets, self.env.for_prewarm, self.env.redactor,
                                 tip=self.bases.tip)
        self.transitions = Transitions(store, self.bus.publish, self.pool)
        self.plugins = HookDispatch(hooks, store, self.presets, self.env, self.bus.publish)
        self.preparation = Preparation(self)
        self.reviews = Reviews(self)
        self.cleanup = WorktreeCleanup(self)
        self.merging = Merging(self)
        self.delivery = Delivery(self)
        self.pulls = PullRequests(self)
        self.spending = Spending(self)
        self.races = Races(self)
        self.pruning = Pruning(self)
        self.control = RunControl(self)
        self.recovery = Recovery(self)
        self.watchdog = Watchdog(self)
        self.cgroups = cgroups.Delegation(None, "not looked at yet")  # kernel-enforced limits, when delegated
        # where agents run (engine/runners.py): here, and on worker hosts through Temporal when so configured
        self.local = LocalRunner(self)
        self.remote: TemporalRunner | None = None
        if settings.runner == TEMPORAL:
            from superset_bot.temporal.runner import TemporalRunner  # temporalio only where it is used

            self.remote = TemporalRunner(self)

    @property
    def runner_of_new_tasks(self) -> str | None:
        """`Task.runner` for the tasks this engine creates: None (this process) or "temporal"."""
        return TEMPORAL if self.remote is not None else None

    def runner_for(self, task: Task) -> Runner:
        """The runner of the task's turns (its own, whatever new tasks use). Raises UserError for a task on
        worker hosts when this bot has no Temporal runner."""
        if not task.runner:
            return self.local
        if self.remote is None:
            raise elsewhere(task)
        return self.remote

    def _remote_moved(self, repo_name: str, branch: str) -> None:
        self.pool.poke(repo_name)
        self.reviews.base_moved(repo_name, branch)

    # subscribers and publishing

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber(event)` for every event; it must not block. Returns an unsubscribe."""
        return self.bus.subscribe(subscriber)

    def publish(self, event: EngineEvent) -> None:
        self.bus.publish(event)

    async def wait_for(self, task_id: str, states: Iterable[str], timeout: float = 60.0) -> Task:
        """Wait until the task reaches one of `states` (for front ends and tests)."""
        return await self.bus.wait_for(task_id, states, timeout, self.store.get_task)

    # lifecycle of the engine

    async def start(self) -> None:
        """Pick up where the last process stopped: re-attach agents, re-queue, settle claims."""
        self.cgroups = await asyncio.to_thread(cgroups.choose, self.settings.cgroups)
        if not self.cgroups.hard:
            log.info("agent limits are soft (polled): %s", self.cgroups.why_not)
        await self.recovery.recover_all()
        await self.races.resume()
        await self.pulls.resume()
        self.watchdog.start_heartbeat()
        await self.pool.start()

    async def stop(self) -> None:
        """Stop driving tasks; detached agents keep running and are re-attached by the next start."""
        self.workers.stopping = True
        await self.pool.stop()
        await self.bases.stop()
        await self.workers.stop()
        await self.pulls.close()
        if self.remote is not None:
            await self.remote.close()

    async def recover(self, task: Task) -> None:
        """Pick up a task nobody drives (reconcile): re-attach, re-queue or settle it."""
        await self.recovery.recover(task)

    # tasks that stopped moving

    def stuck_bound(self, task: Task) -> float | None:
        """Seconds the task may stay in its passing state without its row changing; None: no bound."""
        return self.watchdog.stuck_bound(task)

    async def stuck_tasks(self, slack: float = 1.0) -> list[tuple[Task, float]]:
        """Tasks past `slack` times their bound in queued, preparing, merging or discarding, with how long."""
        return await self.watchdog.stuck_tasks(slack)

    async def settle_stuck(self, task: Task, age: float) -> str:
        """Say in the task's thread that it stopped moving, log where it hangs, and end the wait."""
        return await self.watchdog.settle_stuck(task, age)

    async def health(self) -> dict[str, Any]:
        """What a health check needs: is the loop turning, does the store write, is any task wedged."""
        return await self.watchdog.health()

    # queries

    async def get(self, task_id: str) -> Task:
        return await self.catalog.get(task_id)

    def queue_position(self, task_id: str) -> int | None:
        return self.slots.position(task_id)

    def preset_for(self, task: Task) -> Preset:
        return self.catalog.preset_for(task)

    def deliver_for(self, task: Task) -> str:
        """Where the task's work goes: local, push or pr (its preset's `deliver`, else its repo's)."""
        preset = self.presets.get(task.preset)
        return self.settings.deliver_for(task.repo, preset.deliver if preset else "")

    def repo_path(self, name: str) -> Path:
        return self.catalog.repo_path(name)

    def is_driven(self, task_id: str) -> bool:
        return self.workers.is_driven(task_id)

    def driver_of(self, task_id: str) -> asyncio.Task[None] | None:
        """The asyncio task driving the task right now, if any (await it to see the driver end)."""
        return self.workers.driver_of(task_id)

    def running_agents(self) -> dict[str, AgentRun]:
        """The agents this process follows right now, by task id (a copy)."""
        return dict(self.lifecycle.runs)

    async def wait_idle(self) -> None:
        """Wait until no task is being driven (tests, shutdown of the console)."""
        await self.workers.wait_idle()

    # spawning

    async def validate_spawn(
        self, prompt: str, *, repo: str | None = None, preset: str | None = None, base: str | None = None,
        requester: str | None = None,
    ) -> ValidSpawn:
        """Every check of a spawn request, before anything is created: the one validation. Raises UserError.
        With `requester`, their daily budget is checked too (the repo's always is)."""
        prompt = (prompt or "").strip()
        if not prompt:
            raise UserError("The prompt is empty: say what the agent should do, e.g. `spawn fix the flaky login test`.")
        if len(prompt) > MAX_PROMPT_CHARS or len(prompt.encode()) > MAX_PROMPT_BYTES:
            raise UserError(
                f"The prompt is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}. "
                "Put long instructions in a file in the repo and point the agent at it."
            )
        repo_name = repo or self.settings.default_repo
        if not repo_name:
            raise UserError("No repo given and no default repo: pass `--repo NAME` or set SUPERSET_REPOS.")
        repo_path = self.repo_path(repo_name)
        preset_name = preset or self.settings.default_preset
        chosen = self.presets.get(preset_name)
        if chosen is None:
            known = ", ".join(sorted(self.presets)) or "none (check SUPERSET_PRESETS_DIR)"
            raise UserError(f'Unknown preset "{preset_name}". Available presets: {known}.')
        if self.remote is None:  # worker hosts run the agent: it need not be installed where the bot runs
            check_agent_command(self.settings, chosen)
        if base is not None:
            base = base.strip()
            try:
                gitnaming.check_branch_name(base)
            except gitnaming.BadBranchName as exc:
                raise UserError(f'"{base}" is not a valid branch name for --base: {exc.reason}.') from exc
        check_free_disk(self.settings)
        if base is not None and not await branch_exists(repo_path, base):
            raise UserError(f'"{base}" is not a local branch of {repo_name}; --base takes a branch name '
                            "(a task merges back into it), e.g. `--base main`.")
        await self.spending.check_spawn(requester, repo_name)
        return ValidSpawn(prompt, repo_name, preset_name, base)

    async def spawn(
        self,
        prompt: str,
        *,
        requester: str,
        repo: str | None = None,
        preset: str | None = None,
        base: str | None = None,
        channel: str | None = None,
        task_id: str | None = None,
    ) -> Task:
        """Validate and queue a new task; it is driven in the background. Raises UserError."""
        valid = await self.validate_spawn(prompt, repo=repo, preset=preset, base=base, requester=requester)
        return await self.spawn_validated(valid, requester=requester, channel=channel, task_id=task_id)

    async def spawn_validated(
        self, valid: ValidSpawn, *, requester: str, channel: str | None = None, task_id: str | None = None
    ) -> Task:
        """Queue the task `validate_spawn` accepted (a front end opens the task's place in between)."""
        task = Task(
            id=task_id or new_task_id(),
            repo=valid.repo,
            prompt=valid.prompt,
            preset=valid.preset,
            requester=requester,
            base_branch=valid.base,
            channel=channel,
            runner=self.runner_of_new_tasks,
        )
        task = await self.store.create_task(task, requester, {"repo": valid.repo, "preset": valid.preset,
                                                              "base": valid.base})
        log.info("task %s: created by %s (repo %s, preset %s)", task.id, requester, valid.repo, valid.preset)
        self.publish(StateChanged(task, None, requester))
        self.workers.drive(task.id, self.lifecycle.drive(task.id))
        return task

    # races: one prompt, several attempts, one kept

    async def validate_race(self, prompt: str, *, presets: list[str], repo: str | None = None,
                            base: str | None = None, requester: str) -> ValidRace:
        """Every spawn check for each attempt's preset. Raises UserError."""
        return await self.races.validate(prompt, repo=repo, presets=presets, base=base, requester=requester)

    async def race(self, valid: ValidRace, *, requester: str, race_id: str, task_ids: list[str],
                   channel: str | None = None) -> tuple[Race, list[Task]]:
        """Start the attempts `validate_race` accepted, from one base commit."""
        return await self.races.start(valid, requester=requester, race_id=race_id, task_ids=task_ids,
                                      channel=channel)

    async def get_race(self, race_id: str) -> tuple[Race, list[Task]]:
        """The race and its attempts in label order. Raises UserError for an unknown id."""
        return await self.races.get(race_id), await self.races.attempts(race_id)

    async def discard_race(self, race_id: str, actor: str) -> Race:
        """Discard every attempt of an open race, once however many click."""
        return await self.races.discard_all(race_id, actor)

    async def race_followup(self, race_id: str, text: str, actor: str) -> list[Sent]:
        """A follow-up in a race's thread: to the attempts it names (`A: ...`), else to every open one."""
        return await self.races.followup(race_id, text, actor)

    async def diff_attempts(self, first_id: str, second_id: str) -> tuple[Task, Task, str]:
        """The diff between two attempts' branches, redacted."""
        return await self.races.diff_between(first_id, second_id)

    # actions

    async def cancel(self, task_id: str, actor: str) -> Task:
        return await self.control.cancel(task_id, actor)

    async def retry_elsewhere(self, task_id: str, actor: str) -> Task:
        """Run a task's turn again on another worker host (its own stopped answering)."""
        task = await self.get(task_id)
        if task.runner is None or self.remote is None:
            raise UserError(f"Task {task.id} runs on this machine, not on worker hosts; there is no other host.")
        return await self.remote.retry_elsewhere(task, actor)

    async def followup(self, task_id: str, text: str, actor: str) -> Task:
        """Send more instructions to a task's agent, in the same worktree (and session if supported)."""
        return await self.control.followup(task_id, text, actor)

    async def stop_for_limit(self, task_id: str, reason: str) -> None:
        """End a running agent that broke a limit the bot watches (disk), stating the reason."""
        await self.control.stop_for_limit(task_id, reason)

    async def merge(self, task_id: str, actor: str) -> Task:
        """Merge the task's branch into its base, once, however many times it is asked. An attempt of a
        race is picked: merged, and the race's other attempts discarded."""
        task = await self.get(task_id)
        if task.race_id:
            return await self.races.pick(task_id, actor)
        return await self.merging.merge(task_id, actor)

    async def discard(self, task_id: str, actor: str) -> Task:
        """Throw the task's work away: stop its agent if needed, remove worktree and branch."""
        return await self.merging.discard(task_id, actor)

    async def update_from_base(self, task_id: str, actor: str) -> Task:
        """Merge the base into the task branch; conflicts go to the agent as a follow-up."""
        return await self.merging.update_from_base(task_id, actor)

    async def fix_ci(self, task_id: str, actor: str) -> Task:
        """Send the failing checks of the task's pull request to its agent as a follow-up."""
        return await self.pulls.fix_ci(task_id, actor)

    async def prune(self, task_id: str, actor: str, reason: str) -> Task | None:
        """Remove an idle task's worktree (and branch, unless its preset keeps branches)."""
        return await self.pruning.prune(task_id, actor, reason)

    async def mark_pruned(self, task: Task, reason: str) -> None:
        """The worktree went away behind the bot's back: record it, and drop the branch too."""
        await self.pruning.mark_pruned(task, reason)

    async def keep(self, task_id: str, actor: str) -> Task:
        """Reset a task's idle clock (the Keep button on a prune warning)."""
        return await self.pruning.keep(task_id, actor)

    async def warn_prune(self, task: Task, grace_s: float) -> None:
        await self.pruning.warn_prune(task, grace_s)

    # reviews and plugins

    async def diff(self, task_id: str) -> str:
        return await self.reviews.diff(task_id)

    async def log_of(self, task_id: str) -> tuple[Task, LogChunk]:
        """The end of the log of the task's last run (LOG_SHOWN bytes at most), redacted, read in pieces
        of LOG_CHUNK from wherever it ran (this machine or its worker host). Raises UserError."""
        task = await self.get(task_id)
        runner = self.runner_for(task)
        first = await runner.read_log(task, 0, LOG_CHUNK)
        parts, start = [first.text], 0
        if first.size > LOG_SHOWN:  # only its end: where an agent says how it ended
            parts, start = [], first.size - LOG_SHOWN
        pos = start if parts == [] else first.end
        while pos < first.size:
            chunk = await runner.read_log(task, pos, LOG_CHUNK)
            if chunk.end <= pos:
                break
            text = chunk.text
            if pos == start and start > 0:  # it starts mid-line: from the next whole one
                text = text.partition("\n")[2]
            parts.append(text)
            pos = chunk.end
        return task, LogChunk("".join(parts), start, pos, first.size, first.where)

    async def build_review(self, task: Task, progress: Progress | None = None, checks: Any = None) -> Review | None:
        """Summarise the task's branch against its base and preview the merge."""
        return await self.reviews.build(task, progress, checks)

    async def hooks_dispatch(self, name: str, task: Task, data: Mapping[str, Any] | None = None) -> list[Any]:
        """Run plugins for one lifecycle event; failures land in the task's events and thread."""
        return await self.plugins.dispatch(name, task, data)
