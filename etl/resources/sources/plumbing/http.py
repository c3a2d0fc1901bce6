"""HTTP for the cloud vendor sources: timeouts, retries with backoff, clear refusals.

Standard library only (urllib), so a vendor adapter adds no dependency. What every vendor
client needs and gets here:

- a timeout on every request (`HttpSettings.timeout_s`);
- retries on 429 and transient 5xx answers and on network errors, waiting for the server's
  `Retry-After` (seconds or an HTTP date, capped by `retry_after_max_s`) or else an
  exponential backoff with jitter (`backoff_base_s * 2**n`, capped by `backoff_max_s`, half of
  it random, so many workers do not retry in lock step);
- a `SourceError` that names the integration and the vendor on every failure, and an
  `AuthError` on 401/403 that says which credential to check (by its environment variable
  name) and never contains a secret in any form (`redaction.py`): the client learns every
  credential it sends (the `secrets` given, Authorization and key headers, password and
  token fields of forms, JSON bodies and query strings, URL user info), and an error answer
  is quoted only with those masked and with whatever else looks like a credential masked too
  (a server that echoes the request's headers or body back);
- no automatic redirects: a 3xx is returned to the caller, who decides whether the target
  may see the credentials (Talkdesk redirects a finished report to a file store);
- client-side spacing of requests (`HttpSettings.requests_per_second`, see `ratelimit.py`)
  and a per-attempt `sign` hook for request signatures that carry a timestamp (AWS SigV4).
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

import dagster as dg
from pydantic import Field

from etl.resources.sources.base import SourceError
from etl.resources.sources.plumbing.ratelimit import RateLimiter
from etl.resources.sources.plumbing.redaction import CREDENTIAL_NAME, Secrets, scrub_credentials

log = logging.getLogger(__name__)

# 501 Not Implemented and 505 HTTP Version Not Supported do not get better by waiting.
NOT_TRANSIENT_5XX = frozenset({501, 505})
SNIPPET_CHARS = 300  # of an error answer quoted in a message


class HttpSettings(dg.Config):
    """`source.http:` settings shared by every cloud vendor (all optional)."""

    timeout_s: float = Field(default=60.0, gt=0, description="Timeout of one request.")
    attempts: int = Field(default=5, ge=1, le=20, description="Tries per request, first included.")
    backoff_base_s: float = Field(default=1.0, ge=0, description="First retry waits about this.")
    backoff_max_s: float = Field(default=60.0, ge=0, description="Longest backoff between tries.")
    retry_after_max_s: float = Field(
        default=300.0, ge=0, description="Longest wait honoured from a Retry-After header."
    )
    requests_per_second: float | None = Field(
        default=None, gt=0, description="Space requests to at most this rate (None: no limit)."
    )


class HttpError(SourceError):
    """A request failed for good (after retries, or with a status retrying cannot fix)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(HttpError):
    """The vendor refused the credentials (401) or their rights (403)."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Message
    body: bytes
    url: str

    @property
    def text(self) -> str:
        charset = self.headers.get_content_charset() or "utf-8"
        return self.body.decode(charset, errors="replace")

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def public_url(url: str) -> str:
    """The URL without query string or user info: safe for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), if valid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _credential_values(pairs: Iterable[tuple[Any, Any]]) -> list[str]:
    """Values of fields whose names say they are credentials (password, client_secret, ...)."""
    return [str(v) for k, v in pairs if v is not None and CREDENTIAL_NAME.search(str(k))]


