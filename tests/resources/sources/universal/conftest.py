"""Fixtures of the universal sources' tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A customer's SQLite file (made by the test)."""
    return f"sqlite:///{tmp_path / 'customer.sqlite'}"
