# Two commands for a new user: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run console test lint typecheck unit agent-clis sandbox-tools record-agents bench soak soak-crash clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/superset-bot run $(ARGS)

console: $(VENV)/.installed
	$(BIN)/superset-bot console $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check superset_bot bot tests $(wildcard bench) docs

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# The real Claude Code, Codex and aider CLIs at the versions the presets are tested with, installed
# once into ~/.cache/superset-bot/agent-clis (SUPERSET_AGENT_CACHE): npm for the first two, a venv for aider.
agent-clis: $(VENV)/.installed-dev
	$(BIN)/python tests/realagents/install.py

# bubblewrap for the sandbox tests, unpacked into ~/.cache/superset-bot/bwrap rather than installed on
# PATH (Debian 12's bwrap 0.8 on PATH breaks Codex's own sandbox; see tests/sandbox/install_bwrap.py).
sandbox-tools: $(VENV)/.installed-dev
	$(BIN)/python tests/sandbox/install_bwrap.py

# Re-record the real CLIs' output fixtures in tests/samples/ (against the fake model servers).
record-agents: agent-clis
	$(BIN)/python tests/realagents/record.py

# Four workers on two cores: most tests wait on git, agents and HTTP, not the CPU (PYTEST_ARGS="-n 0" for one).
PYTEST_ARGS ?= -n 4
unit: $(VENV)/.installed-dev agent-clis sandbox-tools
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

# 100 tasks with random cancels, merges, discards, follow-ups and Slack 429/500 answers (and 8 races
# picked, picked after a follow-up, or discarded, beside them), then
# Slack down and failing for 2 minutes; prints the seed (replay: make soak SOAK_ARGS="--seed N")
soak: $(VENV)/.installed-dev
	$(BIN)/python tests/soak --tasks 100 --outage 120 $(SOAK_ARGS)

# 300 tasks through `superset-bot console`, the bot killed with SIGKILL mid-run and restarted (tests/soak/crash.py)
soak-crash: $(VENV)/.installed-dev
	$(BIN)/python tests/soak crash --tasks 300 $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
