"""The one interface pull-request delivery needs from a code host (GitHub today; GitLab's merge
requests map onto the same calls), and the errors its providers raise.

A provider never puts its credentials in an error: `ForgeError.reason` is one line for a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from superset_bot.domain.pullrequest import Check


@dataclass(frozen=True)
class RemotePull:
    """A pull request as the provider reports it right now."""

    number: int
    url: str
    state: str  # "open" | "closed"
    merged: bool
    head_sha: str
    head_branch: str
    base_branch: str
    merged_by: str | None = None
    merge_commit: str | None = None
    closed_by: str | None = None  # who closed it unmerged, when the host says


class ForgeError(Exception):
    """The provider refused or could not be reached; `reason` says why in one line, no credentials."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class RateLimited(ForgeError):
    """The provider's request budget is spent until `reset_at` (epoch seconds)."""

    def __init__(self, reason: str, reset_at: float, status: int | None = None) -> None:
        super().__init__(reason, status)
        self.reset_at = reset_at


class NotMergeable(ForgeError):
    """The provider refused the merge: conflicts, failing required checks, or the request is closed."""


class HeadChanged(ForgeError):
    """The pull request's head moved since the bot last pushed it (someone pushed to the branch)."""


class Forge(Protocol):
    """Pull requests on one code host. `slug` is the repository there, "owner/name"."""

    name: str  # "GitHub": how the thread names the host

    async def find_open_pull(self, slug: str, head: str, base: str) -> RemotePull | None:
        """The open pull request from branch `head` into `base`, if there is one."""

    async def open_pull(self, slug: str, head: str, base: str, title: str, body: str) -> RemotePull:
        """Open a pull request from `head` (a branch already pushed) into `base`."""

    async def get_pull(self, slug: str, number: int) -> RemotePull: ...

    async def checks(self, slug: str, sha: str) -> tuple[Check, ...]:
        """The check runs and commit statuses on commit `sha`."""

    async def merge_pull(self, slug: str, number: int, *, method: str, sha: str, title: str, message: str) -> str:
        """Merge it with `method` (merge, squash, rebase) if its head is still `sha`; the commit its base
        now points at. NotMergeable, HeadChanged or ForgeError otherwise."""

    async def close_pull(self, slug: str, number: int) -> None: ...

    async def delete_branch(self, slug: str, branch: str) -> None:
        """Delete the branch on the host (already gone: fine)."""

    async def close(self) -> None:
        """Release connections."""
