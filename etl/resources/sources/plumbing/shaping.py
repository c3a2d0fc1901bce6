"""From delivered rows to canonical frames: the value formats the universal sources share.

The CSV and database sources deliver columns named and formatted the customer's way. This
module maps them to canonical fields (a column map, channel names as the source spells them),
parses values (numbers with a decimal comma, durations in seconds, milliseconds or HH:MM:SS,
times as ISO with offset, UTC, local wall-clock or epoch seconds), turns averages into sums,
and resolves local times at DST changes. A row it cannot read is returned as a reject with
every rule it broke and the partition it belongs to, so it reaches the quarantine and counts
against the rejected-share threshold of the right hour; everything else (answered <= offered,
whole numbers, the interval grid, ...) is left to the pandera schema.

Values are parsed with pyarrow compute kernels on whole columns: a source may deliver years of
rows, and per-row Python would dominate the import. For the same reason the text that keys a
contact row (queue, channel, the row's reference) stays Arrow-backed, the string type that
validation and the warehouse use, and times given as text are parsed once per distinct value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property
from typing import Any, Literal, NamedTuple

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ConfigDict, Field, field_validator, model_validator

from etl.resources.sources.base import SourceError
from etl.schemas import CHANNELS
from etl.validation import SOURCE_FIELD_PREFIX

TimeMode = Literal["iso", "utc", "local", "epoch"]
DurationUnit = Literal["s", "ms", "hms"]
AmbiguousTimes = Literal["reject", "offset", "order"]
MissingPolicy = Literal["raise", "reject"]

NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
HMS_RE = r"^(?P<h>\d+):(?P<m>[0-5]?\d):(?P<s>[0-5]?\d(?:[.,]\d+)?)$"
HAS_OFFSET_RE = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
OFFSET_RE = r"^(?:(?P<z>[zZ])|(?P<sign>[+-])(?P<h>\d{2}):?(?P<m>\d{2})?)$"
CLOCK_ONLY_MINUTES_RE = r"^\d{1,2}:\d{2}$"

# Canonical input fields: what a column map may point at. Durations are in `duration_unit`.
CONTACT_FIELDS = {
    "external_queue_id": "text",
    "channel": "text",
    "interval_start": "time",
    "interval_date": "date",
    "interval_time": "clock",
    "utc_offset": "offset",
    "interval_minutes": "number",
    "offered": "number",
    "answered": "number",
    "abandoned": "number",
    "handle_time": "duration",
    "talk_time": "duration",
    "hold_time": "duration",
    "acw_time": "duration",
    "answered_in_sl": "number",
}
AGENT_FIELDS = {
    "user_identifier": "text",
    "external_activity": "text",
    "start": "time",
    "start_date": "date",
    "start_time": "clock",
    "start_offset": "offset",
    "end": "time",
    "end_date": "date",
    "end_time": "clock",
    "end_offset": "offset",
    "duration": "duration",
}
CONTACT_VALUES = ("offered", "answered", "abandoned", "handle_time")
OPTIONAL_DURATIONS = {
    "talk_time": "talk_time_s",
    "hold_time": "hold_time_s",
    "acw_time": "acw_time_s",
}
REJECT_COLUMNS = ("source_ref", "row_json", "rules", "partition_time")
# The key of a row, kept on rejects too (as key_<column>) so that a newer delivery of the same
# key can supersede a rejected row as well as a good one.
KEYS = {
    "contacts": ("external_queue_id", "channel", "interval_start"),
    "agent_status": ("user_identifier", "start_utc"),
}


class StrictConfig(dg.Config):
    """Config sections that refuse unknown keys: a typo must fail loading, not be ignored."""

    model_config = ConfigDict(extra="forbid")


class ValueFormat(StrictConfig):
    """How values are written, for sources that deliver text or loosely typed columns."""

    time: TimeMode = Field(
        default="iso",
        description="iso: text with a UTC offset; utc: timestamps without offset, in UTC; "
        "local: wall-clock time in the integration's timezone; epoch: seconds since 1970 UTC.",
    )
    datetime_format: str | None = Field(
        default=None, description="strptime format of one-column times; default: ISO 8601."
    )
    date_format: str = "%Y-%m-%d"
    time_format: str | None = Field(
        default=None, description="strptime format of a time-of-day column; default HH:MM[:SS]."
    )
    duration_unit: DurationUnit = "s"
    decimal: str = Field(default=".", min_length=1, max_length=1)
    thousands: str | None = Field(default=None, min_length=1, max_length=1)
    ambiguous_times: AmbiguousTimes = Field(
        default="reject",
        description="A local time that occurs twice (DST fall-back): reject it, take the UTC "
        "offset from the offset column, or take file/result order (first = summer time).",
    )

    @model_validator(mode="after")
    def _separators_differ(self) -> ValueFormat:
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError("thousands and decimal separators must differ")
        return self


class ContactMapping(StrictConfig):
    """Which delivered column holds which contact field, and how channels are spelled."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="delivered column name -> canonical field; unmapped fields are looked up "
        "under their own name.",
    )
    channels: dict[str, str] = Field(
        default_factory=dict, description="channel as the source spells it -> canonical channel"
    )
    channel: str | None = Field(
        default=None, description="channel of every row when the data has no channel column"
    )
    averages: bool = Field(
        default=False,
        description="durations are averages per answered contact (AHT); sums are derived as "
        "average x answered.",
    )

    @model_validator(mode="after")
    def _known_targets(self) -> ContactMapping:
        _check_targets(self.columns, CONTACT_FIELDS)
        wrong = sorted({v for v in self.channels.values() if v not in CHANNELS})
        if self.channel is not None and self.channel not in CHANNELS:
            wrong.append(self.channel)
        if wrong:
            raise ValueError(
                f"unknown channel(s) {', '.join(wrong)} (channels are {', '.join(CHANNELS)})"
            )
        return self


