"""Rules of the schemas that are code of their own, not pandera's built-in checks."""

from __future__ import annotations

import pandas as pd
import pytest

from etl.schemas import _on_grid


def on_grid(minutes: int, timezone: str, *utc: str) -> list[bool]:
    series = pd.Series(pd.to_datetime(list(utc), utc=True))
    return _on_grid(minutes, timezone)(series).check_output.tolist()


def test_the_grid_is_the_integrations_local_one():
    # Kolkata is UTC+05:30: its hours start at :30 UTC.
    assert on_grid(60, "Asia/Kolkata", "2026-11-30 08:30", "2026-11-30 09:00") == [True, False]
    assert on_grid(30, "Asia/Kolkata", "2026-11-30 08:30", "2026-11-30 09:00") == [True, True]


def test_the_grid_holds_across_a_dst_change():
    # Berlin's clocks go back at 01:00 UTC on 25 October 2026: 02:00-03:00 local twice.
    times = ["2026-10-25 00:45", "2026-10-25 01:00", "2026-10-25 01:15", "2026-10-25 01:20"]
    assert on_grid(15, "Europe/Berlin", *times) == [True, True, True, False]


@pytest.mark.parametrize("unit", ["ns", "us"])
def test_seconds_and_microseconds_are_off_the_grid(unit):
    times = ["2026-11-30 08:15:00", "2026-11-30 08:15:01", "2026-11-30 08:15:00.000001"]
    series = pd.Series(pd.to_datetime(times, utc=True, format="ISO8601"))
    series = series.astype(f"datetime64[{unit}, UTC]")
    assert _on_grid(15, "UTC")(series).check_output.tolist() == [True, False, False]


def test_a_missing_time_is_left_to_the_not_null_rule():
    series = pd.Series(pd.to_datetime(["2026-11-30 08:15", None, "2026-11-30 08:20"], utc=True))
    assert _on_grid(15, "UTC")(series).failure_cases.tolist() == [pd.Timestamp("2026-11-30 08:20Z")]
