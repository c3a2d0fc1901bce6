"""Runs on Celery workers (dagster-celery, RabbitMQ broker, Redis result backend), end to end:
`wfm-etl deploy --launcher celery` with two workers on the local servers."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.launcher import WorkerStatus
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

from etl.celery_runs import WORKER_TAG, CeleryRunLauncher, launcher_config
from etl.deploy import LOCATION_NAME
from etl.resources.sources import build_source
from etl.schedules.ticks import TRIGGER_TAG
from tests.conftest import make_integration
from tests.deployments import (
    Project,
    assert_same_contacts,
    covers,
    deployed,
    duplicate_keys,
    idle,
    quiet_settle_minutes,
    rabbitmq_vhost,
    redis_backend,
    runs_of,
    sensor_hours,
    simulator,
    single_process_import,
    utc_now,
    wait_for,
)
from tests.helpers import sql_rows

SIMULATED = ["sim_a", "sim_b", "sim_c", "sim_d"]
CRM = "crm_e"
CRM_URL_ENV = "WFM_TEST_CRM_URL"
TABLE = "crm_queue_stats"


@pytest.fixture
def broker_url() -> Iterator[str]:
    yield from rabbitmq_vhost()


def crm_integration(history_start, now) -> dict:
    """An SQL-database integration whose table the test can lock, to hold a run mid-read."""
    return {
        "id": CRM,
        "vendor": "database",
        "delivery": "on_premise",
        "interval_minutes": 60,
        "settle_minutes": quiet_settle_minutes(now),
        "revision_window_hours": 1,
        "data": ["contacts"],
        "timezone": "UTC",
        "history_start": history_start.isoformat(),
        "status": "paused",  # connected later in the test
        "source": {
            "url_env": CRM_URL_ENV,
            "contacts": {
                "query": f"SELECT external_queue_id, channel, interval_start, offered, answered, "
                f"abandoned, handle_time FROM {TABLE} "
                "WHERE interval_start >= :window_start AND interval_start < :window_end"
            },
        },
    }


def fill_crm_table(url: str, start, end) -> int:
    """The CRM's table: a simulator's rows for [start, end)."""
    rows = (
        build_source(make_integration(id=CRM, interval_minutes=60, timezone="UTC"))
        .contacts(start, end)
        .frame
    )
    table = rows[["external_queue_id", "channel", "offered", "answered", "abandoned"]].assign(
        interval_start=rows["interval_start"].dt.tz_convert("UTC").dt.tz_localize(None),
        handle_time=rows["handle_time_s"],
    )
    engine = sa.create_engine(url)
    table.to_sql(TABLE, engine, index=False)
    engine.dispose()
    return len(table)


def lock_waits(url: str) -> int:
    [(waiting,)] = sql_rows(
        url,
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname = :table AND NOT l.granted",
        table=TABLE,
    )
    return waiting


def test_the_deployment_writes_dagster_celerys_launcher_with_the_settings_workers_need():
    config = launcher_config("BROKER", "BACKEND", 45)
    assert config["module"] == "etl.celery_runs"
    assert config["config"]["broker"] == {"env": "BROKER"}
    assert config["config"]["backend"] == {"env": "BACKEND"}
    source = config["config"]["config_source"]
    assert source["task_acks_late"] is True
    assert source["worker_prefetch_multiplier"] == 1
    launcher = CeleryRunLauncher.from_config_value(
        None, {**config["config"], "broker": "amqp://x@127.0.0.1//", "backend": "redis://x/0"}
    )
    assert launcher.worker_lost_after_seconds == 45
    assert launcher.celery.conf.task_acks_late is True


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_import_like_one_process_and_a_lost_worker_is_re_imported_once(
    tmp_path: Path, pg_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
):
    now = utc_now()
    start, end = sensor_hours(now, 2)
    integrations = [simulator(i, n, start, now) for n, i in enumerate(SIMULATED)]
    integrations.append(crm_integration(start, now))
    project = Project(
        tmp_path / "project",
        integrations,
        env={
            "DAGSTER_PG_URL": pg_url,
            "WFM_CELERY_BROKER_URL": broker_url,
            "WFM_CELERY_BACKEND_URL": redis_backend(),
            CRM_URL_ENV: pg_url,
        },
    )
    assert fill_crm_table(pg_url, start, end) > 0
    home = tmp_path / "deploy"
    celery = ["--launcher", "celery", "--workers", "2"]
    for name in ("DAGSTER_PG_URL", "WFM_CELERY_BROKER_URL", "WFM_CELERY_BACKEND_URL"):
        monkeypatch.setenv(name, project.env[name])  # the instance's yaml reads them

    with deployed(
        project, home, *celery, "--monitor-interval", "3", "--worker-lost-after", "5"
    ) as running:
        workers = {name for name in running.pids() if name.startswith("worker")}
        assert workers == {"worker1", "worker2"}
        with running.instance() as instance:
            # The four simulated integrations' history: requested by their gap sensors when
            # the daemon starts, all four at once, through the run queue.
            def history_done() -> list[dg.DagsterRun] | None:
                runs = [r for i in SIMULATED for r in runs_of(instance, i)]
                done = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
                return done if len(done) == len(SIMULATED) and idle(instance) else None

            history = wait_for(history_done, 400, "the four history imports", running)
            assert {r.tags[TRIGGER_TAG] for r in history} == {"history"}
            assert all(covers(r, start, end) for r in history)
            assert {r.tags[WORKER_TAG].split("@")[0] for r in history} == workers

            # The CRM's history, imported by hand while the integration is still paused,
            # is held mid-read by a lock on its table; the worker running it is killed (its
            # whole process group, as when a machine is lost).
            engine = sa.create_engine(pg_url)
            with engine.connect() as lock:
                lock.execute(sa.text(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE"))
                run_id = running.submit(CRM, start, end, trigger="cli")
                wait_for(lambda: lock_waits(pg_url), 300, "the CRM run to read", running)
                victim = instance.get_run_by_id(run_id)
                assert victim.status == dg.DagsterRunStatus.STARTED
                worker = victim.tags[WORKER_TAG].split("@")[0]
                os.killpg(running.pids()[worker], signal.SIGKILL)
                failed = wait_for(
                    lambda: (r := instance.get_run_by_id(run_id)).is_finished and r,
                    300,
                    "the lost run to fail",
                    running,
                )
                lock.rollback()
            engine.dispose()
            assert failed.status == dg.DagsterRunStatus.FAILURE
            failure = instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.RUN_FAILURE
            ).records
            assert f"worker {worker}@" in failure[0].event_log_entry.message
            assert project.warehouse.read_window("contact_intervals", CRM, start, end).empty

            # Connected: the config says active and the code location is reloaded, as from
            # the UI. The gap sensor imports the hours the lost run left, on the worker left.
            project.set_status(CRM, "active")
            running.client().reload_repository_location(LOCATION_NAME)

            def re_imported() -> list[dg.DagsterRun] | None:
                runs = [r for r in runs_of(instance, CRM) if r.run_id != run_id]
                ok = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
                return ok if ok and idle(instance) else None

            again = wait_for(re_imported, 400, "the gap sensor's re-import", running)
            assert {r.tags[TRIGGER_TAG] for r in again} == {"history"}
            assert any(covers(r, start, end) for r in again)
            survivor = (workers - {worker}).pop()
            assert {r.tags[WORKER_TAG].split("@")[0] for r in again} == {survivor}
        assert f"warning: {worker} exited (signal 9); 1 worker(s) left" in running.output

    expected = single_process_import(
        project, tmp_path / "reference", start, end, **{CRM_URL_ENV: pg_url}
    )
    assert_same_contacts(project.warehouse, expected, [*SIMULATED, CRM], start, end)
    assert duplicate_keys(project.warehouse) == []


def test_run_monitoring_fails_a_run_whose_worker_stopped_answering(broker_url: str):
    """A worker that vanished without the broker noticing (no redelivery): the task stays
    STARTED in the result backend, and the worker named there no longer answers a ping."""
    config = launcher_config("BROKER", "BACKEND", worker_lost_after_seconds=1)["config"]
    launcher = CeleryRunLauncher.from_config_value(
        None, {**config, "broker": broker_url, "backend": redis_backend()}
    )
    task_id = f"test-{uuid.uuid4().hex}"
    launcher.celery.backend.store_result(
        task_id, {"pid": 1, "hostname": "ghost@nowhere"}, "STARTED"
    )
    run = dg.DagsterRun(job_name="sim_a_import", tags={DAGSTER_CELERY_TASK_ID_TAG: task_id})
    first = launcher.check_run_worker_health(run)
    assert first.status == WorkerStatus.RUNNING  # silent once: not lost yet
    time.sleep(1.1)
    lost = launcher.check_run_worker_health(run)
    assert lost.status == WorkerStatus.FAILED
    assert "Celery worker ghost@nowhere, which was running this run, has not answered" in lost.msg
    launcher.celery.backend.store_result(task_id, 0, "SUCCESS")
    assert launcher.check_run_worker_health(run).status == WorkerStatus.SUCCESS
    untagged = dg.DagsterRun(job_name="sim_a_import")
    assert launcher.check_run_worker_health(untagged).status == WorkerStatus.UNKNOWN
