"""Window arithmetic: the gap sensor's sets of hours."""

from datetime import UTC, datetime

from etl.windows import chunks, hours_in, intersect, normalize, of_hours, subtract, union


def h(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def test_normalize_merges_touching_and_overlapping():
    assert normalize([(h(2), h(3)), (h(1), h(2)), (h(2, 5), h(4)), (h(5), h(5))]) == [(h(1), h(4))]


def test_subtract_and_intersect():
    whole = [(h(1), h(10))]
    holes = [(h(2), h(3)), (h(5), h(6)), (h(9, 12), h(12))]
    rest = subtract(whole, holes)
    assert rest == [(h(1), h(2)), (h(3), h(5)), (h(6), h(9, 12))]
    assert union(rest, intersect(whole, holes)) == whole
    assert hours_in(rest) + hours_in(intersect(whole, holes)) == hours_in(whole) == 9 * 24


def test_of_hours():
    assert of_hours([h(1, 3), h(1, 4), h(1, 7)]) == [(h(1, 3), h(1, 5)), (h(1, 7), h(1, 8))]


def test_chunks_cut_at_months_and_size_newest_first():
    pieces = list(chunks([(h(30, 20, month=10), h(2, 6))], 24))
    assert pieces == [
        (h(2), h(2, 6)),
        (h(1), h(2)),
        (h(31, month=10), h(1)),
        (h(30, 20, month=10), h(31, month=10)),
    ]
    # the default chunk (744 h = 31 days): one piece per month
    year = list(chunks([(datetime(2025, 11, 18, tzinfo=UTC), h(18))], 744))
    assert len(year) == 13
    assert year[0] == (h(1), h(18))
    assert year[-1] == (datetime(2025, 11, 18, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC))
    assert sum(hours_in([p]) for p in year) == 365 * 24
