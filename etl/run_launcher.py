"""A run launcher whose run processes start warm.

Dagster's default launcher starts every run as a fresh Python process that imports Dagster,
pandas, pyarrow, pandera and the project before doing any work: about 2-3 s of CPU per run.
Fifty integrations ticking every 15 minutes spend most of their time there (bench/). This
launcher starts each run in a process forked from a server process (Python's `forkserver`)
that has already imported the heavy third-party libraries and then the project's own modules
(`etl.preload`). A run reads the integrations config itself, so a changed config is picked up
by the next run; and a run started after the project's files changed (an edit, a new release)
drops the preloaded project modules and imports them fresh (`project_fingerprint`), so it
never runs code older than its files, and the run's tag `wfm/project` says which it did.
(Fresh imports load bytecode the Makefile compiles; where PYTHONDONTWRITEBYTECODE is set and
nothing compiled them, every such run compiles them again.) Upgrading one of the preloaded
libraries, or getting the project preloaded again after it changed, needs a restart of the
process that launches runs (the daemon or the UI).

A run whose code location uses another Python interpreter is started the standard way
(`dagster api execute_run` in a new process). Each run records its process id in a tag, so
runs can be terminated from the UI (SIGTERM: Dagster marks the run canceled) and the daemon's
run monitoring can tell when a run process died.

Configured in `dagster.yaml` (the set-up writes it):

    run_launcher:
      module: etl.run_launcher
      class: PreloadedRunLauncher
      config:
        preload_modules: [dagster, pandas, ...]   # optional; the default list below
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import Array, AssetKey, DagsterInstance, Field, Noneable
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

from etl.config import RUN_JOB_ENV

if TYPE_CHECKING:
    from dagster._core.definitions.repository_definition import RepositoryDefinition

PID_TAG = "wfm/run_pid"
PEAK_RSS_TAG = "wfm/peak_rss_mib"
# Whether a run found the project's modules preloaded or imported them fresh (they changed).
PROJECT_TAG = "wfm/project"
PROJECT = __name__.partition(".")[0]  # the package whose modules a run may find preloaded
# Third-party libraries every run imports, then the project's own modules.
DEFAULT_PRELOAD = (
    "dagster",
    "dagster_postgres",
    "dagster_pandera",
    "pandas",
    "pandera.pandas",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.compute",
    "duckdb",
    "sqlalchemy",
    "psycopg2",
    "pydantic",
    "yaml",
    # What the project's sources import besides: imported in each run instead, they took
    # 0.15 s of every run process (bench/analysis.md).
    "pyarrow.csv",
    "sqlglot",
    "sqlglot.dialects.dialect",
    "botocore.auth",
    "botocore.awsrequest",
    "botocore.credentials",
    "xml.etree.ElementTree",
    "xml.sax.saxutils",
    # Last, once the libraries are in: the project. Its import in each run took 41% of a
    # mappings run's process (bench/analysis.md).
    f"{PROJECT}.preload",
)


# Arrow's allocator in run processes (Arrow's own variable: a value set outside wins).
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
RUN_ARROW_POOL = "jemalloc"


def use_run_allocator() -> None:
    """Give Arrow's buffers jemalloc in a run process (the C library's allocator where this
    pyarrow has no jemalloc), unless `ARROW_DEFAULT_MEMORY_POOL` says otherwise. A run
    process imports one window and exits. Measured on a month of 1.44-1.49 M rows imported
    in a forked process, 13 alternating rounds (bench/analysis.md): jemalloc's peak RSS
    910-959 MiB against 878-1,036 MiB (medians 921 and 1,010) with the C library's, at no
    cost in time (medians 4.4 and 4.7 s); in the whole CSV history, the import's processes
    peaked at 1,953 and 1,969 MiB PSS (two runs) against 1,994 MiB, in the same time within
    the runs' spread. Arrow's default, mimalloc, peaked at 992-1,008 MiB a month, and made a
    fresh process's first month slow in an earlier measurement (4.5-4.8 s against 2.9-3.1 s)."""
    import pyarrow as pa

    name = os.environ.get(ARROW_POOL_ENV, RUN_ARROW_POOL)
    pools = {
        "system": pa.system_memory_pool,
        "jemalloc": pa.jemalloc_memory_pool,
        "mimalloc": pa.mimalloc_memory_pool,
    }
    if name not in pools:
        return
    try:
        pool = pools[name]()
    except NotImplementedError:  # this pyarrow was built without it
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)