class AgentStatusMapping(StrictConfig):
    """Which delivered column holds which agent-status field."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="delivered column name -> canonical field; unmapped fields are looked up "
        "under their own name.",
    )

    @field_validator("columns")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        _check_targets(value, AGENT_FIELDS)
        return value


def _check_targets(columns: dict[str, str], fields: dict[str, str]) -> None:
    unknown = sorted({v for v in columns.values() if v not in fields})
    if unknown:
        raise ValueError(
            f"column map points at unknown field(s) {', '.join(unknown)} "
            f"(fields: {', '.join(fields)})"
        )
    targets = list(columns.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ValueError(f"column map points two columns at {', '.join(twice)}")


class ColumnsError(ValueError):
    """Delivered columns do not fit the mapping (a column missing, a column named twice), so
    no row can be shaped; `available` lists the delivered columns."""

    available: list[str]


class MissingColumnsError(ColumnsError):
    """Delivered data lacks columns a mapping needs; `missing` names each (field, column)."""

    def __init__(self, missing: list[tuple[str, str]], available: list[str]):
        self.missing = missing
        self.available = available
        super().__init__(
            f"no column(s) {_names(missing)}; the data has: "
            f"{', '.join(map(repr, available)) or 'none'}"
        )


class RepeatedColumnError(ColumnsError):
    """The header names a column the mapping reads more than once: which one holds the
    field cannot be told, so neither is guessed."""

    def __init__(self, name: str, positions: list[int], field_name: str, available: list[str]):
        self.available = available
        where = ", ".join(map(str, positions[:-1])) + f" and {positions[-1]}"
        super().__init__(
            f"the header names column {name!r} {_times(len(positions))} (columns {where}); "
            f"map the one that holds {field_name} by its position, e.g. "
            f"'{name} ({positions[-1]})', in the column map"
        )


def _times(n: int) -> str:
    return {2: "twice", 3: "three times"}.get(n, f"{n} times")


@dataclass
class RawRows:
    """Rows as delivered: one Arrow column per delivered column (text for CSV, typed from a
    database), where each row came from (`ref_prefix` and the row's line or row number), and
    rows already known to be bad (malformed lines, with their rule and raw text)."""

    table: pa.Table
    ref_prefix: str
    ref_numbers: np.ndarray
    preset_rules: dict[int, str] = field(default_factory=dict)
    preset_json: dict[int, str] = field(default_factory=dict)
    # Column names the delivery repeats -> their positions (the table names the later ones
    # `<name> (<position>)`).
    repeated: dict[str, list[int]] = field(default_factory=dict)

    @cached_property
    def refs(self) -> pd.arrays.ArrowStringArray:
        """Each row's `source_ref` ("export.csv:12", "query row 3"), built when first asked
        for: indexing a file reads its times only and never needs them."""
        numbers = pc.cast(pa.array(self.ref_numbers, pa.int64()), pa.string())
        return pd.arrays.ArrowStringArray(pc.binary_join_element_wise(self.ref_prefix, numbers, ""))


@dataclass(frozen=True)
class ShapeContext:
    integration_id: str
    timezone: str
    interval_minutes: int
    # Partition of rejects whose own time cannot be read, and how the rule names it.
    fallback_time: pd.Timestamp
    # Missing value columns: raise MissingColumnsError (database) or reject every row (CSV).
    missing: MissingPolicy = "raise"
    fallback_label: str = "the window's first hour"


@dataclass
class Shaped:
    """Canonical rows (with `source_ref`) and rejects (source_ref, row_json, rules,
    partition_time) of one delivery."""

    kind: Literal["contacts", "agent_status"]
    frame: pd.DataFrame
    rejected: pd.DataFrame

    def times(self) -> tuple[pd.Series, pd.Series | None]:
        if self.kind == "contacts":
            return self.frame["interval_start"], None
        return self.frame["start_utc"], self.frame["end_utc"]

    def coverage(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None, bool]:
        """First and last instant any row or reject belongs to, and whether a segment is open
        (then the delivery overlaps every later window)."""
        first, last = self.times()
        parts = [first.dropna(), self.rejected["partition_time"].dropna()]
        is_open = False
        if last is not None:
            is_open = bool((last.isna() & first.notna()).any())
            parts.append(last.dropna())
        parts = [p for p in parts if len(p)]
        if not parts:
            return None, None, is_open
        values = pd.concat(parts, ignore_index=True)
        return values.min(), values.max(), is_open

    def window(self, start: datetime, end: datetime) -> tuple[Shaped, int]:
        """Only what belongs to [start, end): contact rows starting in it, segments
        overlapping it, rejects whose partition is in it. Returns also how many rows of other
        windows were left out."""
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        first, last = self.times()
        if last is None:
            keep = (first >= lo) & (first < hi)
        else:
            keep = (first < hi) & (last.isna() | (last > lo))
        when = self.rejected["partition_time"]
        keep_rejected = (when >= lo) & (when < hi)
        outside = int((~keep).sum())
        if not outside and keep_rejected.all():  # a file inside the window: no copy
            return self, 0
        return (
            Shaped(
                self.kind,
                self.frame[keep].reset_index(drop=True),
                self.rejected[keep_rejected].reset_index(drop=True),
            ),
            outside,
        )


def rejects_frame(
    kind: Literal["contacts", "agent_status"],
    refs: np.ndarray,
    row_json: list[str],
    rules: list[list[str]],
    placed: np.ndarray,
    keyed: pd.DataFrame,
) -> pd.DataFrame:
    """Rejected rows as sources hand them on: REJECT_COLUMNS plus the rows' keys (`key_<column>`,
    taken from `keyed`, one row per reject), so later files can tell which rows they replace."""
    rejected = pd.DataFrame(
        {"source_ref": refs, "row_json": row_json, "rules": rules, "partition_time": placed}
    )
    rejected["partition_time"] = pd.to_datetime(rejected["partition_time"], utc=True)
    for column in KEYS[kind]:
        rejected[f"key_{column}"] = keyed[column].to_numpy()
    return rejected


def empty_rejects() -> pd.DataFrame:
    """No rejects, typed; a copy of one frame built once: most files have no rejects, and
    building the frame each time cost more than a file's whole frame of rows."""
    return _empty_rejects().copy()


