"""Time arithmetic of partitions and files: months and days a window touches."""

from datetime import UTC, datetime

from etl.partitions import days, months


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def test_months_and_days_cut_a_window_at_utc_boundaries_and_clip_it():
    assert list(months(at(10, 31, 22), at(11, 1, 2))) == [
        (at(10, 31, 22), at(11, 1)),
        (at(11, 1), at(11, 1, 2)),
    ]
    assert list(days(at(11, 29, 22), at(12, 1, 3))) == [
        (at(11, 29, 22), at(11, 30)),
        (at(11, 30), at(12, 1)),
        (at(12, 1), at(12, 1, 3)),
    ]
    assert list(days(at(11, 2, 5), at(11, 2, 6))) == [(at(11, 2, 5), at(11, 2, 6))]
    assert list(days(at(11, 2), at(11, 2))) == []
