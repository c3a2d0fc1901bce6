"""The gap sensor on a real Dagster instance with fixed clocks: pause and resume, failed runs,
hours imported before they ended, history import, and the flood guards."""

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus
from dagster._daemon.sensor import execute_sensor_iteration

from etl.assets.coverage import coverage_of
from etl.partitions import HOUR, key_of
from etl.resources.sources import build_source
from etl.resources.sources.base import SourceError
from etl.resources.sources.simulator.simulator import SimulatorSource
from etl.resources.warehouse import Warehouse
from etl.schedules.gaps import (
    GAPS_TRIGGER,
    HISTORY_TRIGGER,
    RETRY_AFTER,
    AssetState,
    GapState,
    plan_gaps,
)
from etl.schedules.ticks import schedule_name
from tests.conftest import make_integration
from tests.helpers import (
    GapSensorDriver,
    configure_env,
    daemon_workspace,
    definitions,
    fixed_clock,
    import_range,
    queue_run,
    queued_instance,
    scheduled_tick,
    start_schedule,
    stop_schedule,
    windows_of,
)


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def imports_per_hour(instance: dg.DagsterInstance, key: dg.AssetKey) -> Counter:
    """How many times each partition was materialized, from the instance's event log."""
    counts: Counter = Counter()
    cursor = None
    while True:
        result = instance.fetch_materializations(key, limit=1000, cursor=cursor, ascending=True)
        counts.update(r.partition_key for r in result.records)
        if not result.has_more:
            return counts
        cursor = result.cursor


def missing_intervals(warehouse, integration_id: str) -> int:
    return int(
        warehouse.query(
            "SELECT coalesce(sum(missing_intervals), 0) AS n FROM coverage "
            "WHERE integration_id = ?",
            [integration_id],
        )["n"][0]
    )


class DownSource(SimulatorSource):
    """The simulator with its ACD unreachable."""

    def contacts(self, start, end):
        raise SourceError(f"integration {self.integration_id!r}: ACD unreachable (simulated)")


def down(integration) -> DownSource:
    ok = build_source(integration)
    return DownSource(
        integration_id=ok.integration_id,
        timezone=ok.timezone,
        interval_minutes=ok.interval_minutes,
        settings=ok.settings,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def any_instance(request) -> dg.DagsterInstance:
    """The scenario tests run on the SQLite and on the PostgreSQL-backed instance."""
    return request.getfixturevalue("instance" if request.param == "sqlite" else "pg_instance")


def test_pause_at_1020_resume_three_days_later(settings, warehouse, any_instance):
    instance = any_instance
    integration = make_integration(history_start="2026-10-29")
    key = dg.AssetKey([integration.id, "contacts"])
    defs = definitions(settings, integration)
    sensor = GapSensorDriver(defs, instance, integration)

    # Connected on Oct 30 at 10:05: the sensor imports the history, the schedule the present.
    first = sensor.tick(at(30, 10, 5, month=10))
    assert windows_of(first.run_requests) == [(at(29, 0, month=10), at(30, 8, month=10))]
    assert first.run_requests[0].tags["wfm/trigger"] == HISTORY_TRIGGER
    assert all(r.success for r in sensor.run(first.run_requests, at(30, 10, 5, month=10)))
    assert scheduled_tick(defs, instance, integration, at(30, 10, 5, month=10)).success
    assert scheduled_tick(defs, instance, integration, at(30, 10, 20, month=10)).success

    # Paused at 10:20 (schedule stopped in the UI): nothing runs, the sensor does nothing.
    stop_schedule(defs, instance, schedule_name(integration))
    for when in (at(30, 12, 0, month=10), at(1, 9, 0)):
        paused = sensor.tick(when)
        assert not paused.run_requests
        assert "paused" in paused.skip_reason.skip_message

    # Resumed three days later at 09:05: the tick imports its window, the sensor the rest.
    start_schedule(defs, instance, schedule_name(integration))
    resume = at(2, 9, 5)
    assert scheduled_tick(defs, instance, integration, resume).success  # 07:00..10:00
    result = sensor.tick(resume)
    # exactly the missing hours (10:00 on Oct 30 was imported at 10:20: incomplete), up to
    # the tick's revision window, one range run per month, newest first
    assert windows_of(result.run_requests) == [
        (at(1, 0), at(2, 7)),
        (at(30, 10, month=10), at(1, 0)),
    ]
    assert {r.tags["wfm/trigger"] for r in result.run_requests} == {GAPS_TRIGGER}
    assert [r.tags["wfm/hours"] for r in result.run_requests] == ["31", "38"]
    assert all(r.success for r in sensor.run(result.run_requests, at(2, 9, 6)))

    # Nothing left: the next tick requests nothing, coverage shows no missing interval.
    after = sensor.tick(at(2, 9, 20))
    assert not after.run_requests
    assert "no gaps" in after.skip_reason.skip_message
    assert missing_intervals(warehouse, integration.id) == 0
    assert coverage_of(warehouse, integration, "contacts").gaps == []

    # Every paused hour imported exactly once; 10:00 on Oct 30 by two ticks and the sensor.
    counts = imports_per_hour(instance, key)
    paused_hours = [key_of(at(30, 11, month=10) + n * HOUR) for n in range(68)]
    assert key_of(at(2, 6)) == paused_hours[-1]
    assert {counts[h] for h in paused_hours} == {1}
    assert counts[key_of(at(30, 10, month=10))] == 3
    assert counts[key_of(at(2, 7))] == 1  # the resumed tick's window, not the sensor's
    # and no duplicate rows: one row per queue and interval
    rows = warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT (external_queue_id, interval_start)) AS keys "
        "FROM contact_intervals WHERE integration_id = ?",
        [integration.id],
    )
    assert rows["n"][0] == rows["keys"][0] == 3 * 4 * int((at(2, 10) - at(29, 0, month=10)) / HOUR)


