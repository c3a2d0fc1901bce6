"""What Dagster itself costs a monthly history run: range runs of an asset that reads nothing
and writes nothing, but has the fact asset's hourly partitions, backfill policy, schema check
and materialization metadata, on the benchmark's PostgreSQL instance.

Run as its own process with the project's environment (DAGSTER_HOME):

    python -m bench.bookkeeping <month start ISO> <month end ISO> [--runs 5] [--grain day]

Prints one JSON line: the seconds of each run, in process (creating the run and recording one
materialization per partition included), with the database connections pooled as in a run
process (`etl.run_launcher.pool_connections`). `--grain day` gives the asset daily partitions
instead: what Dagster would cost if history were imported as days, which the partition
contract in DESIGN.md does not allow today; the benchmark reports it for comparison.
"""
# No `from __future__ import annotations`: Dagster reads the asset's context annotation.

import argparse
import json
import sys
import time
from datetime import datetime

import dagster as dg

from etl.assets.facts import HOURLY_METADATA
from etl.run_launcher import pool_connections
from etl.schedules.ticks import RANGE_END_TAG, RANGE_START_TAG

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


GRAINS = {"hour": dg.HourlyPartitionsDefinition, "day": dg.DailyPartitionsDefinition}


def range_run_tags(job: dg.JobDefinition, start: datetime, end: datetime) -> dict[str, str]:
    """Range-run tags over the job's partitions in [start, end), as the project tags them."""
    keys = job.partitions_def.get_partition_key_range_for_time_window(dg.TimeWindow(start, end))
    return {RANGE_START_TAG: keys.start, RANGE_END_TAG: keys.end}


def noop_job(start: datetime, grain: str = "hour") -> dg.JobDefinition:
    partitions = GRAINS[grain](start_date=start)

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(744),
        check_specs=[dg.AssetCheckSpec("schema", asset="noop")],
    )
    def noop(context: dg.AssetExecutionContext):
        window = context.partition_time_window
        metadata = {
            "rows_received": 0,
            "rows_written": 0,
            "rows_rejected": 0,
            "top_rejection_rules": dg.MetadataValue.json({}),
            "window_start": dg.MetadataValue.timestamp(window.start),
            "window_end": dg.MetadataValue.timestamp(window.end),
            "imported_at": dg.MetadataValue.timestamp(window.end),
            "complete": True,
            "open_partitions": dg.MetadataValue.json([]),
            "source": "nothing read",
        }
        # As the fact asset: the window's last partition carries all, the others a few.
        context.add_asset_metadata(metadata, partition_key=context.partition_key_range.end)
        yield dg.MaterializeResult(metadata={name: metadata[name] for name in HOURLY_METADATA})
        yield dg.AssetCheckResult(check_name="schema", passed=True)

    job = dg.define_asset_job("noop_import", selection=[noop])
    defs = dg.Definitions(assets=[noop], jobs=[job], executor=dg.in_process_executor)
    return defs.resolve_job_def("noop_import")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("start")
    parser.add_argument("end")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--grain", choices=sorted(GRAINS), default="hour")
    args = parser.parse_args(argv)
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    job = noop_job(start, args.grain)
    tags = range_run_tags(job, start, end)
    seconds = []
    with dg.DagsterInstance.get() as instance:
        pool_connections(instance)  # as a run process has them
        for _ in range(args.runs):
            began = time.perf_counter()
            result = job.execute_in_process(instance=instance, tags=tags, run_config=QUIET)
            seconds.append(time.perf_counter() - began)
            if not result.success:
                return 1
    print(json.dumps({"seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
