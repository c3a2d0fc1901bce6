"""The coverage check: an integration's loaded data has no holes older than its revision window.

Holes inside the revision window are normal (the next scheduled tick re-imports it); an older
hole means the gap sensor has not caught up, or cannot (a source that keeps failing). The check
names the missing intervals. It reads the `coverage_*` views' macros on its integration's own
import log, so it sees what analysts see.

It also names the hours no longer retried (failed `MAX_IDENTICAL_FAILURES` times the same
way: see `etl.assets.import_log`), and fails while there are any, since nothing fills them
until someone acts.

The check is a spec on the fact asset, evaluated at the end of the import's own step. As a
separate check step it depended on the hourly-partitioned asset, and Dagster listed every
partition of the history to look up the materialization it checked (0.3 s a run for three
years of hours, every tick; bench/).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from etl.assets.import_log import (
    MAX_IDENTICAL_FAILURES,
    StoppedHours,
    import_log_relation,
    import_log_view_exists,
    stopped_in,
)
from etl.config import Integration
from etl.partitions import HOUR
from etl.resources.warehouse import Warehouse

CHECK_NAME = "coverage"
NAMED_GAPS = 20


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime
    intervals: int
    incomplete: int

    def __str__(self) -> str:
        what = f"{self.intervals} interval{'s' * (self.intervals != 1)}"
        if self.incomplete:
            what += f", {self.incomplete} imported before they ended"
        return f"{self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M} UTC ({what})"


@dataclass(frozen=True)
class Coverage:
    last_import: datetime | None
    until: datetime | None  # holes are counted before this: last import - revision window
    first_loaded: datetime | None  # looked up only when there are gaps
    gaps: list[Gap]
    stopped: list[StoppedHours] = field(default_factory=list)  # failed hours not retried

    @property
    def missing_intervals(self) -> int:
        return sum(g.intervals for g in self.gaps)

    @property
    def history_only(self) -> bool:
        """All holes lie before the first loaded interval: history not imported yet."""
        return self.first_loaded is not None and all(g.end <= self.first_loaded for g in self.gaps)


def _ts(value) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime()


def coverage_of(warehouse: Warehouse, integration: Integration, data_kind: str) -> Coverage:
    """Holes in one integration's data kind older than its revision window (relative to its
    last import, so a paused integration is judged on what it had when it stopped)."""
    with warehouse.connect() as con:
        # The views' macros on this integration's own log: the `imports` view would read
        # every integration's log (1.1-1.8 s with 50 integrations of 3 years, bench/).
        if not import_log_view_exists(con, integration.id, data_kind):
            return Coverage(None, None, None, [])
        log = import_log_relation(integration.id, data_kind)
        failed = con.execute(
            "SELECT partition_start, failure, failures, failure_config FROM failed_imports_of(?) "
            "WHERE integration_id = ? AND data_kind = ? AND failures >= ? ORDER BY partition_start",
            [log, integration.id, data_kind, MAX_IDENTICAL_FAILURES],
        ).df()
        stopped = stopped_in(failed, integration)
        last = con.execute(
            "SELECT max(imported_at) FROM imports_of(?) WHERE integration_id = ? AND data_kind = ?",
            [log, integration.id, data_kind],
        ).fetchone()[0]
        last_import = _ts(last)
        if last_import is None:
            return Coverage(None, None, None, [], stopped)
        until = last_import - integration.revision_window_hours * HOUR
        rows = con.execute(
            """
            SELECT gap_start, least(gap_end, ?) AS gap_end, interval_minutes, intervals,
                   incomplete_intervals, gap_end <= ? AS whole
            FROM coverage_gaps_of(?)
            WHERE integration_id = ? AND data_kind = ? AND gap_start < ?
            ORDER BY gap_start
            """,
            [until, until, log, integration.id, data_kind, until],
        ).fetchall()
        first_loaded = None
        if rows:  # only holes need it, and it reads every interval of the history
            first_loaded = _ts(
                con.execute(
                    "SELECT min(interval_start) FROM coverage_intervals_of(?) "
                    "WHERE integration_id = ? AND data_kind = ? AND status = 'loaded'",
                    [log, integration.id, data_kind],
                ).fetchone()[0]
            )
    gaps = []
    for start, end, minutes, intervals, incomplete, whole in rows:
        start, end = _ts(start), _ts(end)
        if not whole:  # cut at the horizon: intervals are on a regular grid
            intervals = int((end - start).total_seconds() // (60 * minutes))
            end = start + timedelta(minutes=intervals * minutes)
            incomplete = min(incomplete, intervals)
        if intervals > 0:
            gaps.append(Gap(start, end, int(intervals), int(incomplete)))
    return Coverage(last_import, until, first_loaded, gaps, stopped)


def coverage_result(integration: Integration, kind_name: str, cov: Coverage) -> dg.AssetCheckResult:
    named = [str(g) for g in cov.gaps[:NAMED_GAPS]]
    more = len(cov.gaps) - len(named)
    metadata = {
        "missing_intervals": cov.missing_intervals,
        "gaps": len(cov.gaps),
        "missing": dg.MetadataValue.json(named + ([f"... and {more} more"] if more else [])),
        "revision_window_hours": integration.revision_window_hours,
    }
    if cov.last_import is not None:
        metadata["last_import"] = dg.MetadataValue.timestamp(cov.last_import)
        metadata["checked_before"] = dg.MetadataValue.timestamp(cov.until)
    stopped = ""
    if cov.stopped:
        metadata["hours_not_retried"] = dg.MetadataValue.json([str(s) for s in cov.stopped])
        stopped = (
            f"; {sum(int((s.window[1] - s.window[0]) / HOUR) for s in cov.stopped)} hours no "
            f"longer retried after failing {MAX_IDENTICAL_FAILURES} times the same way "
            "(fix the cause, then change the configuration or import them by hand): "
            + "; ".join(str(s) for s in cov.stopped[:NAMED_GAPS])
        )
    if not cov.gaps and not cov.stopped:
        description = (
            f"{integration.id} {kind_name}: no missing interval before the revision window"
            if cov.last_import
            else f"{integration.id} {kind_name}: nothing imported yet"
        )
        return dg.AssetCheckResult(
            check_name=CHECK_NAME, passed=True, description=description, metadata=metadata
        )
    history = cov.history_only and not cov.stopped
    description = (
        f"{integration.id} {kind_name}: "
        + (
            f"{cov.missing_intervals} intervals missing before {cov.until:%Y-%m-%d %H:%M} UTC"
            + (" (history not imported yet)" if history else "")
            + ": "
            + "; ".join(named)
            + (f"; and {more} more gaps" if more else "")
            if cov.gaps
            else "no missing interval before the revision window"
        )
        + stopped
    )
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=False,
        # history still arriving is expected for a while; a hole between loaded data, or
        # hours that nothing retries any more, are not
        severity=dg.AssetCheckSeverity.WARN if history else dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


def coverage_check_spec(
    integration: Integration, key: dg.AssetKey, kind_name: str
) -> dg.AssetCheckSpec:
    """The coverage check of one integration's fact asset; every import evaluates it."""
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=key,
        description=f"No interval of {integration.id} {kind_name} is missing or incomplete "
        f"between its history start and {integration.revision_window_hours} h before its last "
        "import (newer hours are the schedule's revision window). Fails naming the missing "
        "intervals; a warning only while the history import has not reached them yet. Also "
        f"fails naming the hours no longer retried after failing {MAX_IDENTICAL_FAILURES} "
        "times the same way.",
    )


def check_coverage(
    warehouse: Warehouse, integration: Integration, kind_name: str
) -> dg.AssetCheckResult:
    """The coverage check's result as the warehouse stands now."""
    return coverage_result(integration, kind_name, coverage_of(warehouse, integration, kind_name))
