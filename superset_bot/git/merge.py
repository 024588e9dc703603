"""Merging: a task's branch into its base (a preview that touches nothing, then the merge, which
moves the base ref only by compare-and-swap so a commit someone made meanwhile is never lost),
and the base into a task's worktree. Ref-changing work is serialised per repository with `repo_lock`.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from superset_bot.git.checkout import base_checkout, refuse_if_dirty, update_checkout
from superset_bot.git.commands import GitError, repo_lock, run_git
from superset_bot.git.diff import unmerged_files
from superset_bot.git.inventory import main_checkout
from superset_bot.git.refs import branch_commit, check_ref_arg, is_ancestor, resolve_commit, rev_parse
from superset_bot.git.worktrees import BOT_AUTHOR, identity_env, remove_worktree

STRATEGIES = ("merge", "squash", "rebase")
MERGE_ATTEMPTS = 8
_RETRY_FIRST_DELAY = 0.05


class MergeConflict(GitError):
    """The merge would conflict; `.files` lists the paths. Nothing was changed."""

    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message)
        self.files = files


class NothingToMerge(GitError):
    """The branch has nothing the base does not already have."""


@dataclass
class MergePreview:
    clean: bool
    conflicts: list[str]
    base_commit: str
    head_commit: str
    tree: str | None


@dataclass
class MergeResult:
    new_commit: str
    old_base_commit: str
    strategy: str
    updated_checkout: Path | None = field(default=None)


async def _preview(repo: Path, base_sha: str, head_sha: str) -> MergePreview:
    result = await run_git(
        repo,
        "merge-tree",
        "--write-tree",
        "--name-only",
        "-z",
        "--no-messages",
        base_sha,
        head_sha,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise GitError(f"cannot preview the merge in repo {repo}: {result.stderr.strip()}")
    tokens = result.stdout.split("\0")
    tree = tokens[0].strip()
    conflicts: list[str] = []
    for token in tokens[1:]:
        if token == "":
            break
        conflicts.append(token)
    conflicts = list(dict.fromkeys(conflicts))
    clean = result.returncode == 0
    return MergePreview(clean, conflicts, base_sha, head_sha, tree if clean else None)


async def preview_merge(repo: Path, branch: str, base: str) -> MergePreview:
    """Would merging `branch` into `base` conflict? Touches no worktree and no index."""
    head = await resolve_commit(repo, branch, "branch")
    base_sha = await resolve_commit(repo, base, "base branch")
    return await _preview(repo, base_sha, head)


async def _commit_tree(
    repo: Path, tree: str, parents: list[str], message: str, env: Mapping[str, str]
) -> str:
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    result = await run_git(repo, *args, env=env, input=message.rstrip().encode() + b"\n", bot_write=True)
    return result.stdout.strip()


async def _rebase_onto(
    repo: Path, base: str, branch: str, old: str, head: str, env: Mapping[str, str]
) -> str:
    """Replay branch's commits onto old in a throwaway detached worktree; the new tip."""
    tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="superset-rebase-"))
    try:
        await run_git(repo, "worktree", "add", "--detach", str(tmp), head, bot_write=True)
        result = await run_git(
            tmp,
            "rebase",
            "--no-autosquash",
            "--no-autostash",
            "--no-update-refs",
            "--empty=drop",
            old,
            env=env,
            bot_write=True,
            check=False,
        )
        if result.returncode != 0:
            conflicts = await unmerged_files(tmp)
            await run_git(tmp, "rebase", "--abort", check=False, bot_write=True)
            if conflicts:
                raise MergeConflict(
                    f"rebasing '{branch}' onto '{base}' conflicts in: {', '.join(conflicts)}; "
                    f"update the task from '{base}' or use the merge strategy",
                    conflicts,
                )
            raise GitError(f"could not rebase '{branch}' onto '{base}': {result.stderr.strip()}")
        return await rev_parse(tmp, "HEAD")
    finally:
        await asyncio.shield(_drop_temp_worktree(repo, tmp))


async def _drop_temp_worktree(repo: Path, tmp: Path) -> None:
    try:
        await remove_worktree(repo, tmp)
    except GitError:
        pass
    await asyncio.to_thread(shutil.rmtree, tmp, True)
    await run_git(repo, "worktree", "prune", check=False)


async def _squash_message(repo: Path, branch: str, base: str, old: str, head: str) -> str:
    log = await run_git(repo, "log", "--format=%s", "--reverse", "--no-merges", f"{old}..{head}")
    subjects = [s for s in log.stdout.splitlines() if s.strip()]
    body = "\n".join(f"* {s}" for s in subjects[:50])
    if len(subjects) > 50:
        body += f"\n* ... and {len(subjects) - 50} more"
    return f"Squash merge branch '{branch}' into {base}\n\n{body}".rstrip()


