"""Looking for secrets where a run leaves its traces: every file under DAGSTER_HOME (the
SQLite event log, compute logs), the warehouse folder and what the run printed.

The encoded forms are computed here, independently of the project's redaction, so a form
the project forgot is still looked for.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg

from etl.config import Settings
from etl.definitions import build_definitions
from etl.partitions import KEY_FORMAT


def _json_inner(text: str, ascii_only: bool = True) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


def secret_forms(secret: str, user: str | None = None) -> dict[str, bytes]:
    """Every form `secret` is sent or stored in: plain, base64 (alone and as HTTP Basic
    `user:secret`), URL- and form-encoded, JSON-escaped once and twice (the event log
    stores JSON that quotes JSON answers). Of HTTP Basic, only the characters the secret
    determines: those the user name alone gives away are no leak."""
    forms = {
        "plain": secret,
        "base64 of the secret": base64.b64encode(secret.encode()).decode(),
        "URL-encoded": urllib.parse.quote(secret, safe=""),
        "URL-encoded (path)": urllib.parse.quote(secret),
        "form-encoded": urllib.parse.quote_plus(secret),
        "JSON-escaped": _json_inner(secret),
        "JSON-escaped (UTF-8)": _json_inner(secret, ascii_only=False),
        "JSON-escaped twice": _json_inner(_json_inner(secret)),
    }
    if user is not None:
        pair = f"{user}:{secret}".encode()
        first = -(-8 * (len(user.encode()) + 1) // 6)  # the first character only the secret sets
        forms["HTTP Basic base64 of user:secret"] = base64.b64encode(pair).decode()[first:]
        forms["HTTP Basic base64 (URL-safe)"] = base64.urlsafe_b64encode(pair).decode()[first:]
    return {name: value.encode() for name, value in forms.items()}


FRAGMENT = 8  # a run of this many characters of a form is a leak (a cut-off quote included)


def fragments(form: bytes) -> set[bytes]:
    if len(form) <= FRAGMENT:
        return {form}
    return {form[i : i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1)}


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def find_forms(
    forms: Mapping[str, bytes], files: Iterable[Path], output: str = ""
) -> list[tuple[str, str]]:
    """(form, where) for each form of which a file's bytes or the captured output hold
    any run of FRAGMENT characters: a whole form, or the part a cut-off quote left."""
    found = []
    places = [(str(path), path.read_bytes()) for path in files]
    places.append(("captured stdout/stderr", output.encode("utf-8", errors="replace")))
    pieces = {name: fragments(form) for name, form in forms.items()}
    for where, data in places:
        found += [(name, where) for name in forms if any(p in data for p in pieces[name])]
    return found


def materialize_hour(
    settings: Settings,
    integration,
    instance: dg.DagsterInstance,
    hour,
    kind: str = "contacts",
    **resources: dg.ConfigurableResource,
) -> dg.ExecuteInProcessResult:
    """Materialize one hourly partition of the integration's asset, as the UI does (the
    asset comes with its resources bound: the source and the warehouse; `resources`
    replaces them by key)."""
    defs = build_definitions(settings, [integration], resources)
    asset = defs.resolve_assets_def(dg.AssetKey([integration.id, kind]))
    return dg.materialize(
        [asset],
        instance=instance,
        partition_key=hour.strftime(KEY_FORMAT),
        raise_on_error=False,
    )
