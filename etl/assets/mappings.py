"""Mapping assets: small, unpartitioned, rebuilt from the files under `mappings/`.

They write Parquet files that the views join at query time, so a remapping shows in
`queue_intervals` at once and no fact file is ever rewritten.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from etl.resources.warehouse import Warehouse
from etl.schemas import QUEUE_MAPPINGS_SCHEMA, WORKLOADS_SCHEMA

MAPPINGS_GROUP = "mappings"


class MappingFiles(dg.ConfigurableResource):
    """The folder holding the mapping CSV files that data engineers edit."""

    directory: str

    def path(self, name: str) -> Path:
        return Path(self.directory) / f"{name}.csv"

    def read(self, name: str, schema: pa.DataFrameSchema) -> pd.DataFrame:
        """Read and validate one mapping file; a bad file fails naming file, row and rule."""
        path = self.path(name)
        if not path.exists():
            return pd.DataFrame({c: pd.Series(dtype=str) for c in schema.columns})
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        try:
            return schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases.head(10)
            detail = "; ".join(
                f"line {int(r['index']) + 2 if pd.notna(r['index']) else '-'}: "
                f"{r['column'] or 'table'} {r['check']} ({r['failure_case']})"
                for _, r in cases.iterrows()
            )
            raise dg.Failure(description=f"{path}: invalid mapping file: {detail}") from exc


def build_mapping_asset(name: str, schema: pa.DataFrameSchema, description: str):
    @dg.asset(
        name=name,
        group_name=MAPPINGS_GROUP,
        description=description,
        kinds={"csv", "parquet"},
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c, "string") for c in schema.columns]
            )
        },
    )
    def _asset(mapping_files: MappingFiles, warehouse: Warehouse) -> dg.MaterializeResult:
        frame = mapping_files.read(name, schema)
        warehouse.write_mapping(name, frame)
        warehouse.ensure_catalog()
        return dg.MaterializeResult(
            metadata={
                "rows": len(frame),
                "file": str(mapping_files.path(name)),
                "preview": dg.MetadataValue.md(frame.head(20).to_markdown(index=False))
                if len(frame)
                else "(empty)",
            }
        )

    return _asset


queue_mappings = build_mapping_asset(
    "queue_mappings",
    QUEUE_MAPPINGS_SCHEMA,
    "External queue -> destination queue (mappings/queue_mappings.csv). Unmapped queues are "
    "their own destination queue.",
)
workloads = build_mapping_asset(
    "workloads", WORKLOADS_SCHEMA, "Workloads grouping destination queues (mappings/workloads.csv)."
)
MAPPING_ASSETS = [queue_mappings, workloads]
