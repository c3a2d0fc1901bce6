"""The ingestion service over loopback: authentication, limits, validation, idempotency,
pause, the OpenAPI document. Every case runs against a real `wfm-etl serve` process."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from etl.ingest.landing import MAX_RECORDS
from etl.ingest.openapi import COMMITTED, committed_text
from tests.ingest.server import (
    Home,
    contact,
    contacts_path,
    get,
    post,
    push_integration,
    running,
    status,
    statuses_path,
)

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(minutes=30)


def landed(home: Home, kind: str = "agent_status") -> int:
    store = home.store()
    try:
        return store.count_records("push_berlin", kind)
    finally:
        store.dispose()


def test_authentication_and_keys(home: Home) -> None:
    home.configure(push_integration(), push_integration(id="push_paris"))
    key = home.key("push_berlin")
    other = home.key("push_paris")
    body = {"data": [status("anna", "Available", START)]}
    with running(home) as server:
        missing = post(server.url, statuses_path(), body)
        wrong = post(server.url, statuses_path(), body, key="wfm_not-a-key")
        foreign = post(server.url, statuses_path(), body, key=other)
        assert (missing.status, wrong.status, foreign.status) == (401, 401, 403)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "another integration" in foreign.body["error"]
        assert landed(home) == 0  # nothing written by any of them

        assert post(server.url, statuses_path(), body, key=key).status == 202
        rotated = home.key("push_berlin")  # rotation: the old key stops working at once
        assert post(server.url, statuses_path(), body, key=key).status == 401
        assert post(server.url, statuses_path(), body, key=rotated).status == 202
        log = server.output
    assert key not in log
    assert rotated not in log
    assert other not in log
    assert landed(home) == 1


def test_api_key_command_shows_the_key_once(home: Home) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "etl", "api-key", *args],
            env=home.env,
            capture_output=True,
            text=True,
        )

    created = cli("create", "push_berlin")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[1]
    assert key.startswith("wfm_")
    assert len(key) > 40
    again = cli("create", "push_berlin")
    assert again.returncode == 1
    assert "already has an API key" in again.stderr
    shown = cli("show", "push_berlin")
    assert key not in shown.stdout
    assert key[:8] in shown.stdout
    rotated = cli("rotate", "push_berlin").stdout.splitlines()[1]
    assert rotated != key
    store = home.store()
    try:
        stored = " ".join(str(v) for v in store.key_info("push_berlin"))
    finally:
        store.dispose()
    assert rotated not in stored  # only a hash and a hint are kept
    unknown = cli("create", "nope")
    assert unknown.returncode == 2
    assert "no push integration" in unknown.stderr


def test_limits_and_bad_bodies(home: Home) -> None:
    key = home.key("push_berlin")
    with running(home) as server:
        too_many = {"data": [status(f"a{n}", "Available", START) for n in range(MAX_RECORDS + 1)]}
        assert post(server.url, statuses_path(), too_many, key=key).status == 413
        # A body announced above the limit is refused before it is read.
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.putrequest("POST", statuses_path())
        connection.putheader("Authorization", f"Bearer {key}")
        connection.putheader("Content-Length", str(9 * 2**20))
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 413
        assert b"larger than" in answer.read()
        connection.close()
        assert post(server.url, statuses_path(), b"{not json", key=key).status == 400
        assert post(server.url, statuses_path(), {"records": []}, key=key).status == 400
        most = {"data": [status(f"a{n}", "Available", START) for n in range(MAX_RECORDS)]}
        reply = post(server.url, statuses_path(), most, key=key)
        assert (reply.status, reply.body["accepted"]) == (202, MAX_RECORDS)
    assert landed(home) == MAX_RECORDS


def test_records_are_validated_at_the_door_with_a_reason_each(home: Home) -> None:
    key = home.key("push_berlin")
    interval = NOW.replace(minute=0) - timedelta(hours=1)
    good = contact("sales", "call", interval, 12, 10, 2, 3600)
    bad = [
        contact(
            "sales", "calls", interval + timedelta(minutes=15), 5, 6, 0, 60
        ),  # answered > offered
        contact("sales", "fax", interval, 1, 1, 0, 60),  # unknown channel
        contact("sales", "calls", interval + timedelta(minutes=7), 1, 1, 0, 60),  # off the grid
        {**good, "timestamp": interval.replace(tzinfo=None).isoformat()},  # no offset
        "not an object",
    ]
    with running(home) as server:
        reply = post(server.url, contacts_path(), {"data": [good, *bad]}, key=key)
        assert reply.status == 207
        assert (reply.body["accepted"], reply.body["rejected"]) == (1, 5)
        reasons = {e["index"]: e["reasons"] for e in reply.body["errors"]}
        assert reasons[1] == ["answered <= offered", "abandoned <= offered - answered"]
        assert reasons[2] == ["channel: one of calls, chats, emails, tickets, social, documents"]
        assert reasons[3] == ["interval_start: on the 15-minute local grid"]
        assert "with an offset" in reasons[4][0]
        assert reasons[5] == ["record: not a JSON object"]
        none = post(server.url, contacts_path(), {"data": bad[:2]}, key=key)
        assert (none.status, none.body["accepted"]) == (422, 0)
    store = home.store()
    try:
        refused = store.rejected_records("push_berlin", "contacts", 0, 2**62)
    finally:
        store.dispose()
    assert len(refused) == 7  # kept for rejected_rows, as they came
    assert json.loads(refused[0][2]) == bad[0]
    assert landed(home, "contacts") == 1


def test_a_retried_request_is_a_no_op(home: Home) -> None:
    key = home.key("push_berlin")
    body = {"data": [status(f"a{n}", "Available", START) for n in range(3)]}
    with running(home) as server:
        first = post(server.url, statuses_path(), body, key=key, headers={"Idempotency-Key": "b-1"})
        again = post(server.url, statuses_path(), body, key=key, headers={"Idempotency-Key": "b-1"})
        assert first.status == again.status == 202
        assert again.body["replayed"]
        assert again.headers["idempotency-replayed"] == "true"
        assert again.body["batchId"] == first.body["batchId"] == "b-1"
        via_meta = {**body, "meta": {"batchId": "b-2"}}
        assert not post(server.url, statuses_path(), via_meta, key=key).body["replayed"]
        assert post(server.url, statuses_path(), via_meta, key=key).body["replayed"]
        other_body = {"data": [status("zed", "Break", START)]}
        reused = post(
            server.url, statuses_path(), other_body, key=key, headers={"Idempotency-Key": "b-1"}
        )
        assert reused.status == 422
        assert "different body" in reused.body["errors"][0]["reasons"][0]
    assert landed(home) == 3


def test_paused_integration_posts_are_held(home: Home) -> None:
    home.configure(push_integration(status="paused"))
    key = home.key("push_berlin")
    with running(home) as server:
        reply = post(
            server.url, statuses_path(), {"data": [status("anna", "Break", START)]}, key=key
        )
        assert (reply.status, reply.body["status"]) == (202, "held")
    assert landed(home) == 1


def test_unknown_and_wrong_kind_integrations(home: Home) -> None:
    home.configure(push_integration(data=["contacts"]))
    key = home.key("push_berlin")
    with running(home) as server:
        reply = post(server.url, statuses_path(), {"data": []}, key=key)
        assert reply.status == 404
        assert "carries no agent_status" in reply.body["error"]
        home.configure()  # removed from the config: the server notices without a restart
        time.sleep(1.2)
        reply = post(server.url, contacts_path(), {"data": []}, key=key)
        assert reply.status == 404
        assert "no integration" in reply.body["error"]


def test_openapi_document_is_the_committed_one(home: Home) -> None:
    with running(home) as server:
        served = get(server.url, "/openapi.json").body
        assert get(server.url, "/v1/health").body["status"] == "ok"
    assert json.dumps(served, indent=2) + "\n" == COMMITTED.read_text() == committed_text()
    assert set(served["paths"]) == {
        "/v1/integrations/{integration_id}/contact-events",
        "/v1/integrations/{integration_id}/agent-statuses",
        "/v1/health",
    }


@pytest.mark.parametrize("workers", [2])
def test_several_workers_share_one_store(home: Home, workers: int) -> None:
    key = home.key("push_berlin")
    with running(home, "--workers", str(workers)) as server:
        for n in range(40):
            body = {"data": [status(f"agent{n}", "Available", START)]}
            assert post(server.url, statuses_path(), body, key=key).status == 202
    assert landed(home) == 40
