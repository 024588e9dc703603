"""A race: one prompt tried by several agents at once, each attempt a task of its own, one kept.

The attempts share a base commit, a thread and a root message; each keeps its own worktree, branch,
state and review. `RaceState` is the race's own small machine (its codec beside it); the figures the
comparison card shows come from each attempt's stored review (`AttemptFigures.of`), so the card and
the attempt's own review never disagree. Nothing here ranks attempts: people pick.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from superset_bot.domain.state import ACTIVE, CLOSED, TaskState
from superset_bot.domain.task import Task

LABELS = "ABCDEFGHIJ"  # attempt names, in the order they were started
MAX_ATTEMPTS_LIMIT = len(LABELS)


class RaceState(StrEnum):
    OPEN = "open"  # attempts run or wait for a pick
    PICKING = "picking"  # a claim: one attempt is being merged, the others will be discarded
    DISCARDING = "discarding"  # a claim: Discard all is working
    PICKED = "picked"  # one attempt merged, the others discarded
    DISCARDED = "discarded"  # no attempt kept (Discard all, or every attempt closed one by one)

    @property
    def closed(self) -> bool:
        return self in (RaceState.PICKED, RaceState.DISCARDED)


# which race state may follow which; the store refuses any other move
RACE_TRANSITIONS: Mapping[RaceState, frozenset[RaceState]] = {
    RaceState.OPEN: frozenset({RaceState.PICKING, RaceState.DISCARDING, RaceState.DISCARDED}),
    RaceState.PICKING: frozenset({RaceState.PICKED, RaceState.OPEN}),  # back to open: the merge was refused
    RaceState.DISCARDING: frozenset({RaceState.DISCARDED}),
    RaceState.PICKED: frozenset(),
    RaceState.DISCARDED: frozenset(),
}


def decode_race_state(value: object) -> RaceState:
    """A stored race state; an unknown word reads as OPEN (a newer bot's state must not hide the race)."""
    text = str(value or "")
    return RaceState(text) if text in RaceState._value2member_map_ else RaceState.OPEN


@dataclass(frozen=True)
class Race:
    id: str
    repo: str
    prompt: str
    requester: str
    presets: tuple[str, ...]  # one per attempt, in label order
    base_branch: str
    base_commit: str  # every attempt starts here
    channel: str | None = None
    state: RaceState = RaceState.OPEN
    winner: str | None = None  # the picked attempt's task id (set with the PICKING claim)
    closed_by: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(LABELS[: len(self.presets)])

    def encode_presets(self) -> str:
        return json.dumps(list(self.presets))


def decode_presets(raw: object) -> tuple[str, ...]:
    try:
        value = json.loads(str(raw))
    except (ValueError, TypeError):
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def attempt_presets(count: int | None, presets: Sequence[str], default: str, limit: int) -> tuple[str, ...]:
    """The preset of each attempt: `count` of `default` (or of the one preset named), or one attempt per
    preset named. ValueError with a sentence for a person when the numbers do not add up."""
    names = tuple(presets)
    if count is not None and count < 2:
        raise ValueError(f"A race needs at least 2 attempts; {count} is a spawn.")
    if len(names) > 1:
        if count is not None and count != len(names):
            raise ValueError(f"{count} attempts but {len(names)} presets named; give one count or the other "
                             "(each preset named is one attempt).")
        chosen = names
    else:
        if count is None:
            raise ValueError("Say how many attempts (e.g. `race 3 fix the flaky test`), or name two or more "
                             "presets with `--presets a,b`.")
        chosen = (names[0] if names else default,) * count
    if len(chosen) > limit:
        raise ValueError(f"{len(chosen)} attempts is more than this bot allows in one race ({limit}; "
                         "SUPERSET_RACE_MAX_ATTEMPTS).")
    return chosen


# "A: also add tests", "B, C: use the new API", "attempt b: ...", "*A*: ..." (bold in Slack), "ab12cd: ..."
_ADDRESS = re.compile(r"^\s*(?:attempts?\s+)?([*_~]*[A-Za-z0-9]{1,12}[*_~]*"
                      r"(?:\s*(?:,|&|\band\b)\s*[*_~]*[A-Za-z0-9]{1,12}[*_~]*)*)\s*:\s*(.*)$",
                      re.DOTALL | re.IGNORECASE)


class UnknownAttempt(ValueError):
    """A follow-up addressed to an attempt the race does not have ("D: ..." in a race of three)."""


def address(text: str, attempts: Mapping[str, str]) -> tuple[tuple[str, ...], str]:
    """Which attempts a follow-up in a race thread is for, and its text without the address.

    `attempts` maps each label ("A") to its task id. A message that starts with labels or task ids
    and a colon goes to those; anything else goes to every attempt (so "A lot broke: fix it" does
    not pick A unless it is written "A: ..."). A single letter that is no attempt's label ("D: ...")
    raises UnknownAttempt rather than sending the text to everyone. Returns task ids in label order."""
    everyone = tuple(attempts[label] for label in sorted(attempts)), (text or "").strip()
    match = _ADDRESS.match(text or "")
    if not match:
        return everyone
    words = [w.strip("*_~ ") for w in re.split(r"\s*(?:,|&|\band\b)\s*", match.group(1), flags=re.IGNORECASE)]
    words = [w for w in words if w]
    by_id = {task_id: label for label, task_id in attempts.items()}
    named: set[str] = set()
    for word in words:
        label = word.upper() if word.upper() in attempts else by_id.get(word.lower())
        if label is not None:
            named.add(label)
        elif len(word) == 1 and word.upper() in LABELS:
            known = ", ".join(sorted(attempts))
            raise UnknownAttempt(f"This race has no attempt {word.upper()} (its attempts: {known}); nothing was sent.")
        else:
            return everyone  # ordinary words before a colon: the whole text is for everyone
    return tuple(attempts[label] for label in sorted(named)), match.group(2).strip()


@dataclass(frozen=True)
class AttemptFigures:
    """One attempt's row on the comparison card, read from its task and its stored review."""

    label: str
    task_id: str
    preset: str
    state: str
    reviewed: bool  # False: no review yet (still running), the figures below are what progress knows
    files: int | None = None
    insertions: int | None = None
    deletions: int | None = None
    checks: bool | None = None  # True passed, False failed, None: none ran
    checks_summary: str = ""
    clean: bool | None = None  # merges cleanly into the base (None: unknown)
    conflicts: tuple[str, ...] = ()
    duration_s: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    cost_estimated_from: str | None = None  # the model whose list price the cost is estimated from
    pull_checks: str | None = None  # the pull request's checks (success, failure, pending), when delivered as one

    @classmethod
    def of(cls, label: str, task: Task) -> AttemptFigures:
        review = task.review_data()
        progress = task.progress_snapshot()
        if not review or task.state in ACTIVE:
            return cls(label, task.id, task.preset, str(task.state), False,
                       tokens_in=progress.tokens_in or None, tokens_out=progress.tokens_out or None,
                       cost_usd=progress.cost_usd, cost_estimated_from=progress.cost_estimated_from)
        checks = review.get("checks") if isinstance(review.get("checks"), Mapping) else None
        pull = review.get("pull") if isinstance(review.get("pull"), Mapping) else None
        files = review.get("files")
        return cls(
            label, task.id, task.preset, str(task.state), True,
            files=len(files) if isinstance(files, list) else None,
            insertions=_int(review.get("insertions")), deletions=_int(review.get("deletions")),
            checks=bool(checks.get("passed")) if checks is not None else None,
            checks_summary=str(checks.get("summary") or "") if checks is not None else "",
            clean=review.get("clean") if isinstance(review.get("clean"), bool) else None,
            conflicts=tuple(str(c) for c in review.get("conflicts") or () if isinstance(c, str)),
            duration_s=_float(review.get("duration_s")),
            tokens_in=_int(review.get("tokens_in")), tokens_out=_int(review.get("tokens_out")),
            cost_usd=_float(review.get("cost_usd")),
            cost_estimated_from=str(review["cost_estimated_from"]) if isinstance(
                review.get("cost_estimated_from"), str) else None,
            pull_checks=str(pull.get("checks_state") or "") or None if pull is not None else None,
        )

    @property
    def done(self) -> bool:
        """The attempt's agent has ended (reviewable, being closed, or closed)."""
        return self.state not in ACTIVE


def all_done(attempts: Sequence[Task]) -> bool:
    """Every attempt's agent has ended: the comparison card is due."""
    return bool(attempts) and all(t.state not in ACTIVE for t in attempts)


def settled_without_pick(attempts: Sequence[Task]) -> bool:
    """Every attempt is closed and none merged: the race is over with nothing kept."""
    return bool(attempts) and all(t.state in CLOSED for t in attempts) and \
        not any(t.state == TaskState.MERGED for t in attempts)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
