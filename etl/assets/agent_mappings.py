"""Mapping assets for agent status: employees, their identifiers, WFM activities and mappings.

Built with the same factory as the queue mappings, so they are small, unpartitioned assets in
the `mappings` group, rebuilt from `mappings/*.csv` by the mapping sensor, and joined by the
views at query time: adding an employee identifier or remapping an activity never rewrites
a fact file and needs no pause and no re-import. A file that fails its checks leaves the
current mapping in place.
"""

from __future__ import annotations

import pandas as pd

from etl.assets.mappings import MappingFiles, MappingProblem, build_mapping_asset
from etl.identifiers import KIND_LABELS, identifier_problem
from etl.schemas import (
    ACTIVITIES_SCHEMA,
    ACTIVITY_MAPPINGS_SCHEMA,
    EMPLOYEE_IDENTIFIERS_SCHEMA,
    EMPLOYEES_SCHEMA,
    PRESENT_ACTIVITY_ID,
)


def _unconfigured(frame: pd.DataFrame, files: MappingFiles) -> list[MappingProblem]:
    """Rows for integrations not in the config: kept (a removed integration's data stays
    queryable), but worth a warning, as a misspelt id matches nothing."""
    if not files.vendors:
        return []
    unknown = frame[~frame["integration_id"].isin(list(files.vendors))]
    return [
        MappingProblem(int(row), f"integration {value!r} is not configured", fatal=False)
        for row, value in unknown["integration_id"].items()
    ]


def check_employee_identifiers(frame: pd.DataFrame, files: MappingFiles) -> list[MappingProblem]:
    """Every identifier belongs to a listed employee and has its integration's kind
    (Talkdesk and UJET: an email address; Vonage: an agent id; most others: a user name)."""
    employees = set(files.read("employees", EMPLOYEES_SCHEMA)["employee_id"])
    problems = [
        MappingProblem(int(row), f"employee_id {value!r} is not in employees.csv")
        for row, value in frame["employee_id"].items()
        if value not in employees
    ]
    for row, integration_id, value in zip(
        frame.index, frame["integration_id"], frame["user_identifier"], strict=True
    ):
        kind = files.identifier_kinds.get(integration_id, "any")
        found = identifier_problem(value, kind)
        if found is None:
            continue
        fatal, reason = found
        vendor = files.vendors.get(integration_id, "unknown vendor")
        problems.append(
            MappingProblem(
                int(row),
                f"user_identifier {reason}; integration {integration_id!r} ({vendor}) "
                f"identifies agents by {KIND_LABELS.get(kind, kind)}",
                fatal=fatal,
            )
        )
    return sorted([*problems, *_unconfigured(frame, files)], key=lambda p: p.row or 0)


def check_activity_mappings(frame: pd.DataFrame, files: MappingFiles) -> list[MappingProblem]:
    """Every mapping points at a WFM activity listed in activities.csv (or at 1, Present)."""
    known = set(files.read("activities", ACTIVITIES_SCHEMA)["activity_id"].astype(int))
    known.add(PRESENT_ACTIVITY_ID)
    problems = [
        MappingProblem(int(row), f"activity_id {value} is not in activities.csv")
        for row, value in frame["activity_id"].items()
        if int(value) not in known
    ]
    return sorted([*problems, *_unconfigured(frame, files)], key=lambda p: p.row or 0)


employees = build_mapping_asset(
    "employees",
    EMPLOYEES_SCHEMA,
    "Employees WFM plans (mappings/employees.csv: employee_id, name).",
)
employee_identifiers = build_mapping_asset(
    "employee_identifiers",
    EMPLOYEE_IDENTIFIERS_SCHEMA,
    "How each employee appears in each integration (mappings/employee_identifiers.csv: "
    "employee_id, integration_id, external_employee_id, user_identifier). The user identifier "
    "is matched exactly against agent-status data; its kind is checked per vendor.",
    check=check_employee_identifiers,
    check_reads=("employees",),
)
activities = build_mapping_asset(
    "activities",
    ACTIVITIES_SCHEMA,
    "WFM activities (mappings/activities.csv: activity_id, name). Activity 1 is Present, "
    "what an unmapped external activity counts as.",
)
activity_mappings = build_mapping_asset(
    "activity_mappings",
    ACTIVITY_MAPPINGS_SCHEMA,
    "External activity -> WFM activity per integration (mappings/activity_mappings.csv: "
    "integration_id, external_activity, activity_id, classification).",
    check=check_activity_mappings,
    check_reads=("activities",),
)
AGENT_MAPPING_ASSETS = [employees, employee_identifiers, activities, activity_mappings]
