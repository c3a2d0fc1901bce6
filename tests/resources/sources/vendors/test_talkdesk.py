"""Talkdesk source against a fake Talkdesk Explore API on loopback.

Contacts go through the real asset path and are checked in the warehouse; agent status is
tested on the source itself (its asset is built by another issue). Both cross a DST change:
call times come in UTC, status times in the requested timezone's local time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
import pytest

from etl.config import ConfigError, parse_integrations
from etl.resources.sources.base import SourceError
from etl.resources.sources.vendors.talkdesk import TalkdeskSettings, TalkdeskSource
from tests.conftest import make_integration
from tests.fakes import EXPIRE_TOKENS, Reply
from tests.fakes.talkdesk import CLIENT_ID, FakeTalkdesk, make_calls, utc
from tests.helpers import definitions, import_range

SECRET = "td-Secret-2323-never-shown"
SECRET_ENV = "WFM_TEST_TALKDESK_SECRET"
FAST_HTTP = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "retry_after_max_s": 0.01}
BERLIN = "Europe/Berlin"


@pytest.fixture
def fake() -> Iterator[FakeTalkdesk]:
    with FakeTalkdesk(SECRET, page_size=25) as server:
        yield server


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def source_settings(fake: FakeTalkdesk, **overrides) -> dict:
    settings = {
        "client_id": CLIENT_ID,
        "client_secret_env": SECRET_ENV,
        "oauth_url": f"{fake.url}/oauth/token",
        "base_url": fake.url,
        "poll_interval_s": 0,
        "lookahead_hours": 2,
        "http": {**FAST_HTTP, "timeout_s": 10},
    }
    settings.update(overrides)
    return settings


def direct_source(fake: FakeTalkdesk, **overrides) -> TalkdeskSource:
    return TalkdeskSource(
        integration_id="td15",
        timezone=BERLIN,
        interval_minutes=15,
        settings=TalkdeskSettings.model_validate(source_settings(fake, **overrides)),
        client_secret=SECRET,
    )


def expected_contacts(calls: list[dict], start: datetime, end: datetime) -> pd.DataFrame:
    """What the calls should become, computed independently: Berlin's offsets are whole
    hours, so the local 15-minute grid is the UTC one."""
    offered = {"inbound", "missed", "abandoned", "short_abandoned", "voicemail"}
    frame = pd.DataFrame([c for c in calls if c["type"] in offered])
    frame["interval_start"] = pd.to_datetime(frame["start_at"], utc=True).dt.floor("15min")
    frame = frame[(frame["interval_start"] >= start) & (frame["interval_start"] < end)]
    frame["queue"] = frame["ring_groups"].str.split(",").str[0].replace("", "(no ring group)")
    answered = frame["type"] == "inbound"
    frame["answered"] = answered.astype(int)
    frame["abandoned"] = frame["type"].isin(["abandoned", "short_abandoned"]).astype(int)
    frame["handle_time_s"] = (frame["talk_time"] + frame["hold_time"]).where(answered, 0)
    return (
        frame.groupby(["queue", "interval_start"])
        .agg(
            offered=("call_id", "size"),
            answered=("answered", "sum"),
            abandoned=("abandoned", "sum"),
            handle_time_s=("handle_time_s", "sum"),
        )
        .reset_index()
    )


def test_calls_become_intervals_across_the_autumn_dst_change(settings, warehouse, instance, fake):
    # Berlin's clocks go back at 01:00 UTC on 2026-10-25: the window holds the repeated hour.
    start, end = utc("2026-10-24 22:00"), utc("2026-10-25 03:00")
    fake.calls_data = make_calls(start - timedelta(hours=1), end + timedelta(hours=1))
    fake.inject(
        "POST",
        "/data/reports/calls/jobs",
        Reply(429, {"message": "slow down"}, {"Retry-After": "1"}),
    )
    fake.inject("GET", "/data/reports/calls/jobs/", EXPIRE_TOKENS)
    fake.inject("GET", "/data/reports/calls/files/", Reply(500, {"message": "internal error"}))
    integration = make_integration(
        id="td15",
        vendor="talkdesk",
        timezone=BERLIN,
        history_start="2026-10-01",
        source=source_settings(fake),
    )

    result = import_range(definitions(settings, integration), instance, "td15", start, end)

    assert result.success
    rows = warehouse.query(
        "SELECT * FROM contact_intervals WHERE integration_id = 'td15' "
        "ORDER BY external_queue_id, interval_start"
    )
    expected = expected_contacts(fake.calls_data, start, end)
    assert len(rows) == len(expected) > 0
    assert rows["external_queue_id"].tolist() == expected["queue"].tolist()
    assert rows["interval_start"].tolist() == expected["interval_start"].tolist()
    for column in ("offered", "answered", "abandoned"):
        assert rows[column].tolist() == expected[column].tolist(), column
    assert rows["handle_time_s"].tolist() == pytest.approx(expected["handle_time_s"].tolist())
    assert set(rows["channel"]) == {"calls"}
    # Both 15-minute intervals labelled 02:00 local on the day exist: 00:00 and 01:00 UTC.
    assert {"2026-10-25 00:00", "2026-10-25 01:00"} <= set(
        rows["interval_start"].dt.strftime("%Y-%m-%d %H:%M")
    )

    (job,) = [r.json() for r in fake.calls("POST", "/data/reports/calls/jobs")][-1:]
    assert job["timezone"] == BERLIN
    assert job["format"] == "json"
    # An hour of margin each side, plus the 2 h look-ahead: calls are selected by end time.
    assert job["timespan"] == {"from": "2026-10-24 23:00:00", "to": "2026-10-25 06:59:59"}
    pages = [r.query.get("page", ["1"])[0] for r in fake.calls("GET", "/data/reports/calls/files/")]
    assert "2" in pages  # the file came in several pages
    assert len(fake.calls("POST", "/oauth/token")) == 2  # once more after the revoked token
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def status(user: str, email: str, label: str, start: str, end: str | None) -> dict:
    return {
        "user_id": user,
        "user_email": email,
        "label": label,
        "start": utc(start),
        "end": utc(end) if end else None,
    }


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


def test_status_local_times_across_the_autumn_change_become_utc(fake):
    # 02:00-03:00 local happens twice on 2026-10-25 (00:00-01:00 and 01:00-02:00 UTC).
    anna = "Anna.Keller@Example.com"
    fake.statuses = [
        status("u1", anna, "Offline", "2026-10-24 23:00", "2026-10-25 00:10"),
        status("u1", anna, "Available", "2026-10-25 00:10", "2026-10-25 00:40"),  # both ambiguous
        status("u1", anna, "On A Call", "2026-10-25 00:40", "2026-10-25 01:20"),
        status("u1", anna, "After Call Work", "2026-10-25 01:20", "2026-10-25 01:50"),
        status("u1", anna, "Available", "2026-10-25 01:50", "2026-10-25 03:30"),
        status("u1", anna, "Away", "2026-10-25 03:30", None),
        # Alone inside the repeated hour: no duration or neighbour can place it.
        status("u2", "ben@example.com", "Away", "2026-10-25 00:15", "2026-10-25 00:25"),
    ]
    start, end = utc("2026-10-24 23:00"), utc("2026-10-25 04:00")

    got = direct_source(fake).agent_status(start, end)

    assert segments(got.frame) == [
        (anna, "Offline", "10-24 23:00", "10-25 00:10"),
        (anna, "Available", "10-25 00:10", "10-25 00:40"),
        (anna, "On A Call", "10-25 00:40", "10-25 01:20"),
        (anna, "After Call Work", "10-25 01:20", "10-25 01:50"),
        (anna, "Available", "10-25 01:50", "10-25 03:30"),
        (anna, "Away", "10-25 03:30", None),
    ]
    assert str(got.frame["start_utc"].dt.tz) == "UTC"
    assert len(got.rejected) == 1
    assert "ambiguous" in got.rejected["rules"][0][0]
    assert "ben@example.com" in got.rejected["row_json"][0]
    # The status report was requested in the integration's timezone.
    assert {r.json()["timezone"] for r in fake.calls("POST", "/data/reports/user_status/")} == {
        BERLIN
    }


def test_status_local_times_across_the_spring_change_become_utc(fake):
    # 2026-03-29: 02:00 local does not exist; 01:30 CET to 03:30 CEST is one hour.
    fake.statuses = [
        status("u1", "carla@example.com", "Available", "2026-03-29 00:30", "2026-03-29 01:30"),
        status("u1", "carla@example.com", "Lunch", "2026-03-29 01:30", "2026-03-29 02:15"),
    ]
    got = direct_source(fake).agent_status(utc("2026-03-29 00:00"), utc("2026-03-29 03:00"))
    assert segments(got.frame) == [
        ("carla@example.com", "Available", "03-29 00:30", "03-29 01:30"),
        ("carla@example.com", "Lunch", "03-29 01:30", "03-29 02:15"),
    ]
    assert got.rejected.empty


def test_a_failed_report_job_is_a_clear_error(fake):
    fake.fail_jobs = True
    with pytest.raises(SourceError) as caught:
        direct_source(fake).contacts(utc("2026-10-20 10:00"), utc("2026-10-20 11:00"))
    assert "integration 'td15'" in str(caught.value)
    assert "status failed" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_talkdesk_config_needs_the_account_or_an_oauth_url(fake):
    raw = {
        "id": "td",
        "vendor": "talkdesk",
        "delivery": "cloud",
        "interval_minutes": 15,
        "timezone": BERLIN,
        "history_start": "2026-10-01",
        "source": {"client_id": "x", "client_secret_env": "TD_SECRET"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_integrations({"integrations": [raw]})
    assert "integration 'td'" in str(caught.value)
    assert "account" in str(caught.value)
    (ok,) = parse_integrations(
        {"integrations": [{**raw, "source": {**raw["source"], "account": "acme"}}]}
    )
    assert TalkdeskSettings.model_validate(ok.source).resolved_token_url() == (
        "https://acme.talkdeskid.com/oauth/token"
    )
    assert ok.revision_window_hours == 2  # no vendor minimum: the project default
    # Every setting the tests use passes the config's secret rules (no inline secrets).
    (full,) = parse_integrations({"integrations": [{**raw, "source": source_settings(fake)}]})
    assert full.source["client_secret_env"] == SECRET_ENV


def test_an_hour_without_calls_imports_as_empty(settings, warehouse, instance, fake):
    integration = make_integration(
        id="td_quiet",
        vendor="talkdesk",
        timezone=BERLIN,
        history_start="2026-10-01",
        source=source_settings(fake),
    )
    start, end = utc("2026-10-20 03:00"), utc("2026-10-20 04:00")
    result = import_range(definitions(settings, integration), instance, "td_quiet", start, end)
    assert result.success
    count = "SELECT count(*) AS n FROM contact_intervals WHERE integration_id = 'td_quiet'"
    assert warehouse.query(count)["n"][0] == 0
    assert len(fake.calls("POST", "/data/reports/calls/jobs")) == 1


def test_status_through_the_asset_across_the_autumn_change(settings, warehouse, instance, fake):
    anna = "Anna.Keller@Example.com"
    fake.statuses = [
        status("u1", anna, "Offline", "2026-10-24 23:00", "2026-10-25 00:10"),
        status("u1", anna, "Available", "2026-10-25 00:10", "2026-10-25 00:40"),
        status("u1", anna, "On A Call", "2026-10-25 00:40", "2026-10-25 01:20"),
        status("u1", anna, "After Call Work", "2026-10-25 01:20", "2026-10-25 01:50"),
        status("u1", anna, "Available", "2026-10-25 01:50", "2026-10-25 03:30"),
        status("u1", anna, "Away", "2026-10-25 03:30", None),
    ]
    integration = make_integration(
        id="td_agents",
        vendor="talkdesk",
        data=["agent_status"],
        timezone=BERLIN,
        history_start="2026-10-01",
        source=source_settings(fake),
    )
    start, end = utc("2026-10-24 23:00"), utc("2026-10-25 04:00")
    defs = definitions(settings, integration)
    for _ in range(2):  # a re-import replaces, never duplicates
        assert import_range(defs, instance, "td_agents", start, end).success
    rows = warehouse.query(
        "SELECT external_activity, sum(epoch(end_utc) - epoch(start_utc)) AS s "
        "FROM agent_status_segments WHERE user_identifier = ? GROUP BY ALL ORDER BY ALL",
        [anna],
    )
    # Five UTC hours across the repeated local hour, identifier kept exactly as delivered.
    assert dict(zip(rows["external_activity"], rows["s"], strict=True)) == {
        "After Call Work": 30 * 60,
        "Available": 30 * 60 + 100 * 60,
        "Away": 30 * 60,
        "Offline": 60 * 60 + 10 * 60,
        "On A Call": 40 * 60,
    }


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ({"type": "calls", "message": "file expired"}, "a page without entries (it has: message"),
        ({"type": "calls", "total": 3, "entries": []}, "0 of its 3 entries delivered"),
    ],
    ids=["no entries", "short of total"],
)
def test_an_incomplete_report_file_is_an_error_not_an_empty_hour(fake, page, problem):
    fake.calls_data = make_calls(utc("2026-10-20 10:00"), utc("2026-10-20 11:00"))
    fake.inject("GET", "/data/reports/calls/files/", Reply(200, page))
    with pytest.raises(SourceError) as caught:
        direct_source(fake).contacts(utc("2026-10-20 10:00"), utc("2026-10-20 11:00"))
    assert "integration 'td15'" in str(caught.value)
    assert problem in str(caught.value)
