"""A deployment as Dagster runs in production: separate processes, PostgreSQL, a run queue.

`wfm-etl deploy` writes a Dagster home (`dagster.yaml`, `workspace.yaml`) and starts, each as
a process of its own, what Dagster's own deployments run:

- the code server (`dagster code-server start -m etl.definitions`): loads the project and
  serves it over gRPC to the other processes;
- the daemon (`dagster-daemon run`): schedules, sensors, the run queue, run monitoring;
- the webserver (`dagster-webserver`): the UI and its GraphQL API;
- with `--launcher celery`, Celery workers (`wfm-etl worker`) that execute the runs.

The instance lives in PostgreSQL (`DAGSTER_PG_URL`), runs go through Dagster's
QueuedRunCoordinator with a limit per integration (the `wfm/integration` tag every import
run carries), and the run launcher is a choice: Dagster's `DefaultRunLauncher`, the
project's preloaded launcher (one host, faster start) or dagster-celery's, with workers on
RabbitMQ / Redis (`WFM_CELERY_BROKER_URL`, `WFM_CELERY_BACKEND_URL`). docs/deploy.md says
which to use where.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from etl.config import PROJECT_ROOT
from etl.instance import DEPLOY_MARKER, PG_URL_ENV, RANGE_RUN_ENV, RUN_LAUNCHER, postgres_storage
from etl.schedules.ticks import INTEGRATION_TAG

CELERY_BROKER_ENV = "WFM_CELERY_BROKER_URL"
CELERY_BACKEND_ENV = "WFM_CELERY_BACKEND_URL"
DEPLOY_HOME_ENV = "WFM_DEPLOY_HOME"
LOCATION_NAME = "wfm_etl"  # pyproject.toml's code_location_name, as `make dev` names it
DEFAULT_RUN_LAUNCHER = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
LAUNCHERS = ("default", "preloaded", "celery")

READY_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30


class DeployError(RuntimeError):
    """The deployment cannot start; the message says what to fix."""


@dataclass(frozen=True)
class Deployment:
    """What `wfm-etl deploy` sets up: where its Dagster home is and how runs are launched."""

    home: Path
    launcher: str = "default"
    workers: int = 2
    worker_concurrency: int = 1
    host: str = "127.0.0.1"
    port: int = 3000
    code_server_port: int = 4266
    max_concurrent_runs: int | None = None
    runs_per_integration: int = 2
    monitoring_interval_s: int = 30
    worker_lost_after_s: int = 60

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            known = ", ".join(LAUNCHERS)
            raise DeployError(f"launcher must be one of {known}, not {self.launcher!r}")
        for name in ("workers", "worker_concurrency", "runs_per_integration"):
            if getattr(self, name) < 1:
                raise DeployError(f"{name.replace('_', '-')} must be at least 1")

    @property
    def concurrent_runs(self) -> int:
        """Runs the queue starts at once. On Celery, the workers' processes: a run the queue
        starts beyond them would wait in the broker, where Dagster cannot see or limit it."""
        if self.max_concurrent_runs is not None:
            return self.max_concurrent_runs
        if self.launcher == "celery":
            return self.workers * self.worker_concurrency
        return os.cpu_count() or 2

    def run_launcher(self) -> dict:
        if self.launcher == "celery":
            from etl.celery_runs import launcher_config

            return launcher_config(CELERY_BROKER_ENV, CELERY_BACKEND_ENV, self.worker_lost_after_s)
        return dict(RUN_LAUNCHER if self.launcher == "preloaded" else DEFAULT_RUN_LAUNCHER)

    def instance_config(self) -> dict:
        """`dagster.yaml`: PostgreSQL storage (URL from DAGSTER_PG_URL), the run queue with a
        limit per integration, run monitoring, and the chosen run launcher."""
        return {
            "telemetry": {"enabled": False},
            **postgres_storage({"env": PG_URL_ENV}),
            "run_queue": {
                "max_concurrent_runs": self.concurrent_runs,
                "tag_concurrency_limits": [
                    {
                        "key": INTEGRATION_TAG,
                        "value": {"applyLimitPerUniqueValue": True},
                        "limit": self.runs_per_integration,
                    }
                ],
            },
            "run_monitoring": {
                "enabled": True,
                "poll_interval_seconds": self.monitoring_interval_s,
                # A lost run fails; the gap sensor imports its hours again (once).
                "max_resume_run_attempts": 0,
                "start_timeout_seconds": 600,
            },
            "run_launcher": self.run_launcher(),
        }

    def workspace_config(self) -> dict:
        """`workspace.yaml`: the code server, by address (the daemon and the webserver do not
        load the project themselves)."""
        return {
            "load_from": [
                {
                    "grpc_server": {
                        "host": self.host,
                        "port": self.code_server_port,
                        "location_name": LOCATION_NAME,
                    }
                }
            ]
        }

    @property
    def workspace_path(self) -> Path:
        return self.home / "workspace.yaml"

    @property
    def log_dir(self) -> Path:
        return self.home / "process-logs"  # not logs/: Dagster keeps files of its own there

    def write(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        dump = lambda data: yaml.safe_dump(data, sort_keys=False)  # noqa: E731
        (self.home / "dagster.yaml").write_text(DEPLOY_MARKER + dump(self.instance_config()))
        self.workspace_path.write_text(dump(self.workspace_config()))

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The environment of every process: the caller's, with this Dagster home."""
        return {
            **{name: value for name, value in RANGE_RUN_ENV.items()},
            **env,
            "DAGSTER_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
        }

    def processes(self) -> list[Process]:
        """Everything to start, in order: each waits for the one before to be ready."""
        workspace = ["-w", str(self.workspace_path)]
        processes = [
            Process(
                "code-server",
                [
                    _script("dagster"),
                    "code-server",
                    "start",
                    "-m",
                    "etl.definitions",
                    "-d",
                    str(PROJECT_ROOT),
                    "-h",
                    self.host,
                    "-p",
                    str(self.code_server_port),
                    "--location-name",
                    LOCATION_NAME,
                ],
                ready=lambda: _port_open(self.host, self.code_server_port),
            )
        ]
        if self.launcher == "celery":
            names = [f"worker{n}" for n in range(1, self.workers + 1)]
            processes += [
                Process(
                    name,
                    [
                        sys.executable,
                        "-m",
                        "etl.cli",
                        "worker",
                        "--name",
                        name,
                        "--concurrency",
                        str(self.worker_concurrency),
                    ],
                    worker=True,
                )
                for name in names
            ]
        processes += [
            Process("daemon", [_script("dagster-daemon"), "run", *workspace]),
            Process(
                "webserver",
                [_script("dagster-webserver"), *workspace, "-h", self.host, "-p", str(self.port)],
                ready=lambda: _http_ok(f"http://{self.host}:{self.port}/server_info"),
            ),
        ]
        return processes


