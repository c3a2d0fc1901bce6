"""`make bench`: history import (CSV and database) against the DuckDB floor and against dlt's
merge load of the same files (part `peers`), the 15-minute tick (on one host and on two
Celery workers), remapping and analyst queries. Prints a table and writes bench/results.md
(full scale) or bench/results-scale-<s>.md.

    python -m bench [--scale 0.02] [--years 3] [--parts floor,peers,bookkeeping,csv,db,...]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
import yaml

from bench import duckdb_import
from bench.memory import TreeMemory, TreeSampler
from bench.workloads import (
    SOURCE_URL_ENV,
    Workload,
    history_integration,
    history_workload,
    load_postgres_table,
    write_csv_files,
)
from etl.assets.contacts import CONTACTS_KIND
from etl.assets.import_log import import_log_frame, log_import
from etl.instance import RANGE_RUN_ENV, RUN_LAUNCHER, max_concurrent_runs, postgres_storage
from etl.partitions import days, month_start, months, next_month
from etl.resources.manifest import MAPPINGS_UNIT, WHOLE
from etl.resources.warehouse import FACT_SCHEMAS, MAPPING_SCHEMAS, Warehouse, _within

MAPPING_NAMES = set(MAPPING_SCHEMAS)

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
ANALYSIS = ROOT / "bench" / "analysis.md"  # where the time goes, kept by hand after a full run
PG_ADMIN_URL = os.environ.get(
    "WFM_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
# History: the gap sensor's default `max_runs_in_flight` per integration.
HISTORY_RUNS_AT_ONCE = 2
# Ticks: 50 schedules fire in the same minute and the run queue starts `max_concurrent_runs`
# of them at once: the project sets one per core; Dagster's own default is 10.
TICK_RUNS_AT_ONCE = max_concurrent_runs(os.environ)
DAGSTER_DEFAULT_RUNS_AT_ONCE = 10
# The Makefile's settings for Dagster (see its header), for runs started without it.
AS_DEPLOYED_ENV = {
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
}
# The push part's clients offer this much more than its target rate (see part_push).
PUSH_OFFERED_MARGIN = 1.05
ALL_PARTS = "floor,peers,bookkeeping,csv,db,tick,celery,remap,queries,dayfiles,readers,push"
# Parts that read the generated history files (the others need none).
HISTORY_PARTS = {"floor", "peers", "bookkeeping", "csv", "db", "remap", "queries", "dayfiles"}


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None
    note: str = ""
    part: str = ""  # the `--parts` name that measures it
    measured: str = ""  # when (UTC), so a figure kept from an earlier run says which


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    part: str = ""  # the part now running: its figures are tagged with it

    def add(self, *args, **kwargs) -> Figure:
        figure = Figure(*args, **kwargs, part=self.part)
        figure.passed = None if figure.passed is None else bool(figure.passed)
        self.figures.append(figure)
        verdict = "" if figure.passed is None else ("PASS" if figure.passed else "FAIL")
        print(
            f"  {figure.name:<52} {figure.value:>12,.2f} {figure.unit:<8} "
            f"{figure.target:<14} {verdict}"
        )
        return figure


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{os.cpu_count()} cores, {memory:.0f} GiB RAM, {python}, duckdb {duckdb.__version__}"


# -- environment for the project under test ---------------------------------------------------
def fresh_pg_database(prefix: str) -> str:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def project_env(folder: Path, integrations: list[dict], dagster_pg_url: str) -> dict[str, str]:
    """A project home with its own config, warehouse and PostgreSQL-backed Dagster instance."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "mappings").mkdir(parents=True)
    (folder / "home").mkdir()
    (folder / "integrations.yaml").write_text(yaml.safe_dump({"integrations": integrations}))
    (folder / "home" / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "telemetry": {"enabled": False},
                **postgres_storage(dagster_pg_url),
                "run_launcher": dict(RUN_LAUNCHER),
            }
        )
    )
    return {
        **os.environ,
        "WFM_HOME": str(folder),
        "WFM_INTEGRATIONS": str(folder / "integrations.yaml"),
        "WFM_WAREHOUSE_DIR": str(folder / "warehouse"),
        "WFM_MAPPINGS_DIR": str(folder / "mappings"),
        "DAGSTER_HOME": str(folder / "home"),
        **{name: os.environ.get(name, value) for name, value in RANGE_RUN_ENV.items()},
    }


def range_runs(
    env: dict[str, str],
    requests: list[tuple[str, datetime, datetime]],
    at_once: int,
    memory: TreeMemory | None = None,
) -> tuple[list[dict], dict]:
    """Create and launch each (integration, start, end) range run through the instance's run
    launcher (each run its own process, forked warm), `at_once` at a time, as the daemons
    would; one dict per run, and the seconds spent creating them (`created_s` in all,
    `created_before_first_s` before the first run started). With `memory`, the peak memory
    of every process of it (launcher, warm server, runs) is sampled into it."""
    payload = json.dumps([(f"{i}_import", s.isoformat(), e.isoformat()) for i, s, e in requests])
    done, lines = bench_process(
        env, "bench.launch", payload, "--concurrency", str(at_once), memory=memory
    )
    results = [line for line in lines if "run_id" in line]
    created = next((line for line in lines if "created_s" in line), {})
    if done.returncode or len(results) != len(requests):
        failed = [r["run_id"] for r in results if not r["ok"]]
        raise failure(f"range runs failed ({failed or 'launcher error'})", done)
    return results, created


