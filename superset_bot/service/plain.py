"""Every result as plain text: the console's answer, and Slack's notification text for the same result.

One wording for both front ends, so a command says the same thing wherever it is typed. Slack
adds layout (blocks, links, buttons) around it, never other facts.
"""

from __future__ import annotations

from superset_bot.domain.commands import usage_all
from superset_bot.domain.prices import estimate_label
from superset_bot.domain.race import AttemptFigures, RaceState
from superset_bot.housekeeping.jobs import Digest
from superset_bot.service.results import (
    AttemptsDiff,
    Diff,
    DigestNow,
    Done,
    Failed,
    Help,
    Log,
    NeedsPrompt,
    Presets,
    Pruned,
    RaceDone,
    RaceFollowups,
    RaceStarted,
    RaceView,
    Refused,
    Repos,
    Result,
    Started,
    Status,
    TaskList,
)
from superset_bot.store import Task
from superset_bot.units import format_size


def answer(result: Result, prefix: str = "/superset", local: bool = False) -> str:
    """`local`: the reader is on the bot's machine (the console), so paths on it are shown too;
    a chat front end never shows them."""
    if isinstance(result, Help):
        if not result.commands:
            return "You don't have access to any superset-bot commands. Ask an admin to add you."
        return f"superset-bot commands: {', '.join(result.commands)}\n{usage_all(prefix, list(result.commands))}"
    if isinstance(result, Started):
        t = result.task
        return f"Started task `{t.id}` in `{t.repo}` with preset `{t.preset}`."
    if isinstance(result, NeedsPrompt):
        return f"`{result.command}` needs a prompt: {usage_all(prefix, [result.command])}"
    if isinstance(result, RaceStarted):
        r = result.race
        names = ", ".join(f"{t.race_label} `{t.id}` ({t.preset})" for t in result.attempts)
        return (f"Started race `{r.id}` in `{r.repo}` from `{r.base_branch}` at {r.base_commit[:8]}: "
                f"{len(result.attempts)} attempts, {names}.")
    if isinstance(result, RaceView):
        return "\n".join(race_lines(result))
    if isinstance(result, RaceDone):
        return f"Race `{result.race.id}`: every attempt was discarded."
    if isinstance(result, RaceFollowups):
        return "\n".join(f"{label} `{task_id}`: {'follow-up queued' if error is None else error}"
                         for label, task_id, error in result.sent)
    if isinstance(result, AttemptsDiff):
        return result.patch if result.patch.strip() else \
            f"Attempts {result.first.race_label} and {result.second.race_label}: their branches are the same."
    if isinstance(result, TaskList):
        if not result.tasks:
            return "No tasks running or awaiting review."
        return "\n".join(describe(t) for t in result.tasks)
    if isinstance(result, Status):
        return "\n".join(status_lines(result, local))
    if isinstance(result, Diff):
        return result.patch if result.patch.strip() else f"Task `{result.task.id}` has no changes yet."
    if isinstance(result, Log):
        return log_text(result)
    if isinstance(result, Done):
        return done_sentence(result)
    if isinstance(result, Presets):
        return "\n".join(f"{name}: {description}" for name, description in result.presets) or "No presets are loaded."
    if isinstance(result, Repos):
        return "\n".join(f"{name}{' (default)' if name == result.default else ''}{f': {path}' if local else ''}"
                         for name, path in result.repos) or "No repos are configured (SUPERSET_REPOS)."
    if isinstance(result, Pruned):
        title = "Prune (dry run): nothing was changed." if result.report.dry_run else "Prune:"
        return "\n".join([title, *result.report.lines()])
    if isinstance(result, DigestNow):
        if result.digest.empty:
            return "Nothing to report: no tasks running, awaiting review or closed lately."
        return "\n".join(["Status digest:", *digest_lines(result.digest)])
    if isinstance(result, Refused):
        return result.reason
    if isinstance(result, Failed):
        return result.message
    raise TypeError(f"no text for {type(result).__name__}")


def race_lines(view: RaceView) -> list[str]:
    """The comparison card as lines: one per attempt, every figure, no ranking."""
    race = view.race
    lines = [f"Race `{race.id}` in {race.repo} ({race.state}): {race.prompt.strip().splitlines()[0][:72]}"]
    lines.extend(f"  {f.label} `{f.task_id}` {f.preset}: {figures_line(f)}" for f in view.figures)
    if race.state == RaceState.PICKED:
        winner = next((t for t in view.attempts if t.id == race.winner), None)
        lines.append(f"Picked: {winner.race_label if winner else race.winner} by {race.closed_by}.")
    return lines


