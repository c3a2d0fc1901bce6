"""The entry point as Dagster and a new user see it: the shipped config, the CLI demo."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from etl.config import Settings
from etl.definitions import build_definitions

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
        [line] = [ln for ln in out.splitlines() if ln.startswith(f"{name}: range run")]
        assert line.endswith("(6 hourly partitions): ok")
    assert "contact_intervals" in out
    assert any(
        ln.startswith("berlin_cloud") and "agent_status_segments" in ln for ln in out.splitlines()
    )
    assert str(tmp_path / "warehouse" / "wfm.duckdb") in out
    assert "Example query:" in out
    assert (tmp_path / "home" / "dagster.yaml").exists()
