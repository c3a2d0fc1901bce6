"""Hours of a range run that fail alone: the others load, Dagster's partition status shows
exactly the failed ones (the UI's bar, the gap sensor), with and without range-level planned
events, on the SQLite and the PostgreSQL instance.

These tests also guard `etl.assets.failed_hours.mark_partitions_failed`, the one use of a
private Dagster API: if an upgrade changes how planned events or the partition status cache
work, the failed hours stop showing as failed and these tests fail.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from etl.assets.coverage import coverage_of, coverage_result
from etl.assets.facts import HOURLY_METADATA, source_key
from etl.partitions import HOUR, hourly_partitions, key_of
from etl.resources.sources.base import Extract, SourceError, WindowFailure
from etl.resources.sources.simulator.simulator import SimulatorSource
from etl.run_outcome import outcome
from etl.schedules.gaps import RETRY_AFTER
from tests.conftest import make_integration
from tests.helpers import (
    GapSensorDriver,
    definitions,
    fixed_clock,
    import_range,
    scheduled_tick,
    windows_of,
)

SUBSET_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
DAY = datetime(2026, 11, 17, tzinfo=UTC)
BAD = DAY + 5 * HOUR  # every row breaks a rule: above the rejected share
TORN = DAY + 9 * HOUR  # its file changed while it was read: the source says so
NOW = DAY + timedelta(days=1, hours=2, minutes=20)  # the sensor owns the hours before 00:00


class TwoBadHours(SimulatorSource):
    """The simulator, with one hour of rows that all break a rule and one hour the source
    could not deliver completely (its rows are there, but must not be written)."""

    def contacts(self, start: datetime, end: datetime) -> Extract:
        extract = super().contacts(start, end)
        frame = extract.frame.copy()
        times = frame["interval_start"]
        bad = (times >= BAD) & (times < BAD + HOUR)
        frame.loc[bad, "answered"] = frame.loc[bad, "offered"] + 1
        failed = []
        if start < TORN + HOUR and end > TORN:
            reason = "intervals_2026-11-17.csv changed while it was read"
            failed.append(WindowFailure(TORN, TORN + HOUR, reason))
        return Extract(frame, description="two bad hours", failed=failed)


class Unreachable(SimulatorSource):
    def contacts(self, start: datetime, end: datetime) -> Extract:
        raise SourceError(f"integration {self.integration_id!r}: ACD unreachable (simulated)")


def with_source(settings, integration, cls) -> dg.Definitions:
    source = cls.from_integration(integration)
    return definitions(settings, integration, **{source_key(integration): source})


@pytest.fixture(params=["sqlite", "postgres"])
def any_instance(request) -> dg.DagsterInstance:
    return request.getfixturevalue("instance" if request.param == "sqlite" else "pg_instance")


@pytest.fixture(params=["range planned events", "planned events per hour"])
def planned_events(request, monkeypatch) -> str:
    """The project's setting (one planned event per range run) and Dagster's default."""
    if request.param == "range planned events":
        monkeypatch.setenv(SUBSET_ENV, "1")
    else:
        monkeypatch.delenv(SUBSET_ENV, raising=False)
    return request.param


def partition_status(instance, integration) -> tuple[set[str], set[str]]:
    """(materialized, failed) partition keys, as the UI's partition bar reads them."""
    partitions = hourly_partitions(integration)
    key = dg.AssetKey([integration.id, "contacts"])
    status = get_and_update_asset_status_cache_value(instance, key, partitions)
    return (
        set(status.deserialize_materialized_partition_subsets(partitions).get_partition_keys()),
        set(status.deserialize_failed_partition_subsets(partitions).get_partition_keys()),
    )


def hours_stored(warehouse) -> dict[datetime, int]:
    rows = warehouse.query(
        "SELECT date_trunc('hour', interval_start) AS hour, count(*) AS n "
        "FROM contact_intervals GROUP BY ALL ORDER BY hour"
    )
    return {pd.Timestamp(h).to_pydatetime(): int(n) for h, n in rows.itertuples(index=False)}


