"""Validation against Slack's Block Kit limits: each limit is caught, and nothing makes it raise."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from support.blocksamples import FUZZ, json_values

from superset_bot.frontends.slack.blocks.limits import validate_blocks, validate_view


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_validate_blocks_catches_each_limit() -> None:
    button = {"type": "button", "text": {"type": "plain_text", "text": "ok"}, "action_id": "a", "value": "v"}
    cases: list[tuple[list[Any], str]] = [
        ([section("x")] * 51, "51 blocks"),
        ([section("x" * 3001)], "limit 3000"),
        ([section("")], "non-empty"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "limit 150"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "not allowed"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}], "context"),
        ([{"type": "actions", "elements": [{**button, "text": {"type": "plain_text", "text": "b" * 76}}]}],
         "limit 75"),
        ([{"type": "actions", "elements": [{**button, "value": "v" * 2001}]}], "value"),
        ([{"type": "actions", "elements": [button, button]}], "duplicate action_id"),
        ([{"type": "actions", "elements": [{**button, "style": "loud"}]}], "style"),
        ([{"type": "actions", "elements": [{**button, "confirm": {
            "title": {"type": "plain_text", "text": "t"}, "text": {"type": "plain_text", "text": "x" * 301},
            "confirm": {"type": "plain_text", "text": "y"}, "deny": {"type": "plain_text", "text": "n"}}}]}],
         "limit 300"),
        ([section("x" * 2900)] * 5, "JSON"),
        ([{"type": "wat"}], "unknown block type"),
        ([{**section("a"), "block_id": "b"}, {**section("a"), "block_id": "b"}], "duplicate block_id"),
    ]
    for blocks, expected in cases:
        problems = validate_blocks(blocks)
        assert problems and any(expected in p for p in problems), (expected, problems)
    assert validate_blocks([section("x")] * 100, surface="home") == []
    assert validate_blocks("nope") == ["blocks must be a list"]
    view = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "private_metadata": "m" * 3001,
            "blocks": [section("x")] * 101}
    problems = validate_view(view)
    assert any("limit 24" in p for p in problems) and any("private_metadata" in p for p in problems)
    assert any("101 blocks" in p for p in problems)


@FUZZ
@given(json_values, st.sampled_from(["message", "modal", "home"]))
def test_validate_blocks_never_raises(value: Any, surface: str) -> None:
    assert isinstance(validate_blocks(value, surface=surface), list)
    assert isinstance(validate_view(value), list)
