"""The gap sensor: every hour an integration missed comes back, as range runs, exactly once.

One sensor per integration finds the hours it should have and has not (never imported, last
attempt failed, or imported before the hour ended: the materialization metadata lists those
as `open_partitions`) and requests range runs of the integration's import job for them,
newest first, cut at UTC month boundaries (the warehouse's file grain) and at the backfill
policy's chunk size. The same sensor imports the history of a newly connected integration.

Who owns which hours: the schedule re-imports the current hour plus the revision window at
every tick; the sensor owns every older hour. So an hour is never requested by both, and a
resumed integration imports each missed hour once.

It does not flood: at most `max_runs_in_flight` queued or running runs per integration (all
runs of the job carry the `wfm/integration` tag), no request for hours that a queued or running
run, a backfill in progress or a request of the last `RETRY_AFTER` already covers. A paused
integration (schedule stopped in the UI, or `status: paused` in the config) is left alone.
Nor does it retry for ever: an hour whose import failed `MAX_IDENTICAL_FAILURES` times in a
row the same way under the same configuration is stopped (the import log counts it) and named
in the sensor's status, until the configuration changes or an import of the hour succeeds.

Everything is computed on time windows (`etl.windows`), never on lists of partition keys:
materialized, failed and in-progress partitions come from Dagster's partition status cache
(the one the UI's partition bar reads: stored per asset as time windows, updated from the
events after its own cursor), and open partitions from the materialization events after the
sensor's cursor. The alternatives cost more: `instance.get_materialized_partitions` reads
every materialized key each call, and `get_status_by_partition` wants the list of keys
(`get_partition_keys()`, about a second for 100k keys).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.scheduler.instigation import InstigatorStatus
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from dagster._core.storage.tags import PARTITION_NAME_TAG

from etl import clock
from etl.assets.import_log import MAX_IDENTICAL_FAILURES, StoppedHours, stopped_hours
from etl.config import Integration
from etl.partitions import HOUR, floor_hour, hour_of, key_of
from etl.resources.warehouse import Warehouse
from etl.schedules.ticks import (
    INTEGRATION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    range_tags,
    schedule_name,
)
from etl.windows import (
    Window,
    chunks,
    hours_in,
    intersect,
    normalize,
    of_hours,
    subtract,
    union,
)

GAPS_TRIGGER = "gaps"
HISTORY_TRIGGER = "history"
BACKLOG_TAG = "wfm/backlog_hours"
HOURS_TAG = "wfm/hours"
# A window requested by the sensor is not requested again for this long, even if its run
# failed at once: a source that is down gets a retry every RETRY_AFTER, not every tick.
RETRY_AFTER = timedelta(minutes=30)
EVENT_PAGE = 2_000
NAMED_STOPS = 5
EVENTS_PER_TICK = 50_000
PENDING_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
    DagsterRunStatus.SUSPENDED,
]
ACTIVE_BACKFILL_STATUSES = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING]


def sensor_name(integration: Integration) -> str:
    return f"{integration.id}_gap_sensor"


# -- the pure core ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AssetState:
    """What the instance knows about one fact asset's partitions, as windows."""

    loaded: list[Window] = field(default_factory=list)  # materialized at least once
    failed: list[Window] = field(default_factory=list)  # latest attempt failed
    open: list[Window] = field(default_factory=list)  # latest import ran before the hour ended
    # failed hours not retried any more: they failed MAX_IDENTICAL_FAILURES times the same way
    stopped: list[StoppedHours] = field(default_factory=list)


@dataclass(frozen=True)
class GapState:
    assets: dict[str, AssetState]  # by asset key, "<integration>/<kind>"
    busy: list[Window] = field(default_factory=list)  # queued, running or just requested
    runs_in_flight: int = 0
    open_known: bool = True  # False while the event cursor is still catching up


@dataclass(frozen=True)
class GapRequest:
    window: Window
    assets: tuple[str, ...]  # the asset keys to import; every fact asset of the integration
    trigger: str  # HISTORY_TRIGGER before the first loaded hour, GAPS_TRIGGER after it

    @property
    def hours(self) -> int:
        return hours_in([self.window])