@dataclass
class Process:
    """One process of the deployment; `ready` tells when the next may start."""

    name: str
    argv: list[str]
    ready: Callable[[], bool] | None = None
    worker: bool = False  # workers are redundant: the deployment outlives one of them
    popen: subprocess.Popen | None = field(default=None, repr=False)


def _script(name: str) -> str:
    """A console script of this Python environment (beside its interpreter), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise DeployError(f"{name} is not installed in this environment (pip install -e .)")
    return found


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


# -- checks before anything starts ----------------------------------------------------------------
def check_services(deployment: Deployment, env: Mapping[str, str]) -> None:
    """The servers the deployment needs are configured and answer, or a `DeployError` that
    names the variable, the address and what went wrong (passwords hidden)."""
    import sqlalchemy as sa

    url = env.get(PG_URL_ENV)
    if not url:
        raise DeployError(
            f"{PG_URL_ENV} is not set: a deployment keeps its Dagster instance in PostgreSQL "
            "(e.g. postgresql+psycopg2://dagster@127.0.0.1:5432/dagster)"
        )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            con.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise DeployError(f"{PG_URL_ENV}: cannot connect to {shown}: {_first_line(exc)}") from exc
    finally:
        engine.dispose()
    if deployment.launcher == "celery":
        check_celery(env)


def check_celery(env: Mapping[str, str]) -> None:
    """The broker and the result backend answer."""
    from kombu import Connection
    from kombu.utils.url import maybe_sanitize_url

    for name in (CELERY_BROKER_ENV, CELERY_BACKEND_ENV):
        if not env.get(name):
            raise DeployError(
                f"{name} is not set: Celery workers need a broker (e.g. "
                "amqp://guest:guest@127.0.0.1:5672//) and a result backend (e.g. "
                f"redis://127.0.0.1:6379/0) in {CELERY_BROKER_ENV} and {CELERY_BACKEND_ENV}"
            )
    broker = env[CELERY_BROKER_ENV]
    try:
        with Connection(broker, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # kombu raises the transport's own errors
        shown = maybe_sanitize_url(broker)
        raise DeployError(
            f"{CELERY_BROKER_ENV}: the broker at {shown} does not answer: {_first_line(exc)}"
        ) from exc
    backend = env[CELERY_BACKEND_ENV]
    if backend.startswith(("redis://", "rediss://")):
        import redis

        try:
            redis.Redis.from_url(backend, socket_connect_timeout=5).ping()
        except redis.RedisError as exc:
            shown = maybe_sanitize_url(backend)
            raise DeployError(
                f"{CELERY_BACKEND_ENV}: the result backend at {shown} does not answer: "
                f"{_first_line(exc)}"
            ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- running it -----------------------------------------------------------------------------------
class Supervisor:
    """Starts the processes in order, each once the one before is ready; stops them all when
    one that the deployment cannot do without exits, or when asked to (SIGINT, SIGTERM)."""

    def __init__(self, deployment: Deployment, env: Mapping[str, str], out=sys.stdout):
        self.deployment = deployment
        self.env = deployment.environment(env)
        self.processes = deployment.processes()
        self.out = out
        self._stopping = False

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def log_path(self, process: Process) -> Path:
        return self.deployment.log_dir / f"{process.name}.log"

    def start(self) -> None:
        self.deployment.log_dir.mkdir(parents=True, exist_ok=True)
        for process in self.processes:
            log = self.log_path(process).open("ab")
            process.popen = subprocess.Popen(
                process.argv,
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as a whole
            )
            log.close()
            self.say(
                f"started {process.name} (pid {process.popen.pid}, log {self.log_path(process)})"
            )
            if process.ready is not None:
                self._wait_ready(process)
            if process.worker and process is self._last_worker():
                self._wait_workers()

    def _last_worker(self) -> Process | None:
        return next((p for p in reversed(self.processes) if p.worker), None)

    def _wait_ready(self, process: Process) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not process.ready():
            self._check_alive(process)
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{process.name} was not ready after {READY_TIMEOUT_S} s; "
                    f"see {self.log_path(process)}"
                )
            time.sleep(0.5)

    def _wait_workers(self) -> None:
        """Each worker answers a ping before runs are sent: runs spread over all of them."""
        from dagster import DagsterInstance

        from etl.celery_runs import PING_TIMEOUT_S

        workers = [p for p in self.processes if p.worker]
        with DagsterInstance.from_config(str(self.deployment.home)) as instance:
            control = instance.run_launcher.celery.control
            deadline = time.monotonic() + READY_TIMEOUT_S
            waiting = {p.name for p in workers}
            while waiting:
                for process in workers:
                    self._check_alive(process)
                replies = control.ping(timeout=PING_TIMEOUT_S)
                answered = {name.split("@")[0] for reply in replies for name in reply}
                waiting -= answered
                if waiting and time.monotonic() > deadline:
                    raise DeployError(
                        f"Celery workers {', '.join(sorted(waiting))} did not answer after "
                        f"{READY_TIMEOUT_S} s; see their logs in {self.deployment.log_dir}"
                    )
        self.say(f"{len(workers)} Celery worker(s) answering")

    def _check_alive(self, process: Process) -> None:
        code = process.popen.poll() if process.popen else None
        if code is not None:
            raise DeployError(
                f"{process.name} exited with code {code} while starting; see "
                f"{self.log_path(process)}"
            )

    def watch(self, poll_s: float = 1.0) -> int:
        """Until stopped: 0 when asked to stop, 1 when a process the deployment needs exited."""
        reported: set[str] = set()
        while not self._stopping:
            for process in self.processes:
                code = process.popen.poll() if process.popen else None
                if code is None or process.name in reported:
                    continue
                reported.add(process.name)
                how = f"signal {-code}" if code < 0 else f"code {code}"
                alive = [p for p in self.processes if p.worker and p.popen.poll() is None]
                if process.worker and alive:
                    self.say(
                        f"warning: {process.name} exited ({how}); {len(alive)} worker(s) left. "
                        "Runs it was executing fail (run monitoring) and the gap sensor "
                        "imports their hours again."
                    )
                    continue
                self.say(
                    f"error: {process.name} exited ({how}); see {self.log_path(process)}. "
                    "Stopping the deployment."
                )
                return 1
            time.sleep(poll_s)
        return 0

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def stop(self) -> None:
        """SIGTERM to each process in reverse order of start, SIGKILL to what is left after
        STOP_TIMEOUT_S (a Celery worker waits for the run it executes)."""
        running = [p for p in reversed(self.processes) if p.popen and p.popen.poll() is None]
        for process in running:
            _signal_group(process.popen, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.popen, signal.SIGKILL)
                process.popen.wait()
        for process in self.processes:  # leftovers of a group whose leader already exited
            if process.popen:
                _signal_group(process.popen, signal.SIGKILL)


def _signal_group(popen: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


# -- command line -----------------------------------------------------------------------------
def default_home(env: Mapping[str, str]) -> Path:
    return Path(env.get(DEPLOY_HOME_ENV) or PROJECT_ROOT / ".dagster_deploy")


def add_commands(sub: argparse._SubParsersAction) -> None:
    deploy = sub.add_parser(
        "deploy",
        help="start the webserver, daemon, code server (and Celery workers) as separate "
        "processes, with the instance on PostgreSQL",
    )
    deploy.add_argument("--home", type=Path, help=f"Dagster home to write (${DEPLOY_HOME_ENV})")
    deploy.add_argument("--launcher", choices=LAUNCHERS, default="default")
    deploy.add_argument("--workers", type=int, default=2, help="Celery workers (celery launcher)")
    deploy.add_argument("--worker-concurrency", type=int, default=1, help="runs per worker")
    deploy.add_argument("--host", default="127.0.0.1")
    deploy.add_argument("--port", type=int, default=3000, help="the webserver's port")
    deploy.add_argument("--code-server-port", type=int, default=4266)
    deploy.add_argument("--max-concurrent-runs", type=int)
    deploy.add_argument("--runs-per-integration", type=int, default=2)
    deploy.add_argument("--monitor-interval", type=int, default=30, help="run monitoring, s")
    deploy.add_argument("--worker-lost-after", type=int, default=60, help="seconds")
    deploy.add_argument(
        "--write-only", action="store_true", help="write dagster.yaml and workspace.yaml only"
    )
    worker = sub.add_parser("worker", help="a Celery worker for a deployment's runs")
    worker.add_argument("--name", default="worker", help="node name (before @host)")
    worker.add_argument("--concurrency", type=int, default=1, help="runs at once")
    worker.add_argument("--queue", default="dagster")
    worker.add_argument("--loglevel", default="INFO")


def deployment_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> Deployment:
    return Deployment(
        home=(args.home or default_home(env)).resolve(),
        launcher=args.launcher,
        workers=args.workers,
        worker_concurrency=args.worker_concurrency,
        host=args.host,
        port=args.port,
        code_server_port=args.code_server_port,
        max_concurrent_runs=args.max_concurrent_runs,
        runs_per_integration=args.runs_per_integration,
        monitoring_interval_s=args.monitor_interval,
        worker_lost_after_s=args.worker_lost_after,
    )


def deploy_command(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    deployment = deployment_from_args(args, env)
    deployment.write()
    print(f"wrote {deployment.home / 'dagster.yaml'} and {deployment.workspace_path}")
    if args.write_only:
        for process in deployment.processes():
            print(f"  {process.name}: DAGSTER_HOME={deployment.home} {' '.join(process.argv)}")
        return 0
    check_services(deployment, env)
    supervisor = Supervisor(deployment, env)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    try:
        supervisor.start()
        supervisor.say(
            f"Dagster UI on http://{deployment.host}:{deployment.port} "
            f"({deployment.launcher} run launcher); Ctrl-C stops everything"
        )
        return supervisor.watch()
    finally:
        supervisor.stop()
        supervisor.say("stopped")


def worker_command(args: argparse.Namespace) -> int:
    from etl.celery_runs import NotCeleryInstanceError, run_worker

    try:
        run_worker(args.name, args.concurrency, [args.queue], args.loglevel)
    except NotCeleryInstanceError as exc:
        raise DeployError(str(exc)) from exc
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "deploy": deploy_command,
    "worker": worker_command,
}
