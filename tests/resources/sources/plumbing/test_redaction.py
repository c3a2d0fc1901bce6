"""The redactor: every form of a secret masked, credentials in quoted answers masked, what
the HTTP client learns from its own requests, and the guard every import runs inside."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import sys
import urllib.parse
from datetime import UTC, datetime
from xml.sax.saxutils import escape

import dagster as dg
import pandas as pd
import pytest

from etl.resources.sources.base import Extract, SourceError, WindowFailure
from etl.resources.sources.plumbing.http import AuthError, HttpClient, HttpError, HttpSettings
from etl.resources.sources.plumbing.redaction import (
    Secrets,
    guarded,
    redact_active,
    scrub_credentials,
)
from tests.fakes import FakeServer, Reply
from tests.leaks import fragments, secret_forms

SECRET = 'Zq8/Kx9vQw7L+"s\\ec"=&ü 4711'
USER = "api-user@acme.example"


def leaked(text: str, secret: str = SECRET, user: str | None = USER) -> list[str]:
    """Forms of `secret` of which `text` still holds a run of characters."""
    data = text.encode()
    forms = secret_forms(secret, user)
    return [name for name, form in forms.items() if any(p in data for p in fragments(form))]


def every_form(secret: str) -> dict[str, str]:
    encoded = secret.encode()
    return {
        "plain": secret,
        "URL-encoded": urllib.parse.quote(secret, safe=""),
        "URL-encoded, lower-case hex": re.sub(
            r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(secret, safe="")
        ),
        "form-encoded": urllib.parse.quote_plus(secret),
        "JSON": json.dumps(secret)[1:-1],
        "JSON, UTF-8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "JSON twice": json.dumps(json.dumps(secret)[1:-1])[1:-1],
        "JSON, slash escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "XML": escape(secret, {'"': "&quot;"}),
        "Python repr": repr(secret)[1:-1],
        "base64": base64.b64encode(encoded).decode(),
        "base64 URL-safe, unpadded": base64.urlsafe_b64encode(encoded).decode().rstrip("="),
        "Basic of the known pair": base64.b64encode(f"{USER}:{secret}".encode()).decode(),
    }


@pytest.mark.parametrize("form", list(every_form(SECRET)))
def test_every_form_of_a_secret_is_masked(form):
    secrets = Secrets([SECRET])
    secrets.add_pair(USER, SECRET)
    text = f"before {every_form(SECRET)[form]} after"

    redacted = secrets.redact(text)

    assert redacted == "before *** after"
    assert leaked(redacted) == []


@pytest.mark.parametrize("prefix", ["a:", "ab:", "abc:", "someone-else@acme:"])
def test_basic_credentials_of_an_unknown_id_are_masked_at_any_offset(prefix):
    # Only the secret is known: whatever id it was sent with, the characters the secret fixes
    # in base64 are masked; what is left is the id's part and at most one mixed character.
    header = "Basic " + base64.b64encode(f"{prefix}{SECRET}".encode()).decode()

    redacted = Secrets([SECRET]).redact(header)

    assert "***" in redacted
    assert leaked(redacted, user=prefix[:-1]) == []
    assert len(redacted) <= len("Basic ") + len(prefix) * 4 // 3 + 2 + len("***") + 2


def test_run_time_values_and_urls():
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3Zm0ifQ.c2lnbmF0dXJl"
    secrets = Secrets([None, "", "ab"])  # nothing usable: none, empty, too short
    assert len(secrets) == 0
    assert secrets.redact("ab and more") == "ab and more"
    secrets.add(token)
    secrets.add("p@ss:w/rd", "mysql+pymysql://root:p%40ss%3Aw%2Frd@db:3306/x")
    text = (
        f"Bearer {token}; url mysql+pymysql://root:p%40ss%3Aw%2Frd@db:3306/x; "
        "password=p%40ss%3Aw%2Frd; plain p@ss:w/rd"
    )
    assert secrets.redact(text) == "Bearer ***; url ***; password=***; plain ***"
    assert repr(secrets) == "Secrets(3 value(s))"
    assert token not in repr(secrets)


def test_secrets_in_data_metadata_frames_and_extracts():
    secrets = Secrets([SECRET])
    assert secrets.redact_data({"k": [SECRET, 1, (f"x{SECRET}",)], SECRET: None}) == {
        "k": ["***", 1, ("x***",)],
        "***": None,
    }
    metadata = secrets.redact_metadata(
        {
            "plain": f"a {SECRET}",
            "text": dg.MetadataValue.text(SECRET),
            "json": dg.MetadataValue.json({"answer": SECRET}),
            "md": dg.MetadataValue.md(f"**{SECRET}**"),
            "url": dg.MetadataValue.url(f"https://x/?k={urllib.parse.quote_plus(SECRET)}"),
            "count": 3,
        }
    )
    assert metadata["plain"] == "a ***"
    assert metadata["text"].text == "***"
    assert metadata["json"].data == {"answer": "***"}
    assert metadata["md"].md_str == "*******"  # **, ***, **
    assert metadata["url"].url == "https://x/?k=***"
    assert metadata["count"] == 3

    frame = pd.DataFrame(
        {
            "source_ref": ["line 2", f"line 3 {SECRET}"],
            "row_json": ['{"a": 1}', json.dumps({"token": SECRET})],
            "rules": [["ok"], [f"bad {SECRET}"]],
            "n": [1, 2],
        }
    )
    hour = datetime(2026, 11, 16, 9, tzinfo=UTC)
    cleaned = secrets.redact_extract(
        Extract(
            frame.iloc[:0],
            rejected=frame,
            description=f"read with {SECRET}",
            failed=[WindowFailure(hour, hour, f"file said {SECRET}")],
        )
    )
    assert cleaned.rejected["source_ref"].tolist() == ["line 2", "line 3 ***"]
    assert cleaned.rejected["row_json"].tolist() == ['{"a": 1}', '{"token": "***"}']
    assert cleaned.rejected["rules"].tolist() == [["ok"], ["bad ***"]]
    assert cleaned.rejected["n"].tolist() == [1, 2]
    assert cleaned.description == "read with ***"
    assert cleaned.failed[0].reason == "file said ***"
    untouched = pd.DataFrame({"source_ref": ["line 2"]})
    assert secrets.redact_frame(untouched) is untouched  # nothing found: not copied


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"headers": {"Authorization": "Basic dXNlcjpwYXNz", "Accept": "x"}}',
            '{"headers": {"Authorization": "Basic ***", "Accept": "x"}}',
        ),
        ("Authorization: Bearer abc.def.ghi\nHost: x", "Authorization: Bearer ***\nHost: x"),
        (
            "grant_type=client_credentials&client_secret=s%2Fx&scope=a",
            "grant_type=client_credentials&client_secret=***&scope=a",
        ),
        (
            '{"access_token": "tok\\"en", "expires_in": 60}',
            '{"access_token": "***", "expires_in": 60}',
        ),
        ("<ser:password>hunter22</ser:password>", "<ser:password>***</ser:password>"),
        ("Cookie: session=abc123; other", "Cookie: ***; other"),
        ("x-api-key: k-123456", "x-api-key: ***"),
        # Ordinary words after a scheme name are left alone.
        ("Basic authentication failed", "Basic authentication failed"),
        ("invalid_client: client not found", "invalid_client: client not found"),
    ],
)
def test_credentials_in_quoted_answers_are_masked_known_or_not(text, expected):
    assert scrub_credentials(text) == expected


# -- the HTTP client -------------------------------------------------------------------------
@pytest.fixture
def echo() -> FakeServer:
    with FakeServer() as server:
        server.echo_requests = True
        server.route("POST", "/fail", lambda r: Reply(400, {"message": "bad request"}))
        server.route("GET", "/fail", lambda r: Reply(400, {"message": "bad request"}))
        server.route("POST", "/deny", lambda r: Reply(401, {"message": "no"}))
        yield server


def http(**settings) -> HttpClient:  # no secrets given: it must learn them from its requests
    return HttpClient("acme", "Vendor X", HttpSettings(**{"attempts": 1, **settings}))


def test_credentials_the_client_sends_never_come_back_in_its_errors(echo):
    client = http()
    with pytest.raises(HttpError) as form_post:
        client.request(
            "POST", f"{echo.url}/fail", form={"client_id": "c1", "client_secret": SECRET}
        )
    with pytest.raises(HttpError) as json_post:
        client.request("POST", f"{echo.url}/fail", json_body={"auth": {"api_key": SECRET}})
    with pytest.raises(HttpError) as query:
        client.request("GET", f"{echo.url}/fail", params={"api_key": SECRET})
    with pytest.raises(AuthError) as header:
        client.request("POST", f"{echo.url}/deny", headers={"X-Api-Key": SECRET})

    for caught in (form_post, json_post, query, header):
        message = str(caught.value)
        assert "integration 'acme'" in message
        assert leaked(message) == [], message
    # The server did get (and echo) what was sent, in the form it travelled in.
    assert any(urllib.parse.quote_plus(SECRET).encode() in a for a in echo.answers)
    assert SECRET in set(client.secrets)


def test_a_cut_snippet_leaves_no_part_of_a_secret(echo):
    # The secret starts just before the 300th character: cutting first, then redacting,
    # would leave its beginning in the message.
    echo.echo_requests = False  # the answer as below, nothing quoted before it
    padding = "x" * 290
    echo.route("GET", "/long", lambda r: Reply(400, f"{padding} {SECRET} tail"))
    with pytest.raises(HttpError) as caught:
        HttpClient("acme", "Vendor X", HttpSettings(attempts=1), secrets=[SECRET]).request(
            "GET", f"{echo.url}/long"
        )
    message = str(caught.value)
    assert f"{padding} ***" in message
    assert leaked(message) == []


# -- the guard -------------------------------------------------------------------------------
def test_guard_masks_logs_streams_and_what_is_learnt_inside(capsys):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("wfm.test.redaction")
    logger.addHandler(handler)
    factory, stdout = logging.getLogRecordFactory(), sys.stdout
    try:
        with guarded(Secrets([SECRET])):
            Secrets(["learnt-later-token"])  # e.g. an HTTP client created during the import
            logger.warning("got %s and %s", SECRET, "learnt-later-token")
            try:
                raise ValueError(f"inner {SECRET}")
            except ValueError:
                logger.exception("failed")
            print(f"printed {base64.b64encode(SECRET.encode()).decode()}")
            assert redact_active("learnt-later-token") == "***"
        logger.warning("after %s", "learnt-later-token")  # the guard is gone: not masked
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "got *** and ***" in logged
    assert "ValueError: inner ***" in logged
    assert "after learnt-later-token" in logged
    assert leaked(logged) == []
    assert capsys.readouterr().out == "printed ***\n"
    assert logging.getLogRecordFactory() is factory
    assert sys.stdout is stdout


def test_guard_redacts_the_exception_leaving_it_with_its_causes():
    def fail() -> None:
        try:
            raise KeyError(f"driver said {SECRET}")
        except KeyError as exc:
            raise SourceError("integration 'acme': no answer") from exc

    with pytest.raises(SourceError) as caught, guarded(Secrets([SECRET])):
        fail()
    error = caught.value
    assert str(error).startswith("integration 'acme': no answer (raised from KeyError:")
    assert "***" in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert leaked(str(error)) == []
    assert caught.traceback[-1].name == "fail"  # the original stack is kept

    failure = dg.Failure(description=f"bad {SECRET}", metadata={"answer": SECRET})
    with pytest.raises(dg.Failure) as caught_failure, guarded(Secrets([SECRET])):
        raise failure
    assert caught_failure.value.description == "bad ***"
    assert caught_failure.value.metadata["answer"].text == "***"

    clean = HttpError("integration 'acme': HTTP 400: fine", status=400)
    with pytest.raises(HttpError) as caught_clean, guarded(Secrets([SECRET])):
        raise clean
    assert caught_clean.value is clean  # nothing to hide: the very same exception

    with pytest.raises(HttpError) as caught_http, guarded(Secrets([SECRET])):
        raise HttpError(f"HTTP 400: {SECRET}", status=400)
    assert str(caught_http.value) == "HTTP 400: ***"
    assert caught_http.value.status == 400  # same type, same attributes
