"""Sets of UTC hours as sorted, disjoint time windows.

The gap sensor reasons about years of hourly partitions; as windows, "everything from the
history start but these three stretches" is a handful of pairs instead of 26,280 keys, and
union and difference stay cheap whatever the history length (DESIGN.md: never list partition
keys in a sensor's hot path).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from etl.partitions import HOUR, floor_hour, next_month

Window = tuple[datetime, datetime]  # [start, end), both on UTC hour boundaries


def normalize(windows: Iterable[Window]) -> list[Window]:
    """Sorted, merged, non-empty windows (touching windows become one)."""
    result: list[Window] = []
    for start, end in sorted(w for w in windows if w[0] < w[1]):
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


def union(*groups: Iterable[Window]) -> list[Window]:
    return normalize(w for group in groups for w in group)


def subtract(windows: Iterable[Window], removed: Iterable[Window]) -> list[Window]:
    """`windows` without any hour in `removed`."""
    result: list[Window] = []
    cuts = normalize(removed)
    for start, end in normalize(windows):
        cursor = start
        for cut_start, cut_end in cuts:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                result.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def intersect(windows: Iterable[Window], other: Iterable[Window]) -> list[Window]:
    left, right = normalize(windows), normalize(other)
    result: list[Window] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            result.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return result


def hours_in(windows: Iterable[Window]) -> int:
    return sum(int((end - start) / HOUR) for start, end in windows)


def of_hours(hours: Iterable[datetime]) -> list[Window]:
    """Windows covering the given hours (a few, e.g. the open partitions)."""
    return normalize((floor_hour(h), floor_hour(h) + HOUR) for h in hours)


def chunks(windows: Iterable[Window], max_hours: int) -> Iterator[Window]:
    """Split windows at UTC month boundaries (the warehouse's file grain, so a chunk of a whole
    month writes its month file once) and into pieces of at most `max_hours` (the backfill
    policy's chunk), newest first. Pieces of a month are cut from the month's start, so chunk
    boundaries stay the same from one sensor tick to the next."""
    pieces: list[Window] = []
    for start, end in normalize(windows):
        cursor = start
        while cursor < end:
            month_end = min(next_month(cursor), end)
            month_first = cursor.replace(day=1, hour=0)
            # align pieces inside the month on multiples of max_hours from the month start
            offset = int((cursor - month_first) / HOUR) % max_hours
            piece_end = min(cursor + (max_hours - offset) * HOUR, month_end)
            pieces.append((cursor, piece_end))
            cursor = piece_end
    return iter(sorted(pieces, key=lambda w: w[1], reverse=True))
