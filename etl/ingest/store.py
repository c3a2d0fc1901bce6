"""The landing store: where pushed records are kept, durably, until their hour is imported.

Embedded by default: an SQLite file in WAL mode with `synchronous=FULL`, so a commit is on disk
(the WAL fsynced) before the server answers, several server processes can write (one commit at
a time, each waiting its turn) and an import run can read at the same time. Set
`WFM_LANDING_URL` to a PostgreSQL URL (`postgresql+psycopg2://...`) to keep it there instead.
The tables are defined in `sql/landing/` (one file each, in the SQL both databases accept).

This module only stores and reads; `etl.ingest.landing` decides what is landed (validation,
idempotency) and is the API other producers call.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

SQL_DIR = Path(__file__).resolve().parents[2] / "sql" / "landing"
LANDING_URL_ENV = "WFM_LANDING_URL"
OPEN_END_US = 2**62  # end_us of an open agent-status segment: later than any real time
HOUR_US = 3600 * 10**6
BUSY_TIMEOUT_MS = 30_000
PARAM = re.compile(r"(?<![:\w]):(\w+)")


def to_us(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC (exact: no float on the way)."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 10**6, UTC).replace(microsecond=us % 10**6)


def hour_floor_us(us: int) -> int:
    return us - us % HOUR_US


def default_url(home: Path) -> str:
    """The embedded store of a project home: `data/landing/landing.sqlite`."""
    return f"sqlite:///{home / 'data' / 'landing' / 'landing.sqlite'}"


def landing_url(env: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """`WFM_LANDING_URL` if set, else the embedded store under `WFM_HOME`."""
    env = os.environ if env is None else env
    if env.get(LANDING_URL_ENV):
        return env[LANDING_URL_ENV]
    from etl.config import PROJECT_ROOT

    return default_url(home or Path(env.get("WFM_HOME", PROJECT_ROOT)))


@dataclass
class StoredBatch:
    """One batch as the store writes it, all or nothing, in one transaction."""

    integration_id: str
    kind: str
    batch_id: str
    body_hash: str
    received_at_us: int
    status_code: int
    response: dict
    # (record_key, start_us, end_us, record JSON)
    records: list[tuple[str, int, int, str]] = field(default_factory=list)
    # (record_index, partition_us, source_ref, row_json, rules JSON)
    rejected: list[tuple[int, int, str, str, str]] = field(default_factory=list)
    # The hash of the API key the batch came with: checked again in the landing transaction,
    # so that a key rotated after the request was let in lands nothing.
    key_hash: str | None = None


@dataclass(frozen=True)
class Landed:
    """What happened to a batch: stored now, or the answer it got the first time."""

    duplicate: bool
    status_code: int
    response: dict
    conflicting_body: bool = False  # same batch id, another body
    revoked: bool = False  # its API key was replaced meanwhile: nothing landed


SELECT_KEY_OWNER = "SELECT integration_id FROM api_keys WHERE key_hash = :h"
INSERT_BATCH = """
INSERT INTO landing_batches (integration_id, batch_id, kind, body_hash, received_at_us,
                             status_code, response)
VALUES (:integration_id, :batch_id, :kind, :body_hash, :received_at_us, :status_code, :response)
ON CONFLICT (integration_id, batch_id) DO NOTHING
"""
SELECT_BATCH = """
SELECT body_hash, status_code, response FROM landing_batches
WHERE integration_id = :integration_id AND batch_id = :batch_id
"""
UPSERT_RECORD = """
INSERT INTO landing_records (integration_id, kind, record_key, start_us, end_us, record,
                             batch_id, landed_at_us)
VALUES (:integration_id, :kind, :record_key, :start_us, :end_us, :record, :batch_id,
        :landed_at_us)
ON CONFLICT (integration_id, kind, record_key, start_us) DO UPDATE SET
    end_us = excluded.end_us, record = excluded.record, batch_id = excluded.batch_id,
    landed_at_us = excluded.landed_at_us
"""
INSERT_REJECTED = """
INSERT INTO landing_rejected (integration_id, kind, batch_id, record_index, partition_us,
                              source_ref, row_json, rules, received_at_us)
VALUES (:integration_id, :kind, :batch_id, :record_index, :partition_us, :source_ref,
        :row_json, :rules, :received_at_us)
