"""What the import itself costs a monthly history run, without Dagster: the fact asset's own
code (`import_window`: the source's extract, validation, the quarantine and warehouse writes,
the import log, the checks' inputs) for one month, called with a stand-in for the asset's
context, so that no run is created and no event is stored.

Run as its own process with the project's environment (WFM_*), after the CSV files exist:

    python -m bench.import_alone <integration id> <month start ISO> [<month start ISO> ...]

Prints one JSON line: the seconds of each month, in the order given, and the CPU seconds of
the process's threads in them (core time: two runs at a time share two cores). Together with
bench/bookkeeping.py (Dagster alone) it splits a monthly run into its two shares.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from types import SimpleNamespace

import dagster as dg

from etl.assets.facts import import_window, source_key
from etl.config import Settings, load_integrations
from etl.definitions import FACT_KINDS, build_definitions
from etl.partitions import next_month
from etl.resources.sources.base import SourceResource
from etl.resources.warehouse import Warehouse
from etl.run_launcher import use_run_allocator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("integration")
    parser.add_argument("months", nargs="+", help="first instant of each month, ISO")
    args = parser.parse_args(argv)
    use_run_allocator()  # Arrow's allocator of a run process
    settings = Settings.from_env()
    integration = next(
        i for i in load_integrations(settings.integrations_path) if i.id == args.integration
    )
    resources = build_definitions(settings).resources
    source: SourceResource = resources[source_key(integration)]
    warehouse: Warehouse = resources["warehouse"]
    kind = FACT_KINDS["contacts"]
    seconds, cpu, rows = [], [], []
    for text in args.months:
        start = datetime.fromisoformat(text)
        window_metadata: dict = {}  # what the window's last hour carries
        context = SimpleNamespace(
            partition_time_window=dg.TimeWindow(start, next_month(start)),
            run=SimpleNamespace(run_id="bench-import-alone"),
            log=logging.getLogger("bench.import_alone"),
            add_asset_metadata=lambda metadata, partition_key, into=window_metadata: into.update(
                metadata
            ),
        )
        began, began_cpu = time.perf_counter(), time.process_time()
        list(import_window(context, integration, kind, source, warehouse))  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
        rows.append(window_metadata["rows_written"])
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
