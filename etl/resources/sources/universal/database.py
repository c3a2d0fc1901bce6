"""`vendor: database`: the integration's own SQL query against the customer's database.

The connection is an SQLAlchemy URL read from an environment variable the config names
(`url_env`), at run time only: it never appears in the config, the UI, logs or errors. The
query gets the window as bound parameters (nothing is formatted into the SQL text):

- `:window_start`, `:window_end`: the UTC window, as timestamps without timezone;
- `:window_start_epoch`, `:window_end_epoch`: the same as epoch seconds;
- `:local_start`, `:local_end`: a wall-clock range in the integration's timezone that covers
  the window (wider around DST changes; rows outside the window are dropped after reading).

The source only reads. Before anything runs, the query must be exactly one read-only
statement (`read_only_sql.py`: sqlglot's tokenizer and parser for the server's dialect); the
server enforces it too: PostgreSQL sessions are read-only by default (set before the first
transaction, so a transaction opened after a smuggled COMMIT is read-only as well) and the
transaction is `READ ONLY`; MariaDB/MySQL sessions are `TRANSACTION READ ONLY` (which refuses
DDL too) inside `START TRANSACTION READ ONLY`, over a connection that cannot send several
statements at once; SQLite files are opened read-only (`mode=ro`, `PRAGMA query_only`, and an
authorizer that allows reading only). Every query has a statement timeout, runs in UTC and is
rolled back. On PostgreSQL the rows are read with COPY as CSV text that Arrow parses
(`pg_copy.py`; several times faster than the driver's row objects); elsewhere, or when a
column's type needs the driver, they are streamed with a server-side cursor in chunks of
`chunk_rows`, each turned into columnar Arrow arrays as it arrives, so the driver never holds a
whole window of Python row objects. A `query_file` is read only from the project home or a
folder named in `query_dirs`, links resolved.

Failures name the integration, the data kind's query and the host, never the password: an
unreachable server is retried with exponential backoff, then reported; a refused login is
reported at once; a query that is not one read-only statement is refused before it runs; an
SQL error carries the database's own message; missing columns are listed. Values of the wrong
type quarantine their row (see `shaping.py`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field, model_validator
from sqlalchemy.pool import NullPool

from etl.resources.sources.base import Extract, SourceError, SourceResource, SourceSettings
from etl.resources.sources.plumbing import shaping
from etl.resources.sources.plumbing.locations import home, inside, resolve
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
from etl.resources.sources.universal.read_only_sql import (
    CheckedQuery,
    Lexing,
    RefusedQueryError,
    check_query,
)

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
    r"must not contain data-modifying statements|not authorized|authorization denied",
    re.IGNORECASE,
)
# The driver refused several statements in one string (only if the check let one through).
SEVERAL_STATEMENTS = re.compile(
    r"one statement at a time|multiple commands into a prepared statement", re.IGNORECASE
)
# MariaDB/MySQL: a client flag that would let one string carry several statements.
MULTI_STATEMENTS = 1 << 16
# SQLite authorizer: the actions of reading (WITH RECURSIVE included); any other is denied.
SQLITE_READING = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
TIMED_OUT = re.compile(
    r"statement timeout|max_statement_time|max_execution_time|interrupted", re.IGNORECASE
)


class QueryOptions(shaping.StrictConfig):
    """The query of one data kind: inline SQL or a file, with bound window parameters."""

    query: str | None = Field(default=None, description="SQL text with :window_start/:window_end")
    query_file: str | None = Field(
        default=None,
        description="a .sql file instead of inline SQL; relative to WFM_HOME, and inside it "
        "or a folder of source.query_dirs",
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
    query_dirs: list[str] = Field(
        default_factory=list,
        description="folders outside the project home that query_file may read from "
        "(absolute, or relative to WFM_HOME)",
    )
    contacts: DatabaseContacts | None = None
    agent_status: DatabaseAgentStatus | None = None


def check_window_parameters(sql: str) -> None:
    """A query must be bound to the window; otherwise every tick would read everything."""
    used = set(sa.text(sql).compile().params)
    if not used & set(WINDOW_PARAMETERS):
        raise ValueError(_UNBOUND)


_UNBOUND = (
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
    lexing: Lexing  # how the dialect reads SQL text by default (a session may differ)

    def scrub(self, text: str) -> str:
        return self.secrets.redact(text)


class QuerySource(SourceResource):
    """A source that runs SQL over an SQLAlchemy connection. Subclasses say which query and
    mapping each data kind uses (`database`: the integration's own; presets: the project's)."""

    settings: ConnectionSettings

    # -- what subclasses provide --------------------------------------------------------------
    def query(self, kind: str) -> str:
        """The SQL text of the data kind's query, as written."""
        raise NotImplementedError

    def query_name(self, kind: str) -> str:
        """Where the query comes from, for messages: `contacts query (source.contacts.query)`."""
        return f"{kind} query"

    def bind_parameters(self, kind: str) -> list[sa.BindParameter]:
        """Parameters that need more than a plain value (e.g. an expanding list for IN)."""
        return []

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
        return f"integration {self.integration_id!r}, {self.query_name(kind)}"

    def _extract(self, kind: str, start: datetime, end: datetime) -> Extract:
        target = self._target()
        sql = self.query(kind)
        params = self.parameters(kind, start, end)
        with self._session(target, kind) as (connection, lexing):
            # Checked as this session reads SQL text (where its strings end), before it runs.
            checked = self._checked(kind, sql, lexing, target)
            statement = sa.text(checked.text).bindparams(*self.bind_parameters(kind))
            failure: SourceError | None = None
            try:
                table, read = self._rows(connection, kind, statement, params, target)
            except sa.exc.SQLAlchemyError as exc:
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
        if not checked.parsed:
            description += f"; {self._tokens_only(kind, checked)}"
        return Extract(frame, rejected, description)

    def _checked(self, kind: str, sql: str, lexing: Lexing, target: _Target) -> CheckedQuery:
        """The query if it is one read-only statement; else the one message saying why not."""
        try:
            checked = check_query(sql, lexing)
            if not set(checked.parameters) & set(WINDOW_PARAMETERS):
                raise RefusedQueryError(_UNBOUND + " outside comments", wrote=False)
        except RefusedQueryError as exc:
            refusal = exc.reason
        else:
            if not checked.parsed:
                dg.get_dagster_logger().warning(
                    f"{self._where(kind)} on {target.label}: {self._tokens_only(kind, checked)}"
                )
            return checked
        raise SourceError(
            f"{self._where(kind)} on {target.label} was refused before it ran: {refusal}"
        )

    def _tokens_only(self, kind: str, checked: CheckedQuery) -> str:
        return (
            f"the {kind} query was checked on its tokens only (the SQL parser could not read "
            f"it: {checked.parse_error}); it ran as written, read-only"
        )

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
        secrets = Secrets([url.password, text])
        return _Target(url, label, secrets, Lexing.of_backend(url.get_backend_name()))

    def _engine(self, target: _Target) -> sa.Engine:
        backend, driver = target.url.get_backend_name(), target.url.get_driver_name()
        timeout = self.settings.connect_timeout_s
        connect_args: dict[str, Any] = {}
        if backend == "postgresql" and driver == "psycopg2":
            connect_args = {"connect_timeout": timeout, "application_name": "wfm-etl"}
        elif backend in ("mysql", "mariadb"):
            connect_args = {"connect_timeout": timeout}
        elif backend == "sqlite":
            database = target.url.database
            if database and database != ":memory:":
                path = resolve(database)
                if not path.exists():
                    raise SourceError(
                        f"integration {self.integration_id!r}: {target.label} does not exist"
                    )
                if driver == "pysqlite":
                    return _read_only_sqlite(path, timeout)
            connect_args = {"timeout": timeout}
        engine = sa.create_engine(target.url, poolclass=NullPool, connect_args=connect_args)
        if backend in ("mysql", "mariadb"):
            sa.event.listen(engine, "do_connect", _one_statement_per_call)
        return engine

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
    def _session(self, target: _Target, kind: str) -> Iterator[tuple[sa.Connection, Lexing]]:
        """A read-only transaction with a statement timeout, always rolled back, and how its
        session reads SQL text."""
        engine = self._engine(target)
        try:
            connection = self._connect(engine, target)
            try:
                failure: SourceError | None = None
                try:
                    lexing, cleanup = self._read_only(connection, target)
                except sa.exc.DBAPIError as exc:
                    failure = self._query_error(kind, target, exc)
                if failure is not None:
                    raise failure
                try:
                    yield connection, lexing
                finally:
                    cleanup()
                    connection.rollback()
            finally:
                connection.close()
        finally:
            engine.dispose()

    def _read_only(
        self, connection: sa.Connection, target: _Target
    ) -> tuple[Lexing, Callable[[], None]]:
        """Make the session and its transaction read-only, bounded in time and in UTC, the way
        each database can; and read the settings that decide how it reads SQL text."""
        dialect = connection.dialect
        seconds = self.settings.statement_timeout_s
        millis = int(seconds * 1000)
        # The session runs in UTC: the window parameters are UTC timestamps without zone, and
        # PostgreSQL compares them with timestamptz columns in the session's timezone.
        if dialect.name == "postgresql":
            session = [
                # Every transaction of the session is read-only, also one that a smuggled
                # COMMIT or ROLLBACK would open after ours.
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                f"SET statement_timeout = {millis}",
                "SET TIME ZONE 'UTC'",
            ]
            raw = connection.connection.dbapi_connection
            if dialect.driver == "psycopg2":  # outside any transaction, so nothing undoes it
                raw.autocommit = True
                with raw.cursor() as cursor:
                    for command in session:
                        cursor.execute(command)
                raw.autocommit = False
            else:
                for command in session:
                    connection.exec_driver_sql(command)
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            conforming = connection.exec_driver_sql("SHOW standard_conforming_strings").scalar()
            return Lexing("postgres", backslash_escapes=conforming != "on"), lambda: None
        if dialect.name in ("mysql", "mariadb"):
            if getattr(dialect, "is_mariadb", False):
                connection.exec_driver_sql(f"SET SESSION max_statement_time = {seconds:.3f}")
            else:
                connection.exec_driver_sql(f"SET SESSION max_execution_time = {millis}")
            connection.exec_driver_sql("SET SESSION time_zone = '+00:00'")
            # The session default too: DDL commits the transaction it runs in, and is then
            # refused because the session is read-only.
            connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            connection.exec_driver_sql("START TRANSACTION READ ONLY")
            mode = connection.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar() or ""
            lexing = Lexing(
                "mysql",
                backslash_escapes="NO_BACKSLASH_ESCAPES" not in mode,
                ansi_quotes="ANSI_QUOTES" in mode,
            )
            return lexing, lambda: None
        if dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA query_only = ON")
            raw = connection.connection.dbapi_connection
            deadline = time.monotonic() + seconds
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            if isinstance(raw, sqlite3.Connection):
                raw.set_authorizer(_sqlite_reading)

            def cleanup() -> None:
                raw.set_progress_handler(None, 0)
                if isinstance(raw, sqlite3.Connection):
                    raw.set_authorizer(None)

            return target.lexing, cleanup
        dg.get_dagster_logger().warning(
            f"integration {self.integration_id!r}: {dialect.name} has no read-only "
            "transaction here; the query runs in a transaction that is rolled back"
        )
        return target.lexing, lambda: None

    def _query_error(self, kind: str, target: _Target, exc: sa.exc.SQLAlchemyError) -> SourceError:
        where = f"{self._where(kind)} failed on {target.label}"
        if isinstance(exc, sa.exc.ResourceClosedError):
            return SourceError(
                f"{where}: the query returned no rows (it is no query that returns rows)"
            )
        original = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        message = target.scrub(str(original)).strip()
        if not isinstance(exc, sa.exc.DBAPIError):  # SQLAlchemy's own: drop the quoted SQL
            message = message.split("\n[SQL:")[0].strip()
        if READ_ONLY_VIOLATION.search(message):
            return SourceError(
                f"{where}: the query tried to write, and queries run read-only: {message}"
            )
        if SEVERAL_STATEMENTS.search(message):
            return SourceError(
                f"{where}: the database refused it as more than one statement: {message}"
            )
        if TIMED_OUT.search(message):
            return SourceError(
                f"{where}: stopped by the statement timeout "
                f"({self.settings.statement_timeout_s:g} s, source.statement_timeout_s): {message}"
            )
        return SourceError(f"{where}: {message}")


