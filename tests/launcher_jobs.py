"""A code location for the run launcher's tests: a job that waits, so it can be terminated,
one that logs which job its process was told it runs, one that logs Arrow's allocator and one
that logs whether the preloaded libraries' objects are left out of garbage collection."""

from __future__ import annotations

import gc
import os
import time

import dagster as dg


@dg.op
def wait_long() -> None:
    time.sleep(120)


@dg.job(executor_def=dg.in_process_executor)
def waits() -> None:
    wait_long()


@dg.op
def log_scope() -> None:
    dg.get_dagster_logger().info(f"run job: {os.environ.get('WFM_RUN_JOB')}")


@dg.job(executor_def=dg.in_process_executor)
def reports_scope() -> None:
    log_scope()


@dg.op
def log_arrow_pool() -> None:
    import pyarrow as pa

    dg.get_dagster_logger().info(f"arrow pool: {pa.default_memory_pool().backend_name}")


@dg.job(executor_def=dg.in_process_executor)
def reports_arrow_pool() -> None:
    log_arrow_pool()


@dg.op
def log_frozen() -> None:
    dg.get_dagster_logger().info(f"frozen objects: {gc.get_freeze_count()}")


@dg.job(executor_def=dg.in_process_executor)
def reports_frozen() -> None:
    log_frozen()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[waits, reports_scope, reports_arrow_pool, reports_frozen])
