"""Block Kit rendering: content people rely on, and Slack's limits under hostile input."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from superset_bot.domain.commands import COMMANDS
from superset_bot.frontends.slack import blocks as b
from superset_bot.store import ALL_STATES, Task

NOW = 1_760_000_000.0
HOSTILE = "<!channel> <!here> <!everyone> <@U0BAD> <#C123> <http://evil.example|click> &amp; ``` *x* _y_"
PING = re.compile(r"<!(channel|here|everyone)|<@U0BAD|<#C123|<http://evil")
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_task(**kw: Any) -> Task:
    base: dict[str, Any] = dict(
        id="k3x9qa", repo="web", prompt="fix the flaky login test", preset="claude", state="running",
        requester="U123ABC", branch="agent/k3x9qa", base_branch="main", created_at=NOW - 300,
        started_at=NOW - 245, updated_at=NOW, last_activity=NOW,
    )
    base.update(kw)
    return Task(**base)


def hostile_task(**kw: Any) -> Task:
    long = HOSTILE * 200
    return make_task(
        repo="<!here>`" * 300, prompt=("```\n" + HOSTILE + "\n") * 2000,
        preset=long, requester="<!channel>", branch=("`<!channel>`/" * 800), base_branch="<!here>" * 500,
        reason=long, merge_commit=long, **kw,
    )


def progress(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "phase": "working", "action": "Editing src/api.py", "tools_used": 12, "tokens_in": 34_500,
        "tokens_out": 2100, "cost_usd": 0.42, "duration_s": None, "session_id": "s1", "final_text": None,
        "is_error": False, "lines_seen": 120, "tail": ["collecting tests", "3 passed"],
    }
    base.update(kw)
    return base


def file_entry(path: str, status: str = "M", added: int | None = 1, deleted: int | None = 0,
               old_path: str | None = None, binary: bool = False) -> dict[str, Any]:
    return {"path": path, "old_path": old_path, "status": status, "added": added, "deleted": deleted,
            "binary": binary}


def review(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "task_id": "k3x9qa", "state": "finished", "reason": None, "branch": "agent/k3x9qa",
        "base_branch": "develop",
        "files": [file_entry("src/api.py", added=12, deleted=3),
                  file_entry("src/new.py", "R", 1, 1, old_path="src/old.py"),
                  file_entry("logo.png", "A", None, None, binary=True)],
        "commits": 2, "insertions": 13, "deletions": 4, "clean": True, "conflicts": [],
        "checks": {"passed": True, "summary": "12 passed", "failing_tail": ""},
        "duration_s": 245.0, "cost_usd": 0.42, "tokens_in": 34_500, "tokens_out": 2100,
        "final_text": "I fixed the race in the login test.", "notes": [],
    }
    base.update(kw)
    return base


def hostile_review() -> dict[str, Any]:
    long_name = ("dir/" + HOSTILE) * 100  # ~10,000 chars, shared by every entry
    files = [file_entry(long_name, s, 10**6, 10**6, old_path=long_name) for s in "AMDRCT"] * 1700
    return review(
        branch=("`<!channel>`/" * 800), base_branch="<!here>" * 500, files=files, commits=10**9,
        insertions=10**12, deletions=10**12, clean=False, conflicts=[long_name] * 10_000,
        checks={"passed": False, "summary": HOSTILE * 100,
                "failing_tail": "\n".join(f"FAILED test_{i} ``` {HOSTILE}" for i in range(1000))},
        final_text=("```\n" + HOSTILE + "\n") * 2000, notes=[HOSTILE * 50] * 50, state="failed",
        reason=HOSTILE * 200, cost_usd=1e12, tokens_in=10**14, tokens_out=10**14, duration_s=1e9,
    )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def texts(blocks: Any) -> list[str]:
    """Every mrkdwn/plain_text string inside a block structure."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [el for blk in blocks if blk["type"] == "actions" for el in blk["elements"]]


def assert_safe(rendered: b.Rendered, surface: str = "message") -> None:
    """Limits hold, nothing pings, no fence is broken."""
    assert b.validate_blocks(rendered.blocks, surface=surface) == []
    assert rendered.text.strip() and b.ulen(rendered.text) <= 3000
    assert not PING.search(dumps(rendered.blocks)), dumps(rendered.blocks)[:2000]
    assert not PING.search(rendered.text)
    for text in texts(rendered.blocks):
        assert text.count("```") in (0, 2), text[:500]


# ----------------------------------------------------------------------------- text helpers


def test_escape_touches_only_the_three_control_characters() -> None:
    assert b.escape("<!channel> & <@U1> <#C1> <http://x|y>") == (
        "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;#C1&gt; &lt;http://x|y&gt;"
    )
    plain = "*bold* _it_ ~s~ `code` ```fence``` :emoji: @here #general é 🎉"
    assert b.escape(plain) == plain


