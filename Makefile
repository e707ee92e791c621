# The two commands of the README: `make run` (the service) and `make test` (the test suite).
# Both set up .venv from pyproject.toml first, and the system packages the TTS needs.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run demo test lint

$(VENV)/.installed: pyproject.toml
	scripts/install-system-packages
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/robocall serve

demo: $(VENV)/.installed
	$(VENV)/bin/robocall demo

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check robocall tests scripts
	$(VENV)/bin/mypy robocall
