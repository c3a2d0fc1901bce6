"""Pandera schemas: the one definition of valid data.

Each table's schema is built by a factory because some rules depend on the integration (its
interval grid in its own timezone). The same schemas become Dagster types (shown in the UI)
and the rules listed on the asset checks, and `etl.validation` applies them before any write.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.dtypes import DataType
from pandera.engines import pandas_engine

STRING = pd.StringDtype("pyarrow")  # vectorised checks; object strings are checked per element


class _StringColumn(pandas_engine.STRING):
    """pandera's string[pyarrow] column type, answering for the whole column when every value
    has the type. pandera 0.35 answers per element, and then formats an empty table of failure
    cases into a message for every string column it checks, passing or not: a third of a
    millisecond a column, a tenth of validating a pushed batch of 10 records."""

    def check(
        self, pandera_dtype: DataType, data_container: pd.Series | None = None
    ) -> bool | np.ndarray:
        result = super().check(pandera_dtype, data_container)
        if isinstance(result, np.ndarray) and result.all():
            return True
        return result


TEXT = _StringColumn(storage="pyarrow")  # the schemas' string columns (of type STRING)
CHANNELS = ("calls", "chats", "emails", "tickets", "social", "documents")
INTERVALS = (15, 30, 60)
DAY_NS = 24 * 3600 * 10**9
# Characters that show as nothing: spaces, no-break spaces, zero-width ones, the byte-order
# mark, soft hyphens. An identifier of only these is blank; one with them around it or inside
# it is kept as delivered but warned about (it is a queue or user of its own).
SPACES = " \t\n\r\f\v\u00a0\u2007\u202f\u3000"
ZERO_WIDTH = "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
INVISIBLE = SPACES + ZERO_WIDTH
BLANK = f"^[{INVISIBLE}]*$"
ODD_IDENTIFIER = f"^[{INVISIBLE}]|[{INVISIBLE}]$|[{ZERO_WIDTH}]"


def visible(value: str) -> str:
    """What a reader sees of an identifier: without zero-width characters and outer spaces."""
    return value.translate(dict.fromkeys(map(ord, ZERO_WIDTH))).strip(SPACES)


@dataclass(frozen=True)
class TableSpec:
    """What the validation and warehouse layers need to know about one fact table."""

    name: str
    key: tuple[str, ...]
    time_column: str
    columns: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # For spans (agent-status segments): the column holding the end (null = still open). A
    # span belongs to a window when it overlaps it, not when it starts inside it.
    end_column: str | None = None

    @property
    def all_columns(self) -> tuple[str, ...]:
        return self.columns + self.optional

    @property
    def identifier_columns(self) -> tuple[str, ...]:
        """The text columns naming things (a queue, a user, an activity): what the views join
        mappings on, so stray spaces in them matter."""
        return tuple(c for c in dict.fromkeys(self.key + self.columns) if c in IDENTIFIERS)


IDENTIFIERS = ("external_queue_id", "user_identifier", "external_activity")


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

    step = interval_minutes * 60 * 10**9

    def check(series: pd.Series) -> pd.Series:
        # On the wall clock's nanoseconds since midnight, in one pass instead of one per field:
        # less than a microsecond past a multiple of the interval is minutes on the grid with
        # no seconds and no microseconds.
        wall = series.dt.tz_convert(timezone).dt.tz_localize(None).to_numpy("datetime64[ns]")
        since_midnight = wall.view("i8") % DAY_NS
        return pd.Series((since_midnight % step < 1000) & ~np.isnat(wall), index=series.index)

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
            "integration_id": pa.Column(TEXT, pa.Check.str_length(min_value=1, error="not empty")),
            "external_queue_id": _text("external_queue_id", TEXT),
            "channel": pa.Column(
                TEXT, pa.Check.isin(CHANNELS, error=f"one of {', '.join(CHANNELS)}")
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


# -- agent status ---------------------------------------------------------------------------

AGENT_STATUS = TableSpec(
    name="agent_status_segments",
    key=("integration_id", "user_identifier", "start_utc"),
    time_column="start_utc",
    end_column="end_utc",
    columns=("integration_id", "user_identifier", "external_activity", "start_utc", "end_utc"),
)
OVERLAP_RULE = (
    "overlapping_segment: overlaps another segment of the same user_identifier in this window "
    "(an agent is in one state at a time)"
)


def _not_blank(what: str) -> pa.Check:
    """Not only spaces or invisible characters. Values are otherwise kept exactly as
    delivered: ' Anna.Smith' and 'anna.smith' are users of their own, never trimmed or
    case-folded into 'Anna.Smith' (the import warns about the spaces)."""
    return pa.Check(
        lambda series: ~series.str.fullmatch(BLANK).fillna(False).astype(bool),
        name=f"{what}_not_blank",
        error="not blank (spaces or invisible characters only)",
    )


def _text(what: str, dtype: object = str) -> pa.Column:
    checks = [pa.Check.str_length(min_value=1, error="not empty"), _not_blank(what)]
    return pa.Column(dtype, checks)


@cache
def agent_status_schema() -> pa.DataFrameSchema:
    """Canonical agent-status segments as a source delivers them: one row per user and state.

    `end_utc` is empty while the agent is still in the state. Overlaps between segments of the
    same user need the whole window and are checked by `overlapping_segments`.
    """
    return pa.DataFrameSchema(
        name="agent_status_segments",
        columns={
            "integration_id": pa.Column(TEXT, pa.Check.str_length(min_value=1, error="not empty")),
            "user_identifier": _text("user_identifier", TEXT),
            "external_activity": _text("external_activity", TEXT),
            "start_utc": pa.Column("datetime64[ns, UTC]"),
            "end_utc": pa.Column("datetime64[ns, UTC]", nullable=True),
        },
        checks=[
            pa.Check(
                lambda df: df["end_utc"].isna() | (df["end_utc"] > df["start_utc"]),
                name="end_after_start",
                error="end_utc after start_utc (empty while the agent is still in the state)",
            ),
        ],
        strict=False,
        coerce=False,
        description="One row per integration, user identifier and segment start (UTC); "
        "segments of one user do not overlap.",
    )


def overlapping_segments(frame: pd.DataFrame) -> pd.Series:
    """`OVERLAP_RULE` for every row that overlaps another segment of the same user.

    Vectorised: sorted by user and start, a row overlaps an earlier one when it starts before
    the latest end seen so far for that user, and a later one when the next start comes
    before its own end. An open segment (no end) reaches to the end of time. Exact copies are
    left to the duplicate-key rule (they are kept once), so they do not count as overlaps.
    """
    if frame.empty:
        return pd.Series(dtype=object)
    values = ["integration_id", "user_identifier", "external_activity", "start_utc", "end_utc"]
    copies = frame.duplicated(values, keep="first")
    rows = frame.loc[~copies, values].sort_values(
        ["integration_id", "user_identifier", "start_utc"]
    )
    ends = rows["end_utc"].fillna(pd.Timestamp.max.tz_localize("UTC"))
    ids = rows["integration_id"].to_numpy(dtype=object)
    users = rows["user_identifier"].to_numpy(dtype=object)
    same_as_prev = np.r_[False, (ids[1:] == ids[:-1]) & (users[1:] == users[:-1])]
    same_as_next = np.r_[same_as_prev[1:], False]
    user_number = np.cumsum(~same_as_prev)
    latest_end_before = ends.groupby(user_number).cummax().shift()
    overlaps_earlier = same_as_prev & (rows["start_utc"] < latest_end_before).to_numpy()
    overlaps_later = same_as_next & (rows["start_utc"].shift(-1) < ends).to_numpy()
    bad = rows[overlaps_earlier | overlaps_later]
    if bad.empty:
        return pd.Series(dtype=object)
    # Exact copies of an overlapping row carry the rule too.
    flagged = pd.MultiIndex.from_frame(frame[values]).isin(pd.MultiIndex.from_frame(bad[values]))
    index = frame.index[flagged]
    return pd.Series([[OVERLAP_RULE]] * len(index), index=index, dtype=object)


# -- agent mappings (employees and activities) -------------------------------------------------

PRESENT_ACTIVITY_ID = 1  # an unmapped external activity counts as activity 1, "Present"

EMPLOYEES_SCHEMA = pa.DataFrameSchema(
    name="employees",
    columns={"employee_id": _text("employee_id"), "name": _text("name")},
    unique=["employee_id"],
    strict=True,
)

EMPLOYEE_IDENTIFIERS_SCHEMA = pa.DataFrameSchema(
    name="employee_identifiers",
    columns={
        "employee_id": _text("employee_id"),
        "integration_id": _text("integration_id"),
        "external_employee_id": pa.Column(str),
        "user_identifier": _text("user_identifier"),
    },
    unique=["integration_id", "user_identifier"],
    strict=True,
)

ACTIVITIES_SCHEMA = pa.DataFrameSchema(
    name="activities",
    columns={
        "activity_id": pa.Column("int64", pa.Check.ge(1, error=">= 1"), coerce=True),
        "name": _text("name"),
    },
    unique=["activity_id"],
    strict=True,
)

ACTIVITY_MAPPINGS_SCHEMA = pa.DataFrameSchema(
    name="activity_mappings",
    columns={
        "integration_id": _text("integration_id"),
        "external_activity": _text("external_activity"),
        "activity_id": pa.Column("int64", pa.Check.ge(1, error=">= 1"), coerce=True),
        "classification": pa.Column(str),
    },
    unique=["integration_id", "external_activity"],
    strict=True,
)
