"""Time arithmetic the vendor sources share: request windows, local interval grids, and
local wall-clock times turned into UTC safely across daylight-saving changes.

Vendors report in the customer's local time more often than not (Talkdesk status times,
Five9 report rows). A local time is converted with its zone's rules; the one hour that
happens twice when clocks go back is resolved from what the row itself says (its duration,
its end) or from the agent's previous segment, and a row that cannot be resolved is reported,
never guessed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from etl.resources.sources.simulator.simulator import interval_starts


def split_window(start: datetime, end: datetime, span: timedelta) -> Iterator[tuple]:
    """[start, end) cut into consecutive pieces of at most `span`."""
    cursor = start
    while cursor < end:
        stop = min(cursor + span, end)
        yield cursor, stop
        cursor = stop


def grid_window(
    start: datetime, end: datetime, minutes: int, timezone: str
) -> tuple[datetime, datetime] | None:
    """The span covering exactly the integration's intervals that start in [start, end), on
    its local grid (for 60-minute intervals in Asia/Kolkata that is :30 to :30 UTC)."""
    starts = interval_starts(start, end, minutes, timezone)
    if starts.empty:
        return None
    first = starts.iloc[0].to_pydatetime()
    last = starts.iloc[-1].to_pydatetime() + timedelta(minutes=minutes)
    return first, last


def floor_to_grid(moments: pd.Series, minutes: int, timezone: str) -> pd.Series:
    """Start (UTC) of the local interval holding each UTC moment.

    Works on elapsed time, not on wall-clock labels, so a moment in the repeated hour of a
    DST change lands in the right one of the two intervals that share a label.
    """
    utc = pd.to_datetime(moments, utc=True)
    local = utc.dt.tz_convert(timezone)
    into = (local.dt.hour * 60 + local.dt.minute) % minutes
    offset = (
        pd.to_timedelta(into, unit="m")
        + pd.to_timedelta(local.dt.second, unit="s")
        + pd.to_timedelta(local.dt.microsecond, unit="us")
    )
    return utc - offset


def utc_candidates(local: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every UTC moment a naive local time can mean: one, two (clocks went back), or none
    (the time was skipped when clocks went forward)."""
    if local.tzinfo is not None:  # the vendor gave an offset: nothing to guess
        return [local.astimezone(UTC)]
    found = []
    for fold in (0, 1):
        aware = local.replace(tzinfo=zone, fold=fold)
        moment = aware.astimezone(UTC)
        if moment.astimezone(zone).replace(tzinfo=None) == local and moment not in found:
            found.append(moment)
    return sorted(found)


@dataclass
class Segment:
    """One status segment as a vendor reported it, in local wall-clock time."""

    group: str  # the agent: segments of one agent chain end-to-start
    start_local: datetime
    end_local: datetime | None  # None: still open, or the vendor gives a duration only
    duration_s: float | None  # None when the vendor does not say
    # The UTC span the start is known to lie in (the report run's window), if any: of the
    # two meanings of a repeated local time, only the one inside it counts.
    within: tuple[datetime, datetime] | None = None


@dataclass
class Resolved:
    start_utc: datetime | None
    end_utc: datetime | None
    problem: str | None = None


def resolve_segments(segments: list[Segment], timezone: str) -> list[Resolved]:
    """UTC start and end of each segment. An ambiguous local time (the repeated hour when
    clocks go back) is settled by the segment's own duration and end, else by the agent's
    neighbouring segments (one ends where the next starts, give or take `CHAIN_GAP`).

    Returns one `Resolved` per segment, in the input order; `problem` says why a segment
    could not be placed (a skipped or unresolvable local time, an end before the start).
    """
    zone = ZoneInfo(timezone)
    options = [_candidate_pairs(seg, zone) for seg in segments]
    results: list[Resolved | None] = [None] * len(segments)
    for i, found in enumerate(options):
        if isinstance(found, str):
            results[i] = Resolved(None, None, found)
        elif len(found) == 1:
            results[i] = Resolved(*found[0])
    progress = True
    while progress:
        progress = False
        for i, found in enumerate(options):
            if results[i] is not None or isinstance(found, str):
                continue
            group = segments[i].group
            known = [
                r
                for j, r in enumerate(results)
                if r is not None and r.start_utc is not None and segments[j].group == group
            ]
            linked = [pair for pair in found if _touches(pair, known)]
            if len(linked) == 1:
                results[i] = Resolved(*linked[0])
                progress = True
    return [
        r
        if r is not None
        else Resolved(
            None,
            None,
            f"start {segments[i].start_local}: local time is ambiguous (clocks went back) and "
            "neither the segment's duration nor its neighbours settle it",
        )
        for i, r in enumerate(results)
    ]


CHAIN_GAP = timedelta(minutes=5)


def _touches(pair: tuple[datetime, datetime | None], known: list[Resolved]) -> bool:
    start, end = pair
    for other in known:
        if other.end_utc is not None and timedelta(0) <= start - other.end_utc <= CHAIN_GAP:
            return True
        if end is not None and timedelta(0) <= other.start_utc - end <= CHAIN_GAP:
            return True
    return False


def _candidate_pairs(seg: Segment, zone: ZoneInfo) -> list[tuple] | str:
    """Every (start, end) in UTC the segment can mean, or why it cannot mean any."""
    starts = utc_candidates(seg.start_local, zone)
    if not starts:
        return f"start {seg.start_local}: local time does not exist (clocks went forward)"
    if seg.within is not None:
        inside = [s for s in starts if seg.within[0] <= s < seg.within[1]]
        starts = inside or starts
    ends: list[datetime | None] = [None]
    if seg.end_local is not None:
        ends = list(utc_candidates(seg.end_local, zone))
        if not ends:
            return f"end {seg.end_local}: local time does not exist (clocks went forward)"
    duration = timedelta(seconds=seg.duration_s) if seg.duration_s is not None else None
    pairs = []
    for s in starts:
        for e in ends:
            if e is None:
                pairs.append((s, s + duration if duration is not None else None))
            elif e >= s and (duration is None or abs((e - s) - duration) <= timedelta(seconds=1)):
                pairs.append((s, e))
    if not pairs and seg.end_local is not None:
        # The duration disagrees with start and end (rounded by the vendor?): trust the times.
        pairs = [(s, e) for s in starts for e in ends if e is not None and e >= s]
    if not pairs:
        return f"end {seg.end_local} is before start {seg.start_local}"
    return sorted(set(pairs), key=lambda p: p[0])
