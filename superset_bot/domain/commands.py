"""The command grammar shared by every front end (`/superset ...` in Slack, the console).

Parsing never raises anything but CommandError, whose message says what was wrong and
shows the usage line of the command, so any input gets a readable answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from superset_bot.git.naming import BadBranchName, check_branch_name

OPTION_NAMES = ("repo", "preset", "base")
RACE_OPTION_NAMES = (*OPTION_NAMES, "presets")
TASK_ID = re.compile(r"^[a-z0-9]{4,12}$")


@dataclass(frozen=True)
class CommandSpec:
    name: str
    args: str
    help: str
    needs_task: bool = False
    admin_only: bool = False


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("spawn", "[--repo NAME] [--preset NAME] [--base BRANCH] PROMPT",
                "start an agent on PROMPT in a new worktree"),
    CommandSpec("race", "[--repo NAME] [--base BRANCH] [--preset NAME | --presets A,B,...] [N] PROMPT",
                "try PROMPT with N agents at once (or one per preset) and keep the best"),
    CommandSpec("compare", "RACE", "every attempt of a race side by side (pick one with merge ID)", needs_task=True),
    CommandSpec("list", "", "tasks that are running, queued or awaiting review"),
    CommandSpec("status", "ID", "state, progress and branch of one task", needs_task=True),
    CommandSpec("diff", "ID", "the full diff of a task's branch", needs_task=True),
    CommandSpec("log", "ID", "the agent's log of its last run (its end), wherever it ran", needs_task=True),
    CommandSpec("merge", "ID", "merge a task's branch into its base", needs_task=True),
    CommandSpec("discard", "ID", "throw a task's work away (worktree and branch)", needs_task=True),
    CommandSpec("cancel", "ID", "stop a task's agent", needs_task=True),
    CommandSpec("followup", "ID TEXT", "send more instructions to a finished task's agent", needs_task=True),
    CommandSpec("move", "ID", "run a task's turn again on another worker host (its own stopped answering)",
                needs_task=True),
    CommandSpec("presets", "", "the presets you can spawn with"),
    CommandSpec("repos", "", "the repositories agents work in"),
    CommandSpec("prune", "[--dry-run]", "remove stale worktrees now", admin_only=True),
    CommandSpec("digest", "", "post the status digest now", admin_only=True),
    CommandSpec("help", "", "this list"),
)
SPECS = {spec.name: spec for spec in COMMANDS}


def usage(name: str, prefix: str = "/superset") -> str:
    spec = SPECS[name]
    lead = f"{prefix} " if prefix else ""  # the console has no prefix
    return f"`{lead}{spec.name}{' ' + spec.args if spec.args else ''}`"


def usage_all(prefix: str = "/superset", names: list[str] | None = None) -> str:
    lines = [f"{usage(s.name, prefix)} - {s.help}" for s in COMMANDS if names is None or s.name in names]
    return "\n".join(lines)


class CommandError(ValueError):
    """Bad command input; `str()` is a sentence plus the usage line to show the person."""

    def __init__(self, problem: str, command: str | None = None, prefix: str = "/superset") -> None:
        self.problem = problem
        self.command = command
        hint = f"Usage: {usage(command, prefix)}" if command in SPECS else f"Commands:\n{usage_all(prefix)}"
        super().__init__(f"{problem}\n{hint}")


@dataclass(frozen=True)
class Command:
    name: str
    task_id: str | None = None
    text: str = ""  # the prompt (spawn) or follow-up text
    options: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    count: int | None = None  # a race's number of attempts, when given


def parse(text: str, prefix: str = "/superset") -> Command:
    """Parse `spawn --repo web fix it`, `status ab12cd`, `prune --dry-run`, ..."""
    text = (text or "").strip()
    if not text:
        return Command("help")
    head, _, rest = text.partition(" ")
    name = head.lower()
    rest = rest.strip()
    if name.startswith("-") or name not in SPECS:
        shown = head if len(head) <= 40 else head[:40] + "…"
        raise CommandError(f'Unknown command "{shown}".', None, prefix)
    spec = SPECS[name]
    if name == "spawn":
        options, prompt, _ = _parse_options(rest, prefix)
        return Command("spawn", text=prompt, options=options)
    if name == "race":
        return _parse_race(rest, prefix)
    if name == "prune":
        if rest and rest not in ("--dry-run", "dry-run", "dry_run=true"):
            raise CommandError(f'Unexpected "{_clip(rest)}" after prune.', name, prefix)
        return Command("prune", dry_run=bool(rest))
    if spec.needs_task:
        task_id, _, more = rest.partition(" ")
        task_id = task_id.strip().lower()
        if not task_id:
            raise CommandError(f"`{name}` needs a task id (see {usage('list', prefix)}).", name, prefix)
        if not TASK_ID.match(task_id):
            raise CommandError(f'"{_clip(task_id)}" is not a task id (ids look like `k3x9qa`).', name, prefix)
        more = more.strip()
        if name == "followup":
            if not more:
                raise CommandError("`followup` needs the instructions after the task id.", name, prefix)
            return Command(name, task_id=task_id, text=more)
        if more:
            raise CommandError(f'Unexpected "{_clip(more)}" after the task id.', name, prefix)
        return Command(name, task_id=task_id)
    if rest:
        raise CommandError(f'`{name}` takes no arguments, got "{_clip(rest)}".', name, prefix)
    return Command(name)


def _parse_race(rest: str, prefix: str) -> Command:
    """`race [options] [N] [options] PROMPT`: the count is the first word after the options when it is a
    number, and options may follow it too (`race 3 --preset codex fix it`)."""
    options, prompt, ended = _parse_options(rest, prefix, "race", RACE_OPTION_NAMES)
    first, _, after = prompt.partition(" ")
    count = None
    if not ended and first.isascii() and first.isdigit():  # after `--` the prompt is verbatim
        count = int(first)
        if count > 99:
            raise CommandError(f"{count} attempts is far too many.", "race", prefix)
        more, prompt, _ = _parse_options(after.strip(), prefix, "race", RACE_OPTION_NAMES)
        for key, value in more.items():
            if key in options:
                raise CommandError(f"Option --{key} is given twice.", "race", prefix)
            options[key] = value
    if "preset" in options and "presets" in options:
        raise CommandError("Give --preset (one preset, N attempts) or --presets (one attempt each), not both.",
                           "race", prefix)
    if "presets" in options:
        names = [n.strip() for n in options["presets"].split(",")]
        if any(not n for n in names):
            raise CommandError(f'"{_clip(options["presets"])}" is not a list of presets: write `--presets a,b,c`.',
                               "race", prefix)
        options["presets"] = ",".join(names)
    return Command("race", text=prompt, options=options, count=count)


def _parse_options(rest: str, prefix: str, command: str = "spawn",
                   names: tuple[str, ...] = OPTION_NAMES) -> tuple[dict[str, str], str, bool]:
    """Leading `--repo NAME`, `--repo=NAME` or `repo=NAME` tokens; the rest is the prompt verbatim.

    Options are only read before the prompt (and `--` ends them), so a prompt such as
    "set base=10 in the config" keeps its words. The flag says whether `--` ended them.
    """
    options: dict[str, str] = {}
    remaining = rest
    while remaining:
        token, _, after = remaining.partition(" ")
        after = after.lstrip()
        if token == "--":
            return options, after.strip(), True
        key, value = None, None
        if token.startswith("--"):
            key, eq, value = token[2:].partition("=")
            if key not in names:
                known = ", ".join(f"--{n}" for n in names)
                raise CommandError(f'Unknown option "{_clip(token)}" (options: {known}).', command, prefix)
            if not eq:
                value, _, after = after.partition(" ")
                after = after.lstrip()
        elif "=" in token and token.split("=", 1)[0].lower() in names:
            key, _, value = token.partition("=")
            key = key.lower()
        else:
            break
        if not value or value.startswith("--"):
            raise CommandError(f"Option --{key} needs a value.", command, prefix)
        if key in options:
            raise CommandError(f"Option --{key} is given twice.", command, prefix)
        if key == "base":
            try:
                check_branch_name(value)
            except BadBranchName as exc:
                raise CommandError(f'"{_clip(value)}" is not a valid branch name for --base: {exc.reason}.',
                                   command, prefix) from exc
        options[key] = value
        remaining = after
    return options, remaining.strip(), False


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
