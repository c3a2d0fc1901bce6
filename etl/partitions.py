"""Hourly UTC partitions and the time arithmetic around them.

The partition is an hour whatever the integration's interval (DESIGN.md: three years of hours
is 26,280 partitions, of 15-minute intervals 105,120). Sensors and schedules work with time
windows and key ranges computed here, never with `get_partition_keys()`, which is slow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from etl.config import Integration

# Dagster is imported where partitions are built: the ingestion service's door checks use
# the time arithmetic here without loading it (a second of a restart).
if TYPE_CHECKING:
    import dagster as dg

HOUR = timedelta(hours=1)
KEY_FORMAT = "%Y-%m-%d-%H:%M"


def hourly_partitions(integration: Integration) -> dg.HourlyPartitionsDefinition:
    """Hours from the integration's history start up to and including the current hour."""
    import dagster as dg

    return dg.HourlyPartitionsDefinition(
        start_date=integration.history_start.strftime(KEY_FORMAT),
        timezone="UTC",
        end_offset=1,
    )


def floor_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def key_of(hour: datetime) -> str:
    return floor_hour(hour).strftime(KEY_FORMAT)


def hour_of(key: str) -> datetime:
    return datetime.strptime(key, KEY_FORMAT).replace(tzinfo=UTC)


def key_range(start: datetime, end: datetime) -> dg.PartitionKeyRange:
    """Keys of the hours in [start, end): `end` is exclusive, as in a time window."""
    import dagster as dg

    return dg.PartitionKeyRange(key_of(start), key_of(end - HOUR))


def hours(start: datetime, end: datetime) -> Iterator[datetime]:
    hour = floor_hour(start)
    while hour < end:
        yield hour
        hour += HOUR


def month_start(moment: datetime) -> datetime:
    return floor_hour(moment).replace(day=1, hour=0)


def next_month(moment: datetime) -> datetime:
    first = month_start(moment)
    return (first + timedelta(days=32)).replace(day=1)


def next_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0) + timedelta(days=1)


def months(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar months (UTC) that [start, end) touches, clipped to it."""
    return _spans(start, end, next_month)


def days(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar days (UTC) that [start, end) touches, clipped to it."""
    return _spans(start, end, next_day)


def _spans(
    start: datetime, end: datetime, following: Callable[[datetime], datetime]
) -> Iterator[tuple[datetime, datetime]]:
    cursor = start
    while cursor < end:
        boundary = min(following(cursor), end)
        yield cursor, boundary
        cursor = boundary
