"""Deleting an integration: its assets, schedule and sensor go; every row it imported stays."""

import shutil
from datetime import UTC, datetime

import dagster as dg

from tests.conftest import make_integration
from tests.helpers import definitions, fixed_clock, import_range

START, END = datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 16, 6, tzinfo=UTC)
PER_INTEGRATION = """
    SELECT (SELECT count(*) FROM contact_intervals WHERE integration_id = $id) AS rows,
           (SELECT count(*) FROM queues WHERE integration_id = $id) AS queues,
           (SELECT count(*) FROM queue_intervals WHERE destination_queue LIKE $id || '/%') AS qi,
           (SELECT sum(offered) FROM queue_days WHERE destination_queue LIKE $id || '/%') AS off,
           (SELECT sum(expected_intervals) FROM coverage WHERE integration_id = $id) AS expected,
           (SELECT sum(missing_intervals) FROM coverage WHERE integration_id = $id) AS missing,
           (SELECT count(*) FROM integrations WHERE integration_id = $id) AS registered
"""


def view_counts(warehouse, integration_id: str) -> dict:
    with warehouse.connect() as con:
        row = con.execute(PER_INTEGRATION, {"id": integration_id}).df()
    return row.iloc[0].to_dict()


def test_removing_an_integration_keeps_its_data(settings, warehouse, instance):
    kept = make_integration(id="kept", history_start="2026-11-16", source={"seed": 1, "queues": 2})
    gone = make_integration(
        id="gone", history_start="2026-11-16", interval_minutes=30, source={"seed": 2, "queues": 3}
    )
    both = definitions(settings, kept, gone)
    with fixed_clock(END):
        for integration in (kept, gone):
            assert import_range(both, instance, integration.id, START, END).success
    before = view_counts(warehouse, "gone")
    assert before["rows"] == 3 * 2 * 6
    assert before["queues"] == 3
    assert before["registered"] == 1
    assert before["qi"] == before["rows"]  # one destination queue per external queue
    assert before["off"] > 0
    assert before["expected"] == 2 * 6

    # "gone" is removed from integrations.yaml: the code location reloads without it.
    only_kept = definitions(settings, kept)
    keys = set(only_kept.resolve_asset_graph().get_all_asset_keys())
    assert dg.AssetKey(["gone", "contacts"]) not in keys
    assert dg.AssetKey(["kept", "contacts"]) in keys
    assert {s.name for s in only_kept.schedules} == {"kept_schedule", "compact_warehouse_nightly"}
    assert {s.name for s in only_kept.sensors} == {"kept_gap_sensor", "mapping_files_sensor"}
    assert "gone_import" not in {j.name for j in only_kept.jobs}

    # Imports go on for the others (files rewritten, the catalog rebuilt): "gone" stays.
    with fixed_clock(datetime(2026, 11, 16, 9, tzinfo=UTC)):
        assert import_range(only_kept, instance, "kept", START, END).success
    # The catalog built anew from the warehouse's own record (not from the config).
    shutil.rmtree(warehouse.catalog.dir)
    warehouse.catalog_path.unlink()
    assert warehouse.ensure_catalog()
    after = view_counts(warehouse, "gone")
    assert after == before
    assert after["missing"] == 0  # coverage still describes what it imported
