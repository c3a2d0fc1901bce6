"""The private Dagster APIs the project relies on: pinned, listed, and checked here.

The preloaded run launcher (etl/run_launcher.py), the Celery worker task (etl/celery_runs.py),
the event log (etl/event_log.py), the gap sensor and the benchmark use parts of Dagster,
dagster-postgres and dagster-celery that are not public API: they can change in any release.
Each is listed below with what the project needs of it (the parameters it passes, the
fields and members it reads, the methods it overrides); a Dagster upgrade that changes one
fails here, naming it, before it fails in production. docs/deploy.md lists the same names.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
import re
import tomllib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("dagster", "dagster-webserver", "dagster-postgres", "dagster-celery", "dagster-pandera")
# Modules the project imports from whose names are not the package's public API.
PRIVATE_MODULE = re.compile(r"^(dagster\._|dagster_postgres\.|dagster_celery\.)")


@dataclass(frozen=True)
class PrivateApi:
    path: str  # module:attribute[.attribute]
    used_by: tuple[str, ...]
    params: tuple[str, ...] = ()  # parameters the project passes (by name)
    positional: bool = False  # ... and by position, so in this order
    fields: tuple[str, ...] = ()  # attributes the project reads or sets
    members: tuple[str, ...] = ()  # enum members the project uses
    value: object = None  # a constant the project relies on


LAUNCHER = ("etl/run_launcher.py",)
CELERY = ("etl/celery_runs.py",)
EVENT_LOG = ("etl/event_log.py",)
GAPS = ("etl/schedules/gaps.py",)
APIS = [
    # one bad hour fails alone: per-partition outcomes of a range run (etl/assets/failed_hours.py)
    PrivateApi(
        "dagster._core.events:DagsterEvent",
        ("etl/assets/failed_hours.py", "etl/assets/facts.py"),
        fields=("build_asset_materialization_planned_event", "asset_materialization"),
    ),
    PrivateApi(
        "dagster._core.events:DagsterEvent.build_asset_materialization_planned_event",
        ("etl/assets/failed_hours.py",),
        params=("job_name", "step_key", "asset_materialization_planned_data"),
        positional=True,
    ),
    PrivateApi(
        "dagster._core.events:DagsterEvent.asset_materialization",
        ("etl/assets/failed_hours.py",),
        params=("step_context", "materialization", "batch_metadata"),
        positional=True,
    ),
    PrivateApi(
        "dagster._core.events:AssetMaterializationPlannedData",
        ("etl/assets/failed_hours.py",),
        params=("asset_key", "partition"),
    ),
    PrivateApi(
        "dagster._core.events:DagsterEventBatchMetadata",
        ("etl/assets/failed_hours.py",),
        params=("id", "is_end"),
        positional=True,
    ),
    PrivateApi("dagster._core.events:generate_event_batch_id", ("etl/assets/failed_hours.py",)),
    # reading a failed run's reason (the command line's one line per run)
    PrivateApi(
        "dagster._utils.error:SerializableErrorInfo",
        ("etl/run_outcome.py",),
        fields=("message", "cls_name", "cause", "to_string"),
    ),
    # running a run in this process, as `dagster api execute_run` does
    PrivateApi(
        "dagster._cli.api:_execute_run_command_body",
        LAUNCHER,
        params=("run_id", "instance", "write_stream_fn", "set_exit_code_on_failure"),
        positional=True,
    ),
    PrivateApi("dagster._utils.interrupts:capture_interrupts", LAUNCHER),
    PrivateApi(
        "dagster._grpc.types:ExecuteRunArgs",
        (*LAUNCHER, *CELERY),
        params=("job_origin", "run_id", "instance_ref", "set_exit_code_on_failure"),
        fields=("job_origin", "run_id", "instance_ref"),
    ),
    PrivateApi("dagster._serdes:serialize_value", (*LAUNCHER, *EVENT_LOG)),
    PrivateApi("dagster._serdes:deserialize_value", LAUNCHER),
    PrivateApi("dagster._serdes:unpack_value", CELERY, params=("val", "as_type")),
    PrivateApi("dagster._serdes:ConfigurableClass", LAUNCHER, fields=("from_config_value",)),
    PrivateApi("dagster._serdes:ConfigurableClassData", (*LAUNCHER, *CELERY, *EVENT_LOG)),
    # the run launcher interface
    PrivateApi(
        "dagster._core.launcher.base:RunLauncher",
        LAUNCHER,
        fields=(
            "launch_run",
            "terminate",
            "check_run_worker_health",
            "supports_check_run_worker_health",
            "join",
            "dispose",
            "_instance",
        ),
    ),
    PrivateApi("dagster._core.launcher.base:LaunchRunContext", LAUNCHER, fields=("dagster_run",)),
    PrivateApi(
        "dagster._core.launcher.base:CheckRunHealthResult",
        (*LAUNCHER, *CELERY),
        params=("status", "msg"),
    ),
    PrivateApi(
        "dagster._core.launcher.base:WorkerStatus",
        (*LAUNCHER, *CELERY, "bench/launch.py"),
        members=("RUNNING", "SUCCESS", "FAILED", "NOT_FOUND", "UNKNOWN"),
    ),
    PrivateApi("dagster._core.launcher:CheckRunHealthResult", CELERY),
    PrivateApi("dagster._core.launcher:WorkerStatus", CELERY),
    PrivateApi("dagster._core.storage.dagster_run:DagsterRun", LAUNCHER),
    # loading definitions once, creating runs as the daemon does (the benchmark, tests)
    PrivateApi(
        "dagster._core.definitions.reconstruct:ReconstructableRepository",
        LAUNCHER,
        fields=("for_module", "get_definition", "get_reconstructable_job"),
    ),
    PrivateApi(
        "dagster._core.definitions.reconstruct:ReconstructableRepository.for_module",
        LAUNCHER,
        params=("module", "fn_name", "working_directory"),
    ),
    PrivateApi("dagster._core.definitions.reconstruct:ReconstructableJob", CELERY),
    PrivateApi(
        "dagster._core.definitions.reconstruct:ReconstructableJob.get_definition",
        CELERY,
        fields=("cache_clear",),
    ),
    PrivateApi(
        "dagster._core.definitions.reconstruct:ReconstructableJob.get_repository_definition",
        CELERY,
        fields=("cache_clear",),
    ),
    PrivateApi(
        "dagster._core.definitions.repository_definition:RepositoryDefinition",
        LAUNCHER,
        fields=("get_job",),
    ),
    PrivateApi(
        "dagster._core.execution.api:create_execution_plan",
        LAUNCHER,
        params=("job", "run_config", "step_keys_to_execute", "known_state", "instance_ref", "tags"),
    ),
    # the event log: dagster-postgres's storage with one method replaced
    PrivateApi(
        "dagster_postgres.event_log.event_log:PostgresEventLogStorage",
        EVENT_LOG,
        params=("postgres_url", "should_autocreate_tables", "inst_data", "token_provider"),
        fields=(
            "_store_asset_check_evaluation_planned",
            "index_connection",
            "_event_insert_timestamp",
            # the batch of a range run's materializations
            "_event_to_row",
            "_connect",
            "index_transaction",
            "_store_asset_event_tags",
            "_store_asset_event",
        ),
    ),
    PrivateApi(
        "dagster_postgres.event_log.event_log:PostgresEventLogStorage.store_event_batch",
        EVENT_LOG,
        params=("self", "events"),
    ),
    PrivateApi(
        "dagster_postgres.event_log.event_log:"
        "PostgresEventLogStorage._store_asset_check_evaluation_planned",
        EVENT_LOG,
        params=("self", "event", "event_id"),
    ),
    PrivateApi("dagster_postgres.utils:pg_url_from_config", EVENT_LOG, params=("config_value",)),
    PrivateApi(
        "dagster_postgres.utils:get_token_provider_from_config", EVENT_LOG, params=("config_value",)
    ),
    PrivateApi(
        "dagster._core.events:AssetCheckEvaluationPlanned",
        EVENT_LOG,
        fields=("asset_key", "check_name", "partitions_subset"),
    ),
    PrivateApi(
        "dagster._core.events.log:EventLogEntry",
        EVENT_LOG,
        fields=("run_id", "get_dagster_event"),
    ),
    PrivateApi(
        "dagster._core.storage.asset_check_execution_record:AssetCheckExecutionRecordStatus",
        EVENT_LOG,
        members=("PLANNED",),
    ),
    PrivateApi(
        "dagster._core.storage.event_log.schema:AssetCheckExecutionsTable",
        EVENT_LOG,
        fields=("insert",),
    ),
    PrivateApi(
        "dagster._core.storage.event_log.schema:SqlEventLogStorageTable",
        EVENT_LOG,
        fields=("insert", "c"),
    ),
    # the gap sensor: run and backfill state, the partition status cache
    PrivateApi("dagster._core.definitions.run_request:InstigatorType", GAPS, members=("SCHEDULE",)),
    PrivateApi(
        "dagster._core.execution.backfill:BulkActionStatus",
        GAPS,
        members=("REQUESTED", "CANCELING"),
    ),
    PrivateApi("dagster._core.execution.backfill:BulkActionsFilter", GAPS, fields=("statuses",)),
    PrivateApi(
        "dagster._core.scheduler.instigation:InstigatorStatus",
        GAPS,
        members=("RUNNING", "STOPPED", "DECLARED_IN_CODE"),
    ),
    PrivateApi(
        "dagster._core.storage.dagster_run:DagsterRunStatus",
        GAPS,
        members=("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "SUSPENDED"),
    ),
    PrivateApi("dagster._core.storage.dagster_run:RunsFilter", GAPS, params=("tags", "statuses")),
    PrivateApi(
        "dagster._core.storage.partition_status_cache:get_and_update_asset_status_cache_value",
        GAPS,
        params=("instance", "asset_key", "partitions_def"),
    ),
    PrivateApi("dagster._core.storage.tags:PARTITION_NAME_TAG", GAPS, value="dagster/partition"),
    PrivateApi("dagster._utils.warnings:BetaWarning", ("etl/cli.py", "etl/assets/facts.py")),
    PrivateApi("dagster._utils.warnings:PreviewWarning", ("etl/cli.py", "etl/assets/facts.py")),
    # dagster-celery: its run launcher and the names its messages carry
    PrivateApi(
        "dagster_celery.launcher:CeleryRunLauncher",
        CELERY,
        params=("default_queue", "broker", "backend", "include", "config_source", "inst_data"),
        # and its `celery` app attribute: tests/test_celery_runs.py builds one
        fields=("check_run_worker_health", "config_type", "app_args"),
    ),
    PrivateApi("dagster_celery.config:TASK_EXECUTE_JOB_NAME", CELERY, value="execute_job"),
    PrivateApi(
        "dagster_celery.tags:DAGSTER_CELERY_TASK_ID_TAG", CELERY, value="dagster-celery/task_id"
    ),
    PrivateApi("dagster_celery.tasks:create_resume_job_task", CELERY, params=("celery",)),
]


def resolve(path: str) -> object:
    module_name, _, attributes = path.partition(":")
    target: object = importlib.import_module(module_name)
    for name in attributes.split("."):
        target = getattr(target, name)
    return target


def private_imports() -> dict[str, set[str]]:
    """`module:name` of every private import in the project's code, with the files using it."""
    found: dict[str, set[str]] = {}
    for path in [*ROOT.glob("etl/**/*.py"), *ROOT.glob("bench/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and PRIVATE_MODULE.match(node.module or ""):
                for alias in node.names:
                    key = f"{node.module}:{alias.name}"
                    found.setdefault(key, set()).add(str(path.relative_to(ROOT)))
    return found


def test_dagster_and_its_libraries_are_pinned_and_installed_at_the_pins():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(d.split("==") for d in dependencies if "==" in d)
    for package in PINNED:
        assert package in pins, f"{package} must be pinned exactly in pyproject.toml"
        assert version(package) == pins[package], (
            f"{package} {version(package)} is installed but {pins[package]} is pinned: the "
            "private APIs below were checked against the pinned release"
        )


def test_every_private_import_of_the_project_is_listed():
    listed = {api.path for api in APIS}
    unlisted = {
        key: sorted(files)
        for key, files in private_imports().items()
        if key not in listed and not _public(key)
    }
    assert not unlisted, f"private Dagster APIs used but not listed in this test: {unlisted}"


def _public(key: str) -> bool:
    """Names the package also exports at its top level are public API."""
    module, _, name = key.partition(":")
    package = importlib.import_module(module.split(".")[0])
    return not module.startswith("dagster._") and name in getattr(package, "__all__", [])


@pytest.mark.parametrize("api", APIS, ids=[api.path for api in APIS])
def test_a_private_api_is_still_what_the_project_expects(api: PrivateApi):
    where = f"{api.path} (used by {', '.join(api.used_by)})"
    try:
        target = resolve(api.path)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{where} is gone in this Dagster release: {exc}", pytrace=False)
    if api.params:
        names = list(inspect.signature(target).parameters)  # type: ignore[arg-type]
        missing = [p for p in api.params if p not in names]
        assert not missing, f"{where}: parameters {missing} are gone (it takes {names})"
        if api.positional:
            assert names[: len(api.params)] == list(api.params), (
                f"{where}: the project passes {list(api.params)} by position; it takes {names}"
            )
    for name in api.fields:
        assert hasattr(target, name), f"{where}: has no attribute {name!r} any more"
    if api.members:
        assert isinstance(target, enum.EnumMeta), f"{where} is no longer an enum"
        missing = [m for m in api.members if m not in target.__members__]
        assert not missing, f"{where}: members {missing} are gone"
    if api.value is not None:
        assert target == api.value, f"{where}: is {target!r}, the project relies on {api.value!r}"


def test_every_listed_api_is_in_the_deployment_docs():
    text = (ROOT / "docs" / "deploy.md").read_text()
    missing = [api.path for api in APIS if f"`{api.path}`" not in text]
    assert not missing, f"docs/deploy.md does not list: {missing}"
