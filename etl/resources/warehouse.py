"""The warehouse: Parquet files per (table, integration, month) plus a read-only DuckDB catalog.

DuckDB allows one writing process per database file and an analyst's open connection blocks a
writer, so imports never write the DuckDB file. They replace Parquet files atomically under a
per-month lock. A month keeps the file grain of its first write: a month a history run wrote
whole is one month file; a month that ticks began (the open month) is one file per UTC day, so
a tick rewrites its day, not the month to date. Rows never move from one file name to another:
DuckDB expands a view's glob by listing each folder and then looking up every listed name by
path, and it skips a name that is gone by then without an error, so a query running while rows
moved between files (day files merged into a month file) could silently miss them. Replacing a
file under the same name, adding a file or removing one whose rows are deleted is safe.
Merging an ended month's day files (`compact_months`, `wfm-etl compact`) happens only while no
connection to the catalog is open, under DuckDB's own lock on it. The catalog (`wfm.duckdb`)
holds only views over those files and is rebuilt under a temporary name and renamed into place
when the view definitions change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.partitions import days, month_start, months, next_day, next_month
from etl.resources.files import (
    duckdb_files_locked,
    file_lock,
    replace_atomically,
    replace_directory,
)

T = TypeVar("T")

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
CATALOG_NAME = "wfm.duckdb"
FACT_FILES = "*.parquet"  # temporary files (`.tmp-*.part`) never match
TS = pa.timestamp("us", tz="UTC")

FACT_SCHEMAS: dict[str, pa.Schema] = {
    "contact_intervals": pa.schema(
        [
            ("integration_id", pa.string()),
            ("external_queue_id", pa.string()),
            ("channel", pa.string()),
            ("interval_start", TS),
            ("interval_start_local", pa.timestamp("us")),
            ("interval_minutes", pa.int16()),
            ("offered", pa.int64()),
            ("answered", pa.int64()),
            ("abandoned", pa.int64()),
            ("handle_time_s", pa.float64()),
            ("talk_time_s", pa.float64()),
            ("hold_time_s", pa.float64()),
            ("acw_time_s", pa.float64()),
            ("answered_in_sl", pa.int64()),
        ]
    ),
    "agent_status_segments": pa.schema(
        [
            ("integration_id", pa.string()),
            ("user_identifier", pa.string()),
            ("external_activity", pa.string()),
            ("start_utc", TS),
            ("end_utc", TS),
            ("is_open", pa.bool_()),
            ("segment_start_utc", TS),
            ("segment_end_utc", TS),
        ]
    ),
    "rejected_rows": pa.schema(
        [
            ("integration_id", pa.string()),
            ("data_kind", pa.string()),
            ("partition_key", pa.string()),
            ("source_ref", pa.string()),
            ("row_json", pa.string()),
            ("rules", pa.list_(pa.string())),
            ("run_id", pa.string()),
            ("rejected_at", TS),
        ]
    ),
    # One row per imported hour (the latest import wins): when, complete or not, how many rows.
    # The `coverage` views compare it with the hours an integration should have. A failed
    # import keeps the hour's last successful row and adds the failure (etl/assets/import_log).
    "import_log": pa.schema(
        [
            ("integration_id", pa.string()),
            ("data_kind", pa.string()),
            ("table_name", pa.string()),
            ("partition_start", TS),
            ("imported_at", TS),
            ("complete", pa.bool_()),
            ("rows_written", pa.int64()),
            ("rows_rejected", pa.int64()),
            ("run_id", pa.string()),
            ("rows_duplicate", pa.int64()),
            ("failed_at", TS),
            ("failure", pa.string()),
            ("failures", pa.int64()),
            ("failure_config", pa.string()),
        ]
    ),
}
# Day sums stored beside each fact file (same layout), so day-level views over years read
# summaries, not intervals; each is computed by sql/summaries/<name>.sql from its fact file.
SUMMARY_SCHEMAS: dict[str, pa.Schema] = {
    "contact_days": pa.schema(
        [
            ("integration_id", pa.string()),
            ("external_queue_id", pa.string()),
            ("channel", pa.string()),
            ("day_local", pa.date32()),
            ("offered", pa.int64()),
            ("answered", pa.int64()),
            ("abandoned", pa.int64()),
            ("handle_time_s", pa.float64()),
            ("answered_in_sl", pa.int64()),
        ]
    ),
}
SUMMARIES = {"contact_intervals": "contact_days"}  # fact table -> its summary
# Each summary file records the hash of the SQL that wrote it: a changed query rewrites it.
SUMMARY_VERSION_KEY = "wfm_summary_version"
TIME_COLUMNS = {
    "contact_intervals": "interval_start",
    "agent_status_segments": "start_utc",
    "rejected_rows": "partition_time",
    "import_log": "partition_start",
}

REGISTRY_SCHEMAS: dict[str, pa.Schema] = {
    "queues": pa.schema(
        [
            ("integration_id", pa.string()),
            ("external_queue_id", pa.string()),
            ("first_seen", TS),
            ("last_seen", TS),
        ]
    ),
    "integrations": pa.schema(
        [
            ("integration_id", pa.string()),
            ("name", pa.string()),
            ("vendor", pa.string()),
            ("delivery", pa.string()),
            ("interval_minutes", pa.int16()),
            ("timezone", pa.string()),
            ("history_start", TS),
            ("revision_window_hours", pa.int32()),
            ("data", pa.list_(pa.string())),
            ("updated_at", TS),
        ]
    ),
}

MAPPING_SCHEMAS: dict[str, pa.Schema] = {
    "queue_mappings": pa.schema(
        [
            ("integration_id", pa.string()),
            ("external_queue_id", pa.string()),
            ("destination_queue", pa.string()),
        ]
    ),
    "workloads": pa.schema([("workload", pa.string()), ("destination_queue", pa.string())]),
    "employees": pa.schema([("employee_id", pa.string()), ("name", pa.string())]),
    "employee_identifiers": pa.schema(
        [
            ("employee_id", pa.string()),
            ("integration_id", pa.string()),
            ("external_employee_id", pa.string()),
            ("user_identifier", pa.string()),
        ]
    ),
    "activities": pa.schema([("activity_id", pa.int64()), ("name", pa.string())]),
    "activity_mappings": pa.schema(
        [
            ("integration_id", pa.string()),
            ("external_activity", pa.string()),
            ("activity_id", pa.int64()),
            ("classification", pa.string()),
        ]
    ),
}


# DuckDB (2.0.0) opens a Parquet file again by name when a scan starts, after reading its
# footer: an import renaming a new version into place in between fails that one query with one
# of these messages (README, known limitation; bench/reader_race.py). Likewise a file that was
# listed by a query's glob and then removed ("No such file"). Reading again succeeds.
REOPEN_RACE_MESSAGES = (
    "TProtocolException",
    "don't know what type",
    "invalid TType",
    "Could not read enough bytes",
    "No such file or directory",
)
READ_ATTEMPTS = 3
# While a month is compacted, the catalog is locked and a new connection is refused with this;
# each month's merge releases it, so a read waits up to LOCK_WAIT_SECONDS for its turn.
LOCKED_MESSAGE = "Could not set lock on file"
LOCK_WAIT_SECONDS = 60.0


def read_retrying(read: Callable[[], T], attempts: int = READ_ATTEMPTS) -> T:
    """`read()`, repeated when it failed on a file replaced under it, or waited for while a
    compaction holds the catalog; other errors raise."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    attempt = 0
    while True:
        try:
            return read()
        except duckdb.Error as exc:
            if LOCKED_MESSAGE in str(exc) and time.monotonic() < deadline:
                time.sleep(0.25)
                continue
            attempt += 1
            if attempt >= attempts or not any(m in str(exc) for m in REOPEN_RACE_MESSAGES):
                raise


