"""Vonage Contact Center source against a fake Authentication and Insights Stats API.

Interactions become intervals on the local grid across the spring DST change; `upTo`
windows repeat items and none is counted twice; tokens expire long before their two hours;
a window longer than 31 days is split; a window not yet processed is reported as failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
import pytest

from etl.resources.sources.plumbing.http import AuthError
from etl.resources.sources.vendors.vonage import VonageSettings, VonageSource
from tests.conftest import make_integration
from tests.fakes import Reply
from tests.fakes.vonage import CLIENT_ID, FakeVonage, make_interactions, parse, utc
from tests.helpers import definitions, import_range
from tests.resources.sources.vendors.expected import assert_contacts, summed, warehouse_contacts

SECRET = "vcc-Secret-0815-never-shown"
SECRET_ENV = "WFM_TEST_VONAGE_SECRET"
FAST_HTTP = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "retry_after_max_s": 0.01}
LONDON = "Europe/London"


@pytest.fixture
def fake() -> Iterator[FakeVonage]:
    with FakeVonage(SECRET, token_requests=3, processed_span=timedelta(minutes=40)) as server:
        yield server


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def source_settings(fake: FakeVonage, **overrides) -> dict:
    settings = {
        "client_id": CLIENT_ID,
        "client_secret_env": SECRET_ENV,
        "base_url": f"{fake.url}/stats",
        "auth_url": f"{fake.url}/Auth/connect/token",
        "page_size": 7,
        "status_lookback_hours": 2,
        "http": {**FAST_HTTP, "timeout_s": 10},
    }
    settings.update(overrides)
    return settings


def direct_source(fake: FakeVonage, **overrides) -> VonageSource:
    return VonageSource(
        integration_id="vcc15",
        timezone=LONDON,
        interval_minutes=15,
        settings=VonageSettings.model_validate(source_settings(fake, **overrides)),
        client_secret=SECRET,
    )


def expected_contacts(items: list[dict], start: datetime, end: datetime) -> pd.DataFrame:
    """Computed independently: London's offsets are whole hours, so its 15-minute grid is
    the UTC one; an answered interaction's agent events give talk, hold and wrap."""
    media = {"Phone": "calls", "Email": "emails", "Chat": "chats"}
    rows = []
    for item in items:
        if item["direction"] != "Inbound":
            continue
        agent = [c for c in item["channels"] if c["party"]["role"] == "Agent"]
        events = {e["type"]: e["duration"] for c in agent for e in c["events"]}
        handle = sum(events.get(k, 0) for k in ("Connected", "Held", "Wrap")) / 1000
        rows.append(
            {
                "queue": item["serviceName"],
                "channel": media[item["medium"]],
                "interval_start": pd.Timestamp(item["start"]).floor("15min"),
                "offered": 1,
                "answered": int(bool(agent)),
                "abandoned": int(not agent),
                "handle_time_s": handle,
            }
        )
    return summed(rows, start, end)


def test_interactions_become_intervals_across_the_spring_change(
    settings, warehouse, instance, fake
):
    # London's clocks go forward at 01:00 UTC on 2026-03-29 (01:00 local becomes 02:00).
    start, end = utc("2026-03-28 23:00"), utc("2026-03-29 03:00")
    fake.interactions = make_interactions(start - timedelta(hours=1), end + timedelta(hours=1))
    fake.inject(
        "GET", "/stats/interactions", Reply(429, {"message": "Too many"}, {"Retry-After": "1"})
    )
    integration = make_integration(
        id="vcc15",
        vendor="vonage",
        timezone=LONDON,
        history_start="2026-03-01",
        source=source_settings(fake),
    )

    result = import_range(definitions(settings, integration), instance, "vcc15", start, end)

    assert result.success
    rows = warehouse_contacts(warehouse, "vcc15")
    expected = expected_contacts(fake.interactions, start, end)
    assert_contacts(rows, expected)
    # upTo moved 40 minutes per request and the items after it came twice: none counted twice.
    requests = fake.calls("GET", "/stats/interactions")
    starts = {r.query["start"][0] for r in requests}
    assert len(starts) >= 6
    assert sum(1 for n in fake.served.values() if n > 1) > 5  # items repeated across windows
    assert rows["offered"].sum() == expected["offered"].sum()
    # Tokens died after 3 requests each (announced: 2 hours): refreshed, never failed.
    assert len(fake.calls("POST", "/Auth/connect/token")) >= 3
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def activity(agent: str, category: str, begins: str, millis: int | None, name: str = "") -> dict:
    return {
        "agentId": agent,
        "type": "Presence",
        "category": category,
        "name": name or category,
        "eligibleForRouting": category == "Ready",
        "start": parse(begins),
        "status": None,
        "duration": millis,
        "interaction": None,
        "channel": None,
        "workload": None,
    }