def test_code_block_keeps_the_last_lines_and_escapes() -> None:
    lines = [f"line {i}" for i in range(1000)]
    block = b.code_block(lines, max_chars=200)
    assert block.startswith("```\n") and block.endswith("\nline 999\n```")
    assert "line 0\n" not in block and len(block) <= 200
    body = block[4:-4].split("\n")
    assert body == [f"line {i}" for i in range(1000 - len(body), 1000)]  # whole lines, in order
    assert b.code_block(["<!channel> & <b>"]) == "```\n&lt;!channel&gt; &amp; &lt;b&gt;\n```"


def test_code_block_fence_cannot_be_broken() -> None:
    block = b.code_block(["```", "before ``` after", "````````", "`", "end`"])
    assert block.count("```") == 2 and block.startswith("```\n") and block.endswith("\n```")
    assert "``" not in block[3:-3]


def test_code_block_cuts_one_overlong_last_line_and_skips_blank_input() -> None:
    block = b.code_block(["short", "x" * 10_000], max_chars=100)
    assert block == "```\n" + "x" * 91 + "…\n```" and len(block) == 100
    assert b.code_block([]) == "" and b.code_block(["", "  ", "\n"]) == ""
    assert b.code_block(["a & b " * 100], max_chars=50).count("&amp;") >= 1
    assert "&am…" not in b.code_block(["&" * 100], max_chars=30)  # never inside an entity


@FUZZ
@given(st.lists(st.text(), max_size=30), st.integers(min_value=20, max_value=4000))
def test_code_block_property(lines: list[str], max_chars: int) -> None:
    block = b.code_block(lines, max_chars=max_chars)
    if not block:
        assert all(not b._clean(line).strip() for line in lines)
        return
    assert block.count("```") == 2
    assert block.startswith("```\n") and block.endswith("\n```")
    assert b.ulen(block) <= max_chars
    assert "<" not in block and ">" not in block


def test_inline_code_and_quote_are_contained() -> None:
    assert b.inline_code("a`b") == "`aˋb`"
    assert b.inline_code("") == "` `"
    assert b.inline_code("x" * 500, 50).endswith("…`") and len(b.inline_code("x" * 500, 50)) <= 50
    q = b.quote("one\n```\n<!here>", 600)
    assert q.split("\n")[0] == ">one" and "```" not in q and "&lt;!here&gt;" in q


def test_mention_only_for_user_ids() -> None:
    assert b.mention("U123ABC") == "<@U123ABC>"
    assert b.mention("W0ABC") == "<@W0ABC>"
    assert b.mention("<!channel>") == "&lt;!channel&gt;"
    assert b.mention("") == "someone"
    assert b.mention("scheduler") == "scheduler"


def test_slack_date_and_links() -> None:
    assert b.slack_date(NOW) == f"<!date^{int(NOW)}^{{date_short_pretty}} at {{time}}|2025-10-09 08:53 UTC>"
    assert b.slack_date(float("nan")) == "an unknown time"
    assert b.link("https://x.slack.com/archives/C1/p1?a=1&b=2", "thread") == (
        "<https://x.slack.com/archives/C1/p1?a=1&amp;b=2|thread>"
    )
    for bad in ("javascript:alert(1)", "https://x|<!channel>", "https://a b", None, "https://x>"):
        assert b.link(bad, "thread") == ""


def test_every_state_has_a_real_emoji_and_label() -> None:
    assert set(b.STATE_EMOJI) == set(ALL_STATES) == set(b.STATE_LABEL)
    assert all(re.fullmatch(r"[a-z_]+", name) for name in b.STATE_EMOJI.values())
    assert b.STATE_EMOJI["merged"] == "twisted_rightwards_arrows"


# ----------------------------------------------------------------------------- validate_blocks


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
        problems = b.validate_blocks(blocks)
        assert problems and any(expected in p for p in problems), (expected, problems)
    assert b.validate_blocks([section("x")] * 100, surface="home") == []
    assert b.validate_blocks("nope") == ["blocks must be a list"]
    view = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "private_metadata": "m" * 3001,
            "blocks": [section("x")] * 101}
    problems = b.validate_view(view)
    assert any("limit 24" in p for p in problems) and any("private_metadata" in p for p in problems)
    assert any("101 blocks" in p for p in problems)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "text", "elements", "fields", "accessory", "block_id", "action_id",
                         "value", "confirm", "options", "initial_option", "element", "label", "style"]),
        children, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(json_values, st.sampled_from(["message", "modal", "home"]))
