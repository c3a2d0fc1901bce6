"""Command line: `wfm-etl demo|import|fill-gaps|compact|summary|sql|dev|vendors|init-home|
serve|api-key|mitel-listen|genesys-listen|deploy|worker`.

Imports go through Dagster (the integration's job, range runs, the project's instance), so
what the CLI does shows in the UI like any scheduled run. Each run ends in one printed line
(etl/progress.py); Dagster's own console log stays silent.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._utils.warnings import BetaWarning, PreviewWarning

from etl import clock, dev_server
from etl.backfills import QUIET, SILENT, ManualRun, fill_gaps, import_in_chunks
from etl.config import PROJECT_ROOT, ConfigError, Integration, Settings, load_integrations
from etl.definitions import MAPPINGS_JOB, build_definitions
from etl.demo_sources import DEMO_DB_ENV, demo_db_url, prepare_demo_sources
from etl.deploy import COMMANDS as DEPLOY_COMMANDS
from etl.deploy import DeployError
from etl.deploy import add_commands as add_deploy_commands
from etl.ingest import server as ingest_server
from etl.ingest.demo import push_demo_day
from etl.ingest.store import LandingStore, landing_url
from etl.instance import prepare_dagster_home
from etl.partitions import HOUR, floor_hour
from etl.progress import RunPrinter
from etl.resources.sources.base import SourceError
from etl.resources.sources.plumbing import locations
from etl.resources.sources.vendors import genesys_notifications
from etl.resources.sources.vendors.mitel import MitelSettings, listen
from etl.resources.warehouse import Warehouse
from etl.run_outcome import outcome
from etl.schedules.compaction import COMPACT_AFTER
from etl.schedules.ticks import TRIGGER_TAG, range_tags
from etl.sql_shell import run_sql
from etl.vendors import vendor_infos, vendors_table

__all__ = ["QUIET", "main", "run_import", "summary"]

REPORTS_DIR = PROJECT_ROOT / "sql" / "reports"

EXAMPLE_QUERY = (
    "SELECT destination_queue, channel, day_local, offered, answered, round(aht_s) AS aht_s\n"
    "FROM queue_days WHERE day_local = (SELECT max(day_local) - 1 FROM queue_days)\n"
    "ORDER BY offered DESC LIMIT 10;"
)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run_import(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    integration_id: str,
    start: datetime,
    end: datetime,
    trigger: str = "cli",
) -> dg.ExecuteInProcessResult:
    """One range run of the integration's import job over the hours in [start, end)."""
    job = defs.resolve_job_def(f"{integration_id}_import")
    return job.execute_in_process(
        instance=instance,
        tags=range_tags(start, end, **{TRIGGER_TAG: trigger}),
        run_config=SILENT,
        raise_on_error=False,
    )


def _report_sql(name: str) -> str:
    return (REPORTS_DIR / f"{name}.sql").read_text(encoding="utf-8")


def summary(warehouse: Warehouse) -> str:
    """What the warehouse holds, per integration and table, as a few printable lines."""
    with warehouse.connect() as con:
        rows = con.execute(_report_sql("summary")).fetchall()
        rejected = {
            (integration_id, table): n
            for integration_id, table, n in con.execute(
                "SELECT integration_id, data_kind, count(*) FROM rejected_rows GROUP BY ALL"
            ).fetchall()
        }
        queues = con.execute("SELECT count(*) FROM queues").fetchone()[0]
        unmatched = con.execute("SELECT count(*) FROM unmatched_users").fetchone()[0]
    lines = [f"{'integration':<18}{'table':<22}{'rows':>9}{'rejected':>10}  first .. last (UTC)"]
    for integration_id, table, n, first, last in rows:
        lines.append(
            f"{integration_id:<18}{table:<22}{n:>9}{rejected.get((integration_id, table), 0):>10}"
            f"  {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M}"
        )
    lines.append(f"{queues} external queues in `queues`; rejected rows are in `rejected_rows`.")
    if any(table == "agent_status_segments" for _, table, *_ in rows):
        lines.append(f"{unmatched} user identifiers match no employee (`unmatched_users`).")
    return "\n".join(lines)


