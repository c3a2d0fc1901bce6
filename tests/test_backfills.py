"""Imports by hand run as range runs: a backfill from the asset page (the backfill daemon with
the assets' BackfillPolicy), `wfm-etl import` and `wfm-etl fill-gaps`."""

import logging
import time
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.execution.backfill import PartitionBackfill
from dagster._daemon.backfill import execute_backfill_iteration

from etl import cli
from etl.backfills import fill_gaps, import_in_chunks
from etl.partitions import HOUR, key_of
from etl.resources.sources import build_source
from tests.conftest import make_integration
from tests.helpers import (
    GapSensorDriver,
    configure_env,
    daemon_workspace,
    definitions,
    fixed_clock,
    holding_open,
    queued_instance,
    windows_of,
)


def at(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


CONFIG = {
    "id": "backfilled",
    "vendor": "simulator",
    "delivery": "on_premise",
    "interval_minutes": 30,
    "timezone": "Europe/Berlin",
    "history_start": "2026-10-01",
    "max_partitions_per_run": 24,
    "source": {"seed": 5, "queues": 2},
}


@pytest.fixture
def configured(settings, monkeypatch):
    configure_env(settings, monkeypatch, CONFIG)
    return settings


def test_asset_page_backfill_runs_as_range_runs(configured, tmp_path):
    """A backfill of 72 hours from the asset page becomes three range runs of 24 hours (the
    backfill policy's chunk), never 72 single-partition runs; the gap sensor waits for it."""
    with queued_instance(tmp_path / "home") as instance, daemon_workspace(instance) as workspace:
        key = dg.AssetKey(["backfilled", "contacts"])
        keys = [key_of(at(31, 0, month=10) + n * HOUR) for n in range(72)]
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="pagefill",
            asset_graph=workspace.create_request_context().asset_graph,
            partition_names=keys,
            asset_selection=[key],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        list(execute_backfill_iteration(workspace, logging.getLogger("test")))
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": "pagefill"}))

        defs = definitions(configured, make_integration(**CONFIG))
        integration = make_integration(**CONFIG)
        waiting = GapSensorDriver(defs, instance, integration).tick(at(3, 10))

    assert sorted(windows_of(runs)) == [
        (at(31, 0, month=10), at(1, 0)),
        (at(1, 0), at(2, 0)),
        (at(2, 0), at(3, 0)),
    ]
    assert not waiting.run_requests
    assert "backfill pagefill" in waiting.skip_reason.skip_message


def test_import_in_chunks_cuts_at_months_and_chunk_size(settings, warehouse, instance):
    integration = make_integration(**CONFIG)
    defs = definitions(settings, integration)
    with fixed_clock(at(10, 12)):
        runs = import_in_chunks(defs, instance, integration, at(31, 12, month=10), at(2, 6))
    assert all(run.success for run in runs)
    assert [run.window for run in runs] == [
        (at(2, 0), at(2, 6)),
        (at(1, 0), at(2, 0)),
        (at(31, 12, month=10), at(1, 0)),
    ]
    rows = warehouse.query(
        "SELECT count(*) AS n, min(interval_start) AS first, max(interval_start) AS last "
        "FROM contact_intervals"
    )
    assert rows["n"][0] == 2 * 2 * int((at(2, 6) - at(31, 12, month=10)) / HOUR)
    assert rows["first"][0] == at(31, 12, month=10)


def test_fill_gaps_by_hand_imports_what_the_sensor_would(settings, warehouse, instance):
    integration = make_integration(**{**CONFIG, "history_start": "2026-11-01"})
    defs = definitions(settings, integration)
    with fixed_clock(at(3, 10)):
        import_in_chunks(defs, instance, integration, at(1, 5), at(1, 9))
        plan, runs = fill_gaps(defs, instance, integration, at(3, 10), dry_run=True)
        assert runs == []
        # the sensor's plan, without its bound on runs in flight
        # (chunks of 24 hours from the month start, as max_partitions_per_run says)
        assert [r.window for r in plan.requests] == [
            (at(3, 0), at(3, 8)),
            (at(2, 0), at(3, 0)),
            (at(1, 9), at(2, 0)),
            (at(1, 0), at(1, 5)),
        ]
        plan, runs = fill_gaps(defs, instance, integration, at(3, 10))
    assert [run.success for run in runs] == [True, True, True, True]
    hours = warehouse.query(
        "SELECT count(DISTINCT date_trunc('hour', interval_start)) AS n FROM contact_intervals"
    )["n"][0]
    assert hours == int((at(3, 8) - at(1, 0)) / HOUR)


def test_cli_import_and_fill_gaps(configured, warehouse, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")  # the CLI sets it; keep it local
    code = cli.main(["import", "backfilled", "2026-11-01T00:00", "2026-11-02T12:00"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count(": ok") == 2  # 24-hour chunks: Nov 2 00..12, Nov 1
    assert warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0] == 2 * 2 * 36
    assert cli.main(["fill-gaps", "backfilled", "--dry-run"]) == 0
    assert "range run(s)" in capsys.readouterr().out
    assert cli.main(["import", "nosuch", "2026-11-01", "2026-11-02"]) == 2


def test_cli_compact_merges_ended_months_beside_an_open_connection(configured, warehouse, capsys):
    for start in (at(3), at(4), datetime(2026, 12, 1, tzinfo=UTC)):
        frame = build_source(make_integration(source={"seed": 5, "queues": 2})).contacts(
            start, start + HOUR
        )
        warehouse.replace_window("contact_intervals", "sim15", start, start + HOUR, frame.frame)
    assert list(warehouse.slots("contact_intervals", "sim15")) == [
        "2026-11-03",
        "2026-11-04",
        "2026-12-01",
    ]
    reader = holding_open(warehouse.catalog_path)
    try:
        with fixed_clock(datetime(2026, 12, 2, 1, tzinfo=UTC)):  # a day after November's end
            assert cli.main(["compact"]) == 0
    finally:
        reader.communicate("")
    assert "compacted 1 months (2 day files into 1)" in capsys.readouterr().out
    assert list(warehouse.slots("contact_intervals", "sim15")) == ["2026-11", "2026-12-01"]
    assert warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0] == 3 * 8