def test_failed_run_leaves_hours_to_the_sensor(settings, warehouse, any_instance):
    instance = any_instance
    integration = make_integration(history_start="2026-11-01")
    healthy = definitions(settings, integration)
    broken = definitions(settings, integration, **{f"source_{integration.id}": down(integration)})
    with fixed_clock(at(2, 7, 5)):
        assert import_range(healthy, instance, integration.id, at(1, 0), at(2, 6)).success

    # The ACD goes down: the 10:05 tick fails, and so does the sensor's first try.
    failed_tick = scheduled_tick(broken, instance, integration, at(2, 10, 5))
    assert not failed_tick.success
    sensor = GapSensorDriver(broken, instance, integration)
    first = sensor.tick(at(2, 12, 5))
    assert windows_of(first.run_requests) == [(at(2, 6), at(2, 10))]
    assert not any(r.success for r in sensor.run(first.run_requests, at(2, 12, 5)))

    # Failed, not forgotten: no retry storm, a retry after RETRY_AFTER.
    soon = sensor.tick(at(2, 12, 15))
    assert not soon.run_requests
    assert "4 hours to import" in soon.skip_reason.skip_message

    recovered = GapSensorDriver(healthy, instance, integration)
    recovered.cursor = sensor.cursor
    later = at(2, 12, 5) + RETRY_AFTER + timedelta(minutes=1)
    retry = recovered.tick(later)
    assert windows_of(retry.run_requests) == [(at(2, 6), at(2, 10))]
    assert all(r.success for r in recovered.run(retry.run_requests, later))
    assert scheduled_tick(healthy, instance, integration, at(2, 12, 50)).success

    assert missing_intervals(warehouse, integration.id) == 0
    hours = warehouse.query(
        "SELECT count(DISTINCT date_trunc('hour', interval_start)) AS n FROM contact_intervals"
    )["n"][0]
    assert hours == int((at(2, 13) - at(1, 0)) / HOUR)