ON CONFLICT (integration_id, batch_id, record_index) DO NOTHING
"""
UPSERT_HEAD = """
INSERT INTO landing_heads (integration_id, kind, version, last_landed_at_us)
VALUES (:integration_id, :kind, 1, :landed_at_us)
ON CONFLICT (integration_id, kind) DO UPDATE SET
    version = landing_heads.version + 1, last_landed_at_us = excluded.last_landed_at_us
"""


def _write_ahead_log(cursor: sqlite3.Cursor) -> None:
    """Switch the database file to WAL (it stays so: only its first connection changes it).
    Changing the journal mode needs the file to itself, and SQLite answers "database is
    locked" at once instead of waiting when another process holds it, so it is tried again
    until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class LandingStore:
    """The landing store at `url` (SQLAlchemy URL: `sqlite:///...` or PostgreSQL)."""

    def __init__(self, url: str, background_checkpoints: bool = False) -> None:
        """`background_checkpoints` (SQLite): commits never copy the WAL into the database
        file themselves (SQLite's automatic checkpoint, with its own fsync, would stall the
        commit that triggers it); the owner calls `checkpoint()` from a thread of its own."""
        self.url = url
        parsed = sa.make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.background_checkpoints = background_checkpoints and self.is_sqlite
        if self.is_sqlite:
            if parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._sqlite_engine(immediate=True)
            self._reader = self._sqlite_engine(immediate=False)
        else:
            self._writer = self._reader = sa.create_engine(url, pool_pre_ping=True)
        self._created = False

    def _sqlite_engine(self, immediate: bool) -> sa.Engine:
        engine = sa.create_engine(
            self.url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        )

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record) -> None:
            # The driver's own transaction handling off: SQLAlchemy's begin event below
            # opens each transaction, and a writer takes the write lock at once (IMMEDIATE),
            # so two writers never deadlock upgrading read locks.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _write_ahead_log(cursor)
            cursor.execute("PRAGMA synchronous=FULL")
            if immediate and self.background_checkpoints:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def __repr__(self) -> str:  # never the URL's password
        return f"LandingStore({sa.make_url(self.url).render_as_string(hide_password=True)})"

    @property
    def where(self) -> str:
        return sa.make_url(self.url).render_as_string(hide_password=True)

    def create(self) -> None:
        """Create the tables (idempotent; every process calls it once)."""
        if self._created:
            return
        with self._writer.begin() as con:
            for path in sorted(SQL_DIR.glob("*.sql")):
                lines = path.read_text(encoding="utf-8").splitlines()
                code = "\n".join(line for line in lines if not line.startswith("--"))
                for statement in code.split(";"):
                    if statement.strip():
                        con.exec_driver_sql(statement)
        self._created = True

    def checkpoint(self) -> tuple[int, int]:
        """Copy committed WAL frames into the database file (SQLite; PASSIVE: it never waits
        for, nor blocks, a writer or a reader); returns (frames in the WAL, frames copied).
        Nothing to do on PostgreSQL."""
        if not self.is_sqlite:
            return (0, 0)
        self.create()
        with self._reader.connect() as con:
            _busy, frames, copied = con.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            return frames, copied

    def dispose(self) -> None:
        self._writer.dispose()
        self._reader.dispose()

    def _run(
        self, con: sa.Connection, sql: str, params: Mapping | Sequence[Mapping] | None = None
    ) -> sa.CursorResult:
        """Run a statement with named `:name` parameters straight through the driver (bound,
        never formatted in): SQLAlchemy's per-row parameter processing was half the cost of
        landing a batch. sqlite3 takes `:name` as it is; psycopg2 wants `%(name)s`."""
        if not self.is_sqlite:
            sql = PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
        if isinstance(params, Sequence) and not isinstance(params, Mapping):
            return con.exec_driver_sql(sql, list(params))
        return con.exec_driver_sql(sql, params or {})

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        self.create()
        with self._writer.begin() as con:
            yield con

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        self.create()
        with self._reader.begin() as con:
            yield con

    # -- landing ----------------------------------------------------------------------------
    def land(self, batches: Sequence[StoredBatch]) -> list[Landed]:
        """Write batches in one transaction (one fsync for all); a batch whose id is already
        stored lands nothing and gets the answer stored with it. The records of all new
        batches go in one statement each (in batch order: a later version of a record
        replaces an earlier one)."""
        results: list[Landed] = []
        records: list[dict] = []
        rejected: list[dict] = []
        heads: dict[tuple[str, str], int] = {}
        with self._write() as con:
            owners = {
                h: self._run(con, SELECT_KEY_OWNER, {"h": h}).scalar_one_or_none()
                for h in {b.key_hash for b in batches if b.key_hash is not None}
            }
            for batch in batches:
                if batch.key_hash is not None and owners[batch.key_hash] != batch.integration_id:
                    results.append(Landed(False, 401, {}, revoked=True))
                    continue
                ids = {"integration_id": batch.integration_id, "batch_id": batch.batch_id}
                inserted = self._run(
                    con,
                    INSERT_BATCH,
                    {
                        **ids,
                        "kind": batch.kind,
                        "body_hash": batch.body_hash,
                        "received_at_us": batch.received_at_us,
                        "status_code": batch.status_code,
                        "response": json.dumps(batch.response),
                    },
                ).rowcount
                if not inserted:
                    body_hash, status, response = self._run(con, SELECT_BATCH, ids).one()
                    results.append(
                        Landed(True, status, json.loads(response), body_hash != batch.body_hash)
                    )
                    continue
                self._rows_of(batch, records, rejected)
                head = (batch.integration_id, batch.kind)
                heads[head] = max(heads.get(head, 0), batch.received_at_us)
                results.append(Landed(False, batch.status_code, batch.response))
            if records:
                self._run(con, UPSERT_RECORD, records)
            if rejected:
                self._run(con, INSERT_REJECTED, rejected)
            for (integration_id, kind), at in heads.items():
                self._run(
                    con,
                    UPSERT_HEAD,
                    {"integration_id": integration_id, "kind": kind, "landed_at_us": at},
                )
        return results

    @staticmethod
    def _rows_of(batch: StoredBatch, records: list[dict], rejected: list[dict]) -> None:
        common = {
            "integration_id": batch.integration_id,
            "kind": batch.kind,
            "batch_id": batch.batch_id,
        }
        at = batch.received_at_us
        records.extend(
            {**common, "record_key": k, "start_us": s, "end_us": e, "record": r, "landed_at_us": at}
            for k, s, e, r in batch.records
        )
        rejected.extend(
            {
                **common,
                "record_index": i,
                "partition_us": p,
                "source_ref": ref,
                "row_json": row,
                "rules": rules,
                "received_at_us": at,
            }
            for i, p, ref, row, rules in batch.rejected
        )

    def withdraw(
        self, integration_id: str, kind: str, segments: Sequence[tuple[str, int, str]], at_us: int
    ) -> None:
        """Withdraw segments that lasted no time ((key, start_us, record JSON) each): a listener
        that loses track of an agent cannot tell how long the state it last saw lasted. The
        record is kept with end = start, which every reader skips (the live publisher drops it
        from the live view), so a withdrawal travels like any other change."""
        if not segments:
            return
        common = {"integration_id": integration_id, "kind": kind, "batch_id": "withdrawn"}
        with self._write() as con:
            self._run(
                con,
                UPSERT_RECORD,
                [
                    {
                        **common,
                        "record_key": key,
                        "start_us": start,
                        "end_us": start,
                        "record": record,
                        "landed_at_us": at_us,
                    }
                    for key, start, record in segments
                ],
            )
            self._run(con, UPSERT_HEAD, {**common, "landed_at_us": at_us})

    # -- reading ----------------------------------------------------------------------------
    def contact_records(self, integration_id: str, start_us: int, end_us: int) -> list[str]:
        """Contact records whose interval starts in [start, end)."""
        with self._read() as con:
            rows = self._run(
                con,
                "SELECT record FROM landing_records WHERE integration_id = :i "
                "AND kind = 'contacts' AND start_us >= :s AND start_us < :e "
                "ORDER BY start_us, record_key",
                {"i": integration_id, "s": start_us, "e": end_us},
            )
            return [row[0] for row in rows]

    def segment_records(
        self, integration_id: str, start_us: int, end_us: int
    ) -> list[tuple[str, int]]:
        """Agent-status records overlapping [start, end), with when each landed (withdrawn
        ones, which end where they start, left out)."""
        with self._read() as con:
            rows = self._run(
                con,
                "SELECT record, landed_at_us FROM landing_records WHERE integration_id = :i "
                "AND kind = 'agent_status' AND end_us > :s AND start_us < :e "
                "AND end_us > start_us ORDER BY start_us, record_key",
                {"i": integration_id, "s": start_us, "e": end_us},
            )
            return [(row[0], row[1]) for row in rows]

    def segments_overlapping(
        self, integration_id: str, start_us: int, end_us: int
    ) -> list[tuple[str, int, int, str, int]]:
        """Agent-status records overlapping [start, end): (key, start_us, end_us, record,
        landed_at_us)."""
        with self._read() as con:
            rows = self._run(
                con,
                "SELECT record_key, start_us, end_us, record, landed_at_us FROM landing_records "
                "WHERE integration_id = :i AND kind = 'agent_status' AND end_us > :s "
                "AND start_us < :e",
                {"i": integration_id, "s": start_us, "e": end_us},
            )
            return [tuple(row) for row in rows]

    def segments_landed_since(
        self, integration_id: str, since_us: int
    ) -> list[tuple[str, int, int, str, int]]:
        """Agent-status records (re)landed at or after `since_us`: (key, start_us, end_us,
        record, landed_at_us), for a reader that keeps its own copy up to date."""
        with self._read() as con:
            rows = self._run(
                con,
                "SELECT record_key, start_us, end_us, record, landed_at_us FROM landing_records "
                "WHERE integration_id = :i AND kind = 'agent_status' AND landed_at_us >= :since",
                {"i": integration_id, "since": since_us},
            )
            return [tuple(row) for row in rows]

    def rejected_records(
        self, integration_id: str, kind: str, start_us: int, end_us: int
    ) -> list[tuple[int, str, str, str]]:
        """Records refused at the door that belong to [start, end): (partition_us,
        source_ref, row_json, rules JSON)."""
        with self._read() as con:
            rows = self._run(
                con,
                "SELECT partition_us, source_ref, row_json, rules FROM landing_rejected "
                "WHERE integration_id = :i AND kind = :k AND partition_us >= :s "
                "AND partition_us < :e ORDER BY received_at_us, batch_id, record_index",
                {"i": integration_id, "k": kind, "s": start_us, "e": end_us},
            )
            return [tuple(row) for row in rows]

    def pruned_hours(self, integration_id: str, kind: str, start_us: int, end_us: int) -> set[int]:
        """The pruned hours in [start, end)."""
        with self._read() as con:
            rows = self._run(
                con,
                "SELECT hour_us FROM landing_pruned WHERE integration_id = :i AND kind = :k "
                "AND hour_us >= :s AND hour_us < :e",
                {"i": integration_id, "k": kind, "s": start_us, "e": end_us},
            )
            return {row[0] for row in rows}

    def last_landings(
        self, integration_id: str, kind: str, start_us: int, end_us: int
    ) -> dict[int, int]:
        """hour_us -> when the last record (or refused record) of that hour landed, for the
        hours in [start, end) that hold any."""
        hours: dict[int, int] = {}

        def seen(hour: int, at: int) -> None:
            if start_us <= hour < end_us:
                hours[hour] = max(hours.get(hour, 0), at)

        with self._read() as con:
            params = {"i": integration_id, "k": kind, "s": start_us, "e": end_us}
            if kind == "contacts":
                rows = self._run(
                    con,
                    "SELECT start_us, landed_at_us FROM landing_records WHERE integration_id = :i "
                    "AND kind = :k AND start_us >= :s AND start_us < :e",
                    params,
                )
                for begin, at in rows:
                    seen(hour_floor_us(begin), at)
            else:
                rows = self._run(
                    con,
                    "SELECT start_us, end_us, landed_at_us FROM landing_records "
                    "WHERE integration_id = :i AND kind = :k AND end_us > :s AND start_us < :e",
                    params,
                )
                for begin, finish, at in rows:
                    first = max(hour_floor_us(begin), start_us)
                    for hour in range(first, min(finish, end_us), HOUR_US):
                        seen(hour, at)
            for hour, at in self._run(
                con,
                "SELECT partition_us, received_at_us FROM landing_rejected "
                "WHERE integration_id = :i AND kind = :k AND partition_us >= :s "
                "AND partition_us < :e",
                params,
            ):
                seen(hour_floor_us(hour), at)
        return hours

    def heads(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(integration, kind) -> (version, last_landed_at_us)."""
        with self._read() as con:
            rows = self._run(
                con, "SELECT integration_id, kind, version, last_landed_at_us FROM landing_heads"
            )
            return {(row[0], row[1]): (row[2], row[3]) for row in rows}

    def published(self) -> dict[str, int]:
        with self._read() as con:
            rows = self._run(con, "SELECT integration_id, version FROM landing_published")
            return {row[0]: row[1] for row in rows}

    def mark_published(self, integration_id: str, version: int, at_us: int) -> None:
        with self._write() as con:
            self._run(
                con,
                "INSERT INTO landing_published (integration_id, version, published_at_us) "
                "VALUES (:i, :v, :at) ON CONFLICT (integration_id) DO UPDATE SET "
                "version = excluded.version, published_at_us = excluded.published_at_us",
                {"i": integration_id, "v": version, "at": at_us},
            )

    def count_records(self, integration_id: str, kind: str) -> int:
        with self._read() as con:
            rows = self._run(
                con,
                "SELECT count(*) FROM landing_records WHERE integration_id = :i AND kind = :k",
                {"i": integration_id, "k": kind},
            )
            return rows.scalar_one()

    # -- pruning ----------------------------------------------------------------------------
    def prune_hours(self, integration_id: str, kind: str, hours: Iterable[int]) -> int:
        """Mark the hours pruned and delete what only they need: contact records starting in
        them, segments that touch no other hour, and their refused records. Returns how many
        records were deleted."""
        hours = sorted(set(hours))
        if not hours:
            return 0
        deleted = 0
        with self._write() as con:
            self._run(
                con,
                "INSERT INTO landing_pruned (integration_id, kind, hour_us) VALUES (:i, :k, :h) "
                "ON CONFLICT (integration_id, kind, hour_us) DO NOTHING",
                [{"i": integration_id, "k": kind, "h": h} for h in hours],
            )
            for hour in hours:
                bounds = {"i": integration_id, "k": kind, "s": hour, "e": hour + HOUR_US}
                self._run(
                    con,
                    "DELETE FROM landing_rejected WHERE integration_id = :i AND kind = :k "
                    "AND partition_us >= :s AND partition_us < :e",
                    bounds,
                )
                if kind == "contacts":
                    deleted += self._run(
                        con,
                        "DELETE FROM landing_records WHERE integration_id = :i AND kind = :k "
                        "AND start_us >= :s AND start_us < :e",
                        bounds,
                    ).rowcount
            if kind != "contacts":
                pruned = {
                    row[0]
                    for row in self._run(
                        con,
                        "SELECT hour_us FROM landing_pruned WHERE integration_id = :i "
                        "AND kind = :k AND hour_us <= :last",
                        {"i": integration_id, "k": kind, "last": hours[-1]},
                    )
                }
                candidates = self._run(
                    con,
                    "SELECT record_key, start_us, end_us FROM landing_records "
                    "WHERE integration_id = :i AND kind = :k AND end_us <= :e",
                    {"i": integration_id, "k": kind, "e": hours[-1] + HOUR_US},
                ).all()
                gone = [
                    {"i": integration_id, "k": kind, "key": key, "s": begin}
                    for key, begin, finish in candidates
                    if all(h in pruned for h in range(hour_floor_us(begin), finish, HOUR_US))
                ]
                if gone:
                    self._run(
                        con,
                        "DELETE FROM landing_records WHERE integration_id = :i "
                        "AND kind = :k AND record_key = :key AND start_us = :s",
                        gone,
                    )
                deleted += len(gone)
        return deleted

    def prune_batches(self, before_us: int) -> int:
        """Forget batch ids received before `before_us` (a retry that late lands again)."""
        with self._write() as con:
            return self._run(
                con, "DELETE FROM landing_batches WHERE received_at_us < :b", {"b": before_us}
            ).rowcount

    # -- API keys ---------------------------------------------------------------------------
    def set_key(self, integration_id: str, key_hash: str, hint: str, at_us: int) -> None:
        """Store the integration's key hash, replacing (invalidating) any earlier key."""
        with self._write() as con:
            self._run(
                con,
                "INSERT INTO api_keys (integration_id, key_hash, key_hint, created_at_us) "
                "VALUES (:i, :h, :hint, :at) ON CONFLICT (integration_id) DO UPDATE SET "
                "key_hash = excluded.key_hash, key_hint = excluded.key_hint, "
                "created_at_us = excluded.created_at_us",
                {"i": integration_id, "h": key_hash, "hint": hint, "at": at_us},
            )

    def integration_of_key(self, key_hash: str) -> str | None:
        with self._read() as con:
            return self._run(con, SELECT_KEY_OWNER, {"h": key_hash}).scalar_one_or_none()

    def key_info(self, integration_id: str) -> tuple[str, int] | None:
        """(hint, created_at_us) of the integration's key, if it has one."""
        with self._read() as con:
            row = self._run(
                con,
                "SELECT key_hint, created_at_us FROM api_keys WHERE integration_id = :i",
                {"i": integration_id},
            ).one_or_none()
            return None if row is None else (row[0], row[1])
