"""A real `wfm-etl deploy` for end-to-end tests: its processes, runs submitted through the
webserver's GraphQL API (as the UI does), and what the instance then says about them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from dagster_graphql import DagsterGraphQLClient

from bench.celery_tick import broker_vhost
from etl.config import Settings, parse_integrations
from etl.definitions import build_definitions
from etl.deploy import LOCATION_NAME
from etl.partitions import HOUR, floor_hour, hour_of
from etl.resources.warehouse import Warehouse
from etl.schedules.ticks import (
    INTEGRATION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    range_tags,
)
from tests.helpers import import_range

ROOT = Path(__file__).resolve().parents[1]
STARTED = re.compile(r"started (\S+) \(pid (\d+),")
KEY = ["integration_id", "external_queue_id", "channel", "interval_start"]
SUMS = ["offered", "answered", "abandoned", "handle_time_s"]
RABBITMQ_URL = os.environ.get("WFM_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("WFM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REVISION_HOURS = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quiet_settle_minutes(now: datetime) -> int:
    """A settle delay that puts an hourly integration's next tick half an hour away, so no
    schedule fires while a test runs."""
    return (now.minute + 30) % 60


def simulator(
    integration_id: str,
    seed: int,
    history_start: datetime,
    now: datetime,
    revision_window_hours: int = REVISION_HOURS,
) -> dict:
    return {
        "id": integration_id,
        "vendor": "simulator",
        "delivery": "cloud",
        "interval_minutes": 60,
        "settle_minutes": quiet_settle_minutes(now),
        "revision_window_hours": revision_window_hours,
        "data": ["contacts"],
        "timezone": "UTC",
        "history_start": history_start.isoformat(),
        "source": {"seed": seed, "queues": 3, "channels": ["calls", "chats"]},
    }


def sensor_hours(now: datetime, hours: int) -> tuple[datetime, datetime]:
    """`hours` hours the gap sensor owns now: just before the schedule's revision window."""
    end = floor_hour(now) - REVISION_HOURS * HOUR
    return end - hours * HOUR, end


@dataclass
class Project:
    """A project home (config, warehouse, mappings) and the environment its processes get."""

    root: Path
    integrations: list[dict]
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "mappings").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump({"integrations": self.integrations}))
        self.env = {
            **os.environ,
            "WFM_HOME": str(self.root),
            "WFM_INTEGRATIONS": str(self.config_path),
            "WFM_WAREHOUSE_DIR": str(self.root / "warehouse"),
            "WFM_MAPPINGS_DIR": str(self.root / "mappings"),
            **self.env,
        }

    def set_status(self, integration_id: str, status: str) -> None:
        """Pause or resume an integration in its config file."""
        for integration in self.integrations:
            if integration["id"] == integration_id:
                integration["status"] = status
        self.config_path.write_text(yaml.safe_dump({"integrations": self.integrations}))

    @property
    def config_path(self) -> Path:
        return self.root / "integrations.yaml"

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(root=str(self.root / "warehouse"))

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """`wfm-etl <args>` in this project's environment."""
        return subprocess.run(
            [sys.executable, "-m", "etl.cli", *args],
            env={**self.env, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )


@dataclass
class Running:
    """A deployment started by `wfm-etl deploy`."""

    project: Project
    home: Path
    port: int
    process: subprocess.Popen
    output_path: Path

    @property
    def output(self) -> str:
        return self.output_path.read_text()

    def pids(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in STARTED.findall(self.output)}

    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port)

    def submit(self, integration_id: str, start: datetime, end: datetime, trigger: str) -> str:
        """A range run of the integration's import job, through the run queue, as a user
        launching it from the UI would."""
        return self.client().submit_job_execution(
            f"{integration_id}_import",
            repository_location_name=LOCATION_NAME,
            repository_name="__repository__",
            tags=range_tags(start, end, **{TRIGGER_TAG: trigger}),
        )

    @contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            yield instance

    def diagnostics(self) -> str:
        logs = sorted((self.home / "process-logs").glob("*.log"))
        tails = [f"--- {p.name}\n" + "\n".join(p.read_text().splitlines()[-40:]) for p in logs]
        return "--- wfm-etl deploy\n" + self.output + "\n" + "\n".join(tails)


