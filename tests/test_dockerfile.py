"""The user-code image's Dockerfile, checked without a container engine: hadolint finds
nothing, its steps match the project (what it copies exists and is what the code reads at run
time, its Python is the project's), and the lock file it installs is what pyproject.toml asks
for and what the tests run on."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from etl.resources import warehouse

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def of(keyword: str) -> list[str]:
    return [rest for k, rest in instructions() if k == keyword]


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[_normal(name)] = pinned
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.fail("hadolint is not installed (pip install -e '.[dev]')", pytrace=False)
    done = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_image_runs_the_projects_python():
    (base,) = of("FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.\d+-slim-\w+", base)
    assert match, f"expected an official python:<x.y.z>-slim image, got {base}"
    python = f"{match[1]}.{match[2]}"
    assert SpecifierSet(project()["requires-python"]).contains(f"{python}.0")
    assert f"resolved for Python {python}" in LOCK.read_text().splitlines()[0]
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == python  # tests run on it


def test_what_it_copies_exists_and_holds_what_the_code_reads_at_run_time():
    copied = []
    for arguments in of("COPY"):
        *sources, _target = shlex.split(arguments)
        copied += sources
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the project"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "etl" in copied
    assert packages["packages"]["find"]["include"] == ["etl*"]
    assert warehouse.SQL_DIR.relative_to(ROOT).parts[0] in copied  # the views' SQL
    assert "requirements.lock" in copied
    # the project is installed in place, where sql/ sits beside etl/
    assert any("pip install --no-cache-dir --no-deps -e ." in run for run in of("RUN"))


def test_it_installs_the_lock_file_and_serves_the_code_location():
    runs = of("RUN")
    assert runs[0] == "pip install --no-cache-dir -r requirements.lock"
    (cmd,) = of("CMD")
    command = yaml.safe_load(cmd)
    assert command[:3] == ["dagster", "code-server", "start"]
    module = command[command.index("-m") + 1]
    assert (
        module
        == tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    )
    port = command[command.index("-p") + 1]
    assert of("EXPOSE") == [port]
    assert f"port: {port}" in (ROOT / "docs" / "deploy.md").read_text()  # the Helm values


def test_the_lock_pins_every_dependency_within_pyproject_s_bounds():
    pins = locked()
    spec = project()
    wanted = [*spec["dependencies"], *spec["optional-dependencies"]["k8s"]]
    for text in wanted:
        requirement = Requirement(text)
        name = _normal(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock (make lock)"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock has {name}=={pins[name]}, pyproject.toml wants {text}"
        )


def test_the_tests_run_on_the_locked_versions():
    """`make setup` installs with the lock as constraints; a venv that drifted fails here."""
    drifted = {}
    for name, pinned in locked().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # the image's extras (dagster-k8s and its dependencies)
        if installed != pinned:
            drifted[name] = (installed, pinned)
    assert not drifted, f"installed vs locked: {drifted} (make setup, or make lock)"
