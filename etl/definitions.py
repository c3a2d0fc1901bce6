"""The one entry point: builds every asset, job, schedule and resource from the config.

Nothing is read at import time; Dagster calls `defs()` when it loads the code location.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from etl.assets.agent_mappings import AGENT_MAPPING_ASSETS
from etl.assets.agent_status import AGENT_STATUS_KIND
from etl.assets.contacts import CONTACTS_KIND
from etl.assets.facts import FactKind, asset_key, build_fact_asset, source_key
from etl.assets.mappings import MAPPING_ASSETS, MappingFiles, files_read
from etl.config import Integration, Settings, load_integrations
from etl.identifiers import identifier_kind
from etl.partitions import hourly_partitions
from etl.resources.sources import SourceResource, build_source
from etl.resources.warehouse import Warehouse
from etl.schedules.compaction import compaction_job, compaction_schedule
from etl.schedules.freshness import build_freshness_checks, build_freshness_sensor
from etl.schedules.gaps import build_gap_sensor
from etl.schedules.mapping_sensor import build_mapping_sensor
from etl.schedules.ticks import build_schedule

FACT_KINDS: dict[str, FactKind] = {
    CONTACTS_KIND.name: CONTACTS_KIND,
    AGENT_STATUS_KIND.name: AGENT_STATUS_KIND,
}
MAPPINGS_JOB = "mappings_job"


def import_job_name(integration: Integration) -> str:
    return f"{integration.id}_import"


def integration_definitions(
    integration: Integration, source: SourceResource | None = None
) -> dg.Definitions:
    """Assets (with their checks), job, schedule, gap sensor and source of one integration."""
    kinds = [FACT_KINDS[name] for name in integration.data if name in FACT_KINDS]
    assets = [build_fact_asset(integration, kind) for kind in kinds]
    by_kind = {k.name: asset_key(integration, k) for k in kinds}
    # Real-time data: a freshness check per kind, evaluated by a sensor (not by imports).
    checks = build_freshness_checks(integration, by_kind)
    selection = dg.AssetSelection.assets(*by_kind.values())
    if checks:
        selection = selection - dg.AssetSelection.checks(*checks)
    job = dg.define_asset_job(
        import_job_name(integration),
        selection=selection,
        partitions_def=hourly_partitions(integration),
        description=f"Import {integration.id}: select a partition range to re-import it "
        "(one run per chunk of the backfill policy).",
        tags={"wfm/integration": integration.id},
        executor_def=dg.in_process_executor,
    )
    keys = [asset_key(integration, k) for k in kinds]
    sensors = [build_gap_sensor(integration, job, keys, hourly_partitions(integration))]
    if checks:
        sensors.append(build_freshness_sensor(integration, by_kind))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[job],
        schedules=[build_schedule(integration, job)],
        sensors=sensors,
        resources={source_key(integration): source or build_source(integration)},
    )


def build_definitions(
    settings: Settings,
    integrations: list[Integration] | None = None,
    resources: Mapping[str, dg.ConfigurableResource] | None = None,
) -> dg.Definitions:
    """Everything, from `settings` (and the integrations, loaded from its file by default).

    `resources` replaces built resources by key, e.g. a source with a fake for a test.
    """
    if integrations is None:
        integrations = load_integrations(settings.integrations_path)
    mapping_assets = [*MAPPING_ASSETS, *AGENT_MAPPING_ASSETS]
    mappings_job = dg.define_asset_job(
        MAPPINGS_JOB, selection=dg.AssetSelection.assets(*mapping_assets)
    )
    resources = dict(resources or {})
    shared = dg.Definitions(
        assets=mapping_assets,
        # One process per run, not per step: an import's steps are small and share files, and
        # each extra process would pay Python's and Dagster's start-up again.
        executor=dg.in_process_executor,
        jobs=[mappings_job, compaction_job],
        schedules=[compaction_schedule],
        sensors=[
            build_mapping_sensor(settings.mappings_dir, mappings_job, files_read(mapping_assets))
        ],
        resources={
            "warehouse": resources.pop("warehouse", Warehouse(root=str(settings.warehouse_dir))),
            "mapping_files": resources.pop(
                "mapping_files",
                MappingFiles(
                    directory=str(settings.mappings_dir),
                    vendors={i.id: i.vendor for i in integrations},
                    identifier_kinds={i.id: identifier_kind(i) for i in integrations},
                ),
            ),
        },
    )
    pieces = [
        integration_definitions(i, resources.get(source_key(i)))
        for i in run_scope(integrations, settings.run_job)
    ]
    return dg.Definitions.merge(shared, *pieces)


def run_scope(integrations: list[Integration], run_job: str | None) -> list[Integration]:
    """The integrations a process needs: in a run process of an import job, only that job's
    integration (its definitions are self-contained); everywhere else, all of them."""
    own = [i for i in integrations if import_job_name(i) == run_job]
    return own or integrations


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
