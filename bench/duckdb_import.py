"""What the history import's own work would cost written as DuckDB SQL: a what-if that the
analysis weighs against the "import alone" line, not a path the project takes.

For each month: `read_csv` of the month's day files with the columns typed (a value that does
not parse goes to DuckDB's rejects table, with its file and line), the contact schema's rules
for the benchmark's integration as SQL (the rules `etl.schemas.contact_schema` holds: ids not
empty, a known channel, the 15-minute grid, the window, counts whole and >= 0, seconds finite
and >= 0, answered <= offered, abandoned <= offered - answered), keys that repeat, and the
month's fact file and its day sums written as Parquet with the warehouse's columns.

It leaves out what the import also does: a row reference (file and line) for every rejected
row (`read_csv` gives no line numbers), the quarantine's rows, the import log and the coverage
check. So its time is a lower bound for the import done in DuckDB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from etl.partitions import next_month
from etl.schemas import CHANNELS

INTERVAL_US = 15 * 60 * 10**6
COLUMNS = {
    "interval_start": "TIMESTAMPTZ",
    "queue": "VARCHAR",
    "channel": "VARCHAR",
    "offered": "DOUBLE",
    "answered": "DOUBLE",
    "abandoned": "DOUBLE",
    "handle_time_s": "DOUBLE",
}
READ_AND_CHECK = """
CREATE OR REPLACE TEMP TABLE checked AS
SELECT *,
       external_queue_id IS NULL OR external_queue_id = ''
       OR channel IS NULL OR NOT list_contains($channels, channel)
       OR interval_start IS NULL OR epoch_us(interval_start) % $interval_us <> 0
       OR interval_start < $start OR interval_start >= $end
       OR offered IS NULL OR offered < 0 OR offered <> trunc(offered)
       OR answered IS NULL OR answered < 0 OR answered <> trunc(answered)
       OR abandoned IS NULL OR abandoned < 0 OR abandoned <> trunc(abandoned)
       OR handle_time_s IS NULL OR handle_time_s < 0 OR isinf(handle_time_s)
       OR answered > offered OR abandoned > offered - answered AS broken
FROM (
    SELECT queue AS external_queue_id, * EXCLUDE (queue)
    FROM read_csv($files, header = true, columns = $columns, store_rejects = true)
)
"""
REPEATED_KEYS = """
CREATE OR REPLACE TEMP TABLE repeated AS
SELECT external_queue_id, channel, interval_start
FROM checked
GROUP BY ALL
HAVING count(*) > 1
"""
RUN = "CREATE OR REPLACE TEMP TABLE run AS SELECT $integration AS integration_id"
# The month's good rows with the warehouse's columns; rows with a repeated key are left out
# by an anti join, which a month without any skips.
FACTS = """
SELECT run.integration_id, external_queue_id, channel, interval_start,
       timezone('UTC', interval_start) AS interval_start_local,
       15::SMALLINT AS interval_minutes,
       offered::BIGINT AS offered, answered::BIGINT AS answered,
       abandoned::BIGINT AS abandoned, handle_time_s,
       NULL::DOUBLE AS talk_time_s, NULL::DOUBLE AS hold_time_s, NULL::DOUBLE AS acw_time_s,
       NULL::BIGINT AS answered_in_sl
FROM checked {repeated} CROSS JOIN run
WHERE NOT broken
"""
WITHOUT_REPEATED = "ANTI JOIN repeated USING (external_queue_id, channel, interval_start)"
DAY_SUMS = Path(__file__).parent.parent / "sql" / "summaries" / "contact_days.sql"
PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 256000)"


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def import_month(
    con: duckdb.DuckDBPyConnection, files: list[str], start: datetime, target: Path
) -> int:
    """The month's rows checked and written as a fact file and its day sums; rows written."""
    con.execute(
        READ_AND_CHECK,
        {
            "files": files,
            "columns": COLUMNS,
            "channels": list(CHANNELS),
            "interval_us": INTERVAL_US,
            "start": start,
            "end": next_month(start),
        },
    )
    con.execute(REPEATED_KEYS)
    con.execute(RUN, {"integration": "history_csv"})
    any_repeated = con.execute("SELECT count(*) FROM repeated").fetchall()[0][0]
    facts_sql = FACTS.format(repeated=WITHOUT_REPEATED if any_repeated else "")
    facts, sums = target / "facts.parquet", target / "day_sums.parquet"
    con.execute(f"COPY ({facts_sql}) TO {_quoted(facts)} {PARQUET}")
    con.execute(
        f"COPY (WITH facts AS ({facts_sql}) {DAY_SUMS.read_text()}) TO {_quoted(sums)} {PARQUET}"
    )
    return con.execute(f"SELECT count(*) FROM {_quoted(facts)}").fetchall()[0][0]


@dataclass(frozen=True)
class Months:
    seconds: list[float]
    cpu_seconds: list[float]  # the process's threads, summed
    rows: list[int]


def month_seconds(
    csv_dir: Path, months: list[datetime], target: Path, threads: int | None = None
) -> Months:
    """Each month imported in one connection (as one run would hold it), timed."""
    target.mkdir(parents=True, exist_ok=True)
    config = {"threads": threads} if threads else {}
    done = Months([], [], [])
    with duckdb.connect(config=config) as con:
        con.execute("SET TimeZone = 'UTC'")
        for start in months:
            files = [str(p) for p in sorted(csv_dir.glob(f"contacts_{start:%Y-%m}-*.csv"))]
            began, began_cpu = time.perf_counter(), time.process_time()
            done.rows.append(import_month(con, files, start, target))
            done.seconds.append(time.perf_counter() - began)
            done.cpu_seconds.append(time.process_time() - began_cpu)
    return done
