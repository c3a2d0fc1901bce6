"""Atomic replacement of files, on the real file system."""

import pytest

from etl.resources.files import replace_atomically


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
