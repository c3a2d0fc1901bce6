"""Fake vendor servers on 127.0.0.1, for tests: each speaks one vendor's documented shape.

`FakeServer` runs `http.server` in a thread on an ephemeral port, records every request, and
lets a test script failures in front of the normal answers (`inject`): a 429 with
Retry-After, a 500, a token that expires mid-import. Subclasses add the vendor's routes.

With `echo_requests` on, every error answer quotes the request back (headers, body and the
decoded Basic credentials, raw and form-encoded), as API gateways and debug modes do: the
adversary of the project's redaction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # arrival (for rate assertions)
    target: str = ""  # the request target as sent (path and raw query), for signatures

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain")
        return json.dumps(self.body).encode(), "application/json"


EXPIRE_TOKENS = "expire-tokens"  # injected: revoke every token, then answer normally (a 401)

Route = Callable[[Recorded], Reply]


class FakeServer:
    """A scripted HTTP server; `url` is its base URL once started."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.routes: list[tuple[str, str, Route]] = []
        self.injected: list[tuple[str, str, Reply | str]] = []
        self.tokens: set[str] = set()
        self.token_numbers = itertools.count(1)
        self.echo_requests = False
        self.answers: list[bytes] = []  # every answer body sent, in order
        self.lock = threading.Lock()
        self.per_second: float | None = None  # rate rule: faster requests get a 429
        self.last_request_at = float("-inf")
        self.rate_limited = 0  # 429s answered by the rate rule
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urllib.parse.urlsplit(self.path)
                recorded = Recorded(
                    self.command,
                    parts.path,
                    urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                    dict(self.headers.items()),
                    body,
                    target=self.path,
                )
                reply = server.dispatch(recorded)
                if server.echo_requests and reply.status >= 400:
                    reply = echoed(recorded, reply)
                payload, content_type = reply.payload()
                with server.lock:
                    server.answers.append(payload)
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    if name != "Content-Type":
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # -- scripting ----------------------------------------------------------------------------
    def route(self, method: str, prefix: str, handler: Route) -> None:
        self.routes.append((method, prefix, handler))

    def inject(self, method: str, prefix: str, *replies: Reply | str) -> None:
        """Answer the next matching requests with `replies` (in order) before normal service."""
        with self.lock:
            self.injected += [(method, prefix, reply) for reply in replies]

    def calls(self, method: str, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def dispatch(self, request: Recorded) -> Reply:
        with self.lock:
            self.requests.append(request)
            if self.per_second is not None:
                now = time.monotonic()
                too_soon = now - self.last_request_at < 1.0 / self.per_second
                self.last_request_at = now
                if too_soon:
                    self.rate_limited += 1
                    return Reply(429, {"message": "Too Many Requests"}, {"Retry-After": "1"})
            for index, (method, prefix, reply) in enumerate(self.injected):
                if method == request.method and request.path.startswith(prefix):
                    del self.injected[index]
                    if reply == EXPIRE_TOKENS:
                        self.tokens.clear()
                        break
                    return reply
        for method, prefix, handler in self.routes:
            if method == request.method and request.path.startswith(prefix):
                try:
                    return handler(request)
                except Exception as exc:  # a bug in a fake must show (400: never retried)
                    return Reply(400, {"error": f"fake failed: {exc!r}"})
        return Reply(404, {"message": f"no route {request.method} {request.path}"})

    # -- auth helpers -------------------------------------------------------------------------
    def issue_token(self) -> str:
        """A fresh access token, unique and long like a real one (so a leak is unambiguous)."""
        number = next(self.token_numbers)
        digest = hashlib.sha256(f"{self.url}|{number}".encode()).hexdigest()[:32]
        token = f"at{number}.{digest}"
        self.tokens.add(token)
        return token

    def bearer_ok(self, request: Recorded) -> bool:
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[len("Bearer ") :] in self.tokens


def basic_credentials(request: Recorded) -> str:
    """The `user:password` of the request's HTTP Basic header, decoded ('' if none)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return ""
    try:
        return base64.b64decode(header[len("Basic ") :]).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def echoed(request: Recorded, reply: Reply) -> Reply:
    """`reply` with the request quoted back: first in the JSON (key `request`) and before a
    text answer, after the text of a SOAP fault's faultstring."""
    credentials = basic_credentials(request)
    # Credentials first: a client that cuts long answers short must not be saved by the cut.
    headers = dict(sorted(request.headers.items(), key=lambda kv: kv[0] != "Authorization"))
    quoted = {
        "method": request.method,
        "path": request.path,
        "headers": headers,
        "body": request.body.decode("utf-8", errors="replace"),
        "credentials": credentials,
        "credentials_form": urllib.parse.urlencode({"credentials": credentials}),
    }
    if isinstance(reply.body, dict | list):
        body = reply.body if isinstance(reply.body, dict) else {"answer": reply.body}
        return Reply(reply.status, {"request": quoted, **body}, reply.headers)
    text = reply.body.decode() if isinstance(reply.body, bytes) else str(reply.body)
    lines = [f"{request.method} {request.path}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["", quoted["body"], f"credentials: {credentials}", quoted["credentials_form"]]
    echo = "\n".join(lines)
    if "</faultstring>" in text:  # after the fault's own text: a cut may fall in a secret
        text = text.replace("</faultstring>", f" (request: {escape(echo)})</faultstring>", 1)
    else:
        text = f"{echo}\n{text}"
    return Reply(reply.status, text, {"Content-Type": "text/plain", **reply.headers})


def failure_messages(result: Any) -> list[str]:
    """Every message of a run's step failures, causes included (for asserting on errors)."""
    texts = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return texts
