"""One schedule per integration, ticking at its interval after the settle delay.

Each tick imports the current hour plus the revision window in one range run, so sources'
revisions of recent intervals replace what was imported before. Stopping the schedule in the
UI pauses the integration; `status: paused` in the config makes it start stopped.
"""

from datetime import datetime, timedelta

import dagster as dg

from etl.config import Integration
from etl.partitions import HOUR, floor_hour, key_range

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
TRIGGER_TAG = "wfm/trigger"
INTEGRATION_TAG = "wfm/integration"
REFERENCE_DAY = datetime(2026, 1, 1)


def tick_minutes(integration: Integration) -> list[int]:
    """UTC minutes past the hour at which the integration's intervals end, plus the settle
    delay. Intervals follow the local grid, so a +05:30 zone's hours end at :30 UTC."""
    offset = integration.tz.utcoffset(REFERENCE_DAY) or timedelta()
    shift = int(-offset.total_seconds() // 60) % integration.interval_minutes
    step = integration.interval_minutes
    return sorted((shift + integration.settle_minutes + k * step) % 60 for k in range(60 // step))


def cron_of(integration: Integration) -> str:
    return ",".join(str(m) for m in tick_minutes(integration)) + " * * * *"


def range_tags(start: datetime, end: datetime, **extra: str) -> dict[str, str]:
    """Tags that make a run a range run over the hours in [start, end)."""
    keys = key_range(start, end)
    return {RANGE_START_TAG: keys.start, RANGE_END_TAG: keys.end, **extra}


def tick_window(integration: Integration, tick: datetime) -> tuple[datetime, datetime]:
    """The hours a tick imports: the current hour and the revision window before it."""
    current = floor_hour(tick)
    start = max(current - integration.revision_window_hours * HOUR, integration.history_start)
    return start, current + HOUR


def tick_request(integration: Integration, tick: datetime) -> dg.RunRequest:
    start, end = tick_window(integration, tick)
    return dg.RunRequest(
        run_key=f"{integration.id}:tick:{tick:%Y-%m-%dT%H:%M}",
        tags=range_tags(start, end, **{TRIGGER_TAG: "schedule", INTEGRATION_TAG: integration.id}),
    )


def schedule_name(integration: Integration) -> str:
    return f"{integration.id}_schedule"


def build_schedule(integration: Integration, job: dg.JobDefinition | str):
    @dg.schedule(
        name=schedule_name(integration),
        cron_schedule=cron_of(integration),
        execution_timezone="UTC",
        job_name=job if isinstance(job, str) else job.name,
        default_status=dg.DefaultScheduleStatus.STOPPED
        if integration.paused
        else dg.DefaultScheduleStatus.RUNNING,
        description=f"Imports {integration.id} every {integration.interval_minutes} minutes "
        f"({integration.settle_minutes} min after each interval ends): the current hour plus "
        f"{integration.revision_window_hours} h of revisions. Stop it to pause the integration.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if integration.paused:
            # Started in the UI while the config says paused: the config wins.
            return dg.SkipReason(f"{integration.id} is paused (status: paused in the config)")
        return tick_request(integration, context.scheduled_execution_time)

    return _schedule
