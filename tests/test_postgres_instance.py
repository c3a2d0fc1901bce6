"""End to end with Dagster's instance storage on the local PostgreSQL (dagster-postgres)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from etl.instance import instance_config
from tests.conftest import make_integration
from tests.helpers import definitions, import_range


def test_range_import_with_postgres_instance(settings, warehouse, pg_instance, pg_url):
    integration = make_integration()
    defs = definitions(settings, integration)
    start = datetime(2026, 11, 16, tzinfo=UTC)
    result = import_range(defs, pg_instance, integration.id, start, start + timedelta(hours=24))
    assert result.success
    assert warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0] == 3 * 96
    key = dg.AssetKey([integration.id, "contacts"])
    assert len(pg_instance.get_materialized_partitions(key)) == 24
    engine = sa.create_engine(pg_url)
    with engine.connect() as con:
        runs = con.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
        events = con.execute(
            sa.text(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
            )
        ).scalar_one()
    engine.dispose()
    assert runs == 1
    assert events == 24


def test_instance_config_uses_postgres_when_url_is_set():
    assert "storage" not in instance_config({})
    config = instance_config({"DAGSTER_PG_URL": "postgresql+psycopg2://u@h/db"})
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
