"""The warehouse-files check: only files the warehouse wrote count, and foreign ones are named.

The views list the warehouse's own files by name, so a file someone else put among them (an
analyst's `COPY ... TO` into a table's folder, a stray copy) is never read. It is not removed
either: it may be someone's work. This check, evaluated with every import, names such files in
the integration's folders, so a data engineer can move them away.
"""

import dagster as dg

from etl.config import Integration
from etl.resources.warehouse import Warehouse

CHECK_NAME = "warehouse_files"
NAMED_FILES = 20


def warehouse_files_check_spec(integration: Integration, key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=key,
        description=f"No file the warehouse did not write lies in {integration.id}'s folders "
        "of the warehouse. Such files are never read by the views (they list the warehouse's "
        "own files by name) and never removed; the check names them (a warning).",
    )


def check_warehouse_files(warehouse: Warehouse, integration: Integration) -> dg.AssetCheckResult:
    foreign = warehouse.foreign_files(integration.id)
    named = [str(p.relative_to(warehouse.path)) for p in foreign[:NAMED_FILES]]
    metadata = {"foreign_files": len(foreign), "named": dg.MetadataValue.json(named)}
    if not foreign:
        return dg.AssetCheckResult(
            check_name=CHECK_NAME,
            passed=True,
            description=f"{integration.id}: only the warehouse's own files",
            metadata=metadata,
        )
    more = f" and {len(foreign) - len(named)} more" if len(foreign) > len(named) else ""
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{integration.id}: {len(foreign)} file(s) the warehouse did not write, "
        f"ignored by every view: {', '.join(named)}{more} (under {warehouse.path}); move them "
        "out of the warehouse",
        metadata=metadata,
    )
