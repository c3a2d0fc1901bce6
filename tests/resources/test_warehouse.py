"""The Parquet warehouse and its catalog versions, with real files and real DuckDB processes."""

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl.resources import catalog as catalog_module
from etl.resources import warehouse as warehouse_module
from etl.resources.manifest import Manifest
from etl.resources.sources import build_source
from etl.resources.warehouse import FACT_SCHEMAS, SQL_DIR, SUMMARY_SCHEMAS, Warehouse
from tests.conftest import make_integration
from tests.helpers import definitions, holding_open, import_range

NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)


def frame(start: datetime, end: datetime, seed: int = 7) -> pd.DataFrame:
    source = build_source(make_integration(source={"seed": seed, "queues": 2}))
    return source.contacts(start, end).frame


def stored_frame(warehouse, start: datetime, end: datetime, seed: int = 7) -> pd.DataFrame:
    rows = frame(start, end, seed)
    rows["interval_start_local"] = (
        rows["interval_start"].dt.tz_convert("Europe/Berlin").dt.tz_localize(None)
    )
    return rows


def write_hours(warehouse, start: datetime, hours: int = 2, seed: int = 7) -> None:
    end = start + timedelta(hours=hours)
    warehouse.replace_window(
        "contact_intervals", "sim15", start, end, stored_frame(warehouse, start, end, seed)
    )


def count(warehouse) -> int:
    return int(warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0])


def slots(warehouse, table: str = "contact_intervals") -> list[str]:
    return list(warehouse.slots(table, "sim15"))


def data_files(warehouse) -> set[str]:
    """Every data file under the warehouse's tables, placeholders aside."""
    return {
        str(p.relative_to(warehouse.path))
        for p in warehouse.tables_dir.rglob("*.parquet")
        if "_schema" not in p.parts
    }


def collect_now(warehouse) -> dict:
    """Garbage collection as if every version had been superseded long ago and every file
    written long ago (what a collection an hour later finds)."""
    return warehouse.collect_garbage(now=time.time() + 3600)


DAY_SUMS_FROM_INTERVALS = """
    SELECT external_queue_id, channel, CAST(interval_start_local AS DATE) AS day_local,
           SUM(offered) AS offered, SUM(answered) AS answered, SUM(abandoned) AS abandoned,
           SUM(handle_time_s) AS handle_time_s, SUM(answered_in_sl) AS answered_in_sl
    FROM contact_intervals GROUP BY ALL ORDER BY ALL
"""
DAY_SUMS = """
    SELECT external_queue_id, channel, day_local, offered, answered, abandoned, handle_time_s,
           answered_in_sl
    FROM contact_days ORDER BY ALL
"""
NOVEMBER_ROWS = """
    SELECT * FROM contact_intervals WHERE interval_start < TIMESTAMPTZ '2026-12-01 00:00+00'
    ORDER BY ALL
"""


def test_empty_warehouse_has_queryable_views(warehouse):
    warehouse.ensure_catalog()
    for view in ("contact_intervals", "queue_intervals", "queue_days", "rejected_rows", "queues"):
        assert warehouse.query(f"SELECT count(*) AS n FROM {view}")["n"][0] == 0
    assert warehouse.catalog_path.is_symlink()


def test_replace_window_is_idempotent_and_keeps_other_windows(warehouse):
    a = datetime(2026, 10, 31, 22, tzinfo=UTC)
    b = a + timedelta(hours=4)  # crosses into November: a day file in each month
    warehouse.replace_window("contact_intervals", "sim15", a, b, frame(a, b))
    assert count(warehouse) == 2 * 16
    assert slots(warehouse) == ["2026-10-31", "2026-11-01"]
    middle = a + timedelta(hours=1), a + timedelta(hours=3)
    changed = frame(*middle, seed=99)
    for _ in range(2):
        warehouse.replace_window("contact_intervals", "sim15", *middle, changed)
    assert count(warehouse) == 2 * 16
    stored = warehouse.read_window("contact_intervals", "sim15", *middle)
    assert stored["offered"].sum() == changed["offered"].sum()
    outside = warehouse.read_window("contact_intervals", "sim15", a, middle[0])
    assert outside["offered"].sum() == frame(a, middle[0])["offered"].sum()
    warehouse.replace_window("contact_intervals", "sim15", *middle, changed.head(0))
    assert count(warehouse) == 2 * 8
    assert not list(warehouse.tables_dir.rglob(".tmp-*"))