def _json_credentials(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        found = _credential_values((k, v) for k, v in value.items() if isinstance(v, str))
        return found + [s for v in value.values() for s in _json_credentials(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _json_credentials(v)]
    return []


@dataclass
class HttpClient:
    """One vendor's HTTP client for one integration (create one per extract).

    `secrets` are the values to keep out of messages (a `Secrets`, or plain values); the
    client adds every credential it sends and every token a caller registers with
    `secrets.add`, so an adapter needs no redaction code of its own.
    """

    integration_id: str
    vendor: str  # as users know it, e.g. "Genesys Cloud"
    settings: HttpSettings = field(default_factory=HttpSettings)
    secrets: Secrets | Iterable[str] = ()
    credential_hint: str = ""  # e.g. "client_id and the secret in $GENESYS_SECRET"
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if not isinstance(self.secrets, Secrets):
            self.secrets = Secrets(self.secrets)
        rate = self.settings.requests_per_second
        self.limiter = RateLimiter(rate, sleep=self.sleep) if rate else None

    # -- messages -----------------------------------------------------------------------------
    @property
    def redactor(self) -> Secrets:
        assert isinstance(self.secrets, Secrets)
        return self.secrets

    def redact(self, text: str) -> str:
        """`text` with every known secret masked, in every form (redaction.py)."""
        return self.redactor.redact(text)

    def quote(self, text: str, limit: int = SNIPPET_CHARS) -> str:
        """Text a server sent (an error answer, a SOAP fault) as it may appear in a message:
        known secrets and anything that looks like a credential masked before it is cut to
        `limit` characters, so a cut never leaves part of a secret behind."""
        cleaned = scrub_credentials(self.redact(text))
        cleaned = " ".join(cleaned.split())
        return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."

    def where(self, method: str, url: str) -> str:
        return f"integration {self.integration_id!r}: {self.vendor} {method} {public_url(url)}"

    def _snippet(self, response: HttpResponse) -> str:
        return self.quote(response.text)

    def _learn(
        self,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, Any]],
        form: Mapping[str, str] | None,
        json_body: Any,
    ) -> None:
        """Register the credentials a request is about to send."""
        secrets = self.redactor
        for name, value in headers.items():
            if name.lower() in ("authorization", "proxy-authorization"):
                secrets.add_authorization(value)
            elif CREDENTIAL_NAME.search(name):
                secrets.add(value)
        parts = urllib.parse.urlsplit(url)
        if parts.password:
            secrets.add(urllib.parse.unquote(parts.password), parts.password)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        secrets.add(*_credential_values([*params, *query]))
        secrets.add(*_credential_values((form or {}).items()))
        secrets.add(*_json_credentials(json_body))

    # -- the request loop ---------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        data: bytes | None = None,
        accept: Iterable[int] = (),
        retryable: Callable[[HttpResponse], bool] | None = None,
        sign: Callable[[str, str, dict[str, str], bytes | None], dict[str, str]] | None = None,
    ) -> HttpResponse:
        """Send a request; return a 2xx/3xx answer, retrying what is transient.

        `retryable` may veto a retry of a 429/5xx answer that is known to be final (e.g. a
        SOAP fault, which comes as a 500 but will not change); a status in `accept` is
        returned (after the retries) instead of raised, for callers that read error bodies.
        `sign(method, url, headers, body)` returns the headers to send, called before every
        attempt (a signature with a timestamp must be made anew for each try).
        """
        items = list((params.items() if isinstance(params, Mapping) else params) or [])
        if items:
            query = urllib.parse.urlencode([(k, v) for k, v in items if v is not None])
            url = f"{url}{'&' if '?' in url else '?'}{query}"
        send_headers = {"Accept": "application/json", **(headers or {})}
        self._learn(url, send_headers, items, form, json_body)
        body = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            send_headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            send_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        accepted = set(accept)
        attempts = self.settings.attempts
        for attempt in range(1, attempts + 1):
            headers_now = sign(method, url, send_headers, body) if sign else send_headers
            if self.limiter is not None:
                self.limiter.wait()
            try:
                response = self._send(method, url, headers_now, body)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt == attempts:
                    raise HttpError(
                        f"{self.where(method, url)}: no answer after {attempts} attempt(s): "
                        f"{self.redact(str(reason))}"
                    ) from None
                why = f"network error ({self.redact(str(reason))})"
                self._wait(attempt, None, why, method, url)
                continue
            status = response.status
            if status in (401, 403):
                raise self._auth_error(method, url, response)
            transient = status == 429 or (status >= 500 and status not in NOT_TRANSIENT_5XX)
            if transient and (retryable is None or retryable(response)) and attempt < attempts:
                self._wait(attempt, response, f"HTTP {status}", method, url)
                continue
            if status in accepted or (200 <= status < 400):
                return response
            tried = f" after {attempt} attempt(s)" if transient else ""
            raise HttpError(
                f"{self.where(method, url)}: HTTP {status}{tried}: {self._snippet(response)}",
                status=status,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, url: str, headers: dict, body: bytes | None) -> HttpResponse:
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with _OPENER.open(request, timeout=self.settings.timeout_s) as answer:
                return HttpResponse(answer.status, answer.headers, answer.read(), url)
        except urllib.error.HTTPError as answer:
            with answer:
                payload = answer.read()
            return HttpResponse(answer.code, answer.headers, payload, url)

    def backoff(self, attempt: int, response: HttpResponse | None) -> float:
        """Seconds before try `attempt + 1`: the server's Retry-After, else backoff + jitter."""
        if response is not None:
            asked = retry_after_seconds(response.header("Retry-After"))
            if asked is not None:
                return min(asked, self.settings.retry_after_max_s)
        ceiling = min(
            self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (attempt - 1)
        )
        return ceiling / 2 + self.rand() * ceiling / 2

    def _wait(
        self, attempt: int, response: HttpResponse | None, why: str, method: str, url: str
    ) -> None:
        delay = self.backoff(attempt, response)
        log.warning(
            "%s: %s, retry %d of %d in %.2f s",
            self.where(method, url),
            why,
            attempt,
            self.settings.attempts - 1,
            delay,
        )
        self.sleep(delay)

    def _auth_error(self, method: str, url: str, response: HttpResponse) -> AuthError:
        what = "rejected the credentials" if response.status == 401 else "denied access"
        hint = f"; check {self.credential_hint}" if self.credential_hint else ""
        return AuthError(
            f"{self.where(method, url)}: {self.vendor} {what} (HTTP {response.status}){hint}. "
            f"Answer: {self._snippet(response) or '(empty)'}",
            status=response.status,
        )
