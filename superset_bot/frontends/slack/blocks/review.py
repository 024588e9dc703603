"""The review posted when an agent is done (what changed, checks, merge preview, buttons), and the same
review once someone decided it (merged, discarded, ...), without buttons.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from superset_bot.frontends.slack.blocks.actions import (
    diff_button,
    discard_button,
    fix_ci_button,
    merge_button,
    update_button,
)
from superset_bot.frontends.slack.blocks.card import denials_text
from superset_bot.frontends.slack.blocks.coerce import as_int, as_list, as_map, as_str, num
from superset_bot.frontends.slack.blocks.figures import count, duration, stats
from superset_bot.frontends.slack.blocks.kit import (
    Block,
    Rendered,
    actions_block,
    context,
    fallback,
    fit,
    header,
    section,
)
from superset_bot.frontends.slack.blocks.task import UNKNOWN_EMOJI, state_emoji, state_label, task_id
from superset_bot.frontends.slack.blocks.text import (
    MINUS,
    clean,
    code_block,
    esc,
    esc_line,
    inline_code,
    link,
    mention,
    mention_people,
    quote,
    slack_date,
)
from superset_bot.store import CANCELLED, DISCARDED, FINISHED, MERGED, PRUNED, Task

_STATUS_LETTERS = "AMDRCTU"


def saved_review(task: Task) -> Mapping[str, Any] | None:
    """The review saved on a task (`task.review` JSON) when it reads as an object, else None."""
    return task.review_data()


def _churn(review: Mapping[str, Any]) -> str:
    """The review's lines added and deleted, as "+13 −4"."""
    return (f"+{max(as_int(review.get('insertions')) or 0, 0):,} "
            f"{MINUS}{max(as_int(review.get('deletions')) or 0, 0):,}")


def _file_line(entry: Mapping[str, Any], limit: int) -> str:
    status = entry.get("status")
    letter = status[:1].upper() if isinstance(status, str) and status else "?"
    letter = letter if letter in _STATUS_LETTERS else "?"
    path = inline_code(entry.get("path") or "?", limit)
    old = entry.get("old_path")
    if isinstance(old, str) and old and old != entry.get("path"):
        path = f"{inline_code(old, limit // 2)} → {inline_code(entry.get('path') or '?', limit // 2)}"
    if entry.get("binary") is True:
        change = "binary"
    else:
        added, deleted = as_int(entry.get("added")) or 0, as_int(entry.get("deleted")) or 0
        change = f"+{added:,} {MINUS}{deleted:,}"
    return f"`{letter}` {path}  {change}"


def _weight(entry: Mapping[str, Any]) -> int:
    return max(as_int(entry.get("added")) or 0, 0) + max(as_int(entry.get("deleted")) or 0, 0)


