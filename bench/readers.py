"""Analysts' queries back to back while the warehouse is rewritten: errors and wrong totals.

Three writer processes work on one warehouse for `seconds`, as a busy deployment would:
- ticks: 15-minute ticks walk through time, each re-importing the last two hours and the
  current one (day files of the open month), crossing into new months;
- history: whole earlier months imported again and again (month files), the same rows;
- compaction: every closed month's day files merged into its month file as soon as the
  ticks have left it, beside the readers' open connections.
Two reader processes query meanwhile: one on a connection it keeps open throughout, one with
a new connection per query (a dashboard). Every query asks for each month's row count and
offered sum from the intervals and, in the same query, the offered sum from the day sums.

The numbers are a pure function of queue and interval, so every state a write can leave is
known: a month the ticks have passed or history wrote holds all its intervals; the month
being ticked holds its intervals up to some tick's end; the intervals' and the day sums'
totals are equal. A query that errs, or returns anything else (a month missing, short,
doubled, or intervals and day sums apart), is counted.

Run: `python -m bench --parts readers` (or `python bench/readers.py --seconds 30`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from etl.partitions import month_start, next_month

START = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)
OWNER = "busy"
MIN_QUERIES = 3  # each reader's, however late a loaded machine starts it
QUERY = """
SELECT m, n, offered, (SELECT CAST(sum(offered) AS BIGINT) FROM contact_days
                       WHERE strftime(day_local, '%Y-%m') = m) AS day_sums
FROM (
    SELECT strftime(interval_start, '%Y-%m') AS m, count(*) AS n,
           CAST(sum(offered) AS BIGINT) AS offered
    FROM contact_intervals GROUP BY m
) ORDER BY m
"""


def offered_at(queues: int, starts: np.ndarray) -> np.ndarray:
    """Offered per (interval, queue): the same numbers whoever writes them, whenever."""
    origin = np.datetime64(START.replace(tzinfo=None), "us")
    index = ((starts - origin) // np.timedelta64(15, "m")).astype(np.int64)
    return (index[:, None] * 13 + np.arange(queues)[None, :] * 7) % 11


def rows(queues: int, start: datetime, end: datetime) -> pd.DataFrame:
    """The contact rows of [start, end): one channel, `queues` queues, UTC days."""
    starts = pd.date_range(start, end, freq=INTERVAL, inclusive="left", tz="UTC")
    naive = starts.tz_localize(None).to_numpy("datetime64[us]")
    offered = offered_at(queues, naive).reshape(-1)
    answered = offered // 2
    return pd.DataFrame(
        {
            "integration_id": OWNER,
            "external_queue_id": np.tile([f"Q{q:04d}" for q in range(queues)], len(starts)),
            "channel": "calls",
            "interval_start": np.repeat(starts, queues),
            "interval_start_local": np.repeat(naive, queues),
            "interval_minutes": 15,
            "offered": offered,
            "answered": answered,
            "abandoned": (offered - answered) // 2,
            "handle_time_s": answered * 120.0,
        }
    )


def write(warehouse, queues: int, start: datetime, end: datetime) -> None:
    with warehouse.transaction(OWNER):
        warehouse.replace_window("contact_intervals", OWNER, start, end, rows(queues, start, end))


def _ticks(root: str, queues: int, first: datetime, deadline: float, out) -> None:
    from etl.resources.warehouse import Warehouse

    warehouse = Warehouse(root=root)
    now, done = first, 0
    while done == 0 or time.monotonic() < deadline:  # at least once, however slow the start
        now += INTERVAL
        write(warehouse, queues, now - timedelta(hours=2), now + INTERVAL)
        with open(Path(root) / "ticked.tmp", "w") as handle:
            handle.write(now.isoformat())
        os.replace(Path(root) / "ticked.tmp", Path(root) / "ticked")
        done += 1
    out.put(("ticks", done))


def _history(root: str, queues: int, months: list[datetime], deadline: float, out) -> None:
    from etl.resources.warehouse import Warehouse

    warehouse = Warehouse(root=root)
    done = 0
    while done == 0 or time.monotonic() < deadline:
        month = months[done % len(months)]
        write(warehouse, queues, month, next_month(month))
        done += 1
    out.put(("history months", done))


def _compaction(root: str, deadline: float, out) -> None:
    from etl.resources.warehouse import Warehouse

    warehouse = Warehouse(root=root)
    merged = 0
    while time.monotonic() < deadline:
        ticked = Path(root) / "ticked"
        if ticked.exists():
            merged += warehouse.compact_months(
                before=month_start(datetime.fromisoformat(ticked.read_text()))
            ).months
        time.sleep(0.2)
    out.put(("months compacted", merged))


def _reader(root: str, queues: int, deadline: float, keep: bool, out) -> None:
    import duckdb

    catalog = str(Path(root) / "wfm.duckdb")
    held = duckdb.connect(catalog, read_only=True) if keep else None
    queries, errors, wrong, messages = 0, 0, 0, []
    while queries < MIN_QUERIES or time.monotonic() < deadline:
        try:
            con = held or duckdb.connect(catalog, read_only=True)
            con.execute("SET enable_progress_bar = false")  # a long query prints a bar
            found = con.execute(QUERY).fetchall()
            if held is None:
                con.close()
        except duckdb.Error as exc:
            errors += 1
            messages.append(str(exc).splitlines()[0][:200])
            continue
        queries += 1
        problem = check(found, queues)
        if problem:
            wrong += 1
            messages.append(problem)
    name = f"reader ({'one connection' if keep else 'a connection per query'})"
    out.put((name, {"queries": queries, "errors": errors, "wrong": wrong, "messages": messages}))


def check(found: list[tuple], queues: int) -> str:
    """What is wrong with one query's answer, or ''."""
    months = [m for m, *_ in found]
    expected_months = []
    month = START
    while len(expected_months) < len(months):
        expected_months.append(f"{month:%Y-%m}")
        month = next_month(month)
    if months != expected_months:
        return f"months {months} are not consecutive from {START:%Y-%m}"
    for m, n, offered, day_sums in found:
        if offered != day_sums:
            return f"{m}: intervals say {offered} offered, the day sums {day_sums}"
        start = datetime.strptime(m, "%Y-%m").replace(tzinfo=UTC)
        whole = int((next_month(start) - start) / INTERVAL)
        intervals, remainder = divmod(n, queues)
        if remainder or not 0 < intervals <= whole:
            return f"{m}: {n} rows is not whole intervals of {queues} queues"
        if m != months[-1] and intervals != whole:
            return f"{m}: {intervals} of {whole} intervals in a month no longer written"
        naive = np.datetime64(start.replace(tzinfo=None), "us")
        starts = naive + np.arange(intervals) * np.timedelta64(15, "m")
        if int(offered_at(queues, starts).sum()) != offered:
            return f"{m}: offered {offered} is not the sum of its first {intervals} intervals"
    return ""