@dataclass(frozen=True)
class GapPlan:
    horizon: datetime  # the sensor owns the hours before this
    requests: list[GapRequest]
    expected_hours: int  # from history_start to the horizon
    missing_hours: int  # never loaded, failed or open
    busy_hours: int  # of those, queued, running or requested in the last RETRY_AFTER
    todo_hours: int  # missing and not busy
    waiting_hours: int  # todo but not requested this tick (runs in flight at the bound)
    loaded_hours: dict[str, int]
    stopped: dict[str, list[StoppedHours]] = field(default_factory=dict)  # by asset

    @property
    def stopped_hours(self) -> int:
        return hours_in(union(*([s.window for s in found] for found in self.stopped.values())))

    def describe_stopped(self, limit: int = NAMED_STOPS) -> str:
        """The stopped hours and why, for the sensor's status."""
        named = [f"{key}: {stop}" for key, found in self.stopped.items() for stop in found]
        more = len(named) - limit
        return (
            f"{self.stopped_hours} hours no longer retried, each failed "
            f"{MAX_IDENTICAL_FAILURES} times the same way (a changed configuration or a "
            "successful import of the hour resumes them; `wfm-etl import` retries by hand): "
            + "; ".join(named[:limit])
            + (f"; and {more} more" if more > 0 else "")
        )


def horizon(integration: Integration, now: datetime) -> datetime:
    """End of the hours the sensor owns: older than the schedule's window (the current hour
    and the revision window), which also means every one of them is over."""
    schedule_start = floor_hour(now) - integration.revision_window_hours * HOUR
    return max(integration.history_start, schedule_start)


def todo_windows(expected: list[Window], state: AssetState, open_known: bool) -> list[Window]:
    """Hours of one asset to import: not loaded, or loaded but failed since or incomplete."""
    stale = union(state.failed, state.open if open_known else [])
    return union(subtract(expected, state.loaded), intersect(stale, expected))


def retried_windows(expected: list[Window], state: AssetState, open_known: bool) -> list[Window]:
    """The hours to import that are not stopped."""
    return subtract(todo_windows(expected, state, open_known), [s.window for s in state.stopped])


def plan_gaps(
    integration: Integration, now: datetime, state: GapState, capacity: int | None = None
) -> GapPlan:
    """The range runs to request now, newest first: at most `capacity` (default: up to the
    integration's bound on runs in flight)."""
    end = horizon(integration, now)
    expected = normalize([(integration.history_start, end)])
    missing = {
        key: todo_windows(expected, asset, state.open_known) for key, asset in state.assets.items()
    }
    retried = {
        key: retried_windows(expected, asset, state.open_known)
        for key, asset in state.assets.items()
    }
    todo = {key: subtract(windows, state.busy) for key, windows in retried.items()}
    first_loaded = {key: (a.loaded[0][0] if a.loaded else end) for key, a in state.assets.items()}
    everything = union(*todo.values())
    if capacity is None:
        capacity = max(integration.max_runs_in_flight - state.runs_in_flight, 0)

    requests: list[GapRequest] = []
    for chunk in chunks(everything, integration.max_partitions_per_run):
        needs: dict[Window, list[str]] = {}
        for key, windows in todo.items():
            for piece in intersect(windows, [chunk]):
                needs.setdefault(piece, []).append(key)
        for window, keys in sorted(needs.items(), key=lambda item: item[0][1], reverse=True):
            history = all(window[1] <= first_loaded[k] for k in keys)
            trigger = HISTORY_TRIGGER if history else GAPS_TRIGGER
            requests.append(GapRequest(window, tuple(sorted(keys)), trigger))
    chosen = requests[:capacity]
    all_missing = union(*missing.values())
    todo_hours = hours_in(everything)
    return GapPlan(
        horizon=end,
        requests=chosen,
        expected_hours=hours_in(expected),
        missing_hours=hours_in(all_missing),
        busy_hours=hours_in(intersect(all_missing, state.busy)),
        todo_hours=todo_hours,
        waiting_hours=todo_hours - hours_in(union([r.window for r in chosen])),
        loaded_hours={k: hours_in(intersect(a.loaded, expected)) for k, a in state.assets.items()},
        stopped={k: a.stopped for k, a in state.assets.items() if a.stopped},
    )


