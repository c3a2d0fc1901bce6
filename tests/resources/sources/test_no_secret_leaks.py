"""No secret in any encoding after a failure, end to end.

Each test makes an import fail the way a user meets it (refused credentials, an error answer
that quotes the request back, a refused database login, a failed query), materializes the
asset through Dagster with a real SQLite instance in a temporary DAGSTER_HOME, then reads
every file under DAGSTER_HOME (event log, compute logs), the warehouse folder and everything
the run printed, looking for each form of each secret: plain, base64 alone and as HTTP Basic
`id:secret`, URL- and form-encoded, JSON-escaped, and the access tokens obtained at run time.
Secrets hold characters that change under every encoding.
"""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar
from xml.sax.saxutils import escape

import dagster as dg
import pytest
import sqlalchemy as sa

from etl.resources.sources.base import Extract, SourceError, SourceResource
from etl.resources.sources.plumbing.frames import contact_rows, extract
from etl.resources.sources.plumbing.http import HttpClient, HttpSettings
from etl.resources.warehouse import Warehouse
from tests.conftest import make_integration
from tests.fakes import EXPIRE_TOKENS, FakeServer, Reply, failure_messages
from tests.fakes.five9 import PATH as FIVE9_PATH
from tests.fakes.five9 import USERNAME as FIVE9_USER
from tests.fakes.five9 import FakeFive9, contacts_report
from tests.fakes.genesys import CLIENT_ID as GENESYS_CLIENT
from tests.fakes.genesys import FakeGenesys
from tests.fakes.talkdesk import CLIENT_ID as TALKDESK_CLIENT
from tests.fakes.talkdesk import FakeTalkdesk
from tests.leaks import files_under, find_forms, materialize_hour, secret_forms

HOUR = datetime(2026, 11, 16, 9, tzinfo=UTC)
FAST_HTTP = {
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.01,
    "retry_after_max_s": 0.01,
    "timeout_s": 10,
    "attempts": 2,
}
# '/', '+', '=', '&', '"', ' ' and 'ü' each change under URL, form, JSON or base64 encoding.
GENESYS_SECRET = 'gc/Kx9vQw7L+"sec"=&ü 4711'
WRONG_SECRET = 'gc/Wr0ngPw9zT+"x"=&é 0815'
FIVE9_PASSWORD = 'f9/Pq4mZr8Ys+"pw"=&ä 9876'
TALKDESK_SECRET = 'td/Hj2nLc5Vb+"cs"=&ö 2323'
DB_PASSWORD = "p@ss:w/rd"
SECRET_ENV = "WFM_TEST_LEAK_SECRET"
URL_ENV = "WFM_TEST_LEAK_DB_URL"


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


@pytest.fixture
def home(instance) -> Path:
    return Path(instance.root_directory)


@pytest.fixture(autouse=True)
def python_logs_to_stderr(capfd) -> Iterator[None]:
    """Python log records go to stderr, as in a deployment that configures logging."""
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)


def check_traces(capfd, home: Path, settings, forms: dict[str, bytes], failure: str | None) -> str:
    """What the run printed, after checking that the `failure` text was recorded where the
    search looks and that no form of a secret is anywhere."""
    captured = capfd.readouterr()
    output = captured.out + captured.err
    if failure is not None:
        assert_failure_recorded(home, output, failure)
    assert_nothing_leaked(forms, [home, settings.warehouse_dir], output)
    return output


def assert_nothing_leaked(forms: dict[str, bytes], roots: list[Path], output: str) -> None:
    files = files_under(*roots)
    found = find_forms(forms, files, output)
    assert found == [], "secret found: " + "; ".join(f"{form} in {where}" for form, where in found)


def assert_failure_recorded(home: Path, output: str, text: str) -> None:
    """The failure reached the event log, the compute logs and the output: the places the
    search covers really hold the run's traces."""
    files = files_under(home)
    assert any(p.suffix == ".db" for p in files), "no SQLite event log under DAGSTER_HOME"
    logs = [p for p in files if p.suffix in (".out", ".err", ".complete")]
    assert logs, "no compute log under DAGSTER_HOME"
    assert any(text.encode() in p.read_bytes() for p in files), f"{text!r} not in DAGSTER_HOME"
    assert text in output


def echoed(fake, form: bytes) -> bool:
    return any(form in answer for answer in fake.answers)


