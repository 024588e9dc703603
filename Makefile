# Two commands for a new user: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run console test lint typecheck unit bench soak clean

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
	$(BIN)/ruff check bot tests $(wildcard bench)

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Four workers on two cores: most tests wait on git, agents and HTTP, not the CPU (PYTEST_ARGS="-n 0" for one).
PYTEST_ARGS ?= -n 4
unit: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(VENV)/.installed-dev
	@if [ -f bench/__main__.py ]; then $(BIN)/python -m bench; else echo "no benchmarks yet (bench/ is issue 7)"; fi

# issue 8: 100 tasks with random cancels, merges, discards, follow-ups and Slack 429/500 answers, then
# Slack down and failing for 2 minutes; prints the seed (replay: make soak SOAK_ARGS="--seed N")
soak: $(VENV)/.installed-dev
	PYTHONPATH=tests $(BIN)/python -m soak --tasks 100 --outage 120 $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
