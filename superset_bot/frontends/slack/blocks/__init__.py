"""Block Kit rendering: pure functions from tasks, progress and reviews to Slack payloads, one module per
concept, re-exported here. Whatever came from a person, an agent, a file or a branch is escaped, and every
message shrinks until it passes `validate_blocks`, so no input makes Slack reject a message or ping a channel.
"""

from superset_bot.frontends.slack.blocks.actions import (
    ACTION_CANCEL,
    ACTION_DIFF,
    ACTION_DISCARD,
    ACTION_FIX_CI,
    ACTION_KEEP,
    ACTION_MERGE,
    ACTION_MOVE,
    ACTION_RETRY,
    ACTION_UPDATE,
    ACTIONS,
)
from superset_bot.frontends.slack.blocks.card import moved_card, task_card
from superset_bot.frontends.slack.blocks.digest import digest_message
from superset_bot.frontends.slack.blocks.home import app_home
from superset_bot.frontends.slack.blocks.kit import Rendered
from superset_bot.frontends.slack.blocks.limits import validate_blocks
from superset_bot.frontends.slack.blocks.lists import task_list
from superset_bot.frontends.slack.blocks.messages import error_message, help_message, status_message
from superset_bot.frontends.slack.blocks.modal import SPAWN_CALLBACK, parse_spawn_submission, spawn_modal
from superset_bot.frontends.slack.blocks.notices import (
    failure_with_retry,
    host_lost,
    milestone,
    prune_warning,
)
from superset_bot.frontends.slack.blocks.review import closed_review, review_message
from superset_bot.frontends.slack.blocks.task import STATE_EMOJI, STATE_LABEL
from superset_bot.frontends.slack.blocks.text import escape

__all__ = [
    "ACTIONS",
    "ACTION_CANCEL",
    "ACTION_DIFF",
    "ACTION_DISCARD",
    "ACTION_FIX_CI",
    "ACTION_MOVE",
    "ACTION_KEEP",
    "ACTION_MERGE",
    "ACTION_RETRY",
    "ACTION_UPDATE",
    "SPAWN_CALLBACK",
    "STATE_EMOJI",
    "STATE_LABEL",
    "Rendered",
    "app_home",
    "closed_review",
    "digest_message",
    "error_message",
    "escape",
    "failure_with_retry",
    "host_lost",
    "help_message",
    "milestone",
    "parse_spawn_submission",
    "prune_warning",
    "review_message",
    "spawn_modal",
    "moved_card",
    "task_card",
    "status_message",
    "task_list",
    "validate_blocks",
]
