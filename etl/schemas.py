"""Pandera schemas: the one definition of valid data.

Each table's schema is built by a factory because some rules depend on the integration (its
interval grid in its own timezone). The same schemas become Dagster types (shown in the UI)
and the rules listed on the asset checks, and `etl.validation` applies them before any write.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pandas as pd
import pandera.pandas as pa

STRING = pd.StringDtype("pyarrow")  # vectorised checks; object strings are checked per element
CHANNELS = ("calls", "chats", "emails", "tickets", "social", "documents")
INTERVALS = (15, 30, 60)


@dataclass(frozen=True)
class TableSpec:
    """What the validation and warehouse layers need to know about one fact table."""

    name: str
    key: tuple[str, ...]
    time_column: str
    columns: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def all_columns(self) -> tuple[str, ...]:
        return self.columns + self.optional


CONTACTS = TableSpec(
    name="contact_intervals",
    key=("integration_id", "external_queue_id", "channel", "interval_start"),
    time_column="interval_start",
    columns=(
        "integration_id",
        "external_queue_id",
        "channel",
        "interval_start",
        "interval_minutes",
        "offered",
        "answered",
        "abandoned",
        "handle_time_s",
    ),
    optional=("talk_time_s", "hold_time_s", "acw_time_s", "answered_in_sl"),
)


def _on_grid(interval_minutes: int, timezone: str):
    """Interval starts fall on the integration's grid in its own local time (e.g. :30 UTC
    for a 60-minute integration in Asia/Kolkata)."""

    def check(series: pd.Series) -> pd.Series:
        local = series.dt.tz_convert(timezone)
        minutes = local.dt.hour * 60 + local.dt.minute
        return (
            (minutes % interval_minutes == 0) & (local.dt.second == 0) & (local.dt.microsecond == 0)
        )

    return pa.Check(
        check, name="on_interval_grid", error=f"on the {interval_minutes}-minute local grid"
    )


def _count(nullable: bool = False) -> pa.Column:
    return pa.Column("int64", pa.Check.ge(0, error=">= 0"), nullable=nullable)


def _seconds(nullable: bool = False) -> pa.Column:
    return pa.Column(
        "float64",
        [pa.Check.ge(0, error=">= 0"), pa.Check.lt(float("inf"), error="finite")],
        nullable=nullable,
    )


@cache
def contact_schema(interval_minutes: int = 15, timezone: str = "UTC") -> pa.DataFrameSchema:
    """Canonical contact rows: sums and counts per queue, channel and interval, never averages."""
    optional = {name: _seconds(nullable=True) for name in ("talk_time_s", "hold_time_s")}
    optional["acw_time_s"] = _seconds(nullable=True)
    optional["answered_in_sl"] = _count(nullable=True)
    for column in optional.values():
        column.required = False
    return pa.DataFrameSchema(
        name="contact_intervals",
        columns={
            "integration_id": pa.Column(
                STRING, pa.Check.str_length(min_value=1, error="not empty")
            ),
            "external_queue_id": pa.Column(
                STRING, pa.Check.str_length(min_value=1, error="not empty")
            ),
            "channel": pa.Column(
                STRING, pa.Check.isin(CHANNELS, error=f"one of {', '.join(CHANNELS)}")
            ),
            "interval_start": pa.Column(
                "datetime64[ns, UTC]", _on_grid(interval_minutes, timezone)
            ),
            "interval_minutes": pa.Column(
                "int64",
                pa.Check.isin(
                    [interval_minutes], error=f"the integration's interval ({interval_minutes})"
                ),
            ),
            "offered": _count(),
            "answered": _count(),
            "abandoned": _count(),
            "handle_time_s": _seconds(),
            **optional,
        },
        checks=[
            pa.Check(
                lambda df: df["answered"] <= df["offered"],
                name="answered_le_offered",
                error="answered <= offered",
            ),
            pa.Check(
                lambda df: df["abandoned"] <= df["offered"] - df["answered"],
                name="abandoned_le_unanswered",
                error="abandoned <= offered - answered",
            ),
            pa.Check(
                lambda df: (
                    df["answered_in_sl"].isna() | (df["answered_in_sl"] <= df["answered"])
                    if "answered_in_sl" in df
                    else pd.Series(True, index=df.index)
                ),
                name="answered_in_sl_le_answered",
                error="answered_in_sl <= answered",
            ),
        ],
        strict=False,
        coerce=False,
        description="One row per integration, external queue, channel and interval start (UTC).",
    )


def rules_of(schema: pa.DataFrameSchema) -> list[str]:
    """Human-readable rules of a schema, for asset-check descriptions and docs."""
    rules = []
    for name, column in schema.columns.items():
        rules.append(f"{name}: {column.dtype}{'' if column.nullable else ', not null'}")
        rules += [f"{name}: {check.error or check.name}" for check in column.checks]
    rules += [check.error or check.name for check in schema.checks]
    return rules


QUEUE_MAPPINGS_SCHEMA = pa.DataFrameSchema(
    name="queue_mappings",
    columns={
        "integration_id": pa.Column(str, pa.Check.str_length(min_value=1, error="not empty")),
        "external_queue_id": pa.Column(str, pa.Check.str_length(min_value=1, error="not empty")),
        "destination_queue": pa.Column(str, pa.Check.str_length(min_value=1, error="not empty")),
    },
    unique=["integration_id", "external_queue_id"],
    strict=True,
)

WORKLOADS_SCHEMA = pa.DataFrameSchema(
    name="workloads",
    columns={
        "workload": pa.Column(str, pa.Check.str_length(min_value=1, error="not empty")),
        "destination_queue": pa.Column(str, pa.Check.str_length(min_value=1, error="not empty")),
    },
    unique=["workload", "destination_queue"],
    strict=True,
)
