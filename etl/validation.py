"""Apply a table's schema to what a source delivered: good rows go on, bad rows to quarantine.

Every rejected row keeps the values as they came, where they came from (`source_ref`: a file
and line, a query row) and every rule it broke, so nothing is lost silently. Problems that
concern the whole frame (a mapped column missing) raise `SourceDataError` instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pandera.pandas as pa

from etl.partitions import KEY_FORMAT
from etl.schemas import ODD_IDENTIFIER, STRING, TableSpec, visible

QUARANTINE_COLUMNS = (
    "integration_id",
    "data_kind",
    "partition_key",
    "source_ref",
    "row_json",
    "rules",
    "run_id",
    "rejected_at",
)
DUPLICATE_RULE = "duplicate_row: exact copy of another row with the same key (kept once)"
# Counts above this are rejected as too large: no interval of one queue has a billion contacts,
# and below it the sums over a whole warehouse stay far inside a 64-bit integer.
MAX_COUNT = 10**9
TOO_LARGE_RULE = "{column}: too large (more than {limit:,})"
DUPLICATE_COLUMNS = ("partition_key", "source_ref")
_ODD = re.compile(ODD_IDENTIFIER)
CONFLICT_RULE = "conflicting_key: rows share the key {key} but disagree"
OUTSIDE_RULE = "{column}: outside the imported window"
# Columns a source adds to its frame to keep each row's fields as delivered (`rows_as_json`).
SOURCE_FIELD_PREFIX = "source:"
SPAN_OUTSIDE_RULE = "{start}..{end}: does not overlap the imported window"

RowCheck = Callable[[pd.DataFrame], pd.Series]


class SourceDataError(ValueError):
    """The frame as a whole cannot be validated (missing columns, wrong shape)."""


_EMPTY_DUPLICATES = pd.DataFrame({c: pd.Series(dtype=object) for c in DUPLICATE_COLUMNS})


@dataclass
class Validated:
    good: pd.DataFrame
    rejected: pd.DataFrame
    received: int
    # Exact copies of a good row, dropped (the row is kept once): not rejected, but counted
    # and named (partition_key, source_ref) so the import can report them.
    duplicates: pd.DataFrame = field(default_factory=lambda: _EMPTY_DUPLICATES.copy())
    # Values that load but deserve a look (an identifier with spaces around it), one message
    # per distinct value.
    warnings: list[str] = field(default_factory=list)


def _empty_quarantine() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})
    frame["rejected_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


_EMPTY_QUARANTINE = _empty_quarantine()


def empty_quarantine() -> pd.DataFrame:
    """A quarantine without rows (a copy: callers may add to it)."""
    return _EMPTY_QUARANTINE.copy()


class Problems:
    """Rules broken, by row label; only rows with problems take memory."""

    def __init__(self) -> None:
        self.rules: dict[int, list[str]] = {}

    def flag(self, mask: pd.Series, rule: str) -> None:
        for idx in mask.index[mask.to_numpy(dtype=bool, na_value=False)]:
            self.rules.setdefault(idx, []).append(rule)

    def extend(self, found: pd.Series) -> None:
        for idx, rules in found.items():
            self.rules.setdefault(idx, []).extend(rules)

    def bad(self) -> pd.Index:
        return pd.Index(sorted(self.rules), dtype="int64")

    def __getitem__(self, idx: int) -> list[str]:
        return list(dict.fromkeys(self.rules[idx]))


def _is_string(dtype: object) -> bool:
    return isinstance(dtype, pd.StringDtype) or str(dtype) in ("str", "object")


def _fractional(values: pd.Series) -> pd.Series:
    """Values that are not whole numbers (infinities included), missing ones not: truncation,
    several times faster than `values % 1` on a month of rows."""
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    fractional = np.isinf(numbers) | (np.isfinite(numbers) & (np.trunc(numbers) != numbers))
    return pd.Series(fractional, index=values.index)


def _within_count_range(values: pd.Series, name: str, problems: Problems) -> pd.Series:
    """Counts beyond +-MAX_COUNT flagged (too large; hugely negative ones as `>= 0`) and
    blanked, before a cast to int64 could wrap them into numbers that break other rules."""
    too_large = values > MAX_COUNT
    too_small = values < -MAX_COUNT
    if not (too_large.any() or too_small.any()):
        return values
    problems.flag(too_large, TOO_LARGE_RULE.format(column=name, limit=MAX_COUNT))
    problems.flag(too_small, f"{name}: >= 0")
    return values.astype("float64").where(~(too_large | too_small))


def _coerce(frame: pd.DataFrame, schema: pa.DataFrameSchema, problems: Problems) -> pd.DataFrame:
    """Cast each column to the schema's type, flagging values that cannot be cast.

    Columns that already have the right type pass untouched (the fast path for sources that
    build typed frames); strings become Arrow-backed so pandera's checks are vectorised.
    """
    typed: dict[str, pd.Series] = {}
    for name, column in schema.columns.items():
        if name not in frame.columns:
            continue
        raw = frame[name]
        dtype = column.dtype.type if hasattr(column.dtype, "type") else column.dtype
        target = str(column.dtype)
        missing = raw.isna()
        if target.startswith("datetime64"):
            values = raw
            if str(raw.dtype) != "datetime64[ns, UTC]":
                values = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
                problems.flag(values.isna() & ~missing, f"{name}: not a timestamp")
        elif target in ("int64", "float64"):
            values = raw
            if not pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
                values = pd.to_numeric(raw, errors="coerce")
                problems.flag(values.isna() & ~missing, f"{name}: not a number")
            if target == "int64" and not pd.api.types.is_integer_dtype(values):
                fractional = _fractional(values)
                problems.flag(fractional, f"{name}: not a whole number")
                values = values.where(~fractional)
            if target == "int64":
                values = _within_count_range(values, name, problems)
            if missing.any() or not pd.api.types.is_integer_dtype(values):
                values = values.astype("float64")
        elif _is_string(dtype):
            values = raw if isinstance(raw.dtype, pd.StringDtype) else raw.astype(STRING)
        else:
            values = raw
        if not column.nullable:
            problems.flag(missing, f"{name}: not null")
        typed[name] = values
    # Built at once, not column by column: pandas would copy the growing frame's blocks; and
    # on the columns as they are (a frame from a dict copies every one by default).
    return pd.DataFrame(typed, index=frame.index, copy=False)


def _final_types(typed: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    casts = {
        name: typed[name].astype("Int64" if column.nullable else "int64")
        for name, column in schema.columns.items()
        if name in typed.columns
        and str(column.dtype) == "int64"
        and str(typed[name].dtype) != ("Int64" if column.nullable else "int64")
    }
    if not casts:
        return typed
    typed = typed.copy(deep=False)  # new columns, the other columns' data shared
    for name, values in casts.items():
        typed[name] = values
    return typed


def _schema_problems(typed: pd.DataFrame, schema: pa.DataFrameSchema, where: str) -> pd.Series:
    """Rules broken per row index, from pandera's lazy validation."""
    try:
        schema.validate(typed, lazy=True, inplace=True)  # nothing to coerce: no copy
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        frame_level = cases[cases["index"].isna()]
        if not frame_level.empty:
            detail = "; ".join(
                f"{row.column or 'table'}: {row.check} ({row.failure_case})"
                for row in frame_level.itertuples()
            )
            raise SourceDataError(
                f"{where}: the data as a whole fails validation: {detail}"
            ) from exc
        checks = {check.name: check.error or check.name for check in schema.checks}
        for column in schema.columns.values():
            checks.update({f"{column.name}:{c.name}": c.error or c.name for c in column.checks})

        def label(row: pd.Series) -> str:
            if row["schema_context"] == "DataFrameSchema" or pd.isna(row["column"]):
                return checks.get(row["check"], str(row["check"]))
            name = checks.get(f"{row['column']}:{row['check']}", row["check"])
            return f"{row['column']}: {name}"

        labels = cases.apply(label, axis=1)
        grouped = labels.groupby(cases["index"].astype(typed.index.dtype))
        return grouped.agg(lambda found: list(dict.fromkeys(found)))
    return pd.Series(dtype=object)


