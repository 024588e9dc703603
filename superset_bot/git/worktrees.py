"""The git worktree engine: one worktree and branch per task, inspected and merged safely.

Everything here runs git as asyncio subprocesses (see superset_bot.git.commands) and does file-tree
work in threads, so many tasks can be inspected while agents run. Ref-changing work is
serialised per repository with `repo_lock`; the base branch only ever moves by
compare-and-swap, so a commit someone else made meanwhile is never lost; a running
agent's worktree is only read (live views go through a temporary index).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from superset_bot.git.commands import (
    GitError,
    check_ref_arg,
    default_branch,
    repo_lock,
    resolve_commit,
    run_git,
)

BOT_AUTHOR = "superset-bot <superset-bot@localhost>"
BRANCH_PREFIX = "superset/"
POOL_PREFIX = ".pool-"  # warm worktrees (superset_bot/engine/pool.py): the pool's own, not housekeeping's
STRATEGIES = ("merge", "squash", "rebase")
MERGE_ATTEMPTS = 8
_RETRY_FIRST_DELAY = 0.05

_TASK_ID_RE = re.compile(r"[a-z0-9]{1,32}")
_BRANCH_ID_RE = re.compile(r"^superset/([a-z0-9]{1,32})(?:-|$)")
_AUTHOR_RE = re.compile(r"^\s*([^<>]*?)\s*<([^<>\s]*)>\s*$")
_DIFF_OPTS = ("-M", "--no-ext-diff", "--no-textconv", "--no-color")


class MergeConflict(GitError):
    """The merge would conflict; `.files` lists the paths. Nothing was changed."""

    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message)
        self.files = files


class BaseCheckoutDirty(GitError):
    """The base branch is checked out somewhere with changes a merge could overwrite."""

    def __init__(self, message: str, checkout: Path, files: list[str]) -> None:
        super().__init__(message)
        self.checkout = checkout
        self.files = files


class NothingToMerge(GitError):
    """The branch has nothing the base does not already have."""


# --------------------------------------------------------------------------- names


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


def check_task_id(task_id: str) -> str:
    if not _TASK_ID_RE.fullmatch(task_id):
        raise GitError(f"task id {task_id!r} is not valid: use 1-32 lowercase letters and digits")
    return task_id


def branch_name(task_id: str, prompt: str) -> str:
    """`superset/<id>-<slug>`: the task's branch, always a valid and harmless ref name."""
    return f"{BRANCH_PREFIX}{check_task_id(task_id)}-{slugify(prompt)}"


def task_id_from_branch(branch: str) -> str | None:
    match = _BRANCH_ID_RE.match(branch)
    return match.group(1) if match else None


def _identity_env(author: str) -> dict[str, str]:
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


# --------------------------------------------------------------------------- small helpers


def _split_z(text: str) -> list[str]:
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(path))


async def _rev(cwd: Path, ref: str) -> str:
    return (await run_git(cwd, "rev-parse", "--verify", "--quiet", ref)).stdout.strip()


async def _branch_commit(repo: Path, branch: str, what: str) -> str:
    check_ref_arg(branch, what)
    result = await run_git(
        repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False
    )
    sha = result.stdout.strip()
    if result.returncode != 0 or not sha:
        raise GitError(f"{what} '{branch}' does not exist in repo {repo}")
    return sha


