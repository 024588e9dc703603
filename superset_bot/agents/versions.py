"""What the bot knows about the agent CLIs it ships presets for, and a probe of an installed one.

These CLIs change monthly and drop flags without notice (Codex removed `--full-auto`), so the
doctor asks the installed program for its version and its `--help`, and checks every flag a
preset passes against it before a task finds out the hard way.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from superset_bot import procs

Version = tuple[int, ...]


@dataclass(frozen=True)
class KnownCli:
    """A CLI the shipped presets were tested with: versions in [tested_from, tested_below)."""

    program: str
    package: str  # how to install it
    tested_from: Version
    tested_below: Version
    tested: str  # the exact version the test suite pins


KNOWN_CLIS: dict[str, KnownCli] = {
    "claude": KnownCli("claude", "npm install -g @anthropic-ai/claude-code", (2, 1, 197), (2, 2), "2.1.197"),
    "codex": KnownCli("codex", "npm install -g @openai/codex", (0, 171, 0), (0, 172), "0.171.0"),
    "aider": KnownCli("aider", "pip install aider-chat", (0, 86, 2), (0, 87), "0.86.2"),
}

PROBE_TIMEOUT = 20.0  # seconds for one `--version` or `--help`; aider imports a lot before answering
_VERSION_RE = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?:\.(\d+))?")
_COMMANDS_HEADER = re.compile(r"^(?:commands|subcommands):\s*$", re.IGNORECASE)
_COMMAND_LINE = re.compile(r"^\s{2,}([a-z][a-z0-9-]*)(?:[ ,]|$)")
_FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][A-Za-z0-9-]*)")


def parse_version(text: str) -> Version | None:
    """The first dotted version in `text` ("2.1.197 (Claude Code)", "codex-cli 0.171.0")."""
    match = _VERSION_RE.search(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def show_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def in_tested_range(cli: KnownCli, version: Version) -> bool:
    return cli.tested_from <= version < cli.tested_below


def argv_flags(argv: Sequence[str]) -> list[str]:
    """The options an argv passes (`--flag`, `--flag=value`, `-p`), up to a `--` end of options."""
    flags: list[str] = []
    for word in argv[1:]:
        if word == "--":
            break
        if word.startswith("-") and len(word) > 1 and not word[1:].isdigit():
            flag = word.split("=", 1)[0]
            if flag not in flags:
                flags.append(flag)
    return flags


def subcommands(help_text: str) -> set[str]:
    """The names listed under a help text's "Commands:" heading."""
    names: set[str] = set()
    listing = False
    for line in help_text.splitlines():
        if _COMMANDS_HEADER.match(line.strip()):
            listing = True
            continue
        if listing:
            if not line.strip():
                listing = False
                continue
            match = _COMMAND_LINE.match(line)
            if match:
                names.add(match.group(1))
            elif not line.startswith(" "):
                listing = False
    return names


def help_flags(help_text: str) -> set[str]:
    return set(_FLAG_RE.findall(help_text))


@dataclass(frozen=True)
class Probe:
    """What an installed agent CLI said about itself."""

    version: Version | None
    version_text: str
    known_flags: set[str]
    error: str | None = None  # why it could not be asked


async def _output(argv: Sequence[str], env: dict[str, str]) -> tuple[int | None, str]:
    proc = await procs.start_in_group(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
    except TimeoutError:
        procs.signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        return None, ""
    return proc.returncode, out.decode("utf-8", errors="replace")


async def probe(program: str, argvs: Sequence[Sequence[str]], env: dict[str, str]) -> Probe:
    """Ask `program` for its version and for the help of every subcommand `argvs` use.

    Subcommands are the leading bare words of an argv (`codex exec ...`) and any later word the
    previous help lists under "Commands:" (`codex exec ... resume ID`).
    """
    code, version_text = await _output([program, "--version"], env)
    if code is None:
        return Probe(None, "", set(), f"`{program} --version` did not answer within {PROBE_TIMEOUT:.0f} s")
    if code != 0:
        first = version_text.strip().splitlines()[:1]
        return Probe(None, version_text, set(), f"`{program} --version` exited {code}: {first[0] if first else ''}")
    helps: dict[tuple[str, ...], str] = {}

    async def help_of(path: tuple[str, ...]) -> str:
        if path not in helps:
            code, text = await _output([program, *path, "--help"], env)
            helps[path] = text if code == 0 else ""
        return helps[path]

    for argv in argvs:
        path: tuple[str, ...] = ()
        text = await help_of(path)
        for word in argv[1:]:
            if word == "--":
                break
            if word.startswith("-"):
                continue
            if word in subcommands(text):
                path = (*path, word)
                text = await help_of(path)
    known: set[str] = set()
    for text in helps.values():
        known |= help_flags(text)
    return Probe(parse_version(version_text), version_text.strip(), known)
