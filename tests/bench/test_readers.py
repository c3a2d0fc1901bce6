"""The readers benchmark part: its check catches every wrong answer, and a short run of it
on a real warehouse has none."""

from datetime import datetime

import numpy as np

from bench import readers
from etl.partitions import next_month

QUEUES = 3


def month_answer(month: datetime, intervals: int) -> tuple:
    naive = np.datetime64(month.replace(tzinfo=None), "us")
    starts = naive + np.arange(intervals) * np.timedelta64(15, "m")
    offered = int(readers.offered_at(QUEUES, starts).sum())
    return (f"{month:%Y-%m}", intervals * QUEUES, offered, offered)


def test_the_check_accepts_every_state_a_write_can_leave_and_nothing_else():
    january, february = readers.START, next_month(readers.START)
    whole = 31 * 96
    good = [month_answer(january, whole), month_answer(february, 5)]
    assert readers.check(good, QUEUES) == ""
    assert readers.check(good[:1], QUEUES) == ""
    short = [month_answer(january, whole - 1), month_answer(february, 5)]
    assert "no longer written" in readers.check(short, QUEUES)
    assert "not consecutive" in readers.check(good[1:], QUEUES)
    doubled = [(*good[0][:1], good[0][1] * 2, good[0][2] * 2, good[0][3] * 2), good[1]]
    assert readers.check(doubled, QUEUES) != ""
    apart = [good[0], (*good[1][:3], good[1][3] + 1)]
    assert "day sums" in readers.check(apart, QUEUES)
    ragged = [good[0], (good[1][0], good[1][1] + 1, *good[1][2:])]
    assert "whole intervals" in readers.check(ragged, QUEUES)
    wrong_sum = [good[0], (*good[1][:2], good[1][2] + 1, good[1][2] + 1)]
    assert "not the sum" in readers.check(wrong_sum, QUEUES)


def test_a_short_run_has_no_error_and_no_wrong_total(tmp_path):
    found = readers.run(tmp_path / "w", queues=QUEUES, history_months=2, seconds=8)
    assert found["ticks"] > 0
    assert found["history months"] > 0
    for name in ("reader (one connection)", "reader (a connection per query)"):
        counts = found[name]
        assert counts["queries"] > 0, found
        assert (counts["errors"], counts["wrong"]) == (0, 0), counts["messages"]
