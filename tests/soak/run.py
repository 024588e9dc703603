"""The soak (`make soak`): N tasks with random fates (`Plan`s), driven through signed Slack requests
while the fake answers a fraction of Web API calls with 429 or 500, then the invariants checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from soak.bot import (
    CHANNELS,
    USERS,
    LogWatch,
    SoakBot,
    Stuck,
    current_task,
    slack_ids,
    start_bot,
    wait_review,
)
from soak.checks import check_git, check_slack, check_threads, eventually, pooled, worktrees
from soak.races import RacePlan, check_races, drive_race, make_race_plans
from soak.report import Report
from soak.workdir import git
from superset_bot.frontends.slack.blocks import ACTION_CANCEL, ACTION_DISCARD, ACTION_MERGE
from superset_bot.store import (
    CANCELLED,
    DISCARDED,
    FAILED,
    FINISHED,
    MERGED,
    MERGING,
    REVIEWABLE_STATES,
    RUNNING,
    Task,
)

FINAL_STATES = frozenset({MERGED, DISCARDED, CANCELLED, FAILED, FINISHED})

log = logging.getLogger("soak")


PLANS: dict[str, int] = {"merge": 30, "discard": 12, "discard_running": 6, "cancel_running": 12,
                         "cancel_queued": 6, "fail": 10, "noop_merge": 5, "conflict": 7, "leave": 12}


@dataclass
class Plan:
    key: str
    kind: str
    mode: str
    channel: str
    user: str
    double: bool  # click twice at once
    followup: bool
    then_discard: bool
    pause: float
    task_id: str | None = None
    expected: frozenset[str] = frozenset()
    edit_runs: int = 0  # runs that appended a line to soak/KEY.txt

    def describe(self) -> str:
        extras = [x for x, on in (("double-click", self.double), ("follow-up", self.followup),
                                  ("then discard", self.then_discard)) if on]
        return f"{self.kind}{' + ' + ', '.join(extras) if extras else ''}"


def make_plans(n: int, seed: int) -> list[Plan]:
    plans = []
    for i in range(n):
        rng = random.Random(f"{seed}-{i}")  # each task's fate depends only on (seed, i), not on timing
        kind = rng.choices(list(PLANS), weights=list(PLANS.values()))[0]
        mode = {"discard_running": "slow", "cancel_running": "slow", "cancel_queued": "slow", "fail": "fail",
                "noop_merge": "noop", "conflict": "conflict"}.get(kind, "edit")
        plans.append(Plan(key=f"t{i:03d}", kind=kind, mode=mode, channel=CHANNELS[i % len(CHANNELS)],
                          user=USERS[rng.randrange(len(USERS))], double=rng.random() < 0.3,
                          followup=rng.random() < 0.3, then_discard=rng.random() < 0.5, pause=rng.random() * 0.5))
    return plans


async def _click(sb: SoakBot, plan: Plan, report: Report, action: str, message_ts: str | None) -> list[str]:
    assert plan.task_id
    times = 2 if plan.double else 1
    report.actions[action.removeprefix("task_") + (" x2" if plan.double else "")] += 1
    return list(await asyncio.gather(*(sb.click(action, plan.task_id, user=plan.user, channel=plan.channel,
                                                  message_ts=message_ts or "1.0") for _ in range(times))))



async def drive(sb: SoakBot, plan: Plan, report: Report, timeout: float, eager: bool = False) -> None:
    """One task's life: spawned by a slash command, then what its plan says, waiting on real states."""
    tracker = sb.tracker
    await sb.command(f"spawn [soak {plan.key} {plan.mode}] soak task {plan.key}", user=plan.user,
                     channel=plan.channel)
    report.actions["spawn"] += 1
    plan.task_id = task_id = await tracker.wait(lambda: tracker.by_key.get(plan.key), timeout,
                                                f"{plan.key}: the spawn never created a task")
    kind = plan.kind
    if kind == "cancel_queued":
        await asyncio.sleep(plan.pause)
        await _click(sb, plan, report, ACTION_CANCEL, None)
        await tracker.wait_state(task_id, REVIEWABLE_STATES, timeout)
        plan.expected = frozenset({CANCELLED})
        if plan.then_discard:
            await _click(sb, plan, report, ACTION_DISCARD, None)
            await tracker.wait_state(task_id, {DISCARDED}, timeout)
            plan.expected = frozenset({DISCARDED})
        return
    if kind in ("cancel_running", "discard_running"):
        await tracker.wait_state(task_id, {RUNNING}, timeout)
        await asyncio.sleep(plan.pause)
        card_ts = slack_ids(sb, await current_task(sb, task_id)).thread_ts  # the root is the live card
        if kind == "discard_running":
            await _click(sb, plan, report, ACTION_DISCARD, card_ts)
            await tracker.wait_state(task_id, {DISCARDED}, timeout)
            plan.expected = frozenset({DISCARDED})
            return
        await _click(sb, plan, report, ACTION_CANCEL, card_ts)
        await tracker.wait_state(task_id, REVIEWABLE_STATES, timeout)
        plan.expected = frozenset({CANCELLED})
        if plan.then_discard:
            await _click(sb, plan, report, ACTION_DISCARD, await wait_review(sb, task_id, timeout, eager=eager))
            await tracker.wait_state(task_id, {DISCARDED}, timeout)
            plan.expected = frozenset({DISCARDED})
        return
    task = await tracker.wait_state(task_id, REVIEWABLE_STATES, timeout)
    review_ts = await wait_review(sb, task_id, timeout, eager=eager)
    if plan.mode == "edit" and task.state == FINISHED:
        plan.edit_runs = 1
    if plan.followup and task.state in (FINISHED, FAILED):
        runs = task.runs
        await sb.mention(user=plan.user, channel=plan.channel, thread_ts=slack_ids(sb, task).thread_ts,
                         text=f"[soak {plan.key} {'noop' if plan.mode == 'noop' else 'edit'}] one more please")
        report.actions["follow-up"] += 1

        def rerun() -> Task | None:
            now = tracker.tasks.get(task_id)
            return now if now and now.runs > runs and now.state in REVIEWABLE_STATES else None

        task = await tracker.wait(rerun, timeout, f"task {task_id}: the follow-up never ran "
                                                  f"(history: {tracker.history.get(task_id)})", task_id)
        if task.state == FINISHED and plan.mode != "noop":
            plan.edit_runs += 1
        review_ts = await wait_review(sb, task_id, timeout, eager=eager, previous=review_ts)
    if kind == "leave" or (kind == "fail" and not plan.followup and not plan.then_discard):
        plan.expected = frozenset({task.state})
        return
    if kind == "discard" or (kind == "fail" and not plan.followup):
        await _click(sb, plan, report, ACTION_DISCARD, review_ts)
        await tracker.wait_state(task_id, {DISCARDED}, timeout)
        plan.expected = frozenset({DISCARDED})
        return
    # merge, noop_merge, conflict, fail + follow-up: try to merge
    claims = tracker.history[task_id].count(MERGING)

    def merge_settled() -> Task | None:
        now = tracker.tasks.get(task_id)
        tried = tracker.history[task_id].count(MERGING) > claims
        return now if tried and now is not None and now.state != MERGING else None

    keys = await _click(sb, plan, report, ACTION_MERGE, review_ts)
    task = await tracker.wait(merge_settled, timeout, f"task {task_id}: the merge never settled "
                                                      f"(history: {tracker.history.get(task_id)})", task_id)
    if kind == "merge" or (kind == "fail" and plan.followup):
        plan.expected = frozenset({MERGED})
        return
    plan.expected = frozenset({MERGED, DISCARDED}) if kind == "conflict" else frozenset({DISCARDED})
    if task.state != MERGED:
        await _refused_merge_was_explained(sb, keys, task_id, report)
        await _click(sb, plan, report, ACTION_DISCARD, review_ts)
        await tracker.wait_state(task_id, {DISCARDED}, timeout)