def _review_blocks(task: Task, review: Mapping[str, Any], scale: float, *, title: str,
                   top_files: int) -> list[Block]:
    """Header and summary of a review, shared by the open and the closed form."""
    tid = task_id(task)
    state = review.get("state") if isinstance(review.get("state"), str) else task.state
    branch = as_str(review.get("branch")) or task.branch or "?"
    base = as_str(review.get("base_branch")) or task.base_branch or "?"
    files = [f for f in as_list(review.get("files")) if isinstance(f, Mapping)]
    if task.race_label:  # the race's thread holds several attempts' reviews
        title = f"Attempt {task.race_label} · {title}"
    blocks: list[Block] = [header(title)]

    lines = [f"*Task {inline_code(tid, 40)}* · {inline_code(branch, 100)} → {inline_code(base, 60)}"]
    if state != FINISHED:
        reason = as_str(review.get("reason")) or task.reason
        problem = f"{state_emoji(state)} *{state_label(state).capitalize()}*"
        if reason:
            problem += f": {mention_people(esc(reason, max(60, int(400 * scale))))}"
        lines.append(problem)
    commits = max(as_int(review.get("commits")) or 0, 0)
    summary = [f"*{count(len(files), 'file')} changed*", _churn(review), count(commits, "commit")]
    took = num(review.get("duration_s"))
    if took is not None:
        summary.append(f"took {duration(took)}")
    summary += stats(None, review.get("tokens_in"), review.get("tokens_out"), review.get("cost_usd"),
                     review.get("cost_estimated_from"))
    lines.append(" · ".join(summary))
    blocks.append(section("\n".join(lines)))

    if files:
        shown = max(1, int(max(0, min(top_files, 50)) * scale)) if top_files > 0 else 0
        path_limit = max(30, int(160 * scale))
        ranked = sorted(files, key=_weight, reverse=True)[:shown]
        file_lines = [_file_line(f, path_limit) for f in ranked]
        if len(files) > len(ranked):
            file_lines.append(f"_…and {len(files) - len(ranked):,} more_")
        blocks.append(section("\n".join(file_lines)))
    elif not commits:
        blocks.append(section("_The agent made no changes._"))

    checks = review.get("checks")
    if isinstance(checks, Mapping):
        passed = checks.get("passed") is True
        summary_text = esc(checks.get("summary") or "", max(40, int(300 * scale)))
        head = "✅ *Checks passed*" if passed else "❌ *Checks failed*"
        text = head + (f" · {summary_text}" if summary_text.strip() else "")
        tail = checks.get("failing_tail")
        if not passed and isinstance(tail, str | list | tuple):
            tail_lines = tail.split("\n") if isinstance(tail, str) else [clean(x) for x in tail]
            block = code_block(tail_lines[-300:], max_chars=int(1500 * scale))
            if block:
                text += "\n" + block
        blocks.append(section(text))

    if review.get("clean") is True:
        blocks.append(section(f":white_check_mark: Merges cleanly into {inline_code(base, 60)}"))
    else:
        conflicts = [c for c in as_list(review.get("conflicts")) if isinstance(c, str) and c]
        if conflicts:
            n = max(1, int(10 * scale))
            names = ", ".join(inline_code(c, max(30, int(120 * scale))) for c in conflicts[:n])
            more = f" and {len(conflicts) - n:,} more" if len(conflicts) > n else ""
            blocks.append(section(f":warning: Conflicts with {inline_code(base, 60)} in: {names}{more}"))
        else:
            blocks.append(section(f":warning: Does not merge cleanly into {inline_code(base, 60)}"))
    started = as_str(review.get("base_commit"))
    if started:
        moved = as_int(review.get("base_moved"))
        where = f"Started from {inline_code(base, 60)} at {inline_code(started[:10], 12)}"
        if moved is not None and moved > 0:
            where += f"; {inline_code(base, 60)} has moved {count(moved, 'commit')} since"
        elif moved == 0:
            where += ", still its tip"
        blocks.append(context(where + "."))

    pull = pull_text(review.get("pull"), scale)
    if pull:
        blocks.append(section(pull))

    denials = denials_text(as_list(review.get("denials")), scale)
    if denials:
        blocks.append(section(denials))

    final = quote(review.get("final_text"), max(60, int(600 * scale)), max(2, int(12 * scale)))
    if final:
        blocks.append(section(f"*The agent's summary*\n{final}"))

    notes = [n for n in as_list(review.get("notes")) if isinstance(n, str) and n.strip()]
    if notes:
        blocks.append(context(esc(" · ".join(notes[:10]), max(60, int(600 * scale)))))
    return blocks


def review_message(task: Task, review: Mapping[str, Any], *, top_files: int = 10,
                   bot_user: str | None = None) -> Rendered:
    """The review posted when an agent is done: what changed, checks, merge preview, buttons."""
    r = as_map(review)
    tid = task_id(task)
    state = r.get("state") if isinstance(r.get("state"), str) else task.state
    title = "Ready for review" if state == FINISHED else "Finished with problems"
    branch = as_str(r.get("branch")) or task.branch
    base = as_str(r.get("base_branch")) or task.base_branch
    files = as_list(r.get("files"))
    no_changes = not files and not (as_int(r.get("commits")) or 0)
    buttons: list[Block] = []
    pull = as_map(r.get("pull"))
    pull_open = pull.get("state") == "open"
    if not no_changes:
        if r.get("clean") is True:
            label = f"{as_str(pull.get('slug'))}#{as_int(pull.get('number'))}" if pull_open else None
            buttons.append(merge_button(task, branch, base, label))
        else:
            buttons.append(update_button(task))
        if pull_open and pull.get("checks_state") == "failure":
            buttons.append(fix_ci_button(task))
    buttons.append(discard_button(task, branch))
    if not no_changes:
        buttons.append(diff_button(task))
    who = mention(bot_user) if bot_user else "@bot"
    hint = f"Reply in this thread mentioning {who} to send the agent a follow-up."

    def build(scale: float) -> list[Block]:
        blocks = _review_blocks(task, r, scale, title=title, top_files=top_files)
        return [*blocks, actions_block(buttons, "review_actions"), context(hint)]

    summary = f"{count(len(files), 'file')} changed, {_churn(r)}"
    if state == FINISHED:
        text = f"Task {esc_line(tid, 40)} is ready for review: {summary}"
    else:
        reason = as_str(r.get("reason")) or task.reason
        text = f"Task {esc_line(tid, 40)} finished with problems ({state_label(state)}"
        text += f": {mention_people(esc_line(reason, 300))})" if reason else ")"
        text += f": {summary}"
    return Rendered(fallback(text), fit(build))


