"""The event log storage for range runs, on the local PostgreSQL: the planned check rows it
writes are the ones Dagster's own storage writes for the same run."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._serdes import deserialize_value
from dagster_postgres.event_log.event_log import PostgresEventLogStorage

from etl.event_log import RangeRunEventLogStorage
from etl.instance import postgres_storage
from tests.conftest import make_integration
from tests.helpers import definitions, import_range, sql_rows

START = datetime(2026, 11, 16, tzinfo=UTC)
END = START + timedelta(hours=24)


def check_rows(pg_url: str, run_id: str) -> list[tuple[str, str | None, str, dg.EventLogEntry]]:
    """(check, partition, status, stored event) of each asset check row of the run."""
    rows = sql_rows(
        pg_url,
        "SELECT check_name, partition, execution_status, evaluation_event "
        "FROM asset_check_executions WHERE run_id = :run_id",
        run_id=run_id,
    )
    return [(c, p, s, deserialize_value(e, dg.EventLogEntry)) for c, p, s, e in rows]


def range_run(settings, home: Path, storage: dict) -> str:
    home.mkdir()
    integration = make_integration()
    with dg.instance_for_test(temp_dir=str(home), overrides=storage) as instance:
        result = import_range(
            definitions(settings, integration), instance, integration.id, START, END
        )
        assert result.success
        return result.run_id


def test_planned_check_rows_are_dagsters_own(settings, warehouse, pg_url, tmp_path):
    dagsters = range_run(
        settings, tmp_path / "a", {"storage": {"postgres": {"postgres_url": pg_url}}}
    )
    ours = range_run(settings, tmp_path / "b", postgres_storage(pg_url))

    expected, got = check_rows(pg_url, dagsters), check_rows(pg_url, ours)
    hours = {f"2026-11-16-{h:02d}:00" for h in range(24)}
    for check in ("rows_valid", "coverage"):
        planned = [p for c, p, s, _ in got if c == check and s == "PLANNED"]
        assert sorted(planned) == sorted(hours)  # one row per hour, each once
    assert Counter(r[:3] for r in got) == Counter(r[:3] for r in expected)
    for check, partition, status, event in got:
        if status == "PLANNED":
            planned = event.get_dagster_event().asset_check_planned_data
            assert planned.check_name == check
            assert partition in set(planned.partitions_subset.get_partition_keys())
            assert event.run_id == ours


def test_the_instance_uses_it(pg_instance):
    assert isinstance(pg_instance.event_log_storage, RangeRunEventLogStorage)


def test_dagster_still_calls_the_replaced_method_for_a_range_run(
    settings, warehouse, pg_url, tmp_path, monkeypatch
):
    """The storage changes one private method of Dagster's; if a release stopped calling it,
    the rows would still be right (Dagster's own), so this says it loudly instead."""
    calls = []
    replaced = RangeRunEventLogStorage._store_asset_check_evaluation_planned

    def spy(self, event, event_id):
        calls.append(event.get_dagster_event().asset_check_planned_data.check_name)
        return replaced(self, event, event_id)

    monkeypatch.setattr(RangeRunEventLogStorage, "_store_asset_check_evaluation_planned", spy)
    range_run(settings, tmp_path / "home", postgres_storage(pg_url))
    assert sorted(calls) == ["coverage", "rows_valid", "warehouse_files"]


def materialization_rows(pg_url: str, run_id: str) -> list[tuple[str, str, str, tuple]]:
    """(asset key, partition, type, metadata names) of the run's materialization rows, in
    the order of their ids."""
    rows = sql_rows(
        pg_url,
        "SELECT asset_key, partition, dagster_event_type, event FROM event_logs "
        "WHERE run_id = :run_id AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY id",
        run_id=run_id,
    )
    found = []
    for key, partition, kind, text in rows:
        event = deserialize_value(text, dg.EventLogEntry)
        materialization = event.get_dagster_event().step_materialization_data.materialization
        assert materialization.partition == partition  # the row's column is its event's
        assert event.run_id == run_id
        found.append((key, partition, kind, tuple(sorted(materialization.metadata))))
    return found


def materialization_ids(pg_url: str, run_id: str) -> list[int]:
    rows = sql_rows(
        pg_url,
        "SELECT id FROM event_logs "
        "WHERE run_id = :run_id AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run_id=run_id,
    )
    return [row[0] for row in rows]


def test_materialization_rows_are_dagsters_own(settings, warehouse, pg_url, tmp_path):
    """A range run's batch of hourly materializations, written with one cached statement:
    the same rows, in the same order (ids ascending with the hours), as Dagster's storage."""
    dagsters = range_run(
        settings, tmp_path / "a", {"storage": {"postgres": {"postgres_url": pg_url}}}
    )
    ours = range_run(settings, tmp_path / "b", postgres_storage(pg_url))
    expected, got = materialization_rows(pg_url, dagsters), materialization_rows(pg_url, ours)
    assert [row[1] for row in got] == [f"2026-11-16-{h:02d}:00" for h in range(24)]
    assert got == expected
    [(last,)] = sql_rows(
        pg_url,
        "SELECT last_materialization FROM asset_keys WHERE last_run_id = :run_id",
        run_id=ours,
    )
    latest = deserialize_value(last, dg.EventLogRecord)
    assert latest.storage_id == max(materialization_ids(pg_url, ours))  # the batch's last
    assert latest.event_log_entry.get_dagster_event().partition == "2026-11-16-23:00"


def test_a_range_runs_materializations_take_the_cached_statement(
    settings, warehouse, pg_url, tmp_path, monkeypatch
):
    """If Dagster stopped handing the hourly materializations over as one batch, the cheaper
    statement would be skipped silently: this says it."""
    batches: list[int] = []
    replaced = RangeRunEventLogStorage._event_to_row

    def spy(self, event):
        batches.append(1)
        return replaced(self, event)

    monkeypatch.setattr(RangeRunEventLogStorage, "_event_to_row", spy)
    original = PostgresEventLogStorage.store_event_batch

    def dagsters(self, events):
        kinds = {e.get_dagster_event().event_type_value for e in events}
        assert kinds != {"ASSET_MATERIALIZATION"}, "a materialization batch took Dagster's path"
        return original(self, events)

    monkeypatch.setattr(PostgresEventLogStorage, "store_event_batch", dagsters)
    range_run(settings, tmp_path / "home", postgres_storage(pg_url))
    assert len(batches) >= 24
