"""Command line: `wfm-etl demo|import|fill-gaps|compact|summary|init-home|deploy|worker`.

Imports go through Dagster (the integration's job, range runs, the project's instance), so
what the CLI does shows in the UI like any scheduled run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._utils.warnings import BetaWarning, PreviewWarning

from etl import clock
from etl.backfills import QUIET, fill_gaps, import_in_chunks
from etl.config import ConfigError, Settings, load_integrations
from etl.definitions import MAPPINGS_JOB, build_definitions
from etl.demo_sources import DEMO_DB_ENV, demo_db_url, prepare_demo_sources
from etl.deploy import COMMANDS as DEPLOY_COMMANDS
from etl.deploy import DeployError
from etl.deploy import add_commands as add_deploy_commands
from etl.instance import prepare_dagster_home
from etl.partitions import HOUR, floor_hour
from etl.resources.sources.plumbing import locations
from etl.resources.warehouse import Warehouse, read_retrying
from etl.schedules.compaction import COMPACT_AFTER
from etl.schedules.ticks import TRIGGER_TAG, range_tags

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
        run_config=QUIET,
        raise_on_error=False,
    )


def summary(warehouse: Warehouse) -> str:
    """What the warehouse holds, per integration and table, as a few printable lines (read
    again when an import replaced a file under the query)."""
    return read_retrying(lambda: _summary(warehouse))


def _summary(warehouse: Warehouse) -> str:
    with warehouse.connect() as con:
        rows = con.execute(
            """
            SELECT integration_id, 'contact_intervals' AS table_name, count(*) AS n,
                   min(interval_start) AS first, max(interval_start) AS last
            FROM contact_intervals GROUP BY ALL
            UNION ALL
            SELECT integration_id, 'agent_status_segments', count(*), min(start_utc),
                   max(start_utc)
            FROM agent_status_segments GROUP BY ALL
            ORDER BY ALL
            """
        ).fetchall()
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


def demo(args: argparse.Namespace) -> int:
    """Import the last two days of every configured integration and say what landed."""
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
    with dg.DagsterInstance.get() as instance:
        mappings = defs.resolve_job_def(MAPPINGS_JOB).execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False
        )
        print(f"mappings: {'ok' if mappings.success else 'FAILED'}")
        failed = 0
        for integration in integrations:
            start = max(end - timedelta(hours=args.hours), integration.history_start)
            result = run_import(defs, instance, integration.id, start, end, trigger="demo")
            status = "ok" if result.success else "FAILED"
            failed += not result.success
            print(
                f"{integration.id}: range run {result.run_id[:8]} over "
                f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC "
                f"({int((end - start) / HOUR)} hourly partitions): {status}"
            )
    warehouse = Warehouse(root=str(settings.warehouse_dir))
    print()
    print(summary(warehouse))
    print()
    print(f"DuckDB catalog (open read-only): {warehouse.catalog_path}")
    print(f"Dagster instance: DAGSTER_HOME={home}  (browse it with `make dev`)")
    print("Example query:")
    print(f"  duckdb -readonly {warehouse.catalog_path}")
    print("  " + EXAMPLE_QUERY.replace("\n", "\n  "))
    print(warehouse.query(EXAMPLE_QUERY).to_string(index=False))
    print(f"\nDemo finished in {time.monotonic() - started:.1f} s.")
    return 1 if failed or not mappings.success else 0


def _integration(settings: Settings, integration_id: str):
    integrations = {i.id: i for i in load_integrations(settings.integrations_path)}
    if integration_id not in integrations:
        known = ", ".join(sorted(integrations)) or "none"
        raise ConfigError(f"no integration {integration_id!r} in the config (known: {known})")
    return integrations[integration_id], build_definitions(settings, list(integrations.values()))


def _print_runs(runs) -> None:
    for run in runs:
        start, end = run.window
        print(
            f"run {run.run_id}: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC "
            f"({int((end - start) / HOUR)} hours): {'ok' if run.success else 'FAILED'}"
        )


def import_command(args: argparse.Namespace) -> int:
    """Re-import [start, end) as range runs, one per month and backfill chunk, newest first."""
    prepare_dagster_home()
    integration, defs = _integration(Settings.from_env(), args.integration)
    with dg.DagsterInstance.get() as instance:
        runs = import_in_chunks(
            defs, instance, integration, _parse_time(args.start), _parse_time(args.end)
        )
    _print_runs(runs)
    return 0 if all(run.success for run in runs) else 1


def fill_gaps_command(args: argparse.Namespace) -> int:
    """What the gap sensor does, by hand: import every missing, failed or incomplete hour."""
    prepare_dagster_home()
    integration, defs = _integration(Settings.from_env(), args.integration)
    if integration.paused:
        print(f"note: {integration.id} is paused in the config; importing anyway, as asked")
    with dg.DagsterInstance.get() as instance:
        plan, runs = fill_gaps(defs, instance, integration, datetime.now(UTC), args.dry_run)
    print(
        f"{integration.id}: {plan.missing_hours} of {plan.expected_hours} hours before "
        f"{plan.horizon:%Y-%m-%d %H:%M} UTC to import ({plan.busy_hours} queued or running), "
        f"in {len(plan.requests)} range run(s)"
    )
    if args.dry_run:
        for request in plan.requests:
            start, end = request.window
            print(f"  {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC ({request.trigger})")
        return 0
    _print_runs(runs)
    return 0 if all(run.success for run in runs) else 1


def compact_command(warehouse: Warehouse, now: datetime) -> int:
    """Merge the day files of months that ended at least a day ago; exit 1 if a connection to
    the catalog stopped it (nothing half done: every month is merged whole or not at all)."""
    done = warehouse.compact_months(before=now - COMPACT_AFTER)
    print(f"compacted {done.months} month folders ({done.files} files into {done.months})")
    if done.busy:
        print(
            f"stopped: {done.busy_message}; close analysts' connections, or run it again later",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wfm-etl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="import the last two days of the demo integrations")
    demo_parser.add_argument("--hours", type=int, default=48)
    imp = sub.add_parser(
        "import", help="re-import one integration's hours [start, end) as range runs"
    )
    imp.add_argument("integration")
    imp.add_argument("start", help="UTC, e.g. 2026-11-20T00:00")
    imp.add_argument("end", help="UTC, exclusive")
    gaps = sub.add_parser(
        "fill-gaps", help="import every hour the gap sensor would (missing, failed, incomplete)"
    )
    gaps.add_argument("integration")
    gaps.add_argument("--dry-run", action="store_true", help="only list the range runs")
    sub.add_parser(
        "compact",
        help="merge the day files of ended months into month files (needs the catalog closed)",
    )
    sub.add_parser("summary", help="rows per integration and table")
    sub.add_parser("init-home", help="create DAGSTER_HOME and its dagster.yaml")
    add_deploy_commands(sub)
    args = parser.parse_args(argv)
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
            warehouse = Warehouse(root=str(Settings.from_env().warehouse_dir))
            return compact_command(warehouse, clock.now())
        if args.command == "summary":
            print(summary(Warehouse(root=str(Settings.from_env().warehouse_dir))))
            return 0
        print(f"DAGSTER_HOME={prepare_dagster_home()}")
        return 0
    except (ConfigError, DeployError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