@contextmanager
def deployed(project: Project, home: Path, *args: str) -> Iterator[Running]:
    """`wfm-etl deploy --home <home> <args>` until the UI is up; stopped afterwards, and every
    process it started is gone."""
    port = free_port()
    output_path = home.parent / f"{home.name}-deploy.out"
    with output_path.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "etl.cli",
                "deploy",
                "--home",
                str(home),
                "--port",
                str(port),
                "--code-server-port",
                str(free_port()),
                *args,
            ],
            env=project.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Running(project, home, port, process, output_path)
    try:
        wait_for(
            lambda: "Dagster UI on" in running.output or process.poll() is not None,
            300,
            "the deployment to start",
            running,
        )
        if process.poll() is not None:
            pytest.fail(f"wfm-etl deploy exited:\n{running.diagnostics()}", pytrace=False)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
        for pid in running.pids().values():
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def wait_for(
    condition: Callable[[], object], seconds: float, what: str, running: Running | None = None
) -> object:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            details = running.diagnostics() if running else ""
            pytest.fail(f"waited {seconds:.0f} s for {what}\n{details}", pytrace=False)
        time.sleep(1)


def runs_of(instance: dg.DagsterInstance, integration_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(tags={INTEGRATION_TAG: integration_id})))


def window_of(run: dg.DagsterRun) -> tuple[datetime, datetime]:
    return hour_of(run.tags[RANGE_START_TAG]), hour_of(run.tags[RANGE_END_TAG]) + HOUR


def covers(run: dg.DagsterRun, start: datetime, end: datetime) -> bool:
    first, last = window_of(run)
    return first <= start and end <= last


def idle(instance: dg.DagsterInstance) -> bool:
    """No run queued, starting or running."""
    pending = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    return not instance.get_runs(dg.RunsFilter(statuses=pending), limit=1)


def single_process_import(
    project: Project, root: Path, start: datetime, end: datetime, **env: str
) -> Warehouse:
    """The same integrations imported over [start, end) in this process, one run each, into
    a warehouse of their own: what a deployment must hold for those hours."""
    settings = Settings(
        integrations_path=project.config_path,
        warehouse_dir=root / "warehouse",
        mappings_dir=project.root / "mappings",
    )
    (root / "home").mkdir(parents=True)
    integrations = parse_integrations({"integrations": project.integrations})
    defs = build_definitions(settings, integrations)
    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            for integration in integrations:
                result = import_range(defs, instance, integration.id, start, end)
                assert result.success, integration.id
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return Warehouse(root=str(settings.warehouse_dir))


def contact_rows(warehouse: Warehouse, integration_id: str, start: datetime, end: datetime):
    frame = warehouse.read_window("contact_intervals", integration_id, start, end)
    return frame[KEY + SUMS].sort_values(KEY).reset_index(drop=True)


def assert_same_contacts(
    got: Warehouse, expected: Warehouse, integration_ids: list[str], start: datetime, end: datetime
) -> None:
    """Same keys, same values, same sums, for each integration over [start, end)."""
    for integration_id in integration_ids:
        ours = contact_rows(got, integration_id, start, end)
        theirs = contact_rows(expected, integration_id, start, end)
        assert len(theirs) > 0, integration_id
        assert ours[KEY].equals(theirs[KEY]), integration_id
        pd.testing.assert_frame_equal(ours, theirs)
        assert ours[SUMS].sum().to_dict() == theirs[SUMS].sum().to_dict()


def duplicate_keys(warehouse: Warehouse) -> list[tuple]:
    frame = warehouse.query(
        "SELECT integration_id, external_queue_id, channel, interval_start, count(*) AS n "
        "FROM contact_intervals GROUP BY ALL HAVING count(*) > 1"
    )
    return list(frame.itertuples(index=False))


def rabbitmq_vhost() -> Iterator[str]:
    """A broker URL on a virtual host of its own (removed afterwards), so tests and other
    deployments sharing the broker never take each other's tasks."""
    try:
        with broker_vhost(RABBITMQ_URL) as url:
            yield url
    except RuntimeError as exc:
        if "RabbitMQ is needed" not in str(exc):
            raise
        pytest.fail(f"{exc} (this test needs it)", pytrace=False)


def redis_backend() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is needed by this test but not reachable at {REDIS_URL} (set "
            f"WFM_TEST_REDIS_URL): {exc}",
            pytrace=False,
        )
    return REDIS_URL


def utc_now() -> datetime:
    return datetime.now(UTC)