def test_range_run_loads_every_hour_but_the_two_bad_ones(
    settings, warehouse, any_instance, planned_events
):
    instance = any_instance
    integration = make_integration(history_start=DAY.isoformat())
    defs = with_source(settings, integration, TwoBadHours)
    with fixed_clock(NOW):
        result = import_range(defs, instance, integration.id, DAY, DAY + timedelta(days=1))
    assert not result.success

    # The partition status: exactly the two hours failed, every other hour materialized.
    materialized, failed = partition_status(instance, integration)
    others = {key_of(DAY + i * HOUR) for i in range(24)} - {key_of(BAD), key_of(TORN)}
    assert failed == {key_of(BAD), key_of(TORN)}
    assert materialized == others

    # The loaded hours' events: the last one carries the window's metadata, the others
    # the few fields read per hour, with the same values; the run's counts read them.
    *hours, last = [e.materialization for e in result.get_asset_materialization_events()]
    assert {e.partition for e in [*hours, last]} == others
    assert last.partition == key_of(DAY + 23 * HOUR)
    assert last.metadata["rows_written"].value == 22 * 12
    assert last.metadata["failed_partitions"].value == 2
    for hour in hours:
        assert set(hour.metadata) == set(HOURLY_METADATA)
        assert all(hour.metadata[name] == last.metadata[name] for name in HOURLY_METADATA)
    assert outcome(result).loaded == 22 * 12

    # The warehouse: every other hour's rows (3 queues x 4 intervals), none of the two.
    stored = hours_stored(warehouse)
    assert set(stored) == {DAY + i * HOUR for i in range(24)} - {BAD, TORN}
    assert set(stored.values()) == {12}

    # One reason per failed hour: in the run's failure, its log and the import log.
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    bad_reason = "rejected share above 5%: 12 of 12 rows rejected"
    torn_reason = (
        "the source could not deliver it completely: "
        "intervals_2026-11-17.csv changed while it was read"
    )
    assert f"2026-11-17 05:00 UTC: {bad_reason}" in message
    assert f"2026-11-17 09:00 UTC: {torn_reason}" in message
    assert "2 of 24 hours failed" in message
    assert "The other 22 hours loaded" in message
    errors = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level >= 40 and "failed, not written" in entry.user_message
    ]
    assert len(errors) == 2
    assert any(bad_reason in e and "05:00 UTC" in e for e in errors)
    assert any(torn_reason in e and "09:00 UTC" in e for e in errors)
    log = warehouse.query(
        "SELECT partition_start, imported_at, failure, failures FROM imports "
        "WHERE failure IS NOT NULL ORDER BY partition_start"
    )
    assert [pd.Timestamp(t).to_pydatetime() for t in log["partition_start"]] == [BAD, TORN]
    assert log["imported_at"].isna().all()  # never loaded
    assert log["failure"][0].startswith(bad_reason)
    assert log["failure"][1] == torn_reason
    assert log["failures"].tolist() == [1, 1]

    # The gap sensor's next plan requests exactly the two hours, newest first.
    plan = GapSensorDriver(defs, instance, integration).tick(NOW)
    assert windows_of(plan.run_requests) == [(TORN, TORN + HOUR), (BAD, BAD + HOUR)]


def test_failed_hours_keep_what_they_held(settings, warehouse, instance, planned_events):
    """A re-import whose two hours fail leaves those hours' rows as the last good import
    wrote them, and replaces the others."""
    integration = make_integration(history_start=DAY.isoformat())
    healthy = definitions(settings, integration)
    with fixed_clock(NOW):
        assert import_range(healthy, instance, integration.id, DAY, DAY + 12 * HOUR).success
    before = warehouse.query(
        "SELECT * FROM contact_intervals WHERE interval_start >= ? AND interval_start < ? "
        "ORDER BY ALL",
        [BAD, BAD + HOUR],
    )
    broken = with_source(settings, integration, TwoBadHours)
    with fixed_clock(NOW + timedelta(hours=1)):
        assert not import_range(broken, instance, integration.id, DAY, DAY + 12 * HOUR).success
    after = warehouse.query(
        "SELECT * FROM contact_intervals WHERE interval_start >= ? AND interval_start < ? "
        "ORDER BY ALL",
        [BAD, BAD + HOUR],
    )
    pd.testing.assert_frame_equal(before, after)
    assert set(hours_stored(warehouse).values()) == {12}
    assert len(hours_stored(warehouse)) == 12
    _, failed = partition_status(instance, integration)
    assert failed == {key_of(BAD), key_of(TORN)}
    # The hours keep their last good import in the log, and the failure beside it.
    log = warehouse.query(
        "SELECT imported_at, rows_written, failures FROM imports WHERE partition_start = ?", [BAD]
    )
    assert log["rows_written"].tolist() == [12]
    assert log["failures"].tolist() == [1]
    assert pd.Timestamp(log["imported_at"][0]).to_pydatetime() == NOW
    # The coverage check counts them as loaded (their rows are there), not as missing: its
    # only gap is the hours never imported, after noon.
    gaps = coverage_of(warehouse, integration, "contacts").gaps
    assert [g.start for g in gaps] == [DAY + 12 * HOUR]


