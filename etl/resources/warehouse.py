"""The warehouse: immutable Parquet files, and a read-only DuckDB catalog of views over them.

DuckDB allows one writing process per database file and an analyst's open connection blocks a
writer, so imports never write a DuckDB file analysts may hold. Facts (per table, owner and UTC
month or day), day sums, the quarantine, the import log, the registries and the mappings are
Parquet files, and every version of each is a file of its own that is never changed, renamed
over or reused: DuckDB reads a file's footer and later opens it again by name, so a file
replaced in between would be read at the old footer's offsets. Which file is current for each
slot is recorded in a manifest per unit (`manifest.py`: an integration, or the mappings),
changed by one transaction at a time under the unit's lock. After each commit the catalog
(`catalog.py`) gets a new version whose views list the current files by name, and
`wfm.duckdb` is switched to it atomically: a connection sees one whole state of the warehouse,
the one current when it was opened, and no file it lists is removed while it is open. Files
and catalog versions no one can read any more are removed by `collect_garbage`.

A month keeps the file grain of its first write: a whole month (a history run) into an empty
month is one month file; anything else writes the day files of its days, so a 15-minute tick
rewrites its day, not the month to date. `compact_months` merges an ended month's day files
into a month file, beside open connections like any other write.

Files the warehouse did not write (a copy an analyst wrote with `COPY ... TO` into its folders,
a stray file) are never read by the views; `foreign_files` names them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.partitions import days, month_start, months, next_day, next_month
from etl.resources.catalog import CATALOG_NAME, QUIET, Catalog, Plan, Version, digest
from etl.resources.files import file_lock, replace_atomically, try_lock, write_new
from etl.resources.manifest import MAPPINGS_UNIT, WHOLE, Entry, Manifest, unit_of

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
TABLES_DIR = "tables"
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
    # Real-time agent status (etl/ingest/publisher.py): the landed segments of each
    # integration's local today, all in the file of `live_day` (UTC midnight of that date).
    "agent_status_live": pa.schema(
        [
            ("integration_id", pa.string()),
            ("user_identifier", pa.string()),
            ("external_activity", pa.string()),
            ("start_utc", TS),
            ("end_utc", TS),
            ("live_day", TS),
            ("day_local", pa.date32()),
            ("timezone", pa.string()),
            ("landed_at", TS),
            ("published_at", TS),
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
    "agent_status_live": "live_day",
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


# Earlier layouts' folders: their files are taken over in place by the first catalog build.
LEGACY_DIRS = ("facts", "registry", "mappings")
LAYOUT_VERSION = "2"
# Names the warehouse gives its files: `<slot>.<version>.parquet`, slot a month, a day or
# `all`; and the earlier layout's `<YYYY-MM>[-DD].parquet`, `<integration>.parquet`, ...
OWN_NAME = re.compile(r"^(\d{4}-\d{2}(-\d{2})?|all)\.[0-9a-f]{22}\.parquet$")
OWNER_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z_]+)?$|^_mappings$")
# A file no manifest or catalog lists is removed only when it is at least this old: a writer
# may have just written it and not committed yet.
ORPHAN_AGE_S = 15 * 60.0
GC_INTERVAL_S = 30.0
_open_transactions: contextvars.ContextVar[dict[tuple[str, str], Transaction] | None] = (
    contextvars.ContextVar("wfm_warehouse_transactions", default=None)
)


def _to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Conform a frame to the stored schema: missing optional columns become nulls."""
    columns = {}
    for f in schema:
        if f.name in frame.columns:
            columns[f.name] = pa.array(frame[f.name], type=f.type, from_pandas=True)
        else:
            columns[f.name] = pa.nulls(len(frame), type=f.type)
    return pa.table(columns, schema=schema)


def _micros(times: pa.ChunkedArray) -> np.ndarray:
    return times.combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)


def _ascending(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))


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
    """The rows whose time lies in [start, end); all of them without a copy when all do."""
    inside = _inside(times, start, end)
    return table if pc.all(inside, skip_nulls=False).as_py() else table.filter(inside)