def coverage_summary(warehouse: Warehouse, hours: int) -> str:
    """What `coverage` shows after the demo, and why most of it is missing."""
    rows = warehouse.query(_report_sql("coverage_summary"))
    lines = [
        "Coverage (views `coverage`, `coverage_gaps`): every interval from each integration's "
        "history_start up to its last import is expected.",
        f"{'integration':<18}{'data':<14}{'since':<12}{'expected':>10}{'loaded':>9}{'missing':>9}",
    ]
    for row in rows.itertuples(index=False):
        lines.append(
            f"{row.integration_id:<18}{row.data_kind:<14}{row.first_day:%Y-%m-%d}  "
            f"{row.expected:>10}{row.loaded:>9}{row.missing:>9}"
        )
    lines += [
        f"The demo imported only the last {hours} hours, so the intervals before them show as "
        "missing: that is expected, not an error.",
        "`make dev` starts the gap sensors, which import that history (newest month first); "
        "`wfm-etl fill-gaps <integration>` imports it by hand.",
    ]
    return "\n".join(lines)


def shell_command(warehouse: Warehouse) -> str:
    """How to open the SQL shell from here, as it can be typed: the `wfm-etl` on PATH if it
    is this one, else the path of this one (relative to the current folder when inside)."""
    script = Path(sys.executable).with_name("wfm-etl")
    on_path = shutil.which("wfm-etl")
    if on_path and script.exists() and Path(on_path).resolve() == script.resolve():
        program = "wfm-etl"
    elif script.exists():
        try:
            program = str(script.absolute().relative_to(Path.cwd()))
        except ValueError:
            program = str(script.absolute())
    else:
        program = f"{sys.executable} -m etl.cli"
    command = f"{program} sql"
    if warehouse.path.resolve() != Settings.from_env().warehouse_dir.resolve():
        command += f" --warehouse {warehouse.path}"
    return command


def demo(args: argparse.Namespace) -> int:
    """Import the last hours of every configured integration and say what landed."""
    started = time.monotonic()
    home = prepare_dagster_home()
    settings = Settings.from_env()
    defs = build_definitions(settings)
    integrations = load_integrations(settings.integrations_path)
    now = datetime.now(UTC)
    end = floor_hour(now) + HOUR
    # The CSV and database demo integrations read files this step writes.
    os.environ.setdefault(DEMO_DB_ENV, demo_db_url(locations.home()))
    print(prepare_demo_sources(locations.home(), end - timedelta(hours=args.hours), end))
    for line in push_demo_day(integrations, end, locations.home() / "data" / "demo"):
        print(line)  # the push integration's day, through the real ingestion service
    with dg.DagsterInstance.get() as instance:
        mappings = defs.resolve_job_def(MAPPINGS_JOB).execute_in_process(
            instance=instance, run_config=SILENT, raise_on_error=False
        )
        print(f"mappings: {'ok' if mappings.success else 'FAILED: ' + outcome(mappings).reason}")
        failed = 0
        for integration in integrations:
            start = max(end - timedelta(hours=args.hours), integration.history_start)
            result = run_import(defs, instance, integration.id, start, end, trigger="demo")
            printer = RunPrinter(integration.id, verbose=args.verbose)
            printer.finished(ManualRun((start, end), result.run_id, outcome(result)))
            failed += not result.success
            printer.close()
    warehouse = Warehouse(root=str(settings.warehouse_dir))
    print()
    print(summary(warehouse))
    print()
    print(coverage_summary(warehouse, args.hours))
    print()
    print(f"Dagster instance: DAGSTER_HOME={home}  (browse it with `make dev`)")
    print(
        f"Warehouse catalog (any DuckDB 2.0 client can open it read-only): {warehouse.catalog_path}"
    )
    print("Query the views (read-only) with the project's SQL shell:")
    print(f"  {shell_command(warehouse)}")
    print("and type a query at its prompt, e.g.")
    print("  " + EXAMPLE_QUERY.replace("\n", "\n  "))
    sys.stdout.flush()
    run_sql(warehouse, EXAMPLE_QUERY, "box")
    print(f"Demo finished in {time.monotonic() - started:.1f} s.")
    return 1 if failed or not mappings.success else 0


def _find_integration(settings: Settings, integration_id: str):
    """The configured integration of that id, and all of them; a ConfigError naming the known
    ids when there is none."""
    integrations = {i.id: i for i in load_integrations(settings.integrations_path)}
    if integration_id not in integrations:
        known = ", ".join(sorted(integrations)) or "none"
        raise ConfigError(f"no integration {integration_id!r} in the config (known: {known})")
    return integrations[integration_id], list(integrations.values())


