"""Keeping secrets out of what the bot shows: agent output is posted to Slack threads.

Agents need their API keys, so those stay in the agent's environment; what is redacted is
their values wherever they show up in the agent's output. The bot's own Slack credentials are
never handed to an agent at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SECRET_NAME_PARTS = ("TOKEN", "SECRET", "KEY", "PASSWORD")
MIN_SECRET_LENGTH = 6  # shorter values ("true", "1234") would redact ordinary words
REDACTED = "[redacted]"
BOT_CREDENTIALS = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SUPERSET_GITHUB_TOKEN")


def secret_values(env: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Values of variables whose name looks secret, plus `extra`; too-short values are skipped."""
    found: dict[str, None] = {}
    for name, value in env.items():
        upper = name.upper()
        if any(part in upper for part in SECRET_NAME_PARTS) and len(value) >= MIN_SECRET_LENGTH:
            found[value] = None
    for value in extra:
        if len(value) >= MIN_SECRET_LENGTH:
            found[value] = None
    return list(found)


def _variants(secret: str) -> Iterable[str]:
    """The forms a secret can take in line-based output: itself, trimmed, and each of its lines."""
    if not secret:
        return
    yield secret
    stripped = secret.strip()
    if stripped and stripped != secret:
        yield stripped
    if "\n" in secret:  # e.g. a PEM key: output is read line by line, so match line by line
        for line in secret.splitlines():
            line = line.strip()
            if len(line) >= MIN_SECRET_LENGTH:
                yield line


class Redactor:
    """Replaces every occurrence of any secret with "[redacted]", using one compiled regex."""

    def __init__(self, secrets: Iterable[str]) -> None:
        variants = {v for s in secrets for v in _variants(s)}
        ordered = sorted(variants, key=lambda s: (-len(s), s))  # longest first wins overlaps
        self._pattern: re.Pattern[str] | None = None
        self._bytes_pattern: re.Pattern[bytes] | None = None
        self.max_bytes = 0
        if ordered:
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            encoded = [s.encode("utf-8", "surrogateescape") for s in ordered]
            self._bytes_pattern = re.compile(b"|".join(re.escape(b) for b in encoded))
            self.max_bytes = max(len(b) for b in encoded)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def safe_cut(self, data: bytes, cut: int) -> int:
        """A cut point at or before `cut` that does not split a secret in `data`.

        Used when an over-long line is broken into chunks, so that each chunk can still be
        redacted on its own. `data` should extend `max_bytes` past `cut` when it can.
        """
        if self._bytes_pattern is None:
            return cut
        lo = max(0, cut - self.max_bytes + 1)
        for match in self._bytes_pattern.finditer(data, lo, cut + self.max_bytes - 1):
            if match.start() < cut < match.end():
                return match.start() if match.start() > 0 else cut
        return cut


def agent_environment(
    base: Mapping[str, str], extra: Mapping[str, str] | None = None, drop: Iterable[str] = ()
) -> dict[str, str]:
    """The environment for an agent: `base` + `extra`, without the bot's own credentials.

    GIT_TERMINAL_PROMPT=0 makes git fail instead of waiting forever for a password nobody types.
    """
    env = dict(base)
    env.update(extra or {})
    for name in (*BOT_CREDENTIALS, *drop):
        env.pop(name, None)
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env
