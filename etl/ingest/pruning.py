"""Pruning the landing store: records go once the hour they belong to was imported after
they landed and is older than the integration's landing retention.

An hour is pruned only when the import log (`imports`) shows a complete import of it that
started after the last record (or refused record) of that hour landed, with a margin for
commits in flight. Pruned hours are remembered: re-importing one is refused by the `api`
source (it would read only what landed since), and the door refuses records that only
touch pruned hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from etl.config import Integration
from etl.ingest.store import HOUR_US, LandingStore, to_us
from etl.resources.sources.universal.api import DEFAULT_RETENTION_HOURS
from etl.resources.warehouse import Warehouse

MARGIN = timedelta(minutes=1)
IMPORTS_SQL = (
    "SELECT partition_start, imported_at, complete FROM imports "
    "WHERE integration_id = ? AND data_kind = ? AND partition_start < ? AND partition_start >= ?"
)


def retention_hours(integration: Integration) -> int:
    return int(integration.source.get("retention_hours", DEFAULT_RETENTION_HOURS))


def prune(
    store: LandingStore,
    warehouse: Warehouse,
    integrations: Mapping[str, Integration],
    now: datetime | None = None,
) -> dict[tuple[str, str], int]:
    """Prune what every configured integration's imports have read; returns the records
    deleted per (integration, kind). Integrations not in the config keep their records."""
    now = now or datetime.now(UTC)
    deleted: dict[tuple[str, str], int] = {}
    oldest = to_us(now)
    for integration in integrations.values():
        horizon = now - timedelta(hours=retention_hours(integration))
        oldest = min(oldest, to_us(horizon))
        for kind in integration.data:
            landed = store.last_landings(integration.id, kind, 0, to_us(horizon))
            if not landed:
                continue
            start = datetime.fromtimestamp(min(landed) / 10**6, UTC)
            imports = warehouse.query(IMPORTS_SQL, [integration.id, kind, horizon, start])
            imported = {
                to_us(row.partition_start.to_pydatetime()): to_us(row.imported_at.to_pydatetime())
                for row in imports.itertuples()
                if row.complete
            }
            margin = int(MARGIN.total_seconds() * 10**6)
            hours = [
                hour
                for hour, last in landed.items()
                if hour + HOUR_US <= to_us(horizon) and imported.get(hour, 0) > last + margin
            ]
            if hours:
                deleted[integration.id, kind] = store.prune_hours(integration.id, kind, hours)
    store.prune_batches(oldest)
    return deleted
