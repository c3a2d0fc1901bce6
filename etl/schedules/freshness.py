"""Freshness of real-time integrations: seconds since their last landed record, in the UI.

One sensor per push integration (`<id>_freshness_sensor`, every 30 s) records an
observation on each of its fact assets with `seconds_since_last_record` and
`last_record_at` (the asset page plots it), and says in its tick log whether the
integration is fresh; past `source.freshness_warn_seconds` (default 300) it logs a warning
and the observation carries `stale: true`.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from etl import clock
from etl.config import Integration
from etl.ingest.store import LandingStore, from_us, landing_url

DEFAULT_WARN_SECONDS = 300


def sensor_name(integration: Integration) -> str:
    return f"{integration.id}_freshness_sensor"


def warn_seconds(integration: Integration) -> int:
    return int(integration.source.get("freshness_warn_seconds", DEFAULT_WARN_SECONDS))


def build_freshness_sensor(
    integration: Integration, keys: Sequence[dg.AssetKey], url: str | None = None
) -> dg.SensorDefinition:
    threshold = warn_seconds(integration)

    @dg.sensor(
        name=sensor_name(integration),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Seconds since {integration.id} last landed a record (observations on "
        f"its assets); warns past {threshold} s.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        store = LandingStore(url or landing_url())
        try:
            heads = store.heads()
        finally:
            store.dispose()
        now = clock.now()
        events = []
        lines = []
        for key, kind in zip(keys, integration.data, strict=True):
            head = heads.get((integration.id, kind))
            if head is None:
                lines.append(f"{kind}: no record landed yet")
                continue
            last = from_us(head[1])
            seconds = max(0.0, (now - last).total_seconds())
            stale = seconds > threshold
            events.append(
                dg.AssetObservation(
                    asset_key=key,
                    metadata={
                        "seconds_since_last_record": round(seconds, 1),
                        "last_record_at": dg.MetadataValue.timestamp(last),
                        "freshness_warn_seconds": threshold,
                        "stale": stale,
                    },
                )
            )
            line = f"{kind}: last record {seconds:.0f} s ago"
            if stale:
                line += f", more than {threshold} s: STALE"
                context.log.warning(f"{integration.id} {line}")
            lines.append(line)
        return dg.SensorResult(asset_events=events, skip_reason="; ".join(lines) or None)

    return _sensor
