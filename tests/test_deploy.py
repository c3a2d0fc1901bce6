"""`wfm-etl deploy`: the Dagster home it writes, the checks before it starts anything, and the
deployment itself with Dagster's standard run launcher and with the preloaded one."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.run_coordinator import QueuedRunCoordinator

from etl import cli
from etl.deploy import (
    DEFAULT_RUN_LAUNCHER,
    LOCATION_NAME,
    DeployError,
    Deployment,
    check_services,
    deployment_from_args,
)
from etl.instance import DEPLOY_MARKER, RUN_LAUNCHER, prepare_dagster_home
from etl.partitions import HOUR, floor_hour
from etl.run_launcher import PreloadedRunLauncher
from etl.schedules.ticks import INTEGRATION_TAG
from tests.deployments import (
    ROOT,
    Project,
    assert_same_contacts,
    deployed,
    duplicate_keys,
    free_port,
    idle,
    simulator,
    single_process_import,
    utc_now,
    wait_for,
)


def test_the_instance_is_on_postgres_with_a_run_queue_limited_per_integration(tmp_path):
    config = Deployment(tmp_path, runs_per_integration=3, max_concurrent_runs=8).instance_config()
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert config[storage]["config"] == {"postgres_url": {"env": "DAGSTER_PG_URL"}}
    assert config["event_log_storage"]["module"] == "etl.event_log"
    assert config["run_queue"] == {
        "max_concurrent_runs": 8,
        "tag_concurrency_limits": [
            {"key": INTEGRATION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 3}
        ],
    }
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["max_resume_run_attempts"] == 0
    assert config["run_launcher"] == DEFAULT_RUN_LAUNCHER


def test_the_launcher_is_a_choice(tmp_path):
    assert Deployment(tmp_path, launcher="preloaded").run_launcher() == RUN_LAUNCHER
    celery = Deployment(tmp_path, launcher="celery", workers=3, worker_concurrency=2)
    assert celery.run_launcher()["module"] == "etl.celery_runs"
    assert celery.concurrent_runs == 6  # the workers' processes, no run waiting in the broker
    with pytest.raises(DeployError, match="launcher must be one of default, preloaded, celery"):
        Deployment(tmp_path, launcher="k8s")
    with pytest.raises(DeployError, match="workers must be at least 1"):
        Deployment(tmp_path, launcher="celery", workers=0)


def test_the_written_files_load_an_instance_with_the_queue_and_a_workspace(
    tmp_path, pg_url, monkeypatch
):
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    deployment = Deployment(tmp_path / "home", code_server_port=4999, runs_per_integration=1)
    deployment.write()
    assert (deployment.home / "dagster.yaml").read_text().startswith(DEPLOY_MARKER)
    with dg.DagsterInstance.from_config(str(deployment.home)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert limits == [
            {"key": INTEGRATION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        assert instance.run_monitoring_enabled
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
    workspace = yaml.safe_load(deployment.workspace_path.read_text())
    assert workspace == {
        "load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": 4999, "location_name": LOCATION_NAME}}
        ]
    }


def test_the_command_line_keeps_a_deployments_dagster_yaml(tmp_path, monkeypatch):
    """So `DAGSTER_HOME=<the deployment's home> wfm-etl import ...` imports into it."""
    deployment = Deployment(tmp_path / "home", launcher="celery")
    deployment.write()
    written = (deployment.home / "dagster.yaml").read_text()
    monkeypatch.setenv("DAGSTER_HOME", str(deployment.home))
    assert prepare_dagster_home() == deployment.home
    assert (deployment.home / "dagster.yaml").read_text() == written


def test_write_only_prints_each_process_and_starts_none(tmp_path, capsys):
    home = tmp_path / "home"
    code = cli.main(["deploy", "--home", str(home), "--launcher", "celery", "--write-only"])
    assert code == 0
    out = capsys.readouterr().out
    for name in ("code-server", "worker1", "worker2", "daemon", "webserver"):
        assert f"  {name}: DAGSTER_HOME={home} " in out
    assert "code-server start -m etl.definitions" in out
    assert (home / "dagster.yaml").exists()
    assert (home / "workspace.yaml").exists()


def args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.add_deploy_commands(sub)
    namespace = parser.parse_args(["deploy"])
    vars(namespace).update(overrides)
    return namespace


@pytest.mark.parametrize(
    ("launcher", "env", "message"),
    [
        ("default", {}, "DAGSTER_PG_URL is not set: a deployment keeps its Dagster instance"),
        (
            "default",
            {"DAGSTER_PG_URL": "postgresql+psycopg2://wfm:s3cret@127.0.0.1:{port}/dagster"},
            "DAGSTER_PG_URL: cannot connect to postgresql+psycopg2://wfm:***@127.0.0.1:",
        ),
        ("celery", {"DAGSTER_PG_URL": "{pg}"}, "WFM_CELERY_BROKER_URL is not set"),
        (
            "celery",
            {
                "DAGSTER_PG_URL": "{pg}",
                "WFM_CELERY_BROKER_URL": "amqp://guest:s3cret@127.0.0.1:{port}//",
                "WFM_CELERY_BACKEND_URL": "redis://127.0.0.1:6379/0",
            },
            "WFM_CELERY_BROKER_URL: the broker at amqp://guest:**@127.0.0.1:",
        ),
        (
            "celery",
            {
                "DAGSTER_PG_URL": "{pg}",
                "WFM_CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
                "WFM_CELERY_BACKEND_URL": "redis://:s3cret@127.0.0.1:{port}/0",
            },
            "WFM_CELERY_BACKEND_URL: the result backend at redis://:**@127.0.0.1:",
        ),
    ],
)
def test_missing_or_unreachable_servers_are_named_before_anything_starts(
    tmp_path, pg_url, launcher, env, message
):
    port = free_port()  # nothing listens there
    env = {k: v.format(port=port, pg=pg_url) for k, v in env.items()}
    with pytest.raises(DeployError) as error:
        check_services(deployment_from_args(args(launcher=launcher, home=tmp_path), env), env)
    assert message in str(error.value)
    assert "s3cret" not in str(error.value)


def test_a_worker_of_an_instance_that_does_not_launch_on_celery_says_so(
    tmp_path, pg_url, monkeypatch, capsys
):
    home = tmp_path / "home"
    Deployment(home, launcher="preloaded").write()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    assert cli.main(["worker", "--name", "w1"]) == 2
    err = capsys.readouterr().err
    assert "launches runs with PreloadedRunLauncher, not on Celery" in err
    assert "wfm-etl deploy --launcher celery" in err


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("launcher", ["default", "preloaded"])
def test_a_deployment_runs_imports_through_the_queue_one_per_integration_at_a_time(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, launcher: str
):
    """Dagster's standard launcher works with the project unchanged; so does the preloaded
    one. Two runs of one integration never overlap (limit 1), a third of another may."""
    now = utc_now()
    # Two hours of the schedule's revision window that are over: the gap sensor owns none of
    # the history (it starts at them), so only the test's runs import them.
    start = floor_hour(now) - 3 * HOUR
    end = start + 2 * HOUR
    integrations = [
        simulator(i, n, start, now, revision_window_hours=3) for n, i in enumerate(["a", "b"])
    ]
    project = Project(tmp_path / "project", integrations, env={"DAGSTER_PG_URL": pg_url})
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    home = tmp_path / "deploy"
    options = ["--launcher", launcher, "--runs-per-integration", "1", "--max-concurrent-runs", "3"]
    with deployed(project, home, *options) as running, running.instance() as instance:
        if launcher == "preloaded":
            assert isinstance(instance.run_launcher, PreloadedRunLauncher)
        submitted = [
            running.submit("a", start, start + HOUR, trigger="cli"),
            running.submit("a", start + HOUR, end, trigger="cli"),
            running.submit("b", start, end, trigger="cli"),
        ]

        def finished() -> bool:
            return idle(instance) and all(instance.get_run_by_id(r).is_finished for r in submitted)

        wait_for(finished, 400, "the three runs", running)
        records = {r: instance.get_run_record_by_id(r) for r in submitted}
        statuses = [record.dagster_run.status for record in records.values()]
        assert statuses == [dg.DagsterRunStatus.SUCCESS] * 3, running.diagnostics()
        first, second = (records[r] for r in submitted[:2])
        apart = first.end_time <= second.start_time or second.end_time <= first.start_time
        assert apart, "two runs of integration a overlapped despite the limit of one"
    expected = single_process_import(project, tmp_path / "reference", start, end)
    assert_same_contacts(project.warehouse, expected, ["a", "b"], start, end)
    assert duplicate_keys(project.warehouse) == []


@pytest.mark.postgres
def test_an_import_by_hand_lands_in_the_deployments_instance(tmp_path, pg_url, monkeypatch):
    """`DAGSTER_HOME=<the deployment's home> wfm-etl import ...`, as docs/deploy.md says."""
    now = utc_now()
    start = floor_hour(now) - 3 * HOUR
    project = Project(
        tmp_path / "project",
        [simulator("a", 1, start, now, revision_window_hours=3)],
        env={"DAGSTER_PG_URL": pg_url},
    )
    home = tmp_path / "deploy"
    assert project.cli("deploy", "--home", str(home), "--write-only").returncode == 0
    written = (home / "dagster.yaml").read_text()
    done = project.cli(
        "import", "a", start.isoformat(), (start + HOUR).isoformat(), DAGSTER_HOME=str(home)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (home / "dagster.yaml").read_text() == written
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["wfm/trigger"] == "cli"
    rows = project.warehouse.read_window("contact_intervals", "a", start, start + HOUR)
    assert len(rows) > 0


def test_make_deploy_local_runs_the_deploy_command_with_the_local_servers():
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "deploy-local"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    commands = [line for line in done.stdout.splitlines() if "wfm-etl deploy" in line]
    assert commands == [".venv/bin/wfm-etl deploy --launcher celery --workers 2"]
    makefile = (ROOT / "Makefile").read_text()
    for variable in ("DAGSTER_PG_URL", "WFM_CELERY_BROKER_URL", "WFM_CELERY_BACKEND_URL"):
        assert f"deploy-local: export {variable} ?=" in makefile  # for that target only