@cache
def _empty_rejects() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})
    frame["partition_time"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


# -- column access --------------------------------------------------------------------------
class _Columns:
    """Field -> delivered column, by the column map first, then by the field's own name."""

    def __init__(
        self,
        table: pa.Table,
        mapping: dict[str, str],
        fields: dict[str, str],
        repeated: dict[str, list[int]] | None = None,
        strict: bool = True,
    ):
        self.table = table
        self.explicit = {target: source for source, target in mapping.items()}
        self.source = dict(self.explicit)
        for name in fields:
            if name not in self.source and name in table.column_names:
                self.source[name] = name
        for target, source in list(self.source.items()):
            if repeated and source in repeated:  # which of them holds the field is unknown
                if strict:
                    raise RepeatedColumnError(
                        source, repeated[source], target, list(table.column_names)
                    )
                del self.source[target]

    def has(self, name: str) -> bool:
        return self.source.get(name) in self.table.column_names

    def get(self, name: str) -> pa.Array | None:
        if not self.has(name):
            return None
        column = self.table.column(self.source[name])
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column

    def label(self, name: str) -> str:
        source = self.source.get(name, name)
        return name if source == name else f"{name} ({source!r})"

    def absent(self, names: list[str]) -> list[tuple[str, str]]:
        return [(n, self.source.get(n, n)) for n in names if not self.has(n)]

    def absent_explicit(self) -> list[tuple[str, str]]:
        return [(n, s) for n, s in self.explicit.items() if s not in self.table.column_names]


class _Problems:
    """Rules broken, kept only for the rows that broke one (bad rows are few)."""

    def __init__(self, n: int, preset: dict[int, str]):
        self.rules: dict[int, list[str]] = {}
        self.mask = np.zeros(n, dtype=bool)
        self.preset = np.zeros(n, dtype=bool)
        for row, rule in preset.items():
            self.rules[row] = [rule]
            self.preset[row] = True
        self.mask |= self.preset

    def add(self, mask: np.ndarray, rule: str) -> None:
        rows = np.flatnonzero(mask & ~self.preset)
        for row in rows:
            self.rules.setdefault(int(row), []).append(rule)
        self.mask[rows] = True

    def any(self) -> np.ndarray:
        return self.mask.copy()


def _np_bool(values: pa.Array | pa.ChunkedArray, fill: bool = False) -> np.ndarray:
    return np.asarray(pc.fill_null(values, fill).to_numpy(zero_copy_only=False), dtype=bool)


def _is_text(array: pa.Array) -> bool:
    return pa.types.is_string(array.type) or pa.types.is_large_string(array.type)


def _stripped(array: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Trimmed text and a mask of empty (or null) values."""
    text = pc.utf8_trim_whitespace(array)
    return text, _np_bool(pc.equal(text, ""), fill=True)


# -- value parsers --------------------------------------------------------------------------
def to_numbers(array: pa.Array, fmt: ValueFormat) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where empty or unreadable) and a mask of unreadable values."""
    n = len(array)
    kind = array.type
    if pa.types.is_null(kind):
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    if pa.types.is_decimal(kind):
        # Via text: Arrow's decimal-to-float cast is not correctly rounded (2622.2 would
        # become 2622.2000000000003); parsing the decimal's digits is.
        array = pc.cast(pc.cast(array, pa.string()), pa.float64())
    if pa.types.is_integer(kind) or pa.types.is_floating(array.type):
        values = pc.cast(array, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=float), np.zeros(n, dtype=bool)
    if not _is_text(array):
        return np.full(n, np.nan), ~np.asarray(array.is_null().to_numpy(zero_copy_only=False))
    # Digits only read the same in every format and need no pattern: usually every value.
    digits = _np_bool(pc.ascii_is_decimal(array))
    if digits.all():
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=float), np.zeros(n, dtype=bool)
    text, empty = _stripped(array)
    if fmt.thousands:
        text = pc.replace_substring(text, fmt.thousands, "")
    foreign = np.zeros(n, dtype=bool)
    if fmt.decimal != ".":
        foreign = _np_bool(pc.match_substring(text, "."))
        text = pc.replace_substring(text, fmt.decimal, ".")
    ok = digits.copy()
    rest = np.flatnonzero(~digits & ~empty)
    if rest.size:
        matched = _np_bool(pc.match_substring_regex(text.take(pa.array(rest)), NUMBER_RE))
        ok[rest] = matched & ~foreign[rest]
    values = pc.cast(pc.if_else(pa.array(ok), text, pa.scalar(None, pa.string())), pa.float64())
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=float), ~ok & ~empty


def to_seconds(
    array: pa.Array, unit: DurationUnit, fmt: ValueFormat
) -> tuple[np.ndarray, np.ndarray]:
    """Durations in seconds (NaN where empty or unreadable) and a mask of unreadable ones."""
    if pa.types.is_duration(array.type):
        per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[array.type.unit]
        values = pc.cast(array, pa.int64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=float) / per_second, np.zeros(len(array), dtype=bool)
    if unit == "hms" and (_is_text(array) or pa.types.is_null(array.type)):
        if pa.types.is_null(array.type):
            return np.full(len(array), np.nan), np.zeros(len(array), dtype=bool)
        text, empty = _stripped(array)
        parts = pc.extract_regex(text, HMS_RE)
        hours = pc.cast(pc.struct_field(parts, "h"), pa.float64())
        minutes = pc.cast(pc.struct_field(parts, "m"), pa.float64())
        seconds = pc.cast(pc.replace_substring(pc.struct_field(parts, "s"), ",", "."), pa.float64())
        total = pc.add(pc.add(pc.multiply(hours, 3600.0), pc.multiply(minutes, 60.0)), seconds)
        values = np.asarray(total.to_numpy(zero_copy_only=False), dtype=float)
        return values, np.isnan(values) & ~empty
    if unit == "hms":
        return np.full(len(array), np.nan), ~np.asarray(
            array.is_null().to_numpy(zero_copy_only=False)
        )
    values, bad = to_numbers(array, fmt)
    return (values / 1000.0 if unit == "ms" else values), bad


# A row's text keys (queue, channel; user), as built when first asked for.
TextColumn = np.ndarray | pd.arrays.ArrowStringArray
KeyColumns = Callable[[], list[TextColumn]]


def to_strings(array: pa.Array) -> pd.arrays.ArrowStringArray:
    """Values as delivered, as text kept in Arrow (what the warehouse and validation use: no
    Python object per value); identifiers are never trimmed."""
    return pd.arrays.ArrowStringArray(_string(array))


