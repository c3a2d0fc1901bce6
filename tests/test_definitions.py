"""The entry point as Dagster and a new user see it: the shipped config, the CLI demo."""

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from etl.config import RUN_JOB_ENV, Settings, load_integrations
from etl.definitions import MAPPINGS_JOB, build_definitions

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_builds_groups_jobs_and_schedules():
    defs = build_definitions(Settings.from_env({"WFM_HOME": str(ROOT)}))
    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {"berlin_cloud", "newyork_cloud", "kolkata_onprem", "mappings"} <= groups
    for name in ("berlin_cloud", "newyork_cloud", "kolkata_onprem"):
        assert defs.resolve_job_def(f"{name}_import").partitions_def is not None
        assert defs.resolve_schedule_def(f"{name}_schedule").cron_schedule
    key = dg.AssetKey(["kolkata_onprem", "contacts"])
    policy = graph.get(key).backfill_policy
    assert policy.max_partitions_per_run == 744
    # Both checks are specs of the fact asset, evaluated in its step: unpartitioned, and
    # no check step that depends on (and makes Dagster list) every hourly partition.
    checks = {k for k in graph.asset_check_keys if k.asset_key == key}
    assert {k.name for k in checks} == {"rows_valid", "coverage", "warehouse_files"}
    assert {graph.get(k).partitions_def for k in checks} == {None}
    job = defs.resolve_job_def("kolkata_onprem_import")
    assert [node.name for node in job.nodes] == ["kolkata_onprem__contacts"]


def test_a_run_process_builds_only_its_integration():
    everything = build_definitions(Settings.from_env({"WFM_HOME": str(ROOT)}))
    scoped = build_definitions(
        Settings.from_env({"WFM_HOME": str(ROOT), RUN_JOB_ENV: "newyork_cloud_import"})
    )
    keys = scoped.resolve_asset_graph().get_all_asset_keys()
    left_out = everything.resolve_asset_graph().get_all_asset_keys() - keys
    assert dg.AssetKey(["newyork_cloud", "contacts"]) in keys
    others = {i.id for i in load_integrations(ROOT / "integrations.yaml")} - {"newyork_cloud"}
    assert {k.path[0] for k in left_out} == others
    assert not {k.path[0] for k in keys} & others
    job = scoped.resolve_job_def("newyork_cloud_import")
    assert job.partitions_def == everything.resolve_job_def("newyork_cloud_import").partitions_def
    assert scoped.resolve_job_def(MAPPINGS_JOB) is not None  # shared pieces stay
    # Any other job (the mappings job, an unknown name) gets every integration.
    other = build_definitions(Settings.from_env({"WFM_HOME": str(ROOT), RUN_JOB_ENV: MAPPINGS_JOB}))
    assert other.resolve_asset_graph().get_all_asset_keys() == (
        everything.resolve_asset_graph().get_all_asset_keys()
    )


def test_dagster_definitions_validate_passes(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "WFM_HOME": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_demo_command_imports_and_reports(tmp_path):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "WFM_WAREHOUSE_DIR": str(tmp_path / "warehouse"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "etl.cli", "demo", "--hours", "6"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for name in ("berlin_cloud", "newyork_cloud", "kolkata_onprem"):
        [line] = [ln for ln in out.splitlines() if ln.startswith(f"{name} 20")]
        assert re.fullmatch(
            rf"{name} .* UTC \(6 hours\), run [0-9a-f]{{8}}: ok, \d+ rows loaded, \d+ rejected, "
            r"0 duplicates",
            line,
        )
    assert "contact_intervals" in out
    assert any(
        ln.startswith("berlin_cloud") and "agent_status_segments" in ln for ln in out.splitlines()
    )
    assert str(tmp_path / "warehouse" / "wfm.duckdb") in out
    assert "Query the views (read-only) with the project's SQL shell:" in out
    assert (tmp_path / "home" / "dagster.yaml").exists()
