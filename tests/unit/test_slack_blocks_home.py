"""The App Home tab: the viewer's tasks with their buttons, and what is running."""

from __future__ import annotations

import json
from dataclasses import replace

from support.blocksamples import NOW, PING, dumps, hostile_task, make_task, review, texts

from superset_bot.frontends.slack.blocks.actions import (
    ACTION_CANCEL,
    ACTION_DISCARD,
    ACTION_MERGE,
    ACTION_UPDATE,
)
from superset_bot.frontends.slack.blocks.home import app_home
from superset_bot.frontends.slack.blocks.limits import validate_view
from superset_bot.store import ALL_STATES


def test_app_home() -> None:
    finished = make_task(id="fin001", state="finished", review=json.dumps(review()))
    conflicted = make_task(id="con001", state="finished", review=json.dumps(review(clean=False)))
    running = make_task(id="run001")
    merged = make_task(id="mer001", state="merged")
    view = app_home("U123ABC", [finished, conflicted, running, merged], [running],
                      {"run001": "https://x.slack.com/archives/C1/p1"}, now=NOW)
    assert validate_view(view) == []
    assert view["type"] == "home"
    everything = dumps(view)
    assert "Your tasks" in everything and "Running now" in everything and "updated <!date^" in everything
    by_task = {}
    for blk in view["blocks"]:
        if blk["type"] == "actions":
            by_task[blk["elements"][0]["value"]] = [(el["action_id"], el.get("style")) for el in blk["elements"]]
            assert all("confirm" in el for el in blk["elements"] if el["action_id"] != ACTION_UPDATE)
    assert by_task == {
        "fin001": [(ACTION_MERGE, "primary"), (ACTION_DISCARD, "danger")],
        "con001": [(ACTION_UPDATE, "primary"), (ACTION_DISCARD, "danger")],
        "run001": [(ACTION_CANCEL, "danger")],
    }
    assert "|thread>" in everything
    empty = app_home("U1", [], [], {}, now=NOW)
    assert validate_view(empty) == [] and "Nothing is running" in dumps(empty)


def test_app_home_hostile_and_large() -> None:
    mine = [replace(hostile_task(), id=f"m{i}", state=s) for i, s in enumerate(sorted(ALL_STATES) * 20)]
    running = [replace(hostile_task(), id=f"r{i}") for i in range(500)]
    view = app_home("<!channel>", mine, running, {"r1": "https://x.slack.com/archives/C1/p1"}, now=NOW)
    assert validate_view(view) == []
    assert len(view["blocks"]) <= 100
    for text in texts(view["blocks"]):
        assert not PING.search(text)


def test_app_home_for_someone_the_bot_does_not_serve() -> None:
    view = app_home("U1", [], [], {}, now=NOW, refusal="You are not on this bot's list of allowed users.")
    assert validate_view(view) == []
    everything = dumps(view)
    assert "allowed users" in everything and "Your tasks" not in everything and "Running now" not in everything
