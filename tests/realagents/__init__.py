"""The real agent CLIs (Claude Code, Codex, aider), pinned, installed by the tests themselves."""
