"""Helpers for tests: build definitions for given integrations and run range imports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from unittest import mock

import dagster as dg
import sqlalchemy as sa
import yaml
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.remote_representation.handle import RepositoryHandle
from dagster._core.test_utils import (
    InProcessTestWorkspaceLoadTarget,
    create_run_for_test,
    create_test_daemon_workspace_context,
    freeze_time,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext

from etl.cli import QUIET, run_import
from etl.config import PROJECT_ROOT, Integration, Settings
from etl.definitions import build_definitions
from etl.partitions import HOUR, hour_of
from etl.schedules.gaps import sensor_name
from etl.schedules.ticks import schedule_name


def definitions(settings: Settings, *integrations: Integration, **resources) -> dg.Definitions:
    """Definitions for these integrations; extra resources replace the built ones (fakes)."""
    return build_definitions(settings, list(integrations), resources)


def import_range(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    integration_id: str,
    start: datetime,
    end: datetime,
) -> dg.ExecuteInProcessResult:
    """A range run of the integration's job over [start, end), as the schedule would launch."""
    return run_import(defs, instance, integration_id, start, end, trigger="test")


# -- fixed clocks, schedules and sensors (the gap-filling tests) --------------------------------
@contextmanager
def fixed_clock(moment: datetime) -> Iterator[None]:
    """Fix the project's clock (imports' `imported_at`, the gap sensor's now) and Dagster's."""
    with mock.patch("etl.clock.now", return_value=moment), freeze_time(moment):
        yield


def remote_repository(defs: dg.Definitions) -> RemoteRepository:
    """The definitions as the UI and the daemon see them."""
    repo = defs.get_repository_def()
    return RemoteRepository(
        RepositorySnap.from_def(repo),
        repository_handle=RepositoryHandle.for_test(
            location_name="wfm_etl", repository_name=repo.name
        ),
        auto_materialize_use_sensors=True,
    )


def remote_schedule(defs: dg.Definitions, name: str):
    """The schedule as the UI sees it, to toggle its state in the instance like the UI does."""
    return remote_repository(defs).get_schedule(name)


def queue_run(
    defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str, tags: dict[str, str]
) -> dg.DagsterRun:
    """A run waiting in the run queue, as the daemon leaves a requested run until it starts."""
    origin = remote_repository(defs).get_full_job(job_name).get_remote_origin()
    return create_run_for_test(
        instance,
        job_name=job_name,
        status=dg.DagsterRunStatus.QUEUED,
        tags=tags,
        remote_job_origin=origin,
    )


def stop_schedule(defs: dg.Definitions, instance: dg.DagsterInstance, name: str) -> None:
    """What the schedule toggle in the UI does when switched off (= pausing the integration)."""
    schedule = remote_schedule(defs, name)
    instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)


def start_schedule(defs: dg.Definitions, instance: dg.DagsterInstance, name: str) -> None:
    instance.start_schedule(remote_schedule(defs, name))


