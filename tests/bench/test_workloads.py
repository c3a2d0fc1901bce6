"""The benchmark's workloads: the same bytes every run, rows the project accepts whole (so the
benchmark times the import of good data), and the same rows in PostgreSQL as in the files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from bench.workloads import (
    CSV_COLUMNS,
    Workload,
    history_workload,
    load_postgres_table,
    write_csv_files,
)
from tests.bench.history import import_window

# Two days across a month's end, so the months split.
WORKLOAD = Workload(queues=3, start=datetime(2026, 9, 30, tzinfo=UTC), days=2)


def test_history_ends_at_the_current_month_and_splits_into_months():
    workload = history_workload(500, 3, now=datetime(2026, 12, 1, 15, 26, tzinfo=UTC))
    assert (workload.start, workload.end) == (
        datetime(2023, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert workload.rows == 52_608_000  # the 500 queues x 3 years x 15 minutes
    assert len(workload.months()) == 36
    assert WORKLOAD.months() == [
        (datetime(2026, 9, 30, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)),
        (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)),
    ]


def test_csv_files_are_the_same_every_run_and_pass_the_project_rules(tmp_path: Path):
    first = write_csv_files(WORKLOAD, tmp_path / "a")
    again = write_csv_files(WORKLOAD, tmp_path / "b")
    assert [p.name for p in first] == ["contacts_2026-09-30.csv", "contacts_2026-10-01.csv"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    lines = first[0].read_text().splitlines()
    assert lines[0] == CSV_COLUMNS
    assert len(lines) == 1 + 3 * 96

    for start, end in WORKLOAD.months():
        extract, checked = import_window(WORKLOAD, tmp_path / "a", tmp_path / "state", start, end)
        assert extract.rejected.empty
        assert checked.rejected.empty
        assert len(checked.good) == 3 * 96
        assert checked.good["offered"].sum() > 0
        assert (checked.good["answered"] <= checked.good["offered"]).all()


@pytest.mark.postgres
def test_postgres_table_holds_the_csv_rows(tmp_path: Path, pg_url: str):
    folder = tmp_path / "csv"
    write_csv_files(WORKLOAD, folder)
    load_postgres_table(WORKLOAD, pg_url, "bench_contacts", folder)
    totals = "SELECT count(*), sum(offered), sum(answered), sum(abandoned), sum(handle_time_s)"
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as con:
            in_table = tuple(con.execute(sa.text(f"{totals} FROM bench_contacts")).one())
            first = con.execute(sa.text("SELECT min(interval_start) FROM bench_contacts"))
            assert first.scalar_one() == WORKLOAD.start
    finally:
        engine.dispose()
    in_files = duckdb.sql(f"{totals} FROM read_csv(?)", params=[f"{folder}/*.csv"]).fetchall()[0]
    assert in_table == in_files
    assert in_table[0] == WORKLOAD.rows == 2 * 3 * 96