def test_validate_blocks_never_raises(value: Any, surface: str) -> None:
    assert isinstance(b.validate_blocks(value, surface=surface), list)
    assert isinstance(b.validate_view(value), list)


# ----------------------------------------------------------------------------- root and status


def test_root_message_shows_id_state_prompt_and_context() -> None:
    r = b.root_message(make_task(prompt="fix the flaky login test\nin tests/test_auth.py"))
    assert_safe(r)
    first = r.blocks[0]["text"]["text"]
    assert first.startswith(":runner: *Task `k3x9qa`* · running\n")
    assert ">fix the flaky login test\n>in tests/test_auth.py" in first
    context = dumps(r.blocks[1])
    for expected in ("`web`", "`agent/k3x9qa`", "`claude`", "<@U123ABC>"):
        assert expected in context
    assert "k3x9qa" in r.text and "running" in r.text
    pending = b.root_message(make_task(branch=None, state="queued"))
    assert "branch pending" in dumps(pending.blocks) and ":hourglass_flowing_sand:" in dumps(pending.blocks)


def test_root_message_hostile() -> None:
    r = b.root_message(hostile_task())
    assert_safe(r)
    assert "&lt;!channel&gt;" in dumps(r.blocks)


def test_status_card_running() -> None:
    r = b.status_card(make_task(), progress(tail=["one", "two ``` three", "<!here>"]), now=NOW)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "*Running* · 4m 05s" in everything
    assert "`Editing src/api.py`" in everything
    assert "12 tool calls" in everything and "34.5k in / 2.1k out tokens" in everything and "$0.42" in everything
    assert "k3x9qa" in everything
    tail = r.blocks[-1]["text"]["text"]
    assert tail.count("```") == 2 and tail.endswith("&lt;!here&gt;\n```") and "one\n" in tail
    assert "Editing src/api.py" in r.text and "k3x9qa" in r.text


def test_status_card_queued_preparing_and_done() -> None:
    queued = b.status_card(make_task(state="queued", started_at=None), None, now=NOW, queue_position=3)
    assert_safe(queued)
    assert "*Queued* · waiting 5m 00s · #3 in line" in dumps(queued.blocks)
    assert len(queued.blocks) == 2  # no empty code block
    preparing = b.status_card(make_task(state="preparing"), {}, now=NOW)
    assert "Preparing" in dumps(preparing.blocks)
    failed = b.status_card(make_task(state="failed", finished_at=NOW - 45, reason="agent exited with 2"),
                           progress(phase="done"), now=NOW)
    assert_safe(failed)
    assert ":x: *Failed* · took 3m 20s" in dumps(failed.blocks) and "agent exited with 2" in dumps(failed.blocks)
    starting = b.status_card(make_task(), progress(action=None, phase="starting", tail=[]), now=NOW)
    assert "Starting the agent" in dumps(starting.blocks)


def test_status_card_hostile_stays_small() -> None:
    p = progress(action=HOSTILE * 500, tail=[("x" * 9000 + "```" + HOSTILE)] * 1000, tools_used=10**20,
                 tokens_in=float("inf"), cost_usd=float("nan"), lines_seen="many", is_error=True)
    r = b.status_card(hostile_task(), p, now=NOW, queue_position=-5)
    assert_safe(r)
    assert len(dumps(r.blocks)) < 8000


def text_tasks() -> st.SearchStrategy[Task]:
    maybe_float = st.none() | st.floats(allow_nan=True) | st.floats(min_value=0, max_value=2e9)
    return st.builds(
        Task,
        id=st.text(max_size=30), repo=st.text(max_size=200), prompt=st.text(max_size=2000),
        preset=st.text(max_size=100), state=st.sampled_from(sorted(ALL_STATES)) | st.text(max_size=10),
        requester=st.text(max_size=20) | st.just("U123ABC"), branch=st.none() | st.text(max_size=300),
        base_branch=st.none() | st.text(max_size=300), reason=st.none() | st.text(max_size=2000),
        merge_commit=st.none() | st.text(max_size=50), created_at=st.floats(min_value=0, max_value=2e9),
        started_at=maybe_float, finished_at=maybe_float,
    )


anything = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300) | st.lists(
    st.text(max_size=300), max_size=30)
progress_maps = st.dictionaries(
    st.sampled_from(["phase", "action", "tools_used", "tokens_in", "tokens_out", "cost_usd", "duration_s",
                     "final_text", "is_error", "lines_seen", "tail"]), anything, max_size=11)


