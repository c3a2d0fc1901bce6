"""Shaping delivered rows directly: the parts every source shares (row references, channel
spellings, numbers in a file's format, times read once per distinct value, the times-only
coverage an index builds from)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from etl.resources.sources.plumbing.shaping import (
    ContactMapping,
    RawRows,
    ShapeContext,
    ValueFormat,
    _parse_instants,
    contact_coverage,
    parse_instants,
    shape_contacts,
    to_numbers,
)
from etl.schemas import STRING

CONTEXT = ShapeContext(
    "acme", "Europe/Berlin", 15, fallback_time=pd.Timestamp("2026-10-25 00:00", tz="UTC")
)


def contacts(**columns: list) -> RawRows:
    n = len(next(iter(columns.values())))
    values = {"offered": ["3"] * n, "answered": ["2"] * n, "abandoned": ["1"] * n}
    table = pa.table({**columns, **values, "handle_time": ["60"] * n})
    return RawRows(table, "export.csv:", np.arange(2, n + 2))


def test_row_references_name_the_source_and_line():
    raw = contacts(external_queue_id=["q1", "q2"], interval_start=["2026-10-25T00:00Z"] * 2)
    assert raw.refs.tolist() == ["export.csv:2", "export.csv:3"]
    assert raw.refs.dtype == STRING  # kept in Arrow, as validation and the warehouse want


def test_channels_by_exact_then_folded_spelling_and_a_default_for_empty_ones():
    spellings = ["Voice", " VOICE ", "Chat", "", None, "fax"]
    raw = contacts(
        external_queue_id=["q1"] * 6,
        channel=spellings,
        interval_start=[f"2026-10-24T{h:02d}:00Z" for h in range(6)],
    )
    mapping = ContactMapping(channels={"Voice": "calls", "chat": "chats"}, channel="emails")
    shaped = shape_contacts(raw, mapping, ValueFormat(time="iso"), CONTEXT)
    channels = dict(zip(shaped.frame["source_ref"], shaped.frame["channel"], strict=True))
    assert channels == {
        "export.csv:2": "calls",
        "export.csv:3": "calls",
        "export.csv:4": "chats",
        "export.csv:5": "emails",
        "export.csv:6": "emails",
        "export.csv:7": "fax",  # kept as spelled: validation rejects an unknown channel
    }
    assert shaped.rejected.empty
    text = ["integration_id", "external_queue_id", "channel", "source_ref"]
    assert (shaped.frame.dtypes[text] == STRING).all()
    assert set(shaped.frame["integration_id"]) == {"acme"}


def test_channels_without_a_default_stay_missing_for_validation_to_reject():
    raw = contacts(
        external_queue_id=["q1", "q1"],
        channel=["Voice", None],
        interval_start=["2026-10-24T06:00Z", "2026-10-24T06:15Z"],
    )
    mapping = ContactMapping(channels={"Voice": "calls"})
    shaped = shape_contacts(raw, mapping, ValueFormat(time="iso"), CONTEXT)
    assert shaped.frame["channel"].tolist()[0] == "calls"
    assert shaped.frame["channel"].isna().tolist() == [False, True]


NUMBER_CASES = [  # text, value in a German export (thousands ".", decimal ","), unreadable
    ("1234", 1234.0, False),
    ("007", 7.0, False),
    (" 12 ", 12.0, False),
    ("1.234,5", 1234.5, False),
    ("-3", -3.0, False),
    ("", np.nan, False),
    (None, np.nan, False),
    ("1,5e3", 1500.0, False),
    ("zwölf", np.nan, True),
    ("١٢", np.nan, True),  # digits, but not ASCII ones
    ("0x1F", np.nan, True),
]


@pytest.mark.parametrize("digits_only", [True, False], ids=["digits only", "mixed"])
def test_numbers_read_the_same_whether_a_column_is_digits_only_or_not(digits_only):
    cases = [c for c in NUMBER_CASES if not digits_only or c[0] in ("1234", "007")]
    german = ValueFormat(thousands=".", decimal=",")
    values, unreadable = to_numbers(pa.array([c[0] for c in cases], pa.string()), german)
    np.testing.assert_array_equal(values, [c[1] for c in cases])
    assert unreadable.tolist() == [c[2] for c in cases]


def test_coverage_from_times_alone_matches_the_shaped_file_at_a_dst_change():
    # 02:30 occurs twice in Berlin on 25 Oct 2026; `order` takes the first per queue as CEST.
    raw = contacts(
        external_queue_id=["q1", "q2", "q1", "q2", "q1"],
        interval_start=[
            "2026-10-25 02:30",
            "2026-10-25 02:30",
            "2026-10-25 02:30",
            "2026-10-25 02:30",
            "2026-10-25 03:00",
        ],
    )
    fmt = ValueFormat(time="local", ambiguous_times="order")
    shaped = shape_contacts(raw, ContactMapping(channel="calls"), fmt, CONTEXT)
    first, last = contact_coverage(raw, ContactMapping(channel="calls"), fmt, CONTEXT)
    assert shaped.rejected.empty
    assert sorted(shaped.frame["interval_start"].astype(str)) == [
        "2026-10-25 00:30:00+00:00",
        "2026-10-25 00:30:00+00:00",
        "2026-10-25 01:30:00+00:00",
        "2026-10-25 01:30:00+00:00",
        "2026-10-25 02:00:00+00:00",
    ]
    assert (first, last) == shaped.coverage()[:2]
    assert (first, last) == (
        pd.Timestamp("2026-10-25 00:30", tz="UTC"),
        pd.Timestamp("2026-10-25 02:00", tz="UTC"),
    )


@pytest.mark.parametrize("mode", ["iso", "local", "utc", "epoch"])
def test_repeated_times_are_read_once_each_with_the_same_result(mode):
    values = [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25 02:30",
        None,
        " 2026-10-25T00:15:00Z ",
        "",
        "not a time",
        "1793062800",
    ]
    column = pa.array(values * 50, pa.string())
    fmt = ValueFormat(time=mode)
    once = parse_instants(column, fmt, "interval_start")
    each = _parse_instants(column, fmt, "interval_start")  # every row read on its own
    pd.testing.assert_series_equal(once.utc, each.utc)
    pd.testing.assert_series_equal(once.naive, each.naive)
    assert once.bad.tolist() == each.bad.tolist()
    assert once.rule == each.rule
    assert once.bad.sum() > 0  # the sample holds values each mode cannot read


def test_epoch_seconds_with_missing_and_out_of_range_values():
    array = pa.array([1792879375, None, 2147483640, 10**12, -(10**11)], pa.int64())
    read = parse_instants(array, ValueFormat(time="epoch"), "end")
    assert list(read.utc[:3]) == [
        pd.Timestamp("2026-10-24 22:02:55", tz="UTC"),
        pd.NaT,
        pd.Timestamp("2038-01-19 03:14:00", tz="UTC"),
    ]
    assert read.utc[3:].isna().all()
    assert read.bad.tolist() == [False, False, False, True, True]  # rejected, not a crash
    fractional = parse_instants(pa.array([1.5, None]), ValueFormat(time="epoch"), "end")
    assert fractional.utc[0] == pd.Timestamp("1970-01-01 00:00:01.5", tz="UTC")
