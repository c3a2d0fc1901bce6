"""The Dagster instance: a project-local DAGSTER_HOME, SQLite by default, PostgreSQL on demand.

Set DAGSTER_PG_URL (an SQLAlchemy URL, `postgresql+psycopg2://user@host:5432/db`) to keep
runs and event logs in PostgreSQL, which big history imports need (DESIGN.md pitfalls).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from etl.config import PROJECT_ROOT

PG_URL_ENV = "DAGSTER_PG_URL"
# A range run stores one materialization event per partition; batching those writes cuts the
# event-log cost of big history imports (DESIGN.md pitfalls, measured in the benchmark).
EVENT_BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"
DEFAULT_EVENT_BATCH_SIZE = "1000"


def instance_config(env: Mapping[str, str]) -> dict:
    config: dict = {"telemetry": {"enabled": False}}
    if env.get(PG_URL_ENV):
        config["storage"] = {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    return config


def prepare_dagster_home(env: Mapping[str, str] | None = None) -> Path:
    """Create DAGSTER_HOME (default: `.dagster_home` in the project) with its dagster.yaml."""
    env = os.environ if env is None else env
    home = Path(env.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    os.environ.setdefault(EVENT_BATCH_ENV, DEFAULT_EVENT_BATCH_SIZE)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config(env), sort_keys=False))
    return home
