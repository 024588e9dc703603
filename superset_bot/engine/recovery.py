"""Picking tasks up that no driver follows (after a restart, or found by reconcile): re-attach their
agents, queue them again, settle their claims, or fail them and clean up what was never recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from superset_bot.agents.runner import AgentRun, RunnerError
from superset_bot.engine.errors import UserError
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.git import inventory as gitinventory
from superset_bot.git import naming as gitnaming
from superset_bot.git import worktrees as gitworktrees
from superset_bot.git.commands import GitError
from superset_bot.git.refs import branch_exists
from superset_bot.store import ACTIVE_STATES, DISCARDING, FAILED, MERGING, PREPARING, QUEUED, RUNNING, Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)

RESTARTED_WHILE = "the bot restarted while"  # how the reason of a task failed by a restart begins
UNRECORDED_AGENT_WAIT = 10.0  # seconds an agent's supervisor may take to write its pid file


class Recovery:
    """Brings each unfollowed task back under a driver, or to a state that says why it could not be."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def recover_all(self) -> None:
        """Pick up where the last process stopped: re-attach agents, re-queue, settle claims."""
        engine = self.engine
        for task in await engine.store.list_tasks(ACTIVE_STATES | {MERGING, DISCARDING}):
            try:
                await self._recover(task)
            except Exception as exc:  # one broken task must not stop the bot from starting
                log.exception("task %s: could not be recovered", task.id)
                if task.state in (MERGING, DISCARDING):
                    continue  # git decides how a claim ends, not this error: reconcile settles it later
                await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={task.state},
                                                    reason=f"could not be recovered after a restart: {exc}")

    async def recover(self, task: Task) -> None:
        """Pick up a task nobody drives (reconcile): re-attach, re-queue or settle it."""
        current = await self.engine.store.get_task(task.id)
        if current is not None and current.state == task.state and not self.engine.is_driven(task.id):
            await self._recover(current)

    async def _recover(self, task: Task) -> None:
        engine = self.engine
        if task.runner and task.state in (QUEUED, PREPARING, RUNNING):
            engine.workers.drive(task.id, engine.lifecycle.drive(task.id))  # its turn's workflow knows the rest
        elif task.state == RUNNING and task.run_dir:
            run = AgentRun.attach(Path(task.run_dir), redactor=engine.env.redactor)
            engine.slots.take(task.id)
            engine.lifecycle.runs[task.id] = run  # cancel works at once, before the driver has started
            await engine.store.add_event(task.id, BOT_ACTOR, "reattached", {"pid": run.pid, "log_pos": task.log_pos})
            engine.workers.drive(task.id, self._resume(task, run))
        elif task.state == RUNNING or task.state == PREPARING:
            what = "preparing the worktree" if task.state == PREPARING else "starting the agent"
            await self._clean_unrecorded(task)
            await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={task.state},
                                                reason=f"{RESTARTED_WHILE} {what}; spawn the task again")
        elif task.state == QUEUED:
            engine.workers.drive(task.id, engine.lifecycle.drive(task.id))
        elif task.state == MERGING:
            await engine.merging.settle_merge_claim(task)
        elif task.state == DISCARDING:
            await engine.merging.finish_discard(task, task.closed_by or BOT_ACTOR)

    async def _resume(self, task: Task, run: AgentRun) -> None:
        """Follow a re-attached agent; if that breaks, stop the agent and say why instead of hanging."""
        engine = self.engine
        try:
            await engine.lifecycle.follow_and_finish(task, run, resumed=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("task %s: could not follow the re-attached agent", task.id)
            with contextlib.suppress(Exception):
                await run.cancel(engine.settings.cancel_grace)
            await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={RUNNING},
                                                reason=f"could not follow the agent after a restart: {exc}")

    async def _clean_unrecorded(self, task: Task) -> None:
        """The last process died between making something and storing it: an agent, a worktree.

        Housekeeping spares whatever carries a known task id, so recovery has to clean it up.
        """
        engine = self.engine
        await self.stop_unrecorded_agent(task)
        if task.worktree is not None:
            return
        # killed inside create_worktree or a take from the warm pool: the worktree is at
        # worktrees/<repo>/<id> or wherever the task's branch is checked out
        try:
            repo = engine.repo_path(task.repo)
            branch = gitnaming.branch_name(task.id, task.prompt)
            path = engine.settings.worktrees_dir / task.repo / task.id
            paths = {path} if await asyncio.to_thread(path.is_dir) else set()
            paths.update(await gitinventory.worktrees_on_branch(repo, branch))
            for found in paths:
                await gitworktrees.discard(repo, found, None)
            if await branch_exists(repo, branch):
                await gitworktrees.discard(repo, None, branch)
        except (GitError, OSError, UserError) as exc:
            await engine.store.add_event(task.id, BOT_ACTOR, "cleanup_failed", {"error": str(exc)})

    async def stop_unrecorded_agent(self, task: Task) -> None:
        """An agent started but RUNNING was never stored (a cancel or a kill came in between): stop it."""
        engine = self.engine
        run_dir = engine.settings.runs_dir / task.id / str(task.runs + 1)
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
                await AgentRun.attach(run_dir, redactor=engine.env.redactor).cancel(engine.settings.cancel_grace)
                await engine.store.add_event(task.id, BOT_ACTOR, "unrecorded_agent_stopped",
                                             {"run_dir": str(run_dir)})
            except (RunnerError, OSError) as exc:
                await engine.store.add_event(task.id, BOT_ACTOR, "cleanup_failed", {"error": str(exc)})