def _slot_span(slot: str) -> tuple[datetime, datetime]:
    """The UTC span a month (`YYYY-MM`) or day (`YYYY-MM-DD`) slot is for."""
    if len(slot) > 7:
        start = datetime.fromisoformat(slot).replace(tzinfo=UTC)
        return start, next_day(start)
    start = datetime.fromisoformat(f"{slot}-01").replace(tzinfo=UTC)
    return start, next_month(start)


def _schema_hash(schema: pa.Schema) -> str:
    return digest(schema.remove_metadata().to_string())[:12]


def _sql_literal(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _summary_sql(name: str) -> str:
    return (SQL_DIR / "summaries" / f"{name}.sql").read_text(encoding="utf-8")


def _write_parquet(table: pa.Table) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, compression="zstd", row_group_size=256_000)

    return write


def owner_view(table: str, owner: str) -> str:
    """The catalog's view of one owner's files of a table (e.g. `_import_log__berlin.contacts`):
    what a query about one integration reads instead of every integration's files."""
    return f"_{table}__{owner}"


def _all_schemas() -> dict[str, pa.Schema]:
    return {**FACT_SCHEMAS, **SUMMARY_SCHEMAS, **REGISTRY_SCHEMAS, **MAPPING_SCHEMAS}


@dataclasses.dataclass
class Compaction:
    """What `Warehouse.compact_months` did: months merged and the files they had."""

    months: int = 0
    files: int = 0


class Transaction:
    """Writes to one unit that become visible together: a new manifest and catalog version
    when the block ends without an error; nothing (and no file left) when it raises."""

    def __init__(self, warehouse: Warehouse, unit: str):
        self.warehouse = warehouse
        self.unit = unit
        self.manifest = Manifest.load(warehouse.manifest_path(unit), unit)
        self.created: list[Path] = []
        self.changed = False

    def current(self, table: str, owner: str, slot: str) -> Path | None:
        entry = self.manifest.get(table, owner, slot)
        return None if entry is None else self.warehouse.path / entry.path

    def read(self, table: str, owner: str, slot: str) -> pa.Table | None:
        path = self.current(table, owner, slot)
        return None if path is None else pq.read_table(path, schema=_all_schemas()[table])

    def write(
        self, table: str, owner: str, slot: str, rows: pa.Table | None, metadata: dict | None = None
    ) -> None:
        """Make `rows` the slot's contents (None or no rows: the slot is emptied)."""
        self.changed = True
        if rows is None or rows.num_rows == 0:
            self.manifest.put(table, owner, slot, None)
            return
        if metadata:
            rows = rows.replace_schema_metadata(metadata)
        target = self.warehouse.new_file(table, owner, slot)
        write_new(target, _write_parquet(rows))
        self.created.append(target)
        entry = Entry(
            str(target.relative_to(self.warehouse.path)),
            rows.num_rows,
            _schema_hash(_all_schemas()[table]),
        )
        self.manifest.put(table, owner, slot, entry)

    def adopt(self, table: str, owner: str, slot: str, source: Path) -> None:
        """Make a file of another warehouse on the same file system the slot's contents, by a
        hard link under a new name (a copy of a warehouse without copying its data)."""
        self.changed = True
        target = self.warehouse.new_file(table, owner, slot)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
        self.created.append(target)
        rows = pq.read_metadata(target).num_rows
        current = _all_schemas()[table]
        same = pq.read_schema(target).remove_metadata().equals(current.remove_metadata())
        schema = _schema_hash(current) if same else "other"
        self.manifest.put(
            table, owner, slot, Entry(str(target.relative_to(self.warehouse.path)), rows, schema)
        )

    def commit(self) -> None:
        if not self.changed:
            return
        self.manifest.generation += 1
        self.manifest.save(self.warehouse.manifest_path(self.unit))

    def abort(self) -> None:
        for path in self.created:
            path.unlink(missing_ok=True)