def _string(array: pa.Array) -> pa.Array:
    return array if _is_text(array) else pc.cast(array, pa.string())


def repeated(value: str | None, n: int) -> pd.arrays.ArrowStringArray:
    """One text value for `n` rows, kept in Arrow."""
    return pd.arrays.ArrowStringArray(pa.repeat(pa.scalar(value, pa.string()), n))


def to_text(array: pa.Array) -> np.ndarray:
    """Values as delivered, as text (None where missing): identifiers are never trimmed."""
    return np.asarray(_string(array).to_numpy(zero_copy_only=False), dtype=object)


def to_offsets(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """UTC offsets (+01:00, -0500, +02, Z) in seconds, NaN where empty; mask of unreadable."""
    text = pd.Series(to_text(array), dtype=object).str.strip()
    empty = (text.isna() | (text == "")).to_numpy()
    parts = text.str.extract(OFFSET_RE)
    zulu = parts["z"].notna().to_numpy()
    sign = np.where(parts["sign"].eq("-").to_numpy(), -1.0, 1.0)
    hours = pd.to_numeric(parts["h"], errors="coerce").to_numpy(dtype=float)
    minutes = pd.to_numeric(parts["m"], errors="coerce").fillna(0).to_numpy(dtype=float)
    seconds = np.where(zulu, 0.0, sign * (hours * 3600 + minutes * 60))
    return seconds, np.isnan(seconds) & ~empty


@dataclass
class _Instants:
    """Parsed times: instants already in UTC, wall-clock values that still need a zone, and
    the rows that could not be read (with the rule)."""

    utc: pd.Series
    naive: pd.Series
    bad: np.ndarray
    rule: str


def _nat(n: int, tz: str | None = None) -> pd.Series:
    dtype = "datetime64[ns, UTC]" if tz else "datetime64[ns]"
    return pd.Series(pd.NaT, index=range(n), dtype=dtype)


def parse_instants(array: pa.Array, fmt: ValueFormat, label: str) -> _Instants:
    """One column holding a point in time, read according to `fmt.time`. Text is read once
    per distinct value: an export repeats each interval's time for every queue."""
    if not _is_text(array) or len(array) < 2:
        return _parse_instants(array, fmt, label)
    encoded = pc.dictionary_encode(array)
    distinct = len(encoded.dictionary)
    if distinct * 2 > len(array):
        return _parse_instants(array, fmt, label)
    # Missing values point at one more entry, a null, so they read as missing do.
    values = pa.concat_arrays([encoded.dictionary, pa.nulls(1, array.type)])
    rows = np.asarray(pc.fill_null(encoded.indices, distinct).to_numpy(zero_copy_only=False))
    read = _parse_instants(values, fmt, label)
    return _Instants(
        pd.Series(read.utc.array.take(rows), index=range(len(rows))),
        pd.Series(read.naive.array.take(rows), index=range(len(rows))),
        read.bad[rows],
        read.rule,
    )


def _parse_instants(array: pa.Array, fmt: ValueFormat, label: str) -> _Instants:
    n = len(array)
    utc, naive, bad = _nat(n, "UTC"), _nat(n), np.zeros(n, dtype=bool)
    kind = array.type
    mode = fmt.time
    present = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False))
    if pa.types.is_timestamp(kind):
        values = pd.Series(array.to_pandas(), index=range(n))
        if kind.tz is not None:
            return _Instants(values.dt.tz_convert("UTC").astype(utc.dtype), naive, bad, "")
        if mode in ("iso", "epoch"):
            return _Instants(
                utc,
                naive,
                present,
                f"{label}: a timestamp without UTC offset (format.time is {mode})",
            )
        return _Instants(utc, values.astype("datetime64[ns]"), bad, "")
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if mode != "epoch":
            return _Instants(
                utc, naive, present, f"{label}: a number, not a time (format.time is {mode})"
            )
        seconds, bad = to_numbers(array, fmt)
        instants, out_of_range = _from_epoch(seconds)
        return _Instants(instants, naive, bad | out_of_range, f"{label}: not epoch seconds")
    if not _is_text(array):
        return _Instants(utc, naive, present, f"{label}: not a time ({kind})")
    text, empty = _stripped(array)
    if mode == "epoch":
        seconds, bad = to_numbers(text, fmt)
        instants, out_of_range = _from_epoch(seconds)
        return _Instants(instants, naive, bad | out_of_range, f"{label}: not epoch seconds")
    values = pd.Series(text.to_numpy(zero_copy_only=False), index=range(n), dtype=object)
    with_offset = _np_bool(pc.match_substring_regex(text, HAS_OFFSET_RE)) & ~empty
    layout = fmt.datetime_format or "ISO8601"
    if with_offset.any():
        parsed = pd.to_datetime(values[with_offset], utc=True, format=layout, errors="coerce")
        utc[with_offset] = parsed
    if mode == "iso":
        rule = f"{label}: not an ISO 8601 time with UTC offset"
        bad = (~with_offset & ~empty) | (with_offset & utc.isna().to_numpy())
        return _Instants(utc, naive, bad, rule)
    plain = ~with_offset & ~empty
    if plain.any():
        naive[plain] = pd.to_datetime(values[plain], format=layout, errors="coerce")
    readable = utc.notna().to_numpy() | naive.notna().to_numpy()
    rule = f"{label}: not a time in format {fmt.datetime_format or 'ISO 8601'}"
    return _Instants(utc, naive, ~empty & ~readable, rule)


# Epoch seconds datetime64[ns] can hold (1677..2262), with a margin.
EPOCH_RANGE_S = 9.2e9


