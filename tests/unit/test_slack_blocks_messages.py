"""Answers to commands: the status reply, help and errors."""

from __future__ import annotations

import json

from support.blocksamples import HOSTILE, NOW, assert_safe, dumps, hostile_task, make_task, progress, review

from superset_bot.domain.commands import COMMANDS
from superset_bot.frontends.slack.blocks.messages import error_message, help_message, status_message


def test_status_message() -> None:
    task = make_task(review=json.dumps(review()), state="finished", finished_at=NOW - 10)
    r = status_message(task, progress(), "https://x.slack.com/archives/C1/p1", now=NOW, queue_position=None)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "*Task `k3x9qa`* · finished" in everything and ">fix the flaky login test" in everything
    assert "3 files changed" in everything and "merges cleanly into `develop`" in everything
    assert "<https://x.slack.com/archives/C1/p1|Open the task's thread>" in everything
    assert "```" not in everything  # no live tail once the agent is done
    running = status_message(make_task(), progress(), None, now=NOW, queue_position=None)
    assert "```" in dumps(running.blocks) and "Open the task" not in dumps(running.blocks)
    hostile = status_message(hostile_task(review="{not json"), progress(tail=[HOSTILE * 100] * 100),
                               "https://x|<!channel>", now=NOW, queue_position=None)
    assert_safe(hostile)


def test_help_message_lists_only_allowed_commands() -> None:
    r = help_message(["list", "spawn", "bogus"])
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "`/superset spawn [--repo NAME] [--preset NAME] [--base BRANCH] PROMPT`" in everything
    assert "`/superset list`" in everything and "prune" not in everything
    spec = {c.name: c.help for c in COMMANDS}
    assert spec["list"] in everything
    assert "`/ss help`" in dumps(help_message(["help"], prefix="/ss").blocks)
    none = help_message([])
    assert_safe(none)
    assert "don't have access" in none.text


def test_error_message_keeps_backticks_and_escapes_the_rest() -> None:
    r = error_message('Unknown command "<!channel>".\nUsage: `/superset help`')
    assert_safe(r)
    assert r.blocks[0]["text"]["text"] == ':warning: Unknown command "&lt;!channel&gt;".\nUsage: `/superset help`'
    assert_safe(error_message(HOSTILE * 1000))
    assert error_message("").text
