"""The check a database query passes before it runs: exactly one read-only statement, read as
the server reads it. Each case says what the check must answer; the same attacks against the
real servers are in test_database_read_only.py."""

from __future__ import annotations

import pytest

from etl.resources.sources.universal.read_only_sql import (
    Lexing,
    RefusedQueryError,
    check_query,
)

REAL = (
    "SELECT queue_id, media, interval_start, offered FROM queue_stats"
    " WHERE interval_start >= :window_start AND interval_start < :window_end"
)
PG, MARIA, SQLITE = Lexing("postgres"), Lexing("mysql"), Lexing("sqlite")


def refused(sql: str, lexing: Lexing) -> RefusedQueryError:
    with pytest.raises(RefusedQueryError) as raised:
        check_query(sql, lexing)
    return raised.value


# -- what must still work -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lexing", "sql", "text"),
    [
        (PG, REAL, REAL),
        (PG, f"{REAL};", REAL),  # the closing semicolon is dropped
        (PG, f"{REAL} ;; -- done; really\n", REAL),  # and what follows it
        (PG, f"{REAL} -- until :window_end; then stop", REAL),  # a parameter in a comment
        (PG, f"/* a; b */ {REAL}", f"/* a; b */ {REAL}"),
        (PG, f"SELECT 'a; DELETE FROM t' AS note, q.* FROM ({REAL}) q", None),
        (PG, f"SELECT 'it''s; x' AS note, q.* FROM ({REAL}) q", None),
        (PG, f"SELECT $$a; DELETE FROM t$$ AS n, $tag$ $$ ; $tag$ AS m FROM ({REAL}) q", None),
        (PG, f"SELECT E'it\\'s; DELETE' AS note FROM ({REAL}) q", None),
        (PG, f"/* /* nested; */ DELETE FROM t; */ {REAL}", None),  # PostgreSQL nests them
        (PG, f"WITH w AS MATERIALIZED ({REAL}) SELECT * FROM w", None),
        (PG, f"({REAL}) UNION ALL ({REAL})", None),
        (PG, f"SELECT x::text, '08:00' AS t FROM ({REAL}) x", None),
        (PG, f"{REAL} AND queue_id <> 'Q\\:1'", None),  # an escaped colon in a string
        (MARIA, f"SELECT 'a\\'; DELETE FROM t; #' AS note, q.* FROM ({REAL}) q", None),
        (MARIA, f'SELECT "a\\"; DELETE FROM t; #" AS note, q.* FROM ({REAL}) q', None),
        (MARIA, f"SELECT `update`, `call` FROM ({REAL}) q", None),
        (MARIA, f"{REAL} # a MariaDB comment; with a semicolon", REAL),
        (MARIA, REAL.replace("SELECT", "SELECT /*!40001 SQL_NO_CACHE */"), None),
        (SQLITE, f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) {REAL}", None),
    ],
)
def test_one_read_only_statement_passes_as_written(lexing, sql, text):
    checked = check_query(sql, lexing)
    assert checked.text == (text if text is not None else sql)
    assert checked.parsed
    assert "window_start" in checked.parameters


def test_a_query_the_parser_cannot_read_is_checked_on_its_tokens_and_runs_as_written():
    sql = f"{REAL} PROCEDURE ANALYSE()"  # MariaDB's, unknown to the parser
    checked = check_query(sql, MARIA)
    assert not checked.parsed
    assert "Unexpected token" in checked.parse_error
    assert checked.text == sql


def test_parameters_in_comments_do_not_count_as_used():
    assert check_query(f"{REAL} -- :local_start", PG).parameters == ("window_start", "window_end")


# -- what must be refused -------------------------------------------------------------------
ISSUE_MULTI = f"SELECT 1 AS x) AS a; COMMIT; DELETE FROM t WHERE id = 1; SELECT * FROM ({REAL}"