async def _refused_merge_was_explained(sb: SoakBot, keys: list[str], task_id: str, report: Report) -> None:
    """A refused merge answers the clicker with a reason (conflicts or nothing to merge)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        texts = " ".join(a for key in keys for a in sb.answers(key))
        if "conflicts with" in texts or "Nothing to merge" in texts:
            return
        await asyncio.sleep(0.2)
    report.violations.append(f"task {task_id}: a refused merge got no explanation (answers: "
                             f"{[sb.answers(k) for k in keys]})")


async def run_soak(workdir: Path, *, tasks: int = 100, seed: int = 1, concurrency: int = 6,
                   fault_rate: float = 0.1, speed: float = 20.0, spawn_gap: float = 0.15,
                   timeout: float = 180.0, eager: bool = False, patience: float = 120.0,
                   races: int | None = None) -> Report:
    """N tasks with random fates and random Slack faults; returns the report (violations must be empty)."""
    report = Report(f"soak: {tasks} tasks, concurrency {concurrency}, {fault_rate:.0%} of Web API calls "
                    f"answered 429/500, Slack budgets x{speed:g}", seed)
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    started = time.monotonic()
    sb = await start_bot(workdir, speed=speed, concurrency=concurrency)
    try:
        # Bolt calls auth.test itself (not through the outbox) on the first request and, if Slack answers
        # 500, drops that request: a bug outside the soak's files, and not what the soak is about.
        # One command before the faults start lets Bolt cache it, so the soak tests everything else.
        warmup = await sb.command("help", user=USERS[0], channel=CHANNELS[0])
        await sb.tracker.wait(lambda: bool(sb.answers(warmup)), 30, "the bot never answered /superset help")
        sb.fake.inject_faults(rate=fault_rate, statuses=(429, 500), seed=seed)
        plans = make_plans(tasks, seed)
        race_plans = make_race_plans(tasks // 12 if races is None else races, seed)
        rng = random.Random(seed)

        async def one(plan: Plan) -> None:
            try:
                await drive(sb, plan, report, timeout, eager)
            except Stuck as exc:
                report.violations.append(f"{plan.key} ({plan.describe()}): {exc}")
            except Exception as exc:
                log.exception("soak driver of %s failed", plan.key)
                report.violations.append(f"{plan.key} ({plan.describe()}): the soak driver failed: {exc!r}")

        async def one_race(plan: RacePlan) -> None:
            try:
                await drive_race(sb, plan, report, timeout)
            except Stuck as exc:
                report.violations.append(f"race {plan.key} ({plan.fate}): {exc}")
            except Exception as exc:
                log.exception("soak driver of race %s failed", plan.key)
                report.violations.append(f"race {plan.key} ({plan.fate}): the soak driver failed: {exc!r}")

        # housekeeping runs all along, as the scheduler would but far more often, so its cleanup
        # races with cancels, discards and merges: it may remove only what no open task owns
        housekeeping = asyncio.create_task(_housekeep(sb, report))
        drivers = []
        racing = {round(i * len(plans) / max(1, len(race_plans))): p for i, p in enumerate(race_plans)}
        for i, plan in enumerate(plans):
            drivers.append(asyncio.create_task(one(plan)))
            if i in racing:
                drivers.append(asyncio.create_task(one_race(racing[i])))
            await asyncio.sleep(rng.random() * spawn_gap * 2)
        await asyncio.gather(*drivers)
        driven = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await sb.settle(timeout)
        await _verify(sb, plans, report, timeout=patience)
        report.violations.extend(await check_races(sb, race_plans))
        before_cleanup = Counter(t.state for t in await sb.store.list_tasks())
        # close what is left (by slash command this time) so the end state is empty: nothing may linger
        left = [t for t in await sb.store.list_tasks() if t.state in REVIEWABLE_STATES]
        for task in left:
            await sb.command(f"discard {task.id}", user=USERS[0], channel=task.channel or CHANNELS[0])
            report.actions["discard command"] += 1
        for task in left:
            try:
                await sb.tracker.wait_state(task.id, {DISCARDED}, timeout)
            except Stuck as exc:
                report.violations.append(f"cleanup: {exc}")
        for plan in plans:
            if plan.task_id and any(t.id == plan.task_id for t in left):
                plan.expected = frozenset({DISCARDED})
        with contextlib.suppress(TimeoutError):
            await sb.settle(timeout)
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeping
        before = len(report.violations)
        await _verify(sb, plans, report, timeout=patience)
        leftovers = set(git(sb.repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/superset/").split())
        leftovers |= worktrees(sb.repo)
        leftovers = {x for x in leftovers if not pooled(x)}
        if leftovers:
            report.violations.append(f"after discarding everything, still there: {sorted(leftovers)}")
        report.violations.extend(f"bot log: {e}" for e in watch.errors())
        states = Counter(t.state for t in await sb.store.list_tasks())
        calls = Counter(c.method for c in sb.fake.calls)
        assert sb.slack.outbox is not None
        report.faults = Counter(sb.fake.faults_injected)
        report.lines += [
            f"tasks: {tasks} spawned, {sum(1 for p in plans if p.task_id)} created; states before cleanup: "
            + ", ".join(f"{k} {v}" for k, v in sorted(before_cleanup.items())),
            "plans: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(p.kind for p in plans).items())),
            "races: " + (", ".join(f"{k} {v}" for k, v in sorted(Counter(p.fate for p in race_plans).items()))
                         or "none"),
            "actions: " + ", ".join(f"{k} {v}" for k, v in sorted(report.actions.items())),
            "final states: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
            f"faults injected: 429 x {report.faults['429']}, 500 x {report.faults['500']} "
            f"(of {len(sb.fake.calls)} Web API calls; chat.postMessage {calls['chat.postMessage']}, "
            f"chat.update {calls['chat.update']}, reactions {calls['reactions.add'] + calls['reactions.remove']})",
            f"fake's own 429s (budget): {sum(sb.fake.rate_limited.values())}; outbox: "
            + ", ".join(f"{k} {sb.slack.outbox.stats[k]}" for k in ("429", "coalesced", "dropped", "invalid_blocks")),
            f"housekeeping: {report.actions['housekeeping cycle']} prune + reconcile cycles during the run, "
            f"{report.actions['housekeeping cleaned']} leftovers cleaned, "
            f"{report.actions['housekeeping error']} errors" + "".join(f"\n  {x}" for x in report.housekept[:8]),
            f"queue: at most {sb.tracker.most_queued} tasks queued at once; longest step waited "
            f"{sb.tracker.longest_wait[0]:.0f} s ({sb.tracker.longest_wait[1]}); {sb.posts.summary()}",
            f"time: {driven - started:.1f} s driving, {time.monotonic() - started:.1f} s in all; "
            f"violations found in the final check: {len(report.violations) - before}",
        ]
    finally:
        logging.getLogger().removeHandler(watch)
        await sb.stop()
    return report


async def _housekeep(sb: SoakBot, report: Report, every: float = 1.5) -> None:
    """Prune (orphans, leftovers) and reconcile over and over while the tasks run."""
    keeper = sb.slack.housekeeper
    while True:
        await asyncio.sleep(every)
        try:
            pruned = await keeper.prune()
            await keeper.reconcile()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("soak: housekeeping failed")
            report.violations.append(f"housekeeping raised {exc!r}")
            continue
        report.actions["housekeeping cycle"] += 1
        report.actions["housekeeping cleaned"] += len(pruned.cleaned)
        report.actions["housekeeping error"] += len(pruned.errors)
        report.housekept += [*pruned.cleaned, *(f"error: {e}" for e in pruned.errors)]


async def _verify(sb: SoakBot, plans: list[Plan], report: Report, timeout: float) -> None:
    tasks = {t.id: t for t in await sb.store.list_tasks()}
    for plan in plans:
        task = tasks.get(plan.task_id or "")
        if task is None:
            continue  # already reported by its driver
        if task.state not in FINAL_STATES:
            report.violations.append(f"task {task.id} ({plan.describe()}): ended {task.state}, not a final state")
        elif plan.expected and task.state not in plan.expected:
            report.violations.append(f"task {task.id} ({plan.describe()}): ended {task.state}, expected "
                                     f"{'/'.join(sorted(plan.expected))} (reason: {task.reason})")
        if task.state == MERGED and plan.edit_runs:
            content = git(sb.repo, "show", f"{task.base_branch or 'main'}:soak/{plan.key}.txt", check=False)
            if len(content.splitlines()) != plan.edit_runs:
                report.violations.append(f"task {task.id} ({plan.describe()}): merged, but soak/{plan.key}.txt on "
                                         f"its base has {len(content.splitlines())} lines, expected {plan.edit_runs}")
    report.violations.extend(check_git(sb, tasks))

    async def slack_side() -> list[str]:
        fresh = [t for t in await sb.store.list_tasks()]
        return check_threads(sb, fresh) + check_slack(sb)

    report.violations.extend(await eventually(slack_side, timeout))

