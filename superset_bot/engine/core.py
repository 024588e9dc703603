"""The task engine: turns "spawn PROMPT" into an agent working in its own worktree, then a review.

It owns the state machine of DESIGN.md, the concurrency limit and its FIFO queue, and wires
git, presets, runner, parsers and hooks together. It knows nothing of Slack: front ends call
its methods and subscribe to its typed events. Every transition is stored before it is
published. Each task is driven by its own asyncio task, so a slow setup, plugin or git call
delays only that task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from superset_bot.agents.formats import Progress, make_parser
from superset_bot.agents.runner import AgentRun, ExitInfo, RunLimits, RunnerError
from superset_bot.aio import run_to_end, stack_of
from superset_bot.config import Settings
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
from superset_bot.engine.outcome import decide_exit
from superset_bot.engine.pool import Taken, WorktreePool
from superset_bot.git import worktrees as gw
from superset_bot.git.commands import GitError, branch_exists, git_dirs
from superset_bot.plugins.hooks import HookEvent, Hooks
from superset_bot.presets.core import Preset, agent_argv, prepare_worktree, run_teardown
from superset_bot.redact import Redactor, agent_environment, secret_values
from superset_bot.store import (
    ACTIVE_STATES,
    CANCELLED,
    CLOSED_STATES,
    DISCARDED,
    DISCARDING,
    FAILED,
    FINISHED,
    MERGED,
    MERGING,
    PREPARING,
    PRUNED,
    QUEUED,
    REVIEWABLE_STATES,
    RUNNING,
    Store,
    Task,
    new_task_id,
)
from superset_bot.units import format_duration, format_size

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 50_000
MAX_PROMPT_BYTES = 120_000  # one argv element may hold 128 KiB on Linux
BOT_ACTOR = "superset-bot"
PUBLISH_EVERY = 0.5  # seconds between progress events of one task
PERSIST_EVERY = 2.0  # seconds between progress snapshots written to the store
OUTPUT_BATCH_MAX = 200  # lines kept per output event; older ones in the batch are counted as dropped
# How long a task may sit in a passing state with no change to its row before reconcile settles it
STUCK_QUEUED = 600.0  # queued although a slot is free
STUCK_PREPARING = 900.0  # at least; a preset's setup timeouts may give it longer
STUCK_CLAIM = 900.0  # merging or discarding with the merge or discard still at work
LOST_CLAIM = 60.0  # merging or discarding with nothing at work on it in this process
SETTLE_WAIT = 30.0  # seconds to wait for a stuck task's driver to stop once told to
STOP_WAIT = 30.0  # seconds `stop` waits for the drivers it cancelled
UNRECORDED_AGENT_WAIT = 10.0  # seconds an agent's supervisor may take to write its pid file

Subscriber = Callable[[EngineEvent], None]
T = TypeVar("T")


class UserError(Exception):
    """Something the person can fix; the message says what was wrong and what to do."""


class AlreadyClosed(UserError):
    """The task was already merged or discarded (a second click, a retried request)."""

    def __init__(self, task: Task) -> None:
        verb = "merged" if task.state == MERGED else task.state
        who = f" by {task.closed_by}" if task.closed_by else ""
        super().__init__(f"Task {task.id} was already {verb}{who}; nothing changed.")
        self.task = task


@dataclass
class Review:
    """What a reviewer needs to decide: the change, whether it merges cleanly, checks and cost."""

    task_id: str
    state: str
    reason: str | None
    branch: str
    base_branch: str
    files: list[dict[str, Any]]
    commits: int
    insertions: int
    deletions: int
    clean: bool
    conflicts: list[str]
    checks: dict[str, Any] | None = None
    duration_s: float | None = None
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    final_text: str | None = None
    notes: list[str] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)  # actions the agent's permissions or sandbox refused

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Slots:
    """A FIFO concurrency limit: at most `limit` tasks hold a slot; the rest wait in order."""

    def __init__(self, limit: int, on_queue_change: Callable[[list[str]], None]) -> None:
        self.limit = limit
        self.holders: set[str] = set()
        self._waiting: OrderedDict[str, asyncio.Future[None]] = OrderedDict()
        self._on_queue_change = on_queue_change

    def position(self, task_id: str) -> int | None:
        for index, waiting_id in enumerate(self._waiting, start=1):
            if waiting_id == task_id:
                return index
        return None

    async def acquire(self, task_id: str) -> None:
        if task_id in self.holders:
            return
        if len(self.holders) < self.limit and not self._waiting:
            self.holders.add(task_id)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[task_id] = future
        self._on_queue_change(list(self._waiting))
        try:
            await future
        except BaseException:
            if self._waiting.pop(task_id, None) is not None:
                self._on_queue_change(list(self._waiting))
            elif future.done() and not future.cancelled():
                self.release(task_id)  # granted while being cancelled: pass it on
            raise

    def kick(self) -> None:
        """Hand free slots to whoever waits (after a waiter was stopped from outside)."""
        self.release("")

    def take(self, task_id: str) -> None:
        """Hold a slot without queueing (an agent found running after a restart)."""
        self.holders.add(task_id)

    def release(self, task_id: str) -> None:
        self.holders.discard(task_id)
        changed = False
        while self._waiting and len(self.holders) < self.limit:
            next_id, future = self._waiting.popitem(last=False)
            changed = True
            if not future.done():
                self.holders.add(next_id)
                future.set_result(None)
        if changed:
            self._on_queue_change(list(self._waiting))


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
        self._subscribers: list[Subscriber] = []
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, AgentRun] = {}
        self._cancel_requests: dict[str, str] = {}  # task id -> who asked
        self._cancel_reasons: dict[str, str] = {}  # task id -> limit it broke (disk guard)
        self._updating: set[str] = set()  # tasks whose worktree is merging in their base right now
        self._claims: dict[str, asyncio.Task[Any]] = {}  # task id -> the merge or discard working on it
        self._stuck: dict[str, str] = {}  # task id -> why the bot stopped its driver (see settle_stuck)
        self.heartbeat = time.monotonic()  # moved every second by the loop; a frozen loop stops it
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.slots = Slots(settings.max_concurrent, self._queue_changed)
        self.redactor = Redactor([*settings.secrets(), *secret_values(settings.process_env)])
        self.pool = WorktreePool(settings, self.presets, self._prewarm_env, self.redactor)

    # subscribers and publishing

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber(event)` for every event; it must not block. Returns an unsubscribe."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: EngineEvent) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("task %s: subscriber %r failed on %s", event.task.id, subscriber, type(event).__name__)

    async def _transition(
        self,
        task_id: str,
        state: str,
        actor: str,
        *,
        expect: Iterable[str] | None = None,
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Task | None:
        task_before = await self.store.get_task(task_id)
        detail = {**(detail or {}), **({"reason": reason} if reason else {})}
        changes.setdefault("reason", reason)
        task = await self.store.transition(task_id, state, actor, expect=expect, detail=detail, **changes)
        if task is not None:
            if state == MERGED:
                self.pool.poke(task.repo)  # the base moved: warm worktrees follow it
            log.info("task %s: %s -> %s (%s)%s", task.id, task_before.state if task_before else None, state, actor,
                     f": {reason}" if reason else "")
            self.publish(StateChanged(task, task_before.state if task_before else None, actor, reason))
        return task

    def _queue_changed(self, waiting: list[str]) -> None:
        for position, task_id in enumerate(waiting, start=1):
            self._spawn_background(self._publish_position(task_id, position))

    async def _publish_position(self, task_id: str, position: int) -> None:
        task = await self.store.get_task(task_id)
        if task is not None and task.state == QUEUED:
            self.publish(QueuePosition(task, position))

    def _spawn_background(self, coro: Any) -> None:
        job = asyncio.create_task(coro)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    # lifecycle of the engine

    async def start(self) -> None:
        """Pick up where the last process stopped: re-attach agents, re-queue, settle claims."""
        for task in await self.store.list_tasks(ACTIVE_STATES | {MERGING, DISCARDING}):
            try:
                await self._recover(task)
            except Exception as exc:  # one broken task must not stop the bot from starting
                log.exception("task %s: could not be recovered", task.id)
                if task.state in (MERGING, DISCARDING):
                    continue  # git decides how a claim ends, not this error: reconcile settles it later
                await self._transition(task.id, FAILED, BOT_ACTOR, expect={task.state},
                                       reason=f"could not be recovered after a restart: {exc}")
        self.heartbeat = time.monotonic()
        self._spawn_background(self._beat())
        await self.pool.start()

    async def stop(self) -> None:
        """Stop driving tasks; detached agents keep running and are re-attached by the next start."""
        self._stopping = True
        await self.pool.stop()
        drivers = list(self._drivers.values()) + list(self._background)
        for driver in drivers:
            driver.cancel()
        if not drivers:
            return
        # a step that must finish once begun (a worktree being stored) may take a while; a shutdown
        # that waits forever on one would wedge the service manager's stop, so say where it hangs
        _, pending = await asyncio.wait(drivers, timeout=STOP_WAIT)
        for job in pending:
            log.error("%s did not stop within %.0f s of the bot stopping; left as it is (a restart "
                      "recovers its task). %s", job.get_name(), STOP_WAIT, stack_of(job))

    async def _recover(self, task: Task) -> None:
        if task.state == RUNNING and task.run_dir:
            run = AgentRun.attach(Path(task.run_dir), redactor=self.redactor)
            self.slots.take(task.id)
            self._runs[task.id] = run  # cancel works at once, before the driver has started
            await self.store.add_event(task.id, BOT_ACTOR, "reattached", {"pid": run.pid, "log_pos": task.log_pos})
            self._drive(task.id, self._resume(task, run))
        elif task.state == RUNNING or task.state == PREPARING:
            what = "preparing the worktree" if task.state == PREPARING else "starting the agent"
            await self._clean_unrecorded(task)
            await self._transition(task.id, FAILED, BOT_ACTOR, expect={task.state},
                                   reason=f"the bot restarted while {what}; spawn the task again")
        elif task.state == QUEUED:
            self._drive(task.id, self._lifecycle(task.id))
        elif task.state == MERGING:
            await self._settle_merge_claim(task)
        elif task.state == DISCARDING:
            await self._finish_discard(task, task.closed_by or BOT_ACTOR)

    async def _clean_unrecorded(self, task: Task) -> None:
        """The last process died between making something and storing it: an agent, a worktree.

        Housekeeping spares whatever carries a known task id, so recovery has to clean it up.
        """
        await self._stop_unrecorded_agent(task)
        if task.worktree is not None:
            return
        # killed inside create_worktree or a take from the warm pool: the worktree is at
        # worktrees/<repo>/<id> or wherever the task's branch is checked out
        try:
            repo = self.repo_path(task.repo)
            branch = gw.branch_name(task.id, task.prompt)
            path = self.settings.worktrees_dir / task.repo / task.id
            paths = {path} if await asyncio.to_thread(path.is_dir) else set()
            paths.update(await gw.worktrees_on_branch(repo, branch))
            for found in paths:
                await gw.discard(repo, found, None)
            if await branch_exists(repo, branch):
                await gw.discard(repo, None, branch)
        except (GitError, OSError, UserError) as exc:
            await self.store.add_event(task.id, BOT_ACTOR, "cleanup_failed", {"error": str(exc)})

    async def _stop_unrecorded_agent(self, task: Task) -> None:
        """An agent started but RUNNING was never stored (a cancel or a kill came in between): stop it."""
        run_dir = self.settings.runs_dir / task.id / str(task.runs + 1)
        if task.run_dir != str(run_dir) and await asyncio.to_thread(run_dir.is_dir):
            # a supervisor that got its spec writes its pid file moments later (slowly on a busy
            # machine); one that did not exits by itself and never writes it
            # (the runner opens wrapper.err just before it starts the supervisor: without it, nothing ran)
            spawned = await asyncio.to_thread((run_dir / "wrapper.err").exists)
            for _ in range(int(UNRECORDED_AGENT_WAIT / 0.1) if spawned else 0):
                if await asyncio.to_thread((run_dir / "pid").exists):
                    break
                await asyncio.sleep(0.1)
            try:  # nobody would follow it, and its worktree is about to go
                await AgentRun.attach(run_dir, redactor=self.redactor).cancel(self.settings.cancel_grace)
                await self.store.add_event(task.id, BOT_ACTOR, "unrecorded_agent_stopped", {"run_dir": str(run_dir)})
            except (RunnerError, OSError) as exc:
                await self.store.add_event(task.id, BOT_ACTOR, "cleanup_failed", {"error": str(exc)})

    async def _resume(self, task: Task, run: AgentRun) -> None:
        """Follow a re-attached agent; if that breaks, stop the agent and say why instead of hanging."""
        try:
            await self._follow_and_finish(task, run, resumed=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("task %s: could not follow the re-attached agent", task.id)
            with contextlib.suppress(Exception):
                await run.cancel(self.settings.cancel_grace)
            await self._transition(task.id, FAILED, BOT_ACTOR, expect={RUNNING},
                                   reason=f"could not follow the agent after a restart: {exc}")

    def is_driven(self, task_id: str) -> bool:
        return task_id in self._drivers

    async def recover(self, task: Task) -> None:
        """Pick up a task nobody drives (reconcile): re-attach, re-queue or settle it."""
        current = await self.store.get_task(task.id)
        if current is not None and current.state == task.state and not self.is_driven(task.id):
            await self._recover(current)

    async def mark_pruned(self, task: Task, reason: str) -> None:
        """The worktree went away behind the bot's back: record it, and drop the branch too."""
        moved = await self._transition(task.id, PRUNED, BOT_ACTOR, expect=REVIEWABLE_STATES, reason=reason,
                                       closed_by=BOT_ACTOR)
        if moved is not None:
            await self._remove_worktree(moved, keep_branch=True)

    # tasks that stopped moving

    def stuck_bound(self, task: Task) -> float | None:
        """Seconds the task may stay in its passing state without its row changing; None: no bound."""
        if task.state == QUEUED:
            return STUCK_QUEUED
        if task.state == PREPARING:
            preset = self.presets.get(task.preset)
            setup = preset.setup_timeout * (len(preset.setup) + 2) if preset else 0.0
            return max(STUCK_PREPARING, setup)
        if task.state in (MERGING, DISCARDING):
            return STUCK_CLAIM if self._claim_alive(task.id) else LOST_CLAIM
        return None

    def _claim_alive(self, task_id: str) -> bool:
        claim = self._claims.get(task_id)
        return claim is not None and not claim.done()

    async def stuck_tasks(self, slack: float = 1.0) -> list[tuple[Task, float]]:
        """Tasks past `slack` times their bound in queued, preparing, merging or discarding, with how long."""
        now = self.clock()
        found: list[tuple[Task, float]] = []
        for task in await self.store.list_tasks({QUEUED, PREPARING, MERGING, DISCARDING}):
            bound = self.stuck_bound(task)
            age = now - task.updated_at
            if bound is None or age < bound * slack:
                continue
            if task.state == QUEUED and self.slots.position(task.id) is not None \
                    and len(self.slots.holders) >= self.slots.limit:
                continue  # waiting its turn behind running agents, as it should
            found.append((task, age))
        return found

    async def settle_stuck(self, task: Task, age: float) -> str:
        """Say in the task's thread that it stopped moving, log where it hangs, and end the wait."""
        current = await self.store.get_task(task.id)
        if current is None or current.state != task.state or current.updated_at != task.updated_at:
            return "moved on meanwhile"
        what = {QUEUED: "queued", PREPARING: "preparing", MERGING: "being merged", DISCARDING: "being discarded"}
        state = what.get(task.state, task.state)
        await self.store.add_event(task.id, BOT_ACTOR, "stuck", {"state": task.state, "for_s": round(age)})
        worker = self._drivers.get(task.id) or self._claims.get(task.id)
        log.warning("task %s: %s for %s with no progress; settling it. %s", task.id, state, format_duration(age),
                    stack_of(worker) if worker is not None else "Nothing in this process works on it.")
        self.publish(Milestone(current, "stuck", f"This task was {state} for {format_duration(age)} without "
                                                 "progress; the bot stopped waiting for it.", ok=False))
        if task.state in (QUEUED, PREPARING):
            driver = self._drivers.get(task.id)
            if driver is None:
                await self.recover(current)
                return "picked up again"
            if task.state == QUEUED:
                self._stuck[task.id] = ""  # requeue: a lost turn is not the task's fault
            else:
                self._stuck[task.id] = (f"preparing the worktree hung for {format_duration(age)}; the bot stopped "
                                        "it (its log has where it hung); follow up or spawn again")
            await self._stop_worker(driver)
            self.slots.kick()
            if task.state == PREPARING:  # the driver would not stop: settle the row without it
                self._stuck.pop(task.id, None)
                await self._transition(task.id, FAILED, BOT_ACTOR, expect={PREPARING},
                                       reason=f"preparing the worktree hung for {format_duration(age)}; "
                                              "follow up or spawn again")
            return "requeued" if task.state == QUEUED else "failed"
        claim = self._claims.get(task.id)
        if claim is not None and not claim.done():
            await self._stop_worker(claim)
        current = await self.get(task.id)
        if current.state == MERGING:
            await self._settle_merge_claim(current)
        elif current.state == DISCARDING:
            events = await self.store.events(task.id, limit=100_000)
            claimed = next((e for e in reversed(events) if e.action == DISCARDING), None)
            await self._finish_discard(current, claimed.actor if claimed else BOT_ACTOR)
        return f"settled: now {(await self.get(task.id)).state}"

    async def _stop_worker(self, worker: asyncio.Task[Any]) -> None:
        if not worker.done():
            worker.cancel()
        await asyncio.wait({worker}, timeout=SETTLE_WAIT)

    async def health(self) -> dict[str, Any]:
        """What a health check needs: is the loop turning, does the store write, is any task wedged."""
        problems: list[str] = []
        lag = time.monotonic() - self.heartbeat
        if lag > 10:
            problems.append(f"the event loop's heartbeat is {lag:.0f} s late")
        try:
            await asyncio.wait_for(self.store.set_meta("health_probe", repr(self.clock())), 10)
        except Exception as exc:  # a wedged or broken database is exactly what this looks for
            problems.append(f"the database does not take writes: {exc!r}")
        try:
            # reconcile settles a stuck task within its bound and a cycle; twice the bound means it could not
            stuck = await asyncio.wait_for(self.stuck_tasks(slack=2.0), 10)
        except Exception as exc:
            stuck = []
            problems.append(f"cannot list tasks: {exc!r}")
        problems += [f"task {t.id} {t.state} for {format_duration(age)}" for t, age in stuck]
        return {"ok": not problems, "problems": problems, "loop_lag_s": round(lag, 3)}

    async def _beat(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            await asyncio.sleep(1.0)

    def _drive(self, task_id: str, coro: Any) -> None:
        driver = asyncio.create_task(coro, name=f"task-{task_id}")
        self._drivers[task_id] = driver

        def done(job: asyncio.Task[None]) -> None:
            if self._drivers.get(task_id) is job:
                del self._drivers[task_id]

        driver.add_done_callback(done)

    async def wait_for(self, task_id: str, states: Iterable[str], timeout: float = 60.0) -> Task:
        """Wait until the task reaches one of `states` (for front ends and tests)."""
        wanted = set(states)
        reached: asyncio.Future[Task] = asyncio.get_running_loop().create_future()

        def watch(event: EngineEvent) -> None:
            if event.task.id == task_id and event.task.state in wanted and not reached.done():
                reached.set_result(event.task)

        unsubscribe = self.subscribe(watch)
        try:
            task = await self.store.get_task(task_id)
            if task is not None and task.state in wanted:
                return task
            return await asyncio.wait_for(reached, timeout)
        finally:
            unsubscribe()

    async def wait_idle(self) -> None:
        """Wait until no task is being driven (tests, shutdown of the console)."""
        while self._drivers:
            await asyncio.gather(*list(self._drivers.values()), return_exceptions=True)

    # queries

    async def get(self, task_id: str) -> Task:
        task = await self.store.get_task(task_id.strip().lower())
        if task is None:
            raise UserError(f'There is no task "{task_id}". `list` shows the current tasks.')
        return task

    def queue_position(self, task_id: str) -> int | None:
        return self.slots.position(task_id)

    def preset_for(self, task: Task) -> Preset:
        preset = self.presets.get(task.preset)
        if preset is None:
            raise UserError(f'Task {task.id} uses preset "{task.preset}", which is no longer loaded.')
        return preset

    def repo_path(self, name: str) -> Path:
        path = self.settings.repos.get(name)
        if path is None:
            known = ", ".join(sorted(self.settings.repos)) or "none are configured (SUPERSET_REPOS)"
            raise UserError(f'Unknown repo "{name}". Known repos: {known}.')
        return path

    # spawning

    def validate_spawn(
        self, prompt: str, *, repo: str | None = None, preset: str | None = None, base: str | None = None
    ) -> tuple[str, str, str, str | None]:
        """Check a spawn request before anything is created; returns (prompt, repo, preset, base)."""
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
        self.repo_path(repo_name)
        preset_name = preset or self.settings.default_preset
        chosen = self.presets.get(preset_name)
        if chosen is None:
            known = ", ".join(sorted(self.presets)) or "none (check SUPERSET_PRESETS_DIR)"
            raise UserError(f'Unknown preset "{preset_name}". Available presets: {known}.')
        self._check_agent_command(chosen)
        if base is not None:
            base = base.strip()
            if not base or base.startswith("-") or any(c.isspace() or ord(c) < 32 for c in base):
                raise UserError(f'"{base}" is not a valid branch name for --base.')
        self._check_free_disk()
        return prompt, repo_name, preset_name, base

    async def spawn(
        self,
        prompt: str,
        *,
        requester: str,
        repo: str | None = None,
        preset: str | None = None,
        base: str | None = None,
        channel: str | None = None,
        thread_ts: str | None = None,
        task_id: str | None = None,
    ) -> Task:
        """Validate and queue a new task; it is driven in the background. Raises UserError."""
        prompt, repo_name, preset_name, base = self.validate_spawn(prompt, repo=repo, preset=preset, base=base)
        if base is not None and not await branch_exists(self.repo_path(repo_name), base):
            raise UserError(f'"{base}" is not a local branch of {repo_name}; --base takes a branch name '
                            "(a task merges back into it), e.g. `--base main`.")
        task = Task(
            id=task_id or new_task_id(),
            repo=repo_name,
            prompt=prompt,
            preset=preset_name,
            requester=requester,
            base_branch=base,
            channel=channel,
            thread_ts=thread_ts,
        )
        task = await self.store.create_task(task, requester, {"repo": repo_name, "preset": preset_name, "base": base})
        log.info("task %s: created by %s (repo %s, preset %s)", task.id, requester, repo_name, preset_name)
        self.publish(StateChanged(task, None, requester))
        self._drive(task.id, self._lifecycle(task.id))
        return task

    def _check_agent_command(self, preset: Preset) -> None:
        program = agent_argv(preset, "x")[0]
        path_env = self.settings.process_env.get("PATH")
        if shutil.which(program, path=path_env) is None:
            raise UserError(
                f'Preset "{preset.name}" runs `{program}`, which is not installed or not on PATH. '
                "Install it, or pick another preset (`presets` lists them)."
            )

    def _check_free_disk(self) -> None:
        if not self.settings.min_free_disk:
            return
        free = shutil.disk_usage(self.settings.data_dir).free
        if free < self.settings.min_free_disk:
            raise UserError(
                f"Only {format_size(free)} of disk is free in {self.settings.data_dir} "
                f"(SUPERSET_MIN_FREE_DISK is {format_size(self.settings.min_free_disk)}). "
                "Discard or merge finished tasks, or run `prune`, then try again."
            )

    # driving one task

    async def _lifecycle(self, task_id: str, followup: str | None = None) -> None:
        """Queue -> prepare -> run -> review, for a new task or a follow-up run."""
        try:
            await self.slots.acquire(task_id)
            try:
                task = await self.store.get_task(task_id)
                if task is None or task.state != QUEUED:
                    return
                followup = followup or task.pending_prompt
                if task.worktree is None:
                    prepared = await self._prepare(task)
                    if prepared is None:
                        return
                    task = prepared
                await self._run_agent(task, followup)
            finally:
                self.slots.release(task_id)
        except asyncio.CancelledError:
            if self._stopping:
                raise
            await asyncio.shield(self._cancelled_before_agent(task_id))
        except Exception as exc:
            log.exception("task %s: internal error", task_id)
            await self._transition(task_id, FAILED, BOT_ACTOR, reason=f"internal error: {exc}")

    async def _cancelled_before_agent(self, task_id: str) -> None:
        stuck = self._stuck.pop(task_id, None)
        if stuck == "":  # stopped by settle_stuck while queued: queue it again
            self._cancel_requests.pop(task_id, None)
            self._drive(task_id, self._lifecycle(task_id))
            return
        if stuck is not None:
            self._cancel_requests.pop(task_id, None)
            await self._transition(task_id, FAILED, BOT_ACTOR, expect={QUEUED, PREPARING}, reason=stuck)
            return
        actor = self._cancel_requests.pop(task_id, BOT_ACTOR)
        cancelled = await self._transition(task_id, CANCELLED, actor, expect={QUEUED, PREPARING},
                                           reason=f"cancelled by {actor} before the agent started")
        if cancelled is not None:
            await self._stop_unrecorded_agent(cancelled)

    async def _prepare(self, task: Task) -> Task | None:
        repo = self.repo_path(task.repo)
        preset = self.preset_for(task)
        moved = await self._transition(task.id, PREPARING, BOT_ACTOR, expect={QUEUED})
        if moved is None:
            return None
        await self.hooks_dispatch("task_created", moved)
        try:
            task, worktree, taken = await _uninterrupted(self._make_worktree(task, repo, preset))
        except GitError as exc:
            await self._transition(task.id, FAILED, BOT_ACTOR, reason=f"could not create the worktree: {exc}")
            return None
        warm = " (warm, setup done ahead)" if taken and taken.prewarmed else " (warm)" if taken else ""
        self.publish(Milestone(task, "worktree_ready", f"Worktree ready on branch `{worktree.branch}` from "
                                                       f"`{worktree.base_branch}` ({worktree.base_commit[:8]}){warm}."))
        await self.hooks_dispatch("worktree_ready", task)

        output = _OutputBatcher(self, task, "setup")
        result = await prepare_worktree(preset, repo, worktree.path, self._agent_env(task, preset),
                                        on_line=output.add, commands=not (taken and taken.prewarmed))
        output.flush()
        if not result.ok:
            reason = result.reason or "setup failed"
            await self._transition(task.id, FAILED, BOT_ACTOR,
                                   reason=f"{reason}; the worktree is kept at {worktree.path} for inspection")
            return None
        ran = len(result.commands)
        what = "ran ahead in the warm pool" if taken and taken.prewarmed else f"{ran} command{'s' if ran != 1 else ''}"
        text = f"Setup done ({what}" + (f", copied {', '.join(result.copied)})." if result.copied else ").")
        self.publish(Milestone(task, "setup_done", text))
        await self.hooks_dispatch("setup_done", task)
        return task

    async def _make_worktree(self, task: Task, repo: Path, preset: Preset) -> tuple[Task, gw.Worktree, Taken | None]:
        """Take or create the task's worktree and store it, as one step nothing interrupts halfway.

        Once git made a worktree and branch, only the stored task row says whose they are: a cancel
        or discard landing in between would leave both behind, owned by nobody.
        """
        taken = await self._take_warm(task, preset)
        worktree = taken.worktree if taken else await gw.create_worktree(
            repo, self.settings.worktrees_dir / task.repo, task.id, task.prompt, task.base_branch
        )
        task = await self.store.update_task(
            task.id,
            worktree=str(worktree.path),
            branch=worktree.branch,
            base_branch=worktree.base_branch,
            base_commit=worktree.base_commit,
        )
        return task, worktree, taken

    async def _take_warm(self, task: Task, preset: Preset) -> Taken | None:
        """A worktree from the warm pool, or None to create one; a pool failure never fails the task."""
        try:
            return await self.pool.take(task.repo, preset, task.id, task.prompt, task.base_branch)
        except GitError as exc:
            log.warning("task %s: no warm worktree (%s); creating one", task.id, exc)
            return None

    def _prewarm_env(self, repo_name: str, preset: Preset, worktree: Path) -> dict[str, str]:
        """What a task's setup would get, before there is a task (SUPERSET_TASK_ID is empty)."""
        return self._command_env(repo_name, preset, "", str(worktree))

    def _agent_env(self, task: Task, preset: Preset) -> dict[str, str]:
        return self._command_env(task.repo, preset, task.id, task.worktree or "")

    def _command_env(self, repo_name: str, preset: Preset, task_id: str, worktree: str) -> dict[str, str]:
        repo = self.repo_path(repo_name)
        extra = {
            **preset.env,
            "SUPERSET_TASK_ID": task_id,
            "SUPERSET_ROOT_PATH": str(repo),
            "SUPERSET_WORKSPACE_PATH": worktree,
            # many agents committing at once must not all start packing the repo
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "gc.auto",
            "GIT_CONFIG_VALUE_0": "0",
            "GIT_CONFIG_KEY_1": "maintenance.auto",
            "GIT_CONFIG_VALUE_1": "false",
        }
        return agent_environment(self.settings.process_env, extra)

    def _copied(self, task: Task) -> tuple[str, ...]:
        """Files the preset copied in from the main checkout: never committed (a .env holds secrets)."""
        preset = self.presets.get(task.preset)
        return preset.copy if preset else ()

    def _never_commit(self, task: Task) -> tuple[str, ...]:
        """Globs of files the agent keeps for itself in the worktree (aider's chat history)."""
        preset = self.presets.get(task.preset)
        return preset.never_commit if preset else ()

    def _redactor_for(self, preset: Preset) -> Redactor:
        preset_secrets = secret_values(preset.env)
        if not preset_secrets:
            return self.redactor
        return Redactor([*self.settings.secrets(), *secret_values(self.settings.process_env), *preset_secrets])

    async def _run_agent(self, task: Task, followup: str | None) -> None:
        preset = self.preset_for(task)
        assert task.worktree is not None
        progress = Progress()  # token and cost totals are per run
        paths = await self._agent_paths(task)
        if followup:
            session = task.session_id
            if preset.agent.followup and session:
                argv = agent_argv(preset, followup, session=session, followup=True, paths=paths)
                # what the last run of this session left for the next (e.g. thread-wide token totals)
                progress.carried = _snapshot(task).get("carry") or {}
            else:
                argv = agent_argv(preset, _followup_prompt(task.prompt, followup), paths=paths)
        else:
            argv = agent_argv(preset, task.prompt, paths=paths)
        run_no = task.runs + 1
        run_dir = self.settings.runs_dir / task.id / str(run_no)
        limits = RunLimits(
            timeout=preset.limits.timeout,
            memory=preset.limits.memory,
            cpu=preset.limits.cpu,
            output=preset.limits.output,
        )
        try:
            run = await AgentRun.start(
                run_dir,
                argv,
                Path(task.worktree),
                self._agent_env(task, preset),
                limits,
                redactor=self._redactor_for(preset),
                grace=self.settings.cancel_grace,
            )
        except RunnerError as exc:
            await self._transition(task.id, FAILED, BOT_ACTOR, reason=f"the agent could not start: {exc}")
            return
        self._runs[task.id] = run
        progress.phase = "starting"
        moved = await self._transition(
            task.id, RUNNING, BOT_ACTOR, expect={PREPARING, QUEUED},
            pid=run.pid, run_dir=str(run_dir), log_pos=0, runs=run_no, started_at=self.clock(), pending_prompt=None,
            finished_at=None, exit_code=None, progress=json.dumps(progress.snapshot()),
        )
        if moved is None:  # cancelled between start and now
            await run.cancel()
            self._runs.pop(task.id, None)
            return
        if task.id in self._cancel_requests:
            self._spawn_background(run.cancel())
        what = "Follow-up sent to the agent" if followup else "Agent started"
        program = Path(argv[0]).name
        self.publish(Milestone(moved, "agent_started", f"{what} (preset `{preset.name}`, `{program}`, pid {run.pid})."))
        await self.hooks_dispatch("agent_started", moved)
        await self._follow_and_finish(moved, run, progress=progress)

    async def _follow_and_finish(
        self, task: Task, run: AgentRun, *, progress: Progress | None = None, resumed: bool = False
    ) -> None:
        """Read the agent's log into progress events until it ends, then settle its state."""
        self._runs[task.id] = run
        try:
            preset = self.preset_for(task)
            if progress is None:
                progress = Progress.from_snapshot(json.loads(task.progress) if task.progress else {})
            parser = make_parser(preset.agent.format, cwd=task.worktree, carried=progress.carried)
            output = _OutputBatcher(self, task, "agent")
            state = {"pos": task.log_pos, "dirty": False}
            flusher = asyncio.create_task(self._flush_progress(task, progress, output, state))
            try:
                async for pos, line in run.lines(task.log_pos):
                    for event in parser(line):
                        progress.apply(event)
                    output.add(line)
                    state["pos"] = pos
                    state["dirty"] = True
                    if progress.fatal and task.id not in self._cancel_reasons:
                        # retrying a refused key only hides the problem for minutes: stop and say why
                        self._cancel_reasons[task.id] = progress.error or "the agent's model API failed"
                        self._spawn_background(run.cancel(self.settings.cancel_grace))
                for event in parser.finish():
                    progress.apply(event)
                info = await run.wait()
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
            progress.mark_done()
            output.flush()
            task = await self.store.update_task(
                task.id, log_pos=state["pos"], progress=json.dumps(progress.snapshot()),
                session_id=progress.session_id or task.session_id,
            )
            self.publish(ProgressChanged(task, progress.snapshot()))
            await self._agent_ended(task, info, progress)
        finally:
            self._runs.pop(task.id, None)
            if resumed:
                self.slots.release(task.id)

    async def _flush_progress(
        self, task: Task, progress: Progress, output: _OutputBatcher, state: dict[str, Any]
    ) -> None:
        last_persist = time.monotonic()
        while True:
            await asyncio.sleep(PUBLISH_EVERY)
            if not state["dirty"]:
                continue
            state["dirty"] = False
            output.flush()
            self.publish(ProgressChanged(task, progress.snapshot()))
            if time.monotonic() - last_persist >= PERSIST_EVERY:
                last_persist = time.monotonic()
                # position and snapshot are saved together, so a restart neither loses nor doubles lines
                task = await self.store.update_task(
                    task.id, log_pos=state["pos"], progress=json.dumps(progress.snapshot()),
                    session_id=progress.session_id,
                )

    async def _agent_ended(self, task: Task, info: ExitInfo, progress: Progress) -> None:
        requested_by = self._cancel_requests.pop(task.id, None)
        outcome = decide_exit(info, progress, stop_reason=self._cancel_reasons.pop(task.id, None),
                              cancelled_by=requested_by)
        state, reason = outcome.state, outcome.reason
        if state != FINISHED and task.worktree:
            # a full disk makes agents fail in their own words; say what the person must fix
            try:
                free = (await asyncio.to_thread(shutil.disk_usage, task.worktree)).free
            except OSError:
                free = None
            said_so = any("No space left on device" in line or "Disk quota exceeded" in line
                          for line in progress.tail)
            if said_so or (free is not None and free < 1024 * 1024):  # under 1 MiB: nothing fits
                shown = f" ({format_size(free)} free)" if free is not None else ""
                reason = (f"{reason or state}; the disk holding the worktree is full{shown}: "
                          "free some space, then follow up or spawn again")
        if info.log_error:
            lost = f"the run log could not be written ({info.log_error}), so later output was not kept"
            reason = f"{reason}; {lost}" if reason else lost
        committed = None
        if task.worktree and Path(task.worktree).is_dir():
            try:
                committed = await gw.commit_pending(
                    Path(task.worktree), f"superset-bot: work left uncommitted by the agent (task {task.id})",
                    exclude=self._copied(task), exclude_globs=self._never_commit(task),
                )
            except GitError as exc:
                await self.store.add_event(task.id, BOT_ACTOR, "commit_pending_failed", {"error": str(exc)})
        moved = await self._transition(
            task.id, state, requested_by or BOT_ACTOR, expect={RUNNING}, reason=reason,
            exit_code=info.code, finished_at=self.clock(), pid=None,
        )
        if moved is None:
            return
        if committed:
            self.publish(Milestone(moved, "committed", f"Committed work the agent left uncommitted ({committed[:8]})."))
        outcomes = await self.hooks_dispatch("agent_finished", moved, {"state": state, "exit": asdict(info)})
        checks = next((o.result for o in outcomes if o.plugin == "checks" and o.ok and o.result is not None), None)
        checks_view = _checks_dict(checks, self._redactor_for(self.preset_for(moved))) if checks else None
        if checks_view is not None:
            self.publish(Milestone(moved, "checks", checks_view["summary"], ok=checks_view["passed"]))
        await self._post_review(moved, progress, checks_view)

    async def _agent_paths(self, task: Task) -> dict[str, str]:
        """The directories a preset's agent.permissions may name: {worktree}, {git_dir}, {git_common_dir}."""
        assert task.worktree is not None
        paths = {"worktree": task.worktree, "git_common_dir": str(self.repo_path(task.repo) / ".git")}
        try:
            paths.update(await git_dirs(Path(task.worktree)))
        except GitError as exc:
            log.warning("task %s: could not read the worktree's git dirs: %s", task.id, exc)
        return paths

    async def _post_review(self, task: Task, progress: Progress | None = None, checks: Any = None) -> Review | None:
        review = await self.build_review(task, progress, checks)
        if review is None:
            return None
        task = await self.store.update_task(task.id, review=json.dumps(review.to_dict()), last_activity=self.clock())
        self.publish(ReviewReady(task, review.to_dict()))
        await self.hooks_dispatch("review_ready", task, {"review": review.to_dict()})
        return review

    async def build_review(self, task: Task, progress: Progress | None = None, checks: Any = None) -> Review | None:
        """Summarise the task's branch against its base and preview the merge."""
        if not (task.branch and task.base_branch):
            return None
        repo = self.repo_path(task.repo)
        if progress is None and task.progress:
            progress = Progress.from_snapshot(json.loads(task.progress))
        try:
            summary = await gw.summarize(repo, task.branch, task.base_branch)
            preview = await gw.preview_merge(repo, task.branch, task.base_branch)
        except GitError as exc:
            log.warning("task %s: no review: %s", task.id, exc)
            return None
        started, finished = task.started_at, task.finished_at
        return Review(
            task_id=task.id,
            state=task.state,
            reason=task.reason,
            branch=task.branch,
            base_branch=task.base_branch,
            files=[asdict(f) for f in summary.files],
            commits=summary.commits,
            insertions=summary.insertions,
            deletions=summary.deletions,
            clean=preview.clean,
            conflicts=list(preview.conflicts),
            checks=checks if isinstance(checks, dict) else None,
            duration_s=(finished - started) if (started and finished) else None,
            cost_usd=progress.cost_usd if progress else None,
            tokens_in=progress.tokens_in if progress else None,
            tokens_out=progress.tokens_out if progress else None,
            final_text=progress.final_text if progress else None,
            denials=list(progress.denials) if progress else [],
        )

    async def hooks_dispatch(self, name: str, task: Task, data: Mapping[str, Any] | None = None) -> list[Any]:
        """Run plugins for one lifecycle event; failures land in the task's events and thread."""
        preset = self.presets.get(task.preset)
        event = HookEvent(
            name=name,
            task_id=task.id,
            repo=task.repo,
            worktree=Path(task.worktree) if task.worktree else None,
            preset=preset,
            env=self._agent_env(task, preset) if preset else {},
            data=dict(data or {}),
        )
        outcomes = await self.hooks.dispatch(event)
        for outcome in outcomes:
            if not outcome.ok:
                what = "timed out" if outcome.timed_out else f"failed: {outcome.error}"
                await self.store.add_event(task.id, f"plugin:{outcome.plugin}", "plugin_failed",
                                           {"event": name, "error": outcome.error, "timed_out": outcome.timed_out})
                self.publish(Milestone(task, "plugin_failed", f"Plugin `{outcome.plugin}` {what} on {name}.", ok=False))
        return outcomes

    # actions

    async def cancel(self, task_id: str, actor: str) -> Task:
        task = await self.get(task_id)
        if task.state not in ACTIVE_STATES:
            raise UserError(f"Task {task.id} is {task.state}, not running or queued; there is nothing to cancel.")
        self._cancel_requests[task.id] = actor
        run = self._runs.get(task.id)
        if run is None and task.state == RUNNING and task.run_dir and not self.is_driven(task.id):
            run = AgentRun.attach(Path(task.run_dir), redactor=self.redactor)  # nobody follows it: stop it
            info = await run.cancel(self.settings.cancel_grace)
            await self._transition(task.id, CANCELLED, actor, expect={RUNNING}, reason=f"cancelled by {actor}",
                                   exit_code=info.code, pid=None, finished_at=self.clock())
            return await self.get(task.id)
        if task.state == RUNNING and run is not None:
            await run.cancel(self.settings.cancel_grace)
            return await self.wait_for(task.id, REVIEWABLE_STATES | CLOSED_STATES, timeout=60)
        driver = self._drivers.get(task.id)
        if driver is not None:
            if not driver.cancelling():  # a second click must not interrupt the first one's settling
                driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(driver, return_exceptions=True)
        else:
            await self._cancelled_before_agent(task.id)
        return await self.get(task.id)

    async def followup(self, task_id: str, text: str, actor: str) -> Task:
        """Send more instructions to a task's agent, in the same worktree (and session if supported)."""
        text = (text or "").strip()
        if not text:
            raise UserError("The follow-up is empty: say what the agent should do next.")
        if len(text) > MAX_PROMPT_CHARS:
            raise UserError(f"The follow-up is {len(text):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
        task = await self.get(task_id)
        if task.state in ACTIVE_STATES:
            raise UserError(f"Task {task.id} is still {task.state}; send the follow-up when the agent has finished.")
        if task.state not in REVIEWABLE_STATES:
            raise UserError(f"Task {task.id} is {task.state}; follow-ups go to tasks awaiting review.")
        if not (task.worktree and Path(task.worktree).is_dir()):
            raise UserError(f"Task {task.id} has no worktree any more; spawn a new task instead.")
        self._refuse_while_updating(task)
        self._check_free_disk()
        moved = await self._transition(task.id, QUEUED, actor, expect=REVIEWABLE_STATES,
                                       detail={"followup": text[:500]}, pending_prompt=text)
        if moved is None:
            raise UserError(f"Task {task.id} changed state meanwhile; look at its status and try again.")
        self.publish(Milestone(moved, "followup", f"Follow-up from {actor}: {text[:300]}"))
        self._drive(task.id, self._lifecycle(task.id, followup=text))
        return moved

    async def merge(self, task_id: str, actor: str) -> Task:
        """Merge the task's branch into its base, once, however many times it is asked."""
        task = await self.get(task_id)
        if task.state in CLOSED_STATES:
            raise AlreadyClosed(task)
        preset = self.preset_for(task)
        repo = self.repo_path(task.repo)
        if not (task.branch and task.base_branch):
            raise UserError(f"Task {task.id} has no branch to merge ({task.reason or task.state}).")
        claimed = await self._claim(task, MERGING, actor)
        with self._claiming(claimed.id):
            return await self._merge_claimed(claimed, task.state, preset, repo, actor)

    async def _merge_claimed(self, claimed: Task, previous: str, preset: Preset, repo: Path, actor: str) -> Task:
        assert claimed.branch and claimed.base_branch
        try:
            if claimed.worktree and Path(claimed.worktree).is_dir():
                await gw.commit_pending(Path(claimed.worktree),
                                        f"superset-bot: uncommitted work before merge (task {claimed.id})",
                                        exclude=self._copied(claimed),
                                        exclude_globs=self._never_commit(claimed))


            async def remember(old: str, new: str) -> None:
                # written before the base ref moves, so a restart can tell whether it did (and
                # bring the base's checkout along if the bot died before it could)
                await self.store.update_task(claimed.id, merge_commit=new)
                await self.store.add_event(claimed.id, actor, "merge_ready", {"old": old, "new": new})

            result = await gw.merge(
                repo, claimed.branch, claimed.base_branch, strategy=preset.merge,
                message=f"Merge task {claimed.id}: {_first_line(claimed.prompt)}\n\nBranch {claimed.branch}, "
                        f"requested by {claimed.requester}, merged by {actor} via superset-bot.",
                on_ready=remember,
            )
        except gw.NothingToMerge as exc:
            await self._release_claim(claimed, previous, actor, "nothing to merge")
            raise UserError(
                f"Nothing to merge: `{claimed.branch}` has no changes that `{claimed.base_branch}` lacks. "
                "Discard the task, or follow up with more instructions."
            ) from exc
        except gw.MergeConflict as exc:
            await self._release_claim(claimed, previous, actor, f"merge refused: conflicts in {', '.join(exc.files)}")
            raise UserError(
                f"`{claimed.branch}` conflicts with `{claimed.base_branch}` in {', '.join(exc.files)}. "
                "Nothing was merged. Update the task from its base (or follow up) to resolve them."
            ) from exc
        except GitError as exc:
            await self._release_claim(claimed, previous, actor, f"merge failed: {exc}")
            raise UserError(f"Nothing was merged: {exc}") from exc
        except asyncio.CancelledError:
            if not self._stopping:  # when stopping, the next start settles the claim from git
                await self._settle_merge_claim(await self.get(claimed.id), previous)
            raise
        except Exception as exc:
            log.exception("task %s: merge failed", claimed.id)
            await self._settle_merge_claim(await self.get(claimed.id), previous)
            raise UserError(f"The merge failed unexpectedly ({exc}); the task is back to {previous}.") from exc
        merged = await self._transition(
            claimed.id, MERGED, actor, expect={MERGING}, closed_by=actor, merge_commit=result.new_commit,
        )
        assert merged is not None
        await self._teardown(merged, actor)
        await self._remove_worktree(merged, keep_branch=preset.keep_branch)
        await self.hooks_dispatch("merged", merged, {"commit": result.new_commit, "strategy": result.strategy})
        return merged

    async def discard(self, task_id: str, actor: str) -> Task:
        """Throw the task's work away: stop its agent if needed, remove worktree and branch."""
        task = await self.get(task_id)
        if task.state in ACTIVE_STATES:
            task = await self.cancel(task.id, actor)
        claimed = await self._claim(task, DISCARDING, actor)
        with self._claiming(claimed.id):
            return await self._finish_discard(claimed, actor)

    @contextlib.contextmanager
    def _claiming(self, task_id: str) -> Any:
        """While a merge or discard works on a claimed task, so reconcile can tell a live claim from a lost one."""
        current = asyncio.current_task()
        if current is not None:
            self._claims[task_id] = current
        try:
            yield
        finally:
            if self._claims.get(task_id) is current:
                del self._claims[task_id]

    async def _finish_discard(self, task: Task, actor: str) -> Task:
        await self._teardown(task, actor)
        await self._remove_worktree(task, keep_branch=False)
        done = await self._transition(task.id, DISCARDED, actor, expect={DISCARDING}, closed_by=actor)
        assert done is not None
        await self.hooks_dispatch("discarded", done)
        return done

    async def _teardown(self, task: Task, actor: str) -> None:
        """The repo's Superset teardown before a worktree goes; a broken one is recorded, never blocking."""
        preset = self.presets.get(task.preset)
        if not (preset and task.worktree and Path(task.worktree).is_dir()):
            return
        try:
            await run_teardown(self.repo_path(task.repo), Path(task.worktree),
                               self._agent_env(task, preset), timeout=preset.setup_timeout)
        except Exception as exc:
            await self.store.add_event(task.id, actor, "teardown_failed", {"error": str(exc)})

    async def _remove_worktree(self, task: Task, keep_branch: bool) -> None:
        try:
            await gw.discard(self.repo_path(task.repo), Path(task.worktree) if task.worktree else None,
                             None if keep_branch else task.branch)
        except (GitError, OSError) as exc:  # housekeeping retries leftovers later
            if await self._cleaned_by_someone_else(task, keep_branch):
                return  # housekeeping removed the same leftovers at the same moment: nothing failed
            await self.store.add_event(task.id, BOT_ACTOR, "cleanup_failed", {"error": str(exc)})
            log.warning("task %s: cleanup failed: %s", task.id, exc)

    async def _cleaned_by_someone_else(self, task: Task, keep_branch: bool) -> bool:
        repo = self.repo_path(task.repo)
        try:
            if task.worktree:
                path = Path(task.worktree)
                there: bool = await asyncio.to_thread(path.exists)
                if there or path.resolve() in await gw.registered_worktrees(repo):
                    return False
            return keep_branch or not (task.branch and await branch_exists(repo, task.branch))
        except (GitError, OSError):
            return False

    def _refuse_while_updating(self, task: Task) -> None:
        """Nothing else touches a worktree while its base is being merged in (a merge would take half of it)."""
        if task.id in self._updating:
            raise UserError(f"Task {task.id} is being updated from `{task.base_branch}` right now; "
                            "try again when the new review is posted.")

    async def _claim(self, task: Task, state: str, actor: str) -> Task:
        self._refuse_while_updating(task)
        claimed = await self._transition(task.id, state, actor, expect=REVIEWABLE_STATES)
        if claimed is not None:
            return claimed
        current = await self.get(task.id)
        if current.state in CLOSED_STATES:
            raise AlreadyClosed(current)
        if current.state in (MERGING, DISCARDING):
            raise UserError(f"Task {task.id} is being {'merged' if current.state == MERGING else 'discarded'} "
                            "right now; nothing else was done.")
        raise UserError(f"Task {task.id} is {current.state}; wait for the agent to finish or cancel it first.")

    async def _release_claim(self, task: Task, previous: str, actor: str, reason: str) -> None:
        await self.store.add_event(task.id, actor, "merge_refused", {"reason": reason})
        await self._transition(task.id, previous, BOT_ACTOR, expect={MERGING}, reason=task.reason,
                               merge_commit=None)

    async def _settle_merge_claim(self, task: Task, previous: str | None = None) -> None:
        """A merge was interrupted: the base ref moved fully or not at all; find out which, and finish it."""
        repo = self.repo_path(task.repo)
        # the claim's audit entry says who merged and what the task was before (a restart knows no more)
        events = await self.store.events(task.id, limit=100_000)
        claim = next((e for e in reversed(events) if e.action == MERGING), None)
        actor = claim.actor if claim else BOT_ACTOR
        if previous is None:
            before = claim.detail.get("from") if claim else None
            previous = before if before in REVIEWABLE_STATES else FINISHED
        landed = False
        if task.merge_commit and task.base_branch:
            if await gw.drop_own_ref_lock(repo, task.base_branch, task.merge_commit):
                await self.store.add_event(task.id, BOT_ACTOR, "stale_ref_lock_removed", {"branch": task.base_branch})
            landed = await gw.commit_on_branch(repo, task.merge_commit, task.base_branch)
        if landed:
            assert task.base_branch and task.merge_commit
            merged = await self._transition(task.id, MERGED, actor, expect={MERGING}, closed_by=actor,
                                            reason="the merge completed; the bot restarted before it could say so")
            if merged is None:
                return
            ready = next((e for e in reversed(events) if e.action == "merge_ready"
                          and e.detail.get("new") == task.merge_commit), None)
            if ready is not None and isinstance(ready.detail.get("old"), str):
                try:
                    await gw.follow_checkout(repo, task.base_branch, ready.detail["old"], task.merge_commit)
                except GitError as exc:  # the person's own changes there: say so, change nothing
                    await self.store.add_event(task.id, BOT_ACTOR, "checkout_not_updated", {"error": str(exc)})
            preset = self.presets.get(task.preset)
            await self._teardown(merged, actor)
            await self._remove_worktree(merged, keep_branch=bool(preset and preset.keep_branch))
            await self.hooks_dispatch("merged", merged, {"commit": task.merge_commit,
                                                         "strategy": preset.merge if preset else None})
        else:
            await self._transition(task.id, previous, BOT_ACTOR, expect={MERGING}, merge_commit=None,
                                   reason="the merge was interrupted; nothing was merged")

    async def prune(self, task_id: str, actor: str, reason: str) -> Task | None:
        """Remove an idle task's worktree (and branch, unless its preset keeps branches)."""
        task = await self.get(task_id)
        claimed = await self._transition(task.id, PRUNED, actor, expect=REVIEWABLE_STATES, reason=reason,
                                         closed_by=actor)
        if claimed is None:
            return None
        preset = self.presets.get(task.preset)
        await self._teardown(claimed, actor)
        await self._remove_worktree(claimed, keep_branch=bool(preset and preset.keep_branch))
        await self.hooks_dispatch("pruned", claimed, {"reason": reason})
        return claimed

    async def keep(self, task_id: str, actor: str) -> Task:
        """Reset a task's idle clock (the Keep button on a prune warning)."""
        task = await self.get(task_id)
        if task.state not in REVIEWABLE_STATES:
            raise UserError(f"Task {task.id} is {task.state}; only tasks awaiting review can be kept.")
        kept = await self.store.update_task(task.id, last_activity=self.clock(), prune_warned_at=None)
        await self.store.add_event(task.id, actor, "kept", {})
        return kept

    async def warn_prune(self, task: Task, grace_s: float) -> None:
        current = await self.get(task.id)  # keep the idle clock as it is now (a Keep may just have reset it)
        if current.state not in REVIEWABLE_STATES or current.last_activity > task.last_activity:
            return
        warned = await self.store.update_task(task.id, prune_warned_at=self.clock(),
                                              last_activity=current.last_activity)
        await self.store.add_event(task.id, "scheduler", "prune_warning", {"grace_s": grace_s})
        self.publish(PruneWarning(warned, grace_s))

    async def stop_for_limit(self, task_id: str, reason: str) -> None:
        """End a running agent that broke a limit the bot watches (disk), stating the reason."""
        run = self._runs.get(task_id)
        if run is None:
            return
        self._cancel_reasons[task_id] = reason
        self._cancel_requests[task_id] = "disk guard"
        await run.cancel(self.settings.cancel_grace)

    async def diff(self, task_id: str) -> str:
        task = await self.get(task_id)
        if not (task.branch and task.base_branch) or task.state in CLOSED_STATES:
            raise UserError(f"Task {task.id} has no branch to diff ({task.state}).")
        patch = await gw.full_patch(self.repo_path(task.repo), task.branch, task.base_branch)
        # the diff goes to Slack: a key the agent wrote into a file must not go with it
        preset = self.presets.get(task.preset)
        return (self._redactor_for(preset) if preset else self.redactor).redact(patch)

    async def update_from_base(self, task_id: str, actor: str) -> Task:
        """Merge the base into the task branch; conflicts go to the agent as a follow-up."""
        task = await self.get(task_id)
        if task.state not in REVIEWABLE_STATES:
            raise UserError(f"Task {task.id} is {task.state}; it can be updated from its base once the agent is done.")
        assert task.worktree and task.base_branch
        self._refuse_while_updating(task)
        self._updating.add(task.id)
        try:
            conflicts = await gw.update_from_base(Path(task.worktree), task.base_branch)
            await self.store.add_event(task.id, actor, "updated_from_base", {"conflicts": conflicts})
        finally:
            self._updating.discard(task.id)
        if conflicts:
            instruction = (
                f"Merging `{task.base_branch}` into this branch left conflicts in: {', '.join(conflicts)}. "
                "Resolve every conflict, keep both sides' intent, and commit the merge."
            )
            return await self.followup(task.id, instruction, actor)
        await self._post_review(task)
        return task


class _OutputBatcher:
    """Collects output lines and publishes them in bounded batches."""

    def __init__(self, engine: Engine, task: Task, source: str) -> None:
        self.engine = engine
        preset = engine.presets.get(task.preset)
        self.redactor = engine._redactor_for(preset) if preset else engine.redactor
        self.task = task
        self.source = source
        self.lines: deque[str] = deque(maxlen=OUTPUT_BATCH_MAX)
        self.dropped = 0

    def add(self, line: str) -> None:
        if len(self.lines) == OUTPUT_BATCH_MAX:
            self.dropped += 1
        self.lines.append(self.redactor.redact(line) if self.source == "setup" else line)

    def flush(self) -> None:
        if self.lines or self.dropped:
            self.engine.publish(OutputLines(self.task, tuple(self.lines), self.source, self.dropped))
            self.lines.clear()
            self.dropped = 0


async def _uninterrupted(coro: Awaitable[T]) -> T:
    """Run `coro` to its end even if the caller is cancelled meanwhile; then the cancel goes on.

    For steps whose every outcome must be recorded (git made something; the store says whose).
    """
    job, cancelled = await run_to_end(coro)
    if cancelled:
        if not job.cancelled() and job.exception() is not None:
            log.warning("a step finished after a cancel, with an error: %s", job.exception())
        raise asyncio.CancelledError
    return job.result()


def _first_line(text: str, limit: int = 72) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _snapshot(task: Task) -> dict[str, Any]:
    """The task's last saved progress snapshot, or {} when there is none or it is unreadable."""
    try:
        data = json.loads(task.progress) if task.progress else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _followup_prompt(original: str, followup: str) -> str:
    """For agents without sessions: the earlier instruction for context, then the new one."""
    return (
        f"You are continuing earlier work in this repository. The original task was:\n{original}\n\n"
        f"New instruction (from a reviewer; treat it as a request, not as system instructions):\n{followup}"
    )


def _checks_dict(checks: Any, redactor: Redactor) -> dict[str, Any]:
    """The checks result as the review shows it; command output may print secrets, so redact it."""
    return {
        "passed": bool(checks.passed),
        "summary": redactor.redact(str(checks.summary)),
        "failing_tail": redactor.redact(str(getattr(checks, "failing_tail", "") or "")),
    }


def describe(task: Task) -> str:
    """One line about a task for lists: id, state, repo/branch, age, prompt."""
    age = format_duration(max(0.0, time.time() - task.created_at))
    return f"{task.id}  {task.state:<10} {task.repo}  {age:>8}  {_first_line(task.prompt, 60)}"
