# ManualQA: `make run` sets everything up and serves the app; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCHES := ingest chunking generation review training chat followups quality answers abuse

.PHONY: install run test lint format services $(addprefix bench-,$(BENCHES))

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

install: $(STAMP)

## Start PostgreSQL+pgvector and Redis where needed, migrate, ingest the sample manual, create
## the demo superuser, then serve on 127.0.0.1:8000 with a Celery worker. Ctrl-C stops it all.
run: install
	$(PY) -m manualqa.stack run

## The whole test suite against real services (started here if missing).
test: install
	$(PY) -m manualqa.stack test $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

services: install
	$(PY) -m manualqa.stack services

# A static pattern rule: make skips implicit rules for .PHONY targets, which left every
# `make bench-...` doing nothing.
$(addprefix bench-,$(BENCHES)): bench-%: install
	$(PY) -m manualqa.stack services >/dev/null
	$(PY) bench/$*.py
