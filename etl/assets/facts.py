"""The one factory for imported fact assets (contacts, agent status).

Every fact asset does the same thing for its partition window: extract from the
integration's source, validate with the table's pandera schema, write the quarantine, replace
the window in the warehouse, and report counts in the materialization metadata. What differs
per data kind is described by a `FactKind`.
"""

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster._utils.warnings import BetaWarning, PreviewWarning
from dagster_pandera import pandera_schema_to_dagster_type

from etl import clock
from etl.assets.coverage import check_coverage, coverage_check_spec
from etl.assets.import_log import import_log_frame, log_import
from etl.assets.warehouse_files import check_warehouse_files, warehouse_files_check_spec
from etl.config import Integration
from etl.partitions import HOUR, KEY_FORMAT, hourly_partitions, hours, key_of
from etl.resources.sources.base import Extract, SourceResource
from etl.resources.sources.plumbing.redaction import guarded_results
from etl.resources.warehouse import Warehouse
from etl.schemas import TableSpec, rules_of
from etl.validation import (
    SourceDataError,
    Validated,
    empty_quarantine,
    partition_keys_in_window,
    validate,
)

CHECK_NAME = "rows_valid"


@dataclass(frozen=True)
class FactKind:
    """One kind of imported data: which source method, schema and table it uses."""

    name: str  # the asset name and the `data:` value in integrations.yaml
    spec: TableSpec
    schema: Callable[[Integration], pa.DataFrameSchema]
    extract: Callable[[SourceResource, datetime, datetime], Extract]
    description: str
    # Turns validated rows into what is stored (e.g. splitting segments at hour boundaries).
    prepare: (
        Callable[[pd.DataFrame, Integration, datetime, datetime, datetime], pd.DataFrame] | None
    ) = None
    # Extra row rules that need the whole window (e.g. overlapping segments), and their
    # descriptions for the asset check.
    extra_checks: Callable[[pd.DataFrame], pd.Series] | None = None
    extra_rules: tuple[str, ...] = ()
    # Runs after a successful write (e.g. the queue registry).
    after_write: Callable[[Warehouse, str, pd.DataFrame], dict] | None = None


def source_key(integration: Integration) -> str:
    return f"source_{integration.id}"


def asset_key(integration: Integration, kind: FactKind) -> dg.AssetKey:
    return dg.AssetKey([integration.id, kind.name])


def schema_check_spec(integration: Integration, kind: FactKind) -> dg.AssetCheckSpec:
    """The schema as a blocking asset check; its description lists the schema's rules.

    Evaluated once per run, for the run's window (named in its metadata), not per hour: a
    partitioned check stores a planned evaluation per hour, which cost 1.2 s of a 744-hour
    history run (bench/)."""
    rules = [*rules_of(kind.schema(integration)), *kind.extra_rules]
    rules = "\n".join(f"- {rule}" for rule in rules)
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=asset_key(integration, kind),
        blocking=True,
        description=f"Every row delivered passes the {kind.spec.name} schema:\n{rules}",
    )


def _source_rejects(
    extract: Extract,
    integration_id: str,
    kind: FactKind,
    start: datetime,
    end: datetime,
    run_id: str,
) -> pd.DataFrame:
    """Rows the source itself could not read, in the quarantine's shape. A source may give
    each a `partition_time`; otherwise it belongs to the window's first hour."""
    rejected = extract.rejected
    if rejected is None or rejected.empty:
        return empty_quarantine()
    given = rejected.get("partition_time", pd.Series(pd.NaT, index=rejected.index))
    when = pd.to_datetime(given, utc=True, errors="coerce")
    return pd.DataFrame(
        {
            "integration_id": integration_id,
            "data_kind": kind.spec.name,
            "partition_key": partition_keys_in_window(when, start, end),
            "source_ref": rejected["source_ref"].astype(str).to_numpy(),
            "row_json": rejected["row_json"].astype(str).to_numpy(),
            "rules": [list(r) for r in rejected["rules"]],
            "run_id": run_id,
            "rejected_at": pd.Timestamp(datetime.now(UTC)),
        }
    )


