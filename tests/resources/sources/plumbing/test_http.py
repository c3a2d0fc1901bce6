"""The shared HTTP client and OAuth token of the vendor sources, against a loopback server.

Waits are recorded instead of slept, so these tests check what the client would wait
(Retry-After honoured, backoff growing with jitter) without timing anything.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from etl.resources.sources.plumbing.http import (
    AuthError,
    HttpClient,
    HttpError,
    HttpSettings,
    retry_after_seconds,
)
from etl.resources.sources.plumbing.oauth import ClientCredentials
from tests.fakes import FakeServer, Recorded, Reply

SECRET = "s3cr3t-Value-42"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        fake.route("GET", "/ok", lambda r: Reply(200, {"fine": True}))
        yield fake


def client(waits: list[float], **settings) -> HttpClient:
    return HttpClient(
        integration_id="acme",
        vendor="Vendor X",
        settings=HttpSettings(**{"attempts": 4, **settings}),
        secrets=[SECRET],
        credential_hint="the secret in environment variable ACME_SECRET",
        sleep=waits.append,
        rand=lambda: 0.5,
    )


def test_retry_after_is_honoured_in_seconds_and_as_a_date(server):
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server.inject(
        "GET",
        "/ok",
        Reply(429, {"message": "slow down"}, {"Retry-After": "1"}),
        Reply(503, {"message": "busy"}, {"Retry-After": later}),
    )
    waits: list[float] = []
    response = client(waits).request("GET", f"{server.url}/ok")
    assert response.json() == {"fine": True}
    assert waits[0] == 1.0
    assert 25 <= waits[1] <= 30
    assert len(server.calls("GET", "/ok")) == 3


def test_backoff_grows_with_jitter_and_gives_up_with_a_clear_error(server):
    server.inject("GET", "/ok", *[Reply(500, {"message": "boom"})] * 4)
    waits: list[float] = []
    with pytest.raises(HttpError) as caught:
        client(waits, backoff_base_s=2.0, backoff_max_s=5.0).request("GET", f"{server.url}/ok")
    # rand() = 0.5: three quarters of 2, 4, then the 5 s cap.
    assert waits == [1.5, 3.0, 3.75]
    message = str(caught.value)
    assert "integration 'acme': Vendor X GET" in message
    assert "HTTP 500 after 4 attempt(s)" in message
    assert caught.value.status == 500


def test_a_client_error_is_not_retried(server):
    server.inject("GET", "/ok", Reply(404, {"message": "no such thing"}))
    waits: list[float] = []
    with pytest.raises(HttpError, match=r"HTTP 404: .*no such thing"):
        client(waits).request("GET", f"{server.url}/ok")
    assert waits == []


def test_refused_credentials_say_what_to_check_and_hide_the_secret(server):
    # A server that echoes what it got must not make the secret appear in our message.
    server.inject("GET", "/ok", Reply(401, {"message": f"bad token {SECRET}"}))
    with pytest.raises(AuthError) as caught:
        client([]).request("GET", f"{server.url}/ok?key={SECRET}")
    message = str(caught.value)
    assert "rejected the credentials (HTTP 401)" in message
    assert "ACME_SECRET" in message
    assert SECRET not in message
    assert "bad token ***" in message


def test_network_errors_are_retried_then_reported():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    with pytest.raises(HttpError, match="no answer after 4 attempt"):
        client(waits, timeout_s=2).request("GET", f"http://127.0.0.1:{port}/x")
    assert len(waits) == 3


def test_redirects_are_returned_not_followed(server):
    server.route("GET", "/moved", lambda r: Reply(303, {}, {"Location": "/elsewhere"}))
    response = client([]).request("GET", f"{server.url}/moved")
    assert response.status == 303
    assert response.header("Location") == "/elsewhere"
    assert server.calls("GET", "/elsewhere") == []


def test_retry_after_parsing():
    now = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 18 Nov 2026 10:00:12 GMT", now=now) == 12.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_server(server: FakeServer, lifetime: int) -> None:
    def token(request: Recorded) -> Reply:
        return Reply(200, {"access_token": server.issue_token(), "expires_in": lifetime})

    def api(request: Recorded) -> Reply:
        if server.bearer_ok(request):
            return Reply(200, {"token": request.headers["Authorization"]})
        return Reply(401, {"message": "token expired"})

    server.route("POST", "/token", token)
    server.route("GET", "/api", api)


def test_token_is_refreshed_before_it_expires(server):
    token_server(server, lifetime=600)
    clock = Clock()
    auth = ClientCredentials(client([]), f"{server.url}/token", "id", SECRET, clock=clock)
    first = auth.request("GET", f"{server.url}/api").json()["token"]
    clock.now += 500  # well inside the lifetime: same token
    assert auth.request("GET", f"{server.url}/api").json()["token"] == first
    clock.now += 50  # within a minute of expiry: refreshed before use
    assert auth.request("GET", f"{server.url}/api").json()["token"] != first
    assert auth.fetched == 2
    basic = server.calls("POST", "/token")[0].headers["Authorization"]
    assert basic.startswith("Basic ")


def test_a_401_mid_import_refreshes_once_then_gives_up(server):
    token_server(server, lifetime=3600)
    auth = ClientCredentials(client([]), f"{server.url}/token", "id", SECRET)
    auth.request("GET", f"{server.url}/api")
    server.tokens.clear()  # revoked behind our back
    assert auth.request("GET", f"{server.url}/api").status == 200
    assert auth.fetched == 2

    server.inject("GET", "/api", Reply(401, {}), Reply(401, {}))
    with pytest.raises(AuthError, match="HTTP 401"):
        auth.request("GET", f"{server.url}/api")
    assert auth.fetched == 3  # one refresh, not a loop
