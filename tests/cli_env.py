"""The command line as a user runs it: the installed `wfm-etl` in a process of its own, in a
project home of its own (integrations, warehouse, Dagster instance), and the demo's home,
built once per test session and shared by the tests that only read it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from etl.config import PROJECT_ROOT

BIN = Path(sys.executable).parent
WFM_ETL = BIN / "wfm-etl"
DEMO_HOURS = 48  # what `make demo` imports


def home_env(
    home: Path, integrations: Path | None = None, venv_on_path: bool = True
) -> dict[str, str]:
    """The environment of a project living in `home` (mappings and config from the project,
    unless `integrations` names another file); `make` does not put the virtual environment
    on PATH, an activated one does."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("WFM_", "DAGSTER_"))
    }
    env.update(
        WFM_HOME=str(home),
        DAGSTER_HOME=str(home / ".dagster_home"),
        WFM_INTEGRATIONS=str(integrations or PROJECT_ROOT / "integrations.yaml"),
        WFM_MAPPINGS_DIR=str(PROJECT_ROOT / "mappings"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}" if venv_on_path else env.get("PATH", ""),
        PYTHONWARNINGS="ignore",
    )
    return env


def wfm_etl(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(WFM_ETL), *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


@cache
def _demo(base: str) -> tuple[Path, str]:
    home = Path(base) / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    done = wfm_etl(home_env(home, venv_on_path=False), "demo", "--hours", str(DEMO_HOURS))
    assert done.returncode == 0, done.stdout + done.stderr
    return home, done.stdout


def demo_home(tmp_path_factory) -> tuple[Path, str]:
    """The demo's project home (imported once per session) and what `wfm-etl demo` printed."""
    return _demo(str(tmp_path_factory.getbasetemp()))