# -- Genesys Cloud -----------------------------------------------------------------------------
@contextmanager
def echoing(server: FakeServer) -> Iterator:
    """The started fake, quoting every request back in its error answers."""
    with server:
        server.echo_requests = True
        yield server


@pytest.fixture
def genesys() -> Iterator[FakeGenesys]:
    with echoing(FakeGenesys(GENESYS_SECRET)) as started:
        yield started


def genesys_integration(fake: FakeGenesys):
    return make_integration(
        id="gc_leak",
        vendor="genesys_cloud",
        revision_window_hours=72,
        source={
            "client_id": GENESYS_CLIENT,
            "client_secret_env": SECRET_ENV,
            "base_url": fake.url,
            "login_url": fake.url,
            "http": FAST_HTTP,
        },
    )


def test_genesys_refused_api_call_leaves_neither_secret_nor_token(
    settings, instance, home, genesys, monkeypatch, capfd
):
    # The token works, then every token is revoked at once: the aggregates call is answered
    # 401 twice (with the first token, then a fresh one), each answer quoting `Bearer <token>`.
    monkeypatch.setenv(SECRET_ENV, GENESYS_SECRET)
    aggregates = "/api/v2/analytics/conversations/aggregates/query"
    genesys.inject("POST", aggregates, EXPIRE_TOKENS, EXPIRE_TOKENS)

    result = materialize_hour(settings, genesys_integration(genesys), instance, HOUR)

    assert not result.success
    assert any("HTTP 401" in m for m in failure_messages(result))
    tokens = [c.headers["Authorization"].split()[1] for c in genesys.calls("POST", aggregates)]
    assert len(set(tokens)) == 2
    assert all(echoed(genesys, t.encode()) for t in tokens)
    forms = secret_forms(GENESYS_SECRET, GENESYS_CLIENT)
    forms.update({f"access token {n}": t.encode() for n, t in enumerate(tokens, start=1)})
    check_traces(capfd, home, settings, forms, "HTTP 401")


# -- Five9 -------------------------------------------------------------------------------------
@pytest.fixture
def five9() -> Iterator[FakeFive9]:
    server = FakeFive9(FIVE9_PASSWORD)
    server.reports[("My Reports", "wfm-etl contacts")] = contacts_report("UTC")
    with echoing(server) as started:
        yield started


def five9_integration(fake: FakeFive9, **source):
    return make_integration(
        id="f9_leak",
        vendor="five9",
        interval_minutes=30,
        timezone="UTC",
        source={
            "username": FIVE9_USER,
            "password_env": SECRET_ENV,
            "base_url": f"{fake.url}{FIVE9_PATH}",
            "poll_wait_s": 0,
            "http": FAST_HTTP,
            **source,
        },
    )


def test_five9_soap_fault_quoting_the_request_leaves_no_password(
    settings, instance, home, five9, monkeypatch, capfd
):
    # The password is right, the report is not there: the SOAP fault's faultstring quotes the
    # request, Authorization header and decoded credentials included.
    monkeypatch.setenv(SECRET_ENV, FIVE9_PASSWORD)
    integration = five9_integration(
        five9, contacts_report={"folder": "My Reports", "name": "no such report"}
    )

    result = materialize_hour(settings, integration, instance, HOUR)

    assert not result.success
    assert any(
        "SOAP fault" in m and "no such report" in m and "integration 'f9_leak'" in m
        for m in failure_messages(result)
    )
    # The fault quoted the Basic header and the password the server decoded (XML-escaped).
    assert echoed(five9, b64(f"{FIVE9_USER}:{FIVE9_PASSWORD}"))
    assert echoed(five9, escape(FIVE9_PASSWORD).encode())
    check_traces(capfd, home, settings, secret_forms(FIVE9_PASSWORD, FIVE9_USER), "SOAP fault")


# -- Talkdesk ----------------------------------------------------------------------------------
@pytest.fixture
def talkdesk() -> Iterator[FakeTalkdesk]:
    with echoing(FakeTalkdesk(TALKDESK_SECRET)) as started:
        yield started


