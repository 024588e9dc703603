"""Task buttons: their values are the exact task id, whatever the id holds."""

from __future__ import annotations

from support.blocksamples import PING, buttons, make_task, review, texts

from superset_bot.frontends.slack.blocks.limits import validate_blocks
from superset_bot.frontends.slack.blocks.notices import failure_with_retry, prune_warning
from superset_bot.frontends.slack.blocks.review import review_message


def test_odd_task_id_is_escaped_in_text_and_exact_in_button_values() -> None:
    """Button values are opaque data Slack hands back, never shown: they must be the exact id."""
    task = make_task(id="<!channel>")
    for r in (review_message(task, review()), prune_warning(task, 2), failure_with_retry(task, "x")):
        assert validate_blocks(r.blocks) == []
        assert all(btn["value"] == "<!channel>" for btn in buttons(r.blocks))
        assert not any(PING.search(t) for t in texts(r.blocks)) and not PING.search(r.text)
