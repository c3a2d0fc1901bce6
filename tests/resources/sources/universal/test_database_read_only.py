"""The database source never writes to the customer's database, on the real servers.

Each attack is an integration whose query tries to write, imported as a user would cause it
(through the source, and through the asset). Afterwards the customer's table still holds every
row, no table was created, no file was written on the server, and the error is one message
naming the integration, the query and the host, saying it tried to write. The server-side
layers are tested on their own too (the same smuggled statements run through the source's
session, past the check), and so is the read-only database user the docs recommend.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import sqlalchemy as sa

from etl.assets.contacts import CONTACTS_KIND
from etl.assets.facts import build_fact_asset, source_key
from etl.config import PROJECT_ROOT
from etl.resources.sources import SourceError, build_source
from etl.resources.sources.universal.database import DatabaseSource
from tests.helpers import definitions, import_range
from tests.resources.sources.universal.test_database import (
    CHANNELS,
    CONTACTS_MAP,
    PASSWORD,
    URL_ENV,
    WINDOW,
    create_customer_tables,
    db_integration,
    full_text,
    source_for,
    stats_rows,
    with_password,
)

DOC = PROJECT_ROOT / "docs" / "sources" / "database.md"
REAL = (
    "SELECT queue_id, media, interval_start, offered, answered, abandoned, handle_seconds"
    " FROM queue_stats"
    " WHERE interval_start >= :window_start AND interval_start < :window_end"
)
LABEL = {
    "pg_url": "postgresql at 127.0.0.1:5432/",
    "mysql_url": "mysql at 127.0.0.1:3306/",
    "sqlite_url": "sqlite file ",
}


def customer_database(url: str) -> None:
    """The customer's table (12 rows in the window) and a procedure that empties it."""
    create_customer_tables(url, stats_rows(WINDOW[0], hours=1))
    engine = sa.create_engine(url)
    with engine.begin() as con:
        if url.startswith("postgresql"):
            con.exec_driver_sql(
                "CREATE PROCEDURE purge_all(since timestamp) LANGUAGE sql AS"
                " 'DELETE FROM queue_stats WHERE interval_start >= since'"
            )
            con.exec_driver_sql(
                "CREATE FUNCTION purge_stats() RETURNS bigint LANGUAGE sql AS"
                " 'WITH gone AS (DELETE FROM queue_stats RETURNING 1) SELECT count(*) FROM gone'"
            )
        elif url.startswith("mysql"):
            con.exec_driver_sql(
                "CREATE PROCEDURE purge_all(since DATETIME) DELETE FROM queue_stats"
            )
            con.exec_driver_sql(
                "CREATE FUNCTION purge_stats() RETURNS INT MODIFIES SQL DATA BEGIN"
                " DELETE FROM queue_stats; RETURN 1; END"
            )
    engine.dispose()


def snapshot(url: str) -> tuple[list[tuple], set[str]]:
    """The customer's rows and tables, to compare before and after."""
    engine = sa.create_engine(url)
    with engine.connect() as con:
        rows = sorted(tuple(r) for r in con.exec_driver_sql("SELECT * FROM queue_stats"))
        tables = set(sa.inspect(con).get_table_names())
    engine.dispose()
    return rows, tables