def bench_process(
    env: dict[str, str], module: str, *args: str, memory: TreeMemory | None = None
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """One of the benchmark's modules as its own process with a project's environment (as
    Dagster's processes would have it), and the JSON lines it printed; with `memory`, the
    peak memory of it and every process it starts is sampled into it."""
    command = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if memory is None:
        stdout, stderr = process.communicate()
    else:
        with TreeSampler(process.pid, memory):
            stdout, stderr = process.communicate()
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    return done, [json.loads(ln) for ln in done.stdout.splitlines() if ln.startswith("{")]


def failure(what: str, done: subprocess.CompletedProcess) -> RuntimeError:
    return RuntimeError(f"{what}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


# -- parts ---------------------------------------------------------------------------------------
def part_floor(report: Report, csv_dir: Path, rows: int) -> float:
    target = WORK / "floor.parquet"
    target.unlink(missing_ok=True)
    started, started_cpu = time.perf_counter(), time.process_time()
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_csv('{csv_dir}/*.csv', header=true)) TO '{target}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    seconds = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    report.add(
        "floor: DuckDB read_csv -> Parquet",
        seconds,
        "s",
        note=f"{rows:,} rows; CPU {cpu:.1f} s (DuckDB's threads, summed); load average "
        f"{load_average()}",
    )
    return seconds


def part_bookkeeping(
    report: Report, workload: Workload, floor: float | None, csv_dir: Path
) -> None:
    """Dagster's own share of a monthly history run: range runs of a no-op asset with the fact
    asset's partitions, check and metadata (bench/bookkeeping.py), and that for the history;
    then the same with daily partitions, what coarser history partitions would cost. Then the
    import's own share: the fact asset's code for a month of CSV files without Dagster
    (bench/import_alone.py), and what that work would cost as DuckDB SQL (a what-if,
    bench/duckdb_import.py)."""
    dagster_pg = fresh_pg_database("wfm_bench_bookkeeping")
    env = project_env(WORK / "project_bookkeeping", [], dagster_pg)
    start, end = max(workload.months(), key=lambda m: m[1] - m[0])  # a whole month
    months = len(workload.months())
    try:
        for grain, label in (
            ("hour", "Dagster alone: one monthly range run of a no-op asset ({} hours)"),
            ("day", "Dagster alone, daily partitions instead: a monthly run ({} days)"),
        ):
            done, lines = bench_process(
                env, "bench.bookkeeping", start.isoformat(), end.isoformat(), "--grain", grain
            )
            if done.returncode or not lines:
                raise failure(f"bookkeeping runs ({grain}) failed", done)
            runs = lines[-1]["seconds"]
            seconds = statistics.median(runs)
            partitions = (end - start) // timedelta(**{f"{grain}s": 1})
            report.add(
                label.format(partitions),
                seconds,
                "s",
                note=f"median of {len(runs)}, in process; {history_share(seconds, months, floor)}"
                + ("; for comparison, the contract is hourly" if grain == "day" else ""),
            )
        part_import_alone(report, workload, floor, csv_dir, dagster_pg)
        part_duckdb_import(report, workload, floor, csv_dir)
    finally:
        drop_pg_database(dagster_pg)


def part_import_alone(
    report: Report, workload: Workload, floor: float | None, csv_dir: Path, dagster_pg: str
) -> None:
    integration = history_integration("csv", workload, csv_dir)
    env = project_env(WORK / "project_import_alone", [integration], dagster_pg)
    newest = [start.isoformat() for start, _ in reversed(workload.months())][:5]
    done, lines = bench_process(env, "bench.import_alone", integration["id"], *newest)
    if done.returncode or not lines:
        raise failure("the import without Dagster failed", done)
    runs = lines[-1]["seconds"]
    seconds = statistics.median(runs)
    cpu = statistics.median(lines[-1]["cpu_seconds"])
    report.add(
        "import alone: one month of the CSV files through the fact asset's code, no Dagster",
        seconds,
        "s",
        note=f"median of the newest {len(runs)} months, in process (bench/import_alone.py), "
        f"CPU {cpu:.2f} s a month; {history_share(seconds, len(workload.months()), floor)}",
    )


def part_duckdb_import(
    report: Report, workload: Workload, floor: float | None, csv_dir: Path
) -> None:
    """What-if: the import's own work as DuckDB SQL (bench/duckdb_import.py), on one thread
    (what each of two runs at a time has on two cores) and on DuckDB's default threads."""
    newest = list(reversed(workload.months()))[:5]
    starts = [start for start, _ in newest]
    target = WORK / "duckdb_import"
    one = duckdb_import.month_seconds(csv_dir, starts, target, threads=1)
    default = duckdb_import.month_seconds(csv_dir, starts, target)
    # The figure only counts if every delivered row passed the rules and no key repeated.
    delivered = [workload.rows_between(start, end) for start, end in newest]
    for done in (one, default):
        if done.rows != delivered or any(done.repeated_keys):
            raise RuntimeError(
                f"the DuckDB what-if wrote {done.rows} rows of {delivered} delivered, with "
                f"{done.repeated_keys} repeated keys: its rules do not fit the workload"
            )
    seconds = statistics.median(one.seconds)
    report.add(
        "what-if: the import's own work as DuckDB SQL, one month on one thread",
        seconds,
        "s",
        note=f"median of the newest {len(starts)} months, in process (bench/duckdb_import.py): "
        "one pass of typed read_csv, the contact schema's rules and the fact file, then the "
        "repeated keys counted and the day sums written from that file; broken rows only left "
        "out, no row references, import log or coverage check; "
        f"{history_share(seconds, len(workload.months()), floor)}; "
        f"on DuckDB's default threads {statistics.median(default.seconds):.2f} s a month, "
        f"CPU {statistics.median(default.cpu_seconds):.2f} s",
    )


def history_share(seconds: float, months: int, floor: float | None) -> str:
    """A month's seconds as a share of the history, its months run two at a time."""
    history = months * seconds / HISTORY_RUNS_AT_ONCE
    share = f" = {history / floor:.2f}x the floor" if floor else ""
    return f"x {months} months / {HISTORY_RUNS_AT_ONCE} at a time = {history:.1f} s{share}"


