"""Runs on Celery workers: dagster-celery's run launcher, and the worker that executes them.

With this launcher (selected in `dagster.yaml`, `wfm-etl deploy --launcher celery` writes it)
the daemon sends each run to the broker as one Celery task; any worker listening on the queue
takes it and executes the whole run in one of its processes, as `dagster api execute_run`
would. The project's jobs are unchanged (one process per run, in-process executor), so a run
needs the same code, the same instance (PostgreSQL) and the same warehouse folder wherever a
worker runs.

What the project adds to dagster-celery's `CeleryRunLauncher`:
- **A worker takes a run only when it has a free process** (acknowledged when it ends,
  prefetch of one): a run never waits behind a busy worker while another is idle.
- **A lost worker fails its run, once.** A worker that dies whole (its machine, its
  container, `kill -9` of its process group) drops its connection, and the broker hands the
  run's task to another worker. That worker finds the run already started and, unless the
  first worker still answers and still runs it, marks the run failed instead of executing
  it a second time; the gap sensor then imports its hours again. A worker that vanishes
  without the broker noticing is caught by the daemon's run monitoring: the worker that took
  the run must answer a Celery `ping`, and one silent for `worker_lost_after_seconds` fails
  its run. (A worker whose run process alone dies reports the task failed itself: Celery's
  `WorkerLostError`.)
- **The worker's task** (`execute_job`, the name dagster-celery sends) runs the run the way
  the project's preloaded launcher does: only the run's own integration is built
  (`WFM_RUN_JOB`), database connections are pooled for the run, SIGTERM (terminating the run
  from the UI) cancels it, and the run is tagged with the worker that ran it
  (`wfm/celery_worker`). Worker processes import the heavy libraries once, before they fork.

Start a worker with `wfm-etl worker` (it reads the broker and backend from the instance's
`dagster.yaml`, so the launcher and its workers cannot disagree).
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, Field
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClassData, unpack_value
from dagster_celery.config import TASK_EXECUTE_JOB_NAME
from dagster_celery.launcher import CeleryRunLauncher as DagsterCeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_resume_job_task

from etl.config import RUN_JOB_ENV
from etl.run_launcher import DEFAULT_PRELOAD, PID_TAG, execute_run_here, keep_preloaded_shared

WORKER_TAG = "wfm/celery_worker"
DEFAULT_QUEUE = "dagster"
WORKER_LOST_AFTER_S = 60
PING_TIMEOUT_S = 2.0
# Celery settings both sides need (the launcher's app is the workers' app, see `worker_app`).
CELERY_SETTINGS: dict[str, Any] = {
    # A worker takes a task only when a process is free (acknowledged when the run ends, one
    # prefetched per process): runs wait in the broker's queue, not behind a busy worker.
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
    # A run process killed on its own (out of memory): the task is failed, not delivered again.
    "task_reject_on_worker_lost": False,
    "broker_connection_retry_on_startup": True,
    # A run process that grew past 1.5 GiB is replaced after its run (resident KiB).
    "worker_max_memory_per_child": 1_572_864,
    # Run results are Dagster's; the backend keeps task states for monitoring for a week.
    "result_expires": 7 * 24 * 3600,
}


class CeleryRunLauncher(DagsterCeleryRunLauncher):
    """dagster-celery's run launcher; a run whose worker stopped answering is reported failed."""

    def __init__(self, worker_lost_after_seconds: int = WORKER_LOST_AFTER_S, **kwargs: Any):
        super().__init__(**kwargs)
        self.worker_lost_after_seconds = worker_lost_after_seconds
        self._silent_since: dict[str, float] = {}

    @classmethod
    def config_type(cls) -> dict:
        return {
            **DagsterCeleryRunLauncher.config_type(),
            "worker_lost_after_seconds": Field(
                int,
                is_required=False,
                default_value=WORKER_LOST_AFTER_S,
                description="How long the worker running a run may go without answering a "
                "ping before the run is reported failed (by the daemon's run monitoring).",
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> CeleryRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if task_id is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no Celery task id on the run")
        result = self.celery.AsyncResult(task_id)
        if result.state != "STARTED":
            return super().check_run_worker_health(run)
        info = result.info if isinstance(result.info, Mapping) else {}
        worker = info.get("hostname")
        if not worker:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        silent_for = self._silent_for(worker, time.monotonic())
        if silent_for >= self.worker_lost_after_seconds:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"Celery worker {worker}, which was running this run, has not answered for "
                f"{silent_for:.0f} s (stopped or unreachable): the run is lost",
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING)

    def _silent_for(self, worker: str, now: float) -> float:
        """Seconds since `worker` first failed to answer a ping (0 if it answers now)."""
        replies = self.celery.control.ping(destination=[worker], timeout=PING_TIMEOUT_S)
        if any(worker in reply for reply in replies):
            self._silent_since.pop(worker, None)
            return 0.0
        return now - self._silent_since.setdefault(worker, now)


def launcher_config(
    broker_env: str, backend_env: str, worker_lost_after_seconds: int = WORKER_LOST_AFTER_S
) -> dict:
    """The `run_launcher` entry of `dagster.yaml`: broker and result backend URLs are read
    from these environment variables (they hold credentials)."""
    return {
        "module": __name__,
        "class": CeleryRunLauncher.__name__,
        "config": {
            "broker": {"env": broker_env},
            "backend": {"env": backend_env},
            "default_queue": DEFAULT_QUEUE,
            "config_source": dict(CELERY_SETTINGS),
            "worker_lost_after_seconds": worker_lost_after_seconds,
        },
    }


# -- the worker ---------------------------------------------------------------------------------
class NotCeleryInstanceError(RuntimeError):
    """The instance a worker was started with does not launch runs on Celery."""


def worker_app(instance: DagsterInstance) -> Celery:
    """The Celery app of the instance's run launcher, with the tasks its workers run."""
    launcher = instance.run_launcher
    if not isinstance(launcher, DagsterCeleryRunLauncher):
        raise NotCeleryInstanceError(
            f"the Dagster instance in {instance.root_directory} launches runs with "
            f"{type(launcher).__name__}, not on Celery: a worker would receive nothing (write "
            "its dagster.yaml with `wfm-etl deploy --launcher celery`, and set DAGSTER_HOME)"
        )
    app = launcher.celery
    _register_execute_job(app)
    create_resume_job_task(app)
    return app


def _register_execute_job(app: Celery) -> None:
    @app.task(bind=True, name=TASK_EXECUTE_JOB_NAME, track_started=True)
    def execute_job(self: Any, execute_job_args_packed: Mapping[str, Any]) -> int:
        args = unpack_value(execute_job_args_packed, as_type=ExecuteRunArgs)
        # The run builds only its own integration (etl.definitions.run_scope); the definitions
        # are loaded again for every run, so a changed integrations.yaml is seen at once.
        os.environ[RUN_JOB_ENV] = args.job_origin.job_name
        ReconstructableJob.get_definition.cache_clear()
        ReconstructableJob.get_repository_definition.cache_clear()
        with DagsterInstance.get() as instance:
            run = instance.get_run_by_id(args.run_id)
            if run is not None and run.status == DagsterRunStatus.STARTED:
                return delivered_again(app, instance, run, self.request.id, self.request.hostname)
            instance.add_run_tags(
                args.run_id, {WORKER_TAG: self.request.hostname, PID_TAG: str(os.getpid())}
            )
            return execute_run_here(args.run_id, instance, record_peak_memory=False)


def delivered_again(
    app: Celery, instance: DagsterInstance, run: DagsterRun, task_id: str, hostname: str
) -> int:
    """The broker delivered a started run's task again: the worker that started it lost its
    connection (it died, or its machine did). If that worker still answers and still runs
    the task (the broker's delivery timeout, `consumer_timeout`, ran out under a long run),
    leave it be; otherwise the run failed where it ran: say so, and do not run it twice."""
    first = run.tags.get(WORKER_TAG, "an unknown worker")
    active = app.control.inspect(destination=[first], timeout=PING_TIMEOUT_S).active() or {}
    if any(task.get("id") == task_id for task in active.get(first, [])):
        instance.report_engine_event(
            f"Celery delivered this run again to {hostname} while {first} still runs it (the "
            "broker's consumer_timeout is shorter than the run?); the second delivery is ignored",
            run,
        )
        return 0
    instance.report_run_failed(
        run,
        f"Celery worker {first} was lost while running this run (the broker delivered it "
        f"again, to {hostname}); it is not run twice. The gap sensor imports its hours again.",
    )
    return 1


def worker_argv(
    name: str, concurrency: int, queues: Sequence[str] = (DEFAULT_QUEUE,), loglevel: str = "INFO"
) -> list[str]:
    """Arguments of `celery worker` for one of the project's workers."""
    return [
        "worker",
        "--hostname",
        f"{name}@%h",
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--queues",
        ",".join(queues),
        "--loglevel",
        loglevel,
    ]


def run_worker(
    name: str, concurrency: int, queues: Sequence[str] = (DEFAULT_QUEUE,), loglevel: str = "INFO"
) -> None:
    """A Celery worker for this instance's runs, until it is stopped. Imports the libraries
    every run needs, and the project's modules, before the worker forks its processes (which
    run many runs each: restart workers after a release)."""
    for module in DEFAULT_PRELOAD:
        importlib.import_module(module)
    with DagsterInstance.get() as instance:
        app = worker_app(instance)
    keep_preloaded_shared()  # the pool's processes are forked from this one
    app.worker_main(worker_argv(name, concurrency, queues, loglevel))