def figures_line(f: AttemptFigures) -> str:
    parts = [f.state.replace("_", " ")]
    if f.reviewed:
        if f.files is not None:
            parts.append(f"{f.files} file{'s' if f.files != 1 else ''} +{f.insertions or 0}/-{f.deletions or 0}")
        parts.append({True: "checks passed", False: "checks failed", None: "no checks"}[f.checks])
        if f.clean is not None:
            parts.append("merges cleanly" if f.clean else f"conflicts ({', '.join(f.conflicts) or 'unknown files'})")
        if f.duration_s is not None:
            parts.append(f"{f.duration_s:.0f}s")
    else:
        parts.append("no review yet")
    if f.tokens_in or f.tokens_out:
        parts.append(f"{f.tokens_in or 0:,} in / {f.tokens_out or 0:,} out tokens")
    if f.cost_usd is not None:
        estimate = f" ({estimate_label(f.cost_estimated_from)})" if f.cost_estimated_from else ""
        parts.append(f"${f.cost_usd:,.2f}{estimate}")
    return ", ".join(parts)


def log_text(result: Log) -> str:
    """The log as it is shown: its text, after a line saying what was left out of it."""
    log = result.log
    if not log.text.strip():
        return f"Task `{result.task.id}`'s log is empty so far."
    head = f"(the last {format_size(log.end - log.offset)} of {format_size(log.size)})\n" if log.offset else ""
    return head + log.text


def done_sentence(result: Done) -> str:
    t = result.task
    if result.verb == "merge" and t.race_id:
        return (f"Picked attempt {t.race_label}: merged `{t.branch}` into `{t.base_branch}` "
                f"({(t.merge_commit or '')[:10]}); the race's other attempts were discarded.")
    if result.verb == "merge":
        return f"Merged `{t.branch}` into `{t.base_branch}` ({(t.merge_commit or '')[:10]})."
    if result.verb == "discard":
        return f"Task `{t.id}` was discarded: its worktree and branch are removed."
    if result.verb == "cancel":
        return f"Task `{t.id}` is {t.state.replace('_', ' ')}."
    if result.verb == "followup":
        return f"Follow-up queued for `{t.id}`."
    if result.verb == "update":
        return f"Task `{t.id}` is updated from `{t.base_branch}`."
    if result.verb == "fixci":
        return f"The failing checks of `{t.id}` went to its agent as a follow-up."
    if result.verb == "move":
        return f"Task `{t.id}` leaves worker host `{t.host}`: its turn starts again on another host."
    return f"Task `{t.id}` is kept; its idle clock starts again."


def describe(task: Task) -> str:
    """One line per task: id, state, repo, who asked and the prompt's first line."""
    first = (task.prompt.strip().splitlines() or [""])[0]
    first = first if len(first) <= 72 else first[:71] + "…"
    race = f", attempt {task.race_label} of race `{task.race_id}`" if task.race_id else ""
    return (f"`{task.id}` {task.state.replace('_', ' ')} in {task.repo} ({task.preset}{race}) by {task.requester}: "
            f"{first}")


def status_lines(result: Status, local: bool = False) -> list[str]:
    task = result.task
    lines = [describe(task), f"branch: {task.branch or '-'} (base {task.base_branch or 'default'})"]
    if task.worktree and local:
        lines.append(f"worktree: {task.worktree}")
    if result.queue_position:
        lines.append(f"queue position: {result.queue_position}")
    if result.progress.action:
        lines.append(f"doing: {result.progress.action}")
    if task.reason:
        lines.append(f"reason: {task.reason}")
    return lines


def digest_lines(digest: Digest) -> list[str]:
    lines = []
    for title, tasks in (("Running", digest.running), ("Awaiting review (oldest first)", digest.awaiting),
                         ("Closed since the last digest", digest.closed), ("About to be pruned", digest.to_prune)):
        if tasks:
            lines.append(f"{title}:")
            lines.extend(f"  {describe(t)}{spent_on(t, digest)}" for t in tasks)
    lines.extend(spend_lines(digest))
    usage = ", ".join(f"{name} {format_size(size)}" for name, size in sorted(digest.disk.items()))
    lines.append(f"Worktrees: {usage or 'none'}; free disk {format_size(digest.free_disk)}")
    return lines


def spent_on(task: Task, digest: Digest) -> str:
    spent = digest.spend_by_task.get(task.id)
    brief = spent.brief() if spent else ""
    return f" [{brief}]" if brief else ""


def spend_lines(digest: Digest) -> list[str]:
    """What agents cost in the digest's period, per person and per repo (runs that ended in it)."""
    lines = []
    for title, sums in (("Spend by person", digest.spend_by_user), ("Spend by repo", digest.spend_by_repo)):
        if sums:
            shown = "; ".join(f"{who or 'unknown'} {spend.text()}"
                              for who, spend in sorted(sums.items(), key=lambda kv: -kv[1].cost_usd))
            lines.append(f"{title}: {shown}")
    return lines
