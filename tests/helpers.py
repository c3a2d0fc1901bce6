"""Helpers for tests: build definitions for given integrations and run range imports."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from etl.cli import run_import
from etl.config import Integration, Settings
from etl.definitions import build_definitions


def definitions(settings: Settings, *integrations: Integration, **resources) -> dg.Definitions:
    """Definitions for these integrations; extra resources replace the built ones (fakes)."""
    return build_definitions(settings, list(integrations), resources)


def import_range(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    integration_id: str,
    start: datetime,
    end: datetime,
) -> dg.ExecuteInProcessResult:
    """A range run of the integration's job over [start, end), as the schedule would launch."""
    return run_import(defs, instance, integration_id, start, end, trigger="test")