@pytest.fixture
def server_folder() -> Iterator[Path]:
    """A folder the local database servers' own users can write to (INTO OUTFILE, COPY TO
    PROGRAM), so that a file missing afterwards shows the source stopped it, not the rights."""
    folder = Path(tempfile.mkdtemp(prefix="wfm-server-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def server_can_write(url: str, folder: Path) -> None:
    """The control: run directly as the test's superuser, the same server writes there."""
    control = folder / f"control-{uuid.uuid4().hex[:6]}"
    engine = sa.create_engine(url)
    with engine.connect() as con:
        if url.startswith("postgresql"):
            # The program reads what COPY sends before it exits: a program that ignores its
            # input (plain `touch`) may be gone before the row is written, and the server then
            # fails the COPY on a broken pipe although the program ran.
            con.exec_driver_sql(f"COPY (SELECT 1) TO PROGRAM 'cat > /dev/null; touch {control}'")
        else:
            con.exec_driver_sql(f"SELECT 1 INTO OUTFILE '{control}'")
    engine.dispose()
    assert control.exists()
    control.unlink()


def assert_refused(raised: pytest.ExceptionInfo, server: str, *said: str) -> None:
    message = str(raised.value)
    assert message.startswith("integration 'crm_db', contacts query (source.contacts.query) on ")
    assert LABEL[server] in message
    assert "was refused before it ran: " in message
    for part in said:
        assert part in message
    assert PASSWORD not in full_text(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


# -- the issue's examples and their variants, through the source ----------------------------
ATTACKS = [
    # (server, query, what the message must say)
    pytest.param(
        "pg_url",
        f"SELECT 1 AS x) AS a; COMMIT; DELETE FROM queue_stats WHERE queue_id = 'Q-100';"
        f" SELECT * FROM ({REAL}",
        "it is 4 statements (SELECT, COMMIT, DELETE, SELECT), not one: it tried to write "
        "(COMMIT, DELETE)",
        id="pg-break-out-of-copy-commit-delete",
    ),
    pytest.param(
        "pg_url",
        f"SELECT 1 AS x) AS a; COMMIT; TRUNCATE queue_stats; SELECT * FROM ({REAL}",
        "it tried to write (COMMIT, TRUNCATE)",
        id="pg-break-out-of-copy-commit-truncate",
    ),
    pytest.param(
        "pg_url",
        f"SELECT 1 AS x) AS a; COMMIT; BEGIN READ WRITE; DELETE FROM queue_stats; COMMIT;"
        f" SELECT * FROM ({REAL}",
        "it tried to write (COMMIT, BEGIN, DELETE, COMMIT)",
        id="pg-begin-read-write",
    ),
    pytest.param(
        "pg_url",
        f"{REAL}; DELETE FROM queue_stats",
        "it is 2 statements (SELECT, DELETE)",
        id="pg-trailing-statement",
    ),
    pytest.param(
        "pg_url",
        "WITH d AS (DELETE FROM queue_stats RETURNING *) SELECT * FROM d"
        " WHERE interval_start >= :window_start",
        "it tried to write: it holds a DELETE",
        id="pg-data-modifying-cte",
    ),
    pytest.param("pg_url", f"{REAL} FOR UPDATE", "FOR UPDATE locks the rows", id="pg-for-update"),
    pytest.param(
        "pg_url",
        "SELECT * INTO stolen FROM queue_stats WHERE interval_start >= :window_start",
        "SELECT ... INTO",
        id="pg-select-into-table",
    ),
    pytest.param("pg_url", "CALL purge_all(:window_start)", "it is a CALL statement", id="pg-call"),
    pytest.param(
        "pg_url",
        "DO $$ BEGIN DELETE FROM queue_stats; END $$ -- :window_start",
        "it is a DO statement",
        id="pg-do",
    ),
    pytest.param(
        "pg_url",
        f"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; {REAL}",
        "it tried to write (SET)",
        id="pg-set-read-write",
    ),
    pytest.param(
        "pg_url",
        f"SELECT set_config('default_transaction_read_only', 'off', false), q.* FROM ({REAL}) q",
        "it calls set_config()",
        id="pg-set-config",
    ),
    pytest.param(
        "pg_url",
        "COPY (SELECT * FROM queue_stats WHERE interval_start >= :window_start)"
        " TO PROGRAM 'touch {folder}/program-ran'",
        "it is a COPY statement",
        id="pg-copy-to-program",
    ),
    pytest.param(
        "mysql_url",
        "CREATE TABLE x AS SELECT :window_start AS a",
        "it tried to write: it is a CREATE statement",
        id="maria-create-table-as",
    ),
    pytest.param(
        "mysql_url",
        "TRUNCATE TABLE queue_stats -- :window_start",
        "it tried to write: it is a TRUNCATE statement",
        id="maria-truncate",
    ),
    pytest.param(
        "mysql_url",
        f"{REAL} INTO OUTFILE '{{folder}}/outfile.csv'",
        "INTO OUTFILE / DUMPFILE",
        id="maria-into-outfile",
    ),
    pytest.param(
        "mysql_url",
        f"SELECT queue_id FROM ({REAL}) q LIMIT 1 INTO DUMPFILE '{{folder}}/dumpfile'",
        "INTO OUTFILE / DUMPFILE",
        id="maria-into-dumpfile",
    ),
    pytest.param(
        "mysql_url",
        f"{REAL} /*!50000 INTO OUTFILE '{{folder}}/hidden.csv' */",
        "INTO OUTFILE / DUMPFILE",
        id="maria-outfile-in-executable-comment",
    ),
    pytest.param(
        "mysql_url",
        "SELECT count(*) INTO @n FROM queue_stats WHERE interval_start >= :window_start",
        "SELECT ... INTO",
        id="maria-into-variable",
    ),
    pytest.param(
        "mysql_url",
        f"{REAL}; DELETE FROM queue_stats",
        "it is 2 statements (SELECT, DELETE)",
        id="maria-trailing-statement",
    ),
    pytest.param(
        "mysql_url", f"{REAL} FOR UPDATE", "FOR UPDATE locks the rows", id="maria-for-update"
    ),
    pytest.param(
        "mysql_url",
        f"{REAL} LOCK IN SHARE MODE",
        "LOCK IN SHARE MODE) locks the rows",
        id="maria-lock-in-share-mode",
    ),
    pytest.param("mysql_url", "CALL purge_all(:window_start)", "a CALL statement", id="maria-call"),
    pytest.param(
        "mysql_url",
        "SET SESSION TRANSACTION READ WRITE -- :window_start",
        "it is a SET statement",
        id="maria-set-read-write",
    ),
    pytest.param(
        "mysql_url",
        f"SELECT 'a\\\\'; DELETE FROM queue_stats; #' AS note, q.* FROM ({REAL}) q;"
        " DELETE FROM queue_stats",
        "it is 2 statements (SELECT, DELETE)",
        id="maria-escaped-quote-then-statement",
    ),
    pytest.param(
        "sqlite_url",
        f"{REAL}; DELETE FROM queue_stats",
        "it is 2 statements (SELECT, DELETE)",
        id="sqlite-trailing-statement",
    ),
    pytest.param(
        "sqlite_url",
        "DELETE FROM queue_stats WHERE interval_start >= :window_start RETURNING *",
        "it is a DELETE statement",
        id="sqlite-delete-returning",
    ),
    pytest.param(
        "sqlite_url",
        "ATTACH DATABASE '{folder}/attached.sqlite' AS other -- :window_start",
        "it is an ATTACH statement",
        id="sqlite-attach",
    ),
    pytest.param(
        "sqlite_url",
        "VACUUM INTO '{folder}/copy.sqlite' -- :window_start",
        "it is a VACUUM statement",
        id="sqlite-vacuum-into",
    ),
]


@pytest.mark.parametrize(("server", "query", "said"), ATTACKS)
def test_a_query_that_tries_to_write_is_refused_and_nothing_changes(
    server, query, said, request, monkeypatch, server_folder
):
    url = request.getfixturevalue(server)
    customer_database(url)
    if server != "sqlite_url" and "{folder}" in query:
        server_can_write(url, server_folder)
    monkeypatch.setenv(URL_ENV, with_password(url) if server == "pg_url" else url)
    before = snapshot(url)
    query = query.replace("{folder}", str(server_folder))
    source = source_for(contacts={"query": query, "columns": CONTACTS_MAP, "channels": CHANNELS})
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    assert_refused(raised, server, said)
    assert "tried to write" in str(raised.value)
    assert snapshot(url) == before  # every row, no new table
    assert len(before[0]) == 12
    assert list(server_folder.iterdir()) == []  # no file written, no program run


def test_the_issue_example_fails_its_asset_and_the_error_is_one_message(
    pg_url, monkeypatch, warehouse, instance
):
    monkeypatch.setenv(URL_ENV, with_password(pg_url))
    customer_database(pg_url)
    before = snapshot(pg_url)
    attack = (
        f"SELECT 1 AS x) AS a; COMMIT; DELETE FROM queue_stats WHERE queue_id = 'Q-100';"
        f" SELECT * FROM ({REAL}"
    )
    integration = db_integration(
        contacts={"query": attack, "columns": CONTACTS_MAP, "channels": CHANNELS}
    )
    result = dg.materialize(
        [build_fact_asset(integration, CONTACTS_KIND)],
        partition_key="2026-11-16-08:00",
        instance=instance,
        resources={source_key(integration): build_source(integration), "warehouse": warehouse},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error.cause  # Dagster's wrapper around the asset's error
    assert error.cls_name == "SourceError"
    assert error.message.startswith(
        "etl.resources.sources.base.SourceError: integration 'crm_db', contacts query "
        "(source.contacts.query) on postgresql at 127.0.0.1:5432/"
    )
    assert "was refused before it ran: it is 4 statements" in error.message
    assert "it tried to write (COMMIT, DELETE)" in error.message
    assert error.cause is None  # nothing of the driver chained to what Dagster shows
    assert error.context is None
    assert PASSWORD not in failure.step_failure_data.error.to_string()
    assert snapshot(pg_url) == before
    assert warehouse.query("SELECT count(*) AS n FROM contact_intervals")["n"][0] == 0


def test_a_query_file_that_writes_fails_its_import_run(
    mysql_url, monkeypatch, tmp_path, settings, instance
):
    monkeypatch.setenv(URL_ENV, mysql_url)
    monkeypatch.setenv("WFM_HOME", str(tmp_path))
    customer_database(mysql_url)
    before = snapshot(mysql_url)
    (tmp_path / "truncate.sql").write_text("TRUNCATE TABLE queue_stats -- :window_start\n")
    integration = db_integration(
        contacts={"query_file": "truncate.sql", "columns": CONTACTS_MAP, "channels": CHANNELS}
    )
    result = import_range(definitions(settings, integration), instance, integration.id, *WINDOW)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error.cause
    assert error.cls_name == "SourceError"
    assert (
        f"integration 'crm_db', contacts query (source.contacts.query_file "
        f"{tmp_path / 'truncate.sql'}) on mysql at 127.0.0.1:3306/"
    ) in error.message
    assert "was refused before it ran: it tried to write: it is a TRUNCATE statement" in (
        error.message
    )
    assert "ResourceClosedError" not in failure.step_failure_data.error.to_string()
    assert error.cause is None
    assert error.context is None
    assert snapshot(mysql_url) == before


# -- what must still work -------------------------------------------------------------------
LEGAL = {
    "pg_url": (
        "SELECT 'a; DELETE FROM queue_stats' AS note, $$b; DROP TABLE queue_stats$$ AS n2,"
        " $q$ $$ ; $q$ AS n3, q.* FROM (\n"
        f"{REAL} -- until the window ends; then stop\n"
        ") q /* ; TRUNCATE queue_stats */ ORDER BY interval_start, queue_id;"
    ),
    "mysql_url": (
        "SELECT 'it\\'s; DELETE FROM queue_stats; #' AS note, \"b\\\"; DROP\" AS n2, q.* FROM (\n"
        f"{REAL} # a comment; TRUNCATE queue_stats\n"
        ") q ORDER BY interval_start, queue_id;"
    ),
    "sqlite_url": (
        "SELECT 'a; DELETE FROM queue_stats' AS note, j.value AS j, q.* FROM (\n"
        f"{REAL} -- a comment; DELETE\n"
        ") q, json_each('[1]') j ORDER BY interval_start, queue_id;"
    ),
}


@pytest.mark.parametrize("server", ["pg_url", "mysql_url", "sqlite_url"])
def test_semicolons_in_strings_and_comments_are_legal_and_read(server, request, monkeypatch):
    url = request.getfixturevalue(server)
    monkeypatch.setenv(URL_ENV, url)
    customer_database(url)
    source = source_for(
        contacts={"query": LEGAL[server], "columns": CONTACTS_MAP, "channels": CHANNELS}
    )
    extract = source.contacts(*WINDOW)
    assert len(extract.frame) == 12
    inserted = stats_rows(WINDOW[0], hours=1)
    assert sorted(extract.frame["offered"]) == sorted(r["offered"] for r in inserted)
    assert "checked on its tokens only" not in extract.description
    assert len(snapshot(url)[0]) == 12


def test_a_query_the_parser_cannot_read_runs_and_says_it_was_checked_on_tokens(
    mysql_url, monkeypatch
):
    monkeypatch.setenv(URL_ENV, mysql_url)
    customer_database(mysql_url)
    query = f"{REAL} LIMIT 5 ROWS EXAMINED 1000"  # MariaDB's, unknown to the parser
    extract = source_for(
        contacts={"query": query, "columns": CONTACTS_MAP, "channels": CHANNELS}
    ).contacts(*WINDOW)
    assert len(extract.frame) == 5
    assert "the contacts query was checked on its tokens only" in extract.description


# -- read as the session reads SQL ----------------------------------------------------------
def test_mariadb_without_backslash_escapes_is_read_as_that_session_reads(mysql_url, monkeypatch):
    customer_database(mysql_url)
    url = sa.make_url(mysql_url).update_query_dict(
        {"init_command": "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'"}
    )
    monkeypatch.setenv(URL_ENV, url.render_as_string(hide_password=False))
    before = snapshot(mysql_url)
    legal = f"SELECT 'C:\\' AS folder, q.* FROM ({REAL}) q"  # the backslash ends nothing here
    source = source_for(contacts={"query": legal, "columns": CONTACTS_MAP, "channels": CHANNELS})
    assert len(source.contacts(*WINDOW).frame) == 12
    # Read with backslash escapes this is one string; this session ends it at the backslash.
    smuggled = f"SELECT 'a\\'; DELETE FROM queue_stats; #' AS note, q.* FROM ({REAL}) q"
    source = source_for(contacts={"query": smuggled, "columns": CONTACTS_MAP, "channels": CHANNELS})
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    assert_refused(raised, "mysql_url", "it is 2 statements (SELECT, DELETE)", "tried to write")
    assert snapshot(mysql_url) == before


def test_postgresql_without_standard_strings_is_read_as_that_session_reads(pg_url, monkeypatch):
    customer_database(pg_url)
    url = sa.make_url(pg_url).update_query_dict(
        {"options": "-c standard_conforming_strings=off -c escape_string_warning=off"}
    )
    monkeypatch.setenv(URL_ENV, url.render_as_string(hide_password=False))
    before = snapshot(pg_url)
    legal = f"SELECT 'it\\'s; fine' AS note, q.* FROM ({REAL}) q"
    source = source_for(contacts={"query": legal, "columns": CONTACTS_MAP, "channels": CHANNELS})
    assert len(source.contacts(*WINDOW).frame) == 12
    # Read with standard strings 'a\' || ' ... ' is two strings and one statement; this
    # session reads one string, then a COMMIT, a BEGIN READ WRITE and a DELETE.
    smuggled = (
        "SELECT 'a\\' || ' AS x) AS a; COMMIT; BEGIN READ WRITE; DELETE FROM queue_stats;"
        f" COMMIT; SELECT * FROM (SELECT 1 -- '\n) AS b, ({REAL}"
    )
    source = source_for(contacts={"query": smuggled, "columns": CONTACTS_MAP, "channels": CHANNELS})
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    assert_refused(raised, "pg_url", "it tried to write (COMMIT, BEGIN, DELETE, COMMIT)")
    assert snapshot(pg_url) == before


# -- the server's own layers, past the check ------------------------------------------------
def session_of(url: str):
    """The source's read-only session, to run statements the check would refuse."""
    source: DatabaseSource = source_for()
    return source._session(source._target(), "contacts")


def test_postgresql_session_is_read_only_even_after_a_smuggled_commit(pg_url, monkeypatch):
    monkeypatch.setenv(URL_ENV, pg_url)
    customer_database(pg_url)
    before = snapshot(pg_url)
    smuggled = [
        "SELECT 1; COMMIT; DELETE FROM queue_stats",
        "SELECT 1; ROLLBACK; DELETE FROM queue_stats",
        "SELECT 1; COMMIT; TRUNCATE queue_stats",
        "SELECT 1; COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE;"
        " DELETE FROM queue_stats",
        "SELECT 1; COMMIT; CREATE TABLE stolen AS SELECT * FROM queue_stats",
    ]
    for statements in smuggled:
        with session_of(pg_url) as (connection, _):
            cursor = connection.connection.dbapi_connection.cursor()
            with pytest.raises(psycopg2.Error, match="in a read-only transaction"):
                cursor.execute(statements)  # psycopg2: the simple protocol, several at once
    assert snapshot(pg_url) == before


def test_mariadb_session_refuses_ddl_and_several_statements(mysql_url, monkeypatch):
    customer_database(mysql_url)
    # A URL that asks for several statements per call does not get them.
    url = sa.make_url(mysql_url).update_query_dict({"client_flag": str(1 << 16)})
    monkeypatch.setenv(URL_ENV, url.render_as_string(hide_password=False))
    before = snapshot(mysql_url)
    refusals = {
        "SELECT 1; DELETE FROM queue_stats": "You have an error in your SQL syntax",
        "TRUNCATE TABLE queue_stats": "Cannot execute statement in a READ ONLY transaction",
        "CREATE TABLE stolen AS SELECT 1 AS a": "Cannot execute statement in a READ ONLY",
        "DROP TABLE queue_stats": "Cannot execute statement in a READ ONLY transaction",
        "DELETE FROM queue_stats": "Cannot execute statement in a READ ONLY transaction",
        "CALL purge_all(NOW())": "Cannot execute statement in a READ ONLY transaction",
        "SELECT * FROM queue_stats FOR UPDATE": "Cannot execute statement in a READ ONLY",
    }
    for statement, said in refusals.items():
        with (
            session_of(mysql_url) as (connection, _),
            pytest.raises(sa.exc.DBAPIError, match=re.escape(said)),
        ):
            connection.exec_driver_sql(statement)
    assert snapshot(mysql_url) == before


def test_sqlite_file_is_opened_read_only(sqlite_url, monkeypatch, tmp_path):
    monkeypatch.setenv(URL_ENV, sqlite_url)
    customer_database(sqlite_url)
    before = snapshot(sqlite_url)
    refusals = {
        "DELETE FROM queue_stats": "not authorized",
        "CREATE TEMP TABLE t (a)": "not authorized",
        "PRAGMA query_only = OFF": "not authorized",
        f"ATTACH DATABASE '{tmp_path / 'other.sqlite'}' AS other": "not authorized",
        f"VACUUM INTO '{tmp_path / 'copy.sqlite'}'": "authorization denied",
        "SELECT 1; DELETE FROM queue_stats": "one statement at a time",
    }
    for statement, said in refusals.items():
        with (
            session_of(sqlite_url) as (connection, _),
            pytest.raises(sa.exc.DBAPIError, match=said),
        ):
            connection.exec_driver_sql(statement)
    with session_of(sqlite_url) as (connection, _):  # without the authorizer: mode=ro
        connection.connection.dbapi_connection.set_authorizer(None)
        connection.exec_driver_sql("PRAGMA query_only = OFF")
        with pytest.raises(sa.exc.DBAPIError, match="attempt to write a readonly database"):
            connection.exec_driver_sql("DELETE FROM queue_stats")
    assert snapshot(sqlite_url) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customer.sqlite"]


@pytest.mark.parametrize("server", ["pg_url", "mysql_url"])
def test_a_write_hidden_in_a_function_is_stopped_by_the_server(server, request, monkeypatch):
    url = request.getfixturevalue(server)
    monkeypatch.setenv(URL_ENV, url)
    customer_database(url)
    before = snapshot(url)
    query = f"SELECT q.*, purge_stats() AS gone FROM ({REAL}) q"  # as a customer's view could
    source = source_for(contacts={"query": query, "columns": CONTACTS_MAP, "channels": CHANNELS})
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    message = str(raised.value)
    assert message.startswith("integration 'crm_db', contacts query (source.contacts.query)")
    assert "the query tried to write, and queries run read-only: " in message
    assert ("read-only transaction" if server == "pg_url" else "READ ONLY transaction") in message
    assert snapshot(url) == before


# -- the read-only database user the docs recommend -----------------------------------------
def documented_grants(server: str) -> list[str]:
    """The statements of the docs' block for this server, one per statement."""
    text = DOC.read_text(encoding="utf-8")
    marker = {"pg_url": "CREATE ROLE wfm_reader", "mysql_url": "CREATE USER 'wfm_reader'"}
    [block] = [b for b in re.findall(r"```sql\n(.*?)```", text, re.DOTALL) if marker[server] in b]
    lines = [line for line in block.splitlines() if line and not line.startswith("--")]
    return [s.strip() for s in " ".join(lines).split(";") if s.strip()]


def test_postgresql_read_only_user_from_the_docs_imports_and_cannot_write(pg_url, monkeypatch):
    role = f"wfm_reader_{uuid.uuid4().hex[:8]}"
    database = sa.make_url(pg_url).database
    owner = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as con:
        con.exec_driver_sql("CREATE SCHEMA acd")
    create_customer_tables(
        sa.make_url(pg_url)
        .update_query_dict({"options": "-c search_path=acd"})
        .render_as_string(hide_password=False),
        stats_rows(WINDOW[0], hours=1),
    )
    try:
        with owner.connect() as con:
            for statement in documented_grants("pg_url"):
                statement = statement.replace("wfm_reader", role)
                con.exec_driver_sql(statement.replace("DATABASE crm", f'DATABASE "{database}"'))
        reader = with_password(pg_url, username=role)
        monkeypatch.setenv(URL_ENV, reader)
        query = REAL.replace("FROM queue_stats", "FROM acd.queue_stats")
        source = source_for(
            contacts={"query": query, "columns": CONTACTS_MAP, "channels": CHANNELS}
        )
        extract = source.contacts(*WINDOW)
        assert len(extract.frame) == 12
        assert "read with COPY" in extract.description
        # Past every check of the source, the user itself cannot write: not even in a
        # transaction it opens read-write, which the session's default cannot stop.
        engine = sa.create_engine(reader, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        for statement, said in {
            "BEGIN READ WRITE; DELETE FROM acd.queue_stats; COMMIT": "permission denied",
            "CREATE TABLE acd.stolen (a int)": "read-only transaction",  # the role's default
            "BEGIN READ WRITE; CREATE TABLE acd.stolen (a int); COMMIT": "permission denied",
            "COPY (SELECT 1) TO PROGRAM 'true'": "pg_execute_server_program",
        }.items():
            with engine.connect() as con, pytest.raises(sa.exc.DBAPIError, match=said):
                con.exec_driver_sql(statement)
        engine.dispose()
        with owner.connect() as con:
            assert con.exec_driver_sql("SELECT count(*) FROM acd.queue_stats").scalar() == 12
    finally:
        with owner.connect() as con:
            con.exec_driver_sql(f'DROP OWNED BY "{role}"')
            con.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        owner.dispose()


def test_mariadb_read_only_user_from_the_docs_imports_and_cannot_write(
    mysql_url, monkeypatch, server_folder
):
    user = f"wfm_reader_{uuid.uuid4().hex[:8]}"
    database = sa.make_url(mysql_url).database
    customer_database(mysql_url)
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as con:
            for statement in documented_grants("mysql_url"):
                statement = statement.replace("wfm_reader", user).replace("crm.", f"`{database}`.")
                con.execute(sa.text(statement.replace("choose-a-password", PASSWORD)))
        reader = with_password(mysql_url, username=user)
        monkeypatch.setenv(URL_ENV, reader)
        source = source_for(contacts={"query": REAL, "columns": CONTACTS_MAP, "channels": CHANNELS})
        assert len(source.contacts(*WINDOW).frame) == 12
        engine = sa.create_engine(reader, isolation_level="AUTOCOMMIT")
        with engine.connect() as con:
            for statement, said in {
                "DELETE FROM queue_stats": "DELETE command denied",
                "TRUNCATE TABLE queue_stats": "DROP command denied",
                "CREATE TABLE stolen (a int)": "CREATE command denied",
                f"SELECT 1 INTO OUTFILE '{server_folder}/x'": "FILE privilege",
                "CALL purge_all(NOW())": "execute command denied",
            }.items():
                with pytest.raises(sa.exc.DBAPIError, match=said):
                    con.exec_driver_sql(statement)
        engine.dispose()
        assert len(snapshot(mysql_url)[0]) == 12
        assert list(server_folder.iterdir()) == []
    finally:
        with admin.connect() as con:
            con.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


# -- query files stay inside the project home -----------------------------------------------
@pytest.fixture
def project_home(tmp_path, monkeypatch, sqlite_url) -> Path:
    home = tmp_path / "home"
    (home / "queries").mkdir(parents=True)
    monkeypatch.setenv("WFM_HOME", str(home))
    monkeypatch.setenv(URL_ENV, sqlite_url)
    create_customer_tables(sqlite_url, stats_rows(WINDOW[0], hours=2))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "contacts.sql").write_text(REAL)
    return home


def file_source(query_file: str, **source) -> DatabaseSource:
    contacts = {"query_file": query_file, "columns": CONTACTS_MAP, "channels": CHANNELS}
    return source_for(contacts=contacts, **source)


@pytest.mark.parametrize(
    "written", ["{elsewhere}/contacts.sql", "queries/../../elsewhere/contacts.sql"]
)
def test_a_query_file_outside_the_project_home_is_refused(project_home, written):
    elsewhere = project_home.parent / "elsewhere"
    with pytest.raises(SourceError) as raised:
        file_source(written.format(elsewhere=elsewhere)).contacts(*WINDOW)
    message = str(raised.value)
    assert message.startswith("integration 'crm_db': source.contacts.query_file ")
    assert f"is outside the folders query files are read from ({project_home})" in message
    assert "name its folder in source.query_dirs" in message


def test_a_link_in_the_project_home_to_a_file_elsewhere_is_refused(project_home):
    target = project_home.parent / "elsewhere" / "contacts.sql"
    (project_home / "queries" / "contacts.sql").symlink_to(target)
    with pytest.raises(SourceError) as raised:
        file_source("queries/contacts.sql").contacts(*WINDOW)
    message = str(raised.value)
    assert f"query_file {project_home / 'queries' / 'contacts.sql'} (a link to {target})" in (
        message
    )
    assert "is outside the folders query files are read from" in message
    (project_home / "elsewhere").symlink_to(target.parent)  # a linked folder: the same
    with pytest.raises(SourceError, match="is outside the folders"):
        file_source("elsewhere/contacts.sql").contacts(*WINDOW)


def test_query_dirs_allow_a_folder_outside_the_project_home(project_home):
    elsewhere = project_home.parent / "elsewhere"
    source = file_source(f"{elsewhere}/contacts.sql", query_dirs=[str(elsewhere)])
    assert len(source.contacts(*WINDOW).frame) == 24
    (project_home / "queries" / "linked.sql").symlink_to(project_home / "queries" / "real.sql")
    (project_home / "queries" / "real.sql").write_text(REAL)
    assert len(file_source("queries/linked.sql").contacts(*WINDOW).frame) == 24  # link inside


def test_a_window_parameter_only_in_a_comment_does_not_bind_the_query(sqlite_url, monkeypatch):
    monkeypatch.setenv(URL_ENV, sqlite_url)
    customer_database(sqlite_url)
    query = "SELECT * FROM queue_stats -- WHERE interval_start >= :window_start"
    source = source_for(contacts={"query": query, "columns": CONTACTS_MAP, "channels": CHANNELS})
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    assert_refused(raised, "sqlite_url", "uses none of the window parameters", "outside comments")
