"""The project's own import of the benchmark's CSV history, without Dagster: what the
benchmark's files and its what-if are checked against."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bench.workloads import Workload, history_integration
from etl.assets.contacts import CONTACTS_KIND
from etl.assets.facts import validate_extract
from etl.config import Integration
from etl.resources.sources.base import Extract
from etl.resources.sources.universal.csv_files import CsvSource
from etl.validation import Validated


def import_window(
    workload: Workload, folder: Path, state: Path, start: datetime, end: datetime
) -> tuple[Extract, Validated]:
    """The benchmark's CSV integration reads [start, end) from `folder`, validated as the
    contacts asset validates it."""
    fields = history_integration("csv", workload, folder)
    fields["source"]["state_dir"] = str(state)
    integration = Integration.model_validate(fields)
    extract = CONTACTS_KIND.extract(CsvSource.from_integration(integration), start, end)
    return extract, validate_extract(extract, integration, CONTACTS_KIND, start, end, "test")