class Warehouse(dg.ConfigurableResource):
    """Where facts, mappings and the analysts' catalog live (one folder, one catalog link)."""

    root: str

    # -- layout -------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return Path(self.root).resolve()

    @property
    def catalog_path(self) -> Path:
        """What analysts open read-only: a link to the newest catalog version."""
        return self.path / CATALOG_NAME

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.path)

    @property
    def tables_dir(self) -> Path:
        return self.path / TABLES_DIR

    def manifest_path(self, unit: str) -> Path:
        return self.path / "state" / "manifests" / f"{unit}.json"

    def manifests(self) -> dict[str, Manifest]:
        folder = self.path / "state" / "manifests"
        return {p.stem: Manifest.load(p, p.stem) for p in sorted(folder.glob("*.json"))}

    def new_file(self, table: str, owner: str, slot: str) -> Path:
        """A name no file of the warehouse ever had: `<slot>.<time and random>.parquet`."""
        version = f"{time.time_ns():016x}{uuid.uuid4().hex[:6]}"
        folder = self.tables_dir / table / owner
        if slot != WHOLE:
            folder = folder / slot[:7]
        return folder / f"{slot}.{version}.parquet"

    def placeholder_file(self, table: str) -> Path:
        """An empty file with the table's columns, first in every view's file list, so a table
        without rows reads none rather than failing; named by its columns, never rewritten."""
        schema = _all_schemas()[table]
        return self.tables_dir / "_schema" / f"{table}.{_schema_hash(schema)}.parquet"

    def _lock(self, name: str):
        return file_lock(self.path / "locks" / f"{name}.lock")

    # -- transactions -------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, unit: str) -> Iterator[Transaction]:
        """All writes to `unit` inside the block become visible at once, when it ends (nested
        blocks join the outer one). One transaction per unit at a time, across processes."""
        open_now = _open_transactions.get() or {}
        key = (str(self.path), unit)
        if key in open_now:
            yield open_now[key]
            return
        with self._lock(f"unit-{unit}"):
            tx = Transaction(self, unit)
            token = _open_transactions.set({**open_now, key: tx})
            try:
                yield tx
            except BaseException:
                tx.abort()
                raise
            finally:
                _open_transactions.reset(token)
            tx.commit()
        if tx.changed:
            self.publish()

    # -- facts --------------------------------------------------------------------------------
    def replace_window(
        self,
        table: str,
        owner: str,
        start: datetime,
        end: datetime,
        frame: pd.DataFrame,
    ) -> int:
        """Replace exactly [start, end) of one owner's rows in `table` with `frame`; returns the
        rows written.

        Idempotent: importing the same window twice leaves the same rows. Rows of other windows
        in the same file are kept. A month keeps the grain of its first write: a whole month (a
        history run) into an empty month writes its month file; anything else writes the day
        files of its days, unless the month has a month file, which then takes the window.
        """
        schema = FACT_SCHEMAS[table]
        incoming = _to_arrow(frame, schema) if len(frame) else schema.empty_table()
        times = self._times(incoming, table)
        written = 0
        with self.transaction(unit_of(owner)) as tx:
            for month_from, month_to in months(start, end):
                rows = _within(incoming, times, month_from, month_to)
                self._replace_in_month(tx, table, owner, month_from, month_to, rows)
                written += rows.num_rows
        return written

    def _replace_in_month(
        self,
        tx: Transaction,
        table: str,
        owner: str,
        start: datetime,
        end: datetime,
        rows: pa.Table,
    ) -> None:
        """[start, end) lies in one month."""
        month = month_start(start)
        month_slot = f"{month:%Y-%m}"
        in_month = [s for s in tx.manifest.slots(table, owner) if s.startswith(month_slot)]
        whole = start == month and end == next_month(month)
        if month_slot in in_month or (whole and not in_month):
            self._replace_in_slot(tx, table, owner, month_slot, start, end, rows)
            return
        times = self._times(rows, table)
        for day_from, day_to in days(start, end):
            self._replace_in_slot(
                tx,
                table,
                owner,
                f"{day_from:%Y-%m-%d}",
                day_from,
                day_to,
                _within(rows, times, day_from, day_to),
            )

    def _replace_in_slot(
        self,
        tx: Transaction,
        table: str,
        owner: str,
        slot: str,
        start: datetime,
        end: datetime,
        rows: pa.Table,
    ) -> None:
        """Replace [start, end) of one slot, and its day sums; a slot left without rows is
        emptied."""
        current = tx.current(table, owner, slot)
        if current is None and rows.num_rows == 0:
            return  # nothing there and nothing to put there: a day with no rows has no file
        span_start, span_end = _slot_span(slot)
        kept = None
        if current is not None and not (start <= span_start and end >= span_end):
            kept = self._outside(
                pq.read_table(current, schema=FACT_SCHEMAS[table]), table, start, end
            )
        merged = pa.concat_tables([kept, rows]) if kept is not None else rows
        self.write_slot(tx, table, owner, slot, merged)

    def write_slot(
        self, tx: Transaction, table: str, owner: str, slot: str, rows: pa.Table
    ) -> None:
        """Make `rows` one slot's contents, with its day sums (inside a transaction)."""
        rows = _sorted(rows, TIME_COLUMNS[table]) if rows.num_rows else rows
        tx.write(table, owner, slot, rows)
        summary = SUMMARIES.get(table)
        if summary is not None:
            tx.write(summary, owner, slot, self._summary_of(table, rows) if rows.num_rows else None)

    def _times(self, table: pa.Table, name: str) -> pa.ChunkedArray:
        if name == "rejected_rows":
            keys = table.column("partition_key")
            return pc.strptime(keys, format="%Y-%m-%d-%H:%M", unit="us").cast(TS)
        return table.column(TIME_COLUMNS[name])

    def _outside(self, existing: pa.Table, table: str, start: datetime, end: datetime) -> pa.Table:
        times = self._times(existing, table)
        values = _micros(times)
        if times.null_count == 0 and _ascending(values):
            # Rows in time order (as files are written): the window is one slice of them, and
            # the rows around it are kept without copying.
            bounds = [pa.scalar(t, TS).cast(pa.int64()).as_py() for t in (start, end)]
            first, last = np.searchsorted(values, bounds, side="left")
            return pa.concat_tables([existing.slice(0, first), existing.slice(last)])
        return existing.filter(pc.invert(_inside(times, start, end)))

    def slots(self, table: str, owner: str) -> dict[str, Path]:
        """The current file of each slot (month or day) of one owner's table."""
        manifest = Manifest.load(self.manifest_path(unit_of(owner)), unit_of(owner))
        return {slot: self.path / e.path for slot, e in manifest.slots(table, owner).items()}

    def owner_files(self, table: str, owner: str) -> list[Path]:
        """One owner's current files, after the table's placeholder: what a query about one
        integration reads instead of every integration's files."""
        self._ensure_placeholders()
        return [self.placeholder_file(table), *self.slots(table, owner).values()]

    def read_window(self, table: str, owner: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows of one owner in [start, end), from its current files."""
        tables = []
        for slot, path in self.slots(table, owner).items():
            span_start, span_end = _slot_span(slot)
            if span_start < end and span_end > start:
                tables.append(pq.read_table(path, schema=FACT_SCHEMAS[table]))
        if not tables:
            return FACT_SCHEMAS[table].empty_table().to_pandas()
        merged = pa.concat_tables(tables)
        return _within(merged, self._times(merged, table), start, end).to_pandas()

    # -- day sums -------------------------------------------------------------------------------
    def _summary_of(self, table: str, facts: pa.Table) -> pa.Table:
        name = SUMMARIES[table]
        sql = _summary_sql(name)
        with duckdb.connect() as con:
            con.execute(QUIET)
            con.register("facts", facts)
            summary = con.sql(sql).to_arrow_table().cast(SUMMARY_SCHEMAS[name])
        return summary.replace_schema_metadata({SUMMARY_VERSION_KEY: digest(sql)})

    def refresh_summaries(self) -> int:
        """Write again the day sums that are missing or were made by another version of their
        SQL, and drop sums whose facts are gone; returns how many were written."""
        refreshed = 0
        for table, name in SUMMARIES.items():
            version = digest(_summary_sql(name)).encode()
            for unit in self.manifests():
                with self.transaction(unit) as tx:
                    for owner in tx.manifest.owners(table) | tx.manifest.owners(name):
                        facts = tx.manifest.slots(table, owner)
                        for slot in tx.manifest.slots(name, owner):
                            if slot not in facts:
                                tx.write(name, owner, slot, None)
                        for slot, entry in facts.items():
                            summary = tx.manifest.get(name, owner, slot)
                            if summary is not None:
                                meta = pq.read_schema(self.path / summary.path).metadata or {}
                                if meta.get(SUMMARY_VERSION_KEY.encode()) == version:
                                    continue
                            rows = pq.read_table(self.path / entry.path, schema=FACT_SCHEMAS[table])
                            tx.write(name, owner, slot, self._summary_of(table, rows))
                            refreshed += 1
        return refreshed

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
        with self.transaction(unit_of(integration_id)) as tx:
            existing = tx.read("queues", integration_id, WHOLE)
            if existing is not None:
                both = pa.concat_tables([existing, seen])
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
                )
                if seen.sort_by("external_queue_id").equals(existing.sort_by("external_queue_id")):
                    return  # nothing new: no new version
            tx.write("queues", integration_id, WHOLE, seen.sort_by("external_queue_id"))

    def register_integration(self, record: dict) -> None:
        """Keep what views need to know about an integration (timezone, interval) in a file,
        so its data stays queryable after it is removed from the config."""
        integration_id = record["integration_id"]
        with self.transaction(unit_of(integration_id)) as tx:
            existing = tx.read("integrations", integration_id, WHOLE)
            if existing is not None:
                before = existing.drop_columns(["updated_at"]).to_pylist()
                same = _to_arrow(pd.DataFrame([record]), REGISTRY_SCHEMAS["integrations"])
                if before == same.drop_columns(["updated_at"]).to_pylist():
                    return  # unchanged: the import does not make a new version
            frame = pd.DataFrame([{**record, "updated_at": datetime.now(UTC)}])
            tx.write(
                "integrations",
                integration_id,
                WHOLE,
                _to_arrow(frame, REGISTRY_SCHEMAS["integrations"]),
            )

    # -- mappings -----------------------------------------------------------------------------
    def write_mapping(self, name: str, frame: pd.DataFrame) -> None:
        with self.transaction(MAPPINGS_UNIT) as tx:
            tx.write(name, MAPPINGS_UNIT, WHOLE, _to_arrow(frame, MAPPING_SCHEMAS[name]))

    def mapping_path(self, name: str) -> Path | None:
        """The current file of a mapping, or None before it was first written."""
        return self.slots(name, MAPPINGS_UNIT).get(WHOLE)

    # -- compaction -----------------------------------------------------------------------------
    def compact_months(self, before: datetime) -> Compaction:
        """Merge the day files of every month that ended by `before` into one month file per
        (table, owner), so queries open fewer files. Beside open connections: they keep the
        day files they list until they close."""
        done = Compaction()
        for unit in self.manifests():
            with self.transaction(unit) as tx:
                for table in FACT_SCHEMAS:
                    for owner in sorted(tx.manifest.owners(table)):
                        by_month: dict[str, list[str]] = {}
                        for slot in tx.manifest.slots(table, owner):
                            by_month.setdefault(slot[:7], []).append(slot)
                        for month_slot, slots in sorted(by_month.items()):
                            month = datetime.fromisoformat(f"{month_slot}-01").replace(tzinfo=UTC)
                            if next_month(month) > before or slots == [month_slot]:
                                continue
                            parts = [tx.read(table, owner, s) for s in slots]
                            for slot in slots:
                                tx.write(table, owner, slot, None)
                                if table in SUMMARIES:
                                    tx.write(SUMMARIES[table], owner, slot, None)
                            self.write_slot(
                                tx,
                                table,
                                owner,
                                month_slot,
                                pa.concat_tables([p for p in parts if p is not None]),
                            )
                            done.months += 1
                            done.files += len(slots)
        return done

    # -- the catalog ----------------------------------------------------------------------------
    def catalog_sql(self) -> str:
        """The views of `sql/`, rendered (they read the generated views of the data files)."""
        statements = []
        for sql_file in sorted(SQL_DIR.glob("*.sql")):
            text = sql_file.read_text(encoding="utf-8")
            statements.append(f"-- {sql_file.name}\n{text.strip()}")
        return "\n\n".join(statements) + "\n"

    def _ensure_placeholders(self) -> None:
        for table, schema in _all_schemas().items():
            target = self.placeholder_file(table)
            if not target.exists():
                with contextlib.suppress(FileExistsError):
                    write_new(target, _write_parquet(schema.empty_table()))

    def _unit_objects(self, manifest: Manifest) -> dict:
        """The generated views of one unit: per table and owner a view listing its current
        files (by name, so a file no manifest names is never read)."""
        views: dict[str, str] = {}
        owners: dict[str, list[str]] = {}
        files: list[str] = []
        for table, schema in _all_schemas().items():
            columns = ", ".join(_quoted(f.name) for f in schema)
            current_hash = _schema_hash(schema)
            for owner in sorted(manifest.owners(table)):
                entries = list(manifest.slots(table, owner).values())
                files += [e.path for e in entries]
                paths = ", ".join(_sql_literal(self.path / e.path) for e in entries)
                mixed = any(e.schema != current_hash for e in entries)
                options = ", union_by_name = true" if mixed else ""
                name = owner_view(table, owner)
                views[name] = (
                    f"CREATE OR REPLACE VIEW {_quoted(name)} AS SELECT {columns} "
                    f"FROM read_parquet([{paths}]{options})"
                )
                owners.setdefault(table, []).append(owner)
        return {"views": views, "owners": owners, "files": files}

    def _plan(self, current: Version | None) -> Plan:
        """What the next catalog version holds. Units whose manifest did not change since the
        current version (same size, modification time and inode) keep their views as they
        are, so a tick reads and renders only its own integration's manifest."""
        static_sql = self.catalog_sql()
        full = current is None or current.static_hash != digest(static_sql)
        before = {} if full else current.state.get("units", {})
        units: dict[str, dict] = {}
        hashes: dict[str, str] = {}
        sql: dict[str, str] = {}
        folder = self.path / "state" / "manifests"
        for path in sorted(folder.glob("*.json")):
            stat = path.stat()
            fingerprint = [stat.st_mtime_ns, stat.st_size, stat.st_ino]
            unit = path.stem
            kept = before.get(unit)
            if kept is not None and kept["fingerprint"] == fingerprint:
                units[unit] = kept
            else:
                made = self._unit_objects(Manifest.load(path, unit))
                sql.update(made["views"])
                units[unit] = {
                    "fingerprint": fingerprint,
                    "objects": {name: digest(text) for name, text in made["views"].items()},
                    "owners": made["owners"],
                    "files": made["files"],
                }
            hashes.update(units[unit]["objects"])
        for table, schema in _all_schemas().items():
            columns = ", ".join(_quoted(f.name) for f in schema)
            placeholder = _sql_literal(self.placeholder_file(table))
            branches = [f"SELECT {columns} FROM read_parquet([{placeholder}])"]
            for unit in sorted(units):
                for owner in units[unit]["owners"].get(table, []):
                    branches.append(f"SELECT * FROM {_quoted(owner_view(table, owner))}")
            name = f"_{table}"
            sql[name] = f"CREATE OR REPLACE VIEW {_quoted(name)} AS\n" + "\nUNION ALL\n".join(
                branches
            )
            hashes[name] = digest(sql[name])
        files = [f for state in units.values() for f in state["files"]]
        return Plan(static_sql, hashes, sql, files, state={"units": units})

    def publish(self) -> bool:
        """Make the catalog show the current files (a no-op when it already does); then
        remove what no one can read any more, at most every `GC_INTERVAL_S`."""
        self._ensure_placeholders()
        catalog = self.catalog
        with catalog.locked():
            published = catalog.publish(self._plan)
        # Every run is a new process: when the last collection began is kept on disk, so the
        # runs of a tick do not each walk the whole warehouse.
        stamp = self.path / "locks" / "gc.stamp"
        try:
            last = stamp.stat().st_mtime
        except FileNotFoundError:
            last = 0.0
        if time.time() - last >= GC_INTERVAL_S:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()
            self.collect_garbage()
        return published

    def ensure_catalog(self) -> bool:
        """Take over a warehouse of the earlier layout, mend day sums made by another version
        of their SQL, and publish the catalog if it is missing or out of date; returns whether
        a version was published."""
        before = self.catalog.current_path()
        marker = self.path / "state" / "layout"
        if not (marker.exists() and marker.read_text() == LAYOUT_VERSION):
            with self.catalog.locked():
                if not (marker.exists() and marker.read_text() == LAYOUT_VERSION):
                    self._take_over_legacy()
                    replace_atomically(marker, lambda p: p.write_text(LAYOUT_VERSION))
        stamp = self.path / "state" / "summaries.version"
        version = digest("".join(_summary_sql(name) for name in SUMMARIES.values()))
        if not (stamp.exists() and stamp.read_text() == version):
            self.refresh_summaries()
            replace_atomically(stamp, lambda p: p.write_text(version))
        self.publish()
        return self.catalog.current_path() != before

    def _take_over_legacy(self) -> None:
        """Record the files of the earlier layouts (facts in `facts/<table>/<owner>/<YYYY-MM>/`
        or `facts/<table>/<owner>/<YYYY-MM>.parquet`, registries in `registry/`, mappings in
        `mappings/`) in manifests, in place, and keep the earlier catalog while it is open."""
        self.catalog.adopt_legacy()
        (self.path / f"{CATALOG_NAME}.version").unlink(missing_ok=True)
        found: dict[str, Manifest] = {}

        def add(table: str, owner: str, slot: str, path: Path) -> None:
            unit = MAPPINGS_UNIT if owner == MAPPINGS_UNIT else unit_of(owner)
            manifest = found.setdefault(unit, Manifest.load(self.manifest_path(unit), unit))
            if manifest.get(table, owner, slot) is not None:
                return
            meta = pq.read_metadata(path)
            schema = pq.read_schema(path)
            current = _all_schemas()[table]
            same = schema.remove_metadata().equals(current.remove_metadata())
            manifest.put(
                table,
                owner,
                slot,
                Entry(
                    str(path.relative_to(self.path)),
                    meta.num_rows,
                    _schema_hash(current) if same else "legacy",
                ),
            )

        facts = self.path / "facts"
        for table in {**FACT_SCHEMAS, **SUMMARY_SCHEMAS}:
            for path in sorted((facts / table).glob("*/*.parquet")):
                if path.parent.name != "_schema" and _is_month(path.stem):
                    add(table, path.parent.name, path.stem, path)
            for path in sorted((facts / table).glob("*/*/*.parquet")):
                if path.parent.parent.name != "_schema" and _is_slot(path.stem):
                    add(table, path.parent.parent.name, path.stem, path)
        for table in REGISTRY_SCHEMAS:
            for path in sorted((self.path / "registry" / table).glob("*.parquet")):
                if not path.name.startswith("_"):
                    add(table, path.stem, WHOLE, path)
        for table in MAPPING_SCHEMAS:
            path = self.path / "mappings" / f"{table}.parquet"
            if path.exists():
                add(table, MAPPINGS_UNIT, WHOLE, path)
        for unit, manifest in found.items():
            with self._lock(f"unit-{unit}"):
                manifest.generation += 1
                manifest.save(self.manifest_path(unit))

    # -- what no one can read any more ----------------------------------------------------------
    def _kept(self) -> tuple[set[str], bool]:
        """Files some manifest or kept catalog version lists, and whether a legacy catalog is
        kept (every file of the earlier layout with it)."""
        held, legacy = self.catalog.held_files()
        for manifest in self.manifests().values():
            held |= manifest.paths()
        return held, legacy

    def _files_under(self, folders: Iterable[str]) -> Iterator[Path]:
        for folder in folders:
            base = self.path / folder
            if base.is_dir():
                yield from (p for p in base.rglob("*") if p.is_file() or p.is_symlink())

    def collect_garbage(self, now: float | None = None) -> dict[str, int]:
        """Remove catalog versions no process holds (superseded at least a minute ago), then
        data files that neither a manifest nor a kept version lists, the warehouse's own only
        (a foreign file is never removed: see `foreign_files`)."""
        handle = try_lock(self.path / "locks" / "gc.lock")
        if handle is None:
            return {"versions": 0, "files": 0}  # another process is collecting
        try:
            now = time.time() if now is None else now
            with self.catalog.locked():
                versions = self.catalog.remove_unheld(now)
            kept, legacy = self._kept()
            removed = 0
            folders = [TABLES_DIR] + ([] if legacy else list(LEGACY_DIRS))
            for path in self._files_under(folders):
                relative = str(path.relative_to(self.path))
                if relative in kept or "_schema" in path.parts:
                    continue
                temporary = path.name.startswith(".tmp-")
                if path.is_symlink() or not (temporary or _own_file(Path(relative))):
                    continue
                try:
                    age = now - path.lstat().st_mtime
                except FileNotFoundError:
                    continue
                if relative.split("/", 1)[0] == TABLES_DIR and age < ORPHAN_AGE_S:
                    continue
                path.unlink(missing_ok=True)
                removed += 1
            return {"versions": versions, "files": removed}
        finally:
            handle.close()

    def foreign_files(self, owner: str | None = None) -> list[Path]:
        """Files in the warehouse's data folders that it did not write (an analyst's
        `COPY ... TO`, a stray copy): never read by a view, never removed; optionally only
        those in one integration's folders."""
        listed: set[str] = set()
        for manifest in self.manifests().values():
            listed |= manifest.paths()
        candidates = []
        for path in self._data_files(owner):
            relative = str(path.relative_to(self.path))
            if relative in listed or "_schema" in path.parts or path.name.startswith(".tmp-"):
                continue
            if _own_file(Path(relative)) and not path.is_symlink():
                continue  # a version being written, or superseded and not collected yet
            candidates.append((relative, path))
        if not candidates:
            return []
        # Only now the kept catalog versions (each lists every file it reads): a file of the
        # earlier layout that a write superseded stays theirs while a version still lists it.
        held, _ = self.catalog.held_files()
        return sorted(path for relative, path in candidates if relative not in held)

    def _data_files(self, owner: str | None) -> Iterator[Path]:
        """Every file of the data folders, or only those in one integration's folders."""
        if owner is None:
            yield from self._files_under([TABLES_DIR, *LEGACY_DIRS])
            return
        unit = unit_of(owner)
        for top in (TABLES_DIR, "facts"):
            for table_dir in sorted((self.path / top).glob("*/")):
                for folder in (table_dir / unit, *table_dir.glob(f"{unit}.*")):
                    if folder.is_dir():
                        yield from (p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        yield from sorted((self.path / "registry").glob(f"*/{unit}.parquet"))

    # -- reading --------------------------------------------------------------------------------
    def connect(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        """A connection to the current catalog version as analysts get it: read-only, UTC."""
        current = self.catalog.current_path()
        if current is None:
            self.ensure_catalog()
            current = self.catalog.current_path()
        con = duckdb.connect(str(current), read_only=True)
        con.execute("SET TimeZone = 'UTC'")
        con.execute(QUIET)
        return con

    def query(self, sql: str, params: Sequence | None = None) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params or []).df()


def _is_month(name: str) -> bool:
    try:
        datetime.strptime(name, "%Y-%m")
    except ValueError:
        return False
    return True


def _is_slot(name: str) -> bool:
    for pattern in ("%Y-%m", "%Y-%m-%d"):
        try:
            datetime.strptime(name, pattern)
        except ValueError:
            continue
        return True
    return False


def _own_file(relative: Path) -> bool:
    """Whether a path (relative to the warehouse) has a name and place the warehouse gives
    its files, in this layout (`tables/<table>/<owner>/[<YYYY-MM>/]<slot>.<version>.parquet`)
    or the earlier one; anything else there is foreign."""
    parts = relative.parts
    schemas = _all_schemas()
    if len(parts) < 3 or (parts[1] not in schemas and parts[1] != "_schema"):
        return False
    top, table, name = parts[0], parts[1], parts[-1]
    if table == "_schema":
        return top == TABLES_DIR and len(parts) == 3
    if top == TABLES_DIR:
        match = OWN_NAME.match(name)
        if not match or not OWNER_NAME.match(parts[2]):
            return False
        slot = match.group(1)
        if slot == WHOLE:
            return len(parts) == 4
        return len(parts) == 5 and parts[3] == slot[:7]
    if top == "facts":
        stem = name.removesuffix(".parquet")
        if len(parts) == 4:
            return parts[2] == "_schema" or _is_month(stem)
        return len(parts) == 5 and _is_slot(stem) and stem.startswith(parts[3])
    if top == "registry":
        return len(parts) == 3 and bool(re.match(r"^(_empty|[a-z][a-z0-9_]*)\.parquet$", name))
    return False
