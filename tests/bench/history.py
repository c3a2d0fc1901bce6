"""The project's own import of the benchmark's CSV history, without Dagster: what the
benchmark's files and its what-if are checked against."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bench.workloads import Workload, history_integration
from etl.config import Integration
from etl.resources.sources.base import Extract
from etl.resources.sources.csv_files import CsvSource
from etl.schemas import CONTACTS, contact_schema
from etl.validation import Validated, validate


def import_window(
    workload: Workload, folder: Path, state: Path, start: datetime, end: datetime
) -> tuple[Extract, Validated]:
    """The benchmark's CSV integration reads [start, end) from `folder` and validates it."""
    fields = history_integration("csv", workload, folder)
    fields["source"]["state_dir"] = str(state)
    integration = Integration.model_validate(fields)
    extract = CsvSource.from_integration(integration).contacts(start, end)
    checked = validate(
        extract.frame,
        spec=CONTACTS,
        schema=contact_schema(integration.interval_minutes, integration.timezone),
        integration_id=integration.id,
        start=start,
        end=end,
        run_id="test",
    )
    return extract, checked
