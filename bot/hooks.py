"""Deprecated alias of `superset_bot.plugins.hooks` (the plugin API), kept for one release."""

from superset_bot.plugins.hooks import ENTRY_POINT_GROUP, HookEvent, Hooks, PluginOutcome

__all__ = ["ENTRY_POINT_GROUP", "HookEvent", "Hooks", "PluginOutcome"]
