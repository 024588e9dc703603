"""Text that came from a person, an agent, a file or a branch, made safe for Slack: escaped for mrkdwn
(so it cannot ping or link), fenced so a fence cannot be broken, and clipped to a length in UTF-16 units.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from superset_bot.frontends.slack.blocks.coerce import num
from superset_bot.frontends.slack.blocks.limits import TEXT_MAX, ulen

ZWSP = "\u200b"
ELLIPSIS = "…"
MINUS = "\u2212"

# Control characters (tab and newline survive), C1 controls, line/paragraph separators and
# bidirectional overrides (which can make `evil.exe` look like `exe.live` in a file list).
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
# "cancelled by U0ALICE", "Follow-up from U0BOB": a person the bot's own sentence names (a user id has a digit)
_PERSON_IN_SENTENCE = re.compile(r"\b(by|from) ([UW](?=[A-Z]*[0-9])[A-Z0-9]{5,30})\b")
_BACKTICK_RUN = re.compile(r"`(?=`)")
_WS = re.compile(r"\s+")


def escape(text: str) -> str:
    """Make text safe for mrkdwn: `<!channel>`, `<@U1>`, `<#C1>` and `<url|x>` stay literal text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clean(value: object, limit: int | None = None) -> str:
    """Any value as printable text: control and bidi characters replaced, lone surrogates gone."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return _UNSAFE.sub("\ufffd", text)


def _fitting(text: str, units: int) -> int:
    """How many characters from the start of `text` fit in `units` UTF-16 units."""
    k = units
    while k > 0 and ulen(text[:k]) > units:
        k -= max(1, ulen(text[:k]) - units)
    return k


def cut(text: str, limit: int) -> str:
    """Cut escaped mrkdwn to `limit` units with "…", never inside an entity or a `<...>` token."""
    if ulen(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    k = _fitting(text, limit - 1)
    amp = text.rfind("&", max(0, k - 5), k)
    if amp >= 0:
        semi = text.find(";", amp, amp + 6)
        if semi < 0 or semi >= k:
            k = amp  # "&amp;" cut to "&am" would show as garbage
    lt = text.rfind("<", 0, k)
    if lt > text.rfind(">", 0, k):
        k = lt
    if 0 < k < len(text) and "\ud800" <= text[k - 1] <= "\udbff":
        k -= 1  # never split a surrogate pair
    return text[:k] + ELLIPSIS


def clip(text: str, limit: int) -> str:
    """Cut plain text to at most `limit` UTF-16 units, marking the cut with "…"."""
    if ulen(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    return text[:_fitting(text, limit - 1)] + ELLIPSIS


def _flat(value: object, limit: int) -> str:
    """Raw value as one clean, unescaped line: newlines and runs of spaces become one space."""
    return _WS.sub(" ", clean(value, limit * 2 + 16)).strip()


def one_line(value: object, limit: int) -> str:
    """Raw value as one clean line of at most about `limit` chars (not escaped)."""
    return clip(_flat(value, limit), limit)


def no_fence(text: str) -> str:
    """Put a zero-width space between adjacent backticks, so no ``` can open or close a fence."""
    return _BACKTICK_RUN.sub("`" + ZWSP, text) if "``" in text else text


def esc(value: object, limit: int = TEXT_MAX) -> str:
    """Escaped mrkdwn of any value, at most `limit` units; `code` works, ``` fences cannot open."""
    return cut(escape(no_fence(clean(value, limit + 1))), limit)


def esc_line(value: object, limit: int) -> str:
    """Escaped single line (newlines and runs of spaces become one space)."""
    return cut(escape(no_fence(_flat(value, limit))), limit)


def inline_code(value: object, limit: int = 200) -> str:
    """`value` as inline code; a backtick inside becomes ˋ so it cannot end the span early."""
    text = _flat(value, limit).replace("`", "\u02cb")
    if not text:
        return "` `"
    return "`" + cut(escape(text), max(limit - 2, 2)) + "`"


def quote(value: object, limit: int = 600, max_lines: int = 12) -> str:
    """Text as a mrkdwn block quote of at most `max_lines` lines; "" for blank text."""
    text = clean(value, limit + 1).strip("\n")
    if not text.strip():
        return ""
    lines = text.split("\n")
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], ELLIPSIS]
    body = cut(escape(no_fence("\n".join(line.rstrip() for line in lines))), limit)
    return "\n".join(">" + line for line in body.split("\n"))


def code_block(lines: Sequence[str], max_chars: int = 2900) -> str:
    """A ``` fenced block of the last lines that fit in `max_chars`; "" when there is nothing to show.

    Lines are dropped from the top whole; only a single last line longer than the budget is cut
    (with "…"). Each line is escaped and cannot contain ``` so the fence always holds.
    """
    budget = max_chars - 8  # "```\n" + body + "\n```"
    if budget < 2 or isinstance(lines, str | bytes):
        return ""
    picked: list[str] = []
    used = 0
    full = False
    for raw in reversed(list(lines)):
        text = raw if isinstance(raw, str) else clean(raw)
        for part in reversed(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
            line = no_fence(escape(clean(part, budget + 1).rstrip()))
            if not picked and not line.strip():
                continue  # trailing blank lines take no room
            size = ulen(line) + (1 if picked else 0)
            if used + size > budget:
                if not picked:
                    picked.append(cut(line, budget))
                full = True
                break
            picked.append(line)
            used += size
        if full:
            break
    picked.reverse()
    while picked and not picked[0].strip():
        picked.pop(0)
    if not any(line.strip() for line in picked):
        return ""
    return "```\n" + "\n".join(picked) + "\n```"


def mention(user: object) -> str:
    """`<@U123>` for a Slack user id (a real mention), escaped text for anything else."""
    text = user.strip() if isinstance(user, str) else ""
    if _USER_ID.match(text):
        return f"<@{text}>"
    return esc_line(text, 60) or "someone"


def mention_people(sentence: str) -> str:
    """The first person a bot-written sentence names ("cancelled by U0ALICE") as a real mention.

    Only the first: what follows it may be someone's own words (a follow-up's text), which must not
    ping anybody.
    """
    return _PERSON_IN_SENTENCE.sub(lambda m: f"{m.group(1)} <@{m.group(2)}>", sentence, count=1)


def slack_date(ts: object, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A `<!date^...>` token that shows `ts` in each reader's own time zone."""
    seconds = num(ts)
    if seconds is None:
        return "an unknown time"
    try:
        fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        fallback = str(int(seconds))
    return f"<!date^{int(seconds)}^{fmt}|{fallback}>"


def link(url: object, label: str) -> str:
    """`<url|label>` for an http(s) URL without characters that would break the token, else ""."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 1000:
        return ""
    if any(c in url for c in "<>|") or _WS.search(url) or _UNSAFE.search(url):
        return ""
    return f"<{escape(url)}|{label}>"
