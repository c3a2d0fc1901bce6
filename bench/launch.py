"""Launch range runs through the instance's run launcher, as the daemon would, and report them.

Run as its own process with the project's environment (DAGSTER_HOME, WFM_*):

    python -m bench.launch '<json list of [job, start, end]>' --concurrency 2

Creates the runs one after another and launches each as soon as one of `concurrency` slots is
free (a run coordinator's `max_concurrent_runs`): Dagster's backfill daemon creates a
backfill's runs while its run queue daemon starts the ones already queued, so the first runs
do not wait for the last to be created. Waits for all and prints one JSON line per run:
status, when it was launched, start and end time from the run record, the seconds its steps
took (the import's own work) and the run process's peak RSS; first, one line with the
seconds spent creating the runs, in all and before the first one started. Works with any run
launcher: the preloaded one is asked about its processes, others through the run's status.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime

import dagster as dg
from dagster._core.launcher.base import WorkerStatus

from etl.run_launcher import PEAK_RSS_TAG, PreloadedRunLauncher, RunFactory
from etl.schedules.ticks import TRIGGER_TAG, range_tags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests", help="JSON list of [job name, start ISO, end ISO]")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    requests = json.loads(args.requests)
    with dg.DagsterInstance.get() as instance:
        to_create = list(requests)
        runs: list[dg.DagsterRun] = []
        queued: list[dg.DagsterRun] = []
        active: list[dg.DagsterRun] = []
        creating, before_first = 0.0, None
        launcher = instance.run_launcher
        launched: dict[str, float] = {}
        factory = RunFactory()  # definitions loaded once, as the daemon's code server has them
        while to_create or queued or active:
            active = [r for r in active if running(instance, r)]
            while queued and len(active) < args.concurrency:
                run = queued.pop(0)
                launched[run.run_id] = time.time()
                instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
                active.append(run)
                before_first = creating if before_first is None else before_first
            if to_create:
                job, start, end = to_create.pop(0)
                started = time.perf_counter()
                tags = range_tags(
                    datetime.fromisoformat(start),
                    datetime.fromisoformat(end),
                    **{TRIGGER_TAG: "bench"},
                )
                run = factory.create(instance, job, tags)
                creating += time.perf_counter() - started
                runs.append(run)
                queued.append(run)
            else:
                time.sleep(0.05)
        print(json.dumps({"created_s": creating, "created_before_first_s": before_first}))
        if isinstance(launcher, PreloadedRunLauncher):
            launcher.join(60)
        ok = True
        for run in runs:
            record = instance.get_run_record_by_id(run.run_id)
            finished = instance.get_run_by_id(run.run_id)
            ok &= finished.status == dg.DagsterRunStatus.SUCCESS
            print(
                json.dumps(
                    {
                        "ok": finished.status == dg.DagsterRunStatus.SUCCESS,
                        "run_id": run.run_id,
                        "launched": launched[run.run_id],
                        "step_s": step_seconds(instance, run.run_id),
                        "started": record.start_time,
                        "ended": record.end_time,
                        "peak_rss_mib": float(finished.tags.get(PEAK_RSS_TAG, "nan")),
                    }
                )
            )
    return 0 if ok else 1


def running(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether a launched run has not finished. The preloaded launcher knows its processes (no
    database round trip per poll); with another launcher the run's status says."""
    launcher = instance.run_launcher
    if isinstance(launcher, PreloadedRunLauncher):
        return launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    current = instance.get_run_by_id(run.run_id)
    return current is not None and not current.is_finished


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    """Seconds the run's steps took, from their start and end events: the import's own work,
    without starting the run and loading the code."""
    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    starts: dict[str, float] = {}
    total = 0.0
    for entry in instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.step_key in starts:
            total += entry.timestamp - starts.pop(event.step_key)
    return total


if __name__ == "__main__":
    sys.exit(main())
