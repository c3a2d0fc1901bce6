from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from etl.assets.contacts import CONTACTS_KIND
from etl.assets.facts import HOURLY_METADATA, build_fact_asset, source_key
from etl.partitions import key_of
from etl.resources.sources import build_source
from etl.resources.sources.base import Extract, SourceResource
from etl.resources.sources.simulator.simulator import SimulatorSource
from etl.run_outcome import outcome
from etl.schedules.gaps import GapCursor, read_open_partitions
from etl.schemas import CONTACTS
from tests.conftest import make_integration
from tests.helpers import definitions, fixed_clock, import_range

START = datetime(2026, 11, 16, tzinfo=UTC)
END = START + timedelta(hours=48)


def stored(warehouse) -> pd.DataFrame:
    return warehouse.query(
        "SELECT * EXCLUDE (interval_start), interval_start FROM contact_intervals "
        "ORDER BY external_queue_id, channel, interval_start"
    )


def test_one_partition_through_materialize(settings, warehouse, instance):
    integration = make_integration()
    asset = build_fact_asset(integration, CONTACTS_KIND)
    result = dg.materialize(
        [asset],
        partition_key="2026-11-16-09:00",
        instance=instance,
        resources={source_key(integration): build_source(integration), "warehouse": warehouse},
    )
    assert result.success
    rows = stored(warehouse)
    assert len(rows) == 3 * 4
    assert sorted(rows["interval_start"].dt.minute.unique()) == [0, 15, 30, 45]
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["rows_written"].value == 12
    assert metadata["complete"].value is True
    check = result.get_asset_check_evaluations()[0]
    assert check.passed


def test_48_hour_range_in_one_run_matches_simulator(settings, warehouse, instance):
    integration = make_integration()
    defs = definitions(settings, integration)
    result = import_range(defs, instance, integration.id, START, END)
    assert result.success
    runs = instance.get_run_records()
    assert len(runs) == 1
    expected = build_source(integration).contacts(START, END).frame
    rows = stored(warehouse)
    assert len(rows) == len(expected) == 3 * 48 * 4
    per_queue = rows.groupby(["external_queue_id", "channel"])[["offered", "handle_time_s"]].sum()
    want = expected.groupby(["external_queue_id", "channel"])[["offered", "handle_time_s"]].sum()
    pd.testing.assert_frame_equal(per_queue, want, check_dtype=False)
    hours = rows["interval_start"].dt.floor("h").value_counts()
    assert len(hours) == 48
    assert (hours == 3 * 4).all()
    keys = instance.get_materialized_partitions(dg.AssetKey([integration.id, "contacts"]))
    assert len(keys) == 48


def test_each_hour_of_a_range_carries_its_window_the_last_hour_all_of_it(
    settings, warehouse, instance
):
    """A range run stores one materialization per hour. The window's last hour (the asset's
    latest materialization, what the UI shows first) carries the window's metadata; every
    other hour the few fields read per hour, with the same values: the window, when it was
    imported (the gap sensor's test for an hour imported before it ended) and `complete`."""
    integration = make_integration()
    defs = definitions(settings, integration)
    at = datetime(2026, 11, 17, 12, 20, tzinfo=UTC)  # the range's last hour is still open
    with fixed_clock(at):
        result = import_range(defs, instance, integration.id, START, START + timedelta(hours=37))
    assert result.success
    events = [e.materialization for e in result.get_asset_materialization_events()]
    assert [e.partition for e in events] == [key_of(START + timedelta(hours=h)) for h in range(37)]
    *hours, last = events
    window = last.metadata
    assert window["rows_written"].value == 3 * 37 * 4
    assert window["rows_received"].value == 3 * 37 * 4
    assert window["rows_rejected"].value == 0
    assert window["open_partitions"].value == [key_of(datetime(2026, 11, 17, 12, tzinfo=UTC))]
    assert window["complete"].value is False
    assert window["source"].value
    for hour in hours:
        assert set(hour.metadata) == set(HOURLY_METADATA)
        for name in HOURLY_METADATA:
            assert hour.metadata[name] == window[name]
    assert window["window_start"].value == START.timestamp()
    assert window["imported_at"].value == at.timestamp()
    key = dg.AssetKey([integration.id, "contacts"])
    latest = instance.get_latest_materialization_event(key).asset_materialization
    assert latest.partition == last.partition
    assert dict(latest.metadata) == dict(window)
    # What reads these events: the run's counts, and the open hours for the gap sensor.
    assert outcome(result).loaded == window["rows_written"].value
    cursor = GapCursor()
    assert read_open_partitions(instance, key, cursor)
    assert cursor.open[key.to_user_string()] == [key_of(datetime(2026, 11, 17, 12, tzinfo=UTC))]