def _key_problems(good: pd.DataFrame, spec: TableSpec) -> tuple[pd.Series, pd.Index]:
    """Rows sharing a key but disagreeing are all rejected (the conflict rule per row); exact
    duplicates are kept once (the index of the extra copies, to drop)."""
    key = list(spec.key)
    if _keys_unique(good, key):  # the usual case, found without pandas' row-wise machinery
        return pd.Series(dtype=object), pd.Index([], dtype="int64")
    shared = good.duplicated(key, keep=False)
    if not shared.any():
        return pd.Series(dtype=object), pd.Index([], dtype="int64")
    candidates = good[shared]
    values = [c for c in good.columns if c in spec.all_columns]
    distinct = candidates.drop_duplicates(values).groupby(key, dropna=False).size()
    conflicting_keys = distinct[distinct > 1].index
    in_conflict = candidates.set_index(key).index.isin(conflicting_keys)
    conflicts = candidates[in_conflict]
    copies = candidates[~in_conflict]
    extra = copies[copies.duplicated(values, keep="first")]
    conflict_rules = conflicts.apply(
        lambda r: [CONFLICT_RULE.format(key="/".join(str(r[k]) for k in key))], axis=1
    )
    if conflict_rules.empty:
        conflict_rules = pd.Series(dtype=object)
    return conflict_rules, extra.index


