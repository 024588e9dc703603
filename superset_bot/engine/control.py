"""What is done to a task's run from outside it: a cancel, a stop for a limit the bot watches, a follow-up."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from superset_bot.agents.runner import AgentRun
from superset_bot.domain.events import Milestone
from superset_bot.engine.errors import UserError
from superset_bot.engine.preflight import MAX_PROMPT_CHARS, check_free_disk
from superset_bot.store import (
    ACTIVE_STATES,
    CANCELLED,
    CLOSED_STATES,
    QUEUED,
    REVIEWABLE_STATES,
    RUNNING,
    Task,
)

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine


class RunControl:
    """Stops a task's agent or driver on request, or queues another run of its agent."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def cancel(self, task_id: str, actor: str) -> Task:
        engine = self.engine
        task = await engine.get(task_id)
        if task.state not in ACTIVE_STATES:
            raise UserError(f"Task {task.id} is {task.state}, not running or queued; there is nothing to cancel.")
        return await engine.runner_for(task).cancel(task, actor)

    async def cancel_here(self, task: Task, actor: str) -> Task:
        """The local runner's cancel: the agent's process group, or the driver before it started."""
        engine, lifecycle = self.engine, self.engine.lifecycle
        lifecycle.cancel_requests[task.id] = actor
        run = lifecycle.runs.get(task.id)
        if run is None and task.state == RUNNING and task.run_dir and not engine.is_driven(task.id):
            run = AgentRun.attach(Path(task.run_dir), redactor=engine.env.redactor)  # nobody follows it: stop it
            info = await run.cancel(engine.settings.cancel_grace)
            await engine.transitions.transition(task.id, CANCELLED, actor, expect={RUNNING},
                                                reason=f"cancelled by {actor}",
                                                exit_code=info.code, pid=None, finished_at=engine.clock())
            return await engine.get(task.id)
        if task.state == RUNNING and run is not None:
            await run.cancel(engine.settings.cancel_grace)
            return await engine.wait_for(task.id, REVIEWABLE_STATES | CLOSED_STATES, timeout=60)
        driver = engine.workers.driver_of(task.id)
        if driver is not None:
            if not driver.cancelling():  # a second click must not interrupt the first one's settling
                driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(driver, return_exceptions=True)
        else:
            await lifecycle.cancelled_before_agent(task.id)
        return await engine.get(task.id)

    async def stop_for_limit(self, task_id: str, reason: str) -> None:
        """End a running agent that broke a limit the bot watches (disk), stating the reason."""
        lifecycle = self.engine.lifecycle
        run = lifecycle.runs.get(task_id)
        if run is None:
            return
        lifecycle.stop_reasons[task_id] = reason
        lifecycle.cancel_requests[task_id] = "disk guard"
        await run.cancel(self.engine.settings.cancel_grace)

    async def followup(self, task_id: str, text: str, actor: str) -> Task:
        """Send more instructions to a task's agent, in the same worktree (and session if supported)."""
        engine = self.engine
        text = (text or "").strip()
        if not text:
            raise UserError("The follow-up is empty: say what the agent should do next.")
        if len(text) > MAX_PROMPT_CHARS:
            raise UserError(f"The follow-up is {len(text):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
        task = await engine.get(task_id)
        if task.state not in ACTIVE_STATES:  # a follow-up starts the agent again: it spends too
            await engine.spending.check_spawn(task.requester, task.repo, what="No follow-up")
        if task.state in ACTIVE_STATES:
            raise UserError(f"Task {task.id} is still {task.state}; send the follow-up when the agent has finished.")
        if task.state not in REVIEWABLE_STATES:
            raise UserError(f"Task {task.id} is {task.state}; follow-ups go to tasks awaiting review.")
        gone = await engine.runner_for(task).worktree_gone(task)
        if gone:
            raise UserError(gone)
        engine.merging.refuse_while_updating(task)
        check_free_disk(engine.settings)
        moved = await engine.transitions.transition(task.id, QUEUED, actor, expect=REVIEWABLE_STATES,
                                                    detail={"followup": text[:500]}, pending_prompt=text)
        if moved is None:
            raise UserError(f"Task {task.id} changed state meanwhile; look at its status and try again.")
        engine.publish(Milestone(moved, "followup", f"Follow-up from {actor}: {text[:300]}"))
        engine.workers.drive(task.id, engine.lifecycle.drive(task.id, followup=text))
        return moved
