from datetime import UTC, datetime

import dagster as dg

from etl.assets.facts import source_key
from etl.partitions import HOUR
from etl.resources.sources.base import Extract
from etl.resources.sources.simulator.simulator import SimulatorSource
from etl.schedules.ticks import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    cron_of,
    stopped_in_window,
    tick_request,
    tick_requests,
)
from tests.conftest import make_integration
from tests.helpers import definitions, evaluate_schedule, fixed_clock, run_request


def test_tick_at_1020_requests_current_hour_plus_revision_window(settings, instance):
    integration = make_integration(revision_window_hours=2)
    defs = definitions(settings, integration)
    clock = datetime(2026, 11, 18, 10, 20, tzinfo=UTC)
    [request] = evaluate_schedule(defs, instance, integration, clock).run_requests
    assert request.tags[RANGE_START_TAG] == "2026-11-18-08:00"
    assert request.tags[RANGE_END_TAG] == "2026-11-18-10:00"
    assert request.run_key == "sim15:tick:2026-11-18T10:20"
    assert defs.resolve_schedule_def("sim15_schedule").job_name == "sim15_import"


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


class OneBadHour(SimulatorSource):
    """The simulator, with every row of 09:00 UTC on 2026-11-18 breaking a rule."""

    def contacts(self, start, end) -> Extract:
        extract = super().contacts(start, end)
        frame = extract.frame.copy()
        bad = (frame["interval_start"] >= BAD_HOUR) & (frame["interval_start"] < BAD_HOUR + HOUR)
        frame.loc[bad, "answered"] = frame.loc[bad, "offered"] + 1
        return Extract(frame, description="one bad hour")


BAD_HOUR = datetime(2026, 11, 18, 9, tzinfo=UTC)


def tick(defs, instance, integration, when: datetime) -> list[dg.RunRequest] | str:
    """The schedule's requests at `when` (or its skip reason), each run executed."""
    result = evaluate_schedule(defs, instance, integration, when)
    if result.skip_message:
        return result.skip_message
    with fixed_clock(when):
        for request in result.run_requests:
            run_request(defs, instance, "sim15_import", request)
    return list(result.run_requests)


def test_tick_leaves_out_an_hour_that_failed_three_times_the_same_way(settings, instance):
    integration = make_integration(history_start="2026-11-18", revision_window_hours=2)
    source = OneBadHour.from_integration(integration)
    defs = definitions(settings, integration, **{source_key(integration): source})
    key = dg.AssetKey([integration.id, "contacts"])
    for minute in (5, 20, 35):  # 10:05, 10:20, 10:35: 08:00..11:00, 09:00 fails each time
        when = datetime(2026, 11, 18, 10, minute, tzinfo=UTC)
        [request] = tick(defs, instance, integration, when)
        assert request.tags[RANGE_START_TAG] == "2026-11-18-08:00"
    # The fourth tick imports 08:00 and 10:00 (two runs), not 09:00.
    requests = tick(defs, instance, integration, datetime(2026, 11, 18, 10, 50, tzinfo=UTC))
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests] == [
        ("2026-11-18-08:00", "2026-11-18-08:00"),
        ("2026-11-18-10:00", "2026-11-18-10:00"),
    ]
    assert [r.run_key for r in requests] == [
        "sim15:tick:2026-11-18T10:50:0",
        "sim15:tick:2026-11-18T10:50:1",
    ]
    assert len(instance.fetch_materializations(key, limit=100).records) == 3 * 2 + 2
    [stop] = stopped_in_window(defs.resources["warehouse"], integration, BAD_HOUR)["sim15/contacts"]
    assert str(stop).startswith(
        "2026-11-18 09:00..2026-11-18 10:00 UTC: failed 3 times: rejected share above 5%: "
        "12 of 12 rows rejected"
    )


def test_tick_of_stopped_hours_only_requests_nothing():
    integration = make_integration(history_start="2026-11-18", data=["contacts", "agent_status"])
    when = datetime(2026, 11, 18, 10, 20, tzinfo=UTC)
    window = (datetime(2026, 11, 18, 8, tzinfo=UTC), datetime(2026, 11, 18, 11, tzinfo=UTC))
    both = {"sim15/contacts": [window], "sim15/agent_status": [window]}
    assert tick_requests(integration, when, both) == []
    # stopped for one data kind only: the other kind's hours are still imported
    [request] = tick_requests(integration, when, {"sim15/contacts": [window]})
    assert request.asset_selection == [dg.AssetKey(["sim15", "agent_status"])]