def test_a_source_that_fails_fails_every_hour_of_the_range(
    settings, warehouse, any_instance, planned_events
):
    instance = any_instance
    integration = make_integration(history_start=DAY.isoformat())
    defs = with_source(settings, integration, Unreachable)
    with fixed_clock(NOW):
        assert not import_range(defs, instance, integration.id, DAY, DAY + 6 * HOUR).success
    materialized, failed = partition_status(instance, integration)
    assert materialized == set()
    assert failed == {key_of(DAY + i * HOUR) for i in range(6)}
    log = warehouse.query("SELECT DISTINCT failure, failures FROM imports")
    assert log.values.tolist() == [["integration 'sim15': ACD unreachable (simulated)", 1]]


def test_retries_stop_after_three_identical_failures(settings, warehouse, instance):
    integration = make_integration(history_start=DAY.isoformat())
    defs = with_source(settings, integration, TwoBadHours)
    with fixed_clock(NOW):
        assert not import_range(
            defs, instance, integration.id, DAY, DAY + timedelta(days=1)
        ).success
    sensor = GapSensorDriver(defs, instance, integration)

    def step(when: datetime) -> dg.SensorResult:
        """Time goes on: the schedule imports its window (the bad hours are older), then
        the gap sensor ticks."""
        assert scheduled_tick(defs, instance, integration, when).success
        return sensor.tick(when)

    when = NOW
    for attempt in (2, 3):
        when += RETRY_AFTER + timedelta(minutes=1)
        result = step(when)
        assert windows_of(result.run_requests) == [(TORN, TORN + HOUR), (BAD, BAD + HOUR)]
        assert not any(r.success for r in sensor.run(result.run_requests, when))
        failures = warehouse.query("SELECT DISTINCT failures FROM imports WHERE failures > 0")
        assert failures["failures"].tolist() == [attempt]

    # Three times the same way: no more requests, and the status says which hours and why.
    for _ in range(3):
        when += RETRY_AFTER + timedelta(minutes=1)
        stopped = step(when)
        assert not stopped.run_requests
        message = stopped.skip_reason.skip_message
        assert "2 hours no longer retried, each failed 3 times the same way" in message
        assert "2026-11-17 05:00..2026-11-17 06:00 UTC: failed 3 times: rejected share" in message
        assert "changed while it was read" in message
    # The import log has them (the query docs/operations.md gives), the check names them too.
    stuck = warehouse.query("SELECT * FROM imports WHERE failures >= 3")
    assert sorted(pd.to_datetime(stuck["partition_start"], utc=True)) == [BAD, TORN]
    cov = coverage_of(warehouse, integration, "contacts")
    assert [s.window for s in cov.stopped] == [(BAD, BAD + HOUR), (TORN, TORN + HOUR)]
    check = coverage_result(integration, "contacts", cov)
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert "2 hours no longer retried after failing 3 times the same way" in check.description

    # A changed configuration retries them (each count starts again).
    changed = integration.model_copy(update={"max_rejected_share": 0.1})
    resumed = GapSensorDriver(with_source(settings, changed, TwoBadHours), instance, changed)
    resumed.cursor = sensor.cursor
    retry = resumed.tick(when + timedelta(minutes=1))
    assert windows_of(retry.run_requests) == [(TORN, TORN + HOUR), (BAD, BAD + HOUR)]

    # A successful import of an hour (here by hand, the source fixed) clears its count.
    fixed = definitions(settings, integration)
    with fixed_clock(when + timedelta(minutes=2)):
        assert import_range(fixed, instance, integration.id, BAD, BAD + HOUR).success
    log = warehouse.query("SELECT failure, failures FROM imports WHERE partition_start = ?", [BAD])
    assert log.values.tolist() == [[None, 0]]
    _, failed = partition_status(instance, integration)
    assert failed == {key_of(TORN)}
