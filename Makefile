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

.PHONY: setup bytecode demo dev compact test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

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

# Merge the day files of ended months into month files; stops if the catalog is open.
compact: setup
	$(BIN)/wfm-etl compact

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: bytecode
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .dagster_home data
	find etl -name __pycache__ -type d -prune -exec rm -rf {} +
