"""Slack and the console give the same answer to every command: both are thin over one service.

Each command runs through the real Slack front end (signed HTTP against the fake Slack) and
through the console, on one engine; the answers are compared as the person reads them (Slack's
text, unescaped, against the console's line). Commands that change a task run on two twin tasks,
one per front end, and are compared with the ids, branches and commits that differ replaced.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable
from typing import Any

from support.slackharness import CHANNEL, Bot

from superset_bot.composition import build_service
from superset_bot.domain.commands import COMMANDS
from superset_bot.frontends.console import CONSOLE_USER, Console


def slack_answer(b: Bot, key: str) -> str:
    payloads = [r["payload"] for r in b.fake.responses_to_urls if r.get("key") == key]
    assert len(payloads) == 1, payloads
    return html.unescape(payloads[0]["text"])


def twin(text: str, *tasks: Any) -> str:
    """`text` with what differs between twin tasks replaced: ids, branches, commits, people, the prompt's last word."""
    for task in tasks:
        text = text.replace(task.id, "ID")
    text = re.sub(r"superset/ID-[\w-]+", "superset/BRANCH", text)
    text = re.sub(r"\b[0-9a-f]{10}\b", "COMMIT", text)
    text = re.sub(r"\b(U0ALICE|console)\b", "PERSON", text)  # who did it: each twin has its own person
    return re.sub(r"\b(one|two|three|four)\b", "N", text)


async def test_every_command_gives_the_same_answer_in_slack_and_the_console(bot: Callable[..., Any]) -> None:
    b: Bot = await bot()
    console = Console(build_service(b.engine, operators={CONSOLE_USER}), io.StringIO())
    seen: set[str] = set()

    async def both(line: str) -> tuple[str, str]:
        seen.add(line.split()[0])
        _, key = await b.command(line)
        await b.settle()
        # Slack writes a command as `/superset merge ID`, the console as `merge ID`; the console
        # has one command of its own, `quit`
        slack = slack_answer(b, key).replace("/superset ", "")
        assert str(b.repo) not in slack and str(b.settings.data_dir) not in slack, "no server paths in Slack"
        terminal = (await console.handle(line)).replace("\nquit - leave (agents keep running)", "")
        # the console also shows paths on the bot's machine, where its user is
        terminal = "\n".join(line for line in terminal.split("\n") if not line.startswith("worktree: "))
        terminal = terminal.replace(f": {b.repo}", "")
        return slack, terminal

    # commands that read the bot's state, and bad input
    for line in ("help", "presets", "repos", "list", "digest", "prune --dry-run", "bogus", "status",
                 "merge zz9zz9", "spawn --repo nowhere fix it", "race 1 fix it", "race --presets edit,nope fix it", "compare zz9zz9"):
        slack, terminal = await both(line)
        assert slack == terminal, line

    # spawn: a task from each front end
    _, key = await b.command("spawn add feature one")
    await b.settle()
    started_in_slack = slack_answer(b, key)
    a = await b.finished((await b.task_for_thread()).id)
    started_in_console = await console.handle("spawn add feature two")
    match = re.search(r"Started task `(\w+)`", started_in_console)
    assert match, started_in_console
    c = await b.finished(match.group(1))
    seen.add("spawn")
    assert twin(started_in_slack, a) == twin(started_in_console, c)
    assert a.channel == CHANNEL and c.channel is None

    # the same task seen from both: Slack's list is this channel's tasks and the caller's own, so
    # the console's task is not in it; compare the list while only the Slack task is listed
    for line in (f"status {a.id}", f"diff {a.id}", f"log {a.id}"):
        slack, terminal = await both(line)
        if line.startswith(("diff", "log")):  # Slack posts it as a file in the task's thread
            uploads = [f for f in b.fake.files if f["thread_ts"] == b.thread_of(a).thread_ts]
            assert uploads[-1]["content"].decode() == terminal and f"`{a.id}`" in slack
        else:
            assert slack == terminal, line
    _, key = await b.command("list")
    await b.settle()
    listed = slack_answer(b, key)
    assert a.id in listed and c.id not in listed
    everything = (await console.handle("list")).splitlines()
    assert [line for line in everything if c.id not in line] == listed.splitlines()

    # a console task has no Slack thread to post its diff in: Slack says so rather than nothing
    _, key = await b.command(f"diff {c.id}")
    await b.settle()
    assert f"Task `{c.id}` has no Slack thread to post the diff in." in slack_answer(b, key)

    # commands that change a task: the Slack task through Slack, its twin through the console
    for verb in ("move", "followup", "cancel", "merge", "merge", "discard"):
        extra = " and test it" if verb == "followup" else ""
        _, key = await b.command(f"{verb} {a.id}{extra}")
        await b.settle()
        slack = slack_answer(b, key).replace("/superset ", "")
        terminal = await console.handle(f"{verb} {c.id}{extra}")
        seen.add(verb)
        assert twin(slack, a) == twin(terminal, c), verb
        if verb == "followup":
            a, c = await b.finished(a.id), await b.finished(c.id)
    # a discard that goes through, on a fresh pair of twins
    _, key = await b.command("spawn add feature three")
    await b.settle()
    a2 = await b.finished((await b.task_for_thread()).id)
    match = re.search(r"Started task `(\w+)`", await console.handle("spawn add feature four"))
    assert match
    c2 = await b.finished(match.group(1))
    _, key = await b.command(f"discard {a2.id}")
    await b.settle()
    slack = slack_answer(b, key).replace("/superset ", "")
    assert "was discarded" in slack
    assert twin(slack, a2) == twin(await console.handle(f"discard {c2.id}"), c2)

    # the digest now holds both tasks: posted in the channel by Slack, printed by the console
    _, key = await b.command("digest")
    await b.settle()
    posted = [m for m in b.fake.channel_messages(CHANNEL) if m.text.startswith("Status digest")]
    assert posted and html.unescape(posted[-1].text) == await console.handle("digest")
    assert a.id in posted[-1].text and c.id in posted[-1].text
    assert seen >= {spec.name for spec in COMMANDS}, sorted({spec.name for spec in COMMANDS} - seen)
