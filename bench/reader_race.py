"""How often an analyst's query fails while an import replaces a file it reads.

The warehouse replaces a fact file by writing a temporary file and renaming it into place, so a
reader opens either the old file or the new one. DuckDB's Parquet reader (2.0.0) opens a file
twice by name: once to read its footer, and again when the scan starts. When a rename lands
between the two, the scan reads the new file with the old footer's offsets and the query fails
(`TProtocolException: Invalid data` and similar). The window is short; this script measures how
often it is hit when a file is replaced continuously, far more often than any import does.

A writer process replaces one Parquet file in a loop for `--seconds` while a reader process
queries a glob over it (and a file that is never replaced) as fast as it can; prints the
writes, the queries, the failed queries and their messages as one JSON line.

Run: `.venv/bin/python bench/reader_race.py [--rows 20000] [--seconds 10]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from etl.resources.files import replace_atomically

READER = textwrap.dedent(
    """
    import json, os, sys, duckdb
    glob, stop = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    queries, errors = 0, []
    while not os.path.exists(stop):
        try:
            con.execute(f"SELECT count(*), sum(k) FROM read_parquet('{glob}')").fetchall()
            queries += 1
        except Exception as exc:
            errors.append(str(exc).splitlines()[0][:100])
    print(json.dumps({"queries": queries, "errors": errors}))
    """
)


def table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "k": rng.integers(0, 1000, rows),
            "v": rng.random(rows),
            "queue": pa.array([f"Q{q:04d}" for q in rng.integers(0, 500, rows)]),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--row-group", type=int, default=256_000, help="rows per row group")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "kept").mkdir()
        (root / "replaced").mkdir()
        pq.write_table(table(args.rows, 0), root / "kept" / "month.parquet")
        target = root / "replaced" / "month.parquet"
        pq.write_table(table(args.rows, 0), target)
        stop = root / "stop"
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(root / "*" / "*.parquet"), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        writes, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            writes += 1
            data = table(args.rows, writes)
            replace_atomically(
                target,
                lambda tmp, data=data: pq.write_table(
                    data, tmp, compression="zstd", row_group_size=args.row_group
                ),
            )
        stop.touch()
        report = json.loads(reader.communicate(timeout=60)[0])
    errors = report["errors"]
    print(
        json.dumps(
            {
                "seconds": args.seconds,
                "writes": writes,
                "queries": report["queries"],
                "failed_queries": len(errors),
                "failed_share": round(len(errors) / max(report["queries"], 1), 5),
                "messages": sorted(set(errors)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
