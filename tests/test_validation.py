from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from etl.schemas import CONTACTS, STRING, contact_schema
from etl.validation import (
    CONFLICT_RULE,
    SourceDataError,
    _fractional,
    _keys_unique,
    validate,
)

START, END = datetime(2026, 11, 17, 9, tzinfo=UTC), datetime(2026, 11, 17, 10, tzinfo=UTC)


def row(**change) -> dict:
    base = {
        "external_queue_id": "q1",
        "channel": "calls",
        "interval_start": "2026-11-17T09:00:00Z",
        "interval_minutes": 15,
        "offered": 10,
        "answered": 8,
        "abandoned": 2,
        "handle_time_s": 2400.0,
    }
    return {**base, **change}


def run(rows: list[dict] | pd.DataFrame, **kwargs):
    """Validate rows as lines 2.. of a file (or a frame exactly as given)."""
    frame = rows
    if not isinstance(rows, pd.DataFrame):
        frame = pd.DataFrame(rows)
        frame["source_ref"] = [f"file.csv:{i + 2}" for i in range(len(frame))]
    return validate(
        frame,
        spec=CONTACTS,
        schema=contact_schema(15, "Europe/Berlin"),
        integration_id="sim",
        start=START,
        end=END,
        run_id="r1",
        **kwargs,
    )


def rules_by_ref(result) -> dict[str, list[str]]:
    return dict(zip(result.rejected["source_ref"], result.rejected["rules"], strict=True))


def test_good_rows_are_typed_and_kept():
    result = run([row(), row(external_queue_id="q2", offered="12", answered="7")])
    assert result.rejected.empty
    assert list(result.good["offered"]) == [10, 12]
    assert str(result.good["interval_start"].dtype) == "datetime64[ns, UTC]"
    assert (result.good["integration_id"] == "sim").all()


def test_each_broken_rule_is_named_per_row():
    result = run(
        [
            row(),
            row(external_queue_id="a", answered=11),
            row(external_queue_id="b", offered=-1, answered=0, abandoned=0),
            row(external_queue_id="c", channel="fax"),
            row(external_queue_id="d", interval_start="2026-11-17T09:07:00Z"),
            row(external_queue_id="e", offered="ten"),
            row(external_queue_id="f", interval_start="2026-11-17T11:00:00Z"),
            row(external_queue_id="g", abandoned=3),
            row(external_queue_id="h", interval_start=None),
            row(external_queue_id="i", offered=10.5),
        ]
    )
    assert len(result.good) == 1
    rules = rules_by_ref(result)
    assert set(rules["file.csv:3"]) == {"answered <= offered", "abandoned <= offered - answered"}
    assert "offered: >= 0" in rules["file.csv:4"]
    assert rules["file.csv:5"] == [
        "channel: one of calls, chats, emails, tickets, social, documents"
    ]
    assert rules["file.csv:6"] == ["interval_start: on the 15-minute local grid"]
    assert rules["file.csv:7"] == ["offered: not a number"]
    assert rules["file.csv:8"] == ["interval_start: outside the imported window"]
    assert rules["file.csv:9"] == ["abandoned <= offered - answered"]
    assert rules["file.csv:10"] == ["interval_start: not null"]
    assert rules["file.csv:11"] == ["offered: not a whole number"]
    rejected = result.rejected.set_index("source_ref")
    assert '"offered": "ten"' in rejected.loc["file.csv:7", "row_json"]
    assert set(result.rejected["partition_key"]) == {"2026-11-17-09:00"}
    assert (result.rejected["run_id"] == "r1").all()


@pytest.mark.parametrize("dtype", ["float64", "Float64"])
def test_counts_that_are_not_whole_numbers_are_flagged_infinities_included(dtype):
    values = pd.Series([1.0, 1.5, None, np.inf, -np.inf, -2.0, -2.5, 1e300], dtype=dtype)
    assert list(_fractional(values)) == [False, True, False, True, True, False, True, False]


def test_infinite_count_is_rejected_as_not_whole():
    result = run([row(), row(external_queue_id="q2", offered=np.inf)])
    assert list(result.good["external_queue_id"]) == ["q1"]
    assert rules_by_ref(result)["file.csv:3"] == ["offered: not a whole number"]


def test_exact_duplicate_kept_once_conflicts_all_rejected():
    result = run(
        [row(), row(), row(), row(external_queue_id="q2"), row(external_queue_id="q2", offered=11)]
    )
    assert len(result.good) == 1
    assert result.good.loc[0, "external_queue_id"] == "q1"
    rules = rules_by_ref(result)
    conflict = CONFLICT_RULE.format(key="sim/q2/calls/2026-11-17 09:00:00+00:00")
    assert rules == {"file.csv:5": [conflict], "file.csv:6": [conflict]}  # copies: not rejected
    assert result.duplicates.to_dict(orient="list") == {
        "partition_key": ["2026-11-17-09:00", "2026-11-17-09:00"],
        "source_ref": ["file.csv:3", "file.csv:4"],
    }
    assert result.received == 5


