"""Where a source's relative paths point: the project home (`WFM_HOME`), read at run time.

A CSV folder, a query file or a state folder written relative in integrations.yaml means the
same place whatever directory Dagster or the CLI was started from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from etl.config import PROJECT_ROOT, Settings


def home() -> Path:
    return Path(os.environ.get("WFM_HOME", PROJECT_ROOT))


def resolve(path: str) -> Path:
    """`path` as written in the config: absolute, or relative to the project home."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else home() / candidate


def inside(path: Path, folders: Iterable[Path]) -> bool:
    """Whether `path` lies in one of `folders` once every link (and `..`) in both is
    resolved: a link inside a folder that points elsewhere is outside."""
    real = path.resolve()
    return any(real.is_relative_to(folder.resolve()) for folder in folders)


def state_dir(configured: str | None) -> Path:
    """A source's bookkeeping folder: the configured one, else `<warehouse>/state`."""
    if configured:
        return resolve(configured)
    return Settings.from_env().warehouse_dir / "state"
