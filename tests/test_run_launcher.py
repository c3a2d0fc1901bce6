"""The warm run launcher: runs of the project's jobs start in processes forked from a server
that preloaded the libraries and the project, land their data, see the current config, run
the project's code as its files are, and can be stopped."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.launcher.base import WorkerStatus

import etl.preload
from etl.instance import RUN_LAUNCHER, instance_config, postgres_storage
from etl.resources.sources import build_source
from etl.resources.warehouse import Warehouse
from etl.run_launcher import (
    PEAK_RSS_TAG,
    PID_TAG,
    PROJECT_TAG,
    PreloadedRunLauncher,
    RunFactory,
    create_run,
    pool_connections,
)
from etl.schedules.ticks import range_tags
from tests.conftest import make_integration

START = datetime(2026, 11, 2, 0, tzinfo=UTC)
END = datetime(2026, 11, 2, 3, tzinfo=UTC)


def write_config(path: Path, *integrations: dict) -> None:
    path.write_text(yaml.safe_dump({"integrations": list(integrations)}))


SIM = {
    "id": "sim15",
    "vendor": "simulator",
    "delivery": "cloud",
    "interval_minutes": 15,
    "data": ["contacts"],
    "timezone": "Europe/Berlin",
    "history_start": "2026-11-01",
    "source": {"seed": 7, "queues": 3, "channels": ["calls", "chats"]},
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project home in the environment, as the daemon that launches runs would have it."""
    (tmp_path / "mappings").mkdir()
    write_config(tmp_path / "integrations.yaml", SIM)
    monkeypatch.setenv("WFM_HOME", str(tmp_path))
    monkeypatch.setenv("WFM_INTEGRATIONS", str(tmp_path / "integrations.yaml"))
    monkeypatch.setenv("WFM_WAREHOUSE_DIR", str(tmp_path / "warehouse"))
    monkeypatch.setenv("WFM_MAPPINGS_DIR", str(tmp_path / "mappings"))
    return tmp_path


def launcher_instance(home: Path, storage: dict | None = None):
    home.mkdir(exist_ok=True)
    overrides = {"run_launcher": dict(RUN_LAUNCHER), **(storage or {})}
    return dg.instance_for_test(temp_dir=str(home), overrides=overrides)


def launch_and_wait(instance: dg.DagsterInstance, job: str, tags: dict, **kw) -> dg.DagsterRun:
    run = create_run(instance, job, tags, **kw)
    instance.launch_run(run.run_id, workspace=None)
    instance.run_launcher.join(120)
    return instance.get_run_by_id(run.run_id)


def reported(project: Path, job: str) -> list[str]:
    """The log messages of a successful run of one of `tests.launcher_jobs`' jobs."""
    with launcher_instance(project / "home") as instance:
        return reported_by(instance, job)[1]


def reported_by(instance: dg.DagsterInstance, job: str) -> tuple[dg.DagsterRun, list[str]]:
    run = launch_and_wait(instance, job, {}, module="tests.launcher_jobs")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    return run, [e.user_message for e in instance.all_logs(run.run_id)]


def warehouse_rows(project: Path, integration_id: str) -> int:
    warehouse = Warehouse(root=str(project / "warehouse"))
    return warehouse.read_window("contact_intervals", integration_id, START, END).shape[0]


def test_the_set_up_configures_the_warm_launcher_and_a_run_queue_per_core():
    config = instance_config({})
    assert config["run_launcher"] == RUN_LAUNCHER
    assert config["run_queue"] == {"max_concurrent_runs": os.cpu_count()}
    assert (
        instance_config({"WFM_MAX_CONCURRENT_RUNS": "6"})["run_queue"]["max_concurrent_runs"] == 6
    )
    with pytest.raises(ValueError, match="WFM_MAX_CONCURRENT_RUNS must be a whole number"):
        instance_config({"WFM_MAX_CONCURRENT_RUNS": "0"})