@dataclass
class Imported:
    """One history import: its wall time, its runs, and the memory of all its processes."""

    seconds: float
    results: list[dict]
    created: dict
    memory: TreeMemory
    rows: int


def import_history(
    kind: str,
    workload: Workload,
    csv_dir: Path,
    folder: Path,
    month_spans: list[tuple[datetime, datetime]],
    source_url: str | None,
) -> Imported:
    """Import `month_spans` (newest first) into a new project in `folder` with an instance of
    its own, as the gap sensor's range runs would, two at a time."""
    dagster_pg = fresh_pg_database("wfm_bench_dagster")
    try:
        env = project_env(folder, [history_integration(kind, workload, csv_dir)], dagster_pg)
        if source_url:
            env[SOURCE_URL_ENV] = source_url
        integration = f"history_{'csv' if kind == 'csv' else 'db'}"
        requests = [(integration, s, e) for s, e in month_spans]
        memory = TreeMemory()
        started = time.perf_counter()
        results, created = range_runs(env, requests, HISTORY_RUNS_AT_ONCE, memory)
        seconds = time.perf_counter() - started
    finally:
        drop_pg_database(dagster_pg)
    rows = Warehouse(root=env["WFM_WAREHOUSE_DIR"]).query(
        "SELECT count(*) AS n FROM contact_intervals"
    )["n"][0]
    delivered = sum(workload.rows_between(s, e) for s, e in month_spans)
    if rows != delivered:
        raise RuntimeError(f"{kind}: {rows} rows landed, expected {delivered}")
    return Imported(seconds, results, created, memory, int(rows))


def part_history(
    report: Report,
    kind: str,
    workload: Workload,
    csv_dir: Path,
    floor: float | None,
    peers: float | None = None,
) -> Path:
    """The whole history imported, timed against the floor (and dlt's merge, when the part
    `peers` ran); then the newest year imported again on its own, a second import into a new
    project, so that the peak memory of one year and of the whole history can be compared."""
    folder = WORK / f"project_{kind}"
    source_url = None
    try:
        if kind == "database":
            source_url = fresh_pg_database("wfm_bench_source")
            started = time.perf_counter()
            load_postgres_table(workload, source_url, "bench_contacts", csv_dir)
            report.notes.append(
                f"loading {workload.rows:,} rows into PostgreSQL took "
                f"{time.perf_counter() - started:.0f} s (set-up, not timed)"
            )
        spans = list(reversed(workload.months()))  # newest first
        whole = import_history(kind, workload, csv_dir, folder, spans, source_url)
        year = import_history(
            kind, workload, csv_dir, WORK / f"project_{kind}_year", spans[:12], source_url
        )
    finally:
        if source_url:
            drop_pg_database(source_url)
    seconds, results, created = whole.seconds, whole.results, whole.created
    ratio = seconds / floor if floor else float("nan")
    report.add(
        f"history {kind}: wall time ({len(results)} range runs)",
        seconds,
        "s",
        note=f"{whole.rows:,} rows; load average {load_average()}",
    )
    report.add(
        f"history {kind}: ratio to floor",
        ratio,
        "x",
        "<= 3x",
        ratio <= 3,
        note="this step's target; the goal is 2x",
    )
    if peers:
        to_peers = seconds / peers
        report.add(
            f"history {kind}: ratio to dlt's merge (part peers)",
            to_peers,
            "x",
            "< 1x",
            to_peers < 1,
            note=f"dlt's merge load of the same files took {peers:.2f} s in this run",
        )
    memory, year_memory = whole.memory, year.memory
    report.add(
        f"history {kind}: peak memory of all the import's processes (PSS, summed)",
        memory.peak_pss_mib,
        "MiB",
        "<= 1536 MiB",
        memory.peak_pss_mib <= 1536,
        note=f"the launcher (the daemon's and the code server's part), the warm server and the "
        f"runs: {memory.processes} processes over the import, sampled {memory.samples} "
        f"times (every 0.2 s, PSS every 1 s; the sampler's own CPU {memory.cpu_s:.1f} s); "
        f"RSS summed {memory.peak_rss_mib:,.0f} MiB "
        "(counts the pages forked processes share once per process); the largest run process "
        "alone "
        f"{max(r['peak_rss_mib'] for r in results):,.0f} MiB",
    )
    report.add(
        f"history {kind}: the same, a separate import of the newest {len(year.results)} months",
        year_memory.peak_pss_mib,
        "MiB",
        note=f"1 year vs {len(results) // 12}: a second import into a new project; RSS summed "
        f"{year_memory.peak_rss_mib:,.0f} MiB; it took {year.seconds:.2f} s",
    )
    per_run = statistics.median(r["ended"] - r["started"] for r in results)
    report.add(f"history {kind}: median seconds per monthly range run", per_run, "s")
    busy = sum(r["ended"] - r["started"] for r in results)
    report.notes.append(
        f"history {kind}: creating the {len(results)} runs (Dagster's run records and "
        f"planned events of 744 partitions each) took {created['created_s']:.1f} s, "
        f"{created['created_before_first_s']:.1f} s of it before the first started (the "
        "rest while earlier runs ran, as Dagster's backfill and run queue daemons overlap); "
        f"the runs took {busy:.0f} s from start to end, summed "
        f"({busy / HISTORY_RUNS_AT_ONCE:.0f} s for {HISTORY_RUNS_AT_ONCE} at a time)"
    )
    return folder


def load_average() -> str:
    """The machine's load average (1, 5, 15 minutes): the machine is shared, so a figure says
    how busy it was."""
    return "/".join(f"{n:.2f}" for n in os.getloadavg())


