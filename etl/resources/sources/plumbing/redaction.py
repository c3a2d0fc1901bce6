"""Secrets kept out of everything the project writes or prints, in every form they travel in.

A secret is sent in more shapes than its plain value: HTTP Basic sends `base64(id:secret)`, a
form post sends it URL-encoded, a JSON answer that quotes a request escapes it, an SQLAlchemy
URL percent-encodes the password, and tokens obtained at run time (OAuth access tokens) are
secrets too. `Secrets` holds the values one import uses and derives each form from them:

- the plain value; percent-encoded (URL path and query, form `+` for spaces, upper- and
  lower-case hex); JSON-escaped (once and twice, ASCII or not, `/` escaped or not), XML/HTML
  escaped and Python-repr escaped;
- base64 (standard and URL-safe, with and without padding) of the value alone, of each
  `id:value` pair it is sent with, and the characters the value fixes in a base64 text at any
  offset, so `base64(<anything>:secret)` is caught even for an id not known here.

Two lines of defence use it. The first is the source's own error path: `HttpClient` learns
every credential it sends (headers, form and JSON fields, query parameters, URL user info)
and quotes an error answer only redacted, with credential-looking fields and header values
masked (`scrub_credentials`); the database source redacts driver messages. The second is
`guarded`, which the fact asset runs every import inside: while it is active, every log
record the process creates, every write to stdout and stderr (what becomes the compute logs),
the exception leaving the asset (what Dagster stores as the failure), the metadata it yields
and the extract's own text that reaches the warehouse (rejected rows, description, failures)
are redacted with every secret any source registered meanwhile.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TextIO, TypeVar
from xml.sax.saxutils import escape

import dagster as dg
import pandas as pd

from etl.resources.sources.base import Extract, SourceError, SourceResource

REDACTED = "***"
MIN_SECRET = 3  # shorter values would mask ordinary text; no real secret is that short
MIN_FORM = 6  # a base64 fragment shorter than this is not worth masking
# Field and header names whose values are credentials, in requests and in quoted answers.
CREDENTIAL_NAME = re.compile(
    r"authorization|cookie|secret|passw(?:or)?d|pwd|token|api[-_]?key|apikey|access[-_]?key|"
    r"private[-_]?key|credential|assertion|signature|session",
    re.IGNORECASE,
)
_NAMED_VALUE = re.compile(
    r"""(?P<name>(?<![A-Za-z0-9])["']?(?:proxy-)?(?:authorization|set-cookie|cookie|x-api-key|"""
    r"""api[-_]?key|apikey|client[-_]?secret|secret|passw(?:or)?d|pwd|(?:access|refresh|id)"""
    r"""[-_]?token|token|credentials?)["']?\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|"""
    r"""(?:(?:Basic|Bearer|Digest|Token|Negotiate)\s+)?[^\s"',;&<>}\]]+)""",
    re.IGNORECASE,
)
_SCHEME_VALUE = re.compile(
    r"(?P<scheme>\b(?:Basic|Bearer|Digest|Token|Negotiate)\s+)(?P<value>[A-Za-z0-9\-._~+/]+=*)",
    re.IGNORECASE,
)
_SCHEME_WORD = re.compile(r"(?:Basic|Bearer|Digest|Token|Negotiate)\s+", re.IGNORECASE)
_XML_VALUE = re.compile(
    r"(?P<open><(?P<tag>(?:\w+:)?(?:password|passwd|secret|client_secret|api_?key|"
    r"access_?token|token))>)[^<]*(?=</(?P=tag)>)",
    re.IGNORECASE,
)


def _percent_forms(text: str) -> set[str]:
    forms = {
        urllib.parse.quote(text, safe=""),
        urllib.parse.quote(text),
        urllib.parse.quote_plus(text),
        urllib.parse.quote_plus(text, safe="/"),
    }
    lower = {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}
    return forms | lower


def _escaped_forms(text: str) -> set[str]:
    once = {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    once |= {f.replace("/", "\\/") for f in once}
    twice = {json.dumps(f)[1:-1] for f in once}
    markup = {
        escape(text, {'"': "&quot;", "'": "&apos;"}),
        escape(text, {'"': "&quot;", "'": "&#x27;"}),
        html.escape(text),
    }
    return once | twice | markup | {repr(text)[1:-1]}


def _base64_forms(data: bytes) -> set[str]:
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(data).decode()
        forms |= {text, text.rstrip("=")}
    return forms


def _base64_cores(data: bytes) -> set[str]:
    """The characters `data` alone fixes in a base64 text, at each of the three offsets it
    can start at (what any `base64(prefix + data + suffix)` must contain)."""
    cores = set()
    for offset in range(3):
        first = -(-8 * offset // 6)
        last = 8 * (offset + len(data)) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            core = encode(b"\0" * offset + data).decode()[first:last]
            if len(core) >= MIN_FORM:
                cores.add(core)
    return cores


def forms_of(secret: str) -> set[str]:
    """Every form of one secret value that this module masks."""
    forms = {secret} | _percent_forms(secret) | _escaped_forms(secret)
    # Base64 of the value as sent, and form-encoded first (RFC 6749 2.3.1 for HTTP Basic).
    for data in {secret.encode(), urllib.parse.quote_plus(secret).encode()}:
        forms |= _base64_forms(data) | _base64_cores(data)
    return {f for f in forms if f}


def forms_of_pair(user: str, secret: str) -> set[str]:
    """HTTP Basic's forms of `user:secret`, as sent and form-encoded first (RFC 6749 2.3.1)."""
    encoded = f"{urllib.parse.quote_plus(user)}:{urllib.parse.quote_plus(secret)}"
    pairs = {f"{user}:{secret}", encoded}
    forms = set()
    for pair in pairs:
        forms |= _base64_forms(pair.encode())
    return forms


class Secrets:
    """The secret values one import uses; `redact` masks every form of each (module doc).

    Thread-safe; values added while a `guarded` block is active are shared with it, so what
    an HTTP client or a database connection learns reaches the second line of defence too.
    """

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._values: list[str] = []
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values
        return f"Secrets({len(self._values)} value(s))"

    # -- learning ----------------------------------------------------------------------------
    def add(self, *values: str | None) -> None:
        """Secret values (None, empty and too short ones are ignored). A value already
        known is not derived again (a client adds its token with every request)."""
        known = set(self._values)
        new = [v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET and v not in known]
        if not new:
            return
        forms = set().union(*(forms_of(v) for v in new))
        self._learn(new, forms)
        for other in _active_others(self):
            other._learn(new, forms)

    def add_pair(self, user: str, secret: str) -> None:
        """A secret sent with an id, as HTTP Basic sends `base64(user:secret)`."""
        self.add(secret)
        if isinstance(secret, str) and len(secret) >= MIN_SECRET:
            forms = forms_of_pair(user, secret)
            self._learn([], forms)
            for other in _active_others(self):
                other._learn([], forms)

    def add_authorization(self, value: str) -> None:
        """The value of an Authorization header: its credentials, and for Basic the decoded
        `user:password` pair."""
        scheme, _, credentials = value.strip().partition(" ")
        credentials = credentials.strip() or scheme
        self.add(credentials)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return
            user, colon, password = decoded.partition(":")
            if colon:
                self.add_pair(user, password)

    def _learn(self, values: list[str], forms: set[str]) -> None:
        with self._lock:
            self._values += [v for v in values if v not in self._values]
            if not forms <= self._forms:
                self._forms |= forms
                self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._forms:
                ordered = sorted(self._forms, key=len, reverse=True)  # longest form first
                self._pattern = re.compile("|".join(map(re.escape, ordered)))
            return self._pattern

    # -- masking -----------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """`text` with every form of every secret replaced by ***."""
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)

    def found(self, text: str) -> bool:
        pattern = self._compiled()
        return bool(pattern and text and pattern.search(text))

    def redact_data(self, value: Any) -> Any:
        """Strings inside nested dicts, lists and tuples redacted (keys too)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {self.redact_data(k): self.redact_data(v) for k, v in value.items()}
        if type(value) in (list, tuple):  # not a record or named tuple built on tuple
            return type(value)(self.redact_data(v) for v in value)
        return value

    def redact_metadata(self, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        """Dagster metadata with every secret masked, in whatever value type it sits."""
        cleaned: dict[str, Any] = {}
        for key, value in (metadata or {}).items():
            cleaned[self.redact(key)] = self._metadata_value(value)
        return cleaned

    def _metadata_value(self, value: Any) -> Any:
        if isinstance(value, str | Mapping) or type(value) in (list, tuple):
            return self.redact_data(value)
        if isinstance(value, dg.TextMetadataValue):
            return dg.MetadataValue.text(self.redact(value.text))
        if isinstance(value, dg.JsonMetadataValue):
            return dg.MetadataValue.json(self.redact_data(value.data))
        if isinstance(value, dg.MarkdownMetadataValue):
            return dg.MetadataValue.md(self.redact(value.md_str))
        if isinstance(value, dg.UrlMetadataValue):
            return dg.MetadataValue.url(self.redact(value.url))
        if isinstance(value, dg.PathMetadataValue):
            return dg.MetadataValue.path(self.redact(str(value.path)))
        if self.found(repr(value)):
            return dg.MetadataValue.text(self.redact(repr(value)))
        return value

    def redact_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A frame whose text cells hold no secret. Each text column is searched once, its
        values joined, and only a column with a hit is rewritten cell by cell."""
        if frame is None or frame.empty or self._compiled() is None:
            return frame
        changed: dict[str, pd.Series] = {}
        for column in frame.columns:
            series = frame[column]
            if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
                continue
            if self.found("\x00".join(series.dropna().astype(str))):
                changed[column] = series.map(self.redact_data)
        return frame.assign(**changed) if changed else frame

    def redact_extract(self, extract: Extract) -> Extract:
        """The extract's own text without secrets: the rejected rows (kept as they came, so
        the text a source could not read, an answer it quoted), the description and the
        failures. The delivered rows are not searched: they are the vendor's data in
        canonical columns (queue, channel, user, activity), and searching every cell of a
        history month would add to every import what only a broken vendor could need."""
        if self._compiled() is None:
            return extract
        return replace(
            extract,
            rejected=self.redact_frame(extract.rejected),
            description=self.redact(extract.description),
            failed=[replace(f, reason=self.redact(f.reason)) for f in extract.failed],
        )


def scrub_credentials(text: str) -> str:
    """Mask what looks like a credential in text a server sent back, known to us or not:
    `Authorization`-style headers and fields, `Basic`/`Bearer` values, password and token
    fields in JSON, forms and XML. For quoting answers in error messages only."""

    def named(match: re.Match[str]) -> str:
        value = match.group("value")
        quote = value[0] if value[:1] in ('"', "'") else ""
        scheme = _SCHEME_WORD.match(value[len(quote) :])  # "Basic ***" stays "Basic ***"
        kept = scheme.group(0) if scheme else ""
        return f"{match.group('name')}{quote}{kept}{REDACTED}{quote}"

    def scheme(match: re.Match[str]) -> str:
        value = match.group("value")
        looks_encoded = len(value) >= 16 or re.search(r"[0-9+/=._~-]", value)
        return f"{match.group('scheme')}{REDACTED}" if looks_encoded else match.group(0)

    text = _SCHEME_VALUE.sub(scheme, text)
    text = _NAMED_VALUE.sub(named, text)
    return _XML_VALUE.sub(lambda m: f"{m.group('open')}{REDACTED}", text)


# -- the second line of defence ----------------------------------------------------------------
_ACTIVE: list[Secrets] = []
_STATE_LOCK = threading.RLock()
_saved: dict[str, Any] = {}


def _active_others(secrets: Secrets) -> list[Secrets]:
    with _STATE_LOCK:
        return [s for s in _ACTIVE if s is not secrets]


def redact_active(text: str) -> str:
    """`text` redacted with every secret of every active `guarded` block."""
    with _STATE_LOCK:
        active = list(_ACTIVE)
    for secrets in active:
        text = secrets.redact(text)
    return text


class _RedactingStream:
    """sys.stdout / sys.stderr, with secrets masked in what is written."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_active(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _redacting_factory(previous: Callable[..., logging.LogRecord]) -> Callable:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it itself when it formats
            return record
        cleaned = redact_active(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact_active(formatted), None
        return record

    return factory


def _install() -> None:
    previous = logging.getLogRecordFactory()
    _saved["factory"] = previous
    logging.setLogRecordFactory(_redacting_factory(previous))
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        _saved[name] = stream
        setattr(sys, name, _RedactingStream(stream))


def _uninstall() -> None:
    logging.setLogRecordFactory(_saved.pop("factory"))
    for name in ("stdout", "stderr"):
        stream = _saved.pop(name)
        current = getattr(sys, name)
        if isinstance(current, _RedactingStream) and current._stream is stream:
            setattr(sys, name, stream)  # else someone replaced it meanwhile: leave theirs


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from, as a traceback would show them."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        cause = current.__cause__
        if cause is None and not current.__suppress_context__:
            cause = current.__context__
        current = cause
    return seen


def redact_exception(exc: Exception, secrets: Secrets) -> Exception | None:
    """A copy of `exc` without secrets, or None when it holds none. The copy is raised from
    nothing: a cause that held a secret is kept as redacted text in the message."""
    chain = _chain(exc)
    texts = [str(e) for e in chain]
    if isinstance(exc, dg.Failure):
        texts += [exc.description or "", repr(exc.metadata)]
    if not any(secrets.found(t) for t in texts):
        return None
    if isinstance(exc, dg.Failure):
        return dg.Failure(
            description=secrets.redact(exc.description or ""),
            metadata=secrets.redact_metadata(exc.metadata),
            allow_retries=exc.allow_retries,
        )
    message = secrets.redact(str(exc))
    causes = [f"{type(e).__name__}: {secrets.redact(str(e))}" for e in chain[1:]]
    if causes:
        message += " (raised from " + "; from ".join(causes) + ")"
    try:
        clean = copy.copy(exc)
        clean.args = (message,)
        if str(clean) == message:
            return clean
    except Exception:  # an exception type that cannot be copied: say what it was instead
        pass
    return SourceError(f"{type(exc).__name__}: {message}")


@contextmanager
def guarded(secrets: Secrets) -> Iterator[Secrets]:
    """Run an import with its secrets masked wherever output leaves the process: log
    records, stdout and stderr, and the exception raised out of the block (module doc)."""
    with _STATE_LOCK:
        if not _ACTIVE:
            _install()
        _ACTIVE.append(secrets)
    try:
        yield secrets
    except Exception as exc:
        clean = redact_exception(exc, secrets)
        if clean is None:
            raise
        raise clean.with_traceback(exc.__traceback__) from None
    finally:
        with _STATE_LOCK:
            _ACTIVE.remove(secrets)
            if not _ACTIVE:
                _uninstall()


def source_secrets(source: SourceResource) -> Secrets:
    """The secret fields a source was configured with (`secret_envs`); what it learns at run
    time (tokens, a database URL's password) is added while it works."""
    return Secrets(getattr(source, name, None) for name in type(source).secret_envs)


T = TypeVar("T")


def guarded_results(
    source: SourceResource,
    extract: Callable[[SourceResource, Any, Any], Extract],
    run: Callable[[Callable[[SourceResource, Any, Any], Extract]], Iterable[T]],
) -> Iterator[T]:
    """Run an asset's import (`run`, given the source's extract function wrapped) inside
    `guarded`: the extract comes back redacted, and so does every result's metadata."""
    with guarded(source_secrets(source)) as secrets:

        def clean_extract(resource: SourceResource, start: Any, end: Any) -> Extract:
            return secrets.redact_extract(extract(resource, start, end))

        for result in run(clean_extract):
            yield _redact_result(result, secrets)


def _redact_result(result: T, secrets: Secrets) -> T:
    metadata = getattr(result, "metadata", None)
    if not metadata or not secrets.found(repr(metadata)):
        return result
    changes: dict[str, Any] = {"metadata": secrets.redact_metadata(metadata)}
    if isinstance(getattr(result, "description", None), str):
        changes["description"] = secrets.redact(result.description)
    return result._replace(**changes)  # type: ignore[attr-defined]
