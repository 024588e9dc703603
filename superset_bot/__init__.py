"""superset-bot: many CLI coding agents at once, each in its own git worktree, driven from Slack."""

__version__ = "0.1.0"
