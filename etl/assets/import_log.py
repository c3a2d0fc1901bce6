"""The import log: which hours of which data kind were imported, when, and with how many rows.

Rows alone cannot tell a hole from an empty hour (a queue without contacts at night, no agent
logged in): the log can. It is written with the data, by the same atomic month-file
replacement, one row per hour (the latest import replaces the previous one), and kept when an
integration is removed, so `coverage` stays true for its data.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from etl.partitions import HOUR, hours
from etl.resources.warehouse import Warehouse, owner_view

if TYPE_CHECKING:
    from etl.assets.facts import FactKind

TABLE = "import_log"


def import_log_frame(
    integration_id: str,
    kind: FactKind,
    start: datetime,
    end: datetime,
    stored: pd.DataFrame,
    rejected: pd.DataFrame,
    imported_at: datetime,
    run_id: str,
) -> pd.DataFrame:
    """One row per hour of [start, end), with the rows written and rejected in that hour."""
    time_column = kind.spec.time_column
    starts = list(hours(start, end))
    index = pd.DatetimeIndex(starts)
    if len(stored) and time_column in stored:
        times = stored[time_column]
        if isinstance(times.dtype, pd.DatetimeTZDtype):  # as validated: no parsing pass
            times = times.dt.tz_convert("UTC")
        else:
            times = pd.to_datetime(times, utc=True)
        written = times.dt.floor("h").value_counts()
    else:
        written = pd.Series(dtype="int64")
    if len(rejected) and "partition_key" in rejected:
        keys = pd.to_datetime(rejected["partition_key"], format="%Y-%m-%d-%H:%M", utc=True)
        bad = keys.value_counts()
    else:
        bad = pd.Series(dtype="int64")
    return pd.DataFrame(
        {
            "integration_id": integration_id,
            "data_kind": kind.name,
            "table_name": kind.spec.name,
            "partition_start": index,
            "imported_at": pd.Timestamp(imported_at),
            "complete": [hour + HOUR <= imported_at for hour in starts],
            "rows_written": written.reindex(index, fill_value=0).astype("int64").to_numpy(),
            "rows_rejected": bad.reindex(index, fill_value=0).astype("int64").to_numpy(),
            "run_id": run_id,
        }
    )


def _owner(integration_id: str, data_kind: str) -> str:
    return f"{integration_id}.{data_kind}"


def log_import(warehouse: Warehouse, frame: pd.DataFrame, start: datetime, end: datetime) -> None:
    """Replace the log of [start, end) for the frame's integration and data kind."""
    if frame.empty:
        return
    owner = _owner(frame["integration_id"].iloc[0], frame["data_kind"].iloc[0])
    warehouse.replace_window(TABLE, owner, start, end, frame)


def import_log_relation(integration_id: str, data_kind: str) -> str:
    """The catalog's view of one integration's log of one data kind, quoted for `imports_of`
    and the coverage macros: reading only it keeps the coverage check's cost independent of
    how many other integrations there are and how much history each of them has."""
    name = owner_view(TABLE, _owner(integration_id, data_kind))
    return '"' + name.replace('"', '""') + '"'


def import_log_view_exists(con, integration_id: str, data_kind: str) -> bool:
    """Whether the catalog has that view: an integration imports before it has a log."""
    name = owner_view(TABLE, _owner(integration_id, data_kind))
    found = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [name])
    return found.fetchone()[0] > 0