def project_fingerprint() -> str:
    """The project's module files as they are now (each one's path, size and modification
    time): an edit or a new release of the project changes it."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def drop_project_modules() -> None:
    """Forget the project's imported modules, so that the next import reads their files."""
    for name in [n for n in sys.modules if n == PROJECT or n.startswith(f"{PROJECT}.")]:
        del sys.modules[name]


def keep_preloaded_shared() -> None:
    """Leave the objects this process has so far (the preloaded libraries') out of the
    garbage collector's passes, in a process forked from a preloaded one or before it forks.

    A forked process shares its parent's memory page by page until it writes to a page, and a
    full collection writes to every object it visits: without this, each run copied those
    pages and spent its time walking them. Importing the project in a forked run took 0.69 s
    instead of 0.36 s, with 52 MiB more of the process's own memory (bench/analysis.md)."""
    gc.freeze()


def pool_connections(instance: DagsterInstance) -> None:
    """Keep one database connection per storage open for the process's run (the pool the
    webserver uses). dagster-postgres opens a new connection for every query otherwise: about
    200 in one import run, some 2 ms each in the benchmark."""
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)


def execute_run_here(
    run_id: str,
    instance: DagsterInstance,
    record_peak_memory: bool,
    tags: Mapping[str, str] | None = None,
) -> int:
    """Run `run_id` in this process, as `dagster api execute_run` does, with pooled database
    connections and Dagster's interrupt handling (SIGTERM cancels the run); the exit code.
    `record_peak_memory` tags the run with the process's peak memory (to size big imports):
    only meaningful in a process that runs one run (a Celery worker's process runs many).
    `tags` are added with it, at the end (one write)."""
    import resource

    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import capture_interrupts

    code = 1
    with capture_interrupts():
        pool_connections(instance)
        try:
            code = _execute_run_command_body(
                run_id, instance, lambda _event: None, set_exit_code_on_failure=True
            )
        finally:
            ended = dict(tags or {})
            if record_peak_memory:
                peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                ended[PEAK_RSS_TAG] = f"{peak_mib:.1f}"
            if ended:
                instance.add_run_tags(run_id, ended)
    return code


def _execute_run(serialized_args: str, environment: Mapping[str, str]) -> None:
    """The body of a forked run process.

    When the warm server preloaded the project (`etl.preload` noted its files' fingerprint
    before importing it) and the files changed since, this module is one of the old ones: it
    drops them all and hands the run to the module as its file now is."""
    keep_preloaded_shared()
    preloaded = getattr(sys.modules.get(f"{PROJECT}.preload"), "FINGERPRINT", None)
    if preloaded is None:
        _run_forked(serialized_args, environment, None)
    elif preloaded == project_fingerprint():
        _run_forked(serialized_args, environment, "preloaded")
    else:
        drop_project_modules()
        importlib.import_module(__name__)._run_forked(serialized_args, environment, "fresh")


def _run_forked(serialized_args: str, environment: Mapping[str, str], project: str | None) -> None:
    """Run the run in this forked process. The environment is the launcher's at launch time,
    as a new process would inherit it (the warm server's own is from when it started)."""
    from dagster._serdes import deserialize_value

    os.environ.clear()
    os.environ.update(environment)
    use_run_allocator()
    args = deserialize_value(serialized_args, ExecuteRunArgs)
    tags = {PROJECT_TAG: project} if project else None
    with DagsterInstance.from_ref(args.instance_ref) as instance:
        code = execute_run_here(args.run_id, instance, record_peak_memory=True, tags=tags)
    sys.exit(code)


