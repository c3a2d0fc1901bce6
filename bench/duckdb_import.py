"""What the history import's own work would cost written as DuckDB SQL: a what-if that the
analysis weighs against the "import alone" line, not a path the project takes.

For each month, in the cheapest order found: one streaming pass reads the month's day files
with `read_csv` and the columns typed (a value that does not parse goes to DuckDB's rejects
table, with its file and line), applies the contact schema's rules for the benchmark's
integration as one SQL condition (the rules `etl.schemas.contact_schema` holds: ids not empty, a
known channel, the 15-minute grid, the window, counts whole and >= 0, seconds finite and >= 0,
answered <= offered, abandoned <= offered - answered) and writes the rows that keep them as the
month's fact file, with the warehouse's columns. The keys that repeat are then counted and the
day sums written, both from that file.

It leaves out what the import also does: keeping the broken rows (here they are only left
out), a row reference (file and line) for each (`read_csv` gives no line numbers), dropping the
rows whose key repeats (here they are only counted; the benchmark's files have none), the
import log and the coverage check. So its time is a lower bound for the import done in DuckDB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import duckdb

from etl.partitions import next_month
from etl.resources.warehouse import _sql_literal
from etl.schemas import CHANNELS

# A month's values are bound as variables: COPY takes no prepared parameters.
SET_VARIABLE = "SET VARIABLE {name} = $value"  # one name of ours a statement
# The month's rows that keep the rules, with the warehouse's columns.
GOOD_ROWS = """
SELECT getvariable('integration') AS integration_id, external_queue_id, channel, interval_start,
       timezone('UTC', interval_start) AS interval_start_local,
       15::SMALLINT AS interval_minutes,
       offered::BIGINT AS offered, answered::BIGINT AS answered,
       abandoned::BIGINT AS abandoned, handle_time_s,
       NULL::DOUBLE AS talk_time_s, NULL::DOUBLE AS hold_time_s, NULL::DOUBLE AS acw_time_s,
       NULL::BIGINT AS answered_in_sl
FROM (
    SELECT queue AS external_queue_id, * EXCLUDE (queue)
    FROM read_csv(
        getvariable('files'),
        header = true,
        store_rejects = true,
        columns = {
            'interval_start': 'TIMESTAMPTZ', 'queue': 'VARCHAR', 'channel': 'VARCHAR',
            'offered': 'DOUBLE', 'answered': 'DOUBLE', 'abandoned': 'DOUBLE',
            'handle_time_s': 'DOUBLE'
        }
    )
)
WHERE NOT (
    external_queue_id IS NULL OR external_queue_id = ''
    OR channel IS NULL OR NOT list_contains(getvariable('channels'), channel)
    OR interval_start IS NULL OR epoch_us(interval_start) % 900000000 <> 0
    OR interval_start < getvariable('window_start')
    OR interval_start >= getvariable('window_end')
    OR offered IS NULL OR offered < 0 OR offered <> trunc(offered)
    OR answered IS NULL OR answered < 0 OR answered <> trunc(answered)
    OR abandoned IS NULL OR abandoned < 0 OR abandoned <> trunc(abandoned)
    OR handle_time_s IS NULL OR handle_time_s < 0 OR isinf(handle_time_s)
    OR answered > offered OR abandoned > offered - answered
)
"""
REPEATED_KEYS = """
SELECT count(*) FROM (
    SELECT external_queue_id, channel, interval_start
    FROM read_parquet(getvariable('facts'))
    GROUP BY ALL
    HAVING count(*) > 1
)
"""
DAY_SUMS = Path(__file__).parent.parent / "sql" / "summaries" / "contact_days.sql"
PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 256000)"


@cache
def _day_sums() -> str:
    """The warehouse's day sums of the fact file just written; the SQL file is read once."""
    return (
        f"WITH facts AS (SELECT * FROM read_parquet(getvariable('facts'))) {DAY_SUMS.read_text()}"
    )


def import_month(
    con: duckdb.DuckDBPyConnection, files: list[str], start: datetime, target: Path
) -> tuple[int, int]:
    """The month's good rows written as a fact file and its day sums: (rows, repeated keys)."""
    month = {
        "files": files,
        "window_start": start,
        "window_end": next_month(start),
        "channels": list(CHANNELS),
        "integration": "history_csv",
    }
    facts, sums = target / "facts.parquet", target / "day_sums.parquet"
    for name, value in {**month, "facts": str(facts)}.items():
        con.execute(SET_VARIABLE.format(name=name), {"value": value})
    rows = con.execute(f"COPY ({GOOD_ROWS}) TO {_sql_literal(facts)} {PARQUET}").fetchall()[0][0]
    repeated = con.execute(REPEATED_KEYS).fetchall()[0][0]
    con.execute(f"COPY ({_day_sums()}) TO {_sql_literal(sums)} {PARQUET}")
    return rows, repeated


@dataclass(frozen=True)
class Months:
    seconds: list[float]
    cpu_seconds: list[float]  # the process's threads, summed
    rows: list[int]  # written to the fact file
    repeated_keys: list[int]


def month_seconds(
    csv_dir: Path, months: list[datetime], target: Path, threads: int | None = None
) -> Months:
    """Each month imported in one connection (as one run would hold it), timed."""
    target.mkdir(parents=True, exist_ok=True)
    config = {"threads": threads} if threads else {}
    done = Months([], [], [], [])
    with duckdb.connect(config=config) as con:
        con.execute("SET TimeZone = 'UTC'")
        for start in months:
            files = [str(p) for p in sorted(csv_dir.glob(f"contacts_{start:%Y-%m}-*.csv"))]
            began, began_cpu = time.perf_counter(), time.process_time()
            rows, repeated = import_month(con, files, start, target)
            done.seconds.append(time.perf_counter() - began)
            done.cpu_seconds.append(time.process_time() - began_cpu)
            done.rows.append(rows)
            done.repeated_keys.append(repeated)
    return done
