"""The benchmark's peers part: dlt's merge load of the benchmark's day files into DuckDB
leaves each key once, with the files' values, however often a file is delivered."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bench.workloads import Workload, write_csv_files
from tests.bench.extra import needs_bench_extra

WORKLOAD = Workload(queues=3, start=datetime(2026, 10, 30, tzinfo=UTC), days=3)


def test_dlt_merges_the_day_files_on_the_contact_key(tmp_path: Path):
    needs_bench_extra("dlt")
    from bench import peers

    folder = tmp_path / "csv"
    files = write_csv_files(WORKLOAD, folder)
    # The first day delivered again under another name: the merge keeps its rows once.
    shutil.copy(files[0], folder / "contacts_2026-10-30_again.csv")
    found = peers.load(folder, tmp_path / "work")
    assert found["files"] == 4
    assert found["rows"] == WORKLOAD.rows == 3 * 3 * 96
    assert found["seconds"] > 0
    with duckdb.connect() as con:
        expected = con.execute(
            "SELECT count(*), sum(offered), sum(handle_time_s) FROM read_csv(?)",
            [[str(f) for f in files]],
        ).fetchall()
        con.execute(f"ATTACH '{tmp_path / 'work' / 'dlt.duckdb'}' AS loaded (READ_ONLY)")
        loaded = con.execute(
            "SELECT count(*), sum(offered), sum(handle_time_s) FROM loaded.peers.contacts"
        ).fetchall()
        keys = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT queue, channel, interval_start "
            "FROM loaded.peers.contacts)"
        ).fetchall()
    assert loaded == expected
    assert keys == [(WORKLOAD.rows,)]