def test_every_version_of_a_slot_is_a_new_file_and_no_name_is_reused(warehouse):
    day = NOVEMBER + timedelta(days=3)
    names = []
    for seed in (1, 2, 3):
        write_hours(warehouse, day, seed=seed)
        (path,) = warehouse.slots("contact_intervals", "sim15").values()
        names.append(path)
    assert len(set(names)) == 3
    collect_now(warehouse)  # no connection holds the earlier versions: they go
    assert [p.exists() for p in names] == [False, False, True]


def rejects(*hours: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "integration_id": "sim15",
            "data_kind": "contact_intervals",
            "partition_key": [f"2026-11-02-{hour}:00" for hour in hours],
            "source_ref": [f"export.csv:{n}" for n in range(2, len(hours) + 2)],
            "row_json": "{}",
            "rules": [["offered: >= 0"]] * len(hours),
            "run_id": "r1",
            "rejected_at": pd.Timestamp("2026-11-02 12:00", tz="UTC"),
        }
    )


def test_replace_window_keeps_the_rows_around_it_in_a_file_out_of_time_order(warehouse):
    # Quarantined rows are stored as they came, not in time order: the window is not a slice.
    day = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    warehouse.replace_window("rejected_rows", "sim15", *day, rejects("09", "03", "05", "04", "01"))
    window = datetime(2026, 11, 2, 3, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC)
    warehouse.replace_window("rejected_rows", "sim15", *window, rejects("04"))
    kept = warehouse.read_window("rejected_rows", "sim15", *day)
    assert sorted(kept["partition_key"].str[-5:-3]) == ["01", "04", "05", "09"]


def test_day_summaries_equal_the_intervals_across_files(warehouse):
    # Berlin's 1 November starts at 23:00 UTC on 31 October: one local day, two month files.
    a = datetime(2026, 10, 31, 12, tzinfo=UTC)
    b = datetime(2026, 11, 2, 0, tzinfo=UTC)
    warehouse.replace_window("contact_intervals", "sim15", a, b, stored_frame(warehouse, a, b))
    revised = a + timedelta(hours=10), a + timedelta(hours=14)  # re-import across the month end
    warehouse.replace_window(
        "contact_intervals", "sim15", *revised, stored_frame(warehouse, *revised, seed=99)
    )
    assert slots(warehouse, "contact_days") == slots(warehouse) == ["2026-10-31", "2026-11-01"]
    expected = warehouse.query(DAY_SUMS_FROM_INTERVALS)
    assert len(expected) == 2 * 3  # 2 queues x 31 Oct, 1 Nov, 2 Nov (local)
    pd.testing.assert_frame_equal(warehouse.query(DAY_SUMS), expected, check_dtype=False)


def test_missing_or_stale_summaries_are_rebuilt_with_the_catalog(warehouse, monkeypatch, tmp_path):
    a, b = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC)
    warehouse.replace_window("contact_intervals", "sim15", a, b, stored_frame(warehouse, a, b))
    assert warehouse.refresh_summaries() == 0  # written with the facts: nothing to redo
    expected = warehouse.query(DAY_SUMS_FROM_INTERVALS)
    with warehouse.transaction("sim15") as tx:  # as a warehouse written before sums existed
        tx.write("contact_days", "sim15", "2026-11-03", None)
    assert warehouse.refresh_summaries() == 1
    assert warehouse.refresh_summaries() == 0  # nothing stale: nothing rewritten
    pd.testing.assert_frame_equal(warehouse.query(DAY_SUMS), expected, check_dtype=False)
    # A changed summary query rewrites every summary when the catalog is next built.
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    changed = sql_dir / "summaries" / "contact_days.sql"
    changed.write_text(changed.read_text().replace("SUM(offered)", "SUM(offered) * 0"))
    monkeypatch.setattr("etl.resources.warehouse.SQL_DIR", sql_dir)
    assert warehouse.ensure_catalog()
    assert warehouse.query("SELECT sum(offered) AS n FROM contact_days")["n"][0] == 0


