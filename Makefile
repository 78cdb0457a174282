# synmon's two everyday commands are `make up` and `make test`; the rest serve them.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: up test lint install system-deps bench

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,local]'
	touch $@

install: $(BIN)/.installed

system-deps:
	scripts/system-deps

# Runs the whole system on this machine with the embedded defaults and the example checks.
up: install
	$(BIN)/synmon up examples/checks

lint: install
	$(BIN)/ruff check app config tasks tests bench
	$(BIN)/ruff format --check app config tasks tests bench
	$(BIN)/mypy

# The whole test suite: lint, types, then every test against the real services.
test: install system-deps lint
	$(BIN)/python -m pytest

bench: install system-deps
	$(BIN)/python -m bench