_OUTCOMES = {
    MERGED: ("Merged", "twisted_rightwards_arrows"),
    DISCARDED: ("Discarded", "wastebasket"),
    PRUNED: ("Pruned", "broom"),
    CANCELLED: ("Cancelled", "no_entry_sign"),
    "superseded": ("Superseded by a newer review", "arrows_counterclockwise"),
}


def closed_review(task: Task, review: Mapping[str, Any] | None, *, outcome: str, actor: str,
                  when: float) -> Rendered:
    """The review once decided: the same summary, no buttons, who closed it and when.

    `outcome` is merged, discarded, pruned, cancelled or superseded (a newer review replaced it);
    an empty `actor` leaves out the "by ...".
    """
    verb, emoji = _OUTCOMES.get(outcome, (state_label(outcome).capitalize(), UNKNOWN_EMOJI))
    tid = task_id(task)
    by = f" by {mention(actor)}" if isinstance(actor, str) and actor.strip() and outcome != "superseded" else ""
    line = f":{emoji}: {verb}{by} · {slack_date(when)}"
    if outcome == MERGED and as_str(task.merge_commit):
        line += f" as {inline_code((task.merge_commit or '')[:12], 20)}"
    title = f":{emoji}: {verb.split(' by ')[0]}"

    def build(scale: float) -> list[Block]:
        if isinstance(review, Mapping):
            blocks = _review_blocks(task, review, scale, title=title, top_files=10)
        else:
            branch = f" · {inline_code(task.branch, 100)}" if task.branch else ""
            blocks = [header(title), section(f"*Task {inline_code(tid, 40)}*{branch}")]
        return [*blocks, context(line)]

    text = f"Task {esc_line(tid, 40)}: {verb.lower()}{by}"
    return Rendered(fallback(text), fit(build))


_CHECK_MARKS = {"success": "✅", "failure": "❌", "pending": "⏳"}


def pull_text(value: object, scale: float = 1.0) -> str:
    """The pull request a review is delivered through, and its checks, as the review shows them."""
    pull = as_map(value)
    number, url = as_int(pull.get("number")), as_str(pull.get("url"))
    if number is None:
        return ""
    label = esc_line(f"{as_str(pull.get('slug')) or 'pull request'}#{number}", 120)
    shown = link(url, label) or label
    state = as_str(pull.get("state")) or "open"
    head = f":arrow_heading_up: *Pull request* {shown}" + ("" if state == "open" else f" ({esc_line(state, 20)})")
    checks = [c for c in as_list(pull.get("checks")) if isinstance(c, Mapping)]
    if not checks:
        return head + " · no checks reported yet"
    counts = {k: sum(1 for c in checks if c.get("state") == k) for k in ("success", "failure", "pending")}
    verdict = as_str(pull.get("checks_state"))
    summary = {"success": "✅ the check passed" if len(checks) == 1 else f"✅ all {len(checks)} checks passed",
               "failure": f"❌ {counts['failure']} of {len(checks)} checks failed",
               "pending": f"⏳ {counts['pending']} of {len(checks)} checks running"}.get(verdict or "", "checks unknown")
    lines = [f"{head} · {summary}"]
    listed = max(2, int(8 * scale))
    for check in checks[:listed]:
        mark = _CHECK_MARKS.get(as_str(check.get("state")) or "", "•")
        name = esc_line(as_str(check.get("name")) or "check", 80)
        line = f"{mark} {name}"
        said = first_words(as_str(check.get("summary")), max(30, int(140 * scale)))
        if said and check.get("state") == "failure":
            line += f": {said}"
        lines.append(line)
    if len(checks) > listed:
        lines.append(f"_…and {len(checks) - listed} more_")
    return "\n".join(lines)


def first_words(text: str | None, limit: int, lines: int = 2) -> str:
    """The first `lines` non-empty lines of `text` (a check's title, then its summary) on one line,
    escaped and cut to `limit`."""
    said = [line.strip() for line in (text or "").splitlines() if line.strip()][:lines]
    return esc_line(" · ".join(said), limit) if said else ""


def review_line(task: Task) -> str:
    """A one-line summary of a task's saved review (`task.review` JSON), or ""."""
    data = saved_review(task)
    if data is None:
        return ""
    files = as_list(data.get("files"))
    parts = [f"{count(len(files), 'file')} changed", _churn(data)]
    base = as_str(data.get("base_branch")) or task.base_branch or "base"
    if data.get("clean") is True:
        parts.append(f"merges cleanly into {inline_code(base, 60)}")
    else:
        parts.append(f"conflicts with {inline_code(base, 60)}")
    return " · ".join(parts)
