"""The import log: which hours of which data kind were imported, when, and with how many rows.

Rows alone cannot tell a hole from an empty hour (a queue without contacts at night, no agent
logged in): the log can. It is written with the data, by the same atomic month-file
replacement, one row per hour (the latest import replaces the previous one), and kept when an
integration is removed, so `coverage` stays true for its data.

An hour whose import failed keeps the row of its last successful import (the data it still
holds) and gains the failure: when, why, and how many attempts in a row failed the same way
under the same configuration. That count is what stops the retries (`is_stopped`), and the
rows written are what tells a source that suddenly delivers nothing from an empty hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from etl.config import Integration
from etl.partitions import HOUR, hours
from etl.resources.sources.plumbing.redaction import redact_active
from etl.resources.warehouse import Warehouse, owner_view
from etl.windows import Window, normalize

if TYPE_CHECKING:
    from etl.assets.facts import FactKind

TABLE = "import_log"
# Attempts that failed the same way (same reason, same configuration) before the gap sensor
# and the schedule stop requesting an hour (docs/operations.md, "Hours that keep failing").
MAX_IDENTICAL_FAILURES = 3
KEY_FORMAT = "%Y-%m-%d-%H:%M"


@dataclass(frozen=True)
class HourLog:
    """What the log holds for one hour before an import: the last successful import's rows
    and the failure streak since."""

    rows_written: int
    failure: str | None
    failures: int
    failure_config: str | None


HOUR_NS = 3_600_000_000_000
# Hours between a window's first and last row up to which they are counted by position (a
# multi-year window of agent segments is a few tens of thousands); beyond, by sorting.
COUNTED_BY_POSITION = 10_000_000


def hour_counts(times: pd.Series, lower: datetime | None = None) -> pd.Series:
    """Rows per UTC hour their time falls in (index: the hours that have rows, ascending),
    times before `lower` counted in its hour; missing times not counted. Counted on the
    integers: pandas' floor to the hour and value count took 4% of a month's import
    (bench/analysis.md)."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):  # as validated: no parsing pass
        times = times.dt.tz_convert("UTC")
    else:
        times = pd.to_datetime(times, utc=True)
    nanos = times.astype("datetime64[ns, UTC]", copy=False).array.asi8
    nanos = nanos[nanos != np.iinfo(np.int64).min]  # NaT
    if lower is not None:
        nanos = np.maximum(nanos, pd.Timestamp(lower).as_unit("ns").value)
    if not len(nanos):
        return pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype="int64")
    numbers = nanos // HOUR_NS
    first = numbers.min()
    if numbers.max() - first < COUNTED_BY_POSITION:
        counts = np.bincount(numbers - first)
        found = np.flatnonzero(counts)
        hours_found, counts = found + first, counts[found]
    else:
        hours_found, counts = np.unique(numbers, return_counts=True)
    index = pd.DatetimeIndex(hours_found * HOUR_NS, tz="UTC")
    return pd.Series(counts.astype("int64"), index=index)


