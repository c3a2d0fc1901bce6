"""A code location for the run launcher's tests: a job that waits, so it can be terminated."""

from __future__ import annotations

import time

import dagster as dg


@dg.op
def wait_long() -> None:
    time.sleep(120)


@dg.job(executor_def=dg.in_process_executor)
def waits() -> None:
    wait_long()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[waits])
