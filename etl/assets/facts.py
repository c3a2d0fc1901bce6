"""The one factory for imported fact assets (contacts, agent status).

Every fact asset does the same thing for its partition window: extract from the
integration's source, validate with the table's pandera schema, write the quarantine, replace
the window in the warehouse, and report counts in the materialization metadata. What differs
per data kind is described by a `FactKind`.

A window is replaced only with a complete extract. An hour fails alone, keeping what it held,
when the source could not deliver it completely (`Extract.failed`), when it held rows and the
source now delivers none (unless the source can say an hour is empty), or when too many of its
rows were rejected; every other hour of the run loads (`etl.assets.failed_hours`).
"""

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster._utils.warnings import BetaWarning, PreviewWarning
from dagster_pandera import pandera_schema_to_dagster_type

from etl import clock
from etl.assets.coverage import check_coverage, coverage_check_spec
from etl.assets.failed_hours import describe_stretch, listed, partition_outcome_events, stretches
from etl.assets.import_log import (
    MAX_IDENTICAL_FAILURES,
    hour_counts,
    hours_logged,
    import_log_frame,
    log_import,
    read_log,
    rows_per_hour,
    with_failures,
)
from etl.assets.warehouse_files import check_warehouse_files, warehouse_files_check_spec
from etl.config import Integration
from etl.partitions import HOUR, KEY_FORMAT, floor_hour, hour_of, hourly_partitions, hours, key_of
from etl.resources.sources.base import Extract, SourceError, SourceResource
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
from etl.windows import Window, normalize

if TYPE_CHECKING:
    from dagster._core.events import DagsterEvent  # what the partial path yields

CHECK_NAME = "rows_valid"
LISTED_DUPLICATES = 10
# What every hour's materialization of a range carries; the window's last hour (the asset's
# latest materialization) carries all of the window's metadata. Every hour's event is
# serialised and stored on its own (744 a monthly run), so the others carry only what is read
# per hour: which window they were imported with and when (the gap sensor finds the hours
# imported before they ended from `imported_at`), and `complete`.
HOURLY_METADATA = ("window_start", "window_end", "imported_at", "complete")


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
    """The most frequent rules broken, most frequent first, then by name (so the same rows
    always give the same text: an hour's failure reason is compared between attempts)."""
    if rejected.empty:
        return []
    counts = rejected["rules"].explode().value_counts()
    ranked = sorted(
        ((str(rule), int(n)) for rule, n in counts.items()), key=lambda r: (-r[1], r[0])
    )
    return ranked[:limit]


def _rules_text(rules: list[tuple[str, int]]) -> str:
    return "; ".join(f"{rule} x{n}" for rule, n in rules)


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


def replaces_with_empty(integration: Integration, source: SourceResource) -> bool:
    """Whether an hour that held rows may be emptied by an extract with none for it: only
    when configured (`emptied_hours`) or when the source can say an hour is empty."""
    if integration.emptied_hours is not None:
        return integration.emptied_hours == "replace"
    return bool(getattr(type(source), "reports_empty_windows", False))


@dataclass
class Outcome:
    """What one attempt at a window came to, per hour."""

    start: datetime
    end: datetime
    failed: dict[datetime, str] = field(default_factory=dict)  # hour -> its one reason

    @property
    def all_hours(self) -> list[datetime]:
        return list(hours(self.start, self.end))

    @property
    def loaded_hours(self) -> list[datetime]:
        return [h for h in self.all_hours if h not in self.failed]

    def fail(self, windows: Iterable[Window], reason: str) -> None:
        """Fail the hours these windows touch, unless an hour already has a reason."""
        for start, end in normalize(windows):
            for hour in hours(max(floor_hour(start), self.start), min(end, self.end)):
                self.failed.setdefault(hour, reason)


