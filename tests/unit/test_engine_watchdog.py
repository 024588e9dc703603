"""Tasks that stopped moving: how long each passing state may last, and which tasks are past it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from superset_bot.engine.slots import Slots
from superset_bot.engine.watchdog import LOST_CLAIM, STUCK_CLAIM, STUCK_PREPARING, STUCK_QUEUED, Watchdog
from superset_bot.presets import parse_preset
from superset_bot.store import DISCARDING, MERGING, PREPARING, QUEUED, RUNNING, Task

NOW = 1_000_000.0


class FakeStore:
    def __init__(self, *tasks: Task) -> None:
        self.tasks = list(tasks)

    async def list_tasks(self, states: Iterable[str]) -> list[Task]:
        wanted = set(states)
        return [t for t in self.tasks if t.state in wanted]


def watchdog(*tasks: Task, live_claims: Iterable[str] = (), slots: Slots | None = None) -> Watchdog:
    """A watchdog over a stand-in engine with just what the bounds and the search look at."""
    slow = parse_preset("slow", {"agent": {"command": ["agent", "{prompt}"]}, "setup": ["a", "b", "c"],
                                 "setup_timeout": "10m"})
    claims = set(live_claims)
    engine: Any = SimpleNamespace(
        presets={"slow": slow, "quick": parse_preset("quick", {"agent": {"command": ["agent", "{prompt}"]},
                                                               "setup_timeout": "5m"})},
        merging=SimpleNamespace(claim_alive=lambda task_id: task_id in claims),
        store=FakeStore(*tasks),
        clock=lambda: NOW,
        slots=slots or Slots(4, lambda waiting: None),
    )
    return Watchdog(engine)


def task(task_id: str, state: str, age: float, preset: str = "quick") -> Task:
    return Task(id=task_id, repo="demo", prompt="p", preset=preset, state=state, updated_at=NOW - age)


def test_each_passing_state_has_its_bound() -> None:
    dog = watchdog(live_claims={"m1"})
    assert dog.stuck_bound(task("q", QUEUED, 0)) == STUCK_QUEUED
    assert dog.stuck_bound(task("p", PREPARING, 0)) == STUCK_PREPARING  # 2 x 5 min of setup is less
    assert dog.stuck_bound(task("p", PREPARING, 0, preset="slow")) == 600 * (3 + 2)  # its setup may take that long
    assert dog.stuck_bound(task("p", PREPARING, 0, preset="gone")) == STUCK_PREPARING
    assert dog.stuck_bound(task("m1", MERGING, 0)) == STUCK_CLAIM  # the merge is still at work
    assert dog.stuck_bound(task("m2", DISCARDING, 0)) == LOST_CLAIM  # nothing works on it
    assert dog.stuck_bound(task("r", RUNNING, 0)) is None  # an agent's own limits bound a run


async def test_stuck_tasks_are_those_past_their_bound_times_the_slack() -> None:
    tasks = [task("q-old", QUEUED, STUCK_QUEUED + 1), task("q-new", QUEUED, STUCK_QUEUED - 1),
             task("m-lost", MERGING, LOST_CLAIM * 3), task("r", RUNNING, 10_000)]
    dog = watchdog(*tasks)
    assert [(t.id, age) for t, age in await dog.stuck_tasks()] == [("q-old", STUCK_QUEUED + 1),
                                                                   ("m-lost", LOST_CLAIM * 3)]
    assert [t.id for t, _ in await dog.stuck_tasks(slack=2.0)] == ["m-lost"]


async def test_a_task_queued_behind_running_agents_is_not_stuck() -> None:
    slots = Slots(1, lambda waiting: None)
    slots.take("busy")
    waiting = asyncio.create_task(slots.acquire("q-waits"))
    await asyncio.sleep(0)
    old = STUCK_QUEUED * 2
    dog = watchdog(task("q-waits", QUEUED, old), task("q-lost", QUEUED, old), slots=slots)
    assert [t.id for t, _ in await dog.stuck_tasks()] == ["q-lost"]  # not in the queue: its turn was lost
    slots.limit = 2  # a free slot, yet still waiting: stuck
    assert [t.id for t, _ in await dog.stuck_tasks()] == ["q-waits", "q-lost"]
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
