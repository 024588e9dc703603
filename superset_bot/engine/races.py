"""Races: one prompt tried by several attempts from one base commit, and exactly one of them kept.

Each attempt is an ordinary task (its own worktree, branch, state, review and delivery) that names
its race. What the race adds is one claim: Pick takes it (open -> picking, compare-and-swap in the
store), merges the winner through its preset's delivery and discards every other attempt; a refused
merge gives the claim back and discards nothing. A Merge on an attempt's own review is a Pick,
so no path merges two attempts. A pull request merged on its host picks its attempt the same way.
After a restart a race left picking or discarding is finished from what the tasks say.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from superset_bot.domain.events import EngineEvent, Milestone, RaceChanged, StateChanged
from superset_bot.domain.race import LABELS, Race, RaceState, UnknownAttempt, address, settled_without_pick
from superset_bot.engine.errors import AlreadyClosed, UserError
from superset_bot.engine.transitions import BOT_ACTOR
from superset_bot.git import diff as gitdiff
from superset_bot.git.refs import default_branch
from superset_bot.store import ACTIVE_STATES, CLOSED_STATES, DISCARDING, MERGED, MERGING, PRUNED, Task

if TYPE_CHECKING:
    from superset_bot.engine.core import Engine, ValidSpawn

log = logging.getLogger(__name__)

UPDATE_WAIT = 120.0  # seconds a pick waits for an attempt's Update from base to end before discarding it


@dataclass(frozen=True)
class ValidRace:
    """A race request every check accepted: one valid spawn per attempt, in label order."""

    attempts: tuple[ValidSpawn, ...]

    @property
    def first(self) -> ValidSpawn:
        return self.attempts[0]


@dataclass(frozen=True)
class Sent:
    """What a follow-up in a race thread did for one attempt."""

    label: str
    task_id: str
    error: str | None = None  # None: sent


class Races:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._picking: set[str] = set()  # races whose pick runs in this process
        engine.subscribe(self._on_event)

    # starting

    async def validate(self, prompt: str, *, repo: str | None, presets: Sequence[str], base: str | None,
                       requester: str) -> ValidRace:
        """Every spawn check, for each preset the race uses (the budget once: attempts start together)."""
        engine = self.engine
        checked: dict[str, ValidSpawn] = {}
        for name in presets:
            if name not in checked:
                checked[name] = await engine.validate_spawn(prompt, repo=repo, preset=name, base=base,
                                                            requester=requester if not checked else None)
        return ValidRace(tuple(checked[name] for name in presets))

    async def start(self, valid: ValidRace, *, requester: str, race_id: str, task_ids: Sequence[str],
                    channel: str | None = None) -> tuple[Race, list[Task]]:
        """Store the race and its attempts at one base commit, then drive each attempt."""
        engine = self.engine
        first = valid.first
        repo = engine.repo_path(first.repo)
        base_branch = first.base or await default_branch(repo)
        start = await engine.bases.start_point(first.repo, base_branch)  # one fetch, one commit for all
        race = Race(id=race_id, repo=first.repo, prompt=first.prompt, requester=requester,
                    presets=tuple(v.preset for v in valid.attempts), base_branch=base_branch,
                    base_commit=start.commit, channel=channel)
        pending = [Task(id=task_id, repo=v.repo, prompt=v.prompt, preset=v.preset, requester=requester,
                        base_branch=base_branch, base_commit=start.commit, channel=channel, race_label=label,
                        runner=engine.runner_of_new_tasks)
                   for task_id, v, label in zip(task_ids, valid.attempts, LABELS, strict=False)]
        race, attempts = await engine.store.create_race(race, pending, requester)
        log.info("race %s: %d attempts by %s from %s at %s", race.id, len(attempts), requester, base_branch,
                 start.commit[:10])
        for task in attempts:
            engine.publish(StateChanged(task, None, requester))
        engine.publish(RaceChanged(attempts[0], race))
        for task in attempts:
            engine.workers.drive(task.id, engine.lifecycle.drive(task.id))
        return race, attempts

    # reading

    async def get(self, race_id: str) -> Race:
        race = await self.engine.store.get_race(race_id)
        if race is None:
            raise UserError(f"No race `{race_id}`.")
        return race

    async def attempts(self, race_id: str) -> list[Task]:
        return await self.engine.store.race_attempts(race_id)

    # picking one

    async def pick(self, task_id: str, actor: str) -> Task:
        """Merge this attempt through its delivery and discard the others, once for the whole race."""
        engine = self.engine
        task = await engine.get(task_id)
        race = await self.get(task.race_id or "")
        if task.state in CLOSED_STATES:
            raise AlreadyClosed(task)
        await self._refuse_unless_open(race)
        if task.state in ACTIVE_STATES:
            raise UserError(f"Attempt {task.race_label} ({task.id}) is still {task.state}; pick it when its review "
                            "is posted, or cancel it first.")
        claimed = await engine.store.race_transition(race.id, RaceState.PICKING, actor, expect={RaceState.OPEN},
                                                     winner=task.id, closed_by=actor)
        if claimed is None:
            await self._refuse_unless_open(await self.get(race.id))
            raise UserError(f"Race {race.id} changed meanwhile; look at it again.")
        engine.publish(RaceChanged(task, claimed))
        self._picking.add(race.id)
        try:
            rival = next((t for t in await self.attempts(race.id)
                          if t.id != task.id and t.state in (MERGING, MERGED)), None)
            if rival is not None:
                # another attempt is being merged on its host (its pull request merged on GitHub): that
                # one is the pick, and this one must not be merged beside it
                await self._reopen_claim(claimed, task)
                self._picking.discard(race.id)
                if rival.state == MERGED:
                    await self._attempt_closed(rival)
                raise UserError(f"Attempt {rival.race_label} is being merged already (its pull request was merged "
                                "on GitHub); nothing else was merged.")
            try:
                merged = await engine.merging.merge(task.id, actor)
            except BaseException:
                current = await engine.get(task.id)
                if current.state == MERGED:  # merged all the same; a step after it failed
                    await self._finish_pick(claimed, current, actor)
                elif current.state != MERGING:  # refused: nothing was discarded, pick again
                    await self._reopen_claim(claimed, current)
                # still MERGING (an unclear answer, a restart): its settling closes or reopens the race
                raise
            await self._finish_pick(claimed, merged, actor)
        finally:
            self._picking.discard(race.id)
        return merged

    async def _reopen_claim(self, race: Race, task: Task) -> None:
        reopened = await self.engine.store.race_transition(race.id, RaceState.OPEN, BOT_ACTOR,
                                                           expect={RaceState.PICKING}, winner=None, closed_by=None)
        if reopened is not None:
            self.engine.publish(RaceChanged(task, reopened))

    async def _refuse_unless_open(self, race: Race) -> None:
        if race.state == RaceState.OPEN:
            return
        winner = await self.engine.store.get_task(race.winner) if race.winner else None
        who = _person(race.closed_by)
        if race.state == RaceState.PICKING and winner is not None:
            raise UserError(f"Attempt {winner.race_label} is being picked by {who} right now; nothing else was done.")
        if race.state == RaceState.PICKED and winner is not None:
            raise UserError(f"This race is over: attempt {winner.race_label} ({winner.id}) was picked by {who} and "
                            "merged; the others were discarded.")
        if race.state == RaceState.DISCARDING:
            raise UserError(f"Every attempt of race {race.id} is being discarded by {who}; nothing else was done.")
        raise UserError(f"This race is over: its attempts were discarded{f' by {who}' if race.closed_by else ''}.")

    async def _finish_pick(self, race: Race, winner: Task, actor: str) -> Race:
        """The winner is merged: discard every other attempt, then close the race."""
        engine = self.engine
        await self._discard_others(race, winner, actor)
        done = await engine.store.race_transition(race.id, RaceState.PICKED, actor, expect={RaceState.PICKING})
        if done is not None:
            engine.publish(RaceChanged(await engine.get(winner.id), done))
            return done
        return await self.get(race.id)

    async def _discard_others(self, race: Race, winner: Task | None, actor: str) -> None:
        """Discard every attempt but `winner`; one that cannot be is said in its thread (the race's card
        names it). A pruned attempt's pull request, left open on its host, is closed too."""
        engine = self.engine
        for other in await self.attempts(race.id):
            if winner is not None and other.id == winner.id:
                continue
            if other.state == PRUNED:
                await engine.pulls.close_for_discard(other, actor)
            if other.state in CLOSED_STATES or other.state == DISCARDING:
                continue  # closed already, or someone's discard is finishing it
            try:
                await self._wait_for_update(other)
                await engine.merging.discard(other.id, actor)
            except AlreadyClosed:
                continue
            except Exception as exc:  # noqa: BLE001 - said in the attempt's thread; the race still closes
                log.warning("race %s: could not discard attempt %s: %s", race.id, other.id, exc)
                after = f" after attempt {winner.race_label} was picked" if winner is not None else ""
                engine.publish(Milestone(other, "race_discard_failed",
                                         f"Attempt {other.race_label} could not be discarded{after}: {exc} "
                                         "Discard it by hand.", ok=False))

    async def _wait_for_update(self, task: Task, bound: float = UPDATE_WAIT) -> None:
        """An Update from base works on the attempt's worktree right now: let it end before discarding."""
        for _ in range(int(bound / 0.2)):
            if not self.engine.merging.updating(task.id):
                return
            await asyncio.sleep(0.2)

    # discarding them all

    async def discard_all(self, race_id: str, actor: str) -> Race:
        engine = self.engine
        race = await self.get(race_id)
        await self._refuse_unless_open(race)
        claimed = await engine.store.race_transition(race.id, RaceState.DISCARDING, actor, expect={RaceState.OPEN},
                                                     closed_by=actor)
        if claimed is None:
            await self._refuse_unless_open(await self.get(race.id))
            raise UserError(f"Race {race.id} changed meanwhile; look at it again.")
        attempts = await self.attempts(race.id)
        engine.publish(RaceChanged(attempts[0], claimed))
        return await self._finish_discard_all(claimed, actor)

    async def _finish_discard_all(self, race: Race, actor: str) -> Race:
        engine = self.engine
        await self._discard_others(race, None, actor)
        done = await engine.store.race_transition(race.id, RaceState.DISCARDED, actor, expect={RaceState.DISCARDING})
        attempts = await self.attempts(race.id)
        if done is not None:
            engine.publish(RaceChanged(attempts[0], done))
            return done
        return await self.get(race.id)

    # follow-ups, diffs

    async def followup(self, race_id: str, text: str, actor: str) -> list[Sent]:
        """A follow-up to the attempts it names ("A: ...", "B, C: ..."), or to every open one."""
        engine = self.engine
        race = await self.get(race_id)
        attempts = await self.attempts(race.id)
        await self._refuse_unless_open(race)  # a pick or Discard all at work would throw the runs away
        by_label = {t.race_label or "?": t.id for t in attempts}
        try:
            targets, body = address(text, by_label)
        except UnknownAttempt as exc:
            raise UserError(str(exc)) from exc
        named = len(targets) < len(attempts)
        sent: list[Sent] = []
        for task in attempts:
            if task.id not in targets or (not named and task.state in CLOSED_STATES):
                continue
            try:
                await engine.followup(task.id, body, actor)
                sent.append(Sent(task.race_label or "?", task.id))
            except UserError as exc:
                sent.append(Sent(task.race_label or "?", task.id, str(exc)))
        if not sent:
            raise UserError("No attempt of this race takes a follow-up now: they are all closed.")
        return sent

    async def diff_between(self, first_id: str, second_id: str) -> tuple[Task, Task, str]:
        """What the second attempt's branch has that differs from the first's, redacted like every diff."""
        engine = self.engine
        first, second = await engine.get(first_id), await engine.get(second_id)
        if not first.race_id or first.race_id != second.race_id:
            raise UserError(f"Tasks {first.id} and {second.id} are not attempts of one race.")
        for task in (first, second):
            if not task.branch or task.state in CLOSED_STATES:
                raise UserError(f"Attempt {task.race_label} ({task.id}) has no branch to compare ({task.state}).")
        assert first.branch and second.branch
        patch = await gitdiff.between(engine.repo_path(first.repo), first.branch, second.branch)
        # both branches are agents' work: a key either one wrote must not reach Slack
        for task in (first, second):
            patch = engine.env.redactor_for(engine.presets.get(task.preset)).redact(patch)
        return first, second, patch

    # keeping the race in step with its attempts

    def _on_event(self, event: EngineEvent) -> None:
        task = event.task
        if not task.race_id or not isinstance(event, StateChanged):
            return
        if task.state in CLOSED_STATES:
            self.engine.workers.background(self._attempt_closed(task))
        elif event.previous == MERGING and task.race_id not in self._picking:
            # a merge settled after a restart did not happen: the pick it belonged to is over
            self.engine.workers.background(self._reopen(task))

    async def _reopen(self, task: Task) -> None:
        engine = self.engine
        try:
            race = await self.get(task.race_id or "")
            if race.state != RaceState.PICKING or race.winner != task.id or race.id in self._picking:
                return
            reopened = await engine.store.race_transition(race.id, RaceState.OPEN, BOT_ACTOR,
                                                          expect={RaceState.PICKING}, winner=None, closed_by=None)
            if reopened is not None:
                engine.publish(Milestone(task, "race_reopened", f"Attempt {task.race_label} was not merged, so "
                                                                "nothing was discarded: the race is open again.",
                                         ok=False))
                engine.publish(RaceChanged(task, reopened))
        except Exception:
            log.exception("race %s: could not reopen it after attempt %s", task.race_id, task.id)

    async def _attempt_closed(self, task: Task) -> None:
        """An attempt closed outside a pick or a Discard all: its pull request merged on the host picks
        it; the last attempt discarded or pruned ends the race."""
        engine = self.engine
        try:
            race = await self.get(task.race_id or "")
            if race.id in self._picking:
                return  # the pick at work in this process closes the race itself
            if race.state == RaceState.PICKING and race.winner == task.id and task.state == MERGED:
                # a pick whose merge was settled after a restart: finish what it started
                await self._finishing(race, task, race.closed_by or BOT_ACTOR)
                return
            if task.state == MERGED and race.winner not in (None, task.id):
                # merged on its host beside the picked one: say so plainly, nothing can undo it here
                engine.publish(Milestone(task, "race_double_merge",
                                         f"Attempt {task.race_label} was merged on GitHub by {task.closed_by} although "
                                         "another attempt of this race is picked: both are in the base now.",
                                         ok=False))
                return
            if race.state != RaceState.OPEN:
                return  # a pick or Discard all is at work; it closes the race itself
            if task.state == MERGED:
                claimed = await engine.store.race_transition(race.id, RaceState.PICKING, task.closed_by or BOT_ACTOR,
                                                             expect={RaceState.OPEN}, winner=task.id,
                                                             closed_by=task.closed_by)
                if claimed is not None:
                    engine.publish(RaceChanged(task, claimed))
                    await self._finishing(claimed, task, task.closed_by or BOT_ACTOR)
                return
            if settled_without_pick(await self.attempts(race.id)):
                done = await engine.store.race_transition(race.id, RaceState.DISCARDED, BOT_ACTOR,
                                                          expect={RaceState.OPEN})
                if done is not None:
                    engine.publish(RaceChanged(task, done))
        except Exception:
            log.exception("race %s: could not follow attempt %s closing", task.race_id, task.id)

    async def _finishing(self, race: Race, winner: Task, actor: str) -> None:
        """Finish a pick this process did not start (a merge on the host, a restart), unless one is at it."""
        if race.id in self._picking:
            return
        self._picking.add(race.id)
        try:
            await self._finish_pick(race, winner, actor)
        finally:
            self._picking.discard(race.id)

    async def resume(self) -> None:
        """After a restart: finish a pick or Discard all that was interrupted, from what the tasks say."""
        engine = self.engine
        for race in await engine.store.races_in({RaceState.PICKING, RaceState.DISCARDING, RaceState.OPEN}):
            try:
                attempts = await self.attempts(race.id)
                if race.state == RaceState.DISCARDING:
                    if race.id not in self._picking:
                        await self._finish_discard_all(race, race.closed_by or BOT_ACTOR)
                    continue
                winner = next((t for t in attempts if t.state == MERGED), None)
                if winner is not None:
                    if race.state == RaceState.OPEN:
                        race = await engine.store.race_transition(
                            race.id, RaceState.PICKING, winner.closed_by or BOT_ACTOR, expect={RaceState.OPEN},
                            winner=winner.id, closed_by=winner.closed_by) or race
                    await self._finishing(race, winner, race.closed_by or BOT_ACTOR)
                elif race.state == RaceState.PICKING:
                    picked = next((t for t in attempts if t.id == race.winner), None)
                    if picked is not None and picked.state == MERGING:
                        continue  # its merge is still settling; the attempt's closing picks the race
                    reopened = await engine.store.race_transition(race.id, RaceState.OPEN, BOT_ACTOR,
                                                                  expect={RaceState.PICKING}, winner=None,
                                                                  closed_by=None)
                    if reopened is not None and attempts:
                        engine.publish(Milestone(picked or attempts[0], "race_reopened",
                                                 "The bot restarted while this race was being picked and the "
                                                 "merge did not happen; nothing was discarded. Pick again.",
                                                 ok=False))
                        engine.publish(RaceChanged(picked or attempts[0], reopened))
                elif settled_without_pick(attempts):
                    done = await engine.store.race_transition(race.id, RaceState.DISCARDED, BOT_ACTOR,
                                                              expect={RaceState.OPEN})
                    if done is not None:
                        engine.publish(RaceChanged(attempts[0], done))
            except Exception:
                log.exception("race %s: could not settle it after the restart", race.id)



def _person(actor: str | None) -> str:
    """A Slack user id as a mention; someone on GitHub ("octocat on GitHub") as written; else the bot."""
    if not actor or actor == BOT_ACTOR:
        return "the bot"
    return f"<@{actor}>" if re.fullmatch(r"[UW][A-Z0-9]{2,}", actor) else actor
