"""Freshness of real-time integrations: seconds since their last landed record, in the UI.

Every integration whose data arrives in real time (pushed to `wfm-etl serve`, or landed by a
listener: `SourceResource.real_time_data`) gets, per such data kind, an asset check
`freshness` on its fact asset and one sensor (`<id>_freshness_sensor`, every 30 s). The
sensor evaluates the checks: each evaluation shows on the asset's Checks tab with
`seconds_since_last_record` and `last_record_at`, passing while records keep coming and
failing with severity WARN past `source.freshness_warn_seconds` (default 300), or while no
record ever landed. It also records an observation with the same numbers, which the asset
page plots. The check can be run by hand from the UI too (it only reads the landing store).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import dagster as dg

from etl import clock
from etl.config import Integration
from etl.ingest.store import LandingStore, from_us, landing_url

DEFAULT_WARN_SECONDS = 300
CHECK_NAME = "freshness"


def sensor_name(integration: Integration) -> str:
    return f"{integration.id}_freshness_sensor"


def warn_seconds(integration: Integration) -> int:
    return int(integration.source.get("freshness_warn_seconds", DEFAULT_WARN_SECONDS))


def real_time_kinds(integration: Integration) -> tuple[str, ...]:
    """The integration's data kinds that arrive in real time (their freshness is checked)."""
    from etl.resources.sources import VENDORS

    source = VENDORS.get(integration.vendor)
    return source.real_time_data(integration) if source is not None else ()


def _heads(url: str | None) -> dict[tuple[str, str], tuple[int, int]]:
    store = LandingStore(url or landing_url())
    try:
        return store.heads()
    finally:
        store.dispose()


def evaluation(
    integration: Integration,
    kind: str,
    key: dg.AssetKey,
    heads: Mapping[tuple[str, str], tuple[int, int]],
    now: datetime,
) -> dg.AssetCheckEvaluation:
    """The freshness of one data kind at `now`: passed while fresh, WARN when stale."""
    threshold = warn_seconds(integration)
    head = heads.get((integration.id, kind))
    if head is None:
        return dg.AssetCheckEvaluation(
            asset_key=key,
            check_name=CHECK_NAME,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"no {kind} record landed yet",
            metadata={"freshness_warn_seconds": threshold},
        )
    last = from_us(head[1])
    seconds = round(max(0.0, (now - last).total_seconds()), 1)
    stale = seconds > threshold
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=CHECK_NAME,
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"last {kind} record {seconds:.0f} s ago"
            + (f", more than {threshold} s: stale" if stale else "")
        ),
        metadata={
            "seconds_since_last_record": seconds,
            "last_record_at": dg.MetadataValue.timestamp(last),
            "freshness_warn_seconds": threshold,
            "stale": stale,
        },
    )


def build_freshness_checks(
    integration: Integration, keys: Mapping[str, dg.AssetKey], url: str | None = None
) -> list[dg.AssetChecksDefinition]:
    """One `freshness` check per real-time data kind (`keys`: kind -> fact asset key)."""
    return [_check(integration, kind, keys[kind], url) for kind in real_time_kinds(integration)]


def _check(
    integration: Integration, kind: str, key: dg.AssetKey, url: str | None
) -> dg.AssetChecksDefinition:
    threshold = warn_seconds(integration)

    @dg.asset_check(
        asset=key,
        name=CHECK_NAME,
        blocking=False,
        description=f"Seconds since {integration.id} last landed a {kind} record; warns past "
        f"{threshold} s (source.freshness_warn_seconds). Evaluated every 30 s by "
        f"{sensor_name(integration)}.",
    )
    def _freshness() -> dg.AssetCheckResult:
        found = evaluation(integration, kind, key, _heads(url), clock.now())
        return dg.AssetCheckResult(
            passed=found.passed,
            severity=found.severity,
            description=found.description,
            metadata=found.metadata,
        )

    return _freshness


def build_freshness_sensor(
    integration: Integration, keys: Mapping[str, dg.AssetKey], url: str | None = None
) -> dg.SensorDefinition:
    """The sensor evaluating the integration's freshness checks every 30 s."""
    threshold = warn_seconds(integration)
    kinds = real_time_kinds(integration)

    @dg.sensor(
        name=sensor_name(integration),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Evaluates the freshness checks of {integration.id} (seconds since its "
        f"last landed record); they warn past {threshold} s.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        heads = _heads(url)
        now = clock.now()
        events: list[dg.AssetCheckEvaluation | dg.AssetObservation] = []
        lines = []
        for kind in kinds:
            found = evaluation(integration, kind, keys[kind], heads, now)
            events.append(found)
            if "seconds_since_last_record" in found.metadata:
                plotted = ("seconds_since_last_record", "last_record_at", "stale")
                events.append(
                    dg.AssetObservation(
                        asset_key=keys[kind],
                        metadata={name: found.metadata[name] for name in plotted},
                    )
                )
            lines.append(f"{kind}: {found.description}")
            if not found.passed:
                context.log.warning(f"{integration.id} {kind}: {found.description}")
        return dg.SensorResult(asset_events=events, skip_reason="; ".join(lines) or None)

    return _sensor
