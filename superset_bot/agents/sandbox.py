"""A bubblewrap sandbox around an agent (`"sandbox": "bwrap"` in its preset): the agent sees the whole
system read-only and can write only its own worktree, that worktree's git dir, the repository's
object store and its own branches (so `git commit` works), a private /tmp, and the folders its preset
names. The bot's data dir (its database, logs and the other tasks' worktrees), the main checkout's
files and the preset's hidden paths (~/.ssh, cloud credentials) are not there at all; the network is
cut when the preset says so. No daemon, no image: bwrap starts in milliseconds.

`bwrap_argv` is pure: what is mounted where follows from a `SandboxPlan`, which `plan` makes from the
filesystem as it is (what exists, file or folder).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# hidden from every sandboxed agent, whatever its preset says (each only where it exists)
DEFAULT_HIDDEN = ("~/.ssh", "~/.aws", "~/.azure", "~/.config/gcloud", "~/.kube", "~/.docker", "~/.gnupg",
                  "~/.netrc", "~/.git-credentials", "~/.pgpass",
                  # sockets answer through a read-only mount and with the network off: the session bus
                  # (systemd-run --user runs anything outside), docker's, and the bot's own settings
                  "/run/user", "/run/docker.sock", "/var/run/docker.sock", "/etc/superset-bot")
# variables that hand out a way outside (the ssh agent, the session bus)
DROPPED_ENV = ("SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS")


@dataclass(frozen=True)
class SandboxPlan:
    """What an agent's sandbox holds. Paths are absolute and resolved."""

    worktree: Path
    git_dir: Path  # the worktree's own git dir (<common>/worktrees/<name>)
    common_dir: Path  # the repository's .git (or the bare repository)
    checkout: Path | None  # the main checkout whose files are hidden (None: a bare repository)
    ref_dirs: tuple[Path, ...]  # folders of refs/ and logs/refs/ the task's branches live in
    hide_dirs: tuple[Path, ...]  # folders that are empty and read-only inside (the bot's data dir, ...)
    hide_files: tuple[Path, ...]  # files that read as empty inside
    writable: tuple[Path, ...]  # folders the preset lets it write (caches, its own config)
    network: bool = True
    tmp: Path | None = None  # its private temporary folder (TMPDIR), also mounted at /tmp when nothing
    # the agent needs lives under the host's /tmp (there, /tmp stays the host's, read-only)
    own_tmp: bool = True
    keep: tuple[Path, ...] = ()  # what it reads that the sandbox's fresh /dev would hide (a HOME on /dev/shm)
    # read-only over the writable ones: what ties the worktree to its repository and branch (its .git
    # file, HEAD, commondir, gitdir); the bot runs git there after the agent, unsandboxed
    sealed: tuple[Path, ...] = ()


def bwrap_argv(bwrap: str, plan: SandboxPlan, argv: Sequence[str]) -> list[str]:
    """The command that runs `argv` in `plan`'s sandbox. Mounts apply in order, each over the ones
    before it: the read-only system, then what is hidden, then what is let back in (read-only or
    writable), and last the hiding folders are made read-only (the ones let back in stay as they are)."""
    args = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not plan.network:
        args.append("--unshare-net")
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if plan.own_tmp:
        args += ["--tmpfs", "/tmp"]
    for path in plan.keep:
        args += ["--ro-bind", str(path), str(path)]
    hidden = sorted({*plan.hide_dirs, *([plan.checkout] if plan.checkout else [])}, key=_depth)
    for folder in hidden:
        args += ["--tmpfs", str(folder)]
    for file in plan.hide_files:
        args += ["--ro-bind", "/dev/null", str(file)]
    if plan.checkout is not None and _inside(plan.common_dir, plan.checkout):
        args += ["--ro-bind", str(plan.common_dir), str(plan.common_dir)]  # the checkout's .git, read-only
    writable = [plan.worktree, plan.git_dir, plan.common_dir / "objects", *plan.ref_dirs, *plan.writable,
                *([plan.tmp] if plan.tmp else [])]
    for folder in sorted(dict.fromkeys(writable), key=_depth):
        args += ["--bind", str(folder), str(folder)]
    for path in plan.sealed:
        args += ["--ro-bind", str(path), str(path)]
    # a writable folder let back in must not show again what is hidden inside it (~/.config/gcloud)
    for folder in plan.hide_dirs:
        if any(_inside(folder, room) and folder != room for room in writable):
            args += ["--tmpfs", str(folder), "--remount-ro", str(folder)]
    for file in plan.hide_files:
        if any(_inside(file, room) for room in writable):
            args += ["--ro-bind", "/dev/null", str(file)]
    for folder in hidden:
        args += ["--remount-ro", str(folder)]
    for name in DROPPED_ENV:
        args += ["--unsetenv", name]
    if plan.tmp:
        args += ["--setenv", "TMPDIR", str(plan.tmp)]
    return [*args, "--chdir", str(plan.worktree), "--", *argv]