def _integration(settings: Settings, integration_id: str):
    integration, integrations = _find_integration(settings, integration_id)
    return integration, build_definitions(settings, integrations)


def import_command(args: argparse.Namespace) -> int:
    """Re-import [start, end) as range runs, one per month and backfill chunk, newest first."""
    prepare_dagster_home()
    integration, defs = _integration(Settings.from_env(), args.integration)
    start, end = _parse_time(args.start), _parse_time(args.end)
    with dg.DagsterInstance.get() as instance, RunPrinter(integration.id, args.verbose) as printer:
        runs = import_in_chunks(defs, instance, integration, start, end, watcher=printer)
        printer.close()
    return 0 if all(run.success for run in runs) else 1


def fill_gaps_command(args: argparse.Namespace) -> int:
    """What the gap sensor does, by hand: import every missing, failed or incomplete hour."""
    prepare_dagster_home()
    integration, defs = _integration(Settings.from_env(), args.integration)
    if integration.paused:
        print(f"note: {integration.id} is paused in the config; importing anyway, as asked")
    with dg.DagsterInstance.get() as instance, RunPrinter(integration.id, args.verbose) as printer:

        def announce(plan) -> None:
            print(
                f"{integration.id}: {plan.missing_hours} of {plan.expected_hours} hours before "
                f"{plan.horizon:%Y-%m-%d %H:%M} UTC to import ({plan.busy_hours} queued or "
                f"running), in {len(plan.requests)} range run(s)",
                flush=True,
            )

        plan, runs = fill_gaps(
            defs, instance, integration, datetime.now(UTC), args.dry_run, printer, announce
        )
        if args.dry_run:
            for request in plan.requests:
                start, end = request.window
                print(f"  {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC ({request.trigger})")
            return 0
        printer.close()
    return 0 if all(run.success for run in runs) else 1


def compact_command(warehouse: Warehouse, now: datetime) -> int:
    """Merge the day files of months that ended at least a day ago (beside open connections:
    each keeps reading the files it had until it closes)."""
    done = warehouse.compact_months(before=now - COMPACT_AFTER)
    print(f"compacted {done.months} months ({done.files} day files into {done.months})")
    return 0


def _listener_of(
    args: argparse.Namespace, vendor: str, what: str
) -> tuple[Integration, threading.Event]:
    """A long-running listener's integration (of `vendor`, else a config error saying `what`
    the command is for), logging to stderr, and the event SIGTERM or Ctrl-C sets to stop it."""
    integration, _ = _find_integration(Settings.from_env(), args.integration)
    if integration.vendor != vendor:
        raise ConfigError(
            f"integration {integration.id!r} has vendor {integration.vendor!r}; {what}"
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return integration, stop


def mitel_listen_command(args: argparse.Namespace) -> int:
    """Read a Mitel MiVoice Business ACD's real-time events and land agent-status segments,
    until stopped (SIGTERM or Ctrl-C); reconnects by itself when the stream breaks."""
    integration, stop = _listener_of(
        args, "mitel", "mitel-listen reads the ACD real-time events of vendor: mitel integrations"
    )
    settings = MitelSettings.model_validate(integration.source)
    print(
        f"{integration.id}: listening to {settings.host}:{settings.port}; segments land in "
        f"{LandingStore(landing_url()).where} (stop with Ctrl-C or SIGTERM)",
        flush=True,
    )
    try:
        listener = listen(integration, stop)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts = listener.counts
    print(
        f"{integration.id}: stopped; {counts.records} records read, {counts.landed} segment "
        f"records landed, {counts.duplicates} sent again and skipped, {counts.missed} missed, "
        f"{counts.unreadable} unreadable"
    )
    return 0


def genesys_listen_command(args: argparse.Namespace) -> int:
    """Follow a Genesys Cloud organisation's presence and routing status through the
    Notifications API and land agent-status segments, until stopped (SIGTERM or Ctrl-C);
    reconnects and renews its channels by itself."""
    integration, stop = _listener_of(
        args,
        "genesys_cloud",
        "genesys-listen follows the notifications of vendor: genesys_cloud integrations",
    )
    try:
        consumer = genesys_notifications.notifications_of(integration)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{integration.id}: following presence and routing status; segments land in "
        f"{consumer.landing.store.where} (stop with Ctrl-C or SIGTERM)",
        flush=True,
    )
    try:
        consumer.run(stop)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        consumer.landing.store.dispose()
    counts = consumer.counts
    print(
        f"{integration.id}: stopped; {counts.notifications} notifications, {counts.landed} "
        f"segment records landed, {counts.refused} refused, {counts.connections} connections "
        f"on {counts.channels} channels"
    )
    return 0


