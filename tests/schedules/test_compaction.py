"""The nightly compaction: its schedule, and its job on a real warehouse and catalog."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from etl.schedules.compaction import COMPACTION_JOB, compaction_schedule
from tests.helpers import definitions, fixed_clock, holding_open
from tests.resources.test_warehouse import NOVEMBER, files, write_hours

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


def test_the_job_merges_ended_months_and_fails_while_the_catalog_is_open(
    settings, warehouse, instance
):
    for day in (3, 4):
        write_hours(warehouse, NOVEMBER + timedelta(days=day))
    write_hours(warehouse, datetime(2026, 12, 1, 5, tzinfo=UTC))
    warehouse.ensure_catalog()
    job = definitions(settings, warehouse=warehouse).get_job_def(COMPACTION_JOB)
    reader = holding_open(warehouse.catalog_path)
    try:
        with fixed_clock(NIGHT):
            result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        message = failure.step_failure_data.error.message
        assert f"another process has the catalog open ({warehouse.catalog_path})" in message
        assert files(warehouse)[:2] == [
            "sim15/2026-11/2026-11-04.parquet",
            "sim15/2026-11/2026-11-05.parquet",
        ]
    finally:
        reader.communicate("")
    with fixed_clock(NIGHT):
        result = job.execute_in_process(instance=instance)
    assert result.success
    assert result.output_for_node("compact_months") == 1  # November; December has not ended
    assert files(warehouse) == ["sim15/2026-11/2026-11.parquet", "sim15/2026-12/2026-12-01.parquet"]
    assert warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0] == 3 * 2 * 8
