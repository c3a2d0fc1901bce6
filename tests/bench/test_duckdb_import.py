"""The benchmark's what-if must apply the project's rules, or its figure says nothing about the
import: the same files go through both and the rows each leaves out are compared."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from bench import duckdb_import
from bench.workloads import CSV_COLUMNS, Workload
from etl.validation import CONFLICT_RULE
from tests.bench.history import import_window

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
GOOD = ("10", "8", "1", "1200.0")  # offered, answered, abandoned, handle time


def case(
    queue: str,
    *values: str,
    time: str = "2026-10-01T00:30:00Z",
    channel: str = "calls",
    day: str = "10-01",
) -> tuple[str, ...]:
    """The day file that holds the case, then its row (the good values unless given)."""
    return (day, time, queue, channel, *(values or GOOD))


# Apart from the good ones and the two that share a key, each case breaks one rule (or as few
# as the rules allow).
CASES = {
    "good1": case("good1", time="2026-10-01T00:00:00Z"),
    "good2": case("good2", "5", "5", "0", "300", time="2026-10-01T00:15:00Z", channel="chats"),
    "no queue": case(""),
    "blank queue": case('""'),
    "no channel": case("nochannel", channel=""),
    "unknown channel": case("channel", channel="fax"),
    "no time": case("notime", time=""),
    "off the grid": case("grid", time="2026-10-01T00:07:00Z"),
    "before the month": case("before", time="2026-09-30T23:45:00Z"),
    "after the month": case("after", time="2026-11-01T00:00:00Z", day="10-31"),
    "no count": case("nocount", "", "8", "1", "1200.0"),
    "negative offered": case("negative", "-1", "0", "0", "0"),
    "fractional offered": case("frac", "10.5", "8", "1", "9"),
    "negative answered": case("negans", "10", "-1", "0", "9"),
    "fractional answered": case("fracans", "10", "7.5", "1", "9"),
    "negative abandoned": case("negab", "10", "8", "-1", "9"),
    "fractional abandoned": case("fracab", "10", "5", "1.5", "9"),
    "no handle time": case("noaht", "10", "8", "1", ""),
    "negative handle time": case("negaht", "10", "8", "1", "-5"),
    "infinite handle time": case("infinite", "10", "8", "1", "inf"),
    "answered over offered": case("answered", "10", "11", "0", "9"),
    "abandoned over the rest": case("abandoned", "10", "8", "3", "9"),
    "a word for a count": case("word", "ten", "8", "1", "9"),
    "shared key 1": case("shared", time="2026-10-01T00:45:00Z"),
    "shared key 2": case("shared", "12", "8", "1", "9", time="2026-10-01T00:45:00Z"),
}
WRITTEN = {"good1", "good2", "shared key 1", "shared key 2"}


def file_name(day: str) -> str:
    return f"contacts_2026-{day}.csv"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The cases as day files of the benchmark's CSV export."""
    path = tmp_path / "csv"
    path.mkdir()
    for day in sorted({day for day, *_ in CASES.values()}):
        rows = [",".join(row) for d, *row in CASES.values() if d == day]
        (path / file_name(day)).write_text("\n".join([CSV_COLUMNS, *rows]) + "\n")
    return path


def where(case: str) -> tuple[str, int]:
    """The case's file and line (the header is line 1)."""
    day = CASES[case][0]
    same_file = [c for c, (d, *_) in CASES.items() if d == day]
    return file_name(day), same_file.index(case) + 2


def project_rejects(folder: Path, state: Path) -> dict[str, list[str]]:
    """The project's own import of the month: the cases it quarantines, with their rules."""
    at = {where(case): case for case in CASES}
    workload = Workload(queues=1, start=START, days=31)
    extract, checked = import_window(workload, folder, state, START, END)
    refs = [*extract.rejected["source_ref"], *checked.rejected["source_ref"]]
    rules = [*extract.rejected["rules"], *checked.rejected["rules"]]
    found = {}
    for ref, its_rules in zip(refs, rules, strict=True):
        name, line = ref.rsplit(":", 1)
        found[at[name, int(line)]] = list(its_rules)
    return found


def test_what_if_leaves_out_the_rows_the_project_quarantines(folder: Path, tmp_path: Path):
    target = tmp_path / "out"
    target.mkdir()
    files = sorted(str(p) for p in folder.glob("*.csv"))
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        rows, repeated = duckdb_import.import_month(con, files, START, target)
        unparsed = con.execute("SELECT line FROM reject_errors").fetchall()
        written = con.execute(
            "SELECT external_queue_id, offered FROM read_parquet(?) ORDER BY ALL",
            [str(target / "facts.parquet")],
        ).fetchall()

    rejects = project_rejects(folder, tmp_path / "state")
    conflict = CONFLICT_RULE.split(":")[0]
    key_only = {case for case, rules in rejects.items() if all(conflict in r for r in rules)}
    # Every case the project quarantines for a rule the what-if leaves out, and no other.
    assert set(rejects) - key_only == set(CASES) - WRITTEN
    # The rows that only share a key are written and counted, not quarantined (a lower bound).
    assert key_only == {"shared key 1", "shared key 2"}
    assert repeated == 1
    # A count DuckDB cannot parse goes to its rejects table with its line, as the project's does.
    assert unparsed == [(where("a word for a count")[1],)]
    assert "offered: not a number" in rejects["a word for a count"]
    assert rows == len(written) == 4
    assert written == [("good1", 10), ("good2", 5), ("shared", 10), ("shared", 12)]


def test_day_sums_add_up_the_written_rows(folder: Path, tmp_path: Path):
    done = duckdb_import.month_seconds(folder, [START], tmp_path / "out", threads=1)
    assert done.rows == [4]
    assert done.repeated_keys == [1]
    assert len(done.seconds) == len(done.cpu_seconds) == 1
    sums = duckdb.sql(
        "SELECT external_queue_id, offered, answered, abandoned, handle_time_s "
        "FROM read_parquet(?) ORDER BY external_queue_id",
        params=[str(tmp_path / "out" / "day_sums.parquet")],
    ).fetchall()
    assert sums == [
        ("good1", 10, 8, 1, 1200.0),
        ("good2", 5, 5, 0, 300.0),
        ("shared", 22, 16, 2, 1209.0),
    ]
