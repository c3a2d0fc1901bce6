"""Deterministic benchmark workloads: a customer's CSV export and the same rows in PostgreSQL.

Numbers come from DuckDB's `hash()` of (queue, interval), so every run of the benchmark writes
the same files, and the floor and our import read exactly the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import sqlalchemy as sa

INTERVAL_MINUTES = 15
CSV_COLUMNS = "interval_start,queue,channel,offered,answered,abandoned,handle_time_s"
# Where the database integration finds its source's URL.
SOURCE_URL_ENV = "WFM_BENCH_SOURCE_URL"

ROWS_SQL = """
SELECT strftime(ts, '%Y-%m-%dT%H:%M:%SZ') AS interval_start,
       'Q' || lpad(CAST(q AS VARCHAR), 4, '0') AS queue,
       'calls' AS channel,
       offered,
       answered,
       (offered - answered) // 2 AS abandoned,
       round(answered * (180 + hash(q, ts, 'aht') % 240), 1) AS handle_time_s
FROM (
    SELECT ts, q, offered,
           offered - CAST(hash(q, ts, 'ans') % (offered // 5 + 1) AS BIGINT) AS answered
    FROM (
        SELECT CAST(? AS TIMESTAMP) + to_minutes(CAST(i * 15 AS BIGINT)) AS ts,
               q,
               CAST(hash(q, i) % 30 AS BIGINT) AS offered
        FROM range(?) AS t(i), range(?) AS u(q)
    )
)
"""


@dataclass(frozen=True)
class Workload:
    queues: int
    start: datetime
    days: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    @property
    def rows(self) -> int:
        return self.rows_between(self.start, self.end)

    def rows_between(self, start: datetime, end: datetime) -> int:
        """The rows delivered for [start, end): every queue at every interval."""
        return self.queues * ((end - start) // timedelta(minutes=INTERVAL_MINUTES))

    def months(self) -> list[tuple[datetime, datetime]]:
        out, cursor = [], self.start
        while cursor < self.end:
            nxt = (cursor.replace(day=1) + timedelta(days=32)).replace(day=1)
            out.append((cursor, min(nxt, self.end)))
            cursor = min(nxt, self.end)
        return out


def history_workload(queues: int, years: int, now: datetime | None = None) -> Workload:
    """`years` of history ending at the start of the current UTC month."""
    now = now or datetime.now(UTC)
    end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = end.replace(year=end.year - years)
    return Workload(queues=queues, start=start, days=(end - start).days)


def history_integration(kind: str, workload: Workload, csv_dir: Path) -> dict:
    """The integration that imports the history: `csv` reads the daily files in `csv_dir`
    (indexed from their names), any other kind the PostgreSQL table `bench_contacts`."""
    common = {
        "vendor": kind,
        "delivery": "on_premise",
        "interval_minutes": 15,
        "data": ["contacts"],
        "timezone": "UTC",
        "history_start": workload.start.isoformat(),
        "max_partitions_per_run": 744,
    }
    if kind == "csv":
        return {
            **common,
            "id": "history_csv",
            "source": {
                "folder": str(csv_dir),
                "format": {"time": "iso", "duration_unit": "s"},
                "contacts": {
                    "glob": "contacts_*.csv",
                    "day_in_name": "contacts_%Y-%m-%d.csv",  # one UTC day per file
                    "columns": {"queue": "external_queue_id", "handle_time_s": "handle_time"},
                },
            },
        }
    return {
        **common,
        "id": "history_db",
        "source": {
            "url_env": SOURCE_URL_ENV,
            "format": {"time": "utc", "duration_unit": "s"},
            "contacts": {
                "query": (
                    "SELECT queue AS external_queue_id, channel, interval_start, offered, "
                    "answered, abandoned, handle_time_s AS handle_time FROM bench_contacts "
                    "WHERE interval_start >= :window_start AND interval_start < :window_end"
                ),
            },
        },
    }


def write_csv_files(workload: Workload, folder: Path) -> list[Path]:
    """One file per day, as a customer's daily export would arrive."""
    folder.mkdir(parents=True, exist_ok=True)
    per_day = 24 * 60 // INTERVAL_MINUTES
    files = []
    with duckdb.connect() as con:
        for day in range(workload.days):
            date = workload.start + timedelta(days=day)
            target = folder / f"contacts_{date:%Y-%m-%d}.csv"
            files.append(target)
            if target.exists():
                continue
            tmp = target.with_suffix(".csv.part")
            relation = con.sql(
                ROWS_SQL, params=[date.replace(tzinfo=None), per_day, workload.queues]
            )
            relation.write_csv(str(tmp), header=True)
            tmp.rename(target)
    return files


def load_postgres_table(workload: Workload, url: str, table: str, csv_folder: Path) -> None:
    """The same rows in a PostgreSQL table (with an index on the time column), via COPY."""
    engine = sa.create_engine(url)
    with engine.begin() as con:
        con.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        con.execute(
            sa.text(
                f"CREATE TABLE {table} (interval_start timestamptz NOT NULL, queue text NOT NULL, "
                "channel text NOT NULL, offered integer, answered integer, abandoned integer, "
                "handle_time_s double precision)"
            )
        )
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for path in sorted(csv_folder.glob("contacts_*.csv")):
            with open(path, encoding="utf-8") as handle:
                cursor.copy_expert(
                    f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)", handle
                )
        cursor.execute(f"CREATE INDEX ON {table} (interval_start)")
        cursor.execute(f"ANALYZE {table}")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