def run(root: Path, queues: int, history_months: int, seconds: float) -> dict:
    """Set up `history_months` months of history as month files, the open month's first day as
    day files, then write and read for `seconds`; returns the counts."""
    from etl.resources.warehouse import Warehouse

    warehouse = Warehouse(root=str(root))
    months, month = [], START
    for _ in range(history_months):
        months.append(month)
        write(warehouse, queues, month, next_month(month))
        month = next_month(month)
    # The ticks start six hours before the month ends, so they cross into the next one and the
    # compaction merges the month they leave.
    first = next_month(month) - timedelta(hours=6)
    write(warehouse, queues, month, first + INTERVAL)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    deadline = time.monotonic() + seconds
    processes = [
        context.Process(target=_ticks, args=(str(root), queues, first, deadline, out)),
        context.Process(target=_history, args=(str(root), queues, months, deadline, out)),
        context.Process(target=_compaction, args=(str(root), deadline, out)),
        context.Process(target=_reader, args=(str(root), queues, deadline, True, out)),
        context.Process(target=_reader, args=(str(root), queues, deadline, False, out)),
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    results = dict(out.get(timeout=seconds + 600) for _ in processes)
    for process in processes:
        process.join()
    results["seconds"] = round(time.monotonic() - started, 1)
    results["catalog versions"] = len(list(warehouse.catalog.dir.glob("*.duckdb")))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path("bench/work/readers"))
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    import shutil

    shutil.rmtree(args.root, ignore_errors=True)
    print(json.dumps(run(args.root, args.queues, args.months, args.seconds), indent=2))


if __name__ == "__main__":
    main()