def test_missing_column_fails_the_whole_frame():
    frame = pd.DataFrame([row()]).drop(columns=["handle_time_s"])
    with pytest.raises(SourceDataError, match=r"integration 'sim'.*no column\(s\) handle_time_s"):
        run(frame)


def test_empty_delivery_is_typed():
    frame = pd.DataFrame({c: [] for c in row()}, dtype=object)
    result = run(frame)
    assert result.received == 0
    assert str(result.good["interval_start"].dtype) == "datetime64[ns, UTC]"
    assert result.good.empty


@pytest.mark.parametrize("offered", [1e20, 2**63 - 1, "9223372036854775807", "1e20", 10**9 + 1])
def test_huge_count_is_too_large_not_a_broken_rule(offered):
    result = run([row(), row(external_queue_id="q2", offered=offered)])
    assert list(result.good["external_queue_id"]) == ["q1"]
    assert rules_by_ref(result) == {"file.csv:3": ["offered: too large (more than 1,000,000,000)"]}


def test_hugely_negative_count_is_below_zero():
    result = run([row(), row(external_queue_id="q2", answered=-1e20)])
    assert rules_by_ref(result) == {"file.csv:3": ["answered: >= 0"]}


def test_a_billion_is_still_a_count():
    result = run([row(offered=10**9, answered=10**9, abandoned=0)])
    assert result.rejected.empty
    assert result.good["offered"].tolist() == [10**9]


@pytest.mark.parametrize("queue", ["   ", "\u200b", "\ufeff", "\u00a0\u200b "])
def test_blank_or_invisible_queue_id_is_rejected(queue):
    result = run([row(), row(external_queue_id=queue)])
    assert list(result.good["external_queue_id"]) == ["q1"]
    assert rules_by_ref(result) == {
        "file.csv:3": ["external_queue_id: not blank (spaces or invisible characters only)"]
    }


def test_padded_or_zero_width_queue_id_loads_as_delivered_with_a_warning():
    rows = [row(), row(external_queue_id="q1 "), row(external_queue_id="q\u200b1")]
    result = run(rows)
    assert result.rejected.empty
    assert result.good["external_queue_id"].tolist() == ["q1", "q1 ", "q\u200b1"]
    assert result.warnings == [
        "external_queue_id 'q1 ' (1 row) has spaces around it or invisible characters in it; "
        "kept as delivered, so it does not match 'q1'",
        "external_queue_id 'q\\u200b1' (1 row) has spaces around it or invisible characters in "
        "it; kept as delivered, so it does not match 'q1'",
    ]


@pytest.mark.parametrize("rows", [10, 300_000])  # keys few enough to flag each, and too many
def test_key_uniqueness_agrees_with_pandas_duplicates(rows: int):
    """`_keys_unique` is the fast path of the duplicate-key rules; missing values (a missing
    time included) are values of their own, as `DataFrame.duplicated` treats them."""
    numbers = np.arange(rows)
    frame = pd.DataFrame(
        {
            "integration_id": pd.array(["berlin"] * rows, dtype=STRING),
            "external_queue_id": pd.array([f"q{n % 97}" for n in numbers], dtype=STRING),
            "interval_start": pd.Series(
                pd.Timestamp("2026-11-17T09:00Z") + pd.to_timedelta(numbers, unit="s")
            ),
        }
    )
    key = list(frame.columns)
    cases = {
        "distinct": frame,
        "a copied row": pd.concat([frame, frame.iloc[[3]]], ignore_index=True),
        "two missing times": frame.assign(
            external_queue_id=frame["external_queue_id"].where(numbers > 1, "q0"),
            interval_start=frame["interval_start"].where(numbers > 1),
        ),
        "one missing time": frame.assign(
            interval_start=frame["interval_start"].where(numbers != 1)
        ),
        "a missing queue twice": frame.assign(
            external_queue_id=frame["external_queue_id"].where(numbers > 1),
            interval_start=frame["interval_start"].where(numbers > 1, frame["interval_start"][0]),
        ),
    }
    for name, case in cases.items():
        expected = not case.duplicated(key).any()
        assert _keys_unique(case, key) == expected, name
    assert _keys_unique(cases["distinct"], key)
    assert not _keys_unique(cases["a copied row"], key)
    assert not _keys_unique(cases["two missing times"], key)