def test_hour_imported_before_it_ended_is_reimported_after(settings, warehouse, instance):
    integration = make_integration(history_start="2026-11-18")
    key = dg.AssetKey([integration.id, "contacts"])
    defs = definitions(settings, integration)
    with fixed_clock(at(18, 8, 5)):
        assert import_range(defs, instance, integration.id, at(18, 0), at(18, 8)).success
    assert scheduled_tick(defs, instance, integration, at(18, 10, 20)).success  # 08:00..11:00

    latest = instance.get_latest_materialization_event(key)
    assert latest.asset_materialization.partition == key_of(at(18, 10))
    metadata = latest.asset_materialization.metadata
    assert metadata["complete"].value is False
    assert metadata["open_partitions"].value == [key_of(at(18, 10))]
    log = warehouse.query(
        "SELECT partition_start, complete FROM imports ORDER BY partition_start DESC LIMIT 2"
    )
    assert log["complete"].tolist() == [False, True]

    # The schedule missed the 11:xx and 12:xx ticks (daemon down); at 13:05 it imports
    # 11:00..14:00, so 10:00 stays incomplete and has aged into the sensor's hours.
    assert scheduled_tick(defs, instance, integration, at(18, 13, 5)).success
    sensor = GapSensorDriver(defs, instance, integration)
    result = sensor.tick(at(18, 13, 6))
    assert windows_of(result.run_requests) == [(at(18, 10), at(18, 11))]
    assert all(r.success for r in sensor.run(result.run_requests, at(18, 13, 6)))

    refreshed = instance.get_latest_materialization_event(key).asset_materialization
    assert refreshed.partition == key_of(at(18, 10))
    assert refreshed.metadata["complete"].value is True
    assert not sensor.tick(at(18, 13, 20)).run_requests
    assert coverage_of(warehouse, integration, "contacts").gaps == []


def test_history_of_a_new_on_premise_integration(settings, instance):
    now = at(18, 10, 20)
    integration = make_integration(
        id="onprem", delivery="on_premise", history_start="2025-11-18", max_runs_in_flight=20
    )
    defs = definitions(settings, integration)
    result = GapSensorDriver(defs, instance, integration).tick(now)
    windows = windows_of(result.run_requests)

    # exactly one year of hours up to the schedule's window, nothing twice, nothing left out
    schedule_window_start = at(18, 8)
    assert windows[-1][0] == integration.history_start
    assert windows[0][1] == schedule_window_start
    assert all(newer[0] == older[1] for newer, older in pairwise(windows))
    hours = sum(int((end - start) / HOUR) for start, end in windows)
    year = int((now.replace(year=2025) - integration.history_start) / HOUR)
    assert hours == 365 * 24 + 8 == int((schedule_window_start - integration.history_start) / HOUR)
    assert year <= hours
    # range runs: one per UTC month (the warehouse's file grain), newest first
    assert len(windows) == 13
    assert all(start.month == (end - HOUR).month for start, end in windows)
    assert [w[1] for w in windows] == sorted((w[1] for w in windows), reverse=True)
    assert all(int((e - s) / HOUR) <= integration.max_partitions_per_run for s, e in windows)
    assert {r.tags["wfm/trigger"] for r in result.run_requests} == {HISTORY_TRIGGER}
    # progress, visible on the asset page
    (observation,) = result.asset_events
    assert observation.metadata["hours_expected"].value == hours
    assert observation.metadata["hours_loaded"].value == 0


def test_runs_in_flight_are_bounded_and_never_requested_twice(settings, instance):
    now = at(18, 10, 20)
    integration = make_integration(
        id="onprem", delivery="on_premise", history_start="2025-11-18", max_runs_in_flight=2
    )
    defs = definitions(settings, integration)
    sensor = GapSensorDriver(defs, instance, integration)
    first = sensor.tick(now)
    november, october = (at(1, 0), at(18, 8)), (at(1, 0, month=10), at(1, 0))
    assert windows_of(first.run_requests) == [november, october]

    # The daemon queued both runs; a sensor without cursor sees them in the run records.
    runs = {
        window: queue_run(defs, instance, "onprem_import", r.tags)
        for window, r in zip(windows_of(first.run_requests), first.run_requests, strict=True)
    }
    blocked = GapSensorDriver(defs, instance, integration).tick(now)
    assert not blocked.run_requests
    assert "2 runs in flight (max 2)" in blocked.skip_reason.skip_message

    # The November run is canceled: one slot frees, the October run is still in flight.
    instance.report_run_canceled(runs[november])
    later = now + timedelta(minutes=1)
    # without memory, the canceled window is the newest hours to import
    assert windows_of(GapSensorDriver(defs, instance, integration).tick(later).run_requests) == [
        november
    ]
    # the sensor itself remembers asking for November a minute ago: next newest, September
    assert windows_of(sensor.tick(later).run_requests) == [(at(1, 0, month=9), at(1, 0, month=10))]


