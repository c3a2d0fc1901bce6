"""The agent-status views over a real import: activities and employees mapped at query time,
so remapping changes them at once and never touches a fact file."""

from datetime import UTC, datetime

import pytest

from etl.assets.facts import source_key
from tests.agent_sources import rebuild_mappings, simulator_at, write_mappings
from tests.conftest import make_integration
from tests.helpers import definitions, fact_files, import_range

WINDOW = (datetime(2026, 11, 17, 6, tzinfo=UTC), datetime(2026, 11, 17, 12, tzinfo=UTC))
LATER = datetime(2030, 1, 1, tzinfo=UTC)
IDENTIFIERS = "employee_id,integration_id,external_employee_id,user_identifier\n"
ACTIVITIES = "activity_id,name\n1,Present\n2,Phone\n3,Break\n4,Chat\n"
MAPPINGS = "integration_id,external_activity,activity_id,classification\n"


@pytest.fixture
def imported(settings, warehouse, instance):
    integration = make_integration(
        id="berlin", data=["agent_status"], source={"seed": 5, "queues": 3}
    )
    source = simulator_at(integration, LATER)
    defs = definitions(settings, integration, **{source_key(integration): source})
    users = sorted(set(source.agent_status(*WINDOW).frame["user_identifier"]))
    write_mappings(
        settings,
        employees="employee_id,name\nE1,First Agent\nE2,Second Agent\n",
        employee_identifiers=IDENTIFIERS + f"E1,berlin,4711,{users[0]}\n",
        activities=ACTIVITIES,
        activity_mappings=MAPPINGS + "berlin,On Call,2,productive\nberlin,Break,3,break\n",
    )
    rebuild_mappings(defs, instance)
    assert import_range(defs, instance, "berlin", *WINDOW).success
    return defs, users


def seconds_by_activity(warehouse, employee: str) -> dict:
    frame = warehouse.query(
        "SELECT activity_name, sum(seconds) AS s FROM agent_activity WHERE employee_id = ? "
        "GROUP BY ALL",
        [employee],
    )
    return dict(zip(frame["activity_name"], frame["s"], strict=True))


def test_agent_activity_maps_employees_and_activities(imported, warehouse):
    _, users = imported
    rows = warehouse.query("SELECT * FROM agent_activity")
    assert set(rows["employee_id"]) == {"E1"}
    assert set(rows["user_identifier"]) == {users[0]}
    mapped = rows.drop_duplicates("external_activity").set_index("external_activity")
    assert mapped.loc["On Call", "activity_id"] == 2
    assert mapped.loc["On Call", "classification"] == "productive"
    assert mapped.loc["Available", "activity_id"] == 1  # unmapped: Present
    assert mapped.loc["Available", "activity_name"] == "Present"
    assert not mapped.loc["Available", "activity_mapped"]
    local = rows["start_local"] - rows["start_utc"].dt.tz_localize(None)
    assert set(local) == {datetime(2026, 1, 1, 1) - datetime(2026, 1, 1)}  # CET, +01:00
    total = rows["seconds"].sum()
    assert (
        total
        == warehouse.query(
            "SELECT sum(seconds) AS s FROM agent_status_segments WHERE user_identifier = ?",
            [users[0]],
        )["s"][0]
    )


def test_intervals_hold_the_same_seconds_in_15_minute_buckets(imported, warehouse):
    per_interval = warehouse.query(
        "SELECT interval_start, sum(seconds) AS s FROM agent_activity_intervals "
        "WHERE employee_id = 'E1' GROUP BY ALL"
    )
    assert (per_interval["s"] <= 900 + 1e-9).all()
    assert set(per_interval["interval_start"].dt.minute) <= {0, 15, 30, 45}
    assert per_interval["s"].sum() == pytest.approx(
        warehouse.query("SELECT sum(seconds) AS s FROM agent_activity")["s"][0]
    )


def test_unmatched_users_and_external_activities(imported, warehouse):
    _, users = imported
    unmatched = warehouse.query("SELECT * FROM unmatched_users ORDER BY user_identifier")
    assert unmatched["user_identifier"].tolist() == users[1:]
    assert (unmatched["segments"] > 0).all()
    assert (unmatched["first_seen"] < unmatched["last_seen"]).all()
    seen = warehouse.query("SELECT * FROM external_activities").set_index("external_activity")
    assert {"Available", "On Call", "After Call Work", "Break", "Lunch"} <= set(seen.index)
    assert seen.loc["Break", "mapped"]
    assert seen.loc["Break", "activity_name"] == "Break"
    assert not seen.loc["Lunch", "mapped"]
    assert seen.loc["Lunch", "activity_id"] == 1
    assert seen["seen"].all()


def test_remap_and_new_identifier_change_views_not_fact_files(
    imported, settings, warehouse, instance
):
    defs, users = imported
    before = fact_files(settings.warehouse_dir)
    assert any("agent_status_segments" in str(p) for p in before)
    old = seconds_by_activity(warehouse, "E1")
    assert "Present" in old

    write_mappings(
        settings,
        employee_identifiers=IDENTIFIERS
        + f"E1,berlin,4711,{users[0]}\nE2,berlin,4712,{users[1]}\n",
        activity_mappings=MAPPINGS
        + "berlin,On Call,4,productive\nberlin,Available,2,productive\n"
        + "berlin,After Call Work,2,productive\nberlin,Break,3,break\n"
        + "berlin,Wrap-up,2,productive\n",  # mapped, never seen
    )
    rebuild_mappings(defs, instance)

    raw = warehouse.query(
        "SELECT external_activity, sum(seconds) AS s FROM agent_status_segments "
        "WHERE user_identifier = ? GROUP BY ALL",
        [users[0]],
    )
    by_external = dict(zip(raw["external_activity"], raw["s"], strict=True))
    total = sum(by_external.values())
    assert old == {
        "Phone": by_external["On Call"],
        "Break": by_external["Break"],
        "Present": total - by_external["On Call"] - by_external["Break"],
    }
    phone = by_external["Available"] + by_external["After Call Work"]
    assert seconds_by_activity(warehouse, "E1") == {
        "Chat": by_external["On Call"],
        "Phone": phone,
        "Break": by_external["Break"],
        "Present": total - by_external["On Call"] - by_external["Break"] - phone,
    }
    employees = set(
        warehouse.query("SELECT DISTINCT employee_id FROM agent_activity")["employee_id"]
    )
    assert employees == {"E1", "E2"}
    assert users[1] not in set(warehouse.query("SELECT * FROM unmatched_users")["user_identifier"])
    activities = warehouse.query("SELECT * FROM external_activities").set_index("external_activity")
    assert activities.loc["Available", "mapped"]
    assert not activities.loc["Wrap-up", "seen"]
    assert activities.loc["Wrap-up", "segments"] == 0

    assert fact_files(settings.warehouse_dir) == before
