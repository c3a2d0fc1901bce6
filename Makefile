# wfm-etl: every target sets up the virtual environment first, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export WFM_HOME ?= $(CURDIR)
# Write a range run's per-partition events in batches (DESIGN.md pitfalls; see README).
export DAGSTER_EVENT_BATCH_SIZE ?= 1000
# One "planned" event per range run instead of one per hour (Dagster's own switch).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= 1
# The demo's database integration (london_db) reads the SQLite file `make demo` writes.
export WFM_DEMO_DB_URL ?= sqlite:///$(WFM_HOME)/data/demo/crm.sqlite

.PHONY: setup bench-setup bytecode demo dev deploy-local compact test lint format bench lock clean

setup: $(STAMP)

# The locked versions (requirements.lock, what the user-code image installs) as constraints,
# so the tests run on the same packages as a deployment.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# The benchmark's extra (pyproject.toml `bench`: dlt, psutil) on top, with the same constraints;
# `make test` installs it too: the benchmark's own tests (tests/bench/) run its parts small.
BENCH_STAMP := $(VENV)/.installed-bench
bench-setup: $(BENCH_STAMP)
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Every run process imports the project's modules afresh (etl/run_launcher.py): compile them
# once, so runs load bytecode even where PYTHONDONTWRITEBYTECODE stops Python from caching it
# (0.1-0.2 s a run, bench/). Only changed files are compiled again.
bytecode: setup
	$(BIN)/python -m compileall -q etl

demo: bytecode
	$(BIN)/wfm-etl demo

# The Dagster UI and daemon on PORT (3000): a busy port fails naming it, never moves. The
# ingestion service (push API, live agent status) runs beside it and stops with it.
PORT ?= 3000
dev: bytecode
	$(BIN)/wfm-etl serve & serve=$$!; trap "kill $$serve" EXIT INT TERM; \
	$(BIN)/wfm-etl dev --port $(PORT)

# Dagster as it is deployed: webserver, daemon, code server and (with the celery launcher) the
# Celery workers as separate processes, the instance on PostgreSQL (docs/deploy.md).
# The servers default to this machine's (override any of them in the environment).
DEPLOY_ARGS ?= --launcher celery --workers 2
deploy-local: export DAGSTER_PG_URL ?= postgresql+psycopg2://postgres@127.0.0.1:5432/wfm_dagster
deploy-local: export WFM_CELERY_BROKER_URL ?= amqp://guest:guest@127.0.0.1:5672//
deploy-local: export WFM_CELERY_BACKEND_URL ?= redis://127.0.0.1:6379/0
deploy-local: bytecode
	$(BIN)/wfm-etl deploy $(DEPLOY_ARGS)

# Merge the day files of ended months into month files, beside open analyst connections.
compact: setup
	$(BIN)/wfm-etl compact

test: bench-setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: bytecode bench-setup
	$(BIN)/python -m bench $(BENCH_ARGS)

# Resolve the image's packages again (after changing pyproject.toml's dependencies).
lock: setup
	$(BIN)/python tools/lock.py

clean:
	rm -rf $(VENV) .dagster_home data
	find etl -name __pycache__ -type d -prune -exec rm -rf {} +
