"""API keys: one per integration, shown once, stored only as a hash.

A key is 32 random bytes (256 bits) in URL-safe base64 behind the prefix `wfm_`. With that
much entropy a single SHA-256 is as safe against guessing as a slow password hash, and it
keeps every request's check to one indexed lookup. Creating a key for an integration that
has one replaces it, so rotating is creating again: the old key stops working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from etl.ingest.store import LandingStore, to_us

PREFIX = "wfm_"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hint(key: str) -> str:
    """The first characters of a key: enough to tell keys apart, useless to an attacker."""
    return key[: len(PREFIX) + 4] + "..."


def issue_key(store: LandingStore, integration_id: str) -> str:
    """A new key for the integration (replacing any earlier one); the caller shows it once."""
    key = PREFIX + secrets.token_urlsafe(32)
    store.set_key(integration_id, key_hash(key), hint(key), to_us(datetime.now(UTC)))
    return key


def bearer_key(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, if that is what it is."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
