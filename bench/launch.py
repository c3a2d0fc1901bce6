"""Launch range runs through the instance's run launcher, as the daemon would, and report them.

Run as its own process with the project's environment (DAGSTER_HOME, WFM_*):

    python -m bench.launch '<json list of [job, start, end]>' --concurrency 2

Creates every run, launches at most `concurrency` at a time (a run coordinator's
`max_concurrent_runs`), waits for all and prints one JSON line per run: status, start and end
time from the run record, and the run process's peak RSS; first, one line with the seconds
spent creating the runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime

import dagster as dg
from dagster._core.launcher.base import WorkerStatus

from etl.run_launcher import PEAK_RSS_TAG, create_run
from etl.schedules.ticks import TRIGGER_TAG, range_tags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests", help="JSON list of [job name, start ISO, end ISO]")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    requests = json.loads(args.requests)
    with dg.DagsterInstance.get() as instance:
        creating = time.perf_counter()
        runs = [
            create_run(
                instance,
                job,
                range_tags(
                    datetime.fromisoformat(start),
                    datetime.fromisoformat(end),
                    **{TRIGGER_TAG: "bench"},
                ),
            )
            for job, start, end in requests
        ]
        print(json.dumps({"created_s": time.perf_counter() - creating}))
        launcher = instance.run_launcher
        pending, active = list(runs), []
        while pending or active:
            # the launcher knows its processes: no database round trip per poll
            active = [
                r
                for r in active
                if launcher.check_run_worker_health(r).status == WorkerStatus.RUNNING
            ]
            while pending and len(active) < args.concurrency:
                run = pending.pop(0)
                instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
                active.append(run)
            time.sleep(0.05)
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
                        "started": record.start_time,
                        "ended": record.end_time,
                        "peak_rss_mib": float(finished.tags.get(PEAK_RSS_TAG, "nan")),
                    }
                )
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
