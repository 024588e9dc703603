"""The soak's invariants: database, git and worktrees agree; each thread shows its task's state;
Slack rejected nothing and the outbox left nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from soak.bot import SoakBot, slack_ids
from soak.workdir import git
from superset_bot.frontends.slack.blocks import (
    ACTION_CANCEL,
    ACTION_DISCARD,
    ACTION_MERGE,
    STATE_EMOJI,
    STATE_LABEL,
)
from superset_bot.git.naming import POOL_PREFIX
from superset_bot.store import CLOSED_STATES, MERGED, PREPARING, QUEUED, REVIEWABLE_STATES, RUNNING, Task


def worktrees(repo: Path) -> set[str]:
    paths = {line[len("worktree "):] for line in git(repo, "worktree", "list", "--porcelain").splitlines()
             if line.startswith("worktree ")}
    return {str(Path(p).resolve()) for p in paths} - {str(repo.resolve())}


def pooled(path: str) -> bool:
    """A warm-pool worktree (SUPERSET_POOL_SIZE, superset_bot/engine/pool.py) belongs to the pool, not to a lost task."""
    return Path(path).name.startswith(POOL_PREFIX)


def check_git(sb: SoakBot, tasks: dict[str, Task]) -> list[str]:
    """Database, git and the worktrees folder agree: nothing orphaned, nothing lost."""
    problems: list[str] = []
    repo = sb.repo
    branches = set(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/superset/").split())
    registered = worktrees(repo)
    root = sb.settings.worktrees_dir
    on_disk = {str(p.resolve()) for repo_dir in root.iterdir() if repo_dir.is_dir() for p in repo_dir.iterdir()} \
        if root.is_dir() else set()  # worktrees/<repo>/<task>
    keep_worktree = {str(Path(t.worktree).resolve()) for t in tasks.values()
                     if t.worktree and t.state in REVIEWABLE_STATES}
    keep_branch = {t.branch for t in tasks.values() if t.branch and t.state in REVIEWABLE_STATES}
    for path in sorted(registered - keep_worktree):
        if not pooled(path):
            problems.append(f"orphan worktree registered in git: {path}")
    for path in sorted(on_disk - keep_worktree - registered):
        if not pooled(path):
            problems.append(f"orphan folder in {root}: {path}")
    for branch in sorted(branches - keep_branch):
        if not pooled(branch):
            problems.append(f"orphan branch {branch}")
    for task in tasks.values():
        where = f"task {task.id} ({task.state})"
        if task.state in REVIEWABLE_STATES and task.worktree:
            path = str(Path(task.worktree).resolve())
            if path not in registered or not Path(path).is_dir():
                problems.append(f"{where}: its worktree {path} is gone but the task awaits review")
            if task.branch and task.branch not in branches:
                problems.append(f"{where}: its branch {task.branch} is gone but the task awaits review")
        if task.state in CLOSED_STATES:
            if task.worktree and (Path(task.worktree).exists() or str(Path(task.worktree).resolve()) in registered):
                problems.append(f"{where}: its worktree {task.worktree} is still there")
            if task.branch and task.branch in branches:
                problems.append(f"{where}: its branch {task.branch} is still there")
        if task.state == MERGED:
            base = task.base_branch or "main"
            merged = task.merge_commit and subprocess.run(
                ["git", "merge-base", "--is-ancestor", task.merge_commit, base], cwd=repo,
                capture_output=True).returncode == 0
            if not merged:
                problems.append(f"{where}: merge commit {task.merge_commit} is not on {base}")
    return problems


def check_threads(sb: SoakBot, tasks: Iterable[Task]) -> list[str]:
    """Each thread's root (the task's live card), its reaction and the review show the task's state now."""
    problems: list[str] = []
    for task in tasks:
        ids = slack_ids(sb, task)
        if not (task.channel and ids.thread_ts):
            problems.append(f"task {task.id}: no thread")
            continue
        where = f"task {task.id} ({task.state})"
        label, emoji = STATE_LABEL[task.state], STATE_EMOJI[task.state]
        root = sb.fake.messages.get((task.channel, ids.card))
        if root is None:
            problems.append(f"{where}: its root message was never posted")
            continue
        # the card is the task's one live message (a race's attempt: a reply in the race's thread):
        # "Task ID · label · elapsed[ · action]: prompt", or "Attempt A (ID) · label · ..."
        who = f"Attempt {task.race_label} ({task.id})" if task.race_label else f"Task {task.id}"
        if not (root.text or "").startswith(f"{who} · {label} · "):
            problems.append(f"{where}: the root message says {(root.text or '')[:80]!r}")
        if root.reactions != {emoji}:
            problems.append(f"{where}: the root's reactions are {sorted(root.reactions)}, expected [{emoji!r}]")
        cancel = any(el.get("action_id") == ACTION_CANCEL for block in root.blocks or []
                     if block.get("type") == "actions" for el in block.get("elements", []))
        if cancel != (task.state in (QUEUED, PREPARING, RUNNING)):
            problems.append(f"{where}: the root {'offers' if cancel else 'lacks'} Cancel")
        if ids.status_ts:
            problems.append(f"{where}: a second status card {ids.status_ts} in the thread")
        review = sb.fake.messages.get((task.channel, ids.review_ts)) if ids.review_ts else None
        if ids.review_ts and review is None:
            problems.append(f"{where}: review_ts {ids.review_ts} is not a message in Slack")
        if task.state in REVIEWABLE_STATES and task.runs >= 1 and task.branch and not ids.review_ts:
            problems.append(f"{where}: the agent ran but no review was posted")
        if review is not None:
            live = {el.get("action_id") for block in review.blocks or [] if block.get("type") == "actions"
                    for el in block.get("elements", [])}
            if task.state in CLOSED_STATES and live & {ACTION_MERGE, ACTION_DISCARD}:
                problems.append(f"{where}: its review still has live buttons {sorted(live)}")
            if task.state in REVIEWABLE_STATES and ACTION_DISCARD not in live:
                problems.append(f"{where}: its review has no Discard button")
        seen: Counter[str] = Counter(json.dumps([m.text, m.blocks]) for m in sb.fake.thread(task.channel, ids.thread_ts)
                                     if not m.deleted)
        for content, n in seen.items():
            if n > 1:
                problems.append(f"{where}: the same message was posted {n} times: {content[:120]}")
    return problems


def check_slack(sb: SoakBot) -> list[str]:
    problems = [f"Slack rejected {c.method} ({c.status}): {json.dumps(c.response)[:200]}" for c in sb.fake.rejected]
    assert sb.slack.outbox is not None
    if sb.slack.outbox.pending:
        problems.append(f"the outbox still holds {sb.slack.outbox.pending} updates")
    return problems


async def eventually(check: Callable[[], Awaitable[list[str]]], timeout: float) -> list[str]:
    """Slack is eventually consistent with the store: retry a check until it passes or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        problems = await check()
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(0.5)

