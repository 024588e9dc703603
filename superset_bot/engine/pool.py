"""Warm worktrees: checked out ahead of time, so a spawn on a big repo only has to name a branch.

`git worktree add` writes every file of the repo (seconds on 100,000 files). A pooled worktree is
already a clean checkout of the default branch's head on a detached HEAD; taking one creates the
task's branch at that commit and points the worktree's HEAD at it (two ref writes), then renames
the folder after the task. Presets with `"prewarm": true` get worktrees of their own whose setup
already ran (the folder then keeps its name: installed tools may have recorded absolute paths).

Entries live in the repo's worktrees folder as `.pool-<hex>` with no branch, which housekeeping
leaves alone; the pool adopts or removes its own leftovers when it starts. A background tender
per repo refills the pool after a take and moves entries to the new head when the base moves.
"The head" is where a new task starts (`tip`: engine/bases.py, which follows the remote's tip of
the base when it is ahead of the local branch), so the tender's checks also fetch now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from superset_bot.config import Settings
from superset_bot.git import diff as gitdiff
from superset_bot.git import inventory as gitinventory
from superset_bot.git import naming as gitnaming
from superset_bot.git import worktrees as gitworktrees
from superset_bot.git.commands import GitError, repo_lock, run_git
from superset_bot.git.refs import default_branch, resolve_commit
from superset_bot.presets import Preset, prepare_worktree
from superset_bot.redact import Redactor

log = logging.getLogger(__name__)

POOL_PREFIX = gitnaming.POOL_PREFIX
MARKER = "superset-pool.json"  # in the worktree's admin dir (.git/worktrees/<name>), never in the tree
TEND_EVERY = 5.0  # seconds between checks of the base head (a merge by the bot pokes at once)
STOP_WAIT = 30.0  # seconds `stop` waits for the tenders it cancelled
RETRY_AFTER_ERROR = 30.0

SetupEnv = Callable[[str, Preset, Path], dict[str, str]]
# (repo name, base branch) -> the commit a new task starts from (engine/bases.py: the remote's tip
# when it is ahead): the pool keeps its entries there
Tip = Callable[[str, str], Awaitable[str]]


@dataclass
class _Entry:
    path: Path
    key: str | None  # the prewarmed preset's name; None for a plain checkout
    sha: str
    ready: bool = False


@dataclass(frozen=True)
class Taken:
    worktree: gitworktrees.Worktree
    prewarmed: bool  # the preset's copy and setup already ran in it


def preset_fingerprint(preset: Preset) -> str:
    """Changes when anything that shapes a prewarmed worktree changes, so a stale one is rebuilt."""
    shape = {"setup": preset.setup, "copy": preset.copy, "env": sorted(preset.env.items())}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


class WorktreePool:
    """Per repo, `settings.pool_size` ready worktrees for each key (plain, and each prewarm preset)."""

    def __init__(self, settings: Settings, presets: Mapping[str, Preset], setup_env: SetupEnv,
                 redactor: Redactor, tip: Tip | None = None) -> None:
        self.settings = settings
        self._tip = tip
        self.presets = presets
        self.size = max(0, settings.pool_size)
        self._setup_env = setup_env
        self._redactor = redactor
        self._entries: dict[str, list[_Entry]] = {name: [] for name in settings.repos}
        self._pokes: dict[str, asyncio.Event] = {}
        self._tenders: list[asyncio.Task[None]] = []
        self._broken: dict[tuple[str, str | None], str] = {}  # (repo, key) -> sha its prewarm failed at
        self._changed = asyncio.Condition()

    # lifecycle

    def keys(self) -> list[str | None]:
        """Plain checkouts first (every preset can use them), then one pool per prewarm preset."""
        return [None, *sorted(name for name, preset in self.presets.items() if preset.prewarm)]

    async def start(self) -> None:
        """Start tending every repo in the background: adoption and filling never delay startup."""
        for name in self.settings.repos:
            self.add(name)

    def add(self, repo_name: str) -> None:
        """Tend `repo_name` from now on (at start; and a repo a worker host clones later)."""
        if repo_name in self._pokes:
            return
        self._entries.setdefault(repo_name, [])
        self._pokes[repo_name] = asyncio.Event()
        self._tenders.append(asyncio.create_task(self._tend_forever(repo_name), name=f"pool-{repo_name}"))

    async def stop(self) -> None:
        """Stop tending; ready entries stay on disk and are adopted by the next start."""
        for tender in self._tenders:
            tender.cancel()
        if self._tenders:
            _, pending = await asyncio.wait(self._tenders, timeout=STOP_WAIT)
            for tender in pending:
                log.error("%s did not stop within %.0f s; left as it is", tender.get_name(), STOP_WAIT)
        self._tenders.clear()

    def poke(self, repo_name: str) -> None:
        """The base may have moved, or an entry was taken: tend the repo now, not in TEND_EVERY."""
        event = self._pokes.get(repo_name)
        if event is not None:
            event.set()

    def ready(self, repo_name: str, key: str | None = None) -> int:
        return sum(1 for e in self._entries.get(repo_name, []) if e.key == key and e.ready)

    async def wait_ready(self, repo_name: str, key: str | None = None, count: int | None = None,
                         timeout: float = 60.0) -> None:
        """Until `count` (default: the pool size) entries are ready; for tests, bench and doctor."""
        want = self.size if count is None else count
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.ready(repo_name, key) >= want)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # taking

    async def take(self, repo_name: str, preset: Preset, task_id: str, prompt: str,
                   base: str | None = None, start: str | None = None) -> Taken | None:
        """A ready worktree at `start` (default: where a new task on the base starts now) on the
        task's new branch, or None (create one).

        Only the default branch is pooled; a task with another `--base` gets None. An entry made at
        another commit (the base or its remote moved since) is never handed out.
        """
        if self.size == 0 or repo_name not in self._entries:
            return None
        repo = self.settings.repos[repo_name]
        branch = gitnaming.branch_name(task_id, prompt)
        base_branch = await default_branch(repo)
        if base is not None and base != base_branch:
            return None
        sha = start if start is not None else await self._current_tip(repo_name, base_branch)
        async with repo_lock(repo):
            entry = self._pick(repo_name, preset, sha)
            if entry is None:
                self.poke(repo_name)
                return None
            self._entries[repo_name].remove(entry)
            try:
                # "" as the old value: fail if the branch exists instead of moving someone's branch
                await run_git(repo, "update-ref", "-m", "superset-bot: task branch from the warm pool",
                              f"refs/heads/{branch}", sha, "")
            except GitError as exc:
                self._entries[repo_name].append(entry)  # untouched: still a ready checkout
                raise GitError(f"cannot create the worktree for task {task_id}: branch '{branch}' "
                               f"cannot be created: {exc}") from exc
            try:
                await run_git(entry.path, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
            except BaseException:
                await asyncio.shield(self._drop_after_failed_take(repo, entry, branch))
                raise
        self.poke(repo_name)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.unlink, await _admin_dir(entry.path) / MARKER)
        path = entry.path
        if entry.key is None:
            path = await self._rename(repo, entry.path, entry.path.parent / task_id)
        log.info("task %s: took %s worktree %s from the pool of %s", task_id,
                 f"prewarmed ({entry.key})" if entry.key else "a plain", path.name, repo_name)
        return Taken(gitworktrees.Worktree(path=path, branch=branch, base_branch=base_branch, base_commit=sha),
                     prewarmed=entry.key is not None)

    def _pick(self, repo_name: str, preset: Preset, sha: str) -> _Entry | None:
        keys = [preset.name, None] if preset.prewarm else [None]
        for key in keys:
            for entry in self._entries[repo_name]:
                if entry.ready and entry.key == key and entry.sha == sha:
                    return entry
        return None

    async def _drop_after_failed_take(self, repo: Path, entry: _Entry, branch: str) -> None:
        with contextlib.suppress(GitError):
            await run_git(repo, "update-ref", "-d", f"refs/heads/{branch}")
        await self._remove(repo, entry.path)

    async def _rename(self, repo: Path, path: Path, target: Path) -> Path:
        """Name the folder after its task, as a created worktree would be; keep it where it is if git can't."""
        result = await run_git(repo, "worktree", "move", str(path), str(target), check=False, bot_write=True)
        if result.returncode == 0:
            return target
        log.warning("could not rename pooled worktree %s to %s (%s); the task keeps it under its pool name",
                    path, target, result.stderr.strip())
        return path

    # tending

    async def _tend_forever(self, repo_name: str) -> None:
        poke = self._pokes[repo_name]
        adopted = False
        while True:
            poke.clear()
            wait = TEND_EVERY
            try:
                if not adopted:
                    await self._adopt(repo_name)
                    adopted = True
                await self._tend(repo_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("warm worktree pool of %s: %s; trying again in %.0f s", repo_name,
                            self._redactor.redact(str(exc)), RETRY_AFTER_ERROR)
                wait = RETRY_AFTER_ERROR
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poke.wait(), wait)

    async def _tend(self, repo_name: str) -> None:
        """Bring stale entries to the base's head, then fill every key up to the pool size."""
        if self.size == 0:
            return
        repo = self.settings.repos[repo_name]
        sha = await self._current_tip(repo_name, await default_branch(repo))
        for entry in [e for e in self._entries[repo_name] if e.ready and e.sha != sha]:
            await self._refresh(repo_name, entry, sha)
        for key in self.keys():
            if self._broken.get((repo_name, key)) == sha:
                continue
            while sum(1 for e in self._entries[repo_name] if e.key == key) < self.size:
                if not await self._disk_allows():
                    return
                if not await self._fill_one(repo_name, key, sha):
                    break

    async def _current_tip(self, repo_name: str, branch: str) -> str:
        """The commit a new task on `branch` starts from: `tip`'s answer (the remote's newer tip
        included), else the local branch's head."""
        if self._tip is not None:
            return await self._tip(repo_name, branch)
        return await resolve_commit(self.settings.repos[repo_name], branch, "base branch")

    async def _disk_allows(self) -> bool:
        if not self.settings.min_free_disk:
            return True
        free = (await asyncio.to_thread(shutil.disk_usage, self.settings.data_dir)).free
        return free >= self.settings.min_free_disk * 2  # the pool never eats the last of the disk

    async def _fill_one(self, repo_name: str, key: str | None, sha: str) -> bool:
        repo = self.settings.repos[repo_name]
        root = self.settings.worktrees_dir / repo_name
        entry = _Entry(root / f"{POOL_PREFIX}{secrets.token_hex(4)}", key, sha)
        self._entries[repo_name].append(entry)
        try:
            await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
            async with repo_lock(repo):
                await run_git(repo, "worktree", "add", "--quiet", "--no-checkout", "--detach", str(entry.path),
                              sha, bot_write=True)
            # the slow part (writing every file) touches only this worktree: no repo lock held
            await run_git(entry.path, "reset", "--quiet", "--hard", sha, bot_write=True)
            if not await self._prewarm(repo_name, entry):
                await self._discard(repo_name, entry)
                self._broken[(repo_name, key)] = sha
                return False
            await self._mark_ready(entry)
        except asyncio.CancelledError:
            self._entries[repo_name].remove(entry)  # left unmarked on disk: the next start removes it
            raise
        except BaseException:
            await self._discard(repo_name, entry)
            raise
        return True

    async def _refresh(self, repo_name: str, entry: _Entry, sha: str) -> None:
        """Move an untaken entry to the new head; it is not ready (not taken) until that is done."""
        entry.ready = False
        try:
            await run_git(entry.path, "reset", "--quiet", "--hard", sha, bot_write=True)
            entry.sha = sha
            if await self._prewarm(repo_name, entry):
                await self._mark_ready(entry)
                return
            self._broken[(repo_name, entry.key)] = sha
        except asyncio.CancelledError:
            self._entries[repo_name].remove(entry)  # its marker names the old head: the next start removes it
            raise
        except GitError as exc:
            log.warning("warm worktree %s could not move to %s: %s", entry.path, sha[:8], exc)
        await self._discard(repo_name, entry)

    async def _prewarm(self, repo_name: str, entry: _Entry) -> bool:
        """Run the preset's copy and setup ahead of the task; tracked files must come out unchanged."""
        if entry.key is None:
            return True
        preset = self.presets[entry.key]
        repo = self.settings.repos[repo_name]
        result = await prepare_worktree(preset, repo, entry.path, self._setup_env(repo_name, preset, entry.path))
        if not result.ok:
            log.warning("prewarm of preset %s in %s failed (%s); its tasks run setup when they start",
                        preset.name, repo_name, self._redactor.redact(result.reason or "setup failed"))
            return False
        changed = await gitdiff.is_dirty(entry.path, untracked=False)
        if changed:
            log.warning("prewarm of preset %s in %s changed tracked files (%s); such a worktree is not a clean "
                        "checkout, so its tasks run setup when they start", preset.name, repo_name,
                        ", ".join(changed[:5]))
            return False
        return True

    async def _mark_ready(self, entry: _Entry) -> None:
        marker = {"key": entry.key, "sha": entry.sha,
                  "fingerprint": preset_fingerprint(self.presets[entry.key]) if entry.key else None}
        admin = await _admin_dir(entry.path)
        await asyncio.to_thread((admin / MARKER).write_text, json.dumps(marker))
        entry.ready = True
        await self._notify()

    async def _discard(self, repo_name: str, entry: _Entry) -> None:
        with contextlib.suppress(ValueError):
            self._entries[repo_name].remove(entry)
        await self._remove(self.settings.repos[repo_name], entry.path)

    async def _remove(self, repo: Path, path: Path) -> None:
        try:
            await gitworktrees.discard(repo, path, None)
        except GitError as exc:
            log.warning("could not remove warm worktree %s: %s", path, exc)

    # adoption of what a previous process left

    async def _adopt(self, repo_name: str) -> None:
        """Keep the previous process's ready entries that are still clean and wanted; remove the rest."""
        repo = self.settings.repos[repo_name]
        root = self.settings.worktrees_dir / repo_name
        found = await gitinventory.pool_worktrees(repo, root)
        wanted = set(self.keys())
        for path, head in found.items():
            if head is None:  # a folder git does not know: a take or fill that never finished
                await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
                continue
            entry = await self._adoptable(path, head, wanted) if self.size else None
            if entry is not None and sum(1 for e in self._entries[repo_name] if e.key == entry.key) < self.size:
                self._entries[repo_name].append(entry)
                log.info("warm worktree pool of %s: adopted %s", repo_name, path.name)
            else:
                await self._remove(repo, path)
        await self._notify()

    async def _adoptable(self, path: Path, head: str, wanted: set[str | None]) -> _Entry | None:
        try:
            marker = json.loads(await asyncio.to_thread((await _admin_dir(path) / MARKER).read_text))
        except (OSError, ValueError, GitError):
            return None  # no marker: the previous process stopped while making it
        key = marker.get("key")
        if not isinstance(marker, dict) or key not in wanted or marker.get("sha") != head:
            return None
        if key is not None and marker.get("fingerprint") != preset_fingerprint(self.presets[key]):
            return None
        try:
            if await gitdiff.is_dirty(path, untracked=False):
                return None
        except GitError:
            return None
        return _Entry(path, key, head, ready=True)


async def _admin_dir(worktree: Path) -> Path:
    """The worktree's private folder in the repo (.git/worktrees/<name>), from its `.git` file."""
    try:
        text = await asyncio.to_thread((worktree / ".git").read_text)
    except OSError as exc:
        raise GitError(f"{worktree} is not a linked worktree: {exc}") from exc
    if not text.startswith("gitdir:"):
        raise GitError(f"{worktree} is not a linked worktree")
    admin = Path(text.removeprefix("gitdir:").strip())
    return admin if admin.is_absolute() else worktree / admin