async def merge(
    repo: Path,
    branch: str,
    base: str,
    strategy: str = "merge",
    message: str | None = None,
    *,
    author: str = BOT_AUTHOR,
    on_ready: Callable[[str, str], Awaitable[None]] | None = None,
    source_ref: str | None = None,
) -> MergeResult:
    """Merge `branch` into the local branch `base` without touching any worktree but base's own.

    The base ref only moves by compare-and-swap from the commit that was checked; if it moved
    meanwhile, the merge is checked again (up to MERGE_ATTEMPTS times). A clean checkout of
    base follows the new commit; a dirty one makes the merge refuse before anything moves.
    `on_ready(old_base, new_commit)` runs just before the base ref moves (observers, tests).
    `source_ref` merges that full ref (a remote-tracking `refs/remotes/origin/main`) instead of
    the local branch `branch`, which then only names it in messages.
    """
    if strategy not in STRATEGIES:
        raise GitError(f"unknown merge strategy '{strategy}': use one of {', '.join(STRATEGIES)}")
    check_ref_arg(base, "base branch")
    check_ref_arg(branch, "branch")
    if base == branch:
        raise GitError(f"cannot merge branch '{branch}' into itself")
    env = identity_env(author)
    base_ref = f"refs/heads/{base}"
    async with repo_lock(repo):
        for attempt in range(MERGE_ATTEMPTS):
            if attempt:
                # Someone keeps committing to base: back off (with jitter) instead of spinning.
                delay = min(_RETRY_FIRST_DELAY * 2 ** (attempt - 1), 1.0)
                await asyncio.sleep(delay * (0.5 + random.random()))
            old = await branch_commit(repo, base, "base branch")
            head = (await resolve_commit(repo, check_ref_arg(source_ref, "ref"), "branch") if source_ref
                    else await branch_commit(repo, branch, "branch"))
            if await is_ancestor(repo, head, old):
                raise NothingToMerge(f"branch '{branch}' has nothing that '{base}' does not already have")
            preview = await _preview(repo, old, head)
            if not preview.clean:
                files = preview.conflicts
                raise MergeConflict(
                    f"merging '{branch}' into '{base}' would conflict in: {', '.join(files) or '(unknown files)'}; "
                    f"update the task from '{base}' and resolve them, then merge again",
                    files,
                )
            assert preview.tree is not None
            if strategy == "merge":
                text = message or f"Merge branch '{branch}' into {base}"
                new = await _commit_tree(repo, preview.tree, [old, head], text, env)
            elif strategy == "squash":
                if preview.tree == await rev_parse(repo, f"{old}^{{tree}}"):
                    raise NothingToMerge(f"branch '{branch}' changes nothing compared with '{base}'")
                text = message or await _squash_message(repo, branch, base, old, head)
                new = await _commit_tree(repo, preview.tree, [old], text, env)
            elif await is_ancestor(repo, old, head):
                new = head
            else:
                new = await _rebase_onto(repo, base, branch, old, head, env)
            if strategy == "rebase" and (new == old or await is_ancestor(repo, new, old)):
                raise NothingToMerge(f"branch '{branch}' has nothing that '{base}' does not already have")
            checkout = await base_checkout(repo, base)
            if checkout is not None:
                await refuse_if_dirty(checkout, base, old, new)
            if on_ready is not None:
                await on_ready(old, new)
            moved = await run_git(
                repo,
                "update-ref",
                "-m",
                f"superset-bot: {strategy} {branch}",
                base_ref,
                new,
                old,
                check=False,
            )
            if moved.returncode != 0:
                now = await branch_commit(repo, base, "base branch")
                if now != old:
                    continue  # someone else moved the base: check again from the top
                raise GitError(f"could not move base branch '{base}' in repo {repo}: {moved.stderr.strip()}")
            if checkout is not None:
                await update_checkout(repo, checkout, base, old, new)
            return MergeResult(new, old, strategy, checkout)
        raise GitError(
            f"base branch '{base}' kept moving while merging '{branch}' ({MERGE_ATTEMPTS} tries); try again"
        )


async def update_from_base(worktree: Path, base: str) -> list[str]:
    """Merge `base` into the task's branch in its worktree; conflicting files (left for the agent) or []."""
    check_ref_arg(base, "base branch")
    repo = await main_checkout(worktree)
    async with repo_lock(repo):
        sha = await resolve_commit(worktree, base, "base branch")
        current = await run_git(worktree, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        into = current.stdout.strip() or "HEAD"
        result = await run_git(
            worktree,
            "-c",
            "merge.autoStash=false",
            "merge",
            "--no-edit",
            "--ff",
            "--no-squash",
            "--no-verify",
            "-m",
            f"Merge branch '{base.removeprefix('refs/heads/').removeprefix('refs/remotes/')}' into {into}",
            sha,
            env=identity_env(BOT_AUTHOR),
            bot_write=True,
            check=False,
        )
        if result.returncode == 0:
            return []
        conflicts = await unmerged_files(worktree)
        if conflicts:
            return conflicts
        raise GitError(
            f"could not merge '{base}' into the task at {worktree}: {result.stderr.strip() or result.stdout.strip()}"
        )


async def merge_into_branch(repo: Path, branch: str, base: str) -> tuple[str, list[str]]:
    """Merge `base` into `branch` where no worktree has it checked out (a task whose worktree is on a
    worker host): the branch's new commit, and the files it holds with conflict markers ([] when the
    merge was clean) for the agent to resolve. `base` already in the branch changes nothing."""
    check_ref_arg(branch, "branch")
    check_ref_arg(base, "base branch")
    async with repo_lock(repo):
        head = await branch_commit(repo, branch, "task branch")
        base_sha = await resolve_commit(repo, base, "base branch")
        if await is_ancestor(repo, base_sha, head):
            return head, []
        result = await run_git(repo, "merge-tree", "--write-tree", "--name-only", "-z", "--no-messages", head,
                               base_sha, check=False)
        if result.returncode not in (0, 1):
            raise GitError(f"cannot merge '{base}' into {branch} in repo {repo}: {result.stderr.strip()}")
        tokens = result.stdout.split("\0")
        conflicts = list(dict.fromkeys(token for token in tokens[1:] if token))
        name = base.removeprefix("refs/heads/").removeprefix("refs/remotes/")
        message = f"Merge branch '{name}' into {branch}" + (
            "\n\nConflicts left with their markers for the agent:\n" + "\n".join(f"\t{c}" for c in conflicts)
            if conflicts else "")
        commit = await _commit_tree(repo, tokens[0].strip(), [head, base_sha], message, identity_env(BOT_AUTHOR))
        await run_git(repo, "update-ref", f"refs/heads/{branch}", commit, head, bot_write=True)
        return commit, conflicts
