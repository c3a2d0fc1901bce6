"""The built-in simulator: realistic, deterministic contact-centre data without any ACD.

Numbers are a pure function of (seed, integration, queue, channel, interval start), computed
with a counter-based hash, so any window can be generated alone, in any order, and always
gives the same numbers: what re-imports, backfills and tests need. Volumes follow an intraday
curve (morning and afternoon peaks, quiet nights) and a weekday curve in the integration's
local time; handle times sit in plausible ranges per channel.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from etl.resources.sources.base import Extract, SourceResource, SourceSettings
from etl.resources.sources.simulator import simulated_agents

QUEUE_NAMES = ("sales", "support", "billing", "retention", "technical", "vip", "claims", "orders")
# Mean handle time (seconds) and peak offered per queue and hour, by channel.
CHANNEL_PROFILE = {
    "calls": (300.0, 60.0),
    "chats": (540.0, 25.0),
    "emails": (420.0, 15.0),
    "tickets": (900.0, 8.0),
    "social": (240.0, 6.0),
    "documents": (1200.0, 4.0),
}
WEEKDAY = np.array([1.15, 1.05, 1.0, 1.0, 0.95, 0.45, 0.25])  # Monday .. Sunday
ANSWERED_SHARE = 0.9  # about the share of offered contacts answered: the agents' load
MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class SimulatorSettings(SourceSettings):
    """`source:` settings of `vendor: simulator`."""

    seed: int = 0
    queues: int = 4
    channels: list[str] = ["calls", "chats", "emails"]
    volume: float = 1.0
    bad_rows_per_day: int = 0
    # A non-zero revision changes the numbers, as a source reprocessing its data does. With
    # revision_hours, only intervals starting in the revision_hours before revision_until (UTC,
    # ISO 8601) change: "the source revised its last two hours". 0 = every interval.
    revision: int = 0
    revision_hours: int = Field(default=0, ge=0)
    revision_until: str | None = Field(default=None, validate_default=True)

    @field_validator("revision_until")
    @classmethod
    def _revision_window(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("revision_hours"):
                raise ValueError("needed with revision_hours (UTC, e.g. 2026-11-18T10:00)")
            return value
        datetime.fromisoformat(value)  # raises "Invalid isoformat string"
        return value

    # Agent status: the agent pool (default: sized from the simulated load) and the kind of
    # user identifier to deliver, as vendors differ: user_name ("Anna.Smith"), email, agent_id.
    agents: int | None = None
    user_identifiers: Literal["user_name", "email", "agent_id"] = "user_name"


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a good 64-bit hash, vectorised."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & MASK64
        return x ^ (x >> np.uint64(31))


def _uniform(base: np.ndarray, stream: int) -> np.ndarray:
    bits = _splitmix(base ^ _splitmix(np.full_like(base, stream)))
    return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _intraday(hour: np.ndarray) -> np.ndarray:
    """Two peaks (10:30 and 14:30 local), little at night."""
    morning = np.exp(-(((hour - 10.5) / 2.0) ** 2))
    afternoon = 0.8 * np.exp(-(((hour - 14.5) / 2.2) ** 2))
    return 0.03 + morning + afternoon


def interval_starts(start: datetime, end: datetime, minutes: int, timezone: str) -> pd.Series:
    """UTC starts of the integration's intervals in [start, end), on its local grid."""
    first = pd.Timestamp(start).floor("h") - pd.Timedelta(hours=1)
    candidates = pd.date_range(first, pd.Timestamp(end), freq="15min", inclusive="left")
    local = candidates.tz_convert(timezone)
    on_grid = ((local.hour * 60 + local.minute) % minutes) == 0
    keep = on_grid & (candidates >= pd.Timestamp(start))
    return pd.Series(candidates[keep])


