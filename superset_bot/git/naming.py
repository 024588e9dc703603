"""Names: the branch and worktree names the bot gives its tasks and its warm pool, and
`check_branch_name`, the one check of a branch name (from a person or the config) against git's rules.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from superset_bot.git.commands import GitError

BRANCH_PREFIX = "superset/"
POOL_PREFIX = ".pool-"  # warm worktrees (superset_bot/engine/pool.py): the pool's own, not housekeeping's

_TASK_ID_RE = re.compile(r"[a-z0-9]{1,32}")
# superset/<id>/<slug>; superset/<id>-<slug> is what older releases named them
_BRANCH_ID_RE = re.compile(r"^superset/([a-z0-9]{1,32})(?:[-/]|$)")
# Characters git never allows in a ref name (git-check-ref-format rules 4, 5 and 10).
_FORBIDDEN_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def slugify(prompt: str, max_len: int = 40) -> str:
    """A short, safe branch-name fragment from free text: [a-z0-9-], never empty."""
    max_len = max(1, max_len)
    # Only look at a bounded prefix: a 10,000-character prompt must not cost anything.
    text = unicodedata.normalize("NFKD", prompt[: max(2000, max_len * 8)])
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if len(slug) > max_len:
        cut = slug[:max_len]
        # Prefer ending on a word boundary when that keeps most of the text.
        if slug[max_len] != "-" and "-" in cut and cut.rindex("-") >= max_len // 2:
            cut = cut[: cut.rindex("-")]
        slug = cut.strip("-")
    return slug or "task"


def is_task_id(text: str) -> bool:
    """Could `text` be a task id (1-32 lowercase letters and digits)?"""
    return _TASK_ID_RE.fullmatch(text) is not None


def check_task_id(task_id: str) -> str:
    if not is_task_id(task_id):
        raise GitError(f"task id {task_id!r} is not valid: use 1-32 lowercase letters and digits")
    return task_id


def branch_name(task_id: str, prompt: str) -> str:
    """`superset/<id>/<slug>`: the task's branch, always a valid and harmless ref name. The id is a
    folder of its own under refs/heads/superset/, so a sandboxed agent may write its own branch (and
    any it makes beside it) without the power to move another task's."""
    return f"{BRANCH_PREFIX}{check_task_id(task_id)}/{slugify(prompt)}"


def branch_ref_dir(branch: str) -> str | None:
    """The folder under refs/heads/ that holds only this task's branches (`superset/<id>`), or None for
    a branch named by an older release (`superset/<id>-<slug>`), whose folder all tasks share."""
    task_id = task_id_from_branch(branch)
    return f"{BRANCH_PREFIX}{task_id}" if task_id and branch.startswith(f"{BRANCH_PREFIX}{task_id}/") else None


def task_id_from_branch(branch: str) -> str | None:
    match = _BRANCH_ID_RE.match(branch)
    return match.group(1) if match else None


def is_pool_spare(path: Path, branch: str | None) -> bool:
    """A warm worktree nobody took yet (detached, pool name): the pool's to keep or remove."""
    return path.name.startswith(POOL_PREFIX) and not branch


class BadBranchName(ValueError):
    """A name git would not take as a branch; `str()` names it and says why, `.reason` only why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name!r} is not a valid branch name: {reason}")
        self.name = name
        self.reason = reason


def _branch_name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it starts with '-', so git would read it as an option"
    if name == "HEAD":
        return "'HEAD' is git's name for the current commit"
    bad = _FORBIDDEN_REF_CHARS.search(name)
    if bad:
        char = bad.group()
        if char == " " or ord(char) < 0x20 or char == "\x7f":
            return "it contains a space or a control character"
        return f"it contains {char!r}"
    if ".." in name:
        return "it contains '..'"
    if "@{" in name:
        return "it contains '@{'"
    if name.startswith("/"):
        return "it starts with '/'"
    if name.endswith("/"):
        return "it ends with '/'"
    if "//" in name:
        return "it contains '//'"
    if name.endswith("."):
        return "it ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return "it starts with '.'" if part == name else f"its part {part!r} starts with '.'"
        if part.endswith(".lock"):
            return "it ends with '.lock'" if part == name else f"its part {part!r} ends with '.lock'"
    return None


def check_branch_name(name: str) -> str:
    """`name` when git would accept it as a branch name (`git check-ref-format --branch`), else BadBranchName.

    The rules: not empty, not `HEAD`, no leading '-'; no space, control character, `~ ^ : ? * [ \\`,
    `..` or `@{`; no leading or trailing '/', no `//`, no trailing '.'; no '/'-separated part that
    starts with '.' or ends with `.lock`.
    """
    problem = _branch_name_problem(name)
    if problem is not None:
        raise BadBranchName(name, problem)
    return name
