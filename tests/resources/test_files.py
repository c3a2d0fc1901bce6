"""Atomic replacement of files and of whole directories, and DuckDB's lock, on the real file
system with real DuckDB processes."""

import subprocess
import sys

import duckdb
import pytest

from etl.resources.files import (
    duckdb_files_locked,
    exchange,
    replace_atomically,
    replace_directory,
)
from tests.helpers import holding_open


def test_replace_atomically_puts_the_new_contents_under_the_same_name(tmp_path):
    target = tmp_path / "2026-11" / "2026-11-01.parquet"
    replace_atomically(target, lambda tmp: tmp.write_text("first"))
    inode = target.stat().st_ino
    replace_atomically(target, lambda tmp: tmp.write_text("second"))
    assert target.read_text() == "second"
    assert target.stat().st_ino != inode  # a new file renamed over the old one, not rewritten
    assert [p.name for p in target.parent.iterdir()] == ["2026-11-01.parquet"]


def test_a_failed_write_leaves_the_target_as_it_was(tmp_path):
    target = tmp_path / "2026-11-01.parquet"
    target.write_text("day")

    def write(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(target, write)
    assert target.read_text() == "day"
    assert [p.name for p in tmp_path.iterdir()] == ["2026-11-01.parquet"]  # no temporary left


def test_replace_directory_swaps_the_whole_contents_and_leaves_no_staging(tmp_path):
    target, staging = tmp_path / "2026-11", tmp_path / "staging"
    target.mkdir()
    for day in ("2026-11-01", "2026-11-02"):
        (target / f"{day}.parquet").write_text(day)

    def fill(directory):
        (directory / "2026-11.parquet").write_text("month")

    replace_directory(target, fill, staging)
    assert sorted(p.name for p in target.iterdir()) == ["2026-11.parquet"]
    assert (target / "2026-11.parquet").read_text() == "month"
    assert list(staging.iterdir()) == []
    fresh = tmp_path / "2026-12"  # no directory yet: renamed into place
    replace_directory(fresh, fill, staging)
    assert [p.name for p in fresh.iterdir()] == ["2026-11.parquet"]


def test_a_failed_fill_leaves_the_directory_as_it_was(tmp_path):
    target = tmp_path / "2026-11"
    target.mkdir()
    (target / "2026-11-01.parquet").write_text("day")

    def fill(directory):
        (directory / "2026-11.parquet").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_directory(target, fill, tmp_path / "staging")
    assert [p.name for p in target.iterdir()] == ["2026-11-01.parquet"]
    assert list((tmp_path / "staging").iterdir()) == []


def test_exchange_names_both_paths_when_it_cannot_swap(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(OSError, match=r"cannot exchange .*a and .*missing"):
        exchange(tmp_path / "a", tmp_path / "missing")


CONNECT = """
import duckdb, sys
try:
    duckdb.connect(sys.argv[1], read_only=True).close()
    print("opened")
except duckdb.Error as exc:
    print(exc)
"""


def test_duckdb_files_locked_sees_open_connections_and_refuses_new_ones(tmp_path):
    catalog, other = tmp_path / "wfm.duckdb", tmp_path / "old.duckdb"
    for path in (catalog, other):
        duckdb.connect(str(path)).close()
    reader = holding_open(other)
    try:
        with duckdb_files_locked([catalog, other, tmp_path / "missing.duckdb"]) as busy:
            assert busy == [other]  # and nothing is locked: the catalog still opens
            assert _connect(catalog) == "opened"
    finally:
        reader.communicate("")
    with duckdb_files_locked([catalog, other]) as busy:
        assert busy == []
        refused = _connect(catalog)
        assert "Could not set lock on file" in refused
    assert _connect(catalog) == "opened"  # released


def _connect(path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CONNECT, str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()