@FUZZ
@given(text_tasks(), st.none() | progress_maps, st.floats(), st.none() | st.integers())
def test_status_card_property(task: Task, prog: dict[str, Any] | None, now: float, pos: int | None) -> None:
    r = b.status_card(task, prog, now=now, queue_position=pos)
    assert b.validate_blocks(r.blocks) == []
    assert r.text and b.ulen(r.text) <= 3000
    for text in texts(r.blocks):
        assert text.count("```") in (0, 2)
    assert len(dumps(r.blocks)) < 9000  # a status card stays well under the 12k message budget
    s = b.status_message(task, prog, "https://x.slack.com/archives/C1/p1", now=now, queue_position=pos)
    assert b.validate_blocks(s.blocks) == [] and s.text


def test_status_message() -> None:
    task = make_task(review=json.dumps(review()), state="finished", finished_at=NOW - 10)
    r = b.status_message(task, progress(), "https://x.slack.com/archives/C1/p1", now=NOW, queue_position=None)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "*Task `k3x9qa`* · finished" in everything and ">fix the flaky login test" in everything
    assert "3 files changed" in everything and "merges cleanly into `develop`" in everything
    assert "<https://x.slack.com/archives/C1/p1|Open the task's thread>" in everything
    assert "```" not in everything  # no live tail once the agent is done
    running = b.status_message(make_task(), progress(), None, now=NOW, queue_position=None)
    assert "```" in dumps(running.blocks) and "Open the task" not in dumps(running.blocks)
    hostile = b.status_message(hostile_task(review="{not json"), progress(tail=[HOSTILE * 100] * 100),
                               "https://x|<!channel>", now=NOW, queue_position=None)
    assert_safe(hostile)


def test_milestone() -> None:
    ok = b.milestone(make_task(), "Worktree ready on `agent/k3x9qa`")
    assert ok.blocks[0]["text"]["text"] == "✅ Worktree ready on `agent/k3x9qa`"
    bad = b.milestone(make_task(), "Checks failed <!channel>", ok=False)
    assert bad.blocks[0]["text"]["text"].startswith("⚠️ ")
    assert_safe(bad)
    assert_safe(b.milestone(hostile_task(), HOSTILE * 1000))
    merged = b.milestone(make_task(), "Merged into `main` by {actor} (abc123).", actor="U777AAA")
    assert merged.blocks[0]["text"]["text"] == "✅ Merged into `main` by <@U777AAA> (abc123)."
    assert "<@U777AAA>" in merged.text
    forged = b.milestone(make_task(), "by {actor}", actor="<!channel>")
    assert_safe(forged)


# ----------------------------------------------------------------------------- reviews


def test_review_message_clean() -> None:
    r = b.review_message(make_task(state="finished"), review())
    assert_safe(r)
    assert r.blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Ready for review", "emoji": True}}
    everything = dumps(r.blocks)
    assert "*Task `k3x9qa`* · `agent/k3x9qa` → `develop`" in everything
    assert "*3 files changed* · +13 −4 · 2 commits · took 4m 05s" in everything and "$0.42" in everything
    files = r.blocks[2]["text"]["text"].split("\n")
    assert files == ["`M` `src/api.py`  +12 −3", "`R` `src/old.py` → `src/new.py`  +1 −1", "`A` `logo.png`  binary"]
    assert "✅ *Checks passed* · 12 passed" in everything
    assert "Merges cleanly into `develop`" in everything
    assert ">I fixed the race in the login test." in everything
    merge, discard, diff = buttons(r.blocks)
    assert (merge["action_id"], merge["style"], merge["value"]) == (b.ACTION_MERGE, "primary", "k3x9qa")
    assert merge["confirm"]["title"]["text"] == "Merge task?"
    assert merge["confirm"]["text"]["type"] == "plain_text"
    assert "agent/k3x9qa" in merge["confirm"]["text"]["text"] and "develop" in merge["confirm"]["text"]["text"]
    assert (merge["confirm"]["confirm"]["text"], merge["confirm"]["deny"]["text"]) == ("Merge", "Cancel")
    assert (discard["action_id"], discard["style"], discard["value"]) == (b.ACTION_DISCARD, "danger", "k3x9qa")
    assert discard["confirm"]["confirm"]["text"] == "Discard"
    assert (diff["action_id"], diff["value"]) == (b.ACTION_DIFF, "k3x9qa") and "style" not in diff
    assert r.blocks[-1]["type"] == "context" and "follow-up" in dumps(r.blocks[-1])
    assert "k3x9qa" in r.text and "ready for review" in r.text


