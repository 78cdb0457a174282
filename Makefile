# synmon's two everyday commands are `make up` and `make test`; the rest serve them.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# checkov pins its own versions of boto3 and friends: it lives in a venv of its own.
CHECKOV := .tools/checkov/bin/checkov

.PHONY: up test test-fast lint install system-deps bench

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,local]'
	touch $@

install: $(BIN)/.installed

$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/pip install --quiet --upgrade pip
	.tools/checkov/bin/pip install --quiet 'checkov>=3.2,<4'

system-deps:
	scripts/system-deps

# Runs the whole system on this machine with the embedded defaults and the example checks.
# Chromium is installed first where it can be (as root, with apt-get); where it cannot,
# browser checks are disabled and both system-deps and synmon up say why and what to do.
up: install
	scripts/system-deps --optional
	$(BIN)/synmon up examples/checks

lint: install
	$(BIN)/ruff check app config tasks tests bench
	$(BIN)/ruff format --check app config tasks tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole test suite: lint, types, then every test against the real services.
test: install $(CHECKOV) system-deps lint
	$(BIN)/python -m pytest

# The tests that start no process, in well under a minute: the everyday loop while editing.
# SYNMON_TESTS_FAST makes starting a process raise (tests/support/no_processes.py), so that a
# test that starts one and lacks the processes marker fails here instead of slowing this run.
test-fast: install
	SYNMON_TESTS_FAST=1 $(BIN)/python -m pytest -q -m "not processes"

bench: install system-deps
	$(BIN)/python -m bench
