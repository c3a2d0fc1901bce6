"""One schedule per integration, ticking at its interval after the settle delay.

Each tick imports the current hour plus the revision window in one range run, so sources'
revisions of recent intervals replace what was imported before. Stopping the schedule in the
UI pauses the integration; `status: paused` in the config makes it start stopped. Hours of
the window that failed `MAX_IDENTICAL_FAILURES` times the same way are left out (the import
log says which), as the gap sensor leaves them out of its own hours.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from itertools import pairwise

import dagster as dg

from etl.assets.import_log import MAX_IDENTICAL_FAILURES, StoppedHours, stopped_hours
from etl.config import Integration
from etl.partitions import HOUR, floor_hour, key_range
from etl.resources.warehouse import Warehouse
from etl.windows import Window, intersect, subtract

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
    """The tick's run when no hour of its window is stopped."""
    return tick_requests(integration, tick, {})[0]


def asset_names(integration: Integration) -> list[str]:
    """The integration's fact assets, "<integration>/<kind>" (a kind's asset is named after
    its `data:` value)."""
    return [f"{integration.id}/{kind}" for kind in integration.data]


def tick_requests(
    integration: Integration, tick: datetime, stopped: Mapping[str, Sequence[Window]]
) -> list[dg.RunRequest]:
    """The tick's runs: its window without the stopped hours of each asset (by asset name),
    as few range runs as the remaining hours make (one, unless some hours are stopped)."""
    start, end = tick_window(integration, tick)
    names = asset_names(integration)
    wanted = {name: subtract([(start, end)], stopped.get(name, [])) for name in names}
    cuts = sorted({start, end, *(t for windows in wanted.values() for w in windows for t in w)})
    pieces: list[tuple[Window, tuple[str, ...]]] = []
    for lo, hi in pairwise(cuts):
        who = tuple(name for name in names if intersect(wanted[name], [(lo, hi)]))
        if not who:
            continue
        if pieces and pieces[-1][0][1] == lo and pieces[-1][1] == who:
            pieces[-1] = ((pieces[-1][0][0], hi), who)
        else:
            pieces.append(((lo, hi), who))
    key = f"{integration.id}:tick:{tick:%Y-%m-%dT%H:%M}"
    return [
        dg.RunRequest(
            run_key=key if len(pieces) == 1 else f"{key}:{i}",
            asset_selection=None
            if len(who) == len(names)
            else [dg.AssetKey.from_user_string(name) for name in who],
            tags=range_tags(lo, hi, **{TRIGGER_TAG: "schedule", INTEGRATION_TAG: integration.id}),
        )
        for i, ((lo, hi), who) in enumerate(pieces)
    ]


def stopped_in_window(
    warehouse: Warehouse, integration: Integration, tick: datetime
) -> dict[str, list[StoppedHours]]:
    """The stopped hours of the tick's window, by asset name (read from the import log)."""
    window = tick_window(integration, tick)
    found = {
        f"{integration.id}/{kind}": stopped_hours(warehouse, integration, kind, [window])
        for kind in integration.data
    }
    return {name: stops for name, stops in found.items() if stops}


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
        f"{integration.revision_window_hours} h of revisions. Stop it to pause the integration. "
        f"Leaves out hours that failed {MAX_IDENTICAL_FAILURES} times the same way.",
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext, warehouse: Warehouse
    ) -> list[dg.RunRequest] | dg.SkipReason:
        if integration.paused:
            # Started in the UI while the config says paused: the config wins.
            return dg.SkipReason(f"{integration.id} is paused (status: paused in the config)")
        tick = context.scheduled_execution_time
        stopped = stopped_in_window(warehouse, integration, tick)
        requests = tick_requests(
            integration, tick, {name: [s.window for s in stops] for name, stops in stopped.items()}
        )
        if stopped:
            named = "; ".join(f"{name}: {s}" for name, stops in stopped.items() for s in stops)
            message = (
                f"{integration.id}: hours of this tick's window no longer retried, each failed "
                f"{MAX_IDENTICAL_FAILURES} times the same way: {named}"
            )
            if not requests:
                return dg.SkipReason(message)
            context.log.warning(message)
        return requests

    return _schedule
