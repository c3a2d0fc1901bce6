"""Revisions: the source changes its last two hours; the next tick replaces them, no doubles."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from etl.resources.sources import build_source
from tests.conftest import make_integration
from tests.helpers import definitions, scheduled_tick

SOURCE = {"seed": 7, "queues": 3, "channels": ["calls", "chats", "emails"]}
TOTALS = """
    SELECT date_trunc('hour', interval_start) AS hour, count(*) AS rows, sum(offered) AS offered,
           sum(answered) AS answered, sum(handle_time_s) AS handle_time_s
    FROM contact_intervals WHERE integration_id = ? GROUP BY ALL ORDER BY hour
"""


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 18, hour, minute, tzinfo=UTC)


def source_totals(integration, start: datetime, end: datetime) -> pd.DataFrame:
    """What the source delivers for [start, end), per hour."""
    frame = build_source(integration).contacts(start, end).frame
    frame["hour"] = frame["interval_start"].dt.floor("h")
    totals = frame.groupby("hour").agg(
        rows=("offered", "size"),
        offered=("offered", "sum"),
        answered=("answered", "sum"),
        handle_time_s=("handle_time_s", "sum"),
    )
    return totals.reset_index()


def test_source_revises_its_last_two_hours(settings, warehouse, instance):
    original = make_integration(history_start="2026-11-18", source=SOURCE)
    defs = definitions(settings, original)
    assert scheduled_tick(defs, instance, original, at(10, 35)).success  # 08:00..11:00
    before = warehouse.query(TOTALS, [original.id])
    assert before[["offered", "answered"]].sum().tolist() == (
        source_totals(original, at(8), at(11))[["offered", "answered"]].sum().tolist()
    )

    # The ACD reprocesses 09:00..11:00 (the two hours before 11:00): new numbers.
    revised = make_integration(
        history_start="2026-11-18",
        source={**SOURCE, "revision": 1, "revision_hours": 2, "revision_until": "2026-11-18T11:00"},
    )
    expected = source_totals(revised, at(8), at(11))
    old = source_totals(original, at(8), at(11))
    assert expected["offered"].tolist()[0] == old["offered"].tolist()[0]  # 08:00 unchanged
    assert (expected["offered"] != old["offered"]).tolist()[1:] == [True, True]

    # The next tick re-imports the revision window: the new numbers replace the old.
    revised_defs = definitions(settings, revised)
    assert scheduled_tick(revised_defs, instance, revised, at(10, 50)).success
    after = warehouse.query(TOTALS, [revised.id])
    pd.testing.assert_frame_equal(
        after.reset_index(drop=True),
        expected.astype(after.dtypes.to_dict()).reset_index(drop=True),
        check_dtype=False,
    )
    # same number of rows as before: replaced, not added
    assert after["rows"].tolist() == before["rows"].tolist() == [3 * 4] * 3
    assert after["offered"].sum() == expected["offered"].sum() != before["offered"].sum()
    keys = warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT (external_queue_id, channel, interval_start)) AS k "
        "FROM contact_intervals"
    )
    assert keys["n"][0] == keys["k"][0]


def test_revision_window_is_validated():
    from etl.config import ConfigError, parse_integrations

    document = {
        "integrations": [
            {
                "id": "sim",
                "vendor": "simulator",
                "delivery": "cloud",
                "interval_minutes": 15,
                "timezone": "UTC",
                "history_start": "2026-11-01",
                "source": {"revision": 1, "revision_hours": 2},
            }
        ]
    }
    with pytest.raises(ConfigError, match=r"source\.revision_until.*needed with revision_hours"):
        parse_integrations(document)
