"""What a vendor test expects in `contact_intervals`, computed from the fake's own records
independently of the adapter: one row per contact, summed per queue, channel and interval."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

KEY = ["queue", "channel", "interval_start"]


def summed(rows: list[dict], start: datetime, end: datetime) -> pd.DataFrame:
    """Per-contact rows (KEY plus measures) summed per key, for intervals in [start, end)."""
    frame = pd.DataFrame(rows)
    frame = frame[(frame["interval_start"] >= start) & (frame["interval_start"] < end)]
    return frame.groupby(KEY).sum().reset_index().sort_values(KEY, ignore_index=True)


def warehouse_contacts(warehouse, integration_id: str) -> pd.DataFrame:
    return warehouse.query(
        "SELECT * FROM contact_intervals WHERE integration_id = ? "
        "ORDER BY external_queue_id, channel, interval_start",
        [integration_id],
    )


def assert_contacts(
    rows: pd.DataFrame, expected: pd.DataFrame, counts=("offered", "answered", "abandoned")
) -> None:
    """The warehouse rows are exactly the expected ones: keys, counts and handle time."""
    assert len(rows) == len(expected) > 0
    assert rows["external_queue_id"].tolist() == expected["queue"].tolist()
    assert rows["channel"].tolist() == expected["channel"].tolist()
    assert rows["interval_start"].tolist() == expected["interval_start"].tolist()
    for column in counts:
        assert rows[column].tolist() == expected[column].tolist(), column
    assert rows["handle_time_s"].tolist() == pytest.approx(expected["handle_time_s"].tolist())
