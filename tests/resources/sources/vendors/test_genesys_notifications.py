"""Genesys Cloud notifications against a fake Genesys Cloud on loopback (REST and a real
WebSocket server): presence and routing changes reach `agent_state_now` and
`agent_status_live` within 5 s through `wfm-etl serve`'s live publisher, the consumer
reconnects after a dropped socket, picks up what changed while it was away or stopped, and
the hourly import (the analytics API) writes the same segments into `agent_status_segments`
once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from etl.config import Integration, Settings
from etl.ingest.store import OPEN_END_US, LandingStore
from etl.partitions import floor_hour
from etl.resources.sources.vendors.genesys_notifications import Notifications, notifications_of
from etl.resources.warehouse import Warehouse
from tests.fakes.genesys import CLIENT_ID
from tests.fakes.genesys_notifications import FakeGenesysNotifications
from tests.helpers import definitions, import_range
from tests.ingest.server import LIVE_WITHIN_S, Home, make_home, running, wait_for

SECRET = "gc-Notify-Secret-0815"
SECRET_ENV = "WFM_TEST_GENESYS_NOTIFY_SECRET"
ANNA, BEN = "0b1c-anna", "0b1c-ben"
FAST = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2, "heartbeat_timeout_s": 5}


@pytest.fixture
def fake() -> Iterator[FakeGenesysNotifications]:
    with FakeGenesysNotifications(SECRET, heartbeat_s=0.5) as server:
        server.add_user(ANNA, "anna.schmidt@acme.com")
        server.add_user(BEN, "ben.meyer@acme.com")
        yield server


def genesys_integration(fake: FakeGenesysNotifications, **notifications) -> dict:
    return {
        "id": "gc_live",
        "vendor": "genesys_cloud",
        "delivery": "cloud",
        "interval_minutes": 15,
        "data": ["agent_status"],
        "timezone": "Europe/Berlin",
        "history_start": "2026-11-01",
        "source": {
            "client_id": CLIENT_ID,
            "client_secret_env": SECRET_ENV,
            "base_url": fake.url,
            "login_url": fake.url,
            "http": {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "timeout_s": 10},
            "notifications": {**FAST, **notifications},
        },
    }


class Consumer:
    """The consumer of `wfm-etl genesys-listen` in a thread of the test."""

    def __init__(self, integration: Integration, home: Home) -> None:
        env = {SECRET_ENV: SECRET, "WFM_LANDING_URL": home.landing_url}
        self.notifications: Notifications = notifications_of(integration, env)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.notifications.run, args=(self.stop,))

    def __enter__(self) -> Notifications:
        self.thread.start()
        return self.notifications

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=20)
        self.notifications.landing.store.dispose()
        assert not self.thread.is_alive()


def test_notifications_are_live_and_the_import_writes_them_once(
    tmp_path, fake, instance: dg.DagsterInstance, monkeypatch
) -> None:
    fields = genesys_integration(fake)
    integration = Integration.model_validate(fields)
    home = make_home(tmp_path / "project", fields)
    warehouse = Warehouse(root=str(home.root / "warehouse"))
    now = datetime.now(UTC).replace(microsecond=0)
    day_start = datetime.combine(
        now.astimezone(ZoneInfo("Europe/Berlin")).date(),
        datetime.min.time(),
        ZoneInfo("Europe/Berlin"),
    ).astimezone(UTC)
    base = max(now - timedelta(seconds=100), day_start)

    def at(seconds: int) -> datetime:
        return base + timedelta(seconds=seconds)

    # Before the consumer starts: Anna available, Ben on a break.
    fake.presence(ANNA, "Available", at(0))
    fake.routing(ANNA, "OFF_QUEUE", at(0))
    fake.presence(BEN, "Break", at(0))
    fake.routing(BEN, "OFF_QUEUE", at(0))

    def state() -> list[tuple]:
        rows = warehouse.query(
            "SELECT user_identifier, external_activity, since_utc FROM agent_state_now "
            "WHERE is_open ORDER BY ALL"
        )
        return [(u, a, s.to_pydatetime()) for u, a, s in rows.itertuples(index=False)]

    anna, ben = "anna.schmidt@acme.com", "ben.meyer@acme.com"
    with running(home), Consumer(integration, home) as consumer:
        fake.wait_connected(1)
        wait_for(state, [(anna, "AVAILABLE", at(0)), (ben, "BREAK", at(0))])

        # Anna goes on queue (presence, then its routing status of the same instant).
        sent = time.monotonic()
        assert fake.presence(ANNA, "On Queue", at(20)) == 1
        assert fake.routing(ANNA, "IDLE", at(20)) == 1
        wait_for(state, [(anna, "ON_QUEUE/IDLE", at(20)), (ben, "BREAK", at(0))])
        assert time.monotonic() - sent < LIVE_WITHIN_S
        fake.routing(ANNA, "INTERACTING", at(40))
        wait_for(state, [(anna, "ON_QUEUE/INTERACTING", at(40)), (ben, "BREAK", at(0))])

        # The socket breaks; meanwhile Ben comes back from his break (no notification
        # reaches anyone). After reconnecting, the consumer reads the current states.
        fake.presence(BEN, "Available", at(50), notify=False)
        fake.drop()
        fake.wait_connected(2)
        wait_for(state, [(anna, "ON_QUEUE/INTERACTING", at(40)), (ben, "AVAILABLE", at(50))])
        fake.routing(ANNA, "IDLE", at(60))
        fake.presence(ANNA, "Available", at(80))
        fake.routing(ANNA, "OFF_QUEUE", at(80))
        wait_for(state, [(anna, "AVAILABLE", at(80)), (ben, "AVAILABLE", at(50))])
        assert consumer.counts.connections == 2
        assert consumer.counts.heartbeats > 0

    # Stopped; Ben goes to lunch meanwhile. A new consumer closes his open segment when
    # the meal began (read from the users API) and opens the meal.
    fake.presence(BEN, "Meal", at(90), notify=False)
    with running(home), Consumer(integration, home):
        fake.wait_connected(3)
        wait_for(state, [(anna, "AVAILABLE", at(80)), (ben, "MEAL", at(90))])
        live = warehouse.query(
            "SELECT user_identifier, external_activity, start_utc, end_utc "
            "FROM agent_status_live ORDER BY user_identifier, start_utc"
        )

    def ts(seconds: int | None):
        return pd.NaT if seconds is None else pd.Timestamp(at(seconds))

    expected = [
        (anna, "AVAILABLE", ts(0), ts(20)),
        (anna, "ON_QUEUE/IDLE", ts(20), ts(40)),
        (anna, "ON_QUEUE/INTERACTING", ts(40), ts(60)),
        (anna, "ON_QUEUE/IDLE", ts(60), ts(80)),
        (anna, "AVAILABLE", ts(80), ts(None)),
        (ben, "BREAK", ts(0), ts(50)),
        (ben, "AVAILABLE", ts(50), ts(90)),
        (ben, "MEAL", ts(90), ts(None)),
    ]
    assert [
        (u, a, s, e if pd.notna(e) else pd.NaT) for u, a, s, e in live.itertuples(index=False)
    ] == expected
    store = LandingStore(home.landing_url)
    try:
        assert store.count_records("gc_live", "agent_status") == len(expected)
        open_rows = store.segments_overlapping("gc_live", OPEN_END_US - 1, OPEN_END_US)
        assert sorted(key for key, *_ in open_rows) == [anna, ben]
    finally:
        store.dispose()

    # The hourly import reads the analytics API: the same segments, once each.
    monkeypatch.setenv(SECRET_ENV, SECRET)
    settings = Settings(
        integrations_path=home.root / "integrations.yaml",
        warehouse_dir=home.root / "warehouse",
        mappings_dir=home.root / "mappings",
    )
    defs = definitions(settings, integration)
    for _ in range(2):  # a tick, then the next: still once
        result = import_range(
            defs, instance, "gc_live", floor_hour(base), floor_hour(now) + timedelta(hours=1)
        )
        assert result.success
    imported = warehouse.query(
        "SELECT user_identifier, external_activity, segment_start_utc, segment_end_utc, "
        "sum(seconds) AS seconds, count(*) AS pieces, count(DISTINCT start_utc) AS distinct "
        "FROM agent_status_segments WHERE integration_id = 'gc_live' "
        "GROUP BY ALL ORDER BY user_identifier, segment_start_utc"
    )
    assert (imported["pieces"] == imported["distinct"]).all()
    closed = [row for row in expected if pd.notna(row[3])]
    got = [
        (u, a, s, e)
        for u, a, s, e in imported[
            ["user_identifier", "external_activity", "segment_start_utc", "segment_end_utc"]
        ].itertuples(index=False)
        if pd.notna(e)
    ]
    assert got == closed
    seconds = imported[imported["segment_end_utc"].notna()]["seconds"].tolist()
    assert seconds == [(e - s).total_seconds() for _, _, s, e in closed]


def test_channels_are_split_replaced_when_refused_and_renewed(tmp_path, fake) -> None:
    # One user per channel (2 topics each). Every channel is forgotten on the Genesys side
    # (the handshake is refused): new ones are opened. Those live 3 s and are renewed 2 s
    # before they expire. Changes land all along.
    fields = genesys_integration(fake, max_topics_per_channel=2, renew_before_s=2)
    integration = Integration.model_validate(fields)
    home = make_home(tmp_path / "project", fields)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    fake.presence(ANNA, "Available", start)
    fake.presence(BEN, "Away", start)
    store = LandingStore(home.landing_url)
    anna, ben = "anna.schmidt@acme.com", "ben.meyer@acme.com"

    def open_states() -> list[tuple]:
        rows = store.segments_overlapping("gc_live", OPEN_END_US - 1, OPEN_END_US)
        return sorted((key, json.loads(record)["external_activity"]) for key, *_, record, _ in rows)

    def sockets() -> int:
        return sum(len(s) for s in fake.sockets.values())

    try:
        with Consumer(integration, home) as consumer:
            fake.wait_connected(2)
            wait_for(open_states, [(anna, "AVAILABLE"), (ben, "AWAY")])
            assert sorted(map(sorted, fake.channels.values())) == [
                [f"v2.users.{ANNA}.presence", f"v2.users.{ANNA}.routingStatus"],
                [f"v2.users.{BEN}.presence", f"v2.users.{BEN}.routingStatus"],
            ]
            fake.channel_lifetime_s = 3
            fake.forget_channels()
            wait_for(lambda: fake.refused >= 2 and sockets() == 2, True)
            fake.presence(ANNA, "Busy", start + timedelta(minutes=1))
            wait_for(open_states, [(anna, "BUSY"), (ben, "AWAY")])
            wait_for(lambda: consumer.counts.channels >= 6, True)  # renewed, each of them
            wait_for(lambda: sockets() == 2, True)
            fake.presence(BEN, "Meeting", start + timedelta(minutes=2))
            wait_for(open_states, [(anna, "BUSY"), (ben, "MEETING")])
        assert consumer.counts.refused == 0
    finally:
        store.dispose()
