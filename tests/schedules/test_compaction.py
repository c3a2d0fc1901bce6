"""The nightly compaction: its schedule, and its job on a real warehouse and catalog."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from etl.schedules.compaction import COMPACTION_JOB, compaction_schedule
from tests.helpers import definitions, fixed_clock, holding_open
from tests.resources.test_warehouse import NOVEMBER, slots, write_hours

NIGHT = datetime(2026, 12, 2, 3, 30, tzinfo=UTC)


def test_the_schedule_requests_a_compaction_run_every_night(settings, instance):
    schedule = compaction_schedule
    assert schedule.name in [s.name for s in definitions(settings).schedules]
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT)
    (request,) = schedule.evaluate_tick(context).run_requests
    assert schedule.job_name == COMPACTION_JOB
    assert request.run_config == {}


def test_the_job_merges_ended_months_while_a_connection_is_open(settings, warehouse, instance):
    for day in (3, 4):
        write_hours(warehouse, NOVEMBER + timedelta(days=day))
    write_hours(warehouse, datetime(2026, 12, 1, 5, tzinfo=UTC))
    job = definitions(settings, warehouse=warehouse).get_job_def(COMPACTION_JOB)
    reader = holding_open(warehouse.catalog_path)  # an analyst's session left open overnight
    try:
        with fixed_clock(NIGHT):
            result = job.execute_in_process(instance=instance)
        assert result.success
        assert result.output_for_node("compact_months") == 1  # November; December has not ended
        assert slots(warehouse) == ["2026-11", "2026-12-01"]
    finally:
        reader.communicate("")
    assert warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0] == 3 * 2 * 8
