"""Write requirements.lock: every package the user-code image installs, at one version.

    python tools/lock.py   (`make lock`)

pip resolves the project with its `k8s` extra for this Python, as a fresh install would,
without installing anything; the image installs exactly these versions, and `make setup`
uses them as constraints, so the tests run on what the image ships.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PROJECT = "wfm-etl"


def resolve() -> list[tuple[str, str]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--report",
            "-",
            ".[k8s]",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    found = {
        (item["metadata"]["name"].lower(), item["metadata"]["version"])
        for item in report["install"]
    }
    return sorted((name, ver) for name, ver in found if name != PROJECT)


def main() -> int:
    python = ".".join(platform.python_version_tuple()[:2])
    lines = [
        f"# The user-code image's packages (pyproject.toml with [k8s]), resolved for Python "
        f"{python}",
        "# by `make lock`; `make setup` installs the same versions. Do not edit by hand.",
        *(f"{name}=={ver}" for name, ver in resolve()),
    ]
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"wrote {LOCK.relative_to(ROOT)} ({len(lines) - 2} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
