"""Demo data for the universal sources: a CSV drop folder and an SQLite "CRM" database.

`wfm-etl demo` calls `prepare_demo_sources` before importing, so the demo integrations
`hamburg_csv` (vendor csv) and `london_db` (vendor database) in integrations.yaml have
something recent to read. The numbers come from the simulator, written the way a customer's
systems would deliver them: a German ACD export (cp1252, semicolons, decimal commas, local
date and time, average handle time as HH:MM:SS) and a database table with UTC timestamps and
handle time in milliseconds. Agent states are a plain shift pattern per agent.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from etl.resources.sources.simulator.simulator import SimulatorSettings, SimulatorSource

DEMO_DB_ENV = "WFM_DEMO_DB_URL"
CSV_ID, CSV_ZONE = "hamburg_csv", "Europe/Berlin"
DB_ID, DB_ZONE = "london_db", "Europe/London"
GERMAN_QUEUES = {
    "sales": "Vertrieb",
    "support": "Kundendienst",
    "billing": "Abrechnung",
    "retention": "Kündigungen",
}
GERMAN_CHANNELS = {"calls": "Anrufe", "emails": "E-Mail", "chats": "Chat"}
CRM_CHANNELS = {"calls": "voice", "chats": "webchat", "emails": "mail"}
# A shift in local time, then a repeating cycle of (activity, minutes).
SHIFT = (8, 16)
CYCLE = (("Available", 4), ("On Call", 9), ("After Call Work", 2))
BREAK = ("Lunch", 12, 30)


def demo_paths(home: Path) -> tuple[Path, Path]:
    data = home / "data" / "demo"
    return data / "csv", data / "crm.sqlite"


def demo_db_url(home: Path) -> str:
    return f"sqlite:///{demo_paths(home)[1]}"


def _contacts(integration_id: str, zone: str, minutes: int, seed: int, start, end):
    source = SimulatorSource(
        integration_id=integration_id,
        timezone=zone,
        interval_minutes=minutes,
        settings=SimulatorSettings(seed=seed, queues=4, channels=["calls", "emails", "chats"]),
    )
    return source.contacts(start, end).frame


def _agent_segments(agents: list[str], zone: str, start: datetime, end: datetime, now: datetime):
    """Shift segments overlapping [start, end): work cycles, lunch, logged out after the
    shift; the segment running at `now` is still open (no end)."""
    tz = ZoneInfo(zone)
    rows = []
    day = start.astimezone(tz).date() - timedelta(days=1)
    while datetime.combine(day, datetime.min.time(), tz) < end:
        for position, agent in enumerate(agents):
            moment = datetime.combine(day, datetime.min.time(), tz).replace(
                hour=SHIFT[0], minute=position * 7
            )
            shift_end = moment.replace(hour=SHIFT[1])
            lunch = moment.replace(hour=BREAK[1], minute=position * 5)
            step = position
            while moment < shift_end:
                if lunch <= moment < lunch + timedelta(minutes=BREAK[2]):
                    state, length = BREAK[0], lunch + timedelta(minutes=BREAK[2]) - moment
                else:
                    state, minutes = CYCLE[step % len(CYCLE)]
                    length = timedelta(minutes=minutes + (step * 3 + position) % 4)
                    step += 1
                until = min(moment + length, shift_end)
                if moment >= now:
                    break
                if until > start.astimezone(tz) and moment < end.astimezone(tz):
                    rows.append((agent, state, moment, None if until > now else until))
                moment = until
        day += timedelta(days=1)
    return rows


def _write_csv_folder(folder: Path, start: datetime, end: datetime, now: datetime) -> int:
    frame = _contacts(CSV_ID, CSV_ZONE, 15, 11, start, now)
    local = frame["interval_start"].dt.tz_convert(CSV_ZONE)
    answered = frame["answered"].where(frame["answered"] > 0)
    aht = (frame["handle_time_s"] / answered).fillna(0).round().astype(int)
    export = pd.DataFrame(
        {
            "Warteschlange": frame["external_queue_id"].str.split("_").str[0].map(GERMAN_QUEUES),
            "Kanal": frame["channel"].map(GERMAN_CHANNELS),
            "Datum": local.dt.strftime("%d.%m.%Y"),
            "Uhrzeit": local.dt.strftime("%H:%M"),
            "Angeboten": frame["offered"],
            "Angenommen": frame["answered"],
            "Abgebrochen": frame["abandoned"],
            "Durchschn. Bearbeitungszeit": [
                f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for s in aht
            ],
            "Servicelevel %": (frame["answered_in_sl"] / answered * 100)
            .fillna(0)
            .map(lambda v: f"{v:.1f}".replace(".", ",")),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    for day, rows in export.groupby(local.dt.date):
        _replace_text(
            folder / f"intervals_{day:%Y-%m-%d}.csv",
            rows.to_csv(sep=";", index=False, lineterminator="\r\n"),
            "cp1252",
        )
    agents = ["Jana.Schulz", "Deniz.Yilmaz", "Ole.Hansen", "Maria.König"]
    segments = _agent_segments(agents, CSV_ZONE, start, end, now)
    by_day: dict = {}
    for agent, state, since, until in segments:
        german = {
            "Available": "Bereit",
            "On Call": "Im Gespräch",
            "After Call Work": "Nachbearbeitung",
            "Lunch": "Mittagspause",
        }[state]
        ends = "" if until is None else f"{until:%H:%M}"
        line = f"{agent};{german};{since:%d.%m.%Y};{since:%H:%M};{ends}"
        by_day.setdefault(since.date(), []).append(line)
    for day, lines in by_day.items():
        text = "\r\n".join(["Agent;Status;Datum;Beginn;Ende", *lines]) + "\r\n"
        _replace_text(folder / "agents" / f"status_{day:%Y-%m-%d}.csv", text, "cp1252")
    return len(export)


def _replace_text(path: Path, text: str, encoding: str) -> None:
    """Rewrite a demo file only when its content changed (as a real exporter would)."""
    data = text.encode(encoding)
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_bytes(data)
    tmp.replace(path)


def _write_database(path: Path, start: datetime, end: datetime, now: datetime) -> int:
    frame = _contacts(DB_ID, DB_ZONE, 30, 21, start, now)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        (
            queue.replace("_", "-").upper(),
            CRM_CHANNELS[channel],
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            int(offered),
            int(answered),
            int(abandoned),
            round(handle * 1000),
        )
        for queue, channel, moment, offered, answered, abandoned, handle in frame[
            [
                "external_queue_id",
                "channel",
                "interval_start",
                "offered",
                "answered",
                "abandoned",
                "handle_time_s",
            ]
        ].itertuples(index=False)
    ]
    agents = ["ahmed.khan", "beth.jones", "carlos.silva", "dana.white"]
    events = [
        (
            agent,
            state,
            since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            None if until is None else until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
        for agent, state, since, until in _agent_segments(agents, DB_ZONE, start, end, now)
    ]
    with sqlite3.connect(path) as con:
        con.executescript(
            """
            DROP TABLE IF EXISTS interval_stats;
            CREATE TABLE interval_stats (queue TEXT, media TEXT, interval_start_utc TEXT,
                offered INTEGER, answered INTEGER, abandoned INTEGER, handle_ms INTEGER);
            DROP TABLE IF EXISTS agent_events;
            CREATE TABLE agent_events (agent TEXT, state TEXT, started_at TEXT, ended_at TEXT);
            """
        )
        con.executemany("INSERT INTO interval_stats VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        con.executemany("INSERT INTO agent_events VALUES (?, ?, ?, ?)", events)
    return len(rows)


def prepare_demo_sources(home: Path, start: datetime, end: datetime) -> str:
    """Write the demo CSV folder and SQLite database for [start, end); a one-line summary."""
    folder, database = demo_paths(home)
    now = min(datetime.now(UTC), end)
    csv_rows = _write_csv_folder(folder, start, end, now)
    db_rows = _write_database(database, start, end, now)
    return (
        f"demo sources: {csv_rows} interval rows as CSV files in {folder}, "
        f"{db_rows} in the SQLite database {database}"
    )
