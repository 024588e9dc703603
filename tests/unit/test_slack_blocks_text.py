"""Mrkdwn text made safe: escaping, fences that hold, inline code, quotes, mentions, dates and links."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from support.blocksamples import FUZZ, NOW

from superset_bot.frontends.slack.blocks.limits import ulen
from superset_bot.frontends.slack.blocks.text import (
    clean,
    code_block,
    escape,
    inline_code,
    link,
    mention,
    quote,
    slack_date,
)


def test_escape_touches_only_the_three_control_characters() -> None:
    assert escape("<!channel> & <@U1> <#C1> <http://x|y>") == (
        "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;#C1&gt; &lt;http://x|y&gt;"
    )
    plain = "*bold* _it_ ~s~ `code` ```fence``` :emoji: @here #general é 🎉"
    assert escape(plain) == plain


def test_code_block_keeps_the_last_lines_and_escapes() -> None:
    lines = [f"line {i}" for i in range(1000)]
    block = code_block(lines, max_chars=200)
    assert block.startswith("```\n") and block.endswith("\nline 999\n```")
    assert "line 0\n" not in block and len(block) <= 200
    body = block[4:-4].split("\n")
    assert body == [f"line {i}" for i in range(1000 - len(body), 1000)]  # whole lines, in order
    assert code_block(["<!channel> & <b>"]) == "```\n&lt;!channel&gt; &amp; &lt;b&gt;\n```"


def test_code_block_fence_cannot_be_broken() -> None:
    block = code_block(["```", "before ``` after", "````````", "`", "end`"])
    assert block.count("```") == 2 and block.startswith("```\n") and block.endswith("\n```")
    assert "``" not in block[3:-3]


def test_code_block_cuts_one_overlong_last_line_and_skips_blank_input() -> None:
    block = code_block(["short", "x" * 10_000], max_chars=100)
    assert block == "```\n" + "x" * 91 + "…\n```" and len(block) == 100
    assert code_block([]) == "" and code_block(["", "  ", "\n"]) == ""
    assert code_block(["a & b " * 100], max_chars=50).count("&amp;") >= 1
    assert "&am…" not in code_block(["&" * 100], max_chars=30)  # never inside an entity


@FUZZ
@given(st.lists(st.text(), max_size=30), st.integers(min_value=20, max_value=4000))
def test_code_block_property(lines: list[str], max_chars: int) -> None:
    block = code_block(lines, max_chars=max_chars)
    if not block:
        assert all(not clean(line).strip() for line in lines)
        return
    assert block.count("```") == 2
    assert block.startswith("```\n") and block.endswith("\n```")
    assert ulen(block) <= max_chars
    assert "<" not in block and ">" not in block


def test_inline_code_and_quote_are_contained() -> None:
    assert inline_code("a`b") == "`aˋb`"
    assert inline_code("") == "` `"
    assert inline_code("x" * 500, 50).endswith("…`") and len(inline_code("x" * 500, 50)) <= 50
    q = quote("one\n```\n<!here>", 600)
    assert q.split("\n")[0] == ">one" and "```" not in q and "&lt;!here&gt;" in q


def test_mention_only_for_user_ids() -> None:
    assert mention("U123ABC") == "<@U123ABC>"
    assert mention("W0ABC") == "<@W0ABC>"
    assert mention("<!channel>") == "&lt;!channel&gt;"
    assert mention("") == "someone"
    assert mention("scheduler") == "scheduler"


def test_slack_date_and_links() -> None:
    assert slack_date(NOW) == f"<!date^{int(NOW)}^{{date_short_pretty}} at {{time}}|2025-10-09 08:53 UTC>"
    assert slack_date(float("nan")) == "an unknown time"
    assert link("https://x.slack.com/archives/C1/p1?a=1&b=2", "thread") == (
        "<https://x.slack.com/archives/C1/p1?a=1&amp;b=2|thread>"
    )
    for bad in ("javascript:alert(1)", "https://x|<!channel>", "https://a b", None, "https://x>"):
        assert link(bad, "thread") == ""
