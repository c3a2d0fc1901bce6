"""Employee and activity mapping assets: real files, real materializations, checks that name
file, line and rule, and a bad file never replacing the current mapping."""

import dagster as dg
import pytest

from etl.assets.agent_mappings import AGENT_MAPPING_ASSETS
from etl.assets.mappings import MappingFiles
from tests.agent_sources import rebuild_mappings, write_mappings
from tests.conftest import make_integration
from tests.helpers import definitions

EMPLOYEES = "employee_id,name\nE1,Anna Smith\nE2,Ben Jones\n"
HEADER = "employee_id,integration_id,external_employee_id,user_identifier\n"


def materialize(settings, warehouse, instance, vendors: dict[str, str], kinds: dict[str, str]):
    files = MappingFiles(
        directory=str(settings.mappings_dir), vendors=vendors, identifier_kinds=kinds
    )
    return dg.materialize(
        AGENT_MAPPING_ASSETS,
        instance=instance,
        resources={"mapping_files": files, "warehouse": warehouse},
        raise_on_error=False,
    )


def failures(result) -> list[str]:
    return [
        e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]


def identifiers(warehouse) -> list[list[str]]:
    frame = warehouse.query(
        "SELECT employee_id, user_identifier FROM employee_identifiers ORDER BY ALL"
    )
    return frame.values.tolist()


def test_talkdesk_identifier_must_be_an_email(settings, warehouse, instance):
    vendors, kinds = {"tdk": "talkdesk"}, {"tdk": "email"}
    good = HEADER + "E1,tdk,900,anna.smith@example.com\n"
    write_mappings(settings, employees=EMPLOYEES, employee_identifiers=good)
    assert materialize(settings, warehouse, instance, vendors, kinds).success
    assert identifiers(warehouse) == [["E1", "anna.smith@example.com"]]

    bad = good + "E2,tdk,901,Ben.Jones\n"
    write_mappings(settings, employee_identifiers=bad)
    result = materialize(settings, warehouse, instance, vendors, kinds)
    assert not result.success
    [message] = failures(result)
    path = settings.mappings_dir / "employee_identifiers.csv"
    assert f"{path}: invalid mapping file: line 3: user_identifier 'Ben.Jones' is not an " in (
        message
    )
    assert "integration 'tdk' (talkdesk) identifies agents by an email address" in message
    assert identifiers(warehouse) == [["E1", "anna.smith@example.com"]]  # still the last good


def test_simulator_email_setting_is_checked_through_definitions(settings, warehouse, instance):
    integration = make_integration(
        id="mail", data=["agent_status"], source={"seed": 1, "user_identifiers": "email"}
    )
    defs = definitions(settings, integration)
    write_mappings(
        settings, employees=EMPLOYEES, employee_identifiers=HEADER + "E1,mail,,Anna.Smith\n"
    )
    result = defs.resolve_job_def("mappings_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    assert "line 2: user_identifier 'Anna.Smith' is not an email address" in failures(result)[0]


def test_warnings_do_not_block_the_mapping(settings, warehouse, instance):
    vendors = {"vng": "vonage", "f9": "five9"}
    kinds = {"vng": "agent_id", "f9": "user_name"}
    text = HEADER + "E1,vng,1,anna@example.com\nE2,f9,2,Ben.Jones \nE2,gone,3,ben\n"
    write_mappings(settings, employees=EMPLOYEES, employee_identifiers=text)
    result = materialize(settings, warehouse, instance, vendors, kinds)
    assert result.success
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("employee_identifiers")
    ]
    warnings = event.materialization.metadata["warnings"].value
    assert warnings == [
        "line 2: user_identifier 'anna@example.com' does not look like an agent id; "
        "integration 'vng' (vonage) identifies agents by an agent id",
        "line 3: user_identifier 'Ben.Jones ' has leading or trailing spaces: it matches only "
        "agent-status data delivered with exactly these spaces; integration 'f9' (five9) "
        "identifies agents by a user name",
        "line 4: integration 'gone' is not configured",
    ]
    assert ["E2", "Ben.Jones "] in identifiers(warehouse)  # kept exactly, space included


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"employee_identifiers": HEADER + "E1,sim,,a\nE9,sim,,b\n"},
            "employee_identifiers.csv: invalid mapping file: line 3: employee_id 'E9' is not in "
            "employees.csv",
        ),
        (
            {"employee_identifiers": HEADER + "E1,sim,,a\nE2,sim,,a\n"},
            "employee_identifiers.csv: invalid mapping file: line",
        ),
        (
            {
                "activity_mappings": "integration_id,external_activity,activity_id,classification\n"
                "sim,On Call,2,productive\nsim,Break,8,break\n"
            },
            "activity_mappings.csv: invalid mapping file: line 3: activity_id 8 is not in "
            "activities.csv",
        ),
        (
            {"activities": "activity_id,name\n1,Present\nx,Phone\n"},
            "activities.csv: invalid mapping file: line 3",
        ),
    ],
)
def test_bad_files_fail_naming_file_and_line(settings, warehouse, instance, files, expected):
    defaults = {"employees": EMPLOYEES, "activities": "activity_id,name\n1,Present\n2,Phone\n"}
    write_mappings(settings, **{**defaults, **files})
    result = materialize(settings, warehouse, instance, {"sim": "simulator"}, {"sim": "user_name"})
    assert not result.success
    assert any(expected in message for message in failures(result)), failures(result)


def test_activities_view_always_has_present(settings, warehouse, instance):
    integration = make_integration(id="sim", data=["agent_status"])
    defs = definitions(settings, integration)
    write_mappings(settings, activities="activity_id,name\n2,Phone\n")
    rebuild_mappings(defs, instance)
    rows = warehouse.query("SELECT activity_id, name FROM activities ORDER BY activity_id")
    assert rows.values.tolist() == [[1, "Present"], [2, "Phone"]]
