"""Imports launched by hand, as range runs: a time range in chunks, or the gap sensor's plan.

Both cut their work like the gap sensor and the backfill policy do (UTC months, at most
`max_partitions_per_run` hours per run, newest first) and run it through the integration's
import job on the project's instance, so every run shows in the UI with its tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import dagster as dg

from etl.config import Integration
from etl.definitions import FACT_KINDS
from etl.partitions import HOUR, floor_hour, hourly_partitions
from etl.resources.warehouse import Warehouse
from etl.run_outcome import RunOutcome, outcome
from etl.schedules.gaps import GapCursor, GapPlan, plan_gaps, read_state, run_request
from etl.schedules.ticks import INTEGRATION_TAG, TRIGGER_TAG, range_tags
from etl.windows import Window, chunks

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The command line says what a run did itself (one line per run), so Dagster's console logger
# stays silent: it printed a failure's message and trace twice, once per step and run event.
SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class ManualRun:
    window: Window
    run_id: str
    outcome: RunOutcome

    @property
    def success(self) -> bool:
        return self.outcome.success


class RunWatcher(Protocol):
    """Told how many runs are planned, then of each run as it ends (progress output)."""

    def planned(self, runs: int) -> None: ...

    def finished(self, run: ManualRun) -> None: ...


class _Unwatched:
    def planned(self, runs: int) -> None:
        pass

    def finished(self, run: ManualRun) -> None:
        pass


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
    watcher: RunWatcher | None = None,
) -> list[ManualRun]:
    """Re-import [start, end) as range runs, one per chunk, newest first."""
    watcher = watcher or _Unwatched()
    windows = list(chunks([hour_range(start, end)], integration.max_partitions_per_run))
    watcher.planned(len(windows))
    job = import_job(defs, integration)
    runs = []
    for chunk in windows:
        tags = range_tags(*chunk, **{TRIGGER_TAG: trigger, INTEGRATION_TAG: integration.id})
        result = job.execute_in_process(
            instance=instance, tags=tags, run_config=SILENT, raise_on_error=False
        )
        runs.append(ManualRun(chunk, result.run_id, outcome(result)))
        watcher.finished(runs[-1])
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
    watcher: RunWatcher | None = None,
    on_plan: Callable[[GapPlan], None] | None = None,
) -> tuple[GapPlan, list[ManualRun]]:
    """Import, one range run after the other, every hour the gap sensor would request
    (`on_plan` is told the plan before the first run starts)."""
    watcher = watcher or _Unwatched()
    job = import_job(defs, integration)
    kinds = [kind for kind in integration.data if kind in FACT_KINDS]
    plan = gap_plan(instance, integration, kinds, now, defs.resources.get("warehouse"))
    if on_plan is not None:
        on_plan(plan)
    runs = []
    if dry_run:
        return plan, runs
    watcher.planned(len(plan.requests))
    for request in plan.requests:
        run = run_request(integration, request, len(kinds), plan.missing_hours, now)
        result = job.execute_in_process(
            instance=instance,
            tags={**run.tags, TRIGGER_TAG: f"cli-{request.trigger}"},
            asset_selection=run.asset_selection,
            run_config=SILENT,
            raise_on_error=False,
        )
        runs.append(ManualRun(request.window, result.run_id, outcome(result)))
        watcher.finished(runs[-1])
    return plan, runs