def part_peers(report: Report, csv_dir: Path, rows: int, floor: float | None) -> float:
    """What a user would pick instead: dlt's merge load of the same files into DuckDB, in its
    own process (bench/peers.py)."""
    done, lines = bench_process(dict(os.environ), "bench.peers", str(csv_dir), str(WORK / "peers"))
    if done.returncode or not lines:
        raise failure("the dlt merge load failed", done)
    found = lines[-1]
    if found["rows"] != rows:
        raise RuntimeError(f"dlt's merge left {found['rows']} rows, {rows} delivered")
    seconds = found["seconds"]
    report.add(
        "peers: dlt merge on (queue, channel, interval_start) -> DuckDB",
        seconds,
        "s",
        note=f"dlt {dlt_version()}, {found['files']} day files read as Arrow tables, one "
        f"resource with write_disposition merge; {rows:,} rows; CPU {found['cpu_seconds']:.1f} s; "
        f"load average {load_average()}" + (f"; {seconds / floor:.2f}x the floor" if floor else ""),
    )
    return seconds


def dlt_version() -> str:
    from importlib.metadata import version

    return version("dlt")


def import_log_history(
    warehouse: Warehouse, integration_id: str, start: datetime, end: datetime, rows_per_hour: int
) -> None:
    """The import log a history import and earlier ticks would have left for [start, end):
    every hour imported once, complete. The coverage check reads it with every import."""
    for month_from, month_to in months(start, end):
        log = import_log_frame(
            integration_id,
            CONTACTS_KIND,
            month_from,
            month_to,
            stored=pd.DataFrame(),
            rejected=pd.DataFrame(),
            imported_at=month_to,
            run_id="bench-history",
        )
        log_import(warehouse, log.assign(rows_written=rows_per_hour), month_from, month_to)


def load_contacts(
    warehouse: Warehouse, integration_id: str, frame: pd.DataFrame, start: datetime, end: datetime
) -> None:
    """Store the simulator's rows of [start, end) as one of the tick's integrations."""
    if start >= end:  # the first hour of a month: nothing of it before this tick
        return
    times = frame["interval_start"]
    rows = frame[(times >= start) & (times < end)].assign(integration_id=integration_id)
    rows["interval_start_local"] = (
        rows["interval_start"].dt.tz_convert("Europe/Berlin").dt.tz_localize(None)
    )
    warehouse.replace_window("contact_intervals", integration_id, start, end, rows)


def tick_project(
    folder: Path, dagster_pg: str, queues: int, integrations: int, history_start: datetime
) -> tuple[dict[str, str], list[tuple[str, datetime, datetime]], int]:
    """`integrations` simulator integrations of `queues` queues, each with its history behind
    it as production integrations have: history start and import log back to
    `history_start`, the month to date loaded (older facts are not read by a tick). The
    project's environment, each integration's one 15-minute tick (current hour + 2 h revision
    window) and the rows loaded per integration."""
    now = datetime.now(UTC).replace(minute=20, second=0, microsecond=0)
    month = now.replace(day=1, hour=0, minute=0)
    configs = [
        {
            "id": f"tick_{n:02d}",
            "vendor": "simulator",
            "delivery": "cloud",
            "interval_minutes": 15,
            "data": ["contacts"],
            "timezone": "Europe/Berlin",
            "history_start": history_start.isoformat(),
            "revision_window_hours": 2,
            "source": {"seed": n, "queues": queues, "channels": ["calls"]},
        }
        for n in range(integrations)
    ]
    env = project_env(folder, configs, dagster_pg)
    from etl.config import parse_integrations
    from etl.resources.sources import build_source
    from etl.schedules.ticks import tick_window

    warehouse = Warehouse(root=env["WFM_WAREHOUSE_DIR"])
    parsed = parse_integrations({"integrations": configs})
    source = build_source(parsed[0])
    first = source.contacts(month, now.replace(minute=0)).frame
    for integration in parsed:  # month to date, as earlier ticks would have left it
        load_contacts(warehouse, integration.id, first, month, now.replace(minute=0))
        import_log_history(
            warehouse, integration.id, history_start, now.replace(minute=0), queues * 4
        )
    return env, [(i.id, *tick_window(i, now)) for i in parsed], len(first)


def wall_seconds(results: list[dict]) -> float:
    return max(r["ended"] for r in results) - min(r["started"] for r in results)


def part_tick(report: Report, queues: int, integrations: int, history_start: datetime) -> None:
    """One 15-minute tick of `integrations` integrations, each its own run process."""
    dagster_pg = fresh_pg_database("wfm_bench_tick")
    try:
        env, requests, rows = tick_project(
            WORK / "project_tick", dagster_pg, queues, integrations, history_start
        )
        results, _ = range_runs(env, requests, TICK_RUNS_AT_ONCE)
        wall = wall_seconds(results)
        report.add(
            f"tick: {integrations} integrations x {queues} queues, one tick each",
            wall,
            "s",
            "<= 60 s",
            wall <= 60,
            note=f"history from {history_start:%Y-%m-%d} in each import log, month to date "
            f"loaded: {rows:,} rows per integration (a file per day, as ticks leave "
            f"it); {TICK_RUNS_AT_ONCE} runs at a time (the project's run queue limit: one per "
            "core)",
        )
        # The same ticks again (re-imports: the same work) with Dagster's default limit.
        results, _ = range_runs(env, requests, DAGSTER_DEFAULT_RUNS_AT_ONCE)
        report.add(
            f"tick, {DAGSTER_DEFAULT_RUNS_AT_ONCE} runs at a time instead",
            wall_seconds(results),
            "s",
            note="for comparison: Dagster's default max_concurrent_runs",
        )
    finally:
        drop_pg_database(dagster_pg)


def run_overhead(results: list[dict]) -> float:
    """Median seconds a run costs beyond its import's own steps: from launch to the run's
    end (starting its process, loading the code, Dagster's events), less the steps."""
    return statistics.median(r["ended"] - r["launched"] - r["step_s"] for r in results)


