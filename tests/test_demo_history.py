"""The shipped demo imports its whole configured history cleanly: every hour the gap sensor
plans for every demo integration loads, none fails (as under `make dev`, which starts the
gap sensors after `make demo`), and the quarantine still has rows to show."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from etl.assets.facts import validate_extract
from etl.backfills import fill_gaps
from etl.config import PROJECT_ROOT, Settings, load_integrations
from etl.definitions import FACT_KINDS, build_definitions
from etl.demo_sources import DEMO_DB_ENV, demo_db_url, prepare_demo_sources
from etl.partitions import HOUR, floor_hour, hourly_partitions, months
from etl.resources.sources import build_source
from etl.resources.warehouse import Warehouse
from etl.schedules.gaps import RETRY_AFTER
from tests.helpers import fixed_clock

# A day after `make demo`: its two days of CSV files and database rows, and the history
# since the configured starts (10 days; 41 for kolkata_onprem). The whole month since is
# checked without Dagster below.
DEMO_DAY = datetime(2026, 11, 10, 16, 38, tzinfo=UTC)
NOW = datetime(2026, 11, 11, 16, 5, tzinfo=UTC)  # the sensor's next look is in the same hour
WHOLE_HISTORY_UNTIL = datetime(2026, 12, 2, 17, tzinfo=UTC)


@pytest.mark.slow
def test_demo_history_imports_with_no_failed_hour(tmp_path, monkeypatch, instance):
    monkeypatch.setenv("WFM_HOME", str(tmp_path))
    monkeypatch.setenv(DEMO_DB_ENV, demo_db_url(tmp_path))
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")  # as the Makefile sets it
    end = floor_hour(DEMO_DAY) + HOUR
    prepare_demo_sources(tmp_path, end - timedelta(hours=48), end)
    (tmp_path / "mappings").mkdir()
    settings = Settings(
        integrations_path=PROJECT_ROOT / "integrations.yaml",
        warehouse_dir=tmp_path / "warehouse",
        mappings_dir=tmp_path / "mappings",
    )
    integrations = load_integrations(settings.integrations_path)
    defs = build_definitions(settings, integrations)

    planned = {}
    with fixed_clock(NOW):
        for integration in integrations:
            plan, runs = fill_gaps(defs, instance, integration, NOW)
            planned[integration.id] = plan.todo_hours
            assert runs, integration.id
            assert [run.success for run in runs] == [True] * len(runs), integration.id

    for integration in integrations:
        partitions = hourly_partitions(integration)
        for kind in integration.data:
            key = dg.AssetKey([integration.id, kind])
            status = get_and_update_asset_status_cache_value(instance, key, partitions)
            failed = status.deserialize_failed_partition_subsets(partitions).get_partition_keys()
            assert list(failed) == [], key
            loaded = status.deserialize_materialized_partition_subsets(partitions)
            history = int((NOW.replace(minute=0) - 2 * HOUR - integration.history_start) / HOUR)
            assert len(loaded) >= history - integration.revision_window_hours, key
    assert planned["berlin_cloud"] == int(
        (floor_hour(NOW) - 2 * HOUR - datetime(2026, 11, 1, tzinfo=UTC)) / HOUR
    )

    # Nothing left for the sensor's next plan, and the quarantine shows the demo's bad rows.
    later = NOW + RETRY_AFTER + timedelta(minutes=1)
    with fixed_clock(later):
        for integration in integrations:
            plan, _ = fill_gaps(defs, instance, integration, later, dry_run=True)
            assert plan.todo_hours == 0, integration.id
    warehouse = Warehouse(root=str(settings.warehouse_dir))
    rejected = warehouse.query(
        "SELECT count(*) AS n FROM rejected_rows WHERE integration_id = 'berlin_cloud'"
    )["n"][0]
    assert rejected > 15  # about three a day
    failures = warehouse.query("SELECT count(*) AS n FROM imports WHERE failures > 0")["n"][0]
    assert failures == 0


def test_no_hour_of_the_demo_simulators_passes_its_rejected_share():
    """Every simulated demo integration's rows for its history up to a month on: no hour's
    rejected share reaches `max_rejected_share`, yet the quarantine gets rows."""
    rejected_rows = 0
    for integration in load_integrations(PROJECT_ROOT / "integrations.yaml"):
        if integration.vendor != "simulator":
            continue
        source = build_source(integration)
        kind = FACT_KINDS["contacts"]
        for start, end in months(integration.history_start, WHOLE_HISTORY_UNTIL):
            extract = kind.extract(source, start, end)
            checked = validate_extract(extract, integration, kind, start, end, "demo")
            rejected = checked.rejected.groupby("partition_key").size()
            good = checked.good["interval_start"].dt.floor("h").dt.strftime("%Y-%m-%d-%H:%M")
            total = good.value_counts().reindex(rejected.index, fill_value=0) + rejected
            share = (rejected / total).max() if len(rejected) else 0.0
            assert share <= integration.max_rejected_share, (integration.id, start)
            rejected_rows += len(checked.rejected)
    assert rejected_rows > 60  # berlin_cloud: about three a day