# -- the cursor ---------------------------------------------------------------------------------
@dataclass
class GapCursor:
    """What the sensor remembers between ticks (JSON in the sensor's cursor)."""

    after: dict[str, int] = field(default_factory=dict)  # last materialization read, per asset
    open: dict[str, list[str]] = field(default_factory=dict)  # open partition keys, per asset
    requested: list[tuple[str, str, str]] = field(default_factory=list)  # start, end, when

    @classmethod
    def parse(cls, text: str | None) -> GapCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            after={k: int(v) for k, v in data.get("after", {}).items()},
            open={k: list(v) for k, v in data.get("open", {}).items()},
            requested=[tuple(r) for r in data.get("requested", [])],
        )

    def dump(self) -> str:
        return json.dumps(
            {"after": self.after, "open": self.open, "requested": self.requested},
            sort_keys=True,
        )

    def recent_requests(self, now: datetime) -> list[Window]:
        self.requested = [
            r for r in self.requested if datetime.fromisoformat(r[2]) > now - RETRY_AFTER
        ]
        return normalize(
            (datetime.fromisoformat(start), datetime.fromisoformat(end))
            for start, end, _ in self.requested
        )

    def remember(self, window: Window, now: datetime) -> None:
        self.requested.append((window[0].isoformat(), window[1].isoformat(), now.isoformat()))


# -- reading the instance -----------------------------------------------------------------------
def _subset_windows(subset) -> list[Window]:
    if subset is None:
        return []
    return normalize(
        (
            datetime.fromtimestamp(w.start_timestamp, UTC),
            datetime.fromtimestamp(w.end_timestamp, UTC),
        )
        for w in subset.included_time_windows
    )


def _is_open(record: dg.EventLogRecord) -> bool:
    """Whether this materialization ran before its partition's hour ended."""
    materialization = record.asset_materialization
    key = record.partition_key
    if materialization is None or key is None:
        return False
    metadata = materialization.metadata
    listed = metadata.get("open_partitions")
    if listed is not None:
        return key in (listed.value or [])
    imported_at = metadata.get("imported_at")
    if imported_at is not None:
        return imported_at.value < (hour_of(key) + HOUR).timestamp()
    return False


def read_open_partitions(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, cursor: GapCursor
) -> bool:
    """Fold the materializations since the cursor into its open-partition set; returns
    whether the cursor caught up with the event log (if not, the open set may be stale)."""
    name = asset_key.to_user_string()
    after = cursor.after.get(name, 0)
    open_keys = set(cursor.open.get(name, []))
    read = 0
    while read < EVENTS_PER_TICK:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, after_storage_id=after or None),
            limit=EVENT_PAGE,
            ascending=True,
        )
        for record in result.records:
            if record.partition_key is not None:
                if _is_open(record):
                    open_keys.add(record.partition_key)
                else:
                    open_keys.discard(record.partition_key)
            after = record.storage_id
        read += len(result.records)
        if not result.has_more:
            break
    cursor.after[name] = after
    cursor.open[name] = sorted(open_keys)
    return read < EVENTS_PER_TICK


def _run_window(tags: dict[str, str]) -> Window | None:
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return hour_of(tags[RANGE_START_TAG]), hour_of(tags[RANGE_END_TAG]) + HOUR
    if PARTITION_NAME_TAG in tags:
        start = hour_of(tags[PARTITION_NAME_TAG])
        return start, start + HOUR
    return None


def runs_in_flight(instance: dg.DagsterInstance, integration: Integration) -> list[Window | None]:
    """Windows of the integration's queued and running runs (None: a run without partitions)."""
    records = instance.get_run_records(
        filters=RunsFilter(tags={INTEGRATION_TAG: integration.id}, statuses=PENDING_RUN_STATUSES)
    )
    return [_run_window(record.dagster_run.tags) for record in records]


def active_backfills(instance: dg.DagsterInstance, asset_keys: Sequence[dg.AssetKey]) -> list[str]:
    """Ids of backfills in progress that target any of these assets (e.g. launched from the
    asset page); the sensor waits for them rather than guessing which hours they will run."""
    wanted = set(asset_keys)
    found = []
    for backfill in instance.get_backfills(
        filters=BulkActionsFilter(statuses=ACTIVE_BACKFILL_STATUSES)
    ):
        if backfill.asset_selection and wanted & set(backfill.asset_selection):
            found.append(backfill.backfill_id)
    return found