def _per_hour(times: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    if times.empty:
        return pd.Series(0, index=index, dtype="int64")
    return hour_counts(times).reindex(index, fill_value=0).astype("int64")


def _per_key(frame: pd.DataFrame | None, index: pd.DatetimeIndex) -> pd.Series:
    """Rows per hour of a frame with `partition_key` (the quarantine, the duplicates)."""
    if frame is None or frame.empty or "partition_key" not in frame:
        return pd.Series(0, index=index, dtype="int64")
    keys = pd.to_datetime(frame["partition_key"], format=KEY_FORMAT, utc=True)
    return keys.value_counts().reindex(index, fill_value=0).astype("int64")


def rows_per_hour(
    kind: FactKind, stored: pd.DataFrame, start: datetime, end: datetime
) -> pd.Series:
    """Stored rows per hour of [start, end) (for segments: the pieces each hour owns)."""
    index = pd.DatetimeIndex(list(hours(start, end)))
    column = kind.spec.time_column
    times = stored[column] if len(stored) and column in stored else pd.Series(dtype=object)
    return _per_hour(times, index)


def import_log_frame(
    integration_id: str,
    kind: FactKind,
    start: datetime,
    end: datetime,
    stored: pd.DataFrame,
    rejected: pd.DataFrame,
    imported_at: datetime,
    run_id: str,
    duplicates: pd.DataFrame | None = None,
    written: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per hour of [start, end), with the rows written, rejected and dropped as exact
    duplicates in that hour; no failure. `written`: `rows_per_hour` of `stored`, when the
    caller has counted them already."""
    starts = list(hours(start, end))
    index = pd.DatetimeIndex(starts)
    return pd.DataFrame(
        {
            "integration_id": integration_id,
            "data_kind": kind.name,
            "table_name": kind.spec.name,
            "partition_start": index,
            "imported_at": pd.Timestamp(imported_at),
            "complete": [hour + HOUR <= imported_at for hour in starts],
            "rows_written": (
                rows_per_hour(kind, stored, start, end) if written is None else written
            ).to_numpy(),
            "rows_rejected": _per_key(rejected, index).to_numpy(),
            "rows_duplicate": _per_key(duplicates, index).to_numpy(),
            "run_id": run_id,
            "failed_at": pd.Series(pd.NaT, index=range(len(starts)), dtype="datetime64[ns, UTC]"),
            "failure": pd.Series(None, index=range(len(starts)), dtype=object),
            "failures": 0,
            "failure_config": pd.Series(None, index=range(len(starts)), dtype=object),
        }
    )


def _owner(integration_id: str, data_kind: str) -> str:
    return f"{integration_id}.{data_kind}"


def read_log(
    warehouse: Warehouse, integration_id: str, data_kind: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """The log rows of [start, end), straight from the warehouse (one per hour imported or
    failed; hours never tried have none)."""
    frame = warehouse.read_window(TABLE, _owner(integration_id, data_kind), start, end)
    if "partition_start" in frame:
        frame["partition_start"] = pd.to_datetime(frame["partition_start"], utc=True)
    return frame


def hours_logged(log: pd.DataFrame) -> dict[datetime, HourLog]:
    """The log rows by hour, as `HourLog`."""
    if log.empty:
        return {}
    found = {}
    for row in log.itertuples(index=False):
        failures = getattr(row, "failures", 0)
        found[pd.Timestamp(row.partition_start).to_pydatetime()] = HourLog(
            rows_written=int(row.rows_written) if pd.notna(row.rows_written) else 0,
            failure=getattr(row, "failure", None) or None,
            failures=int(failures) if pd.notna(failures) else 0,
            failure_config=getattr(row, "failure_config", None) or None,
        )
    return found


def with_failures(
    fresh: pd.DataFrame,
    before: pd.DataFrame,
    failed: Mapping[datetime, str],
    failed_at: datetime,
    config: str,
) -> pd.DataFrame:
    """The log to write for a window: `fresh` rows for the hours that loaded; for each failed
    hour its row from `before` (the last successful import, or empty values if none) with the
    failure added, counted on from the earlier streak when it failed the same way under the
    same configuration."""
    if not failed:
        return fresh
    earlier = hours_logged(before)
    previous = before.set_index("partition_start") if not before.empty else None
    rows = []
    for row in fresh.to_dict(orient="records"):
        hour = pd.Timestamp(row["partition_start"]).to_pydatetime()
        reason = failed.get(hour)
        if reason is None:
            rows.append(row)
            continue
        reason = redact_active(reason)  # kept in the warehouse: never a secret, in any form
        kept = {**row, "imported_at": pd.NaT, "complete": None, "rows_written": 0}
        kept.update(rows_rejected=0, rows_duplicate=0, run_id=None)
        if previous is not None and pd.Timestamp(hour) in previous.index:
            old = previous.loc[pd.Timestamp(hour)]
            for column in ("imported_at", "complete", "rows_written", "rows_rejected", "run_id"):
                kept[column] = old[column]
            kept["rows_duplicate"] = old.get("rows_duplicate", 0)
        streak = earlier.get(hour)
        same = streak is not None and streak.failure == reason and streak.failure_config == config
        kept.update(
            failed_at=pd.Timestamp(failed_at),
            failure=reason,
            failures=(streak.failures + 1) if same else 1,
            failure_config=config,
        )
        rows.append(kept)
    frame = pd.DataFrame(rows, columns=fresh.columns)
    frame["rows_duplicate"] = frame["rows_duplicate"].fillna(0).astype("int64")
    return frame


def log_import(warehouse: Warehouse, frame: pd.DataFrame, start: datetime, end: datetime) -> None:
    """Replace the log of [start, end) for the frame's integration and data kind."""
    if frame.empty:
        return
    owner = _owner(frame["integration_id"].iloc[0], frame["data_kind"].iloc[0])
    warehouse.replace_window(TABLE, owner, start, end, frame)


@dataclass(frozen=True)
class StoppedHours:
    """Hours no longer retried: each failed `failures` times in a row with `reason`."""

    window: Window
    reason: str
    failures: int

    def __str__(self) -> str:
        start, end = self.window
        hours_ = int((end - start) / HOUR)
        span = f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC" + (
            f" ({hours_} hours)" if hours_ > 1 else ""
        )
        return f"{span}: failed {self.failures} times: {self.reason}"


def stopped_in(log: pd.DataFrame, integration: Integration) -> list[StoppedHours]:
    """The stretches of hours in `log` that failed MAX_IDENTICAL_FAILURES times the same way
    under the integration's current configuration (a changed configuration retries them)."""
    if log.empty or "failures" not in log:
        return []
    hit = log[
        (log["failures"].fillna(0) >= MAX_IDENTICAL_FAILURES)
        & (log["failure_config"] == integration.fingerprint)
    ].sort_values("partition_start")
    found: list[StoppedHours] = []
    for row in hit.itertuples(index=False):
        hour = pd.Timestamp(row.partition_start).to_pydatetime()
        last = found[-1] if found else None
        if last and last.window[1] == hour and last.reason == row.failure:
            found[-1] = StoppedHours(
                (last.window[0], hour + HOUR), last.reason, min(last.failures, int(row.failures))
            )
        else:
            found.append(StoppedHours((hour, hour + HOUR), row.failure, int(row.failures)))
    return found


def stopped_hours(
    warehouse: Warehouse, integration: Integration, data_kind: str, windows: Iterable[Window]
) -> list[StoppedHours]:
    """The stopped hours of one data kind within `windows` (read from the log of those
    windows only: the gap sensor passes the hours Dagster has as failed)."""
    found: list[StoppedHours] = []
    for start, end in normalize(windows):
        found += stopped_in(read_log(warehouse, integration.id, data_kind, start, end), integration)
    return found


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
