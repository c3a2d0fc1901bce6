"""Mapping assets: small, unpartitioned, rebuilt from the files under `mappings/`.

They write Parquet files that the views join at query time, so a remapping shows in
`queue_intervals` at once and no fact file is ever rewritten.
"""

import csv
import io
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
        """Read and validate one mapping file; a bad file fails naming file, line and rule."""
        path = self.path(name)
        if not path.exists():
            return pd.DataFrame({c: pd.Series(dtype=str) for c in schema.columns})
        frame = read_mapping_csv(path, list(schema.columns))
        try:
            return schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            problems = _schema_problems(exc.failure_cases)
            more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
            raise _fail(path, "; ".join(problems[:MAX_LISTED]) + more) from exc


def _fail(path: Path, problem: str) -> dg.Failure:
    return dg.Failure(
        description=f"{path}: invalid mapping file: {problem}. The current mapping stays in "
        "place until the file is fixed."
    )


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise _fail(
            path,
            f"line {line}, column {column}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save the file as UTF-8",
        ) from None


def read_mapping_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """A mapping file as text columns, read with the standard library's csv module, which
    gives every problem its line (pandas' reader reports some without one and silently turns
    a row with an extra value into an index)."""
    text = _decode(path, path.read_bytes())
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(field.strip() for field in header):
            raise _fail(
                path, f"the file is empty; its first line names the columns: {', '.join(columns)}"
            )
        twice = sorted({c for c in header if header.count(c) > 1})
        missing = [c for c in columns if c not in header]
        unknown = [c for c in header if c not in columns]
        if twice or missing or unknown:
            found = [
                f"column(s) named twice: {', '.join(twice)}" if twice else "",
                f"missing column(s): {', '.join(missing)}" if missing else "",
                f"unknown column(s): {', '.join(unknown)}" if unknown else "",
            ]
            raise _fail(
                path,
                f"line 1: {'; '.join(f for f in found if f)} (the columns are: "
                f"{', '.join(columns)})",
            )
        rows: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if not any(value.strip() for value in row):
                continue  # a blank line
            if len(row) != len(header):
                raise _fail(
                    path,
                    f"line {reader.line_num}: {len(row)} values, but the header names "
                    f"{len(header)} columns (a value with a comma must be in double quotes)",
                )
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise _fail(
            path,
            f"line {reader.line_num}: {exc} (a value with a comma, a quote or a line break "
            "must be in double quotes, and a quote inside it doubled)",
        ) from None
    frame = pd.DataFrame(rows, columns=header, dtype=object)[columns]
    # Row labels are what the checks report as "line": label + 2 must be the file's line.
    frame.index = pd.Index([line - 2 for line in lines])
    return frame


READABLE_CHECKS = {
    "coerce_dtype('int64')": "not a whole number",
    "dtype('int64')": "not a whole number",
    "field_uniqueness": "appears twice",
    "multiple_fields_uniqueness": "appears twice",
}


def _schema_problems(cases: pd.DataFrame) -> list[str]:
    """pandera's failure cases as 'line N: column rule (value)', one per line, column and
    rule; a rule that then fails on the whole column because of those values is left out."""
    found: dict[tuple, str] = {}
    located = set(cases.loc[cases["index"].notna(), "column"])
    for case in cases.itertuples(index=False):
        check = READABLE_CHECKS.get(str(case.check), str(case.check))
        if pd.isna(case.index):
            if case.column in located:
                continue
            key, where = (None, case.column, check), "line -"
        else:
            key, where = (int(case.index), case.column, check), f"line {int(case.index) + 2}"
        found.setdefault(key, f"{where}: {case.column or 'table'} {check} ({case.failure_case})")
    ordered = sorted(found.items(), key=lambda item: (item[0][0] is None, item[0][0] or 0))
    return [text for _, text in ordered]


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
READS_METADATA = "reads_files"


def files_read(assets: list[dg.AssetsDefinition]) -> dict[dg.AssetKey, frozenset[str]]:
    """Each mapping asset and the files under `mappings/` it reads."""
    return {
        asset.key: frozenset(asset.metadata_by_key[asset.key][READS_METADATA].data)
        for asset in assets
    }


def build_mapping_asset(
    name: str,
    schema: pa.DataFrameSchema,
    description: str,
    check: MappingCheck | None = None,
    check_reads: tuple[str, ...] = (),
):
    """An asset rebuilding one mapping from `mappings/<name>.csv`: schema first, then
    `check` (rules that need other files, named in `check_reads`, or the configured
    integrations). The files it reads are in its metadata, for the mapping sensor."""

    @dg.asset(
        name=name,
        group_name=MAPPINGS_GROUP,
        description=description,
        kinds={"csv", "parquet"},
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(n, str(c.dtype)) for n, c in schema.columns.items()]
            ),
            READS_METADATA: dg.MetadataValue.json([f"{n}.csv" for n in (name, *check_reads)]),
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
