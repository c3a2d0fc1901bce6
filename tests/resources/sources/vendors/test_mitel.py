"""Mitel MiVoice Business: the ACD real-time stream, read by the listener from a real TCP server
on loopback that cuts records across reads, drops the connection inside a record and sends
records again after the reconnect; the segments it lands in the landing store shown live by
`wfm-etl serve` and imported through the asset; and the MiContact Center CSV exports across a
DST change.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml

from etl.ingest.store import OPEN_END_US, LandingStore, to_us
from etl.resources.sources.base import SourceError
from etl.resources.sources.vendors.mitel import (
    AcdEvent,
    AgentStates,
    ListenerBusyError,
    MitelListener,
    MitelPaths,
    MitelSettings,
    MitelSource,
    event_instant,
    listen,
    listening_periods,
    parse_record,
)
from etl.resources.warehouse import Warehouse
from tests.conftest import make_integration
from tests.fakes.mitel import DROP, FakeAcd, acd_record, refresh_record
from tests.helpers import definitions, fixed_clock, import_range
from tests.ingest.server import make_home, running, wait_for

OSLO = ZoneInfo("Europe/Oslo")
BASE = datetime(2026, 11, 18, 10, 20, tzinfo=UTC)  # 11:20 in Oslo


def local(seconds: float) -> datetime:
    return (BASE + timedelta(seconds=seconds)).astimezone(OSLO)


def utc(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def mitel_integration(
    tmp_path: Path,
    port: int = 1,
    data: tuple[str, ...] = ("agent_status",),
    history_start: str = "2026-11-18",
    **source,
):
    return make_integration(
        id="mitel_oslo",
        vendor="mitel",
        delivery="on_premise",
        interval_minutes=15,
        data=list(data),
        timezone="Europe/Oslo",
        history_start=history_start,
        source={
            "host": "127.0.0.1",
            "port": port,
            "state_dir": str(tmp_path / "state"),
            "reconnect_initial_s": 0.01,
            "reconnect_max_s": 0.1,
            "idle_timeout_s": 5,
            "heartbeat_s": 1,
            **source,
        },
    )


@pytest.fixture(autouse=True)
def landing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The landing store the listener lands in and the import reads (one per test)."""
    url = f"sqlite:///{tmp_path / 'landing' / 'landing.sqlite'}"
    monkeypatch.setenv("WFM_LANDING_URL", url)
    return url


def segments(integration, since: datetime = BASE) -> list[tuple]:
    """The landed segments as the import sees them (the latest version per agent and start,
    without the withdrawn ones), as (agent, activity, start, end) in seconds after BASE."""
    store = LandingStore(os.environ["WFM_LANDING_URL"])
    try:
        rows = store.segments_overlapping(integration.id, to_us(since), OPEN_END_US)
    finally:
        store.dispose()
    got = []
    for _key, start_us, end_us, record, _ in rows:
        if end_us <= start_us:
            continue  # withdrawn: it lasted no time
        parsed = json.loads(record)
        start = datetime.fromisoformat(parsed["start_utc"])
        end = datetime.fromisoformat(parsed["end_utc"]) if parsed["end_utc"] else None
        got.append(
            (
                parsed["user_identifier"],
                parsed["external_activity"],
                (start - BASE).total_seconds(),
                None if end is None else (end - BASE).total_seconds(),
            )
        )
    return sorted(got)


