"""Shared fixtures: real warehouse folders, real Dagster instances, real database servers.

Tests that need a server fail with a clear message when it is absent; they never skip,
because CI must prove the real parts work.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._utils.warnings import BetaWarning, PreviewWarning

from etl.config import Integration, Settings
from etl.instance import postgres_storage
from etl.resources.warehouse import Warehouse

warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)

PG_URL = os.environ.get("WFM_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("WFM_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
FIXED_NOW = datetime(2026, 11, 18, 10, 20, tzinfo=UTC)


def server_engine(url: str, what: str) -> sa.Engine:
    """An engine for a server the test needs; a clear failure when it is not there."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as con:
            con.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"{what} is needed by this test but not reachable at {engine.url.render_as_string()}"
            f" (set {'WFM_TEST_PG_URL' if 'postgres' in url else 'WFM_TEST_MYSQL_URL'}): "
            f"{exc.orig}",
            pytrace=False,
        )
    return engine


def integration_fields(**overrides) -> dict:
    """The fields of a valid simulator integration, as integrations.yaml holds them."""
    fields = {
        "id": "sim15",
        "vendor": "simulator",
        "delivery": "cloud",
        "interval_minutes": 15,
        "data": ["contacts"],
        "timezone": "Europe/Berlin",
        "history_start": "2026-11-01",
        "source": {"seed": 7, "queues": 3, "channels": ["calls", "chats", "emails"]},
    }
    fields.update(overrides)
    return fields


def make_integration(**overrides) -> Integration:
    """A valid simulator integration; override any field."""
    return Integration.model_validate(integration_fields(**overrides))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    return Settings(
        integrations_path=tmp_path / "integrations.yaml",
        warehouse_dir=tmp_path / "warehouse",
        mappings_dir=mappings,
    )


@pytest.fixture
def warehouse(settings: Settings) -> Warehouse:
    return Warehouse(root=str(settings.warehouse_dir))


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real, SQLite-backed Dagster instance in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    admin = server_engine(PG_URL, "PostgreSQL")
    name = f"wfm_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as con:
        con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_instance(pg_url: str, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance whose runs, events and schedules live in PostgreSQL."""
    home = tmp_path / "dagster_home_pg"
    home.mkdir()
    overrides = postgres_storage(pg_url)
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as inst:
        yield inst


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh MariaDB database on the local server, dropped afterwards."""
    admin = server_engine(MYSQL_URL, "MariaDB")
    name = f"wfm_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as con:
        con.execute(sa.text(f"CREATE DATABASE `{name}`"))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as con:
        con.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()
