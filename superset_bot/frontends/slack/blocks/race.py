"""A race in Slack: its root message in the channel (the prompt and each attempt's state) and the
comparison card in its thread (every attempt's figures side by side, with View diff, Pick, Diff A vs B
and Discard all). The card ranks nothing: it shows the figures and people pick.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from superset_bot.domain.race import AttemptFigures, Race, RaceState
from superset_bot.frontends.slack.blocks.figures import count, duration, stats
from superset_bot.frontends.slack.blocks.kit import (
    Block,
    Rendered,
    actions_block,
    button,
    confirm_dialog,
    context,
    fallback,
    fit,
    plain,
    section,
)
from superset_bot.frontends.slack.blocks.task import state_emoji, state_label
from superset_bot.frontends.slack.blocks.text import esc, esc_line, inline_code, mention, quote
from superset_bot.store import ACTIVE_STATES, CLOSED_STATES, REVIEWABLE_STATES, Task

# a message may hold an action id once: the card's per-attempt buttons end in "_" and the attempt's label
ACTION_RACE_PICK = "race_pick"  # value: the attempt's task id
ACTION_RACE_VIEW_DIFF = "race_view_diff"  # value: the attempt's task id
ACTION_RACE_COMPARE = "race_compare"  # value: the race id
ACTION_RACE_DISCARD = "race_discard_all"  # value: the race id
ACTION_RACE_DIFF = "race_diff_pair"  # a select; each option's value: "RACE_ID:FIRST_ID:SECOND_ID"
RACE_ACTIONS = (ACTION_RACE_PICK, ACTION_RACE_VIEW_DIFF, ACTION_RACE_COMPARE, ACTION_RACE_DISCARD, ACTION_RACE_DIFF)
PER_ATTEMPT = (ACTION_RACE_PICK, ACTION_RACE_VIEW_DIFF)


def per_attempt(action_id: str, label: object) -> str:
    return f"{action_id}_{label}"


def base_action(action_id: str) -> str:
    """The action a per-attempt button's id stands for ("race_pick_B" -> "race_pick")."""
    head, _, tail = action_id.rpartition("_")
    return head if head in PER_ATTEMPT and len(tail) == 1 else action_id


def race_outcome(race: Race, attempts: Sequence[Task]) -> str:
    """One sentence on where the race stands, for its root message and card."""
    winner = next((t for t in attempts if t.id == race.winner), None)
    who = mention(race.closed_by) if race.closed_by else "the bot"
    left = [t.race_label or "?" for t in attempts if t.id != race.winner and t.state not in CLOSED_STATES]
    if left and race.state.closed:  # what could not be discarded is said, never hidden under "discarded"
        rest = (f" Attempt{'s' if len(left) > 1 else ''} {', '.join(esc_line(x, 4) for x in left)} could not be "
                "discarded: discard by hand.")
    else:
        rest = ""
    if race.state == RaceState.PICKED and winner is not None:
        others = "" if left else "; the others were discarded"
        return (f":trophy: Attempt *{esc_line(winner.race_label, 4)}* picked by {who} and merged into "
                f"{inline_code(race.base_branch, 80)}{others}.{rest}")
    if race.state == RaceState.PICKING and winner is not None:
        return f":hourglass: Attempt *{esc_line(winner.race_label, 4)}* is being picked by {who}…"
    if race.state == RaceState.DISCARDING:
        return f":hourglass: Every attempt is being discarded by {who}…"
    if race.state == RaceState.DISCARDED:
        return f":wastebasket: No attempt was kept{f' (discarded by {who})' if race.closed_by else ''}.{rest}"
    running = sum(1 for t in attempts if t.state in ACTIVE_STATES)
    if running:
        return f":runner: {count(running, 'attempt')} still working; each posts its review below."
    return ":scales: Every attempt has finished: compare them below and pick one."


def race_root(race: Race, attempts: Sequence[Task]) -> Rendered:
    """The race's root message: the prompt, one line per attempt, and where the race stands."""

    def build(scale: float) -> list[Block]:
        lines = [f"{state_emoji(t.state)} *{esc_line(t.race_label, 4)}* {inline_code(t.id, 20)} · "
                 f"{inline_code(t.preset, 60)} · {state_label(t.state)}" for t in attempts]
        base = f"{inline_code(race.base_branch, 80)}" + (f" at {inline_code(race.base_commit[:8], 12)}"
                                                          if race.base_commit else "")
        blocks: list[Block] = [
            section(f":checkered_flag: *Race {inline_code(race.id, 20)}* · {count(len(attempts), 'attempt')}\n"
                    f"{quote(race.prompt, max(40, int(500 * scale)), max(2, int(8 * scale)))}"),
            context(f"repo {inline_code(race.repo, 80)}", f"from {base}", f"by {mention(race.requester)}"),
            section("\n".join(lines) or "_no attempts_"),
            context(race_outcome(race, attempts)),
        ]
        if race.state == RaceState.OPEN:
            blocks.append(actions_block([button("Compare now", ACTION_RACE_COMPARE, race.id),
                                         discard_all_button(race, attempts)], block_id="race"))
        return blocks

    text = f"Race {esc_line(race.id, 20)} · {len(attempts)} attempts: {esc_line(race.prompt, 200)}"
    return Rendered(fallback(text), fit(build))


