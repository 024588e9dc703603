"""Running git as asyncio subprocesses, with errors a person can act on.

Every git call in the bot goes through `run_git`, so the environment is predictable
(C locale, no prompts, no inherited GIT_DIR), lock contention with the user's or an
agent's own git is retried instead of failing, and the bot's own writes never run the
repository's hooks or kick off a background gc.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from superset_bot import procs

# Config for commits, merges and checkouts the bot makes itself: the repo's hooks are the
# team's business, not the bot's; auto gc/maintenance would race with running agents;
# signing would prompt for a passphrase nobody is there to type.
BOT_WRITE_CONFIG: tuple[str, ...] = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "tag.gpgSign=false",
)

# Inherited variables that would point git at some other repository or index.
_SCRUBBED_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
    "GIT_QUARANTINE_PATH",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
)

# Signs that another git process holds a lock we need; worth waiting for, unlike a
# compare-and-swap mismatch ("is at X but expected Y") or a real error.
_LOCK_PATTERNS = re.compile(
    r"index\.lock|\.lock'?: File exists|Unable to create '[^']*\.lock'|Another git process seems to be running",
)
_LOCK_FIRST_DELAY = 0.05
_LOCK_TOTAL = 5.0

_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class GitError(Exception):
    """A git operation failed; str(e) is meant for the person who asked for it."""

    def __init__(
        self, message: str, args_: tuple[str, ...] = (), returncode: int | None = None, stderr: str = ""
    ) -> None:
        super().__init__(message)
        self.args_ = args_
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
        LANGUAGE="C",
        GIT_OPTIONAL_LOCKS="0",  # same as --no-optional-locks: status etc. never write the index
        GIT_PAGER="cat",
        GIT_EDITOR="true",
        GIT_SEQUENCE_EDITOR="true",
        GIT_MERGE_AUTOEDIT="no",
    )
    if extra:
        env.update(extra)
    return env


def _short_stderr(stderr: str, limit: int = 1500) -> str:
    text = stderr.strip()
    lines = [ln for ln in text.splitlines() if not ln.startswith("hint:")]
    text = "\n".join(lines).strip() or text
    return text if len(text) <= limit else "..." + text[-limit:]


async def _run_once(
    cwd: Path, argv: list[str], env: dict[str, str], input: bytes | None
) -> tuple[int, bytes, bytes]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Own process group, so a cancelled command takes its helpers (filters, checkouts) with it.
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if not await asyncio.to_thread(os.path.isdir, cwd):
            raise GitError(f"directory {cwd} does not exist", tuple(argv[1:])) from exc
        raise GitError("git is not installed or not on PATH; install git 2.38 or newer") from exc
    except NotADirectoryError as exc:
        raise GitError(f"{cwd} is not a directory", tuple(argv[1:])) from exc
    try:
        out, err = await proc.communicate(input)
    except asyncio.CancelledError:
        # Give git the chance to remove its lock files (it does on SIGTERM, not on SIGKILL).
        if proc.returncode is None:
            procs.signal_group(proc.pid, signal.SIGTERM)  # this git command's own group, nothing else
            try:
                await asyncio.shield(asyncio.wait_for(proc.wait(), 5))
            except (TimeoutError, asyncio.CancelledError):
                procs.signal_group(proc.pid, signal.SIGKILL)
        # read the pipes to their end, so their transports close now and not, half open, when the
        # event loop that owns them is already closed
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(asyncio.wait_for(stream.read(), 2))
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


async def run_git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    retry_locks: bool = True,
    bot_write: bool = False,
) -> GitResult:
    """Run `git ARGS` in cwd. `bot_write=True` adds BOT_WRITE_CONFIG (hooks off, no auto gc).

    Raises GitError when git exits non-zero and check is true. A failure caused by a lock
    another git process holds is retried with exponential backoff for about five seconds.
    """
    argv = ["git", *(BOT_WRITE_CONFIG if bot_write else ()), *args]
    full_env = _env(env)
    delay = _LOCK_FIRST_DELAY
    waited = 0.0
    while True:
        rc, out, err = await _run_once(Path(cwd), argv, full_env, input)
        stderr = _decode(err)
        if rc != 0 and retry_locks and waited < _LOCK_TOTAL and _LOCK_PATTERNS.search(stderr):
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)
            continue
        break
    result = GitResult(rc, _decode(out), stderr)
    if rc != 0 and check:
        shown = " ".join(args)
        if len(shown) > 200:
            shown = shown[:200] + "..."
        detail = _short_stderr(stderr) or f"exit status {rc}"
        if _LOCK_PATTERNS.search(stderr):
            detail += "\n(another git process kept the repository locked; try again when it has finished)"
        raise GitError(f"git {shown} failed in {cwd}: {detail}", tuple(args), rc, stderr)
    return result


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_loopless_locks: dict[str, asyncio.Lock] = {}


def repo_lock(repo: Path) -> asyncio.Lock:
    """The one lock (per event loop) for ref-changing operations on the repo at `repo`."""
    key = os.path.realpath(repo)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        table = _loopless_locks
    else:
        table = _locks.setdefault(loop, {})
    lock = table.get(key)
    if lock is None:
        lock = table[key] = asyncio.Lock()
    return lock


async def git_version() -> tuple[int, int, int]:
    """The installed git's version, e.g. (2, 39, 5)."""
    result = await run_git(Path("/"), "--version")
    match = _VERSION_RE.search(result.stdout)
    if not match:
        raise GitError(f"cannot read the git version from {result.stdout.strip()!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


async def require_git(min_version: tuple[int, int, int] = (2, 38, 0)) -> tuple[int, int, int]:
    """Fail early with an actionable message when git is missing or too old."""
    found = await git_version()
    if found < min_version:
        need = ".".join(str(n) for n in (min_version if min_version[2] else min_version[:2]))
        have = ".".join(str(n) for n in found)
        raise GitError(
            f"git {need} or newer is needed (found {have}): superset-bot previews merges with "
            f"`git merge-tree --write-tree`; install a newer git and restart the bot"
        )
    return found


async def is_git_repo(path: Path) -> bool:
    """True when `path` is the top of a git working tree or a bare repository (not a subfolder)."""
    if not await asyncio.to_thread(os.path.isdir, path):
        return False
    result = await run_git(path, "rev-parse", "--is-bare-repository", "--absolute-git-dir", check=False)
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) < 2:
        return False
    if lines[0] != "true":
        top = await run_git(path, "rev-parse", "--show-toplevel", check=False)
        if top.returncode != 0:
            return False
        lines[1] = top.stdout.strip()
    return await asyncio.to_thread(_same_path, lines[1], path)


def _same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


async def git_dirs(worktree: Path) -> dict[str, str]:
    """A worktree's own git dir ("git_dir": `<repo>/.git/worktrees/<id>` for a linked one) and the
    repository's shared one ("git_common_dir"), as absolute paths."""
    out = (await run_git(worktree, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir")).stdout
    lines = out.splitlines()
    if len(lines) < 2:
        raise GitError(f"git rev-parse gave no git dirs for {worktree}")
    return {"git_dir": lines[0].strip(), "git_common_dir": lines[1].strip()}