def test_review_message_conflicts_and_problems() -> None:
    rv = review(clean=False, conflicts=["src/api.py", "README.md"], state="timed_out", reason="timed out after 30m",
                checks={"passed": False, "summary": "2 failed", "failing_tail": "E assert 1 == 2\nFAILED t ```x"})
    r = b.review_message(make_task(state="timed_out"), rv)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert r.blocks[0]["text"]["text"] == "Finished with problems"
    assert "timed out after 30m" in everything and "timed out after 30m" in r.text
    assert "Conflicts with `develop` in: `src/api.py`, `README.md`" in everything
    checks = next(t for t in texts(r.blocks) if "Checks failed" in t)
    assert checks == "❌ *Checks failed* · 2 failed\n```\nE assert 1 == 2\nFAILED t `\u200b`\u200b`x\n```"
    ids = [btn["action_id"] for btn in buttons(r.blocks)]
    assert ids == [b.ACTION_UPDATE, b.ACTION_DISCARD, b.ACTION_DIFF]
    assert all(btn["value"] == "k3x9qa" for btn in buttons(r.blocks))


def test_review_message_top_files_and_no_changes() -> None:
    files = [file_entry(f"f{i}.py", added=i) for i in range(30)]
    r = b.review_message(make_task(), review(files=files), top_files=5)
    listing = r.blocks[2]["text"]["text"].split("\n")
    assert listing[:5] == [f"`M` `f{i}.py`  +{i} −0" for i in (29, 28, 27, 26, 25)]
    assert listing[5] == "_…and 25 more_"
    empty = b.review_message(make_task(), review(files=[], commits=0, insertions=0, deletions=0))
    assert "The agent made no changes" in dumps(empty.blocks)
    assert [btn["action_id"] for btn in buttons(empty.blocks)] == [b.ACTION_DISCARD]
    mention = b.review_message(make_task(), review(), bot_user="UBOT1")
    assert "mentioning <@UBOT1>" in dumps(mention.blocks)


def test_review_message_hostile() -> None:
    r = b.review_message(hostile_task(), hostile_review(), top_files=10_000)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "more" in everything  # the file list and conflicts were cut, and say so
    for btn in buttons(r.blocks):
        assert btn["value"] == hostile_task().id


def review_maps() -> st.SearchStrategy[dict[str, Any]]:
    files = st.lists(st.fixed_dictionaries({
        "path": anything, "old_path": anything, "status": st.sampled_from(list("AMDRCTX?")) | st.text(max_size=3),
        "added": anything, "deleted": anything, "binary": st.booleans() | anything,
    }) | anything, max_size=40)
    return st.fixed_dictionaries({}, optional={
        "state": st.sampled_from(sorted(ALL_STATES)) | anything, "reason": anything, "branch": anything,
        "base_branch": anything, "files": files, "commits": anything, "insertions": anything,
        "deletions": anything, "clean": anything, "conflicts": anything,
        "checks": st.none() | st.fixed_dictionaries({}, optional={
            "passed": anything, "summary": anything, "failing_tail": anything}),
        "duration_s": anything, "cost_usd": anything, "tokens_in": anything, "tokens_out": anything,
        "final_text": anything, "notes": anything,
    })


@FUZZ
@given(text_tasks(), review_maps(), st.integers(min_value=-5, max_value=200))
def test_review_message_property(task: Task, rv: dict[str, Any], top: int) -> None:
    r = b.review_message(task, rv, top_files=top)
    assert b.validate_blocks(r.blocks) == []
    assert r.text and b.ulen(r.text) <= 3000
    assert any(blk["type"] == "actions" for blk in r.blocks)
    for text in texts(r.blocks):
        assert text.count("```") in (0, 2)
    closed = b.closed_review(task, rv, outcome="merged", actor="U1X", when=NOW)
    assert b.validate_blocks(closed.blocks) == []
    assert not any(blk["type"] == "actions" for blk in closed.blocks)


@pytest.mark.parametrize("outcome,verb", [("merged", "Merged"), ("discarded", "Discarded"), ("pruned", "Pruned"),
                                          ("cancelled", "Cancelled")])
def test_closed_review_has_no_buttons_and_says_who(outcome: str, verb: str) -> None:
    task = make_task(state=outcome, merge_commit="abcdef1234567890")
    r = b.closed_review(task, review(), outcome=outcome, actor="U999ZZZ", when=NOW)
    assert_safe(r)
    assert not any(blk["type"] == "actions" for blk in r.blocks)
    last = r.blocks[-1]["elements"][0]["text"]
    assert f"{verb} by <@U999ZZZ> · <!date^{int(NOW)}^" in last
    assert verb in r.blocks[0]["text"]["text"]
    assert "3 files changed" in dumps(r.blocks)
    if outcome == "merged":
        assert "`abcdef123456`" in last
    bare = b.closed_review(task, None, outcome=outcome, actor="scheduler", when=NOW)
    assert_safe(bare)
    assert f"{verb} by scheduler" in dumps(bare.blocks) and "k3x9qa" in dumps(bare.blocks)


