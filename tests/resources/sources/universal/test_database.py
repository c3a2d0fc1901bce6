"""The database source on real PostgreSQL, MariaDB and SQLite databases.

A customer table is created in a fixture, imported through the real asset path or read
directly from the source, and compared with what was inserted. Failures (unreachable server,
refused login, SQL errors, timeouts, missing columns, wrong types) must name the integration,
the query and the host, carry the database's own message, and never show the password. Queries
that write: test_database_read_only.py.
"""

from __future__ import annotations

import json
import traceback
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from etl.config import ConfigError, parse_integrations
from etl.resources.sources import SourceError
from etl.resources.sources.universal.database import DatabaseSource, local_range
from etl.validation import SOURCE_FIELD_PREFIX, rows_as_json
from tests.conftest import make_integration
from tests.helpers import definitions, import_range

URL_ENV = "WFM_TEST_CRM_URL"
PASSWORD = "Sup3r-Secret-pw"
WINDOW = (datetime(2026, 11, 16, 8, tzinfo=UTC), datetime(2026, 11, 16, 10, tzinfo=UTC))

CONTACTS_SQL = """
SELECT queue_id, media, interval_start, offered, answered, abandoned, handle_seconds
FROM queue_stats
WHERE interval_start >= :window_start AND interval_start < :window_end
ORDER BY interval_start, queue_id
"""
CONTACTS_MAP = {
    "queue_id": "external_queue_id",
    "media": "channel",
    "handle_seconds": "handle_time",
}
CHANNELS = {"voice": "calls", "E-Mail": "emails"}