def test_a_range_run_lands_its_rows_from_a_forked_process(project: Path):
    with launcher_instance(project / "home") as instance:
        assert isinstance(instance.run_launcher, PreloadedRunLauncher)
        run = launch_and_wait(instance, "sim15_import", range_tags(START, END))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert int(run.tags[PID_TAG]) != os.getpid()
        assert float(run.tags[PEAK_RSS_TAG]) > 50  # MiB: a process with pandas loaded
        materialized = instance.get_materialized_partitions(dg.AssetKey(["sim15", "contacts"]))
        assert materialized == {"2026-11-02-00:00", "2026-11-02-01:00", "2026-11-02-02:00"}
    expected = build_source(make_integration(**SIM)).contacts(START, END).frame
    assert warehouse_rows(project, "sim15") == len(expected) > 0


def test_runs_on_a_postgres_instance_and_see_config_changes(project: Path, pg_url: str):
    storage = postgres_storage(pg_url)
    with launcher_instance(project / "home_pg", storage) as instance:
        first = launch_and_wait(instance, "sim15_import", range_tags(START, END))
        assert first.status == dg.DagsterRunStatus.SUCCESS
        # The warm server keeps modules, not the config: a new integration is there at once.
        sim30 = {**SIM, "id": "sim30", "interval_minutes": 30}
        write_config(project / "integrations.yaml", SIM, sim30)
        second = launch_and_wait(instance, "sim30_import", range_tags(START, END))
        assert second.status == dg.DagsterRunStatus.SUCCESS
        assert second.tags[PID_TAG] != first.tags[PID_TAG]
    sim30_rows = build_source(make_integration(**sim30)).contacts(START, END).frame
    assert warehouse_rows(project, "sim30") == len(sim30_rows) > 0
    engine = sa.create_engine(pg_url)
    with engine.connect() as con:
        statuses = con.execute(sa.text("SELECT status FROM runs ORDER BY id")).scalars().all()
    engine.dispose()
    assert statuses == ["SUCCESS", "SUCCESS"]


@pytest.mark.parametrize("pooled", [False, True])
def test_a_run_process_keeps_one_connection_per_storage(pg_instance, pooled: bool):
    """dagster-postgres connects anew for every query unless the process pools them."""
    if pooled:
        pool_connections(pg_instance)
    opened: list[str] = []
    for name in ("run_storage", "event_log_storage"):
        engine = getattr(pg_instance, name)._engine
        sa.event.listen(engine, "connect", lambda *_, name=name: opened.append(name))
    for _ in range(5):
        pg_instance.get_runs(limit=1)
        pg_instance.get_latest_materialization_event(dg.AssetKey("nothing_yet"))
    if pooled:
        assert sorted(opened) == ["event_log_storage", "run_storage"]
    else:  # one connection per query
        assert opened.count("run_storage") >= 5
        assert opened.count("event_log_storage") >= 5


