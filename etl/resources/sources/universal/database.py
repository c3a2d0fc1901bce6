"""`vendor: database`: the integration's own SQL query against the customer's database.

The connection is an SQLAlchemy URL read from an environment variable the config names
(`url_env`), at run time only: it never appears in the config, the UI, logs or errors. The
query gets the window as bound parameters (nothing is formatted into the SQL text):

- `:window_start`, `:window_end`: the UTC window, as timestamps without timezone;
- `:window_start_epoch`, `:window_end_epoch`: the same as epoch seconds;
- `:local_start`, `:local_end`: a wall-clock range in the integration's timezone that covers
  the window (wider around DST changes; rows outside the window are dropped after reading).

The query runs in a read-only transaction where the database has one (PostgreSQL `SET
TRANSACTION READ ONLY`, MariaDB/MySQL `START TRANSACTION READ ONLY`, SQLite `PRAGMA
query_only`) with a statement timeout, and the transaction is always rolled back. On PostgreSQL
the rows are read with COPY as CSV text that Arrow parses (`pg_copy.py`; several times faster
than the driver's row objects); elsewhere, or when a column's type needs the driver, they are
streamed with a server-side cursor in chunks of `chunk_rows`, each turned into columnar Arrow
arrays as it arrives, so the driver never holds a whole window of Python row objects.

Failures name the integration and the host, never the password: an unreachable server is
retried with exponential backoff, then reported; a refused login is reported at once; an SQL
error carries the database's own message; missing columns are listed. Values of the wrong
type quarantine their row (see `shaping.py`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field, model_validator
from sqlalchemy.pool import NullPool

from etl.resources.sources.base import Extract, SourceError, SourceResource, SourceSettings
from etl.resources.sources.plumbing import shaping
from etl.resources.sources.plumbing.locations import resolve
from etl.resources.sources.plumbing.redaction import Secrets
from etl.resources.sources.plumbing.shaping import (
    AgentStatusMapping,
    ContactMapping,
    MissingColumnsError,
    RawRows,
    ShapeContext,
    Shaped,
    ValueFormat,
)
from etl.resources.sources.universal.pg_copy import copy_rows

WINDOW_PARAMETERS = (
    "window_start",
    "window_end",
    "window_start_epoch",
    "window_end_epoch",
    "local_start",
    "local_end",
)
# Connection failures worth retrying: the server is down, restarting or unreachable.
TRANSIENT = re.compile(
    r"could not connect|connection refused|timeout expired|timed out|server closed the "
    r"connection|connection reset|no route to host|network is unreachable|could not translate "
    r"host name|name or service not known|can't connect|lost connection|gone away|\(2003|\(2002"
    r"|\(2006|\(2013|the database system is (starting up|shutting down)",
    re.IGNORECASE,
)
LOGIN_REFUSED = re.compile(
    r"password authentication failed|authentication failed|access denied|role .* does not "
    r"exist|no pg_hba\.conf entry|\(1045|\(1044|\(1698",
    re.IGNORECASE,
)
READ_ONLY_VIOLATION = re.compile(
    r"read-only transaction|read only transaction|readonly database|query_only|\(1792|"
    r"must not contain data-modifying statements",
    re.IGNORECASE,
)
TIMED_OUT = re.compile(
    r"statement timeout|max_statement_time|max_execution_time|interrupted", re.IGNORECASE
)


class QueryOptions(shaping.StrictConfig):
    """The query of one data kind: inline SQL or a file, with bound window parameters."""

    query: str | None = Field(default=None, description="SQL text with :window_start/:window_end")
    query_file: str | None = Field(
        default=None, description="a .sql file instead of inline SQL; relative to WFM_HOME"
    )
    format: ValueFormat | None = Field(default=None, description="replaces source.format")

    @model_validator(mode="after")
    def _one_query(self) -> QueryOptions:
        if (self.query is None) == (self.query_file is None):
            raise ValueError("give exactly one of query and query_file")
        if self.query is not None:
            check_window_parameters(self.query)
        return self


class DatabaseContacts(QueryOptions, ContactMapping):
    """The contacts query and how its columns map to contact fields."""


class DatabaseAgentStatus(QueryOptions, AgentStatusMapping):
    """The agent-status query and how its columns map to segment fields."""


class ConnectionSettings(SourceSettings):
    """How to reach the database; shared by `database` and the presets built on it."""

    url_env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the environment variable holding the SQLAlchemy URL",
    )
    chunk_rows: int = Field(default=50_000, ge=1, description="rows fetched per round trip")
    use_copy: bool = Field(
        default=True,
        description="on PostgreSQL (psycopg2), read the rows with COPY when every column "
        "type allows it (pg_copy.py); false: always through the cursor",
    )
    statement_timeout_s: float = Field(default=300.0, gt=0)
    connect_timeout_s: int = Field(default=10, ge=1)
    connect_attempts: int = Field(default=4, ge=1, le=20)
    retry_backoff_s: float = Field(
        default=2.0, ge=0, description="wait before the 2nd attempt; doubles after each"
    )


class DatabaseSettings(ConnectionSettings):
    """`source:` settings of `vendor: database`."""

    format: ValueFormat = ValueFormat(time="utc")
    contacts: DatabaseContacts | None = None
    agent_status: DatabaseAgentStatus | None = None


def check_window_parameters(sql: str) -> None:
    """A query must be bound to the window; otherwise every tick would read everything."""
    used = set(sa.text(sql).compile().params)
    if not used & set(WINDOW_PARAMETERS):
        raise ValueError(
            "the query uses none of the window parameters :window_start/:window_end (also "
            ":window_start_epoch/:window_end_epoch, :local_start/:local_end)"
        )


def local_range(start: datetime, end: datetime, timezone: str) -> tuple[datetime, datetime]:
    """A wall-clock range (naive, in `timezone`) holding every instant of [start, end): around
    a DST change the wall clock jumps, so the range is widened by the window's length."""
    wall_start = pd.Timestamp(start).tz_convert(timezone).tz_localize(None)
    wall_end = pd.Timestamp(end).tz_convert(timezone).tz_localize(None)
    length = pd.Timestamp(end) - pd.Timestamp(start)
    low = min(wall_start, wall_end - length)
    high = max(wall_end, wall_start + length)
    return low.to_pydatetime(), high.to_pydatetime()


