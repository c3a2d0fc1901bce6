"""Rebuild the mapping assets when a file under `mappings/` changes.

A remap is a file edit; this sensor turns it into new mapping Parquet files within a
minute, and the views show the new mapping at once.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg


def mapping_fingerprint(directory: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.glob("*.csv"))
    }


def build_mapping_sensor(directory: Path, job: dg.JobDefinition | str):
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
        changed = sorted(k for k in current if (previous or {}).get(k) != current[k])
        return dg.RunRequest(
            run_key=hashlib.sha256(json.dumps(current).encode()).hexdigest(),
            tags={"wfm/changed_files": ",".join(changed)[:200]},
        )

    return _sensor