class Clock:
    """The listener's clock: BASE plus the real time elapsed since it was made, or set."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.fixed: datetime | None = None

    def __call__(self) -> datetime:
        if self.fixed is not None:
            return self.fixed
        return BASE + timedelta(seconds=time.monotonic() - self.started)


# -- records, instants, states --------------------------------------------------------------
def test_a_record_is_read_by_its_fixed_width_fields():
    event = parse_record(
        acd_record(7, "E", local(6), agent="1002", directory_number="2201", button="003")[1:-2]
    )
    assert event == AcdEvent(
        sequence=7,
        code="E",
        clock=local(6).time().replace(microsecond=0),
        directory_number="2201",
        agent_id="1002",
        detail="003",
        identity=event.identity,
    )
    assert event.identity == f"07E{local(6):%H%M%S}2201   1002   "
    report = parse_record(refresh_record(12)[1:-2])
    assert (report.sequence, report.code, report.clock, report.agent_id) == (12, "R", None, "")


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"xxA", "no REC NUM"),
        (b"01Z101500", "unknown function code 'Z'"),
        (b"01A1015", "7 characters; an agent event has at least 23"),
        (b"01A256199" + b" " * 14, "TIME '256199' is not HHMMSS"),
        (b"01A\xff", "not ASCII"),
    ],
)
def test_an_unreadable_record_says_why(raw, rule):
    with pytest.raises(ValueError, match=rule):
        parse_record(raw)


def test_a_time_of_day_becomes_the_nearest_instant_across_midnight_and_dst():
    clock = datetime(2026, 11, 18, 23, 59, 58).time()
    just_after_midnight = datetime(2026, 11, 19, 0, 0, 2, tzinfo=OSLO).astimezone(UTC)
    assert event_instant(clock, just_after_midnight, OSLO) == datetime(
        2026, 11, 18, 22, 59, 58, tzinfo=UTC
    )
    # Oslo falls back at 03:00 on 2026-10-25: 02:30 happens at 00:30 and at 01:30 UTC.
    half_past_two = datetime(2026, 10, 25, 2, 30).time()
    for received in (
        datetime(2026, 10, 25, 0, 30, 5, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, 5, tzinfo=UTC),
    ):
        assert event_instant(half_past_two, received, OSLO) == received.replace(second=0)


def event(sequence: int, code: str, seconds: float, agent: str, button: str = "000"):
    record = acd_record(sequence, code, local(seconds), agent=agent, button=button)
    return parse_record(record[1:-2])


def test_agent_states_follow_the_function_codes():
    states = AgentStates()
    script = [
        ("A", 0),
        ("G", 5),
        ("N", 8),
        ("O", 10),
        ("L", 15),
        ("M", 20),
        ("E", 25, "007"),
        ("F", 30),
        ("C", 31),
        ("D", 32),
        ("H", 33),
        ("J", 34),
        ("I", 35),
        ("J", 36),
        ("J", 37),
        ("B", 40),
    ]
    closed = []
    for n, (code, seconds, *button) in enumerate(script):
        for record in states.apply(event(n, code, seconds, "1001", *button), utc(seconds)):
            if record["end_utc"] is not None:
                start = datetime.fromisoformat(record["start_utc"])
                end = datetime.fromisoformat(record["end_utc"])
                closed.append(
                    (record["external_activity"], (start - BASE).seconds, (end - BASE).seconds)
                )
    assert closed == [
        ("Idle", 0, 5),
        ("ACD Call", 5, 8),
        ("Hold", 8, 10),
        ("ACD Call", 10, 15),  # back to the call the hold interrupted
        ("Work Timer", 15, 20),
        ("Idle", 20, 25),
        ("Make Busy 007", 25, 30),  # with its reason code
        ("Idle", 30, 31),
        ("DND", 31, 32),
        ("Idle", 32, 33),
        ("Personal Call", 33, 34),
        ("Idle", 34, 35),
        ("Outgoing Call", 35, 36),
        ("Idle", 36, 40),  # a second idle changes nothing
    ]
    assert states.states == {}


def test_two_events_in_one_second_keep_the_later_state_only():
    states = AgentStates()
    first = states.apply(event(0, "J", 0, "1001"), utc(0))
    second = states.apply(event(1, "L", 0, "1001"), utc(0))
    assert first[-1]["external_activity"] == "Idle"
    # The same agent and start: the Work Timer record replaces the Idle one.
    assert [(r["external_activity"], r["start_utc"], r["end_utc"]) for r in second] == [
        ("Work Timer", utc(0).isoformat(), None)
    ]


def test_a_clock_going_back_never_makes_a_negative_segment():
    states = AgentStates()
    states.apply(event(0, "A", 10, "1001"), utc(10))
    records = states.apply(event(1, "G", 5, "1001"), utc(5))
    # Taken as happening at 10 s: it replaces the state that then lasted no time.
    assert [(r["external_activity"], r["start_utc"], r["end_utc"]) for r in records] == [
        ("ACD Call", utc(10).isoformat(), None)
    ]


# -- the listener on a real TCP stream ------------------------------------------------------
def scripted_day() -> tuple[list[list[object]], list[tuple]]:
    """Two connections of a realistic stream and the segments they must give."""
    r = {
        0: acd_record(0, "A", local(0), agent="1001", directory_number="2201"),
        1: acd_record(1, "A", local(1), agent="1002", directory_number="2202"),
        2: refresh_record(2),
        3: acd_record(3, "G", local(5), agent="1001", directory_number="2201", button="001"),
        4: acd_record(4, "E", local(6), agent="1002", directory_number="2202", button="003"),
        5: acd_record(5, "N", local(8), agent="1001", directory_number="2201", button="001"),
    }
    # Second connection: records framed by STX only (no terminator).
    plain = {
        n: acd_record(n, code, local(s), agent=a, terminator=b"")
        for n, code, s, a in [
            (4, "E", 6, "1002"),
            (5, "N", 8, "1001"),
            (6, "O", 10, "1001"),
            (7, "L", 15, "1001"),
            (8, "M", 20, "1001"),
            (9, "F", 21, "1002"),
            (10, "B", 30, "1002"),
        ]
    }
    plain[4] = acd_record(
        4, "E", local(6), agent="1002", directory_number="2202", button="003", terminator=b""
    )
    first = [
        b"\x35\x33\r\n" + r[0] + r[1][:10],  # joined in the middle of a record; one and a bit
        r[1][10:] + r[2] + r[3],  # the rest, and two more
        r[4] + r[5][:12],  # a record, and half of the next one:
        DROP,  # the connection breaks inside it
    ]
    second = [
        plain[4] + plain[5],  # sent again after the reconnect (4 was landed already)
        plain[6][:3],
        plain[6][3:] + plain[7] + plain[8][:20],
        plain[8][20:] + plain[9],
        plain[10],  # the last record waits for the stream to go quiet
    ]
    expected = [
        ("1001", "ACD Call", 5.0, 8.0),
        ("1001", "ACD Call", 10.0, 15.0),
        ("1001", "Hold", 8.0, 10.0),
        ("1001", "Idle", 0.0, 5.0),
        ("1001", "Idle", 20.0, None),
        ("1001", "Work Timer", 15.0, 20.0),
        ("1002", "Idle", 1.0, 6.0),
        ("1002", "Idle", 21.0, 30.0),
        ("1002", "Make Busy 003", 6.0, 21.0),
    ]
    return [first, second], expected


def run_listener(integration, clock, until, timeout: float = 15.0) -> MitelListener:
    stop = threading.Event()
    result: dict = {}

    def target() -> None:
        result["listener"] = listen(integration, stop, now=clock)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert until(), "the listener did not land what was expected in time"
    return result["listener"]


def test_the_listener_frames_across_reads_survives_a_drop_and_lands_each_segment_once(tmp_path):
    scripts, expected = scripted_day()
    with FakeAcd(scripts) as acd:
        integration = mitel_integration(tmp_path, acd.port)
        listener = run_listener(integration, Clock(), lambda: segments(integration) == expected)
    assert acd.connections == 2
    counts = listener.counts
    assert (counts.duplicates, counts.cut, counts.missed, counts.unreadable) == (1, 1, 0, 0)
    assert counts.records == 12  # 6 + 6: the cut one counted when whole
    assert segments(integration) == expected
    periods = listening_periods(
        MitelPaths.of(MitelSettings.model_validate(integration.source), integration.id).listening
    )
    assert len(periods) == 2  # one per connection, the reconnect well within resume_grace_s
    assert periods[0][0] < utc(1)
    assert (periods[1][0] - periods[0][1]).total_seconds() < 1


def test_landed_segments_are_imported_per_hour(tmp_path, settings, warehouse, instance):
    scripts, expected = scripted_day()
    with FakeAcd(scripts) as acd:
        integration = mitel_integration(tmp_path, acd.port)
        run_listener(integration, Clock(), lambda: segments(integration) == expected)
    defs = definitions(settings, integration)
    with fixed_clock(BASE + timedelta(minutes=5)):
        assert import_range(
            defs,
            instance,
            integration.id,
            BASE.replace(minute=0),
            BASE.replace(minute=0) + timedelta(hours=1),
        ).success
    stored = warehouse.query(
        "SELECT user_identifier, external_activity, start_utc, end_utc, is_open "
        "FROM agent_status_segments ORDER BY user_identifier, start_utc"
    )
    got = [
        (
            r.user_identifier,
            r.external_activity,
            (r.start_utc - pd.Timestamp(BASE)).seconds,
            (r.end_utc - pd.Timestamp(BASE)).seconds,
            r.is_open,
        )
        for r in stored.itertuples()
    ]
    assert got == [
        ("1001", "Idle", 0, 5, False),
        ("1001", "ACD Call", 5, 8, False),
        ("1001", "Hold", 8, 10, False),
        ("1001", "ACD Call", 10, 15, False),
        ("1001", "Work Timer", 15, 20, False),
        ("1001", "Idle", 20, 300, True),  # open: stored up to the import time
        ("1002", "Idle", 1, 6, False),
        ("1002", "Make Busy 003", 6, 21, False),
        ("1002", "Idle", 21, 30, False),
    ]
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def test_the_live_views_show_the_listeners_states_within_five_seconds(tmp_path, landing_store):
    # Events of the last minute (the live views show the integration's local today).
    now = datetime.now(UTC).replace(microsecond=0)
    day_start = datetime.combine(now.astimezone(OSLO).date(), datetime.min.time(), OSLO)
    base = max(now - timedelta(seconds=60), day_start.astimezone(UTC))

    def oslo(seconds: float) -> datetime:
        return (base + timedelta(seconds=seconds)).astimezone(OSLO)

    first = [
        acd_record(0, "A", oslo(0), agent="1001"),
        acd_record(1, "A", oslo(1), agent="1002"),
        acd_record(2, "G", oslo(5), agent="1001", button="001"),
    ]
    # The second event comes 8 s later: time for the first states to show.
    script = [b"".join(first), 8.0, acd_record(3, "J", oslo(9), agent="1001")]
    with FakeAcd([script]) as acd:
        integration = mitel_integration(tmp_path, acd.port, idle_timeout_s=60)
        fields = integration.model_dump(mode="json")
        home = make_home(tmp_path / "project", fields, landing_url=landing_store)
        warehouse = Warehouse(root=str(home.root / "warehouse"))

        def state() -> list[tuple]:
            rows = warehouse.query(
                "SELECT user_identifier, external_activity, since_utc FROM agent_state_now "
                "WHERE is_open ORDER BY ALL"
            )
            return [(u, a, t.to_pydatetime()) for u, a, t in rows.itertuples(index=False)]

        def seconds(moment: datetime) -> datetime:
            return moment.astimezone(UTC)

        with running(home):
            stop = threading.Event()
            thread = threading.Thread(target=listen, args=(integration, stop))
            thread.start()
            try:
                wait_for(
                    state,
                    [("1001", "ACD Call", seconds(oslo(5))), ("1002", "Idle", seconds(oslo(1)))],
                    timeout=30,  # the server's publisher process may still be starting
                )
                wait_for(lambda: len(segments(integration, base)) == 4, True)
                started = time.monotonic()  # the next event landed: live within 5 s
                wait_for(
                    state, [("1001", "Idle", seconds(oslo(9))), ("1002", "Idle", seconds(oslo(1)))]
                )
                assert time.monotonic() - started < 5
                live = warehouse.query(
                    "SELECT user_identifier, external_activity, start_utc, end_utc "
                    "FROM agent_status_live ORDER BY user_identifier, start_utc"
                )
            finally:
                stop.set()
                thread.join(timeout=10)
    assert [
        (u, a, s.to_pydatetime(), None if pd.isna(e) else e.to_pydatetime())
        for u, a, s, e in live.itertuples(index=False)
    ] == [
        ("1001", "Idle", seconds(oslo(0)), seconds(oslo(5))),
        ("1001", "ACD Call", seconds(oslo(5)), seconds(oslo(9))),
        ("1001", "Idle", seconds(oslo(9)), None),
        ("1002", "Idle", seconds(oslo(1)), None),
    ]


def test_a_batch_landed_again_adds_nothing(tmp_path):
    # A listener that landed a batch and crashed before saving its state reads the same
    # records again after the restart: the same batch, recognised by its key.
    integration = mitel_integration(tmp_path)
    listener, _ = connected_listener(integration)
    records = [
        {
            "user_identifier": "1001",
            "external_activity": "Idle",
            "start_utc": utc(0).isoformat(),
            "end_utc": utc(5).isoformat(),
        },
        {
            "user_identifier": "1001",
            "external_activity": "ACD Call",
            "start_utc": utc(5).isoformat(),
            "end_utc": None,
        },
    ]
    listener._land(records, "events")
    listener._land(records, "events")
    assert listener.counts.landed == 2
    assert segments(integration) == [("1001", "ACD Call", 5.0, None), ("1001", "Idle", 0.0, 5.0)]
    store = LandingStore(os.environ["WFM_LANDING_URL"])
    try:
        assert store.count_records(integration.id, "agent_status") == 2
    finally:
        store.dispose()


def listener_at(integration, clock) -> MitelListener:
    return MitelListener.restore(integration, now=clock)


def connected_listener(integration) -> tuple[MitelListener, Clock]:
    """A listener connected at BASE, on a clock the test sets."""
    clock = Clock()
    clock.fixed = BASE
    listener = listener_at(integration, clock)
    listener.connected("acd")
    return listener, clock


def feed(listener: MitelListener, clock: Clock, seconds: float, *records: bytes) -> None:
    clock.fixed = utc(seconds)
    listener.received(b"".join(records))


def test_a_restarted_listener_goes_on_from_what_it_landed(tmp_path):
    integration = mitel_integration(tmp_path)
    first, clock = connected_listener(integration)
    feed(
        first,
        clock,
        5,
        acd_record(0, "A", local(0), agent="1001"),
        acd_record(1, "G", local(5), agent="1001"),
    )
    first.disconnected("stopped")

    clock.fixed = utc(30)  # restarted within resume_grace_s
    second = listener_at(integration, clock)
    assert second.states.states["1001"].activity == "ACD Call"
    second.connected("acd")
    feed(
        second,
        clock,
        40,
        acd_record(1, "G", local(5), agent="1001"),  # sent again
        acd_record(2, "J", local(40), agent="1001"),
    )
    assert second.counts.duplicates == 1
    clock.fixed = utc(100)
    second.tick()  # a heartbeat: still listening at 100 s
    second.disconnected("stopped")
    assert segments(integration) == [
        ("1001", "ACD Call", 5.0, 40.0),
        ("1001", "Idle", 0.0, 5.0),
        ("1001", "Idle", 40.0, None),
    ]

    clock.fixed = utc(3600)  # an hour out of touch: what the agent did meanwhile is unknown
    third = listener_at(integration, clock)
    third.connected("acd")
    feed(third, clock, 3605, acd_record(3, "G", local(3605), agent="1001"))
    assert segments(integration) == [
        ("1001", "ACD Call", 5.0, 40.0),
        ("1001", "ACD Call", 3605.0, None),
        ("1001", "Idle", 0.0, 5.0),
        ("1001", "Idle", 40.0, 100.0),  # ended when the listener was last in touch
    ]
    # One period per connection, up to its last heartbeat (the import allows heartbeat_s more).
    periods = listening_periods(third.paths.listening)
    assert periods == [(utc(0), utc(5)), (utc(30), utc(100)), (utc(3600), utc(3600))]


def test_missed_sequence_numbers_end_every_state_and_the_listening_period(tmp_path):
    integration = mitel_integration(tmp_path)
    listener, clock = connected_listener(integration)
    feed(
        listener,
        clock,
        2,
        acd_record(0, "A", local(0), agent="1001"),
        acd_record(1, "A", local(2), agent="1002"),
    )
    feed(listener, clock, 10, acd_record(5, "G", local(10), agent="1001"))  # 2, 3, 4 missed
    assert listener.counts.missed == 3
    assert segments(integration) == [
        ("1001", "ACD Call", 10.0, None),
        ("1001", "Idle", 0.0, 2.0),  # known until the last record before the gap
        # 1002's Idle began with that record: it is withdrawn, not left open
    ]
    clock.fixed = utc(12)
    listener.disconnected("stopped")
    assert listening_periods(listener.paths.listening) == [(utc(0), utc(2)), (utc(10), utc(12))]


def test_a_second_listener_for_the_same_integration_is_refused(tmp_path):
    with FakeAcd([[]]) as acd:
        integration = mitel_integration(tmp_path, acd.port)
        stop = threading.Event()
        thread = threading.Thread(target=listen, args=(integration, stop), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while acd.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            with pytest.raises(ListenerBusyError, match="another mitel-listen holds"):
                listen(integration, threading.Event())
        finally:
            stop.set()
            thread.join(timeout=10)


# -- the source: coverage -------------------------------------------------------------------
def test_hours_without_the_listener_fail_and_hours_before_it_ever_ran_do_not(tmp_path):
    integration = mitel_integration(tmp_path)
    listener, clock = connected_listener(integration)
    feed(listener, clock, 5, acd_record(0, "A", local(0), agent="1001"))
    clock.fixed = utc(600)
    listener.tick()
    listener.disconnected("ACD restarted")
    source = MitelSource.from_integration(integration)
    day = BASE.replace(hour=0, minute=0)
    with fixed_clock(BASE.replace(hour=13, minute=30)):
        extract = source.agent_status(day + timedelta(hours=8), day + timedelta(hours=14))
    # 08:00-10:20 is before the listener first listened: nothing to fail. 10:00 is partly
    # covered. 11:00, 12:00 and 13:00 (up to now) had no listener.
    assert [(f.start.hour, f.end.hour) for f in extract.failed] == [(11, 12), (12, 13), (13, 14)]
    assert "the Mitel MiVoice Business listener was not listening 2026-11-18 11:00..12:00" in (
        extract.failed[0].reason
    )
    assert "wfm-etl mitel-listen mitel_oslo" in extract.failed[0].reason
    assert list(extract.frame["external_activity"]) == ["Idle"]  # open: overlaps every hour
    assert "3 hour(s) without the listener" in extract.description

    with fixed_clock(BASE.replace(hour=10, minute=40)):
        partly = source.agent_status(day + timedelta(hours=10), day + timedelta(hours=11))
    assert partly.failed == []
    assert "listener not listening for 10.0 min of it" in partly.description  # 10:30..10:40

    with fixed_clock(BASE):
        before = MitelSource.from_integration(mitel_integration(tmp_path / "never"))
        nothing = before.agent_status(day, day + timedelta(hours=1))
    assert nothing.failed == []
    assert nothing.frame.empty
    assert "the listener was not listening before the window's end" in nothing.description


# -- the command ----------------------------------------------------------------------------
def test_mitel_listen_runs_until_sigterm(tmp_path):
    scripts, expected = scripted_day()
    with FakeAcd(scripts) as acd:
        integration = mitel_integration(tmp_path, acd.port)
        config = tmp_path / "integrations.yaml"
        config.write_text(
            yaml.safe_dump({"integrations": [integration.model_dump(mode="json")]}),
            encoding="utf-8",
        )
        env = {**os.environ, "WFM_INTEGRATIONS": str(config)}
        process = subprocess.Popen(
            [sys.executable, "-m", "etl.cli", "mitel-listen", "mitel_oslo"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while acd.connections < 2 or not acd.finished.is_set():
                assert time.monotonic() < deadline, "the listener did not reconnect in time"
                assert process.poll() is None, process.communicate()
                time.sleep(0.05)
            time.sleep(1.5)  # the last record is complete once the stream is quiet
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.splitlines()[0].startswith(
        "mitel_oslo: listening to 127.0.0.1:" + str(acd.port) + "; segments land in "
    )
    # Landed record versions: the 17 the events make, less those replaced by a later
    # version before they were landed (both in one read: how TCP cut the stream decides),
    # and at least one per segment. What the store holds is checked exactly below.
    summary = re.fullmatch(
        r"mitel_oslo: stopped; 12 records read, (\d+) segment records landed, 1 sent again "
        r"and skipped, 0 missed, 0 unreadable",
        out.splitlines()[-1],
    )
    assert summary is not None, out
    assert len(expected) <= int(summary.group(1)) <= 17
    assert "connection ended inside a record" in err
    # Event times are local times of day and the command ran on the real clock: the day it
    # put them on is today's, so compare times relative to the first one.
    landed = segments(integration, since=datetime(2000, 1, 1, tzinfo=UTC))
    first = min(start for _, _, start, _ in landed)
    shifted = [(a, act, s - first, None if e is None else e - first) for a, act, s, e in landed]
    assert shifted == expected


def test_mitel_listen_refuses_an_integration_of_another_vendor(tmp_path, capsys):
    from etl.cli import main

    config = tmp_path / "integrations.yaml"
    other = make_integration(id="sim")
    config.write_text(yaml.safe_dump({"integrations": [other.model_dump(mode="json")]}))
    os.environ["WFM_INTEGRATIONS"] = str(config)
    try:
        assert main(["mitel-listen", "sim"]) == 2
    finally:
        del os.environ["WFM_INTEGRATIONS"]
    assert "integration 'sim' has vendor 'simulator'; mitel-listen reads" in capsys.readouterr().err


# -- contacts: MiContact Center exports -----------------------------------------------------
FALL_BACK = datetime(2026, 10, 24, 22, tzinfo=UTC)  # 2026-10-25 00:00 in Oslo (CEST)


def export_rows(queues=("P100", "P200")) -> list[dict]:
    """A day of 15-minute periods as MiContact Center writes them, in local time: the periods
    02:00 to 02:45 come twice, first in summer time."""
    rows, moment, n = [], FALL_BACK, 0
    while moment < FALL_BACK + timedelta(hours=25):
        wall = moment.astimezone(OSLO)
        for q, queue in enumerate(queues):
            offered = 5 + (n * 3 + q) % 11
            handled = offered - 1
            rows.append(
                {
                    "Queue": queue,
                    "Date": f"{wall:%Y-%m-%d}",
                    "Period": f"{wall:%H:%M}",
                    "ACD calls offered": offered,
                    "ACD calls handled": handled,
                    "ACD calls abandoned": 1,
                    "ACD handling time": f"00:{handled * 3 // 60:02d}:{handled * 3 % 60:02d}",
                    "utc": moment,
                }
            )
        moment += timedelta(minutes=15)
        n += 1
    return rows


def write_export(folder: Path, rows: list[dict], columns: dict[str, str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows).drop(columns="utc").rename(columns=columns or {})
    frame.to_csv(folder / "queue_performance_2026-10-25.csv", index=False)


def contacts_integration(tmp_path: Path, **contacts):
    return mitel_integration(
        tmp_path,
        data=("contacts",),
        history_start="2026-10-24",
        contacts={"folder": str(tmp_path / "exports"), **contacts},
    )


def test_micontact_center_exports_are_read_in_the_acds_local_time(tmp_path):
    rows = export_rows()
    write_export(tmp_path / "exports", rows)
    integration = contacts_integration(tmp_path)
    extract = MitelSource.from_integration(integration).contacts(
        FALL_BACK, FALL_BACK + timedelta(hours=25)
    )
    frame = extract.frame.sort_values(["interval_start", "external_queue_id"], ignore_index=True)
    assert extract.rejected.empty
    assert len(frame) == 2 * 100  # 25 hours of 15-minute periods: the repeated hour kept
    assert list(frame["interval_start"]) == [pd.Timestamp(r["utc"]) for r in rows]
    assert set(frame["channel"]) == {"calls"}
    assert list(frame["offered"]) == [r["ACD calls offered"] for r in rows]
    assert list(frame["answered"]) == [r["ACD calls handled"] for r in rows]
    assert list(frame["handle_time_s"]) == [r["ACD calls handled"] * 3.0 for r in rows]
    # 02:15 in Oslo happened at 00:15 UTC (summer time) and at 01:15 UTC (winter time).
    p100 = frame[frame["external_queue_id"] == "P100"]
    local_labels = p100["interval_start"].dt.tz_convert(OSLO).dt.strftime("%H:%M")
    twice = p100[local_labels == "02:15"]["interval_start"]
    assert [t.strftime("%H:%M") for t in twice] == ["00:15", "01:15"]


def test_a_renamed_export_column_replaces_the_presets(tmp_path):
    rows = export_rows(queues=("P100",))
    write_export(tmp_path / "exports", rows, {"Queue": "ACD path", "ACD handling time": "HT"})
    integration = contacts_integration(
        tmp_path, contacts={"columns": {"ACD path": "external_queue_id", "HT": "handle_time"}}
    )
    settings = MitelSettings.model_validate(integration.source)
    columns = settings.contacts.contacts.columns
    assert columns["ACD path"] == "external_queue_id"
    assert "Queue" not in columns
    assert columns["ACD calls offered"] == "offered"  # the preset's other columns stay
    extract = MitelSource.from_integration(integration).contacts(
        FALL_BACK, FALL_BACK + timedelta(hours=2)
    )
    assert list(extract.frame["external_queue_id"].unique()) == ["P100"]
    assert extract.frame["handle_time_s"].sum() == sum(
        r["ACD calls handled"] * 3 for r in rows if r["utc"] < FALL_BACK + timedelta(hours=2)
    )


def test_contacts_need_the_exports_folder(tmp_path):
    source = MitelSource.from_integration(mitel_integration(tmp_path))
    with pytest.raises(SourceError, match=r"no source\.contacts section"):
        source.contacts(FALL_BACK, FALL_BACK + timedelta(hours=1))


def test_exports_import_through_the_asset(tmp_path, settings, warehouse, instance):
    rows = export_rows()
    write_export(tmp_path / "exports", rows)
    integration = contacts_integration(tmp_path)
    defs = definitions(settings, integration)
    result = import_range(
        defs, instance, integration.id, FALL_BACK, FALL_BACK + timedelta(hours=25)
    )
    assert result.success
    stored = warehouse.query(
        "SELECT count(*) AS n, sum(offered) AS offered, sum(handle_time_s) AS handle "
        "FROM contact_intervals"
    )
    assert stored["n"][0] == 200
    assert stored["offered"][0] == sum(r["ACD calls offered"] for r in rows)
    assert stored["handle"][0] == sum(r["ACD calls handled"] * 3 for r in rows)
