"""Tasks, progress and reviews, ordinary and hostile, for the Block Kit tests, and the checks every
rendered message must pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from superset_bot.domain.progress import ProgressSnapshot
from superset_bot.frontends.slack.blocks.kit import Rendered
from superset_bot.frontends.slack.blocks.limits import ulen, validate_blocks
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


PROGRESS = ProgressSnapshot(
    phase="working", action="Editing src/api.py", tools_used=12, tokens_in=34_500, tokens_out=2100,
    cost_usd=0.42, session_id="s1", lines_seen=120, tail=("collecting tests", "3 passed"),
)


def progress(**kw: Any) -> ProgressSnapshot:
    """An agent's progress mid-run, with `kw` changed (a list is fine for `tail` and `denials`)."""
    return replace(PROGRESS, **kw)


def stored_progress(**kw: Any) -> ProgressSnapshot:
    """The progress a stored row holding PROGRESS's JSON with `kw` changed (anything at all) decodes to."""
    return ProgressSnapshot.from_dict({**PROGRESS.to_dict(), **kw})


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


def assert_safe(rendered: Rendered, surface: str = "message") -> None:
    """Limits hold, nothing pings, no fence is broken."""
    assert validate_blocks(rendered.blocks, surface=surface) == []
    assert rendered.text.strip() and ulen(rendered.text) <= 3000
    assert not PING.search(dumps(rendered.blocks)), dumps(rendered.blocks)[:2000]
    assert not PING.search(rendered.text)
    for text in texts(rendered.blocks):
        assert text.count("```") in (0, 2), text[:500]


def text_tasks() -> st.SearchStrategy[Task]:
    maybe_float = st.none() | st.floats(allow_nan=True) | st.floats(min_value=0, max_value=2e9)
    return st.builds(
        Task,
        id=st.text(max_size=30), repo=st.text(max_size=200), prompt=st.text(max_size=2000),
        preset=st.text(max_size=100), state=st.sampled_from(sorted(ALL_STATES)),  # the record refuses any other state
        requester=st.text(max_size=20) | st.just("U123ABC"), branch=st.none() | st.text(max_size=300),
        base_branch=st.none() | st.text(max_size=300), reason=st.none() | st.text(max_size=2000),
        merge_commit=st.none() | st.text(max_size=50), created_at=st.floats(min_value=0, max_value=2e9),
        started_at=maybe_float, finished_at=maybe_float,
    )


anything = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300) | st.lists(
    st.text(max_size=300), max_size=30)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "text", "elements", "fields", "accessory", "block_id", "action_id",
                         "value", "confirm", "options", "initial_option", "element", "label", "style"]),
        children, max_size=5),
    max_leaves=30,
)
