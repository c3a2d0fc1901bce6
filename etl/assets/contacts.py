"""Contact data: per queue, channel and interval, offered / answered / abandoned / handle time."""

from __future__ import annotations

import pandas as pd

from etl.assets.facts import FactKind
from etl.config import Integration
from etl.resources.warehouse import Warehouse
from etl.schemas import CONTACTS, contact_schema


def _register_queues(warehouse: Warehouse, integration_id: str, rows: pd.DataFrame) -> dict:
    """Every external queue seen becomes a destination queue (kept forever)."""
    warehouse.register_queues(integration_id, rows)
    return {"queues": int(rows["external_queue_id"].nunique()) if len(rows) else 0}


CONTACTS_KIND = FactKind(
    name="contacts",
    spec=CONTACTS,
    schema=lambda integration: contact_schema(integration.interval_minutes, integration.timezone),
    extract=lambda source, start, end: source.contacts(start, end),
    description="Contact intervals (offered, answered, abandoned, handle time) per external "
    "queue and channel, imported by UTC hour.",
    after_write=_register_queues,
)


def is_contact_integration(integration: Integration) -> bool:
    return "contacts" in integration.data
