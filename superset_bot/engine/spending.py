"""What agents cost, and the daily budgets: each run's usage goes into the ledger (an audit event) when
it ends; a spawn that would start past a person's or a repo's budget for the day is refused with
the figures, and a running task that takes its requester past the budget is warned about once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from superset_bot.domain.events import Milestone
from superset_bot.domain.prices import estimate_label
from superset_bot.domain.spend import USAGE, Spend, day_start, sum_by, usage_detail
from superset_bot.engine.errors import UserError
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.store import RUNNING, Task

if TYPE_CHECKING:
    from superset_bot.agents.formats import Progress
    from superset_bot.engine.core import Engine


class Spending:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._warned: set[tuple[str, float]] = set()  # (requester, day) told once
        self._seen: dict[str, float] = {}  # task id -> the live cost last looked at

    async def record(self, task: Task, run: int, progress: Progress) -> None:
        """A run ended: its usage into the ledger, once (a restart that finishes the run again adds nothing)."""
        if progress.cost_usd is None and not (progress.tokens_in or progress.tokens_out):
            return
        if await self._recorded(task.id, run):
            return
        # a Codex run's cost is an estimate from its model's list price: the ledger says so, and the
        # budgets count it all the same (a budget that left Codex's spend out would let it run unchecked)
        await self.engine.store.add_event(task.id, BOT_ACTOR, USAGE, usage_detail(
            run, progress.cost_usd, progress.tokens_in, progress.tokens_out, progress.cost_estimated_from))

    async def _recorded(self, task_id: str, run: int) -> bool:
        return any(e.action == USAGE and e.detail.get("run") == run
                   for e in await self.engine.store.events(task_id, limit=100_000))

    def today_starts(self) -> float:
        return day_start(self.engine.clock(), self.engine.settings.timezone)

    async def today(self, by: str, who: str, *, besides: Task | None = None, live: float = 0.0) -> Spend:
        """`who`'s spend today (a requester or a repo, as `by` says): the runs that ended, and what the
        running ones cost so far (`besides` at `live` dollars instead of its last saved figure)."""
        engine = self.engine
        usages = await engine.store.usage_since(self.today_starts())
        spent = sum_by(usages, by).get(who, Spend())
        recorded = {(u.task_id, u.run) for u in usages}
        for task in await engine.store.list_tasks({RUNNING}):
            if getattr(task, by) != who or (task.id, task.runs) in recorded:
                continue  # not theirs, or its run ended and is in the ledger already
            # reported or estimated (Codex) alike: a budget that skipped estimates would never stop Codex
            snapshot = task.progress_snapshot()
            cost = live if besides is not None and task.id == besides.id else snapshot.cost_usd
            if cost:
                spent = spent.plus(Spend(cost_usd=cost, runs=1, estimated=1 if snapshot.cost_estimated_from else 0))
        return spent

    async def check_spawn(self, requester: str | None, repo: str, *, what: str = "No new task") -> None:
        """Refuse a new run (a task, a follow-up) past a daily budget, saying how much was spent and which
        setting says so."""
        settings = self.engine.settings
        checks = [("repo", repo, settings.budget_per_repo, "SUPERSET_DAILY_BUDGET_PER_REPO", f"repo {repo}")]
        if requester:
            checks.insert(0, ("requester", requester, settings.budget_per_user, "SUPERSET_DAILY_BUDGET_PER_USER",
                              requester))
        for by, who, budget, setting, named in checks:
            if budget is None:
                continue
            spent = await self.today(by, who)
            if spent.cost_usd >= budget:
                raise UserError(
                    f"{what}: {named} has spent {spent.text()} today, past the daily budget of "
                    f"${budget:,.2f} ({setting}). It starts again at midnight ({settings.timezone}), or an "
                    "admin raises the budget.")

    async def watch(self, task: Task, live_cost: float | None) -> None:
        """A running task's cost grew: when it takes its requester past the daily budget, the thread
        is told once a day (the agent keeps running: stopping it is a person's call)."""
        budget = self.engine.settings.budget_per_user
        if budget is None or not live_cost or not task.requester:
            return
        key = (task.requester, self.today_starts())
        if key in self._warned or self._seen.get(task.id) == live_cost:
            return
        self._seen[task.id] = live_cost
        spent = await self.today("requester", task.requester, besides=task, live=live_cost)
        if spent.cost_usd < budget:
            return
        self._warned.add(key)
        await self.engine.store.add_event(task.id, BOT_ACTOR, "budget_passed",
                                          {"requester": task.requester, "spent": spent.cost_usd, "budget": budget})
        model = task.progress_snapshot().cost_estimated_from
        mine = f"${live_cost:,.2f}" + (f" ({estimate_label(model)})" if model else "")
        self.engine.publish(Milestone(task, "budget", f"Today's spend of {task.requester} passed the daily budget "
                                                      f"of ${budget:,.2f}: {spent.text()}, with this task's "
                                                      f"{mine} so far. The agent keeps running; cancel "
                                                      "it if it should stop.", ok=False))
