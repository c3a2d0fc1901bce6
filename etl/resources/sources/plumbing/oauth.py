"""OAuth 2.0 client-credentials tokens for vendor APIs (Genesys Cloud, Talkdesk, Vonage).

The vendors document the same grant: POST the token URL with `grant_type=client_credentials`
and the client's id and secret, either as HTTP Basic `client_id:client_secret` (Genesys,
Talkdesk) or as `client_id` and `client_secret` form fields (Vonage Contact Center; RFC 6749
section 2.3.1 allows both); the answer carries `access_token` and `expires_in` (seconds).
RFC 6749 section 4.4 is the common reference:
https://www.rfc-editor.org/rfc/rfc6749#section-4.4

The token is fetched lazily, refreshed shortly before it expires, and refreshed once more
when the API answers 401 in the middle of an import (a token revoked or expired early); a
second 401 with a fresh token is a real refusal and raises `AuthError`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from etl.resources.sources.plumbing.http import AuthError, HttpClient, HttpError, HttpResponse


@dataclass
class ClientCredentials:
    http: HttpClient
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    credentials_in: Literal["basic", "body"] = "basic"  # where the client id and secret go
    refresh_margin_s: float = 60.0  # refresh this long before the announced expiry
    clock: Callable[[], float] = time.monotonic
    _token: str | None = field(default=None, init=False, repr=False)
    _refresh_at: float = field(default=0.0, init=False, repr=False)
    fetched: int = field(default=0, init=False)  # tokens obtained (for logs and tests)

    def _fetch(self) -> None:
        self.http.redactor.add_pair(self.client_id, self.client_secret)
        form = {"grant_type": "client_credentials"}
        headers: dict[str, str] = {}
        if self.credentials_in == "body":
            form.update(client_id=self.client_id, client_secret=self.client_secret)
        else:
            pair = f"{self.client_id}:{self.client_secret}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        if self.scope:
            form["scope"] = self.scope
        response = self.http.request(
            "POST", self.token_url, headers=headers, form=form, accept=(400,)
        )
        if response.status == 400:
            raise self._refused(response)
        try:
            payload = response.json()
            token = payload["access_token"]
            lifetime = float(payload.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError) as exc:
            raise HttpError(
                f"{self.http.where('POST', self.token_url)}: the token answer has no "
                f"access_token ({type(exc).__name__})"
            ) from None
        self.http.redactor.add(str(token))  # a token obtained at run time is a secret too
        self._token = token
        # Refresh a little before the announced expiry (a tenth of a short lifetime).
        self._refresh_at = self.clock() + lifetime - min(self.refresh_margin_s, lifetime / 10)
        self.fetched += 1

    def _refused(self, response: HttpResponse) -> HttpError:
        """A 400 from the token endpoint: RFC 6749 section 5.2 names the reason in `error`;
        `invalid_client` and `unauthorized_client` mean the credentials (an AuthError)."""
        try:
            reason = str((response.json() or {}).get("error") or "")
        except ValueError:
            reason = ""
        where = self.http.where("POST", self.token_url)
        if reason in ("invalid_client", "unauthorized_client", "invalid_scope"):
            hint = f"; check {self.http.credential_hint}" if self.http.credential_hint else ""
            return AuthError(
                f"{where}: {self.http.vendor} rejected the credentials (HTTP 400 {reason}){hint}",
                status=400,
            )
        reason = self.http.quote(reason, limit=80)
        return HttpError(f"{where}: HTTP 400 {reason or '(no error code)'}", status=400)

    def token(self) -> str:
        """A valid access token, fetched or refreshed as needed."""
        if self._token is None or self.clock() >= self._refresh_at:
            self._fetch()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        self._token = None

    def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        """An API request with the bearer token; on a 401, one refresh and one more try."""
        for attempt in (1, 2):
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token()}"}
            try:
                return self.http.request(method, url, headers=headers, **kwargs)
            except AuthError as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                self.invalidate()
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
        raise AssertionError("unreachable")  # pragma: no cover


def client_credentials_session(
    source: Any,
    vendor: str,
    token_url: str,
    *,
    scope: str | None = None,
    credentials_in: Literal["basic", "body"] = "basic",
    credential: str = "the OAuth client",
) -> tuple[HttpClient, ClientCredentials]:
    """The HTTP client and token of a vendor source that signs in with OAuth client
    credentials: `source` has `integration_id`, `client_secret` and `settings` with `http`,
    `client_id` and `client_secret_env`. A refusal names the client, its scope and the
    environment variable of the secret (never the secret)."""
    settings = source.settings
    scoped = f" (scope {scope})" if scope else ""
    http = HttpClient(
        integration_id=source.integration_id,
        vendor=vendor,
        settings=settings.http,
        secrets=[source.client_secret],
        credential_hint=(
            f"{credential} {settings.client_id!r}{scoped} and the secret in environment "
            f"variable {settings.client_secret_env}"
        ),
    )
    auth = ClientCredentials(
        http,
        token_url,
        settings.client_id,
        source.client_secret,
        scope=scope,
        credentials_in=credentials_in,
    )
    return http, auth
