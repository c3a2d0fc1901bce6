"""The project's clock. Code that compares data with "now" (was an hour over when it was
imported? which hours has the gap sensor to fill?) asks here, so tests can fix the time."""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