def part_celery(report: Report, queues: int, integrations: int, history_start: datetime) -> None:
    """The same tick runs through the one-host preloaded launcher (two at a time) and then on
    two Celery workers of one process each (dagster-celery, RabbitMQ broker, Redis result
    backend): wall time and the overhead of a run, side by side."""
    from bench.celery_tick import REDIS_URL, broker_vhost, workers
    from etl.celery_runs import launcher_config
    from etl.deploy import CELERY_BACKEND_ENV, CELERY_BROKER_ENV

    dagster_pg = fresh_pg_database("wfm_bench_celery")
    try:
        env, requests, _ = tick_project(
            WORK / "project_celery", dagster_pg, queues, integrations, history_start
        )
        one_host, _ = range_runs(env, requests, 2)
        home = Path(env["DAGSTER_HOME"])
        with broker_vhost() as broker:
            celery_env = {**env, CELERY_BROKER_ENV: broker, CELERY_BACKEND_ENV: REDIS_URL}
            config = yaml.safe_load((home / "dagster.yaml").read_text())
            config["run_launcher"] = launcher_config(CELERY_BROKER_ENV, CELERY_BACKEND_ENV)
            (home / "dagster.yaml").write_text(yaml.safe_dump(config))
            with workers(celery_env, home, 2):
                on_celery, _ = range_runs(celery_env, requests, 2)
        label = f"{integrations} integrations x {queues} queues"
        report.add(
            f"tick on one host (preloaded launcher, 2 at a time): {label}",
            wall_seconds(one_host),
            "s",
            note=f"median overhead per run {run_overhead(one_host):.2f} s (launch to end, "
            "less the import's steps)",
        )
        report.add(
            f"tick on 2 Celery workers (1 process each): {label}",
            wall_seconds(on_celery),
            "s",
            note=f"median overhead per run {run_overhead(on_celery):.2f} s; the same runs "
            "again, on this machine's RabbitMQ and Redis",
        )
        report.add("overhead per run, one host", run_overhead(one_host), "s")
        report.add("overhead per run, Celery", run_overhead(on_celery), "s")
    finally:
        drop_pg_database(dagster_pg)


def newest_year(source: Path, target: Path, months: int = 12) -> Warehouse:
    """A warehouse holding only the newest `months` months of each integration of `source`
    (its files hard-linked, not copied) and its registries, with mappings and a catalog of
    its own: the same layout with a third of the history."""
    if target.exists():
        shutil.rmtree(target)
    copy = Warehouse(root=str(target))
    for unit, manifest in Warehouse(root=str(source)).manifests().items():
        if unit == MAPPINGS_UNIT:
            continue
        with copy.transaction(unit) as tx:
            for table in manifest.tables():
                for owner in manifest.owners(table):
                    slots = manifest.slots(table, owner)
                    kept_months = sorted({s[:7] for s in slots if s != WHOLE})[-months:]
                    for slot, entry in slots.items():
                        if slot == WHOLE or slot[:7] in kept_months:
                            tx.adopt(table, owner, slot, source / entry.path)
    return copy


def remap_rounds(
    history: Path, warehouse: Warehouse, label: str, queues: int, remapped: int, last_day: datetime
) -> list[dict]:
    """Remap rounds on `warehouse` as a user's edit goes (bench/remap.py: file saved, the
    mapping sensor's tick, the mappings run through the run launcher, the view's first query),
    in a project of its own with the history project's integrations and a new instance."""
    dagster_pg = fresh_pg_database("wfm_bench_remap")
    try:
        config = yaml.safe_load((history / "integrations.yaml").read_text())
        env = project_env(WORK / f"project_remap_{label}", config["integrations"], dagster_pg)
        env["WFM_WAREHOUSE_DIR"] = str(warehouse.path)
        args = (str(queues), str(remapped), last_day.isoformat(), "--rounds", "3")
        done, lines = bench_process(env, "bench.remap", *args)
        if done.returncode or len(lines) != 3:
            raise failure("the remap rounds failed", done)
        return lines
    finally:
        drop_pg_database(dagster_pg)


def part_remap_and_queries(report: Report, folder: Path, queues: int, end: datetime) -> None:
    """Remapping on the whole history and on its newest year (it must not grow with the
    history), then the analyst queries on the whole history."""
    warehouse = Warehouse(root=str(folder / "warehouse"))
    remapped = min(100, queues)
    last_day = end - timedelta(days=1)  # the check reads the newest day of the history
    year = newest_year(warehouse.path, WORK / "warehouse_newest_year")
    medians = {}
    for label, target in (("whole history", warehouse), ("newest year", year)):
        runs = remap_rounds(folder, target, label.replace(" ", "_"), queues, remapped, last_day)
        parts = ("seconds", "sensor_s", "run_s", "query_s", "merged")
        seconds, sensor, run, query, seen = (statistics.median(r[p] for r in runs) for p in parts)
        if seen != 5:
            raise RuntimeError(f"remap ({label}): the view showed {seen} merged queues, not 5")
        medians[label] = seconds
        note = (
            f"median of 3, from the file saved to the view showing it: the mapping sensor's "
            f"tick {sensor:.3f} s, the mappings run (launched as the daemon launches it, to "
            f"its end) {run:.2f} s, the view's first query {query:.3f} s; the daemon's wait "
            "for the sensor's next tick (at most its 30 s interval) is not included"
        )
        if label == "newest year":
            note += f"; the whole history took {medians['whole history'] / seconds:.1f}x this"
        report.add(
            f"remap: {remapped} queue mappings until queue_intervals shows them ({label})",
            seconds,
            "s",
            "< 1 s",
            seconds < 1,
            note=note,
        )

    report.part = "queries"
    for name, (sql, params) in analyst_queries(queues, datetime(2025, 3, 1, tzinfo=UTC)).items():
        median = median_query_seconds(warehouse, sql, params)
        report.add(name, median, "s", "< 1 s", median < 1)


