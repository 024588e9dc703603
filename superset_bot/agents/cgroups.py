"""Hard limits through cgroup v2, where the bot has a delegated subtree (systemd `Delegate=yes`):
each agent gets a cgroup of its own with memory.max, pids.max and cpu.max, and the kernel enforces
them (the supervisor writes the files and moves the agent in; agents/supervisor.py). Elsewhere the
limits stay soft: the supervisor polls the agent's memory and CPU.

`find` reads where the bot's process lives and whether it may make cgroups there; `prepare` moves
the bot into a leaf of its own (cgroup v2 lets only leaves hold processes once controllers are
handed down) and makes the folder the agents' cgroups go in. Both take the cgroup mount and the
/proc file as arguments, so a test can point them at a folder it made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
NEEDED = ("memory", "pids")  # cpu is used when it is there too
BOT_LEAF = "bot"
AGENTS = "agents"
CPU_PERIOD = 100_000  # microseconds: cpu.max is "<quota> <period>"


@dataclass(frozen=True)
class Delegation:
    """Where agents' cgroups go (`agents`), or why there is none (`why_not`, for doctor and reviews)."""

    agents: Path | None
    why_not: str = ""
    controllers: tuple[str, ...] = ()

    @property
    def hard(self) -> bool:
        return self.agents is not None


def choose(mode: str) -> Delegation:
    """The delegation `SUPERSET_CGROUPS` asks for: "auto" finds and prepares it, "off" does not look."""
    if mode != "auto":
        return Delegation(None, "SUPERSET_CGROUPS is off")
    return prepare(find())


def find(mount: Path = MOUNT, proc: Path = PROC_CGROUP) -> Delegation:
    """Is there a cgroup v2 subtree delegated to this process (read only: nothing is changed)?"""
    try:
        lines = proc.read_text().splitlines()
    except OSError as exc:
        return Delegation(None, f"cannot read {proc}: {exc.strerror or exc}")
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    if own is None or not (mount / "cgroup.controllers").is_file():
        return Delegation(None, "no cgroup v2 (unified hierarchy) at /sys/fs/cgroup on this host")
    root = mount / own.strip().lstrip("/")
    if root.name == BOT_LEAF and ((root.parent / AGENTS).is_dir() or root.parent.name.endswith(".service")):
        root = root.parent  # prepared by an earlier start, or started there (systemd's DelegateSubgroup=bot)
    elif not root.name.endswith(".service"):
        # only a service's own cgroup is the bot's to rearrange: a login session's or a terminal's
        # scope (a developer running the tests) is left alone
        return Delegation(None, f"the bot runs in {own.strip() or '/'}, not in a systemd service of its own "
                                "(Delegate=yes)")
    try:
        controllers = tuple((root / "cgroup.controllers").read_text().split())
    except OSError as exc:
        return Delegation(None, f"cannot read the bot's cgroup {root}: {exc.strerror or exc}")
    missing = [c for c in NEEDED if c not in controllers]
    if missing:
        return Delegation(None, f"the bot's cgroup {root} has no {', '.join(missing)} controller (run it under "
                                "systemd with Delegate=yes)")
    if not (os.access(root, os.W_OK) and os.access(root / "cgroup.subtree_control", os.W_OK)):
        return Delegation(None, f"the bot may not make cgroups in {root} (run it under systemd with Delegate=yes)")
    return Delegation(root / AGENTS, "", controllers)


def prepare(found: Delegation) -> Delegation:
    """Move this process into `<root>/bot` and hand the controllers down to `<root>/agents`; the
    delegation, or why it could not be made (the limits then stay soft)."""
    if found.agents is None:
        return found
    root = found.agents.parent
    wanted = " ".join(f"+{c}" for c in (*NEEDED, *(["cpu"] if "cpu" in found.controllers else [])))
    try:
        (root / BOT_LEAF).mkdir(exist_ok=True)
        (root / BOT_LEAF / "cgroup.procs").write_text(f"{os.getpid()}\n")
        (root / "cgroup.subtree_control").write_text(wanted + "\n")
        found.agents.mkdir(exist_ok=True)
        (found.agents / "cgroup.subtree_control").write_text(wanted + "\n")
    except OSError as exc:
        return Delegation(None, f"could not set up cgroups in {root}: {exc.strerror or exc}")
    return found


def limits(delegation: Delegation, name: str, *, memory: int | None, pids: int | None,
           cpus: float | None) -> dict[str, str] | None:
    """The cgroup the supervisor makes for one run (its path, and the limit files to write), or None."""
    if delegation.agents is None or not (memory or pids or cpus):
        return None
    files = {"path": str(delegation.agents / name)}
    if memory:
        files["memory.max"] = str(memory)
        files["memory.swap.max"] = "0"  # past memory.max it is stopped, not swapped out
    if pids:
        files["pids.max"] = str(pids)
    if cpus and "cpu" in delegation.controllers:
        files["cpu.max"] = f"{max(1000, int(cpus * CPU_PERIOD))} {CPU_PERIOD}"
    return files