@pytest.mark.parametrize(
    ("lexing", "sql", "said"),
    [
        (
            PG,
            ISSUE_MULTI,
            "it is 4 statements (SELECT, COMMIT, DELETE, SELECT), not one: it tried to write "
            "(COMMIT, DELETE)",
        ),
        (
            PG,
            f"SELECT 1 AS x) AS a; COMMIT; TRUNCATE t; SELECT * FROM ({REAL}",
            "it is 4 statements (SELECT, COMMIT, TRUNCATE, SELECT), not one: it tried to write "
            "(COMMIT, TRUNCATE)",
        ),
        (PG, f"{REAL}; DELETE FROM t", "it is 2 statements (SELECT, DELETE), not one"),
        (
            PG,
            f"SELECT 'a\\'; DELETE FROM t; --' FROM ({REAL}) q",  # standard strings: no escape
            "it is 2 statements (SELECT, DELETE), not one",
        ),
        (
            MARIA,
            "CREATE TABLE x AS SELECT :window_start AS a",
            "it tried to write: it is a CREATE statement",
        ),
        (MARIA, "TRUNCATE TABLE t -- :window_start", "it tried to write: it is a TRUNCATE"),
        (MARIA, f"{REAL} INTO OUTFILE '/tmp/x'", "INTO OUTFILE / DUMPFILE"),
        (MARIA, f"SELECT 1 FROM ({REAL}) q LIMIT 1 INTO DUMPFILE '/tmp/x'", "SELECT ... INTO"),
        (MARIA, "SELECT count(*) INTO @n FROM t WHERE a >= :window_start", "SELECT ... INTO"),
        (MARIA, f"{REAL} INTO @a, @b, @c, @d", "SELECT ... INTO"),
        (MARIA, f"{REAL} /*!50000 INTO OUTFILE '/tmp/x' */", "INTO OUTFILE / DUMPFILE"),
        (MARIA, f"{REAL} /*M!100000 INTO OUTFILE '/tmp/x' */", "INTO OUTFILE / DUMPFILE"),
        (MARIA, f"{REAL} /*!; DELETE FROM t */", "it is 2 statements (SELECT, DELETE)"),
        (MARIA, f"/* /* */ ; DELETE FROM t; */ {REAL}", "not one"),  # MariaDB does not nest
        (MARIA, f"{REAL} LOCK IN SHARE MODE", "LOCK IN SHARE MODE) locks the rows"),
        (MARIA, f"{REAL} FOR UPDATE", "FOR UPDATE locks the rows"),
        (MARIA, "CALL purge(:window_start)", "it tried to write: it is a CALL statement"),
        (MARIA, "DO (SELECT :window_start)", "it tried to write: it is a DO statement"),
        (MARIA, "SET SESSION TRANSACTION READ WRITE -- :window_start", "a SET statement"),
        (MARIA, "REPLACE INTO t SELECT * FROM u WHERE a >= :window_start", "REPLACE statement"),
        (
            PG,
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d WHERE a >= :window_start",
            "it tried to write: it holds a DELETE",
        ),
        (
            PG,
            "WITH d AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM d WHERE b >= :window_start",
            "it tried to write: it holds an UPDATE",
        ),
        (
            PG,
            "SELECT * FROM (SELECT 1) a, LATERAL (DELETE FROM t RETURNING 1) b"
            " WHERE :window_start IS NOT NULL",
            "it tried to write: it holds DELETE",  # the parser cannot read it: the tokens say
        ),
        (PG, f"{REAL} FOR UPDATE", "FOR UPDATE locks the rows"),
        (PG, f"{REAL} FOR NO KEY UPDATE SKIP LOCKED", "FOR NO KEY UPDATE locks"),
        (PG, f"{REAL} FOR KEY SHARE", "FOR KEY SHARE locks"),
        (PG, "SELECT * INTO stolen FROM t WHERE a >= :window_start", "SELECT ... INTO"),
        (PG, "CALL purge(:window_start)", "it is a CALL statement"),
        (PG, "DO $$ BEGIN DELETE FROM t; END $$ -- :window_start", "it is a DO statement"),
        (PG, "SET default_transaction_read_only = off -- :window_start", "a SET statement"),
        (
            PG,
            f"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; {REAL}",
            "it is 2 statements (SET, SELECT), not one: it tried to write (SET)",
        ),
        (
            PG,
            "COPY (SELECT :window_start) TO PROGRAM 'touch /tmp/x'",
            "it tried to write: it is a COPY statement",
        ),
        (
            PG,
            "SELECT set_config('default_transaction_read_only', 'off', false), q.*"
            f" FROM ({REAL}) q",
            "it calls set_config()",
        ),
        (PG, f"SELECT lo_export(1, '/tmp/x') FROM ({REAL}) q", "it calls lo_export()"),
        (PG, f"SELECT dblink_exec('db', 'DELETE FROM t') FROM ({REAL}) q", "dblink_exec()"),
        (PG, "EXPLAIN ANALYZE DELETE FROM t WHERE a >= :window_start", "it tried to write"),
        (SQLITE, "ATTACH DATABASE '/tmp/x.db' AS y -- :window_start", "an ATTACH statement"),
        (SQLITE, "VACUUM INTO '/tmp/x.db' -- :window_start", "a VACUUM statement"),
        (SQLITE, "PRAGMA query_only = OFF -- :window_start", "a PRAGMA statement"),
        (SQLITE, "DELETE FROM t WHERE a >= :window_start RETURNING *", "a DELETE statement"),
    ],
)
def test_anything_but_one_read_only_statement_is_refused_and_says_it_tried_to_write(
    lexing, sql, said
):
    error = refused(sql, lexing)
    assert said in error.reason
    assert error.wrote
    assert "tried to write" in error.reason


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("   -- :window_start", "it is empty"),
        (f"{REAL}; {REAL}", "it is 2 statements (SELECT, SELECT), not one; a query"),
        ("SHOW timezone -- :window_start", "it is a SHOW statement, not a SELECT"),
        ("EXPLAIN SELECT * FROM t WHERE a >= :window_start", "an EXPLAIN statement, not a"),
        (f"SELECT 'unterminated FROM ({REAL}) q", "cannot be read as postgres SQL"),
        (
            "SELECT * FROM t WHERE note = 'at :window_start' AND a >= :window_start",
            "the parameter :window_start stands inside a quoted string",
        ),
    ],
)
def test_other_refusals_say_what_is_wrong_without_claiming_a_write(sql, said):
    error = refused(sql, PG)
    assert said in error.reason
    assert not error.wrote


