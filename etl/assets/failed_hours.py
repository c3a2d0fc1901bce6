"""Hours of a range run that fail while the others load, and how Dagster is told.

A range run imports up to a month of hours at once. An hour that cannot be written (the
source could not deliver it completely, it held rows and now receives none, too many of its
rows were rejected) fails alone: the run writes every other hour, fails, and the partition
status (the UI's bar, the gap sensor) shows exactly those hours as failed.

Dagster 1.13 counts a partition as failed when its latest "materialization planned" event
belongs to a run that failed and no materialization of that run followed. With
`DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1` (the project's setting: 15.6 s less per
744-hour run on PostgreSQL, bench/) a range run stores one planned event for the whole range,
which the open-source storages do not count per partition, so no hour of a failed range run
ever showed as failed (dagster-io/dagster#28113, #17836, #18123, #12498). Its public
`AssetMaterializationFailure` event is not stored by those storages either
(`can_store_asset_failure_events` is False), so `partition_outcome_events` stores planned
events for the failed hours (and batches the loaded hours' materializations): the one use of
a private API here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import dagster as dg
from dagster._core.events import (
    AssetMaterializationPlannedData,
    DagsterEvent,
    DagsterEventBatchMetadata,
    generate_event_batch_id,
)

from etl.partitions import HOUR

LISTED = 10


def partition_outcome_events(
    context: dg.AssetExecutionContext,
    loaded: Sequence[str],
    failed: Sequence[str],
    metadata: Mapping[str, object],
    hourly: Mapping[str, object] | None = None,
) -> list[DagsterEvent]:
    """Tell Dagster that this run materialized the `loaded` partitions and that the `failed`
    ones failed: stores a per-partition "materialization planned" event of this run for each
    failed key (once the run fails, the partition status counts exactly these as failed, with
    or without range-level planned events) and returns the materialization events of the
    loaded keys, for the asset to yield, written in one batch as Dagster writes a range run's
    own (yielded as `AssetMaterialization`s, each would be written on its own). The last
    loaded key carries `metadata`, every other one `hourly` (by default the same).

    Private Dagster API (pinned 1.13.27): `DagsterEvent.build_asset_materialization_planned_event`,
    `DagsterEvent.asset_materialization`, `AssetMaterializationPlannedData`,
    `DagsterEventBatchMetadata`, `DagsterInstance.report_dagster_event`, the step context
    behind `get_step_execution_context`, and the partition status cache's reading of planned
    events (`_core/storage/partition_status_cache.py`). Guarded by
    tests/assets/test_failed_hours.py, which fails if an upgrade changes any of it.
    """
    step = context.op_execution_context.get_step_execution_context()
    batch = generate_event_batch_id()
    for i, key in enumerate(failed):
        event = DagsterEvent.build_asset_materialization_planned_event(
            context.run.job_name,
            step.step.key,
            AssetMaterializationPlannedData(context.asset_key, partition=key),
        )
        last = DagsterEventBatchMetadata(batch, i == len(failed) - 1)
        context.instance.report_dagster_event(event, context.run.run_id, batch_metadata=last)
    batch = generate_event_batch_id()
    last = len(loaded) - 1
    return [
        DagsterEvent.asset_materialization(
            step,
            dg.AssetMaterialization(
                asset_key=context.asset_key,
                partition=key,
                metadata=metadata if i == last or hourly is None else hourly,
            ),
            DagsterEventBatchMetadata(batch, i == last),
        )
        for i, key in enumerate(loaded)
    ]


def stretches(failed: Mapping[datetime, str]) -> list[tuple[datetime, datetime, str]]:
    """Consecutive failed hours with the same reason, as (start, end, reason)."""
    found: list[tuple[datetime, datetime, str]] = []
    for hour in sorted(failed):
        reason = failed[hour]
        if found and found[-1][1] == hour and found[-1][2] == reason:
            found[-1] = (found[-1][0], hour + HOUR, reason)
        else:
            found.append((hour, hour + HOUR, reason))
    return found


def describe_stretch(start: datetime, end: datetime, reason: str) -> str:
    hours = int((end - start) / HOUR)
    span = f"{start:%Y-%m-%d %H:%M}" + (
        f"..{end:%Y-%m-%d %H:%M} UTC ({hours} hours)" if hours > 1 else " UTC"
    )
    return f"{span}: {reason}"


def listed(items: Iterable[str], limit: int = LISTED) -> str:
    """Up to `limit` items joined, with how many more there are."""
    items = list(items)
    more = len(items) - limit
    return "; ".join(items[:limit]) + (f"; and {more} more" if more > 0 else "")