def _warehouse(args: argparse.Namespace) -> Warehouse:
    root = getattr(args, "warehouse", None) or Settings.from_env().warehouse_dir
    return Warehouse(root=str(root))


def sql_command(args: argparse.Namespace) -> int:
    warehouse = _warehouse(args)
    if not warehouse.catalog_path.exists():
        raise ConfigError(
            f"no warehouse in {warehouse.path}: run `make demo` or an import first "
            "(or name the warehouse folder with --warehouse)"
        )
    return run_sql(warehouse, args.command_text, "csv" if args.csv else "box")


def dev_command(args: argparse.Namespace) -> int:
    print(f"DAGSTER_HOME={prepare_dagster_home()}")
    return dev_server.serve(args.host, args.port)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="wfm-etl", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    runs = argparse.ArgumentParser(add_help=False)
    runs.add_argument(
        "--verbose", "-v", action="store_true", help="print the stack trace of a failed run"
    )
    demo_parser = sub.add_parser(
        "demo", parents=[runs], help="import the last two days of the demo integrations"
    )
    demo_parser.add_argument("--hours", type=int, default=48)
    imp = sub.add_parser(
        "import", parents=[runs], help="re-import one integration's hours [start, end)"
    )
    imp.add_argument("integration")
    imp.add_argument("start", help="UTC, e.g. 2026-11-20T00:00")
    imp.add_argument("end", help="UTC, exclusive")
    gaps = sub.add_parser(
        "fill-gaps",
        parents=[runs],
        help="import every hour the gap sensor would (missing, failed, incomplete)",
    )
    gaps.add_argument("integration")
    gaps.add_argument("--dry-run", action="store_true", help="only list the range runs")
    sub.add_parser(
        "compact",
        help="merge the day files of ended months into month files (beside open connections)",
    )
    sub.add_parser("summary", help="rows per integration and table")
    sql = sub.add_parser("sql", help="an SQL shell on the warehouse's views, read-only")
    sql.add_argument("-c", dest="command_text", metavar="SQL", help="run this SQL and exit")
    sql.add_argument("--csv", action="store_true", help="print results as CSV")
    sql.add_argument("--warehouse", help="the warehouse folder (default: WFM_WAREHOUSE_DIR)")
    dev = sub.add_parser("dev", help="the Dagster UI and daemon (what `make dev` runs)")
    dev.add_argument("--host", default=dev_server.DEFAULT_HOST)
    dev.add_argument("--port", type=int, default=dev_server.DEFAULT_PORT)
    sub.add_parser("vendors", help="every source kind with what it delivers")
    sub.add_parser("init-home", help="create DAGSTER_HOME and its dagster.yaml")
    mitel = sub.add_parser(
        "mitel-listen",
        help="read a Mitel MiVoice Business ACD's real-time events and land agent status "
        "(runs until stopped)",
    )
    mitel.add_argument("integration")
    genesys = sub.add_parser(
        "genesys-listen",
        help="follow Genesys Cloud presence and routing status (Notifications API) and land "
        "agent status (runs until stopped)",
    )
    genesys.add_argument("integration")
    ingest_server.add_commands(sub)
    add_deploy_commands(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)
    try:
        if args.command in DEPLOY_COMMANDS:
            return DEPLOY_COMMANDS[args.command](args)
        if args.command == "demo":
            return demo(args)
        if args.command == "import":
            return import_command(args)
        if args.command == "fill-gaps":
            return fill_gaps_command(args)
        if args.command == "compact":
            return compact_command(_warehouse(args), clock.now())
        if args.command == "serve":
            return ingest_server.serve_command(args)
        if args.command == "api-key":
            return ingest_server.api_key_command(args)
        if args.command == "summary":
            print(summary(_warehouse(args)))
            return 0
        if args.command == "sql":
            return sql_command(args)
        if args.command == "dev":
            return dev_command(args)
        if args.command == "vendors":
            print(vendors_table(vendor_infos()))
            return 0
        if args.command == "mitel-listen":
            return mitel_listen_command(args)
        if args.command == "genesys-listen":
            return genesys_listen_command(args)
        print(f"DAGSTER_HOME={prepare_dagster_home()}")
        return 0
    except (ConfigError, dev_server.PortBusyError, DeployError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
