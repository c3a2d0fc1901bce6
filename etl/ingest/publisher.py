"""Real-time agent status: landed segments into the live views within seconds.

For every integration whose agent-status records landed since its last publish, the
publisher writes the segments that overlap the integration's local today into the
warehouse table `agent_status_live` (views `agent_status_live`, `agent_state_now`), with
one `replace_window` of one day: one file swapped atomically, so a query sees a batch whole
or not at all. Updates are coalesced: an integration is published at most once per
`min_interval_s` (1 s), however many batches arrive, so 2,000 records a second are one
warehouse write a second, not 2,000. A publish rewrites the integration's whole day, so its
cost grows with the day's rows (about 0.6 s of CPU for 120,000): the next publish of an
integration waits at least twice as long as its last one took (at most `MAX_INTERVAL_S`), so
the publisher never takes more than a third of a core from the ingestion service beside it,
and a landed record still shows within about three publish times.

Publishes of one integration are serialised by a file lock, and each reads the landing store
after taking it, so a slower publisher can never overwrite a newer state with an older one.
Paused and removed integrations are not published, and what they had published is cleared
(their state is unknown from then on). The hourly import reads the same landed records into
`agent_status_segments`; the live table is only the view of today.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from etl.config import Integration
from etl.ingest.store import OPEN_END_US, LandingStore, from_us, to_us
from etl.resources.files import file_lock
from etl.resources.warehouse import Warehouse

log = logging.getLogger(__name__)
LIVE_TABLE = "agent_status_live"
DAY = timedelta(days=1)
# On the first publish of an integration in a process, days this far back are cleared too
# (what a publisher that was stopped over midnight left behind).
CLEAR_DAYS_BACK = 7
# The landing store is pruned (etl/ingest/pruning.py) by the publisher's process.
PRUNE_AFTER_START_S = 60.0
PRUNE_EVERY_S = 600.0
LIVE_COLUMNS = (
    "integration_id",
    "user_identifier",
    "external_activity",
    "start_utc",
    "end_utc",
    "live_day",
    "day_local",
    "timezone",
    "landed_at",
    "published_at",
)


def local_day(integration: Integration, now: datetime) -> tuple[date, datetime, datetime]:
    """The integration's local today, its start and end in UTC."""
    tz = ZoneInfo(integration.timezone)
    today = now.astimezone(tz).date()
    start = datetime.combine(today, day_time(), tz).astimezone(UTC)
    end = datetime.combine(today + DAY, day_time(), tz).astimezone(UTC)
    return today, start, end


def live_day_key(today: date) -> datetime:
    """Where a local day's live rows are stored: UTC midnight of that date, so all of one
    integration's live rows are in one file (one atomic swap per publish)."""
    return datetime.combine(today, day_time(), UTC)


# Records are read again from this far before the newest landing seen: a transaction that
# committed later than another may carry an earlier landing time.
REREAD_US = 10 * 10**6
# The longest wait between two publishes of an integration (see the module).
MAX_INTERVAL_S = 3.0


@dataclass
class Today:
    """One integration's segments of its local today, kept up to date from the landings
    since the last publish instead of read whole every second."""

    day: date
    start_us: int
    end_us: int
    # (user, start_us) -> (activity, end_us or None, landed_at_us)
    rows: dict[tuple[str, int], tuple[str, int | None, int]] = field(default_factory=dict)
    watermark: int = 0

    def merge(self, records: list[tuple[str, int, int, str, int]]) -> None:
        """Add or replace records; a withdrawn one (end = start) or one outside today goes."""
        for user, start, end, record, landed in records:
            key = (user, start)  # an agent-status record's key is its user identifier
            known = self.rows.get(key)
            if known is not None and known[2] == landed and (known[1] or OPEN_END_US) == end:
                self.watermark = max(self.watermark, landed)
                continue  # read again (REREAD_US) and unchanged: no need to parse it
            parsed = json.loads(record)
            if end > start and end > self.start_us and start < self.end_us:
                self.rows[key] = (
                    parsed["external_activity"],
                    None if end == OPEN_END_US else end,
                    landed,
                )
            else:
                self.rows.pop(key, None)
            self.watermark = max(self.watermark, landed)


def live_frame(integration: Integration, today: Today, now: datetime) -> pd.DataFrame:
    """Today's segments as rows of `agent_status_live`."""
    keys = list(today.rows)
    values = list(today.rows.values())
    ends = [v[1] for v in values]
    frame = pd.DataFrame(
        {
            "integration_id": integration.id,
            "user_identifier": [k[0] for k in keys],
            "external_activity": [v[0] for v in values],
            "start_utc": pd.to_datetime([k[1] for k in keys], unit="us", utc=True),
            "end_utc": pd.to_datetime(pd.array(ends, dtype="Int64"), unit="us", utc=True),
            "live_day": pd.Timestamp(live_day_key(today.day)),
            "day_local": today.day,
            "timezone": integration.timezone,
            "landed_at": pd.to_datetime([v[2] for v in values], unit="us", utc=True),
            "published_at": pd.Timestamp(now),
        },
        columns=list(LIVE_COLUMNS),
    )
    return frame.sort_values(["start_utc", "user_identifier"], ignore_index=True)