def test_a_factory_loads_the_definitions_once_for_runs_of_many_jobs(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    sim30 = {**SIM, "id": "sim30", "interval_minutes": 30}
    write_config(project / "integrations.yaml", SIM, sim30)
    loads = []
    load = ReconstructableRepository.get_definition
    monkeypatch.setattr(
        ReconstructableRepository,
        "get_definition",
        lambda self: loads.append(self) or load(self),
    )
    with launcher_instance(project / "home") as instance:
        factory = RunFactory()
        runs = [
            factory.create(instance, f"{i}_import", range_tags(START, END))
            for i in ("sim15", "sim30")
        ]
        assert len(loads) == 1  # in this process; each run process loads its own
        for run in runs:
            instance.launch_run(run.run_id, workspace=None)
        instance.run_launcher.join(120)
        statuses = [instance.get_run_by_id(r.run_id).status for r in runs]
    assert statuses == [dg.DagsterRunStatus.SUCCESS] * 2
    assert [r.job_name for r in runs] == ["sim15_import", "sim30_import"]
    for config in (SIM, sim30):
        expected = build_source(make_integration(**config)).contacts(START, END).frame
        assert warehouse_rows(project, config["id"]) == len(expected) > 0


def test_a_failing_run_is_reported_failed(project: Path):
    broken = {
        "id": "dropped",
        "vendor": "csv",
        "delivery": "on_premise",
        "interval_minutes": 15,
        "data": ["contacts"],
        "timezone": "UTC",
        "history_start": "2026-11-01",
        "source": {"folder": str(project / "no_such_folder"), "contacts": {"glob": "*.csv"}},
    }
    write_config(project / "integrations.yaml", broken)
    with launcher_instance(project / "home") as instance:
        run = launch_and_wait(instance, "dropped_import", range_tags(START, END))
        assert run.status == dg.DagsterRunStatus.FAILURE
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.FAILED
        failures = [
            e.dagster_event.step_failure_data.error.to_string()
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.is_step_failure
        ]
    assert any("integration 'dropped': CSV folder" in m for m in failures), failures
    assert any("no_such_folder" in m for m in failures), failures


def test_a_run_process_is_told_its_job(project: Path):
    """So it builds only that job's integration (`Settings.run_job`)."""
    messages = reported(project, "reports_scope")
    assert "run job: reports_scope" in messages


@pytest.mark.parametrize(
    ("set_to", "used"), [(None, "jemalloc"), ("system", "system"), ("mimalloc", "mimalloc")]
)
def test_a_run_process_gives_arrow_jemalloc_unless_told_otherwise(
    project: Path, monkeypatch: pytest.MonkeyPatch, set_to: str | None, used: str
):
    """A run process imports one window and exits: jemalloc gave a month's import a lower
    peak than the C library's allocator and Arrow's default (`use_run_allocator`)."""
    if set_to is None:
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    else:
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", set_to)
    messages = reported(project, "reports_arrow_pool")
    assert f"arrow pool: {used}" in messages


def test_a_run_process_leaves_the_preloaded_objects_out_of_garbage_collection(project: Path):
    """A forked run shares the server's pages until it writes to them; the collector's passes
    would write to every preloaded object (`keep_preloaded_shared`)."""
    messages = reported(project, "reports_frozen")
    [line] = [m for m in messages if m.startswith("frozen objects: ")]
    # The preloaded libraries hold well over 100,000 objects that the collector tracks.
    assert int(line.removeprefix("frozen objects: ")) > 100_000, line


def test_a_run_keeps_the_preloaded_project_until_its_files_change(project: Path):
    """The warm server imports the project after the libraries (`etl.preload`), so a run
    starts with it; a run started after one of the project's files changed (here: its
    modification time) drops those modules and imports them from the files."""
    changed = Path(etl.preload.__file__)
    before = changed.stat()
    with launcher_instance(project / "home") as instance:
        first, first_log = reported_by(instance, "reports_project")
        os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        try:
            second, second_log = reported_by(instance, "reports_project")
        finally:
            os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
        third, third_log = reported_by(instance, "reports_project")
    assert first.tags[PROJECT_TAG] == "preloaded"
    assert "project preloaded: True" in first_log
    assert second.tags[PROJECT_TAG] == "fresh"
    assert "project preloaded: False" in second_log
    assert third.tags[PROJECT_TAG] == "preloaded"  # the files are as the server imported them
    assert "project preloaded: True" in third_log


def test_a_run_can_be_terminated(project: Path):
    with launcher_instance(project / "home") as instance:
        run = create_run(instance, "waits", {}, module="tests.launcher_jobs")
        instance.launch_run(run.run_id, workspace=None)
        deadline = time.monotonic() + 60
        while instance.get_run_by_id(run.run_id).status != dg.DagsterRunStatus.STARTED:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        assert instance.run_launcher.terminate(run.run_id)
        instance.run_launcher.join(60)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
        assert not instance.run_launcher.terminate(run.run_id)  # already finished
