"""Amazon Connect source against a fake Connect API that checks AWS Signature Version 4
with botocore's own signer, and against agent event stream files.

Contacts: `GetMetricDataV2` per queue and channel, windows under three days, `NextToken`
pages, a 429 and a 500 on the way, revised intervals replaced; the grid is a half-hour
offset zone's across its DST change. Agent status: STATE_CHANGE / LOGIN / LOGOUT records
(HEART_BEAT ignored, duplicates delivered by Kinesis kept once) become segments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from etl.resources.sources.base import SourceError
from etl.resources.sources.plumbing.http import AuthError
from etl.resources.sources.vendors.amazon_connect import (
    AmazonConnectSettings,
    AmazonConnectSource,
    json_records,
)
from tests.conftest import make_integration
from tests.fakes import Reply, failure_messages
from tests.fakes.amazon_connect import (
    ACCESS_KEY,
    INSTANCE_ARN,
    FakeConnect,
    agent_event,
    interval_of,
    make_contacts,
    utc,
)
from tests.helpers import definitions, import_range
from tests.resources.sources.vendors.expected import assert_contacts, summed, warehouse_contacts

SECRET = "aws/Secret+Key/never-shown-0123456789abcd"
SECRET_ENV = "WFM_TEST_CONNECT_SECRET"
FAST_HTTP = {
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.01,
    "retry_after_max_s": 0.01,
    "requests_per_second": 100,
    "timeout_s": 10,
}
ST_JOHNS = "America/St_Johns"  # UTC-03:30, UTC-02:30 in summer: hours start at :30 UTC


@pytest.fixture
def fake() -> Iterator[FakeConnect]:
    with FakeConnect(SECRET, now=utc("2026-11-18 10:00")) as server:
        yield server


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def source_settings(fake: FakeConnect, **overrides) -> dict:
    settings = {
        "instance_arn": INSTANCE_ARN,
        "access_key_id": ACCESS_KEY,
        "secret_access_key_env": SECRET_ENV,
        "endpoint_url": fake.url,
        "max_results": 7,
        "http": FAST_HTTP,
    }
    settings.update(overrides)
    return settings


def direct_source(fake: FakeConnect, minutes: int = 60, zone: str = ST_JOHNS, **overrides):
    return AmazonConnectSource(
        integration_id=f"ac{minutes}",
        timezone=zone,
        interval_minutes=minutes,
        settings=AmazonConnectSettings.model_validate(source_settings(fake, **overrides)),
        secret_access_key=SECRET,
    )


def connect_integration(fake: FakeConnect, **overrides):
    fields = {
        "id": "ac60",
        "vendor": "amazon_connect",
        "interval_minutes": 60,
        "timezone": ST_JOHNS,
        "history_start": "2026-10-01",
        "source": source_settings(fake),
    }
    fields.update(overrides)
    return make_integration(**fields)


def expected_contacts(fake: FakeConnect, start, end, minutes: int, zone: str) -> pd.DataFrame:
    rows = [
        {
            "queue": c["queue"],
            "channel": {"VOICE": "calls", "CHAT": "chats"}[c["channel"]],
            "interval_start": pd.Timestamp(interval_of(c["queued_at"], minutes, zone)),
            "offered": 1,
            "answered": int(c["handled"]),
            "abandoned": int(c["abandoned"]),
            "handle_time_s": c["handle_s"] if c["handled"] else 0,
        }
        for c in fake.contacts
    ]
    return summed(rows, start, end)


def test_signed_metric_requests_across_a_dst_change(settings, warehouse, instance, fake):
    # St. John's goes from UTC-2:30 to UTC-3:30 at 04:30 UTC on 2026-11-01.
    start, end = utc("2026-11-01 00:00"), utc("2026-11-01 09:00")
    fake.contacts = make_contacts(start - timedelta(hours=2), end + timedelta(hours=2))
    fake.inject("POST", "/metrics/data", Reply(429, {"message": "Rate exceeded"}))
    fake.inject("POST", "/metrics/data", Reply(500, {"message": "InternalServiceException"}))

    result = import_range(
        definitions(settings, connect_integration(fake)), instance, "ac60", start, end
    )

    assert result.success
    rows = warehouse_contacts(warehouse, "ac60")
    assert_contacts(rows, expected_contacts(fake, start, end, 60, ST_JOHNS))
    # Local hours begin at :30 UTC (at :30 both before and after the change).
    assert set(rows["interval_start"].dt.strftime("%M")) == {"30"}
    bodies = [r.json() for r in fake.calls("POST", "/metrics/data")]
    assert {b["Interval"]["IntervalPeriod"] for b in bodies} == {"HOUR"}
    assert {b["Interval"]["TimeZone"] for b in bodies} == {ST_JOHNS}
    assert any("NextToken" in b for b in bodies)  # results came in several pages
    # The agent queue is not asked for; the standard queues came from ListQueues pages.
    assert {v for b in bodies for v in b["Filters"][0]["FilterValues"]} == {"q-support", "q-sales"}
    assert len(fake.calls("GET", "/queues-summary/")) == 2  # one queue a page, NextToken
    assert all(r.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ") for r in fake.requests)


def test_a_backfill_is_cut_into_windows_under_three_days(fake):
    start, end = utc("2026-10-01 00:00"), utc("2026-10-08 00:00")
    fake.contacts = make_contacts(start, end, every_s=900)
    source = direct_source(fake, 15, "UTC", max_results=100)
    got = source.contacts(start, end).frame
    windows = {
        (b["StartTime"], b["EndTime"])
        for b in (r.json() for r in fake.calls("POST", "/metrics/data"))
    }
    assert len(windows) == 3
    assert all(stop - begin < 3 * 86400 for begin, stop in windows)
    assert got["offered"].sum() == len(fake.contacts)


def test_revised_intervals_are_replaced(settings, warehouse, instance, fake):
    start, end = utc("2026-11-10 12:30"), utc("2026-11-10 15:30")
    fake.contacts = make_contacts(start, end)
    defs = definitions(settings, connect_integration(fake))
    assert import_range(defs, instance, "ac60", start, end).success
    for contact in fake.contacts[:20]:  # contacts finished after the first import
        contact.update(handled=True, abandoned=False, handle_s=contact["handle_s"] + 100)
    assert import_range(defs, instance, "ac60", start, end).success
    assert_contacts(
        warehouse_contacts(warehouse, "ac60"), expected_contacts(fake, start, end, 60, ST_JOHNS)
    )


def test_a_wrong_secret_fails_the_signature_check(settings, instance, fake, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "aws/not/the/secret")
    start, end = utc("2026-11-10 12:30"), utc("2026-11-10 13:30")
    result = import_range(
        definitions(settings, connect_integration(fake)), instance, "ac60", start, end
    )
    assert not result.success
    text = " ".join(failure_messages(result))
    assert "integration 'ac60'" in text
    assert "denied access (HTTP 403)" in text
    assert "signature we calculated does not match" in text
    assert SECRET_ENV in text
    assert "aws/not/the/secret" not in text
    # The same request signed with the right secret passes the same check.
    source = direct_source(fake)
    assert source.contacts(start, end).frame.empty
    with pytest.raises(AuthError):
        source.model_copy(update={"secret_access_key": "x" * 40}).contacts(start, end)


# -- the agent event stream -------------------------------------------------------------------
def write_firehose(folder: Path, records: list[dict], hour: str) -> Path:
    """Records as Firehose writes them: concatenated JSON objects in YYYY/MM/DD/HH/."""
    path = folder / hour / f"agent-events-1-{hour.replace('/', '-')}-abc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) for r in records))
    old = path.stat().st_mtime - 600
    os.utime(path, (old, old))  # delivered a while ago: settled
    return path


def test_status_from_event_stream_files_through_the_asset(
    settings, warehouse, instance, fake, tmp_path
):
    folder = tmp_path / "agent-events"
    anna, ben = "anna.keller", "ben.ortiz"
    write_firehose(
        folder,
        [
            agent_event(anna, "LOGIN", "2026-11-10 07:50:00"),  # before the window: look-back
            agent_event(anna, "HEART_BEAT", "2026-11-10 08:10:00"),
            agent_event(anna, "STATE_CHANGE", "2026-11-10 08:20:00", contact="CONNECTED"),
            agent_event(anna, "STATE_CHANGE", "2026-11-10 08:30:00", contact="ENDED"),
        ],
        "2026/11/10/08",
    )
    duplicate = agent_event(anna, "STATE_CHANGE", "2026-11-10 08:35:00", status="Lunch")
    write_firehose(
        folder,
        [
            duplicate,
            duplicate,  # Kinesis delivers at least once
            agent_event(anna, "LOGOUT", "2026-11-10 09:15:00", status="Offline"),
            agent_event(ben, "LOGIN", "2026-11-10 09:00:00", status="Available"),
            agent_event(ben, "STATE_CHANGE", "2026-11-10 09:05:00", status="Available"),  # same
        ],
        "2026/11/10/09",
    )
    write_firehose(folder, [agent_event(anna, "LOGIN", "2026-11-11 07:00:00")], "2026/11/11/07")
    integration = connect_integration(
        fake,
        id="ac_agents",
        data=["agent_status"],
        source=source_settings(fake, event_folder=str(folder)),
    )
    start, end = utc("2026-11-10 08:00"), utc("2026-11-10 10:00")
    defs = definitions(settings, integration)
    for _ in range(2):  # a re-import replaces, never duplicates
        assert import_range(defs, instance, "ac_agents", start, end).success
    rows = warehouse.query(
        "SELECT user_identifier, external_activity, min(start_utc) AS s, "
        "sum(epoch(end_utc) - epoch(start_utc)) AS secs "
        "FROM agent_status_segments WHERE integration_id = 'ac_agents' GROUP BY ALL ORDER BY 1, 3"
    )
    assert [(r.user_identifier, r.external_activity, r.secs) for r in rows.itertuples()] == [
        (anna, "Available", 20 * 60),  # 07:50 LOGIN, cut at the window's start
        (anna, "Available / CONNECTED", 10 * 60),
        (anna, "Available / ENDED", 5 * 60),
        (anna, "Lunch", 40 * 60),  # until LOGOUT
        (ben, "Available", 60 * 60),  # open: up to the window's end
    ]
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def test_event_records_in_any_framing_and_bad_ones_quarantined(fake, tmp_path):
    folder = tmp_path / "events"
    folder.mkdir()
    lines = folder / "export.jsonl"
    good = agent_event("carla", "LOGIN", "2026-11-10 08:05:00")
    lines.write_text(
        json.dumps(good)
        + "\n{not json\n"
        + json.dumps([agent_event("carla", "LOGOUT", "2026-11-10 08:45:00")])
        + "\n"
    )
    os.utime(lines, (lines.stat().st_mtime - 600,) * 2)
    source = direct_source(fake, event_folder=str(folder))
    got = source.agent_status(utc("2026-11-10 08:00"), utc("2026-11-10 09:00"))
    assert [
        (
            r.user_identifier,
            r.external_activity,
            r.start_utc.strftime("%H:%M"),
            r.end_utc.strftime("%H:%M"),
        )
        for r in got.frame.itertuples()
    ] == [("carla", "Available", "08:05", "08:45")]
    (bad,) = got.rejected.itertuples()
    assert bad.source_ref.startswith("export.jsonl offset ")
    assert "not JSON" in bad.rules[0]
    assert got.failed == []
    # A file still being written is not read: its window is reported as not delivered.
    lines.touch()
    fresh = source.agent_status(utc("2026-11-10 08:00"), utc("2026-11-10 09:00"))
    assert fresh.frame.empty
    assert "export.jsonl" in fresh.failed[0].reason


def test_json_records_reads_concatenated_objects():
    text = '{"a": 1}{"a": 2}\n{"a": 3} [{"a": 4}]'
    assert [r for _, r, _ in json_records(text)] == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]


def test_agent_status_without_an_event_folder_is_a_clear_error(fake):
    source = direct_source(fake)
    with pytest.raises(SourceError) as caught:
        source.agent_status(utc("2026-11-10 08:00"), utc("2026-11-10 09:00"))
    assert "source.event_folder" in str(caught.value)


def test_the_instance_arn_gives_region_and_endpoint():
    settings = AmazonConnectSettings.model_validate(
        {"instance_arn": INSTANCE_ARN, "access_key_id": ACCESS_KEY, "secret_access_key_env": "X"}
    )
    assert settings.region == "eu-central-1"
    assert settings.api_url == "https://connect.eu-central-1.amazonaws.com"
    assert settings.http.requests_per_second == 5.0
    with pytest.raises(ValueError, match="instance ARN"):
        AmazonConnectSettings.model_validate({**settings.model_dump(), "instance_arn": "arn:x"})


# -- a Redis stream standing in for the Kinesis stream ----------------------------------------
REDIS_URL = os.environ.get("WFM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, str]]:
    """A fresh stream key on the local Redis server (a clear failure when it is absent)."""
    import uuid

    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is needed by this test but not reachable at {REDIS_URL}: {exc}")
    key = f"wfm-test-agent-events-{uuid.uuid4().hex}"
    monkeypatch.setenv("WFM_TEST_CONNECT_REDIS", REDIS_URL)
    yield client, key
    client.delete(key)
    client.close()


def xadd(client, key: str, record: dict, lag_ms: int = 800, raw: str | None = None) -> None:
    """Add a record as a stream consumer would forward it: arrival a little after the event
    (entry IDs are arrival milliseconds, so entries go in arrival order)."""
    at = int(pd.Timestamp(record["EventTimestamp"]).timestamp() * 1000) + lag_ms
    client.xadd(key, {"data": raw or json.dumps(record)}, id=f"{at}-*")


def test_status_from_a_redis_stream_through_the_asset(
    settings, warehouse, instance, fake, redis_stream, monkeypatch
):
    client, key = redis_stream
    dana = "dana.lee"
    records = [
        agent_event(dana, "LOGIN", "2026-11-10 07:40:00"),
        agent_event(dana, "HEART_BEAT", "2026-11-10 08:00:00"),
        agent_event(dana, "STATE_CHANGE", "2026-11-10 08:10:00", contact="CONNECTED"),
        agent_event(dana, "STATE_CHANGE", "2026-11-10 08:25:00", status="Break"),
        agent_event(dana, "LOGOUT", "2026-11-10 08:55:00", status="Offline"),
    ]
    broken = {"EventTimestamp": "2026-11-10T08:30:00.000Z"}
    entries = [*((r, 800) for r in records), (records[3], 1500), (broken, 900)]  # one twice
    for record, lag_ms in sorted(entries, key=lambda e: pd.Timestamp(e[0]["EventTimestamp"])):
        xadd(client, key, record, lag_ms=lag_ms, raw="{broken" if record is broken else None)
    integration = connect_integration(
        fake,
        id="ac_stream",
        data=["agent_status"],
        max_rejected_share=0.5,
        source=source_settings(
            fake,
            event_redis_url_env="WFM_TEST_CONNECT_REDIS",
            event_redis_key=key,
            event_lookback_hours=1,
        ),
    )
    start, end = utc("2026-11-10 08:00"), utc("2026-11-10 09:00")
    assert import_range(
        definitions(settings, integration), instance, "ac_stream", start, end
    ).success
    rows = warehouse.query(
        "SELECT external_activity, sum(epoch(end_utc) - epoch(start_utc)) AS secs "
        "FROM agent_status_segments WHERE integration_id = 'ac_stream' GROUP BY ALL ORDER BY ALL"
    )
    assert list(rows.itertuples(index=False, name=None)) == [
        ("Available", 10 * 60),
        ("Available / CONNECTED", 15 * 60),
        ("Break", 30 * 60),
    ]
    (bad,) = warehouse.query("SELECT source_ref, rules FROM rejected_rows").itertuples()
    assert bad.source_ref.startswith(f"stream {key} entry ")
    assert client.xlen(key) == len(records) + 2  # read, never consumed


def test_a_trimmed_stream_reports_the_window_and_redis_down_is_clear(
    fake, redis_stream, monkeypatch
):
    client, key = redis_stream
    for minute in range(10):
        xadd(
            client,
            key,
            agent_event(
                "eve", "STATE_CHANGE", f"2026-11-10 08:{minute:02d}:00", status=f"S{minute}"
            ),
        )
    client.xtrim(
        key, maxlen=3, approximate=False
    )  # the stream's retention dropped the older entries
    source = direct_source(fake, event_redis_url_env="WFM_TEST_CONNECT_REDIS", event_redis_key=key)
    source = source.model_copy(update={"event_redis_url": REDIS_URL})
    got = source.agent_status(utc("2026-11-10 08:00"), utc("2026-11-10 09:00"))
    assert "trimmed" in got.failed[0].reason
    down = source.model_copy(update={"event_redis_url": "redis://127.0.0.1:1/0"})
    with pytest.raises(SourceError) as caught:
        down.agent_status(utc("2026-11-10 08:00"), utc("2026-11-10 09:00"))
    assert "integration 'ac60'" in str(caught.value)
    assert "ConnectionError" in str(caught.value)
