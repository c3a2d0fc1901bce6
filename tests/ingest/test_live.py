"""Real-time agent status: pushed segments reach `agent_state_now` and `agent_status_live`
within 5 s, analysts querying meanwhile see no error and no half batch, and the hourly
import writes the same segments into `agent_status_segments` exactly once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb

from etl.config import Integration, Settings
from etl.partitions import floor_hour
from tests.helpers import definitions, import_range
from tests.ingest.server import (
    LIVE_WITHIN_S,
    Home,
    post,
    push_integration,
    running,
    status,
    statuses_path,
    wait_for,
    warehouse_of,
)


def test_pushed_status_is_live_within_five_seconds(home: Home) -> None:
    key = home.key("push_berlin")
    warehouse = warehouse_of(home)
    now = datetime.now(UTC).replace(microsecond=0)

    def state() -> list[tuple]:
        return [
            tuple(row)
            for row in warehouse.query(
                "SELECT user_identifier, external_activity, since_utc, is_open "
                "FROM agent_state_now ORDER BY ALL"
            ).itertuples(index=False)
        ]

    with running(home) as server:
        sent = time.monotonic()
        body = {"data": [status("anna", "Available", now), status("ben", "Break", now)]}
        assert post(server.url, statuses_path(), body, key=key).status == 202
        seen = wait_for(
            lambda: [(u, a, o) for u, a, _, o in state()],
            [("anna", "Available", True), ("ben", "Break", True)],
        )
        assert time.monotonic() - sent < LIVE_WITHIN_S, seen
        # Anna's state ends and a new one begins: the view follows within 5 s.
        later = now + timedelta(seconds=30)
        body = {"data": [status("anna", "Available", now, later), status("anna", "On Call", later)]}
        sent = time.monotonic()
        assert post(server.url, statuses_path(), body, key=key).status == 202
        wait_for(
            lambda: [(u, a) for u, a, _, _ in state()], [("anna", "On Call"), ("ben", "Break")]
        )
        assert time.monotonic() - sent < LIVE_WITHIN_S
        live = warehouse.query(
            "SELECT user_identifier, external_activity, is_open, employee_id, activity_id "
            "FROM agent_status_live ORDER BY start_utc, user_identifier"
        )
    assert live.values.tolist()[:3] == [
        ["anna", "Available", False, None, 1],
        ["ben", "Break", True, None, 1],
        ["anna", "On Call", True, None, 1],
    ]


def test_analysts_see_no_error_and_no_half_batch(home: Home) -> None:
    key = home.key("push_berlin")
    warehouse = warehouse_of(home)
    warehouse.ensure_catalog()
    per_batch, batches, clients = 20, 30, 3
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    errors: list[str] = []
    partial: list[tuple] = []
    queries = 0
    done = threading.Event()

    def analyst() -> None:
        nonlocal queries
        while not done.is_set():
            try:
                with duckdb.connect(str(warehouse.catalog_path), read_only=True) as con:
                    counts = con.execute(
                        "SELECT split_part(user_identifier, '-', 1), start_utc, count(*) "
                        "FROM agent_status_live GROUP BY ALL"
                    ).fetchall()
            except duckdb.Error as exc:
                errors.append(str(exc))
                continue
            queries += 1
            partial.extend(row for row in counts if row[2] != per_batch)

    def client(n: int) -> None:
        for b in range(batches):
            start = base + timedelta(seconds=b)
            body = {
                "data": [status(f"c{n}b{b}-a{k}", "Available", start) for k in range(per_batch)]
            }
            assert post(server.url, statuses_path(), body, key=key).status == 202
            time.sleep(0.05)

    with running(home, env={"WFM_API_PUBLISH_INTERVAL_S": "0.2"}) as server:
        readers = [threading.Thread(target=analyst) for _ in range(2)]
        writers = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join()
        total = clients * batches * per_batch
        wait_for(
            lambda: int(warehouse.query("SELECT count(*) AS n FROM agent_status_live")["n"][0]),
            total,
        )
        done.set()
        for thread in readers:
            thread.join()
    assert errors == []
    assert partial == []
    assert queries > 20


def test_the_import_writes_the_live_segments_once(
    home: Home, instance: dg.DagsterInstance, monkeypatch
) -> None:
    key = home.key("push_berlin")
    warehouse = warehouse_of(home)
    now = datetime.now(UTC)
    day_start = datetime.combine(
        now.astimezone(ZoneInfo("Europe/Berlin")).date(),
        datetime.min.time(),
        ZoneInfo("Europe/Berlin"),
    ).astimezone(UTC)
    first = max(floor_hour(now) - timedelta(hours=3), day_start)
    # Segments of four agents from `first` to a minute ago, crossing hours; one still open.
    segments = []
    for agent in range(4):
        moment, step = first + timedelta(minutes=agent), 0
        while moment < now - timedelta(minutes=2):
            until = min(
                moment + timedelta(minutes=7 + (agent + step) % 11), now - timedelta(minutes=1)
            )
            segments.append(
                status(f"agent{agent}", ("Available", "On Call", "ACW")[step % 3], moment, until)
            )
            moment, step = until, step + 1
        segments.append(status(f"agent{agent}", "Available", moment))
    with running(home) as server:
        for n in range(0, len(segments), 25):
            body = {"data": segments[n : n + 25]}
            assert post(server.url, statuses_path(), body, key=key).status == 202
        wait_for(
            lambda: int(warehouse.query("SELECT count(*) AS n FROM agent_status_live")["n"][0]),
            len(segments),
        )
        live = warehouse.query(
            "SELECT user_identifier, start_utc, external_activity, end_utc FROM agent_status_live "
            "WHERE end_utc IS NOT NULL ORDER BY ALL"
        )

    monkeypatch.setenv("WFM_LANDING_URL", home.landing_url)
    settings = Settings(
        integrations_path=home.root / "integrations.yaml",
        warehouse_dir=home.root / "warehouse",
        mappings_dir=home.root / "mappings",
    )
    integration = Integration.model_validate(push_integration())
    defs = definitions(settings, integration)
    for _ in range(2):  # imported twice (a tick, then the next): still once
        result = import_range(defs, instance, "push_berlin", floor_hour(first), floor_hour(now))
        assert result.success
    imported = warehouse.query(
        "SELECT user_identifier, segment_start_utc AS start_utc, external_activity, "
        "segment_end_utc AS end_utc, sum(seconds) AS seconds, count(*) AS pieces, "
        "count(DISTINCT start_utc) AS distinct_pieces "
        "FROM agent_status_segments WHERE segment_end_utc IS NOT NULL AND segment_end_utc <= ? "
        "GROUP BY ALL ORDER BY ALL",
        [floor_hour(now)],
    )
    assert (imported["pieces"] == imported["distinct_pieces"]).all()  # no duplicate piece
    expected = live[live["end_utc"] <= floor_hour(now)].reset_index(drop=True)
    assert imported[["user_identifier", "start_utc", "external_activity", "end_utc"]].equals(
        expected
    )
    seconds = (expected["end_utc"] - expected["start_utc"]).dt.total_seconds()
    assert imported["seconds"].tolist() == seconds.tolist()
