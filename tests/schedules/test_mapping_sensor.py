"""The mapping sensor: a saved mapping file rebuilds the mapping assets that read it and no
others; the daemon creates that run with only those steps, and it writes the new mapping."""

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._daemon.sensor import execute_sensor_iteration

from etl.assets.agent_mappings import AGENT_MAPPING_ASSETS
from etl.assets.mappings import MAPPING_ASSETS, files_read
from etl.definitions import MAPPINGS_JOB, build_definitions
from etl.resources.warehouse import Warehouse
from etl.schedules.mapping_sensor import build_mapping_sensor
from tests.helpers import configure_env, daemon_workspace, fixed_clock, queued_instance

FILES = {
    "queue_mappings.csv": "integration_id,external_queue_id,destination_queue\nsim,q1,Sales\n",
    "workloads.csv": "workload,destination_queue\nW1,Sales\n",
    "employees.csv": "employee_id,name\nE1,Anna\n",
    "employee_identifiers.csv": "employee_id,integration_id,external_employee_id,"
    "user_identifier\nE1,sim,,anna\n",
    "activities.csv": "activity_id,name\n2,Break\n",
    "activity_mappings.csv": "integration_id,external_activity,activity_id,classification\n"
    "sim,Pause,2,absence\n",
}
ASSETS = [*MAPPING_ASSETS, *AGENT_MAPPING_ASSETS]


def write_all(folder) -> None:
    for name, text in FILES.items():
        (folder / name).write_text(text)


class Ticks:
    """The sensor ticked with its cursor kept between ticks."""

    def __init__(self, folder):
        self.sensor = build_mapping_sensor(folder, MAPPINGS_JOB, files_read(ASSETS))
        self.cursor: str | None = None

    def tick(self) -> tuple[list[dg.RunRequest], str | None]:
        with dg.build_sensor_context(cursor=self.cursor) as context:
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        reason = result.skip_message
        return list(result.run_requests or []), reason


def selected(request: dg.RunRequest) -> set[str]:
    return {key.to_user_string() for key in request.asset_selection}


def test_each_file_rebuilds_the_assets_that_read_it(settings):
    folder = settings.mappings_dir
    write_all(folder)
    ticks = Ticks(folder)
    [first], _ = ticks.tick()
    assert first.asset_selection is None  # nothing known yet: every mapping asset
    assert first.tags["wfm/changed_files"] == ",".join(sorted(FILES))
    assert ticks.tick() == ([], "mapping files unchanged")

    (folder / "queue_mappings.csv").write_text(FILES["queue_mappings.csv"] + "sim,q2,Sales\n")
    [request], _ = ticks.tick()
    assert selected(request) == {"queue_mappings"}
    assert request.tags["wfm/changed_files"] == "queue_mappings.csv"

    # employee_identifiers' check looks employees up; activity_mappings' looks activities up.
    (folder / "employees.csv").write_text(FILES["employees.csv"] + "E2,Ben\n")
    [request], _ = ticks.tick()
    assert selected(request) == {"employees", "employee_identifiers"}
    (folder / "activities.csv").unlink()  # a removed file counts as changed
    [request], _ = ticks.tick()
    assert selected(request) == {"activities", "activity_mappings"}
    assert request.tags["wfm/changed_files"] == "activities.csv"

    (folder / "notes.csv").write_text("anything\n")
    assert ticks.tick() == ([], "notes.csv changed; no mapping asset reads it")
    assert ticks.tick() == ([], "mapping files unchanged")


def test_the_daemon_runs_only_the_edited_mapping(settings, monkeypatch, tmp_path):
    """Through the daemon's sensor iteration on the project's code location: the run it
    creates for a queue mapping edit has one step, and executing it writes the new mapping
    while the other mappings' files stay as they were."""
    configure_env(settings, monkeypatch)
    write_all(settings.mappings_dir)
    warehouse = Warehouse(root=str(settings.warehouse_dir))
    defs = build_definitions(settings)
    assert defs.resolve_job_def(MAPPINGS_JOB).execute_in_process().success
    others = {asset.key.to_user_string() for asset in ASSETS} - {"queue_mappings"}
    files_before = {name: warehouse.mapping_path(name) for name in others}
    assert None not in files_before.values()
    at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    with queued_instance(tmp_path / "home") as instance, daemon_workspace(instance) as workspace:

        def iteration(moment: datetime) -> list[dg.DagsterRun]:
            with fixed_clock(moment):
                list(execute_sensor_iteration(workspace, logging.getLogger("test"), None, None))
            return instance.get_runs(filters=dg.RunsFilter(job_name=MAPPINGS_JOB))

        [first] = iteration(at)
        assert first.asset_selection is None
        (settings.mappings_dir / "queue_mappings.csv").write_text(
            FILES["queue_mappings.csv"] + "sim,q2,Support\n"
        )
        latest, _ = iteration(at + timedelta(seconds=31))
        assert latest.asset_selection == {dg.AssetKey("queue_mappings")}
        plan = instance.get_execution_plan_snapshot(latest.execution_plan_snapshot_id)
        assert [step.key for step in plan.steps] == ["queue_mappings"]

    selection = [dg.AssetKey("queue_mappings")]
    result = defs.resolve_job_def(MAPPINGS_JOB).execute_in_process(asset_selection=selection)
    assert result.success
    assert [m.asset_key for m in result.asset_materializations_for_node("queue_mappings")] == (
        selection
    )
    mapped = warehouse.query(
        "SELECT external_queue_id, destination_queue FROM queue_mappings ORDER BY 1"
    )
    assert mapped.values.tolist() == [["q1", "Sales"], ["q2", "Support"]]
    assert {name: warehouse.mapping_path(name) for name in others} == files_before