def _read_only_sqlite(path: Path, timeout: int) -> sa.Engine:
    """An engine whose connections open the file read-only (SQLite's `mode=ro`): no write
    reaches it whatever runs."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    return sa.create_engine(
        "sqlite://",
        poolclass=NullPool,
        creator=lambda: sqlite3.connect(uri, uri=True, timeout=timeout),
    )


def _sqlite_reading(action: int, table: str | None, *_: Any) -> int:
    """SQLite's authorizer: reading is allowed, anything else (ATTACH, PRAGMA, writes) denied.
    A table-valued function (json_each) declares its table, which SQLite authorizes as an
    update of sqlite_master that never reaches the read-only file."""
    if action in SQLITE_READING or (action == sqlite3.SQLITE_UPDATE and table == "sqlite_master"):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _one_statement_per_call(
    dialect: sa.Dialect, record: Any, cargs: list[Any], cparams: dict[str, Any]
) -> None:
    """MariaDB/MySQL: never ask for CLIENT_MULTI_STATEMENTS (a URL may set client_flag), so
    the server itself refuses a string with several statements."""
    cparams["client_flag"] = int(cparams.get("client_flag", 0)) & ~MULTI_STATEMENTS


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

    deliveries: ClassVar[tuple[str, ...]] = ("cloud", "on_premise")
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model = DatabaseSettings
    settings: DatabaseSettings

    def _options(self, kind: str) -> DatabaseContacts | DatabaseAgentStatus:
        holds = f"the {kind} query and its column map"
        return shaping.data_section(self.settings, kind, self.integration_id, holds)

    def query(self, kind: str) -> str:
        options = self._options(kind)
        if options.query is not None:
            return options.query
        path = self._query_path(kind)
        try:
            sql = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
            raise SourceError(
                f"integration {self.integration_id!r}: cannot read source.{kind}.query_file "
                f"{path}: {reason}"
            ) from None
        try:
            check_window_parameters(sql)
        except ValueError as exc:
            raise SourceError(f"integration {self.integration_id!r}: {path}: {exc}") from None
        return sql

    def query_name(self, kind: str) -> str:
        options = self._options(kind)
        if options.query is not None:
            return f"{kind} query (source.{kind}.query)"
        return f"{kind} query (source.{kind}.query_file {resolve(options.query_file)})"

    def _query_path(self, kind: str) -> Path:
        """The query file, if it lies in the project home or a folder of `query_dirs` once
        every link is resolved: a query file is read into logs and errors, so it must not be
        any file of the machine."""
        path = resolve(self._options(kind).query_file)
        folders = [home(), *(resolve(folder) for folder in self.settings.query_dirs)]
        if inside(path, folders):
            return path
        real = path.resolve()
        link = f" (a link to {real})" if real != path.absolute() else ""
        allowed = ", ".join(str(f) for f in folders)
        raise SourceError(
            f"integration {self.integration_id!r}: source.{kind}.query_file {path}{link} is "
            f"outside the folders query files are read from ({allowed}); move it into the "
            "project home, or name its folder in source.query_dirs"
        )

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