def _keys_unique(frame: pd.DataFrame, key: list[str]) -> bool:
    """Whether no two rows share the key: each key column's values numbered (a missing value
    is a value of its own, as `DataFrame.duplicated` treats it), the numbers combined into
    one integer per row. False when that integer could overflow (the caller then looks)."""
    combined = np.zeros(len(frame), dtype="int64")
    size = 1
    for column in key:
        values = frame[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):  # numbered on its integers, faster
            values = values.array.asi8  # (every missing time is the same integer)
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        size *= max(len(uniques), 1)
        if size >= 2**62:
            return False
        combined = combined * max(len(uniques), 1) + codes
    if size <= max(1 << 20, 4 * len(combined)):  # each possible key a flag: no hashing
        seen = np.zeros(size, dtype=bool)
        seen[combined] = True
        return int(np.count_nonzero(seen)) == len(combined)
    return len(pd.unique(combined)) == len(combined)


def rows_as_json(frame: pd.DataFrame, index: pd.Index) -> list[str]:
    """Quarantined rows as the quarantine keeps them, one JSON object each, without the ref:
    the fields as delivered where the source kept them (columns `source:<name>`; a field
    another delivery had and this row's did not is left out), else the row as validated."""
    delivered = [c for c in frame.columns if str(c).startswith(SOURCE_FIELD_PREFIX)]
    if delivered:
        rows = frame.loc[index, delivered]
        cut = len(SOURCE_FIELD_PREFIX)
        return [
            json.dumps(
                {name[cut:]: value for name, value in record.items() if not _absent(value)},
                default=str,
                ensure_ascii=False,
            )
            for record in rows.to_dict(orient="records")
        ]
    rows = frame.loc[index].drop(columns=["source_ref"], errors="ignore")
    return [json.dumps(rec, default=str) for rec in rows.to_dict(orient="records")]


