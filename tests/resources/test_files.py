"""Atomic replacement of files and of whole directories, on the real file system."""

import pytest

from etl.resources.files import RETIRED_PREFIX, exchange, replace_directory


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
    # The old contents stay a while, for a reader that opened the old directory just before.
    (retired,) = staging.iterdir()
    assert retired.name.startswith(RETIRED_PREFIX)
    assert sorted(p.name for p in retired.iterdir()) == ["2026-11-01.parquet", "2026-11-02.parquet"]
    replace_directory(target, fill, staging, keep_old_seconds=0)  # removes what is kept
    assert list(staging.iterdir()) == []
    fresh = tmp_path / "2026-12"  # no directory yet: renamed into place
    replace_directory(fresh, fill, staging)
    assert [p.name for p in fresh.iterdir()] == ["2026-11.parquet"]


def test_a_failed_fill_leaves_the_target_as_it_was(tmp_path):
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