def talkdesk_integration(fake: FakeTalkdesk):
    return make_integration(
        id="td_leak",
        vendor="talkdesk",
        source={
            "client_id": TALKDESK_CLIENT,
            "client_secret_env": SECRET_ENV,
            "oauth_url": f"{fake.url}/oauth/token",
            "base_url": fake.url,
            "poll_interval_s": 0,
            "http": FAST_HTTP,
        },
    )


def test_talkdesk_refused_report_job_leaves_neither_secret_nor_token(
    settings, instance, home, talkdesk, monkeypatch, capfd
):
    # The token works; creating the report job is denied (403), the answer quoting the
    # request's `Authorization: Bearer <token>` and its JSON body.
    monkeypatch.setenv(SECRET_ENV, TALKDESK_SECRET)
    talkdesk.inject("POST", "/data/reports/calls/jobs", Reply(403, {"message": "Forbidden"}))

    result = materialize_hour(settings, talkdesk_integration(talkdesk), instance, HOUR)

    assert not result.success
    assert any("HTTP 403" in m for m in failure_messages(result))
    [job_call] = talkdesk.calls("POST", "/data/reports/calls/jobs")
    token = job_call.headers["Authorization"].split()[1]
    assert echoed(talkdesk, token.encode())
    forms = secret_forms(TALKDESK_SECRET, TALKDESK_CLIENT)
    forms["access token"] = token.encode()
    check_traces(capfd, home, settings, forms, "HTTP 403")


# -- refused credentials, every vendor ----------------------------------------------------------
REFUSED = {
    "genesys_cloud": (lambda: FakeGenesys(GENESYS_SECRET), genesys_integration, GENESYS_CLIENT),
    "five9": (lambda: FakeFive9(FIVE9_PASSWORD), five9_integration, FIVE9_USER),
    "talkdesk": (lambda: FakeTalkdesk(TALKDESK_SECRET), talkdesk_integration, TALKDESK_CLIENT),
}


@pytest.mark.parametrize("vendor", list(REFUSED))
def test_refused_credentials_leave_no_secret(vendor, settings, instance, home, monkeypatch, capfd):
    # The configured secret is wrong: the vendor answers 401, quoting the request's
    # `Authorization: Basic base64(id:secret)` and the decoded credentials back (Genesys Cloud
    # and Talkdesk on their OAuth token call, in JSON; Five9 on its SOAP call, in an HTML page).
    new_fake, new_integration, user = REFUSED[vendor]
    monkeypatch.setenv(SECRET_ENV, WRONG_SECRET)
    with echoing(new_fake()) as fake:
        integration = new_integration(fake)
        result = materialize_hour(settings, integration, instance, HOUR)

    assert not result.success
    assert any(
        f"integration {integration.id!r}" in m and "HTTP 401" in m and SECRET_ENV in m
        for m in failure_messages(result)
    )
    basic = b64(f"{user}:{WRONG_SECRET}")
    [sent] = fake.requests
    assert sent.headers["Authorization"] == f"Basic {basic.decode()}"
    assert echoed(fake, basic)  # the answer quoted it
    check_traces(capfd, home, settings, secret_forms(WRONG_SECRET, user), "HTTP 401")


# -- database ----------------------------------------------------------------------------------
def database_integration():
    return make_integration(
        id="db_leak",
        vendor="database",
        delivery="on_premise",
        source={
            "url_env": URL_ENV,
            "connect_attempts": 1,
            "contacts": {
                "query": "SELECT queue_id AS external_queue_id, 'calls' AS channel, "
                "starts AS interval_start, offered, answered, abandoned, handle_s AS "
                "handle_time_s FROM no_such_table WHERE starts >= :window_start "
                "AND starts < :window_end",
            },
        },
    )


def with_password(url: str, password: str) -> str:
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


DATABASE_FAILURES = {
    # MariaDB's root has no password here: logging in with one is refused.
    "refused login": ("mysql_url", "root", "refused the login of user 'root'"),
    # The local PostgreSQL trusts the login whatever the password; the query then fails.
    "failed query": (
        "pg_url",
        "postgres",
        "contacts query (source.contacts.query) failed on postgresql",
    ),
}