def test_catalog_published_only_when_something_changes(warehouse, monkeypatch, tmp_path):
    assert warehouse.ensure_catalog()
    assert not warehouse.ensure_catalog()
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR / "summaries", sql_dir / "summaries")
    (sql_dir / "10_x.sql").write_text("CREATE VIEW answer AS SELECT 42 AS n;")
    monkeypatch.setattr("etl.resources.warehouse.SQL_DIR", sql_dir)
    assert warehouse.ensure_catalog()
    assert warehouse.query("SELECT n FROM answer")["n"][0] == 42


def test_a_failed_transaction_leaves_no_file_and_changes_nothing(warehouse):
    write_hours(warehouse, NOVEMBER)
    before = warehouse.query(NOVEMBER_ROWS)
    manifest = warehouse.manifest_path("sim15").read_text()
    files_before = data_files(warehouse)

    def crash() -> None:
        with warehouse.transaction("sim15"):
            write_hours(warehouse, NOVEMBER, seed=9)
            write_hours(warehouse, NOVEMBER + timedelta(days=1), seed=9)
            raise RuntimeError("crash in the middle of an import")

    with pytest.raises(RuntimeError, match="crash"):
        crash()
    assert data_files(warehouse) == files_before
    assert warehouse.manifest_path("sim15").read_text() == manifest
    pd.testing.assert_frame_equal(warehouse.query(NOVEMBER_ROWS), before)


def test_a_file_left_by_a_writer_that_died_is_collected_once_old(warehouse):
    write_hours(warehouse, NOVEMBER)
    orphan = warehouse.new_file("contact_intervals", "sim15", "2026-11-01")
    pq.write_table(pa.table({"x": [1]}), orphan)
    warehouse.collect_garbage()
    assert orphan.exists()  # young: perhaps a transaction about to commit
    collect_now(warehouse)
    assert not orphan.exists()
    assert count(warehouse) == 2 * 8


def test_a_month_ticks_began_keeps_its_day_files_after_it_ends(warehouse):
    for day, hour in ((0, 3), (14, 10), (29, 22)):  # ticks through November
        write_hours(warehouse, NOVEMBER + timedelta(days=day, hours=hour))
    days = ["2026-11-01", "2026-11-15", "2026-11-30"]
    assert slots(warehouse) == slots(warehouse, "contact_days") == days
    # A December tick whose revision window reaches back into November writes a November day.
    write_hours(warehouse, datetime(2026, 11, 30, 23, tzinfo=UTC), seed=8)
    assert slots(warehouse) == [*days, "2026-12-01"]
    november = warehouse.query(NOVEMBER_ROWS)
    assert len(november) == 3 * 2 * 8  # the re-imported hour replaced, not added
    # Later writes leave November's files as they are.
    files_of_november = [
        p for s, p in warehouse.slots("contact_intervals", "sim15").items() if s < "2026-12"
    ]
    write_hours(warehouse, datetime(2026, 12, 1, 1, tzinfo=UTC))
    write_hours(warehouse, datetime(2026, 12, 2, 1, tzinfo=UTC))
    assert [
        p for s, p in warehouse.slots("contact_intervals", "sim15").items() if s < "2026-12"
    ] == files_of_november
    pd.testing.assert_frame_equal(warehouse.query(NOVEMBER_ROWS), november)
    assert count(warehouse) == len(november) + 5 * 8  # December: 1 + 2 + 2 hours
    # A later re-import into November (the sensor filling a hole) writes its day file.
    write_hours(warehouse, NOVEMBER + timedelta(days=20), seed=9)
    assert "2026-11-21" in slots(warehouse)
    assert slots(warehouse, "contact_days") == slots(warehouse)
    assert count(warehouse) == len(november) + 7 * 8
    pd.testing.assert_frame_equal(
        warehouse.query(DAY_SUMS), warehouse.query(DAY_SUMS_FROM_INTERVALS), check_dtype=False
    )