class LivePublisher:
    """Publishes landed agent status of active integrations into the live views."""

    def __init__(
        self,
        store: LandingStore,
        warehouse: Warehouse,
        integrations: Callable[[], Mapping[str, Integration]],
        lock_dir: Path,
        min_interval_s: float = 1.0,
        poll_s: float = 0.2,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.warehouse = warehouse
        self.integrations = integrations
        self.lock_dir = lock_dir
        self.min_interval_s = min_interval_s
        self.poll_s = poll_s
        self._now = now or (lambda: datetime.now(UTC))
        self._last: dict[str, float] = {}  # integration -> monotonic time of its last publish
        self._wait: dict[str, float] = {}  # integration -> seconds until its next publish
        self._cleared_back: set[str] = set()
        self._today: dict[str, Today] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        next_prune = time.monotonic() + PRUNE_AFTER_START_S
        while not self._stop.is_set():
            try:
                self.publish_due()
            except Exception:  # keep publishing the others; the next poll tries again
                log.exception("publishing the live agent status failed")
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_S
                try:
                    from etl.ingest.pruning import prune

                    prune(self.store, self.warehouse, self.integrations(), self._now())
                except Exception:
                    log.exception("pruning the landing store failed; tried again later")
            self._stop.wait(self.poll_s)

    def publish_due(self, force: bool = False) -> list[str]:
        """Publish every integration with new landings (at most once per `min_interval_s`
        each, unless `force`) and clear those no longer active; returns those published."""
        heads = {i: v for (i, kind), (v, _) in self.store.heads().items() if kind == "agent_status"}
        published = self.store.published()
        configured = self.integrations()
        done = []
        for integration_id, version in sorted(heads.items()):
            integration = configured.get(integration_id)
            active = (
                integration is not None
                and not integration.paused
                and "agent_status" in integration.data
            )
            if not active:
                if published.get(integration_id, 0) > 0:
                    self.clear(integration_id, configured.get(integration_id))
                continue
            if published.get(integration_id, 0) >= version:
                continue
            last = self._last.get(integration_id)
            wait = self._wait.get(integration_id, self.min_interval_s)
            if not force and last is not None and time.monotonic() - last < wait:
                continue
            self.publish(integration)
            done.append(integration_id)
        return done

    # -- one integration --------------------------------------------------------------------
    def _lock(self, integration_id: str):
        return file_lock(self.lock_dir / f"live-{integration_id}.lock")

    def publish(self, integration: Integration) -> int:
        """Write the integration's segments of its local today; returns the rows written."""
        with self._lock(integration.id):
            began = self._last[integration.id] = time.monotonic()
            rows = self._publish(integration)
            took = time.monotonic() - began
            self._wait[integration.id] = max(self.min_interval_s, min(2 * took, MAX_INTERVAL_S))
            return rows

    def _publish(self, integration: Integration) -> int:
        version = self.store.heads().get((integration.id, "agent_status"), (0, 0))[0]
        now = self._now()
        day, day_start, day_end = local_day(integration, now)
        today = self._today.get(integration.id)
        if today is None or today.day != day:
            today = Today(day, to_us(day_start), to_us(day_end))
            today.merge(
                self.store.segments_overlapping(integration.id, today.start_us, today.end_us)
            )
            self._today[integration.id] = today
        else:
            since = today.watermark - REREAD_US
            today.merge(self.store.segments_landed_since(integration.id, since))
        frame = live_frame(integration, today, now)
        key = live_day_key(day)
        self.warehouse.replace_window(LIVE_TABLE, integration.id, key, key + DAY, frame)
        back = CLEAR_DAYS_BACK if integration.id not in self._cleared_back else 1
        self.warehouse.replace_window(
            LIVE_TABLE, integration.id, key - back * DAY, key, frame.iloc[0:0]
        )
        self._cleared_back.add(integration.id)
        self.store.mark_published(integration.id, version, to_us(now))
        return len(frame)

    def clear(self, integration_id: str, integration: Integration | None) -> None:
        """Remove what a paused or removed integration had published (its state is unknown
        from now on)."""
        with self._lock(integration_id):
            now = self._now()
            if integration is not None:
                key = live_day_key(local_day(integration, now)[0])
            else:
                key = live_day_key(now.date())
            empty = pd.DataFrame(columns=list(LIVE_COLUMNS))
            self.warehouse.replace_window(
                LIVE_TABLE, integration_id, key - CLEAR_DAYS_BACK * DAY, key + 2 * DAY, empty
            )
            self.store.mark_published(integration_id, 0, to_us(now))
            self._today.pop(integration_id, None)
            log.info("live agent status of %s cleared (paused or removed)", integration_id)


def seconds_since(us: int, now: datetime) -> float:
    return (now - from_us(us)).total_seconds()
