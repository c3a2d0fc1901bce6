"""Imports launched by hand, as range runs: a time range in chunks, or the gap sensor's plan.

Both cut their work like the gap sensor and the backfill policy do (UTC months, at most
`max_partitions_per_run` hours per run, newest first) and run it through the integration's
import job on the project's instance, so every run shows in the UI with its tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from etl.config import Integration
from etl.definitions import FACT_KINDS
from etl.partitions import HOUR, floor_hour, hourly_partitions
from etl.resources.warehouse import Warehouse
from etl.schedules.gaps import GapCursor, GapPlan, plan_gaps, read_state, run_request
from etl.schedules.ticks import INTEGRATION_TAG, TRIGGER_TAG, range_tags
from etl.windows import Window, chunks

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class ManualRun:
    window: Window
    run_id: str
    success: bool


def import_job(defs: dg.Definitions, integration: Integration) -> dg.JobDefinition:
    return defs.resolve_job_def(f"{integration.id}_import")


def hour_range(start: datetime, end: datetime) -> Window:
    """[start, end) widened to whole UTC hours (the partitions)."""
    end_hour = floor_hour(end)
    return floor_hour(start), end_hour if end_hour == end else end_hour + HOUR


def import_in_chunks(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    integration: Integration,
    start: datetime,
    end: datetime,
    trigger: str = "cli",
) -> list[ManualRun]:
    """Re-import [start, end) as range runs, one per chunk, newest first."""
    window = hour_range(start, end)
    job = import_job(defs, integration)
    runs = []
    for chunk in chunks([window], integration.max_partitions_per_run):
        tags = range_tags(*chunk, **{TRIGGER_TAG: trigger, INTEGRATION_TAG: integration.id})
        result = job.execute_in_process(
            instance=instance, tags=tags, run_config=QUIET, raise_on_error=False
        )
        runs.append(ManualRun(chunk, result.run_id, result.success))
    return runs


def gap_plan(
    instance: dg.DagsterInstance,
    integration: Integration,
    kinds: list[str],
    now: datetime,
    warehouse: Warehouse | None = None,
) -> GapPlan:
    """What the gap sensor would import now, without its bound on runs in flight (and, given
    the warehouse, without the hours it stopped retrying)."""
    keys = [dg.AssetKey([integration.id, kind]) for kind in kinds]
    partitions = hourly_partitions(integration)
    state = read_state(instance, integration, keys, partitions, GapCursor(), now, warehouse)
    return plan_gaps(integration, now, state, capacity=10**6)


def fill_gaps(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    integration: Integration,
    now: datetime,
    dry_run: bool = False,
) -> tuple[GapPlan, list[ManualRun]]:
    """Import, one range run after the other, every hour the gap sensor would request."""
    job = import_job(defs, integration)
    kinds = [kind for kind in integration.data if kind in FACT_KINDS]
    plan = gap_plan(instance, integration, kinds, now, defs.resources.get("warehouse"))
    runs = []
    if dry_run:
        return plan, runs
    for request in plan.requests:
        run = run_request(integration, request, len(kinds), plan.missing_hours, now)
        result = job.execute_in_process(
            instance=instance,
            tags={**run.tags, TRIGGER_TAG: f"cli-{request.trigger}"},
            asset_selection=run.asset_selection,
            run_config=QUIET,
            raise_on_error=False,
        )
        runs.append(ManualRun(request.window, result.run_id, result.success))
    return plan, runs
