"""The Genesys Engage preset on a Genesys Info Mart schema held by real PostgreSQL and MariaDB
servers: a fall-back day of the DATE_TIME calendar imported through the asset path, and Info
Mart rewriting recent rows (an active state ending, an interval's counts growing, a late fact)
caught by the next scheduled tick's revision window, never doubled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from etl.config import ConfigError, parse_integrations
from etl.resources.sources.vendors.genesys_engage import GenesysEngageSource
from tests.fakes.infomart import STATES, InfoMart, epoch
from tests.helpers import definitions, fixed_clock, import_range, scheduled_tick

URL_ENV = "WFM_TEST_INFOMART_URL"
BERLIN = ZoneInfo("Europe/Berlin")
FALL_DAY = datetime(2026, 10, 24, 22, tzinfo=UTC)  # 2026-10-25 00:00 in Berlin (CEST)
FALL_END = datetime(2026, 10, 25, 23, tzinfo=UTC)  # 25 hours later: the next local midnight
CONTACTS = """
    SELECT external_queue_id, channel, epoch(interval_start)::BIGINT AS ts, offered, answered,
           abandoned, handle_time_s
    FROM contact_intervals ORDER BY ts, external_queue_id, channel
"""
SEGMENTS = """
    SELECT user_identifier, external_activity, epoch(min(start_utc))::BIGINT AS first_piece,
           epoch(max(end_utc))::BIGINT AS end_ts, bool_or(is_open) AS is_open
    FROM agent_status_segments WHERE start_utc >= ?
    GROUP BY user_identifier, external_activity, segment_start_utc
    ORDER BY user_identifier, first_piece