@dataclass
class _Target:
    """Where the query runs, named for error messages (never with the password)."""

    url: sa.URL
    label: str
    secrets: Secrets  # the password and the URL text, in every form (redaction.py)

    def scrub(self, text: str) -> str:
        return self.secrets.redact(text)


class QuerySource(SourceResource):
    """A source that runs SQL over an SQLAlchemy connection. Subclasses say which query and
    mapping each data kind uses (`database`: the integration's own; presets: the project's)."""

    settings: ConnectionSettings

    # -- what subclasses provide --------------------------------------------------------------
    def statement(self, kind: str) -> sa.TextClause:
        raise NotImplementedError

    def mapping(self, kind: str) -> ContactMapping | AgentStatusMapping:
        raise NotImplementedError

    def value_format(self, kind: str) -> ValueFormat:
        raise NotImplementedError

    def extra_parameters(self, kind: str) -> dict[str, Any]:
        return {}

    # -- data kinds ---------------------------------------------------------------------------
    def contacts(self, start: datetime, end: datetime) -> Extract:
        return self._extract("contacts", start, end)

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        return self._extract("agent_status", start, end)

    def parameters(self, kind: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Bound values of the window (naive UTC timestamps: every driver binds those the same
        way, whatever the session timezone)."""
        local_start, local_end = local_range(start, end, self.timezone)
        start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
        return {
            "window_start": start_utc.replace(tzinfo=None),
            "window_end": end_utc.replace(tzinfo=None),
            "window_start_epoch": int(start_utc.timestamp()),
            "window_end_epoch": int(end_utc.timestamp()),
            "local_start": local_start,
            "local_end": local_end,
            **self.extra_parameters(kind),
        }

    def _where(self, kind: str) -> str:
        return f"integration {self.integration_id!r}, {kind} query"

    def _extract(self, kind: str, start: datetime, end: datetime) -> Extract:
        target = self._target()
        statement = self.statement(kind)
        params = self.parameters(kind, start, end)
        with self._session(target, kind) as connection:
            failure: SourceError | None = None
            try:
                table, read = self._rows(connection, kind, statement, params, target)
            except sa.exc.DBAPIError as exc:
                failure = self._query_error(kind, target, exc)
            if failure is not None:
                # Raised outside the handler: the driver's exception (which may quote the
                # connection) is not chained to what Dagster shows.
                raise failure
        shaped = self._shape(kind, table, pd.Timestamp(start))
        window, outside = shaped.window(start, end)
        frame = window.frame
        rejected = window.rejected.drop(
            columns=[c for c in window.rejected.columns if c.startswith("key_")]
        )
        description = f"{kind} query on {target.label}: {read}" + (
            f", {outside} outside the window ignored" if outside else ""
        )
        return Extract(frame, rejected, description)

    def _rows(
        self,
        connection: sa.Connection,
        kind: str,
        statement: sa.TextClause,
        params: dict[str, Any],
        target: _Target,
    ) -> tuple[pa.Table, str]:
        """The query's rows, and how they were read: with COPY where it applies, else from a
        server-side cursor in chunks."""

        def check(columns: list[str]) -> None:
            self._check_columns(kind, columns, target)

        if self.settings.use_copy:
            copied = copy_rows(connection, statement, params, check)
            if copied is not None:
                return copied, f"{copied.num_rows} row(s) read with COPY"
        result = connection.execution_options(
            stream_results=True, yield_per=self.settings.chunk_rows
        ).execute(statement, params)
        columns = list(result.keys())
        try:
            check(columns)
        except SourceError:
            result.close()  # release the server-side cursor before failing
            raise
        tables = [_columnar(columns, rows) for rows in result.partitions(self.settings.chunk_rows)]
        fetched = sum(t.num_rows for t in tables)
        return _concat(columns, tables), f"{fetched} row(s) in {len(tables)} chunk(s)"

    def _check_columns(self, kind: str, columns: list[str], target: _Target) -> None:
        empty = pa.table({name: pa.array([], pa.null()) for name in columns})
        try:
            self._shape(kind, empty, pd.Timestamp(0, tz="UTC"))
        except MissingColumnsError as exc:
            raise SourceError(
                f"{self._where(kind)} on {target.label}: the result has {exc}"
            ) from None

    def _shape(self, kind: str, table: pa.Table, fallback: pd.Timestamp) -> Shaped:
        context = ShapeContext(
            self.integration_id,
            self.timezone,
            self.interval_minutes,
            fallback_time=fallback,
            missing="raise",
        )
        raw = RawRows(table, "query row ", np.arange(1, table.num_rows + 1))
        fmt = self.value_format(kind)
        if kind == "contacts":
            return shaping.shape_contacts(raw, self.mapping(kind), fmt, context)
        return shaping.shape_agent_status(raw, self.mapping(kind), fmt, context)

    # -- connection ---------------------------------------------------------------------------
    def _target(self) -> _Target:
        name = self.settings.url_env
        text = os.environ.get(name)
        if not text:
            raise SourceError(
                f"integration {self.integration_id!r}: environment variable {name} "
                "(source.url_env) is not set; it must hold the database's SQLAlchemy URL"
            )
        try:
            url: sa.URL | None = sa.make_url(text)
        except (sa.exc.ArgumentError, ValueError):
            url = None  # the parser's message quotes the URL, password included
        if url is None:
            raise SourceError(
                f"integration {self.integration_id!r}: environment variable {name} does not "
                "hold a valid SQLAlchemy URL (e.g. postgresql+psycopg2://user@host:5432/db)"
            )
        if url.get_backend_name() == "sqlite":
            label = f"sqlite file {url.database}"
        else:
            port = f":{url.port}" if url.port else ""
            label = f"{url.get_backend_name()} at {url.host}{port}/{url.database or ''}"
        return _Target(url, label, Secrets([url.password, text]))

    def _engine(self, target: _Target) -> sa.Engine:
        backend = target.url.get_backend_name()
        timeout = self.settings.connect_timeout_s
        connect_args: dict[str, Any] = {}
        if backend == "postgresql" and target.url.get_driver_name() == "psycopg2":
            connect_args = {"connect_timeout": timeout, "application_name": "wfm-etl"}
        elif backend in ("mysql", "mariadb"):
            connect_args = {"connect_timeout": timeout}
        elif backend == "sqlite":
            connect_args = {"timeout": timeout}
            database = target.url.database
            if database and database != ":memory:" and not resolve(database).exists():
                raise SourceError(
                    f"integration {self.integration_id!r}: {target.label} does not exist"
                )
        return sa.create_engine(target.url, poolclass=NullPool, connect_args=connect_args)

    def _connect(self, engine: sa.Engine, target: _Target) -> sa.Connection:
        """A connection, retried with exponential backoff while the server is unreachable."""
        attempts = self.settings.connect_attempts
        waited = 0.0
        who = f"integration {self.integration_id!r}: {target.label}"
        for attempt in range(1, attempts + 1):
            try:
                return engine.connect()
            except sa.exc.DBAPIError as exc:
                message = target.scrub(str(exc.orig)).strip()
            if LOGIN_REFUSED.search(message):
                user = target.url.username or "(none)"
                raise SourceError(f"{who} refused the login of user {user!r}: {message}")
            if not TRANSIENT.search(message):
                raise SourceError(f"{who}: cannot connect: {message}")
            if attempt == attempts:
                raise SourceError(
                    f"{who} unreachable after {attempts} attempt(s) over {waited:.1f} s: {message}"
                )
            pause = self.settings.retry_backoff_s * 2 ** (attempt - 1)
            dg.get_dagster_logger().warning(
                f"{who} unreachable (attempt {attempt} of {attempts}), retrying in "
                f"{pause:.1f} s: {message}"
            )
            time.sleep(pause)
            waited += pause
        raise AssertionError("unreachable")

    @contextmanager
    def _session(self, target: _Target, kind: str) -> Iterator[sa.Connection]:
        """A read-only transaction with a statement timeout, always rolled back."""
        engine = self._engine(target)
        try:
            connection = self._connect(engine, target)
            try:
                failure: SourceError | None = None
                try:
                    cleanup = self._read_only(connection)
                except sa.exc.DBAPIError as exc:
                    failure = self._query_error(kind, target, exc)
                if failure is not None:
                    raise failure
                try:
                    yield connection
                finally:
                    cleanup()
                    connection.rollback()
            finally:
                connection.close()
        finally:
            engine.dispose()

    def _read_only(self, connection: sa.Connection):
        """Make the transaction read-only, bounded in time and in UTC, the way each database
        can."""
        dialect = connection.dialect
        seconds = self.settings.statement_timeout_s
        millis = int(seconds * 1000)
        # The session runs in UTC: the window parameters are UTC timestamps without zone, and
        # PostgreSQL compares them with timestamptz columns in the session's timezone.
        if dialect.name == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {millis}")
            connection.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
        elif dialect.name in ("mysql", "mariadb"):
            if getattr(dialect, "is_mariadb", False):
                connection.exec_driver_sql(f"SET SESSION max_statement_time = {seconds:.3f}")
            else:
                connection.exec_driver_sql(f"SET SESSION max_execution_time = {millis}")
            connection.exec_driver_sql("SET SESSION time_zone = '+00:00'")
            connection.exec_driver_sql("START TRANSACTION READ ONLY")
        elif dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA query_only = ON")
            raw = connection.connection.dbapi_connection
            deadline = time.monotonic() + seconds
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            return lambda: raw.set_progress_handler(None, 0)
        else:
            dg.get_dagster_logger().warning(
                f"integration {self.integration_id!r}: {dialect.name} has no read-only "
                "transaction here; the query runs in a transaction that is rolled back"
            )
        return lambda: None

    def _query_error(self, kind: str, target: _Target, exc: sa.exc.DBAPIError) -> SourceError:
        message = target.scrub(str(exc.orig)).strip()
        where = f"{self._where(kind)} failed on {target.label}"
        if READ_ONLY_VIOLATION.search(message):
            return SourceError(
                f"{where}: the query tried to write, and queries run read-only: {message}"
            )
        if TIMED_OUT.search(message):
            return SourceError(
                f"{where}: stopped by the statement timeout "
                f"({self.settings.statement_timeout_s:g} s, source.statement_timeout_s): {message}"
            )
        return SourceError(f"{where}: {message}")


def _columnar(columns: list[str], rows: list[sa.Row]) -> pa.Table:
    """One fetched chunk as Arrow columns; a column of mixed Python types becomes text."""
    arrays = []
    for position in range(len(columns)):
        values = [row[position] for row in rows]
        try:
            arrays.append(pa.array(values, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
    return pa.Table.from_arrays(arrays, names=_unique(columns))


def _unique(columns: list[str]) -> list[str]:
    names: list[str] = []
    for column in columns:
        name = column
        while name in names:
            name = f"{name}_"
        names.append(name)
    return names


def _concat(columns: list[str], tables: list[pa.Table]) -> pa.Table:
    """Chunks with possibly different inferred types (a chunk of nulls, ints then floats)."""
    names = _unique(columns)
    if not tables:
        return pa.table({name: pa.array([], pa.null()) for name in names})
    merged = []
    for name in names:
        parts = [t.column(name).combine_chunks() for t in tables]
        kinds = {p.type for p in parts if not pa.types.is_null(p.type)}
        if len(kinds) <= 1:
            kind = kinds.pop() if kinds else pa.null()
            merged.append(pa.concat_arrays([p.cast(kind) for p in parts]))
            continue
        try:
            common = (
                pa.unify_schemas(
                    [pa.schema([(name, k)]) for k in kinds], promote_options="permissive"
                )
                .field(name)
                .type
            )
            merged.append(pa.concat_arrays([p.cast(common) for p in parts]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            merged.append(pa.concat_arrays([p.cast(pa.string()) for p in parts]))
    return pa.Table.from_arrays(merged, names=names)


class DatabaseSource(QuerySource):
    """`vendor: database`: the integration's own SQL, mapped like any universal source."""

    settings_model = DatabaseSettings
    settings: DatabaseSettings

    def _options(self, kind: str) -> DatabaseContacts | DatabaseAgentStatus:
        holds = f"the {kind} query and its column map"
        return shaping.data_section(self.settings, kind, self.integration_id, holds)

    def statement(self, kind: str) -> sa.TextClause:
        options = self._options(kind)
        if options.query is not None:
            return sa.text(options.query)
        path = resolve(options.query_file)
        try:
            sql = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceError(
                f"integration {self.integration_id!r}: cannot read source.{kind}.query_file "
                f"{path}: {exc.strerror}"
            ) from None
        try:
            check_window_parameters(sql)
        except ValueError as exc:
            raise SourceError(f"integration {self.integration_id!r}: {path}: {exc}") from None
        return sa.text(sql)

    def mapping(self, kind: str) -> ContactMapping | AgentStatusMapping:
        return self._options(kind)

    def value_format(self, kind: str) -> ValueFormat:
        return self._options(kind).format or self.settings.format


__all__ = [
    "ConnectionSettings",
    "DatabaseSettings",
    "DatabaseSource",
    "QuerySource",
    "local_range",
]
