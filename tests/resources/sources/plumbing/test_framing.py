"""STX framing across reads: the records come out whole however TCP cuts the bytes."""

from __future__ import annotations

import pytest

from etl.resources.sources.plumbing.framing import StxFramer

RECORDS = [b"00A101500" + b"1" * 20, b"01J101504", b"02R"]


def stream(terminator: bytes) -> bytes:
    return b"".join(b"\x02" + r + terminator for r in RECORDS)


@pytest.mark.parametrize("terminator", [b"\r\n", b"\x03", b""])
def test_every_cut_of_the_stream_gives_the_same_records(terminator):
    data = stream(terminator)
    for cut in range(len(data) + 1):
        for second in range(cut, len(data) + 1):
            framer = StxFramer()
            got = framer.feed(data[:cut]) + framer.feed(data[cut:second])
            got += framer.feed(data[second:]) + framer.flush()
            assert got == RECORDS, (cut, second)
            assert framer.discarded_bytes == 0


def test_two_records_in_one_read_and_one_split_over_two():
    framer = StxFramer()
    assert framer.feed(b"\x0200A12\r\n\x0201B3") == [b"00A12"]
    assert framer.pending == b"01B3"
    assert framer.feed(b"4\r\n") == [b"01B34"]
    assert framer.pending == b""


def test_unterminated_records_end_at_the_next_stx():
    framer = StxFramer()
    assert framer.feed(b"\x0200A1\x0201B2") == [b"00A1"]
    assert framer.feed(b"\x02") == [b"01B2"]


def test_bytes_before_the_first_stx_are_dropped_and_counted():
    framer = StxFramer()
    assert framer.feed(b"34\r\n\x0201J1\r\n") == [b"01J1"]
    assert framer.discarded_bytes == 2  # the terminator alone is not counted


def test_reset_drops_the_record_the_connection_broke_in():
    framer = StxFramer()
    framer.feed(b"\x0200A1\r\n\x0201B2")
    assert framer.reset() == b"01B2"
    assert framer.feed(b"\x0202C3\r\n") == [b"02C3"]
    assert framer.discarded_bytes == 4


def test_flush_keeps_a_record_shorter_than_the_minimum_open():
    framer = StxFramer(min_record_bytes=5)
    framer.feed(b"\x0200A1")
    assert framer.flush() == []
    framer.feed(b"23")
    assert framer.flush() == [b"00A123"]


def test_a_stream_without_framing_cannot_fill_memory():
    framer = StxFramer(max_record_bytes=8)
    assert framer.feed(b"\x02" + b"x" * 20 + b"\x0201A\r\n") == [b"01A"]
    assert framer.oversized == 1
    assert framer.discarded_bytes == 20


def test_empty_records_are_skipped():
    assert StxFramer().feed(b"\x02\r\n\x02\x0200A\r\n") == [b"00A"]
