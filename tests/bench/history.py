"""The project's own import of the benchmark's CSV history, without Dagster: what the
benchmark's files and its what-if are checked against."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bench.workloads import Workload, history_integration
from etl.assets.contacts import CONTACTS_KIND
from etl.config import Integration
from etl.resources.sources.base import Extract
from etl.resources.sources.csv_files import CsvSource
from etl.validation import Validated, validate


def import_window(
    workload: Workload, folder: Path, state: Path, start: datetime, end: datetime
) -> tuple[Extract, Validated]:
    """The benchmark's CSV integration reads [start, end) from `folder`, validated as the
    contacts asset validates it."""
    fields = history_integration("csv", workload, folder)
    fields["source"]["state_dir"] = str(state)
    integration = Integration.model_validate(fields)
    kind = CONTACTS_KIND
    extract = kind.extract(CsvSource.from_integration(integration), start, end)
    checked = validate(
        extract.frame,
        spec=kind.spec,
        schema=kind.schema(integration),
        integration_id=integration.id,
        start=start,
        end=end,
        run_id="test",
        extra_checks=kind.extra_checks,
    )
    return extract, checked
