"""Where a race lives in Slack (`slack_races`: its root message and its comparison card) and what keeps
them current.

A race's root message is posted in the channel; each attempt's card is a reply in its thread (the
attempt's `SlackIds.card_ts`), so the attempts' milestones and reviews land in the one thread too. The
root and the comparison card are drawn from the store (the race and its attempts' stored reviews)
whenever an attempt changes state or review, or the race itself moves; refreshes are coalesced per
race. The comparison card is posted once every attempt has ended, or earlier on "Compare now".
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from superset_bot.domain.events import EngineEvent, RaceChanged, ReviewReady, ReviewRefreshed, StateChanged
from superset_bot.domain.race import AttemptFigures, RaceState, all_done
from superset_bot.frontends.slack.blocks.race import comparison_card, race_root
from superset_bot.store import Store

if TYPE_CHECKING:
    from superset_bot.frontends.slack.app import SlackFrontend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RaceIds:
    channel: str
    thread_ts: str  # the race's root message, which is the thread
    card_ts: str | None = None  # the comparison card, once posted


class RaceMessages:
    """The `slack_races` table, cached like `slack_messages` (the Slack front end creates and owns it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_race: dict[str, RaceIds] = {}
        self._by_thread: dict[tuple[str, str], str] = {}

    async def load(self) -> None:
        async with self.store.transaction() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS slack_races (race_id TEXT PRIMARY KEY, channel TEXT NOT NULL, "
                             "thread_ts TEXT NOT NULL, card_ts TEXT)")
        for row in await self.store.fetch_all("SELECT race_id, channel, thread_ts, card_ts FROM slack_races"):
            self._remember(row["race_id"], RaceIds(row["channel"], row["thread_ts"], row["card_ts"]))

    def get(self, race_id: str) -> RaceIds | None:
        return self._by_race.get(race_id)

    def race_in_thread(self, channel: str, thread_ts: str) -> str | None:
        return self._by_thread.get((channel, thread_ts))

    async def open(self, race_id: str, channel: str, thread_ts: str) -> RaceIds:
        async with self.store.transaction() as db:
            await db.execute("INSERT OR REPLACE INTO slack_races (race_id, channel, thread_ts) VALUES (?, ?, ?)",
                             (race_id, channel, thread_ts))
        ids = RaceIds(channel, thread_ts)
        self._remember(race_id, ids)
        return ids

    async def set_card(self, race_id: str, card_ts: str) -> RaceIds:
        async with self.store.transaction() as db:
            await db.execute("UPDATE slack_races SET card_ts = ? WHERE race_id = ?", (card_ts, race_id))
        ids = self._by_race[race_id] = replace(self._by_race[race_id], card_ts=card_ts)
        return ids

    async def forget(self, race_id: str) -> None:
        async with self.store.transaction() as db:
            await db.execute("DELETE FROM slack_races WHERE race_id = ?", (race_id,))
        ids = self._by_race.pop(race_id, None)
        if ids is not None:
            self._by_thread.pop((ids.channel, ids.thread_ts), None)

    def _remember(self, race_id: str, ids: RaceIds) -> None:
        self._by_race[race_id] = ids
        self._by_thread[(ids.channel, ids.thread_ts)] = race_id


@dataclass
class _Refresh:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: bool = False
    compare: bool = False  # post the comparison card even if attempts are still running
    job: asyncio.Task[None] | None = None


class RaceThreads:
    """Keeps each race's root message and comparison card in step with the store."""

    def __init__(self, frontend: SlackFrontend) -> None:
        self.frontend = frontend
        self.messages = RaceMessages(frontend.engine.store)
        self._refreshes: dict[str, _Refresh] = {}

    def on_engine_event(self, event: EngineEvent) -> None:
        race_id = event.task.race_id
        if not race_id or self.messages.get(race_id) is None:
            return
        if isinstance(event, StateChanged | ReviewReady | ReviewRefreshed | RaceChanged):
            self.request(race_id)

    def request(self, race_id: str, compare: bool = False) -> None:
        """Draw the race again soon (coalesced); `compare`: post the comparison card now if it is not yet."""
        refresh = self._refreshes.setdefault(race_id, _Refresh())
        refresh.compare = refresh.compare or compare
        refresh.pending = True
        if refresh.job is None or refresh.job.done():
            refresh.job = asyncio.create_task(self._run(race_id, refresh), name=f"race-{race_id}")

    def busy(self) -> bool:
        return any(r.pending or (r.job is not None and not r.job.done()) for r in self._refreshes.values())

    def workers(self) -> list[asyncio.Task[None]]:
        return [r.job for r in self._refreshes.values() if r.job is not None]

    async def resume(self, since: float) -> None:
        """After a restart: draw again the races still going and those that moved since `since`, so a last
        redraw lost at shutdown does not leave a root saying "being picked" for good."""
        for race in await self.frontend.engine.store.races_in(set(RaceState)):
            if not race.state.closed or race.updated_at >= since:
                self.request(race.id)

    async def _run(self, race_id: str, refresh: _Refresh) -> None:
        try:
            while refresh.pending:
                refresh.pending = False
                compare, refresh.compare = refresh.compare, False
                try:
                    async with refresh.lock:
                        await self.draw(race_id, compare)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("race %s: could not draw it in Slack", race_id)
        finally:
            if not refresh.pending and self._refreshes.get(race_id) is refresh:
                del self._refreshes[race_id]  # nothing left to draw: a later event starts afresh

    async def draw(self, race_id: str, compare: bool = False) -> None:
        frontend = self.frontend
        ids = self.messages.get(race_id)
        if ids is None:
            return
        race, attempts = await frontend.engine.get_race(race_id)
        root = race_root(race, attempts)
        frontend.outbox.update(ids.channel, ids.thread_ts, root.text, root.blocks, urgent=True)
        if not (ids.card_ts or compare or all_done(attempts)):
            return
        card = comparison_card(race, attempts, [AttemptFigures.of(t.race_label or "?", t) for t in attempts])
        if ids.card_ts:
            frontend.outbox.update(ids.channel, ids.card_ts, card.text, card.blocks, urgent=True)
            return
        ts = await frontend.outbox.post(ids.channel, card.text, card.blocks, thread_ts=ids.thread_ts,
                                        kind="race_card")
        await self.messages.set_card(race_id, ts)