def test_closed_review_superseded_and_without_actor() -> None:
    r = b.closed_review(make_task(state="finished"), review(), outcome="superseded", actor="", when=NOW)
    assert_safe(r)
    assert r.blocks[0]["text"]["text"] == ":arrows_counterclockwise: Superseded"
    assert "Superseded by a newer review · <!date^" in dumps(r.blocks)
    quiet = b.closed_review(make_task(), None, outcome="discarded", actor="", when=NOW)
    assert "Discarded · <!date^" in dumps(quiet.blocks) and " by " not in quiet.text


def test_closed_review_hostile() -> None:
    r = b.closed_review(hostile_task(), hostile_review(), outcome="<!channel>", actor="<!here>", when=float("inf"))
    assert_safe(r)
    assert not any(blk["type"] == "actions" for blk in r.blocks)


def test_odd_task_id_is_escaped_in_text_and_exact_in_button_values() -> None:
    """Button values are opaque data Slack hands back, never shown: they must be the exact id."""
    task = make_task(id="<!channel>")
    for r in (b.review_message(task, review()), b.prune_warning(task, 2), b.failure_with_retry(task, "x")):
        assert b.validate_blocks(r.blocks) == []
        assert all(btn["value"] == "<!channel>" for btn in buttons(r.blocks))
        assert not any(PING.search(t) for t in texts(r.blocks)) and not PING.search(r.text)


# ----------------------------------------------------------------------------- lists, help, errors


def test_task_line() -> None:
    line = b.task_line(make_task(prompt="x" * 100 + "\nmore"), "https://x.slack.com/archives/C1/p1", now=NOW)
    assert line.startswith(":runner: `k3x9qa` *running* · web · 5m 00s ago · “" + "x" * 59 + "…”")
    assert line.endswith(" · <https://x.slack.com/archives/C1/p1|thread>")
    assert "thread" not in b.task_line(make_task(), None, now=NOW)
    assert not PING.search(b.task_line(hostile_task(), "https://x|<!channel>", now=NOW))


def test_task_list() -> None:
    empty = b.task_list([], {}, title="Tasks", now=NOW)
    assert "No tasks running or awaiting review." in dumps(empty.blocks) and empty.text
    tasks = [make_task(id=f"t{i:05d}") for i in range(100)]
    r = b.task_list(tasks, {"t00000": "https://x.slack.com/archives/C1/p1"}, title="Tasks", now=NOW)
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "`t00039`" in everything and "`t00040`" not in everything
    assert "…and 60 more" in everything and "|thread>" in everything
    hostile = b.task_list([hostile_task()] * 100, {hostile_task().id: "https://x.slack.com/" + "a&" * 400},
                          title=HOSTILE * 10, now=NOW)
    assert_safe(hostile)
    assert "more" in dumps(hostile.blocks)


def test_help_message_lists_only_allowed_commands() -> None:
    r = b.help_message(["list", "spawn", "bogus"])
    assert_safe(r)
    everything = dumps(r.blocks)
    assert "`/superset spawn [--repo NAME] [--preset NAME] [--base BRANCH] PROMPT`" in everything
    assert "`/superset list`" in everything and "prune" not in everything
    spec = {c.name: c.help for c in COMMANDS}
    assert spec["list"] in everything
    assert "`/ss help`" in dumps(b.help_message(["help"], prefix="/ss").blocks)
    none = b.help_message([])
    assert_safe(none)
    assert "don't have access" in none.text


def test_error_message_keeps_backticks_and_escapes_the_rest() -> None:
    r = b.error_message('Unknown command "<!channel>".\nUsage: `/superset help`')
    assert_safe(r)
    assert r.blocks[0]["text"]["text"] == ':warning: Unknown command "&lt;!channel&gt;".\nUsage: `/superset help`'
    assert_safe(b.error_message(HOSTILE * 1000))
    assert b.error_message("").text


# ----------------------------------------------------------------------------- spawn modal


