"""A task's worktree: creating it on a new branch, committing the work left in it, and removing it
with its branch. Either all of a worktree is created or nothing is left behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from superset_bot.git.commands import GitError, repo_lock, run_git
from superset_bot.git.inventory import worktree_entries
from superset_bot.git.naming import branch_name
from superset_bot.git.refs import branch_exists, check_ref_arg, default_branch, resolve_commit, rev_parse

BOT_AUTHOR = "superset-bot <superset-bot@localhost>"

_AUTHOR_RE = re.compile(r"^\s*([^<>]*?)\s*<([^<>\s]*)>\s*$")


def identity_env(author: str) -> dict[str, str]:
    """The git environment that makes `author` ("Name <email>") author and committer."""
    match = _AUTHOR_RE.match(author)
    if not match or not match.group(1):
        raise GitError(f"author {author!r} must look like 'Name <email>'")
    name, email = match.group(1), match.group(2)
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(path))


def _force_rmtree(path: str) -> None:
    """Delete a tree even when an agent left read-only files or folders in it."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path)
        return
    except OSError:
        pass

    def allow(folder: str) -> None:
        try:
            os.chmod(folder, stat.S_IMODE(os.lstat(folder).st_mode) | stat.S_IRWXU)
        except OSError:
            pass

    allow(path)
    # Top-down, so each folder is opened up before os.walk tries to list it.
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                allow(full)
    shutil.rmtree(path)


async def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree however dirty or locked; no dir, no admin entry is left."""
    target = os.path.realpath(path)
    if target == os.path.realpath(repo):
        raise GitError(f"refusing to remove {path}: it is the repository's main checkout")
    entries = await worktree_entries(repo)
    if entries and os.path.realpath(entries[0].path) == target:
        raise GitError(f"refusing to remove {path}: it is the repository's main checkout")
    registered = any(os.path.realpath(e.path) == target for e in entries[1:])
    if registered:
        result = await run_git(
            repo, "worktree", "remove", "--force", "--force", str(path), check=False, bot_write=True
        )
        if result.returncode == 0 and not await asyncio.to_thread(os.path.lexists, path):
            return
        await run_git(repo, "worktree", "unlock", str(path), check=False)
    if await asyncio.to_thread(os.path.lexists, path):
        is_worktree_dir = registered or await asyncio.to_thread(os.path.isfile, os.path.join(path, ".git"))
        if not is_worktree_dir:
            raise GitError(f"refusing to delete {path}: it is not a git worktree")
        await asyncio.to_thread(_force_rmtree, str(path))
    if registered:
        await run_git(repo, "worktree", "prune")
        if any(os.path.realpath(e.path) == target for e in await worktree_entries(repo)):
            raise GitError(f"could not remove the worktree entry for {path} from repo {repo}")


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    base_branch: str
    base_commit: str


async def create_worktree(
    repo: Path, root: Path, task_id: str, prompt: str, base: str | None = None, start: str | None = None
) -> Worktree:
    """A fresh worktree at root/<task_id> on a new branch from base (default: the default branch).

    `start` is the commit to start from when it is not the base's own (the remote's newer tip of it,
    see engine/bases.py); the task still belongs to `base`. Either everything is created or nothing
    is left behind.
    """
    branch = branch_name(task_id, prompt)
    path = _absolute(root) / task_id
    async with repo_lock(repo):
        base_branch = base if base is not None else await default_branch(repo)
        sha = await resolve_commit(repo, start if start is not None else base_branch,
                                   "start commit" if start is not None else "base branch")
        if await asyncio.to_thread(os.path.lexists, path):
            raise GitError(f"cannot create the worktree for task {task_id}: {path} already exists")
        if await branch_exists(repo, branch):
            raise GitError(f"cannot create the worktree for task {task_id}: branch '{branch}' already exists")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        try:
            await run_git(repo, "worktree", "add", "-b", branch, str(path), sha, bot_write=True)
        except BaseException as exc:
            await asyncio.shield(_undo_create(repo, path, branch))
            if isinstance(exc, GitError):
                raise GitError(
                    f"cannot create the worktree for task {task_id} at {path}: {exc}",
                    exc.args_,
                    exc.returncode,
                    exc.stderr,
                ) from exc
            raise
    return Worktree(path=path, branch=branch, base_branch=base_branch, base_commit=sha)


async def _undo_create(repo: Path, path: Path, branch: str) -> None:
    try:
        await remove_worktree(repo, path)
    except GitError:
        pass
    # The path did not exist before (checked under the lock), so whatever is there now is ours.
    await asyncio.to_thread(_force_rmtree, str(path))
    await run_git(repo, "worktree", "prune", check=False)
    await run_git(repo, "branch", "-D", branch, check=False)


async def commit_pending(
    worktree: Path, message: str, author: str = BOT_AUTHOR, exclude: Iterable[str] = (),
    exclude_globs: Iterable[str] = (),
) -> str | None:
    """Commit everything not yet committed (untracked too, .gitignore respected); None when clean.

    `exclude` names paths never to commit, such as files a preset copied in (a `.env` with secrets);
    `exclude_globs` are patterns of the same kind (an agent's own chat files, `.aider*`); what the
    agent staged itself stays staged.
    """
    env = identity_env(author)
    excluded = [f":(exclude,literal){path.strip('/')}" for path in exclude if path.strip("/")]
    globs = [pattern.strip("/") for pattern in exclude_globs if pattern.strip("/")]
    # a pattern that names a directory (".aider*" for ".aider.tags.cache.v4/") keeps out what is in it
    excluded += [f":(exclude,glob){spec}" for pattern in globs for spec in (pattern, f"{pattern}/**")]
    await run_git(worktree, "add", "-A", "--", ".", *excluded, bot_write=True)
    staged = await run_git(worktree, "diff", "--cached", "--quiet", check=False)
    merging = await run_git(worktree, "rev-parse", "--verify", "--quiet", "MERGE_HEAD", check=False)
    if staged.returncode == 0 and merging.returncode != 0:
        return None
    if staged.returncode not in (0, 1):
        raise GitError(f"cannot read the changes in {worktree}: {staged.stderr.strip()}")
    text = message.strip() or "superset-bot: work in progress"
    await run_git(
        worktree,
        "commit",
        "--quiet",
        "--no-verify",
        "--allow-empty",
        "-F",
        "-",
        bot_write=True,
        env=env,
        input=text.encode() + b"\n",
    )
    return await rev_parse(worktree, "HEAD")


async def discard(repo: Path, worktree: Path | None, branch: str | None) -> None:
    """Remove the task's worktree (even dirty or locked) and delete its branch. Idempotent."""
    if worktree is not None:
        await remove_worktree(repo, _absolute(worktree))
    if branch:
        check_ref_arg(branch, "branch")
        async with repo_lock(repo):
            if await branch_exists(repo, branch):
                await run_git(repo, "branch", "-D", branch)