async def plan(*, worktree: Path, git_dir: Path, common_dir: Path, ref_dirs: Iterable[Path],
               hide: Iterable[Path], checkouts: Iterable[Path], hidden: Iterable[str], writable: Iterable[str],
               network: bool, home: str | None = None, tmp: Path | None = None,
               reads: Iterable[str] = ()) -> SandboxPlan:
    """The plan for one run, from the filesystem as it is: `ref_dirs` are the task's own branch folders
    (made by the engine), `~` is the agent's HOME, paths that do not exist are left out of what is
    hidden (and of `checkouts`, the repos' working trees, a bare repository), and folders the preset
    lets it write are made when missing."""
    return await asyncio.to_thread(_plan, worktree, git_dir, common_dir, list(ref_dirs), list(hide),
                                   list(checkouts), list(hidden), list(writable), network, home, tmp, list(reads))


def _plan(worktree: Path, git_dir: Path, common_dir: Path, ref_dirs: list[Path], hide: list[Path],
          checkouts: list[Path], hidden: list[str], writable: list[str], network: bool, home: str | None,
          tmp: Path | None, reads: list[str]) -> SandboxPlan:
    worktree, git_dir, common_dir = worktree.resolve(), git_dir.resolve(), common_dir.resolve()
    checkout = common_dir.parent if common_dir.name == ".git" else None
    hide_dirs: list[Path] = []
    hide_files: list[Path] = []
    for raw in [*DEFAULT_HIDDEN, *hidden]:
        path = _expand(raw, home).resolve()  # a link is hidden by hiding what it points at
        if path.is_dir():
            hide_dirs.append(path)
        elif path.exists():
            hide_files.append(path)
    for path in [*hide, *(c for c in checkouts if (c / ".git").exists())]:
        if path.is_dir():
            hide_dirs.append(path.resolve())
    room: list[Path] = []
    for raw in writable:
        path = _expand(raw, home)
        path.mkdir(parents=True, exist_ok=True)
        room.append(path.resolve())
    if tmp is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        tmp = tmp.resolve()
    # a tmpfs over /tmp would hide what lives there (the worktree is let back in, but not HOME or the
    # git config the agent reads): then /tmp stays as it is, read-only, and TMPDIR is its own
    needed = [worktree, common_dir, Path(home or os.path.expanduser("~")).absolute()]
    own_tmp = not any(_inside(path, Path("/tmp")) for path in needed)
    # the sandbox's /dev is fresh: HOME and the files it reads (git's config) there are bound back
    keep = tuple(path for path in (needed[2], *(Path(r).absolute() for r in reads if r))
                 if _inside(path, Path("/dev")) and path.exists())
    sealed = tuple(path for path in (worktree / ".git", git_dir / "HEAD", git_dir / "commondir", git_dir / "gitdir")
                   if path.is_file() and not path.is_symlink())
    return SandboxPlan(worktree, git_dir, common_dir, checkout, tuple(p.resolve() for p in ref_dirs), tuple(hide_dirs),
                       tuple(hide_files), tuple(room), network, tmp, own_tmp, keep, sealed)


def _expand(raw: str, home: str | None) -> Path:
    if raw == "~" or raw.startswith("~/"):
        raw = (home or os.path.expanduser("~")) + raw[1:]
    return Path(raw).absolute()


def _depth(path: Path) -> int:
    return len(path.parts)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


async def probe(bwrap: str, search_path: str | None, timeout: float = 10.0) -> str | None:
    """Why `bwrap` cannot sandbox an agent on this host (not installed, no user namespaces, ...), or
    None when it can. Runs `true` in the smallest sandbox the agents get."""
    import shutil

    found = shutil.which(bwrap, path=search_path)
    if found is None:
        return (f"{bwrap} is not installed (Debian/Ubuntu: apt-get install bubblewrap), or SUPERSET_BWRAP does not "
                "point at it")
    try:
        proc = await asyncio.create_subprocess_exec(
            found, "--die-with-parent", "--unshare-pid", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", "true", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        return f"{found} cannot be run: {exc.strerror or exc}"
    try:
        async with asyncio.timeout(timeout):
            _, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"{found} did not answer within {timeout:g} s"
    if proc.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()
        hint = " (unprivileged user namespaces may be off: sysctl kernel.unprivileged_userns_clone=1)" \
            if any("namespace" in line or "uid map" in line for line in said) else ""
        return f"{found} failed: {said[-1] if said else f'exit {proc.returncode}'}{hint}"
    return None


_REFUSALS = ("Read-only file system", "Network is unreachable", "Temporary failure in name resolution")


def refusal(line: str) -> str | None:
    """The sentence a review shows for an output line that says the sandbox refused something (a write
    outside what the agent may write, the network when it is off), or None."""
    for said in _REFUSALS:
        if said in line:
            return f"refused by the sandbox: {' '.join(line.split())[:200]}"
    return None