def _sql_literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Conform a frame to the stored schema: missing optional columns become nulls."""
    columns = {}
    for field in schema:
        if field.name in frame.columns:
            columns[field.name] = pa.array(frame[field.name], type=field.type, from_pandas=True)
        else:
            columns[field.name] = pa.nulls(len(frame), type=field.type)
    return pa.table(columns, schema=schema)


def _ordered(table: pa.Table, column: str) -> bool:
    """Whether rows are already in time order (a tick appending the newest hours usually is),
    so the common case skips a sort of the whole month."""
    if column not in table.column_names or table.num_rows < 2:
        return True
    return _ascending(_micros(table.column(column)))


def _sorted(table: pa.Table, column: str) -> pa.Table:
    return table if _ordered(table, column) else table.sort_by([(column, "ascending")])


def _inside(times: pa.ChunkedArray, start: datetime, end: datetime) -> pa.ChunkedArray:
    return pc.and_(
        pc.greater_equal(times, pa.scalar(start, TS)), pc.less(times, pa.scalar(end, TS))
    )


def _within(table: pa.Table, times: pa.ChunkedArray, start: datetime, end: datetime) -> pa.Table:
    """The rows whose time lies in [start, end); all of them without a copy when all do (a
    window within one month or day: every tick, every monthly history run)."""
    inside = _inside(times, start, end)
    return table if pc.all(inside, skip_nulls=False).as_py() else table.filter(inside)


def _files_in(month_dir: Path) -> list[Path]:
    return sorted(month_dir.glob(FACT_FILES))


def _is_month(name: str) -> bool:
    try:
        datetime.strptime(name, "%Y-%m")
    except ValueError:
        return False
    return True


def _has_day_files(month_dir: Path) -> bool:
    return any(f.stem != month_dir.name for f in _files_in(month_dir))


def _covers(target: Path, start: datetime, end: datetime) -> bool:
    """Whether [start, end) holds the whole span a month (`YYYY-MM`) or day file is for."""
    span_start = datetime.fromisoformat(
        target.stem if len(target.stem) > 7 else f"{target.stem}-01"
    ).replace(tzinfo=UTC)
    span_end = next_day(span_start) if len(target.stem) > 7 else next_month(span_start)
    return start <= span_start and end >= span_end


def _fill(name: str, table: pa.Table) -> Callable[[Path], None]:
    def fill(directory: Path) -> None:
        _write_parquet(table)(directory / name)

    return fill


@dataclasses.dataclass
class Compaction:
    """What `Warehouse.compact_months` did: months merged, the files they had, and the
    catalog files another process held open when it stopped (empty: it finished)."""

    months: int = 0
    files: int = 0
    busy: list[Path] = dataclasses.field(default_factory=list)

    @property
    def busy_message(self) -> str:
        """Why it stopped, naming the files, for the command line and the nightly run."""
        return f"another process has the catalog open ({', '.join(str(p) for p in self.busy)})"


def _micros(times: pa.ChunkedArray) -> np.ndarray:
    return times.combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)


def _ascending(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))


def _summary_sql(name: str) -> str:
    return (SQL_DIR / "summaries" / f"{name}.sql").read_text(encoding="utf-8")


def _version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _current_summary(summary: Path, facts: Path, version: str) -> bool:
    """Whether a summary file was written after its fact file by this summary SQL."""
    try:
        if summary.stat().st_mtime_ns < facts.stat().st_mtime_ns:
            return False
        metadata = pq.read_schema(summary).metadata or {}
    except (FileNotFoundError, pa.ArrowInvalid):
        return False
    return metadata.get(SUMMARY_VERSION_KEY.encode()) == version.encode()


def _write_parquet(table: pa.Table) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, compression="zstd", row_group_size=256_000)

    return write


class Warehouse(dg.ConfigurableResource):
    """Where facts, mappings and the analysts' catalog live (one folder, one catalog file)."""

    root: str

    # -- layout -------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return Path(self.root).resolve()

    @property
    def catalog_path(self) -> Path:
        return self.path / CATALOG_NAME

    def fact_dir(self, table: str) -> Path:
        return self.path / "facts" / table

    def month_dir(self, table: str, owner: str, month: datetime) -> Path:
        """Where one owner's rows of one UTC month are: one month file if its first write was
        the whole month (a history run), else day files (a tick rewrites a day, not the month
        to date)."""
        return self.fact_dir(table) / owner / f"{month:%Y-%m}"

    def fact_file(self, table: str, owner: str, month: datetime) -> Path:
        """The file of a month whose first write was the whole month (a history run)."""
        return self.month_dir(table, owner, month) / f"{month:%Y-%m}.parquet"

    def day_file(self, table: str, owner: str, day: datetime) -> Path:
        return self.month_dir(table, owner, day) / f"{day:%Y-%m-%d}.parquet"

    def placeholder_file(self, table: str) -> Path:
        """An empty file with the table's columns, so the table's views read no rows rather
        than fail before the first import."""
        return self.fact_dir(table) / "_schema" / "empty" / "empty.parquet"

    def owner_files(self, table: str, owner: str) -> list[Path]:
        """One owner's fact files, after the table's placeholder: what a query about one
        integration reads instead of every integration's files."""
        return [
            self.placeholder_file(table),
            *sorted((self.fact_dir(table) / owner).glob(f"*/{FACT_FILES}")),
        ]

    @property
    def staging_dir(self) -> Path:
        """Where a compacted month's new directory is built before it is swapped in (outside
        the views' globs, on the warehouse's file system)."""
        return self.path / "staging"

    @property
    def retired_catalogs_dir(self) -> Path:
        """Earlier catalogs, kept under a second name while a connection may still have one
        open: compaction must see those connections too (see `compact_months`)."""
        return self.path / "retired_catalogs"

    def mapping_file(self, name: str) -> Path:
        return self.path / "mappings" / f"{name}.parquet"

    def registry_file(self, name: str, integration_id: str) -> Path:
        return self.path / "registry" / name / f"{integration_id}.parquet"

    def _lock(self, target: Path):
        return file_lock(self.path / "locks" / target.relative_to(self.path).with_suffix(".lock"))

    # -- facts --------------------------------------------------------------------------------
    def replace_window(
        self,
        table: str,
        owner: str,
        start: datetime,
        end: datetime,
        frame: pd.DataFrame,
    ) -> int:
        """Replace exactly [start, end) of one owner's rows in `table` with `frame`.

        Idempotent: importing the same window twice leaves the same rows. Each file is swapped
        atomically; rows of other windows in the same file are kept as they were. A month keeps
        the grain of its first write: a whole month (a history run) into an empty month writes
        its month file; anything else writes the day files of its days, unless the month has a
        month file, which then takes the window.
        """
        schema = FACT_SCHEMAS[table]
        incoming = _to_arrow(frame, schema) if len(frame) else schema.empty_table()
        times = self._times(incoming, table)
        written = 0
        for month_from, month_to in months(start, end):
            rows = _within(incoming, times, month_from, month_to)
            with self._lock(self.month_dir(table, owner, month_from)):
                self._replace_in_month(table, owner, month_from, month_to, rows)
            written += rows.num_rows
        return written

    def _replace_in_month(
        self, table: str, owner: str, start: datetime, end: datetime, rows: pa.Table
    ) -> None:
        """[start, end) lies in one month; called under the month's lock. Rows stay in the
        file they were first written to (see the module's docstring for why)."""
        month = month_start(start)
        month_file = self.fact_file(table, owner, month)
        whole = start == month and end == next_month(month)
        if month_file.exists() or (whole and not _files_in(month_file.parent)):
            self._replace_in_file(table, month_file, start, end, rows)
            return
        times = self._times(rows, table)
        for day_from, day_to in days(start, end):
            target = self.day_file(table, owner, day_from)
            self._replace_in_file(
                table, target, day_from, day_to, _within(rows, times, day_from, day_to)
            )

    def _replace_in_file(
        self, table: str, target: Path, start: datetime, end: datetime, rows: pa.Table
    ) -> None:
        """Replace [start, end) of one file (a window within its month or day) and its sums; a
        file left with no rows is removed (its rows are deleted, none move elsewhere)."""
        if not target.exists() and rows.num_rows == 0:
            return  # no file and nothing to put in it: a day with no rows has no file
        kept = self._read_outside(target, table, start, end)
        merged = pa.concat_tables([kept, rows]) if kept is not None else rows
        if merged.num_rows == 0:
            target.unlink()
            if table in SUMMARIES:
                self._summary_file(table, target).unlink(missing_ok=True)
            return
        merged = _sorted(merged, TIME_COLUMNS[table])
        replace_atomically(target, _write_parquet(merged))
        self._write_summary(table, target, merged)

    def compact_months(self, before: datetime) -> Compaction:
        """Merge the day files of every month that ended by `before` into one month file per
        (table, integration), so queries open fewer files.

        Rows move between files here, which a query listing the month's folder at that moment
        could miss without an error (see the module's docstring). So each month is merged
        while this process holds DuckDB's own lock on the catalog and on every earlier
        catalog a connection may still have open: no analyst's connection is open, and a new
        one is refused with a lock error (retry it) while the month is merged. If a
        connection is open, it stops and reports the busy catalog files; run it again later.
        Queries that read the Parquet files without the catalog are not covered.
        """
        done = Compaction()
        for table in FACT_SCHEMAS:
            for month_dir in sorted(self.fact_dir(table).glob("*/*")):
                if not month_dir.is_dir() or not _is_month(month_dir.name):
                    continue
                month = datetime.strptime(month_dir.name, "%Y-%m").replace(tzinfo=UTC)
                if next_month(month) > before or not _has_day_files(month_dir):
                    continue
                # The catalog's build lock first, so no new catalog is renamed in meanwhile.
                with self._lock(self.catalog_path):
                    catalogs = [self.catalog_path, *self.retired_catalogs_dir.glob("*.duckdb")]
                    with duckdb_files_locked(catalogs) as busy, self._lock(month_dir):
                        if busy:
                            done.busy = busy
                            return done
                        merged = self._compact_month(table, month_dir, month)
                if merged:
                    done.months += 1
                    done.files += merged
        self._remove_retired_catalogs()
        return done

    def _compact_month(self, table: str, month_dir: Path, month: datetime) -> int:
        """Merge one month's files into its month file (under its lock); returns how many
        files there were, 0 if it held only its month file (another process was first)."""
        if not _has_day_files(month_dir):
            return 0
        files = _files_in(month_dir)
        rows = [pq.read_table(f, schema=FACT_SCHEMAS[table]) for f in files]
        self._write_month(table, month_dir.parent.name, month, pa.concat_tables(rows))
        return len(files)

    def _write_month(self, table: str, owner: str, month: datetime, rows: pa.Table) -> None:
        """Make a month's directory hold one month file with `rows`, whatever it held before,
        in one atomic swap per table (the day sums first: if the facts' swap never happens,
        the day files are still there and the sums are mended with the catalog)."""
        rows = _sorted(rows, TIME_COLUMNS[table])
        name = f"{month:%Y-%m}.parquet"
        summary = self._summary_of(table, rows)
        if summary is not None:
            summary_dir = self.month_dir(SUMMARIES[table], owner, month)
            replace_directory(summary_dir, _fill(name, summary), self.staging_dir)
        replace_directory(self.month_dir(table, owner, month), _fill(name, rows), self.staging_dir)

    def _remove_retired_catalogs(self) -> None:
        """Remove the earlier catalogs no connection holds open any more."""
        for retired in sorted(self.retired_catalogs_dir.glob("*.duckdb")):
            with duckdb_files_locked([retired]) as busy:
                if not busy:
                    retired.unlink(missing_ok=True)

    def _summary_file(self, table: str, facts_file: Path) -> Path:
        return self.fact_dir(SUMMARIES[table]) / facts_file.relative_to(self.fact_dir(table))

    def _summary_of(self, table: str, facts: pa.Table) -> pa.Table | None:
        name = SUMMARIES.get(table)
        if name is None:
            return None
        sql = _summary_sql(name)
        with duckdb.connect() as con:
            con.register("facts", facts)
            summary = con.sql(sql).to_arrow_table().cast(SUMMARY_SCHEMAS[name])
        return summary.replace_schema_metadata({SUMMARY_VERSION_KEY: _version(sql)})

    def _write_summary(self, table: str, facts_file: Path, facts: pa.Table) -> None:
        """Replace the summary of one fact file (called under the fact file's month lock)."""
        summary = self._summary_of(table, facts)
        if summary is not None:
            replace_atomically(self._summary_file(table, facts_file), _write_parquet(summary))

    def refresh_summaries(self) -> int:
        """Write the summaries of fact files that have none, an older one (a warehouse made
        before a summary existed, or a write interrupted between the two files) or one made
        by another version of the summary's SQL, and remove summaries whose fact file is gone;
        returns how many were written."""
        refreshed = 0
        for table, name in SUMMARIES.items():
            version = _version(_summary_sql(name))
            for target in sorted(self.fact_dir(table).glob(f"*/*/{FACT_FILES}")):
                if target.parent.parent.name == "_schema":
                    continue
                summary = self._summary_file(table, target)
                with self._lock(target.parent):
                    if _current_summary(summary, target, version):
                        continue
                    facts = pq.read_table(target, schema=FACT_SCHEMAS[table])
                    self._write_summary(table, target, facts)
                refreshed += 1
            for summary in sorted(self.fact_dir(name).glob(f"*/*/{FACT_FILES}")):
                facts_file = self.fact_dir(table) / summary.relative_to(self.fact_dir(name))
                if summary.parent.parent.name != "_schema" and not facts_file.exists():
                    with self._lock(facts_file.parent):
                        if not facts_file.exists():
                            summary.unlink(missing_ok=True)
        return refreshed

    def migrate_layout(self) -> int:
        """Move month files of the earlier layout (`<owner>/<YYYY-MM>.parquet`) into their
        month's directory; returns how many were moved. Run before any write of this version."""
        moved = 0
        for table in {**FACT_SCHEMAS, **SUMMARY_SCHEMAS}:
            for old in sorted(self.fact_dir(table).glob(f"*/{FACT_FILES}")):
                if old.parent.name == "_schema":
                    old.unlink(missing_ok=True)  # the earlier placeholder
                    continue
                if not _is_month(old.stem):
                    continue
                month_dir = old.parent / old.stem
                with self._lock(month_dir):
                    if _files_in(month_dir):
                        raise RuntimeError(
                            f"warehouse layout: both {old} (earlier layout) and files in "
                            f"{month_dir} exist; move the rows of one into the other by hand"
                        )
                    month_dir.mkdir(parents=True, exist_ok=True)
                    os.replace(old, month_dir / old.name)
                moved += 1
        return moved

    def _times(self, table: pa.Table, name: str) -> pa.ChunkedArray:
        if name == "rejected_rows":
            keys = table.column("partition_key")
            return pc.strptime(keys, format="%Y-%m-%d-%H:%M", unit="us").cast(TS)
        return table.column(TIME_COLUMNS[name])

    def _read_outside(
        self, target: Path, table: str, start: datetime, end: datetime
    ) -> pa.Table | None:
        if not target.exists() or _covers(target, start, end):
            return None  # the window covers the file's whole span: nothing outside it
        existing = pq.read_table(target, schema=FACT_SCHEMAS[table])
        times = self._times(existing, table)
        values = _micros(times)
        if times.null_count == 0 and _ascending(values):
            # Rows in time order (as fact files are written): the window is one slice of them,
            # and the rows around it are kept without copying.
            bounds = [pa.scalar(t, TS).cast(pa.int64()).as_py() for t in (start, end)]
            first, last = np.searchsorted(values, bounds, side="left")
            return pa.concat_tables([existing.slice(0, first), existing.slice(last)])
        return existing.filter(pc.invert(_inside(times, start, end)))

    def read_window(self, table: str, owner: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows of one owner in [start, end), straight from the Parquet files."""
        tables = [
            pq.read_table(target, schema=FACT_SCHEMAS[table])
            for month_from, _ in months(start, end)
            for target in _files_in(self.month_dir(table, owner, month_from))
        ]
        if not tables:
            return FACT_SCHEMAS[table].empty_table().to_pandas()
        merged = pa.concat_tables(tables)
        return _within(merged, self._times(merged, table), start, end).to_pandas()

    # -- registries (never deleted: queues stay when an integration goes) ---------------------
    def register_queues(self, integration_id: str, frame: pd.DataFrame) -> None:
        """First and last interval seen per external queue (in Arrow: this runs every tick)."""
        if frame.empty:
            return
        schema = REGISTRY_SCHEMAS["queues"]
        incoming = pa.table(
            {
                "external_queue_id": pa.array(frame["external_queue_id"], type=pa.string()),
                "interval_start": pa.array(frame["interval_start"], type=TS),
            }
        )
        seen = incoming.group_by("external_queue_id").aggregate(
            [("interval_start", "min"), ("interval_start", "max")]
        )
        seen = pa.table(
            {
                "integration_id": pa.array([integration_id] * seen.num_rows, pa.string()),
                "external_queue_id": seen["external_queue_id"],
                "first_seen": seen["interval_start_min"],
                "last_seen": seen["interval_start_max"],
            },
            schema=schema,
        )
        target = self.registry_file("queues", integration_id)
        with self._lock(target):
            if target.exists():
                both = pa.concat_tables([pq.read_table(target, schema=schema), seen])
                merged = both.group_by(["integration_id", "external_queue_id"]).aggregate(
                    [("first_seen", "min"), ("last_seen", "max")]
                )
                seen = pa.table(
                    {
                        "integration_id": merged["integration_id"],
                        "external_queue_id": merged["external_queue_id"],
                        "first_seen": merged["first_seen_min"],
                        "last_seen": merged["last_seen_max"],
                    },
                    schema=schema,
                ).sort_by([("external_queue_id", "ascending")])
            replace_atomically(target, _write_parquet(seen))

    def register_integration(self, record: dict) -> None:
        """Keep what views need to know about an integration (timezone, interval) in a file,
        so its data stays queryable after it is removed from the config."""
        target = self.registry_file("integrations", record["integration_id"])
        frame = pd.DataFrame([{**record, "updated_at": datetime.now(UTC)}])
        table = _to_arrow(frame, REGISTRY_SCHEMAS["integrations"])
        with self._lock(target):
            replace_atomically(target, _write_parquet(table))

    # -- mappings -----------------------------------------------------------------------------
    def write_mapping(self, name: str, frame: pd.DataFrame) -> None:
        target = self.mapping_file(name)
        table = _to_arrow(frame, MAPPING_SCHEMAS[name])
        with self._lock(target):
            replace_atomically(target, _write_parquet(table))

    # -- catalog ------------------------------------------------------------------------------
    def _placeholder_files(self) -> Iterable[tuple[Path, pa.Schema]]:
        for table, schema in {**FACT_SCHEMAS, **SUMMARY_SCHEMAS}.items():
            yield self.placeholder_file(table), schema
        for name, schema in REGISTRY_SCHEMAS.items():
            yield self.path / "registry" / name / "_empty.parquet", schema
        for name, schema in MAPPING_SCHEMAS.items():
            yield self.mapping_file(name), schema

    def catalog_sql(self) -> str:
        """The views, rendered for this warehouse folder (paths are DDL, not values)."""
        statements = []
        for sql_file in sorted(SQL_DIR.glob("*.sql")):
            text = sql_file.read_text(encoding="utf-8")
            text = text.replace("'{warehouse}", "'" + str(self.path).replace("'", "''"))
            statements.append(f"-- {sql_file.name}\n{text.strip()}")
        return "\n\n".join(statements) + "\n"

    def ensure_catalog(self) -> bool:
        """Build the catalog if missing or out of date; returns whether it was rebuilt."""
        for target, schema in self._placeholder_files():
            if not target.exists():
                with self._lock(target):
                    if not target.exists():
                        replace_atomically(target, _write_parquet(schema.empty_table()))
        sql = self.catalog_sql()
        # A changed summary query counts as a change: the rebuild rewrites the summaries.
        version = _version(sql + "".join(_summary_sql(name) for name in SUMMARIES.values()))
        stamp = self.path / f"{CATALOG_NAME}.version"
        with self._lock(self.catalog_path):
            if self.catalog_path.exists() and stamp.exists() and stamp.read_text() == version:
                return False

            def build(tmp: Path) -> None:
                with duckdb.connect(str(tmp)) as con:
                    con.execute(sql)
                    con.execute("CHECKPOINT")

            self.migrate_layout()  # before the views that read the layout it moves files to
            self.refresh_summaries()  # new views may read summaries older files lack
            if self.catalog_path.exists():  # a connection may still have it open
                self.retired_catalogs_dir.mkdir(parents=True, exist_ok=True)
                os.link(self.catalog_path, self.retired_catalogs_dir / f"{uuid.uuid4().hex}.duckdb")
            replace_atomically(self.catalog_path, build)
            self._remove_retired_catalogs()
            replace_atomically(stamp, lambda tmp: tmp.write_text(version))
        return True

    def connect(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """A connection to the catalog as analysts get it: read-only, UTC session."""
        self.ensure_catalog()
        con = duckdb.connect(str(self.catalog_path), read_only=read_only)
        con.execute("SET TimeZone = 'UTC'")
        return con

    def query(self, sql: str, params: Sequence | None = None) -> pd.DataFrame:
        def read() -> pd.DataFrame:
            with self.connect() as con:
                return con.execute(sql, params or []).df()

        return read_retrying(read)
