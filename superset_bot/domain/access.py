"""Who may do what: allowed users and channels, admins, who sees a task and who may act on it.

Every check answers with the reason for a refusal (a sentence to show the person), or None.
"""

from __future__ import annotations

from superset_bot.config import Settings
from superset_bot.domain.commands import COMMANDS
from superset_bot.store import Task

TASK_ACTIONS = ("merge", "discard", "cancel", "followup", "update", "retry", "keep")


class Access:
    """The one filter every front end's requests pass through (the service calls it).

    `operators` are identities that are admins by construction, whatever the settings say: the
    console's user, who already has a shell on the bot's machine and its data.
    """

    def __init__(self, settings: Settings, operators: frozenset[str] | set[str] = frozenset()) -> None:
        self.settings = settings
        self.operators = frozenset(operators)

    def is_admin(self, user: str) -> bool:
        """An empty SUPERSET_ADMINS makes everyone an admin (small teams need no roles)."""
        return not self.settings.admins or user in self.settings.admins or user in self.operators

    def refuse_user(self, user: str, channel: str | None) -> str | None:
        allowed_users = self.settings.allowed_users
        if allowed_users and user not in allowed_users and user not in self.settings.admins | self.operators:
            return "You are not on this bot's list of allowed users (SUPERSET_ALLOWED_USERS); ask an admin to add you."
        allowed_channels = self.settings.allowed_channels
        if channel and allowed_channels and channel not in allowed_channels:
            where = ", ".join(f"<#{c}>" for c in sorted(allowed_channels))
            return f"The bot does not take commands in this channel. Use it in {where} (SUPERSET_ALLOWED_CHANNELS)."
        return None

    def refuse_action(self, user: str, task: Task, action: str) -> str | None:
        """Merge, discard, cancel, follow-up: the requester and admins (or anyone, if so configured)."""
        if self.settings.task_actions_by == "anyone" or user == task.requester or self.is_admin(user):
            return None
        return (f"Only <@{task.requester}> (who started task `{task.id}`) or an admin can {action} it. "
                "Ask them, or an admin listed in SUPERSET_ADMINS.")

    def sees(self, user: str, channel: str | None, task: Task) -> bool:
        """Whether `list` shows `user`, asking in `channel`, this task: without a channel (the console)
        every task; in a channel, its own tasks and the user's (prompts from other, maybe private,
        channels stay there)."""
        return not channel or task.channel == channel or task.requester == user

    def refuse_command(self, user: str, command: str) -> str | None:
        spec = next((c for c in COMMANDS if c.name == command), None)
        if spec is not None and spec.admin_only and not self.is_admin(user):
            return f"`{command}` is for admins (SUPERSET_ADMINS)."
        return None

    def allowed_commands(self, user: str) -> list[str]:
        return [c.name for c in COMMANDS if not c.admin_only or self.is_admin(user)]