async def _is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = await run_git(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if result.returncode not in (0, 1):
        raise GitError(f"cannot compare commits in {repo}: {result.stderr.strip()}")
    return result.returncode == 0


async def _unmerged_files(cwd: Path) -> list[str]:
    result = await run_git(cwd, "diff", "--name-only", "-z", "--diff-filter=U", check=False)
    return list(dict.fromkeys(_split_z(result.stdout)))


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


# --------------------------------------------------------------------------- worktree list


@dataclass
class _Entry:
    path: Path
    head: str | None = None
    branch: str | None = None  # full ref, refs/heads/...
    bare: bool = False
    detached: bool = False
    locked: bool = False
    prunable: bool = False


async def _worktree_entries(repo: Path) -> list[_Entry]:
    out = (await run_git(repo, "worktree", "list", "--porcelain", "-z")).stdout
    entries: list[_Entry] = []
    current: _Entry | None = None
    for token in out.split("\0"):
        if token == "":
            current = None
            continue
        key, _, value = token.partition(" ")
        if key == "worktree":
            current = _Entry(Path(value))
            entries.append(current)
        elif current is None:
            continue
        elif key == "HEAD":
            current.head = value
        elif key == "branch":
            current.branch = value
        elif key == "bare":
            current.bare = True
        elif key == "detached":
            current.detached = True
        elif key == "locked":
            current.locked = True
        elif key == "prunable":
            current.prunable = True
    return entries


async def _main_checkout(path: Path) -> Path:
    """The main worktree (or bare repo dir) that `path`, any worktree of it, belongs to."""
    entries = await _worktree_entries(path)
    if not entries:
        raise GitError(f"{path} is not inside a git repository")
    return entries[0].path


async def _remove_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree however dirty or locked; no dir, no admin entry is left."""
    target = _real(path)
    if target == _real(repo):
        raise GitError(f"refusing to remove {path}: it is the repository's main checkout")
    entries = await _worktree_entries(repo)
    if entries and _real(entries[0].path) == target:
        raise GitError(f"refusing to remove {path}: it is the repository's main checkout")
    registered = any(_real(e.path) == target for e in entries[1:])
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
        if any(_real(e.path) == target for e in await _worktree_entries(repo)):
            raise GitError(f"could not remove the worktree entry for {path} from repo {repo}")


# --------------------------------------------------------------------------- create


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    base_branch: str
    base_commit: str


async def create_worktree(
    repo: Path, root: Path, task_id: str, prompt: str, base: str | None = None
) -> Worktree:
    """A fresh worktree at root/<task_id> on a new branch from base (default: the default branch).

    Either everything is created or nothing is left behind.
    """
    branch = branch_name(task_id, prompt)
    path = _absolute(root) / task_id
    async with repo_lock(repo):
        base_branch = base if base is not None else await default_branch(repo)
        sha = await resolve_commit(repo, base_branch, "base branch")
        if await asyncio.to_thread(os.path.lexists, path):
            raise GitError(f"cannot create the worktree for task {task_id}: {path} already exists")
        existing = await run_git(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        if existing.returncode == 0:
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
        await _remove_worktree(repo, path)
    except GitError:
        pass
    # The path did not exist before (checked under the lock), so whatever is there now is ours.
    await asyncio.to_thread(_force_rmtree, str(path))
    await run_git(repo, "worktree", "prune", check=False)
    await run_git(repo, "branch", "-D", branch, check=False)


# --------------------------------------------------------------------------- commit


async def commit_pending(
    worktree: Path, message: str, author: str = BOT_AUTHOR, exclude: Iterable[str] = (),
    exclude_globs: Iterable[str] = (),
) -> str | None:
    """Commit everything not yet committed (untracked too, .gitignore respected); None when clean.

    `exclude` names paths never to commit, such as files a preset copied in (a `.env` with secrets);
    `exclude_globs` are patterns of the same kind (an agent's own chat files, `.aider*`); what the
    agent staged itself stays staged.
    """
    env = _identity_env(author)
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
    return await _rev(worktree, "HEAD")


# --------------------------------------------------------------------------- summaries


@dataclass
class FileChange:
    path: str
    old_path: str | None
    status: str  # 'A', 'M', 'D', 'R', 'C', 'T'
    added: int | None
    deleted: int | None
    binary: bool


@dataclass
class DiffSummary:
    files: list[FileChange]
    commits: int
    insertions: int
    deletions: int
    merge_base: str
    head: str


def _parse_numstat(text: str) -> list[tuple[int | None, int | None, str]]:
    tokens = text.split("\0")
    result: list[tuple[int | None, int | None, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token:
            continue
        parts = token.split("\t", 2)
        if len(parts) != 3:
            continue
        added_s, deleted_s, path = parts
        if path == "":  # rename/copy: old and new path follow as separate fields
            path = tokens[i + 1] if i + 1 < len(tokens) else ""
            i += 2
        added = None if added_s == "-" else int(added_s)
        deleted = None if deleted_s == "-" else int(deleted_s)
        result.append((added, deleted, path))
    return result


def _parse_name_status(text: str) -> list[tuple[str, str, str | None]]:
    tokens = _split_z(text)
    result: list[tuple[str, str, str | None]] = []
    i = 0
    while i < len(tokens):
        status = tokens[i]
        i += 1
        if not status:
            continue
        letter = status[0]
        if letter in "RC":
            old, new = tokens[i], tokens[i + 1]
            i += 2
            result.append((letter, new, old))
        else:
            result.append((letter, tokens[i], None))
            i += 1
    return result


async def _diff_files(cwd: Path, *spec: str, env: Mapping[str, str] | None = None) -> list[FileChange]:
    numstat_res, names_res = await asyncio.gather(
        run_git(cwd, "diff", *_DIFF_OPTS, "--numstat", "-z", *spec, env=env),
        run_git(cwd, "diff", *_DIFF_OPTS, "--name-status", "-z", *spec, env=env),
    )
    numstat = _parse_numstat(numstat_res.stdout)
    names = _parse_name_status(names_res.stdout)
    by_path = {path: (added, deleted) for added, deleted, path in numstat}
    files: list[FileChange] = []
    for index, (status, path, old) in enumerate(names):
        if index < len(numstat) and numstat[index][2] == path:
            added, deleted = numstat[index][0], numstat[index][1]
        else:
            added, deleted = by_path.get(path, (0, 0))
        files.append(FileChange(path, old, status, added, deleted, binary=added is None))
    return files


def _summary(files: list[FileChange], commits: int, merge_base: str, head: str) -> DiffSummary:
    return DiffSummary(
        files=files,
        commits=commits,
        insertions=sum(f.added or 0 for f in files),
        deletions=sum(f.deleted or 0 for f in files),
        merge_base=merge_base,
        head=head,
    )


async def _merge_base(repo: Path, a: str, b: str, a_name: str, b_name: str) -> str:
    result = await run_git(repo, "merge-base", a, b, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise GitError(f"'{b_name}' and '{a_name}' share no history in repo {repo}")
    return result.stdout.split()[0]


async def _count_commits(repo: Path, base: str, head: str) -> int:
    out = await run_git(repo, "rev-list", "--count", f"{base}..{head}")
    return int(out.stdout.strip() or 0)


async def summarize(repo: Path, branch: str, base: str) -> DiffSummary:
    """What `branch` changes compared with where it left `base` (their merge base)."""
    head = await resolve_commit(repo, branch, "branch")
    base_sha = await resolve_commit(repo, base, "base branch")
    mb = await _merge_base(repo, base_sha, head, base, branch)
    files, commits = await asyncio.gather(_diff_files(repo, mb, head), _count_commits(repo, base_sha, head))
    return _summary(files, commits, mb, head)


async def full_patch(repo: Path, branch: str, base: str) -> str:
    """The unified diff of `branch` against its merge base with `base`; binaries as 'Binary files differ'."""
    head = await resolve_commit(repo, branch, "branch")
    base_sha = await resolve_commit(repo, base, "base branch")
    mb = await _merge_base(repo, base_sha, head, base, branch)
    return (await run_git(repo, "diff", *_DIFF_OPTS, mb, head)).stdout


async def live_summary(worktree: Path, base_commit: str) -> DiffSummary:
    """The running agent's work so far, uncommitted and untracked files included.

    Goes through a private temporary index, so the agent's index and its locks are never touched.
    """
    head = await _rev(worktree, "HEAD")
    base_sha = await resolve_commit(worktree, base_commit, "base")
    mb_res = await run_git(worktree, "merge-base", base_sha, head, check=False)
    mb = mb_res.stdout.split()[0] if mb_res.returncode == 0 and mb_res.stdout.strip() else base_sha
    real_index = (
        await run_git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index")
    ).stdout.strip()
    tmpdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="superset-index-")
    tmp_index = os.path.join(tmpdir, "index")
    env = {"GIT_INDEX_FILE": tmp_index}
    try:
        # Starting from a copy of the real index keeps its stat data, so only changed files are hashed.
        copied = await asyncio.to_thread(_copy_if_exists, real_index, tmp_index)
        added = None
        if copied:
            added = await run_git(worktree, "add", "-A", env=env, check=False, bot_write=True)
        if added is None or added.returncode != 0:
            await asyncio.to_thread(_unlink_quiet, tmp_index)
            await run_git(worktree, "read-tree", head, env=env, bot_write=True)
            await run_git(worktree, "add", "-A", env=env, bot_write=True)
        files = await _diff_files(worktree, "--cached", mb, env=env)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmpdir, True)
    commits = await _count_commits(worktree, mb, head)
    return _summary(files, commits, mb, head)


def _copy_if_exists(src: str, dst: str) -> bool:
    try:
        shutil.copyfile(src, dst)
    except OSError:
        return False
    return True


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _parse_porcelain(text: str) -> list[tuple[str, str]]:
    tokens = _split_z(text)
    result: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if len(token) < 4:
            continue
        code, path = token[:2], token[3:]
        result.append((code, path))
        if "R" in code or "C" in code:
            i += 1  # the original path of a rename/copy follows
    return result


async def is_dirty(worktree: Path, *, untracked: bool = True) -> list[str]:
    """Paths with uncommitted changes (and untracked files, unless told not to); [] when clean.

    Never writes the index.
    """
    mode = "--untracked-files=normal" if untracked else "--untracked-files=no"
    out = await run_git(worktree, "--no-optional-locks", "status", "--porcelain", "-z", mode)
    return [path for _code, path in _parse_porcelain(out.stdout)]


# --------------------------------------------------------------------------- merge


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


async def _base_checkout(repo: Path, base: str) -> Path | None:
    checkouts = await worktrees_on_branch(repo, base)
    return checkouts[0] if checkouts else None


async def follow_checkout(repo: Path, branch: str, old: str, new: str) -> Path | None:
    """Bring the checkout of `branch` from `old` to `new` when its ref moved without it.

    A merge the bot was killed in the middle of moved the base ref but never updated the
    base's checkout, whose index still says `old`: `git status` there would show the merge as
    staged reverts. Nothing happens unless the index still matches `old`; local changes the
    update would overwrite make git refuse (GitError), as the merge itself would have.
    Returns the checkout it updated, or None.
    """
    checkout = await _base_checkout(repo, check_ref_arg(branch, "branch"))
    if checkout is None or not await asyncio.to_thread(os.path.isdir, checkout):
        return None
    async with repo_lock(repo):
        head = await run_git(checkout, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
        stale = await run_git(checkout, "diff-index", "--cached", "--quiet", old, "--", check=False)
        if head.stdout.strip() != new or stale.returncode != 0:
            return None
        await run_git(checkout, "read-tree", "-m", "-u", old, new)
    return checkout


def _collides(untracked: str, changed: set[str]) -> bool:
    if untracked.rstrip("/") in changed:
        return True
    prefix = untracked.rstrip("/") + "/"
    parts = untracked.rstrip("/").split("/")
    ancestors = {"/".join(parts[:n]) for n in range(1, len(parts))}
    return any(c.startswith(prefix) or c in ancestors for c in changed)


async def _refuse_if_dirty(checkout: Path, base: str, old: str, new: str) -> None:
    out = await run_git(
        checkout, "--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=all"
    )
    entries = _parse_porcelain(out.stdout)
    tracked = [path for code, path in entries if code != "??"]
    untracked = [path for code, path in entries if code == "??"]
    blocking = tracked
    if untracked:
        diff = await run_git(checkout, "diff", "--name-only", "-z", "--no-renames", old, new)
        changed = set(_split_z(diff.stdout))
        blocking = tracked + [u for u in untracked if _collides(u, changed)]
    if blocking:
        shown = ", ".join(blocking[:10]) + (f" and {len(blocking) - 10} more" if len(blocking) > 10 else "")
        raise BaseCheckoutDirty(
            f"base branch '{base}' is checked out at {checkout} with uncommitted changes the merge "
            f"would overwrite ({shown}); commit or stash them there, then merge again",
            checkout,
            blocking,
        )


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
            conflicts = await _unmerged_files(tmp)
            await run_git(tmp, "rebase", "--abort", check=False, bot_write=True)
            if conflicts:
                raise MergeConflict(
                    f"rebasing '{branch}' onto '{base}' conflicts in: {', '.join(conflicts)}; "
                    f"update the task from '{base}' or use the merge strategy",
                    conflicts,
                )
            raise GitError(f"could not rebase '{branch}' onto '{base}': {result.stderr.strip()}")
        return await _rev(tmp, "HEAD")
    finally:
        await asyncio.shield(_drop_temp_worktree(repo, tmp))


async def _drop_temp_worktree(repo: Path, tmp: Path) -> None:
    try:
        await _remove_worktree(repo, tmp)
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
) -> MergeResult:
    """Merge `branch` into the local branch `base` without touching any worktree but base's own.

    The base ref only moves by compare-and-swap from the commit that was checked; if it moved
    meanwhile, the merge is checked again (up to MERGE_ATTEMPTS times). A clean checkout of
    base follows the new commit; a dirty one makes the merge refuse before anything moves.
    `on_ready(old_base, new_commit)` runs just before the base ref moves (observers, tests).
    """
    if strategy not in STRATEGIES:
        raise GitError(f"unknown merge strategy '{strategy}': use one of {', '.join(STRATEGIES)}")
    check_ref_arg(base, "base branch")
    check_ref_arg(branch, "branch")
    if base == branch:
        raise GitError(f"cannot merge branch '{branch}' into itself")
    env = _identity_env(author)
    base_ref = f"refs/heads/{base}"
    async with repo_lock(repo):
        for attempt in range(MERGE_ATTEMPTS):
            if attempt:
                # Someone keeps committing to base: back off (with jitter) instead of spinning.
                delay = min(_RETRY_FIRST_DELAY * 2 ** (attempt - 1), 1.0)
                await asyncio.sleep(delay * (0.5 + random.random()))
            old = await _branch_commit(repo, base, "base branch")
            head = await _branch_commit(repo, branch, "branch")
            if await _is_ancestor(repo, head, old):
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
                if preview.tree == await _rev(repo, f"{old}^{{tree}}"):
                    raise NothingToMerge(f"branch '{branch}' changes nothing compared with '{base}'")
                text = message or await _squash_message(repo, branch, base, old, head)
                new = await _commit_tree(repo, preview.tree, [old], text, env)
            elif await _is_ancestor(repo, old, head):
                new = head
            else:
                new = await _rebase_onto(repo, base, branch, old, head, env)
            if strategy == "rebase" and (new == old or await _is_ancestor(repo, new, old)):
                raise NothingToMerge(f"branch '{branch}' has nothing that '{base}' does not already have")
            checkout = await _base_checkout(repo, base)
            if checkout is not None:
                await _refuse_if_dirty(checkout, base, old, new)
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
                now = await _branch_commit(repo, base, "base branch")
                if now != old:
                    continue  # someone else moved the base: check again from the top
                raise GitError(f"could not move base branch '{base}' in repo {repo}: {moved.stderr.strip()}")
            if checkout is not None:
                await _update_checkout(repo, checkout, base, old, new)
            return MergeResult(new, old, strategy, checkout)
        raise GitError(
            f"base branch '{base}' kept moving while merging '{branch}' ({MERGE_ATTEMPTS} tries); try again"
        )


async def _update_checkout(repo: Path, checkout: Path, base: str, old: str, new: str) -> None:
    """Bring base's checkout from old to new; on failure put the base ref back (by CAS) and raise."""
    result = await run_git(checkout, "read-tree", "-m", "-u", old, new, check=False)
    if result.returncode == 0:
        return
    back = await run_git(
        repo, "update-ref", "-m", "superset-bot: undo merge", f"refs/heads/{base}", old, new, check=False
    )
    undo = (
        f"base branch '{base}' was put back at {old[:12]}"
        if back.returncode == 0
        else f"and base branch '{base}' could not be put back at {old[:12]}: {back.stderr.strip()}"
    )
    raise GitError(
        f"the checkout of '{base}' at {checkout} could not be updated ({result.stderr.strip()}); {undo}; "
        f"commit or stash the changes there and merge again"
    )


async def update_from_base(worktree: Path, base: str) -> list[str]:
    """Merge `base` into the task's branch in its worktree; conflicting files (left for the agent) or []."""
    check_ref_arg(base, "base branch")
    repo = await _main_checkout(worktree)
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
            f"Merge branch '{base}' into {into}",
            sha,
            env=_identity_env(BOT_AUTHOR),
            bot_write=True,
            check=False,
        )
        if result.returncode == 0:
            return []
        conflicts = await _unmerged_files(worktree)
        if conflicts:
            return conflicts
        raise GitError(
            f"could not merge '{base}' into the task at {worktree}: {result.stderr.strip() or result.stdout.strip()}"
        )


# --------------------------------------------------------------------------- discard / list / prune


async def discard(repo: Path, worktree: Path | None, branch: str | None) -> None:
    """Remove the task's worktree (even dirty or locked) and delete its branch. Idempotent."""
    if worktree is not None:
        await _remove_worktree(repo, _absolute(worktree))
    if branch:
        check_ref_arg(branch, "branch")
        async with repo_lock(repo):
            exists = await run_git(
                repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False
            )
            if exists.returncode == 0:
                await run_git(repo, "branch", "-D", branch)


@dataclass
class WorktreeInfo:
    path: Path
    branch: str | None
    head: str | None
    task_id: str | None
    last_activity: float
    size_bytes: int
    locked: bool
    prunable: bool


def _tree_size(path: str) -> int:
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _admin_dirs(common_dir: str) -> dict[str, str]:
    """realpath of each linked worktree -> its admin dir under <common>/worktrees/."""
    result: dict[str, str] = {}
    base = os.path.join(common_dir, "worktrees")
    try:
        names = os.listdir(base)
    except OSError:
        return result
    for name in names:
        admin = os.path.join(base, name)
        try:
            with open(os.path.join(admin, "gitdir"), encoding="utf-8", errors="replace") as fh:
                gitdir = fh.read().strip()
        except OSError:
            continue
        result[_real(os.path.dirname(gitdir))] = admin
    return result


def _activity_and_size(path: str, admin: str | None) -> tuple[float, int]:
    candidates: list[str] = []
    if admin:
        candidates += [os.path.join(admin, n) for n in ("HEAD", "index", os.path.join("logs", "HEAD"))]
    candidates.append(path)
    try:
        with os.scandir(path) as it:
            candidates += [e.path for e in it]
    except OSError:
        pass
    latest = 0.0
    for candidate in candidates:
        try:
            latest = max(latest, os.lstat(candidate).st_mtime)
        except OSError:
            continue
    return latest, _tree_size(path) if os.path.isdir(path) else 0


def _is_under(path: Path | str, root: str) -> bool:
    real = _real(path)
    return real != root and real.startswith(root.rstrip("/") + "/")


async def list_worktrees(repo: Path, root: Path) -> list[WorktreeInfo]:
    """The bot's worktrees of `repo` (those under `root`), with activity time and size on disk."""
    root_real = _real(root)
    entries = [e for e in await _worktree_entries(repo) if _is_under(e.path, root_real)]
    if not entries:
        return []
    common = (await run_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")).stdout.strip()
    admins = await asyncio.to_thread(_admin_dirs, common)
    infos: list[WorktreeInfo] = []
    for entry in entries:
        activity, size = await asyncio.to_thread(
            _activity_and_size, str(entry.path), admins.get(_real(entry.path))
        )
        branch = entry.branch.removeprefix("refs/heads/") if entry.branch else None
        name = entry.path.name
        task_id = name if _TASK_ID_RE.fullmatch(name) else (task_id_from_branch(branch) if branch else None)
        infos.append(
            WorktreeInfo(
                path=entry.path,
                branch=branch,
                head=entry.head,
                task_id=task_id,
                last_activity=activity,
                size_bytes=size,
                locked=entry.locked,
                prunable=entry.prunable,
            )
        )
    return infos


async def worktrees_on_branch(repo: Path, branch: str) -> list[Path]:
    """Checkouts (the main one first, if it is among them) that have `branch` checked out."""
    ref = f"refs/heads/{check_ref_arg(branch, 'branch')}"
    return [e.path for e in await _worktree_entries(repo) if e.branch == ref and not e.bare and not e.prunable]


async def registered_worktrees(repo: Path) -> set[Path]:
    """Every linked worktree git has an entry for (real paths), even one whose folder is gone."""
    return {Path(_real(e.path)) for e in (await _worktree_entries(repo))[1:]}


def is_pool_spare(path: Path, branch: str | None) -> bool:
    """A warm worktree nobody took yet (detached, pool name): the pool's to keep or remove."""
    return path.name.startswith(POOL_PREFIX) and not branch


async def pool_worktrees(repo: Path, root: Path) -> dict[Path, str | None]:
    """Untaken warm worktrees under `root` with their HEAD; None for a folder git does not know."""
    root_real = _real(root)
    entries = [e for e in await _worktree_entries(repo) if _is_under(e.path, root_real)]
    found: dict[Path, str | None] = {
        e.path: e.head for e in entries if not e.prunable and is_pool_spare(e.path, e.branch)
    }
    registered = {_real(e.path) for e in entries if not e.prunable}
    for extra in await asyncio.to_thread(_unregistered_dirs, root_real, registered):
        if extra.name.startswith(POOL_PREFIX):
            found[extra] = None
    return found


@dataclass
class Orphans:
    worktrees: list[Path]
    branches: list[str]
    missing: list[str]
    owners: dict[Path, str] = field(default_factory=dict)  # orphan worktree -> the task id its name or branch names


def _unregistered_dirs(root: str, registered: set[str]) -> list[Path]:
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    found: list[Path] = []
    for name in names:
        full = os.path.join(root, name)
        if os.path.isdir(full) and not os.path.islink(full) and _real(full) not in registered:
            found.append(Path(full))
    return found


async def find_orphans(repo: Path, root: Path, task_worktrees: Mapping[str, Path]) -> Orphans:
    """What under `root` and `superset/` belongs to no known task, and which tasks lost their worktree."""
    root_real = _real(root)
    known = set(task_worktrees)
    claimed = {_real(p) for p in task_worktrees.values()}
    all_entries = await _worktree_entries(repo)
    registered = {_real(e.path) for e in all_entries if not e.prunable}
    infos = await list_worktrees(repo, root)
    orphan_paths: list[Path] = []
    owners: dict[Path, str] = {}
    for info in infos:
        owned = _real(info.path) in claimed or (info.task_id is not None and info.task_id in known)
        if not owned and not is_pool_spare(info.path, info.branch):
            orphan_paths.append(info.path)
            if info.task_id is not None:
                owners[info.path] = info.task_id
    listed = {_real(i.path) for i in infos}
    for extra in await asyncio.to_thread(_unregistered_dirs, root_real, listed):
        if _real(extra) not in claimed and extra.name not in known and not extra.name.startswith(POOL_PREFIX):
            orphan_paths.append(extra)
    refs = await run_git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/superset/")
    branches: list[str] = []
    for ref in refs.stdout.splitlines():
        name = ref.removeprefix("refs/heads/")
        tid = task_id_from_branch(name)
        if tid is None or tid not in known:
            branches.append(name)
    missing: list[str] = []
    for tid, path in task_worktrees.items():
        exists = await asyncio.to_thread(os.path.isdir, path)
        if not exists or _real(path) not in registered:
            missing.append(tid)
    return Orphans(worktrees=orphan_paths, branches=branches, missing=missing, owners=owners)


async def git_maintenance(repo: Path) -> None:
    """Forget worktrees whose folders are gone, then let git repack/gc if it thinks it should."""
    async with repo_lock(repo):
        await run_git(repo, "worktree", "prune")
    await run_git(
        repo,
        "-c",
        "gc.autoDetach=false",
        "-c",
        "maintenance.autoDetach=false",
        "maintenance",
        "run",
        "--auto",
    )


async def commit_on_branch(repo: Path, commit: str, branch: str) -> bool:
    """Is `commit` part of `branch`? Settles a merge that a restart interrupted."""
    head = await _branch_commit(repo, branch, "branch")
    return await _is_ancestor(repo, commit, head)


async def drop_own_ref_lock(repo: Path, branch: str, commit: str) -> bool:
    """Remove `refs/heads/<branch>.lock` if it holds exactly `commit`; True when it did.

    git writes the new value into the lock before renaming it over the ref, so a bot killed
    inside its own `update-ref` leaves a lock holding its merge commit, and every later update
    of the base would fail with "File exists". A lock holding anything else is someone else's.
    """
    check_ref_arg(branch, "branch")
    common = (await run_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")).stdout.strip()
    lock = Path(common) / "refs" / "heads" / f"{branch}.lock"

    def drop() -> bool:
        try:
            if lock.read_text().strip() != commit:
                return False
            lock.unlink()
        except OSError:
            return False
        return True

    async with repo_lock(repo):
        return await asyncio.to_thread(drop)
