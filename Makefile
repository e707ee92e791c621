# The two commands of the README: `make run` (the service) and `make test` (the test suite).
# Both set up .venv from pyproject.toml first, and the system packages the TTS needs.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run demo test lint lab-test

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

# The lab tier against a real FreeSWITCH configured by scripts/lab_configure.py (docs/lab.md).
# It starts only SIPp callees, each stopped by its test; the switch is yours to start and stop.
lab-test: $(VENV)/.installed
	@test -n "$$ROBOCALL_LAB_ESL" || { \
		echo "make lab-test: set ROBOCALL_LAB_ESL=host:port:password (see docs/lab.md)" >&2; exit 2; }
	$(PY) -m pytest tests/lab -m lab -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check robocall tests scripts
	$(VENV)/bin/mypy robocall
