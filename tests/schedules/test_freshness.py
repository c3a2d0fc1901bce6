"""The freshness sensor of a push integration: seconds since the last record, a warning past
the threshold."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from etl.config import Integration
from etl.ingest.landing import Landing
from etl.ingest.store import LandingStore
from etl.schedules.freshness import build_freshness_sensor
from tests.conftest import FIXED_NOW
from tests.helpers import fixed_clock


def test_freshness_is_observed_and_warns_when_stale(tmp_path, instance) -> None:
    url = f"sqlite:///{tmp_path / 'landing.sqlite'}"
    integration = Integration.model_validate(
        {
            "id": "push_berlin",
            "vendor": "api",
            "delivery": "cloud",
            "interval_minutes": 15,
            "data": ["agent_status"],
            "timezone": "Europe/Berlin",
            "history_start": "2026-11-01",
            "source": {"freshness_warn_seconds": 120},
        }
    )
    key = dg.AssetKey(["push_berlin", "agent_status"])
    sensor = build_freshness_sensor(integration, [key], url)
    with fixed_clock(FIXED_NOW):
        empty = sensor(dg.build_sensor_context(instance=instance))
    assert empty.asset_events == []
    assert empty.skip_reason.skip_message == "agent_status: no record landed yet"

    store = LandingStore(url)
    landed_at = FIXED_NOW - timedelta(seconds=30)
    record = {
        "user_identifier": "anna",
        "external_activity": "Available",
        "start_utc": landed_at.isoformat(),
        "end_utc": None,
    }
    Landing(store, [integration], now=lambda: landed_at).land(
        "push_berlin", "agent_status", [record]
    )
    store.dispose()
    for now, seconds, stale in (
        (FIXED_NOW, 30.0, False),
        (FIXED_NOW + timedelta(minutes=5), 330.0, True),
    ):
        with fixed_clock(now):
            result = sensor(dg.build_sensor_context(instance=instance))
        (event,) = result.asset_events
        assert event.asset_key == key
        assert event.metadata["seconds_since_last_record"].value == seconds
        assert event.metadata["stale"].value is stale
        assert ("STALE" in result.skip_reason.skip_message) is stale