def test_a_whole_month_over_day_files_rewrites_its_days(warehouse):
    write_hours(warehouse, NOVEMBER + timedelta(days=1))
    write_hours(warehouse, NOVEMBER + timedelta(days=4))
    december = datetime(2026, 12, 1, tzinfo=UTC)
    whole = stored_frame(warehouse, NOVEMBER, NOVEMBER + timedelta(days=2), seed=3)
    warehouse.replace_window("contact_intervals", "sim15", NOVEMBER, december, whole)
    # Days 1 and 2 hold the new rows; day 5 had rows and now has none, so it has no file.
    assert slots(warehouse) == slots(warehouse, "contact_days") == ["2026-11-01", "2026-11-02"]
    assert count(warehouse) == len(whole) == 2 * 24 * 8
    stored = warehouse.read_window("contact_intervals", "sim15", NOVEMBER, december)
    assert stored["offered"].sum() == whole["offered"].sum()
    pd.testing.assert_frame_equal(
        warehouse.query(DAY_SUMS), warehouse.query(DAY_SUMS_FROM_INTERVALS), check_dtype=False
    )


def test_a_whole_month_into_an_empty_month_is_one_file_that_later_windows_rewrite(warehouse):
    december = datetime(2026, 12, 1, tzinfo=UTC)
    whole = stored_frame(warehouse, NOVEMBER, december)
    warehouse.replace_window("contact_intervals", "sim15", NOVEMBER, december, whole)
    assert slots(warehouse) == slots(warehouse, "contact_days") == ["2026-11"]
    write_hours(warehouse, NOVEMBER + timedelta(days=10), seed=8)  # a re-import of two hours
    assert slots(warehouse) == ["2026-11"]
    assert count(warehouse) == len(whole) == 30 * 24 * 8
    ten = NOVEMBER + timedelta(days=10)
    changed = warehouse.read_window("contact_intervals", "sim15", ten, ten + timedelta(hours=2))
    new = stored_frame(warehouse, ten, ten + timedelta(hours=2), 8)
    assert changed["offered"].sum() == new["offered"].sum()


# -- readers ---------------------------------------------------------------------------------
HELD_READER = textwrap.dedent(
    """
    import json, os, sys, time, duckdb
    path, stop = sys.argv[1], sys.argv[2]
    con = duckdb.connect(path, read_only=True)
    out = {"queries": 0, "errors": [], "counts": set(), "hour_counts": set()}
    print("open", flush=True)
    while not os.path.exists(stop):
        try:
            rows = con.execute(
                "SELECT date_trunc('hour', interval_start) h, count(*) FROM contact_intervals "
                "GROUP BY 1"
            ).fetchall()
            out["hour_counts"].update(n for _, n in rows)
            out["counts"].add(sum(n for _, n in rows))
            out["queries"] += 1
        except Exception as exc:
            out["errors"].append(repr(exc))
        time.sleep(0.005)
    con.close()
    fresh = duckdb.connect(path, read_only=True)
    reconnected = fresh.execute("SELECT count(*) FROM contact_intervals").fetchone()[0]
    out = {k: sorted(v) if isinstance(v, set) else v for k, v in out.items()}
    print(json.dumps({**out, "reconnected": reconnected}))
    """
)


