"""Races in the soak: a few races run beside the tasks, with Slack faults and housekeeping all along.

Each race's fate: picked (often by two people clicking Pick on two attempts at once), picked after a
follow-up addressed to one attempt, or Discard all. The invariants: every race ends picked or
discarded; a picked race has exactly one merged attempt, its winner, and every other attempt
discarded; a discarded race has none merged; the winner's work is on the base as many times as it
ran; the race's root message says how it ended.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass

from soak.bot import CHANNELS, USERS, SoakBot, Stuck
from soak.report import Report
from soak.workdir import git
from superset_bot.domain.race import Race, RaceState
from superset_bot.frontends.slack.blocks.race import ACTION_RACE_DISCARD, ACTION_RACE_PICK, per_attempt
from superset_bot.store import DISCARDED, MERGED, REVIEWABLE_STATES, Task

FATES = {"pick": 5, "pick_after_followup": 3, "discard_all": 2}


@dataclass
class RacePlan:
    key: str
    fate: str
    attempts: int
    channel: str
    user: str
    rival: str  # who clicks Pick on another attempt at the same time (a pick race)
    race_id: str | None = None
    winner_runs: int = 0


def make_race_plans(n: int, seed: int) -> list[RacePlan]:
    plans = []
    for i in range(n):
        rng = random.Random(f"{seed}-race-{i}")
        plans.append(RacePlan(key=f"r{i:03d}", fate=rng.choices(list(FATES), weights=list(FATES.values()))[0],
                              attempts=rng.choice((2, 3)), channel=CHANNELS[i % len(CHANNELS)],
                              user=USERS[rng.randrange(len(USERS))], rival=USERS[rng.randrange(len(USERS))]))
    return plans


async def _race_of(sb: SoakBot, plan: RacePlan, timeout: float) -> Race:
    async def found() -> Race | None:
        for race in await sb.store.races_in(set(RaceState)):
            if f"[soak {plan.key} " in race.prompt:
                return race
        return None
    deadline = asyncio.get_running_loop().time() + timeout
    while (race := await found()) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise Stuck(f"race {plan.key}: the race command never started a race")
        await asyncio.sleep(0.1)
    return race


async def drive_race(sb: SoakBot, plan: RacePlan, report: Report, timeout: float) -> None:
    tracker = sb.tracker
    await sb.command(f"race {plan.attempts} [soak {plan.key} edit] soak race {plan.key}", user=plan.user,
                     channel=plan.channel)
    report.actions["race"] += 1
    race = await _race_of(sb, plan, timeout)
    plan.race_id = race.id
    attempts = await sb.store.race_attempts(race.id)
    for attempt in attempts:
        await tracker.wait_state(attempt.id, REVIEWABLE_STATES, timeout)
    root = sb.slack.frontend.races.messages.get(race.id) if sb.slack.frontend else None
    if root is None:
        raise Stuck(f"race {plan.key}: no root message recorded")
    first, second = attempts[0], attempts[1]
    if plan.fate == "discard_all":
        await sb.click(ACTION_RACE_DISCARD, race.id, user=plan.user, channel=plan.channel, message_ts=root.thread_ts)
        report.actions["race discard all"] += 1
        for attempt in attempts:
            await tracker.wait_state(attempt.id, {DISCARDED}, timeout)
        return
    if plan.fate == "pick_after_followup":
        runs = (tracker.tasks.get(first.id) or first).runs
        await sb.mention(user=plan.user, channel=plan.channel, thread_ts=root.thread_ts,
                         text=f"A: [soak {plan.key} edit] one more please")
        report.actions["race follow-up"] += 1

        def rerun() -> Task | None:
            now = tracker.tasks.get(first.id)
            return now if now and now.runs > runs and now.state in REVIEWABLE_STATES else None
        await tracker.wait(rerun, timeout, f"race {plan.key}: the follow-up to A never ran", first.id)
    # Pick A, and (half the time) someone else picks B at the same moment: one of them wins
    clicks = [sb.click(per_attempt(ACTION_RACE_PICK, "A"), first.id, user=plan.user, channel=plan.channel,
                       message_ts=root.thread_ts)]
    if plan.fate == "pick" and random.Random(plan.key).random() < 0.5:
        clicks.append(sb.click(per_attempt(ACTION_RACE_PICK, "B"), second.id, user=plan.rival,
                               channel=plan.channel, message_ts=root.thread_ts))
    await asyncio.gather(*clicks)
    report.actions["race pick" + (" x2" if len(clicks) > 1 else "")] += 1
    for attempt in attempts:
        await tracker.wait_state(attempt.id, {MERGED, DISCARDED}, timeout)


async def check_races(sb: SoakBot, plans: list[RacePlan]) -> list[str]:
    problems: list[str] = []
    for plan in plans:
        if plan.race_id is None:
            continue
        race = await sb.store.get_race(plan.race_id)
        attempts = await sb.store.race_attempts(plan.race_id)
        where = f"race {plan.key} ({plan.fate}, {race.state if race else '?'})"
        if race is None or not race.state.closed:
            problems.append(f"{where}: not closed")
            continue
        merged = [t for t in attempts if t.state == MERGED]
        others = [t for t in attempts if t.state != MERGED]
        if race.state == RaceState.PICKED:
            if [t.id for t in merged] != [race.winner]:
                problems.append(f"{where}: merged {[t.race_label for t in merged]}, winner {race.winner}")
            if any(t.state != DISCARDED for t in others):
                problems.append(f"{where}: attempts left {[(t.race_label, str(t.state)) for t in others]}")
            winner = merged[0] if merged else None
            if winner is not None:
                content = git(sb.repo, "show", f"{winner.base_branch or 'main'}:soak/{plan.key}.txt", check=False)
                if len(content.splitlines()) != winner.runs:
                    problems.append(f"{where}: soak/{plan.key}.txt has {len(content.splitlines())} lines on the "
                                    f"base, the winner ran {winner.runs} times")
        elif merged:
            problems.append(f"{where}: discarded, yet {[t.race_label for t in merged]} merged")
        if plan.fate == "discard_all" and race.state != RaceState.DISCARDED:
            problems.append(f"{where}: Discard all did not discard the race")
        if plan.fate != "discard_all" and race.state != RaceState.PICKED:
            problems.append(f"{where}: the pick did not pick")
        ids = sb.slack.frontend.races.messages.get(race.id) if sb.slack.frontend else None
        root = sb.fake.messages.get((ids.channel, ids.thread_ts)) if ids else None
        said = json.dumps(root.blocks) if root else ""
        if race.state == RaceState.PICKED and "picked by" not in said:
            problems.append(f"{where}: its root does not say it was picked")
        if race.state == RaceState.DISCARDED and "No attempt was kept" not in said:
            problems.append(f"{where}: its root does not say no attempt was kept")
        if root and any(b.get("type") == "actions" for b in root.blocks or []):
            problems.append(f"{where}: its root still offers buttons")
    return problems
