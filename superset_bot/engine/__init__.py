"""The task engine: runs agents in worktrees and moves tasks through their states (see core.Engine)."""

from superset_bot.engine.core import Engine
from superset_bot.engine.errors import AlreadyClosed, UserError

__all__ = ["AlreadyClosed", "Engine", "UserError"]
