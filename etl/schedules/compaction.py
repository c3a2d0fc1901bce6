"""Merge ended months' day files into month files every night (`wfm-etl compact` by hand).

Ticks leave a month as one file per day, and every file costs each analyst query (bench,
`dayfiles`). `Warehouse.compact_months` merges them beside open connections: a connection
keeps reading the files it had until it closes, new ones read the month file.
"""

from datetime import timedelta

import dagster as dg

from etl import clock
from etl.resources.warehouse import Warehouse

COMPACTION_JOB = "compact_warehouse"
# 03:30 UTC: night in Europe, evening in the Americas; months that ended a day ago.
COMPACTION_CRON = "30 3 * * *"
COMPACT_AFTER = timedelta(days=1)  # after a month's end: its last revisions are in


@dg.op(description="Merge the day files of every month that ended a day ago into month files.")
def compact_months(context: dg.OpExecutionContext, warehouse: Warehouse) -> dg.Output[int]:
    done = warehouse.compact_months(before=clock.now() - COMPACT_AFTER)
    context.log.info(f"compacted {done.months} months ({done.files} day files)")
    return dg.Output(done.months, metadata={"months": done.months, "files": done.files})


@dg.job(name=COMPACTION_JOB, executor_def=dg.in_process_executor)
def compaction_job() -> None:
    compact_months()


compaction_schedule = dg.ScheduleDefinition(
    name="compact_warehouse_nightly",
    job=compaction_job,
    cron_schedule=COMPACTION_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Merges ended months' day files into month files.",
)