class SimulatorSource(SourceResource):
    """`vendor: simulator`: a deterministic stand-in for an ACD, for demos and tests."""

    deliveries: ClassVar[tuple[str, ...]] = ("cloud", "on_premise")
    timing: ClassVar[tuple[str, ...]] = ("batch",)

    settings_model = SimulatorSettings
    # Computed, not fetched: no rows for an hour is the simulated truth.
    reports_empty_windows = True
    settings: SimulatorSettings = SimulatorSettings()

    def queue_ids(self) -> list[tuple[str, str]]:
        channels = self.settings.channels
        pairs = []
        for i in range(self.settings.queues):
            channel = channels[i % len(channels)]
            name = QUEUE_NAMES[i % len(QUEUE_NAMES)]
            suffix = f"_{i // len(QUEUE_NAMES) + 1}" if i >= len(QUEUE_NAMES) else ""
            pairs.append((f"{name}{suffix}_{channel}", channel))
        return pairs

    def revised(self, times: np.ndarray) -> np.ndarray:
        """Which of these UTC times (naive datetime64) the revision applies to."""
        if not self.settings.revision_hours:
            return np.ones(len(times), dtype=bool)
        until = datetime.fromisoformat(self.settings.revision_until)
        until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
        since = until - timedelta(hours=self.settings.revision_hours)
        stamps = times.astype("datetime64[us]")
        lower = np.datetime64(since.replace(tzinfo=None), "us")
        upper = np.datetime64(until.replace(tzinfo=None), "us")
        return (stamps >= lower) & (stamps < upper)

    def _key(self) -> np.uint64:
        return np.uint64(zlib.crc32(self.integration_id.encode()) ^ (self.settings.seed << 32))

    def contacts(self, start: datetime, end: datetime) -> Extract:
        starts = interval_starts(start, end, self.interval_minutes, self.timezone)
        queues = self.queue_ids()
        n_int, n_q = len(starts), len(queues)
        if n_int == 0 or n_q == 0:
            return Extract(pd.DataFrame(columns=["interval_start"]), description="simulator")
        ts = np.repeat(starts.dt.tz_convert(None).to_numpy(), n_q)
        q_index = np.tile(np.arange(n_q), n_int)
        channel = np.array([c for _, c in queues])[q_index]
        queue_id = np.array([q for q, _ in queues])[q_index]
        epoch_min = (ts.astype("datetime64[m]").astype(np.int64)).astype(np.uint64)
        base = _splitmix(self._key() ^ (epoch_min << np.uint64(8)) ^ q_index.astype(np.uint64))
        if self.settings.revision:
            revised = _splitmix(base ^ np.uint64(self.settings.revision))
            base = np.where(self.revised(ts), revised, base)

        local = pd.DatetimeIndex(ts).tz_localize("UTC").tz_convert(self.timezone)
        hour = local.hour.to_numpy() + local.minute.to_numpy() / 60 + self.interval_minutes / 120
        aht_mean = np.array([CHANNEL_PROFILE[c][0] for c in channel])
        peak = np.array([CHANNEL_PROFILE[c][1] for c in channel])
        queue_size = 0.6 + 0.8 * _uniform(q_index.astype(np.uint64) ^ self._key(), 1)
        expected = (
            peak
            * queue_size
            * self.settings.volume
            * _intraday(hour)
            * WEEKDAY[local.dayofweek.to_numpy()]
            * self.interval_minutes
            / 60
        )
        u1, u2 = _uniform(base, 2), _uniform(base, 3)
        normal = np.sqrt(-2 * np.log(np.maximum(u1, 1e-12))) * np.cos(2 * np.pi * u2)
        offered = np.maximum(np.rint(expected + np.sqrt(expected) * normal), 0).astype(np.int64)
        answer_rate = 0.82 + 0.16 * _uniform(base, 4)
        answered = np.minimum(np.rint(offered * answer_rate), offered).astype(np.int64)
        abandoned = np.rint((offered - answered) * (0.6 + 0.4 * _uniform(base, 5))).astype(np.int64)
        aht = aht_mean * (0.8 + 0.4 * _uniform(base, 6))
        handle = np.round(answered * aht, 1)
        frame = pd.DataFrame(
            {
                "integration_id": self.integration_id,
                "external_queue_id": queue_id,
                "channel": channel,
                "interval_start": pd.DatetimeIndex(ts).tz_localize("UTC"),
                "interval_minutes": self.interval_minutes,
                "offered": offered,
                "answered": answered,
                "abandoned": abandoned,
                "handle_time_s": handle,
                "talk_time_s": np.round(handle * 0.74, 1),
                "hold_time_s": np.round(handle * 0.06, 1),
                "acw_time_s": np.round(handle * 0.20, 1),
                "answered_in_sl": np.rint(answered * (0.75 + 0.2 * _uniform(base, 7))).astype(
                    np.int64
                ),
            }
        )
        frame = self._corrupt(frame)
        return Extract(
            frame,
            description=f"simulator (seed {self.settings.seed}) "
            f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC",
        )

    def now(self) -> datetime:
        """The simulated ACD's clock: agent states after it have not happened yet."""
        return datetime.now(UTC)

    def centre(self) -> simulated_agents.Centre:
        """The agent side of this simulated integration, sized from its contact load."""
        queues = self.queue_ids()
        sizes = 0.6 + 0.8 * _uniform(np.arange(len(queues), dtype=np.uint64) ^ self._key(), 1)
        rates: dict[str, float] = {}
        for (_, channel), size in zip(queues, sizes, strict=True):
            rates[channel] = rates.get(channel, 0.0) + CHANNEL_PROFILE[channel][1] * size
        volume = self.settings.volume
        work = sum(rate * CHANNEL_PROFILE[c][0] for c, rate in rates.items()) * volume / 3600
        half_hours = (np.arange(48) + 0.5) / 2
        load = tuple(
            tuple(float(x) for x in work * ANSWERED_SHARE * _intraday(half_hours) * factor)
            for factor in WEEKDAY
        )
        total = sum(rates.values()) or 1.0
        return simulated_agents.Centre(
            integration_id=self.integration_id,
            seed=self.settings.seed,
            key=int(self._key()),
            timezone=self.timezone,
            channels=tuple(
                (c, rate / total, CHANNEL_PROFILE[c][0]) for c, rate in sorted(rates.items())
            ),
            load=load,
            agents=self.settings.agents,
            identifiers=self.settings.user_identifiers,
        )

    def agent_status(self, start: datetime, end: datetime) -> Extract:
        """Segments overlapping [start, end), as the ACD reports them now: the state each
        agent is in at this moment is open (no end), and nothing later exists yet."""
        frame = simulated_agents.segments(self.centre(), start, end, self.now())
        frame.insert(0, "integration_id", self.integration_id)
        return Extract(
            frame,
            description=f"simulator (seed {self.settings.seed}) agent status "
            f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC",
        )

    def _corrupt(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Deliberately bad rows (`bad_rows_per_day`), so the quarantine has something to
        show: answered above offered. At most one an hour (in a UTC hour drawn with
        probability bad_rows_per_day / 24: the first interval of one of its queues), so a
        demo shows rejected rows without an hour passing its rejected share."""
        per_day = self.settings.bad_rows_per_day
        if not per_day:
            return frame
        starts = frame["interval_start"]
        hours = starts.dt.floor("h")
        hour_key = hours.dt.tz_convert(None).to_numpy().astype("datetime64[h]").astype(np.int64)
        hour_hash = _splitmix(self._key() ^ hour_key.astype(np.uint64) ^ np.uint64(0xBAD))
        bad_hour = _uniform(hour_hash, 9) < per_day / 24
        queues = [q for q, _ in self.queue_ids()]
        picked = (hour_hash % np.uint64(len(queues))).astype(np.int64)
        queue_index = frame["external_queue_id"].map({q: i for i, q in enumerate(queues)})
        first_interval = (starts - hours) < pd.Timedelta(minutes=self.interval_minutes)
        chosen = bad_hour & (queue_index.to_numpy() == picked) & first_interval.to_numpy()
        frame.loc[chosen, "answered"] = frame.loc[chosen, "offered"] + 1
        return frame