def test_a_connection_reads_one_whole_state_however_long_it_stays_open(
    settings, warehouse, instance, tmp_path, monkeypatch
):
    # Imports rewrite the same day files again and again and garbage is collected after each
    # write; the connection opened before keeps its state: same rows, no error, no file gone.
    monkeypatch.setattr(warehouse_module, "GC_INTERVAL_S", 0.0)
    monkeypatch.setattr(warehouse_module, "ORPHAN_AGE_S", 0.0)
    monkeypatch.setattr(catalog_module, "CONNECT_GRACE_S", 0.0)
    integration = make_integration()
    defs = definitions(settings, integration)
    start = datetime(2026, 11, 16, tzinfo=UTC)
    assert import_range(defs, instance, integration.id, start, start + timedelta(hours=2)).success
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", HELD_READER, str(warehouse.catalog_path), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        for _ in range(3):
            result = import_range(
                defs, instance, integration.id, start, start + timedelta(hours=48)
            )
            assert result.success
            collect_now(warehouse)
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["errors"] == []
    assert report["queries"] > 0
    assert report["counts"] == [3 * 4 * 2]  # the two hours it opened with, every time
    assert report["hour_counts"] == [12]  # every hour whole: 3 queues x 4 intervals
    assert report["reconnected"] == 3 * 4 * 48  # a new connection sees the newest state
    collect_now(warehouse)  # now no one holds the first state: only current files remain
    current = {
        str(p.relative_to(warehouse.path))
        for m in warehouse.manifests().values()
        for p in [warehouse.path / e.path for e in m.files.values()]
    }
    assert data_files(warehouse) == current
    assert len(list(warehouse.catalog.dir.glob("*.duckdb"))) == 1


