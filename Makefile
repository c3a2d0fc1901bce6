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

.PHONY: setup demo dev test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/wfm-etl demo

dev: setup
	$(BIN)/wfm-etl init-home
	$(BIN)/dagster dev -w workspace.yaml

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .dagster_home data
