"""The import log, the coverage views and the coverage check, on real imports."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from etl.assets.coverage import coverage_of
from etl.assets.import_log import import_log_relation
from etl.resources.sources import build_source
from etl.resources.sources.simulator.simulator import SimulatorSource
from tests.conftest import make_integration
from tests.helpers import definitions, fixed_clock, import_range


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def imported(defs, instance, integration, start, end, clock) -> dg.ExecuteInProcessResult:
    with fixed_clock(clock):
        result = import_range(defs, instance, integration.id, start, end)
    assert result.success
    return result


def coverage_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "coverage"]
    return evaluation


def test_local_grid_and_dst_day(settings, warehouse, instance):
    """Expected intervals follow the local grid: 100 quarter hours on the day Berlin's clocks
    go back, 60-minute intervals at :30 UTC in Kolkata."""
    berlin = make_integration(id="berlin", history_start="2026-10-24T22:00")
    kolkata = make_integration(
        id="kolkata", interval_minutes=60, timezone="Asia/Kolkata", history_start="2026-10-24"
    )
    defs = definitions(settings, berlin, kolkata)
    imported(
        defs, instance, berlin, at(24, 22, month=10), at(25, 23, month=10), at(26, 0, month=10)
    )
    imported(defs, instance, kolkata, at(24, 0, month=10), at(25, 0, month=10), at(25, 1, month=10))

    day = warehouse.query(
        "SELECT * FROM coverage WHERE integration_id = 'berlin' AND day_local = DATE '2026-10-25'"
    ).iloc[0]
    assert (day.expected_intervals, day.loaded_intervals, day.missing_intervals) == (100, 100, 0)
    starts = warehouse.query(
        "SELECT DISTINCT minute(interval_start) AS m FROM coverage_intervals "
        "WHERE integration_id = 'kolkata'"
    )["m"].tolist()
    assert starts == [30]
    kolkata_days = warehouse.query(
        "SELECT sum(expected_intervals) AS e, sum(missing_intervals) AS m FROM coverage "
        "WHERE integration_id = 'kolkata'"
    ).iloc[0]
    # 00:00 UTC is 05:30 local: the first interval starts at 00:30, the last at 23:30
    # (in the 23:00 partition, ended at 00:30, before the import at 01:00)
    assert (kolkata_days.e, kolkata_days.m) == (24, 0)


class QuietNights(SimulatorSource):
    """No row at all between 02:00 and 04:00 UTC, as a real ACD omits empty intervals."""

    def contacts(self, start, end):
        extract = super().contacts(start, end)
        hours = extract.frame["interval_start"].dt.hour
        extract.frame = extract.frame[(hours < 2) | (hours >= 4)]
        return extract


def test_an_empty_hour_is_not_a_hole(settings, warehouse, instance):
    integration = make_integration(history_start="2026-11-10")
    base = build_source(integration)
    quiet = QuietNights(
        integration_id=base.integration_id,
        timezone=base.timezone,
        interval_minutes=base.interval_minutes,
        settings=base.settings,
    )
    defs = definitions(settings, integration, **{f"source_{integration.id}": quiet})
    imported(defs, instance, integration, at(10, 0), at(10, 6), at(10, 6))
    log = warehouse.query("SELECT hour(partition_start) AS h, rows_written FROM imports ORDER BY 1")
    assert log["rows_written"].tolist() == [12, 12, 0, 0, 12, 12]
    assert warehouse.query("SELECT sum(missing_intervals) AS m FROM coverage")["m"][0] == 0


def test_rejected_rows_and_incomplete_hours(settings, warehouse, instance):
    integration = make_integration(
        history_start="2026-11-10",
        max_rejected_share=0.5,
        source={"seed": 7, "queues": 3, "bad_rows_per_day": 40},
    )
    defs = definitions(settings, integration)
    imported(defs, instance, integration, at(10, 0), at(10, 11), at(10, 10, 20))  # 10:00 open
    imported(defs, instance, integration, at(10, 11), at(10, 12), at(10, 12, 5))

    day = warehouse.query("SELECT * FROM coverage").iloc[0]
    rejected = warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0]
    assert rejected > 0
    assert day.rejected_rows == rejected
    # 10:00 was imported at 10:20: 10:15, 10:30 and 10:45 had not ended, 10:00 had
    assert day.incomplete_intervals == 3
    assert day.missing_intervals == 3
    assert day.expected_intervals == 12 * 4
    gaps = warehouse.query("SELECT gap_start, gap_end, intervals FROM coverage_gaps")
    assert gaps.values.tolist() == [[pd.Timestamp(at(10, 10, 15)), pd.Timestamp(at(10, 11)), 3]]


def test_coverage_check_names_holes_older_than_the_revision_window(settings, warehouse, instance):
    integration = make_integration(history_start="2026-11-01T00:00", revision_window_hours=2)
    defs = definitions(settings, integration)
    imported(defs, instance, integration, at(1, 0), at(1, 6), at(1, 6, 5))
    first = coverage_check(imported(defs, instance, integration, at(1, 9), at(1, 12), at(1, 12, 5)))

    # 06:00..09:00 is older than 12:05 - 2 h: a hole, named, an error
    assert not first.passed
    assert first.severity == dg.AssetCheckSeverity.ERROR
    assert "2026-11-01 06:00..2026-11-01 09:00 UTC (12 intervals)" in first.description
    assert first.metadata["missing_intervals"].value == 12

    # a hole inside the revision window (the next tick's business) does not count
    filled = coverage_check(imported(defs, instance, integration, at(1, 6), at(1, 9), at(1, 12, 6)))
    assert filled.passed
    later = coverage_of(warehouse, integration, "contacts")
    assert later.gaps == []


def test_coverage_check_warns_while_history_is_on_its_way(settings, warehouse, instance):
    integration = make_integration(history_start="2026-10-30")
    defs = definitions(settings, integration)
    result = imported(defs, instance, integration, at(1, 0), at(1, 12), at(1, 12, 5))
    check = coverage_check(result)
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "(history not imported yet)" in check.description
    assert "2026-10-30 00:00..2026-11-01 00:00 UTC (192 intervals)" in check.description


def test_coverage_of_one_integration_reads_its_own_log(settings, warehouse, instance):
    """The check reads only its integration's import-log files (the views' macros on them) and
    finds what the views find for it; an integration without imports has nothing to judge."""
    holey = make_integration(id="holey", history_start="2026-11-01T00:00")
    whole = make_integration(id="whole", history_start="2026-11-01T00:00")
    never = make_integration(id="never", history_start="2026-11-01T00:00")
    defs = definitions(settings, holey, whole, never)
    imported(defs, instance, holey, at(1, 0), at(1, 3), at(1, 9, 5))
    imported(defs, instance, holey, at(1, 5), at(1, 9), at(1, 9, 5))
    imported(defs, instance, whole, at(1, 0), at(1, 9), at(1, 9, 5))

    # The integration's own view of its log lists only its own files.
    with warehouse.connect() as con:
        (sql,) = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = '_import_log__holey.contacts'"
        ).fetchone()
    (own,) = warehouse.slots("import_log", "holey.contacts").values()
    assert str(own) in sql
    assert "whole" not in sql
    view = warehouse.query(
        "SELECT gap_start, gap_end, intervals FROM coverage_gaps WHERE integration_id = 'holey'"
    )
    assert view.values.tolist() == [[pd.Timestamp(at(1, 3)), pd.Timestamp(at(1, 5)), 8]]
    holes = coverage_of(warehouse, holey, "contacts")
    assert [(g.start, g.end, g.intervals) for g in holes.gaps] == [(at(1, 3), at(1, 5), 8)]
    assert holes.first_loaded == at(1, 0)
    assert coverage_of(warehouse, whole, "contacts").gaps == []
    nothing = coverage_of(warehouse, never, "contacts")
    assert (nothing.last_import, nothing.gaps) == (None, [])


def test_holes_only_keeps_every_interval_not_loaded(settings, warehouse, instance):
    """`only_holes` skips hours whose every interval ended before their import: the intervals
    not loaded are the same as in the full expansion, on a 15-minute grid and on a 60-minute
    grid at :30 UTC (whose last interval ends 90 minutes after its hour starts)."""
    berlin = make_integration(id="berlin", history_start="2026-11-01T00:00")
    kolkata = make_integration(
        id="kolkata", interval_minutes=60, timezone="Asia/Kolkata", history_start="2026-11-01"
    )
    defs = definitions(settings, berlin, kolkata)
    imported(defs, instance, berlin, at(1, 0), at(1, 4), at(1, 3, 20))  # 03:00 open
    imported(defs, instance, berlin, at(1, 6), at(1, 8), at(1, 9))
    imported(defs, instance, kolkata, at(1, 0), at(1, 3), at(1, 3, 10))  # 02:30 ends 03:30
    imported(defs, instance, kolkata, at(1, 5), at(1, 8), at(1, 9, 40))

    for integration in (berlin, kolkata):
        log = import_log_relation(integration.id, "contacts")
        columns = "interval_start, interval_end, status"
        full = warehouse.query(
            f"SELECT {columns} FROM coverage_intervals_of(?) WHERE status <> 'loaded' "
            "ORDER BY interval_start",
            [log],
        )
        holes = warehouse.query(
            f"SELECT {columns} FROM coverage_intervals_of(?, only_holes := true) "
            "WHERE status <> 'loaded' ORDER BY interval_start",
            [log],
        )
        assert len(full) > 0
        assert holes.values.tolist() == full.values.tolist()
    kolkata_holes = warehouse.query(
        "SELECT interval_start, status FROM coverage_intervals WHERE integration_id = 'kolkata' "
        "AND status <> 'loaded' ORDER BY interval_start"
    ).values.tolist()
    assert kolkata_holes[0] == [pd.Timestamp(at(1, 2, 30)), "incomplete"]
