"""The progress of one agent run as the store keeps it and front ends show it, and its codec.

`agents.formats.Progress` folds an agent's events while it runs; what it publishes and saves is a
`ProgressSnapshot`. A snapshot is frozen and sane whatever it was built from: a value of the wrong
type, NaN or infinity, a bool where a number belongs or an absurd magnitude becomes the field's
neutral value, so readers use its attributes and never check them again. `to_dict` is the JSON the
store keeps in `Task.progress`; `from_dict` reads any value back (an older or newer bot's, a broken
one) and never raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

PHASES = ("starting", "working", "finishing", "done")
DENIALS_MAX = 10  # distinct refused actions kept for the status card and the review
TAIL_LINES = 20  # lines of output kept, by default
LINE_CHARS = 300  # chars kept of one line, by default
TAIL_LINES_MAX = 1000
LINE_CHARS_MAX = 100_000
NUMBER_MAX = 1e15  # larger counts, costs and durations are not believed


@dataclass(frozen=True, kw_only=True)
class ProgressSnapshot:
    """Running totals and the last lines of one agent run, at one moment.

    `phase` is one of PHASES; `action` what the agent is doing right now; `denials` the distinct
    actions its permissions or sandbox refused, each a sentence saying how to grant it; `error`
    why the run failed in the agent's own terms, `fatal` set when that failure means it cannot
    succeed; `carry` what the next run of this session gets, `carried` what this run got;
    `tail` the last `tail_lines` lines of output, each at most `line_chars` long.
    `cost_estimated_from` is the model whose list price `cost_usd` was estimated at (an agent that
    reports tokens only, Codex); None when the agent reported the cost itself, or there is none.
    """

    phase: str = "starting"
    action: str | None = None
    tools_used: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    cost_estimated_from: str | None = None
    duration_s: float | None = None
    session_id: str | None = None
    final_text: str | None = None
    is_error: bool = False
    lines_seen: int = 0
    denials: tuple[str, ...] = ()
    error: str | None = None
    fatal: bool = False
    carry: Mapping[str, Any] = field(default_factory=dict, hash=False)
    carried: Mapping[str, Any] = field(default_factory=dict, hash=False)
    tail: tuple[str, ...] = ()
    tail_lines: int = TAIL_LINES
    line_chars: int = LINE_CHARS

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("phase", self.phase if isinstance(self.phase, str) and self.phase in PHASES else "starting")
        for name in ("action", "session_id", "final_text", "error", "cost_estimated_from"):
            put(name, _text(getattr(self, name)))
        for name in ("tools_used", "tokens_in", "tokens_out", "lines_seen"):
            put(name, _count(getattr(self, name), 0))
        for name in ("cost_usd", "duration_s"):
            put(name, sane_number(getattr(self, name)))
        if self.cost_usd is None or not self.cost_estimated_from:  # an estimate of no cost, or from no model
            put("cost_estimated_from", None)
        for name in ("is_error", "fatal"):
            put(name, getattr(self, name) is True)
        for name in ("denials", "tail"):
            put(name, _lines(getattr(self, name)))
        for name in ("carry", "carried"):
            put(name, _object(getattr(self, name)))
        put("tail_lines", min(max(_count(self.tail_lines, TAIL_LINES), 1), TAIL_LINES_MAX))
        put("line_chars", min(max(_count(self.line_chars, LINE_CHARS), 2), LINE_CHARS_MAX))

    @property
    def cost_estimated(self) -> bool:
        """`cost_usd` is an estimate from a list price, not what the agent reported."""
        return self.cost_estimated_from is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form the store keeps (lists for the tuples, a plain dict for carry).
        `cost_estimated_from` is left out when None, so a row of a reported cost reads as before."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "cost_estimated_from" and value is None:
                continue
            data[f.name] = list(value) if isinstance(value, tuple) else \
                dict(value) if isinstance(value, Mapping) else value
        return data

    @classmethod
    def from_dict(cls, data: object) -> ProgressSnapshot:
        """The snapshot a `to_dict` describes; lenient: never raises, unknown keys are ignored and
        any field that is missing or unreadable takes its neutral value. The tail keeps its last
        `tail_lines` lines and the denials their first DENIALS_MAX, each cut to `line_chars`."""
        if not isinstance(data, Mapping):
            return NO_PROGRESS
        known = {f.name for f in fields(cls)}
        snapshot = cls(**{key: value for key, value in data.items() if isinstance(key, str) and key in known})
        limit = snapshot.line_chars
        return replace(snapshot, tail=tuple(_clip(line, limit) for line in snapshot.tail[-snapshot.tail_lines:]),
                       denials=tuple(_clip(denial, limit) for denial in snapshot.denials[:DENIALS_MAX]))


def sane_number(value: object) -> float | None:
    """A finite, sane number or None (bools, strings, NaN and absurd magnitudes are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) <= NUMBER_MAX else None


def _count(value: object, default: int) -> int:
    number = sane_number(value)
    return int(number) if number is not None and number >= 0 else default


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _lines(value: object) -> tuple[str, ...]:
    return tuple(line for line in value if isinstance(line, str)) if isinstance(value, list | tuple) else ()


def _object(value: object) -> dict[str, Any]:
    """String keys whose values are strict JSON (no NaN or infinity), so a stored row reads back equal."""
    if not isinstance(value, Mapping):
        return {}
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            continue
        try:
            kept[key] = json.loads(json.dumps(item, allow_nan=False))
        except (TypeError, ValueError, RecursionError):
            continue  # not JSON: a parser's carry is data for its next run, never code or objects
    return kept


def _clip(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` chars, marking the cut with "…" (as the agents' parsers do)."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


NO_PROGRESS = ProgressSnapshot()  # no progress yet: a task that has not run, or a row that cannot be read