def analyst_queries(queues: int, month: datetime) -> dict[str, tuple[str, list]]:
    """The two analyst queries of the issue: a daily roll-up over the whole history and one
    queue's 15-minute intervals for `month`."""
    return {
        "query: daily workload roll-up over the whole history": (
            "SELECT workload, day_local, sum(offered) AS offered, sum(handle_time_s) / "
            "sum(answered) AS aht_s FROM workload_days GROUP BY ALL ORDER BY ALL",
            [],
        ),
        "query: one queue's 15-minute intervals for a month": (
            "SELECT * FROM queue_intervals WHERE destination_queue = ? AND interval_start >= ? "
            "AND interval_start < ? ORDER BY interval_start",
            [f"history_csv/Q{queues - 1:04d}", month, next_month(month)],
        ),
    }


def median_query_seconds(warehouse: Warehouse, sql: str, params: list, runs: int = 3) -> float:
    """The median wall time of `runs` executions, each in a fresh read-only connection."""
    timings = []
    for _ in range(runs):
        with warehouse.connect() as con:
            started = time.perf_counter()
            con.execute(sql, params).fetchall()
            timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def spread_over_folders(
    source: Warehouse, target: Path, owners: int, day_months: int, compacted: bool = False
) -> tuple[Warehouse, int]:
    """A copy of `source`'s history with its queues spread over `owners` integrations and its
    newest `day_months` months stored as day files, as ticks leave them (a month keeps the file
    grain of its first write); with `compacted`, only the newest of those months stays in day
    files (what the nightly compaction leaves beside open connections). The rows keep their
    integration id, so the views read the same rows; only the files differ. Returns it and
    its number of fact files."""
    if target.exists():
        shutil.rmtree(target)
    copy = Warehouse(root=str(target))
    table = "contact_intervals"
    (owner_id,) = {
        owner for m in source.manifests().values() for owner in m.owners(table)
    }  # the benchmark's one integration
    month_slots = source.slots(table, owner_id)
    as_days = set(list(month_slots)[-day_months:]) if day_months else set()
    if compacted and as_days:
        as_days = {max(as_days)}
    files = 0
    tables = {
        slot: pq.read_table(path, schema=FACT_SCHEMAS[table]) for slot, path in month_slots.items()
    }
    for owner in range(owners):
        name = f"folder_{owner:02d}"
        with copy.transaction(name) as tx:
            for slot, rows in tables.items():
                queue_ids = rows.column("external_queue_id")
                index = pc.index_in(queue_ids, value_set=pc.unique(queue_ids).sort()).to_numpy()
                mine = rows.filter(pa.array(index % owners == owner))
                month = datetime.strptime(slot[:7], "%Y-%m").replace(tzinfo=UTC)
                spans = (
                    list(days(month, next_month(month)))
                    if slot in as_days
                    else [(month, next_month(month))]
                )
                for start, end in spans:
                    part = _within(mine, mine.column("interval_start"), start, end)
                    piece = f"{start:%Y-%m-%d}" if len(spans) > 1 else slot
                    copy.write_slot(tx, table, name, piece, part)
                    files += 1
    for unit, manifest in source.manifests().items():
        with copy.transaction(unit) as tx:
            for table_name in manifest.tables() & {"queues", "integrations", *MAPPING_NAMES}:
                for owner in manifest.owners(table_name):
                    for slot, entry in manifest.slots(table_name, owner).items():
                        tx.adopt(table_name, owner, slot, source.path / entry.path)
    copy.ensure_catalog()
    return copy, files


def part_day_files(report: Report, folder: Path, queues: int, end: datetime) -> None:
    """What day files cost analysts, and what compaction gives back: the two queries again on
    the history spread over 50 integrations (as 50 integrations of 10 queues would store it):
    with month files only; with the newest 12 months in day files (a year of ticks with no
    compaction); and as the nightly compaction keeps it, beside open connections: closed
    months in month files, the open month in day files (the target)."""
    source = Warehouse(root=str(folder / "warehouse"))
    newest = month_start(end - timedelta(days=1))
    queries = analyst_queries(queues, newest)
    seconds: dict[tuple[str, str], float] = {}
    counts = {}
    copies = {}
    for label, day_months, compacted in (
        ("month", 0, False),
        ("year", 12, False),
        ("open", 12, True),
    ):
        copies[label], counts[label] = spread_over_folders(
            source, WORK / f"warehouse_50_folders_{label}", 50, day_months, compacted
        )
        for name, (sql, params) in queries.items():
            seconds[name, label] = median_query_seconds(copies[label], sql, params)
    started = time.perf_counter()
    done = copies["year"].compact_months(before=newest)
    compaction = time.perf_counter() - started
    for name in queries:
        value = seconds[name, "open"]
        report.add(
            f"{name}, 50 integrations, closed months compacted, open month in day files",
            value,
            "s",
            "< 1 s",
            value < 1,
            note=f"{counts['open']:,} fact files and as many day-sum files; with month files "
            f"only ({counts['month']:,} each) {seconds[name, 'month']:.2f} s; with the newest "
            f"year in day files ({counts['year']:,}) {seconds[name, 'year']:.2f} s; the month "
            f"queried is {newest:%B %Y}",
        )
    report.add(
        "compaction: the newest year's day files of 50 integrations into month files",
        compaction,
        "s",
        note=f"{done.months} months merged (with their day sums), {done.files:,} day files "
        f"into {done.months}, one transaction and one catalog version per integration",
    )