def run_request(
    defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Execute what a schedule or sensor requested, in process: same job, tags and assets."""
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        tags=request.tags,
        asset_selection=request.asset_selection,
        run_config=QUIET,
        raise_on_error=False,
    )


def evaluate_schedule(
    defs: dg.Definitions, instance: dg.DagsterInstance, integration: Integration, when: datetime
):
    """The integration's schedule evaluated at `when` with the clock at `when`: its run
    requests or skip reason, nothing run."""
    schedule = defs.resolve_schedule_def(schedule_name(integration))
    # The context as a context manager: its resources are torn down, and Dagster's current
    # instance state with them (else a later test may find a dead instance).
    with (
        fixed_clock(when),
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            resources={"warehouse": defs.resources["warehouse"]},
        ) as context,
    ):
        return schedule.evaluate_tick(context)


def scheduled_tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, integration: Integration, when: datetime
) -> dg.ExecuteInProcessResult | None:
    """One tick of the integration's schedule at `when`, run in process with the clock at
    `when`; None when the schedule skipped."""
    request = evaluate_schedule(defs, instance, integration, when).run_requests
    if not request:
        return None
    job = defs.resolve_schedule_def(schedule_name(integration)).job_name
    with fixed_clock(when):
        return run_request(defs, instance, job, request[0])


class GapSensorDriver:
    """Ticks one integration's gap sensor with a fixed clock, keeping its cursor between ticks
    as the daemon does, and runs what it requested."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, integration):
        self.defs, self.instance, self.integration = defs, instance, integration
        self.sensor = defs.resolve_sensor_def(sensor_name(integration))
        self.cursor: str | None = None

    def tick(self, when: datetime) -> dg.SensorResult:
        with (
            fixed_clock(when),
            dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursor,
                definitions=self.defs,
                resources={"warehouse": self.defs.resources["warehouse"]},
            ) as context,
        ):
            result = self.sensor(context)
        self.cursor = result.cursor
        return result

    def run(self, requests, when: datetime) -> list[dg.ExecuteInProcessResult]:
        with fixed_clock(when):
            return [
                run_request(self.defs, self.instance, self.sensor.job_name, r) for r in requests
            ]


def windows_of(requests) -> list[tuple[datetime, datetime]]:
    """The [start, end) hours of range-run requests, in request order."""
    return [
        (
            hour_of(r.tags["dagster/asset_partition_range_start"]),
            hour_of(r.tags["dagster/asset_partition_range_end"]) + HOUR,
        )
        for r in requests
    ]


# -- a code location as the daemon loads it ------------------------------------------------------
def configure_env(settings: Settings, monkeypatch, *integrations: dict) -> None:
    """Write the integrations file and point the environment at it, as a deployment does."""
    settings.integrations_path.write_text(yaml.safe_dump({"integrations": list(integrations)}))
    monkeypatch.setenv("WFM_INTEGRATIONS", str(settings.integrations_path))
    monkeypatch.setenv("WFM_WAREHOUSE_DIR", str(settings.warehouse_dir))
    monkeypatch.setenv("WFM_MAPPINGS_DIR", str(settings.mappings_dir))


@contextmanager
def daemon_workspace(instance: dg.DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    """The project's code location (`etl.definitions:defs`), loaded as the daemon loads it."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            module_name="etl.definitions", attribute="defs", working_directory=str(PROJECT_ROOT)
        ),
        location_name="wfm_etl",
    )
    target = InProcessTestWorkspaceLoadTarget(origin)
    with create_test_daemon_workspace_context(target, instance) as workspace:
        yield workspace


@contextmanager
def queued_instance(home) -> Iterator[dg.DagsterInstance]:
    """An instance whose run coordinator queues runs, as a deployment with the daemon does:
    requested runs wait in the queue (and show as in flight) until the daemon starts them."""
    home.mkdir(exist_ok=True)
    queued = {"run_coordinator": {"module": "dagster", "class": "QueuedRunCoordinator"}}
    with dg.instance_for_test(temp_dir=str(home), overrides=queued) as instance:
        yield instance


HOLD_OPEN = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
sys.stdin.read()
"""


def holding_open(path) -> subprocess.Popen:
    """A process with a read-only connection to `path` until its stdin is closed."""
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline().strip() == "open"
    return reader


def fact_files(warehouse_dir) -> dict:
    """Every current file of the integrations' data (mappings aside), with its bytes and
    modification time: what remapping must leave as it is."""
    from etl.resources.manifest import MAPPINGS_UNIT
    from etl.resources.warehouse import Warehouse

    warehouse = Warehouse(root=str(warehouse_dir))
    paths = sorted(
        warehouse.path / entry.path
        for unit, manifest in warehouse.manifests().items()
        if unit != MAPPINGS_UNIT
        for entry in manifest.files.values()
    )
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def sql_rows(url: str, sql: str, **params: object) -> list[sa.Row]:
    """The rows of one query on the database at `url` (its own engine, disposed after)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            return list(con.execute(sa.text(sql), params))
    finally:
        engine.dispose()
