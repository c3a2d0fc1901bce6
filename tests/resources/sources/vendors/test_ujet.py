"""UJET source against a fake UJET Manager API on loopback, through the real assets.

Contacts are counted in the interval in which they entered the queue, on the integration's
local grid across the autumn DST change; lists come in many pages linked by `Link:
rel="next"`; the fake answers 429 with Retry-After and 500 in between; a revised call
replaces its interval on re-import.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
import pytest

from etl.config import ConfigError, parse_integrations
from etl.resources.sources.plumbing.http import AuthError
from etl.resources.sources.vendors.ujet import UjetSettings, UjetSource
from tests.conftest import make_integration
from tests.fakes import Reply, failure_messages
from tests.fakes.ujet import COMPANY_KEY, FakeUjet, make_contacts, utc
from tests.helpers import definitions, import_range
from tests.resources.sources.vendors.expected import assert_contacts, summed, warehouse_contacts

SECRET = "ujet-Secret-4711-never-shown"
SECRET_ENV = "WFM_TEST_UJET_SECRET"
FAST_HTTP = {
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.01,
    "retry_after_max_s": 0.01,
    "requests_per_second": 200,
    "timeout_s": 10,
}
NEW_YORK = "America/New_York"
COUNTS = ("offered", "answered", "abandoned", "answered_in_sl")


@pytest.fixture
def fake() -> Iterator[FakeUjet]:
    with FakeUjet(SECRET) as server:
        yield server


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def source_settings(fake: FakeUjet, **overrides) -> dict:
    settings = {
        "company_key": COMPANY_KEY,
        "company_secret_env": SECRET_ENV,
        "base_url": fake.url,
        "per_page": 20,
        "queue_lookback_hours": 1,
        "service_level_s": 60,
        "http": FAST_HTTP,
    }
    settings.update(overrides)
    return settings


def ujet_integration(fake: FakeUjet, **overrides) -> object:
    fields = {
        "id": "uj30",
        "vendor": "ujet",
        "interval_minutes": 30,
        "timezone": NEW_YORK,
        "history_start": "2026-10-01",
        "source": source_settings(fake),
    }
    fields.update(overrides)
    return make_integration(**fields)


def expected_contacts(fake: FakeUjet, start: datetime, end: datetime) -> pd.DataFrame:
    """What the fake's contacts should become, computed independently: New York's offsets
    are whole hours, so its 30-minute grid is the UTC one."""
    rows = []
    for kind, channel in (("calls", "calls"), ("chats", "chats")):
        for c in fake.data[kind]:
            queued = c.get("queued_at") if kind == "calls" else c["created_at"]
            if queued is None:
                continue
            answered = (c.get("connected_at") or c.get("assigned_at")) is not None
            handle = (
                c.get("call_duration", 0) + c.get("hold_duration", 0) + c.get("chat_duration", 0)
            )
            rows.append(
                {
                    "queue": str(c["selected_menu"]["id"]),
                    "channel": channel,
                    "interval_start": pd.Timestamp(queued).floor("30min"),
                    "offered": 1,
                    "answered": int(answered),
                    "abandoned": int(not answered and c["ends_at"] is not None),
                    "handle_time_s": handle if answered else 0,
                    "answered_in_sl": int(answered and c["queue_duration"] <= 60),
                }
            )
    return summed(rows, start, end)


def test_contacts_by_queue_entry_across_the_autumn_change(settings, warehouse, instance, fake):
    # New York's clocks go back at 06:00 UTC on 2026-11-01: 01:00-02:00 local happens twice.
    start, end = utc("2026-11-01 04:00"), utc("2026-11-01 08:00")
    for kind in ("calls", "chats"):
        fake.data[kind] = make_contacts(kind, start - timedelta(hours=1), end + timedelta(hours=1))
    fake.inject(
        "GET", "/manager/api/v1/calls", Reply(429, {"message": "slow"}, {"Retry-After": "1"})
    )
    fake.inject("GET", "/manager/api/v1/chats", Reply(503, {"message": "maintenance"}))
    integration = ujet_integration(fake)

    result = import_range(definitions(settings, integration), instance, "uj30", start, end)

    assert result.success
    assert_contacts(
        warehouse_contacts(warehouse, "uj30"), expected_contacts(fake, start, end), COUNTS
    )
    # Both 30-minute intervals labelled 01:00 local on the day are there (05:00 and 06:00 UTC).
    labels = set(warehouse_contacts(warehouse, "uj30")["interval_start"].dt.strftime("%H:%M"))
    assert {"05:00", "06:00"} <= labels
    calls = fake.calls("GET", "/manager/api/v1/calls")
    assert max(int(r.query["page"][0]) for r in calls) >= 3  # many pages along Link: rel=next
    first = calls[0].query
    assert first["created_at[from]"] == ["2026-11-01T03:00:00.000Z"]  # the queue look-back
    assert first["created_at[to]"] == ["2026-11-01T08:00:00.000Z"]
    assert first["per"] == ["20"]
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def test_a_revised_call_replaces_its_interval(settings, warehouse, instance, fake):
    start, end = utc("2026-10-20 14:00"), utc("2026-10-20 16:00")
    fake.data["calls"] = make_contacts("calls", start, end)
    defs = definitions(settings, ujet_integration(fake))
    assert import_range(defs, instance, "uj30", start, end).success
    answered = next(c for c in fake.data["calls"] if c["connected_at"] is not None)
    answered["hold_duration"] += 600  # UJET finalises durations after the call: a revision
    waiting = next(c for c in fake.data["calls"] if c["status"] == "queued")
    waiting.update(status="finished", ends_at=waiting["queued_at"] + timedelta(minutes=3))

    assert import_range(defs, instance, "uj30", start, end).success

    assert_contacts(
        warehouse_contacts(warehouse, "uj30"), expected_contacts(fake, start, end), COUNTS
    )


def test_contacts_on_a_half_hour_offset_grid(fake):
    # Kolkata is UTC+05:30: its hours start at :30 UTC.
    start, end = utc("2026-10-20 03:30"), utc("2026-10-20 06:30")
    fake.data["calls"] = make_contacts("calls", start - timedelta(hours=1), end)
    source = UjetSource(
        integration_id="uj60",
        timezone="Asia/Kolkata",
        interval_minutes=60,
        settings=UjetSettings.model_validate(source_settings(fake)),
        company_secret=SECRET,
    )
    got = source.contacts(start, end).frame
    assert set(got["interval_start"].dt.strftime("%H:%M")) == {"03:30", "04:30", "05:30"}
    queued = [c["queued_at"] for c in fake.data["calls"] if c["queued_at"] is not None]
    inside = [q for q in queued if start <= q < end]
    assert got["offered"].sum() == len(inside)


def segments(frame: pd.DataFrame) -> list[tuple]:
    return [
        (
            row.user_identifier,
            row.external_activity,
            row.start_utc.strftime("%m-%d %H:%M"),
            None if pd.isna(row.end_utc) else row.end_utc.strftime("%m-%d %H:%M"),
        )
        for row in frame.itertuples()
    ]


def log(number: int, agent: int, status: str | None, begins: str, ends: str | None) -> dict:
    return {
        "id": number,
        "agent_id": agent,
        "status": {"id": number, "name": status, "color": "green"} if status else None,
        "started_at": utc(begins),
        "ended_at": utc(ends) if ends else None,
        "activity": "user_status_changed" if status else "call_notification_offered",
    }


def test_status_through_the_asset(settings, warehouse, instance, fake):
    anna = "Anna.Keller@Example.com"
    fake.data["agents"] = [
        {"id": 1, "email": anna, "first_name": "Anna"},
        {"id": 2, "email": "ben@example.com", "first_name": "Ben"},
    ]
    fake.data["agent_activity_logs"] = [
        log(1, 1, "Offline", "2026-11-01 03:00", "2026-11-01 04:40"),
        log(2, 1, "Available", "2026-11-01 04:40", "2026-11-01 05:50"),
        log(3, 1, None, "2026-11-01 05:00", "2026-11-01 05:00"),  # a notification
        log(4, 1, "In Call", "2026-11-01 05:50", "2026-11-01 06:30"),
        log(5, 1, "Lunch", "2026-11-01 06:30", None),
        log(6, 2, "Available", "2026-11-01 05:10", "2026-11-01 05:20"),
        log(7, 3, "Available", "2026-11-01 05:10", "2026-11-01 05:20"),  # unknown agent
    ]
    integration = ujet_integration(
        fake,
        id="uj_agents",
        data=["agent_status"],
        max_rejected_share=0.5,  # the unknown agent is 1 of 3 rows in its hour
        source=source_settings(fake, per_page=2),
    )
    start, end = utc("2026-11-01 04:00"), utc("2026-11-01 07:00")
    defs = definitions(settings, integration)
    for _ in range(2):  # a re-import replaces, never duplicates
        assert import_range(defs, instance, "uj_agents", start, end).success
    rows = warehouse.query(
        "SELECT user_identifier, external_activity, sum(epoch(end_utc) - epoch(start_utc)) AS s "
        "FROM agent_status_segments WHERE integration_id = 'uj_agents' GROUP BY ALL ORDER BY ALL"
    )
    assert list(rows.itertuples(index=False, name=None)) == [
        (anna, "Available", 70 * 60),
        (anna, "In Call", 40 * 60),
        (anna, "Lunch", 30 * 60),  # open: up to the window's end
        (anna, "Offline", 40 * 60),
        ("ben@example.com", "Available", 10 * 60),
    ]
    rejected = warehouse.query("SELECT row_json, rules FROM rejected_rows")
    assert len(rejected) == 1
    assert "agent_id 3" in str(rejected["rules"][0])
    logs = fake.calls("GET", "/manager/api/v1/agent_activity_logs")
    assert logs[0].query["started_at[from]"] == ["2026-10-31T16:00:00.000Z"]  # 12 h look-back


def test_wrong_secret_is_a_clear_error(settings, instance, fake, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    integration = ujet_integration(fake)
    start, end = utc("2026-10-20 14:00"), utc("2026-10-20 15:00")
    result = import_range(definitions(settings, integration), instance, "uj30", start, end)
    assert not result.success
    text = " ".join(failure_messages(result))
    assert "integration 'uj30'" in text
    assert "rejected the credentials (HTTP 401)" in text
    assert SECRET_ENV in text
    assert "not-the-secret" not in text
    with pytest.raises(AuthError):
        UjetSource(
            integration_id="uj30",
            timezone=NEW_YORK,
            interval_minutes=30,
            settings=UjetSettings.model_validate(source_settings(fake)),
            company_secret="wrong",
        ).contacts(start, end)


def test_requests_are_spaced_to_the_configured_rate(fake):
    fake.data["calls"] = make_contacts("calls", utc("2026-10-20 14:00"), utc("2026-10-20 15:00"))
    source = UjetSource(
        integration_id="uj30",
        timezone=NEW_YORK,
        interval_minutes=30,
        settings=UjetSettings.model_validate(
            source_settings(fake, per_page=4, http={**FAST_HTTP, "requests_per_second": 5})
        ),
        company_secret=SECRET,
    )
    got = list(source._api().items("calls", {}))
    arrivals = [r.at for r in fake.calls("GET", "/manager/api/v1/calls")]
    assert len(got) == len(fake.data["calls"])
    assert len(arrivals) >= 5
    # At most 5 a second: requests 2..n start 0.2 s apart, so they span at least (n - 2) / 5 s
    # whatever the load (load only delays; the first is left out: its connection set-up
    # delays its arrival, not its slot); a tenth of a second is left for arrival jitter.
    assert arrivals[-1] - arrivals[1] >= (len(arrivals) - 2) / 5 - 0.1


def test_ujet_config_needs_a_subdomain_or_base_url():
    raw = {
        "id": "uj",
        "vendor": "ujet",
        "delivery": "cloud",
        "interval_minutes": 15,
        "timezone": NEW_YORK,
        "history_start": "2026-10-01",
        "source": {"company_key": "k", "company_secret_env": "UJET_SECRET"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_integrations({"integrations": [raw]})
    assert "subdomain" in str(caught.value)
    (ok,) = parse_integrations(
        {"integrations": [{**raw, "source": {**raw["source"], "subdomain": "acme"}}]}
    )
    settings = UjetSettings.model_validate(ok.source)
    assert settings.api_url == "https://acme.ujet.co/manager/api/v1"
    assert settings.http.requests_per_second == 1.0  # UJET's documented pace by default
