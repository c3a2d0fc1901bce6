"""Agent status data: which state (external activity) each agent was in, from when to when.

Sources deliver segments that may cross hours and may still be open. What is stored is cut
so that every partition owns exactly its rows: each segment is clipped to the imported window
and split at UTC hour boundaries, so re-importing an hour replaces exactly that hour's pieces
and never duplicates a segment. An open segment is stored up to the import time (or the
window end, if earlier) and flagged `is_open`; the next import that covers the hour replaces
it with the longer or closed state.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from etl.assets.facts import FactKind
from etl.config import Integration
from etl.resources.warehouse import Warehouse
from etl.schemas import AGENT_STATUS, OVERLAP_RULE, agent_status_schema, overlapping_segments

STORED_DTYPES = {
    "integration_id": object,
    "user_identifier": object,
    "external_activity": object,
    "start_utc": "datetime64[ns, UTC]",
    "end_utc": "datetime64[ns, UTC]",
    "is_open": bool,
    "segment_start_utc": "datetime64[ns, UTC]",
    "segment_end_utc": "datetime64[ns, UTC]",
}
STORED_COLUMNS = tuple(STORED_DTYPES)
METADATA_LIST_LIMIT = 50


def split_segments(
    frame: pd.DataFrame,
    integration: Integration,
    start: datetime,
    end: datetime,
    imported_at: datetime,
) -> pd.DataFrame:
    """Validated segments -> stored pieces: clipped to [start, end), split at UTC hours.

    Vectorised: each segment is repeated once per hour it touches and each copy is cut to
    its hour. `segment_start_utc` / `segment_end_utc` keep the segment as delivered (end
    empty while open), so the pieces of one segment can be put back together.
    """
    if frame.empty:  # a source may deliver an empty, untyped frame
        return pd.DataFrame({c: pd.Series(dtype=STORED_DTYPES[c]) for c in STORED_COLUMNS})
    window_start, window_end = _naive(pd.Timestamp(start)), _naive(pd.Timestamp(end))
    # An open state is stored up to the import time (whole seconds) or the window end.
    cut = min(window_end, _naive(pd.Timestamp(imported_at).floor("s")))
    hour = np.timedelta64(1, "h")
    segment_start = frame["start_utc"].dt.tz_convert(None).to_numpy()
    segment_end = frame["end_utc"].dt.tz_convert(None).to_numpy()
    is_open = np.isnat(segment_end)
    begins = np.maximum(segment_start, window_start)
    ends = np.minimum(np.where(is_open, cut, segment_end), window_end)
    keep = ends > begins
    source = frame[keep]
    begins, ends, is_open = begins[keep], ends[keep], is_open[keep]
    first_hour = begins.astype("datetime64[h]").astype(begins.dtype)
    pieces = ((ends - first_hour - np.timedelta64(1, "ns")) // hour).astype(np.int64) + 1
    row = np.repeat(np.arange(len(source)), pieces)
    nth = np.arange(len(row)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    hours = first_hour[row] + nth * hour
    piece_start = np.maximum(begins[row], hours)
    piece_end = np.minimum(ends[row], hours + hour)
    return pd.DataFrame(
        {
            "integration_id": source["integration_id"].to_numpy()[row],
            "user_identifier": source["user_identifier"].to_numpy()[row],
            "external_activity": source["external_activity"].to_numpy()[row],
            "start_utc": _utc(piece_start),
            "end_utc": _utc(piece_end),
            # Only the piece whose end is the cut: its end is not a state change.
            "is_open": is_open[row] & (piece_end == ends[row]),
            "segment_start_utc": _utc(segment_start[keep][row]),
            "segment_end_utc": _utc(segment_end[keep][row]),
        },
        columns=list(STORED_COLUMNS),
    )


def _naive(moment: pd.Timestamp) -> np.datetime64:
    return moment.tz_convert("UTC").tz_localize(None).to_datetime64()


def _utc(values: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(values).tz_localize("UTC")


def _mapped(warehouse: Warehouse, name: str, integration_id: str, column: str) -> set[str]:
    path = warehouse.mapping_path(name)
    if path is None:
        return set()
    table = pq.read_table(path, columns=["integration_id", column]).to_pandas()
    return set(table.loc[table["integration_id"] == integration_id, column])


def report_matches(warehouse: Warehouse, integration_id: str, stored: pd.DataFrame) -> dict:
    """Materialization metadata: users matched to no employee and activities mapped to no
    WFM activity (those count as 1, Present), as of the mappings at import time. The views
    `unmatched_users` and `external_activities` always show the current state."""
    users = sorted(set(stored["user_identifier"]))
    known = _mapped(warehouse, "employee_identifiers", integration_id, "user_identifier")
    unmatched = [u for u in users if u not in known]
    activities = sorted(set(stored["external_activity"]))
    mapped = _mapped(warehouse, "activity_mappings", integration_id, "external_activity")
    unmapped = [a for a in activities if a not in mapped]
    return {
        "users": len(users),
        "unmatched_users": len(unmatched),
        "unmatched_user_identifiers": _listing(unmatched),
        "unmapped_external_activities": _listing(unmapped),
        "open_segments": int(stored["is_open"].sum()) if len(stored) else 0,
    }


def _listing(values: list[str]) -> dg.MetadataValue:
    shown = values[:METADATA_LIST_LIMIT]
    more = len(values) - len(shown)
    return dg.MetadataValue.json({"values": shown, "more": more})


AGENT_STATUS_KIND = FactKind(
    name="agent_status",
    spec=AGENT_STATUS,
    schema=lambda integration: agent_status_schema(),
    extract=lambda source, start, end: source.agent_status(start, end),
    description="Agent status segments (user identifier, external activity, start, end), "
    "clipped to the window and split at UTC hours, imported by UTC hour.",
    prepare=split_segments,
    extra_checks=overlapping_segments,
    extra_rules=(OVERLAP_RULE,),
    after_write=report_matches,
)