def discard_all_button(race: Race, attempts: Sequence[Task]) -> Block:
    dialog = confirm_dialog("Discard every attempt?",
                            f"Stop the agents still working and delete all {len(attempts)} attempts' worktrees "
                            "and branches? Nothing is merged.", "Discard all", style="danger")
    return button("Discard all", ACTION_RACE_DISCARD, race.id, "danger", dialog)


def pick_button(race: Race, task: Task, attempts: Sequence[Task]) -> Block:
    others = [t.race_label or "?" for t in attempts if t.id != task.id and t.state not in CLOSED_STATES]
    rest = f" and discard attempt{'s' if len(others) != 1 else ''} {', '.join(others)}" if others else ""
    dialog = confirm_dialog(f"Pick attempt {task.race_label}?",
                            f"Merge attempt {task.race_label} into {esc_line(race.base_branch, 80)} (through its "
                            f"preset's delivery){rest}? Only one attempt of a race is ever merged.",
                            "Pick it", style="primary")
    return button(f"Pick {task.race_label}", per_attempt(ACTION_RACE_PICK, task.race_label), task.id, "primary",
                  dialog)


def figures_text(f: AttemptFigures) -> str:
    """One attempt's figures as a line of mrkdwn: the same facts its own review shows."""
    parts = [state_label(f.state)]
    if f.reviewed:
        if f.files is not None:
            parts.append(f"{count(f.files, 'file')} changed, +{f.insertions or 0} / -{f.deletions or 0}")
        if f.checks is True:
            parts.append(":white_check_mark: checks passed")
        elif f.checks is False:
            parts.append(f":x: checks failed ({esc_line(f.checks_summary, 120)})" if f.checks_summary
                         else ":x: checks failed")
        else:
            parts.append("no checks")
        if f.pull_checks in ("success", "failure", "pending"):
            parts.append(f"PR checks {f.pull_checks}")
        if f.clean is True:
            parts.append("merges cleanly")
        elif f.clean is False:
            shown = ", ".join(inline_code(c, 80) for c in f.conflicts[:3])
            parts.append(f":warning: conflicts{f' in {shown}' if shown else ''}")
        if f.duration_s is not None:
            parts.append(duration(f.duration_s))
    else:
        parts.append("no review yet")
    parts.extend(stats(None, f.tokens_in, f.tokens_out, f.cost_usd, f.cost_estimated_from)
                 or ["no token or cost figures"])
    return " · ".join(parts)


def comparison_card(race: Race, attempts: Sequence[Task], figures: Sequence[AttemptFigures]) -> Rendered:
    """Every attempt side by side: agent, state, files, +/-, checks, clean merge, time, tokens, cost."""
    by_id = {t.id: t for t in attempts}
    open_race = race.state == RaceState.OPEN
    pickable = [t for t in attempts if t.state in REVIEWABLE_STATES]

    def build(scale: float) -> list[Block]:
        blocks: list[Block] = [section(f":bar_chart: *Comparison of race {inline_code(race.id, 20)}* · "
                                       f"{count(len(figures), 'attempt')} · nothing here is ranked for you")]
        for f in figures:
            task = by_id.get(f.task_id)
            head = (f"{state_emoji(f.state)} *Attempt {esc_line(f.label, 4)}* · {inline_code(f.preset, 60)} · "
                    f"{inline_code(f.task_id, 20)}")
            blocks.append(section(f"{head}\n{figures_text(f)}"))
            if task is not None and open_race and task.state not in CLOSED_STATES:
                row = [button(f"View diff {task.race_label}", per_attempt(ACTION_RACE_VIEW_DIFF, task.race_label),
                              task.id)] if task.branch else []
                if task in pickable:
                    row.append(pick_button(race, task, attempts))
                if row:
                    blocks.append(actions_block(row, block_id=f"attempt-{f.task_id}"))
        blocks.append(context(race_outcome(race, attempts)))
        if open_race:
            row = []
            pairs = list(combinations([t for t in attempts if t.branch and t.state not in CLOSED_STATES], 2))
            if pairs:
                row.append({"type": "static_select", "action_id": ACTION_RACE_DIFF,
                            "placeholder": plain("Diff A vs B"),
                            "options": [{"text": plain(f"Diff {a.race_label} vs {b.race_label}"),
                                         "value": f"{race.id}:{a.id}:{b.id}"} for a, b in pairs[:100]]})
            row.append(discard_all_button(race, attempts))
            blocks.append(actions_block(row, block_id="race-card"))
        return blocks

    text = f"Comparison of race {esc_line(race.id, 20)}: " + "; ".join(
        f"{f.label} {esc(state_label(f.state), 20)}" for f in figures)
    return Rendered(fallback(text), fit(build))