def part_push(report: Report, scale: float) -> None:
    """The ingestion service under load (bench/push_load.py, its own process): agent status
    from 50 clients offering 2,100 records/s (the target 2,000 and 5%) for 60 s, the server
    killed with SIGKILL and restarted half way, an analyst process querying the live view all
    along."""
    clients = max(5, round(50 * scale))
    seconds = 60 if scale >= 1 else 20
    target = 2000 * clients / 50
    # The clients offer more than the target: a server that only just keeps up with exactly
    # the target would land a few records a second fewer (the last answers come after the
    # last second), so "holds at least the target" is shown with headroom.
    rate = target * PUSH_OFFERED_MARGIN
    load_before = os.getloadavg()[0]
    done, lines = bench_process(
        dict(os.environ),
        "bench.push_load",
        "--clients", str(clients), "--seconds", str(seconds), "--rate", str(rate),
        "--folder", str(WORK / "push"),
    )  # fmt: skip
    if done.returncode or not lines:
        raise failure("the push load failed", done)
    r = lines[-1]
    load_after = os.getloadavg()[0]
    note = (
        f"{clients} clients offering {rate:,.0f} records/s in batches of 10, {seconds:.0f} s, "
        "SIGKILL at "
        f"{seconds / 2:.0f} s and restart ({r['restart_s']:.1f} s until it answered again; "
        f"{r['failed_attempts']} requests failed meanwhile and were retried); the machine's "
        f"1-minute load average {load_before:.1f} before, {load_after:.1f} after"
    )
    report.add(
        "push: agent-status records per second landed",
        r["records_per_s"],
        "rec/s",
        f">= {target:,.0f}",
        r["records_per_s"] >= target,
        note=note,
    )
    report.add(
        "push: p99 latency of acknowledged requests",
        r["p99_ms"],
        "ms",
        "< 200 ms",
        r["p99_ms"] < 200,
        note=(
            f"p50 {r['p50_ms']:.0f} ms, max {r['max_ms']:.0f} ms, {r['requests']:,} requests; "
            f"p99 of the requests sent more than 5 s from the kill {r['p99_steady_ms']:.0f} ms"
        ),
    )
    report.add(
        "push: records lost after kill -9",
        r["lost"],
        "",
        "0",
        r["lost"] == 0,
        note=f"{r['records_sent']:,} records acknowledged",
    )
    report.add(
        "push: records duplicated after retries", r["duplicated"], "", "0", r["duplicated"] == 0
    )
    analyst = r["analyst"]
    report.add(
        "push: analyst queries of the live view that failed",
        analyst["errors"],
        "",
        "0",
        analyst["errors"] == 0,
        note=f"{analyst['queries']} queries; {'; '.join(analyst['messages'])}",
    )
    report.add(
        "push: half-applied batches seen by analysts",
        analyst["partial"],
        "",
        "0",
        analyst["partial"] == 0,
        note=f"live view rows at the end: {r['live_rows']:,}",
    )


def part_readers(report: Report, seconds: float, queues: int) -> None:
    """Analysts' queries back to back while ticks, a history import and compaction rewrite the
    same months (bench/readers.py): every error and every wrong total counts."""
    from bench import readers

    root = WORK / "readers"
    shutil.rmtree(root, ignore_errors=True)
    found = readers.run(root, queues, history_months=6, seconds=seconds)
    for name, counts in found.items():
        if not name.startswith("reader"):
            continue
        report.add(
            f"{name}: queries with an error or a wrong total, during {found['seconds']:.0f} s",
            counts["errors"] + counts["wrong"],
            "queries",
            "0",
            counts["errors"] + counts["wrong"] == 0,
            note=f"{counts['queries']:,} queries; {counts['errors']} errors, {counts['wrong']} "
            f"wrong totals; meanwhile {found['ticks']} ticks, {found['history months']} history "
            f"months, {found['months compacted']} months compacted, {queues} queues"
            + (f"; first problems: {counts['messages'][:3]}" if counts["messages"] else ""),
        )


def missed_by(figure: Figure) -> str:
    """How far a failed figure is from its target, e.g. '+93.84 s (2.6x)'."""
    limit = re.search(r"[\d.]+", figure.target.replace(",", ""))
    if figure.passed is None or figure.passed or not limit:
        return ""
    bound = float(limit.group())
    bound = bound * 1024 if "GiB" in figure.target else bound
    return f"+{figure.value - bound:,.2f} ({figure.value / bound:.1f}x the target)"


def previous_run(path: Path) -> tuple[str, list[str]]:
    """When the results file `path` was written and its notes, so a run of some parts can say
    where the figures it keeps come from and keep their notes."""
    if not path.exists():
        return "", []
    text = path.read_text()
    when = re.search(r"^Run (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", text, re.MULTILINE)
    notes = [
        line
        for section in re.findall(r"^## Notes[^\n]*\n\n((?:- [^\n]*\n)+)", text, re.MULTILINE)
        for line in section.splitlines()
    ]
    return (when.group(1) if when else "an earlier run"), notes


