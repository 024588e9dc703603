"""The Superset desktop app's workspace lifecycle config (.superset/config.json and friends), layered
as the app layers it, and the environment variables its scripts expect.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from superset_bot.presets.validation import (
    Checker,
    PresetError,
    is_inside,
    json_type,
    read_json,
    relative_path_problem,
)

_WS_KEYS = ("setup", "teardown", "run")
SUPERSET_DIR = ".superset"


@dataclass(frozen=True)
class WorkspaceConfig:
    """The repository's Superset desktop-app lifecycle commands, layered as the app does.

    `sources` lists the files that contributed, in the order they were applied; `ignored`
    explains commands that were read but not trusted.
    """

    setup: tuple[str, ...] = ()
    teardown: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    cwd: str | None = None
    sources: tuple[Path, ...] = ()
    ignored: tuple[str, ...] = ()

    def commands(self, key: str) -> tuple[str, ...]:
        if key not in _WS_KEYS:
            raise ValueError(f"unknown lifecycle key {key!r}; use one of {', '.join(_WS_KEYS)}")
        result: tuple[str, ...] = getattr(self, key)
        return result


@dataclass
class _Wrap:
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass
class _Layer:
    path: Path
    commands: dict[str, tuple[str, ...] | _Wrap]
    cwd: str | None


def _command_list(check: Checker, value: object, name: str) -> tuple[str, ...]:
    # Superset drops blank entries rather than failing on them.
    return tuple(c for c in check.strings(value, name, non_empty_items=False) if c.strip())


def _read_workspace_file(path: Path, *, local: bool) -> _Layer | None:
    if not path.is_file():
        return None
    check = Checker(path)
    data = check.obj(read_json(path), None, None)  # unknown keys: ignored, the app may add more
    commands: dict[str, tuple[str, ...] | _Wrap] = {}
    for key in _WS_KEYS:
        value = data.get(key)
        if value is None:
            continue
        if local and isinstance(value, dict):
            wrap = check.obj(value, key, ("before", "after"))
            commands[key] = _Wrap(
                before=_command_list(check, wrap.get("before", []), f"{key}.before"),
                after=_command_list(check, wrap.get("after", []), f"{key}.after"),
            )
        elif isinstance(value, list):
            commands[key] = _command_list(check, value, key)
        else:
            shape = (
                'a list of commands or {"before": [...], "after": [...]}' if local else "a list of commands"
            )
            raise check.error(key, f"expected {shape}, got {json_type(value)}")
    cwd: str | None = None
    if data.get("cwd") is not None:
        cwd = check.string(data["cwd"], "cwd", non_empty=True).strip()
        problem = relative_path_problem(cwd, allow_root=True)
        if problem:
            raise check.error("cwd", problem + " (cwd is relative to the worktree)")
    return _Layer(path, commands, cwd)


def _user_override_dirs(repo: Path, home: Path, project_id: str | None) -> list[Path]:
    """~/.superset/projects/<repo path> (current app) before ~/.superset/projects/<project id> (older)."""
    projects = home / SUPERSET_DIR / "projects"
    dirs: list[Path] = []
    for candidate in (repo.absolute(), repo.resolve()):
        under = projects.joinpath(*candidate.parts[1:])
        if under not in dirs:
            dirs.append(under)
    if project_id and "/" not in project_id and "\\" not in project_id and project_id not in (".", ".."):
        dirs.append(projects / project_id)
    return dirs


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _fallback_script(key: str, dirs: Sequence[Path]) -> tuple[str, Path] | None:
    for base in dirs:
        script = base / SUPERSET_DIR / f"{key}.sh"
        if script.is_file():
            command = (
                shlex.quote(str(script)) if os.access(script, os.X_OK) else f"bash {shlex.quote(str(script))}"
            )
            return command, script
    return None


def load_workspace_config(
    repo: Path,
    worktree: Path,
    home: Path | None = None,
    *,
    project_id: str | None = None,
    trust_worktree: bool = True,
) -> WorkspaceConfig:
    """Resolve the Superset desktop app's lifecycle config for a task's worktree.

    As the current app does (apps/desktop .../workspaces/utils/setup.ts): `<repo>/.superset/
    config.json`, then `<worktree>/.superset/config.json`, then the user override
    `~/.superset/projects/<absolute repo path>/config.json` (or the older
    `~/.superset/projects/<project_id>/config.json`), each overriding only the keys it sets
    (an explicit `[]` clears a key). Then `.superset/config.local.json` (the worktree's, else
    the repo's) is laid on top: a list replaces the key, `{"before": [...], "after": [...]}`
    wraps it; the local overlay needs at least one config.json to apply to. A key still
    without commands falls back to `.superset/<key>.sh` (worktree first, then repo).

    `trust_worktree=False` ignores every command the worktree itself provides (its
    config.json, config.local.json and scripts), as the app now does for branch content;
    use it once an agent has written to the worktree. Malformed files raise PresetError
    naming the file and field (the app logs and skips them; a bot should say so).
    """
    repo = Path(repo)
    worktree = Path(worktree)
    home = Path.home() if home is None else Path(home)
    sources: list[Path] = []
    ignored: list[str] = []

    def untrusted(layer: _Layer | None, same_as: _Layer | None = None) -> None:
        if (
            same_as is not None
            and layer is not None
            and (layer.commands, layer.cwd) == (same_as.commands, same_as.cwd)
        ):
            return  # the branch's copy of the team's config: nothing is lost by ignoring it
        if layer and (layer.commands or layer.cwd):
            keys = ", ".join([*layer.commands, *(["cwd"] if layer.cwd else [])])
            ignored.append(f"{layer.path}: {keys} ignored (the worktree's own config is not trusted here)")

    same_dir = repo.resolve() == worktree.resolve()
    layers: list[_Layer] = []
    repo_layer = _read_workspace_file(repo / SUPERSET_DIR / "config.json", local=False)
    if repo_layer:
        layers.append(repo_layer)
    if not same_dir:
        wt_layer = _read_workspace_file(worktree / SUPERSET_DIR / "config.json", local=False)
        if trust_worktree:
            if wt_layer:
                layers.append(wt_layer)
        else:
            untrusted(wt_layer, same_as=repo_layer)
    for directory in _user_override_dirs(repo, home, project_id):
        user_layer = _read_workspace_file(directory / "config.json", local=False)
        if user_layer:
            layers.append(user_layer)
            break

    merged: dict[str, tuple[str, ...]] | None = None
    cwd: str | None = None
    cwd_source: Path | None = None
    for layer in layers:
        merged = {} if merged is None else merged
        for key, value in layer.commands.items():
            assert isinstance(value, tuple)
            merged[key] = value
        if layer.cwd is not None:
            cwd, cwd_source = layer.cwd, layer.path
        sources.append(layer.path)

    local: _Layer | None = None
    if not same_dir:
        wt_local = _read_workspace_file(worktree / SUPERSET_DIR / "config.local.json", local=True)
        if trust_worktree:
            local = wt_local
        else:
            untrusted(wt_local)
    if local is None:
        local = _read_workspace_file(repo / SUPERSET_DIR / "config.local.json", local=True)
    if local is not None and merged is not None:
        for key, value in local.commands.items():
            if isinstance(value, _Wrap):
                merged[key] = (*value.before, *merged.get(key, ()), *value.after)
            else:
                merged[key] = value
        if local.cwd is not None:
            cwd, cwd_source = local.cwd, local.path
        sources.append(local.path)
    elif local is not None:
        ignored.append(f"{local.path}: ignored because there is no .superset/config.json for it to extend")

    resolved: dict[str, tuple[str, ...]] = {}
    script_dirs = [worktree, repo] if trust_worktree and not same_dir else [repo]
    for key in _WS_KEYS:
        if merged is not None and key in merged:
            resolved[key] = merged[key]
            continue
        resolved[key] = ()
        fallback = _fallback_script(key, script_dirs)
        if fallback:
            resolved[key] = (fallback[0],)
            sources.append(fallback[1])
        wt_script = worktree / SUPERSET_DIR / f"{key}.sh"
        if (
            not trust_worktree
            and not same_dir
            and wt_script.is_file()
            and not _same_bytes(wt_script, repo / SUPERSET_DIR / f"{key}.sh")
        ):
            ignored.append(f"{wt_script}: ignored (the worktree's own scripts are not trusted here)")

    if cwd is not None and cwd_source is not None:
        target = (worktree / cwd).resolve()
        if target.exists() and not is_inside(target, worktree.resolve()):
            raise PresetError(
                f'{cwd_source}: field "cwd": {json.dumps(cwd)} leads outside the worktree through a symlink; '
                "use a directory inside it",
                path=str(cwd_source),
                field="cwd",
            )

    return WorkspaceConfig(
        setup=resolved["setup"],
        teardown=resolved["teardown"],
        run=resolved["run"],
        cwd=cwd,
        sources=tuple(sources),
        ignored=tuple(ignored),
    )


def workspace_env(repo: Path, worktree: Path) -> dict[str, str]:
    """The variables Superset's setup scripts expect: main checkout and worktree paths."""
    worktree = Path(worktree).absolute()
    return {
        "SUPERSET_ROOT_PATH": str(Path(repo).absolute()),
        "SUPERSET_WORKSPACE_PATH": str(worktree),
        "SUPERSET_WORKSPACE_NAME": worktree.name,
    }
