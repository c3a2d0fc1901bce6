"""The Parquet warehouse and its read-only catalog, with real files and real DuckDB."""

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pandas as pd

from etl.resources.sources import build_source
from tests.conftest import make_integration
from tests.helpers import definitions, import_range


def frame(start: datetime, end: datetime, seed: int = 7) -> pd.DataFrame:
    source = build_source(make_integration(source={"seed": seed, "queues": 2}))
    return source.contacts(start, end).frame


def count(warehouse) -> int:
    return int(warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0])


def test_empty_warehouse_has_queryable_views(warehouse):
    warehouse.ensure_catalog()
    for view in ("contact_intervals", "queue_intervals", "queue_days", "rejected_rows", "queues"):
        assert warehouse.query(f"SELECT count(*) AS n FROM {view}")["n"][0] == 0


def test_replace_window_is_idempotent_and_keeps_other_windows(warehouse):
    a = datetime(2026, 10, 31, 22, tzinfo=UTC)
    b = a + timedelta(hours=4)  # crosses into November: two month files
    warehouse.replace_window("contact_intervals", "sim15", a, b, frame(a, b))
    assert count(warehouse) == 2 * 16
    months = sorted(p.name for p in warehouse.fact_dir("contact_intervals").glob("sim15/*"))
    assert months == ["2026-10.parquet", "2026-11.parquet"]
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
    assert not list(warehouse.fact_dir("contact_intervals").rglob(".tmp-*"))


def test_catalog_rebuilt_only_when_views_change(warehouse, monkeypatch, tmp_path):
    assert warehouse.ensure_catalog()
    assert not warehouse.ensure_catalog()
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "10_x.sql").write_text("CREATE VIEW answer AS SELECT 42 AS n;")
    monkeypatch.setattr("etl.resources.warehouse.SQL_DIR", sql_dir)
    assert warehouse.ensure_catalog()
    assert warehouse.query("SELECT n FROM answer")["n"][0] == 42


READER = textwrap.dedent(
    """
    import json, sys, time, duckdb
    path, stop = sys.argv[1], sys.argv[2]
    con = duckdb.connect(path, read_only=True)
    out = {"queries": 0, "errors": [], "hour_counts": set()}
    import os
    while not os.path.exists(stop):
        try:
            rows = con.execute(
                "SELECT date_trunc('hour', interval_start) h, count(*) FROM contact_intervals "
                "GROUP BY 1"
            ).fetchall()
            out["hour_counts"].update(n for _, n in rows)
            out["queries"] += 1
        except Exception as exc:
            out["errors"].append(repr(exc))
        time.sleep(0.005)
    after = con.execute("SELECT count(*) FROM contact_intervals").fetchone()[0]
    con.close()
    fresh = duckdb.connect(path, read_only=True)
    reconnected = fresh.execute("SELECT count(*) FROM contact_intervals").fetchone()[0]
    out["hour_counts"] = sorted(out["hour_counts"])
    print(json.dumps({**out, "after": after, "reconnected": reconnected}))
    """
)


def test_reader_holding_catalog_never_blocks_or_sees_half_windows(
    settings, warehouse, instance, tmp_path
):
    integration = make_integration()
    defs = definitions(settings, integration)
    start = datetime(2026, 11, 16, tzinfo=UTC)
    assert import_range(defs, instance, integration.id, start, start + timedelta(hours=2)).success
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(warehouse.catalog_path), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(3):
            result = import_range(
                defs, instance, integration.id, start, start + timedelta(hours=48)
            )
            assert result.success
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["errors"] == []
    assert report["queries"] > 0
    assert report["hour_counts"] == [12]  # every hour seen complete: 3 queues x 4 intervals
    assert report["reconnected"] == 3 * 4 * 48
