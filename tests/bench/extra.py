"""The benchmark's extra (pyproject.toml `bench`): `make bench-setup` installs it (`make test`
does first). Without it the tests that need it are skipped on a developer's machine and fail
under CI=true, where every test must run."""

from __future__ import annotations

import importlib.util
import os

import pytest


def needs_bench_extra(*modules: str) -> None:
    """Skip (or, under CI, fail) unless every module of the benchmark's extra is installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    what = f"needs the benchmark's extra ({', '.join(missing)}): make bench-setup"
    if os.environ.get("CI") == "true":
        pytest.fail(what, pytrace=False)
    pytest.skip(what)
