from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.server import Home, make_home


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A project home with one push integration (embedded landing store)."""
    return make_home(tmp_path / "project")
