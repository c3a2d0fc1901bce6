"""The tool a user would pick instead of the project: dlt loading the same daily CSV files into
DuckDB, merged on the contact key, as its documentation shows for incremental loads.

Run as its own process (the benchmark's extra, `make bench-setup`, installs dlt):

    python -m bench.peers <csv folder> <work folder>

Each day file is read as an Arrow table (dlt's fastest path: no row-by-row normalisation) and
handed to one dlt resource with `write_disposition="merge"` on (queue, channel,
interval_start), so that a file delivered again replaces its rows instead of adding them; the
pipeline writes a DuckDB file in the work folder. Prints one JSON line: the seconds of the
whole run (extract, normalise, load), the rows in the table at the end and the process's CPU
seconds. dlt's anonymous telemetry is switched off: the benchmark sends nothing anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

KEY = ("queue", "channel", "interval_start")
TABLE = "contacts"
DATASET = "peers"

# The export's columns typed as it defines them, so that no file's values narrow a type.
COLUMN_TYPES = {
    "interval_start": pa.timestamp("us", tz="UTC"),
    "queue": pa.string(),
    "channel": pa.string(),
    **dict.fromkeys(("offered", "answered", "abandoned"), pa.int64()),
    "handle_time_s": pa.float64(),
}

# dlt's settings as environment variables (its documented form), set before it is imported.
DLT_ENV = {"RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "ERROR"}


def load(csv_dir: Path, work: Path) -> dict:
    """Merge every `contacts_*.csv` of `csv_dir` into a fresh DuckDB file under `work`."""
    os.environ.update(DLT_ENV)
    import dlt

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    files = sorted(csv_dir.glob("contacts_*.csv"))
    types = pacsv.ConvertOptions(column_types=COLUMN_TYPES)

    @dlt.resource(name=TABLE, write_disposition="merge", primary_key=KEY)
    def contacts() -> Iterator:
        for path in files:
            yield pacsv.read_csv(path, convert_options=types)

    started, started_cpu = time.perf_counter(), time.process_time()
    pipeline = dlt.pipeline(
        pipeline_name="bench_peers",
        pipelines_dir=str(work / "pipelines"),
        destination=dlt.destinations.duckdb(str(work / "dlt.duckdb")),
        dataset_name=DATASET,
    )
    pipeline.run(contacts())
    seconds = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT count(*) FROM {TABLE}")[0][0]
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": int(rows), "files": len(files)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv_dir", type=Path)
    parser.add_argument("work", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(load(args.csv_dir, args.work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