# -- read as the server reads it -----------------------------------------------------------
NO_BACKSLASH = Lexing("mysql", backslash_escapes=False)
ANSI_QUOTES = Lexing("mysql", ansi_quotes=True)
PG_BACKSLASH = Lexing("postgres", backslash_escapes=True)  # standard_conforming_strings off


def test_mariadb_without_backslash_escapes_ends_strings_at_the_backslash():
    smuggled = f"SELECT 'a\\'; DELETE FROM t; #' AS note, q.* FROM ({REAL}) q"
    assert check_query(smuggled, MARIA).parsed  # one string, as the default mode reads it
    assert "it is 2 statements (SELECT, DELETE)" in refused(smuggled, NO_BACKSLASH).reason


def test_mariadb_ansi_quotes_make_double_quotes_a_name():
    hidden = f'SELECT "a\\" INTO OUTFILE \'/tmp/x\' -- " AS note, q.* FROM ({REAL}) q'
    assert check_query(hidden, MARIA).parsed  # one string in the default mode
    assert "SELECT ... INTO" in refused(hidden, ANSI_QUOTES).reason


def test_postgresql_without_standard_strings_escapes_with_backslash():
    # With standard_conforming_strings off the server reads 'a\' || ' as one string, so the
    # COMMIT; BEGIN READ WRITE; DELETE after it would run; the default reading sees strings.
    smuggled = (
        "SELECT 'a\\' || ' AS x) AS a; COMMIT; BEGIN READ WRITE; DELETE FROM t; COMMIT;"
        f" SELECT * FROM (SELECT 1 -- '\n) AS b, ({REAL}) AS c"
    )
    check_query(smuggled, PG)
    error = refused(smuggled, PG_BACKSLASH)
    assert "it tried to write (COMMIT, BEGIN, DELETE, COMMIT)" in error.reason
    legal = f"SELECT 'it\\'s; fine' AS note, q.* FROM ({REAL}) q"
    assert check_query(legal, PG_BACKSLASH).parsed
    assert "cannot be read as postgres SQL" in refused(legal, PG).reason


def test_a_database_sqlglot_does_not_know_is_read_as_standard_sql():
    lexing = Lexing.of_backend("firebird")
    assert lexing == Lexing("")
    assert check_query(REAL, lexing).parsed
    assert "it is 2 statements" in refused(f"{REAL}; DELETE FROM t", lexing).reason
    assert Lexing.of_backend("mariadb") == Lexing("mysql")
    assert Lexing.of_backend("postgresql") == Lexing("postgres")