class PreloadedRunLauncher(RunLauncher, ConfigurableClass):
    """Starts each run in a process forked from a server with the libraries already imported."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        preload_modules: Sequence[str] | None = None,
    ):
        self._inst_data = inst_data
        self._preload = list(DEFAULT_PRELOAD if preload_modules is None else preload_modules)
        self._context: Any = None
        self._processes: dict[str, Any] = {}
        self._exit_codes: dict[str, int] = {}
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {
            "preload_modules": Field(
                Noneable(Array(str)),
                is_required=False,
                default_value=None,
                description="Modules the warm server imports once (default: Dagster, the "
                "data libraries, then the project's modules through `etl.preload`).",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> PreloadedRunLauncher:
        return cls(inst_data=inst_data, preload_modules=config_value.get("preload_modules"))

    # -- launching ------------------------------------------------------------------------------
    def _forkserver(self) -> Any:
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(self._preload)
            self._context = context
        return self._context

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise ValueError(f"run {run.run_id} has no code origin: cannot start it")
        args = serialize_value(
            ExecuteRunArgs(
                job_origin=origin,
                run_id=run.run_id,
                instance_ref=self._instance.get_ref(),
                set_exit_code_on_failure=True,
            )
        )
        # The run process builds only what its job needs (`Settings.run_job`), and uses the
        # run processes' Arrow allocator (`use_run_allocator`; so does a new interpreter).
        environment = {ARROW_POOL_ENV: RUN_ARROW_POOL, **os.environ, RUN_JOB_ENV: run.job_name}
        if os.path.realpath(origin.executable_path) == os.path.realpath(sys.executable):
            process = self._forkserver().Process(
                target=_execute_run, args=(args, environment), daemon=False
            )
            process.start()
            pid = process.pid
        else:  # another interpreter: the standard way, a new process of that interpreter
            process = subprocess.Popen(
                [origin.executable_path, "-m", "dagster", "api", "execute_run", args],
                env=environment,
            )
            pid = process.pid
        self._forget_finished()
        self._processes[run.run_id] = process
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(pid)})

    def _forget_finished(self) -> None:
        """Keep exit codes, not process handles, of finished runs (the last few thousand)."""
        for run_id, process in list(self._processes.items()):
            code = _exit_code(process)
            if code is not None:
                del self._processes[run_id]
                self._exit_codes[run_id] = code
        for run_id in list(self._exit_codes)[: max(0, len(self._exit_codes) - 5000)]:
            del self._exit_codes[run_id]

    # -- watching and stopping ------------------------------------------------------------------
    def _pid(self, run: DagsterRun) -> int | None:
        value = run.tags.get(PID_TAG)
        return int(value) if value and value.isdigit() else None

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        process = self._processes.get(run.run_id)
        code = _exit_code(process) if process else self._exit_codes.get(run.run_id)
        if process is not None or code is not None:
            if code is None:
                return CheckRunHealthResult(WorkerStatus.RUNNING)
            return CheckRunHealthResult(
                WorkerStatus.SUCCESS if code == 0 else WorkerStatus.FAILED,
                msg=f"run process exited with code {code}",
            )
        pid = self._pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, msg="no process id recorded")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, msg=f"process {pid} is gone")
        except PermissionError:
            pass
        return CheckRunHealthResult(WorkerStatus.RUNNING)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = self._pid(run)
        if pid is None:
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def join(self, timeout: int = 30) -> None:
        """Wait for the runs this launcher started (tests and the benchmark use it)."""
        for process in list(self._processes.values()):
            if hasattr(process, "join"):
                process.join(timeout)
            else:
                process.wait(timeout)
        self._forget_finished()

    def dispose(self) -> None:
        self._processes = {}


def _exit_code(process: Any) -> int | None:
    """Exit code of a forked (multiprocessing) or started (subprocess) run process, or None."""
    return process.exitcode if hasattr(process, "exitcode") else process.poll()


class RunFactory:
    """Creates runs of the project's jobs as the daemon does (with their code origin), not
    started yet, from definitions loaded once as a code server keeps them: the benchmark and
    tests launch them through the instance's run launcher.

    Building the execution plan of a job loads the whole code location unless its definitions
    are at hand (Dagster keeps only the last job's); with 50 integrations that was 0.2 s a run
    (bench/)."""

    def __init__(self, module: str = "etl.definitions"):
        from dagster._core.definitions.reconstruct import ReconstructableRepository

        self.repository = ReconstructableRepository.for_module(module, "defs", os.getcwd())
        self._definitions: RepositoryDefinition | None = None

    def create(
        self,
        instance: DagsterInstance,
        job_name: str,
        tags: Mapping[str, str],
        asset_selection: Sequence[AssetKey] | None = None,
    ) -> DagsterRun:
        """A run of the job, or of the assets `asset_selection` picks from it (as a sensor's
        run request with an asset selection)."""
        from dagster._core.execution.api import create_execution_plan

        if self._definitions is None:
            self._definitions = self.repository.get_definition()
        job = self._definitions.get_job(job_name)
        selected = frozenset(asset_selection) if asset_selection is not None else None
        if selected is not None:
            job = job.get_subset(asset_selection=selected)
        plan = create_execution_plan(job, tags=tags, instance_ref=instance.get_ref())
        return instance.create_run_for_job(
            job_def=job,
            execution_plan=plan,
            tags=tags,
            asset_selection=selected,
            job_code_origin=self.repository.get_reconstructable_job(job_name).get_python_origin(),
        )


def create_run(
    instance: DagsterInstance,
    job_name: str,
    tags: Mapping[str, str],
    module: str = "etl.definitions",
) -> DagsterRun:
    """One run of one of the project's jobs (see `RunFactory`)."""
    return RunFactory(module).create(instance, job_name, tags)