def _hours_over_threshold(
    good_per_hour: pd.Series, rejected: pd.DataFrame, share: float
) -> list[tuple[str, int, int]]:
    """(partition, rejected, delivered) for each hour whose rejected share passes `share`."""
    if rejected.empty:
        return []
    bad = rejected.groupby("partition_key").size()
    total = good_per_hour.reindex(bad.index, fill_value=0) + bad
    over = bad[(bad / total) > share]
    return [(key, int(bad[key]), int(total[key])) for key in over.index]


def _top_rules(rejected: pd.DataFrame, limit: int = 5) -> list[tuple[str, int]]:
    if rejected.empty:
        return []
    counts = rejected["rules"].explode().value_counts().head(limit)
    return [(str(rule), int(n)) for rule, n in counts.items()]


def validate_extract(
    extract: Extract,
    integration: Integration,
    kind: FactKind,
    start: datetime,
    end: datetime,
    run_id: str,
) -> Validated:
    """A source's rows for [start, end) checked by the kind's schema and extra checks."""
    return validate(
        extract.frame,
        spec=kind.spec,
        schema=kind.schema(integration),
        integration_id=integration.id,
        start=start,
        end=end,
        run_id=run_id,
        extra_checks=kind.extra_checks,
        source=extract.description,
    )


