"""Rebuild the mapping assets when a file under `mappings/` changes.

A remap is a file edit; this sensor turns it into new mapping Parquet files within a
minute, and the views show the new mapping at once. Only the assets that read a changed
file are rebuilt (a queue mapping edit is one step, not one per mapping file); the first
tick, with nothing known yet, rebuilds them all.
"""

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import dagster as dg


def mapping_fingerprint(directory: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.glob("*.csv"))
    }


def changed_files(current: Mapping[str, str], previous: Mapping[str, str]) -> list[str]:
    """Files added, edited or removed since the last tick."""
    return sorted(k for k in {*current, *previous} if current.get(k) != previous.get(k))


def assets_to_rebuild(
    changed: list[str], files_read: Mapping[dg.AssetKey, frozenset[str]]
) -> list[dg.AssetKey]:
    return [key for key, files in files_read.items() if files.intersection(changed)]


def build_mapping_sensor(
    directory: Path,
    job: dg.JobDefinition | str,
    files_read: Mapping[dg.AssetKey, frozenset[str]],
):
    """`files_read`: each mapping asset and the file names it reads (its own and those its
    checks look up)."""

    @dg.sensor(
        name="mapping_files_sensor",
        job_name=job if isinstance(job, str) else job.name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Rebuilds the mapping assets when a CSV file in {directory} changes.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        current = mapping_fingerprint(directory)
        previous = json.loads(context.cursor) if context.cursor else None
        if current == previous:
            return dg.SkipReason("mapping files unchanged")
        context.update_cursor(json.dumps(current))
        changed = changed_files(current, previous or {})
        selection = None  # nothing known yet: every mapping asset
        if previous is not None:
            selection = assets_to_rebuild(changed, files_read)
            if not selection:
                return dg.SkipReason(
                    f"{', '.join(changed)} changed; no mapping asset reads "
                    f"{'it' if len(changed) == 1 else 'them'}"
                )
        return dg.RunRequest(
            run_key=hashlib.sha256(json.dumps(current).encode()).hexdigest(),
            asset_selection=selection,
            tags={"wfm/changed_files": ",".join(changed)[:200]},
        )

    return _sensor
