"""Helpers shared by the tests (and by the soak, `python tests/soak`).

- fakeslack/      a strict local Slack (Web API, Socket Mode, response_urls), one module per surface
- engineharness   the `harness` fixture: an engine over real repos, presets, agents and SQLite
- slackharness    the `bot` fixture: that engine behind the Slack front end, wired to the fake Slack
- faultbot        the `killable` fixture: `superset-bot console` as a process to kill -9 mid-step
- doctorsetup     the `setup` fixture: `superset-bot doctor` against the fake Slack
- agentsamples    recorded agent output (tests/samples/) through the parsers
- env             `bot_env()`: the environment of a test bot, in one place
- procs           processes still running in a folder (nothing may outlive a test or the suite)

The fixture modules are registered once, in tests/conftest.py (`pytest_plugins`).
"""
