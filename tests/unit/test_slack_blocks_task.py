"""How a task shows everywhere: every state has its emoji and label."""

from __future__ import annotations

import re

from superset_bot.frontends.slack.blocks.task import STATE_EMOJI, STATE_LABEL
from superset_bot.store import ALL_STATES


def test_every_state_has_a_real_emoji_and_label() -> None:
    assert set(STATE_EMOJI) == set(ALL_STATES) == set(STATE_LABEL)
    assert all(re.fullmatch(r"[a-z_]+", name) for name in STATE_EMOJI.values())
    assert STATE_EMOJI["merged"] == "twisted_rightwards_arrows"
