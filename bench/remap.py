"""Remapping as a user's edit goes: the mapping file saved, the mapping sensor's tick, the
mappings run launched through the instance's run launcher (its own process, forked warm, as
the daemon launches it), and the first query of `queue_intervals` that shows the new mapping.

Run as its own process with the project's environment (DAGSTER_HOME, WFM_*):

    python -m bench.remap <queues> <remapped> <newest day ISO> [--rounds 3]

First, not timed: the workloads file and a queue mapping file without merged queues, one
sensor tick and its run (which also starts the warm server, as a running daemon has it).
Then each round saves a queue mapping file that merges the first `remapped` queues into 5
destination queues of that round's name and times it until the view shows them on the newest
day. The sensor is ticked right after the save: the daemon's wait until its next tick (the
sensor's `minimum_interval_seconds`) is not included. Prints one JSON line per round: the
seconds in all, the sensor tick's, the run's (launch to end), the query's, and the merged
queues the view showed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
from dagster._core.launcher.base import WorkerStatus

from etl.config import Settings
from etl.definitions import MAPPINGS_JOB, build_definitions
from etl.resources.warehouse import Warehouse
from etl.run_launcher import PreloadedRunLauncher, RunFactory

SENSOR = "mapping_files_sensor"
MERGED = 5  # destination queues the remapped queues are merged into
SHOWN = (
    "SELECT count(DISTINCT destination_queue) AS n FROM queue_intervals "
    "WHERE destination_queue LIKE ? AND interval_start >= ?"
)


def write_files(mappings: Path, queues: int, remapped: int, round_name: str | None) -> None:
    """The workloads file, and the queue mapping file: the first `remapped` queues merged
    into `MERGED` destination queues named after the round (none merged without a round)."""
    lines = ["workload,destination_queue"] + [
        f"W{q % 10},history_csv/Q{q:04d}" for q in range(queues)
    ]
    (mappings / "workloads.csv").write_text("\n".join(lines) + "\n")
    rows = ["integration_id,external_queue_id,destination_queue"]
    if round_name:
        rows += [f"history_csv,Q{q:04d},Merged {round_name}.{q % MERGED}" for q in range(remapped)]
    (mappings / "queue_mappings.csv").write_text("\n".join(rows) + "\n")


class Remapper:
    """The sensor ticked with its cursor kept between ticks, its run requests launched."""

    def __init__(self, instance: dg.DagsterInstance, defs: dg.Definitions):
        self.instance = instance
        self.defs = defs
        self.sensor = defs.resolve_sensor_def(SENSOR)
        self.factory = RunFactory()
        self.cursor: str | None = None

    def tick(self) -> list[dg.RunRequest]:
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs
        ) as context:
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return list(result.run_requests or [])

    def run(self, request: dg.RunRequest) -> None:
        """Create the requested run, launch it and wait for it to end; it must succeed."""
        run = self.factory.create(
            self.instance, MAPPINGS_JOB, dict(request.tags), request.asset_selection
        )
        self.instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        launcher = self.instance.run_launcher
        while True:
            if isinstance(launcher, PreloadedRunLauncher):
                done = launcher.check_run_worker_health(run).status != WorkerStatus.RUNNING
            else:
                done = self.instance.get_run_by_id(run.run_id).is_finished
            if done:
                break
            time.sleep(0.01)
        status = self.instance.get_run_by_id(run.run_id).status
        if status != dg.DagsterRunStatus.SUCCESS:
            raise RuntimeError(f"the mappings run {run.run_id} ended {status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("queues", type=int)
    parser.add_argument("remapped", type=int)
    parser.add_argument("newest_day", help="first instant of the history's newest day, ISO")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    mappings = Path(settings.mappings_dir)
    newest_day = datetime.fromisoformat(args.newest_day)
    warehouse = Warehouse(root=str(settings.warehouse_dir))
    with dg.DagsterInstance.get() as instance:
        remapper = Remapper(instance, build_definitions(settings))
        write_files(mappings, args.queues, args.remapped, None)
        for request in remapper.tick():
            remapper.run(request)
        for number in range(1, args.rounds + 1):
            write_files(mappings, args.queues, args.remapped, str(number))
            saved = time.perf_counter()
            requests = remapper.tick()
            ticked = time.perf_counter()
            if len(requests) != 1:
                raise RuntimeError(f"the sensor requested {len(requests)} runs, not 1")
            remapper.run(requests[0])
            ran = time.perf_counter()
            shown = warehouse.query(SHOWN, [f"Merged {number}.%", newest_day])["n"][0]
            ended = time.perf_counter()
            print(
                json.dumps(
                    {
                        "seconds": ended - saved,
                        "sensor_s": ticked - saved,
                        "run_s": ran - ticked,
                        "query_s": ended - ran,
                        "merged": int(shown),
                    }
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