def import_window(
    context: dg.AssetExecutionContext,
    integration: Integration,
    kind: FactKind,
    source: SourceResource,
    warehouse: Warehouse,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Extract, validate and write one partition window (a single hour or a range)."""
    window = context.partition_time_window
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    imported_at = clock.now()
    run_id = context.run.run_id
    where = (
        f"integration {integration.id!r}, {kind.name} "
        f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC"
    )

    extract = kind.extract(source, start, end)
    if extract.failed:
        # Until failed hours are failed one by one, a window the source could not deliver
        # completely is not written at all: its hours keep what they held.
        reasons = "; ".join(
            f"{f.start:%Y-%m-%d %H:%M}..{f.end:%Y-%m-%d %H:%M} UTC: {f.reason}"
            for f in extract.failed[:5]
        )
        raise dg.Failure(
            description=f"{where}: the source could not deliver the window completely, so "
            f"nothing was written and the window is imported again later: {reasons}",
            metadata={"source": extract.description},
        )
    try:
        validated = validate_extract(extract, integration, kind, start, end, run_id)
    except SourceDataError as exc:
        raise dg.Failure(description=f"{exc} (source: {extract.description})") from exc
    source_rejects = _source_rejects(extract, integration.id, kind, start, end, run_id)
    rejected = pd.concat(
        [df for df in (validated.rejected, source_rejects) if not df.empty] or [empty_quarantine()],
        ignore_index=True,
    )
    received = len(validated.good) + len(rejected)
    warehouse.ensure_catalog()  # first: a new version may move files before anything writes
    warehouse.replace_window("rejected_rows", f"{integration.id}.{kind.name}", start, end, rejected)

    good_per_hour = (
        validated.good[kind.spec.time_column]
        .clip(lower=pd.Timestamp(start))  # a segment begun earlier counts in the first hour
        .dt.floor("h")
        .value_counts()
    )
    # Format the few distinct hours, not every row (a month is 1.5 M rows).
    good_per_hour.index = pd.DatetimeIndex(good_per_hour.index).strftime(KEY_FORMAT)
    over = _hours_over_threshold(good_per_hour, rejected, integration.max_rejected_share)
    top = _top_rules(rejected)
    if over:
        hours_text = ", ".join(f"{key} ({bad} of {total} rows)" for key, bad, total in over[:10])
        rules_text = "; ".join(f"{rule} x{n}" for rule, n in top)
        raise dg.Failure(
            description=(
                f"{where}: rejected share above {integration.max_rejected_share:.0%} in "
                f"partition(s) {hours_text}; top failing rules: {rules_text}. Nothing was "
                "written for this window; the rejected rows are in rejected_rows."
            ),
            metadata={"rejected_rows": len(rejected), "received_rows": received},
        )

    stored = validated.good
    if kind.prepare is not None:
        stored = kind.prepare(stored, integration, start, end, imported_at)
    # One transaction: analysts see the window's rows, its log and its queues together.
    with warehouse.transaction(integration.id):
        written = warehouse.replace_window(kind.spec.name, integration.id, start, end, stored)
        log = import_log_frame(
            integration.id, kind, start, end, stored, rejected, imported_at, run_id
        )
        log_import(warehouse, log, start, end)
        extra = kind.after_write(warehouse, integration.id, stored) if kind.after_write else {}
        warehouse.register_integration(registry_record(integration))

    open_hours = [key_of(h) for h in hours(start, end) if h + HOUR > imported_at]
    context.log.info(
        f"{where}: {received} rows received, {written} written, {len(rejected)} rejected"
    )
    yield dg.MaterializeResult(
        metadata={
            "rows_received": received,
            "rows_written": written,
            "rows_rejected": len(rejected),
            "top_rejection_rules": dg.MetadataValue.json(dict(top)),
            "window_start": dg.MetadataValue.timestamp(start),
            "window_end": dg.MetadataValue.timestamp(end),
            "imported_at": dg.MetadataValue.timestamp(imported_at),
            "complete": not open_hours,
            "open_partitions": dg.MetadataValue.json(open_hours),
            "source": extract.description,
            **extra,
        }
    )
    yield dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=rejected.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "window_start": dg.MetadataValue.timestamp(start),
            "window_end": dg.MetadataValue.timestamp(end),
            "rows_rejected": len(rejected),
            "rejected_share": round(len(rejected) / received, 6) if received else 0.0,
            "top_rules": dg.MetadataValue.json(dict(top)),
        },
    )
    yield check_coverage(warehouse, integration, kind.name)
    yield check_warehouse_files(warehouse, integration)


def registry_record(integration: Integration) -> dict:
    return {
        "integration_id": integration.id,
        "name": integration.name or integration.id,
        "vendor": integration.vendor,
        "delivery": integration.delivery,
        "interval_minutes": integration.interval_minutes,
        "timezone": integration.timezone,
        "history_start": integration.history_start,
        "revision_window_hours": integration.revision_window_hours,
        "data": list(integration.data),
    }


def build_fact_asset(integration: Integration, kind: FactKind) -> dg.AssetsDefinition:
    """The partitioned asset importing `kind` for one integration."""
    with warnings.catch_warnings():
        # Backfill policies, partitioned checks and pandera types are marked beta/preview in
        # the pinned Dagster; they are what this design needs, so say it once, not per asset.
        warnings.simplefilter("ignore", BetaWarning)
        warnings.simplefilter("ignore", PreviewWarning)
        return _build_fact_asset(integration, kind)


def _build_fact_asset(integration: Integration, kind: FactKind) -> dg.AssetsDefinition:
    partitions = hourly_partitions(integration)
    schema = kind.schema(integration)
    dagster_type = pandera_schema_to_dagster_type(schema)
    source = source_key(integration)

    @dg.asset(
        key=asset_key(integration, kind),
        group_name=integration.id,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(integration.max_partitions_per_run),
        required_resource_keys={source, "warehouse"},
        check_specs=[
            schema_check_spec(integration, kind),
            coverage_check_spec(integration, asset_key(integration, kind), kind.name),
            warehouse_files_check_spec(integration, asset_key(integration, kind)),
        ],
        description=f"{kind.description} Integration {integration.id!r} ({integration.vendor}, "
        f"{integration.interval_minutes}-minute intervals, {integration.timezone}).",
        kinds={"pandas", "parquet"},
        metadata={
            "dagster/column_schema": dagster_type.metadata["schema"].schema,
            "table": kind.spec.name,
            "vendor": integration.vendor,
            "interval_minutes": integration.interval_minutes,
            "timezone": integration.timezone,
        },
        tags={"integration": integration.id, "vendor": integration.vendor},
    )
    def _asset(context: dg.AssetExecutionContext):
        resource = getattr(context.resources, source)
        # Secrets never leave the import, in any form: see plumbing/redaction.py.
        yield from guarded_results(
            resource,
            kind.extract,
            lambda extract: import_window(
                context,
                integration,
                replace(kind, extract=extract),
                resource,
                context.resources.warehouse,
            ),
        )

    return _asset
