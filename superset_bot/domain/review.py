"""The review of a task's work, and its codec: `to_dict` is what is stored (as JSON) and published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from superset_bot.domain.state import TaskState, decode_state


@dataclass(frozen=True)
class Review:
    """What a reviewer needs to decide: the change, whether it merges cleanly, checks and cost."""

    task_id: str
    state: TaskState
    reason: str | None
    branch: str
    base_branch: str
    files: list[dict[str, Any]]
    commits: int
    insertions: int
    deletions: int
    clean: bool
    conflicts: list[str]
    checks: dict[str, Any] | None = None
    duration_s: float | None = None
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    final_text: str | None = None
    notes: list[str] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)  # actions the agent's permissions or sandbox refused
    base_commit: str | None = None  # where the task's branch started
    base_moved: int | None = None  # commits the base branch gained since then (None: unknown)
    pull: dict[str, Any] | None = None  # the pull request it is delivered through (PullRequest.to_dict)
    cost_estimated_from: str | None = None  # cost_usd is this model's list price for the tokens (Codex)

    @property
    def cost_estimated(self) -> bool:
        """`cost_usd` is an estimate from a list price, not what the agent reported."""
        return bool(self.cost_estimated_from) and self.cost_usd is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (the state as its string)."""
        data = asdict(self)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Review:
        """The review a `to_dict` (perhaps of an older or newer bot) describes; ValueError if it lacks a field."""
        known = {f.name: f for f in fields(cls)}
        missing = [name for name, f in known.items()
                   if name not in data and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise ValueError(f"a review without {', '.join(missing)}")
        values = {name: value for name, value in data.items() if name in known}
        values["state"] = decode_state(values["state"], values.get("task_id"))
        estimated_from = values.get("cost_estimated_from")
        if not isinstance(estimated_from, str) or not estimated_from:  # absent before estimates, or not a name
            values["cost_estimated_from"] = None
        return cls(**values)
