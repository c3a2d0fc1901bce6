"""The import log's counts per hour: what it says each hour holds."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from etl.assets.import_log import COUNTED_BY_POSITION, hour_counts


def utc(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True, format="ISO8601"))


def test_rows_are_counted_in_the_utc_hour_they_fall_in_and_missing_times_not_at_all():
    times = utc(
        "2026-01-01T00:15:00Z",
        "2026-01-01T00:59:59.999999999Z",
        "2026-01-01T03:00:00Z",
        None,
        "2025-12-31T23:59:59.999999999Z",
        "2026-01-01T01:30:00+01:00",  # 00:30 UTC
    )
    counts = hour_counts(times)
    assert counts.to_dict() == {
        pd.Timestamp("2025-12-31T23:00Z"): 1,
        pd.Timestamp("2026-01-01T00:00Z"): 3,
        pd.Timestamp("2026-01-01T03:00Z"): 1,
    }
    assert counts.index.is_monotonic_increasing
    # The same as pandas' floor to the hour and value count, which it replaces.
    expected = times.dropna().dt.floor("h").value_counts().sort_index()
    pd.testing.assert_series_equal(counts, expected, check_names=False, check_freq=False)


def test_times_before_the_lower_bound_count_in_its_hour():
    times = utc("2025-12-31T22:10:00Z", "2026-01-01T00:05:00Z", "2026-01-01T02:00:00Z")
    counts = hour_counts(times, lower=datetime(2026, 1, 1, tzinfo=UTC))
    assert counts.to_dict() == {
        pd.Timestamp("2026-01-01T00:00Z"): 2,
        pd.Timestamp("2026-01-01T02:00Z"): 1,
    }


@pytest.mark.parametrize("unit", ["ns", "us"])
def test_times_far_apart_before_1970_and_in_other_units_are_counted_alike(unit: str):
    times = utc("1960-06-01T10:20:00Z", "1960-06-01T10:40:00Z", "2026-01-01T00:45:00Z")
    times = times.astype(f"datetime64[{unit}, UTC]")
    hours_apart = (times.iloc[-1] - times.iloc[0]) / pd.Timedelta(hours=1)
    assert hours_apart < COUNTED_BY_POSITION  # by position
    assert hour_counts(times).tolist() == [2, 1]
    far = utc("1700-01-01T00:00:00Z", "2200-01-01T00:30:00Z", "2200-01-01T00:10:00Z")
    counts = hour_counts(far)  # by sorting
    assert counts.to_dict() == {
        pd.Timestamp("1700-01-01T00:00Z"): 1,
        pd.Timestamp("2200-01-01T00:00Z"): 2,
    }


def test_no_rows_no_hours():
    counts = hour_counts(utc())
    assert counts.empty
    assert counts.dtype == np.int64
    assert hour_counts(utc(None, None)).empty