def test_reimport_three_times_is_identical(settings, warehouse, instance):
    integration = make_integration()
    defs = definitions(settings, integration)
    import_range(defs, instance, integration.id, START, END)
    first = stored(warehouse)
    for _ in range(3):
        assert import_range(defs, instance, integration.id, START, END).success
    again = stored(warehouse)
    pd.testing.assert_frame_equal(first, again)
    dupes = warehouse.query(
        "SELECT count(*) AS n FROM (SELECT integration_id, external_queue_id, channel, "
        "interval_start FROM contact_intervals GROUP BY ALL HAVING count(*) > 1)"
    )
    assert dupes["n"][0] == 0


class HandfulOfBadRows(SimulatorSource):
    """The simulator, with a few rows broken the way real exports break."""

    broken: int = 4

    def contacts(self, start, end) -> Extract:
        extract = super().contacts(start, end)
        frame = extract.frame.copy()
        frame.loc[0, "answered"] = frame.loc[0, "offered"] + 5
        frame.loc[1, "channel"] = "pigeon"
        frame.loc[2, "handle_time_s"] = -1.0
        frame = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
        frame = frame.head(len(frame) if self.broken else 0)
        return Extract(frame, description="broken simulator")


def test_bad_rows_quarantined_good_rows_loaded(settings, warehouse, instance):
    integration = make_integration(max_rejected_share=0.5)
    source = HandfulOfBadRows.from_integration(integration)
    defs = definitions(settings, integration, **{source_key(integration): source})
    result = import_range(defs, instance, integration.id, START, START + timedelta(hours=24))
    assert result.success
    assert len(stored(warehouse)) == 3 * 96 - 3
    rejected = warehouse.query("SELECT * FROM rejected_rows ORDER BY source_ref")
    assert len(rejected) == 3  # the exact copy of row 4 is kept once, not rejected
    all_rules = sorted(r for rules in rejected["rules"] for r in rules)
    assert "answered <= offered" in all_rules
    assert "channel: one of calls, chats, emails, tickets, social, documents" in all_rules
    assert "handle_time_s: >= 0" in all_rules
    assert not any(r.startswith("duplicate_row") for r in all_rules)
    assert set(rejected["run_id"]) == {result.run_id}
    assert set(rejected["source_ref"]) == {
        "broken simulator, row 1",
        "broken simulator, row 2",
        "broken simulator, row 3",
    }
    checks = result.get_asset_check_evaluations()
    assert not checks[0].passed
    assert checks[0].metadata["rows_rejected"].value == 3
    assert checks[0].metadata["rows_duplicate"].value == 1
    *hours, last = result.get_asset_materialization_events()  # the window's last hour: all
    assert last.materialization.metadata["rows_duplicate"].value == 1
    assert last.materialization.metadata["rows_rejected"].value == 3
    assert all("rows_duplicate" not in e.materialization.metadata for e in hours)
    log = warehouse.query(
        "SELECT sum(rows_rejected) AS rejected, sum(rows_duplicate) AS duplicate FROM imports"
    )
    assert log.values.tolist() == [[3, 1]]
    # Re-importing replaces the quarantine too: still three rows, not six.
    import_range(defs, instance, integration.id, START, START + timedelta(hours=24))
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 3


def test_rejected_share_over_threshold_fails_with_message(settings, warehouse, instance):
    integration = make_integration(max_rejected_share=0.05)
    source = HandfulOfBadRows.from_integration(integration)
    defs = definitions(settings, integration, **{source_key(integration): source})
    hour = datetime(2026, 11, 16, 0, tzinfo=UTC)
    result = import_range(defs, instance, integration.id, hour, hour + timedelta(hours=1))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "integration 'sim15'" in message
    assert "2026-11-16 00:00 UTC: rejected share above 5%: 3 of 12 rows rejected (" in message
    assert "answered <= offered x1" in message
    assert len(stored(warehouse)) == 0
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 3


def test_source_failure_names_integration(settings, warehouse, instance):
    class Down(SimulatorSource):
        def contacts(self, start, end):
            raise ConnectionError("acd unreachable")

    integration = make_integration()
    defs = definitions(
        settings, integration, **{source_key(integration): Down.from_integration(integration)}
    )
    result = import_range(defs, instance, integration.id, START, START + timedelta(hours=1))
    assert not result.success
    assert instance.get_materialized_partitions(dg.AssetKey([integration.id, "contacts"])) == set()


@pytest.mark.parametrize("interval", [15, 30, 60])
def test_every_interval_present_for_each_cadence(settings, warehouse, instance, interval):
    integration = make_integration(interval_minutes=interval, timezone="Asia/Kolkata")
    defs = definitions(settings, integration)
    assert import_range(defs, instance, integration.id, START, START + timedelta(hours=6)).success
    rows = stored(warehouse)
    assert len(rows) == 3 * 6 * 60 // interval
    assert set(rows["interval_minutes"]) == {interval}