def read_state(
    instance: dg.DagsterInstance,
    integration: Integration,
    asset_keys: Sequence[dg.AssetKey],
    partitions_def: dg.PartitionsDefinition,
    cursor: GapCursor,
    now: datetime,
    warehouse: Warehouse | None = None,
) -> GapState:
    """Runs first, then partitions: a run that finishes in between was still in flight when
    read (its hours are busy), and one finished before wrote its events before finishing, so
    the partition status sees them. Either way its hours are not requested again.

    Which failed hours are stopped comes from the warehouse's import log, read for the
    failed hours only (none, usually)."""
    flights = runs_in_flight(instance, integration)
    busy: list[Window] = cursor.recent_requests(now)
    if any(window is None for window in flights):
        busy.append((integration.history_start, floor_hour(now) + HOUR))
    busy += [window for window in flights if window is not None]
    assets: dict[str, AssetState] = {}
    caught_up = True
    for key in asset_keys:
        status = get_and_update_asset_status_cache_value(instance, key, partitions_def)
        caught_up &= read_open_partitions(instance, key, cursor)
        name = key.to_user_string()
        if status is None:
            assets[name] = AssetState()
            continue
        failed = _subset_windows(status.deserialize_failed_partition_subsets(partitions_def))
        assets[name] = AssetState(
            loaded=_subset_windows(
                status.deserialize_materialized_partition_subsets(partitions_def)
            ),
            failed=failed,
            open=of_hours(hour_of(k) for k in cursor.open.get(name, [])),
            stopped=stopped_hours(warehouse, integration, key.path[-1], failed)
            if warehouse is not None and failed
            else [],
        )
        busy += _subset_windows(status.deserialize_in_progress_partition_subsets(partitions_def))
    return GapState(
        assets=assets, busy=union(busy), runs_in_flight=len(flights), open_known=caught_up
    )


def _location_of(state) -> tuple[str | None, str | None]:
    origin = state.origin.repository_origin
    return origin.repository_name, origin.code_location_origin.location_name


def schedule_paused(
    instance: dg.DagsterInstance,
    integration: Integration,
    repository_name: str | None = None,
    location_name: str | None = None,
) -> bool:
    """Paused = the schedule's state in the instance is stopped (the UI's toggle), or, when
    nobody has toggled it, its default, which `status: paused` in the config makes stopped."""
    if integration.paused:
        return True
    name = schedule_name(integration)
    states = [
        state
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        if state.origin.instigator_name == name
        and repository_name in (None, _location_of(state)[0])
        and location_name in (None, _location_of(state)[1])
    ]
    explicit = [s for s in states if s.status != InstigatorStatus.DECLARED_IN_CODE]
    if not explicit:
        return False
    return all(s.status == InstigatorStatus.STOPPED for s in explicit)


# -- the sensor ---------------------------------------------------------------------------------
def run_request(integration: Integration, request: GapRequest, all_assets: int, backlog: int, now):
    start, end = request.window
    keys = [dg.AssetKey.from_user_string(k) for k in request.assets]
    return dg.RunRequest(
        run_key=f"{integration.id}:{request.trigger}:{key_of(start)}..{key_of(end - HOUR)}"
        f"@{now:%Y-%m-%dT%H:%M:%S}",
        asset_selection=None if len(keys) == all_assets else keys,
        tags=range_tags(
            start,
            end,
            **{
                INTEGRATION_TAG: integration.id,
                TRIGGER_TAG: request.trigger,
                HOURS_TAG: str(request.hours),
                BACKLOG_TAG: str(backlog),
            },
        ),
    )


def progress_events(
    integration: Integration, plan: GapPlan, requested: list[GapRequest]
) -> list[dg.AssetObservation]:
    """One observation per asset: how far its history and gap filling have come. Shown on the
    asset page (events and plots), so a three-year import's progress is visible."""
    events = []
    for key, loaded in plan.loaded_hours.items():
        share = loaded / plan.expected_hours if plan.expected_hours else 1.0
        events.append(
            dg.AssetObservation(
                asset_key=dg.AssetKey.from_user_string(key),
                description=f"gap sensor: {loaded} of {plan.expected_hours} hours before "
                f"{plan.horizon:%Y-%m-%d %H:%M} UTC loaded ({share:.1%})",
                metadata={
                    "hours_expected": plan.expected_hours,
                    "hours_loaded": loaded,
                    "loaded_share": round(share, 4),
                    "hours_missing": plan.missing_hours,
                    "hours_in_flight": plan.busy_hours,
                    "hours_waiting": plan.waiting_hours,
                    "requested": dg.MetadataValue.json(
                        [
                            f"{r.window[0]:%Y-%m-%d %H:%M}..{r.window[1]:%Y-%m-%d %H:%M} "
                            f"({r.trigger})"
                            for r in requested
                            if key in r.assets
                        ]
                    ),
                    "horizon": dg.MetadataValue.timestamp(plan.horizon),
                },
            )
        )
    return events