METADATA = sa.MetaData()
QUEUE_STATS = sa.Table(
    "queue_stats",
    METADATA,
    sa.Column("queue_id", sa.String(40), nullable=False),
    sa.Column("media", sa.String(20), nullable=False),
    sa.Column("interval_start", sa.DateTime, nullable=False),  # naive, UTC
    sa.Column("offered", sa.Integer),
    sa.Column("answered", sa.Integer),
    sa.Column("abandoned", sa.Integer),
    sa.Column("handle_seconds", sa.Numeric(12, 1)),
)
AGENT_EVENTS = sa.Table(
    "agent_events",
    METADATA,
    sa.Column("agent", sa.String(80), nullable=False),
    sa.Column("state", sa.String(40), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("ended_at", sa.DateTime),
)


def stats_rows(start: datetime, hours: int) -> list[dict]:
    rows = []
    for quarter in range(hours * 4):
        moment = (start + timedelta(minutes=15 * quarter)).replace(tzinfo=None)
        for queue, media in (("Q-100", "voice"), ("Q-200", "E-Mail"), ("q-100", "voice")):
            offered = 5 + (quarter * 3 + len(queue) + ord(queue[0])) % 11
            rows.append(
                {
                    "queue_id": queue,
                    "media": media,
                    "interval_start": moment,
                    "offered": offered,
                    "answered": offered - 1,
                    "abandoned": 1,
                    "handle_seconds": round((offered - 1) * 187.3, 1),
                }
            )
    return rows


def create_customer_tables(url: str, stats: list[dict], events: list[dict] = ()) -> None:
    engine = sa.create_engine(url)
    METADATA.create_all(engine)
    with engine.begin() as con:
        if stats:
            con.execute(QUEUE_STATS.insert(), stats)
        if events:
            con.execute(AGENT_EVENTS.insert(), list(events))
    engine.dispose()


@pytest.fixture(params=["pg_url", "mysql_url", "sqlite_url"])
def db_url(request, monkeypatch) -> str:
    url = request.getfixturevalue(request.param)
    monkeypatch.setenv(URL_ENV, url)
    return url


def db_integration(**source):
    settings = {
        "url_env": URL_ENV,
        "contacts": {"query": CONTACTS_SQL, "columns": CONTACTS_MAP, "channels": CHANNELS},
        **source,
    }
    return make_integration(
        id="crm_db",
        vendor="database",
        delivery="on_premise",
        interval_minutes=15,
        timezone="Europe/Berlin",
        history_start="2026-11-01",
        source=settings,
    )


def source_for(**source) -> DatabaseSource:
    return DatabaseSource.from_integration(db_integration(**source))


def with_password(url: str, password: str = PASSWORD, **changes) -> str:
    return sa.make_url(url).set(password=password, **changes).render_as_string(hide_password=False)


def full_text(exc: BaseException) -> str:
    """Everything an operator could see of an exception: message, chain, traceback."""
    return "".join(traceback.format_exception(exc))


# -- import end to end ----------------------------------------------------------------------
def test_import_matches_inserted_rows(db_url, settings, warehouse, instance):
    inserted = stats_rows(WINDOW[0] - timedelta(hours=1), hours=4)  # wider than the window
    create_customer_tables(db_url, inserted)
    integration = db_integration(chunk_rows=5)
    result = import_range(definitions(settings, integration), instance, integration.id, *WINDOW)
    assert result.success

    stored = warehouse.query(
        "SELECT external_queue_id, channel, interval_start, offered, answered, abandoned,"
        " handle_time_s FROM contact_intervals ORDER BY interval_start, external_queue_id"
    )
    expected = pd.DataFrame(inserted)
    expected = expected[
        (expected["interval_start"] >= WINDOW[0].replace(tzinfo=None))
        & (expected["interval_start"] < WINDOW[1].replace(tzinfo=None))
    ].sort_values(["interval_start", "queue_id"], ignore_index=True)
    assert len(stored) == len(expected) == 2 * 4 * 3
    assert list(stored["external_queue_id"]) == list(expected["queue_id"])  # case kept
    assert list(stored["channel"]) == [CHANNELS[m] for m in expected["media"]]
    assert list(stored["interval_start"]) == [
        pd.Timestamp(t, tz="UTC") for t in expected["interval_start"]
    ]
    assert list(stored["offered"]) == list(expected["offered"])
    assert list(stored["answered"]) == list(expected["answered"])
    assert list(stored["handle_time_s"]) == [float(h) for h in expected["handle_seconds"]]
    # The window's last hour carries the window's metadata (the source's description too).
    *_, materialization = result.asset_materializations_for_node("crm_db__contacts")
    read = "24 row(s) read with COPY" if db_url.startswith("postgresql") else "24 row(s) in 5 chunk"
    assert read in materialization.metadata["source"].value


def test_rule_failures_keep_the_query_row_as_delivered(db_url, settings, warehouse, instance):
    """A row the schema rejects is quarantined with the query result's own columns and
    values, not the converted row."""
    rows = stats_rows(WINDOW[0], hours=1)
    rows[4] = {**rows[4], "answered": rows[4]["offered"] + 3}  # answered > offered
    create_customer_tables(db_url, rows)
    integration = db_integration().model_copy(update={"max_rejected_share": 0.5})
    result = import_range(definitions(settings, integration), instance, integration.id, *WINDOW)
    assert result.success
    rejected = warehouse.query("SELECT source_ref, row_json, rules FROM rejected_rows")
    assert len(rejected) == 1
    assert rejected["source_ref"][0].startswith("query row ")  # MariaDB orders 'q' as 'Q'
    delivered = json.loads(rejected["row_json"][0])
    assert list(delivered) == [
        "queue_id",
        "media",
        "interval_start",
        "offered",
        "answered",
        "abandoned",
        "handle_seconds",
    ]
    bad = rows[4]
    assert (delivered["queue_id"], delivered["media"]) == (bad["queue_id"], bad["media"])
    assert (delivered["offered"], delivered["answered"]) == (bad["offered"], bad["answered"])
    assert float(delivered["handle_seconds"]) == bad["handle_seconds"]
    assert pd.Timestamp(delivered["interval_start"]).replace(tzinfo=None) == bad["interval_start"]
    assert "answered <= offered" in list(rejected["rules"][0])


# -- COPY on PostgreSQL ---------------------------------------------------------------------
TYPED_SQL = """
SELECT queue AS external_queue_id, media AS channel, at AS interval_start, offered, answered,
       abandoned, handle AS handle_time, note, flag, day{extra}
FROM typed_stats WHERE at >= :window_start AND at < :window_end ORDER BY at, queue; -- 100%
"""


def typed_table(pg_url: str) -> None:
    """Every type COPY reads, with the values CSV text makes tricky."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as con:
        con.exec_driver_sql(
            "CREATE TABLE typed_stats (queue varchar(20), media text, at timestamptz,"
            " offered int8, answered int2, abandoned int4, handle numeric(12, 3), note text,"
            " flag boolean, day date, span interval)"
        )
        con.exec_driver_sql(
            "INSERT INTO typed_stats VALUES"
            " ('Q,1', 'voice', '2026-11-16 09:00+01', 12, 10, 1, 900.125, 'said \"hi\"', true,"
            "  '2026-11-16', '15 minutes'),"
            " ('Q\n2', 'voice', '2026-11-16 08:15:30.5+00', 9, 8, NULL, NULL, '', false,"
            "  NULL, NULL),"
            " ('Q3', 'voice', '2026-11-16 08:30+00', 7, 7, 0, 1e6,"
            "  NULL, NULL, '2026-11-16', '1 hour'),"
            " ('Q4', 'voice', '2026-11-16 10:00+00', 1, 1, 0, 60, 'outside', true, NULL, NULL)"
        )
    engine.dispose()


def raw_rows(source: DatabaseSource) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    extract = source.contacts(*WINDOW)
    return extract.frame, extract.rejected, extract.description


def test_copy_reads_what_the_cursor_reads(pg_url, monkeypatch):
    monkeypatch.setenv(URL_ENV, pg_url)
    typed_table(pg_url)
    contacts = {"query": TYPED_SQL.format(extra=""), "channels": CHANNELS}
    frame, rejected, described = raw_rows(source_for(contacts=contacts))
    slow, slow_rejected, slow_described = raw_rows(source_for(contacts=contacts, use_copy=False))
    assert "3 row(s) read with COPY" in described
    assert "3 row(s) in 1 chunk(s)" in slow_described
    # The same rows; the fields as delivered hold the same values (COPY's text gives a
    # decimal another precision than the driver's).
    canonical = [c for c in frame.columns if not c.startswith(SOURCE_FIELD_PREFIX)]
    pd.testing.assert_frame_equal(frame[canonical], slow[canonical])
    assert rows_as_json(frame, frame.index) == rows_as_json(slow, slow.index)
    pd.testing.assert_frame_equal(rejected, slow_rejected)
    assert list(frame["external_queue_id"]) == ["Q,1", "Q\n2", "Q3"]  # quoted CSV text kept
    assert list(frame["interval_start"]) == [
        pd.Timestamp("2026-11-16 08:00", tz="UTC"),  # 09:00+01
        pd.Timestamp("2026-11-16 08:15:30.5", tz="UTC"),
        pd.Timestamp("2026-11-16 08:30", tz="UTC"),
    ]
    assert list(frame["offered"]) == [12, 9, 7]
    assert frame["handle_time_s"].tolist()[::2] == [900.125, 1e6]  # numeric(12, 3), exactly
    assert frame[["abandoned", "handle_time_s"]].iloc[1].isna().all()  # NULL stays empty


def test_copy_leaves_types_it_cannot_read_exactly_to_the_cursor(pg_url, monkeypatch):
    monkeypatch.setenv(URL_ENV, pg_url)
    typed_table(pg_url)
    contacts = {"query": TYPED_SQL.format(extra=", span"), "channels": CHANNELS}
    frame, _, described = raw_rows(source_for(contacts=contacts))
    assert "3 row(s) in 1 chunk(s)" in described  # an interval column: read by the cursor
    assert len(frame) == 3


def test_wrong_types_quarantine_their_rows(pg_url, monkeypatch, settings, warehouse, instance):
    monkeypatch.setenv(URL_ENV, pg_url)
    engine = sa.create_engine(pg_url)
    with engine.begin() as con:
        con.exec_driver_sql(
            "CREATE TABLE raw_stats (queue text, media text, interval_start timestamptz,"
            " offered text, answered int, abandoned int, handle_seconds float8)"
        )
        con.exec_driver_sql(
            "INSERT INTO raw_stats VALUES"
            " ('Q1', 'voice', '2026-11-16 08:00+00', '12', 10, 1, 900),"
            " ('Q1', 'voice', '2026-11-16 08:15+00', 'n/a', 10, 1, 900),"
            " ('Q1', 'voice', '2026-11-16 08:30+00', '9', 8, 1, 800)"
        )
    engine.dispose()
    query = (
        "SELECT queue AS external_queue_id, media AS channel, interval_start, offered, answered,"
        " abandoned, handle_seconds AS handle_time FROM raw_stats"
        " WHERE interval_start >= :window_start AND interval_start < :window_end"
        " ORDER BY interval_start"
    )
    integration = db_integration(
        contacts={"query": query, "channels": CHANNELS}, format={"time": "iso"}
    )
    integration = integration.model_copy(update={"max_rejected_share": 0.5})
    result = import_range(definitions(settings, integration), instance, integration.id, *WINDOW)
    assert result.success
    stored = warehouse.query("SELECT interval_start, offered FROM contact_intervals ORDER BY 1")
    assert list(stored["offered"]) == [12, 9]
    rejected = warehouse.query("SELECT source_ref, rules, row_json FROM rejected_rows")
    assert list(rejected["source_ref"]) == ["query row 2"]
    assert list(rejected["rules"][0]) == ["offered: not a number"]
    assert '"offered": "n/a"' in rejected["row_json"][0]


def test_window_is_utc_whatever_the_session_timezone(pg_url, monkeypatch):
    """Naive UTC window parameters against timestamptz: the session must run in UTC."""
    monkeypatch.setenv(URL_ENV, pg_url)
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    database = sa.make_url(pg_url).database
    with engine.connect() as con:
        con.exec_driver_sql(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Tokyo'")
        con.exec_driver_sql(
            "CREATE TABLE tz_stats (queue text, at timestamptz, offered int, answered int,"
            " abandoned int, handle int)"
        )
        con.exec_driver_sql(
            "INSERT INTO tz_stats VALUES ('Q', '2026-11-16 07:45+00', 1, 1, 0, 60),"
            " ('Q', '2026-11-16 08:00+00', 2, 2, 0, 60), ('Q', '2026-11-16 09:45+00', 3, 3, 0, 60),"
            " ('Q', '2026-11-16 10:00+00', 4, 4, 0, 60)"
        )
    engine.dispose()
    query = (
        "SELECT queue AS external_queue_id, at AS interval_start, offered, answered, abandoned,"
        " handle AS handle_time FROM tz_stats"
        " WHERE at >= :window_start AND at < :window_end ORDER BY at"
    )
    frame = source_for(contacts={"query": query, "channel": "calls"}).contacts(*WINDOW).frame
    assert list(frame["offered"]) == [2.0, 3.0]
    assert list(frame["interval_start"]) == [
        pd.Timestamp("2026-11-16 08:00", tz="UTC"),
        pd.Timestamp("2026-11-16 09:45", tz="UTC"),
    ]


# -- agent status ---------------------------------------------------------------------------
def test_agent_status_segments_are_exact(db_url):
    start, end = WINDOW
    naive = lambda text: datetime.fromisoformat(text)  # noqa: E731
    events = [
        {
            "agent": "Anna.Smith",
            "state": "Available",
            "started_at": naive("2026-11-16 07:40"),
            "ended_at": naive("2026-11-16 08:10"),
        },
        {
            "agent": "anna.smith",
            "state": "On Call",
            "started_at": naive("2026-11-16 08:05"),
            "ended_at": naive("2026-11-16 08:20"),
        },
        {
            "agent": "anna.smith ",
            "state": "Break",
            "started_at": naive("2026-11-16 09:50"),
            "ended_at": None,
        },
        {
            "agent": "Bob",
            "state": "Available",
            "started_at": naive("2026-11-16 06:00"),
            "ended_at": naive("2026-11-16 07:59"),
        },  # ends before the window
    ]
    create_customer_tables(db_url, [], events)
    query = (
        "SELECT agent, state, started_at, ended_at FROM agent_events"
        " WHERE started_at < :window_end AND (ended_at IS NULL OR ended_at > :window_start)"
        " ORDER BY started_at"
    )
    source = source_for(
        agent_status={
            "query": query,
            "columns": {
                "agent": "user_identifier",
                "state": "external_activity",
                "started_at": "start",
                "ended_at": "end",
            },
        }
    )
    extract = source.agent_status(start, end)
    frame = extract.frame
    assert list(frame["user_identifier"]) == ["Anna.Smith", "anna.smith", "anna.smith "]
    assert list(frame["external_activity"]) == ["Available", "On Call", "Break"]
    assert list(frame["start_utc"]) == [
        pd.Timestamp("2026-11-16 07:40", tz="UTC"),
        pd.Timestamp("2026-11-16 08:05", tz="UTC"),
        pd.Timestamp("2026-11-16 09:50", tz="UTC"),
    ]
    assert list(frame["end_utc"][:2]) == [
        pd.Timestamp("2026-11-16 08:10", tz="UTC"),
        pd.Timestamp("2026-11-16 08:20", tz="UTC"),
    ]
    assert pd.isna(frame["end_utc"][2])  # still in that state
    assert str(frame["start_utc"].dtype) == "datetime64[ns, UTC]"
    assert set(frame["integration_id"]) == {"crm_db"}
    assert extract.rejected.empty


# -- timeouts (read-only: test_database_read_only.py) ------------------------------------
SLOW_QUERY = {
    "pg_url": "SELECT q.* FROM queue_stats q, pg_sleep(5) WHERE interval_start >= :window_start",
    "mysql_url": "SELECT q.*, SLEEP(5) AS pause FROM queue_stats q"
    " WHERE interval_start >= :window_start",
    "sqlite_url": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
    " SELECT q.* FROM queue_stats q, n WHERE interval_start >= :window_start"
    " AND i = 1000000000",
}
TIMEOUT_MESSAGE = {
    "pg_url": "canceling statement due to statement timeout",
    "mysql_url": "max_statement_time exceeded",
    "sqlite_url": "interrupted",
}


@pytest.mark.parametrize("server", ["pg_url", "mysql_url", "sqlite_url"])
def test_statement_timeout_stops_a_slow_query(server, request, monkeypatch):
    url = request.getfixturevalue(server)
    monkeypatch.setenv(URL_ENV, url)
    create_customer_tables(url, stats_rows(WINDOW[0], hours=1))
    source = source_for(
        statement_timeout_s=0.3,
        contacts={"query": SLOW_QUERY[server], "columns": CONTACTS_MAP},
    )
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    message = str(raised.value)
    assert "statement timeout (0.3 s, source.statement_timeout_s)" in message
    assert TIMEOUT_MESSAGE[server] in message


# -- connection failures --------------------------------------------------------------------
def test_unreachable_server_is_retried_then_named_without_password(pg_url, monkeypatch):
    url = with_password(pg_url, port=1)  # nothing listens on port 1
    monkeypatch.setenv(URL_ENV, url)
    source = source_for(connect_attempts=3, retry_backoff_s=0.01)
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    message = str(raised.value)
    assert "integration 'crm_db'" in message
    assert "postgresql at 127.0.0.1:1/" in message
    assert "unreachable after 3 attempt(s)" in message
    assert "Connection refused" in message
    assert PASSWORD not in full_text(raised.value)
    assert raised.value.__context__ is None
    assert raised.value.__cause__ is None


def test_refused_login_names_user_and_host_not_password(mysql_url, monkeypatch):
    monkeypatch.setenv(URL_ENV, with_password(mysql_url))  # root has no password here
    source = source_for(connect_attempts=5, retry_backoff_s=60)  # a retry would hang the test
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    message = str(raised.value)
    assert "mysql at 127.0.0.1:3306/" in message
    assert "refused the login of user 'root'" in message
    assert "Access denied" in message
    assert PASSWORD not in full_text(raised.value)


def test_unknown_role_on_postgresql_is_a_refused_login(pg_url, monkeypatch):
    monkeypatch.setenv(URL_ENV, with_password(pg_url, username="no_such_wfm_role"))
    source = source_for(connect_attempts=5, retry_backoff_s=60)
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    assert "refused the login of user 'no_such_wfm_role'" in str(raised.value)
    assert 'role "no_such_wfm_role" does not exist' in str(raised.value)
    assert PASSWORD not in full_text(raised.value)


def test_sql_error_carries_the_database_message(db_url):
    create_customer_tables(db_url, [])
    query = "SELECT * FROM no_such_table WHERE interval_start >= :window_start"
    source = source_for(contacts={"query": query, "columns": CONTACTS_MAP})
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    message = str(raised.value)
    assert message.startswith(
        "integration 'crm_db', contacts query (source.contacts.query) failed on "
    )
    assert "no_such_table" in message  # the database's own words


def test_missing_columns_are_listed(db_url):
    create_customer_tables(db_url, stats_rows(WINDOW[0], hours=1))
    query = (
        "SELECT queue_id, media, interval_start, offered FROM queue_stats"
        " WHERE interval_start >= :window_start AND interval_start < :window_end"
    )
    source = source_for(contacts={"query": query, "columns": CONTACTS_MAP})
    with pytest.raises(SourceError) as raised:
        source.contacts(*WINDOW)
    message = str(raised.value)
    assert "no column(s) 'answered', 'abandoned', 'handle_seconds' (handle_time)" in message
    assert "the data has: 'queue_id', 'media', 'interval_start', 'offered'" in message


def test_missing_url_variable_is_named(monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    with pytest.raises(SourceError, match=f"environment variable {URL_ENV} .* is not set"):
        source_for().contacts(*WINDOW)


def test_unparsable_url_is_not_echoed(monkeypatch):
    monkeypatch.setenv(URL_ENV, f"not a url with {PASSWORD}")
    with pytest.raises(SourceError) as raised:
        source_for().contacts(*WINDOW)
    assert "does not hold a valid SQLAlchemy URL" in str(raised.value)
    assert PASSWORD not in full_text(raised.value)


# -- local times, query files, config -------------------------------------------------------
def test_local_timestamps_use_local_parameters_and_dst_rules(sqlite_url, monkeypatch):
    """Naive local times at the fall-back hour: rejected by default, resolved by row order."""
    monkeypatch.setenv(URL_ENV, sqlite_url)
    rows = []
    for wall in ("01:45", "02:00", "02:15", "02:00", "02:15", "03:00"):  # Berlin, 2026-10-25
        rows.append(
            {
                "queue_id": "Q",
                "media": "voice",
                "interval_start": datetime.fromisoformat(f"2026-10-25 {wall}"),
                "offered": 3,
                "answered": 3,
                "abandoned": 0,
                "handle_seconds": 60,
            }
        )
    create_customer_tables(sqlite_url, rows)
    query = (
        "SELECT * FROM queue_stats WHERE interval_start >= :local_start"
        " AND interval_start < :local_end"
    )
    start, end = datetime(2026, 10, 24, 23, 30, tzinfo=UTC), datetime(2026, 10, 25, 2, tzinfo=UTC)
    contacts = {"query": query, "columns": CONTACTS_MAP, "channels": CHANNELS}

    strict = source_for(format={"time": "local"}, contacts=contacts).contacts(start, end)
    assert list(strict.frame["interval_start"]) == [pd.Timestamp("2026-10-24 23:45", tz="UTC")]
    assert len(strict.rejected) == 4  # 02:00 and 02:15, twice each
    assert "1 outside the window ignored" in strict.description  # 03:00 CET = 02:00 UTC
    assert all("local time is ambiguous in Europe/Berlin" in r[0] for r in strict.rejected["rules"])

    ordered = source_for(format={"time": "local", "ambiguous_times": "order"}, contacts=contacts)
    frame = ordered.contacts(start, end).frame
    assert list(frame["interval_start"]) == [
        pd.Timestamp(f"2026-10-{d} {hm}", tz="UTC")
        for d, hm in (
            ("24", "23:45"),
            ("25", "00:00"),
            ("25", "00:15"),
            ("25", "01:00"),
            ("25", "01:15"),
        )
    ]  # 03:00 CET is 02:00 UTC: the next window's


def test_local_range_covers_the_window_across_dst():
    # Fall back in New York: 05:00-06:00 UTC is 01:00 EDT .. 01:00 EST on the wall clock.
    low, high = local_range(
        datetime(2026, 11, 1, 5, tzinfo=UTC),
        datetime(2026, 11, 1, 6, tzinfo=UTC),
        "America/New_York",
    )
    assert (low, high) == (datetime(2026, 11, 1, 0, 0), datetime(2026, 11, 1, 2, 0))
    # Spring forward: 06:00-08:00 UTC is 01:00 EST .. 04:00 EDT.
    low, high = local_range(
        datetime(2026, 3, 8, 6, tzinfo=UTC),
        datetime(2026, 3, 8, 8, tzinfo=UTC),
        "America/New_York",
    )
    assert (low, high) == (datetime(2026, 3, 8, 1, 0), datetime(2026, 3, 8, 4, 0))


def test_query_file_is_read_from_the_project_home(sqlite_url, monkeypatch, tmp_path):
    monkeypatch.setenv(URL_ENV, sqlite_url)
    monkeypatch.setenv("WFM_HOME", str(tmp_path))
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "contacts.sql").write_text(CONTACTS_SQL)
    create_customer_tables(sqlite_url, stats_rows(WINDOW[0], hours=2))
    source = source_for(
        contacts={
            "query_file": "queries/contacts.sql",
            "columns": CONTACTS_MAP,
            "channels": CHANNELS,
        }
    )
    assert len(source.contacts(*WINDOW).frame) == 24


def test_config_rejects_unbound_queries_and_inline_secrets():
    base = {
        "id": "crm_db",
        "vendor": "database",
        "delivery": "cloud",
        "interval_minutes": 15,
        "timezone": "UTC",
        "history_start": "2026-11-01",
    }
    unbound = {**base, "source": {"url_env": URL_ENV, "contacts": {"query": "SELECT * FROM t"}}}
    with pytest.raises(ConfigError, match="uses none of the window parameters"):
        parse_integrations({"integrations": [unbound]})
    both = {
        **base,
        "source": {"url_env": URL_ENV, "contacts": {"query": CONTACTS_SQL, "query_file": "x.sql"}},
    }
    with pytest.raises(ConfigError, match="exactly one of query and query_file"):
        parse_integrations({"integrations": [both]})
    inline = {**base, "source": {"url_env": URL_ENV, "password": "x"}}
    with pytest.raises(ConfigError, match="secret given inline"):
        parse_integrations({"integrations": [inline]})
    typo = {
        **base,
        "source": {"url_env": URL_ENV, "contacts": {"query": CONTACTS_SQL, "colums": {}}},
    }
    with pytest.raises(ConfigError, match="colums"):
        parse_integrations({"integrations": [typo]})
