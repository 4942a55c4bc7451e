# DualTetraX Services. `make run` and `make test` are all a newcomer needs (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCALSTACK := $(PYTHON) scripts/localstack.py

.PHONY: setup db db-reset db-stop psql run test bench lint typecheck clean help

help:
	@echo "make run       set everything up and run the worker on the local stack with demo data"
	@echo "make test      set everything up and run the test suite"
	@echo "make setup     create .venv and install the project with all extras"
	@echo "make db        start the local database (port 54322) and apply migrations + seed (idempotent)"
	@echo "make db-reset  rebuild the local database from scratch"
	@echo "make db-stop   stop the local database"
	@echo "make psql      open psql on the local database"
	@echo "make bench     run the benchmarks in tests/bench/"
	@echo "make lint      ruff + mypy"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found " + sys.version.split()[0] + ")")'
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)
	@scripts/ensure-system-deps.sh

db: setup
	@$(LOCALSTACK) up
	@DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:$${DTX_DB_PORT:-54322}/postgres $(PY) -m dtx_worker.demo_fleet --binary-only

db-reset: setup
	@$(LOCALSTACK) reset
	@DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:$${DTX_DB_PORT:-54322}/postgres $(PY) -m dtx_worker.demo_fleet --binary-only

db-stop:
	@$(LOCALSTACK) stop

psql: db
	@PGPASSWORD=postgres psql -h 127.0.0.1 -p $${DTX_DB_PORT:-54322} -U postgres -d postgres

run: db
	@export DATABASE_URL=$${DATABASE_URL:-postgresql://postgres:postgres@127.0.0.1:$${DTX_DB_PORT:-54322}/postgres}; \
	$(PY) -m dtx_worker summary || exit 1; \
	$(PY) -m dtx_worker.demo_fleet & fleet=$$!; \
	trap 'kill $$fleet 2>/dev/null; wait $$fleet 2>/dev/null' EXIT; \
	trap 'exit 130' INT; trap 'exit 143' TERM; \
	echo "starting the worker (Ctrl-C to stop; logs are JSON lines; demo-fleet lines are the simulated devices)"; \
	$(PY) -m dtx_worker run

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@set -e; for b in tests/bench/*.py; do echo "== $$b"; $(PY) $$b; done

lint: setup
	$(VENV)/bin/ruff check sdk workers tests scripts
	$(VENV)/bin/mypy

clean: db-stop
	rm -rf .local $(VENV)
