"""Which kind of user identifier each vendor puts in its agent-status data.

Agent-status rows name the agent by a vendor-specific identifier, and employees are matched to
it exactly (case, spelling and spaces count). Knowing the kind lets the employee mapping catch
mistakes before they silently match nobody: a Talkdesk identifier without an '@' never will.

| vendor | identifier |
| --- | --- |
| talkdesk, ujet | email address |
| five9, genesys_cloud, genesys_engage, sikom, mitel (MiVoice Business), avaya_cms | user name |
| amazon_connect (the agent event stream's `Configuration.Username`) | user name |
| genesys_cloud with `user_identifier: email` | email address (`name`, `id`: not checked) |
| vonage | agent id |
| simulator | its `user_identifiers` setting (user name by default) |
| database, csv, api and others | whatever the customer's system uses: not checked |
"""

from __future__ import annotations

import re
from typing import Literal

from etl.config import Integration

IdentifierKind = Literal["email", "user_name", "agent_id", "any"]

IDENTIFIER_KINDS: dict[str, IdentifierKind] = {
    "talkdesk": "email",
    "ujet": "email",
    "five9": "user_name",
    "genesys_cloud": "user_name",
    "genesys_engage": "user_name",
    "sikom": "user_name",
    "mitel": "user_name",
    "avaya_cms": "user_name",
    "amazon_connect": "user_name",
    "simulator": "user_name",
    "vonage": "agent_id",
}
# Vendors whose `source:` setting chooses the identifier: setting -> its values' kinds.
IDENTIFIER_SETTINGS: dict[str, tuple[str, dict[str, IdentifierKind]]] = {
    "simulator": (
        "user_identifiers",
        {"user_name": "user_name", "email": "email", "agent_id": "agent_id"},
    ),
    "genesys_cloud": ("user_identifier", {"username": "user_name", "email": "email"}),
}
GENESYS_USER_FIELDS: dict[str, IdentifierKind] = IDENTIFIER_SETTINGS["genesys_cloud"][1]
KIND_LABELS = {
    "email": "an email address",
    "user_name": "a user name",
    "agent_id": "an agent id",
    "any": "any identifier",
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
AGENT_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def identifier_kind(integration: Integration) -> IdentifierKind:
    """The kind of user identifier this integration's agent-status data carries."""
    if integration.vendor == "simulator":
        return integration.source.get("user_identifiers", "user_name")
    if integration.vendor == "genesys_cloud":  # the user field is a setting there
        field = integration.source.get("user_identifier", "username")
        return GENESYS_USER_FIELDS.get(field, "any")
    return IDENTIFIER_KINDS.get(integration.vendor, "any")


def identifier_problem(value: str, kind: str) -> tuple[bool, str] | None:
    """(fatal, reason) when `value` cannot be, or probably is not, an identifier of `kind`.

    Fatal only where the kind is certain (an email address without '@' can never match);
    anything merely unusual is a warning, since identifiers are matched exactly as written.
    """
    if kind == "email" and not EMAIL.match(value.strip()):
        return True, f"{value!r} is not an email address"
    if kind == "agent_id" and not AGENT_ID.match(value.strip()):
        return False, f"{value!r} does not look like an agent id"
    if value != value.strip():
        return False, (
            f"{value!r} has leading or trailing spaces: it matches only agent-status data "
            "delivered with exactly these spaces"
        )
    return None