class Export(SourceResource):
    """A plain source (a database or a file export, say) delivering exactly the rows given,
    with where each came from."""

    rows: list[dict] = []

    def contacts(self, start, end) -> Extract:
        columns = [c for c in CONTACTS.columns if c != "integration_id"]
        frame = pd.DataFrame(self.rows, columns=self.rows[0].keys() if self.rows else columns)
        frame["source_ref"] = [f"export.csv:{i + 2}" for i in range(len(frame))]
        return Extract(frame, description="export.csv")


def export(integration, rows: list[dict]) -> dict:
    source = Export(
        integration_id=integration.id,
        timezone=integration.timezone,
        interval_minutes=integration.interval_minutes,
        rows=rows,
    )
    return {source_key(integration): source}


def simulated_rows(integration, start, end) -> list[dict]:
    frame = build_source(integration).contacts(start, end).frame
    frame["interval_start"] = frame["interval_start"].map(lambda t: t.isoformat())
    return frame.to_dict(orient="records")


def test_one_repeated_line_in_a_clean_export_loads_its_hour(settings, warehouse, instance):
    integration = make_integration()  # max_rejected_share 0.05: 1 of 13 would be 7.7 %
    hour = datetime(2026, 11, 16, 9, tzinfo=UTC)
    rows = simulated_rows(integration, hour, hour + timedelta(hours=1))
    defs = definitions(settings, integration, **export(integration, [*rows, rows[4]]))
    result = import_range(defs, instance, integration.id, hour, hour + timedelta(hours=1))
    assert result.success
    assert len(stored(warehouse)) == 12
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["rows_duplicate"].value == 1
    assert metadata["rows_rejected"].value == 0
    assert metadata["rows_received"].value == 13
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0
    log = warehouse.query("SELECT rows_written, rows_rejected, rows_duplicate FROM imports")
    assert log.values.tolist() == [[12, 0, 1]]
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(
        "1 exact duplicate row(s) kept once, not rejected: export.csv:14" in m for m in logged
    )


def test_an_export_that_delivers_nothing_does_not_empty_loaded_hours(settings, warehouse, instance):
    integration = make_integration()
    start = datetime(2026, 11, 16, 9, tzinfo=UTC)
    window = (start, start + timedelta(hours=3))
    rows = simulated_rows(integration, *window)
    full = definitions(settings, integration, **export(integration, rows))
    assert import_range(full, instance, integration.id, *window).success
    before = stored(warehouse)
    assert len(before) == 36

    # The export is empty now (a file not written yet, a table truncated): nothing is deleted.
    empty = definitions(settings, integration, **export(integration, []))
    result = import_range(empty, instance, integration.id, *window)
    assert not result.success
    pd.testing.assert_frame_equal(stored(warehouse), before)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "3 of 3 hours failed" in message
    assert "2026-11-16 09:00..2026-11-16 12:00 UTC (3 hours): held 12 rows and the source " in (
        message
    )
    log = warehouse.query("SELECT rows_written, failure FROM imports ORDER BY partition_start")
    assert log["rows_written"].tolist() == [12, 12, 12]  # still what the hours hold
    assert log["failure"].str.startswith("held 12 rows and the source delivered none").all()

    # One hour emptied while the others come: only that hour fails.
    partial = [r for r in rows if not r["interval_start"].startswith("2026-11-16T10")]
    some = definitions(settings, integration, **export(integration, partial))
    result = import_range(some, instance, integration.id, *window)
    assert not result.success
    assert len(stored(warehouse)) == 36
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "1 of 3 hours failed" in failure.event_specific_data.error.message

    # Configured to trust the export's empty answer, the hours are emptied.
    trusting = integration.model_copy(update={"emptied_hours": "replace"})
    defs = definitions(settings, trusting, **export(trusting, []))
    assert import_range(defs, instance, trusting.id, *window).success
    assert len(stored(warehouse)) == 0


def test_padded_queue_id_loads_with_a_warning(settings, warehouse, instance):
    integration = make_integration()
    hour = datetime(2026, 11, 16, 9, tzinfo=UTC)
    rows = simulated_rows(integration, hour, hour + timedelta(hours=1))
    queue = rows[0]["external_queue_id"]
    padded = [
        {**r, "external_queue_id": f"{queue} "} if r["external_queue_id"] == queue else r
        for r in rows
    ]
    defs = definitions(settings, integration, **export(integration, padded))
    result = import_range(defs, instance, integration.id, hour, hour + timedelta(hours=1))
    assert result.success
    warning = (
        f"external_queue_id '{queue} ' (4 rows) has spaces around it or invisible characters "
        f"in it; kept as delivered, so it does not match '{queue}'"
    )
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["warnings"].value == [warning]
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.level == 30]
    assert any(warning in m for m in logged)
    assert f"{queue} " in set(
        warehouse.query("SELECT external_queue_id FROM queues")["external_queue_id"]
    )
