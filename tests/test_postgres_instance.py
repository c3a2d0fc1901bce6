"""End to end with Dagster's instance storage on the local PostgreSQL (dagster-postgres)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from etl.event_log import RangeRunEventLogStorage
from etl.instance import RANGE_RUN_ENV, instance_config, prepare_dagster_home
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
    from_env = {"postgres_url": {"env": "DAGSTER_PG_URL"}}
    assert config["run_storage"]["config"] == from_env
    assert config["schedule_storage"]["config"] == from_env
    assert config["event_log_storage"] == {
        "module": "etl.event_log",
        "class": "RangeRunEventLogStorage",
        "config": from_env,
    }


def test_the_written_dagster_yaml_loads_an_instance_on_postgres(pg_url, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    for name, value in RANGE_RUN_ENV.items():  # the set-up sets them; restore them afterwards
        monkeypatch.setenv(name, value)
    assert prepare_dagster_home() == home
    written = (home / "dagster.yaml").read_text()
    assert "RangeRunEventLogStorage" in written
    assert "&id" not in written  # readable: each storage's config in full, no YAML aliases
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, RangeRunEventLogStorage)
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
        assert instance.get_run_by_id(run.run_id) is not None
    engine = sa.create_engine(pg_url)
    with engine.connect() as con:
        assert con.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 1
    engine.dispose()