def failing_hours(
    outcome: Outcome,
    extract: Extract,
    integration: Integration,
    source: SourceResource,
    stored_per_hour: pd.Series,
    good_per_hour: pd.Series,
    rejected: pd.DataFrame,
    duplicates: pd.DataFrame,
    before: pd.DataFrame,
) -> None:
    """Give every hour of the window that must not be written its one reason, in this order:
    the source could not deliver it completely; it held rows and the source delivered none;
    its rejected share is above the integration's threshold."""
    for failure in extract.failed:
        outcome.fail(
            [(failure.start, failure.end)],
            f"the source could not deliver it completely: {failure.reason}",
        )
    if not replaces_with_empty(integration, source):
        delivered = set(rejected["partition_key"]) | set(duplicates["partition_key"])
        for hour, logged in hours_logged(before).items():
            emptied = not stored_per_hour.get(pd.Timestamp(hour), 0)
            if logged.rows_written and emptied and key_of(hour) not in delivered:
                outcome.fail(
                    [(hour, hour + HOUR)],
                    f"held {logged.rows_written} rows and the source delivered none for it "
                    "(not emptied: set `emptied_hours: replace` if this source's empty "
                    "answer can be trusted)",
                )
    share = integration.max_rejected_share
    for key, bad, total in _hours_over_threshold(good_per_hour, rejected, share):
        rules = _top_rules(rejected[rejected["partition_key"] == key], limit=3)
        outcome.fail(
            [(hour_of(key), hour_of(key) + HOUR)],
            f"rejected share above {share:.0%}: {bad} of {total} rows rejected "
            f"({_rules_text(rules)})",
        )


def _in_hours(frame: pd.DataFrame, column: str, wanted: list[datetime]) -> pd.DataFrame:
    if frame.empty or not wanted:
        return frame.iloc[0:0]
    starts = frame[column].dt.floor("h")
    return frame[starts.isin(pd.DatetimeIndex(wanted))]