def test_a_window_longer_than_31_days_is_split(fake):
    start, end = utc("2026-01-01 00:00"), utc("2026-02-10 00:00")
    fake.processed_span = None
    fake.activities = [
        activity("1001", "Ready", "2026-01-01T08:00:00.250Z", 3_600_000),
        activity("1001", "Away", "2026-01-20T09:00:00.000Z", 1_800_500, name="Lunch"),
        activity("1001", "Ready", "2026-02-05T07:59:59.999Z", 60_001),
        {**activity("1001", "Ready", "2026-02-05T10:00:00.000Z", 1), "type": "Workload"},
    ]

    got = direct_source(fake, status_lookback_hours=0).agent_status(start, end)

    windows = [
        (parse(r.query["start"][0]), parse(r.query["end"][0]))
        for r in fake.calls("GET", "/stats/agent-activities")
    ]
    assert len(windows) == 2
    assert all(stop - begin <= timedelta(days=31) for begin, stop in windows)
    assert windows[0][1] == windows[1][0]
    assert [
        (row.external_activity, row.start_utc.isoformat(), row.end_utc.isoformat())
        for row in got.frame.itertuples()
    ] == [
        ("Ready", "2026-01-01T08:00:00.250000+00:00", "2026-01-01T09:00:00.250000+00:00"),
        ("Away", "2026-01-20T09:00:00+00:00", "2026-01-20T09:30:00.500000+00:00"),
        ("Ready", "2026-02-05T07:59:59.999000+00:00", "2026-02-05T08:01:00+00:00"),
    ]
    assert set(got.frame["user_identifier"]) == {"1001"}
    assert got.failed == []


def test_status_through_the_asset(settings, warehouse, instance, fake):
    fake.activities = [
        activity("1001", "LoggedOut", "2026-03-29T00:00:00.000Z", 1_800_000),
        activity("1001", "Ready", "2026-03-29T00:30:00.000Z", 2_700_000),
        activity("1001", "Away", "2026-03-29T01:15:00.000Z", 900_000, name="Break"),
        activity("1001", "Ready", "2026-03-29T01:30:00.000Z", None),  # still going on
        activity("1002", "Ready", "2026-03-29T00:50:00.000Z", 600_000),
    ]
    integration = make_integration(
        id="vcc_agents",
        vendor="vonage",
        data=["agent_status"],
        timezone=LONDON,
        history_start="2026-03-01",
        source=source_settings(fake, activity_field="name"),
    )
    start, end = utc("2026-03-29 00:00"), utc("2026-03-29 02:00")
    defs = definitions(settings, integration)
    for _ in range(2):  # a re-import replaces, never duplicates
        assert import_range(defs, instance, "vcc_agents", start, end).success
    rows = warehouse.query(
        "SELECT user_identifier, external_activity, sum(epoch(end_utc) - epoch(start_utc)) AS s "
        "FROM agent_status_segments WHERE integration_id = 'vcc_agents' GROUP BY ALL ORDER BY ALL"
    )
    assert list(rows.itertuples(index=False, name=None)) == [
        ("1001", "Break", 15 * 60),
        ("1001", "LoggedOut", 30 * 60),
        ("1001", "Ready", 45 * 60 + 30 * 60),  # the open one up to the window's end
        ("1002", "Ready", 10 * 60),
    ]


def test_a_window_not_yet_processed_is_reported_not_imported(fake):
    fake.processed_span = None
    fake.processed_until = utc("2026-03-29 01:20")
    fake.activities = [activity("1001", "Ready", "2026-03-29T00:10:00.000Z", 600_000)]
    got = direct_source(fake, status_lookback_hours=0).agent_status(
        utc("2026-03-29 00:00"), utc("2026-03-29 02:00")
    )
    assert len(got.frame) == 1
    (failure,) = got.failed
    assert (failure.start, failure.end) == (utc("2026-03-29 01:20"), utc("2026-03-29 02:00"))
    assert "upTo" in failure.reason


def test_wrong_secret_is_a_clear_error(fake):
    source = direct_source(fake)
    source = source.model_copy(update={"client_secret": "not-the-secret"})
    with pytest.raises(AuthError) as caught:
        source.contacts(utc("2026-03-20 10:00"), utc("2026-03-20 11:00"))
    text = str(caught.value)
    assert "integration 'vcc15'" in text
    assert "invalid_client" in text
    assert SECRET_ENV in text
    assert "not-the-secret" not in text
    assert SECRET not in text


def test_region_urls():
    settings = VonageSettings.model_validate(
        {"client_id": "x", "client_secret_env": "VCC_SECRET", "region": "nam"}
    )
    assert settings.token_url == "https://nam.cc.vonage.com/Auth/connect/token"
    assert settings.api_url == "https://nam.api.newvoicemedia.com/stats"
