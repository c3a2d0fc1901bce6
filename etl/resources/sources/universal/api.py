"""`vendor: api`: records pushed to the ingestion service (`wfm-etl serve`), read back from the
landing store for one window, so push integrations go through the same fact assets,
schedules, gap sensor, validation and warehouse writes as every other kind.

The landing store keeps the latest version of each record (a re-sent interval or segment
replaces the earlier one), so a window reads every key once. Records refused at the door come
back as `Extract.rejected` of the hour they belong to, so they reach `rejected_rows` with
that hour's other rejected rows. Hours whose landed records were pruned after their import are
reported as `Extract.failed`: re-importing them would read only what landed since, so they
keep what the warehouse has.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

import dagster as dg
import pandas as pd
from pydantic import Field

from etl.config import Integration
from etl.ingest.store import HOUR_US, LANDING_URL_ENV, LandingStore, from_us, landing_url, to_us
from etl.resources.sources.base import Extract, SourceResource, SourceSettings, WindowFailure
from etl.schemas import AGENT_STATUS, CONTACTS

DEFAULT_RETENTION_HOURS = 7 * 24
PRUNED_REASON = (
    "the records landed for this hour were pruned from the landing store after the hour was "
    "imported (landing retention {hours} h); the warehouse keeps what that import wrote"
)


def landed_url() -> str:
    """The landing store's URL as a source's field: `dg.EnvVar(WFM_LANDING_URL)` for
    PostgreSQL (the URL may hold a password, read when a run starts), else the SQLite path."""
    url = landing_url()
    return dg.EnvVar(LANDING_URL_ENV) if url.startswith("postgresql") else url


class ApiSettings(SourceSettings):
    """`source:` settings of `vendor: api` (all optional)."""

    retention_hours: int = Field(
        default=DEFAULT_RETENTION_HOURS,
        ge=24,
        le=24 * 400,
        description="Landed records are pruned once their hour was imported and is this old "
        "(it must exceed the revision window: a tick re-imports those hours).",
    )
    freshness_warn_seconds: int = Field(
        default=300,
        ge=1,
        description="The freshness check warns when no record landed for this long.",
    )


class LandedSource(SourceResource):
    """A kind whose records are in the landing store (pushed, or landed by a listener)."""

    landing_url: str  # a dg.EnvVar when WFM_LANDING_URL is set (it may hold a password)

    @classmethod
    def environment_fields(cls) -> dict[str, Any]:
        return {"landing_url": landed_url()}


class ApiSource(LandedSource):
    """Reads one window of an integration's landed records."""

    timing: ClassVar[tuple[str, ...]] = ("real-time",)

    @classmethod
    def real_time_data(cls, integration: Integration) -> tuple[str, ...]:
        return tuple(integration.data)  # every kind is pushed

    settings_model = ApiSettings
    settings: ApiSettings

    def _store(self) -> LandingStore:
        return LandingStore(self.landing_url)

    def contacts(self, start: datetime, end: datetime) -> Extract:
        store = self._store()
        try:
            rows = store.contact_records(self.integration_id, to_us(start), to_us(end))
            frame = pd.DataFrame.from_records([json.loads(r) for r in rows]) if rows else None
            return self._extract(store, "contacts", frame, len(rows), start, end)
        finally:
            store.dispose()

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        store = self._store()
        try:
            rows = store.segment_records(self.integration_id, to_us(start), to_us(end))
            records = [json.loads(r) for r, _ in rows]
            frame = pd.DataFrame.from_records(records) if records else None
            return self._extract(store, "agent_status", frame, len(rows), start, end)
        finally:
            store.dispose()

    def _extract(
        self,
        store: LandingStore,
        kind: str,
        frame: pd.DataFrame | None,
        count: int,
        start: datetime,
        end: datetime,
    ) -> Extract:
        if frame is None:
            spec = CONTACTS if kind == "contacts" else AGENT_STATUS
            columns = [c for c in spec.columns if c != "integration_id"]
            frame = pd.DataFrame(columns=columns)
        refused = store.rejected_records(self.integration_id, kind, to_us(start), to_us(end))
        rejected = pd.DataFrame(
            {
                "source_ref": [ref for _, ref, _, _ in refused],
                "row_json": [row for _, _, row, _ in refused],
                "rules": [json.loads(rules) for _, _, _, rules in refused],
                "partition_time": pd.to_datetime([p for p, *_ in refused], unit="us", utc=True),
            }
        )
        pruned = store.pruned_hours(self.integration_id, kind, to_us(start), to_us(end))
        failed = [
            WindowFailure(
                from_us(hour),
                from_us(hour + HOUR_US),
                PRUNED_REASON.format(hours=self.settings.retention_hours),
            )
            for hour in sorted(pruned)
        ]
        return Extract(
            frame=frame,
            rejected=rejected,
            description=f"landing store {store.where}: {count} landed {kind} records, "
            f"{len(refused)} refused at the door",
            failed=failed,
        )