@pytest.mark.parametrize("case", list(DATABASE_FAILURES))
def test_database_failure_leaves_no_password(
    case, settings, instance, home, monkeypatch, capfd, request
):
    server, user, said = DATABASE_FAILURES[case]
    url = with_password(request.getfixturevalue(server), DB_PASSWORD)
    assert "p%40ss%3Aw%2Frd" in url  # the password travels URL-encoded in the URL
    monkeypatch.setenv(URL_ENV, url)

    result = materialize_hour(settings, database_integration(), instance, HOUR)

    assert not result.success
    assert any("integration 'db_leak'" in m and said in m for m in failure_messages(result))
    check_traces(capfd, home, settings, secret_forms(DB_PASSWORD, user), said)


# -- the second line of defence ----------------------------------------------------------------
class CarelessSource(SourceResource):
    """A vendor adapter written without a thought for secrets: it gives its HTTP client no
    secrets, and prints, logs, raises and quarantines what the server answered, as is. What
    keeps its secret and token out is the plumbing's learning and the asset's guard."""

    secret_envs: ClassVar[dict[str, str]] = {"client_secret": "client_secret_env"}
    client_secret: str
    base_url: str
    fail: bool = True

    def contacts(self, start: datetime, end: datetime) -> Extract:
        http = HttpClient(self.integration_id, "Careless", HttpSettings(attempts=1))
        basic = base64.b64encode(f"{GENESYS_CLIENT}:{self.client_secret}".encode()).decode()
        answer = http.request(
            "POST",
            f"{self.base_url}/oauth/token",
            headers={"Authorization": f"Basic {basic}"},
            form={"grant_type": "client_credentials"},
        )
        token = answer.json()["access_token"]
        missing = http.request(
            "GET",
            f"{self.base_url}/api/v2/nowhere",
            headers={"Authorization": f"Bearer {token}"},
            accept=(404,),
        )
        text = missing.text
        print(f"careless print: {text}")
        sys.stderr.write(f"careless stderr: {text}\n")
        logging.getLogger("careless.vendor").error("careless log: %s", text)
        dg.get_dagster_logger().warning(f"careless dagster log: {text}")
        if self.fail:
            raise SourceError(f"careless failure: {text}") from RuntimeError(text)
        rejected = [{"source_ref": f"careless {text}", "row": missing.json(), "rules": [text]}]
        good = [  # enough good rows that one rejected row stays under the rejected share
            {
                "external_queue_id": f"q{n}",
                "channel": "calls",
                "interval_start": start,
                "offered": 2,
                "answered": 1,
                "abandoned": 1,
                "handle_time_s": 60.0,
            }
            for n in range(30)
        ]
        return extract(
            contact_rows(good, self.integration_id, self.interval_minutes, "careless"),
            rejected,
            f"careless description: {text}",
        )


@pytest.mark.parametrize("fail", [True, False], ids=["failing", "quarantining"])
def test_an_adapter_that_quotes_answers_raw_still_leaks_nothing(
    settings, instance, home, genesys, capfd, fail
):
    integration = genesys_integration(genesys)
    careless = CarelessSource(
        integration_id=integration.id,
        timezone=integration.timezone,
        interval_minutes=integration.interval_minutes,
        client_secret=GENESYS_SECRET,
        base_url=genesys.url,
        fail=fail,
    )

    result = materialize_hour(
        settings, integration, instance, HOUR, **{f"source_{integration.id}": careless}
    )

    [call] = genesys.calls("GET", "/api/v2/nowhere")
    token = call.headers["Authorization"].split()[1]
    assert echoed(genesys, token.encode())
    forms = secret_forms(GENESYS_SECRET, GENESYS_CLIENT)
    forms["access token"] = token.encode()
    failure = "careless failure" if fail else None
    output = check_traces(capfd, home, settings, forms, failure)
    for said in ("careless print", "careless stderr", "careless log", "careless dagster log"):
        assert said in output
    if fail:
        assert not result.success
        assert any("careless failure" in m for m in failure_messages(result))
    else:
        assert result.success
        warehouse = Warehouse(root=str(settings.warehouse_dir))
        rejected = warehouse.query("SELECT source_ref, row_json, rules FROM rejected_rows")
        assert len(rejected) == 1
        assert '"Authorization": "Bearer ***"' in rejected["row_json"][0]  # masked, kept
        assert len(warehouse.query("SELECT * FROM contact_intervals")) == 30
        [materialization] = result.asset_materializations_for_node(f"{integration.id}__contacts")
        description = materialization.metadata["source"].value
        assert description.startswith("careless description: ")
        assert "Bearer ***" in description
