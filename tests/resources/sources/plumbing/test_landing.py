"""The file-backed landing store: durable appends, idempotency keys, torn last lines."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest

from etl.resources.sources.plumbing.landing import FileLandingStore

DAY = datetime(2026, 11, 18, 10, tzinfo=UTC)


def records(n: int, tag: str = "a") -> list[dict]:
    return [{"agentIdentifier": f"{tag}{i}", "startTime": DAY.isoformat()} for i in range(n)]


def test_batches_come_back_in_order_with_their_records(tmp_path):
    store = FileLandingStore(tmp_path, clock=lambda: DAY)
    assert store.land("acme", records(2), "k1")
    assert store.land("acme", records(1, "b"), "k2")
    got = list(store.batches("acme"))
    assert [b.key for b in got] == ["k1", "k2"]
    assert got[0].records == records(2)
    assert got[1].records == records(1, "b")
    assert [b.ref for b in got] == ["2026-11-18.jsonl:1", "2026-11-18.jsonl:2"]
    assert list(store.batches("other")) == []


def test_a_repeated_idempotency_key_lands_nothing(tmp_path):
    store = FileLandingStore(tmp_path, clock=lambda: DAY)
    assert store.land("acme", records(3), "same")
    assert not store.land("acme", records(3), "same")
    later = FileLandingStore(tmp_path, clock=lambda: DAY + timedelta(days=1))
    assert not later.land("acme", records(3), "same")  # within idempotency_days
    assert sum(len(b.records) for b in later.batches("acme")) == 3
    assert FileLandingStore(tmp_path).land("other", records(1), "same")  # keys per integration


def test_keys_older_than_the_idempotency_window_are_forgotten(tmp_path):
    FileLandingStore(tmp_path, clock=lambda: DAY).land("acme", records(1), "k")
    much_later = FileLandingStore(tmp_path, clock=lambda: DAY + timedelta(days=5))
    assert much_later.land("acme", records(1), "k")


def test_reading_since_a_day_skips_older_files(tmp_path):
    for day in range(3):
        store = FileLandingStore(tmp_path, clock=lambda d=day: DAY + timedelta(days=d))
        store.land("acme", records(1, f"d{day}"), f"k{day}")
    since = FileLandingStore(tmp_path).batches("acme", DAY + timedelta(days=1, hours=5))
    assert [b.key for b in since] == ["k1", "k2"]


def test_a_torn_last_line_is_skipped_and_cut_off_by_the_next_landing(tmp_path):
    store = FileLandingStore(tmp_path, clock=lambda: DAY)
    store.land("acme", records(1), "k1")
    path = tmp_path / "acme" / "2026-11-18.jsonl"
    with path.open("ab") as handle:
        handle.write(b'{"key":"torn","landed_at":"2026-11-18T10:00')  # a crash inside write
    assert [b.key for b in store.batches("acme")] == ["k1"]
    assert store.land("acme", records(2), "k2")
    assert [b.key for b in store.batches("acme")] == ["k1", "k2"]
    assert path.read_bytes().count(b"\n") == 2


def test_a_corrupt_line_inside_a_file_is_an_error_naming_it(tmp_path):
    store = FileLandingStore(tmp_path, clock=lambda: DAY)
    store.land("acme", records(1), "k1")
    path = tmp_path / "acme" / "2026-11-18.jsonl"
    path.write_bytes(b"not json\n" + path.read_bytes())
    with pytest.raises(ValueError, match=r"2026-11-18.jsonl, line 1: unreadable"):
        list(store.batches("acme"))


def test_an_empty_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="idempotency key"):
        FileLandingStore(tmp_path).land("acme", records(1), "")


def _land_many(root: str, worker: int) -> None:
    store = FileLandingStore(root)
    for n in range(50):
        store.land("acme", records(2, f"w{worker}-{n}-"), f"w{worker}-{n}")


def test_concurrent_writers_lose_nothing(tmp_path):
    workers = [
        multiprocessing.Process(target=_land_many, args=(str(tmp_path), w)) for w in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    batches = list(FileLandingStore(tmp_path).batches("acme"))
    assert len(batches) == 200
    assert len({b.key for b in batches}) == 200
    assert sum(len(b.records) for b in batches) == 400
