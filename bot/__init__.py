"""The old import name of superset_bot, kept for one release so existing plugins and presets work.

Plugins should import from `superset_bot.plugins.hooks`; presets should run
`python -m superset_bot.agents.demo`. Only those two old paths are kept.
"""