def test_paused_in_config_does_nothing(settings, instance):
    integration = make_integration(status="paused")
    defs = definitions(settings, integration)
    result = GapSensorDriver(defs, instance, integration).tick(at(18, 10, 20))
    assert not result.run_requests
    assert "paused" in result.skip_reason.skip_message
    assert scheduled_tick(defs, instance, integration, at(18, 10, 20)) is None
    assert warehouse_empty(settings)


def warehouse_empty(settings) -> bool:
    manifests = Warehouse(root=str(settings.warehouse_dir)).manifests()
    return not any(m.owners("contact_intervals") for m in manifests.values())


# -- the pure core, without an instance ---------------------------------------------------------
def test_plan_imports_only_the_assets_that_need_an_hour():
    """With two data kinds, an hour missing for one only is imported for that one only."""
    integration = make_integration(history_start="2026-11-01", data=["contacts"])
    now = at(3, 10, 5)
    state = GapState(
        assets={
            "sim15/contacts": AssetState(loaded=[(at(1, 0), at(3, 8))]),
            "sim15/agent_status": AssetState(loaded=[(at(2, 0), at(3, 8))]),
        }
    )
    plan = plan_gaps(integration, now, state)
    assert [(r.window, r.assets, r.trigger) for r in plan.requests] == [
        ((at(1, 0), at(2, 0)), ("sim15/agent_status",), HISTORY_TRIGGER)
    ]


def test_plan_ignores_open_hours_until_the_event_cursor_caught_up():
    integration = make_integration(history_start="2026-11-01")
    loaded = AssetState(loaded=[(at(1, 0), at(3, 8))], open=[(at(2, 10), at(2, 11))])
    caught_up = plan_gaps(integration, at(3, 10, 5), GapState({"sim15/contacts": loaded}))
    assert [r.window for r in caught_up.requests] == [(at(2, 10), at(2, 11))]
    behind = GapState({"sim15/contacts": loaded}, open_known=False)
    assert plan_gaps(integration, at(3, 10, 5), behind).requests == []


# -- the sensor as the daemon runs it -----------------------------------------------------------
DAEMON_CONFIG = {
    "id": "daemon15",
    "vendor": "simulator",
    "delivery": "cloud",
    "interval_minutes": 15,
    "timezone": "Europe/Berlin",
    "history_start": "2026-11-20",
    "source": {"seed": 3, "queues": 2},
}


def sensor_iteration(workspace) -> None:
    list(execute_sensor_iteration(workspace, logging.getLogger("test"), None, None))


def test_daemon_runs_the_sensor_and_honours_the_ui_toggle(settings, monkeypatch, tmp_path):
    """The sensor daemon evaluates the gap sensor from the code location: it queues the
    history run; once the schedule is stopped in the UI, the next tick only skips."""
    configure_env(settings, monkeypatch, DAEMON_CONFIG)
    with queued_instance(tmp_path / "home") as instance, daemon_workspace(instance) as workspace:
        with fixed_clock(at(21, 10, 20)):
            sensor_iteration(workspace)
        history = instance.get_runs(filters=dg.RunsFilter(tags={"wfm/integration": "daemon15"}))
        assert windows_of(history) == [(at(20, 0), at(21, 8))]
        assert history[0].status == dg.DagsterRunStatus.QUEUED
        assert history[0].tags["wfm/trigger"] == HISTORY_TRIGGER

        repository = next(
            iter(
                workspace.create_request_context()
                .get_code_location("wfm_etl")
                .get_repositories()
                .values()
            )
        )
        schedule = repository.get_schedule(schedule_name(make_integration(**DAEMON_CONFIG)))
        instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
        instance.report_run_canceled(history[0])  # nothing in flight any more
        with fixed_clock(at(21, 10, 30)):
            sensor_iteration(workspace)
        sensor = repository.get_sensor("daemon15_gap_sensor")
        ticks = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        assert ticks[0].status == TickStatus.SKIPPED
        assert "paused" in ticks[0].skip_reason
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"wfm/integration": "daemon15"}))
        assert len(runs) == 1
