"""Files written once, atomic replacement of state files, durable appends, and DuckDB's lock,
on the real file system with real DuckDB processes."""

import subprocess
import sys

import duckdb
import pytest

from etl.resources.files import (
    append_durably,
    duckdb_files_locked,
    open_in_this_process,
    replace_atomically,
    write_new,
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


def test_write_new_gives_a_name_its_whole_content_once_and_never_reuses_it(tmp_path):
    target = tmp_path / "2026-11" / "2026-11-01.0001.parquet"
    write_new(target, lambda tmp: tmp.write_text("first"))
    assert target.read_text() == "first"
    with pytest.raises(FileExistsError):
        write_new(target, lambda tmp: tmp.write_text("second"))
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left


def test_this_process_holding_a_duckdb_file_counts_as_busy(tmp_path):
    # Checking the lock from the process that holds the connection would close a descriptor
    # of the file, which drops the connection's own lock: such files are busy, untouched.
    path = tmp_path / "catalog.duckdb"
    duckdb.connect(str(path)).close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert open_in_this_process(path)
        with duckdb_files_locked([path]) as busy:
            assert busy == [path]
    finally:
        con.close()
    assert not open_in_this_process(path)


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


def test_an_append_cuts_off_a_torn_last_line_first(tmp_path):
    log = tmp_path / "state" / "listening.jsonl"
    log.parent.mkdir()
    append_durably(log, b'{"from": 1, "to": 2}\n')
    with log.open("ab") as handle:
        handle.write(b'{"from": 3, "t')  # a crash inside the write
    append_durably(log, b'{"from": 4, "to": 5}\n')
    assert log.read_bytes() == b'{"from": 1, "to": 2}\n{"from": 4, "to": 5}\n'
