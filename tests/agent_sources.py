"""Agent-status sources for tests: a scripted one and the simulator on a fixed clock, plus
helpers to write mapping files and rebuild the mapping assets."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pandas as pd

from etl.config import Integration, Settings
from etl.definitions import MAPPINGS_JOB
from etl.resources.sources.base import Extract, SourceResource
from etl.resources.sources.simulator.simulator import SimulatorSettings, SimulatorSource

COLUMNS = ["user_identifier", "external_activity", "start_utc", "end_utc"]


class ScriptedAgentStatus(SourceResource):
    """Delivers exactly the segments it is given: [user, activity, start, end ('' = open)].

    Like a real source it returns the segments overlapping the window, unless
    `only_overlapping` is off (to see the validation reject the others)."""

    segments: list[list[str]] = []
    only_overlapping: bool = True

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        frame = pd.DataFrame(self.segments, columns=COLUMNS)
        frame["source_ref"] = [f"script line {i + 1}" for i in range(len(frame))]
        begins = pd.to_datetime(frame["start_utc"], utc=True)
        ends = pd.to_datetime(frame["end_utc"].replace("", None), utc=True)
        frame["start_utc"], frame["end_utc"] = begins, ends
        if self.only_overlapping:
            frame = frame[(begins < end) & (ends.isna() | (ends > start))]
        return Extract(frame.reset_index(drop=True), description="scripted agent status")


def scripted(integration: Integration, segments: list[list[str]], **fields) -> dict:
    """Resource overrides for `definitions(...)`: this integration's source, scripted."""
    source = ScriptedAgentStatus(
        integration_id=integration.id,
        timezone=integration.timezone,
        interval_minutes=integration.interval_minutes,
        segments=segments,
        **fields,
    )
    return {f"source_{integration.id}": source}


class SimulatorAt(SimulatorSource):
    """The simulator with its clock fixed, so open states are reproducible."""

    clock: str

    def now(self) -> datetime:
        return datetime.fromisoformat(self.clock)


def simulator_at(integration: Integration, clock: datetime) -> SimulatorAt:
    return SimulatorAt(
        integration_id=integration.id,
        timezone=integration.timezone,
        interval_minutes=integration.interval_minutes,
        settings=SimulatorSettings.model_validate(integration.source),
        clock=clock.isoformat(),
    )


def write_mappings(settings: Settings, **files: str) -> None:
    """Write mapping CSV files (name -> text) into the mappings folder."""
    for name, text in files.items():
        (settings.mappings_dir / f"{name}.csv").write_text(text, encoding="utf-8")


def rebuild_mappings(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    result = defs.resolve_job_def(MAPPINGS_JOB).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert result.success, [
        e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