def _with_kept_rows(
    warehouse: Warehouse,
    table: str,
    owner: str,
    stored: pd.DataFrame,
    column: str,
    outcome: Outcome,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(new rows of the hours that load, what to write for the window): the new rows plus
    what the failed hours already hold, read back, so that one replacement of the window
    (each of its files swapped atomically, written once) writes the loaded hours and leaves
    the failed ones as they were."""
    if not outcome.failed:
        return stored, stored
    new = _in_hours(stored, column, outcome.loaded_hours)
    kept = [
        warehouse.read_window(table, owner, start, end)
        for start, end, _ in stretches(dict.fromkeys(outcome.failed, ""))
    ]
    parts = [frame for frame in (new, *kept) if len(frame)]
    if len(parts) < 2:
        return new, parts[0] if parts else new
    return new, pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class WindowImport:
    """One asset's import of its partition window, with what it works with."""

    context: dg.AssetExecutionContext
    integration: Integration
    kind: FactKind
    source: SourceResource
    warehouse: Warehouse

    @property
    def where(self) -> str:
        window = self.context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        return (
            f"integration {self.integration.id!r}, {self.kind.name} "
            f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC"
        )

    def record_failure(self, outcome: Outcome, imported_at: datetime) -> None:
        """Log that every hour of the window failed (each keeps its last successful
        import's row), so failure counts and coverage stay true. A log that cannot be written
        is reported as a warning, never raised over the failure itself."""
        integration, kind = self.integration, self.kind
        try:
            before = read_log(self.warehouse, integration.id, kind.name, outcome.start, outcome.end)
            fresh = import_log_frame(
                integration.id,
                kind,
                outcome.start,
                outcome.end,
                stored=pd.DataFrame(),
                rejected=empty_quarantine(),
                imported_at=imported_at,
                run_id=self.context.run.run_id,
            )
            log = with_failures(fresh, before, outcome.failed, imported_at, integration.fingerprint)
            log_import(self.warehouse, log, outcome.start, outcome.end)
        except Exception as exc:  # the import's own failure is what to report
            self.context.log.warning(f"the import log could not record this failure: {exc}")

    def extract(self, outcome: Outcome, imported_at: datetime) -> tuple[Extract, Validated]:
        """The source's rows for the window, validated. If the source fails (unreachable,
        refused, a frame it cannot shape), every hour fails with that reason, logged."""
        start, end = outcome.start, outcome.end
        extract: Extract | None = None
        try:
            extract = self.kind.extract(self.source, start, end)
            run_id = self.context.run.run_id
            return extract, validate_extract(
                extract, self.integration, self.kind, start, end, run_id
            )
        except Exception as exc:
            reason = str(exc) if isinstance(exc, (SourceError, SourceDataError)) else repr(exc)
            if extract is not None and extract.description:
                reason = f"{reason} (source: {extract.description})"
            outcome.fail([(start, end)], reason)
            self.record_failure(outcome, imported_at)
            if isinstance(exc, SourceDataError):
                raise dg.Failure(description=reason) from exc
            raise


def import_window(
    context: dg.AssetExecutionContext,
    integration: Integration,
    kind: FactKind,
    source: SourceResource,
    warehouse: Warehouse,
) -> Iterator["dg.MaterializeResult | DagsterEvent | dg.AssetCheckResult"]:
    """Extract, validate and write one partition window (a single hour or a range); hours
    that must not be written fail alone and show as failed partitions."""
    window = context.partition_time_window
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    job = WindowImport(context, integration, kind, source, warehouse)
    loaded: set[str] = set()
    try:
        yield from _import_window(job, Outcome(start, end), loaded)
    except Exception:
        failed = [key_of(h) for h in hours(start, end) if key_of(h) not in loaded]
        partition_outcome_events(context, [], failed, {})
        raise


def _import_window(
    job: WindowImport, outcome: Outcome, loaded: set[str]
) -> Iterator["dg.MaterializeResult | DagsterEvent | dg.AssetCheckResult"]:
    context, integration, kind = job.context, job.integration, job.kind
    source, warehouse = job.source, job.warehouse
    start, end = outcome.start, outcome.end
    imported_at = clock.now()
    run_id = context.run.run_id
    where = job.where
    owner = f"{integration.id}.{kind.name}"

    extract, validated = job.extract(outcome, imported_at)
    # What follows needs the validated rows, not the source's frame, which keeps every field
    # as delivered for the quarantine: letting it go freed 174 of a month's 242 MiB of Arrow
    # memory before the writes (bench/analysis.md).
    extract = replace(extract, frame=extract.frame.iloc[0:0])
    source_rejects = _source_rejects(extract, integration.id, kind, start, end, run_id)
    rejected = pd.concat(
        [df for df in (validated.rejected, source_rejects) if not df.empty] or [empty_quarantine()],
        ignore_index=True,
    )
    duplicates = validated.duplicates
    received = len(validated.good) + len(rejected) + len(duplicates)
    warehouse.ensure_catalog()  # first: a warehouse of an earlier layout is taken over
    # One transaction: analysts see the window's rows, its quarantine, its log and its
    # queues together, or (if anything here fails) nothing of it.
    with warehouse.transaction(integration.id):
        # The quarantine of every hour, failed ones included: it shows why they failed.
        warehouse.replace_window("rejected_rows", owner, start, end, rejected)

        stored = validated.good
        if kind.prepare is not None:
            stored = kind.prepare(stored, integration, start, end, imported_at)
        stored_per_hour = rows_per_hour(kind, stored, start, end)
        # A segment begun earlier counts in the first hour.
        good_per_hour = hour_counts(validated.good[kind.spec.time_column], lower=start)
        # Format the few distinct hours, not every row (a month is 1.5 M rows).
        good_per_hour.index = good_per_hour.index.strftime(KEY_FORMAT)
        before = read_log(warehouse, integration.id, kind.name, start, end)
        failing_hours(
            outcome,
            extract,
            integration,
            source,
            stored_per_hour,
            good_per_hour,
            rejected,
            duplicates,
            before,
        )

        column = kind.spec.time_column
        new, to_write = _with_kept_rows(
            warehouse, kind.spec.name, integration.id, stored, column, outcome
        )
        warehouse.replace_window(kind.spec.name, integration.id, start, end, to_write)
        written = len(new)
        fresh = import_log_frame(
            integration.id,
            kind,
            start,
            end,
            new,
            rejected,
            imported_at,
            run_id,
            duplicates,
            written=stored_per_hour if new is stored else None,
        )
        log_import(
            warehouse,
            with_failures(fresh, before, outcome.failed, imported_at, integration.fingerprint),
            start,
            end,
        )
        extra = kind.after_write(warehouse, integration.id, new) if kind.after_write else {}
        warehouse.register_integration(registry_record(integration))

    top = _top_rules(rejected)
    open_hours = [key_of(h) for h in outcome.loaded_hours if h + HOUR > imported_at]
    for warning in validated.warnings:
        context.log.warning(f"{where}: {warning}")
    if len(duplicates):
        refs = listed(duplicates["source_ref"].astype(str), LISTED_DUPLICATES)
        context.log.info(
            f"{where}: {len(duplicates)} exact duplicate row(s) kept once, not rejected: {refs}"
        )
    context.log.info(
        f"{where}: {received} rows received, {written} written, {len(rejected)} rejected, "
        f"{len(duplicates)} duplicate"
        + (
            f"; {len(outcome.failed)} of {len(outcome.all_hours)} hours failed"
            if outcome.failed
            else ""
        )
    )
    metadata = {
        "rows_received": received,
        "rows_written": written,
        "rows_rejected": len(rejected),
        "rows_duplicate": len(duplicates),
        "top_rejection_rules": dg.MetadataValue.json(dict(top)),
        "window_start": dg.MetadataValue.timestamp(start),
        "window_end": dg.MetadataValue.timestamp(end),
        "imported_at": dg.MetadataValue.timestamp(imported_at),
        "complete": not open_hours,
        "open_partitions": dg.MetadataValue.json(open_hours),
        "source": extract.description,
        **extra,
    }
    if validated.warnings:
        metadata["warnings"] = dg.MetadataValue.json(validated.warnings)
    hourly = {name: metadata[name] for name in HOURLY_METADATA}
    if outcome.failed:
        metadata["failed_partitions"] = len(outcome.failed)
        keys = [key_of(hour) for hour in outcome.loaded_hours]
        yield from partition_outcome_events(context, keys, [], metadata, hourly)
        loaded.update(keys)
    else:
        keys = [key_of(h) for h in outcome.all_hours]
        if len(keys) > 1:
            context.add_asset_metadata(metadata, partition_key=keys[-1])
            yield dg.MaterializeResult(metadata=hourly)
        else:
            yield dg.MaterializeResult(metadata=metadata)
        loaded.update(keys)
    yield dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=rejected.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "window_start": dg.MetadataValue.timestamp(start),
            "window_end": dg.MetadataValue.timestamp(end),
            "rows_rejected": len(rejected),
            "rows_duplicate": len(duplicates),
            "rejected_share": round(len(rejected) / received, 6) if received else 0.0,
            "top_rules": dg.MetadataValue.json(dict(top)),
        },
    )
    yield check_coverage(warehouse, integration, kind.name)
    yield check_warehouse_files(warehouse, integration)
    if outcome.failed:
        raise _hours_failed(context, where, outcome, len(rejected))


def _hours_failed(
    context: dg.AssetExecutionContext, where: str, outcome: Outcome, rejected: int
) -> dg.Failure:
    """The run's failure: every failed hour with its one reason (in the log, one line per
    stretch of hours failing alike), the others loaded."""
    parts = [describe_stretch(*piece) for piece in stretches(outcome.failed)]
    for part in parts:
        context.log.error(f"{where}: failed, not written: {part}")
    loaded = len(outcome.loaded_hours)
    return dg.Failure(
        description=(
            f"{where}: {len(outcome.failed)} of {len(outcome.all_hours)} hours failed and were "
            f"not written (they keep what they held; their rejected rows are in "
            f"rejected_rows): {listed(parts)}. The other {loaded} hours loaded. The gap "
            f"sensor retries failed hours, except those that failed {MAX_IDENTICAL_FAILURES} "
            "times the same way (see the `imports` view)."
        ),
        metadata={
            "failed_partitions": dg.MetadataValue.json(
                {key_of(hour): reason for hour, reason in sorted(outcome.failed.items())}
            ),
            "loaded_partitions": loaded,
            # The rows rejected, when no hour loaded (no materialization reports them then).
            **({} if loaded else {"rows_rejected": rejected}),
        },
    )


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
