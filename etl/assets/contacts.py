"""Contact data: per queue, channel and interval, offered / answered / abandoned / handle time."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from etl.assets.facts import FactKind
from etl.config import Integration
from etl.resources.warehouse import Warehouse
from etl.schemas import CONTACTS, contact_schema


def _register_queues(warehouse: Warehouse, integration_id: str, rows: pd.DataFrame) -> dict:
    """Every external queue seen becomes a destination queue (kept forever)."""
    warehouse.register_queues(integration_id, rows)
    return {"queues": int(rows["external_queue_id"].nunique()) if len(rows) else 0}


def _with_local_time(
    rows: pd.DataFrame, integration: Integration, start: datetime, end: datetime, now: datetime
) -> pd.DataFrame:
    """Store the local interval start beside the UTC one: analysts' roll-ups by local hour and
    day then read a plain timestamp instead of converting every row at query time."""
    local = rows["interval_start"].dt.tz_convert(integration.timezone).dt.tz_localize(None)
    rows = rows.copy(deep=False)  # one new column; `assign` would copy every other one
    rows["interval_start_local"] = local
    return rows


CONTACTS_KIND = FactKind(
    name="contacts",
    spec=CONTACTS,
    schema=lambda integration: contact_schema(integration.interval_minutes, integration.timezone),
    extract=lambda source, start, end: source.contacts(start, end),
    description="Contact intervals (offered, answered, abandoned, handle time) per external "
    "queue and channel, imported by UTC hour.",
    prepare=_with_local_time,
    after_write=_register_queues,
)