"""


def engage_integration(**overrides):
    fields = {
        "id": "engage_berlin",
        "vendor": "genesys_engage",
        "delivery": "on_premise",
        "interval_minutes": 15,
        "data": ["contacts", "agent_status"],
        "timezone": "Europe/Berlin",
        "history_start": "2026-10-24",
        "source": {"url_env": URL_ENV},
    }
    fields.update(overrides)
    return parse_integrations({"integrations": [fields]})[0]


@pytest.fixture(params=["pg_url", "mysql_url"])
def infomart(request, monkeypatch):
    url = request.getfixturevalue(request.param)
    monkeypatch.setenv(URL_ENV, url)
    mart = InfoMart(url)
    yield mart
    mart.dispose()


def stored_contacts(warehouse) -> dict[tuple, list[int]]:
    frame = warehouse.query(CONTACTS)
    return {
        (r.external_queue_id, r.channel, r.ts): [
            r.offered,
            r.answered,
            r.abandoned,
            r.handle_time_s,
        ]
        for r in frame.itertuples()
    }


def stored_segments(warehouse, since: datetime = datetime(2000, 1, 1, tzinfo=UTC)) -> list[tuple]:
    """Segments put back together from their hourly pieces (those from `since` on)."""
    frame = warehouse.query(SEGMENTS, [since])
    return sorted(
        (r.user_identifier, r.external_activity, r.first_piece, None if r.is_open else r.end_ts)
        for r in frame.itertuples()
    )


def clipped(states, start: datetime, end: datetime, now: datetime) -> list[tuple]:
    """What the warehouse holds of `states` imported for [start, end) at `now`."""
    lo, hi, cut = epoch(start), epoch(end), epoch(now)
    out = []
    for user, name, begin, finish in states:
        stop = finish if finish is not None else min(cut, hi)
        if begin < hi and stop > lo:
            out.append((user, name, max(begin, lo), None if finish is None else min(finish, hi)))
    return sorted(out)


def test_a_fall_back_day_lands_keyed_on_the_utc_interval(infomart, settings, warehouse, instance):
    infomart.create(FALL_DAY - timedelta(days=1), FALL_END + timedelta(days=1))
    now = FALL_END + timedelta(hours=2)
    infomart.insert(infomart.agent_day(FALL_DAY, now), infomart.queue_day(FALL_DAY, now))
    integration = engage_integration()
    assert integration.revision_window_hours == 24  # the vendor's default
    defs = definitions(settings, integration)
    with fixed_clock(now):
        assert import_range(defs, instance, integration.id, FALL_DAY, FALL_END).success

    expected = infomart.expected_contacts(FALL_DAY, FALL_END)
    assert len(expected) == 100 * 4  # 25 hours of quarters; 4 queues of the imported media
    assert stored_contacts(warehouse) == expected
    # The calendar's 02:00..02:45 happened twice; both hours are there, an hour apart in UTC.
    stored = warehouse.query(CONTACTS)
    voice = stored[stored["external_queue_id"] == "8001"]
    labels = [
        datetime.fromtimestamp(ts, BERLIN).strftime("%H:%M %Z")
        for ts in voice["ts"]
        if datetime.fromtimestamp(ts, BERLIN).hour == 2
    ]
    assert labels == [f"02:{m:02d} {z}" for z in ("CEST", "CET") for m in (0, 15, 30, 45)]
    assert set(stored["channel"]) == {"calls", "chats", "emails"}
    assert "IQ_Workitems" not in set(stored["external_queue_id"])

    states = infomart.expected_states()
    assert stored_segments(warehouse) == clipped(states, FALL_DAY, FALL_END, now)
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def test_rewritten_recent_rows_are_caught_by_the_revision_window(
    infomart, settings, warehouse, instance
):
    day = datetime(2026, 11, 17, 7, tzinfo=UTC)
    first_tick = datetime(2026, 11, 18, 10, 35, tzinfo=UTC)
    second_tick = datetime(2026, 11, 18, 11, 20, tzinfo=UTC)
    night = (
        epoch(datetime(2026, 11, 17, 23, tzinfo=UTC)),
        epoch(datetime(2026, 11, 18, tzinfo=UTC)),
    )
    infomart.create(day - timedelta(days=1), second_tick + timedelta(days=1))
    states = infomart.agent_day(day, first_tick)
    late = [r for r in states if r["resource_key"] == 21 and night[0] <= r["start_ts"] < night[1]]
    infomart.insert([r for r in states if r not in late], infomart.queue_day(day, first_tick))
    integration = engage_integration(history_start="2026-11-17T07:00")
    defs = definitions(settings, integration)

    assert scheduled_tick(defs, instance, integration, first_tick).success
    tick_window = datetime(2026, 11, 17, 10, tzinfo=UTC)  # the current hour and 24 before it
    assert min(k[2] for k in stored_contacts(warehouse)) == epoch(tick_window)
    first = stored_contacts(warehouse)

    # Info Mart's next cycles rewrite recent rows: anna's active state ends and the next one
    # begins; interactions that entered at 10:15 are accepted, so that interval grows; last
    # night's states of jonas arrive late; new intervals come. A row outside the next tick's
    # window changes too: that one is not re-read.
    anna = max(
        (r for r in infomart.states if r["resource_key"] == 20 and r["media_type_key"] == 1),
        key=lambda r: r["start_ts"],
    )
    assert anna["active_flag"] == 1
    ended = epoch(datetime(2026, 11, 18, 10, 50, tzinfo=UTC))
    infomart.end_state(anna["sm_res_state_fact_key"], ended)
    infomart.insert([infomart.state(20, 2, ended, None), *late])
    quarter = epoch(datetime(2026, 11, 18, 10, 15, tzinfo=UTC))
    infomart.revise_interval(quarter, resource=10, combo=1, accepted_more=2)
    infomart.revise_interval(epoch(tick_window), resource=10, combo=1, accepted_more=5)
    new_rows = infomart.queue_day(day, second_tick)
    infomart.insert(queue_rows=[r for r in new_rows if r["date_time_key"] > epoch(first_tick)])

    assert scheduled_tick(defs, instance, integration, second_tick).success
    stored = stored_contacts(warehouse)
    revised = datetime(2026, 11, 17, 11, tzinfo=UTC)  # the second tick's window starts here
    expected = infomart.expected_contacts(revised, second_tick)
    assert {k: v for k, v in stored.items() if k[2] >= epoch(revised)} == expected
    assert stored[("8001", "calls", quarter)] != first[("8001", "calls", quarter)]
    assert stored[("8001", "calls", quarter)][1] == first[("8001", "calls", quarter)][1] + 2
    outside = ("8001", "calls", epoch(tick_window))
    assert (
        stored[outside] == first[outside] != infomart.expected_contacts(day, second_tick)[outside]
    )
    keys = warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT (external_queue_id, channel, interval_start)) AS k "
        "FROM contact_intervals"
    )
    assert keys["n"][0] == keys["k"][0]

    segments = stored_segments(warehouse, since=revised)
    window_end = datetime(2026, 11, 18, 12, tzinfo=UTC)
    assert segments == clipped(infomart.expected_states(), revised, window_end, second_tick)
    anna_state = STATES[anna["resource_state_key"]][2]
    assert ("anna.berg", anna_state, anna["start_ts"], ended) in segments
    assert ("anna.berg", "Ready", ended, None) in segments
    jonas_night = [s for s in segments if s[0] == "jonas.weber" and night[0] <= s[2] < night[1]]
    assert len(jonas_night) == len([r for r in late if r["end_ts"] > r["start_ts"]]) > 0


def test_only_the_configured_queues_and_media_are_read(infomart, monkeypatch):
    infomart.create(FALL_DAY, FALL_END)
    infomart.insert(queue_rows=infomart.queue_day(FALL_DAY, FALL_DAY + timedelta(hours=1)))
    integration = engage_integration(
        source={
            "url_env": URL_ENV,
            "queues": ["8001", "IQ_Workitems"],
            "media": {"VOICE": "calls", "WORKITEM": "tickets"},
        }
    )
    extract = GenesysEngageSource.from_integration(integration).contacts(
        FALL_DAY, FALL_DAY + timedelta(hours=1)
    )
    frame = extract.frame
    assert sorted(set(zip(frame["external_queue_id"], frame["channel"], strict=True))) == [
        ("8001", "calls"),
        ("IQ_Workitems", "tickets"),
    ]
    assert len(frame) == 8
    reading = "read with COPY" if "postgresql" in infomart.url else "in 1 chunk(s)"
    assert reading in extract.description


def test_agent_states_of_another_media_and_by_state_type(infomart):
    infomart.create(FALL_DAY, FALL_END)
    now = FALL_DAY + timedelta(hours=2)
    infomart.insert(infomart.agent_day(FALL_DAY, now))
    integration = engage_integration(
        source={"url_env": URL_ENV, "agent_media": "CHAT", "activity": "state_type"}
    )
    extract = GenesysEngageSource.from_integration(integration).agent_status(FALL_DAY, now)
    assert list(
        zip(extract.frame["user_identifier"], extract.frame["external_activity"], strict=True)
    ) == [("anna.berg", "Ready"), ("anna.berg", "Busy")]


def test_the_sub_hour_grain_is_required():
    with pytest.raises(ConfigError, match="genesys_engage contact data comes in 15-minute"):
        engage_integration(interval_minutes=30)
    agent_only = engage_integration(interval_minutes=30, data=["agent_status"])
    assert agent_only.interval_minutes == 30
    with pytest.raises(ConfigError, match="needs at least 24 hours"):
        engage_integration(revision_window_hours=2)
    with pytest.raises(ConfigError, match="unknown channel"):
        engage_integration(source={"url_env": URL_ENV, "media": {"VOICE": "phone"}})