def _from_epoch(seconds: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """UTC instants of epoch seconds (NaT where missing), and where a value is out of range.
    Converted on whole nanoseconds: pandas' float path rounds under `errstate(over="raise")`
    and was seen to fail on columns with missing values."""
    usable = np.isfinite(seconds) & (np.abs(seconds) < EPOCH_RANGE_S)
    nanos = np.full(len(seconds), np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    nanos[usable] = np.round(seconds[usable] * 1e9).astype(np.int64)
    instants = pd.Series(pd.DatetimeIndex(nanos.view("M8[ns]")).tz_localize("UTC"))
    return instants, ~usable & ~np.isnan(seconds)


def _as_text(array: pa.Array, date_like: bool) -> pa.Array:
    if _is_text(array):
        return array
    if date_like and pa.types.is_timestamp(array.type):
        return pc.strftime(array, format="%Y-%m-%d")
    return pc.cast(array, pa.string())


def parse_wall_clock(dates: pa.Array, clocks: pa.Array, fmt: ValueFormat, label: str) -> _Instants:
    """A date column and a time-of-day column, read as wall-clock time (naive)."""
    n = len(dates)
    typed_date = not _is_text(dates)
    date_text, date_empty = _stripped(_as_text(dates, date_like=True))
    clock_text, clock_empty = _stripped(_as_text(clocks, date_like=False))
    date_layout = "%Y-%m-%d" if typed_date else fmt.date_format
    clock_layout = fmt.time_format if _is_text(clocks) else None
    if clock_layout is None:
        short = pc.match_substring_regex(clock_text, CLOCK_ONLY_MINUTES_RE)
        clock_text = pc.if_else(
            short, pc.binary_join_element_wise(clock_text, ":00", ""), clock_text
        )
        clock_layout = "%H:%M:%S"
    joined = pc.binary_join_element_wise(date_text, clock_text, " ")
    values = pd.Series(joined.to_numpy(zero_copy_only=False), index=range(n), dtype=object)
    empty = date_empty | clock_empty
    naive = _nat(n)
    keep = ~empty
    if keep.any():
        naive[keep] = pd.to_datetime(
            values[keep], format=f"{date_layout} {clock_layout}", errors="coerce"
        )
    rule = f"{label}: not a date and time in format {date_layout} {fmt.time_format or 'HH:MM[:SS]'}"
    bad = (date_empty ^ clock_empty) | (keep & naive.isna().to_numpy())
    return _Instants(_nat(n, "UTC"), naive, bad, rule)


def parse_clock(clocks: pa.Array, fmt: ValueFormat) -> tuple[pd.Series, np.ndarray]:
    """Time-of-day values as offsets from midnight (NaT where empty), and a mask of
    unreadable ones."""
    n = len(clocks)
    text, empty = _stripped(_as_text(clocks, date_like=False))
    layout = fmt.time_format if _is_text(clocks) else None
    if layout is None:
        short = pc.match_substring_regex(text, CLOCK_ONLY_MINUTES_RE)
        text = pc.if_else(short, pc.binary_join_element_wise(text, ":00", ""), text)
        layout = "%H:%M:%S"
    values = pd.Series(text.to_numpy(zero_copy_only=False), index=range(n), dtype=object)
    day = pd.Timestamp("2000-01-01")
    clock = pd.Series(pd.NaT, index=range(n), dtype="timedelta64[ns]")
    if (~empty).any():
        parsed = pd.to_datetime(
            "2000-01-01 " + values[~empty], format=f"%Y-%m-%d {layout}", errors="coerce"
        )
        clock[~empty] = parsed - day
    return clock, ~empty & clock.isna().to_numpy()


@dataclass
class Localized:
    utc: pd.Series
    guess: pd.Series  # where a rejected row belongs (shift-forward / first occurrence)
    problems: list[tuple[np.ndarray, str]]


def localize(
    naive: pd.Series,
    timezone: str,
    mode: AmbiguousTimes,
    label: str,
    offsets: np.ndarray | None = None,
    order_keys: KeyColumns | None = None,
    not_before: pd.Series | None = None,
) -> Localized:
    """Wall-clock times in `timezone` to UTC. A time skipped by DST is rejected; a time that
    occurs twice is resolved by its UTC offset or by order when configured, else rejected.
    `order_keys` gives the columns that say which rows are "the same" for `order` (asked for
    only when a time is ambiguous: building them costs more than the rest)."""
    n = len(naive)
    index = pd.DatetimeIndex(naive)
    early = index.tz_localize(timezone, ambiguous=np.ones(n, dtype=bool), nonexistent="NaT")
    late = index.tz_localize(timezone, ambiguous=np.zeros(n, dtype=bool), nonexistent="NaT")
    guess = index.tz_localize(
        timezone, ambiguous=np.ones(n, dtype=bool), nonexistent="shift_forward"
    )
    present = ~index.isna()
    early_ok = ~early.isna()
    nonexistent = present & ~early_ok
    ambiguous = present & early_ok & np.asarray(early != late)
    early_utc = pd.Series(early.tz_convert("UTC"), index=range(n))
    late_utc = pd.Series(late.tz_convert("UTC"), index=range(n))
    utc = early_utc.where(~ambiguous)
    problems: list[tuple[np.ndarray, str]] = []

    resolved = np.zeros(n, dtype=bool)
    if offsets is not None:
        given = ~np.isnan(offsets) & present
        if given.any():
            moved = pd.Series(
                (index - pd.to_timedelta(np.nan_to_num(offsets), unit="s")).tz_localize("UTC"),
                index=range(n),
            )
            wall_again = pd.DatetimeIndex(moved).tz_convert(timezone).tz_localize(None)
            matches = given & np.asarray(wall_again == index)
            utc[matches] = moved[matches]
            resolved |= given
            problems.append(
                (
                    given & ~matches,
                    f"{label}: UTC offset does not match {timezone} at that local time",
                )
            )
    if not_before is not None:
        # An end cannot precede its start: when only the later occurrence is at or after the
        # start, the end is that one. Both after the start: only `order` may pick (the first).
        late_only = ambiguous & ~resolved & np.asarray(early_utc < not_before)
        late_only &= np.asarray(late_utc >= not_before)
        utc[late_only] = late_utc[late_only]
        resolved |= late_only
    if mode == "order":
        pending = ambiguous & ~resolved
        if pending.any():
            if not_before is not None:
                utc[pending] = early_utc[pending]
            else:
                keys = [pd.Series(k)[pending] for k in (order_keys() if order_keys else [])]
                frame = pd.DataFrame({f"k{i}": k.to_numpy() for i, k in enumerate(keys)})
                frame["t"] = naive[pending].to_numpy()
                occurrence = frame.groupby(list(frame.columns), dropna=False).cumcount().to_numpy()
                rows = np.flatnonzero(pending)
                utc.iloc[rows[occurrence == 0]] = early_utc.iloc[rows[occurrence == 0]]
                utc.iloc[rows[occurrence == 1]] = late_utc.iloc[rows[occurrence == 1]]
                third = np.zeros(n, dtype=bool)
                third[rows[occurrence >= 2]] = True
                problems.append(
                    (
                        third,
                        f"{label}: local time occurs more than twice for the same key at "
                        f"the DST change in {timezone}",
                    )
                )
            resolved |= pending
    problems.append(
        (
            nonexistent & ~resolved,
            f"{label}: local time does not exist in {timezone} (skipped when clocks went forward)",
        )
    )
    hint = "; set format.ambiguous_times to offset or order" if mode == "reject" else ""
    problems.append(
        (
            ambiguous & ~resolved,
            f"{label}: local time is ambiguous in {timezone} (occurs "
            f"twice when clocks go back){hint}",
        )
    )
    return Localized(
        utc.astype("datetime64[ns, UTC]"),
        pd.Series(guess.tz_convert("UTC"), index=range(n)),
        problems,
    )


# -- times of a row -------------------------------------------------------------------------
@dataclass
class _Time:
    utc: pd.Series
    guess: pd.Series  # where a row whose time is not an instant belongs
    naive: pd.Series  # wall-clock values as delivered (NaT where one came as an instant)
    timezone: str

    @cached_property
    def wall(self) -> pd.Series:
        """Naive local wall-clock of every row, for end-time-of-day arithmetic (built when
        first asked for: contact rows never need it)."""
        wall = self.naive.copy()
        fill = (self.naive.isna() & self.utc.notna()).to_numpy()
        if fill.any():
            wall[fill] = self.utc[fill].dt.tz_convert(self.timezone).dt.tz_localize(None)
        return wall

    @property
    def placed(self) -> pd.Series:
        """The instant each row belongs to: its time, else the best guess at it (rows without
        any take a neighbour's in `_finish`)."""
        if self.guess is self.utc:
            return self.utc
        return self.utc.where(self.utc.notna(), self.guess)


def _read_time(
    cols: _Columns,
    name: str,
    date_name: str,
    clock_name: str,
    offset_name: str,
    fmt: ValueFormat,
    timezone: str,
    problems: _Problems,
    order_keys: KeyColumns | None = None,
    not_before: pd.Series | None = None,
    instants: _Instants | None = None,
) -> _Time:
    """One time field of every row, in UTC: from one column, or a date and a time-of-day
    column, or wall-clock values computed by the caller (`instants`)."""
    n = cols.table.num_rows
    label = _time_label(cols, name, date_name, clock_name)
    if instants is not None:
        pass
    elif cols.has(name):
        instants = parse_instants(cols.get(name), fmt, label)
    elif cols.has(clock_name) and cols.has(date_name):
        instants = parse_wall_clock(cols.get(date_name), cols.get(clock_name), fmt, label)
    else:
        return _Time(_nat(n, "UTC"), _nat(n, "UTC"), _nat(n), timezone)
    problems.add(instants.bad, instants.rule)
    utc = guess = instants.utc.astype("datetime64[ns, UTC]")
    waiting = instants.naive.notna().to_numpy()
    if waiting.any():  # wall-clock values: to UTC (the usual instants need nothing more)
        guess = utc.copy()
        if fmt.time == "utc":
            utc[waiting] = instants.naive[waiting].dt.tz_localize("UTC")
            guess = utc.copy()
        else:
            offsets = None
            if cols.has(offset_name):
                offsets, bad_offsets = to_offsets(cols.get(offset_name))
                problems.add(
                    bad_offsets & waiting,
                    f"{cols.label(offset_name)}: not a UTC offset like +01:00",
                )
            local = localize(
                instants.naive,
                timezone,
                fmt.ambiguous_times,
                label,
                offsets=offsets,
                order_keys=order_keys,
                not_before=not_before,
            )
            for mask, rule in local.problems:
                problems.add(mask & waiting, rule)
            utc[waiting] = local.utc[waiting]
            guess[waiting] = local.guess[waiting]
    return _Time(utc, guess, instants.naive, timezone)


def _time_label(cols: _Columns, name: str, date_name: str, clock_name: str) -> str:
    """How a time field is named in rules: the field and the column(s) it came from."""
    if cols.has(name):
        return cols.label(name)
    parts = [cols.source[n] for n in (date_name, clock_name) if cols.has(n)]
    return f"{name} ({' + '.join(map(repr, parts))})" if parts else name


def _require(
    cols: _Columns, names: list[str], ctx: ShapeContext, problems: _Problems, structural: list[str]
) -> dict[str, pa.Array]:
    """Check columns. A structural one missing (a key or time column) always raises; a value
    column missing (or any column mapped in the config but absent) raises or rejects every
    row, per `ctx.missing`."""
    explicit = cols.absent_explicit()
    key_absent = cols.absent(structural) + [m for m in explicit if m[0] in structural]
    value_absent = cols.absent(names) + [m for m in explicit if m[0] not in structural]
    key_absent = list(dict.fromkeys(key_absent))
    value_absent = [m for m in dict.fromkeys(value_absent) if m not in key_absent]
    if key_absent or (value_absent and ctx.missing == "raise"):
        raise MissingColumnsError(key_absent + value_absent, list(cols.table.column_names))
    if value_absent:
        problems.add(
            np.ones(cols.table.num_rows, dtype=bool), f"missing column(s) {_names(value_absent)}"
        )
    n = cols.table.num_rows
    return {
        name: (cols.get(name) if cols.has(name) else pa.nulls(n, pa.string())) for name in names
    }


def _names(missing: list[tuple[str, str]]) -> str:
    return ", ".join(
        f"{column!r} ({name})" if column != name else repr(name) for name, column in missing
    )


def _time_needs(fmt: ValueFormat, cols: _Columns, name: str, date: str, clock: str) -> list[str]:
    """The columns a time field is read from: one column, or a date and a time of day."""
    if cols.has(name) or fmt.time in ("iso", "epoch") or name in cols.explicit:
        return [name]
    if any(n in cols.explicit or cols.has(n) for n in (date, clock)):
        return [date, clock]
    return [name]


def _delivered(table: pa.Table) -> dict[str, pd.api.extensions.ExtensionArray]:
    """The fields as delivered, as columns `source:<name>` beside the canonical ones (Arrow
    data shared, not copied), so that a row the schema rejects later is quarantined as it
    came (`etl.validation.rows_as_json`)."""
    delivered = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if _is_text(column):
            values = pd.arrays.ArrowStringArray(column)
        else:
            values = pd.arrays.ArrowExtensionArray(column)
        delivered[f"{SOURCE_FIELD_PREFIX}{name}"] = values
    return delivered


def _finish(
    kind: Literal["contacts", "agent_status"],
    raw: RawRows,
    columns: dict[str, Any],
    problems: _Problems,
    when: pd.Series,
    ctx: ShapeContext,
) -> Shaped:
    """The shaped rows and rejects; `columns` become the frame at once (column by column,
    pandas would copy the growing frame's blocks at every column)."""
    bad = problems.any()
    columns = {**columns, "source_ref": raw.refs, **_delivered(raw.table)}
    frame = pd.DataFrame(columns, copy=False)  # the new columns as they are, not copied
    if not bad.any():  # the usual case: keep the frame rather than copy every column
        return Shaped(kind, frame, empty_rejects())
    good = frame[~bad].reset_index(drop=True)
    unplaced = when.isna().to_numpy()
    problems.add(unplaced & bad, f"time unreadable: placed in {ctx.fallback_label}")
    placed = when.fillna(ctx.fallback_time).astype("datetime64[ns, UTC]")
    rows = np.flatnonzero(bad)
    records = raw.table.take(pa.array(rows)).to_pylist()
    row_json = [
        raw.preset_json.get(int(row), json.dumps(record, default=str, ensure_ascii=False))
        for row, record in zip(rows, records, strict=True)
    ]
    rejected = rejects_frame(
        kind,
        raw.refs[rows],
        row_json,
        [list(dict.fromkeys(problems.rules[int(r)])) for r in rows],
        placed.iloc[rows].to_numpy(),
        frame.iloc[rows],
    )
    return Shaped(kind, good, rejected)


# -- contacts -------------------------------------------------------------------------------
class _ContactKeys(NamedTuple):
    """What every contact row is keyed and placed by: its queue and channel (`ids()`, built
    when first asked for) and its time."""

    cols: _Columns
    problems: _Problems
    values: dict[str, pa.Array]
    ids: KeyColumns
    time: _Time


def _contact_keys(
    raw: RawRows, mapping: ContactMapping, fmt: ValueFormat, ctx: ShapeContext
) -> _ContactKeys:
    cols = _Columns(raw.table, mapping.columns, CONTACT_FIELDS, raw.repeated)
    n = raw.table.num_rows
    problems = _Problems(n, raw.preset_rules)
    structural = ["external_queue_id"] + ([] if mapping.channel else ["channel"])
    structural += _time_needs(fmt, cols, "interval_start", "interval_date", "interval_time")
    if fmt.time == "local" and fmt.ambiguous_times == "offset":
        structural.append("utc_offset")
    values = _require(cols, list(CONTACT_VALUES), ctx, problems, structural)

    @cache
    def ids() -> list[TextColumn]:
        return [to_strings(cols.get("external_queue_id")), _channels(cols, mapping, n)]

    time = _read_time(
        cols,
        "interval_start",
        "interval_date",
        "interval_time",
        "utc_offset",
        fmt,
        ctx.timezone,
        problems,
        order_keys=ids,
    )
    return _ContactKeys(cols, problems, values, ids, time)


def contact_coverage(
    raw: RawRows, mapping: ContactMapping, fmt: ValueFormat, ctx: ShapeContext
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """`shape_contacts(...).coverage()` without shaping the values: every row and reject
    belongs to its own placed instant, or to the fallback hour when its time cannot be read,
    so the span of those is the span of the shaped file."""
    if raw.table.num_rows == 0:
        return None, None
    placed = _contact_keys(raw, mapping, fmt, ctx).time.placed
    if placed.isna().any():
        placed = placed.fillna(ctx.fallback_time)
    return placed.min(), placed.max()


def time_span(
    kind: Literal["contacts", "agent_status"],
    raw: RawRows,
    mapping: ContactMapping | AgentStatusMapping,
    fmt: ValueFormat,
    ctx: ShapeContext,
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The first and last instant the rows' times name, for rows that cannot be shaped (a
    column missing, a column named twice): which hours a delivery would have filled. The
    time columns alone are read, as far as they can be (a local time that occurs twice at
    its first occurrence); None when they cannot be read at all."""
    fields = CONTACT_FIELDS if kind == "contacts" else AGENT_FIELDS
    cols = _Columns(raw.table, mapping.columns, fields, raw.repeated, strict=False)
    loose = fmt.model_copy(update={"ambiguous_times": "reject"})
    problems = _Problems(raw.table.num_rows, {})
    if kind == "contacts":
        times = [("interval_start", "interval_date", "interval_time", "utc_offset")]
    else:
        times = [
            ("start", "start_date", "start_time", "start_offset"),
            ("end", "end_date", "end_time", "end_offset"),
        ]
    parts = [
        _read_time(cols, *names, loose, ctx.timezone, problems).placed.dropna() for names in times
    ]
    parts = [part for part in parts if len(part)]
    if not parts:
        return None
    values = pd.concat(parts, ignore_index=True)
    return values.min(), values.max()


def shape_contacts(
    raw: RawRows, mapping: ContactMapping, fmt: ValueFormat, ctx: ShapeContext
) -> Shaped:
    """Delivered contact rows -> canonical contact rows and rejects."""
    cols, problems, values, ids, time = _contact_keys(raw, mapping, fmt, ctx)
    queue, channel = ids()
    columns: dict[str, Any] = {
        "integration_id": repeated(ctx.integration_id, len(queue)),
        "external_queue_id": queue,
        "channel": channel,
        "interval_start": time.utc,
    }
    if cols.has("interval_minutes"):
        minutes, bad = to_numbers(cols.get("interval_minutes"), fmt)
        problems.add(bad, f"{cols.label('interval_minutes')}: not a number")
        columns["interval_minutes"] = minutes
    else:
        columns["interval_minutes"] = ctx.interval_minutes
    for name in ("offered", "answered", "abandoned"):
        numbers, bad = to_numbers(values[name], fmt)
        problems.add(bad, f"{cols.label(name)}: not a number{_decimal_hint(fmt)}")
        columns[name] = numbers
    answered = columns["answered"]
    durations = {"handle_time": "handle_time_s", **OPTIONAL_DURATIONS}
    for name, target in durations.items():
        if name != "handle_time" and not cols.has(name):
            continue
        seconds, bad = to_seconds(values.get(name, cols.get(name)), fmt.duration_unit, fmt)
        problems.add(bad, f"{cols.label(name)}: not a duration in {_unit_name(fmt)}")
        columns[target] = seconds * answered if mapping.averages else seconds
    if cols.has("answered_in_sl"):
        numbers, bad = to_numbers(cols.get("answered_in_sl"), fmt)
        problems.add(bad, f"{cols.label('answered_in_sl')}: not a number{_decimal_hint(fmt)}")
        columns["answered_in_sl"] = numbers
    problems.add(
        time.utc.isna().to_numpy() & ~problems.any(),
        f"{_time_label(cols, 'interval_start', 'interval_date', 'interval_time')}: empty",
    )
    return _finish("contacts", raw, columns, problems, time.placed, ctx)


def _channels(cols: _Columns, mapping: ContactMapping, n: int) -> pd.arrays.ArrowStringArray:
    """Each row's canonical channel: looked up once per distinct spelling."""
    if not cols.has("channel"):
        return repeated(mapping.channel, n)
    spelled = pc.dictionary_encode(_string(cols.get("channel")))
    exact = mapping.channels
    folded = {k.casefold(): v for k, v in exact.items()}

    def canonical(value: object) -> object:
        if value is None or value == "":
            return mapping.channel if mapping.channel else value
        text = str(value)
        return exact.get(text) or folded.get(text.strip().casefold()) or text

    canonicals = pa.array([canonical(v) for v in spelled.dictionary.to_pylist()], pa.string())
    channels = canonicals.take(spelled.indices)
    if (default := canonical(None)) is not None and channels.null_count:
        channels = pc.fill_null(channels, default)
    return pd.arrays.ArrowStringArray(channels)


def _decimal_hint(fmt: ValueFormat) -> str:
    return f" (decimal separator {fmt.decimal!r})" if fmt.decimal != "." else ""


def _unit_name(fmt: ValueFormat) -> str:
    return {"s": "seconds", "ms": "milliseconds", "hms": "HH:MM:SS"}[fmt.duration_unit]


# -- agent status ---------------------------------------------------------------------------
def shape_agent_status(
    raw: RawRows, mapping: AgentStatusMapping, fmt: ValueFormat, ctx: ShapeContext
) -> Shaped:
    """Delivered agent-status rows -> canonical segments (user, activity, start/end UTC)."""
    cols = _Columns(raw.table, mapping.columns, AGENT_FIELDS, raw.repeated)
    n = raw.table.num_rows
    problems = _Problems(n, raw.preset_rules)
    structural = ["user_identifier", "external_activity"]
    structural += _time_needs(fmt, cols, "start", "start_date", "start_time")
    if fmt.time == "local" and fmt.ambiguous_times == "offset":
        structural.append("start_offset")
    if not (cols.has("end") or cols.has("end_time") or cols.has("duration")):
        structural.append("end")
    _require(cols, [], ctx, problems, structural)

    user = to_text(cols.get("user_identifier"))
    activity = to_text(cols.get("external_activity"))
    start = _read_time(
        cols,
        "start",
        "start_date",
        "start_time",
        "start_offset",
        fmt,
        ctx.timezone,
        problems,
        order_keys=lambda: [user],
    )
    end_field = ("end", "end_date", "end_time", "end_offset")
    if cols.has("end") or (cols.has("end_date") and cols.has("end_time")):
        end_utc = _read_time(
            cols, *end_field, fmt, ctx.timezone, problems, not_before=start.utc
        ).utc
    elif cols.has("end_time"):
        # Only a time of day: the start's date, or the next day when earlier than the start.
        clock, bad = parse_clock(cols.get("end_time"), fmt)
        wall = start.wall.dt.normalize() + clock
        wall = wall.where(~(wall < start.wall), wall + pd.Timedelta(days=1))
        rule = (
            f"{cols.label('end_time')}: not a time of day in format "
            f"{fmt.time_format or 'HH:MM[:SS]'}"
        )
        given = _Instants(_nat(n, "UTC"), wall.astype("datetime64[ns]"), bad, rule)
        end_utc = _read_time(
            cols, *end_field, fmt, ctx.timezone, problems, not_before=start.utc, instants=given
        ).utc
    else:
        seconds, bad = to_seconds(cols.get("duration"), fmt.duration_unit, fmt)
        problems.add(bad, f"{cols.label('duration')}: not a duration in {_unit_name(fmt)}")
        end_utc = start.utc + pd.to_timedelta(seconds, unit="s")
    problems.add(
        start.utc.isna().to_numpy() & ~problems.any(),
        f"{_time_label(cols, 'start', 'start_date', 'start_time')}: empty",
    )
    columns: dict[str, Any] = {
        "integration_id": ctx.integration_id,
        "user_identifier": user,
        "external_activity": activity,
        "start_utc": start.utc,
        "end_utc": pd.Series(end_utc, index=range(n)).astype("datetime64[ns, UTC]"),
    }
    return _finish("agent_status", raw, columns, problems, start.placed, ctx)


def data_section(settings: dg.Config, kind: str, integration_id: str, holds: str):
    """The `contacts` or `agent_status` section of a universal source's settings; a clear
    error when the integration asks for a data kind its settings do not describe."""
    section = settings.contacts if kind == "contacts" else settings.agent_status
    if section is None:
        raise SourceError(f"integration {integration_id!r}: no source.{kind} section ({holds})")
    return section
