"""Which model an agent run uses, for the agents whose output does not say (Codex).

Codex's `exec --json` events name no model, yet its tokens can only be priced by model. Codex picks
it as its own config loading does (codex-rs `Config::load_with_overrides`): `-m/--model` on the
command line, else the selected profile's `model` (`-p/--profile`, else the config's `profile`),
else the config's top-level `model`, where the config is `$CODEX_HOME/config.toml` (default
`~/.codex/config.toml`) with every `-c key=value` applied over it. Without any of them Codex
falls back to a built-in default that changes between its versions: that is "unknown" here, as
is a local model (`--oss`), so such a run is not priced.

`codex_model` is pure over the argv and the config's text; `read_codex_config` is the one reader,
and `run_model` (which reads) is called off the event loop.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CODEX_FORMAT = "codex-json"
TOKENS_ONLY_FORMATS = frozenset({CODEX_FORMAT})  # output formats that report tokens but no cost
CONFIG_MAX = 1024 * 1024  # a config.toml larger than this is not read


@dataclass
class _Flags:
    """What the command line says about the model, the last of each option winning as in clap."""

    model: str | None = None
    profile: str | None = None
    overrides: list[tuple[str, Any]] = field(default_factory=list)  # -c key=value, in order
    oss: bool = False
    no_config: bool = False  # --ignore-user-config: config.toml is not read


_VALUED = {"-m": "model", "--model": "model", "-p": "profile", "--profile": "profile",
           "-c": "config", "--config": "config"}


def _flags(argv: Sequence[str]) -> _Flags:
    flags = _Flags()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":  # the prompt follows, whatever it says
            break
        if arg == "--oss":
            flags.oss = True
            continue
        if arg == "--ignore-user-config":
            flags.no_config = True
            continue
        name, value = _valued(arg)
        if name is None:
            continue
        if value is None:  # `-m X`: the value is the next word
            if i >= len(argv):
                break
            value = argv[i]
            i += 1
        if name == "model":
            flags.model = value
        elif name == "profile":
            flags.profile = value
        else:
            key, sep, raw = value.partition("=")
            if sep and key.strip():
                flags.overrides.append((key.strip(), _toml_value(raw.strip())))
    return flags


def _valued(arg: str) -> tuple[str | None, str | None]:
    """The option an argument is and its value when attached: `--model=X`, `-mX`, `-m=X`."""
    if arg in _VALUED:
        return _VALUED[arg], None
    for option, name in _VALUED.items():
        if option.startswith("--") and arg.startswith(option + "="):
            return name, arg[len(option) + 1:]
        if not option.startswith("--") and arg.startswith(option) and len(arg) > 2:
            return name, arg[2:].removeprefix("=")
    return None, None


def _toml_value(raw: str) -> Any:
    """A `-c` value as Codex reads it: TOML (`"gpt-5"`, `true`, `[1]`), else the raw string."""
    try:
        return tomllib.loads(f"_x_ = {raw}").get("_x_", raw)
    except tomllib.TOMLDecodeError:
        return raw


def _override(config: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted `path` (`profiles.fast.model`) in `config`, making tables on the way."""
    *parents, last = path.split(".")
    table = config
    for part in parents:
        child = table.get(part)
        if not isinstance(child, dict):
            child = table[part] = {}
        table = child
    table[last] = value


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def codex_model(argv: Sequence[str], config_text: str | None) -> str | None:
    """The model a `codex exec` with `argv` and the config.toml `config_text` (None: no file) uses,
    or None when it cannot be told: none is named, a local model (`--oss`), or an unreadable config
    (Codex itself would refuse to start with it)."""
    flags = _flags(argv)
    if flags.oss:
        return None
    if flags.model is not None:
        return _text(flags.model)
    config: dict[str, Any] = {}
    if config_text and not flags.no_config:
        try:
            config = tomllib.loads(config_text)
        except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError
            return None
    for path, value in flags.overrides:
        _override(config, path, value)
    profile_name = _text(flags.profile) or _text(config.get("profile"))
    if profile_name:
        profiles = config.get("profiles")
        profile = profiles.get(profile_name) if isinstance(profiles, dict) else None
        if isinstance(profile, dict) and _text(profile.get("model")):
            return _text(profile.get("model"))
    return _text(config.get("model"))


# the system-wide config an administrator enforces over every other layer, command line included
MANAGED_CONFIG = Path("/etc/codex/managed_config.toml")


def codex_config_path(env: Mapping[str, str], cwd: str | None = None) -> Path | None:
    """Where the Codex in `env` reads its config: $CODEX_HOME/config.toml, else ~/.codex/config.toml
    (None without either). A relative CODEX_HOME is relative to the agent's `cwd`, as for Codex."""
    home = env.get("CODEX_HOME", "").strip()
    if home:
        base = Path(home)
        if not base.is_absolute() and cwd:
            base = Path(cwd) / base
        return base / "config.toml"
    user_home = env.get("HOME", "").strip()
    return Path(user_home) / ".codex" / "config.toml" if user_home else None


def read_codex_config(env: Mapping[str, str], cwd: str | None = None) -> str | None:
    """The text of the config the Codex in `env` reads, or None when there is none to read (blocking)."""
    path = codex_config_path(env, cwd)
    if path is None:
        return None
    try:
        with path.open("rb") as file:
            data = file.read(CONFIG_MAX + 1)
    except OSError:
        return None
    if len(data) > CONFIG_MAX:
        return None
    return data.decode("utf-8", errors="replace")


def run_model(fmt: str, argv: Sequence[str], env: Mapping[str, str], cwd: str | None = None) -> str | None:
    """The model of a run of an agent in output format `fmt` started with `argv` and `env`, for the
    formats whose output reports tokens but no cost (only Codex's); None otherwise or when unknown.
    Blocking (it may read Codex's config): call it with asyncio.to_thread from async code."""
    if fmt not in TOKENS_ONLY_FORMATS or not argv or Path(argv[0]).name != "codex":
        return None  # a wrapper (sh -c "codex ...") hides the command line the model is read from
    if MANAGED_CONFIG.exists():
        return None  # an administrator's config overrides even the command line: the model cannot be told
    flags = _flags(argv)
    if flags.model is None and cwd and (Path(cwd) / ".codex" / "config.toml").exists():
        return None  # the project's own config (when Codex trusts the project) may name another model
    # only read the file when the command line leaves the model to it
    config = None if flags.oss or flags.model is not None or flags.no_config else read_codex_config(env, cwd)
    return codex_model(argv, config)
