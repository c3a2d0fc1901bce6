from datetime import UTC, datetime

import pandas as pd

from etl.resources.sources import build_source
from etl.schemas import contact_schema
from tests.conftest import make_integration

DAY = (datetime(2026, 11, 17, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC))  # a Tuesday


def test_same_window_same_numbers_in_any_split():
    source = build_source(make_integration())
    whole = source.contacts(*DAY).frame
    halves = pd.concat(
        [
            source.contacts(DAY[0], datetime(2026, 11, 17, 13, tzinfo=UTC)).frame,
            source.contacts(datetime(2026, 11, 17, 13, tzinfo=UTC), DAY[1]).frame,
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, halves)
    assert len(whole) == 3 * 96


def test_realistic_shape_and_valid_rows():
    integration = make_integration(source={"seed": 1, "queues": 6})
    frame = build_source(integration).contacts(*DAY).frame
    contact_schema(15, "Europe/Berlin").validate(
        frame.astype(
            {
                "external_queue_id": "string[pyarrow]",
                "channel": "string[pyarrow]",
                "integration_id": "string[pyarrow]",
            }
        )
    )
    assert frame["channel"].nunique() >= 3
    assert (frame["abandoned"] <= frame["offered"] - frame["answered"]).all()
    local_hour = frame["interval_start"].dt.tz_convert("Europe/Berlin").dt.hour
    by_hour = frame.groupby(local_hour)["offered"].sum()
    assert by_hour.loc[9:16].mean() > 5 * by_hour.loc[0:5].mean()  # intraday curve
    calls = frame[frame["channel"] == "calls"]
    aht = calls["handle_time_s"].sum() / calls["answered"].sum()
    assert 180 < aht < 480


def test_weekend_is_quieter_than_weekday():
    source = build_source(make_integration())
    tuesday = source.contacts(*DAY).frame["offered"].sum()
    sunday = (
        source.contacts(datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC))
        .frame["offered"]
        .sum()
    )
    assert sunday < tuesday / 2


def test_kolkata_hours_start_at_half_past_utc():
    integration = make_integration(id="kol", interval_minutes=60, timezone="Asia/Kolkata")
    frame = build_source(integration).contacts(*DAY).frame
    assert set(frame["interval_start"].dt.minute) == {30}
    assert frame["interval_start"].min() == pd.Timestamp("2026-11-17 00:30", tz="UTC")
    assert frame["interval_start"].nunique() == 24


def test_bad_rows_are_deterministic_and_rare():
    integration = make_integration(source={"seed": 1, "queues": 6, "bad_rows_per_day": 3})
    first = build_source(integration).contacts(*DAY).frame
    again = build_source(integration).contacts(*DAY).frame
    bad = first["answered"] > first["offered"]
    assert 0 < bad.sum() <= 12
    assert bad.equals(again["answered"] > again["offered"])