def submit(view: dict[str, Any], **typed: Any) -> dict[str, Any]:
    """What Slack sends in view_submission: the state of every input, with the person's entries."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        el = block["element"]
        entry = typed.get(block["block_id"], ...)
        if el["type"] == "static_select":
            chosen = el.get("initial_option")
            if entry is not ...:
                chosen = next(o for o in el["options"] if o["value"] == entry)
            values[block["block_id"]] = {el["action_id"]: {"type": "static_select", "selected_option": chosen}}
        else:
            value = el.get("initial_value") if entry is ... else entry
            values[block["block_id"]] = {el["action_id"]: {"type": "plain_text_input", "value": value}}
    return {"id": "V1", "type": "modal", "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"], "state": {"values": values}}


def test_spawn_modal_shape() -> None:
    view = b.spawn_modal(["web", "api"], {"claude": "Claude Code, headless", "aider": "Aider"}, repo="api",
                         preset=None, base=None, channel="C123", private_metadata_extra={"thread_ts": "1.2"})
    assert b.validate_view(view) == []
    assert view["callback_id"] == b.SPAWN_CALLBACK and view["title"]["text"] == "New agent task"
    assert view["submit"]["text"] == "Spawn"
    assert json.loads(view["private_metadata"]) == {"thread_ts": "1.2", "channel": "C123"}
    assert b.spawn_metadata(view) == {"thread_ts": "1.2", "channel": "C123"}
    repo, preset, base, prompt = view["blocks"]
    assert repo["element"]["initial_option"]["value"] == "api"
    assert "initial_option" not in preset["element"]
    assert preset["element"]["options"][0]["description"]["text"] == "Claude Code, headless"
    assert base["optional"] is True and base["element"]["placeholder"]["text"] == "default branch"
    assert prompt["element"]["multiline"] is True and "optional" not in prompt


def test_parse_spawn_submission_round_trip() -> None:
    view = b.spawn_modal(["web", "api"], {"claude": "Claude Code"}, repo="web", preset="claude", base="develop",
                         channel="C123")
    options, prompt, errors = b.parse_spawn_submission(
        submit(view, prompt="  fix the flaky test\nin tests/test_auth.py  "))
    assert errors == {}
    assert options == {"repo": "web", "preset": "claude", "base": "develop"}
    assert prompt == "fix the flaky test\nin tests/test_auth.py"
    options, _, errors = b.parse_spawn_submission(submit(view, repo="api", base=None, prompt="go"))
    assert errors == {} and options == {"repo": "api", "preset": "claude", "base": None}


def test_parse_spawn_submission_errors() -> None:
    view = b.spawn_modal(["web"], {"claude": "x"}, repo=None, preset=None, base=None, channel="C1")
    options, prompt, errors = b.parse_spawn_submission(submit(view, prompt="   "))
    assert set(errors) == {"repo", "preset", "prompt"} and prompt == ""
    assert options == {"repo": None, "preset": None, "base": None}
    _, _, errors = b.parse_spawn_submission(submit(view, repo="web", preset="claude", prompt="x", base="my branch"))
    assert set(errors) == {"base"}
    for odd in ({}, {"state": None}, {"state": {"values": []}}, {"state": {"values": {"repo": {"repo": None}}}},
                {"state": {"values": {"repo": {"repo": {"selected_option": {"value": 5}}}}}}):
        _, _, errors = b.parse_spawn_submission(odd)
        assert {"repo", "preset", "prompt"} <= set(errors)
    assert b.spawn_metadata({"private_metadata": "{oops"}) == {}


@FUZZ
@given(json_values)
def test_parse_spawn_submission_never_raises(view: Any) -> None:
    options, prompt, errors = b.parse_spawn_submission({"state": {"values": view}})
    assert set(options) == {"repo", "preset", "base"} and isinstance(prompt, str) and isinstance(errors, dict)


def test_spawn_modal_hostile_and_large() -> None:
    repos = [f"repo{i}" for i in range(300)] + ["<!channel>" * 20, "x" * 500]
    presets = {f"p{i}": HOSTILE * 10 for i in range(150)}
    view = b.spawn_modal(repos, presets, repo="repo250", preset="p149", base="b" * 1000, channel="C1",
                         private_metadata_extra={"blob": "x" * 10_000}, prompt="<!channel>" * 1000)
    assert b.validate_view(view) == []
    repo_el, preset_el = view["blocks"][0]["element"], view["blocks"][1]["element"]
    assert len(repo_el["options"]) == 100 and repo_el["initial_option"]["value"] == "repo250"
    assert preset_el["initial_option"]["value"] == "p149"
    assert len(view["private_metadata"]) <= 3000 and json.loads(view["private_metadata"])["channel"] == "C1"
    for text in texts(view["blocks"]):
        assert not PING.search(text)
    empty = b.spawn_modal([], {}, repo=None, preset=None, base=None, channel="C1")
    assert b.validate_view(empty) == []
    _, _, errors = b.parse_spawn_submission(submit(empty, repo="web", preset="claude", prompt="go"))
    assert errors == {}


# ----------------------------------------------------------------------------- App Home


def test_app_home() -> None:
    finished = make_task(id="fin001", state="finished", review=json.dumps(review()))
    conflicted = make_task(id="con001", state="finished", review=json.dumps(review(clean=False)))
    running = make_task(id="run001")
    merged = make_task(id="mer001", state="merged")
    view = b.app_home("U123ABC", [finished, conflicted, running, merged], [running],
                      {"run001": "https://x.slack.com/archives/C1/p1"}, now=NOW)
    assert b.validate_view(view) == []
    assert view["type"] == "home"
    everything = dumps(view)
    assert "Your tasks" in everything and "Running now" in everything and "updated <!date^" in everything
    by_task = {}
    for blk in view["blocks"]:
        if blk["type"] == "actions":
            by_task[blk["elements"][0]["value"]] = [(el["action_id"], el.get("style")) for el in blk["elements"]]
            assert all("confirm" in el for el in blk["elements"] if el["action_id"] != b.ACTION_UPDATE)
    assert by_task == {
        "fin001": [(b.ACTION_MERGE, "primary"), (b.ACTION_DISCARD, "danger")],
        "con001": [(b.ACTION_UPDATE, "primary"), (b.ACTION_DISCARD, "danger")],
        "run001": [(b.ACTION_CANCEL, "danger")],
    }
    assert "|thread>" in everything
    empty = b.app_home("U1", [], [], {}, now=NOW)
    assert b.validate_view(empty) == [] and "Nothing is running" in dumps(empty)


def test_app_home_hostile_and_large() -> None:
    mine = [replace(hostile_task(), id=f"m{i}", state=s) for i, s in enumerate(sorted(ALL_STATES) * 20)]
    running = [replace(hostile_task(), id=f"r{i}") for i in range(500)]
    view = b.app_home("<!channel>", mine, running, {"r1": "https://x.slack.com/archives/C1/p1"}, now=NOW)
    assert b.validate_view(view) == []
    assert len(view["blocks"]) <= 100
    for text in texts(view["blocks"]):
        assert not PING.search(text)


# ----------------------------------------------------------------------------- notices


def test_prune_warning() -> None:
    r = b.prune_warning(make_task(state="finished"), 24)
    assert_safe(r)
    assert "This worktree will be pruned in 24h unless you keep it." in r.blocks[0]["text"]["text"]
    (keep,) = buttons(r.blocks)
    assert (keep["action_id"], keep["value"]) == (b.ACTION_KEEP, "k3x9qa")
    assert "in 1.5h" in dumps(b.prune_warning(make_task(), 1.5).blocks)
    assert_safe(b.prune_warning(hostile_task(), float("nan")))


def test_failure_with_retry() -> None:
    r = b.failure_with_retry(make_task(state="failed"), "setup failed: `npm ci` exited 1")
    assert_safe(r)
    assert "k3x9qa" in r.blocks[0]["text"]["text"] and "`npm ci` exited 1" in r.blocks[0]["text"]["text"]
    (retry,) = buttons(r.blocks)
    assert (retry["action_id"], retry["value"], retry["style"]) == (b.ACTION_RETRY, "k3x9qa", "primary")
    assert_safe(b.failure_with_retry(hostile_task(), HOSTILE * 1000))


def test_renderers_are_quick_on_huge_input() -> None:
    start = time.monotonic()
    b.review_message(hostile_task(), hostile_review())
    b.status_card(hostile_task(), progress(tail=["y" * 100_000] * 200), now=NOW)
    # generous: only catches accidental quadratic work, not a speed benchmark
    assert time.monotonic() - start < 20


DENIAL = ('denied: `python3 -m pytest` needs approval; grant it with "commands": ["python3 -m pytest"] '
          "in the preset's agent.permissions")


def test_refused_actions_show_on_the_status_card_and_in_the_review() -> None:
    card = b.status_card(make_task(), progress(denials=[DENIAL, "denied: writing /etc/hosts (outside the worktree)"]),
                         now=NOW)
    assert_safe(card)
    everything = dumps(card.blocks)
    assert ":no_entry: *Refused by the agent's permissions*" in everything
    assert "python3 -m pytest" in everything and "/etc/hosts" in everything
    assert card.blocks[-1]["text"]["text"].startswith("```")  # the tail stays last

    r = b.review_message(make_task(state="finished"), review(denials=[DENIAL]))
    assert_safe(r)
    assert "Refused by the agent's permissions" in dumps(r.blocks) and "agent.permissions" in dumps(r.blocks)
    assert "Refused" not in dumps(b.review_message(make_task(state="finished"), review()).blocks)


def test_many_hostile_denials_stay_within_slacks_limits() -> None:
    card = b.status_card(make_task(), progress(denials=[HOSTILE * 40] * 50), now=NOW)
    assert_safe(card)
    assert "…and 45 more" in dumps(card.blocks)
