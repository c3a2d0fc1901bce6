"""A 2xx means on disk: batches survive `kill -9` of the server, and retries land once.

Both landing stores: the embedded SQLite file and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.ingest.server import (
    Home,
    Server,
    make_home,
    post,
    push_integration,
    running,
    status,
    statuses_path,
)

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
AGENTS_PER_BATCH = 5


@pytest.fixture(params=["sqlite", "postgres"])
def store_home(request, tmp_path: Path) -> Home:
    if request.param == "sqlite":
        return make_home(tmp_path / "project")
    return make_home(tmp_path / "project", landing_url=request.getfixturevalue("pg_url"))


def batch(client: int, seq: int) -> dict:
    start = START + timedelta(seconds=seq)
    return {
        "data": [status(f"c{client}-a{k}", "Available", start) for k in range(AGENTS_PER_BATCH)]
    }


def stored_keys(home: Home) -> list[tuple]:
    store = home.store()
    try:
        rows = store.segment_records("push_berlin", 0, 2**62)
    finally:
        store.dispose()
    records = [json.loads(record) for record, _ in rows]
    return [(r["user_identifier"], r["start_utc"]) for r in records]


def test_one_batch_survives_kill_9_right_after_its_202(store_home: Home) -> None:
    key = store_home.key("push_berlin")
    server = Server(store_home, env={"WFM_API_PUBLISH": "0"})
    reply = post(server.url, statuses_path(), batch(0, 0), key=key)
    server.kill()  # the next thing after the answer
    assert reply.status == 202
    assert len(stored_keys(store_home)) == AGENTS_PER_BATCH


def test_acknowledged_batches_survive_kill_9_under_load_and_retries_land_once(
    store_home: Home,
) -> None:
    key = store_home.key("push_berlin")
    server = Server(store_home, env={"WFM_API_PUBLISH": "0"})
    acknowledged: set[str] = set()
    attempted: dict[str, dict] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def client(n: int) -> None:
        seq = 0
        while True:
            batch_id, body = f"c{n}-{seq}", batch(n, seq)
            with lock:
                attempted[batch_id] = body
            try:
                reply = post(
                    server.url,
                    statuses_path(),
                    body,
                    key=key,
                    headers={"Idempotency-Key": batch_id},
                    timeout=10,
                )
            except OSError:
                return  # the server is gone: this batch may or may not have landed
            if reply.status == 202:
                with lock:
                    acknowledged.add(batch_id)
            if killed.is_set():
                return
            seq += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 40:
        threading.Event().wait(0.05)
    server.kill()
    killed.set()
    for thread in threads:
        thread.join()

    keys = stored_keys(store_home)
    landed = {(u, s) for u, s in keys}
    assert len(keys) == len(landed)
    for batch_id in acknowledged:
        for record in attempted[batch_id]["data"]:
            start = datetime.fromisoformat(record["startTime"]).isoformat()
            assert (record["agentIdentifier"], start) in landed, batch_id

    with running(store_home, env={"WFM_API_PUBLISH": "0"}) as again:
        for batch_id, body in attempted.items():  # every batch retried, as a client would
            reply = post(
                again.url, statuses_path(), body, key=key, headers={"Idempotency-Key": batch_id}
            )
            assert reply.status == 202
            if batch_id in acknowledged:
                assert reply.body["replayed"]
    keys = stored_keys(store_home)
    assert len(keys) == len(set(keys)) == len(attempted) * AGENTS_PER_BATCH


def test_the_servers_store_checkpoints_off_the_commit_path(tmp_path: Path) -> None:
    # The server's store never checkpoints inside a commit; its own checkpoint copies every
    # committed frame, and what was landed reads the same before and after.
    from etl.config import Integration
    from etl.ingest.landing import Landing
    from etl.ingest.store import LandingStore

    url = f"sqlite:///{tmp_path / 'landing.sqlite'}"
    integration = Integration.model_validate(push_integration(data=["agent_status"]))
    server_store = LandingStore(url, background_checkpoints=True)
    other = LandingStore(url)
    try:
        server_store.create()
        with server_store._writer.connect() as con:
            assert con.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        with other._writer.connect() as con:
            assert con.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        landing = Landing(server_store, [integration])
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        for batch in range(30):
            records = [
                {
                    "user_identifier": f"agent{k}",
                    "external_activity": "Available",
                    "start_utc": (start + timedelta(seconds=batch)).isoformat(),
                    "end_utc": None,
                }
                for k in range(20)
            ]
            assert landing.land("push_berlin", "agent_status", records).status_code == 202
        frames, copied = server_store.checkpoint()
        assert frames == copied > 0
        assert other.count_records("push_berlin", "agent_status") == 600
    finally:
        server_store.dispose()
        other.dispose()
