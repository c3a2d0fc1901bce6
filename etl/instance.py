"""The Dagster instance: a project-local DAGSTER_HOME, SQLite by default, PostgreSQL on demand.

Set DAGSTER_PG_URL (an SQLAlchemy URL, `postgresql+psycopg2://user@host:5432/db`) to keep
runs and event logs in PostgreSQL, which big history imports need (DESIGN.md pitfalls).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from etl.config import PROJECT_ROOT

PG_URL_ENV = "DAGSTER_PG_URL"
# The first line of the dagster.yaml `wfm-etl deploy` writes (see prepare_dagster_home).
DEPLOY_MARKER = "# Written by `wfm-etl deploy`; the other wfm-etl commands leave it as it is.\n"
# A range run stores one materialization event per partition; batching those writes cuts the
# event-log cost of big history imports (DESIGN.md pitfalls, measured in the benchmark).
# One planned event per range run instead of one per hour: creating a run of 744 hours on
# PostgreSQL took 15.6 s with per-hour planned events and under 0.1 s with one (bench/).
RANGE_RUN_ENV = {
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
}


# Runs start in processes forked from a warm server, not fresh interpreters (etl/run_launcher.py).
RUN_LAUNCHER = {"module": "etl.run_launcher", "class": "PreloadedRunLauncher"}


POSTGRES_STORAGE = {
    "run_storage": ("dagster_postgres.run_storage", "PostgresRunStorage"),
    "event_log_storage": ("etl.event_log", "RangeRunEventLogStorage"),
    "schedule_storage": ("dagster_postgres.schedule_storage", "PostgresScheduleStorage"),
}


MAX_RUNS_ENV = "WFM_MAX_CONCURRENT_RUNS"


def max_concurrent_runs(env: Mapping[str, str]) -> int:
    """Runs at once: one per core by default. Dagster's default (10) made 50 ticks on 2 cores
    slower (85 s) than two at a time (73 s): run processes are CPU-bound (bench/)."""
    value = env.get(MAX_RUNS_ENV) or str(os.cpu_count() or 2)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{MAX_RUNS_ENV} must be a whole number of runs >= 1, not {value!r}")
    return int(value)


def instance_config(env: Mapping[str, str]) -> dict:
    config: dict = {
        "telemetry": {"enabled": False},
        "run_launcher": dict(RUN_LAUNCHER),
        "run_queue": {"max_concurrent_runs": max_concurrent_runs(env)},
    }
    if env.get(PG_URL_ENV):
        config.update(postgres_storage({"env": PG_URL_ENV}))
    return config


def postgres_storage(url: str | dict) -> dict:
    """Instance storage on PostgreSQL: dagster-postgres's run and schedule storage, and its
    event log with the planned check rows of range runs written in one statement
    (etl/event_log.py). `url` is an SQLAlchemy URL, or `{"env": NAME}` to read it there."""
    # Each entry its own copy: shared objects would come out of YAML as anchors and aliases.
    return {
        key: {"module": module, "class": name, "config": {"postgres_url": copy.deepcopy(url)}}
        for key, (module, name) in POSTGRES_STORAGE.items()
    }


def prepare_dagster_home(env: Mapping[str, str] | None = None) -> Path:
    """Create DAGSTER_HOME (default: `.dagster_home` in the project) with its dagster.yaml;
    a deployment's home keeps the dagster.yaml `wfm-etl deploy` wrote, so the command line
    can import into a deployment's instance (`DAGSTER_HOME=<its home> wfm-etl import ...`)."""
    env = os.environ if env is None else env
    home = Path(env.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    for name, value in RANGE_RUN_ENV.items():
        os.environ.setdefault(name, value)
    path = home / "dagster.yaml"
    if path.exists() and path.read_text().startswith(DEPLOY_MARKER):
        return home  # a deployment's instance (etl/deploy.py): used as it is
    path.write_text(yaml.safe_dump(instance_config(env), sort_keys=False))
    return home