def _skip_reason(integration: Integration, plan: GapPlan, state: GapState) -> str:
    before = f"before {plan.horizon:%Y-%m-%d %H:%M} UTC"
    if not plan.missing_hours:
        return f"no gaps {before}"
    parts = [f"{plan.missing_hours} hours to import {before}"]
    if plan.busy_hours:
        parts.append(
            f"{plan.busy_hours} of them queued, running, or failed less than "
            f"{int(RETRY_AFTER.total_seconds() // 60)} minutes ago (retried then)"
        )
    if plan.todo_hours:
        parts.append(
            f"{state.runs_in_flight} runs in flight (max {integration.max_runs_in_flight})"
        )
    if plan.stopped:
        parts.append(plan.describe_stopped())
    return "; ".join(parts)


def evaluate_gaps(
    context: dg.SensorEvaluationContext,
    integration: Integration,
    asset_keys: Sequence[dg.AssetKey],
    partitions_def: dg.PartitionsDefinition,
    now: datetime,
    warehouse: Warehouse | None = None,
) -> dg.SensorResult:
    """One tick of the gap sensor at time `now` (the sensor passes its clock)."""
    cursor = GapCursor.parse(context.cursor)
    location = context.code_location_origin.location_name if context.code_location_origin else None
    if schedule_paused(context.instance, integration, context.repository_name, location):
        return dg.SensorResult(
            skip_reason=f"{integration.id} is paused: its schedule is stopped or the config says "
            "status: paused. Missed hours are imported when it runs again.",
            cursor=cursor.dump(),
        )
    backfills = active_backfills(context.instance, asset_keys)
    if backfills:
        return dg.SensorResult(
            skip_reason=f"backfill {', '.join(backfills)} of {integration.id} is in progress; "
            "gap filling resumes when it ends",
            cursor=cursor.dump(),
        )
    state = read_state(
        context.instance, integration, asset_keys, partitions_def, cursor, now, warehouse
    )
    plan = plan_gaps(integration, now, state)
    requests = []
    for request in plan.requests:
        requests.append(run_request(integration, request, len(asset_keys), plan.missing_hours, now))
        cursor.remember(request.window, now)
    if not requests:
        reason = _skip_reason(integration, plan, state)
        return dg.SensorResult(skip_reason=reason, cursor=cursor.dump())
    if plan.stopped:
        context.log.warning(f"{integration.id}: {plan.describe_stopped()}")
    context.log.info(
        f"{integration.id}: requesting {len(requests)} range run(s) for "
        f"{sum(r.hours for r in plan.requests)} of {plan.missing_hours} hours missing"
    )
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor.dump(),
        asset_events=progress_events(integration, plan, plan.requests),
    )


def build_gap_sensor(
    integration: Integration,
    job: dg.JobDefinition | str,
    asset_keys: Sequence[dg.AssetKey],
    partitions_def: dg.PartitionsDefinition,
    minimum_interval_seconds: int = 60,
) -> dg.SensorDefinition:
    """The gap sensor of one integration, over its fact assets."""

    @dg.sensor(
        name=sensor_name(integration),
        job_name=job if isinstance(job, str) else job.name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Imports every hour of {integration.id} that is missing, failed or was "
        f"imported before it ended, from {integration.history_start:%Y-%m-%d %H:%M} UTC up to "
        f"the revision window ({integration.revision_window_hours} h, which the schedule "
        f"re-imports): range runs of up to {integration.max_partitions_per_run} hours cut at "
        f"month boundaries, newest first, at most {integration.max_runs_in_flight} runs in "
        f"flight. Stops retrying an hour that failed {MAX_IDENTICAL_FAILURES} times the same way "
        "and names it in its status. Does nothing while the integration is paused.",
    )
    def _sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
        return evaluate_gaps(
            context, integration, asset_keys, partitions_def, clock.now(), warehouse
        )

    return _sensor
