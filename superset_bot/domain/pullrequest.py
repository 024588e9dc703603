"""A task's pull request as the bot knows it: where it is, its state, and its checks; and the codec
the store and the review carry it in (`to_dict` / `from_dict`, which never raises on a broken value)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class PullState(StrEnum):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"  # closed without merging


class CheckState(StrEnum):
    """One check's verdict, and a pull request's overall one (NONE: it has no checks)."""

    NONE = "none"
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"


# a check run's conclusion (or a commit status's state) -> what it means for a merge
_CONCLUSIONS = {
    "success": CheckState.SUCCESS, "neutral": CheckState.SUCCESS, "skipped": CheckState.SUCCESS,
    "failure": CheckState.FAILURE, "error": CheckState.FAILURE, "cancelled": CheckState.FAILURE,
    "timed_out": CheckState.FAILURE, "action_required": CheckState.FAILURE, "startup_failure": CheckState.FAILURE,
    "stale": CheckState.PENDING, "pending": CheckState.PENDING, "queued": CheckState.PENDING,
    "in_progress": CheckState.PENDING,
}


def check_state(word: object) -> CheckState:
    """A provider's word for a check's outcome as a CheckState (unknown words: still pending)."""
    return _CONCLUSIONS.get(str(word or "").lower(), CheckState.PENDING)


@dataclass(frozen=True)
class Check:
    """One check run or commit status on the pull request's head commit."""

    name: str
    state: CheckState
    summary: str = ""  # what it said (its output title and summary, or the status description)
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": str(self.state), "summary": self.summary, "url": self.url}

    @classmethod
    def from_dict(cls, data: object) -> Check | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            return None
        state = str(data.get("state"))
        return cls(data["name"], CheckState(state) if state in CheckState._value2member_map_ else CheckState.PENDING,
                   _text(data.get("summary")), _text(data.get("url")))


def overall(checks: tuple[Check, ...]) -> CheckState:
    """Failure if any failed, pending if any is still running, success when all passed; NONE without checks."""
    if not checks:
        return CheckState.NONE
    states = {c.state for c in checks}
    if CheckState.FAILURE in states:
        return CheckState.FAILURE
    if CheckState.PENDING in states:
        return CheckState.PENDING
    return CheckState.SUCCESS


@dataclass(frozen=True)
class PullRequest:
    """The pull request a task's branch is delivered through (`deliver: pr`)."""

    task_id: str
    provider: str  # "github"
    slug: str  # owner/name on the provider
    number: int
    url: str  # the page people open
    head_branch: str
    base_branch: str
    state: PullState = PullState.OPEN
    head_sha: str = ""
    checks: tuple[Check, ...] = field(default_factory=tuple)
    merged_by: str | None = None
    merge_commit: str | None = None

    @property
    def checks_state(self) -> CheckState:
        return overall(self.checks)

    @property
    def label(self) -> str:
        """How a person names it: "acme/web#12"."""
        return f"{self.slug}#{self.number}"

    def failing(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.state == CheckState.FAILURE)

    def with_checks(self, head_sha: str, checks: tuple[Check, ...]) -> PullRequest:
        return replace(self, head_sha=head_sha, checks=checks)

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "provider": self.provider, "slug": self.slug, "number": self.number,
                "url": self.url, "head_branch": self.head_branch, "base_branch": self.base_branch,
                "state": str(self.state), "head_sha": self.head_sha, "checks": [c.to_dict() for c in self.checks],
                "checks_state": str(self.checks_state), "merged_by": self.merged_by,
                "merge_commit": self.merge_commit}

    @classmethod
    def from_dict(cls, data: object) -> PullRequest | None:
        """The pull request `to_dict` described; None when the value is not one (never raises)."""
        if not isinstance(data, Mapping):
            return None
        number = data.get("number")
        names = ("task_id", "provider", "slug", "url", "head_branch", "base_branch")
        if not isinstance(number, int) or isinstance(number, bool) or not all(
                isinstance(data.get(n), str) for n in names):
            return None
        state = str(data.get("state"))
        raw_checks = data.get("checks")
        checks = tuple(c for c in (Check.from_dict(x) for x in (raw_checks if isinstance(raw_checks, list) else []))
                       if c is not None)
        return cls(data["task_id"], data["provider"], data["slug"], number, data["url"], data["head_branch"],
                   data["base_branch"], PullState(state) if state in PullState._value2member_map_ else PullState.OPEN,
                   _text(data.get("head_sha")), checks, _text(data.get("merged_by")) or None,
                   _text(data.get("merge_commit")) or None)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
