"""Five9 source against a fake Five9 Configuration Web Service (SOAP) on loopback.

Contacts go through the real asset path and are checked in the warehouse; agent status is
tested on the source itself (its asset is built by another issue).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from etl.resources.sources.base import SourceError
from etl.resources.sources.plumbing.http import AuthError
from etl.resources.sources.vendors.five9 import Five9Settings, Five9Source, parse_duration
from tests.conftest import make_integration
from tests.fakes import Reply
from tests.fakes.five9 import (
    NS,
    PATH,
    SKILLS,
    USERNAME,
    FakeFive9,
    busy_agents,
    contacts_report,
    envelope,
    interval_numbers,
    state_report,
)
from tests.helpers import definitions, import_range

PASSWORD = "f9-Pass-9876-hidden"
PASSWORD_ENV = "WFM_TEST_FIVE9_PASSWORD"
NEW_YORK = "America/New_York"
FAST_HTTP = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "retry_after_max_s": 0.01}
CONTACTS = ("My Reports", "wfm-etl contacts")
STATES = ("My Reports", "wfm-etl agent states")


@pytest.fixture
def fake() -> Iterator[FakeFive9]:
    with FakeFive9(PASSWORD) as server:
        server.reports[CONTACTS] = contacts_report(NEW_YORK)
        yield server


@pytest.fixture(autouse=True)
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def source_settings(fake: FakeFive9, **overrides) -> dict:
    settings = {
        "username": USERNAME,
        "password_env": PASSWORD_ENV,
        "base_url": f"{fake.url}{PATH}",
        "poll_wait_s": 0,
        "http": {**FAST_HTTP, "timeout_s": 10},
    }
    settings.update(overrides)
    return settings


def direct_source(fake: FakeFive9, password: str = PASSWORD, **overrides) -> Five9Source:
    return Five9Source(
        integration_id="f9",
        timezone=NEW_YORK,
        interval_minutes=30,
        settings=Five9Settings.model_validate(source_settings(fake, **overrides)),
        password=password,
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_contacts_split_until_every_result_fits(settings, warehouse, instance, fake):
    # New York's clocks go back at 06:00 UTC on 2026-11-01: 01:00 and 01:30 local come twice.
    fake.row_cap = 20
    fake.inject("POST", PATH, Reply(429, "<html>Too Many Requests</html>", {"Retry-After": "1"}))
    integration = make_integration(
        id="f9",
        vendor="five9",
        interval_minutes=30,
        timezone=NEW_YORK,
        history_start="2026-10-01",
        source=source_settings(fake, row_limit=20),
    )
    start, end = at("2026-11-01 04:00"), at("2026-11-01 08:00")

    result = import_range(definitions(settings, integration), instance, "f9", start, end)

    assert result.success
    rows = warehouse.query(
        "SELECT * FROM contact_intervals WHERE integration_id = 'f9' "
        "ORDER BY external_queue_id, interval_start"
    )
    starts = [start + timedelta(minutes=30 * i) for i in range(8)]
    expected = [
        (skill, moment, interval_numbers(skill, moment))
        for skill in sorted(SKILLS)
        for moment in starts
    ]
    assert len(rows) == len(expected) == 32
    for row, (skill, moment, numbers) in zip(rows.itertuples(), expected, strict=True):
        assert row.external_queue_id == skill
        assert row.interval_start == pd.Timestamp(moment)
        assert (row.offered, row.answered, row.abandoned) == (
            numbers["offered"],
            numbers["answered"],
            numbers["abandoned"],
        )
        assert row.handle_time_s == numbers["handle"]  # from HH:MM:SS, hours past 24 too
        assert row.acw_time_s == numbers["acw"]
    assert rows["handle_time_s"].max() > 24 * 3600
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0

    # 32 rows do not fit under a cap of 20: the window was split in two, and each half ran.
    windows = [run["window"] for run in fake.runs.values()]
    assert windows == [(start, end), (start, at("2026-11-01 06:00")), (at("2026-11-01 06:00"), end)]
    first = fake.operations("runReport")[-3]
    assert first.findtext("folderName") == "My Reports"
    assert first.findtext("reportName") == "wfm-etl contacts"
    assert first.findtext("criteria/time/start") == "2026-11-01T00:00:00.000-04:00"
    assert first.findtext("criteria/time/end") == "2026-11-01T03:00:00.000-05:00"
    assert len(fake.operations("runReport")) == 4  # three runs, one of them retried after 429


def test_a_plain_server_error_is_retried_but_a_soap_fault_is_not(fake):
    source = direct_source(fake)
    fake.inject("POST", PATH, Reply(500, "<html>Internal Server Error</html>"))
    got = source.contacts(at("2026-11-10 14:00"), at("2026-11-10 15:00"))
    assert len(got.frame) == len(SKILLS) * 2

    fake.requests.clear()
    wrong = direct_source(fake, contacts_report={"folder": "My Reports", "name": "no such"})
    with pytest.raises(SourceError) as caught:
        wrong.contacts(at("2026-11-10 14:00"), at("2026-11-10 15:00"))
    assert "integration 'f9'" in str(caught.value)
    assert 'Report "no such" not found' in str(caught.value)
    assert len(fake.calls("POST", PATH)) == 1  # a fault is final: not retried


def test_refused_password_is_named_never_shown(fake):
    with pytest.raises(AuthError) as caught:
        direct_source(fake, password="f9-Wrong-1111").contacts(
            at("2026-11-10 14:00"), at("2026-11-10 15:00")
        )
    message = str(caught.value)
    assert "integration 'f9'" in message
    assert "HTTP 401" in message
    assert PASSWORD_ENV in message
    assert "f9-Wrong-1111" not in message
    assert PASSWORD not in message


def test_a_report_without_the_expected_columns_is_a_clear_error(fake):
    source = direct_source(fake, contact_columns={"offered": "CALLS OFFERED"})
    with pytest.raises(SourceError) as caught:
        source.contacts(at("2026-11-10 14:00"), at("2026-11-10 15:00"))
    assert "no column(s) 'CALLS OFFERED'" in str(caught.value)
    assert "source.contact_columns" in str(caught.value)


def test_agent_states_over_the_50000_row_limit_are_split(fake):
    # 35 agents changing state every minute: a day plus the 2 h look-back is 54,600 rows,
    # more than the documented 50,000-row cap of getReportResultCsv.
    start, end = at("2026-11-10 00:00"), at("2026-11-11 00:00")
    fake.reports[STATES] = state_report(
        NEW_YORK, busy_agents(start - timedelta(hours=2), end + timedelta(hours=1), agents=35)
    )

    got = direct_source(fake, state_lookback_hours=2).agent_status(start, end)

    windows = [run["window"] for run in fake.runs.values()]
    assert windows == [
        (at("2026-11-09 22:00"), end),
        (at("2026-11-09 22:00"), at("2026-11-10 11:00")),
        (at("2026-11-10 11:00"), end),
    ]
    frame = got.frame
    assert len(frame) == 35 * 24 * 60  # every state that overlaps the day, each once
    assert got.rejected.empty
    assert frame["start_utc"].min() == pd.Timestamp(start)
    assert frame["end_utc"].max() == pd.Timestamp(end)
    assert ((frame["end_utc"] - frame["start_utc"]) == pd.Timedelta(minutes=1)).all()
    assert frame["user_identifier"].nunique() == 35
    assert "agent000@acme.example" in set(frame["user_identifier"])
    assert set(frame["external_activity"]) == {
        "Ready",
        "On Call",
        "After Call Work",
        "Not Ready / Break",
    }


def test_agent_states_across_the_autumn_change_become_utc(fake):
    # Start plus HH:MM:SS duration, local New York time; 01:xx happens twice on 2026-11-01.
    def state(agent, name, begins, minutes, reason=""):
        return {
            "agent": agent,
            "state": name,
            "reason": reason,
            "start": at(begins),
            "seconds": minutes * 60,
        }

    fake.reports[STATES] = state_report(
        NEW_YORK,
        [
            state("Dana Lee", "Ready", "2026-11-01 04:50", 40),  # 00:50 EDT, unambiguous
            state("Dana Lee", "On Call", "2026-11-01 05:30", 45),  # 01:30 EDT (ambiguous)
            state("Dana Lee", "Not Ready", "2026-11-01 06:15", 30, "Lunch"),  # 01:15 EST
            state("Dana Lee", "Ready", "2026-11-01 06:45", 75),  # 01:45 EST, until 03:00 EST
        ],
    )
    got = direct_source(fake, state_lookback_hours=1).agent_status(
        at("2026-11-01 05:00"), at("2026-11-01 08:00")
    )
    assert [
        (r.user_identifier, r.external_activity, f"{r.start_utc:%H:%M}", f"{r.end_utc:%H:%M}")
        for r in got.frame.itertuples()
    ] == [
        ("Dana Lee", "Ready", "04:50", "05:30"),
        ("Dana Lee", "On Call", "05:30", "06:15"),
        ("Dana Lee", "Not Ready / Lunch", "06:15", "06:45"),
        ("Dana Lee", "Ready", "06:45", "08:00"),
    ]
    assert got.rejected.empty


def test_parse_duration_reads_five9_durations():
    assert parse_duration("00:04:05") == 245
    assert parse_duration("27:00:05") == 27 * 3600 + 5
    assert parse_duration("") == 0
    with pytest.raises(ValueError, match="HH:MM:SS"):
        parse_duration("4:5")


def test_agent_states_through_the_asset(settings, warehouse, instance, fake):
    start, end = at("2026-11-10 12:00"), at("2026-11-10 15:00")
    fake.reports[STATES] = state_report(
        NEW_YORK, busy_agents(start - timedelta(hours=2), end + timedelta(hours=1), agents=3)
    )
    integration = make_integration(
        id="f9_agents",
        vendor="five9",
        interval_minutes=30,
        data=["agent_status"],
        timezone=NEW_YORK,
        history_start="2026-10-01",
        source=source_settings(fake, state_lookback_hours=2),
    )
    defs = definitions(settings, integration)
    for _ in range(2):  # a re-import replaces, never duplicates
        assert import_range(defs, instance, "f9_agents", start, end).success
    per_user = warehouse.query(
        "SELECT user_identifier, sum(epoch(end_utc) - epoch(start_utc)) AS s, count(*) AS n "
        "FROM agent_status_segments GROUP BY ALL ORDER BY ALL"
    )
    assert len(per_user) == 3
    assert per_user["s"].tolist() == [3 * 3600] * 3  # one-minute states fill the window
    assert per_user["n"].tolist() == [3 * 60] * 3
    assert "agent000@acme.example" in set(per_user["user_identifier"])


def test_an_answer_without_a_return_value_is_an_error_not_an_empty_report(fake):
    """A SOAP answer that lacks the operation's return value (a proxy's or a changed API's
    answer) would otherwise read as a report without rows: an hour emptied silently."""
    hollow = Reply(200, envelope(f'<ns2:runReportResponse xmlns:ns2="{NS}"/>'))
    fake.inject("POST", PATH, hollow)
    with pytest.raises(SourceError) as caught:
        direct_source(fake).contacts(at("2026-11-10 14:00"), at("2026-11-10 15:00"))
    assert "runReport: the answer has no return value" in str(caught.value)
    assert "integration 'f9'" in str(caught.value)


def test_an_empty_report_result_is_an_error(fake):
    fake.reports[CONTACTS] = lambda start, end: ([], [])
    with pytest.raises(SourceError) as caught:
        direct_source(fake).contacts(at("2026-11-10 14:00"), at("2026-11-10 15:00"))
    assert "an empty result, not even the header line" in str(caught.value)
