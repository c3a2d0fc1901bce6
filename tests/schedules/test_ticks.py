from datetime import UTC, datetime

import dagster as dg

from etl.schedules.ticks import RANGE_END_TAG, RANGE_START_TAG, cron_of, tick_request
from tests.conftest import make_integration
from tests.helpers import definitions


def test_tick_at_1020_requests_current_hour_plus_revision_window(settings, instance):
    integration = make_integration(revision_window_hours=2)
    defs = definitions(settings, integration)
    schedule = defs.resolve_schedule_def("sim15_schedule")
    clock = datetime(2026, 11, 18, 10, 20, tzinfo=UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=clock)
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags[RANGE_START_TAG] == "2026-11-18-08:00"
    assert request.tags[RANGE_END_TAG] == "2026-11-18-10:00"
    assert request.run_key == "sim15:tick:2026-11-18T10:20"
    assert schedule.job_name == "sim15_import"


def test_range_clipped_at_history_start():
    integration = make_integration(history_start="2026-11-18T09:00:00Z", revision_window_hours=6)
    request = tick_request(integration, datetime(2026, 11, 18, 10, 5, tzinfo=UTC))
    assert request.tags[RANGE_START_TAG] == "2026-11-18-09:00"


def test_cron_follows_interval_settle_and_local_grid():
    assert cron_of(make_integration(interval_minutes=15, settle_minutes=5)) == "5,20,35,50 * * * *"
    assert cron_of(make_integration(interval_minutes=30, timezone="America/New_York")) == (
        "5,35 * * * *"
    )
    kolkata = make_integration(interval_minutes=60, timezone="Asia/Kolkata", settle_minutes=5)
    assert cron_of(kolkata) == "35 * * * *"


def test_paused_integration_schedule_starts_stopped(settings):
    defs = definitions(
        settings, make_integration(id="on"), make_integration(id="off", status="paused")
    )
    on, off = defs.resolve_schedule_def("on_schedule"), defs.resolve_schedule_def("off_schedule")
    assert on.default_status == dg.DefaultScheduleStatus.RUNNING
    assert off.default_status == dg.DefaultScheduleStatus.STOPPED
