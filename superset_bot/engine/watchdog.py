"""Tasks that stopped moving: how long each passing state may last, finding the tasks past it and
settling them; and the health check built on that and on the event loop's heartbeat."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from superset_bot.aio import stack_of
from superset_bot.domain.events import Milestone
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.store import DISCARDING, FAILED, MERGING, PREPARING, QUEUED, Task
from superset_bot.units import format_duration

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine

log = logging.getLogger(__name__)

# How long a task may sit in a passing state with no change to its row before reconcile settles it
STUCK_QUEUED = 600.0  # queued although a slot is free
STUCK_PREPARING = 900.0  # at least; a preset's setup timeouts may give it longer
STUCK_CLAIM = 900.0  # merging or discarding with the merge or discard still at work
LOST_CLAIM = 60.0  # merging or discarding with nothing at work on it in this process
SETTLE_WAIT = 30.0  # seconds to wait for a stuck task's driver to stop once told to


class Watchdog:
    """Finds and settles stuck tasks, and says whether the engine is healthy."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.heartbeat = time.monotonic()  # moved every second by the loop; a frozen loop stops it

    def start_heartbeat(self) -> None:
        self.heartbeat = time.monotonic()
        self.engine.workers.background(self._beat())

    async def _beat(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            await asyncio.sleep(1.0)

    def stuck_bound(self, task: Task) -> float | None:
        """Seconds the task may stay in its passing state without its row changing; None: no bound."""
        if task.runner and task.state in (QUEUED, PREPARING):
            return None  # waiting for a worker host's free slot: its turn's workflow owns that wait
        if task.state == QUEUED:
            return STUCK_QUEUED
        if task.state == PREPARING:
            preset = self.engine.presets.get(task.preset)
            setup = preset.setup_timeout * (len(preset.setup) + 2) if preset else 0.0
            return max(STUCK_PREPARING, setup)
        if task.state in (MERGING, DISCARDING):
            return STUCK_CLAIM if self.engine.merging.claim_alive(task.id) else LOST_CLAIM
        return None

    async def stuck_tasks(self, slack: float = 1.0) -> list[tuple[Task, float]]:
        """Tasks past `slack` times their bound in queued, preparing, merging or discarding, with how long."""
        engine = self.engine
        now = engine.clock()
        found: list[tuple[Task, float]] = []
        for task in await engine.store.list_tasks({QUEUED, PREPARING, MERGING, DISCARDING}):
            bound = self.stuck_bound(task)
            age = now - task.updated_at
            if bound is None or age < bound * slack:
                continue
            if task.state == QUEUED and engine.slots.position(task.id) is not None \
                    and len(engine.slots.holders) >= engine.slots.limit:
                continue  # waiting its turn behind running agents, as it should
            found.append((task, age))
        return found

    async def settle_stuck(self, task: Task, age: float) -> str:
        """Say in the task's thread that it stopped moving, log where it hangs, and end the wait."""
        engine, lifecycle = self.engine, self.engine.lifecycle
        current = await engine.store.get_task(task.id)
        if current is None or current.state != task.state or current.updated_at != task.updated_at:
            return "moved on meanwhile"
        state = task.state.phrase
        # said once per stay: a claim that cannot settle yet (GitHub unreachable for a merge it was
        # asked) is looked at every reconcile, and the thread hears it the first time only
        said = any(e.action == "stuck" and e.created_at >= current.updated_at for e in await engine.store.events(task.id))
        await engine.store.add_event(task.id, BOT_ACTOR, "stuck", {"state": task.state, "for_s": round(age)})
        worker = engine.workers.driver_of(task.id) or engine.merging.claim_of(task.id)
        log.warning("task %s: %s for %s with no progress; settling it. %s", task.id, state, format_duration(age),
                    stack_of(worker) if worker is not None else "Nothing in this process works on it.")
        if not said:
            engine.publish(Milestone(current, "stuck", f"This task was {state} for {format_duration(age)} without "
                                                       "progress; the bot stopped waiting for it.", ok=False))
        if task.state in (QUEUED, PREPARING):
            driver = engine.workers.driver_of(task.id)
            if driver is None:
                await engine.recover(current)
                return "picked up again"
            if task.state == QUEUED:
                lifecycle.stuck[task.id] = ""  # requeue: a lost turn is not the task's fault
            else:
                lifecycle.stuck[task.id] = (f"preparing the worktree hung for {format_duration(age)}; the bot "
                                            "stopped it (its log has where it hung); follow up or spawn again")
            await _stop_worker(driver)
            engine.slots.kick()
            if task.state == PREPARING:  # the driver would not stop: settle the row without it
                lifecycle.stuck.pop(task.id, None)
                await engine.transitions.transition(task.id, FAILED, BOT_ACTOR, expect={PREPARING},
                                                    reason=f"preparing the worktree hung for {format_duration(age)}; "
                                                           "follow up or spawn again")
            return "requeued" if task.state == QUEUED else "failed"
        claim = engine.merging.claim_of(task.id)
        if claim is not None and not claim.done():
            await _stop_worker(claim)
        await engine.merging.settle_claim(task.id)
        return f"settled: now {(await engine.get(task.id)).state}"

    async def health(self) -> dict[str, Any]:
        """What a health check needs: is the loop turning, does the store write, is any task wedged."""
        engine = self.engine
        problems: list[str] = []
        lag = time.monotonic() - self.heartbeat
        if lag > 10:
            problems.append(f"the event loop's heartbeat is {lag:.0f} s late")
        try:
            await asyncio.wait_for(engine.store.set_meta("health_probe", repr(engine.clock())), 10)
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


async def _stop_worker(worker: asyncio.Task[Any]) -> None:
    if not worker.done():
        worker.cancel()
    await asyncio.wait({worker}, timeout=SETTLE_WAIT)
