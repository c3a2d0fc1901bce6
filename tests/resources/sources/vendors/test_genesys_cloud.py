"""Genesys Cloud source against a fake Genesys Cloud on loopback.

Contacts go through the real asset path (definitions + range import) and are checked in the
warehouse. Agent status is tested on the source itself: its asset is built by another issue.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest

from etl.config import ConfigError, parse_integrations
from etl.resources.sources.plumbing.http import AuthError
from etl.resources.sources.vendors.genesys_cloud import (
    DEFAULT_MEDIA,
    GenesysCloudSettings,
    GenesysCloudSource,
    combine_presence,
)
from tests.conftest import make_integration
from tests.fakes import EXPIRE_TOKENS, Reply, failure_messages
from tests.fakes.genesys import CLIENT_ID, MEDIA, QUEUES, FakeGenesys, at, expected_contacts
from tests.helpers import definitions, import_range

SECRET = "gc-Secret-4711-do-not-log"
SECRET_ENV = "WFM_TEST_GENESYS_SECRET"
AGGREGATES = "/api/v2/analytics/conversations/aggregates/query"
FAST_HTTP = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "retry_after_max_s": 0.01}


@pytest.fixture
def fake() -> Iterator[FakeGenesys]:
    with FakeGenesys(SECRET, max_interval_hours=2) as server:
        yield server


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def source_settings(fake: FakeGenesys, **overrides) -> dict:
    settings = {
        "client_id": CLIENT_ID,
        "client_secret_env": SECRET_ENV,
        "base_url": fake.url,
        "login_url": fake.url,
        "max_interval_hours": 2,
        "page_size": 2,
        "http": {**FAST_HTTP, "timeout_s": 10},
    }
    settings.update(overrides)
    return settings


def genesys_integration(fake: FakeGenesys, **overrides):
    fields = {
        "id": "gc15",
        "vendor": "genesys_cloud",
        "interval_minutes": 15,
        "timezone": "Europe/Berlin",
        "revision_window_hours": 72,
        "history_start": "2026-11-01",
        "source": source_settings(fake),
    }
    fields.update(overrides)
    return make_integration(**fields)


def direct_source(fake: FakeGenesys, secret: str = SECRET, **overrides) -> GenesysCloudSource:
    return GenesysCloudSource(
        integration_id="gc15",
        timezone="Europe/Berlin",
        interval_minutes=15,
        settings=GenesysCloudSettings.model_validate(source_settings(fake, **overrides)),
        client_secret=secret,
    )


def stored(warehouse, integration_id: str) -> pd.DataFrame:
    return warehouse.query(
        "SELECT * FROM contact_intervals WHERE integration_id = ? "
        "ORDER BY external_queue_id, channel, interval_start",
        [integration_id],
    )


def test_contacts_through_retries_and_token_expiry(settings, warehouse, instance, fake):
    # The first query is rate limited, the second hits a server error, the third finds its
    # token revoked (401): all three recover, and every hour lands exactly once.
    fake.inject(
        "POST",
        AGGREGATES,
        Reply(429, {"message": "Rate limit exceeded"}, {"Retry-After": "1"}),
        Reply(500, {"message": "Internal server error"}),
        EXPIRE_TOKENS,
    )
    integration = genesys_integration(fake)
    start, end = datetime(2026, 11, 16, 6, tzinfo=UTC), datetime(2026, 11, 16, 12, tzinfo=UTC)

    result = import_range(definitions(settings, integration), instance, "gc15", start, end)

    assert result.success
    rows = stored(warehouse, "gc15")
    expected = expected_contacts(start, end, 15, "Europe/Berlin", DEFAULT_MEDIA)
    assert len(rows) == len(expected) > 0
    for column in ("external_queue_id", "channel", "offered", "answered", "abandoned"):
        assert rows[column].tolist() == expected[column].tolist(), column
    # Milliseconds became seconds: the sum of tHandle over voice + callback, per interval.
    assert rows["handle_time_s"].tolist() == pytest.approx(expected["handle_time_s"].tolist())
    assert rows["acw_time_s"].fillna(0).tolist() == pytest.approx(
        expected["acw_time_s"].fillna(0).tolist()
    )
    assert str(rows["interval_start"].dt.tz) == "UTC"
    assert rows["interval_start"].min() == pd.Timestamp("2026-11-16 06:00", tz="UTC")
    assert rows["interval_start"].max() == pd.Timestamp("2026-11-16 11:45", tz="UTC")
    assert set(rows["channel"]) == {"calls", "chats", "emails"}  # video is not a contact
    assert (rows["interval_minutes"] == 15).all()

    # Requests: three windows of 2 hours (the configured limit), each on the 15-minute grid
    # in the integration's timezone, grouped by queue and media type; retried ones repeat.
    queries = [r.json() for r in fake.calls("POST", AGGREGATES)]
    assert [q["interval"] for q in queries] == [
        "2026-11-16T06:00:00.000Z/2026-11-16T08:00:00.000Z"
    ] * 4 + [
        "2026-11-16T08:00:00.000Z/2026-11-16T10:00:00.000Z",
        "2026-11-16T10:00:00.000Z/2026-11-16T12:00:00.000Z",
    ]
    assert {q["granularity"] for q in queries} == {"PT15M"}
    assert {q["timeZone"] for q in queries} == {"Europe/Berlin"}
    assert all(q["groupBy"] == ["queueId", "mediaType"] for q in queries)
    assert len(fake.calls("POST", "/oauth/token")) == 2  # the first, and one after the 401
    # Queue names come from the routing API, page by page (5 queues, 2 a page).
    assert [r.query["pageNumber"] for r in fake.calls("GET", "/api/v2/routing/queues")] == [
        ["1"],
        ["2"],
        ["3"],
    ]
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def test_reimport_replaces_and_kolkata_hours_sit_on_half_hours(settings, warehouse, instance, fake):
    integration = genesys_integration(
        fake, id="gc_kol", interval_minutes=60, timezone="Asia/Kolkata", settle_minutes=5
    )
    start, end = datetime(2026, 11, 16, 4, tzinfo=UTC), datetime(2026, 11, 16, 8, tzinfo=UTC)
    defs = definitions(settings, integration)

    assert import_range(defs, instance, "gc_kol", start, end).success
    assert import_range(defs, instance, "gc_kol", start, end).success

    rows = stored(warehouse, "gc_kol")
    expected = expected_contacts(start, end, 60, "Asia/Kolkata", DEFAULT_MEDIA)
    assert len(rows) == len(expected)  # a re-import replaces, never duplicates
    assert sorted(rows["interval_start"].dt.strftime("%H:%M").unique()) == [
        "04:30",
        "05:30",
        "06:30",
        "07:30",
    ]
    assert rows["offered"].sum() == expected["offered"].sum()
    assert {q.json()["granularity"] for q in fake.calls("POST", AGGREGATES)} == {"PT1H"}


def test_unmapped_media_type_goes_to_quarantine(settings, warehouse, instance, fake):
    integration = genesys_integration(
        fake,
        id="gc_video",
        max_rejected_share=1.0,
        source=source_settings(fake, ignored_media_types=[]),
    )
    start, end = datetime(2026, 11, 16, 9, tzinfo=UTC), datetime(2026, 11, 16, 10, tzinfo=UTC)

    assert import_range(
        definitions(settings, integration), instance, "gc_video", start, end
    ).success

    quarantine = warehouse.query("SELECT * FROM rejected_rows WHERE integration_id = 'gc_video'")
    expected_video = expected_contacts(start, end, 15, "Europe/Berlin", {"video": "calls"})
    assert len(quarantine) == len(expected_video) > 0
    assert all("mediaType 'video'" in rules[0] for rules in quarantine["rules"])
    assert (
        stored(warehouse, "gc_video")["offered"].sum()
        == expected_contacts(start, end, 15, "Europe/Berlin", DEFAULT_MEDIA)["offered"].sum()
    )


def test_refused_credentials_name_the_integration_never_the_secret(
    settings, instance, fake, monkeypatch
):
    wrong = "gc-Wrong-Secret-0815"
    with pytest.raises(AuthError) as caught:
        direct_source(fake, secret=wrong).contacts(
            datetime(2026, 11, 16, 9, tzinfo=UTC), datetime(2026, 11, 16, 10, tzinfo=UTC)
        )
    message = str(caught.value)
    assert "integration 'gc15'" in message
    assert "HTTP 401" in message
    assert SECRET_ENV in message
    assert wrong not in message
    assert SECRET not in message

    # Through a run, the failure says the same and the run fails.
    monkeypatch.setenv(SECRET_ENV, wrong)
    integration = genesys_integration(fake)
    result = import_range(
        definitions(settings, integration),
        instance,
        "gc15",
        datetime(2026, 11, 16, 9, tzinfo=UTC),
        datetime(2026, 11, 16, 10, tzinfo=UTC),
    )
    assert not result.success
    failures = failure_messages(result)
    assert any("integration 'gc15'" in text and "HTTP 401" in text for text in failures)
    assert not any(wrong in text for text in failures)


def test_revision_window_is_at_least_72_hours():
    base = {
        "id": "gc",
        "vendor": "genesys_cloud",
        "delivery": "cloud",
        "interval_minutes": 15,
        "timezone": "Europe/Berlin",
        "history_start": "2026-11-01",
        "source": {"client_id": "x", "client_secret_env": "GC_SECRET"},
    }
    (integration,) = parse_integrations({"integrations": [base]})
    assert integration.revision_window_hours == 72

    with pytest.raises(ConfigError) as caught:
        parse_integrations({"integrations": [{**base, "revision_window_hours": 24}]})
    assert "integration 'gc': field 'revision_window_hours'" in str(caught.value)
    assert "at least 72" in str(caught.value)

    # A file-wide default below 72 is an error for Genesys, not silently raised.
    with pytest.raises(ConfigError):
        parse_integrations({"defaults": {"revision_window_hours": 2}, "integrations": [base]})


def with_three_agents(fake: FakeGenesys) -> None:
    """Presence and routing status of three users; u-c is unknown to /api/v2/users."""
    fake.user_details = [
        {
            "userId": "u-a",
            "primaryPresence": [
                {
                    "startTime": at("2026-11-16 06:00"),
                    "endTime": at("2026-11-16 07:55"),
                    "systemPresence": "OFFLINE",
                },
                {
                    "startTime": at("2026-11-16 07:55"),
                    "endTime": at("2026-11-16 08:00"),
                    "systemPresence": "AVAILABLE",
                },
                {
                    "startTime": at("2026-11-16 08:00"),
                    "endTime": at("2026-11-16 10:00"),
                    "systemPresence": "ON_QUEUE",
                },
                {
                    "startTime": at("2026-11-16 10:00"),
                    "endTime": at("2026-11-16 10:15"),
                    "systemPresence": "BREAK",
                },
                {"startTime": at("2026-11-16 10:15"), "systemPresence": "ON_QUEUE"},
            ],
            "routingStatus": [
                {
                    "startTime": at("2026-11-16 08:00"),
                    "endTime": at("2026-11-16 08:07"),
                    "routingStatus": "IDLE",
                },
                {
                    "startTime": at("2026-11-16 08:07"),
                    "endTime": at("2026-11-16 08:30"),
                    "routingStatus": "INTERACTING",
                },
                {
                    "startTime": at("2026-11-16 08:30"),
                    "endTime": at("2026-11-16 10:00"),
                    "routingStatus": "IDLE",
                },
                {
                    "startTime": at("2026-11-16 10:00"),
                    "endTime": at("2026-11-16 10:15"),
                    "routingStatus": "OFF_QUEUE",
                },
                {"startTime": at("2026-11-16 10:15"), "routingStatus": "IDLE"},
            ],
        },
        {
            "userId": "u-b",
            "primaryPresence": [
                {
                    "startTime": at("2026-11-16 07:30"),
                    "endTime": at("2026-11-16 09:10"),
                    "systemPresence": "ON_QUEUE",
                },
                {
                    "startTime": at("2026-11-16 09:10"),
                    "endTime": at("2026-11-16 09:40"),
                    "systemPresence": "MEAL",
                },
                {"startTime": at("2026-11-16 09:40"), "systemPresence": "OFFLINE"},
            ],
            "routingStatus": [
                {
                    "startTime": at("2026-11-16 07:30"),
                    "endTime": at("2026-11-16 08:20"),
                    "routingStatus": "INTERACTING",
                },
                {
                    "startTime": at("2026-11-16 08:20"),
                    "endTime": at("2026-11-16 09:10"),
                    "routingStatus": "IDLE",
                },
                {"startTime": at("2026-11-16 09:10"), "routingStatus": "OFF_QUEUE"},
            ],
        },
        {
            "userId": "u-c",
            "primaryPresence": [
                {
                    "startTime": at("2026-11-16 08:30"),
                    "endTime": at("2026-11-16 09:00"),
                    "systemPresence": "AVAILABLE",
                },
            ],
        },
    ]
    fake.users = {
        "u-a": {"id": "u-a", "username": "Anna.Schmidt@example.com", "name": "Anna Schmidt"},
        "u-b": {"id": "u-b", "username": "bob.meyer@Example.COM ", "name": "Bob Meyer"},
    }


def test_agent_status_combines_presence_and_routing_status(fake):
    with_three_agents(fake)
    start, end = datetime(2026, 11, 16, 8, tzinfo=UTC), datetime(2026, 11, 16, 11, tzinfo=UTC)

    got = direct_source(fake).agent_status(start, end)

    frame = got.frame
    actual = [
        (
            row.user_identifier,
            row.external_activity,
            row.start_utc.strftime("%H:%M"),
            None if pd.isna(row.end_utc) else row.end_utc.strftime("%H:%M"),
        )
        for row in frame.itertuples()
    ]
    assert actual == [
        ("Anna.Schmidt@example.com", "ON_QUEUE/IDLE", "08:00", "08:07"),
        ("Anna.Schmidt@example.com", "ON_QUEUE/INTERACTING", "08:07", "08:30"),
        ("Anna.Schmidt@example.com", "ON_QUEUE/IDLE", "08:30", "10:00"),
        ("Anna.Schmidt@example.com", "BREAK", "10:00", "10:15"),
        ("Anna.Schmidt@example.com", "ON_QUEUE/IDLE", "10:15", None),
        ("bob.meyer@Example.COM ", "ON_QUEUE/INTERACTING", "07:30", "08:20"),
        ("bob.meyer@Example.COM ", "ON_QUEUE/IDLE", "08:20", "09:10"),
        ("bob.meyer@Example.COM ", "MEAL", "09:10", "09:40"),
        ("bob.meyer@Example.COM ", "OFFLINE", "09:40", None),
    ]
    assert str(frame["start_utc"].dt.tz) == "UTC"
    assert str(frame["end_utc"].dt.tz) == "UTC"
    assert (frame["integration_id"] == "gc15").all()
    # The user /api/v2/users does not know is quarantined, not dropped.
    assert len(got.rejected) == 1
    assert "userId u-c" in got.rejected["rules"][0][0]
    # Details were paged (3 users, 2 a page) in each of the two 2-hour windows.
    pages = [
        (r.json()["interval"][11:16], r.json()["paging"]["pageNumber"])
        for r in fake.calls("POST", "/api/v2/analytics/users/details/query")
    ]
    assert pages == [("08:00", 1), ("08:00", 2), ("10:00", 1)]


def test_combine_presence_merges_and_leaves_gaps():
    t = lambda text: pd.Timestamp(f"2026-11-16 {text}", tz="UTC")  # noqa: E731
    timeline = combine_presence(
        [(t("08:00"), t("09:00"), "ON_QUEUE"), (t("09:30"), t("10:00"), "AVAILABLE")],
        [(t("08:00"), t("08:30"), "IDLE"), (t("08:30"), t("09:00"), "IDLE")],
    )
    assert timeline == [
        (t("08:00"), t("09:00"), "ON_QUEUE/IDLE"),  # merged: same activity, touching
        (t("09:30"), t("10:00"), "AVAILABLE"),  # 09:00-09:30 has no presence: a gap
    ]


def test_fake_data_covers_every_media_type():
    # Guards the other tests: the fake really sends all media types and queues.
    expected = expected_contacts(
        datetime(2026, 11, 16, 9, tzinfo=UTC),
        datetime(2026, 11, 16, 10, tzinfo=UTC),
        15,
        "UTC",
        {m: "calls" for m in MEDIA},
    )
    assert set(expected["external_queue_id"]) == {q for q, _ in QUEUES}


def test_a_missing_secret_variable_fails_the_run_naming_it(settings, instance, fake, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    integration = genesys_integration(fake)
    with pytest.raises(dg.DagsterInvalidConfigError, match=SECRET_ENV):
        import_range(
            definitions(settings, integration),
            instance,
            "gc15",
            datetime(2026, 11, 16, 9, tzinfo=UTC),
            datetime(2026, 11, 16, 10, tzinfo=UTC),
        )
    assert fake.calls("POST", "/oauth/token") == []  # nothing was sent without the secret


def test_agent_status_through_the_asset(settings, warehouse, instance, fake):
    with_three_agents(fake)
    integration = genesys_integration(
        fake, id="gc_agents", data=["agent_status"], max_rejected_share=0.5
    )
    start, end = datetime(2026, 11, 16, 8, tzinfo=UTC), datetime(2026, 11, 16, 11, tzinfo=UTC)
    defs = definitions(settings, integration)
    for _ in range(2):  # a re-import replaces, never duplicates
        assert import_range(defs, instance, "gc_agents", start, end).success
    seconds = warehouse.query(
        "SELECT user_identifier, sum(epoch(end_utc) - epoch(start_utc)) AS s, count(*) AS n "
        "FROM agent_status_segments GROUP BY ALL ORDER BY ALL"
    )
    # Both known users are covered for the whole window, split at every UTC hour; the open
    # states are stored up to the window end (the import ran long after it).
    assert seconds["user_identifier"].tolist() == [
        "Anna.Schmidt@example.com",
        "bob.meyer@Example.COM ",
    ]
    assert seconds["s"].tolist() == [3 * 3600, 3 * 3600]
    hours = warehouse.query(
        "SELECT DISTINCT date_trunc('hour', start_utc) = date_trunc('hour', end_utc - "
        "INTERVAL 1 MICROSECOND) AS inside FROM agent_status_segments"
    )
    assert hours["inside"].tolist() == [True]
    rejected = warehouse.query("SELECT rules FROM rejected_rows WHERE integration_id = 'gc_agents'")
    assert len(rejected) == 1
    assert "userId u-c" in rejected["rules"][0][0]
