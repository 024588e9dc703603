"""Where pull requests live: one small interface (`Forge`) and its providers (GitHub first)."""

from superset_bot.forges.base import (
    Forge,
    ForgeError,
    HeadChanged,
    NotMergeable,
    RateLimited,
    RemotePull,
)

__all__ = ["Forge", "ForgeError", "HeadChanged", "NotMergeable", "RateLimited", "RemotePull"]
