"""Mapping assets: small, unpartitioned, rebuilt from the files under `mappings/`.

They write Parquet files that the views join at query time, so a remapping shows in
`queue_intervals` at once and no fact file is ever rewritten.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from etl.resources.warehouse import Warehouse
from etl.schemas import QUEUE_MAPPINGS_SCHEMA, WORKLOADS_SCHEMA

MAPPINGS_GROUP = "mappings"


class MappingFiles(dg.ConfigurableResource):
    """The folder holding the mapping CSV files that data engineers edit, and what the checks
    need to know about the configured integrations (integration id -> vendor, and -> kind of
    user identifier, see `etl.identifiers`)."""

    directory: str
    vendors: dict[str, str] = {}
    identifier_kinds: dict[str, str] = {}

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


@dataclass(frozen=True)
class MappingProblem:
    """One finding of a mapping file's own check: fatal ones stop the file from replacing the
    current mapping; the others are logged and shown in the materialization metadata."""

    row: int | None  # index in the frame read from the file (line = row + 2)
    message: str
    fatal: bool = True

    def describe(self) -> str:
        return f"line {self.row + 2}: {self.message}" if self.row is not None else self.message


MappingCheck = Callable[[pd.DataFrame, MappingFiles], list[MappingProblem]]
MAX_LISTED = 10


def build_mapping_asset(
    name: str, schema: pa.DataFrameSchema, description: str, check: MappingCheck | None = None
):
    """An asset rebuilding one mapping from `mappings/<name>.csv`: schema first, then
    `check` (rules that need other files or the configured integrations)."""

    @dg.asset(
        name=name,
        group_name=MAPPINGS_GROUP,
        description=description,
        kinds={"csv", "parquet"},
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(n, str(c.dtype)) for n, c in schema.columns.items()]
            )
        },
    )
    def _asset(
        context: dg.AssetExecutionContext, mapping_files: MappingFiles, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        frame = mapping_files.read(name, schema)
        path = mapping_files.path(name)
        problems = check(frame, mapping_files) if check is not None else []
        fatal = [p.describe() for p in problems if p.fatal]
        warnings = [p.describe() for p in problems if not p.fatal]
        for warning in warnings:
            context.log.warning(f"{path}: {warning}")
        if fatal:
            more = f" (and {len(fatal) - MAX_LISTED} more)" if len(fatal) > MAX_LISTED else ""
            raise dg.Failure(
                description=f"{path}: invalid mapping file: {'; '.join(fatal[:MAX_LISTED])}"
                f"{more}. The current mapping stays in place until the file is fixed.",
                metadata={"problems": dg.MetadataValue.json(fatal)},
            )
        warehouse.write_mapping(name, frame)
        warehouse.ensure_catalog()
        return dg.MaterializeResult(
            metadata={
                "rows": len(frame),
                "file": str(path),
                "warnings": dg.MetadataValue.json(warnings),
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
