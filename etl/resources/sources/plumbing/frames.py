"""Canonical frames the vendor sources build: contact rows, agent-status segments, and the
rows a source could not read (which go to the quarantine with the validation rejects).

One place for the column lists and types, so every vendor hands the asset the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from etl.resources.sources.base import Extract

COUNTS = ("offered", "answered", "abandoned")
SECONDS = ("handle_time_s", "talk_time_s", "hold_time_s", "acw_time_s")
OPTIONAL = ("talk_time_s", "hold_time_s", "acw_time_s", "answered_in_sl")
KEY = ("external_queue_id", "channel", "interval_start")
STATUS_COLUMNS = (
    "integration_id",
    "user_identifier",
    "external_activity",
    "start_utc",
    "end_utc",
    "source_ref",
)


def known_channels(value: dict[str, str]) -> dict[str, str]:
    """A vendor's `<vendor value> -> channel` setting, checked: every target is a canonical
    channel (for the settings models' validators)."""
    from etl.schemas import CHANNELS

    bad = sorted(f"{k}: {v}" for k, v in value.items() if v not in CHANNELS)
    if bad:
        raise ValueError(f"unknown channel(s) {', '.join(bad)} (use {', '.join(CHANNELS)})")
    return value


def empty_contacts() -> pd.DataFrame:
    """No contact rows, typed (an untyped empty frame trips the time arithmetic downstream)."""
    return pd.DataFrame(
        {
            "integration_id": pd.Series(dtype=object),
            "external_queue_id": pd.Series(dtype=object),
            "channel": pd.Series(dtype=object),
            "interval_start": pd.Series(dtype="datetime64[ns, UTC]"),
            "interval_minutes": pd.Series(dtype="int64"),
            **{c: pd.Series(dtype="int64") for c in COUNTS},
            "handle_time_s": pd.Series(dtype="float64"),
        }
    )


def contact_rows(
    records: Iterable[Mapping[str, Any]], integration_id: str, interval_minutes: int, label: str
) -> pd.DataFrame:
    """Sum vendor records into one canonical row per queue, channel and interval.

    Several vendor records can land on one key (Genesys `voice` and `callback` are both
    calls); counts and seconds add up exactly, which is why only sums are stored.
    Optional measures stay null for a key when no record carried them.
    """
    frame = pd.DataFrame(list(records))
    if frame.empty:
        return empty_contacts()
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    measures = [c for c in (*COUNTS, *SECONDS, "answered_in_sl") if c in frame.columns]
    summed = frame.groupby(list(KEY), sort=True)[measures].sum(min_count=1).reset_index()
    for column in COUNTS:
        summed[column] = summed[column].fillna(0).round().astype("int64")
    summed["handle_time_s"] = summed["handle_time_s"].fillna(0.0).astype("float64")
    if "answered_in_sl" in summed:
        summed["answered_in_sl"] = summed["answered_in_sl"].round().astype("Int64")
    summed.insert(0, "integration_id", integration_id)
    summed.insert(4, "interval_minutes", interval_minutes)
    summed["source_ref"] = [
        f"{label} {queue} {channel} {start:%Y-%m-%dT%H:%MZ}"
        for queue, channel, start in zip(
            summed["external_queue_id"], summed["channel"], summed["interval_start"], strict=True
        )
    ]
    return summed


def status_rows(records: Iterable[Mapping[str, Any]], integration_id: str) -> pd.DataFrame:
    """Agent-status segments in the canonical shape; `end_utc` is NaT for an open segment.
    Identifiers are kept exactly as the vendor sent them; extra columns are kept too."""
    frame = pd.DataFrame(list(records))
    extra = [c for c in frame.columns if c not in STATUS_COLUMNS]
    frame = frame.reindex(columns=[*STATUS_COLUMNS[1:], *extra])
    frame.insert(0, "integration_id", integration_id)
    frame["user_identifier"] = frame["user_identifier"].astype(object)
    frame["start_utc"] = pd.to_datetime(frame["start_utc"], utc=True)
    frame["end_utc"] = pd.to_datetime(frame["end_utc"], utc=True)
    return frame.sort_values(["user_identifier", "start_utc"], kind="stable").reset_index(drop=True)


def overlapping(frame: pd.DataFrame, start, end) -> pd.DataFrame:
    """Segments that overlap [start, end): what `agent_status(start, end)` must return."""
    if frame.empty:
        return frame
    begin, stop = pd.Timestamp(start), pd.Timestamp(end)
    keep = (frame["start_utc"] < stop) & (frame["end_utc"].isna() | (frame["end_utc"] > begin))
    return frame[keep].reset_index(drop=True)


def rejected_rows(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows the source could not read: source_ref, row_json (as delivered), rules, and the
    UTC time they belong to when known (`partition_time`)."""
    rows = [
        {
            "source_ref": r["source_ref"],
            "row_json": r["row"]
            if isinstance(r["row"], str)
            else json.dumps(r["row"], default=str),
            "rules": list(r["rules"]),
            "partition_time": r.get("partition_time"),
        }
        for r in records
    ]
    frame = pd.DataFrame(rows, columns=["source_ref", "row_json", "rules", "partition_time"])
    frame["partition_time"] = pd.to_datetime(frame["partition_time"], utc=True)
    return frame


def extract(frame: pd.DataFrame, rejected: list[dict], description: str) -> Extract:
    return Extract(frame=frame, rejected=rejected_rows(rejected), description=description)
