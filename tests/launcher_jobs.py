"""A code location for the run launcher's tests: a job that waits, so it can be terminated,
and jobs that log what their run process sees: which job it was told it runs, Arrow's
allocator, how many objects it leaves out of garbage collection, and whether it found the
project preloaded."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable

import dagster as dg


@dg.op
def wait_long() -> None:
    time.sleep(120)


@dg.job(executor_def=dg.in_process_executor)
def waits() -> None:
    wait_long()


def reporting_job(name: str, report: Callable[[], str]) -> dg.JobDefinition:
    """A job named `name` whose one op logs `report()`, evaluated in the run process."""

    @dg.op(name=f"log_{name}")
    def log_report() -> None:
        dg.get_dagster_logger().info(report())

    @dg.job(name=name, executor_def=dg.in_process_executor)
    def reports() -> None:
        log_report()

    return reports


def _arrow_pool() -> str:
    import pyarrow as pa

    return f"arrow pool: {pa.default_memory_pool().backend_name}"


def _project() -> str:
    """`etl.preload` is only there when the run kept the warm server's project modules."""
    return f"project preloaded: {'etl.preload' in sys.modules}"


REPORTS = [
    reporting_job("reports_scope", lambda: f"run job: {os.environ.get('WFM_RUN_JOB')}"),
    reporting_job("reports_arrow_pool", _arrow_pool),
    reporting_job("reports_frozen", lambda: f"frozen objects: {gc.get_freeze_count()}"),
    reporting_job("reports_project", _project),
]


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[waits, *REPORTS])