def _absent(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def validate(
    frame: pd.DataFrame,
    *,
    spec: TableSpec,
    schema: pa.DataFrameSchema,
    integration_id: str,
    start: datetime,
    end: datetime,
    run_id: str,
    extra_checks: Callable[[pd.DataFrame], pd.Series] | None = None,
    source: str = "source",
) -> Validated:
    """Split `frame` (rows for the window [start, end)) into good rows and quarantine rows."""
    where = f"integration {integration_id!r}, {spec.name} {start:%Y-%m-%d %H:%M}..{end:%H:%M} UTC"
    missing = [c for c in spec.columns if c not in frame.columns and c != "integration_id"]
    if missing:
        raise SourceDataError(f"{where}: the source delivered no column(s) {', '.join(missing)}")
    # Row labels 0..n-1 (the rejected rows are found by label); no copy of the data.
    frame = frame.copy(deep=False)
    frame.index = pd.RangeIndex(len(frame))
    if "integration_id" not in frame.columns:
        frame.insert(0, "integration_id", integration_id)
    received = len(frame)
    if received == 0:
        typed = _final_types(_coerce(frame, schema, Problems()), schema)
        return Validated(typed[list(spec.columns)], empty_quarantine(), 0)

    problems = Problems()
    typed = _coerce(frame, schema, problems)
    clean = _final_types(_without(typed, problems.bad()), schema)
    problems.extend(_schema_problems(clean, schema, where))
    outside, rule = _outside(clean, spec, start, end)
    problems.flag(outside, rule)
    if extra_checks is not None:
        problems.extend(extra_checks(_without(clean, problems.bad())))
    conflicts, copies = _key_problems(_without(clean, problems.bad()), spec)
    problems.extend(conflicts)

    bad_index = problems.bad()
    good = _without(clean, bad_index.union(copies))
    keep = [c for c in spec.all_columns if c in good.columns]
    good = pd.DataFrame({name: good[name] for name in keep}, copy=False)  # no copy of a month
    if len(bad_index) or len(copies):
        good = good.reset_index(drop=True)
    rejected = _quarantine(
        frame, typed, problems, bad_index, integration_id, spec, start, end, run_id, source
    )
    if copies.empty:  # the usual case: no frame work for nothing (a batch of 10 records)
        duplicates = _EMPTY_DUPLICATES.copy()
    else:
        duplicates = pd.DataFrame(
            {
                "partition_key": partition_keys_in_window(
                    typed.loc[copies, spec.time_column], start, end
                ),
                "source_ref": _refs(frame, copies, source).to_numpy(),
            }
        )
    return Validated(good, rejected, received, duplicates, identifier_warnings(good, spec))


def _outside(
    clean: pd.DataFrame, spec: TableSpec, start: datetime, end: datetime
) -> tuple[pd.Series, str]:
    """Rows that do not belong to the window: a row starts in it, a span overlaps it."""
    begins = clean[spec.time_column]
    if spec.end_column is None:
        return (begins < start) | (begins >= end), OUTSIDE_RULE.format(column=spec.time_column)
    until = clean[spec.end_column]
    outside = (begins >= end) | (until.notna() & (until <= start))
    return outside, SPAN_OUTSIDE_RULE.format(start=spec.time_column, end=spec.end_column)


def _without(frame: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    return frame if index.empty else frame[~frame.index.isin(index)]


def _refs(frame: pd.DataFrame, index: pd.Index, source: str) -> pd.Series:
    """Where these rows came from: the source's own reference, else the row number."""
    if index.empty:  # taking no rows of an Arrow column would still combine its chunks
        return pd.Series([], index=index, dtype=object)
    if "source_ref" in frame.columns:
        return frame.loc[index, "source_ref"].astype(str)
    return pd.Series([f"{source}, row {i + 1}" for i in index], index=index, dtype=object)


def identifier_warnings(good: pd.DataFrame, spec: TableSpec, limit: int = 10) -> list[str]:
    """Identifiers (the key's text columns) that load but will surprise someone: spaces around
    them or invisible characters in them make an identifier of its own ('sales ' is a queue
    apart from 'sales'), never trimmed into another one."""
    found = []
    for column in spec.identifier_columns:
        if column not in good.columns or good.empty:
            continue
        values = good[column]
        # The pattern on each distinct value (a month has 1.5 M rows and a few hundred
        # queues), in plain Python: pandas' string machinery costs more than the search.
        strange = [v for v in values.unique() if isinstance(v, str) and _ODD.search(v)]
        if not strange:
            continue
        odd = values.isin(strange).to_numpy(dtype=bool)
        counts = values[odd].value_counts()
        for value, n in counts.head(limit).items():
            found.append(
                f"{column} {value!r} ({n} row{'s' * (n != 1)}) has spaces around it or "
                "invisible characters in it; kept as delivered, so it does not match "
                f"{visible(value)!r}"
            )
        if len(counts) > limit:
            found.append(f"{column}: and {len(counts) - limit} more such values")
    return found


def _quarantine(
    frame: pd.DataFrame,
    typed: pd.DataFrame,
    problems: Problems,
    bad_index: pd.Index,
    integration_id: str,
    spec: TableSpec,
    start: datetime,
    end: datetime,
    run_id: str,
    source: str,
) -> pd.DataFrame:
    if len(bad_index) == 0:
        return empty_quarantine()
    refs = _refs(frame, bad_index, source)
    return pd.DataFrame(
        {
            "integration_id": integration_id,
            "data_kind": spec.name,
            "partition_key": partition_keys_in_window(
                typed.loc[bad_index, spec.time_column], start, end
            ),
            "source_ref": refs.to_numpy(),
            "row_json": rows_as_json(frame, bad_index),
            "rules": [problems[i] for i in bad_index],
            "run_id": run_id,
            "rejected_at": pd.Timestamp(datetime.now(UTC)),
        }
    ).reset_index(drop=True)


def partition_keys_in_window(times: pd.Series, start: datetime, end: datetime) -> np.ndarray:
    """The partition of each rejected row: its hour, clamped into the window that imported it
    (the window's first hour when its time is unreadable), so that re-importing the window
    replaces it."""
    lo, hi = pd.Timestamp(start), pd.Timestamp(end) - pd.Timedelta(hours=1)
    hours = times.dt.floor("h").fillna(lo).clip(lower=lo, upper=hi)
    return hours.dt.strftime(KEY_FORMAT).to_numpy()