def write_results(report: Report, args: argparse.Namespace, workload: Workload) -> Path:
    suffix = "" if args.scale == 1 else f"-scale-{args.scale:g}"
    path = ROOT / "bench" / f"results{suffix}.md"
    previous = path.with_suffix(".json")
    now = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    for figure in report.figures:
        figure.measured = figure.measured or now
    kept_from = ""
    kept_notes: list[str] = []
    if previous.exists():  # parts not run (or not finished) keep their earlier figures
        ran = {f.part for f in report.figures}
        fresh = {f.name for f in report.figures}
        kept = [
            Figure(**{**f, "passed": {"True": True, "False": False}.get(f["passed"], f["passed"])})
            for f in json.loads(previous.read_text())
            if f.get("part") not in ran and f["name"] not in fresh
        ]
        report.figures[:0] = kept
        if kept:
            kept_from, kept_notes = previous_run(path)
    order = ALL_PARTS.split(",")
    report.figures.sort(key=lambda f: order.index(f.part) if f.part in order else len(order))
    lines = [
        f"# Benchmark results{' (scale ' + format(args.scale, 'g') + ')' if suffix else ''}",
        "",
        f"Run {now} UTC on {machine()}"
        + (
            f" (parts {args.parts}; the other figures are kept from earlier runs, and the "
            "column `measured` says when each figure was measured)."
            if kept_from
            else "."
        ),
        f"Workload: {workload.queues} queues x {workload.days} days x 15-minute intervals, one "
        f"channel = {workload.rows:,} contact rows, as {workload.days} daily CSV files (named "
        "by their UTC day, `contacts.day_in_name`) and one PostgreSQL table. Dagster instance "
        "on PostgreSQL, DAGSTER_EVENT_BATCH_SIZE="
        f"{os.environ.get('DAGSTER_EVENT_BATCH_SIZE', '1000')}, monthly range runs, "
        f"{HISTORY_RUNS_AT_ONCE} at a time; ticks {TICK_RUNS_AT_ONCE} at a time (the project's "
        "run queue limit: one per core).",
        "",
        "| figure | value | unit | target | result | missed by | measured | note |",
        "| --- | ---: | --- | --- | --- | --- | --- | --- |",
    ]
    for f in report.figures:
        verdict = "" if f.passed is None else ("pass" if f.passed else "**fail**")
        lines.append(
            f"| {f.name} | {f.value:,.2f} | {f.unit} | {f.target} | {verdict} | {missed_by(f)} "
            f"| {f.measured} | {f.note} |"
        )
    if report.notes:
        lines += ["", "## Notes from this run", ""] + [f"- {n}" for n in report.notes]
    fresh_notes = {re.sub(r"[\d.,]+", "#", n) for n in report.notes}
    kept_notes = [n for n in kept_notes if re.sub(r"[\d.,]+", "#", n[2:]) not in fresh_notes]
    if kept_notes:
        lines += ["", f"## Notes kept from earlier runs (the last written at {kept_from})", ""]
        lines += kept_notes
    if ANALYSIS.exists():
        lines += ["", ANALYSIS.read_text().strip()]
    path.write_text("\n".join(lines) + "\n")
    (path.with_suffix(".json")).write_text(
        json.dumps([f.__dict__ for f in report.figures], indent=2, default=str) + "\n"
    )
    return path


def as_deployed() -> None:
    """What `make bench` gives every process (the Makefile's settings and the project's
    bytecode), also when the benchmark is started as `python -m bench`, so that both measure
    the same thing: without them each run wrote its 744 hourly events one by one and, where
    PYTHONDONTWRITEBYTECODE is set, compiled the project's modules from source. (The values
    repeat the Makefile's exports; keep the two alike.)"""
    for name, value in AS_DEPLOYED_ENV.items():
        os.environ.setdefault(name, value)
    compileall.compile_dir(str(ROOT / "etl"), quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 500 queues")
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--parts", default=ALL_PARTS)
    args = parser.parse_args(argv)
    as_deployed()
    parts = set(args.parts.split(",")) - {""}
    queues = max(5, round(500 * args.scale))
    workload = history_workload(queues, args.years)
    WORK.mkdir(parents=True, exist_ok=True)
    csv_dir = WORK / f"csv_{queues}q_{workload.start:%Y%m}_{workload.days}d"
    report = Report()
    print(f"wfm-etl benchmark on {machine()}")
    print(f"workload: {workload.rows:,} rows ({queues} queues, {workload.days} days)")
    if parts & HISTORY_PARTS:
        started = time.perf_counter()
        write_csv_files(workload, csv_dir)
        report.notes.append(
            f"generating the CSV files took {time.perf_counter() - started:.0f} s "
            "(set-up, not timed; reused when present)"
        )
    # A stopped benchmark (a timeout's SIGTERM, Ctrl-C, a failed part) still writes the figures
    # of the parts it finished.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run_parts(report, args, parts, queues, workload, csv_dir)
    finally:
        measured = list(report.figures)  # the exit status is this run's, not the kept figures'
        print(f"results: {write_results(report, args, workload)}")
    return 0 if all(f.passed is not False for f in measured) else 1


def run_parts(
    report: Report,
    args: argparse.Namespace,
    parts: set[str],
    queues: int,
    workload: Workload,
    csv_dir: Path,
) -> None:
    report.part = "floor"
    floor = part_floor(report, csv_dir, workload.rows) if "floor" in parts else None
    peers = None
    if "peers" in parts:
        report.part = "peers"
        peers = part_peers(report, csv_dir, workload.rows, floor)
    if "bookkeeping" in parts:
        report.part = "bookkeeping"
        part_bookkeeping(report, workload, floor, csv_dir)
    project = None
    if "csv" in parts:
        report.part = "csv"
        project = part_history(report, "csv", workload, csv_dir, floor, peers)
    if "db" in parts:
        report.part = "db"
        part_history(report, "database", workload, csv_dir, floor, peers)
    if project is None and (WORK / "project_csv" / "warehouse").exists():
        project = WORK / "project_csv"  # the history a previous full run imported
    if project and ({"remap", "queries"} & parts):
        report.part = "remap"
        part_remap_and_queries(report, project, queues, workload.end)
    if project and "dayfiles" in parts:
        report.part = "dayfiles"
        part_day_files(report, project, queues, workload.end)
    if "readers" in parts:
        report.part = "readers"
        part_readers(report, 180 * min(1.0, max(args.scale, 0.1)), queues)
    if "tick" in parts:
        report.part = "tick"
        part_tick(report, queues, max(2, round(50 * args.scale)), workload.start)
    if "push" in parts:
        report.part = "push"
        part_push(report, args.scale)
    if "celery" in parts:
        report.part = "celery"
        part_celery(report, queues, max(2, round(50 * args.scale)), workload.start)


if __name__ == "__main__":
    sys.exit(main())