MONTH_READER = textwrap.dedent(
    """
    import json, os, sys, duckdb
    path, stop, reconnect = sys.argv[1], sys.argv[2], sys.argv[3] == "reconnect"
    con = None if reconnect else duckdb.connect(path, read_only=True)
    out = {"queries": 0, "errors": [], "seen": []}
    print("open", flush=True)
    while not os.path.exists(stop):
        try:
            reader = duckdb.connect(path, read_only=True) if reconnect else con
            rows = reader.execute(
                "SELECT strftime(interval_start, '%Y-%m') AS m, count(*) FROM contact_intervals "
                "GROUP BY m ORDER BY m"
            ).fetchall()
            if reconnect:
                reader.close()
            out["seen"].append(rows)
            out["queries"] += 1
        except Exception as exc:
            out["errors"].append(repr(exc))
    print(json.dumps(out))
    """
)
MONTHS = [datetime(2024 + m // 12, m % 12 + 1, 1, tzinfo=UTC) for m in range(24)]


def months_read_while(
    warehouse, tmp_path, monkeypatch, write: Callable[[datetime, datetime], None], reconnect: bool
) -> dict:
    """Write three one-hour ticks (day files) into each of `MONTHS` but the last, then call
    `write(month, following)`, while another process counts rows per month over and over (one
    connection, or a new one per query), and garbage is collected after every write (versions
    superseded a second ago and no longer held go at once). Every count it saw must be one the
    writes left: a finished month has all three hours, the month being written one, two or
    three. A month missing, short or doubled is a query that read half a write."""
    monkeypatch.setattr(warehouse_module, "GC_INTERVAL_S", 0.0)
    monkeypatch.setattr(warehouse_module, "ORPHAN_AGE_S", 0.0)
    monkeypatch.setattr(catalog_module, "CONNECT_GRACE_S", 1.0)

    def tick(start: datetime) -> None:
        end = start + timedelta(hours=1)
        warehouse.replace_window("contact_intervals", "sim15", start, end, frame(start, end))

    tick(MONTHS[0])
    stop = tmp_path / "stop"
    mode = "reconnect" if reconnect else "one connection"
    reader = subprocess.Popen(
        [sys.executable, "-c", MONTH_READER, str(warehouse.catalog_path), str(stop), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        for month, following in itertools.pairwise(MONTHS):
            tick(month + timedelta(days=1))
            tick(month + timedelta(days=2))
            tick(following)
            write(month, following)
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["queries"] > 20
    assert report["errors"] == []
    names = [f"{m:%Y-%m}" for m in MONTHS]
    for seen in report["seen"]:
        got = [name for name, _ in seen]
        assert got == names[: len(got)]  # no month missing
        assert all(n == 3 * 8 for _, n in seen[:-1]), seen  # finished months: whole, once
        assert seen[-1][1] in (8, 16, 24)
    if not reconnect:
        assert all(seen == [[names[0], 8]] for seen in report["seen"])  # its state, throughout
    print(f"{report['queries']} queries, 0 errors")
    return report


@pytest.mark.parametrize("reconnect", [False, True], ids=["one connection", "reconnecting"])
def test_readers_never_fail_nor_see_half_a_write_while_history_rewrites_months(
    warehouse, tmp_path, monkeypatch, reconnect
):
    def history_run(month: datetime, following: datetime) -> None:
        # The whole month again with the same rows, as a re-run history import would.
        whole = frame(month, following)
        times = whole["interval_start"]
        again = whole[(times.dt.hour == 0) & times.dt.day.isin([1, 2, 3])]
        warehouse.replace_window("contact_intervals", "sim15", month, following, again)

    months_read_while(warehouse, tmp_path, monkeypatch, history_run, reconnect)
    assert len(slots(warehouse)) == 23 * 3 + 1


@pytest.mark.parametrize("reconnect", [False, True], ids=["one connection", "reconnecting"])
def test_readers_never_fail_nor_see_half_a_write_while_months_are_compacted(
    warehouse, tmp_path, monkeypatch, reconnect
):
    compacted = []

    def compact(month: datetime, following: datetime) -> None:
        compacted.append(warehouse.compact_months(before=following).months)

    months_read_while(warehouse, tmp_path, monkeypatch, compact, reconnect)
    assert sum(compacted) == 23
    names = [f"{m:%Y-%m}" for m in MONTHS]
    assert slots(warehouse) == [*names[:-1], f"{names[-1]}-01"]


def test_compaction_beside_an_open_connection_keeps_its_files_until_it_closes(warehouse):
    for day, hour in ((0, 3), (14, 10), (29, 22)):  # ticks through November
        write_hours(warehouse, NOVEMBER + timedelta(days=day, hours=hour))
    write_hours(warehouse, datetime(2026, 12, 1, 1, tzinfo=UTC))
    november = warehouse.query(NOVEMBER_ROWS)
    day_files = [
        p for s, p in warehouse.slots("contact_intervals", "sim15").items() if s < "2026-12"
    ]
    reader = holding_open(warehouse.catalog_path)
    try:
        done = warehouse.compact_months(before=datetime(2026, 12, 2, tzinfo=UTC))
        assert (done.months, done.files) == (1, 3)  # December has not ended
        assert slots(warehouse) == slots(warehouse, "contact_days") == ["2026-11", "2026-12-01"]
        pd.testing.assert_frame_equal(warehouse.query(NOVEMBER_ROWS), november)
        collect_now(warehouse)
        assert all(p.exists() for p in day_files)  # the open connection still lists them
    finally:
        reader.communicate("")
    collect_now(warehouse)
    assert not any(p.exists() for p in day_files)
    pd.testing.assert_frame_equal(
        warehouse.query(DAY_SUMS), warehouse.query(DAY_SUMS_FROM_INTERVALS), check_dtype=False
    )
    month = pq.read_table(warehouse.slots("contact_intervals", "sim15")["2026-11"])
    times = month.column("interval_start").to_pylist()
    assert times == sorted(times)
    assert warehouse.compact_months(before=datetime(2026, 12, 2, tzinfo=UTC)).months == 0
    # A later re-import into November (the sensor filling a hole) goes into its month file.
    write_hours(warehouse, NOVEMBER + timedelta(days=20), seed=9)
    assert slots(warehouse) == ["2026-11", "2026-12-01"]
    assert count(warehouse) == len(november) + 2 * 8 + 2 * 8


HELD_QUERY = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM contact_intervals").fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute("SELECT count(*) FROM contact_intervals").fetchone()[0], flush=True)
"""


def test_the_connection_that_compaction_ran_beside_reads_the_same_rows_after_it(warehouse):
    for day in (3, 4, 5):
        write_hours(warehouse, NOVEMBER + timedelta(days=day))
    reader = subprocess.Popen(
        [sys.executable, "-c", HELD_QUERY, str(warehouse.catalog_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    before = int(reader.stdout.readline())
    assert warehouse.compact_months(before=datetime(2026, 12, 2, tzinfo=UTC)).months == 1
    collect_now(warehouse)
    out, err = reader.communicate("go\n", timeout=60)
    assert reader.returncode == 0, err
    assert int(out) == before == 3 * 2 * 8


# -- writers ---------------------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta, UTC
    from etl.resources.warehouse import Warehouse
    from tests.resources.test_warehouse import WRITES, stored_frame
    warehouse = Warehouse(root=sys.argv[1])
    for start, hours, seed in WRITES[int(sys.argv[2])::2]:
        end = start + timedelta(hours=hours)
        warehouse.replace_window(
            "contact_intervals", "sim15", start, end, stored_frame(warehouse, start, end, seed)
        )
    """
)
# Windows of one integration in one month, interleaved between two writers; overlapping ones
# carry the same rows, so any order of the two writers gives one result.
WRITES = [
    (NOVEMBER + timedelta(days=day, hours=hour), 3, 7)
    for day in range(0, 10)
    for hour in (0, 2, 5, 22)
]


def test_two_writers_on_one_integration_and_month_give_the_single_writer_result(tmp_path):
    together = Warehouse(root=str(tmp_path / "together"))
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(together.path), str(n)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (0, 1)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    alone = Warehouse(root=str(tmp_path / "alone"))
    for start, hours, seed in WRITES:
        end = start + timedelta(hours=hours)
        alone.replace_window(
            "contact_intervals", "sim15", start, end, stored_frame(alone, start, end, seed)
        )
    for sql in (NOVEMBER_ROWS, DAY_SUMS):
        pd.testing.assert_frame_equal(together.query(sql), alone.query(sql))
    assert slots(together) == slots(alone)


def test_imports_of_different_integrations_at_once_keep_each_others_rows(tmp_path):
    shared = Warehouse(root=str(tmp_path / "w"))
    script = textwrap.dedent(
        """
        import sys
        from datetime import datetime, timedelta, UTC
        from etl.resources.warehouse import Warehouse
        from tests.resources.test_warehouse import frame
        w = Warehouse(root=sys.argv[1])
        start = datetime(2026, 11, 1, tzinfo=UTC)
        for day in range(12):
            a = start + timedelta(days=day)
            w.replace_window("contact_intervals", sys.argv[2], a, a + timedelta(hours=2),
                             frame(a, a + timedelta(hours=2)).assign(integration_id=sys.argv[2]))
        """
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(shared.path), name],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("north", "south")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    counts = shared.query(
        "SELECT integration_id, count(*) AS n FROM contact_intervals GROUP BY ALL ORDER BY ALL"
    )
    assert counts.to_dict("records") == [
        {"integration_id": "north", "n": 12 * 2 * 8},
        {"integration_id": "south", "n": 12 * 2 * 8},
    ]


# -- only the warehouse's own files ----------------------------------------------------------
def test_a_foreign_file_is_never_read_nor_removed_and_is_named(warehouse):
    write_hours(warehouse, NOVEMBER + timedelta(days=3))
    before = warehouse.query(NOVEMBER_ROWS)
    (day_file,) = warehouse.slots("contact_intervals", "sim15").values()
    copied = day_file.parent / "zz.parquet"
    # An analyst's read-only connection can still write files: a copy of the rows beside them.
    with duckdb.connect(str(warehouse.catalog_path), read_only=True) as con:
        con.execute(f"COPY (SELECT * FROM contact_intervals) TO '{copied}'")
    other = warehouse.tables_dir / "contact_intervals" / "sim15" / "2026-11" / "notes.parquet"
    other.write_text("not parquet at all")
    outsider = warehouse.tables_dir / "contact_intervals" / "other" / "2026-11" / "x.parquet"
    outsider.parent.mkdir(parents=True)
    shutil.copy(copied, outsider)
    write_hours(warehouse, NOVEMBER + timedelta(days=4))  # a new version of the catalog
    after = warehouse.query(NOVEMBER_ROWS)
    assert len(after) == 2 * len(before)  # the two days once each; the copy counted nowhere
    collect_now(warehouse)
    assert [p.exists() for p in (copied, other, outsider)] == [True, True, True]
    assert warehouse.foreign_files() == sorted([copied, other, outsider])
    assert warehouse.foreign_files("sim15") == sorted([copied, other])


# -- catalog versions ------------------------------------------------------------------------
def test_a_version_goes_only_when_superseded_a_while_ago_and_no_one_holds_it(warehouse):
    write_hours(warehouse, NOVEMBER)
    first = warehouse.catalog.current_path()
    reader = holding_open(warehouse.catalog_path)
    try:
        write_hours(warehouse, NOVEMBER, seed=2)
        second = warehouse.catalog.current_path()
        write_hours(warehouse, NOVEMBER, seed=3)
        warehouse.collect_garbage()  # both just superseded: kept for the connection grace
        assert [first.exists(), second.exists()] == [True, True]
        collect_now(warehouse)
        assert first.exists()  # held open by the reader
        assert not second.exists()  # no one opened it
    finally:
        reader.communicate("")
    collect_now(warehouse)
    assert not first.exists()
    assert [p.name for p in warehouse.catalog.dir.glob("*.duckdb")] == [
        warehouse.catalog.current_path().name
    ]


# -- a warehouse of the earlier layout -------------------------------------------------------
LEGACY_VIEWS = """
CREATE VIEW contact_intervals AS
SELECT * FROM read_parquet('{w}/facts/contact_intervals/*/*/*.parquet');
"""


def test_a_warehouse_of_the_earlier_layout_is_taken_over_in_place(warehouse):
    # The earlier layout: facts/<table>/<owner>/<YYYY-MM>/<slot>.parquet, registries and
    # mappings in files of their own, and wfm.duckdb a plain file of glob views.
    root = warehouse.path
    rows = stored_frame(warehouse, NOVEMBER, NOVEMBER + timedelta(hours=2))
    table = warehouse_module._to_arrow(rows, FACT_SCHEMAS["contact_intervals"])
    legacy = root / "facts" / "contact_intervals" / "sim15" / "2026-11" / "2026-11-01.parquet"
    legacy.parent.mkdir(parents=True)
    pq.write_table(table, legacy)
    sums = root / "facts" / "contact_days" / "sim15" / "2026-11" / "2026-11-01.parquet"
    sums.parent.mkdir(parents=True)
    pq.write_table(warehouse._summary_of("contact_intervals", table), sums)
    mapping = root / "mappings" / "queue_mappings.parquet"
    mapping.parent.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "integration_id": ["sim15"],
                "external_queue_id": ["sales_calls"],
                "destination_queue": ["Sales"],
            }
        ),
        mapping,
    )
    with duckdb.connect(str(root / "wfm.duckdb")) as con:
        con.execute(LEGACY_VIEWS.format(w=root))
    reader = holding_open(root / "wfm.duckdb")  # an analyst still on the earlier catalog
    try:
        assert warehouse.ensure_catalog()
        assert warehouse.catalog_path.is_symlink()
        assert count(warehouse) == 2 * 8
        assert (
            warehouse.query("SELECT sum(offered) AS n FROM contact_days")["n"][0]
            == rows["offered"].sum()
        )
        assert warehouse.query("SELECT destination_queue FROM queue_mappings")[
            "destination_queue"
        ].tolist() == ["Sales"]
        write_hours(warehouse, NOVEMBER, seed=9)  # a new version of the day, in tables/
        collect_now(warehouse)
        assert legacy.exists()  # the earlier catalog is open: its files stay
    finally:
        reader.communicate("")
    collect_now(warehouse)
    assert not legacy.exists()
    assert mapping.exists()  # still the current mapping
    assert count(warehouse) == 2 * 8
    assert warehouse.foreign_files() == []


def test_manifests_are_plain_json_that_name_existing_files(warehouse):
    write_hours(warehouse, NOVEMBER)
    manifest = Manifest.load(warehouse.manifest_path("sim15"), "sim15")
    assert manifest.generation >= 1
    for entry in manifest.files.values():
        assert (warehouse.path / entry.path).exists()
        assert pq.read_metadata(warehouse.path / entry.path).num_rows == entry.rows
    assert set(manifest.tables()) >= {"contact_intervals", "contact_days"}
    assert set(SUMMARY_SCHEMAS) <= manifest.tables()
    assert os.path.isabs(str(warehouse.path))
