"""The Sikom preset: tables named by configuration on real PostgreSQL and MariaDB servers, and
CSV exports, with local times in Sikom's own time zone (here Oslo, for an integration planned
in London) across the fall-back night.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from etl.config import ConfigError, parse_integrations
from etl.resources.sources.base import SourceError
from etl.resources.sources.vendors.sikom import SikomSource
from tests.helpers import definitions, import_range

URL_ENV = "WFM_TEST_SIKOM_URL"
OSLO = ZoneInfo("Europe/Oslo")
NIGHT = datetime(2026, 10, 24, 23, tzinfo=UTC)  # 01:00 CEST in Oslo; clocks go back at 01:00 UTC
CONTACT_COLUMNS = {
    "KoeNavn": "external_queue_id",
    "IntervallStart": "interval_start",
    "Tilbudt": "offered",
    "Besvart": "answered",
    "Tapt": "abandoned",
    "Behandlingstid": "handle_time",
}
AGENT_COLUMNS = {
    "Brukernavn": "user_identifier",
    "Status": "external_activity",
    "Fra": "start",
    "Til": "end",
}


def sikom_integration(source: dict, data=("contacts", "agent_status")):
    fields = {
        "id": "sikom_oslo",
        "vendor": "sikom",
        "delivery": "on_premise",
        "interval_minutes": 15,
        "data": list(data),
        "timezone": "Europe/London",
        "history_start": "2026-10-24",
        "source": {"source_timezone": "Europe/Oslo", **source},
    }
    return parse_integrations({"integrations": [fields]})[0]


def contact_rows() -> list[dict]:
    """15-minute intervals through the fall-back night, as Sikom stores them: local wall-clock
    times (01:00..02:45 come twice), in time order."""
    rows, moment, n = [], NIGHT, 0
    while moment < NIGHT + timedelta(hours=4):
        for q, queue in enumerate(("Kundeservice", "Salg")):
            offered = 4 + (n * 5 + q) % 9
            rows.append(
                {
                    "KoeNavn": queue,
                    "IntervallStart": moment.astimezone(OSLO).replace(tzinfo=None),
                    "Tilbudt": offered,
                    "Besvart": offered - 1,
                    "Tapt": 1,
                    "Behandlingstid": (offered - 1) * 210,
                    "utc": moment,
                }
            )
        moment += timedelta(minutes=15)
        n += 1
    return rows


def agent_rows() -> list[dict]:
    """Agents' statuses with local times; the last one of each still going on. Kari's call
    ends, and her break begins, in the first pass of the repeated hour (02:35 summer time)."""
    spans = [
        ("kari.nordmann", "Ledig", 0, 20),
        ("kari.nordmann", "Samtale", 20, 95),  # runs through the repeated hour
        ("kari.nordmann", "Pause", 95, None),
        ("ola.hansen", "Samtale", 10, 50),
        ("ola.hansen", "Etterarbeid", 50, None),
    ]
    rows = []
    for user, status, start, end in spans:
        begin = NIGHT + timedelta(minutes=start)
        finish = None if end is None else NIGHT + timedelta(minutes=end)
        rows.append(
            {
                "Brukernavn": user,
                "Status": status,
                "Fra": begin.astimezone(OSLO).replace(tzinfo=None),
                "Til": None if finish is None else finish.astimezone(OSLO).replace(tzinfo=None),
                "utc": (begin, finish),
            }
        )
    return rows


@pytest.fixture(params=["pg_url", "mysql_url"])
def sikom_db(request, monkeypatch):
    url = request.getfixturevalue(request.param)
    monkeypatch.setenv(URL_ENV, url)
    engine = sa.create_engine(url)
    schema = None
    if engine.dialect.name == "postgresql":
        schema = "sikom"  # Sikom's tables in a schema of their own
        with engine.begin() as con:
            con.execute(sa.text("CREATE SCHEMA sikom"))
    metadata = sa.MetaData(schema=schema)
    contacts = sa.Table(
        "KoeStatistikk",
        metadata,
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("KoeNavn", sa.String(64)),
        sa.Column("IntervallStart", sa.DateTime),
        sa.Column("Tilbudt", sa.Integer),
        sa.Column("Besvart", sa.Integer),
        sa.Column("Tapt", sa.Integer),
        sa.Column("Behandlingstid", sa.Integer),
        sa.Column("Kommentar", sa.String(64)),  # a column the preset does not read
    )
    agents = sa.Table(
        "AgentLogg",
        metadata,
        sa.Column("Brukernavn", sa.String(64)),
        sa.Column("Status", sa.String(64)),
        sa.Column("Fra", sa.DateTime),
        sa.Column("Til", sa.DateTime, nullable=True),
    )
    metadata.create_all(engine)
    with engine.begin() as con:
        con.execute(
            contacts.insert(), [{k: v for k, v in r.items() if k != "utc"} for r in contact_rows()]
        )
        con.execute(
            agents.insert(), [{k: v for k, v in r.items() if k != "utc"} for r in agent_rows()]
        )
    engine.dispose()
    return schema


def database_source(schema: str | None) -> dict:
    return {
        "database": {
            "url_env": URL_ENV,
            "format": {"time": "local", "ambiguous_times": "order"},
            "contacts": {
                "table": "KoeStatistikk",
                "schema": schema,
                "columns": CONTACT_COLUMNS,
                "channel": "calls",
                "order_by": ["Id"],
            },
            "agent_status": {
                "table": "AgentLogg",
                "schema": schema,
                "columns": AGENT_COLUMNS,
                "order_by": ["Fra"],
            },
        }
    }


def test_sikom_tables_are_read_in_sikoms_time_zone(sikom_db):
    source = SikomSource.from_integration(sikom_integration(database_source(sikom_db)))
    extract = source.contacts(NIGHT, NIGHT + timedelta(hours=4))
    frame = extract.frame.sort_values(["interval_start", "external_queue_id"], ignore_index=True)
    rows = contact_rows()
    assert extract.rejected.empty
    assert len(frame) == len(rows) == 2 * 16  # the repeated local hour kept twice
    assert list(frame["interval_start"]) == [pd.Timestamp(r["utc"]) for r in rows]
    assert list(frame["offered"]) == [r["Tilbudt"] for r in rows]
    assert list(frame["handle_time_s"]) == [float(r["Behandlingstid"]) for r in rows]
    assert set(frame["channel"]) == {"calls"}

    # A window of one hour reads that hour only (bound in the query, widened locally).
    hour = source.contacts(NIGHT + timedelta(hours=2), NIGHT + timedelta(hours=3))
    assert len(hour.frame) == 8
    assert hour.frame["interval_start"].min() == pd.Timestamp(NIGHT + timedelta(hours=2))


def test_sikom_agent_statuses_overlapping_the_window_with_open_ones(sikom_db):
    source = SikomSource.from_integration(sikom_integration(database_source(sikom_db)))
    start, end = NIGHT + timedelta(hours=1), NIGHT + timedelta(hours=2)
    extract = source.agent_status(start, end)
    got = sorted(
        zip(
            extract.frame["user_identifier"],
            extract.frame["external_activity"],
            extract.frame["start_utc"],
            extract.frame["end_utc"],
            strict=True,
        )
    )
    expected = sorted(
        (
            r["Brukernavn"],
            r["Status"],
            pd.Timestamp(r["utc"][0]),
            pd.Timestamp(r["utc"][1]) if r["utc"][1] else pd.NaT,
        )
        for r in agent_rows()
        if r["utc"][0] < end and (r["utc"][1] is None or r["utc"][1] > start)
    )
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert [pd.isna(g[3]) for g in got] == [pd.isna(e[3]) for e in expected]
    assert [g[3] for g in got if not pd.isna(g[3])] == [e[3] for e in expected if not pd.isna(e[3])]
    assert ("kari.nordmann", "Samtale") in [g[:2] for g in got]  # spans the repeated hour


def test_sikom_imports_through_the_assets(sikom_db, settings, warehouse, instance):
    integration = sikom_integration(database_source(sikom_db))
    defs = definitions(settings, integration)
    assert import_range(defs, instance, integration.id, NIGHT, NIGHT + timedelta(hours=4)).success
    totals = warehouse.query("SELECT count(*) AS n, sum(offered) AS offered FROM contact_intervals")
    assert totals["n"][0] == 32
    assert totals["offered"][0] == sum(r["Tilbudt"] for r in contact_rows())
    users = warehouse.query("SELECT DISTINCT user_identifier FROM agent_status_segments ORDER BY 1")
    assert list(users["user_identifier"]) == ["kari.nordmann", "ola.hansen"]
    assert warehouse.query("SELECT count(*) AS n FROM rejected_rows")["n"][0] == 0


def test_a_wrong_table_name_fails_with_the_databases_message(sikom_db):
    source_settings = database_source(sikom_db)
    source_settings["database"]["contacts"]["table"] = "KoeStatistik"
    source = SikomSource.from_integration(sikom_integration(source_settings))
    with pytest.raises(
        SourceError,
        match=r"integration 'sikom_oslo', contacts query \(built from source.database.contacts\) "
        r"failed on",
    ):
        source.contacts(NIGHT, NIGHT + timedelta(hours=1))


def test_sikom_csv_exports_with_configured_columns(tmp_path: Path):
    rows = contact_rows()
    folder = tmp_path / "exports"
    folder.mkdir()
    frame = pd.DataFrame(rows).drop(columns="utc")
    frame["Dato"] = frame.pop("IntervallStart").map(lambda t: t.strftime("%d.%m.%Y %H:%M"))
    frame.to_csv(folder / "koe.csv", sep=";", index=False)
    columns = {**CONTACT_COLUMNS, "Dato": "interval_start"}
    del columns["IntervallStart"]
    integration = sikom_integration(
        {
            "csv": {
                "folder": str(folder),
                "state_dir": str(tmp_path / "state"),
                "format": {
                    "delimiter": ";",
                    "time": "local",
                    "datetime_format": "%d.%m.%Y %H:%M",
                    "ambiguous_times": "order",
                },
                "contacts": {"glob": "*.csv", "columns": columns, "channel": "calls"},
            }
        },
        data=("contacts",),
    )
    extract = SikomSource.from_integration(integration).contacts(NIGHT, NIGHT + timedelta(hours=4))
    got = extract.frame.sort_values(["interval_start", "external_queue_id"], ignore_index=True)
    assert extract.rejected.empty
    assert list(got["interval_start"]) == [pd.Timestamp(r["utc"]) for r in rows]
    assert list(got["offered"]) == [r["Tilbudt"] for r in rows]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({}, "give exactly one of database and csv"),
        (
            {"database": {"url_env": URL_ENV}, "csv": {"folder": "x"}},
            "give exactly one of database and csv",
        ),
        (
            {"database": {"url_env": URL_ENV, "contacts": {"table": "t", "columns": {}}}},
            "name the column of external_queue_id, interval_start, offered, answered, abandoned, "
            "handle_time in columns",
        ),
        (
            {
                "database": {
                    "url_env": URL_ENV,
                    "agent_status": {
                        "table": "t",
                        "columns": {"u": "user_identifier", "s": "external_activity", "f": "start"},
                    },
                }
            },
            "name the column of end in columns",
        ),
        ({"source_timezone": "Europe/Oslooo", "csv": {"folder": "x"}}, "unknown IANA timezone"),
        (
            {"database": {"url_env": URL_ENV, "format": {"time": "iso"}}},
            "time: iso is for text",
        ),
        (
            {
                "database": {
                    "url_env": URL_ENV,
                    "format": {"ambiguous_times": "order"},
                    "contacts": {
                        "table": "t",
                        "columns": CONTACT_COLUMNS,
                        "channel": "calls",
                    },
                }
            },
            "contacts: ambiguous_times: order needs order_by",
        ),
    ],
)
def test_sikom_settings_are_checked_when_the_config_loads(source, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        sikom_integration(source)
